//! The developer's guide, one topic per module, each with an example that runs as a doctest
//! (on in-memory SQLite; the same code runs on PostgreSQL and MariaDB). The examples have no
//! audit key, so they allow unkeyed seals explicitly (`audit_unkeyed()`); applications set
//! `CUSTODIAN_AUDIT_KEY` instead.
//!
//! | topic | shows |
//! |---|---|
//! | [`session`] | `insert`, `get`, `find`, `select`, `update`, `delete`, bulk writes, transactions and savepoints |
//! | [`entities`] | default table names, `index`, `check`, `default`, `unique`, `has_one`, `validate`, `unaudited` |
//! | [`relationships`] | `belongs_to`, `has_many`, loading parents and children, joins |
//! | [`validation`] | validator rules, field-keyed errors, unique violations |
//! | [`lifecycle`] | optimistic locking, timestamps, soft delete, hooks |
//! | [`schema`] | constraints, generated migrations, drift check |
//! | [`audit`] | principals, history, as-of reads, sealing, checkpoints, verification |
//! | [`access`] | roles, tenants, masks |
//! | [`crypto`] | encrypted fields, blind indexes, `Sealed<T>`, crypto-shredding |

pub mod entities;
pub mod session;

pub mod relationships {
    //! # Relationships
    //!
    //! `#[belongs_to(Parent)]` on a foreign-key field declares the relation (and a database
    //! foreign key with its referential action); `#[entity(has_many(Child))]` on the parent lets
    //! diesel join in that direction too. Children of many parents load in one query.
    //!
    //! ```
    //! use custodian::prelude::*;
    //!
    //! #[entity(table = "controls", has_many(Finding))]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Control {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     pub code: String,
    //! }
    //!
    //! #[entity(table = "findings")]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Finding {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     #[belongs_to(Control, on_delete = "cascade")]
    //!     pub control_id: i64,
    //!     pub note: String,
    //! }
    //!
    //! diesel::allow_tables_to_appear_in_same_query!(controls, findings);
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("guide"));
    //! db.create_tables(&[Control::META, Finding::META])?;
    //! let mut s = db.session()?;
    //! let c = s.insert(Control { id: 0, code: "AC-1".into() })?;
    //! s.insert(Finding { id: 0, control_id: c.id, note: "stale accounts".into() })?;
    //!
    //! let per_control: Vec<Vec<Finding>> = s.children::<Control, Finding>(&[c.clone()])?; // one query
    //! assert_eq!(per_control[0].len(), 1);
    //! let parent: Option<Control> = s.parent::<Finding, Control>(&per_control[0][0])?;
    //! assert_eq!(parent.as_ref(), Some(&c));
    //! let joined: Vec<(String, String)> = s.load(
    //!     findings::table.inner_join(controls::table).select((controls::code, findings::note)),
    //! )?;
    //! assert_eq!(joined, [("AC-1".to_string(), "stale accounts".to_string())]);
    //! # Ok(()) }
    //! ```
    //!
    //! Many-to-many goes through a join entity that belongs to both sides:
    //! `s.attach(link)`, `s.detach(&link)`, `s.related::<Left, Link, Right>(&lefts)`.
}

pub mod validation {
    //! # Validation
    //!
    //! Derive `validator::Validate` after `#[entity]`: the write path runs the rules before every
    //! insert and update, single or bulk, and nothing is written when one fails. Errors are
    //! field-keyed; database rejections (unique, not null, check, foreign key) have the same
    //! shape through [`Error::field_errors`](crate::Error::field_errors).
    //!
    //! ```
    //! use custodian::prelude::*;
    //! use validator::Validate;
    //!
    //! #[entity(table = "vendors")]
    //! #[derive(Debug, Clone, PartialEq, Validate)]
    //! pub struct Vendor {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     #[column(unique)]
    //!     #[validate(length(min = 2, max = 20))]
    //!     pub name: String,
    //!     #[validate(email)]
    //!     pub contact: Option<String>,
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("guide"));
    //! db.create_table::<Vendor>()?;
    //! let mut s = db.session()?;
    //! let bad = Vendor { id: 0, name: "X".into(), contact: Some("nope".into()) };
    //! let err = s.insert(bad).unwrap_err();
    //! let fields = err.field_errors().unwrap();
    //! assert!(fields.fields.contains_key("name") && fields.fields.contains_key("contact"));
    //!
    //! s.insert(Vendor { id: 0, name: "Acme".into(), contact: None })?;
    //! let dup = s.insert(Vendor { id: 0, name: "Acme".into(), contact: None }).unwrap_err();
    //! assert_eq!(dup.field_errors().unwrap().fields["name"][0].code, "unique");
    //! # Ok(()) }
    //! ```
}

