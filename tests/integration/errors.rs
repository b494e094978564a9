//! Errors on every backend, provoked from outside: unique violations are Conflict naming the
//! column and keeping the database's code; other constraint violations are Constraint; every
//! violation names its constraint kind; checkout timeouts, statement timeouts and transaction
//! deadlines are told apart; an unreachable server is a connection error; lock waits are
//! retryable; a tampered audit trail and an edited migration are integrity errors of their
//! kind.

use crate::common::TestDb;
use crate::entities::*;
use custodian::diesel::connection::TransactionManager;
use custodian::prelude::*;
use custodian::{BackendKind, ConstraintKind, DatabaseConfig, Error, IntegrityKind, TimeoutKind};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn unique_violation_is_conflict_naming_the_column(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    db.raw_sql(match db.kind {
        BackendKind::Mysql => {
            "ALTER TABLE controls MODIFY code VARCHAR(64) NOT NULL, ADD UNIQUE KEY code (code)"
        }
        _ => "CREATE UNIQUE INDEX controls_code ON controls (code)",
    });
    let mut s = db.session().unwrap();
    s.insert(Control::new("U-1", 1)).unwrap();
    let err = s.insert(Control::new("U-1", 2)).unwrap_err();
    let Error::Conflict { source } = &err else {
        panic!("expected Conflict, got {err:?}")
    };
    assert_eq!(source.column.as_deref(), Some("code"), "{source:?}");
    let expected = match db.kind {
        BackendKind::Postgres => "23505",
        BackendKind::Mysql => "1062",
        _ => "SQLITE_CONSTRAINT_UNIQUE",
    };
    assert_eq!(source.code.as_deref(), Some(expected));
    assert!(err.to_string().contains("code"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(s.count(controls::table.count()).unwrap(), 1);

    // A duplicate primary key is a Conflict too.
    let c = Counter {
        name: "k".into(),
        value: 1,
    };
    db.create_table::<Counter>().unwrap();
    s.insert(c.clone()).unwrap();
    assert!(matches!(s.insert(c), Err(Error::Conflict { .. })));
}

fn not_null_violation_is_constraint(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let err = s
        .execute_sql("INSERT INTO controls (code, title, risk, active) VALUES (NULL, 't', 1, TRUE)")
        .unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
    assert_eq!(
        err.db_error().and_then(|e| e.column.as_deref()),
        Some("code"),
        "{err:?}"
    );
}

on_all_backends!(
    unique_violation_is_conflict_naming_the_column,
    not_null_violation_is_constraint
);

// ------------------------------------------------------------------ typed kinds

/// The database code each backend gives for `what`.
fn code(db: &TestDb, pg: &str, maria: &str, sqlite: &str) -> String {
    match db.kind {
        BackendKind::Postgres => pg,
        BackendKind::Mysql => maria,
        _ => sqlite,
    }
    .to_string()
}

/// Each violation, made with raw SQL through a session, names its constraint kind and keeps
/// the database's code; the kind serializes and becomes the field error code.
fn constraint_violations_name_their_kind(db: &TestDb) {
    db.raw_sql(
        "CREATE TABLE err_parent (id INTEGER PRIMARY KEY);
         CREATE TABLE err_child (
             id INTEGER PRIMARY KEY,
             parent_id INTEGER NOT NULL,
             qty INTEGER NOT NULL,
             code VARCHAR(20),
             CONSTRAINT err_child_code_key UNIQUE (code),
             CONSTRAINT err_child_qty_check CHECK (qty > 0),
             CONSTRAINT err_child_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES err_parent (id)
         );",
    );
    let mut s = db.session().unwrap();
    s.execute_sql("INSERT INTO err_parent (id) VALUES (1)")
        .unwrap();
    s.execute_sql("INSERT INTO err_child (id, parent_id, qty, code) VALUES (1, 1, 5, 'A')")
        .unwrap();
    let cases = [
        (
            "INSERT INTO err_child (id, parent_id, qty, code) VALUES (2, 1, 5, 'A')",
            ConstraintKind::Unique,
            code(db, "23505", "1062", "SQLITE_CONSTRAINT_UNIQUE"),
        ),
        (
            "INSERT INTO err_child (id, parent_id, qty, code) VALUES (3, NULL, 5, 'B')",
            ConstraintKind::NotNull,
            code(db, "23502", "1048", "SQLITE_CONSTRAINT_NOTNULL"),
        ),
        (
            "INSERT INTO err_child (id, parent_id, qty, code) VALUES (4, 99, 5, 'C')",
            ConstraintKind::ForeignKey,
            code(db, "23503", "1452", "SQLITE_CONSTRAINT_FOREIGNKEY"),
        ),
        (
            "INSERT INTO err_child (id, parent_id, qty, code) VALUES (5, 1, 0, 'D')",
            ConstraintKind::Check,
            code(db, "23514", "4025", "SQLITE_CONSTRAINT_CHECK"),
        ),
        (
            "DELETE FROM err_parent WHERE id = 1",
            ConstraintKind::ForeignKey,
            code(db, "23503", "1451", "SQLITE_CONSTRAINT_FOREIGNKEY"),
        ),
    ];
    for (sql, kind, code) in cases {
        let err = s.execute_sql(sql).unwrap_err();
        match (&err, kind) {
            (Error::Conflict { .. }, ConstraintKind::Unique) => {}
            (Error::Constraint { .. }, k) if k != ConstraintKind::Unique => {}
            _ => panic!("{sql}: unexpected cause {err:?}"),
        }
        assert_eq!(err.constraint_kind(), Some(kind), "{sql}: {err:?}");
        let db_error = err.db_error().unwrap();
        assert_eq!(db_error.code.as_deref(), Some(code.as_str()), "{sql}");
        assert_eq!(
            serde_json::to_value(db_error).unwrap()["kind"],
            kind.as_str(),
            "{sql}"
        );
        let fields = err.field_errors().unwrap();
        let codes: Vec<&str> = fields
            .fields
            .values()
            .flatten()
            .map(|e| e.code.as_str())
            .collect();
        assert_eq!(codes, [kind.as_str()], "{sql}");
        assert!(!err.is_retryable());
    }
    // Nothing of the refused statements was written.
    assert_eq!(count_rows(&mut s, db.kind, "err_child"), 1);
}

fn count_rows(s: &mut custodian::Session, kind: BackendKind, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = custodian::diesel::sql_types::BigInt)]
        n: i64,
    }
    let int = if kind == BackendKind::Mysql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    let sql = format!("SELECT CAST(COUNT(*) AS {int}) AS n FROM {table}");
    let rows: Vec<N> = s
        .run(|c| custodian::diesel::sql_query(sql).load(c))
        .unwrap();
    rows[0].n
}

