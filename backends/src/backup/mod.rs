//! Backups per engine, behind core's [`BackupDialect`](custodian_core::backend::BackupDialect):
//! the dump tool each engine ships (PostgreSQL `pg_dump` joining an exported snapshot, MariaDB
//! `mariadb-dump` inside a read lock, SQLite `VACUUM INTO`), the catalog queries that list
//! tables and columns, and the SQL that reads rows in the canonical text form manifests hash.

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use custodian_core::Error;
use std::process::Command;

/// A catalog row: one table name.
#[derive(diesel::QueryableByName)]
#[allow(dead_code)]
pub(crate) struct TableRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub(crate) name: String,
}

/// Runs an engine's tool to completion; its standard error becomes the message on failure.
#[allow(dead_code)]
pub(crate) fn run_tool(mut command: Command, what: &str) -> Result<(), Error> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|e| {
        Error::config(
            "backup",
            format!("cannot run {program} ({what}): {e}; install the engine's client tools"),
        )
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::config(
        "backup",
        format!(
            "{program} ({what}) failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    ))
}

/// `name` as a quoted identifier with `quote` doubled inside.
#[allow(dead_code)]
pub(crate) fn quote_ident(name: &str, quote: char) -> String {
    let doubled = format!("{quote}{quote}");
    format!("{quote}{}{quote}", name.replace(quote, &doubled))
}
