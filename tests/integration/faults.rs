//! Transactions under faults: a MariaDB read that fails mid-fetch, connections killed under a
//! serializable bank workload. Every test bounds its work with a watchdog, so a hang fails the
//! test (after killing the test database's connections) instead of blocking the run.

use crate::common::TestDb;
use custodian::diesel::connection::TransactionManager;
use custodian::diesel::Connection;
use custodian::prelude::*;
use custodian::{BackendKind, Error};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

/// An account of the bank workload; `note` widens each row so a multi-row read spans several
/// network packets.
#[entity(table = "accounts", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
    pub note: String,
}

/// One acknowledged transfer, written in the transfer's own transaction.
#[entity(table = "transfers", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    #[column(primary_key)]
    pub id: String,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
}

/// The test database, for killing its connections from any thread.
#[derive(Debug, Clone)]
pub struct Target {
    kind: BackendKind,
    url: String,
    name: String,
}

impl Target {
    pub fn of(db: &TestDb) -> Target {
        Target {
            kind: db.kind,
            url: db.url.clone(),
            name: db.name.clone(),
        }
    }

    /// Kills every connection to the test database except the caller's own: PostgreSQL
    /// `pg_terminate_backend` (waiting until each is gone), MariaDB `KILL`, each limited to
    /// this test's database. Returns how many it killed.
    pub fn kill(&self) -> usize {
        use custodian::diesel::sql_types::BigInt;
        use custodian::diesel::{Connection, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        match self.kind {
            BackendKind::Postgres => {
                let mut c = custodian::diesel::PgConnection::establish(&self.url).unwrap();
                let ids: Vec<Id> = custodian::diesel::sql_query(format!(
                    "SELECT CAST(pid AS BIGINT) AS id FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    self.name
                ))
                .load(&mut c)
                .unwrap();
                // One statement per connection, so the filter above surely ran first; each
                // waits (up to 5 s) until the backend is gone.
                ids.into_iter()
                    .filter(|Id { id }| {
                        custodian::diesel::sql_query(format!(
                            "SELECT pg_terminate_backend({id}, 5000)"
                        ))
                        .execute(&mut c)
                        .is_ok()
                    })
                    .count()
            }
            BackendKind::Mysql => {
                let mut c = custodian::diesel::MysqlConnection::establish(&self.url).unwrap();
                let ids: Vec<Id> = custodian::diesel::sql_query(format!(
                    "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST \
                     WHERE DB = '{}' AND ID <> CONNECTION_ID() AND COMMAND <> 'Killed'",
                    self.name
                ))
                .load(&mut c)
                .unwrap();
                let mut killed = 0;
                for Id { id } in ids {
                    // The connection may have closed meanwhile (unknown thread id).
                    if custodian::diesel::sql_query(format!("KILL {id}"))
                        .execute(&mut c)
                        .is_ok()
                    {
                        killed += 1;
                    }
                }
                killed
            }
            _ => 0,
        }
    }
}

/// Runs `f` on a thread and waits at most `limit` for it. A hang kills the test database's
/// connections (so the stuck thread and the database's drop can finish) and fails the test.
fn within<T: Send + 'static>(
    db: &TestDb,
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Target::of(db).kill();
            panic!("{what} did not finish within {limit:?}: hung");
        }
    }
}

fn open_accounts(db: &TestDb, n: i64, balance: i64) {
    db.create_table::<Account>().unwrap();
    db.create_table::<Transfer>().unwrap();
    let mut rows: Vec<Account> = (1..=n)
        .map(|id| Account {
            id,
            balance,
            note: format!("{id:0>120}"),
        })
        .collect();
    db.session().unwrap().insert_many(&mut rows).unwrap();
}

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

/// A connection killed inside the closure, before COMMIT was sent: the database rolled the
/// transaction back, and the closure runs again on a fresh connection; its effects land once.
fn connection_lost_before_commit_is_retried(kind: BackendKind) {
    let db = TestDb::new(kind);
    open_accounts(&db, 2, 100);
    let (shared, target) = ((*db).clone(), Target::of(&db));
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let result = within(
        &db,
        Duration::from_secs(30),
        "retried transaction",
        move || {
            shared.transaction(|tx| {
                let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
                let mut a = tx.get::<Account>(&1)?;
                a.balance -= 10;
                tx.update(&mut a)?;
                if first {
                    assert!(target.kill() >= 1);
                }
                let mut b = tx.get::<Account>(&2)?;
                b.balance += 10;
                tx.update(&mut b)
            })
        },
    );
    result.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "retried once");
    let mut s = db.session().unwrap();
    assert_eq!(s.get::<Account>(&1).unwrap().balance, 90);
    assert_eq!(s.get::<Account>(&2).unwrap().balance, 110);
}

