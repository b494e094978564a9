//! Clusters on the private rigs (tests/cluster/*.sh): a PostgreSQL primary with two streaming
//! replicas and a MariaDB primary with a GTID replica. Where a session ran is asked of the
//! server itself (its port), not of custodian.

use crate::cluster_rig::{ports, rig as run_rig, RigDb};
use custodian::diesel::RunQueryDsl;
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Db, Error, HostRole};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A row written then read back.
#[entity(table = "notes", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    #[column(primary_key)]
    pub id: i64,
    pub body: String,
}

/// Opens the rig database through its multi-host URL, checked every 100 ms.
fn open(rig: &RigDb, tweak: impl FnOnce(DatabaseConfig) -> DatabaseConfig) -> Db {
    let mut cfg = DatabaseConfig::from_url(&rig.url())
        .expect("multi-host url")
        .check_interval(Duration::from_millis(100));
    cfg.pool.max_size = 3;
    cfg.pool.min_idle = Some(1);
    cfg.cluster.check_timeout_ms = 300;
    let db = custodian::open(tweak(cfg)).expect("open the cluster");
    db.create_table::<Note>().expect("create notes");
    db
}

/// The port of the server `s` runs on, asked of the server.
fn port_of(s: &mut Session) -> u16 {
    let sql = match s.backend().kind() {
        BackendKind::Postgres => "inet_server_port()::int8",
        _ => "CAST(@@port AS SIGNED)",
    };
    let port: i64 = custodian::diesel::select(custodian::diesel::dsl::sql::<
        custodian::diesel::sql_types::BigInt,
    >(sql))
    .get_result(s.connection())
    .expect("server port");
    u16::try_from(port).expect("a port")
}

/// Waits (at most `limit`) until `ok` holds.
fn until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every replica has replayed everything the primary committed (5 s at most).
fn caught_up(db: &Db) {
    db.session()
        .unwrap()
        .insert(Note {
            // A fresh key each call, so that every call writes (and has a position).
            id: -(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_micros() as i64)),
            body: "mark".into(),
        })
        .ok();
    let marker = db.position().expect("a position after a write");
    let probe = db.with_position(Some(&marker));
    until(Duration::from_secs(5), "replicas catch up", || {
        (0..4).all(|_| probe.reader().unwrap().on_replica())
    });
}

fn roles_are_discovered(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c);
    let status = db.cluster_status();
    assert_eq!(status.len(), ports(kind).len());
    assert_eq!(status[0].role, Some(HostRole::Primary), "{status:?}");
    assert!(
        status[1..]
            .iter()
            .all(|h| h.role == Some(HostRole::Replica) && h.up),
        "{status:?}"
    );
    // Roles are asked, not taken from the order: the primary named last is still found.
    let mut hosts: Vec<u16> = ports(kind).to_vec();
    hosts.rotate_left(1);
    let list: Vec<String> = hosts.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let url = match kind {
        BackendKind::Postgres => format!("postgres://postgres@{}/{}", list.join(","), rig_db.name),
        _ => format!("mysql://app:app@{}/{}", list.join(","), rig_db.name),
    };
    let db = custodian::open(DatabaseConfig::from_url(&url).unwrap()).unwrap();
    assert_eq!(port_of(&mut db.session().unwrap()), ports(kind)[0]);
}

fn reads_on_replicas_writes_on_primary(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c);
    let primary = ports(kind)[0];
    let mut s = db.session().unwrap();
    s.insert(Note {
        id: 1,
        body: "one".into(),
    })
    .unwrap();
    assert_eq!(port_of(&mut s), primary, "Db::session runs on the primary");
    drop(s);
    caught_up(&db);
    let mut per_port: BTreeMap<u16, usize> = BTreeMap::new();
    for _ in 0..12 {
        let mut r = db.reader().unwrap();
        assert!(r.on_replica());
        assert_eq!(r.find::<Note>(&1).unwrap().unwrap().body, "one");
        *per_port.entry(port_of(&mut r)).or_default() += 1;
    }
    let replicas: Vec<u16> = ports(kind)[1..].to_vec();
    assert_eq!(
        per_port.keys().copied().collect::<Vec<_>>(),
        replicas,
        "{per_port:?}"
    );
    // Round robin spreads evenly.
    assert!(
        per_port.values().all(|&n| n == 12 / replicas.len()),
        "{per_port:?}"
    );
    // A read-only transaction runs on a replica; one forced to the primary does not.
    let ro = TxOptions::new().read_only();
    let port = db.transaction_with(&ro, |s| Ok(port_of(s))).unwrap();
    assert!(replicas.contains(&port), "read-only transaction on {port}");
    let port = db
        .transaction_with(&ro.clone().on_primary(), |s| Ok(port_of(s)))
        .unwrap();
    assert_eq!(port, primary);
    // A write through a reader session moves it to the primary before it is sent.
    let mut r = db.reader().unwrap();
    r.insert(Note {
        id: 2,
        body: "two".into(),
    })
    .unwrap();
    assert!(!r.on_replica());
    assert_eq!(port_of(&mut r), primary);
    r.transaction(|s| {
        s.update(&mut Note {
            id: 2,
            body: "deux".into(),
        })
    })
    .unwrap();
    assert_eq!(
        db.session()
            .unwrap()
            .find::<Note>(&2)
            .unwrap()
            .unwrap()
            .body,
        "deux"
    );
    // A reader's non-read-only transaction runs on the primary too.
    let port = db
        .reader()
        .unwrap()
        .transaction(|s| Ok(port_of(s)))
        .unwrap();
    assert_eq!(port, primary);
}

