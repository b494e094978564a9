//! Transactions on every backend: commit, rollback on Err and on panic, savepoints, retry of
//! real serialization conflicts, isolation and timeouts that do not leak, deadlines.

use crate::common::TestDb;
use crate::entities::*;
use custodian::prelude::*;
use custodian::{BackendKind, Error, RetryPolicy};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn count(db: &TestDb) -> i64 {
    db.session()
        .unwrap()
        .count(controls::table.count())
        .unwrap()
}

fn commit_on_ok_rollback_on_err(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let id = db
        .transaction(|tx| {
            assert_eq!(tx.transaction_depth(), 1);
            Ok(tx.insert(Control::new("T-1", 1))?.id)
        })
        .unwrap();
    assert!(db
        .session()
        .unwrap()
        .find::<Control>(&id)
        .unwrap()
        .is_some());

    let err = db
        .transaction(|tx| {
            tx.insert(Control::new("T-2", 1))?;
            tx.insert_many(&mut [Control::new("T-3", 1), Control::new("T-4", 1)])?;
            Err::<(), _>(Error::Forbidden("changed my mind".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)));
    assert_eq!(count(db), 1, "nothing of the failed transaction is written");
}

fn rollback_on_panic(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.transaction(|tx| {
            tx.insert(Control::new("P-1", 1))?;
            panic!("boom inside the transaction");
            #[allow(unreachable_code)]
            Ok(())
        })
    }));
    assert!(result.is_err(), "the panic propagates");
    assert_eq!(count(db), 0, "the panicking transaction left nothing");
    // The pool still works and the connection is clean.
    db.transaction(|tx| tx.insert(Control::new("P-2", 1)).map(|_| ()))
        .unwrap();
    assert_eq!(count(db), 1);
}

fn savepoint_rollback_keeps_outer_work(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    db.transaction(|tx| {
        tx.insert(Control::new("OUT-1", 1))?;
        let inner = tx.transaction(|sp| {
            assert_eq!(sp.transaction_depth(), 2);
            sp.insert(Control::new("IN-1", 1))?;
            Err::<(), _>(Error::Forbidden("inner fails".into()))
        });
        assert!(inner.is_err());
        tx.transaction(|sp| sp.insert(Control::new("IN-2", 1)).map(|_| ()))?;
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = tx.transaction(|sp| -> custodian::Result<()> {
                sp.insert(Control::new("IN-3", 1))?;
                panic!("inner panic")
            });
        }));
        assert!(panicked.is_err());
        tx.insert(Control::new("OUT-2", 1))?;
        Ok(())
    })
    .unwrap();
    let mut s = db.session().unwrap();
    let codes: Vec<String> = s
        .load(controls::table.select(controls::code).order(controls::code))
        .unwrap();
    assert_eq!(codes, ["IN-2", "OUT-1", "OUT-2"]);
}

/// Two concurrent transactions with `options` both read counter `n` (at 0), wait for each
/// other, then both increment it: a real serialization conflict (PostgreSQL 40001, MariaDB
/// deadlock 1213, SQLite busy snapshot). Returns each transaction's result, the number of
/// attempts in all, and the final value.
fn two_conflicting_increments(
    db: &TestDb,
    options: TxOptions,
) -> (Vec<custodian::Result<()>>, usize, i64) {
    db.create_table::<Counter>().unwrap();
    let key = "n".to_string();
    db.session()
        .unwrap()
        .insert(Counter {
            name: key.clone(),
            value: 0,
        })
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (db, barrier, attempts, options, key) = (
                (**db).clone(),
                barrier.clone(),
                attempts.clone(),
                options.clone(),
                key.clone(),
            );
            std::thread::spawn(move || {
                let mut first = true;
                db.transaction_with(&options, |tx| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let c = tx.get::<Counter>(&key)?;
                    if std::mem::take(&mut first) {
                        // Both have read before either writes.
                        barrier.wait();
                    }
                    tx.update(&mut Counter {
                        value: c.value + 1,
                        ..c
                    })
                })
            })
        })
        .collect();
    let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let value = db.session().unwrap().get::<Counter>(&key).unwrap().value;
    (results, attempts.load(Ordering::SeqCst), value)
}

/// The loser of a serialization conflict is rolled back and retried, so both increments land
/// exactly once.
fn serialization_conflict_is_retried(db: &TestDb) {
    let options = TxOptions::new().serializable().retry(RetryPolicy {
        max_attempts: 10,
        ..RetryPolicy::default()
    });
    let (results, attempts, value) = two_conflicting_increments(db, options);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(value, 2, "both increments applied exactly once");
    assert!(attempts >= 3, "one transaction was retried");
}

