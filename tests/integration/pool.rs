//! The pool on every backend: killed connections are replaced, connections returned inside a
//! transaction are discarded, statistics count what happened, exhaustion times out cleanly.

use crate::common::TestDb;
use crate::entities::*;
use custodian::diesel::connection::TransactionManager;
use custodian::diesel::sql_types::BigInt;
use custodian::prelude::*;
use custodian::{AnyConnection, BackendKind, Error};
use std::time::Duration;

fn connection_id(s: &mut Session, kind: BackendKind) -> i64 {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let sql = match kind {
        BackendKind::Postgres => "SELECT CAST(pg_backend_pid() AS BIGINT) AS id",
        BackendKind::Mysql => "SELECT CAST(CONNECTION_ID() AS SIGNED) AS id",
        _ => "SELECT CAST(1 AS BIGINT) AS id",
    };
    let rows: Vec<Row> = s
        .run(|c| custodian::diesel::sql_query(sql).load(c))
        .unwrap();
    rows[0].id
}

fn one_connection(db: &TestDb) -> TestDb {
    TestDb::with(db.kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
        c.pool.connection_timeout_ms = 500;
    })
}

fn killed_connection_is_replaced(db: &TestDb) {
    let db = one_connection(db);
    db.create_table::<Control>().unwrap();
    let before = {
        let mut s = db.session().unwrap();
        connection_id(&mut s, db.kind)
    };
    match db.kind {
        BackendKind::Postgres => db.raw_sql(&format!("SELECT pg_terminate_backend({before})")),
        BackendKind::Mysql => db.raw_sql(&format!("KILL {before}")),
        // SQLite has no server to kill the connection; a broken one is covered below.
        _ => {}
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut s = db
        .session()
        .expect("a fresh connection replaces the killed one");
    s.insert(Control::new("K-1", 1)).unwrap();
    if db.kind != BackendKind::Sqlite {
        assert_ne!(
            connection_id(&mut s, db.kind),
            before,
            "the killed connection was not reused"
        );
        assert!(
            db.pool_stats().connections_closed >= 1,
            "{:?}",
            db.pool_stats()
        );
    }
}

fn connection_left_in_transaction_is_discarded(db: &TestDb) {
    let db = one_connection(db);
    db.create_table::<Control>().unwrap();
    {
        let mut s = db.session().unwrap();
        // An escape hatch opens a transaction and the session is dropped without ending it.
        <AnyConnection as Connection>::TransactionManager::begin_transaction(s.connection())
            .unwrap();
        s.insert(Control::new("LEAK", 1)).unwrap();
    }
    let mut s = db.session().unwrap();
    assert_eq!(s.transaction_depth(), 0);
    // The abandoned insert was never committed, and the new connection is outside a transaction.
    assert_eq!(s.count(controls::table.count()).unwrap(), 0);
    s.transaction(|tx| tx.insert(Control::new("OK", 1)).map(|_| ()))
        .unwrap();
    assert_eq!(s.count(controls::table.count()).unwrap(), 1);
    assert!(db.pool_stats().connections_closed >= 1);
}

fn stats_and_exhaustion(db: &TestDb) {
    let db = one_connection(db);
    let held = db.session().unwrap();
    let stats = db.pool_stats();
    assert_eq!(
        (stats.size, stats.in_use, stats.idle),
        (1, 1, 0),
        "{stats:?}"
    );
    let err = db.session().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: custodian::TimeoutKind::Checkout,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(db.pool_stats().timeouts, 1);
    drop(held);
    let checkouts = db.pool_stats().checkouts;
    drop(db.session().unwrap());
    let stats = db.pool_stats();
    assert_eq!(stats.checkouts, checkouts + 1);
    assert_eq!(stats.in_use, 0);
    assert!(stats.connections_opened >= 1);
}

/// Rows of `controls` as another connection sees them (committed rows only).
fn committed_controls(db: &TestDb) -> i64 {
    let mut cfg = custodian::DatabaseConfig::from_url(&db.url).unwrap();
    cfg.pool.max_size = 1;
    let other = custodian::open(cfg).unwrap();
    let mut s = other.session().unwrap();
    s.count(controls::table.count()).unwrap()
}

/// Whether the session's connection is inside a transaction, as diesel tracks it.
fn raw_transaction_open(s: &mut Session) -> bool {
    <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(
        s.connection(),
    )
    .transaction_depth()
    .unwrap()
    .is_some()
}

/// The next checkout of a pool of one works, is outside any transaction, and its writes
/// commit on their own (another connection sees them).
fn next_borrower_is_clean(db: &TestDb, code: &str, committed: i64) {
    let mut s = db
        .session()
        .expect("the pool's only connection is available again");
    assert_eq!(s.transaction_depth(), 0);
    assert!(!raw_transaction_open(&mut s));
    assert_eq!(s.count(controls::table.count()).unwrap(), committed);
    s.insert(Control::new(code, 1)).unwrap();
    drop(s);
    assert_eq!(committed_controls(db), committed + 1);
}

/// A panicking user keeps no connection: a panic inside `Db::transaction`, inside a session's
/// transaction (caught, the session kept), or while holding a session with a transaction open
/// on the raw connection returns the pool's only connection (or a fresh one) with no open
/// transaction, and no uncommitted write of the panicking code survives.
fn a_panicking_user_keeps_no_connection(db: &TestDb) {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let db = one_connection(db);
    db.create_table::<Control>().unwrap();

    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let _ = db.transaction(|tx| {
            tx.insert(Control::new("P-1", 1))?;
            panic!("user code panics inside Db::transaction");
            #[allow(unreachable_code)]
            Ok(())
        });
    }));
    assert!(panicked.is_err());
    next_borrower_is_clean(&db, "AFTER-1", 0);

    // Caught around Session::transaction: the same session goes on, outside a transaction.
    let mut s = db.session().unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let _ = s.transaction(|tx| {
            tx.insert(Control::new("P-2", 1))?;
            tx.transaction(|sp| {
                sp.insert(Control::new("P-3", 1))?;
                panic!("user code panics inside a savepoint");
                #[allow(unreachable_code)]
                Ok(())
            })
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(s.transaction_depth(), 0);
    assert!(!raw_transaction_open(&mut s));
    drop(s);
    next_borrower_is_clean(&db, "AFTER-2", 1);

    // A panic while a session is held inside a transaction opened on the raw connection.
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let mut s = db.session().unwrap();
        <AnyConnection as Connection>::TransactionManager::begin_transaction(s.connection())
            .unwrap();
        s.insert(Control::new("P-4", 1)).unwrap();
        panic!("user code panics holding a session");
    }));
    assert!(panicked.is_err());
    next_borrower_is_clean(&db, "AFTER-3", 2);
}

