//! SQLite: connection set-up (WAL, busy timeout, foreign keys, secure delete), `BEGIN` / `BEGIN IMMEDIATE`,
//! result-code-based error classification (busy and locked are retryable), DDL.

use crate::classify::{self, Cause, Refinement};
use crate::ddl::{self, DdlDialect};
use crate::rebuild;
use crate::wrong_backend;
use custodian_core::migrate::{ForeignKeyDef, SchemaChange, TableDef};
use custodian_core::{
    AnyConnection, Backend, BackendKind, ColumnKind, ConstraintKind, DatabaseUrl, EntityMeta,
    Error, LiveColumn, SessionConfig, TxOptions,
};
use diesel::connection::{AnsiTransactionManager, SimpleConnection};
use diesel::result::DatabaseErrorKind;
use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, QueryResult, RunQueryDsl};
use std::time::Duration;

/// The SQLite backend (`sqlite://path`, `sqlite:path`, `sqlite::memory:`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

/// The connection as SQLite's own (a diesel error when it is another engine's).
pub(crate) fn lite(conn: &mut AnyConnection) -> QueryResult<&mut diesel::SqliteConnection> {
    match conn {
        AnyConnection::Sqlite(c) => Ok(c),
        #[allow(unreachable_patterns)]
        other => Err(wrong_backend("SQLite", other)),
    }
}

/// The file path (or `:memory:`) of an SQLite URL.
pub fn path_of(url: &str) -> &str {
    match url {
        "sqlite::memory:" | "sqlite://:memory:" => ":memory:",
        _ => {
            let rest = url.strip_prefix("sqlite:").unwrap_or(url);
            rest.strip_prefix("//").unwrap_or(rest)
        }
    }
}

impl Backend for Sqlite {
    fn rewrite_table_storage(&self, conn: &mut AnyConnection, _table: &str) -> QueryResult<()> {
        // secure_delete (set on every connection) already zeroed the row in the file; copy the
        // write-ahead log into it and truncate the log, so no older frame keeps the row.
        lite(conn)?.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    fn backup(&self) -> &'static dyn custodian_core::backend::BackupDialect {
        &crate::backup::sqlite::SqliteBackup
    }

