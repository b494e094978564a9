//! SQLite backups: `VACUUM INTO` writes a consistent copy of the database file in one read
//! transaction, and the manifest is read from that copy, so both see the same data by
//! construction; restore copies the file into place.

use super::{quote_ident, RowSql, TableRow};
use crate::sqlite::lite;
use custodian_core::backend::{BackupDialect, Snapshot};
use custodian_core::{AnyConnection, DatabaseUrl, Error, LiveColumn};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, QueryResult, RunQueryDsl};
use std::path::Path;

/// SQLite's backup dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteBackup;

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config("backup", format!("cannot {what} {}: {e}", path.display()))
}

/// The canonical text of a column declared as `data_type`. Values are read by their storage
/// class, not their declaration: blobs as hex, timestamps (stored as text by custodian) with
/// their fraction padded to six digits.
fn canonical(column: &str, data_type: &str) -> String {
    let c = quote_ident(column, '"');
    let t = data_type.to_ascii_uppercase();
    if t.contains("TIMESTAMP") || t.contains("DATETIME") {
        return format!(
            "CASE WHEN typeof({c}) <> 'text' THEN CAST({c} AS TEXT) \
             WHEN instr({c}, '.') = 0 THEN replace({c}, 'T', ' ') || '.000000' \
             ELSE substr(replace({c}, 'T', ' ') || '000000', 1, instr({c}, '.') + 6) END"
        );
    }
    format!(
        "CASE typeof({c}) WHEN 'null' THEN NULL WHEN 'blob' THEN lower(hex({c})) \
         ELSE CAST({c} AS TEXT) END"
    )
}

/// A bound canonical text turned back into the storage class of a column declared as
/// `data_type` (SQLite's type affinity rules: blobs from hex, integers, reals, else text).
fn typed(_param: usize, data_type: &str) -> String {
    let t = data_type.to_ascii_uppercase();
    if t.contains("BLOB") || t.is_empty() {
        "unhex(?)"
    } else if t.contains("INT") || t.contains("BOOL") {
        "CAST(? AS INTEGER)"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "CAST(? AS REAL)"
    } else {
        "?"
    }
    .to_string()
}

fn array(values: &[String]) -> String {
    format!("json_array({})", values.join(", "))
}

/// SQLite's rows as canonical text and back.
const ROWS: RowSql = RowSql {
    quote: '"',
    canonical,
    array,
    typed,
};

impl BackupDialect for SqliteBackup {
    fn tool(&self) -> &'static str {
        "VACUUM INTO"
    }

    fn dump_file_name(&self) -> &'static str {
        "database.sqlite"
    }

    fn tables(&self, conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
        let rows: Vec<TableRow> = diesel::sql_query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .load(lite(conn)?)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn columns(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<Vec<LiveColumn>> {
        let rows = diesel::sql_query(
            "SELECT name, type AS data_type, \
             CASE WHEN \"notnull\" = 0 AND pk = 0 THEN 'YES' ELSE 'NO' END AS nullable \
             FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<Text, _>(table)
        .load(lite(conn)?)?;
        Ok(crate::ddl::live_columns(rows).unwrap_or_default())
    }

    fn canonical_rows_sql(&self, table: &str, columns: &[LiveColumn]) -> String {
        ROWS.select(table, columns)
    }

    fn import_sql(&self, table: &str, columns: &[LiveColumn], rows: usize) -> String {
        ROWS.insert(table, columns, rows)
    }

    fn begin_snapshot(&self, _conn: &mut AnyConnection) -> QueryResult<Snapshot> {
        Ok(Snapshot::FromCopy)
    }

    fn end_snapshot(&self, _conn: &mut AnyConnection) -> QueryResult<()> {
        Ok(())
    }

    fn dump(
        &self,
        url: &DatabaseUrl,
        _snapshot: &Snapshot,
        out: &Path,
    ) -> Result<Option<DatabaseUrl>, Error> {
        let source = crate::sqlite::path_of(url.expose());
        let target = out.display().to_string();
        let mut conn = diesel::SqliteConnection::establish(source)
            .map_err(|e| io_error("open", Path::new(source), e))?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = 10000; VACUUM INTO '{}'",
            target.replace('\'', "''")
        ))
        .map_err(|e| io_error("write", out, e))?;
        Ok(Some(DatabaseUrl::new(format!("sqlite://{target}"))))
    }

    fn restore(&self, url: &DatabaseUrl, from: &Path) -> Result<(), Error> {
        let target = Path::new(crate::sqlite::path_of(url.expose()));
        // The target has no tables (checked by the caller): replace its file and journals.
        for suffix in ["-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
        }
        let staged = target.with_extension("restoring");
        std::fs::copy(from, &staged).map_err(|e| io_error("copy to", &staged, e))?;
        std::fs::rename(&staged, target).map_err(|e| io_error("move into", target, e))
    }
}
