//! [`AnyConnection`]: one diesel connection type over PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! diesel's `MultiConnection` derive makes an enum that implements `diesel::Connection` for the
//! SQL the three backends share, with [`MultiBackend`] as its backend. Generated entity code and
//! hand-written diesel queries run on it unchanged; where a statement needs a backend's own
//! dialect (multi-row inserts), generated code matches on the variant with [`dispatch!`](crate::dispatch).

pub use self::generated::{AnyConnection, MultiBackend, MultiRawValue};

// diesel's derive emits public helper items without docs; they are documented by diesel.
#[allow(missing_docs)]
mod generated {
    /// A connection to any of the three supported databases.
    #[derive(diesel::MultiConnection)]
    pub enum AnyConnection {
        /// A PostgreSQL connection.
        Postgresql(diesel::PgConnection),
        /// A MySQL or MariaDB connection.
        Mysql(diesel::MysqlConnection),
        /// An SQLite connection.
        Sqlite(diesel::SqliteConnection),
    }
}

impl std::fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyConnection::Postgresql(_) => "AnyConnection::Postgresql",
            AnyConnection::Mysql(_) => "AnyConnection::Mysql",
            AnyConnection::Sqlite(_) => "AnyConnection::Sqlite",
        })
    }
}

/// Runs the same expression on the concrete connection inside an [`AnyConnection`].
///
/// `dispatch!(conn, c => expr)` expands to a `match` with one arm per backend, binding `c` to the
/// `PgConnection`, `MysqlConnection` or `SqliteConnection`. Used where diesel's multi-backend
/// falls short (multi-row `INSERT`), so the statement is typed against each backend.
#[macro_export]
macro_rules! dispatch {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::AnyConnection::Postgresql($c) => $body,
            $crate::AnyConnection::Mysql($c) => $body,
            $crate::AnyConnection::Sqlite($c) => $body,
        }
    };
}
