//! The audit trail on every backend: atomic and complete records, fail-closed writes without a
//! principal, tamper detection on a 10,000-record chain (each damage made with SQL), concurrent
//! writers, drift, history and as-of reports.

use crate::common::{TestDb, AUDIT_KEY};
use crate::model::Policy;
use custodian::audit::tables::{
    custodian_audit as a, custodian_audit_chain as c, custodian_audit_head as h,
};
use custodian::audit::{
    chain, AsOf, AuditKey, AuditRecord, Checkpoint, DamageKind, DriftKind, VerifyReport,
};
use custodian::prelude::*;
use custodian::{Error, Principal};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A ledger entry with a caller-chosen key (bulk inserts stay multi-row).
#[entity(table = "ledger")]
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    #[column(primary_key)]
    pub id: i64,
    pub account: String,
    pub amount: i64,
    pub note: Option<String>,
}

fn entry(id: i64) -> Entry {
    Entry {
        id,
        account: format!("acct-{}", id % 7),
        amount: id * 10,
        note: None,
    }
}

fn key() -> AuditKey {
    AuditKey::from_hex(AUDIT_KEY).unwrap()
}

/// Id, transaction, actor, operation, images, reason and request id of a record.
type RecordSummary = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn records(s: &mut Session) -> Vec<AuditRecord> {
    let all: Vec<RecordSummary> = s
        .load(a::table.order(a::id).select((
            a::id,
            a::tx_id,
            a::actor,
            a::op,
            a::before_image,
            a::after_image,
            a::reason,
            a::request_id,
        )))
        .unwrap();
    all.into_iter()
        .map(
            |(id, tx_id, actor, op, before, after, reason, request_id)| AuditRecord {
                id,
                tx_id,
                at: chrono::NaiveDateTime::default(),
                actor,
                tenant: None,
                entity: String::new(),
                entity_key: String::new(),
                op,
                before,
                after,
                reason,
                request_id,
                mac: String::new(),
            },
        )
        .collect()
}

fn count_records(s: &mut Session) -> i64 {
    s.count(a::table.count()).unwrap()
}

