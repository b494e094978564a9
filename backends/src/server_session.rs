//! Server sessions of PostgreSQL and MariaDB connections: naming the one a connection talks
//! to, ending another one, and telling whether it still exists. custodian uses them to settle a
//! commit cut off mid-flight: it ends the lost connection's server session and waits until the
//! session is gone, so its transaction can no longer commit after custodian looked.
//!
//! PostgreSQL names a session by backend pid and start time (a pid alone may be reused by a
//! later backend, which must not be ended by mistake); MariaDB by connection id, which the
//! server does not reuse while it runs.

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryResult, RunQueryDsl};

/// A fixed statement returning one text column, cached by diesel as a prepared statement by
/// its SQL text (one round trip after the first use on a connection).
#[derive(Debug, Clone, Copy)]
struct Fixed(&'static str);

impl<DB: diesel::backend::Backend> QueryFragment<DB> for Fixed {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

impl QueryId for Fixed {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Fixed {
    type SqlType = Text;
}

impl<C: diesel::Connection> RunQueryDsl<C> for Fixed {}

/// PostgreSQL: the session of `c`, as `pid start-epoch`.
#[cfg(feature = "postgres")]
pub(crate) fn pg_current(c: &mut diesel::PgConnection) -> QueryResult<String> {
    Fixed(
        "SELECT CAST(pid AS TEXT) || ' ' || CAST(EXTRACT(EPOCH FROM backend_start) AS TEXT) \
         FROM pg_stat_get_activity(pg_backend_pid())",
    )
    .get_result(c)
}

/// Splits a PostgreSQL session name into pid and start epoch.
#[cfg(feature = "postgres")]
fn pg_parts(id: &str) -> QueryResult<(i32, &str)> {
    let bad = || diesel::result::Error::DeserializationError(format!("bad session `{id}`").into());
    let (pid, start) = id.split_once(' ').ok_or_else(bad)?;
    Ok((pid.parse().map_err(|_| bad())?, start))
}

/// PostgreSQL: asks the backend of session `id` to terminate (rolling back what it runs).
#[cfg(feature = "postgres")]
pub(crate) fn pg_end(c: &mut diesel::PgConnection, id: &str) -> QueryResult<()> {
    let (pid, start) = pg_parts(id)?;
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid = $1 AND CAST(EXTRACT(EPOCH FROM backend_start) AS TEXT) = $2",
    )
    .bind::<diesel::sql_types::Integer, _>(pid)
    .bind::<Text, _>(start)
    .execute(c)
    .map(|_| ())
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// PostgreSQL: whether the backend of session `id` is still there. It leaves
/// `pg_stat_activity` only after its transaction was aborted or committed.
#[cfg(feature = "postgres")]
pub(crate) fn pg_exists(c: &mut diesel::PgConnection, id: &str) -> QueryResult<bool> {
    let (pid, start) = pg_parts(id)?;
    let row: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity \
         WHERE pid = $1 AND CAST(EXTRACT(EPOCH FROM backend_start) AS TEXT) = $2",
    )
    .bind::<diesel::sql_types::Integer, _>(pid)
    .bind::<Text, _>(start)
    .get_result(c)?;
    Ok(row.n > 0)
}

/// MariaDB: the connection id of `c`.
#[cfg(feature = "mysql")]
pub(crate) fn my_current(c: &mut diesel::MysqlConnection) -> QueryResult<String> {
    Fixed("SELECT CAST(CONNECTION_ID() AS CHAR)").get_result(c)
}

/// MariaDB: a connection id, checked to be a number (it is put in `KILL`'s text).
#[cfg(feature = "mysql")]
fn my_id(id: &str) -> QueryResult<u64> {
    id.parse().map_err(|_| {
        diesel::result::Error::DeserializationError(format!("bad session `{id}`").into())
    })
}

/// MariaDB: kills connection `id`. The server rolls back its open transaction before the
/// thread leaves the process list; an id that is gone already (error 1094) is fine.
#[cfg(feature = "mysql")]
pub(crate) fn my_end(c: &mut diesel::MysqlConnection, id: &str) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match c.batch_execute(&format!("KILL CONNECTION {}", my_id(id)?)) {
        Err(diesel::result::Error::DatabaseError(_, info))
            if info
                .message()
                .to_ascii_lowercase()
                .contains("unknown thread") =>
        {
            Ok(())
        }
        other => other,
    }
}

/// MariaDB: whether connection `id` is still in the process list (killed ones stay there
/// while they roll back).
#[cfg(feature = "mysql")]
pub(crate) fn my_exists(c: &mut diesel::MysqlConnection, id: &str) -> QueryResult<bool> {
    let row: Count =
        diesel::sql_query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?")
            .bind::<diesel::sql_types::Unsigned<BigInt>, _>(my_id(id)?)
            .get_result(c)?;
    Ok(row.n > 0)
}