/// A connection lost while COMMIT is in flight is `Error::CommitUnknown`, never retried: the
/// caller resolves it by looking for the transfer's row (here it never reached the server).
/// The session's next transaction runs on a fresh connection.
fn connection_lost_at_commit_is_commit_unknown(kind: BackendKind) {
    let db = TestDb::new(kind);
    open_accounts(&db, 2, 100);
    let (shared, target) = ((*db).clone(), Target::of(&db));
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let (result, after) = within(&db, Duration::from_secs(30), "commit", move || {
        let mut s = shared.session().unwrap();
        let result = s.transaction(|tx| {
            counted.fetch_add(1, Ordering::SeqCst);
            tx.insert(Transfer {
                id: "t-1".into(),
                src: 1,
                dst: 2,
                amount: 5,
            })?;
            // The last thing before COMMIT: the connection goes.
            target.kill();
            Ok(())
        });
        let after = s.transaction(|tx| tx.count(transfers::table.count()));
        (result, after)
    });
    let err = result.unwrap_err();
    assert!(err.is_commit_unknown() && !err.is_retryable(), "{err:?}");
    let Error::CommitUnknown { source } = &err else {
        unreachable!()
    };
    assert!(matches!(**source, Error::Connection { .. }), "{source:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "never retried");
    assert_eq!(
        after.unwrap(),
        0,
        "the same session works again; the transfer is absent"
    );
}

/// `IsolationLevel::ReadUncommitted`: MariaDB reads another transaction's uncommitted write;
/// PostgreSQL runs it as read committed and SQLite as serializable, so they do not.
fn read_uncommitted_where_the_engine_has_it(kind: BackendKind) {
    type Tm = <custodian::AnyConnection as Connection>::TransactionManager;
    let db = TestDb::new(kind);
    open_accounts(&db, 1, 100);
    let mut writer = db.session().unwrap();
    Tm::begin_transaction(writer.connection()).unwrap();
    writer
        .execute_sql("UPDATE accounts SET balance = 7 WHERE id = 1")
        .unwrap();
    let seen = db
        .transaction_with(
            &TxOptions::new().isolation(custodian::IsolationLevel::ReadUncommitted),
            |tx| Ok(tx.get::<Account>(&1)?.balance),
        )
        .unwrap();
    Tm::rollback_transaction(writer.connection()).unwrap();
    let expected = if kind == BackendKind::Mysql { 7 } else { 100 };
    assert_eq!(seen, expected, "{kind}");
}

/// MariaDB: a lock wait timeout inside a transaction opened on the raw connection retires the
/// connection. The next statement fails (the raw transaction is lost with the connection, it
/// must not go on in autocommit on a fresh one), the one after runs on a fresh connection, and
/// the raw transaction's earlier write is not committed.
fn retired_connection_does_not_continue_a_raw_transaction(kind: BackendKind) {
    type Tm = <custodian::AnyConnection as Connection>::TransactionManager;
    let db = TestDb::new(kind);
    open_accounts(&db, 2, 100);
    let mut holder = db.session().unwrap();
    Tm::begin_transaction(holder.connection()).unwrap();
    holder
        .execute_sql("UPDATE accounts SET balance = 1 WHERE id = 1")
        .unwrap();
    let mut s = db.session().unwrap();
    s.execute_sql("SET SESSION innodb_lock_wait_timeout = 1")
        .unwrap();
    Tm::begin_transaction(s.connection()).unwrap();
    s.execute_sql("UPDATE accounts SET balance = 2 WHERE id = 2")
        .unwrap();
    let err = s
        .execute_sql("UPDATE accounts SET balance = 2 WHERE id = 1")
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let err = s.execute_sql("SELECT 1").unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    let closed = db.pool_stats().connections_closed;
    s.execute_sql("SELECT 1").expect("a fresh connection");
    let stats = db.pool_stats();
    assert_eq!(
        stats.connections_closed,
        closed + 1,
        "the replacement is counted: {stats:?}"
    );
    Tm::rollback_transaction(holder.connection()).unwrap();
    assert_eq!(s.get::<Account>(&2).unwrap().balance, 100);
}

mod retired_connection {
    #[test]
    fn mariadb() {
        super::retired_connection_does_not_continue_a_raw_transaction(
            custodian::BackendKind::Mysql,
        );
    }
}

/// What one worker of the bank workload saw.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: Vec<String>,
    unknown: Vec<String>,
    failed: Vec<(String, String)>,
    /// Closure runs, retries included.
    attempts: usize,
    reads: usize,
    failed_reads: Vec<String>,
}

