//! Backups per engine, behind core's [`BackupDialect`](custodian_core::backend::BackupDialect):
//! the dump tool each engine ships (PostgreSQL `pg_dump` joining an exported snapshot, MariaDB
//! `mariadb-dump` inside a read lock, SQLite `VACUUM INTO`), the catalog queries that list
//! tables and columns, and the SQL that reads rows in the canonical text form manifests hash
//! (`RowSql`: one shape, per-engine expressions).

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use custodian_core::{Error, LiveColumn};
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

/// The per-engine parts of the SQL that reads a table's rows as canonical text and writes them
/// back; [`RowSql::select`] and [`RowSql::insert`] put them together alike on every engine.
#[allow(dead_code)]
pub(crate) struct RowSql {
    /// The identifier quote.
    pub(crate) quote: char,
    /// The canonical text of a column, from its name and declared type.
    pub(crate) canonical: fn(column: &str, data_type: &str) -> String,
    /// The text of a JSON array of canonical texts.
    pub(crate) array: fn(values: &[String]) -> String,
    /// A bound canonical text turned back into a column's type, from the parameter's number
    /// (from 1, across the whole statement) and the declared type.
    pub(crate) typed: fn(param: usize, data_type: &str) -> String,
}

#[allow(dead_code)]
impl RowSql {
    /// [`BackupDialect::canonical_rows_sql`](custodian_core::backend::BackupDialect::canonical_rows_sql):
    /// per row of `table`, the JSON array of `columns`' canonical texts, in a column `row`.
    pub(crate) fn select(&self, table: &str, columns: &[LiveColumn]) -> String {
        let values: Vec<String> = columns
            .iter()
            .map(|c| (self.canonical)(&c.name, &c.data_type))
            .collect();
        format!(
            "SELECT {} AS {} FROM {}",
            (self.array)(&values),
            quote_ident("row", self.quote),
            quote_ident(table, self.quote)
        )
    }

    /// [`BackupDialect::import_sql`](custodian_core::backend::BackupDialect::import_sql):
    /// inserts `rows` rows into `columns` of `table`, one bound canonical text per value.
    pub(crate) fn insert(&self, table: &str, columns: &[LiveColumn], rows: usize) -> String {
        let names: Vec<String> = columns
            .iter()
            .map(|c| quote_ident(&c.name, self.quote))
            .collect();
        let mut param = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        param += 1;
                        (self.typed)(param, &c.data_type)
                    })
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote_ident(table, self.quote),
            names.join(", "),
            tuples.join(", ")
        )
    }
}