/// Read-your-writes with replay delayed on every replica (PostgreSQL 1 s; MariaDB 2 s, as
/// `MASTER_DELAY` counts whole seconds of the events' timestamps, so 1 s would delay a write
/// by anything from 0 to 1 s): each of 1,000 writes (`CUSTODIAN_RYW_ROUNDS`) is read back at
/// once through a reader session, never stale. The premise is checked, not assumed: before
/// the rounds, a row written on the primary must be missing on every replica 50 ms later,
/// and a handle without the position must read stale data in at least half of the rounds.
/// Once caught up, replicas serve again.
fn read_your_writes_under_delay(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c);
    caught_up(&db);
    let replicas = &ports(kind)[1..];
    let (on, off): (&[&str], &[&str]) = match kind {
        BackendKind::Postgres => (&["lag-on", "", "1000"], &["lag-off", ""]),
        _ => (&["lag-on", "", "2"], &["lag-off", ""]),
    };
    for p in replicas {
        let port = p.to_string();
        let args: Vec<&str> = on
            .iter()
            .map(|a| if a.is_empty() { port.as_str() } else { a })
            .collect();
        run_rig(kind, &args);
    }
    for (k, &port) in replicas.iter().enumerate() {
        delay_in_effect(kind, port, &rig_db.name, -100 - k as i64);
    }
    let blind = db.with_position(None);
    let mut stale_elsewhere = 0;
    let mut blind_on_replica = 0;
    let mut on_replica = 0;
    let rounds: i64 = std::env::var("CUSTODIAN_RYW_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for i in 0..rounds {
        db.session()
            .unwrap()
            .insert(Note {
                id: 100 + i,
                body: format!("v{i}"),
            })
            .unwrap();
        let mut r = db.reader().unwrap();
        let read_on_replica = r.on_replica();
        let seen = r.find::<Note>(&(100 + i)).unwrap();
        assert_eq!(
            seen.map(|n| n.body),
            Some(format!("v{i}")),
            "round {i}: stale read"
        );
        // The token carries the guarantee to another handle.
        let other = db.with_position(db.position().as_deref());
        assert!(other
            .reader()
            .unwrap()
            .find::<Note>(&(100 + i))
            .unwrap()
            .is_some());
        let mut b = blind.reader().unwrap();
        blind_on_replica += usize::from(b.on_replica());
        if b.on_replica() && b.find::<Note>(&(100 + i)).unwrap().is_none() {
            stale_elsewhere += 1;
            // The replica had not replayed the write even after the read above: a reader
            // with the position must not have been on it. (A round where the replica had
            // already caught up, on a loaded machine, may legitimately serve the read there.)
            on_replica += usize::from(read_on_replica);
        }
    }
    for p in replicas {
        let port = p.to_string();
        let args: Vec<&str> = off
            .iter()
            .map(|a| if a.is_empty() { port.as_str() } else { a })
            .collect();
        run_rig(kind, &args);
    }
    println!(
        "{kind:?}: {rounds} rounds, {blind_on_replica} blind reads on a replica, \
         {stale_elsewhere} of them stale"
    );
    assert!(
        stale_elsewhere > 0 && stale_elsewhere * 2 >= blind_on_replica,
        "replication was delayed in only {stale_elsewhere} of {blind_on_replica} rounds read \
         blind on a replica: the test proves little"
    );
    assert_eq!(
        on_replica, 0,
        "a delayed replica served a read of an unreplayed write"
    );
    caught_up(&db);
    let mut r = db.reader().unwrap();
    assert!(r.on_replica(), "replicas serve again once caught up");
    assert!(r.find::<Note>(&(100 + rounds - 1)).unwrap().is_some());
}

