//! # custodian-backends
//!
//! What differs between PostgreSQL, MySQL/MariaDB and SQLite, behind core's
//! [`Backend`] seam: one unit struct per database ([`Postgres`],
//! [`Mysql`], [`Sqlite`]) that opens and prepares connections, begins transactions with the
//! requested isolation, classifies the database's errors and writes DDL in its dialect.
//! Shared pieces live in [`ddl`] and [`classify`]; migration steps are written by [`alter`]
//! (PostgreSQL, MariaDB) and [`rebuild`] (SQLite).
#![deny(missing_docs)]

pub mod alter;
pub mod classify;
pub mod ddl;
pub mod mysql;
pub mod postgres;
pub mod rebuild;
pub mod sqlite;

pub use mysql::Mysql;
pub use postgres::Postgres;
pub use sqlite::Sqlite;

use custodian_core::Backend;

/// Every backend, for [`Db::open`](custodian_core::Db::open).
pub const ALL: &[&'static dyn Backend] = &[&Postgres, &Mysql, &Sqlite];
