//! Connections lost before or at commit, read uncommitted where the engine has it, and a
//! retired connection that must not go on with a raw transaction.

use super::*;

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
