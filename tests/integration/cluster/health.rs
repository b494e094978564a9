//! A replica lost and back: reads cut off on it (by key, `select`, `load`) run again on
//! another host within the same call, a select load over the replicas surfaces at most two
//! failures when one stops, the stopped replica is banned within a check, and it is
//! readmitted within one check interval of answering again.

use super::{caught_up, open, port_of, until, Note};
use crate::cluster_rig::{ports, rig as run_rig, RigDb};
use custodian::prelude::*;
use custodian::{BackendKind, Db};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tests' check interval (see `open`).
const INTERVAL: Duration = Duration::from_millis(100);

/// Reader sessions that stay open for 20 reads each, `select` and `load` in turn, until
/// `stop`: (reads, failures surfaced).
fn select_load(db: &Db, stop: &AtomicBool) -> (usize, usize) {
    let (mut reads, mut failed) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        let mut r = match db.reader() {
            Ok(r) => r,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        for i in 0..20 {
            let read = if i % 2 == 0 {
                r.select::<Note, _>(Note::query()).map(|rows| rows.len())
            } else {
                r.load::<Note, _>(Note::query()).map(|rows| rows.len())
            };
            match read {
                Ok(_) => reads += 1,
                Err(_) => failed += 1,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    (reads, failed)
}

/// A replica stopped under a select load: at most two failures surface (the reads cut off
/// run again elsewhere), the replica is banned within a check interval and its timeout, and
/// once it answers again it is readmitted within one check interval plus 250 ms of slack:
/// the readmitting check's own connection and role query, and this test's 20 ms polling, on
/// a shared 2-core machine. `connection_timeout_ms` stays at its default (30 s): the pool's
/// reconnect backoff, which grows to half of it, must not delay the readmission.
fn a_stopped_replica_is_banned_and_readmitted(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c);
    caught_up(&db);
    let stopped = *ports(kind).last().unwrap();
    let index = ports(kind).len() - 1;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || select_load(&db, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    run_rig(kind, &["stop", &stopped.to_string()]);
    // One check interval (100 ms) and the check's own timeout (300 ms).
    until(
        Duration::from_millis(400),
        "the stopped replica is banned",
        || !db.cluster_status()[index].up,
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (mut reads, mut failed) = (0, 0);
    for w in workers {
        let (r, f) = w.join().unwrap();
        reads += r;
        failed += f;
    }
    println!("{kind:?}: {reads} reads, {failed} failures surfaced");
    assert!(reads > 0, "the load did not run");
    assert!(failed <= 2, "{failed} failed reads surfaced of {reads}");
    for _ in 0..10 {
        let mut r = db.reader().unwrap();
        r.find::<Note>(&-1).unwrap();
        assert_ne!(port_of(&mut r), stopped);
    }
    run_rig(kind, &["start", &stopped.to_string()]);
    let started = Instant::now();
    until(
        INTERVAL + Duration::from_millis(250),
        "the restarted replica is readmitted",
        || db.cluster_status()[index].up,
    );
    println!(
        "{kind:?}: readmitted {:?} after it answered",
        started.elapsed()
    );
    let status = db.cluster_status();
    assert!(status[index].errors > 0, "{status:?}");
    // It serves again, through its new pool.
    until(
        Duration::from_secs(2),
        "the readmitted replica serves",
        || (0..4).any(|_| port_of(&mut db.with_position(None).reader().unwrap()) == stopped),
    );
}

/// Reader sessions on a replica whose host stops between two reads: the second read (by key,
/// `select`, `load`), cut off with its connection, runs again on another host within the
/// same call, and the failure bans the stopped host. The checker is slowed down (60 s), so
/// only the reads can find out.
fn a_cut_off_read_is_retried_on_another_host(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c.check_interval(Duration::from_secs(60)));
    db.session()
        .unwrap()
        .insert(Note {
            id: 1,
            body: "one".into(),
        })
        .unwrap();
    caught_up(&db);
    // Three sessions on the same replica (the balancer takes turns: keep the ones there).
    let mut on: Vec<Session> = Vec::new();
    let mut stopped = None;
    while on.len() < 3 {
        let mut r = db.reader().unwrap();
        assert!(r.on_replica());
        let port = port_of(&mut r);
        if *stopped.get_or_insert(port) == port {
            on.push(r);
        }
    }
    let stopped = stopped.unwrap();
    let index = ports(kind).iter().position(|&p| p == stopped).unwrap();
    run_rig(kind, &["stop", &stopped.to_string()]);
    let (mut by_key, mut selecting, mut loading) = (on.remove(0), on.remove(0), on.remove(0));
    let found = by_key
        .find::<Note>(&1)
        .unwrap_or_else(|e| panic!("the cut-off read by key surfaced: {e}"));
    assert_eq!(found.map(|n| n.body).as_deref(), Some("one"));
    let selected = selecting
        .select::<Note, _>(Note::query())
        .unwrap_or_else(|e| panic!("the cut-off select surfaced: {e}"));
    assert!(selected.iter().any(|n| n.id == 1), "{selected:?}");
    let loaded = loading
        .load::<Note, _>(Note::query())
        .unwrap_or_else(|e| panic!("the cut-off load surfaced: {e}"));
    assert!(loaded.iter().any(|n| n.id == 1), "{loaded:?}");
    for s in [&mut by_key, &mut selecting, &mut loading] {
        assert_ne!(port_of(s), stopped);
    }
    assert!(!db.cluster_status()[index].up, "{:?}", db.cluster_status());
    drop((by_key, selecting, loading));
    run_rig(kind, &["start", &stopped.to_string()]);
}

on_rigs!(
    a_stopped_replica_is_banned_and_readmitted,
    a_cut_off_read_is_retried_on_another_host,
);