    fn explain_prefix(&self) -> &'static str {
        "EXPLAIN QUERY PLAN "
    }

    fn filtered_scans(&self, plan: &str, sql: &str) -> Vec<custodian_core::observe::FilteredScan> {
        crate::scans::sqlite::filtered_scans(plan, sql)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["sqlite"]
    }

    fn establish(&self, url: &DatabaseUrl) -> Result<AnyConnection, Error> {
        diesel::SqliteConnection::establish(path_of(url.expose()))
            .map(AnyConnection::Sqlite)
            .map_err(|e| classify::connection_error(url, e))
    }

    fn prepare(&self, conn: &mut AnyConnection, s: &SessionConfig) -> QueryResult<()> {
        let c = lite(conn)?;
        c.batch_execute(&format!("PRAGMA busy_timeout = {}", s.busy_timeout_ms))?;
        // secure_delete: deleted rows are overwritten with zeros in the file, so an erased
        // subject's wrapped data key (crypto-shredding) is not left readable in free space.
        c.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA secure_delete = ON",
        )
    }

    fn ping(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        // diesel's own check (a cached `SELECT 1`), as on a diesel pool.
        diesel::r2d2::R2D2Connection::ping(lite(conn)?)
    }

    fn begin(&self, conn: &mut AnyConnection, o: &TxOptions) -> QueryResult<()> {
        // SQLite transactions are always serializable; IMMEDIATE takes the write lock up front.
        // Read-only is enforced with `query_only`, switched off again when the transaction ends.
        let c = lite(conn)?;
        if o.read_only {
            c.batch_execute("PRAGMA query_only = 1")?;
        }
        // A read-only transaction takes no write lock (SQLite refuses IMMEDIATE under
        // `query_only`).
        let sql = if o.immediate && !o.read_only {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        AnsiTransactionManager::begin_transaction_sql(c, sql)
    }

    fn set_transaction_timeout(&self, _: &mut AnyConnection, _: Duration) -> QueryResult<()> {
        // No statement timeout in SQLite: the deadline is checked between statements.
        Ok(())
    }

    fn reset_after_transaction(
        &self,
        conn: &mut AnyConnection,
        _: &SessionConfig,
    ) -> QueryResult<()> {
        lite(conn)?.batch_execute("PRAGMA query_only = 0")
    }

    fn last_insert_id(&self, conn: &mut AnyConnection) -> QueryResult<i64> {
        // A declared SQL function (not a literal), so diesel caches the prepared statement.
        diesel::define_sql_function! { fn last_insert_rowid() -> diesel::sql_types::BigInt; }
        diesel::select(last_insert_rowid()).get_result(lite(conn)?)
    }

    fn classify(&self, err: diesel::result::Error) -> Error {
        classify::classify(BackendKind::Sqlite, err, |kind, info| {
            let m = info.message();
            let (code, cause) = match kind {
                DatabaseErrorKind::UniqueViolation => ("SQLITE_CONSTRAINT_UNIQUE", None),
                DatabaseErrorKind::ForeignKeyViolation => ("SQLITE_CONSTRAINT_FOREIGNKEY", None),
                DatabaseErrorKind::NotNullViolation => ("SQLITE_CONSTRAINT_NOTNULL", None),
                DatabaseErrorKind::CheckViolation => ("SQLITE_CONSTRAINT_CHECK", None),
                _ if m.contains("FOREIGN KEY constraint failed") => {
                    ("SQLITE_CONSTRAINT_FOREIGNKEY", Some(Cause::Constraint))
                }
                _ if m.to_ascii_lowercase().contains("database is locked") => {
                    ("SQLITE_BUSY", Some(Cause::Serialization))
                }
                _ if m.to_ascii_lowercase().contains("database table is locked") => {
                    ("SQLITE_LOCKED", Some(Cause::Serialization))
                }
                _ => ("", None),
            };
            // "UNIQUE constraint failed: table.column" (several columns are comma-separated).
            let target = m.split_once("constraint failed: ").map(|(_, t)| t);
            let (table, column) = match target.and_then(|t| t.split(", ").next()?.split_once('.')) {
                Some((t, c)) => (Some(t.to_string()), Some(c.to_string())),
                None => (None, None),
            };
            Refinement {
                code: (!code.is_empty()).then(|| code.to_string()),
                column,
                table,
                cause,
                kind: (code == "SQLITE_CONSTRAINT_FOREIGNKEY")
                    .then_some(ConstraintKind::ForeignKey),
                ..Refinement::default()
            }
        })
    }

    fn create_table_sql(&self, meta: &EntityMeta) -> Vec<String> {
        ddl::create_table(&LiteDdl, &TableDef::from_meta(meta))
    }

    fn drop_table_sql(&self, meta: &EntityMeta) -> String {
        ddl::drop_table(&LiteDdl, &TableDef::from_meta(meta))
    }

    fn schema_change_sql(&self, change: &SchemaChange) -> Vec<String> {
        rebuild::change_sql(&LiteDdl, change)
    }

    fn transactional_ddl(&self) -> bool {
        true
    }

    fn before_migrations(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        lite(conn)?.batch_execute("PRAGMA foreign_keys = OFF")
    }

    fn foreign_key_violations(&self, conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
        #[derive(diesel::QueryableByName)]
        struct Violation {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let rows: Vec<Violation> = diesel::sql_query(
            "SELECT \"table\" || ' row ' || COALESCE(rowid, '?') || ' references ' || parent \
             AS v FROM pragma_foreign_key_check LIMIT 10",
        )
        .load(lite(conn)?)?;
        Ok(rows.into_iter().map(|r| r.v).collect())
    }

    fn after_migrations(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        lite(conn)?.batch_execute("PRAGMA foreign_keys = ON")
    }

    fn live_columns(
        &self,
        conn: &mut AnyConnection,
        meta: &EntityMeta,
    ) -> QueryResult<Option<Vec<LiveColumn>>> {
        // A primary-key column never holds NULL (INTEGER PRIMARY KEY is the rowid) even when
        // the table does not say NOT NULL.
        let rows = diesel::sql_query(
            "SELECT name, type AS data_type, \
             CASE WHEN \"notnull\" = 0 AND pk = 0 THEN 'YES' ELSE 'NO' END AS nullable \
             FROM pragma_table_info(?, COALESCE(?, 'main')) ORDER BY cid",
        )
        .bind::<Text, _>(meta.table)
        .bind::<Nullable<Text>, _>(meta.schema)
        .load(lite(conn)?)?;
        Ok(ddl::live_columns(rows))
    }

    fn index_leading_columns(
        &self,
        conn: &mut AnyConnection,
        schema: Option<&str>,
        table: &str,
    ) -> QueryResult<Vec<String>> {
        // The rowid key (`INTEGER PRIMARY KEY`) is in no index list: the first primary-key
        // column counts as indexed.
        let rows: Vec<ddl::NameRow> = diesel::sql_query(
            "SELECT ii.name AS name \
             FROM pragma_index_list(?1, COALESCE(?2, 'main')) AS il, \
             pragma_index_info(il.name, COALESCE(?2, 'main')) AS ii WHERE ii.seqno = 0 \
             UNION SELECT name FROM pragma_table_info(?1, COALESCE(?2, 'main')) WHERE pk = 1",
        )
        .bind::<Text, _>(table)
        .bind::<Nullable<Text>, _>(schema)
        .load(lite(conn)?)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn type_compatible(&self, kind: ColumnKind, live_type: &str) -> bool {
        // SQLite's type affinity rules (section 3.1 of "Datatypes In SQLite").
        let t = live_type.to_ascii_uppercase();
        let integer = t.contains("INT");
        let text = !integer && (t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT"));
        let blob = !integer && !text && (t.is_empty() || t.contains("BLOB"));
        let real = !integer
            && !text
            && !blob
            && (t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB"));
        let numeric = !integer && !text && !blob && !real;
        match kind {
            ColumnKind::SmallInt | ColumnKind::Integer | ColumnKind::BigInt => integer || numeric,
            ColumnKind::Bool => integer || numeric,
            ColumnKind::Float | ColumnKind::Double => real || numeric,
            ColumnKind::Binary => blob,
            ColumnKind::Date | ColumnKind::Timestamp => {
                text || t.contains("DATE") || t.contains("TIME")
            }
            ColumnKind::Text
            | ColumnKind::Uuid
            | ColumnKind::Json
            | ColumnKind::Decimal
            | ColumnKind::Enum => text,
            // A kind added later: no opinion.
            _ => true,
        }
    }

    fn max_bind_params(&self) -> usize {
        // SQLITE_MAX_VARIABLE_NUMBER of the bundled library is 32 766.
        32_000
    }
}

struct LiteDdl;

impl DdlDialect for LiteDdl {
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
    fn column_type(&self, kind: ColumnKind, _indexed: bool) -> &'static str {
        match kind {
            ColumnKind::SmallInt | ColumnKind::Integer | ColumnKind::BigInt => "INTEGER",
            ColumnKind::Float | ColumnKind::Double => "REAL",
            ColumnKind::Bool => "BOOLEAN",
            ColumnKind::Binary => "BLOB",
            _ => "TEXT",
        }
    }
    fn auto_increment_column(&self, name: &str, _kind: ColumnKind) -> String {
        // Only this exact spelling makes the column an alias of the rowid.
        format!("{name} INTEGER PRIMARY KEY AUTOINCREMENT")
    }
    fn current_timestamp(&self) -> &'static str {
        "CURRENT_TIMESTAMP"
    }
    fn create_schema(&self, _schema: &str) -> Option<String> {
        // SQLite has no schemas: a schema name is an attached database, attached by the caller.
        None
    }
    fn referenced_table(&self, fk: &ForeignKeyDef) -> String {
        // A foreign key always refers to a table of the same database file.
        self.quote(&fk.table)
    }
    fn create_index(&self, table: &TableDef, name: &str, columns: &str) -> String {
        // The schema qualifies the index name; the table is named bare.
        format!(
            "CREATE INDEX {} ON {} ({columns})",
            ddl::qualified_as(self, table, name),
            self.quote(&table.table)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_urls() {
        assert_eq!(path_of("sqlite::memory:"), ":memory:");
        assert_eq!(path_of("sqlite:///tmp/a.db"), "/tmp/a.db");
        assert_eq!(path_of("sqlite://ledger.db"), "ledger.db");
        assert_eq!(path_of("sqlite:ledger.db"), "ledger.db");
    }
}