pub mod lifecycle {
    //! # Optimistic locking, timestamps, soft delete and hooks
    //!
    //! - `#[column(version)]`: 1 on insert, +1 per update; an update from a stale copy fails
    //!   with `Error::Conflict` (code `stale_version`) and changes nothing.
    //! - `#[column(created_at)]`, `#[column(updated_at)]`: set by the write path, in UTC.
    //! - `#[column(deleted_at)]`: `delete` hides the row (`find`, `get`, `Entity::query()`),
    //!   `deleted` lists hidden rows, `restore` brings one back, `purge` removes it for good.
    //! - `#[entity(hooks)]` + `impl Hooks`: code run inside the write's transaction; an `Err`
    //!   from a `before_*` hook aborts the write.
    //!
    //! ```
    //! use custodian::prelude::*;
    //! use custodian::Hooks;
    //! use chrono::{DateTime, Utc};
    //!
    //! #[entity(table = "policies", hooks)]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Policy {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     pub title: String,
    //!     #[column(version)]
    //!     pub version: i64,
    //!     #[column(created_at)]
    //!     pub created_at: DateTime<Utc>,
    //!     #[column(updated_at)]
    //!     pub updated_at: DateTime<Utc>,
    //!     #[column(deleted_at)]
    //!     pub deleted_at: Option<DateTime<Utc>>,
    //! }
    //!
    //! impl Hooks for Policy {
    //!     fn before_insert(&mut self, _: &mut Session) -> custodian::Result<()> {
    //!         self.title = self.title.trim().to_string();
    //!         Ok(())
    //!     }
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("guide"));
    //! db.create_table::<Policy>()?;
    //! let mut s = db.session()?;
    //! let new = Policy { id: 0, title: "  Access  ".into(), version: 0, created_at: Utc::now(),
    //!                    updated_at: Utc::now(), deleted_at: None };
    //! let mut p = s.insert(new)?;
    //! assert_eq!((p.title.as_str(), p.version), ("Access", 1));
    //! let mut stale = p.clone();
    //! p.title = "Access control".into();
    //! s.update(&mut p)?;                                   // version 2
    //! stale.title = "Lost update".into();
    //! assert!(matches!(s.update(&mut stale), Err(custodian::Error::Conflict { .. })));
    //!
    //! s.delete(&p)?;                                       // soft delete
    //! assert!(s.find::<Policy>(&p.id)?.is_none());
    //! assert_eq!(s.deleted::<Policy>()?.len(), 1);
    //! s.restore::<Policy>(&p.id)?;
    //! s.purge(&p)?;                                        // gone for good
    //! assert!(s.find_with_deleted::<Policy>(&p.id)?.is_none());
    //! # Ok(()) }
    //! ```
}

pub mod schema {
    //! # Constraints, DDL, migrations and drift
    //!
    //! Column attributes become constraints the database enforces (`unique`, `index`,
    //! `default = "SQL"`, `check = "SQL"`, `range(min, max)`, `one_of(..)`, enum variants,
    //! foreign keys); entity attributes add multi-column `unique(a, b)` / `index(a, b)`.
    //! `migrate::generate` writes migrations for every backend (only what changed since the last
    //! one: see the README's "Changing entities"), `Db::run_migrations` applies them
    //! with checksums (an edited applied migration is refused), and `Db::check_schema` reports
    //! drift between the entities and the live database.
    //!
    //! ```
    //! use custodian::prelude::*;
    //!
    //! #[entity(table = "accounts", unique(owner, currency))]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Account {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     pub owner: String,
    //!     #[column(one_of("EUR", "USD"))]
    //!     pub currency: String,
    //!     #[column(range(min = 0, max = 1000000))]
    //!     pub limit_cents: i64,
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let dir = std::env::temp_dir().join(format!("custodian-guide-{}", std::process::id()));
    //! custodian::migrate::generate(&dir, "accounts", &[Account::META], custodian::backends::ALL)?;
    //! let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("guide"));
    //! assert_eq!(db.run_migrations(&dir)?.len(), 1);
    //! db.check_schema(&[Account::META])?;
    //! let mut s = db.session()?;
    //! let over = Account { id: 0, owner: "ada".into(), currency: "EUR".into(), limit_cents: -5 };
    //! assert!(matches!(s.insert(over), Err(custodian::Error::Constraint { .. })));
    //! # std::fs::remove_dir_all(&dir).ok();
    //! # Ok(()) }
    //! ```
}

