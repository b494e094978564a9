//! A backup of two databases at a common cut, under a running coordinated workload: transfers
//! between PostgreSQL (a private server that can prepare, see `coordinate`) and MariaDB run
//! without pause, with a pause between the two commits of phase two that widens the window
//! where a transfer is in one database and not yet in the other. After both backups are
//! restored, every transfer must be in both copies or in neither, and the money summed over
//! both must be unchanged. Needs `CUSTODIAN_PG_PREPARED_PORT` like the `coordinate` tests.

use crate::backup::{key, Dir, Target};
use crate::common::TestDb;
use crate::coordinate_rig::{
    prepare_tables, state, transfer, unique_name, PreparedPg, XaSweep, PRIVATE_PG, START,
};
use custodian::backup;
use custodian::coordinate::{Coordinator, Step};
use custodian::BackendKind;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

#[test]
fn a_common_cut_holds_every_coordinated_transaction_whole() {
    let _shared = PRIVATE_PG.read().unwrap_or_else(|p| p.into_inner());
    let pg = PreparedPg::new();
    let my = TestDb::new(BackendKind::Mysql);
    let base = unique_name();
    let _sweep = XaSweep(my.url.clone(), base.clone());
    let log = TestDb::new(BackendKind::Sqlite);
    prepare_tables(&pg);
    prepare_tables(&my);
    let coord = Coordinator::new(&base, &log).unwrap().observe(|step| {
        if step == Step::Committed(0) {
            // PostgreSQL has the transfer, MariaDB not yet.
            std::thread::sleep(Duration::from_millis(15));
        }
    });
    let stop = AtomicBool::new(false);
    let done = AtomicI64::new(0);
    let dir = Dir::new("cut");
    let manifests = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut id = 1;
            while !stop.load(Ordering::Relaxed) {
                if transfer(&coord, &pg, &my, id, 10).is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                id += 1;
            }
        });
        while done.load(Ordering::Relaxed) < 10 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let manifests = backup::backup_cut(&coord, &[("pg", &pg), ("my", &my)], &dir.0, &key());
        let at_cut = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) < at_cut + 10 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        manifests.unwrap()
    });
    assert_eq!(manifests[0].body.cut, manifests[1].body.cut);
    assert!(manifests[0].body.cut.is_some());

    let trusted = [key().verifying_key()];
    let (pg_copy, my_copy) = (
        Target::new(BackendKind::Postgres),
        Target::new(BackendKind::Mysql),
    );
    backup::restore(&dir.0.join("pg"), &pg_copy.url, &trusted).unwrap();
    backup::restore(&dir.0.join("my"), &my_copy.url, &trusted).unwrap();
    let (pg_db, my_db) = (pg_copy.open(), my_copy.open());
    for (db, m) in [(&pg_db, &manifests[0]), (&my_db, &manifests[1])] {
        assert_eq!(backup::verify(db, m, &trusted).unwrap().findings, vec![]);
    }
    let ((pg_balance, pg_t), (my_balance, my_t)) = state(&pg_db, &my_db);
    assert!(!pg_t.is_empty(), "the cut holds the transfers before it");
    assert_eq!(pg_t, my_t, "every transfer in both copies or in neither");
    assert_eq!(pg_balance + my_balance, 2 * START);
    // The workload went on past the cut.
    let ((_, live), _) = state(&pg, &my);
    assert!(live.len() > pg_t.len());
}
