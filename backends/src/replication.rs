//! Replication queries per dialect: a host's role, its lag, commit positions and whether a
//! replica has replayed one (what `custodian_core::cluster` routes reads by).

// Each dialect's half is unused in a build without the other database.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_imports)
)]

use custodian_core::backend::HostRole;
use diesel::dsl::sql;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text};
use diesel::{QueryResult, RunQueryDsl};
use std::time::Duration;

/// Seconds as a duration; a negative or non-finite number of seconds (clock skew) as zero.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

/// PostgreSQL: a standby is in recovery.
#[cfg(feature = "postgres")]
pub(crate) fn pg_role(c: &mut diesel::PgConnection) -> QueryResult<HostRole> {
    let recovering: bool = diesel::select(sql::<Bool>("pg_is_in_recovery()")).get_result(c)?;
    Ok(if recovering {
        HostRole::Replica
    } else {
        HostRole::Primary
    })
}

/// PostgreSQL: zero when everything received is replayed (an idle primary is no lag), else the
/// age of the last transaction replayed; `None` when nothing was replayed since start-up.
#[cfg(feature = "postgres")]
pub(crate) fn pg_lag(c: &mut diesel::PgConnection) -> QueryResult<Option<Duration>> {
    let lag: Option<f64> = diesel::select(sql::<Nullable<Double>>(
        "CASE WHEN NOT pg_is_in_recovery() THEN 0::float8 \
              WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
              ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END",
    ))
    .get_result(c)?;
    Ok(lag.map(seconds))
}

/// PostgreSQL: the WAL insert position, which covers a commit made with
/// `synchronous_commit = off` whose record is not written out yet.
#[cfg(feature = "postgres")]
pub(crate) fn pg_position(c: &mut diesel::PgConnection) -> QueryResult<Option<String>> {
    diesel::select(sql::<Nullable<Text>>(
        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END",
    ))
    .get_result(c)
}

/// PostgreSQL: the standby replayed WAL up to `position`.
#[cfg(feature = "postgres")]
pub(crate) fn pg_replayed(c: &mut diesel::PgConnection, position: &str) -> QueryResult<bool> {
    diesel::select(
        sql::<Bool>("COALESCE(pg_last_wal_replay_lsn() >= ")
            .bind::<Text, _>(position)
            .sql("::pg_lsn, false)"),
    )
    .get_result(c)
}

/// A PostgreSQL LSN (`X/Y`, hexadecimal halves) as a number.
fn lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The later of two PostgreSQL LSNs.
pub(crate) fn pg_later(a: &str, b: &str) -> Option<String> {
    Some(if lsn(a)? >= lsn(b)? { a } else { b }.to_string())
}

/// MariaDB: a replica runs with `read_only` (root ignores it, applications must not be root).
/// A Galera node (`wsrep_on`) must also be ready and Synced (`wsrep_local_state` 4): any
/// other node (joining, donor, or cut off from the primary component) answers with an error,
/// so the cluster bans it until a check finds it synced.
#[cfg(feature = "mysql")]
pub(crate) fn my_role(c: &mut diesel::MysqlConnection) -> QueryResult<HostRole> {
    let (read_only, wsrep, ready, state): (i64, i64, Option<String>, Option<String>) =
        diesel::select((
            sql::<BigInt>("CAST(@@read_only AS SIGNED)"),
            sql::<BigInt>("CAST(@@wsrep_on AS SIGNED)"),
            sql::<Nullable<Text>>(
                "(SELECT variable_value FROM information_schema.global_status \
                 WHERE variable_name = 'WSREP_READY')",
            ),
            sql::<Nullable<Text>>(
                "(SELECT variable_value FROM information_schema.global_status \
                 WHERE variable_name = 'WSREP_LOCAL_STATE')",
            ),
        ))
        .get_result(c)?;
    if wsrep != 0 && !galera_synced(ready.as_deref(), state.as_deref()) {
        return Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(format!(
                "Galera node not usable: wsrep_ready={}, wsrep_local_state={} (4 = Synced)",
                ready.as_deref().unwrap_or("?"),
                state.as_deref().unwrap_or("?")
            )),
        ));
    }
    Ok(if read_only == 0 {
        HostRole::Primary
    } else {
        HostRole::Replica
    })
}

/// Whether a Galera node's status says it may serve: `wsrep_ready` ON and
/// `wsrep_local_state` 4 (Synced).
fn galera_synced(ready: Option<&str>, state: Option<&str>) -> bool {
    ready.is_some_and(|r| r.eq_ignore_ascii_case("ON")) && state.map(str::trim) == Some("4")
}

/// MariaDB's `SHOW SLAVE STATUS`, the one column read.
#[cfg(feature = "mysql")]
#[derive(diesel::QueryableByName)]
struct SlaveStatus {
    #[diesel(sql_type = Nullable<BigInt>, column_name = Seconds_Behind_Master)]
    seconds_behind_master: Option<i64>,
}

/// MariaDB: `Seconds_Behind_Master` (whole seconds; NULL, hence `None`, when replication is
/// paused or broken); zero on a host that replicates from nothing.
#[cfg(feature = "mysql")]
pub(crate) fn my_lag(c: &mut diesel::MysqlConnection) -> QueryResult<Option<Duration>> {
    let rows: Vec<SlaveStatus> = diesel::sql_query("SHOW SLAVE STATUS").load(c)?;
    Ok(match rows.first() {
        None => Some(Duration::ZERO),
        Some(row) => row
            .seconds_behind_master
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    })
}