/// A pool of one whose connection is held: the next checkout waits its limit and is a
/// checkout timeout, not a connection error; once the connection is back, checkouts work.
fn held_pool_is_a_checkout_timeout(db: &TestDb) {
    let db = TestDb::with(db.kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
        c.pool.connection_timeout_ms = 300;
    });
    let held = db.session().unwrap();
    let started = Instant::now();
    let err = db.session().unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    match &err {
        Error::Timeout {
            kind: TimeoutKind::Checkout,
            limit,
            source: None,
            ..
        } => assert_eq!(*limit, Some(Duration::from_millis(300))),
        other => panic!("expected a checkout timeout, got {other:?}"),
    }
    assert!(err.to_string().contains("1 of 1 in use"), "{err}");
    assert!(!err.is_retryable());
    drop(held);
    db.session().unwrap();
}

/// A TCP relay to a database server that can be cut: its listener closes and every relayed
/// connection is shut down, so the server looks unreachable from the client.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn to(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (target, halt, kept) = (target.to_string(), stop.clone(), streams.clone());
        let accept = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let mut kept = kept.lock().unwrap();
                        kept.push(client.try_clone().unwrap());
                        kept.push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        });
        Relay {
            port,
            stop,
            streams,
            accept: Some(accept),
        }
    }

    /// Closes the listener and every relayed connection.
    fn cut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// A checkout that cannot get a connection because the server became unreachable is a
