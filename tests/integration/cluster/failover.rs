//! Failover on the private rigs: the primary lost (stopped, or frozen then killed with
//! SIGKILL) under the bank load and a replica promoted, with a commit cut off on the frozen
//! primary; and a session that outlives a failover, whose replaced connection must belong to
//! the pool of the host it talks to. Each test tears its rig down at the end (the next test
//! builds a fresh one); the PostgreSQL tests first rejoin the old primary with pg_rewind.

use super::{caught_up, open, port_of, until, Note};
use crate::bank::{self, Tally};
use crate::cluster_rig::{ports, rig as run_rig, RigDb};
use custodian::diesel::{Connection, RunQueryDsl};
use custodian::prelude::*;
use custodian::{BackendKind, HostRole};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Tears the rig down when dropped (also when the test panics): after a failover the rig's
/// first host is no longer its primary.
struct Rebuild(BackendKind);

impl Drop for Rebuild {
    fn drop(&mut self) {
        run_rig(self.0, &["down"]);
    }
}

/// A session opened on the primary outlives a failover: its statement fails when the primary
/// stops, and its next statement runs on the promoted replica. The connection it got there
/// must come from the new primary's pool: one put into the old primary's pool would answer
/// the checker's probes in the old primary's name, and the stopped host would show as an
/// answering primary.
fn a_replaced_connection_stays_with_its_host(kind: BackendKind) {
    let rig_db = RigDb::new(kind);
    let db = open(&rig_db, |c| c);
    let mut s = db.session().unwrap();
    s.insert(Note {
        id: 1,
        body: "before".into(),
    })
    .unwrap();
    caught_up(&db);
    let (old, new) = (ports(kind)[0], ports(kind)[1]);
    let _rebuild = Rebuild(kind);
    run_rig(kind, &["stop", &old.to_string()]);
    assert!(s.find::<Note>(&1).is_err(), "a stopped primary answered");
    until(
        Duration::from_secs(2),
        "the stopped primary is banned",
        || !db.cluster_status()[0].up,
    );
    run_rig(kind, &["promote", &new.to_string()]);
    until(
        Duration::from_secs(3),
        "the promoted replica takes writes",
        || db.session().is_ok(),
    );
    assert_eq!(s.find::<Note>(&1).unwrap().unwrap().body, "before");
    assert_eq!(port_of(&mut s), new);
    drop(s);
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(1) {
        let status = db.cluster_status();
        assert!(!status[0].up, "the stopped host answers: {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = db.cluster_status();
    assert_eq!(status[1].role, Some(HostRole::Primary), "{status:?}");
    assert!(status[1].pool.connections_opened > 0, "{status:?}");
}

/// How the primary is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// A clean shutdown.
    Stop,
    /// Frozen (SIGSTOP) with a COMMIT sent to it, then killed (SIGKILL).
    Kill,
}

/// Where the replica at `port` has received WAL up to (PostgreSQL), as a number.
fn received_lsn(port: u16) -> u64 {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut c = custodian::diesel::PgConnection::establish(&url).expect("replica connection");
    let text: String = custodian::diesel::select(custodian::diesel::dsl::sql::<
        custodian::diesel::sql_types::Text,
    >("pg_last_wal_receive_lsn()::text"))
    .get_result(&mut c)
    .expect("received lsn");
    let (hi, lo) = text.split_once('/').expect("an lsn");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// Whether note `id` is on the host at `port` (PostgreSQL), asked outside custodian.
fn note_on(port: u16, db: &str, id: i64) -> bool {
    let url = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let Ok(mut c) = custodian::diesel::PgConnection::establish(&url) else {
        return false;
    };
    custodian::diesel::select(custodian::diesel::dsl::sql::<
        custodian::diesel::sql_types::BigInt,
    >(&format!(
        "(SELECT COUNT(*) FROM notes WHERE id = {id})"
    )))
    .get_result::<i64>(&mut c)
    .is_ok_and(|n| n == 1)
}

/// Six workers run the bank load (8 accounts, serializable transfers, the sum checked by
/// every read) through the cluster; the primary is lost and the replica that received most
/// is promoted. Commits are acknowledged only once a replica has them (PostgreSQL
/// `synchronous_commit = on` with a quorum of one standby, MariaDB lossless semi-sync), so
/// "every acknowledged transfer survives" is a promise the cluster can keep. Checks: the sum
/// on every read; the first transfer acknowledged after the promotion within 1 s of it; every
/// acknowledged transfer recorded on the new primary and each balance moved by exactly the
/// recorded transfers; at most 1% of operations failed. With [`Loss::Kill`], one transfer's
/// COMMIT is sent to the frozen primary and cut off by the kill: it must come back `Ok`,
/// settled and re-run on the new primary, recorded once.
fn failover_under_bank_load(kind: BackendKind, loss: Loss) {
    const ACCOUNTS: i64 = 8;
    const OPENING: i64 = 1_000;
    let rig_db = RigDb::new(kind);
    let _rebuild = Rebuild(kind);
    let old = ports(kind)[0];
    match kind {
        BackendKind::Postgres => RigDb::raw(
            kind,
            old,
            &rig_db.name,
            &format!("ALTER DATABASE {} SET synchronous_commit = on", rig_db.name),
        ),
        _ => run_rig(kind, &["semisync"]),
    }
    let db = open(&rig_db, |mut c| {
        c.pool.max_size = 10;
        c.retry.max_attempts = 100;
        c.retry.max_elapsed_ms = 15_000;
        c.retry.max_delay_ms = 100;
        c.commit_outcome.record = true;
        c
    });
    bank::open_accounts(&db, ACCOUNTS, OPENING);
    let total = ACCOUNTS * OPENING;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || bank::worker(&db, w, &stop, total, ACCOUNTS))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    let (reached, reached_rx) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let cut = (loss == Loss::Kill).then(|| {
        let db = db.clone();
        std::thread::spawn(move || {
            // A run may fail on a serialization conflict before it reaches COMMIT: the cut
            // is made on the first run that does.
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
    });
    match loss {
        Loss::Stop => run_rig(kind, &["stop", &old.to_string()]),
        Loss::Kill => {
            reached_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the cut transfer reached its commit");
            run_rig(kind, &["freeze", &old.to_string()]);
            go.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            run_rig(kind, &["kill", &old.to_string()]);
        }
    }
    let lost = Instant::now();
    until(Duration::from_secs(3), "the lost primary is banned", || {
        !db.cluster_status()[0].up
    });
    let new = match kind {
        BackendKind::Postgres => *ports(kind)[1..]
            .iter()
            .max_by_key(|&&p| received_lsn(p))
            .unwrap(),
        _ => ports(kind)[1],
    };
    run_rig(kind, &["promote", &new.to_string()]);
    let promoted = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let mut all = Tally::sum(workers.into_iter().map(|h| h.join().unwrap()).collect());

    if let Some(cut) = cut {
        let (result, runs, cut_run, done) = cut.join().unwrap();
        let port = result.unwrap_or_else(|e| panic!("the cut commit is not settled: {e}"));
        assert!(done > lost, "the cut commit returned before the kill");
        assert_eq!(port, new, "re-run on the new primary");
        assert!(runs > cut_run, "settled as not committed, then run again");
        all.acked.push(("cut".into(), done, port));
    }
    let first = all
        .acked
        .iter()
        .map(|(_, at, _)| *at)
        .filter(|at| *at > promoted)
        .min();
    println!(
        "{kind:?} failover ({loss:?}): {} transfers, {} reads, {} runs, {} acknowledged, per \
         port {:?}; first write {:?} after the promotion ({:?} after the loss); status {:?}; \
         {} failed: {:?}",
        all.transfers,
        all.reads,
        all.attempts,
        all.acked.len(),
        all.on,
        first.map(|f| f - promoted),
        promoted - lost,
        db.cluster_status(),
        all.failed.len(),
        all.failed
    );
    let first = first.expect("transfers acknowledged after the promotion");
    let recorded = bank::audit_books(
        &db,
        ACCOUNTS,
        OPENING,
        all.acked.iter().map(|(id, _, _)| id.as_str()),
    );
    let operations = all.operations();
    println!("{recorded} transfers recorded");
    assert!(
        first - promoted < Duration::from_secs(1),
        "writes resumed {:?} after the promotion",
        first - promoted
    );
    assert!(all.on.get(&new).is_some_and(|&n| n >= 10), "{:?}", all.on);
    assert!(
        all.failed.len() * 100 <= operations,
        "{} of {operations} operations failed: {:?}",
        all.failed.len(),
        all.failed
    );

    if kind == BackendKind::Postgres {
        run_rig(kind, &["rejoin", &old.to_string()]);
        db.session()
            .unwrap()
            .insert(Note {
                id: 9,
                body: "after the rejoin".into(),
            })
            .unwrap();
        until(
            Duration::from_secs(10),
            "the rejoined old primary replays the new primary's writes",
            || note_on(old, &rig_db.name, 9),
        );
        until(
            Duration::from_secs(5),
            "the rejoined host serves as a replica",
            || {
                let s = db.cluster_status();
                s[0].up && s[0].role == Some(HostRole::Replica)
            },
        );
    }
}

fn failover_stopped_primary(kind: BackendKind) {
    failover_under_bank_load(kind, Loss::Stop);
}

fn failover_killed_primary(kind: BackendKind) {
    failover_under_bank_load(kind, Loss::Kill);
}

on_rigs!(
    a_replaced_connection_stays_with_its_host,
    failover_stopped_primary,
    failover_killed_primary,
);
