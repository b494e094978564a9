//! Galera under faults, on the private 3-node rig: a read on another node right after a
//! commit (what `wsrep_sync_wait` is for), a node killed with SIGKILL under the bank load, a
//! commit cut off by its node's death settled from another node, and two of three nodes lost
//! (the survivor leaves the primary component: 1047).

use super::{ports, rig, until, GaleraDb};
use crate::bank::{self, Tally};
use custodian::prelude::*;
use custodian::{DatabaseConfig, Db, Error, Galera};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A row written on one node and read on another.
#[entity(table = "marks", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    #[column(primary_key)]
    pub id: i64,
}

/// A single-host handle on one node of the rig (no cluster: custodian picks no node).
fn on_node(rig_db: &GaleraDb, port: u16) -> Db {
    let url = format!("mysql://app:app@127.0.0.1:{port}/{}", rig_db.name);
    let mut cfg = DatabaseConfig::from_url(&url).expect("node url");
    cfg.pool.max_size = 2;
    cfg.pool.connection_timeout_ms = 2_000;
    custodian::open(cfg).expect("open one node")
}

/// Runs `f` on a thread and waits at most `limit` for it: a hang fails the test.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}: hung"))
}

/// 300 rounds: a row committed through the first node, then at once looked up through the
/// second. Galera applies a certified write set on the other nodes asynchronously; custodian
/// runs every session on a Galera node with `wsrep_sync_wait = 1`, so the read waits until its
/// node applied everything certified before it: no round may miss its row.
#[test]
fn a_read_on_another_node_sees_the_commit() {
    let rig_db = GaleraDb::new();
    let writer = on_node(&rig_db, ports()[0]);
    writer.create_table::<Mark>().unwrap();
    let reader = on_node(&rig_db, ports()[1]);
    let (mut w, mut r) = (writer.session().unwrap(), reader.session().unwrap());
    let mut missed = Vec::new();
    for id in 0..300 {
        w.insert(Mark { id }).unwrap();
        if r.find::<Mark>(&id).unwrap().is_none() {
            missed.push(id);
        }
    }
    assert!(
        missed.is_empty(),
        "stale reads on the second node: {missed:?}"
    );
}

/// The bank load over the three nodes (multi-writer) while the third node is killed with
/// SIGKILL: the others stall for a few seconds (the cluster waits out the dead node's
/// timeout), the retry policy waits with them. The sum holds on every read, every acknowledged
/// transfer is recorded once, at most 1% of operations fail; the node rejoins afterwards.
///
/// Attacks the commit on Galera: a local transaction that loses to a replicated write set is
/// brute-force aborted while the client is between statements; the server does not always
/// say so, and the `COMMIT` then answers OK with nothing open. custodian notes the
/// connection's last written GTID in the same round trip as `COMMIT`, just before it, reads it
/// with the one after `COMMIT` (`Backend::commit_noting_written`, `Backend::written_marks`)
/// and retries such a transaction instead of acknowledging it.
#[test]
fn bank_load_survives_a_killed_node() {
    const ACCOUNTS: i64 = 8;
    const OPENING: i64 = 1_000;
    let rig_db = GaleraDb::new();
    let db = {
        let mut db = rig_db.open(Some(Galera::Multi)).expect("open multi-writer");
        let mut cfg = db.config().clone();
        cfg.retry.max_attempts = 100;
        cfg.retry.max_elapsed_ms = 20_000;
        cfg.retry.max_delay_ms = 200;
        drop(db);
        db = custodian::open(cfg).expect("reopen with a longer retry budget");
        db
    };
    bank::open_accounts(&db, ACCOUNTS, OPENING);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || bank::worker(&db, w, &stop, ACCOUNTS * OPENING, ACCOUNTS))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let killed = ports()[2];
    rig(&["kill", &killed.to_string()]);
    let lost = Instant::now();
    until(Duration::from_secs(2), "the killed node is banned", || {
        !db.cluster_status()[2].up
    });
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    let all = within(Duration::from_secs(60), "the workers", move || {
        Tally::sum(workers.into_iter().map(|h| h.join().unwrap()).collect())
    });
    let after = all.acked.iter().filter(|(_, at, _)| *at > lost).count();
    let recorded = bank::recorded(&db);
    let missing: Vec<String> = all
        .acked
        .iter()
        .filter(|(id, _, _)| !recorded.contains(id))
        .map(|(id, at, port)| {
            let since = if *at > lost {
                format!("+{:?}", *at - lost)
            } else {
                format!("-{:?}", lost - *at)
            };
            format!("{id} on {port} at {since} from the kill")
        })
        .collect();
    println!("acknowledged, not recorded: {missing:?}");
    let recorded = bank::audit_books(
        &db,
        ACCOUNTS,
        OPENING,
        all.acked.iter().map(|(id, _, _)| id.as_str()),
    );
    println!(
        "galera, a node killed: {} transfers, {} reads, {} runs, {} acknowledged ({after} after \
         the kill), {recorded} recorded, per port {:?}; {} failed: {:?}",
        all.transfers,
        all.reads,
        all.attempts,
        all.acked.len(),
        all.on,
        all.failed.len(),
        all.failed
    );
    assert!(after >= 20, "the load went on after the kill: {after}");
    assert!(
        all.failed.len() * 100 <= all.operations(),
        "{} of {} operations failed",
        all.failed.len(),
        all.operations()
    );
    rig(&["start", &killed.to_string()]);
    until(Duration::from_secs(30), "the killed node rejoins", || {
        db.cluster_status()[2].up
    });
}

