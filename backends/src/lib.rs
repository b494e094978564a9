//! # custodian-backends
//!
//! What differs between PostgreSQL, MySQL/MariaDB and SQLite, behind core's
//! [`Backend`] seam: one unit struct per database (`Postgres`, `Mysql`, `Sqlite`) that opens
//! and prepares connections, begins transactions with the requested isolation, classifies the
//! database's errors and writes DDL in its dialect. Each exists with its cargo feature
//! (`postgres`, `mysql`, `sqlite`; `sqlite` by default), and [`ALL`] lists those this build has.
//! Shared pieces live in [`ddl`] and [`classify`]; migration steps are written by [`alter`]
//! (PostgreSQL, MariaDB) and [`rebuild`] (SQLite), which need no driver.
#![deny(missing_docs)]

pub mod alter;
pub mod backup;
pub mod classify;
pub mod ddl;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod explain;
#[cfg(feature = "postgres")]
mod inline_literal;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rebuild;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod replication;
mod scans;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server_session;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod two_phase;

#[cfg(feature = "mysql")]
pub use mysql::Mysql;
#[cfg(feature = "postgres")]
pub use postgres::Postgres;
#[cfg(feature = "sqlite")]
pub use sqlite::Sqlite;

use custodian_core::{AnyConnection, Backend};

/// Every backend this build has (one per enabled feature), for
/// [`Db::open`](custodian_core::Db::open) and migration generation.
pub const ALL: &[&'static dyn Backend] = &BUILT;

#[cfg(feature = "postgres")]
const POSTGRES: Option<&'static dyn Backend> = Some(&Postgres);
#[cfg(not(feature = "postgres"))]
const POSTGRES: Option<&'static dyn Backend> = None;
#[cfg(feature = "mysql")]
const MYSQL: Option<&'static dyn Backend> = Some(&Mysql);
#[cfg(not(feature = "mysql"))]
const MYSQL: Option<&'static dyn Backend> = None;
#[cfg(feature = "sqlite")]
const SQLITE: Option<&'static dyn Backend> = Some(&Sqlite);
#[cfg(not(feature = "sqlite"))]
const SQLITE: Option<&'static dyn Backend> = None;

const CANDIDATES: [Option<&'static dyn Backend>; 3] = [POSTGRES, MYSQL, SQLITE];
const COUNT: usize =
    POSTGRES.is_some() as usize + MYSQL.is_some() as usize + SQLITE.is_some() as usize;
/// The enabled backends in the order PostgreSQL, MySQL, SQLite (custodian-core refuses to
/// build without one, so `COUNT` is at least 1).
const BUILT: [&'static dyn Backend; COUNT] = {
    let mut first = None;
    let mut i = 0;
    while i < CANDIDATES.len() {
        if first.is_none() {
            first = CANDIDATES[i];
        }
        i += 1;
    }
    let Some(first) = first else {
        panic!("custodian-backends needs one of the features `postgres`, `mysql`, `sqlite`")
    };
    let mut built = [first; COUNT];
    let (mut i, mut n) = (0, 0);
    while i < CANDIDATES.len() {
        if let Some(b) = CANDIDATES[i] {
            built[n] = b;
            n += 1;
        }
        i += 1;
    }
    built
};

/// The error for a connection of another backend handed to a backend's method.
#[allow(dead_code)]
pub(crate) fn wrong_backend(expected: &str, conn: &AnyConnection) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("{expected} backend used with {conn:?}").into(),
    )
}