pub mod audit {
    //! # The audit trail (developer's view)
    //!
    //! Every write of an audited entity (all entities, unless `#[entity(unaudited)]`) appends a
    //! sealed record in the same transaction: actor, time, transaction id, entity, key,
    //! operation, before and after images, reason and request id. Writes fail closed without an
    //! acting principal. `Db::seal_audit` binds records into the hash chain (run it on a
    //! schedule), `Db::checkpoint` signs the head, `Db::verify_audit` checks everything.
    //!
    //! ```
    //! use custodian::prelude::*;
    //! use custodian::audit::AsOf;
    //!
    //! #[entity(table = "limits")]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Limit {
    //!     #[column(primary_key)]
    //!     pub account: String,
    //!     pub cents: i64,
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?;
    //! db.create_table::<Limit>()?;
    //! let mut anonymous = db.session()?;
    //! let refused = anonymous.insert(Limit { account: "a".into(), cents: 1 });
    //! assert!(matches!(refused, Err(custodian::Error::Forbidden(_))));    // fails closed
    //! drop(anonymous);
    //!
    //! let db = db.acting_as(custodian::Principal::new("treasury"));
    //! let mut s = db.session()?;
    //! s.audit_context().reason = Some("CR-1024".into());
    //! let mut l = s.insert(Limit { account: "a".into(), cents: 100 })?;
    //! let t = chrono::Utc::now().naive_utc();
    //! l.cents = 500;
    //! s.update(&mut l)?;
    //! let history = s.history::<Limit>(&l.account)?;
    //! assert_eq!(history.len(), 2);
    //! assert_eq!(history[1].record.actor, "treasury");
    //! assert_eq!(s.as_of::<Limit>(&l.account, AsOf::Time(t))?.unwrap().cents, 100);
    //! drop(s);
    //!
    //! let signer = custodian::audit::generate_signing_key()?;
    //! let checkpoint = db.checkpoint(&signer)?;                  // seals, then signs the head
    //! // Checkpoints count only when signed by a key the verifier trusts.
    //! let options = custodian::audit::VerifyOptions::new()
    //!     .checkpoint(checkpoint)
    //!     .trust(signer.verifying_key());
    //! assert!(db.verify_audit_with(&options)?.is_intact());
    //! # Ok(()) }
    //! ```
}

