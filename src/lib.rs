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
//! let db = custodian::connect("sqlite::memory:")?.acting_as(custodian::Principal::new("alice"));
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
/// (`mariadb://…`), `sqlite://path` or `sqlite::memory:`.
pub fn connect(url: &str) -> Result<Db> {
    open(DatabaseConfig::from_url(url)?)
}

/// Opens a database from its configuration.
pub fn open(config: DatabaseConfig) -> Result<Db> {
    Db::open(config, custodian_backends::ALL)
}

/// Opens the database called `name` in a configuration.
pub fn open_named(config: &Config, name: &str) -> Result<Db> {
    open(config.database(name)?.clone())
}

/// What entity code usually needs: the macros, `Db`, `Session`, errors, and diesel's prelude.
pub mod prelude {
    pub use crate::diesel::prelude::*;
    pub use crate::{entity, Db, DbEnum, Entity, Error, IsolationLevel, Session, TxOptions};
}
