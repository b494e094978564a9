//! Concurrent `balance = balance + d` transfers lose nothing, every changed row gets one record
//! with its true images, and the statements a set update sends.

use super::*;

/// Four threads move money between eight accounts with `balance = balance ± d` (each transfer
/// updates its lower key first) and now and then add interest to every account in one set
/// update, all at the default isolation level with retries off: every transaction succeeds
/// first time, each account ends with exactly its expected balance (no lost update), the sum
/// is preserved but for the interest, and every account has one audit record per change
/// whose images chain (each before is the previous after).
fn concurrent_transfers_lose_nothing(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    const ACCOUNTS: i64 = 8;
    const THREADS: u64 = 4;
    const TRANSFERS: u64 = 25;
    {
        let mut s = db.session().unwrap();
        let mut rows: Vec<Account> = (1..=ACCOUNTS).map(|id| account(id, "t", 1000)).collect();
        s.insert_many(&mut rows).unwrap();
    }
    let no_retry = TxOptions::new().immediate().no_retry();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db: Db = (**db).clone();
            let opts = no_retry.clone();
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                let mut rng = t * 7919 + 17;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                // Net change per account, and the number of changes per account.
                let mut net: HashMap<i64, i64> = HashMap::new();
                let mut changes: HashMap<i64, usize> = HashMap::new();
                for i in 0..TRANSFERS {
                    if i % 10 == 9 {
                        let n = s
                            .transaction_with(&opts, |tx| {
                                tx.update_where::<Account>(
                                    su_accounts::tenant.eq("t"),
                                    su_accounts::balance.eq(su_accounts::balance + 1),
                                )
                            })
                            .expect("interest without retry");
                        assert_eq!(n, ACCOUNTS as usize);
                        for id in 1..=ACCOUNTS {
                            *net.entry(id).or_default() += 1;
                            *changes.entry(id).or_default() += 1;
                        }
                        continue;
                    }
                    let from = (next() % ACCOUNTS as u64) as i64 + 1;
                    let to = (from + (next() % (ACCOUNTS as u64 - 1)) as i64) % ACCOUNTS + 1;
                    assert_ne!(from, to);
                    let d = (next() % 50) as i64 + 1;
                    let (first, first_d, second, second_d) = if from < to {
                        (from, -d, to, d)
                    } else {
                        (to, d, from, -d)
                    };
                    s.transaction_with(&opts, |tx| {
                        let n = tx.update_where::<Account>(
                            su_accounts::id.eq(first),
                            su_accounts::balance.eq(su_accounts::balance + first_d),
                        )?;
                        let m = tx.update_where::<Account>(
                            su_accounts::id.eq(second),
                            su_accounts::balance.eq(su_accounts::balance + second_d),
                        )?;
                        assert_eq!((n, m), (1, 1));
                        Ok(())
                    })
                    .expect("transfer without retry");
                    *net.entry(from).or_default() -= d;
                    *net.entry(to).or_default() += d;
                    *changes.entry(from).or_default() += 1;
                    *changes.entry(to).or_default() += 1;
                }
                (net, changes)
            })
        })
        .collect();
    let mut net: HashMap<i64, i64> = HashMap::new();
    let mut changes: HashMap<i64, usize> = HashMap::new();
    for h in handles {
        let (n, c) = h.join().unwrap();
        for (k, v) in n {
            *net.entry(k).or_default() += v;
        }
        for (k, v) in c {
            *changes.entry(k).or_default() += v;
        }
    }
    let mut s = db.session().unwrap();
    let rows = raw_accounts(&mut s);
    let interest = (THREADS * (TRANSFERS / 10)) as i64;
    for (id, balance, version) in &rows {
        let expected = 1000 + net.get(id).copied().unwrap_or(0);
        assert_eq!(*balance, expected, "account {id}");
        assert_eq!(*version as usize, 1 + changes.get(id).copied().unwrap_or(0));
    }
    let total: i64 = rows.iter().map(|r| r.1).sum();
    assert_eq!(total, 1000 * ACCOUNTS + interest * ACCOUNTS);
    // One record per change; replayed in order, the images chain from the insert to the end.
    let records = account_updates(&mut s);
    for (id, balance, version) in &rows {
        let recs = &records[id];
        assert_eq!(recs.len(), changes[id], "records of account {id}");
        let mut versions: Vec<&(serde_json::Value, serde_json::Value)> = recs.iter().collect();
        versions.sort_by_key(|(b, _)| b["version"].as_i64().unwrap());
        let mut expect_before = (1000, 1);
        for (before, after) in versions {
            assert_eq!(
                (
                    before["balance"].as_i64().unwrap(),
                    before["version"].as_i64().unwrap()
                ),
                expect_before,
                "account {id}"
            );
            assert_eq!(
                after["version"].as_i64().unwrap(),
                before["version"].as_i64().unwrap() + 1
            );
            expect_before = (
                after["balance"].as_i64().unwrap(),
                after["version"].as_i64().unwrap(),
            );
        }
        assert_eq!(expect_before, (*balance, *version));
    }
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Rows changed by an expression get one record each, whose before and after images are the
/// rows as plain SQL reads them before and after; rows not matched get none. `updated_at` is
/// set on every changed row and the stamps reach the after image.
fn records_hold_true_images(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Account> = (1..=4).map(|id| account(id, "t", id * 10)).collect();
    s.insert_many(&mut rows).unwrap();
    let before = raw_accounts(&mut s);
    let stamped_before: Vec<Account> = s.select(Account::query().order(su_accounts::id)).unwrap();
    let n = s
        .update_where::<Account>(
            su_accounts::id.le(3).and(su_accounts::id.ne(2)),
            (
                su_accounts::balance.eq(su_accounts::balance * 2 + 1),
                su_accounts::note.eq("doubled"),
            ),
        )
        .unwrap();
    assert_eq!(n, 2);
    let after = raw_accounts(&mut s);
    assert_eq!(after[0], (1, 21, 2));
    assert_eq!(after[1], before[1]);
    assert_eq!(after[2], (3, 61, 2));
    assert_eq!(after[3], before[3]);
    let stamped: Vec<Account> = s.select(Account::query().order(su_accounts::id)).unwrap();
    assert!(stamped[0].updated_at > stamped_before[0].updated_at);
    assert_eq!(stamped[1].updated_at, stamped_before[1].updated_at);
    assert_eq!(stamped[0].note, "doubled");

    let records = account_updates(&mut s);
    assert_eq!(records.len(), 2, "{records:?}");
    for (i, id) in [(0usize, 1i64), (2, 3)] {
        let recs = &records[&id];
        assert_eq!(recs.len(), 1);
        let (b, a) = &recs[0];
        assert_eq!(b["balance"].as_i64(), Some(before[i].1));
        assert_eq!(b["version"].as_i64(), Some(before[i].2));
        assert_eq!(b["note"], "");
        assert_eq!(a["balance"].as_i64(), Some(after[i].1));
        assert_eq!(a["version"].as_i64(), Some(after[i].2));
        assert_eq!(a["note"], "doubled");
        // The after image is the row as stored, stamps included.
        let stored: Account = s.get(&id).unwrap();
        let image: serde_json::Value = serde_json::Value::Object(stored.raw_image().unwrap());
        assert_eq!(a, &image);
    }
    // Nothing matched: nothing written, nothing recorded.
    let count = trail(&mut s).len();
    let n = s
        .update_where::<Account>(su_accounts::balance.gt(1_000), su_accounts::balance.eq(0))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(trail(&mut s).len(), count);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Statements of a set update of three rows of a validated entity inside a transaction: a
/// savepoint, the locking read and the update (one statement on PostgreSQL, which returns
/// both images), which returns the rows as updated where the backend has `RETURNING`
/// (SQLite); MariaDB reads them back by key. The audit records go with the commit.
fn statements_of_a_set_update(db: &TestDb) {
    db.create_table::<Account>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Account> = (1..=3).map(|id| account(id, "t", 10)).collect();
    s.insert_many(&mut rows).unwrap();
    let statements = s
        .transaction(|tx| {
            let (n, statements) = crate::common::count_statements(tx, |tx| {
                tx.update_where::<Account>(
                    su_accounts::id.ge(1),
                    su_accounts::balance.eq(su_accounts::balance + 1),
                )
            });
            assert_eq!(n?, 3);
            Ok(statements)
        })
        .unwrap();
    // A savepoint around the set update (the entity's validator may refuse a row as
    // updated): 2 statements; then PostgreSQL's update with the locking read inside it: 1;
    // SQLite's read and update: 2; MariaDB's locking read, update and read back: 3.
    let expected = match db.kind {
        custodian::BackendKind::Postgres => 3,
        custodian::BackendKind::Sqlite => 4,
        _ => 5,
    };
    assert_eq!(statements, expected, "{}", db.kind);
    assert_eq!(raw_accounts(&mut s), [(1, 11, 2), (2, 11, 2), (3, 11, 2)]);
    assert_eq!(account_updates(&mut s).len(), 3);
}

on_all_backends!(
    concurrent_transfers_lose_nothing,
    records_hold_true_images,
    statements_of_a_set_update,
);