/// connection error (naming the address, with the failure as its source), not a timeout.
/// PostgreSQL and MariaDB: the server is reached through a relay that is then cut. SQLite: the
/// database file's directory is removed and the pooled connection is discarded.
fn unreachable_server_at_checkout_is_a_connection_error(db: &TestDb) {
    let mut relay = None;
    let mut dir = None;
    let url = match db.kind {
        BackendKind::Sqlite => {
            let d = std::env::temp_dir().join(format!("{}-unreachable", db.name));
            std::fs::create_dir_all(&d).unwrap();
            let url = format!("sqlite://{}", d.join("db.sqlite").display());
            dir = Some(d);
            url
        }
        _ => {
            let base = match db.kind {
                BackendKind::Postgres => crate::common::pg_base(),
                _ => crate::common::mysql_base(),
            };
            let address = base.rsplit(['@', '/']).next().unwrap().to_string();
            let r = Relay::to(&address);
            let url = db
                .url
                .replacen(&address, &format!("127.0.0.1:{}", r.port), 1);
            relay = Some(r);
            url
        }
    };
    let mut cfg = DatabaseConfig::from_url(&url).unwrap();
    cfg.pool.max_size = 1;
    cfg.pool.min_idle = Some(1);
    cfg.pool.connection_timeout_ms = 1_000;
    let cut = custodian::open(cfg).unwrap();
    let mut s = cut.session().unwrap();
    s.execute_sql("SELECT 1").unwrap();
    match (&mut relay, &dir) {
        (Some(r), _) => {
            drop(s);
            r.cut();
        }
        (None, Some(d)) => {
            // Left inside a transaction, the connection is discarded on return; the pool then
            // cannot open another one.
            <custodian::AnyConnection as Connection>::TransactionManager::begin_transaction(
                s.connection(),
            )
            .unwrap();
            std::fs::remove_dir_all(d).unwrap();
            drop(s);
        }
        _ => unreachable!(),
    }
    let err = cut.session().unwrap_err();
    let Error::Connection {
        message,
        source: Some(source),
    } = &err
    else {
        panic!("expected a connection error with a source, got {err:?}")
    };
    let shown = match db.kind {
        BackendKind::Sqlite => "sqlite://".to_string(),
        _ => format!("127.0.0.1:{}", relay.as_ref().unwrap().port),
    };
    assert!(message.contains(&shown), "names the address: {message}");
    assert!(err.timeout_kind().is_none());
    // The failure is the typed error the pool met, not its text.
    let failure = source
        .downcast_ref::<Arc<Error>>()
        .unwrap_or_else(|| panic!("typed source: {source:?}"));
    assert!(
        matches!(**failure, Error::Connection { .. } | Error::Database { .. }),
        "{failure:?}"
    );
}

/// The per-statement limit: PostgreSQL and MariaDB stop the statement and the error is a
/// statement timeout with the configured limit and the database's code; SQLite has no
/// statement limit, and the same setting lets a long statement finish.
fn statement_timeout_is_a_statement_timeout(db: &TestDb) {
    let db = TestDb::with(db.kind, |c| c.session.statement_timeout_ms = Some(200));
    db.raw_sql("CREATE TABLE slow (x INTEGER); INSERT INTO slow (x) VALUES (1);");
    let mut s = db.session().unwrap();
    let started = Instant::now();
    let result = s.execute_sql(match db.kind {
        BackendKind::Postgres => "SELECT pg_sleep(2)",
        BackendKind::Mysql => "SELECT * FROM slow WHERE SLEEP(2) = 0",
        _ => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
             SELECT COUNT(*) FROM c"
        }
    });
    let took = started.elapsed();
    if db.kind == BackendKind::Sqlite {
        result.unwrap();
        assert!(took > Duration::from_millis(200), "{took:?}");
        return;
    }
    let err = result.unwrap_err();
    match &err {
        Error::Timeout {
            kind: TimeoutKind::Statement,
            limit,
            ..
        } => assert_eq!(*limit, Some(Duration::from_millis(200))),
        other => panic!("expected a statement timeout, got {other:?}"),
    }
    let expected = code(&db, "57014", "1969", "");
    assert_eq!(
        err.db_error().and_then(|e| e.code.as_deref()),
        Some(expected.as_str())
    );
    // The session goes on.
    s.execute_sql("SELECT 1").unwrap();
}

/// A transaction past its deadline is a transaction-deadline timeout with its limit on every
/// backend; where the database stopped the running statement (PostgreSQL, MariaDB) the error
/// keeps the database's code, SQLite (checked between statements) has none.
fn deadline_keeps_the_database_code(db: &TestDb) {
    db.raw_sql("CREATE TABLE slow (x INTEGER); INSERT INTO slow (x) VALUES (1);");
    let opts = TxOptions::new()
        .timeout(Duration::from_millis(200))
        .no_retry();
    let kind = db.kind;
    let err = db
        .transaction_with(&opts, |tx| match kind {
            BackendKind::Postgres => tx.execute_sql("SELECT pg_sleep(2)").map(|_| ()),
            BackendKind::Mysql => tx
                .execute_sql("SELECT * FROM slow WHERE SLEEP(2) = 0")
                .map(|_| ()),
            _ => {
                std::thread::sleep(Duration::from_millis(300));
                tx.execute_sql("SELECT 1").map(|_| ())
            }
        })
        .unwrap_err();
    assert_eq!(
        err.timeout_kind(),
        Some(TimeoutKind::TransactionDeadline),
        "{err:?}"
    );
    let Error::Timeout { limit, .. } = &err else {
        unreachable!()
    };
    assert_eq!(*limit, Some(Duration::from_millis(200)));
    let expected = match kind {
        BackendKind::Postgres => Some("57014"),
        BackendKind::Mysql => Some("1969"),
        _ => None,
    };
    assert_eq!(err.db_error().and_then(|e| e.code.as_deref()), expected);
}

