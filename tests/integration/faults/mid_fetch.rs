//! A MariaDB read whose deadlock error arrives after rows were sent (mid-fetch) is retried and
//! leaves the pool clean.

use super::*;

/// Accounts 1..=400. Each of two serializable transactions updates one row (200 and 201),
/// then reads every row in key order from its own end: the first reads 1..200 and waits for
/// 201, the second 400..201 and waits for 200. InnoDB picks a deadlock victim whose error
/// arrives after rows were sent: mid-fetch. Returns each transaction's result and the attempts
/// made in all.
fn deadlock_mid_fetch(
    db: &custodian::Db,
    options: TxOptions,
) -> (Vec<custodian::Result<usize>>, usize) {
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = [(200i64, true), (201i64, false)]
        .into_iter()
        .map(|(own, ascending)| {
            let (db, barrier, attempts, options) = (
                db.clone(),
                barrier.clone(),
                attempts.clone(),
                options.clone(),
            );
            std::thread::spawn(move || {
                let mut first = true;
                db.transaction_with(&options, |tx| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let mut a = tx.get::<Account>(&own)?;
                    a.balance += 1;
                    tx.update(&mut a)?;
                    if std::mem::take(&mut first) {
                        barrier.wait();
                    }
                    let rows: Vec<(i64, String)> = if ascending {
                        tx.load(
                            accounts::table
                                .select((accounts::id, accounts::note))
                                .order(accounts::id.asc()),
                        )?
                    } else {
                        tx.load(
                            accounts::table
                                .select((accounts::id, accounts::note))
                                .order(accounts::id.desc()),
                        )?
                    };
                    Ok(rows.len())
                })
            })
        })
        .collect();
    let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (results, attempts.load(Ordering::SeqCst))
}

/// MariaDB: a serializable multi-row read that fails mid-fetch with a deadlock is retried on a
/// fresh connection and completes; without retry the failure surfaces as a retryable
/// serialization error, and every later user of the pool runs the same read without hanging.
fn mid_fetch_deadlock_retries_and_leaves_the_pool_clean(kind: BackendKind) {
    let db = TestDb::with(kind, |c| {
        c.pool.max_size = 2;
        c.pool.min_idle = Some(2);
    });
    open_accounts(&db, 400, 100);
    let options = TxOptions::new().serializable();

    let shared = (*db).clone();
    let (results, attempts) = within(&db, Duration::from_secs(30), "retried deadlock", {
        let options = options.clone();
        move || deadlock_mid_fetch(&shared, options)
    });
    assert!(results.iter().all(|r| matches!(r, Ok(400))), "{results:?}");
    assert!(
        attempts >= 3,
        "one transaction was a deadlock victim and retried"
    );

    let shared = (*db).clone();
    let (results, _) = within(&db, Duration::from_secs(30), "deadlock without retry", {
        let options = options.clone().no_retry();
        move || deadlock_mid_fetch(&shared, options)
    });
    let failures: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failures.len(), 1, "{results:?}");
    assert!(failures[0].is_retryable(), "{:?}", failures[0]);

    // Both pooled connections, the victim's among them, serve the same read again.
    let shared = (*db).clone();
    within(
        &db,
        Duration::from_secs(30),
        "next users of the pool",
        move || {
            let mut a = shared.session().unwrap();
            let mut b = shared.session().unwrap();
            for s in [&mut a, &mut b] {
                let n = s
                    .transaction_with(&TxOptions::new().serializable(), |tx| {
                        let rows: Vec<(i64, String)> = tx.load(
                            accounts::table
                                .select((accounts::id, accounts::note))
                                .order(accounts::id.asc()),
                        )?;
                        Ok(rows.len())
                    })
                    .unwrap();
                assert_eq!(n, 400);
            }
        },
    );
}

mod mid_fetch_deadlock {
    #[test]
    fn mariadb() {
        super::mid_fetch_deadlock_retries_and_leaves_the_pool_clean(custodian::BackendKind::Mysql);
    }
}
