//! MariaDB backups: `mariadb-dump --single-transaction` run while the manifest's connection
//! holds `FLUSH TABLES WITH READ LOCK` and reads its own consistent snapshot. The dump tool
//! cannot join another connection's snapshot, so writers wait (readers do not) from the
//! start of the backup until the dump and the manifest are both read; `mariadb` loads it back.

use super::{quote_ident, run_tool, RowSql, TableRow};
use crate::mysql::my;
use custodian_core::backend::{BackupDialect, Snapshot};
use custodian_core::{AnyConnection, DatabaseUrl, Error, LiveColumn};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{QueryResult, RunQueryDsl};
use std::path::Path;
use std::process::{Command, Stdio};

/// MariaDB's backup dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct MariaBackup;

/// A client tool with the URL's host, port, user and password (in `MYSQL_PWD`, never on the
/// command line), and the database name.
fn client(program: &str, url: &DatabaseUrl) -> Result<(Command, String), Error> {
    let bad = |why: &str| Error::config("url", format!("{}: {why}", url.redacted()));
    let raw = url.expose();
    let rest = raw
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| bad("not a URL"))?;
    let (auth, location) = match rest.rsplit_once('@') {
        Some((a, l)) => (Some(a), l),
        None => (None, rest),
    };
    let location = location.split(['?', '#']).next().unwrap_or_default();
    let (host_port, database) = location
        .split_once('/')
        .ok_or_else(|| bad("no database name"))?;
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (host_port, "3306"),
    };
    let mut cmd = Command::new(program);
    cmd.arg(format!(
        "--host={}",
        if host.is_empty() { "localhost" } else { host }
    ))
    .arg(format!("--port={port}"))
    .arg("--protocol=tcp")
    .arg("--default-character-set=utf8mb4");
    if let Some(auth) = auth {
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (auth, None),
        };
        cmd.arg(format!("--user={}", decode(user)));
        if let Some(p) = password {
            cmd.env("MYSQL_PWD", decode(p));
        }
    }
    Ok((cmd, decode(database)))
}

/// Percent-decoding of a URL part.
fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical text of a column of MariaDB type `data_type`.
fn canonical(column: &str, data_type: &str) -> String {
    let c = quote_ident(column, '`');
    match data_type.to_ascii_lowercase().as_str() {
        "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => {
            format!("LOWER(HEX({c}))")
        }
        "date" => format!("DATE_FORMAT({c}, '%Y-%m-%d')"),
        "datetime" | "timestamp" => format!("DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"),
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "float" | "double"
        | "decimal" => format!("CAST({c} AS CHAR)"),
        _ => c,
    }
}

/// A bound canonical text turned back into MariaDB type `data_type`.
fn typed(_param: usize, data_type: &str) -> String {
    match data_type.to_ascii_lowercase().as_str() {
        "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => "UNHEX(?)",
        _ => "?",
    }
    .to_string()
}

/// MariaDB's rows as canonical text and back.
const ROWS: RowSql = RowSql {
    quote: '`',
    canonical,
    array,
    typed,
};

fn array(values: &[String]) -> String {
    format!("CAST(JSON_ARRAY({}) AS CHAR)", values.join(", "))
}

impl BackupDialect for MariaBackup {
    fn tool(&self) -> &'static str {
        "mariadb-dump"
    }

    fn dump_file_name(&self) -> &'static str {
        "database.sql"
    }

    fn tables(&self, conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
        let rows: Vec<TableRow> = diesel::sql_query(
            "SELECT CAST(TABLE_NAME AS CHAR) AS name FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' \
             ORDER BY TABLE_NAME",
        )
        .load(my(conn)?)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn columns(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<Vec<LiveColumn>> {
        let rows = diesel::sql_query(
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(DATA_TYPE AS CHAR) AS data_type, \
             CAST(IS_NULLABLE AS CHAR) AS nullable FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind::<Text, _>(table)
        .load(my(conn)?)?;
        Ok(crate::ddl::live_columns(rows).unwrap_or_default())
    }

    fn canonical_rows_sql(&self, table: &str, columns: &[LiveColumn]) -> String {
        ROWS.select(table, columns)
    }

    fn import_sql(&self, table: &str, columns: &[LiveColumn], rows: usize) -> String {
        ROWS.insert(table, columns, rows)
    }

    fn begin_snapshot(&self, conn: &mut AnyConnection) -> QueryResult<Snapshot> {
        let c = my(conn)?;
        c.batch_execute("FLUSH TABLES WITH READ LOCK")?;
        let started = c.batch_execute(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
             START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        );
        if let Err(e) = started {
            let _ = c.batch_execute("UNLOCK TABLES");
            return Err(e);
        }
        Ok(Snapshot::WritersHeld)
    }

    fn end_snapshot(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        let c = my(conn)?;
        let committed = c.batch_execute("COMMIT");
        c.batch_execute("UNLOCK TABLES")?;
        committed
    }

    fn dump(
        &self,
        url: &DatabaseUrl,
        _snapshot: &Snapshot,
        out: &Path,
    ) -> Result<Option<DatabaseUrl>, Error> {
        let (mut cmd, database) = client("mariadb-dump", url)?;
        cmd.args([
            "--single-transaction",
            "--skip-lock-tables",
            "--hex-blob",
            "--skip-comments",
            "--no-tablespaces",
        ])
        .arg(format!("--result-file={}", out.display()))
        .arg(&database);
        run_tool(cmd, "dump")?;
        Ok(None)
    }

    fn restore(&self, url: &DatabaseUrl, from: &Path) -> Result<(), Error> {
        let (mut cmd, database) = client("mariadb", url)?;
        let input = std::fs::File::open(from)
            .map_err(|e| Error::config("backup", format!("cannot read {}: {e}", from.display())))?;
        cmd.arg("--binary-mode")
            .arg(&database)
            .stdin(Stdio::from(input));
        run_tool(cmd, "restore")
    }
}
