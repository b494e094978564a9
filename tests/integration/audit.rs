//! The audit trail on every backend: atomic and complete records, fail-closed writes without a
//! principal, concurrent writers, drift, history and as-of reports. Attacks on the chain are in
//! `tamper`.

use crate::common::{TestDb, AUDIT_KEY};
use crate::model::Policy;
use custodian::audit::tables::custodian_audit as a;
use custodian::audit::{chain, AsOf, AuditKey, AuditRecord, DriftKind};
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

pub fn entry(id: i64) -> Entry {
    Entry {
        id,
        account: format!("acct-{}", id % 7),
        amount: id * 10,
        note: None,
    }
}

pub fn key() -> AuditKey {
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
                ordinal: 0,
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

/// Verification reads one snapshot: 1,000 runs while 4 writers and a sealer work never report
/// damage that is not there (links, head and records read at different moments would). The
/// writers together commit about one transaction per verification, so the trail grows with the
/// runs and every run overlaps writes and seals.
fn verify_under_load_raises_no_false_alarm(db: &TestDb) {
    const WRITERS: i64 = 4;
    const RUNS: usize = 1_000;
    let db = Arc::new(TestDb::with(db.kind, |c| {
        c.pool.max_size = WRITERS as u32 + 3;
        c.session.busy_timeout_ms = 30_000;
    }));
    db.create_table::<Entry>().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for t in 0..WRITERS {
        let (db, stop, runs) = (db.clone(), stop.clone(), runs.clone());
        workers.push(std::thread::spawn(move || {
            let mut s = db.session().unwrap();
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                if i as usize * WRITERS as usize > runs.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let id = t * 1_000_000 + i;
                match s.transaction(|tx| {
                    let mut e = tx.insert(entry(id))?;
                    e.amount += 1;
                    tx.update(&mut e)
                }) {
                    Ok(()) => {}
                    Err(e) if e.is_retryable() => {}
                    Err(e) => panic!("writer: {e:?}"),
                }
                i += 1;
            }
        }));
    }
    {
        let (db, stop) = (db.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                db.seal_audit().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    let mut last_links = 0;
    for run in 0..RUNS {
        let report = db.verify_audit(None).unwrap();
        assert!(report.is_intact(), "run {run}: {:?}", report.damage);
        assert!(report.links >= last_links, "the chain never shrinks");
        last_links = report.links;
        runs.fetch_add(1, Ordering::SeqCst);
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert!(last_links > 0, "the sealer ran while verifying");
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
    concurrent_writers_produce_one_valid_chain,
    verify_under_load_raises_no_false_alarm,
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
