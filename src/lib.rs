//! # custodian
//!
//! Compile-time-checked entities on [diesel], with one API over PostgreSQL, MySQL/MariaDB and
//! SQLite, an r2d2 connection pool, managed transactions with retry, and a single write path
//! where validation and audit attach.
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
//! // Writes are audited, so a session acts for someone.
//! // A demo without an audit key: say so explicitly (production sets CUSTODIAN_AUDIT_KEY).
//! let config = custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed();
//! let db = custodian::open(config)?.acting_as(custodian::Principal::new("alice"));
//! db.create_table::<Control>()?;
//! let mut s = db.session()?;
//! let c = s.insert(Control { id: 0, code: "AC-1".into(), owner: None })?;
//! assert_eq!(s.get::<Control>(&c.id)?, c);
//! let open: Vec<Control> = s.load(Control::query().filter(controls::owner.is_null()))?;
//! assert_eq!(open.len(), 1);
//! # Ok(()) }
//! ```
//!
//! The crate re-exports [`custodian_core`] (runtime), the macros of `custodian-derive`, and the
//! backends of [`custodian_backends`]. See the README for concepts and configuration.
#![deny(missing_docs)]

pub use custodian_core::*;
pub use custodian_derive::{entity, DbEnum};

pub mod guide;

/// The database-specific backends.
pub use custodian_backends as backends;

#[doc(hidden)]
pub use custodian_core::private as __private;

/// diesel, re-exported so user code and generated code agree on its version.
pub use custodian_core::private::diesel;

/// Opens a database from a URL with default settings: `postgres://…`, `mysql://…`
/// (`mariadb://…`), `sqlite://path` or `sqlite::memory:`, then the environment's `CUSTODIAN_*`
/// settings, as [`open`] does (the URL given here is kept).
///
/// Audited writes need the audit key, usually from `CUSTODIAN_AUDIT_KEY`: without it they are
/// refused with [`Error::Config`] unless unkeyed seals were chosen explicitly
/// (`CUSTODIAN_AUDIT_UNKEYED=1`, or [`DatabaseConfig::audit_unkeyed`] with [`open`]).
pub fn connect(url: &str) -> Result<Db> {
    open(DatabaseConfig::from_url(url)?)
}

/// Opens a database from its configuration, after applying the environment's `CUSTODIAN_*`
/// settings to it ([`DatabaseConfig::apply_env`]: a variable that is set wins over the value in
/// `config`, as in [`Config::from_env`] and [`Config::from_file`]).
pub fn open(mut config: DatabaseConfig) -> Result<Db> {
    config.apply_env(|var| std::env::var(var).ok())?;
    Db::open(config, custodian_backends::ALL)
}

/// Opens the database called `name` in a configuration, with the environment applied as in
/// [`open`].
pub fn open_named(config: &Config, name: &str) -> Result<Db> {
    open(config.database(name)?.clone())
}

/// What entity code usually needs: the macros, `Db`, `Session`, errors, and diesel's prelude.
pub mod prelude {
    pub use crate::diesel::prelude::*;
    pub use crate::{entity, Db, DbEnum, Entity, Error, IsolationLevel, Session, TxOptions};
}
