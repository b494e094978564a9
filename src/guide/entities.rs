//! # Entity attributes
//!
//! `#[derive(DbEnum)]`, and the attributes of `#[entity]` that the other topics do not show, each used once below (the
//! README's *Entities* table lists them all; [`relationships`](super::relationships) shows
//! `belongs_to` and `has_many`, [`lifecycle`](super::lifecycle) `version`, the timestamps,
//! `deleted_at` and `hooks`, [`schema`](super::schema) `unique(a, b)`, `one_of` and `range`,
//! [`crypto`](super::crypto) `subject`, `encrypted` and `blind_index`).
//!
//! ```
//! use custodian::prelude::*;
//! use validator::{Validate, ValidationError, ValidationErrors};
//!
//! // Stored as the variant's name; `one_of` check constraint on the column.
//! #[derive(DbEnum, Debug, Clone, Copy, PartialEq)]
//! pub enum Severity {
//!     Low,
//!     #[db_enum(name = "HIGH")]
//!     High,
//! }
//!
//! // No table name: the struct name in snake_case, `audit_note`.
//! #[entity(has_one(Signoff), index(author, topic))]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct AuditNote {
//!     #[column(primary_key, auto_increment)]
//!     pub id: i64,
//!     #[column(index)]
//!     pub author: String,
//!     pub topic: String,
//!     #[column(check = "length(body) <= 200")]
//!     pub body: String,
//!     pub severity: Severity,
//! }
//!
//! // At most one per note; `validate` calls the hand-written `Validate` impl below;
//! // `unaudited` leaves it out of the audit trail (so no principal is needed to write it).
//! #[entity(table = "signoffs", validate, unaudited)]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Signoff {
//!     #[column(primary_key)]
//!     #[belongs_to(AuditNote, on_delete = "cascade")]
//!     pub note_id: i64,
//!     #[column(unique)]
//!     pub token: String,
//!     #[column(default = "'pending'")]
//!     pub state: String,
//! }
//!
//! impl Validate for Signoff {
//!     fn validate(&self) -> Result<(), ValidationErrors> {
//!         let mut errors = ValidationErrors::new();
//!         if self.token.len() != 8 {
//!             errors.add("token", ValidationError::new("length"));
//!         }
//!         if errors.is_empty() { Ok(()) } else { Err(errors) }
//!     }
//! }
//!
//! diesel::allow_tables_to_appear_in_same_query!(audit_note, signoffs);
//!
//! # fn main() -> custodian::Result<()> {
//! assert_eq!(AuditNote::META.table, "audit_note");
//! let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
//! let db = custodian::open(config)?;
//! let ddl = db.backend().create_table_sql(&AuditNote::META);
//! assert!(ddl.iter().any(|sql| sql.starts_with("CREATE INDEX \"audit_note_author_topic")));
//! db.create_tables(&[AuditNote::META, Signoff::META])?;
//!
//! let mut s = db.session()?;
//! s.act_as(custodian::Principal::new("alice")); // AuditNote is audited
//! let note = s.insert(AuditNote {
//!     id: 0,
//!     author: "alice".into(),
//!     topic: "ITGC".into(),
//!     body: "ok".into(),
//!     severity: Severity::High,
//! })?;
//! let stored: Vec<String> = s.load(audit_note::table.select(audit_note::severity))?;
//! assert_eq!(stored, ["HIGH"]);
//! let long = AuditNote { id: 0, body: "x".repeat(201), ..note.clone() };
//! assert!(matches!(s.insert(long), Err(custodian::Error::Constraint { .. }))); // check
//!
//! drop(s); // sqlite::memory: has one connection
//! let mut anonymous = db.session()?; // Signoff is unaudited: no principal needed
//! let bad = Signoff { note_id: note.id, token: "short".into(), state: "signed".into() };
//! assert!(matches!(anonymous.insert(bad), Err(custodian::Error::Validation(_))));
//! let ok = Signoff { note_id: note.id, token: "8charsok".into(), state: "signed".into() };
//! anonymous.insert(ok.clone())?;
//! assert_eq!(anonymous.child::<AuditNote, Signoff>(&note)?, Some(ok));
//!
//! // The SQL default applies to rows written around custodian.
//! anonymous.execute_sql("DELETE FROM signoffs")?;
//! let sql = format!("INSERT INTO signoffs (note_id, token) VALUES ({}, 'abcdefgh')", note.id);
//! anonymous.execute_sql(&sql)?;
//! assert_eq!(anonymous.get::<Signoff>(&note.id)?.state, "pending");
//! # Ok(()) }
//! ```
