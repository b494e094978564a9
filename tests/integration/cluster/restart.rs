//! One server restarted under the bank load: the rig's primary through its own URL alone (no
//! cluster), a private server the test may stop and start without touching the shared ones.

use crate::bank::{self, Tally};
use crate::cluster_rig::{ports, rig as run_rig, RigDb};
use custodian::{BackendKind, DatabaseConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Eight workers run the bank load (8 accounts, serializable transfers, the sum checked by
/// every read) against one server, which is stopped and started again half-way. Checks: no
/// hang (every worker returns within 60 s of being told to stop), the sum on every read,
/// every acknowledged transfer recorded exactly once, transfers acknowledged after the
/// restart, at most 1% of operations surfaced as failures.
fn one_server_restart_under_bank_load(kind: BackendKind) {
    const ACCOUNTS: i64 = 8;
    const OPENING: i64 = 1_000;
    let rig_db = RigDb::new(kind);
    let port = ports(kind)[0];
    let url = match kind {
        BackendKind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{}", rig_db.name),
        _ => format!("mysql://app:app@127.0.0.1:{port}/{}", rig_db.name),
    };
    let mut cfg = DatabaseConfig::from_url(&url).expect("one server");
    cfg.pool.max_size = 10;
    cfg.pool.connection_timeout_ms = 2_000;
    cfg.retry.max_attempts = 100;
    cfg.retry.max_elapsed_ms = 15_000;
    cfg.retry.max_delay_ms = 100;
    cfg.commit_outcome.record = true;
    let db = custodian::open(cfg).expect("open the server");
    bank::open_accounts(&db, ACCOUNTS, OPENING);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || bank::worker(&db, w, &stop, ACCOUNTS * OPENING, ACCOUNTS))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    run_rig(kind, &["stop", &port.to_string()]);
    run_rig(kind, &["start", &port.to_string()]);
    let restarted = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    let (done, joined) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(Tally::sum(
            workers.into_iter().map(|h| h.join().unwrap()).collect(),
        ));
    });
    let all = joined
        .recv_timeout(Duration::from_secs(60))
        .expect("the workers returned: no hang");
    let after = all
        .acked
        .iter()
        .filter(|(_, at, _)| *at > restarted)
        .count();
    let recorded = bank::audit_books(
        &db,
        ACCOUNTS,
        OPENING,
        all.acked.iter().map(|(id, _, _)| id.as_str()),
    );
    println!(
        "{kind:?} one server restarted: {} transfers, {} reads, {} runs, {} acknowledged \
         ({after} after the restart), {recorded} recorded; {} failed: {:?}",
        all.transfers,
        all.reads,
        all.attempts,
        all.acked.len(),
        all.failed.len(),
        all.failed
    );
    assert!(after >= 20, "the load went on after the restart: {after}");
    assert!(
        all.failed.len() * 100 <= all.operations(),
        "{} of {} operations failed",
        all.failed.len(),
        all.operations()
    );
}

on_rigs!(one_server_restart_under_bank_load);
