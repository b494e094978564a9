//! PostgreSQL: connection set-up (UTC, application name, statement timeout), `BEGIN` with
//! isolation / read-only / deferrable, SQLSTATE-based error classification, DDL.

use crate::alter::{self, AlterDialect};
use crate::classify::{self, between, Cause, Refinement};
use crate::ddl::{self, DdlDialect};
use crate::wrong_backend;
use custodian_core::migrate::{SchemaChange, TableDef};
use custodian_core::{
    AnyConnection, Backend, BackendKind, ColumnKind, DatabaseUrl, EntityMeta, Error, LiveColumn,
    SessionConfig, TxOptions,
};
use diesel::connection::{AnsiTransactionManager, SimpleConnection};
use diesel::result::DatabaseErrorKind;
use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, QueryResult, RunQueryDsl};
use std::time::Duration;

/// The PostgreSQL backend (`postgres://`, `postgresql://`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

/// The connection as PostgreSQL's own (a diesel error when it is another engine's).
pub(crate) fn pg(conn: &mut AnyConnection) -> QueryResult<&mut diesel::PgConnection> {
    match conn {
        AnyConnection::Postgresql(c) => Ok(c),
        #[allow(unreachable_patterns)]
        other => Err(wrong_backend("PostgreSQL", other)),
    }
}

