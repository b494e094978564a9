//! Optimistic locking, soft delete, timestamps and hooks on every backend.

use crate::common::TestDb;
use crate::model::*;
use custodian::prelude::*;
use custodian::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const THREADS: usize = 8;
const INCREMENTS: usize = 200;

fn stale_update_is_a_conflict_and_changes_nothing(db: &TestDb) {
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    let p = s.insert(Policy::new("LOCK-1")).unwrap();
    assert_eq!(p.version, 1);
    let mut a = s.get::<Policy>(&p.id).unwrap();
    let mut b = a.clone();
    a.title = "first writer".into();
    s.update(&mut a).unwrap();
    assert_eq!(a.version, 2, "the version is bumped in place");
    b.title = "second writer".into();
    let err = s.update(&mut b).unwrap_err();
    let Error::Conflict { source } = &err else {
        panic!("expected Conflict, got {err:?}")
    };
    assert_eq!(source.code.as_deref(), Some("stale_version"));
    assert_eq!(
        err.field_errors().unwrap().fields["version"][0].code,
        "stale_version"
    );
    assert_eq!(b.version, 1, "a failed update leaves the value as it was");
    let stored = s.get::<Policy>(&p.id).unwrap();
    assert_eq!((stored.title.as_str(), stored.version), ("first writer", 2));
    // Re-read and retry succeeds.
    let mut fresh = s.get::<Policy>(&p.id).unwrap();
    fresh.title = "second writer".into();
    s.update(&mut fresh).unwrap();
    assert_eq!(s.get::<Policy>(&p.id).unwrap().version, 3);
}

