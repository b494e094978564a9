//! PostgreSQL backups: `pg_dump --snapshot` joins a snapshot exported by the manifest's own
//! repeatable-read transaction, so dump and manifest see the same committed data while
//! writers go on; `pg_restore` loads the dump in one transaction.

use super::{quote_ident, run_tool, RowSql, TableRow};
use crate::postgres::pg;
use custodian_core::backend::{BackupDialect, Snapshot};
use custodian_core::{AnyConnection, DatabaseUrl, Error, LiveColumn};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{QueryResult, RunQueryDsl};
use std::path::{Path, PathBuf};
use std::process::Command;

/// PostgreSQL's backup dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgBackup;

/// The directory of the newest client tools installed (`/usr/lib/postgresql/<major>/bin`,
/// Debian's layout; a newer `pg_dump` reads older servers), or `CUSTODIAN_PG_BIN`; `None`
/// means the tools on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CUSTODIAN_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

fn tool(name: &str) -> Command {
    match bin_dir() {
        Some(dir) => Command::new(dir.join(name)),
        None => Command::new(name),
    }
}

/// The canonical text of a column of PostgreSQL type `data_type`.
fn canonical(column: &str, data_type: &str) -> String {
    let c = quote_ident(column, '"');
    match data_type.to_ascii_lowercase().as_str() {
        "boolean" => format!("CASE WHEN {c} THEN '1' ELSE '0' END"),
        "bytea" => format!("encode({c}, 'hex')"),
        "date" => format!("to_char({c}, 'YYYY-MM-DD')"),
        "timestamp without time zone" | "timestamp with time zone" => {
            format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')")
        }
        _ => format!("{c}::text"),
    }
}

/// A bound canonical text turned back into PostgreSQL type `data_type`.
fn typed(param: usize, data_type: &str) -> String {
    let p = format!("${param}::text");
    match data_type.to_ascii_lowercase().as_str() {
        "boolean" => format!("({p} = '1')"),
        "bytea" => format!("decode({p}, 'hex')"),
        "character" | "character varying" | "text" => p,
        other => format!("CAST({p} AS {other})"),
    }
}

/// PostgreSQL's rows as canonical text and back.
const ROWS: RowSql = RowSql {
    quote: '"',
    canonical,
    array,
    typed,
};

/// The JSON array of `values` as text. `json_build_array` takes at most 100 arguments: one
/// array per 100 values, concatenated back into one.
fn array(values: &[String]) -> String {
    if values.len() <= 100 {
        format!("(json_build_array({}))::text", values.join(", "))
    } else {
        let parts: Vec<String> = values
            .chunks(100)
            .map(|c| format!("jsonb_build_array({})", c.join(", ")))
            .collect();
        format!("(({}))::text", parts.join(" || "))
    }
}

impl BackupDialect for PgBackup {
    fn tool(&self) -> &'static str {
        "pg_dump"
    }

    fn dump_file_name(&self) -> &'static str {
        "database.pgdump"
    }

    fn tables(&self, conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
        let rows: Vec<TableRow> = diesel::sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             ORDER BY table_name",
        )
        .load(pg(conn)?)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn columns(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<Vec<LiveColumn>> {
        let rows = diesel::sql_query(
            "SELECT column_name::text AS name, data_type::text AS data_type, \
             is_nullable::text AS nullable FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table)
        .load(pg(conn)?)?;
        Ok(crate::ddl::live_columns(rows).unwrap_or_default())
    }

    fn canonical_rows_sql(&self, table: &str, columns: &[LiveColumn]) -> String {
        ROWS.select(table, columns)
    }

    fn import_sql(&self, table: &str, columns: &[LiveColumn], rows: usize) -> String {
        ROWS.insert(table, columns, rows)
    }

    fn after_import(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<()> {
        // Every serial or identity column's sequence moves past the largest imported value.
        let rows: Vec<TableRow> = diesel::sql_query(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL",
        )
        .bind::<Text, _>(table)
        .load(pg(conn)?)?;
        for column in rows {
            let t = quote_ident(table, '"');
            let c = quote_ident(&column.name, '"');
            pg(conn)?.batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{}', '{}'), \
                 COALESCE((SELECT MAX({c}) FROM {t}), 0) + 1, false)",
                t.replace('\'', "''"),
                column.name.replace('\'', "''"),
            ))?;
        }
        Ok(())
    }

    fn begin_snapshot(&self, conn: &mut AnyConnection) -> QueryResult<Snapshot> {
        #[derive(diesel::QueryableByName)]
        struct Exported {
            #[diesel(sql_type = Text)]
            id: String,
        }
        let c = pg(conn)?;
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let row: Exported = diesel::sql_query("SELECT pg_export_snapshot() AS id").get_result(c)?;
        Ok(Snapshot::Exported(row.id))
    }

    fn end_snapshot(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        pg(conn)?.batch_execute("COMMIT")
    }

    fn dump(
        &self,
        url: &DatabaseUrl,
        snapshot: &Snapshot,
        out: &Path,
    ) -> Result<Option<DatabaseUrl>, Error> {
        let mut cmd = tool("pg_dump");
        cmd.args(["--format=custom", "--no-owner", "--no-privileges"]);
        if let Snapshot::Exported(id) = snapshot {
            cmd.arg(format!("--snapshot={id}"));
        }
        cmd.arg("--file").arg(out).arg("--dbname").arg(url.expose());
        run_tool(cmd, "dump").map_err(|e| scrub(url, e))?;
        Ok(None)
    }

    fn restore(&self, url: &DatabaseUrl, from: &Path) -> Result<(), Error> {
        let mut cmd = tool("pg_restore");
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
        ]);
        cmd.arg("--dbname").arg(url.expose()).arg(from);
        run_tool(cmd, "restore").map_err(|e| scrub(url, e))
    }
}

/// An error message without the URL's password.
fn scrub(url: &DatabaseUrl, e: Error) -> Error {
    match e {
        Error::Config { field, message } => Error::Config {
            field,
            message: url.scrub(&message),
        },
        other => other,
    }
}