/// Without retry, the loser sees a retryable Serialization error and its increment is gone.
fn conflict_without_retry_surfaces_as_serialization(db: &TestDb) {
    let (results, attempts, value) =
        two_conflicting_increments(db, TxOptions::new().serializable().no_retry());
    let failures: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failures.len(), 1, "{results:?}");
    assert!(failures[0].is_retryable(), "{:?}", failures[0]);
    assert_eq!((attempts, value), (2, 1));
}

fn settings_do_not_leak_to_next_borrower(db: &TestDb) {
    let db = TestDb::with(db.kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
    });
    db.create_table::<Control>().unwrap();
    let probe = |s: &mut Session, sql: &str| -> String {
        use custodian::diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            v: String,
        }
        let rows: Vec<Row> = s
            .run(|c| custodian::diesel::sql_query(sql).load(c))
            .unwrap();
        rows.into_iter().next().unwrap().v
    };
    let opts = TxOptions::new()
        .serializable()
        .read_only()
        .timeout(Duration::from_secs(5));
    let mut s = db.session().unwrap();
    let inside = s
        .transaction_with(&opts, |tx| {
            Ok(match db.kind {
                BackendKind::Postgres => (
                    probe(tx, "SELECT current_setting('transaction_isolation') AS v"),
                    probe(tx, "SELECT current_setting('statement_timeout') AS v"),
                ),
                BackendKind::Mysql => (
                    String::new(),
                    probe(tx, "SELECT CAST(@@max_statement_time AS CHAR) AS v"),
                ),
                _ => (String::new(), String::new()),
            })
        })
        .unwrap();
    // A read-only transaction refuses writes where the backend enforces it.
    let write_in_ro = s.transaction_with(&opts, |tx| tx.insert(Control::new("RO", 1)).map(|_| ()));
    assert!(
        write_in_ro.is_err(),
        "read-only is enforced: {write_in_ro:?}"
    );
    drop(s);
    let mut s = db.session().unwrap();
    match db.kind {
        BackendKind::Postgres => {
            assert_eq!(inside.0, "serializable");
            assert_eq!(inside.1, "5s");
            assert!(write_in_ro.is_err());
            s.transaction(|tx| {
                assert_eq!(
                    probe(tx, "SELECT current_setting('transaction_isolation') AS v"),
                    "read committed"
                );
                Ok(())
            })
            .unwrap();
            assert_eq!(
                probe(&mut s, "SELECT current_setting('statement_timeout') AS v"),
                "0"
            );
        }
        BackendKind::Mysql => {
            assert_eq!(inside.1, "5.000000");
            assert!(write_in_ro.is_err());
            assert_eq!(
                probe(&mut s, "SELECT CAST(@@max_statement_time AS CHAR) AS v"),
                "0.000000"
            );
            assert_eq!(
                probe(&mut s, "SELECT @@tx_isolation AS v"),
                "REPEATABLE-READ"
            );
        }
        _ => {}
    }
    // The next borrower can write: no read-only or lock state survived.
    s.transaction(|tx| tx.insert(Control::new("AFTER", 1)).map(|_| ()))
        .unwrap();
    assert_eq!(s.count(controls::table.count()).unwrap(), 1);
}

fn transaction_deadline_rolls_back(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let opts = TxOptions::new()
        .timeout(Duration::from_millis(300))
        .no_retry();
    let kind = db.kind;
    let err = db
        .transaction_with(&opts, |tx| {
            tx.insert(Control::new("SLOW", 1))?;
            match kind {
                // The server stops the statement at the deadline.
                BackendKind::Postgres => tx.execute_sql("SELECT pg_sleep(2)").map(|_| ()),
                BackendKind::Mysql => tx
                    .execute_sql("SELECT * FROM controls WHERE SLEEP(2) = 0")
                    .map(|_| ()),
                // SQLite: the deadline is checked at the next statement.
                _ => {
                    std::thread::sleep(Duration::from_millis(400));
                    tx.insert(Control::new("LATE", 1)).map(|_| ())
                }
            }
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: custodian::TimeoutKind::TransactionDeadline,
                limit: Some(l),
                ..
            } if l == Duration::from_millis(300)
        ),
        "{err:?}"
    );
    assert_eq!(count(db), 0);
}

on_all_backends!(
    commit_on_ok_rollback_on_err,
    rollback_on_panic,
    savepoint_rollback_keeps_outer_work,
    serialization_conflict_is_retried,
    conflict_without_retry_surfaces_as_serialization,
    settings_do_not_leak_to_next_borrower,
    transaction_deadline_rolls_back,
);