/// 8 threads x 200 read-modify-write increments with optimistic locking and retry: the counter
/// equals the number of successful updates. Without locking, increments are lost.
fn optimistic_locking_under_concurrency(db: &TestDb) {
    let db = Arc::new(TestDb::with(db.kind, |c| {
        c.pool.max_size = THREADS as u32;
        c.pool.min_idle = Some(2);
        c.session.busy_timeout_ms = 30_000;
    }));
    db.create_table::<LockedCounter>().unwrap();
    db.create_table::<PlainCounter>().unwrap();
    let mut s = db.session().unwrap();
    s.insert(LockedCounter {
        name: "c".into(),
        value: 0,
        version: 0,
    })
    .unwrap();
    s.insert(PlainCounter {
        name: "c".into(),
        value: 0,
    })
    .unwrap();
    drop(s);
    let key = "c".to_string();

    let successes = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, successes, conflicts, key) = (
                db.clone(),
                successes.clone(),
                conflicts.clone(),
                key.clone(),
            );
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                for _ in 0..INCREMENTS {
                    loop {
                        let mut c = s.get::<LockedCounter>(&key).unwrap();
                        c.value += 1;
                        match s.update(&mut c) {
                            Ok(()) => {
                                successes.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(Error::Conflict { .. }) => {
                                conflicts.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) if e.is_retryable() => {}
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let locked = db.session().unwrap().get::<LockedCounter>(&key).unwrap();
    let ok = successes.load(Ordering::SeqCst);
    assert_eq!(ok, THREADS * INCREMENTS);
    assert_eq!(locked.value as usize, ok, "no increment lost with locking");
    assert_eq!(locked.version as usize, ok + 1);

    // The same workload without a version column loses updates.
    let applied = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, applied, key) = (db.clone(), applied.clone(), key.clone());
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                for _ in 0..INCREMENTS {
                    loop {
                        let mut c = s.get::<PlainCounter>(&key).unwrap();
                        std::thread::yield_now();
                        c.value += 1;
                        match s.update(&mut c) {
                            Ok(()) => break,
                            Err(e) if e.is_retryable() => {}
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                    applied.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let plain = db.session().unwrap().get::<PlainCounter>(&key).unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), THREADS * INCREMENTS);
    assert!(
        (plain.value as usize) < THREADS * INCREMENTS,
        "without locking some of the {} updates are lost (counter {})",
        THREADS * INCREMENTS,
        plain.value
    );
}

fn soft_delete_hides_restores_and_purges(db: &TestDb) {
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    let a = s.insert(Policy::new("SD-1")).unwrap();
    let b = s.insert(Policy::new("SD-2")).unwrap();
    s.delete(&a).unwrap();
    assert!(
        s.find::<Policy>(&a.id).unwrap().is_none(),
        "hidden from get/find"
    );
    assert!(matches!(
        s.get::<Policy>(&a.id),
        Err(Error::NotFound { .. })
    ));
    let live: Vec<Policy> = s.load(Policy::query()).unwrap();
    assert_eq!(live.iter().map(|p| p.id).collect::<Vec<_>>(), [b.id]);
    let deleted = s.deleted::<Policy>().unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].deleted_at.is_some());
    let all: Vec<Policy> = s.load(Policy::query_with_deleted()).unwrap();
    assert_eq!(all.len(), 2);
    assert!(s.find_with_deleted::<Policy>(&a.id).unwrap().is_some());
    // A deleted row can be neither updated nor deleted again.
    let mut gone = deleted[0].clone();
    assert!(matches!(s.update(&mut gone), Err(Error::NotFound { .. })));
    assert!(matches!(s.delete(&gone), Err(Error::NotFound { .. })));

    let back = s.restore::<Policy>(&a.id).unwrap();
    assert_eq!(back.deleted_at, None);
    assert_eq!(s.load::<Policy, _>(Policy::query()).unwrap().len(), 2);
    assert!(
        matches!(s.restore::<Policy>(&a.id), Err(Error::NotFound { .. })),
        "not deleted"
    );

    s.delete(&b).unwrap();
    s.purge(&b).unwrap();
    assert!(s.find_with_deleted::<Policy>(&b.id).unwrap().is_none());
    assert!(s.deleted::<Policy>().unwrap().is_empty());
}

fn timestamps_are_maintained_in_utc(db: &TestDb) {
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut p = s.insert(Policy::new("TS-1")).unwrap();
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert!(
        p.created_at > before && p.created_at < after,
        "{}",
        p.created_at
    );
    assert_eq!(p.created_at, p.updated_at);
    let mut expected = p.clone();
    expected.attestation = Attestation::default(); // not a column
    assert_eq!(
        s.get::<Policy>(&p.id).unwrap(),
        expected,
        "the struct holds what was stored"
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.title = "changed".into();
    s.update(&mut p).unwrap();
    assert!(p.updated_at > p.created_at);
    let stored = s.get::<Policy>(&p.id).unwrap();
    assert_eq!(stored.created_at, p.created_at, "created_at never changes");
    assert_eq!(stored.updated_at, p.updated_at);
}

fn hooks_run_in_the_transaction(db: &TestDb) {
    db.create_table::<Hooked>().unwrap();
    db.create_table::<Journal>().unwrap();
    let mut s = db.session().unwrap();
    let mut h = s
        .insert(Hooked {
            id: 0,
            code: "abc".into(),
        })
        .unwrap();
    assert_eq!(h.code, "ABC", "before_insert changed the value");
    assert_eq!(s.get::<Hooked>(&h.id).unwrap().code, "ABC");
    h.code = "def".into();
    s.update(&mut h).unwrap();
    assert_eq!(s.get::<Hooked>(&h.id).unwrap().code, "DEF");
    s.delete(&h).unwrap();
    let events: Vec<String> = s
        .load(journal::table.select(journal::event).order(journal::id))
        .unwrap();
    assert_eq!(
        events,
        [
            format!("insert {} ABC", h.id),
            format!("update {} DEF", h.id),
            format!("delete {} DEF", h.id)
        ]
    );

    // A failing before-hook aborts the write: nothing of it is written, not even journal rows
    // of earlier rows in the same bulk insert.
    let mut bulk = vec![
        Hooked {
            id: 0,
            code: "ok1".into(),
        },
        Hooked {
            id: 0,
            code: "forbidden".into(),
        },
    ];
    let err = s.insert_many(&mut bulk).unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(s.count(hooked::table.count()).unwrap(), 0);
    assert_eq!(s.count(journal::table.count()).unwrap(), 3);
    // Bulk runs the hooks for each row.
    let mut bulk = vec![
        Hooked {
            id: 0,
            code: "x".into(),
        },
        Hooked {
            id: 0,
            code: "keep".into(),
        },
    ];
    s.insert_many(&mut bulk).unwrap();
    assert_eq!(s.count(journal::table.count()).unwrap(), 5);
    // before_delete can refuse.
    let keep: Hooked = s
        .load(Hooked::query().filter(hooked::code.eq("KEEP")))
        .unwrap()
        .remove(0);
    assert!(matches!(s.delete(&keep), Err(Error::Forbidden(_))));
    assert!(s.find::<Hooked>(&keep.id).unwrap().is_some());
}

on_all_backends!(
    stale_update_is_a_conflict_and_changes_nothing,
    optimistic_locking_under_concurrency,
    soft_delete_hides_restores_and_purges,
    timestamps_are_maintained_in_utc,
    hooks_run_in_the_transaction,
);
