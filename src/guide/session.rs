//! # Sessions: reads, writes and transactions
//!
//! A [`Session`](crate::Session) is one pooled connection (from [`Db::session`](crate::Db::session))
//! plus its transaction state and the acting principal. Its writes
//! ([`insert`](crate::Session::insert), [`insert_many`](crate::Session::insert_many),
//! [`update`](crate::Session::update), [`update_many`](crate::Session::update_many),
//! [`delete`](crate::Session::delete), [`delete_by_key`](crate::Session::delete_by_key),
//! [`delete_many`](crate::Session::delete_many), and the set-based
//! [`update_where`](crate::Session::update_where) and
//! [`delete_where`](crate::Session::delete_where)) all take the write path: access check,
//! validation, hooks and stamps, SQL, audit records. Its entity reads
//! ([`get`](crate::Session::get), [`find`](crate::Session::find),
//! [`get_many`](crate::Session::get_many), [`select`](crate::Session::select)) apply access
//! policies; [`load`](crate::Session::load), [`first`](crate::Session::first) and
//! [`count`](crate::Session::count) run any diesel query raw.
//!
//! ## Writing and reading by key
//!
//! ```
//! use custodian::prelude::*;
//!
//! #[entity(table = "controls")]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Control {
//!     #[column(primary_key, auto_increment)]
//!     pub id: i64,
//!     pub code: String,
//!     pub owner: Option<String>,
//! }
//!
//! # fn main() -> custodian::Result<()> {
//! let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
//! let db = custodian::open(config)?.acting_as(custodian::Principal::new("alice"));
//! db.create_table::<Control>()?;
//! let mut s = db.session()?;
//!
//! // insert returns the row as stored, with the key the database assigned.
//! let mut c = s.insert(Control { id: 0, code: "AC-1".into(), owner: None })?;
//! assert!(c.id > 0);
//!
//! // get: the row or Error::NotFound; find: Option.
//! assert_eq!(s.get::<Control>(&c.id)?, c);
//! assert!(s.find::<Control>(&(c.id + 100))?.is_none());
//! assert!(matches!(s.get::<Control>(&(c.id + 100)), Err(custodian::Error::NotFound { .. })));
//!
//! // update writes every non-key column of the row with this key.
//! c.owner = Some("alice".into());
//! s.update(&mut c)?;
//! assert_eq!(s.get::<Control>(&c.id)?.owner.as_deref(), Some("alice"));
//!
//! // delete by value or by key; a missing row is Error::NotFound.
//! s.delete(&c)?;
//! assert!(s.find::<Control>(&c.id)?.is_none());
//! assert!(matches!(s.delete_by_key::<Control>(&c.id), Err(custodian::Error::NotFound { .. })));
//! # Ok(()) }
//! ```
//!
//! ## Queries, bulk writes and transactions
//!
//! ```
//! use custodian::prelude::*;
//!
//! #[entity(table = "controls")]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct Control {
//!     #[column(primary_key, auto_increment)]
//!     pub id: i64,
//!     pub code: String,
//!     pub owner: Option<String>,
//! }
//!
//! # fn main() -> custodian::Result<()> {
//! let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
//! let db = custodian::open(config)?.acting_as(custodian::Principal::new("alice"));
//! db.create_table::<Control>()?;
//! let mut s = db.session()?;
//!
//! // Bulk writes are all or nothing.
//! let mut rows: Vec<Control> = ["AC-1", "AC-2", "AC-3"]
//!     .iter()
//!     .map(|code| Control { id: 0, code: code.to_string(), owner: None })
//!     .collect();
//! assert_eq!(s.insert_many(&mut rows)?, 3);
//!
//! // select: entities through a diesel query (access policies apply).
//! let mut all: Vec<Control> = s.select(Control::query().order(controls::code))?;
//! assert_eq!(all.len(), 3);
//! for c in &mut all {
//!     c.owner = Some("bob".into());
//! }
//! assert_eq!(s.update_many(&mut all)?, 3);
//! let owned = s.count(controls::table.filter(controls::owner.eq("bob")).count())?;
//! assert_eq!(owned, 3);
//!
//! // A transaction commits on Ok and rolls back on Err; a nested one is a savepoint.
//! let failed: custodian::Result<()> = s.transaction(|tx| {
//!     tx.delete_many(&all)?;
//!     Err(custodian::Error::integrity(custodian::IntegrityKind::Application, "changed my mind"))
//! });
//! assert!(failed.is_err());
//! assert_eq!(s.count(controls::table.count())?, 3); // nothing was deleted
//!
//! s.transaction(|tx| {
//!     tx.delete(&all[0])?;
//!     let inner: custodian::Result<()> = tx.transaction(|sp| {
//!         sp.delete(&all[1])?;
//!         Err(custodian::Error::integrity(
//!             custodian::IntegrityKind::Application,
//!             "undo the savepoint only",
//!         ))
//!     });
//!     assert!(inner.is_err());
//!     Ok(())
//! })?;
//! let codes: Vec<String> = s.load(controls::table.select(controls::code).order(controls::code))?;
//! assert_eq!(codes, ["AC-2", "AC-3"]);
//! drop(s);
//!
//! // Db::transaction checks out a session of its own (drop yours first on sqlite::memory:,
//! // which has a single connection).
//! let left = db.transaction(|tx| tx.get_many::<Control>(&[all[1].id, all[2].id]))?;
//! assert_eq!(left.len(), 2);
//! # Ok(()) }
//! ```
//!
//! ## Set-based updates and deletes
//!
//! [`update_where`](crate::Session::update_where) changes every row a diesel filter matches
//! with a changeset in diesel's own DSL, computed by the database (`balance = balance + 5`:
//! no read-modify-write, so no `SERIALIZABLE` and no retries), and
//! [`delete_where`](crate::Session::delete_where) deletes them (soft-delete entities get
//! `deleted_at`). Both stay on the write path: the role is checked and the principal's tenant
//! scope is part of the filter, the rows are locked and read first, `updated_at` and
//! `version` are maintained, every row as updated must pass the entity's validators, and each
//! row gets one audit record with its true before and after images, all in one transaction.
//!
//! ```
//! use custodian::prelude::*;
//!
//! #[entity(table = "accounts")]
//! #[derive(Debug, Clone, PartialEq, validator::Validate)]
//! pub struct Account {
//!     #[column(primary_key)]
//!     pub id: i64,
//!     pub owner: String,
//!     #[validate(range(min = 0))]
//!     pub balance: i64,
//!     #[column(version)]
//!     pub version: i64,
//!     #[column(deleted_at)]
//!     pub closed_at: Option<chrono::NaiveDateTime>,
//! }
//!
//! # fn main() -> custodian::Result<()> {
//! let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
//! let db = custodian::open(config)?.acting_as(custodian::Principal::new("teller"));
//! db.create_table::<Account>()?;
//! let mut s = db.session()?;
//! for (id, owner) in [(1, "ann"), (2, "ann"), (3, "bob")] {
//!     let row = Account { id, owner: owner.into(), balance: 100, version: 0, closed_at: None };
//!     s.insert(row)?;
//! }
//!
//! // A transfer at the default isolation level: two statements, no read-modify-write.
//! s.transaction(|tx| {
//!     tx.update_where::<Account>(accounts::id.eq(1), accounts::balance.eq(accounts::balance - 30))?;
//!     tx.update_where::<Account>(accounts::id.eq(3), accounts::balance.eq(accounts::balance + 30))?;
//!     Ok(())
//! })?;
//! assert_eq!(s.get::<Account>(&1)?.balance, 70);
//! assert_eq!(s.get::<Account>(&1)?.version, 2); // bumped on every updated row
//!
//! // Every row the filter matches; the count of rows updated comes back.
//! let n = s.update_where::<Account>(
//!     accounts::owner.eq("ann"),
//!     accounts::balance.eq(accounts::balance + 1),
//! )?;
//! assert_eq!(n, 2);
//!
//! // A row that fails the validators as updated rolls every row back.
//! let err = s
//!     .update_where::<Account>(accounts::id.ge(1), accounts::balance.eq(accounts::balance - 120))
//!     .unwrap_err();
//! assert!(matches!(err, custodian::Error::Validation(_)));
//! assert_eq!(s.get::<Account>(&2)?.balance, 101);
//!
//! // One audit record per row, with the row as it was and as it became.
//! let history = s.history::<Account>(&2)?;
//! assert_eq!(history.len(), 2); // the insert and the set update
//!
//! // Soft-delete entities are marked deleted; only live rows match.
//! assert_eq!(s.delete_where::<Account>(accounts::owner.eq("ann"))?, 2);
//! assert_eq!(s.delete_where::<Account>(accounts::owner.eq("ann"))?, 0);
//! assert_eq!(s.deleted::<Account>()?.len(), 2);
//! drop(s);
//! assert!(db.verify_audit(None)?.is_intact());
//! # Ok(()) }
//! ```
