//! Progress of long operations on every backend: sealing and verifying a trail of 18,000
//! records, applying migrations and re-wrapping data keys report, per phase, a `done` that
//! never decreases and reaches the phase's total, over several batches.

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

/// Applying three migrations reports `migrate` after each, 1 to 3 of 3.
fn migrations_report_progress(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!("{}-progress-migrations", db.name));
    for i in 1..=3 {
        let m = dir
            .join(db.kind.to_string())
            .join(format!("2025010100000{i}_prog{i}"));
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("up.sql"),
            format!("CREATE TABLE prog_t{i} (id INTEGER);\n"),
        )
        .unwrap();
        std::fs::write(m.join("down.sql"), format!("DROP TABLE prog_t{i};\n")).unwrap();
    }
    let seen = Mutex::new(Vec::new());
    let sink = |p: Progress| seen.lock().unwrap().push(p);
    let applied = db.run_migrations_with_progress(&dir, Some(&sink)).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(applied.len(), 3);
    let events = seen.into_inner().unwrap();
    assert_eq!(
        events.iter().map(|p| p.done).collect::<Vec<_>>(),
        [1, 2, 3],
        "{events:?}"
    );
    check(&events, "migrate", 3);
}

/// Re-wrapping 250 data keys in batches of 100 reports `rotate keys` at 100, 200 and 250 of
/// 250 (the total counted before the first batch).
fn key_rotation_reports_progress(base: &TestDb) {
    use crate::crypto::{crypto_db, new_patient, reopen, with_keys, Patient, K1, K2};
    let db = crypto_db(base.kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    db.transaction(|tx| {
        let mut rows: Vec<Patient> = (0..250)
            .map(|i| new_patient(&c, tx, &format!("subj-{i}"), "SSN", i))
            .collect();
        tx.insert_many(&mut rows)
    })
    .unwrap();
    let rotated = reopen(&db, |cfg| with_keys(cfg, &[("k1", K1), ("k2", K2)], "k2"));
    let seen = Mutex::new(Vec::new());
    let sink = |p: Progress| seen.lock().unwrap().push(p);
    let report = rotated
        .crypto()
        .unwrap()
        .rotate_with_progress(&mut rotated.session().unwrap(), 100, Some(&sink))
        .unwrap();
    assert_eq!(report.rewrapped, 250);
    let events = seen.into_inner().unwrap();
    assert_eq!(
        events.iter().map(|p| p.done).collect::<Vec<_>>(),
        [100, 200, 250],
        "{events:?}"
    );
    check(&events, "rotate keys", 250);
}

on_all_backends!(
    seal_and_verify_report_progress,
    migrations_report_progress,
    key_rotation_reports_progress,
);