/// The pool's test of a connection on checkout is pool upkeep, not a statement of the
/// application's: sessions that run nothing count no statement in the metrics, one raw
/// statement counts one. The application's own default instrumentation still sees every
/// test, as it would on a plain diesel pool.
fn a_checkout_test_is_not_a_statement(db: &TestDb) {
    crate::instrumentation_chain::install();
    // Opened after the default instrumentation was set, so its connection carries it.
    let db = TestDb::with(db.kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
        c.pool.test_on_check_out = true;
    });
    let counts = crate::observe_capture::Counts::default();
    let seen = crate::instrumentation_chain::seen_during(|| {
        metrics::with_local_recorder(&counts, || {
            for _ in 0..3 {
                drop(db.session().unwrap());
            }
            db.session().unwrap().execute_sql("SELECT 2").unwrap();
        })
    });
    assert_eq!(
        counts.get("custodian_statements_total{entity=,op=sql}"),
        1,
        "{}: {:?}",
        db.kind,
        counts.keys()
    );
    assert_eq!(
        counts.get("custodian_statement_seconds{entity=,op=sql}"),
        1,
        "{}: {:?}",
        db.kind,
        counts.keys()
    );
    let tests = seen.iter().filter(|sql| sql.contains("SELECT 1")).count();
    assert_eq!(
        tests, 4,
        "{}: four checkouts, each tested: {seen:#?}",
        db.kind
    );
    assert!(
        seen.iter().any(|sql| sql.contains("SELECT 2")),
        "{}: {seen:#?}",
        db.kind
    );
}