/// Waits (5 s at most: PostgreSQL applies a reloaded setting asynchronously) until a row
/// written on the primary is still missing on the replica at `port` 50 ms later: replay there
/// is delayed. Row `id` is the probe.
fn delay_in_effect(kind: BackendKind, port: u16, db: &str, id: i64) {
    let started = Instant::now();
    for attempt in 0.. {
        let probe = id - 1000 * attempt;
        RigDb::raw(
            kind,
            ports(kind)[0],
            db,
            &format!("INSERT INTO notes (id, body) VALUES ({probe}, 'probe')"),
        );
        std::thread::sleep(Duration::from_millis(50));
        if !note_on(kind, port, db, probe) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "replay on {port} is not delayed: a write was there 50 ms later"
        );
    }
}

/// Whether note `id` is on the host at `port`, asked outside custodian.
fn note_on(kind: BackendKind, port: u16, db: &str, id: i64) -> bool {
    use custodian::diesel::{dsl::sql, sql_types::BigInt, Connection};
    // Outside custodian: a plain connection to that one host.
    let count = sql::<BigInt>(&format!("(SELECT COUNT(*) FROM notes WHERE id = {id})"));
    let n = match kind {
        BackendKind::Postgres => {
            let url = format!("postgres://postgres@127.0.0.1:{port}/{db}");
            custodian::diesel::PgConnection::establish(&url)
                .map(|mut c| custodian::diesel::select(count).get_result::<i64>(&mut c))
                .expect("replica connection")
        }
        _ => {
            let url = format!("mysql://app:app@127.0.0.1:{port}/{db}");
            custodian::diesel::MysqlConnection::establish(&url)
                .map(|mut c| custodian::diesel::select(count).get_result::<i64>(&mut c))
                .expect("replica connection")
        }
    };
    n.expect("count notes") == 1
}

