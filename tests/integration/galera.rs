//! A MariaDB Galera cluster on the private rig (tests/cluster/galera.sh: three synced nodes):
//! role discovery of synced nodes, the two writer modes, and the bank load (`bank.rs`) over the
//! three nodes in multi-writer mode with one node stopped half-way. Where a statement ran is
//! asked of the server itself (its port).

use crate::bank::{self, port_of, Account, Tally};
use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::Connection;
use custodian::{DatabaseConfig, Db, Error, Galera, HostRole};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The rig's SQL ports, in configuration order (`CUSTODIAN_GALERA_RIG_PORT`, as galera.sh).
fn ports() -> [u16; 3] {
    let p = crate::cluster_rig::rig_port("CUSTODIAN_GALERA_RIG_PORT", 24061);
    [p, p + 1, p + 2]
}

/// Runs a command of `tests/cluster/galera.sh`.
fn rig(args: &[&str]) {
    crate::cluster_rig::run_script("galera", args);
}

fn node_url(port: u16, db: &str) -> String {
    format!("mysql://app:app@127.0.0.1:{port}/{db}")
}

/// One test's database on the rig, present on every node; dropped afterwards. Holding it
/// holds the rig: tests that stop nodes do not overlap.
struct GaleraDb {
    name: String,
    _rig: MutexGuard<'static, ()>,
}

