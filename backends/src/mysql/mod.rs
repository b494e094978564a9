//! MySQL / MariaDB: connection set-up (strict SQL mode, utf8mb4, UTC), `SET TRANSACTION` +
//! `START TRANSACTION`, the replication and Galera queries behind the cluster seam. Error
//! classification by errno is in `errors`, DDL (InnoDB, binary collation so text compares as
//! on PostgreSQL and SQLite) in `dialect`.

use crate::alter;
use crate::classify;
use crate::ddl;
use crate::wrong_backend;
use custodian_core::migrate::{SchemaChange, TableDef};
use custodian_core::{
    AnyConnection, Backend, BackendKind, ColumnKind, DatabaseUrl, EntityMeta, Error, LiveColumn,
    SessionConfig, TxOptions,
};
use diesel::connection::{AnsiTransactionManager, SimpleConnection};
use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, QueryResult, RunQueryDsl};
use std::time::Duration;

mod dialect;
mod errors;
use dialect::MyDdl;

/// The MySQL / MariaDB backend (`mysql://`, `mariadb://`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mysql;

/// The connection as MariaDB's own (a diesel error when it is another engine's).
pub(crate) fn my(conn: &mut AnyConnection) -> QueryResult<&mut diesel::MysqlConnection> {
    match conn {
        AnyConnection::Mysql(c) => Ok(c),
        #[allow(unreachable_patterns)]
        other => Err(wrong_backend("MySQL", other)),
    }
}

fn statement_time_sql(limit_ms: Option<u64>) -> String {
    // MariaDB's max_statement_time is in seconds (fractional); 0 means no limit.
    format!(
        "SET SESSION max_statement_time = {:.3}",
        limit_ms.unwrap_or(0) as f64 / 1000.0
    )
}

/// One statement that diesel prepares once per connection and then only executes: one round
/// trip. `batch_execute` would cost three on MySQL (multi-statements switched on, the
/// statement, switched off again), `sql_query` two (prepare and execute, every time).
/// diesel caches a statement without a static query id by its SQL text, so the text must be
/// one of a few: values go in `seconds`, bound.
#[derive(Debug, Clone, Copy)]
struct Cached<'a> {
    sql: &'a str,
    seconds: Option<f64>,
}

impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for Cached<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> QueryResult<()> {
        out.push_sql(self.sql);
        if let Some(seconds) = &self.seconds {
            out.push_bind_param::<diesel::sql_types::Double, f64>(seconds)?;
        }
        Ok(())
    }
}

impl diesel::query_builder::QueryId for Cached<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<diesel::MysqlConnection> for Cached<'_> {}

/// Sets the session's statement time limit (`None`: none) in one cached statement.
fn set_statement_time(c: &mut diesel::MysqlConnection, limit_ms: Option<u64>) -> QueryResult<()> {
    Cached {
        sql: "SET SESSION max_statement_time = ",
        seconds: Some(limit_ms.unwrap_or(0) as f64 / 1000.0),
    }
    .execute(c)
    .map(|_| ())
}