/// A replica whose replay is paused falls out of the lag bound and serves no reads; it is
/// readmitted once it resumes.
fn a_paused_replica_is_skipped(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let bound = Duration::from_millis(400);
    let db = open(&rig_db, |c| c.max_replica_lag(bound));
    caught_up(&db);
    let paused = ports(kind)[1];
    run_rig(kind, &["pause", &paused.to_string()]);
    let mut s = db.session().unwrap();
    // Writes keep coming, so the paused replica's lag grows (MariaDB: NULL while paused).
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < bound + Duration::from_millis(500) {
        n += 1;
        s.insert(Note {
            id: 1000 + n,
            body: "w".into(),
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let fresh = db.with_position(None);
    for _ in 0..10 {
        let mut r = fresh.reader().unwrap();
        assert_ne!(port_of(&mut r), paused, "{:?}", db.cluster_status());
    }
    run_rig(kind, &["resume", &paused.to_string()]);
    until(
        Duration::from_secs(5),
        "the resumed replica is readmitted",
        || (0..4).any(|_| port_of(&mut fresh.reader().unwrap()) == paused),
    );
}

/// The lag bound holds when a reader opens, not only as of the last check: with checks every
/// 60 s, replicas paused right after the check that found them current serve readers until
/// the bound has passed since, then no more, without another check (a read on them would be
/// stale: the handle reading does not wait for its own writes).
fn the_lag_bound_holds_at_read_time(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    // The premise needs the writes and the first reader within the bound of the check that
    // found the replicas current; on a loaded machine that can take longer than a short
    // bound, so the test tries longer bounds before giving up (it never passes without
    // having checked both sides of one bound).
    for secs in [2, 5, 10] {
        if lag_bound_round(kind, &rig_db, Duration::from_secs(secs)) {
            return;
        }
    }
    panic!("setting up took longer than 10 s every time: too slow to test");
}

/// One try of [`the_lag_bound_holds_at_read_time`] with `bound`; `false` when setting up took
/// longer than the bound (nothing was checked).
fn lag_bound_round(kind: BackendKind, rig_db: &RigDb, bound: Duration) -> bool {
    let db = open(rig_db, |c| {
        c.check_interval(Duration::from_secs(60))
            .max_replica_lag(bound)
    });
    let opened = Instant::now();
    caught_up(&db);
    let replicas = &ports(kind)[1..];
    for port in replicas {
        run_rig(kind, &["pause", &port.to_string()]);
    }
    let resume = || {
        for port in replicas {
            run_rig(kind, &["resume", &port.to_string()]);
        }
    };
    let mut s = db.session().unwrap();
    s.delete_where::<Note>(notes::id.eq(1)).unwrap();
    s.insert(Note {
        id: 1,
        body: "new".into(),
    })
    .unwrap();
    drop(s);
    let other = db.with_position(None);
    let early = other.reader().unwrap().on_replica();
    if opened.elapsed() >= bound {
        resume();
        caught_up(&db);
        return false;
    }
    assert!(
        early,
        "a replica current at the check serves within the bound"
    );
    std::thread::sleep(bound.saturating_sub(opened.elapsed()) + Duration::from_millis(100));
    let mut r = other.reader().unwrap();
    let found = r.find::<Note>(&1).unwrap();
    let on = port_of(&mut r);
    assert!(
        found.is_some(),
        "a stale read on {on} after the bound passed since the check"
    );
    assert!(!r.on_replica());
    drop(r);
    resume();
    true
}

/// Threads of this process named as the cluster checker (the kernel keeps 15 bytes of a name).
fn checker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "custodian-clust")
        .count()
}

/// The health checker belongs to the `Db`: one thread while it is open, none once the last
/// handle is dropped. Holds both rigs, so no other cluster test opens one meanwhile.
#[test]
fn the_checker_stops_with_the_db() {
    let pg = RigDb::new(BackendKind::Postgres);
    let _my = RigDb::new(BackendKind::Mysql);
    let before = checker_threads();
    let db = open(&pg, |c| c);
    let reader = db.reader().unwrap();
    assert_eq!(checker_threads(), before + 1);
    drop(db);
    drop(reader);
    until(Duration::from_secs(2), "the checker thread stops", || {
        checker_threads() == before
    });
}

/// The primary stops; a replica is promoted: writes fail fast meanwhile, and a transaction run
/// after the promotion lands on the new primary within one check interval and a second (its
/// retry policy waits). Tears the rig down afterwards (the next test builds a fresh one).
fn writes_follow_a_promoted_replica(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c);
    db.session()
        .unwrap()
        .insert(Note {
            id: 1,
            body: "before".into(),
        })
        .unwrap();
    caught_up(&db);
    let (old, new) = (ports(kind)[0], ports(kind)[1]);
    struct Rebuild(BackendKind);
    impl Drop for Rebuild {
        fn drop(&mut self) {
            run_rig(self.0, &["down"]);
        }
    }
    let _rebuild = Rebuild(kind);
    run_rig(kind, &["stop", &old.to_string()]);
    until(
        Duration::from_secs(2),
        "the stopped primary is banned",
        || !db.cluster_status()[0].up,
    );
    let started = Instant::now();
    match db.session() {
        Err(Error::Connection { .. }) => {}
        other => panic!("a write session without a primary: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "did not fail fast"
    );
    run_rig(kind, &["promote", &new.to_string()]);
    let promoted = Instant::now();
    let port = db
        .transaction(|s| {
            s.insert(Note {
                id: 2,
                body: "after".into(),
            })?;
            Ok(port_of(s))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e} after {:?}: {:?}",
                promoted.elapsed(),
                db.cluster_status()
            )
        });
    assert_eq!(port, new);
    assert!(
        promoted.elapsed() < Duration::from_millis(1100),
        "{:?}",
        promoted.elapsed()
    );
    let mut s = db.session().unwrap();
    assert_eq!(s.find::<Note>(&1).unwrap().unwrap().body, "before");
    assert_eq!(s.find::<Note>(&2).unwrap().unwrap().body, "after");
    drop(s);
    drop(db);
    drop(rig_db);
}

macro_rules! on_rigs {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $( #[test] fn $name() { super::$name(custodian::BackendKind::Postgres) } )*
        }
        mod mariadb {
            $( #[test] fn $name() { super::$name(custodian::BackendKind::Mysql) } )*
        }
    };
}

mod failover;
mod health;
mod restart;

on_rigs!(
    roles_are_discovered,
    reads_on_replicas_writes_on_primary,
    read_your_writes_under_delay,
    a_paused_replica_is_skipped,
    the_lag_bound_holds_at_read_time,
    writes_follow_a_promoted_replica,
);

#[test]
fn sqlite_has_no_replicas() {
    let path = std::env::temp_dir().join(format!("cl_{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let cfg = DatabaseConfig::new(custodian::DatabaseUrl::new(&url)).host(&url);
    match custodian::open(cfg) {
        Err(Error::Config { message, .. }) => assert!(message.contains("no replicas"), "{message}"),
        other => panic!("expected a Config error, got {other:?}"),
    }
    let e = DatabaseConfig::from_url(&format!("{url},{url}")).unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    // One host: no cluster, and a reader session is an ordinary one.
    let db = custodian::open(DatabaseConfig::from_url(&url).unwrap()).unwrap();
    assert!(db.cluster_status().is_empty());
    assert!(!db.reader().unwrap().on_replica());
    drop(db);
    std::fs::remove_file(&path).ok();
}