impl GaleraDb {
    /// Starts the rig (every node running and synced), creates a database through the first
    /// node and waits (10 s at most) until every node has it.
    fn new() -> GaleraDb {
        static LOCK: Mutex<()> = Mutex::new(());
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // Also restarts a node a failed test left stopped.
        rig(&["up"]);
        let name = format!(
            "gl_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        custodian::diesel::MysqlConnection::establish(&node_url(ports()[0], "mysql"))
            .expect("connect to the first Galera node")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let started = Instant::now();
        for port in &ports()[1..] {
            while custodian::diesel::MysqlConnection::establish(&node_url(*port, &name)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "database {name} not on port {port} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        GaleraDb { name, _rig: guard }
    }

    /// The multi-host URL of this database: every node.
    fn url(&self) -> String {
        let hosts: Vec<String> = ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("mysql://app:app@{}/{}", hosts.join(","), self.name)
    }

    /// Opens the database in `mode`, checked every 100 ms.
    fn open(&self, mode: Option<Galera>) -> custodian::Result<Db> {
        let mut cfg = DatabaseConfig::from_url(&self.url())
            .expect("multi-host url")
            .check_interval(Duration::from_millis(100));
        cfg.pool.max_size = 6;
        cfg.pool.min_idle = Some(1);
        cfg.pool.connection_timeout_ms = 2_000;
        cfg.cluster.check_timeout_ms = 300;
        cfg.cluster.galera = mode;
        cfg.commit_outcome.record = true;
        custodian::open(cfg)
    }
}

impl Drop for GaleraDb {
    fn drop(&mut self) {
        if let Ok(mut c) =
            custodian::diesel::MysqlConnection::establish(&node_url(ports()[0], "mysql"))
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// Waits (at most `limit`) until `ok` holds.
fn until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every synced node answers as primary: without a Galera mode that is a configuration error
/// naming the setting; in single-writer mode writes land on the first node and reader
/// sessions on the others; in multi-writer mode write sessions take the nodes in turn.
mod faults;

#[test]
fn synced_nodes_and_writer_modes() {
    let rig_db = GaleraDb::new();
    match rig_db.open(None) {
        Err(e @ Error::Config { .. }) => assert!(e.to_string().contains("galera"), "{e}"),
        other => panic!("several primaries without a Galera mode: {other:?}"),
    }

    let single = rig_db
        .open(Some(Galera::Single))
        .expect("open single-writer");
    let status = single.cluster_status();
    assert!(
        status
            .iter()
            .all(|h| h.up && h.role == Some(HostRole::Primary)),
        "{status:?}"
    );
    single.create_table::<Account>().unwrap();
    for _ in 0..4 {
        let mut s = single.session().unwrap();
        assert_eq!(port_of(&mut s).unwrap(), ports()[0]);
    }
    let mut read_on = BTreeMap::<u16, usize>::new();
    for _ in 0..6 {
        let mut r = single.reader().unwrap();
        *read_on.entry(port_of(&mut r).unwrap()).or_default() += 1;
    }
    assert_eq!(
        read_on.keys().copied().collect::<Vec<_>>(),
        ports()[1..].to_vec(),
        "reader sessions on the non-writing nodes: {read_on:?}"
    );
    drop(single);

    let multi = rig_db.open(Some(Galera::Multi)).expect("open multi-writer");
    let mut written_on = BTreeMap::<u16, usize>::new();
    for i in 0..6 {
        let port = multi
            .transaction(|s| {
                s.insert(Account { id: i, balance: 0 })?;
                port_of(s)
            })
            .unwrap();
        *written_on.entry(port).or_default() += 1;
    }
    assert_eq!(
        written_on.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "writes taken in turn: {written_on:?}"
    );
    // Read-your-writes on another node: every session waits for the cluster (wsrep_sync_wait).
    for i in 0..6 {
        let mut s = multi.session().unwrap();
        assert!(
            s.find::<Account>(&i).unwrap().is_some(),
            "row {i} on {:?}",
            port_of(&mut s)
        );
    }
}

/// The bank load (`bank::worker`) over the three nodes in multi-writer mode: 6 threads for
/// 8 s, each operation in a session of its own (so sessions take the nodes in turn),
/// serializable transfers that record themselves, and every fifth operation a read of every
/// balance whose sum must be the total. After 3 s the last node is stopped: it is banned
/// within 2 s and transfers go on. Checks: the sum on every read and at the end, every
/// acknowledged transfer recorded once, every node served transfers, certification conflicts
/// retried, failures surfaced to the caller at most 1% of operations.
#[test]
fn bank_load_over_three_nodes_survives_a_stopped_node() {
    const ACCOUNTS: i64 = 8;
    const INITIAL: i64 = 1_000;
    let rig_db = GaleraDb::new();
    let db = rig_db.open(Some(Galera::Multi)).expect("open multi-writer");
    bank::open_accounts(&db, ACCOUNTS, INITIAL);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || bank::worker(&db, w, &stop, ACCOUNTS * INITIAL, ACCOUNTS))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let last = ports()[2];
    rig(&["stop", &last.to_string()]);
    let stopped = Instant::now();
    until(Duration::from_secs(2), "the stopped node is banned", || {
        !db.cluster_status()[2].up
    });
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let all = Tally::sum(workers.into_iter().map(|h| h.join().unwrap()).collect());
    let after_stop = all.acked.iter().filter(|(_, at, _)| *at > stopped).count();
    let recorded = bank::audit_books(
        &db,
        ACCOUNTS,
        INITIAL,
        all.acked.iter().map(|(id, _, _)| id.as_str()),
    );
    let operations = all.operations();
    println!(
        "galera bank load: {operations} operations ({} transfers, {} reads), {} closure runs, \
         transfers per node {:?}, {after_stop} acknowledged after the stop, {recorded} \
         recorded, {} failed ({:.2}%): {:?}; status {:?}",
        all.transfers,
        all.reads,
        all.attempts,
        all.on,
        all.failed.len(),
        100.0 * all.failed.len() as f64 / operations.max(1) as f64,
        all.failed,
        db.cluster_status()
    );
    assert!(
        all.transfers >= 100,
        "the load ran: {} transfers",
        all.transfers
    );
    assert!(
        all.attempts > operations,
        "certification conflicts happened and were retried: {} runs",
        all.attempts
    );
    assert_eq!(all.on.len(), 3, "every node served transfers: {:?}", all.on);
    assert!(
        after_stop >= 20,
        "the load went on after the stop: {after_stop}"
    );
    assert!(
        all.failed.len() * 100 <= operations,
        "{} of {operations} operations failed: {:?}",
        all.failed.len(),
        all.failed
    );

    rig(&["start", &last.to_string()]);
    until(
        Duration::from_secs(10),
        "the restarted node is readmitted",
        || db.cluster_status()[2].up,
    );
}
