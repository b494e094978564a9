//! A MariaDB Galera cluster on the private rig (tests/cluster/galera.sh: three synced nodes):
//! role discovery of synced nodes and the two writer modes. Where a statement ran is asked of
//! the server itself (its port).

use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::{Connection, RunQueryDsl};
use custodian::prelude::*;
use custodian::{DatabaseConfig, Db, Error, Galera, HostRole};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The rig's SQL ports, in configuration order.
const PORTS: [u16; 3] = [24061, 24062, 24063];

/// An account of the bank load.
#[entity(table = "accounts", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
}

/// Runs a rig command; a failure fails the test with the command to run by hand.
fn rig(args: &[&str]) {
    let script = format!("{}/tests/cluster/galera.sh", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "`{script} {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
        custodian::diesel::MysqlConnection::establish(&node_url(PORTS[0], "mysql"))
            .expect("connect to the first Galera node")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let started = Instant::now();
        for port in &PORTS[1..] {
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
        let hosts: Vec<String> = PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect();
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
            custodian::diesel::MysqlConnection::establish(&node_url(PORTS[0], "mysql"))
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// The port of the server `s` runs on, asked of the server.
fn port_of(s: &mut Session) -> custodian::Result<u16> {
    let port: i64 = custodian::diesel::select(custodian::diesel::dsl::sql::<
        custodian::diesel::sql_types::BigInt,
    >("CAST(@@port AS SIGNED)"))
    .get_result(s.connection())
    .map_err(|e| s.backend().classify(e))?;
    Ok(u16::try_from(port).expect("a port"))
}

/// Every synced node answers as primary: without a Galera mode that is a configuration error
/// naming the setting; in single-writer mode writes land on the first node and reader
/// sessions on the others; in multi-writer mode write sessions take the nodes in turn.
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
        assert_eq!(port_of(&mut s).unwrap(), PORTS[0]);
    }
    let mut read_on = BTreeMap::<u16, usize>::new();
    for _ in 0..6 {
        let mut r = single.reader().unwrap();
        *read_on.entry(port_of(&mut r).unwrap()).or_default() += 1;
    }
    assert_eq!(
        read_on.keys().copied().collect::<Vec<_>>(),
        PORTS[1..].to_vec(),
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
