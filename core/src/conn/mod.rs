//! [`AnyConnection`]: one diesel connection type over the databases this build supports.
//!
//! diesel's `MultiConnection` derive makes an enum that implements `diesel::Connection` for the
//! SQL the backends share, with [`MultiBackend`] as its backend. Each variant exists only with
//! its cargo feature (`postgres`, `mysql`, `sqlite`), so a build links only the client libraries
//! it uses. Generated entity code and hand-written diesel queries run on it unchanged; where a
//! statement must be typed against one backend (multi-row `INSERT`, `RETURNING`), the runners of
//! [`run`] pick the variant, so neither core's write path nor generated code names one.

mod commit;
mod returning;
pub mod run;

pub use self::commit::commit_after;
pub use self::generated::{AnyConnection, MultiBackend};
pub use self::returning::Returning;

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!(
    "custodian needs at least one database: enable the `sqlite` (default), `postgres` or \
     `mysql` feature of the `custodian` dependency"
);

// diesel's derive emits public helper items without docs; they are documented by diesel.
// It sees the enum after `cfg` stripping, so a variant switched off is not generated at all.
#[allow(missing_docs)]
mod generated {
    /// A connection to one of the databases this build supports.
    #[derive(diesel::MultiConnection)]
    pub enum AnyConnection {
        /// A PostgreSQL connection (feature `postgres`).
        #[cfg(feature = "postgres")]
        Postgresql(diesel::PgConnection),
        /// A MySQL or MariaDB connection (feature `mysql`).
        #[cfg(feature = "mysql")]
        Mysql(diesel::MysqlConnection),
        /// An SQLite connection (feature `sqlite`).
        #[cfg(feature = "sqlite")]
        Sqlite(diesel::SqliteConnection),
    }
}

impl std::fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(_) => "AnyConnection::Postgresql",
            #[cfg(feature = "mysql")]
            AnyConnection::Mysql(_) => "AnyConnection::Mysql",
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(_) => "AnyConnection::Sqlite",
        })
    }
}
