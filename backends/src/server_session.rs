//! Server sessions of PostgreSQL and MariaDB connections: naming the one a connection talks
//! to, ending another one, and telling whether it still exists. custodian uses them to settle a
//! commit cut off mid-flight: it ends the lost connection's server session and waits until the
//! session is gone, so its transaction can no longer commit after custodian looked.
//!
//! PostgreSQL names a session by backend pid and start time (a pid alone may be reused by a
//! later backend, which must not be ended by mistake); MariaDB by connection id and the server
//! it lives on (host, port and start time): the server does not reuse an id while it runs, but
//! another server of a cluster, or the same one restarted, gives the same id to another session.

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

/// MariaDB: the session of `c`, as `id host:port started`: its connection id, and the server
/// it lives on (`@@hostname:@@port`, and when that server started, in epoch seconds). A
/// connection id names a session only on its own server, and only until that server restarts
/// (ids start again from 1): ending one by id on another server would end an unrelated session.
/// On a Galera node the name ends with the node's group member id (`wsrep_gcomm_uuid`), by
/// which another node tells whether it is still a member of the cluster ([`my_node_left`]).
#[cfg(feature = "mysql")]
pub(crate) fn my_current(c: &mut diesel::MysqlConnection) -> QueryResult<String> {
    Fixed(MY_CURRENT).get_result(c)
}

/// The SQL of [`my_current`]: the server's start is now minus its uptime.
#[cfg(feature = "mysql")]
const MY_CURRENT: &str = "SELECT CONCAT(CONNECTION_ID(), ' ', @@hostname, ':', @@port, ' ', \
     CAST(UNIX_TIMESTAMP() - (SELECT CAST(VARIABLE_VALUE AS SIGNED) \
     FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME') AS SIGNED), \
     IF(@@wsrep_on, CONCAT(' ', (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
     WHERE VARIABLE_NAME = 'WSREP_GCOMM_UUID')), ''))";

/// Start times of one server read at different moments differ by the second they straddle.
#[cfg(feature = "mysql")]
const START_SLACK_SECS: i64 = 2;

/// A MariaDB session name, split.
#[cfg(feature = "mysql")]
struct MySession<'a> {
    /// The connection id, checked to be a number (it is put in `KILL`'s text).
    id: u64,
    server: &'a str,
    started: i64,
    /// The Galera group member id of its server, on a Galera node.
    node: Option<&'a str>,
}

#[cfg(feature = "mysql")]
fn my_parts(name: &str) -> QueryResult<MySession<'_>> {
    let bad =
        || diesel::result::Error::DeserializationError(format!("bad session `{name}`").into());
    let mut parts = name.split(' ');
    let (Some(id), Some(server), Some(started), node, None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    // Put in a statement as a bound value, but checked anyway: hex digits and dashes.
    if node.is_some_and(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) {
        return Err(bad());
    }
    Ok(MySession {
        id: id.parse().map_err(|_| bad())?,
        server,
        started: started.parse().map_err(|_| bad())?,
        node,
    })
}

/// Where session `name` lives, seen from the server `c` talks to.
#[cfg(feature = "mysql")]
enum Place {
    /// On this server: its id means it here.
    Here(u64),
    /// This server restarted since: the session ended with the server it ran on.
    Gone,
}

/// Places session `name` relative to `c`'s server; on another server it cannot be ended or
/// looked up through `c`, which is an error (the caller cannot settle anything there).
#[cfg(feature = "mysql")]
fn my_place(c: &mut diesel::MysqlConnection, name: &str) -> QueryResult<Place> {
    let old = my_parts(name)?;
    let current = my_current(c)?;
    let here = my_parts(&current)?;
    if here.server != old.server {
        return Err(diesel::result::Error::QueryBuilderError(
            format!(
                "session {} lives on server {}, this connection is on {}: a connection id \
                 names a session only on its own server",
                old.id, old.server, here.server
            )
            .into(),
        ));
    }
    if (here.started - old.started).abs() > START_SLACK_SECS {
        return Ok(Place::Gone);
    }
    Ok(Place::Here(old.id))
}

/// MariaDB: kills the session named `name` ([`my_current`]) on its own server. The server
/// rolls back its open transaction before the thread leaves the process list; an id that is
/// gone already (error 1094), or a server restarted since, is fine. A session of another
/// server is an error: its id would name an unrelated session here.
#[cfg(feature = "mysql")]
pub(crate) fn my_end(c: &mut diesel::MysqlConnection, name: &str) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    let Place::Here(id) = my_place(c, name)? else {
        return Ok(());
    };
    match c.batch_execute(&format!("KILL CONNECTION {id}")) {
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

/// MariaDB: whether session `name` is still in its server's process list (killed ones stay
/// there while they roll back). A session of another server is an error, as in [`my_end`].
#[cfg(feature = "mysql")]
pub(crate) fn my_exists(c: &mut diesel::MysqlConnection, name: &str) -> QueryResult<bool> {
    let Place::Here(id) = my_place(c, name)? else {
        return Ok(false);
    };
    let row: Count =
        diesel::sql_query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?")
            .bind::<diesel::sql_types::Unsigned<BigInt>, _>(id)
            .get_result(c)?;
    Ok(row.n > 0)
}

/// MariaDB Galera: whether the node of session `name` has left the cluster's primary component
/// as `c`'s node sees it (`Some(true)`), or is still a member or `c`'s node is itself outside
/// the primary component (`Some(false)`); `None` when the session lives on `c`'s own server.
/// A node that left commits nothing more, and every write set it replicated before is ordered
/// before the view that excluded it (read from `mysql.wsrep_cluster_members`, which a node
/// rewrites at each view change). A session of a server that is no Galera node is an error.
#[cfg(feature = "mysql")]
pub(crate) fn my_node_left(
    c: &mut diesel::MysqlConnection,
    name: &str,
) -> QueryResult<Option<bool>> {
    let old = my_parts(name)?;
    let current = my_current(c)?;
    if my_parts(&current)?.server == old.server {
        return Ok(None);
    }
    let Some(node) = old.node else {
        return Err(diesel::result::Error::QueryBuilderError(
            format!(
                "session {} lives on server {}, which is no Galera node: it can be settled \
                 only there",
                old.id, old.server
            )
            .into(),
        ));
    };
    let row: Count = diesel::sql_query(
        "SELECT CAST((SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS') = 'Primary' AND NOT EXISTS \
         (SELECT 1 FROM mysql.wsrep_cluster_members WHERE node_uuid = ?) AS SIGNED) AS n",
    )
    .bind::<Text, _>(node)
    .get_result(c)?;
    Ok(Some(row.n == 1))
}
