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
//! backends of [`custodian_backends`].
//!
//! ## Cargo features
//!
//! One per database, so a build links only the client libraries it uses: `sqlite` (the
//! default; SQLite is compiled in, no system library), `postgres` (links libpq) and `mysql`
//! (MySQL and MariaDB; links libmariadb or libmysqlclient). [`backends::ALL`] holds the backends
//! of the build; a URL for one left out fails [`open`] with [`Error::Config`] naming the features.
//!
//! ## Where to read on
//!
//! - [`guide`]: one topic per module, each with an example that runs as a doctest:
//!   [sessions](guide::session) (`insert`, `get`, `find`, `select`, `update`, `delete`,
//!   transactions), [entity attributes](guide::entities),
//!   [relationships](guide::relationships), [validation](guide::validation),
//!   [locking, timestamps, soft delete, hooks](guide::lifecycle),
//!   [constraints, migrations, drift](guide::schema), [the audit trail](guide::audit),
//!   [access control](guide::access), [field encryption](guide::crypto).
//! - The [README](readme), whose Rust blocks are doctests too:
//!   [quick start](readme#quick-start), [concepts](readme#concepts),
//!   [entities](readme#entities), [column types](readme#column-types),
//!   [transactions](readme#transactions), [errors](readme#errors),
//!   [backup and recovery](readme#backup-and-recovery), [clusters](readme#clusters),
//!   [constraints, migrations and drift](readme#constraints-migrations-and-drift),
//!   [the audit trail](readme#the-audit-trail),
//!   [field encryption](readme#field-encryption-and-crypto-shredding),
//!   [access control](readme#access-control), [configuration](readme#configuration),
//!   [per-backend notes](readme#per-backend-notes).
//! - [`Session`] and [`Db`] for the API itself; [`entity`](macro@entity) for the attribute
//!   reference.
#![deny(missing_docs)]

// The public API, named item by item: modules whose items users name by path, then the types
// and functions at the crate root. Runtime internals (pool manager, statement runners, hooks
// runners, cascades) stay in custodian-core; generated code reaches what it needs through
// `__private`.
pub use custodian_core::{
    access, audit, backend, cache, cluster, config, coordinate, crypto, entity, error, health,
    migrate, observe, schema, session, sql_types, tx, validate, value,
};
pub use custodian_core::{
    stored, AccessControl, Action, Advice, AnyConnection, AuditContext, Backend, BackendKind,
    Balance, Balancer, BelongsTo, Check, ClusterConfig, ColumnKind, ColumnMeta, ColumnRole,
    ColumnValue, CommitOutcomeConfig, Config, ConstraintKind, Coordinator, Crypto, DatabaseConfig,
    DatabaseUrl, Db, DbEnum, DbError, Decimal, DecodeError, Drift, Entity, EntityMeta, EntityRules,
    Error, FieldError, ForeignKey, Galera, Hooks, HostRole, HostStatus, IndexMeta, IntegrityKind,
    IsolationLevel, LiveColumn, MultiBackend, PoolConfig, PoolStats, Principal, RefAction, Result,
    RetryPolicy, SchemaReport, Sealed, Session, SessionConfig, SetFilter, Stamp, TimeoutKind,
    TxOptions, ValidationErrors, WriteKind,
};
pub use custodian_derive::{entity, DbEnum};

pub mod backup;
pub mod cli;
pub mod guide;
#[cfg(feature = "prometheus")]
pub mod prometheus;

#[doc = include_str!("../README.md")]
pub mod readme {}

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
///
/// When the configuration turns on recovery at open ([`config::RecoveryConfig`], off by
/// default), the named coordinators' in-doubt branches on this database are resolved by their
/// log before the handle is returned ([`coordinate::recover_at_open`]); a failure of that
/// pass fails `open`.
pub fn open(mut config: DatabaseConfig) -> Result<Db> {
    config.apply_env(|var| std::env::var(var).ok())?;
    let db = Db::open(config, custodian_backends::ALL)?;
    coordinate::recover_at_open(&db, custodian_backends::ALL)?;
    Ok(db)
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

#[cfg(test)]
mod tests {
    /// The Rust block under the README's "Quick start" heading.
    fn readme_quick_start() -> &'static str {
        let readme = include_str!("../README.md");
        let section = &readme[readme
            .find("\n## Quick start\n")
            .expect("a Quick start section")..];
        let start = section.find("```rust\n").expect("a Rust block") + "```rust\n".len();
        let len = section[start..].find("\n```\n").expect("the block's end") + 1;
        &section[start..start + len]
    }

    #[test]
    fn the_quickstart_example_is_the_readme_quick_start() {
        assert_eq!(
            readme_quick_start(),
            include_str!("../examples/quickstart.rs"),
            "examples/quickstart.rs and the README's quick start differ"
        );
    }
}
