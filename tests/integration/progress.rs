//! Progress of long operations on every backend: sealing and verifying a trail of 18,000
//! records report, per phase, a `done` that never decreases and reaches the phase's total,
//! over several batches.

use crate::audit::{entry, Entry};
use crate::common::TestDb;
use custodian::audit::VerifyOptions;
use custodian::observe::Progress;
use std::sync::Mutex;

/// Inserts entries `ids` in transactions of 4,000.
fn insert(db: &TestDb, ids: std::ops::RangeInclusive<i64>) {
    let mut s = db.session().unwrap();
    let ids: Vec<i64> = ids.collect();
    for chunk in ids.chunks(4_000) {
        s.insert_many(&mut chunk.iter().map(|i| entry(*i)).collect::<Vec<_>>())
            .unwrap();
    }
}

/// The reports of `phase`: at least two, `done` never decreasing, every one with `total`,
/// the last one at `total`.
fn check(events: &[Progress], phase: &str, total: u64) {
    let of: Vec<&Progress> = events.iter().filter(|p| p.phase == phase).collect();
    assert!(of.len() >= 2, "{phase}: {events:?}");
    assert!(
        of.windows(2).all(|w| w[0].done <= w[1].done),
        "{phase} went back: {of:?}"
    );
    assert!(of.iter().all(|p| p.total == Some(total)), "{of:?}");
    assert_eq!(of.last().unwrap().done, total, "{of:?}");
}

fn seal_and_verify_report_progress(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    insert(db, 1..=12_000);
    let seen = Mutex::new(Vec::new());
    let sink = |p: Progress| seen.lock().unwrap().push(p);

    // The first seal finds the records without a link (no high-water mark yet) or above the
    // mark, whichever the trail's state says: one phase with a total.
    let report = db.seal_audit_with_progress(Some(&sink)).unwrap();
    assert_eq!(report.sealed, 12_000);
    let first = std::mem::take(&mut *seen.lock().unwrap());
    let phase = first.iter().find(|p| p.phase != "seal gaps").unwrap().phase;
    check(&first, phase, 12_000);

    // With a trusted mark, the next seal takes only the records above it.
    insert(db, 12_001..=18_000);
    assert_eq!(
        db.seal_audit_with_progress(Some(&sink)).unwrap().sealed,
        6_000
    );
    let second = std::mem::take(&mut *seen.lock().unwrap());
    check(&second, "seal", 6_000);

    let verified = db
        .verify_audit_with(&VerifyOptions::new().progress(&sink))
        .unwrap();
    assert!(verified.damage.is_none(), "{verified:?}");
    assert_eq!(verified.links, 18_000);
    check(&seen.lock().unwrap(), "verify", 18_000);
}

on_all_backends!(seal_and_verify_report_progress);