pub mod access {
    //! # Access control
    //!
    //! Give a `Db` an [`AccessControl`](crate::AccessControl): roles per action, a tenant column
    //! for row isolation, masked columns. Reads through custodian drop other tenants' rows and
    //! mask; refused writes return `Forbidden`, write nothing, and are audited.
    //!
    //! ```
    //! use custodian::prelude::*;
    //! use custodian::{AccessControl, EntityRules, Principal};
    //!
    //! #[entity(table = "cases")]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Case {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     pub tenant: String,
    //!     pub subject_email: Option<String>,
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let policy = AccessControl::deny_by_default().entity::<Case>(
    //!     EntityRules::new().read(&["analyst"]).write(&["analyst"]).tenant_column("tenant").mask("subject_email"),
    //! );
    //! let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.with_access(policy);
    //! db.create_table::<Case>()?;
    //! let acme = db.acting_as(Principal::new("ann").with_role("analyst").in_tenant("acme"));
    //! let mut s = acme.session()?;
    //! let c = s.insert(Case { id: 0, tenant: "acme".into(), subject_email: Some("x@y.z".into()) })?;
    //! assert_eq!(s.get::<Case>(&c.id)?.subject_email, None);                 // masked
    //! let other = Case { id: 0, tenant: "globex".into(), subject_email: None };
    //! assert!(matches!(s.insert(other), Err(custodian::Error::Forbidden(_)))); // wrong tenant
    //! drop(s);
    //! let mut g = db.acting_as(Principal::new("gus").with_role("analyst").in_tenant("globex")).session()?;
    //! assert!(g.find::<Case>(&c.id)?.is_none());                             // invisible
    //! # Ok(()) }
    //! ```
}

pub mod crypto {
    //! # Field encryption and crypto-shredding
    //!
    //! The simplest way: mark personal fields `#[column(encrypted)]` and name the entity's data
    //! subject. The write path seals them, every entity read opens them, and after the subject's
    //! erasure they read as [`ERASED`](crate::crypto::ERASED):
    //!
    //! ```
    //! use custodian::prelude::*;
    //! use custodian::crypto::ERASED;
    //!
    //! #[entity(table = "clients", subject = "client_ref")]
    //! #[derive(Debug, Clone, PartialEq)]
    //! pub struct Client {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     pub client_ref: String,
    //!     #[column(encrypted)]
    //!     pub email: String,
    //!     #[column(blind_index = "email")]
    //!     pub email_index: String,
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let mut cfg = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
    //! cfg.crypto.keys.insert("k1".into(), "22".repeat(32));       // keep real keys in a vault
    //! let db = custodian::open(cfg)?.acting_as(custodian::Principal::new("dpo"));
    //! db.create_table::<Client>()?;
    //! let mut s = db.session()?;
    //! let ada = s.insert(Client {
    //!     id: 0,
    //!     client_ref: "cl-1".into(),
    //!     email: "ada@example.org".into(),
    //!     email_index: String::new(),                               // filled by custodian
    //! })?;
    //! assert_eq!(s.get::<Client>(&ada.id)?, ada);                   // plaintext on read
    //! let raw = s.first(Client::query())?.unwrap();                 // raw read: ciphertext
    //! assert!(raw.email.starts_with("v1:"));
    //! let crypto = s.crypto()?;
    //! let hits = s.select::<Client, _>(
    //!     Client::query().filter(clients::email_index.eq(crypto.blind_index("email", "ada@example.org"))),
    //! )?;
    //! assert_eq!(hits, vec![ada.clone()]);
    //! assert!(crypto.erase_subject(&mut s, "cl-1")?);
    //! assert_eq!(s.get::<Client>(&ada.id)?.email, ERASED);
    //! # Ok(()) }
    //! ```
    //!
    //! For other types, or to seal values by hand:
    //! A `Sealed<T>` field is stored as ciphertext under a data key of one *subject*; erasing the
    //! subject destroys its key, so every copy of its values (live rows, history, audit images)
    //! becomes unreadable while the audit chain, which hashes ciphertext, still verifies.
    //!
    //! ```
    //! use custodian::prelude::*;
    //! use custodian::crypto::Sealed;
    //!
    //! #[entity(table = "patients")]
    //! #[derive(Debug, Clone)]
    //! pub struct Patient {
    //!     #[column(primary_key, auto_increment)]
    //!     pub id: i64,
    //!     pub subject: String,
    //!     pub ssn: Sealed<String>,
    //!     #[column(index)]
    //!     pub ssn_index: String,
    //! }
    //!
    //! # fn main() -> custodian::Result<()> {
    //! let mut cfg = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
    //! cfg.crypto.keys.insert("k1".into(), "11".repeat(32));       // keep real keys in a vault
    //! let db = custodian::open(cfg)?.acting_as(custodian::Principal::new("dpo"));
    //! db.create_table::<Patient>()?;
    //! let crypto = db.crypto()?;
    //! let mut s = db.session()?;
    //! let p = Patient {
    //!     id: 0,
    //!     subject: "cust-7".into(),
    //!     ssn: crypto.seal(&mut s, "cust-7", &"123-45-6789".to_string())?,
    //!     ssn_index: crypto.blind_index("ssn", "123-45-6789"),
    //! };
    //! let p = s.insert(p)?;
    //! let clear: String = crypto.open(&mut s, &p.ssn)?;
    //! assert_eq!(clear, "123-45-6789");
    //! let found = s.select::<Patient, _>(
    //!     Patient::query().filter(patients::ssn_index.eq(crypto.blind_index("ssn", "123-45-6789"))),
    //! )?;
    //! assert_eq!(found.len(), 1);
    //!
    //! assert!(crypto.erase_subject(&mut s, "cust-7")?);             // audited as `erase`
    //! assert!(matches!(crypto.open::<String>(&mut s, &p.ssn), Err(custodian::Error::Forbidden(_))));
    //! drop(s);
    //! db.seal_audit()?;
    //! assert!(db.verify_audit(None)?.is_intact());
    //! # Ok(()) }
    //! ```
}