/// The bank workload: `ACCOUNTS` accounts, 8 threads making serializable transfers (and
/// every fifth operation a serializable read of every balance) through `Session::transaction`,
/// while a killer thread terminates every connection of the test database every 1.5 s
/// (PostgreSQL, MariaDB). Transfers record their outcome (`commit_outcome.record`), so a commit
/// cut off by a kill is settled by custodian. Checks: no hang, the sum of balances on every
/// read, every acknowledged transfer stored exactly once, no failed one stored, no commit
/// outcome surfaced as unknown (the server stays reachable), balances matching the stored
/// transfers, and at most 1% of operations surfacing a failure.
fn bank_workload(kind: BackendKind) {
    const ACCOUNTS: i64 = 12;
    const INITIAL: i64 = 1_000;
    const THREADS: u64 = 8;
    let run = Duration::from_secs(8);
    let db = TestDb::with(kind, |c| {
        c.pool.max_size = 10;
        c.pool.min_idle = Some(2);
        c.session.busy_timeout_ms = 5_000;
        c.commit_outcome.record = true;
    });
    open_accounts(&db, ACCOUNTS, INITIAL);
    let total = ACCOUNTS * INITIAL;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut options = TxOptions::new().serializable();
    if kind == BackendKind::Sqlite {
        // One writer at a time from the start: a deferred transaction that reads, then writes,
        // fails busy without waiting.
        options = options.immediate();
    }
    let shared = (*db).clone();
    let target = Target::of(&db);
    let (tallies, kills) = within(&db, run + Duration::from_secs(60), "bank workload", {
        let stop = stop.clone();
        move || {
            let workers: Vec<_> = (0..THREADS)
                .map(|w| {
                    let (db, stop, options) = (shared.clone(), stop.clone(), options.clone());
                    std::thread::spawn(move || worker(&db, w, &stop, &options, total))
                })
                .collect();
            let killer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut kills = 0;
                    if target.kind == BackendKind::Sqlite {
                        return kills;
                    }
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1_500));
                        kills += target.kill();
                    }
                    kills
                })
            };
            std::thread::sleep(run);
            stop.store(true, Ordering::SeqCst);
            let tallies: Vec<Tally> = workers.into_iter().map(|h| h.join().unwrap()).collect();
            (tallies, killer.join().unwrap())
        }
    });

    let mut s = db.session().unwrap();
    let stored: Vec<Transfer> = s.load(transfers::table).unwrap();
    let ids: std::collections::HashMap<&str, &Transfer> =
        stored.iter().map(|t| (t.id.as_str(), t)).collect();
    assert_eq!(ids.len(), stored.len(), "each transfer stored once");
    let acknowledged: Vec<&String> = tallies.iter().flat_map(|t| &t.acknowledged).collect();
    let unknown: Vec<&String> = tallies.iter().flat_map(|t| &t.unknown).collect();
    let failed: Vec<&(String, String)> = tallies.iter().flat_map(|t| &t.failed).collect();
    for id in &acknowledged {
        assert!(
            ids.contains_key(id.as_str()),
            "acknowledged transfer {id} is missing"
        );
    }
    for (id, e) in &failed {
        assert!(
            !ids.contains_key(id.as_str()),
            "failed transfer {id} ({e}) is stored"
        );
    }
    let unknown_committed = unknown
        .iter()
        .filter(|id| ids.contains_key(id.as_str()))
        .count();
    assert_eq!(
        stored.len(),
        acknowledged.len() + unknown_committed,
        "every stored transfer was acknowledged or had an unknown outcome"
    );
    // Balances follow from the stored transfers alone.
    let mut expected = vec![INITIAL; ACCOUNTS as usize + 1];
    for t in &stored {
        expected[t.src as usize] -= t.amount;
        expected[t.dst as usize] += t.amount;
    }
    let balances: Vec<(i64, i64)> = s
        .load(accounts::table.select((accounts::id, accounts::balance)))
        .unwrap();
    assert_eq!(balances.iter().map(|b| b.1).sum::<i64>(), total);
    for (id, balance) in balances {
        assert_eq!(balance, expected[id as usize], "account {id}");
    }

    let transfers = acknowledged.len() + unknown.len() + failed.len();
    let reads: usize = tallies.iter().map(|t| t.reads).sum();
    let failed_reads: Vec<&String> = tallies.iter().flat_map(|t| &t.failed_reads).collect();
    let attempts: usize = tallies.iter().map(|t| t.attempts).sum();
    let operations = transfers + reads;
    let surfaced = failed.len() + failed_reads.len();
    println!(
        "bank workload on {kind}: {operations} operations ({transfers} transfers, {reads} \
         reads), {attempts} closure runs, {kills} connections killed; {} acknowledged, {} \
         commit outcome unknown ({unknown_committed} of them committed), {} transfers and {} \
         reads failed ({surfaced} surfaced = {:.2}%)",
        acknowledged.len(),
        unknown.len(),
        failed.len(),
        failed_reads.len(),
        100.0 * surfaced as f64 / operations.max(1) as f64,
    );
    if !failed.is_empty() || !failed_reads.is_empty() {
        println!("failures: {failed:?} {failed_reads:?}");
    }
    assert!(transfers >= 100, "the workload ran: {transfers} transfers");
    assert!(
        unknown.is_empty(),
        "commit outcomes surfaced as unknown while the server was reachable: {unknown:?}"
    );
    assert!(
        surfaced * 100 <= operations,
        "{surfaced} of {operations} operations failed: {failed:?} {failed_reads:?}"
    );
}