/// A transfer's `COMMIT` in flight when its node dies. The third node is frozen (SIGSTOP)
/// first, so the cluster cannot deliver the write set and the `COMMIT` waits; once the writer
/// node's process list shows it waiting, the writer is frozen too, the third node thawed
/// (before the cluster would evict it) and the writer killed (SIGKILL). Whether the write set
/// got through is up to the cluster; custodian must find out, from the node its session
/// reaches next, once the dead node has left the cluster (evicted after
/// `evs.suspect_timeout`, 3 s on the rig): the outcome row written in the same commit is there
/// exactly when it committed. The call returns `Ok`, never `CommitUnknown` (settled as
/// committed, or as not committed and run again on another node), and the books hold the
/// transfer once. The killed node rejoins afterwards.
#[test]
fn a_commit_cut_off_by_its_dead_node_is_settled_on_another() {
    let rig_db = GaleraDb::new();
    let db = {
        let db = rig_db
            .open(Some(Galera::Single))
            .expect("open single-writer");
        let mut cfg = db.config().clone();
        cfg.retry.max_attempts = 100;
        cfg.retry.max_elapsed_ms = 20_000;
        cfg.retry.max_delay_ms = 200;
        drop(db);
        custodian::open(cfg).expect("reopen with a longer retry budget")
    };
    bank::open_accounts(&db, 2, 100);
    let (writer, third) = (ports()[0], ports()[2]);
    let (reached, reached_rx) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let cut = {
        let db = db.clone();
        std::thread::spawn(move || {
            let (mut runs, mut cut_run) = (0, 0);
            let result = db.transaction_with(&TxOptions::new().serializable(), |tx| {
                runs += 1;
                let port = bank::transfer(tx, "cut", 1, 2, 7)?;
                if cut_run == 0 {
                    cut_run = runs;
                    reached.send(()).ok();
                    go_rx.recv().ok();
                }
                Ok(port)
            });
            (result, runs, cut_run, Instant::now())
        })
    };
    reached_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the cut transfer reached its commit");
    rig(&["freeze", &third.to_string()]);
    go.send(()).unwrap();
    until(
        Duration::from_secs(2),
        "the COMMIT waits on the writer",
        || committing(writer, &rig_db.name),
    );
    rig(&["freeze", &writer.to_string()]);
    rig(&["thaw", &third.to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    rig(&["kill", &writer.to_string()]);
    let lost = Instant::now();
    let (result, runs, cut_run, done) =
        within(Duration::from_secs(60), "the cut commit", move || {
            cut.join().unwrap()
        });
    let port = result.unwrap_or_else(|e| panic!("the cut commit is not settled: {e}"));
    println!(
        "cut commit settled {:?} after the kill: {runs} runs (cut on run {cut_run}), last on {port}",
        done - lost
    );
    assert!(done > lost, "the cut commit returned before the kill");
    assert_eq!(bank::audit_books(&db, 2, 100, ["cut"]), 1);
    rig(&["start", &writer.to_string()]);
    until(Duration::from_secs(30), "the killed node rejoins", || {
        db.cluster_status()[0].up
    });
}

/// Whether a session of database `db` on the node at `port` is running `COMMIT` (asked of the
/// node's own process list, outside custodian).
fn committing(port: u16, db: &str) -> bool {
    use custodian::diesel::{dsl::sql, sql_types::BigInt, Connection, RunQueryDsl};
    let url = format!("mysql://app:app@127.0.0.1:{port}/{db}");
    let Ok(mut c) = custodian::diesel::MysqlConnection::establish(&url) else {
        return false;
    };
    custodian::diesel::select(sql::<BigInt>(&format!(
        "(SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}' \
         AND INFO LIKE '%COMMIT%' AND ID <> CONNECTION_ID())"
    )))
    .get_result::<i64>(&mut c)
    .is_ok_and(|n| n > 0)
}

/// Two of three nodes killed: the survivor leaves the primary component (`wsrep_ready` OFF,
/// 1047 to plain statements). The cluster handle's checker bans it, and a write through the
/// cluster comes back within its retry budget as a typed [`Error::Connection`], never a hang.
/// A handle on the survivor alone gets its reads refused, typed, within bounded time: 1047 as
/// [`Error::Connection`], or, since custodian reads with `wsrep_sync_wait = 1`, the causal
/// wait's timeout (1205, [`Error::Serialization`]). Tears the rig down (the next test
/// bootstraps a fresh cluster).
#[test]
fn two_of_three_nodes_lost_is_a_connection_error() {
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            rig(&["down"]);
        }
    }
    let rig_db = GaleraDb::new();
    let _down = Down;
    let db = rig_db
        .open(Some(Galera::Single))
        .expect("open single-writer");
    db.create_table::<Mark>().unwrap();
    db.session().unwrap().insert(Mark { id: 1 }).unwrap();
    let survivor = on_node(&rig_db, ports()[0]);
    rig(&["kill", &ports()[1].to_string()]);
    rig(&["kill", &ports()[2].to_string()]);
    until(Duration::from_secs(30), "every node banned", || {
        db.cluster_status().iter().all(|h| !h.up)
    });
    let write = within(
        Duration::from_secs(30),
        "a write with no primary",
        move || {
            let mut options = TxOptions::new();
            options.retry = Some(custodian::RetryPolicy {
                max_elapsed_ms: 3_000,
                ..Default::default()
            });
            db.transaction_with(&options, |tx| tx.insert(Mark { id: 2 }).map(|_| ()))
        },
    );
    assert!(
        matches!(write, Err(Error::Connection { .. })),
        "a write with no primary component: {write:?}"
    );
    let read = within(
        Duration::from_secs(60),
        "a read on the survivor",
        move || survivor.session().and_then(|mut s| s.find::<Mark>(&1)),
    );
    match read {
        Err(Error::Connection { .. }) | Err(Error::Serialization { .. }) => {}
        other => panic!("a read on a node outside the primary component: {other:?}"),
    }
}