on_all_backends!(
    a_checkout_test_is_not_a_statement,
    a_panicking_user_keeps_no_connection,
    killed_connection_is_replaced,
    connection_left_in_transaction_is_discarded,
    stats_and_exhaustion,
);

#[test]
fn unreachable_server_is_a_connection_error_without_password() {
    for url in [
        "postgres://app:hunter2@127.0.0.1:1/none",
        "mysql://app:hunter2@127.0.0.1:1/none",
    ] {
        let err = custodian::connect(url).unwrap_err();
        assert!(matches!(err, Error::Connection { .. }), "{url}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("127.0.0.1:1"), "names the address: {text}");
    }
    let err = custodian::connect("sqlite:///nonexistent-dir/x/y.db").unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

/// A pool whose connections open but then fail every check at checkout says why: the checkout
/// waits out `connection_timeout_ms` and is [`Error::Connection`] naming the check's failure,
/// not a bare [`Error::Timeout`] of kind `Checkout` (the replacement opened after each failed
/// check does not hide it); once the cause is gone the pool serves again. The cause: a
/// database whose sessions run SERIALIZABLE READ ONLY DEFERRABLE by default, while another
/// serializable transaction is open, makes the check's `SELECT 1` wait for a safe snapshot
/// until the statement timeout stops it, and opening a connection runs only `SET`s (as a
/// Galera node outside the primary component accepts connections and refuses their reads).
/// PostgreSQL only: MariaDB and SQLite have no per-database setting that fails a connection's
/// check but not its opening.
#[test]
fn a_pool_whose_every_check_fails_says_why() {
    use custodian::diesel::connection::SimpleConnection;
    let db = TestDb::new(BackendKind::Postgres);
    let mut blocker = custodian::diesel::PgConnection::establish(&db.url).unwrap();
    blocker
        .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE; SELECT 1")
        .unwrap();
    // On one connection: each setting applies to the sessions that start after it.
    db.raw_sql(
        &[
            "default_transaction_isolation = 'serializable'",
            "default_transaction_read_only = on",
            "default_transaction_deferrable = on",
        ]
        .map(|setting| format!("ALTER DATABASE {} SET {setting};", db.name))
        .join(" "),
    );
    let mut cfg = custodian::DatabaseConfig::from_url(&db.url).unwrap();
    // One connection: r2d2 looks at the time limit only while no connection is idle, and with
    // a second slot a replacement is always idle again before the slow check fails, so the
    // checkout would go on checking past `connection_timeout_ms`.
    cfg.pool.max_size = 1;
    cfg.pool.min_idle = Some(1);
    cfg.pool.connection_timeout_ms = 1_500;
    cfg.session.statement_timeout_ms = Some(200);
    let checked = custodian::open(cfg).unwrap();

    let err = checked.session().unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("statement timeout") && text.contains(&db.name),
        "names the check's failure and the database: {text}"
    );
    assert_eq!(
        err.db_error().and_then(|e| e.code.as_deref()),
        Some("57014"),
        "{err:?}"
    );
    assert_eq!(checked.pool_stats().timeouts, 1);

    // Safe snapshots wait for serializable transactions on the whole server (other tests'
    // too): the cause is removed by resetting the database's defaults, and a connection
    // opened after that passes its check.
    // (On the blocker's connection: it started before the read-only default.)
    blocker
        .batch_execute(&format!("COMMIT; ALTER DATABASE {} RESET ALL", db.name))
        .unwrap();
    let mut s = checked
        .session()
        .expect("a connection opened with the default settings passes its check");
    assert!(connection_id(&mut s, BackendKind::Postgres) > 0);
}