fn writes_are_recorded_atomically(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.audit_context().reason = Some("TICKET-42".into());
    s.audit_context().request_id = Some("req-7".into());
    let mut e = s.insert(entry(1)).unwrap();
    e.amount = 99;
    s.update(&mut e).unwrap();
    s.delete(&e).unwrap();
    let rs = records(&mut s);
    assert_eq!(
        rs.iter().map(|r| r.op.as_str()).collect::<Vec<_>>(),
        ["insert", "update", "delete"]
    );
    assert!(rs.iter().all(|r| r.actor == "test-suite"
        && r.reason.as_deref() == Some("TICKET-42")
        && r.request_id.as_deref() == Some("req-7")));
    assert_eq!(rs[0].before, None);
    assert_eq!(rs[0].after_json().unwrap()["amount"], 10);
    assert_eq!(rs[1].before_json().unwrap()["amount"], 10);
    assert_eq!(rs[1].after_json().unwrap()["amount"], 99);
    assert_eq!(rs[2].before_json().unwrap()["amount"], 99);
    assert_eq!(rs[2].after, None);
    assert_ne!(
        rs[0].tx_id, rs[1].tx_id,
        "each implicit write is its own transaction"
    );

    // One transaction: one transaction id; rollback and panic leave neither rows nor records.
    db.transaction(|tx| {
        tx.insert(entry(2))?;
        tx.insert(entry(3))?;
        Ok(())
    })
    .unwrap();
    let rs = records(&mut s);
    assert_eq!(rs[3].tx_id, rs[4].tx_id);
    let before = count_records(&mut s);
    let err = db.transaction(|tx| {
        tx.insert(entry(4))?;
        Err::<(), _>(Error::Forbidden("no".into()))
    });
    assert!(err.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = db.transaction(|tx| -> custodian::Result<()> {
            tx.insert(entry(5))?;
            panic!("boom")
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(count_records(&mut s), before);
    assert!(s.find::<Entry>(&4).unwrap().is_none() && s.find::<Entry>(&5).unwrap().is_none());

    // A failed write (constraint) leaves no record either.
    assert!(matches!(s.insert(entry(2)), Err(Error::Conflict { .. })));
    assert_eq!(count_records(&mut s), before);
}

fn bulk_writes_record_every_row(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Entry> = (1..=1000).map(entry).collect();
    s.insert_many(&mut rows).unwrap();
    for r in rows.iter_mut() {
        r.amount += 1;
    }
    s.update_many(&mut rows).unwrap();
    let n_updates = s
        .count(a::table.filter(a::op.eq("update")).count())
        .unwrap();
    assert_eq!(
        n_updates, 1000,
        "a bulk update of 1,000 rows yields 1,000 records"
    );
    assert_eq!(
        s.count(a::table.filter(a::op.eq("insert")).count())
            .unwrap(),
        1000
    );
    s.delete_many(&rows[..10]).unwrap();
    assert_eq!(
        s.count(a::table.filter(a::op.eq("delete")).count())
            .unwrap(),
        10
    );
}

fn audited_writes_fail_closed_without_principal(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let anonymous = custodian::open(db.config().clone()).unwrap();
    assert!(anonymous.principal().is_none());
    let mut s = anonymous.session().unwrap();
    let err = s.insert(entry(1)).unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert!(s.find::<Entry>(&1).unwrap().is_none(), "nothing written");
    assert_eq!(count_records(&mut s), 0);
    s.act_as(Principal::new("batch-job"));
    s.insert(entry(1)).unwrap();
    assert_eq!(records(&mut s)[0].actor, "batch-job");
}

/// Applies `tamper` inside a transaction, verifies there, and rolls everything back.
fn verify_tampered(db: &TestDb, cp: &Checkpoint, tamper: impl Fn(&mut Session)) -> VerifyReport {
    let mut s = db.session().unwrap();
    let mut out = None;
    let _ = s.transaction_with(&TxOptions::new().no_retry(), |tx| {
        tamper(tx);
        out = Some(chain::verify(tx, Some(&key()), Some(cp)).unwrap());
        Err::<(), _>(Error::Forbidden("roll the tampering back".into()))
    });
    out.unwrap()
}

fn record_at(s: &mut Session, seq: i64) -> i64 {
    s.first(c::table.filter(c::seq.eq(seq)).select(c::record_id))
        .unwrap()
        .unwrap()
}

fn assert_damage(report: &VerifyReport, seq: i64, kind: DamageKind) {
    let d = report
        .damage
        .as_ref()
        .unwrap_or_else(|| panic!("no damage found, expected {kind:?} at {seq}"));
    assert_eq!((d.seq, d.kind), (seq, kind), "{}", d.detail);
}

type Content = (
    String,
    custodian::sql_types::StoredDatetime,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn content(s: &mut Session, id: i64) -> Content {
    s.first(a::table.find(id).select((
        a::tx_id,
        a::at,
        a::actor,
        a::tenant,
        a::entity,
        a::entity_key,
        a::op,
        a::before_image,
        a::after_image,
        a::reason,
        a::request_id,
        a::mac,
    )))
    .unwrap()
    .unwrap()
}

fn put_content(s: &mut Session, id: i64, v: Content) {
    s.run(|conn| {
        diesel::update(a::table.find(id))
            .set((
                a::tx_id.eq(v.0),
                a::at.eq(v.1),
                a::actor.eq(v.2),
                a::tenant.eq(v.3),
                a::entity.eq(v.4),
                a::entity_key.eq(v.5),
                a::op.eq(v.6),
                a::before_image.eq(v.7),
                a::after_image.eq(v.8),
                a::reason.eq(v.9),
                a::request_id.eq(v.10),
                a::mac.eq(v.11),
            ))
            .execute(conn)
    })
    .unwrap();
}

fn tampering_is_detected(db: &TestDb) {
    const N: i64 = 10_000;
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Entry> = (1..=N).map(entry).collect();
    s.insert_many(&mut rows).unwrap();
    assert_eq!(db.seal_audit().unwrap().head_seq, N);
    let signer = custodian::audit::generate_signing_key().unwrap();
    let cp = db.checkpoint(&signer).unwrap();
    assert_eq!(cp.seq, N);
    cp.verify_signature(Some(&signer.verifying_key())).unwrap();
    let intact = db.verify_audit(Some(&cp)).unwrap();
    assert!(intact.is_intact(), "{:?}", intact.damage);
    assert_eq!(intact.links, N as u64);

    // Modify one field of one record.
    let r = verify_tampered(db, &cp, |tx| {
        let id = record_at(tx, 5_000);
        tx.run(|c| {
            diesel::update(a::table.find(id))
                .set(a::actor.eq("mallory"))
                .execute(c)
        })
        .unwrap();
    });
    assert_damage(&r, 5_000, DamageKind::Modified);

    // Delete one record, and one link with its record.
    let r = verify_tampered(db, &cp, |tx| {
        let id = record_at(tx, 4_321);
        tx.run(|c| diesel::delete(a::table.find(id)).execute(c))
            .unwrap();
    });
    assert_damage(&r, 4_321, DamageKind::Deleted);
    let r = verify_tampered(db, &cp, |tx| {
        let id = record_at(tx, 6_000);
        tx.run(|c| diesel::delete(c::table.find(6_000i64)).execute(c))
            .unwrap();
        tx.run(|c| diesel::delete(a::table.find(id)).execute(c))
            .unwrap();
    });
    assert_damage(&r, 6_000, DamageKind::Deleted);

    // Insert a forged record into history: renumber the later links, chain the forgery in, and
    // recompute every later link (the hash formula is public; the seal key is not).
    let r = verify_tampered(db, &cp, |tx| {
        let at = 7_000i64;
        let forged_mac = "f".repeat(64);
        let first = record_at(tx, at);
        let template = content(tx, first);
        tx.run(|c| {
            diesel::insert_into(a::table)
                .values((
                    a::tx_id.eq(template.0.clone()),
                    a::at.eq(template.1),
                    a::actor.eq("mallory"),
                    a::entity.eq("ledger"),
                    a::entity_key.eq("[999999]"),
                    a::op.eq("insert"),
                    a::after_image.eq("{\"amount\":1000000}"),
                    a::mac.eq(forged_mac.clone()),
                ))
                .execute(c)
        })
        .unwrap();
        let forged_id: i64 = tx
            .first(a::table.select(a::id).order(a::id.desc()))
            .unwrap()
            .unwrap();
        let tail: Vec<(i64, i64)> = tx
            .load(
                c::table
                    .filter(c::seq.ge(at))
                    .order(c::seq.desc())
                    .select((c::seq, c::record_id)),
            )
            .unwrap();
        for (seq, _) in &tail {
            tx.run(|c| {
                diesel::update(c::table.find(*seq))
                    .set(c::seq.eq(seq + 1))
                    .execute(c)
            })
            .unwrap();
        }
        let mut prev: String = tx
            .first(c::table.filter(c::seq.eq(at - 1)).select(c::hash))
            .unwrap()
            .unwrap();
        let mut order = vec![(at, forged_id, forged_mac)];
        for (seq, rid) in tail.iter().rev() {
            order.push((seq + 1, *rid, content(tx, *rid).11));
        }
        tx.run(|c| {
            diesel::insert_into(c::table)
                .values((
                    c::seq.eq(at),
                    c::record_id.eq(forged_id),
                    c::prev_hash.eq(""),
                    c::hash.eq(""),
                ))
                .execute(c)
        })
        .unwrap();
        for (seq, rid, mac) in order {
            let hash = custodian::audit::record::link_hash(&prev, &mac, seq);
            tx.run(|c| {
                diesel::update(c::table.find(seq))
                    .set((
                        c::record_id.eq(rid),
                        c::prev_hash.eq(&prev),
                        c::hash.eq(&hash),
                    ))
                    .execute(c)
            })
            .unwrap();
            prev = hash;
        }
        tx.run(|c| {
            diesel::update(h::table.find(1))
                .set((h::seq.eq(N + 1), h::hash.eq(&prev)))
                .execute(c)
        })
        .unwrap();
    });
    assert_damage(&r, 7_000, DamageKind::Inserted);
    // A forged record not yet sealed is caught too.
    let r = verify_tampered(db, &cp, |tx| {
        let first = record_at(tx, 1);
        let template = content(tx, first);
        tx.run(|c| {
            diesel::insert_into(a::table)
                .values((
                    a::tx_id.eq(template.0.clone()),
                    a::at.eq(template.1),
                    a::actor.eq("mallory"),
                    a::entity.eq("ledger"),
                    a::entity_key.eq("[1]"),
                    a::op.eq("delete"),
                    a::mac.eq("0".repeat(64)),
                ))
                .execute(c)
        })
        .unwrap();
    });
    assert_damage(&r, N + 1, DamageKind::Inserted);

    // Swap two records.
    let r = verify_tampered(db, &cp, |tx| {
        let (x, y) = (record_at(tx, 3_000), record_at(tx, 3_001));
        let (cx, cy) = (content(tx, x), content(tx, y));
        put_content(tx, x, cy);
        put_content(tx, y, cx);
    });
    assert_damage(&r, 3_000, DamageKind::Reordered);

    // Truncate the tail: invisible without the checkpoint, caught against it.
    let truncate = |tx: &mut Session| {
        let cut = 9_000i64;
        let ids: Vec<i64> = tx
            .load(c::table.filter(c::seq.gt(cut)).select(c::record_id))
            .unwrap();
        tx.run(|c| diesel::delete(c::table.filter(c::seq.gt(cut))).execute(c))
            .unwrap();
        tx.run(|c| diesel::delete(a::table.filter(a::id.eq_any(ids))).execute(c))
            .unwrap();
        let hash: String = tx
            .first(c::table.filter(c::seq.eq(cut)).select(c::hash))
            .unwrap()
            .unwrap();
        tx.run(|c| {
            diesel::update(h::table.find(1))
                .set((h::seq.eq(cut), h::hash.eq(hash)))
                .execute(c)
        })
        .unwrap();
    };
    let mut s2 = db.session().unwrap();
    let mut without = None;
    let _ = s2.transaction_with(&TxOptions::new().no_retry(), |tx| {
        truncate(tx);
        without = Some(chain::verify(tx, Some(&key()), None).unwrap());
        Err::<(), _>(Error::Forbidden("rollback".into()))
    });
    assert!(
        without.unwrap().is_intact(),
        "a clean cut is invisible without a checkpoint"
    );
    let r = verify_tampered(db, &cp, truncate);
    assert_damage(&r, 9_001, DamageKind::Truncated);

    // Rewrite one record and recompute every later link: the seal gives it away at once, and
    // the checkpoint too.
    let r = verify_tampered(db, &cp, |tx| {
        let at = 8_000i64;
        let id = record_at(tx, at);
        let mut v = content(tx, id);
        v.8 = Some("{\"account\":\"acct-0\",\"amount\":1,\"id\":8000,\"note\":null}".into());
        v.11 = "e".repeat(64);
        put_content(tx, id, v);
        let links: Vec<(i64, i64)> = tx
            .load(
                c::table
                    .filter(c::seq.ge(at))
                    .order(c::seq)
                    .select((c::seq, c::record_id)),
            )
            .unwrap();
        let mut prev: String = tx
            .first(c::table.filter(c::seq.eq(at - 1)).select(c::hash))
            .unwrap()
            .unwrap();
        for (seq, rid) in links {
            let hash = custodian::audit::record::link_hash(&prev, &content(tx, rid).11, seq);
            tx.run(|c| {
                diesel::update(c::table.find(seq))
                    .set((c::prev_hash.eq(&prev), c::hash.eq(&hash)))
                    .execute(c)
            })
            .unwrap();
            prev = hash;
        }
        tx.run(|c| {
            diesel::update(h::table.find(1))
                .set(h::hash.eq(&prev))
                .execute(c)
        })
        .unwrap();
    });
    assert_damage(&r, 8_000, DamageKind::Modified);

    // All tampering was rolled back: the chain is intact again.
    assert!(db.verify_audit(Some(&cp)).unwrap().is_intact());
    // The checkpoint survives export; a forged one does not verify.
    let back = Checkpoint::from_json(&cp.to_json()).unwrap();
    back.verify_signature(Some(&signer.verifying_key()))
        .unwrap();
    let mut forged = back.clone();
    forged.seq = 9_000;
    assert!(forged
        .verify_signature(Some(&signer.verifying_key()))
        .is_err());
}

fn concurrent_writers_produce_one_valid_chain(db: &TestDb) {
    const THREADS: i64 = 8;
    let run_for = Duration::from_secs(10);
    let db = Arc::new(TestDb::with(db.kind, |c| {
        c.pool.max_size = THREADS as u32 + 2;
        c.session.busy_timeout_ms = 30_000;
    }));
    db.create_table::<Entry>().unwrap();
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sealer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                db.seal_audit().unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, committed) = (db.clone(), committed.clone());
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                let mut i = 0i64;
                while started.elapsed() < run_for {
                    let id = t * 1_000_000 + i;
                    let result = s.transaction(|tx| {
                        let mut e = tx.insert(entry(id))?;
                        e.amount += 1;
                        tx.update(&mut e)
                    });
                    match result {
                        Ok(()) => {
                            committed.fetch_add(2, Ordering::SeqCst);
                        }
                        Err(e) if e.is_retryable() => {}
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    sealer.join().unwrap();
    db.seal_audit().unwrap();
    let report = db.verify_audit(None).unwrap();
    assert!(report.is_intact(), "{:?}", report.damage);
    let changes = committed.load(Ordering::SeqCst);
    assert!(changes > 0);
    assert_eq!(
        report.links as usize, changes,
        "one sealed record per committed change"
    );
    assert_eq!(report.unsealed, 0);
    assert_eq!(count_records(&mut db.session().unwrap()) as usize, changes);
}

fn drift_is_detected(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut (1..=5).map(entry).collect::<Vec<_>>())
        .unwrap();
    assert!(s.audit_drift::<Entry>().unwrap().is_empty());
    db.raw_sql("UPDATE ledger SET amount = amount + 1 WHERE id = 3");
    db.raw_sql("INSERT INTO ledger (id, account, amount) VALUES (77, 'x', 1)");
    db.raw_sql("DELETE FROM ledger WHERE id = 5");
    let mut drift: Vec<(String, DriftKind)> = s
        .audit_drift::<Entry>()
        .unwrap()
        .into_iter()
        .map(|d| (d.key, d.kind))
        .collect();
    drift.sort();
    assert_eq!(
        drift,
        [
            ("[3]".to_string(), DriftKind::Changed),
            ("[5]".into(), DriftKind::Missing),
            ("[77]".into(), DriftKind::Unrecorded)
        ]
    );
}

/// Exposure per account, as a stable text digest.
fn report(entries: &[Entry]) -> String {
    let mut per: std::collections::BTreeMap<&str, i64> = Default::default();
    for e in entries {
        *per.entry(e.account.as_str()).or_default() += e.amount;
    }
    format!("{per:?}")
}

fn history_and_as_of(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    let mut p = s.insert(Policy::new("HIS-1")).unwrap();
    p.title = "second".into();
    s.update(&mut p).unwrap();
    p.title = "third".into();
    s.update(&mut p).unwrap();
    s.delete(&p).unwrap();
    let versions = s.history::<Policy>(&p.id).unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v.record.op.as_str())
            .collect::<Vec<_>>(),
        ["insert", "update", "update", "delete"]
    );
    assert_eq!(versions[1].value.as_ref().unwrap().title, "second");
    assert!(
        versions[3].value.as_ref().unwrap().deleted_at.is_some(),
        "soft delete keeps the row"
    );
    let at_second = versions[1].record.at;
    assert_eq!(
        s.as_of::<Policy>(&p.id, AsOf::Time(at_second))
            .unwrap()
            .unwrap()
            .title,
        "second"
    );
    assert!(
        s.as_of::<Policy>(&p.id, AsOf::Time(versions[3].record.at))
            .unwrap()
            .is_none(),
        "deleted by then"
    );

    // A report as of T is identical after 1,000 later writes.
    s.insert_many(&mut (1..=200).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    let (seq_t, _) = chain::head(&mut s).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let t = chrono::Utc::now().naive_utc();
    let by_time = report(&s.as_of_all::<Entry>(AsOf::Time(t)).unwrap());
    let by_seq = report(&s.as_of_all::<Entry>(AsOf::Seq(seq_t)).unwrap());
    assert_eq!(by_time, by_seq);
    assert_eq!(
        by_time,
        report(&s.load(Entry::query()).unwrap()),
        "as of now = live"
    );
    let mut later: Vec<Entry> = (1..=200).map(entry).collect();
    for round in 0..4 {
        for e in later.iter_mut() {
            e.amount += round + 1;
        }
        s.update_many(&mut later).unwrap();
    }
    s.delete_many(&later[..100]).unwrap();
    s.insert_many(&mut (1001..=1100).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    assert_eq!(
        report(&s.as_of_all::<Entry>(AsOf::Time(t)).unwrap()),
        by_time
    );
    assert_eq!(
        report(&s.as_of_all::<Entry>(AsOf::Seq(seq_t)).unwrap()),
        by_time
    );
    assert_ne!(
        report(&s.load(Entry::query()).unwrap()),
        by_time,
        "the live data did change"
    );
}

on_all_backends!(
    writes_are_recorded_atomically,
    bulk_writes_record_every_row,
    audited_writes_fail_closed_without_principal,
    tampering_is_detected,
    concurrent_writers_produce_one_valid_chain,
    drift_is_detected,
    history_and_as_of,
);

/// Records of a transaction are appended together at commit: a rolled-back savepoint drops its
/// own, and reads of the trail inside the transaction already see the earlier ones.
fn transaction_records_follow_savepoints(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.transaction(|tx| {
        tx.insert(entry(1))?;
        let inner = tx.transaction(|sp| {
            sp.insert(entry(2))?;
            Err::<(), _>(Error::Forbidden("undo".into()))
        });
        assert!(inner.is_err());
        tx.transaction(|sp| sp.insert(entry(3)).map(|_| ()))?;
        assert_eq!(
            tx.history::<Entry>(&1)?.len(),
            1,
            "visible inside the transaction"
        );
        Ok(())
    })
    .unwrap();
    let keys: Vec<String> = s.load(a::table.order(a::id).select(a::entity_key)).unwrap();
    assert_eq!(keys, ["[1]", "[3]"]);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

on_all_backends!(transaction_records_follow_savepoints);