impl Backend for Postgres {
    fn backup(&self) -> &'static dyn custodian_core::backend::BackupDialect {
        &crate::backup::postgres::PgBackup
    }

    fn two_phase(&self) -> Option<&'static dyn custodian_core::backend::TwoPhase> {
        Some(&crate::two_phase::PgPrepared)
    }

    fn rewrite_table_storage(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<()> {
        // VACUUM FULL writes the live rows to a new file and removes the old one (it needs the
        // table's owner, which created it). It keeps a deleted row while any transaction that
        // may still see it runs: one in this database holding an older snapshot, or one anywhere
        // in the cluster that started before the delete (its xid is below VACUUM's own
        // snapshot's xmin). So first wait, up to 10 s, until neither exists; a transaction open
        // longer keeps the row until the next VACUUM.
        let c = pg(conn)?;
        // A transaction id newer than the erasure's.
        let after: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "pg_current_xact_id()::text::bigint",
        ))
        .get_result(c)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 =
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                    "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL \
                   AND age(backend_xmin) >= age(({after} % 4294967296)::text::xid)) \
                 + (CASE WHEN pg_snapshot_xmin(pg_current_snapshot())::text::bigint < {after} \
                    THEN 1 ELSE 0 END)"
                )))
                .get_result(c)?;
            if waiting == 0 || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        c.batch_execute(&format!("VACUUM FULL {}", PgDdl.quote(table)))
    }

    fn explain_statement(
        &self,
        conn: &mut AnyConnection,
        sql: &str,
        binds: &[custodian_core::observe::binds::BindValue],
    ) -> QueryResult<Option<String>> {
        crate::explain::postgres(conn, sql, binds)
    }

    fn explain_prefix(&self) -> &'static str {
        "EXPLAIN (FORMAT JSON) "
    }

    fn filtered_scans(&self, plan: &str, _sql: &str) -> Vec<custodian_core::observe::FilteredScan> {
        crate::scans::postgres::filtered_scans(plan)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn establish(&self, url: &DatabaseUrl) -> Result<AnyConnection, Error> {
        diesel::PgConnection::establish(url.expose())
            .map(AnyConnection::Postgresql)
            .map_err(|e| classify::connection_error(url, e))
    }

    fn prepare(&self, conn: &mut AnyConnection, s: &SessionConfig) -> QueryResult<()> {
        let name = crate::inline_literal::pg_text(&s.application_name).ok_or_else(|| {
            diesel::result::Error::QueryBuilderError(
                "session.application_name holds a NUL character".into(),
            )
        })?;
        let sql = format!(
            "SET TIME ZONE 'UTC'; SET application_name = {name}; SET statement_timeout = {}",
            s.statement_timeout_ms.unwrap_or(0)
        );
        pg(conn)?.batch_execute(&sql)
    }

    fn server_session(&self, conn: &mut AnyConnection) -> QueryResult<Option<String>> {
        crate::server_session::pg_current(pg(conn)?).map(Some)
    }

    fn end_server_session(&self, conn: &mut AnyConnection, id: &str) -> QueryResult<()> {
        crate::server_session::pg_end(pg(conn)?, id)
    }

    fn server_session_exists(&self, conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
        crate::server_session::pg_exists(pg(conn)?, id)
    }

    fn ping(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        // diesel's own check (a cached `SELECT 1`), as on a diesel pool.
        diesel::r2d2::R2D2Connection::ping(pg(conn)?)
    }

    fn begin(&self, conn: &mut AnyConnection, o: &TxOptions) -> QueryResult<()> {
        let mut sql = String::from("BEGIN");
        if let Some(level) = o.isolation {
            sql.push_str(" ISOLATION LEVEL ");
            sql.push_str(level.sql());
        }
        if o.read_only {
            sql.push_str(" READ ONLY");
        }
        if o.deferrable {
            sql.push_str(" DEFERRABLE");
        }
        AnsiTransactionManager::begin_transaction_sql(pg(conn)?, &sql)
    }

    fn set_transaction_timeout(
        &self,
        conn: &mut AnyConnection,
        limit: Duration,
    ) -> QueryResult<()> {
        // LOCAL: ends with the transaction, so nothing leaks to the next borrower.
        pg(conn)?.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            limit.as_millis().max(1)
        ))
    }

    fn reset_after_transaction(&self, _: &mut AnyConnection, _: &SessionConfig) -> QueryResult<()> {
        Ok(())
    }

    fn inline_literal(
        &self,
        out: &mut String,
        value: custodian_core::backend::Literal<'_>,
    ) -> bool {
        crate::inline_literal::pg_literal(out, value)
    }

    fn last_insert_id(&self, conn: &mut AnyConnection) -> QueryResult<i64> {
        // A declared SQL function (not a literal), so diesel caches the prepared statement.
        diesel::define_sql_function! { fn lastval() -> diesel::sql_types::BigInt; }
        diesel::select(lastval()).get_result(pg(conn)?)
    }

    fn classify(&self, err: diesel::result::Error) -> Error {
        classify::classify(BackendKind::Postgres, err, |kind, info| {
            let message = info.message();
            let (code, cause) = match kind {
                DatabaseErrorKind::UniqueViolation => ("23505", None),
                DatabaseErrorKind::ForeignKeyViolation => ("23503", None),
                DatabaseErrorKind::NotNullViolation => ("23502", None),
                DatabaseErrorKind::CheckViolation => ("23514", None),
                DatabaseErrorKind::RestrictViolation => ("23001", None),
                DatabaseErrorKind::ExclusionViolation => ("23P01", None),
                DatabaseErrorKind::SerializationFailure => ("40001", None),
                DatabaseErrorKind::ReadOnlyTransaction => ("25006", None),
                // diesel gives ClosedConnection for SQLSTATE class 08 and for a connection
                // libpq found broken; the message may still name a more precise cause.
                DatabaseErrorKind::ClosedConnection => match message_code(message) {
                    Some((code, Cause::Connection)) => (code, None),
                    _ => ("08006", None),
                },
                DatabaseErrorKind::UnableToSendCommand => ("08006", None),
                _ => match message_code(message) {
                    Some((code, cause)) => (code, Some(cause)),
                    None => ("", None),
                },
            };
            Refinement {
                code: (!code.is_empty()).then(|| code.to_string()),
                // "Key (code)=(X) already exists." names the column of a unique violation.
                column: info
                    .details()
                    .and_then(|d| between(d, "Key", '(', ')'))
                    .map(|c| c.to_string()),
                cause,
                ..Refinement::default()
            }
        })
    }

    fn create_table_sql(&self, meta: &EntityMeta) -> Vec<String> {
        ddl::create_table(&PgDdl, &TableDef::from_meta(meta))
    }

    fn drop_table_sql(&self, meta: &EntityMeta) -> String {
        ddl::drop_table(&PgDdl, &TableDef::from_meta(meta))
    }

    fn schema_change_sql(&self, change: &SchemaChange) -> Vec<String> {
        alter::change_sql(&PgDdl, change)
    }

    fn transactional_ddl(&self) -> bool {
        true
    }

    fn live_columns(
        &self,
        conn: &mut AnyConnection,
        meta: &EntityMeta,
    ) -> QueryResult<Option<Vec<LiveColumn>>> {
        let rows = diesel::sql_query(
            "SELECT column_name::text AS name, data_type::text AS data_type, \
             is_nullable::text AS nullable \
             FROM information_schema.columns \
             WHERE table_schema::text = COALESCE($1::text, current_schema()::text) \
             AND table_name::text = $2 ORDER BY ordinal_position",
        )
        .bind::<Nullable<Text>, _>(meta.schema)
        .bind::<Text, _>(meta.table)
        .load(pg(conn)?)?;
        Ok(ddl::live_columns(rows))
    }

    fn index_leading_columns(
        &self,
        conn: &mut AnyConnection,
        schema: Option<&str>,
        table: &str,
    ) -> QueryResult<Vec<String>> {
        let rows: Vec<ddl::NameRow> = diesel::sql_query(
            "SELECT a.attname::text AS name FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
             WHERE n.nspname::text = COALESCE($1::text, current_schema()::text) \
             AND c.relname::text = $2",
        )
        .bind::<Nullable<Text>, _>(schema)
        .bind::<Text, _>(table)
        .load(pg(conn)?)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn type_compatible(&self, kind: ColumnKind, live_type: &str) -> bool {
        let t = live_type.to_ascii_lowercase();
        let t = t.as_str();
        match kind {
            ColumnKind::SmallInt => matches!(t, "smallint" | "int2"),
            ColumnKind::Integer => matches!(t, "integer" | "int" | "int4"),
            ColumnKind::BigInt => matches!(t, "bigint" | "int8"),
            ColumnKind::Float => matches!(t, "real" | "float4"),
            ColumnKind::Double => matches!(t, "double precision" | "float8"),
            ColumnKind::Bool => matches!(t, "boolean" | "bool"),
            ColumnKind::Binary => t == "bytea",
            ColumnKind::Date => t == "date",
            ColumnKind::Timestamp => matches!(t, "timestamp without time zone" | "timestamp"),
            ColumnKind::Text
            | ColumnKind::Uuid
            | ColumnKind::Json
            | ColumnKind::Decimal
            | ColumnKind::Enum => matches!(
                t,
                "text" | "character varying" | "varchar" | "character" | "char" | "bpchar"
            ),
            // A kind added later: no opinion.
            _ => true,
        }
    }

    fn role(&self, conn: &mut AnyConnection) -> QueryResult<custodian_core::backend::HostRole> {
        crate::replication::pg_role(pg(conn)?)
    }

    fn replica_lag(&self, conn: &mut AnyConnection) -> QueryResult<Option<Duration>> {
        crate::replication::pg_lag(pg(conn)?)
    }

    fn commit_position(&self, conn: &mut AnyConnection) -> QueryResult<Option<String>> {
        crate::replication::pg_position(pg(conn)?)
    }

    fn has_replayed(&self, conn: &mut AnyConnection, position: &str) -> QueryResult<bool> {
        crate::replication::pg_replayed(pg(conn)?, position)
    }

    fn later_position(&self, a: &str, b: &str) -> Option<String> {
        crate::replication::pg_later(a, b)
    }

    fn replica_runs(&self, options: &TxOptions) -> bool {
        // A hot standby refuses `SERIALIZABLE` (SQLSTATE 0A000).
        options.isolation != Some(custodian_core::IsolationLevel::Serializable)
    }
}

