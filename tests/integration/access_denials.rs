//! Refusals stay on record whatever the caller does: with every pooled connection held inside
//! transactions that roll back, from several threads at once, and on an in-memory SQLite
//! database (one connection), where a refusal inside a transaction says it was not recorded.

use crate::access_guard::{policy, seed, vendors, writer, Invoice, Vendor};
use crate::common::TestDb;
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::{BackendKind, Error, Principal};

/// Every pooled connection is held inside a transaction when each holder is refused: every
/// refusal is recorded all the same, and survives the rollbacks.
fn concurrent_refusals_with_every_connection_held(db: &TestDb) {
    let seeded = seed(db);
    let theirs = seeded
        .live
        .iter()
        .find(|v| v.tenant == "globex")
        .unwrap()
        .clone();
    let guarded = db.with_access(policy(&[], None));
    let size = db.config().pool.max_size as usize;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(size));
    let threads: Vec<_> = (0..size)
        .map(|i| {
            let handle = guarded.acting_as(
                Principal::new(format!("thread-{i}"))
                    .with_role("writer")
                    .in_tenant("acme"),
            );
            let (barrier, theirs) = (barrier.clone(), theirs.clone());
            std::thread::spawn(move || {
                let mut s = handle.session().unwrap();
                s.transaction(|tx| {
                    barrier.wait();
                    let mut hijack = theirs.clone();
                    hijack.name = format!("hijacked by {i}");
                    Err::<(), _>(tx.update(&mut hijack).unwrap_err())
                })
                .unwrap_err()
            })
        })
        .collect();
    for t in threads {
        let err = t.join().unwrap();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
        assert!(!err.to_string().contains("could not"), "recorded: {err}");
    }
    let denied = db
        .session()
        .unwrap()
        .count(
            a::table
                .filter(a::op.eq("denied"))
                .filter(a::actor.like("thread-%"))
                .count(),
        )
        .unwrap();
    assert_eq!(denied, size as i64);
}

fn refusals_are_recorded_with_the_pool_exhausted(db: &TestDb) {
    let db = TestDb::with(db.kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
        c.pool.connection_timeout_ms = 2_000;
        c.session.busy_timeout_ms = 300;
    });
    let seeded = seed(&db);
    let theirs = seeded
        .live
        .iter()
        .find(|v| v.tenant == "globex")
        .unwrap()
        .clone();
    let denied_by = |actor: &str| {
        db.session()
            .unwrap()
            .count(
                a::table
                    .filter(a::op.eq("denied"))
                    .filter(a::actor.eq(actor.to_string()))
                    .count(),
            )
            .unwrap()
    };
    let guarded = db.with_access(policy(&[], None));
    let mallory = guarded.acting_as(
        Principal::new("mallory")
            .with_role("writer")
            .in_tenant("acme"),
    );
    let mut hijack = theirs.clone();
    hijack.name = "hijacked".into();

    // Refusals before the caller's transaction writes anything, the only connection held.
    let mut s = mallory.session().unwrap();
    let outcome = s.transaction(|tx| {
        let stats = db.pool_stats();
        assert_eq!((stats.size, stats.in_use), (1, 1), "the pool is exhausted");
        let update = tx.update(&mut hijack.clone()).unwrap_err();
        let reference = tx
            .insert(Invoice {
                id: 0,
                vendor_id: theirs.id,
                tenant: "acme".into(),
                amount: 1,
                memo: None,
            })
            .unwrap_err();
        for e in [&update, &reference] {
            assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
            assert!(!e.to_string().contains("could not"), "recorded: {e}");
        }
        Err::<(), _>(update)
    });
    assert!(matches!(outcome, Err(Error::Forbidden(_))));
    drop(s);
    assert_eq!(denied_by("mallory"), 2, "refusals survive the rollback");

    // A refused read inside a transaction, the same.
    let nora = guarded.acting_as(Principal::new("nora").in_tenant("acme"));
    let mut s = nora.session().unwrap();
    let outcome = s.transaction(|tx| tx.history::<Vendor>(&theirs.id).map(|_| ()));
    assert!(matches!(outcome, Err(Error::Forbidden(_))), "{outcome:?}");
    drop(s);
    assert_eq!(denied_by("nora"), 1);

    // After the caller's transaction wrote: recorded on PostgreSQL and MariaDB; SQLite has one
    // writer at a time and the caller holds it, so the refusal says it was not recorded.
    let mut s = mallory.session().unwrap();
    let outcome = s.transaction(|tx| {
        let v = tx.insert(Vendor {
            id: 0,
            tenant: "acme".into(),
            name: "rolled back".into(),
            iban: "IBAN-acme-x".into(),
            contact_email: None,
        })?;
        // Reading the trail appends this transaction's own records first.
        assert_eq!(tx.history::<Vendor>(&v.id)?.len(), 1);
        tx.update(&mut hijack.clone())
    });
    let err = outcome.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    drop(s);
    if db.kind == BackendKind::Sqlite {
        assert!(err.to_string().contains("could not be audited"), "{err}");
        assert_eq!(denied_by("mallory"), 2);
    } else {
        assert!(!err.to_string().contains("could not"), "{err}");
        assert_eq!(denied_by("mallory"), 3);
    }
    let mut admin = db.session().unwrap();
    assert_eq!(admin.get::<Vendor>(&theirs.id).unwrap().name, theirs.name);
    assert_eq!(
        admin
            .count(
                vendors::table
                    .filter(vendors::name.eq("rolled back"))
                    .count()
            )
            .unwrap(),
        0
    );
    drop(admin);
    db.seal_audit().unwrap();
    assert!(db.verify_audit(None).unwrap().is_intact());
}

on_all_backends!(
    refusals_are_recorded_with_the_pool_exhausted,
    concurrent_refusals_with_every_connection_held
);

/// An in-memory SQLite database is one connection: a refusal outside a transaction is recorded
/// on it; inside one it cannot be kept apart from the caller's rollback, and the error says so.
#[test]
fn in_memory_sqlite_says_when_a_refusal_cannot_be_recorded() {
    let config = custodian::DatabaseConfig::from_url("sqlite::memory:")
        .unwrap()
        .audit_unkeyed();
    let db = custodian::open(config)
        .unwrap()
        .acting_as(Principal::new("admin"));
    db.create_tables(&[Vendor::META, Invoice::META]).unwrap();
    let mut s = db
        .with_access(policy(&[], None))
        .acting_as(writer("acme"))
        .session()
        .unwrap();
    let theirs = Vendor {
        id: 0,
        tenant: "globex".into(),
        name: "planted".into(),
        iban: "IBAN-x".into(),
        contact_email: None,
    };
    let outside = s.insert(theirs.clone()).unwrap_err();
    assert!(matches!(outside, Error::Forbidden(_)), "{outside:?}");
    assert!(!outside.to_string().contains("could not"), "{outside}");
    let inside = s.transaction(|tx| tx.insert(theirs.clone())).unwrap_err();
    assert!(matches!(inside, Error::Forbidden(_)), "{inside:?}");
    assert!(
        inside.to_string().contains("could not be audited"),
        "{inside}"
    );
    let denied = s
        .count(a::table.filter(a::op.eq("denied")).count())
        .unwrap();
    assert_eq!(
        denied, 1,
        "the refusal outside the transaction is on record"
    );
}