impl Backend for Mysql {
    fn backup(&self) -> &'static dyn custodian_core::backend::BackupDialect {
        &crate::backup::mysql::MariaBackup
    }

    fn two_phase(&self) -> Option<&'static dyn custodian_core::backend::TwoPhase> {
        Some(&crate::two_phase::MariaXa)
    }

    fn keys_from_last_insert_id(&self) -> bool {
        true
    }

    fn keeps_rows_for_guarded_updates(&self) -> bool {
        true
    }

    fn rewrite_table_storage(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<()> {
        // InnoDB answers OPTIMIZE TABLE by rebuilding the table (ALTER TABLE ... FORCE) into a
        // new tablespace file; the old file, with the deleted row, is removed.
        my(conn)?.batch_execute(&format!("OPTIMIZE TABLE `{}`", table.replace('`', "``")))
    }

    fn explain_statement(
        &self,
        conn: &mut AnyConnection,
        sql: &str,
        binds: &[custodian_core::observe::binds::BindValue],
    ) -> QueryResult<Option<String>> {
        crate::explain::mariadb(conn, sql, binds)
    }

    fn explain_prefix(&self) -> &'static str {
        "EXPLAIN FORMAT=JSON "
    }

    fn filtered_scans(&self, plan: &str, _sql: &str) -> Vec<custodian_core::observe::FilteredScan> {
        crate::scans::mariadb::filtered_scans(plan)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Mysql
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["mysql", "mariadb"]
    }

    fn establish(&self, url: &DatabaseUrl) -> Result<AnyConnection, Error> {
        let raw = url.expose();
        let raw = match raw.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => raw.to_string(),
        };
        diesel::MysqlConnection::establish(&raw)
            .map(AnyConnection::Mysql)
            .map_err(|e| classify::connection_error(url, e))
    }

    fn prepare(&self, conn: &mut AnyConnection, s: &SessionConfig) -> QueryResult<()> {
        let sql = format!(
            "SET NAMES utf8mb4 COLLATE utf8mb4_bin; SET time_zone = '+00:00'; \
             SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'; \
             SET SESSION wsrep_sync_wait = IF(@@wsrep_on, 1, @@wsrep_sync_wait); {}",
            statement_time_sql(s.statement_timeout_ms)
        );
        my(conn)?.batch_execute(&sql)
    }

    fn server_session(&self, conn: &mut AnyConnection) -> QueryResult<Option<String>> {
        crate::server_session::my_current(my(conn)?).map(Some)
    }

    fn end_server_session(&self, conn: &mut AnyConnection, id: &str) -> QueryResult<()> {
        crate::server_session::my_end(my(conn)?, id)
    }

    fn server_session_exists(&self, conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
        crate::server_session::my_exists(my(conn)?, id)
    }

    fn session_node_left(&self, conn: &mut AnyConnection, id: &str) -> QueryResult<Option<bool>> {
        crate::server_session::my_node_left(my(conn)?, id)
    }

    fn ping(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        // diesel's own check (a cached `SELECT 1`): one round trip, as on a diesel pool.
        diesel::r2d2::R2D2Connection::ping(my(conn)?)
    }

    fn begin(&self, conn: &mut AnyConnection, o: &TxOptions) -> QueryResult<()> {
        let c = my(conn)?;
        if let Some(level) = o.isolation {
            // Without SESSION/GLOBAL this applies to the next transaction only: it cannot leak.
            let sql = format!("SET TRANSACTION ISOLATION LEVEL {}", level.sql());
            Cached {
                sql: &sql,
                seconds: None,
            }
            .execute(c)?;
        }
        let sql = if o.read_only {
            "START TRANSACTION READ ONLY"
        } else {
            "START TRANSACTION"
        };
        AnsiTransactionManager::begin_transaction_sql(c, sql)
    }

    fn set_transaction_timeout(
        &self,
        conn: &mut AnyConnection,
        limit: Duration,
    ) -> QueryResult<()> {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        set_statement_time(my(conn)?, Some(ms))
    }

    fn reset_after_transaction(
        &self,
        conn: &mut AnyConnection,
        s: &SessionConfig,
    ) -> QueryResult<()> {
        set_statement_time(my(conn)?, s.statement_timeout_ms)
    }

    fn last_insert_id(&self, conn: &mut AnyConnection) -> QueryResult<i64> {
        // A declared SQL function (not a literal), so diesel caches the prepared statement.
        diesel::define_sql_function! {
            #[sql_name = "LAST_INSERT_ID"]
            fn last_insert_id() -> diesel::sql_types::Unsigned<diesel::sql_types::BigInt>;
        }
        let id: u64 = diesel::select(last_insert_id()).get_result(my(conn)?)?;
        i64::try_from(id).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    }

    fn returns_rows(&self, conn: &mut AnyConnection) -> QueryResult<bool> {
        let version: String =
            diesel::select(diesel::dsl::sql::<Text>("VERSION()")).get_result(my(conn)?)?;
        Ok(has_returning(&version))
    }

    fn consecutive_insert_ids(&self, conn: &mut AnyConnection) -> QueryResult<bool> {
        use diesel::sql_types::BigInt;
        // Lock mode 0 ("traditional") and 1 ("consecutive") give a multi-row INSERT ... VALUES
        // one run of keys; 2 ("interleaved") may not.
        let (mode, step): (i64, i64) = diesel::select(diesel::dsl::sql::<(BigInt, BigInt)>(
            "CAST(@@innodb_autoinc_lock_mode AS SIGNED), CAST(@@auto_increment_increment AS SIGNED)",
        ))
        .get_result(my(conn)?)?;
        Ok(matches!(mode, 0 | 1) && step == 1)
    }

    fn max_statement_bytes(&self, conn: &mut AnyConnection) -> QueryResult<Option<usize>> {
        use diesel::sql_types::BigInt;
        let bytes: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
            "CAST(@@max_allowed_packet AS SIGNED)",
        ))
        .get_result(my(conn)?)?;
        Ok(usize::try_from(bytes).ok())
    }

    fn classify(&self, err: diesel::result::Error) -> Error {
        errors::classify(err)
    }

    fn discards_connection_after(&self, err: &Error) -> bool {
        errors::discards_connection_after(err)
    }

    fn create_table_sql(&self, meta: &EntityMeta) -> Vec<String> {
        ddl::create_table(&MyDdl, &TableDef::from_meta(meta))
    }

    fn drop_table_sql(&self, meta: &EntityMeta) -> String {
        ddl::drop_table(&MyDdl, &TableDef::from_meta(meta))
    }

    fn schema_change_sql(&self, change: &SchemaChange) -> Vec<String> {
        alter::change_sql(&MyDdl, change)
    }

    fn transactional_ddl(&self) -> bool {
        // Every DDL statement commits implicitly.
        false
    }

    fn live_columns(
        &self,
        conn: &mut AnyConnection,
        meta: &EntityMeta,
    ) -> QueryResult<Option<Vec<LiveColumn>>> {
        let rows = diesel::sql_query(
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(DATA_TYPE AS CHAR) AS data_type, \
             CAST(IS_NULLABLE AS CHAR) AS nullable \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
        )
        .bind::<Nullable<Text>, _>(meta.schema)
        .bind::<Text, _>(meta.table)
        .load(my(conn)?)?;
        Ok(ddl::live_columns(rows))
    }

    fn index_leading_columns(
        &self,
        conn: &mut AnyConnection,
        schema: Option<&str>,
        table: &str,
    ) -> QueryResult<Vec<String>> {
        let rows: Vec<ddl::NameRow> = diesel::sql_query(
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             AND SEQ_IN_INDEX = 1",
        )
        .bind::<Nullable<Text>, _>(schema)
        .bind::<Text, _>(table)
        .load(my(conn)?)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn type_compatible(&self, kind: ColumnKind, live_type: &str) -> bool {
        let t = live_type.to_ascii_lowercase();
        let t = t.as_str();
        let text = matches!(
            t,
            "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext"
        );
        match kind {
            ColumnKind::SmallInt => t == "smallint",
            ColumnKind::Integer => matches!(t, "int" | "integer"),
            ColumnKind::BigInt => t == "bigint",
            ColumnKind::Float => t == "float",
            ColumnKind::Double => matches!(t, "double" | "double precision" | "real"),
            // BOOLEAN is TINYINT(1).
            ColumnKind::Bool => matches!(t, "tinyint" | "boolean" | "bool"),
            ColumnKind::Binary => matches!(
                t,
                "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary"
            ),
            ColumnKind::Date => t == "date",
            ColumnKind::Timestamp => matches!(t, "datetime" | "timestamp"),
            ColumnKind::Json => text || t == "json",
            ColumnKind::Enum => text || t == "enum",
            ColumnKind::Text | ColumnKind::Uuid | ColumnKind::Decimal => text,
            // A kind added later: no opinion.
            _ => true,
        }
    }

    fn role(&self, conn: &mut AnyConnection) -> QueryResult<custodian_core::backend::HostRole> {
        crate::replication::my_role(my(conn)?)
    }

    fn replica_lag(&self, conn: &mut AnyConnection) -> QueryResult<Option<Duration>> {
        crate::replication::my_lag(my(conn)?)
    }

    fn commit_position(&self, conn: &mut AnyConnection) -> QueryResult<Option<String>> {
        crate::replication::my_position(my(conn)?)
    }

    fn commit_noting_written(&self, conn: &mut AnyConnection) -> QueryResult<bool> {
        crate::replication::my_commit_noting_written(my(conn)?).map(|()| true)
    }

    fn written_marks(
        &self,
        conn: &mut AnyConnection,
    ) -> QueryResult<(Option<String>, Option<String>)> {
        crate::replication::my_written_marks(my(conn)?)
    }

    fn has_replayed(&self, conn: &mut AnyConnection, position: &str) -> QueryResult<bool> {
        crate::replication::my_replayed(my(conn)?, position)
    }

    fn later_position(&self, a: &str, b: &str) -> Option<String> {
        crate::replication::my_later(a, b)
    }
}

/// Whether the server whose `VERSION()` is `version` has `INSERT … RETURNING` and `DELETE …
/// RETURNING`: MariaDB 10.5 and later (`10.11.19-MariaDB-0+deb12u1`); MySQL (`8.0.36`) has
/// neither. A version that does not parse counts as without.
fn has_returning(version: &str) -> bool {
    if !version.contains("MariaDB") {
        return false;
    }
    // A replication-compatible prefix ("5.5.5-10.11.2-MariaDB") goes before the real version.
    let version = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= (10, 5),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returning_is_used_on_mariadb_10_5_and_later_only() {
        for (version, has) in [
            ("10.11.19-MariaDB-0+deb12u1", true),
            ("10.5.0-MariaDB", true),
            ("11.4.2-MariaDB-log", true),
            ("5.5.5-10.11.2-MariaDB", true),
            ("10.4.32-MariaDB", false),
            ("10.3.39-MariaDB-0+deb10u1", false),
            ("8.0.36", false),
            ("8.4.0-commercial", false),
            ("MariaDB", false),
            ("", false),
        ] {
            assert_eq!(has_returning(version), has, "{version}");
        }
    }
}