/// A lock wait that runs out is a retryable serialization failure on every backend, with the
/// database's code: PostgreSQL `lock_timeout` (55P03), MariaDB `innodb_lock_wait_timeout`
/// (1205), SQLite `busy_timeout` (SQLITE_BUSY).
fn lock_wait_is_retryable(db: &TestDb) {
    type Tm = <custodian::AnyConnection as Connection>::TransactionManager;
    let db = TestDb::with(db.kind, |c| c.session.busy_timeout_ms = 200);
    db.raw_sql("CREATE TABLE locked (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO locked (id, n) VALUES (1, 0);");
    let mut holder = db.session().unwrap();
    Tm::begin_transaction(holder.connection()).unwrap();
    holder
        .execute_sql("UPDATE locked SET n = 1 WHERE id = 1")
        .unwrap();
    let mut waiter = db.session().unwrap();
    match db.kind {
        BackendKind::Postgres => {
            waiter.execute_sql("SET lock_timeout = 200").unwrap();
        }
        BackendKind::Mysql => {
            waiter
                .execute_sql("SET SESSION innodb_lock_wait_timeout = 1")
                .unwrap();
        }
        _ => {}
    }
    let err = waiter
        .execute_sql("UPDATE locked SET n = 2 WHERE id = 1")
        .unwrap_err();
    assert!(
        matches!(err, Error::Serialization { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(
        err.db_error().and_then(|e| e.code.clone()),
        Some(code(&db, "55P03", "1205", "SQLITE_BUSY"))
    );
    Tm::rollback_transaction(holder.connection()).unwrap();
}

/// Records changed behind custodian's back: verification and sealing fail with an audit
/// trail integrity error; a checkpoint that does not verify is a checkpoint integrity error.
fn tampered_audit_record_is_audit_trail_damage(db: &TestDb) {
    use crate::audit::{entry, Entry};
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut (1..=3).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    db.verify_audit(None).unwrap().into_result().unwrap();
    // A checkpoint checked against another key, or altered after signing, does not verify.
    let signer = custodian::audit::generate_signing_key().unwrap();
    let cp = db.checkpoint(&signer).unwrap();
    cp.verify_signature(&signer.verifying_key()).unwrap();
    let stranger = custodian::audit::generate_signing_key().unwrap();
    let mut forged = cp.clone();
    forged.seq += 1;
    for err in [
        cp.verify_signature(&stranger.verifying_key()).unwrap_err(),
        forged
            .verify_signature(&signer.verifying_key())
            .unwrap_err(),
    ] {
        assert_eq!(
            err.integrity_kind(),
            Some(IntegrityKind::Checkpoint),
            "{err:?}"
        );
    }
    db.raw_sql("UPDATE custodian_audit SET actor = 'mallory'");
    let err = db.verify_audit(None).unwrap().into_result().unwrap_err();
    assert_eq!(
        err.integrity_kind(),
        Some(IntegrityKind::AuditTrail),
        "{err:?}"
    );
    assert!(err.to_string().contains("sequence 1"), "{err}");
    // An unsealed record forged the same way stops the sealer.
    s.insert(entry(4)).unwrap();
    db.raw_sql("UPDATE custodian_audit SET actor = 'mallory' WHERE entity_key LIKE '%4%'");
    let err = db.seal_audit().unwrap_err();
    assert_eq!(
        err.integrity_kind(),
        Some(IntegrityKind::AuditTrail),
        "{err:?}"
    );
}

/// A migration edited after it was applied: the next run is a migration checksum integrity
/// error and runs nothing.
fn edited_migration_is_a_checksum_mismatch(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!("{}-migrations", db.name));
    let m = dir.join(db.kind.to_string()).join("20250101000000_errs");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("up.sql"), "CREATE TABLE mig_t (id INTEGER);\n").unwrap();
    std::fs::write(m.join("down.sql"), "DROP TABLE mig_t;\n").unwrap();
    assert_eq!(db.run_migrations(&dir).unwrap().len(), 1);
    std::fs::write(
        m.join("up.sql"),
        "CREATE TABLE mig_t (id INTEGER, extra INTEGER);\n",
    )
    .unwrap();
    let err = db.run_migrations(&dir).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        err.integrity_kind(),
        Some(IntegrityKind::MigrationChecksum),
        "{err:?}"
    );
    assert!(err.to_string().contains("20250101000000"), "{err}");
}

on_all_backends!(
    constraint_violations_name_their_kind,
    held_pool_is_a_checkout_timeout,
    unreachable_server_at_checkout_is_a_connection_error,
    statement_timeout_is_a_statement_timeout,
    deadline_keeps_the_database_code,
    lock_wait_is_retryable,
    tampered_audit_record_is_audit_trail_damage,
    edited_migration_is_a_checksum_mismatch,
);