/// The SQLSTATE and cause of a PostgreSQL error diesel reports only by message (its error
/// information does not carry the SQLSTATE). Matched without regard to case.
fn message_code(message: &str) -> Option<(&'static str, Cause)> {
    let m = message.to_ascii_lowercase();
    let has = |s: &str| m.contains(s);
    Some(if has("deadlock detected") {
        ("40P01", Cause::Serialization)
    } else if has("statement timeout") {
        ("57014", Cause::Timeout)
    } else if has("lock timeout") {
        // lock_not_available: a lock wait ran past `lock_timeout`; retryable, like MariaDB's
        // lock wait timeout.
        ("55P03", Cause::Serialization)
    } else if has("terminating connection due to administrator command") {
        ("57P01", Cause::Connection)
    } else if has("terminating connection due to crash") {
        // crash_shutdown: another backend crashed and the server restarts.
        ("57P02", Cause::Connection)
    } else if has("terminating connection") {
        ("57P01", Cause::Connection)
    } else if has("the database system is") || has("cannot connect now") {
        // cannot_connect_now: starting up, shutting down, in recovery.
        ("57P03", Cause::Connection)
    } else if has("server closed the connection unexpectedly")
        || has("no connection to the server")
        || has("connection to server was lost")
        || has("could not send data to server")
        || has("could not receive data from server")
    {
        // libpq's own: connection_failure.
        ("08006", Cause::Connection)
    } else {
        return None;
    })
}