/// One worker: its own session for the whole run, transfers between random accounts with ids
/// chosen before each transaction, a read of every balance every fifth operation.
fn worker(
    db: &custodian::Db,
    w: u64,
    stop: &std::sync::atomic::AtomicBool,
    options: &TxOptions,
    total: i64,
) -> Tally {
    let mut tally = Tally::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut s = db.session().unwrap();
    // Not IMMEDIATE: SQLite refuses to take the write lock of a read-only transaction.
    let read_options = TxOptions::new().serializable().read_only();
    let mut op = 0u64;
    while !stop.load(Ordering::SeqCst) {
        op += 1;
        if op % 5 == 0 {
            let read = s.transaction_with(&read_options, |tx| {
                tally.attempts += 1;
                tx.load::<i64, _>(accounts::table.select(accounts::balance))
            });
            tally.reads += 1;
            match read {
                Ok(balances) => assert_eq!(balances.iter().sum::<i64>(), total, "sum invariant"),
                Err(e) => tally.failed_reads.push(e.to_string()),
            }
            continue;
        }
        let id = format!("w{w}-{op}");
        let src = 1 + next(12) as i64;
        let dst = 1 + (src + next(11) as i64) % 12;
        let amount = 1 + next(50) as i64;
        let result = s.transaction_with(options, |tx| {
            tally.attempts += 1;
            let mut a = tx.get::<Account>(&src)?;
            let mut b = tx.get::<Account>(&dst)?;
            a.balance -= amount;
            b.balance += amount;
            tx.update(&mut a)?;
            tx.update(&mut b)?;
            tx.insert(Transfer {
                id: id.clone(),
                src,
                dst,
                amount,
            })?;
            Ok(())
        });
        match result {
            Ok(()) => tally.acknowledged.push(id),
            Err(e) if e.is_commit_unknown() => tally.unknown.push(id),
            Err(e) => tally.failed.push((id, e.to_string())),
        }
    }
    tally
}

mod lost_connection {
    use custodian::BackendKind::{Mysql, Postgres};
    #[test]
    fn retried_before_commit_postgres() {
        super::connection_lost_before_commit_is_retried(Postgres);
    }
    #[test]
    fn retried_before_commit_mariadb() {
        super::connection_lost_before_commit_is_retried(Mysql);
    }
    #[test]
    fn commit_unknown_postgres() {
        super::connection_lost_at_commit_is_commit_unknown(Postgres);
    }
    #[test]
    fn commit_unknown_mariadb() {
        super::connection_lost_at_commit_is_commit_unknown(Mysql);
    }
}

mod read_uncommitted {
    use custodian::BackendKind::{Mysql, Postgres, Sqlite};
    #[test]
    fn postgres() {
        super::read_uncommitted_where_the_engine_has_it(Postgres);
    }
    #[test]
    fn mariadb() {
        super::read_uncommitted_where_the_engine_has_it(Mysql);
    }
    #[test]
    fn sqlite() {
        super::read_uncommitted_where_the_engine_has_it(Sqlite);
    }
}

mod bank {
    use custodian::BackendKind::{Mysql, Postgres, Sqlite};
    #[test]
    fn postgres() {
        super::bank_workload(Postgres);
    }
    #[test]
    fn mariadb() {
        super::bank_workload(Mysql);
    }
    #[test]
    fn sqlite() {
        super::bank_workload(Sqlite);
    }
}