/// MariaDB: the GTIDs of everything in the binary log (commits of this connection included).
#[cfg(feature = "mysql")]
pub(crate) fn my_position(c: &mut diesel::MysqlConnection) -> QueryResult<Option<String>> {
    let pos: Option<String> =
        diesel::select(sql::<Nullable<Text>>("@@gtid_binlog_pos")).get_result(c)?;
    Ok(pos.filter(|p| !p.is_empty()))
}

/// MariaDB Galera: `COMMIT`, in one batch after the statement that notes the GTID of the last
/// write set this connection replicated (it moves on with each write commit of the
/// connection, not with a read-only or empty one) in a session variable.
#[cfg(feature = "mysql")]
const MY_NOTED_COMMIT: &str = "SET @custodian_written = WSREP_LAST_WRITTEN_GTID(); COMMIT";

/// MariaDB Galera: commits the open top-level transaction of `c` by [`MY_NOTED_COMMIT`], and
/// keeps diesel's transaction manager in step as its own commit does: the depth drops on
/// success; on failure the transaction is rolled back, and a failed rollback leaves the
/// manager broken (the pool then discards the connection).
#[cfg(feature = "mysql")]
pub(crate) fn my_commit_noting_written(c: &mut diesel::MysqlConnection) -> QueryResult<()> {
    use diesel::connection::{
        AnsiTransactionManager, SimpleConnection, TransactionDepthChange, TransactionManager,
        TransactionManagerStatus,
    };
    let status = AnsiTransactionManager::transaction_manager_status_mut(c);
    if status.transaction_depth()?.map(|d| d.get()) != Some(1) {
        return Err(diesel::result::Error::NotInTransaction);
    }
    match c.batch_execute(MY_NOTED_COMMIT) {
        Ok(()) => {
            if let TransactionManagerStatus::Valid(valid) =
                AnsiTransactionManager::transaction_manager_status_mut(c)
            {
                // The connection may have seen the transaction end already: fine.
                let _ = valid.change_transaction_depth(TransactionDepthChange::DecreaseDepth);
            }
            Ok(())
        }
        Err(commit_error) => match AnsiTransactionManager::rollback_transaction(c) {
            Ok(()) => Err(commit_error),
            Err(rollback_error) => {
                AnsiTransactionManager::transaction_manager_status_mut(c).set_in_error();
                Err(diesel::result::Error::RollbackErrorOnCommit {
                    rollback_error: Box::new(rollback_error),
                    commit_error: Box::new(commit_error),
                })
            }
        },
    }
}

/// MariaDB Galera: the mark [`MY_NOTE_WRITTEN`] noted, and the mark now.
#[cfg(feature = "mysql")]
pub(crate) fn my_written_marks(
    c: &mut diesel::MysqlConnection,
) -> QueryResult<(Option<String>, Option<String>)> {
    diesel::select((
        sql::<Nullable<Text>>("CAST(@custodian_written AS CHAR)"),
        sql::<Nullable<Text>>("WSREP_LAST_WRITTEN_GTID()"),
    ))
    .get_result(c)
}

/// MariaDB: `MASTER_GTID_WAIT` with no wait answers 0 once the replica applied `position`.
#[cfg(feature = "mysql")]
pub(crate) fn my_replayed(c: &mut diesel::MysqlConnection, position: &str) -> QueryResult<bool> {
    let outcome: Option<i64> = diesel::select(
        sql::<Nullable<BigInt>>("CAST(MASTER_GTID_WAIT(")
            .bind::<Text, _>(position)
            .sql(", 0) AS SIGNED)"),
    )
    .get_result(c)?;
    Ok(outcome == Some(0))
}

/// A MariaDB GTID list (`domain-server-seq,...`) as (domain, seq, gtid) triples.
fn gtids(text: &str) -> Option<Vec<(u64, u64, &str)>> {
    text.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| {
            let mut parts = g.split('-');
            let domain = parts.next()?.parse().ok()?;
            let _server: u64 = parts.next()?.parse().ok()?;
            let seq = parts.next()?.parse().ok()?;
            parts.next().is_none().then_some((domain, seq, g))
        })
        .collect()
}

/// The later of two MariaDB GTID lists: per replication domain, the higher sequence number.
pub(crate) fn my_later(a: &str, b: &str) -> Option<String> {
    let mut merged: std::collections::BTreeMap<u64, (u64, &str)> = Default::default();
    for (domain, seq, gtid) in gtids(a)?.into_iter().chain(gtids(b)?) {
        let entry = merged.entry(domain).or_insert((seq, gtid));
        if seq > entry.0 {
            *entry = (seq, gtid);
        }
    }
    Some(
        merged
            .values()
            .map(|(_, g)| *g)
            .collect::<Vec<_>>()
            .join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_positions() {
        assert_eq!(
            pg_later("0/3000060", "0/2FFFFFF").as_deref(),
            Some("0/3000060")
        );
        assert_eq!(pg_later("0/FFFFFFFF", "1/0").as_deref(), Some("1/0"));
        assert_eq!(pg_later("junk", "1/0"), None);
        assert_eq!(
            my_later("0-1-5,1-2-9", "0-1-7").as_deref(),
            Some("0-1-7,1-2-9")
        );
        assert_eq!(my_later("0-1-5", "").as_deref(), Some("0-1-5"));
        assert_eq!(my_later("0-1", "0-1-7"), None);
    }

    #[test]
    fn only_ready_synced_galera_nodes_serve() {
        assert!(galera_synced(Some("ON"), Some("4")));
        assert!(!galera_synced(Some("OFF"), Some("4")));
        assert!(!galera_synced(Some("ON"), Some("2")));
        assert!(!galera_synced(None, Some("4")));
        assert!(!galera_synced(Some("ON"), None));
    }
}