struct PgDdl;

impl AlterDialect for PgDdl {}

impl DdlDialect for PgDdl {
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
    fn column_type(&self, kind: ColumnKind, _indexed: bool) -> &'static str {
        match kind {
            ColumnKind::SmallInt => "SMALLINT",
            ColumnKind::Integer => "INTEGER",
            ColumnKind::BigInt => "BIGINT",
            ColumnKind::Float => "REAL",
            ColumnKind::Double => "DOUBLE PRECISION",
            ColumnKind::Bool => "BOOLEAN",
            ColumnKind::Binary => "BYTEA",
            ColumnKind::Date => "DATE",
            ColumnKind::Timestamp => "TIMESTAMP",
            ColumnKind::Uuid => "CHAR(36)",
            _ => "TEXT",
        }
    }
    fn auto_increment_column(&self, name: &str, kind: ColumnKind) -> String {
        format!(
            "{name} {} GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            self.column_type(kind, true)
        )
    }
    fn current_timestamp(&self) -> &'static str {
        "(now() AT TIME ZONE 'UTC')"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::Error as DieselError;

    fn classified(kind: DatabaseErrorKind, message: &str) -> Error {
        Postgres.classify(DieselError::DatabaseError(
            kind,
            Box::new(message.to_string()),
        ))
    }

    #[test]
    fn a_lost_server_is_a_connection_error_by_code() {
        for (kind, message, code) in [
            (
                DatabaseErrorKind::ClosedConnection,
                "terminating connection due to administrator command",
                "57P01",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
                "57P01",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to crash of another server process",
                "57P02",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
                "57P03",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
                "57P03",
            ),
            (
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection unexpectedly",
                "08006",
            ),
            (
                DatabaseErrorKind::Unknown,
                "server closed the connection unexpectedly",
                "08006",
            ),
            (
                DatabaseErrorKind::ClosedConnection,
                "connection failure",
                "08006",
            ),
            (
                DatabaseErrorKind::UnableToSendCommand,
                "could not send",
                "08006",
            ),
        ] {
            for message in [message.to_string(), message.to_uppercase()] {
                let err = classified(kind, &message);
                assert!(
                    matches!(err, Error::Connection { .. }),
                    "{message}: {err:?}"
                );
                assert_eq!(
                    err.db_error().unwrap().code.as_deref(),
                    Some(code),
                    "{message}"
                );
                assert!(Postgres.discards_connection_after(&err));
                assert!(err.at_commit().is_commit_unknown());
            }
        }
    }

    #[test]
    fn serialization_failures_stay_retryable_and_keep_the_connection() {
        for (kind, message, code) in [
            (
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access due to read/write dependencies among transactions",
                "40001",
            ),
            (DatabaseErrorKind::Unknown, "deadlock detected", "40P01"),
            (
                DatabaseErrorKind::Unknown,
                "canceling statement due to lock timeout",
                "55P03",
            ),
        ] {
            for message in [message.to_string(), message.to_uppercase()] {
                let err = classified(kind, &message);
                assert!(err.is_retryable(), "{message}: {err:?}");
                assert_eq!(err.db_error().unwrap().code.as_deref(), Some(code));
                assert!(!Postgres.discards_connection_after(&err));
                // Refused at COMMIT: rolled back, still retryable.
                assert!(err.at_commit().is_retryable());
            }
        }
    }
}
