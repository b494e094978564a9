//! Commits cut off mid-flight, settled instead of guessed: a proxy between custodian and the
//! server cuts the connection after the server answered `COMMIT` (committed), right after
//! `COMMIT` went out while the server is still committing, or instead of sending it (not
//! committed); with the server then unreachable, the outcome is `Error::CommitUnknown`.
//! Transactions are settled by their audit records, or by their outcome row when unaudited.
//!
//! SQLite is embedded: no connection can break between `COMMIT` and its answer, so nothing is
//! settled there; its test shows that asking for an outcome row costs nothing there.

use crate::common::{TestDb, AUDIT_KEY};
use crate::faults::{transfers, Account, Transfer};
use crate::proxy::{Cut, Proxy};
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Error, Principal, RetryPolicy};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// An audited entry: a transaction writing one is settled by its audit records.
#[entity(table = "entries")]
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    #[column(primary_key)]
    pub id: String,
    pub amount: i64,
}

/// Splits `scheme://user@host:port/db` into (`host:port`, the URL with `addr` as authority).
fn through(url: &str, addr: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = rest.rsplit_once('@').unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    // Plain TCP, so the proxy sees the statements.
    let tls = if scheme.starts_with("postgres") {
        "?sslmode=disable"
    } else {
        ""
    };
    (
        host.to_string(),
        format!("{scheme}://{user}@{addr}/{path}{tls}"),
    )
}

/// The test database, opened again through a proxy.
fn via_proxy(db: &TestDb, budget_ms: u64, records_with_commit: bool) -> (Proxy, custodian::Db) {
    let (upstream, _) = through(&db.url, "");
    let proxy = Proxy::start(&upstream);
    let (_, url) = through(&db.url, &proxy.addr());
    let mut cfg = DatabaseConfig::from_url(&url).unwrap();
    cfg.pool.max_size = 2;
    cfg.pool.min_idle = Some(1);
    cfg.pool.connection_timeout_ms = 2_000;
    cfg.audit.key = Some(AUDIT_KEY.into());
    cfg.audit.records_with_commit = records_with_commit;
    cfg.retry = RetryPolicy {
        max_elapsed_ms: budget_ms,
        ..RetryPolicy::default()
    };
    let proxied = custodian::open(cfg)
        .unwrap()
        .acting_as(Principal::new("test-suite").with_role("admin"));
    (proxy, proxied)
}

fn setup(kind: BackendKind) -> TestDb {
    let db = TestDb::new(kind);
    db.create_table::<Account>().unwrap();
    db.create_table::<Transfer>().unwrap();
    db.create_table::<Entry>().unwrap();
    db.install_tx_outcomes().unwrap();
    let mut rows = vec![
        Account {
            id: 1,
            balance: 100,
            note: String::new(),
        },
        Account {
            id: 2,
            balance: 100,
            note: String::new(),
        },
    ];
    db.session().unwrap().insert_many(&mut rows).unwrap();
    db
}

/// Runs `f` on a thread, failing the test when it takes longer than `limit` (a hang).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the transaction did not finish within {limit:?}"))
}

/// What a cut transaction left: its result, how often the closure ran, account 1's balance,
/// and how many transfer rows and entries there are.
struct Seen {
    result: Result<(), Error>,
    runs: usize,
    balance: i64,
    transfers: i64,
    entries: i64,
}

/// One transfer of 10 from account 1 (audited: also an entry; else a transfer row with an
/// outcome row), through the proxy with `cut` armed for its first `COMMIT`. `unreachable`:
/// the proxy refuses new connections from the moment the closure first returns.
fn cut_commit(kind: BackendKind, cut: Cut, audited: bool, unreachable: bool) -> Seen {
    // Audited: settled by its audit records, with default options.
    let options = if audited {
        TxOptions::new()
    } else {
        TxOptions::new().record_outcome(true)
    };
    cut_commit_with(kind, cut, audited, unreachable, options, false)
}

/// [`cut_commit`] with the transaction's options given.
fn cut_commit_with(
    kind: BackendKind,
    cut: Cut,
    audited: bool,
    unreachable: bool,
    options: TxOptions,
    records_with_commit: bool,
) -> Seen {
    let db = setup(kind);
    if kind == BackendKind::Postgres && cut == Cut::AfterSend {
        // COMMIT takes a second (a deferred trigger sleeps), so the server is still committing
        // when the client is cut off: a lookup that does not wait would see nothing yet.
        db.raw_sql(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER slow AFTER UPDATE ON accounts DEFERRABLE INITIALLY \
             DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        );
    }
    let budget = if unreachable { 1_000 } else { 5_000 };
    let (proxy, proxied) = via_proxy(&db, budget, records_with_commit);
    let proxy = Arc::new(proxy);
    proxy.arm(cut);
    let runs = Arc::new(AtomicUsize::new(0));
    let (counted, p) = (runs.clone(), proxy.clone());
    let result = within(Duration::from_secs(30), move || {
        proxied.transaction_with(&options, |tx| {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut a = tx.get::<Account>(&1)?;
            a.balance -= 10;
            tx.update(&mut a)?;
            if audited {
                tx.insert(Entry {
                    id: "e-1".into(),
                    amount: 10,
                })?;
            } else {
                tx.insert(Transfer {
                    id: "t-1".into(),
                    src: 1,
                    dst: 2,
                    amount: 10,
                })?;
            }
            if unreachable {
                p.refuse(true);
            }
            Ok(())
        })
    });
    assert!(!proxy.armed(), "the cut happened");
    drop(proxy);
    let mut s = db.session().unwrap();
    Seen {
        result,
        runs: runs.load(Ordering::SeqCst),
        balance: s.get::<Account>(&1).unwrap().balance,
        transfers: s.count(transfers::table.count()).unwrap(),
        entries: s.count(entries::table.count()).unwrap(),
    }
}

/// The effect landed exactly once.
fn once(seen: &Seen, audited: bool) {
    assert_eq!(seen.balance, 90, "account 1 debited once");
    assert_eq!(
        (seen.transfers, seen.entries),
        if audited { (0, 1) } else { (1, 0) }
    );
}

/// The server committed, its answer was lost: Ok, and the closure did not run again.
fn committed_is_ok_without_rerun(kind: BackendKind, audited: bool) {
    let seen = cut_commit(kind, Cut::AfterReply, audited, false);
    seen.result.as_ref().unwrap();
    assert_eq!(seen.runs, 1, "not re-run");
    once(&seen, audited);
}

/// The `COMMIT` never reached the server, whose session still holds the transaction (and its
/// row lock) open: the session is ended, the closure runs again, the effect lands once.
fn not_committed_reruns(kind: BackendKind, audited: bool) {
    let seen = cut_commit(kind, Cut::Swallow, audited, false);
    seen.result.as_ref().unwrap();
    assert_eq!(seen.runs, 2, "re-run once");
    once(&seen, audited);
}

/// The client is cut off while the server is still committing (PostgreSQL: for a second):
/// the outcome is settled only once the old session ended, and the effect lands once.
fn in_flight_lands_once(kind: BackendKind, audited: bool) {
    let seen = cut_commit(kind, Cut::AfterSend, audited, false);
    seen.result.as_ref().unwrap();
    assert!((1..=2).contains(&seen.runs), "{} runs", seen.runs);
    once(&seen, audited);
}

/// The server cannot be reached after the cut: `Error::CommitUnknown` after the retry budget,
/// the closure not re-run. (The transaction did commit.)
fn unreachable_is_commit_unknown(kind: BackendKind, audited: bool) {
    let started = std::time::Instant::now();
    let seen = cut_commit(kind, Cut::AfterReply, audited, true);
    let err = seen.result.as_ref().unwrap_err();
    assert!(err.is_commit_unknown(), "{err:?}");
    assert_eq!(seen.runs, 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up within the budget"
    );
    once(&seen, audited);
}

/// `record_outcome(false)` settles nothing, even for an audited transaction: a cut-off commit
/// is `Error::CommitUnknown`, not re-run (here it did commit).
fn opted_out_is_commit_unknown(kind: BackendKind) {
    let options = TxOptions::new().record_outcome(false);
    let seen = cut_commit_with(kind, Cut::AfterReply, true, false, options, false);
    let err = seen.result.as_ref().unwrap_err();
    assert!(err.is_commit_unknown(), "{err:?}");
    assert_eq!(seen.runs, 1);
    once(&seen, true);
}

/// A trail installed before the transaction-id index existed gets it from `install_audit`.
fn audit_tx_index_is_added_to_existing_trails(kind: BackendKind) {
    let db = TestDb::new(kind);
    db.install_audit().unwrap();
    let (drop_sql, probe) = match kind {
        BackendKind::Postgres => (
            "DROP INDEX custodian_audit_tx_idx",
            "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = 'custodian_audit_tx_idx'",
        ),
        BackendKind::Mysql => (
            "DROP INDEX custodian_audit_tx_idx ON custodian_audit",
            "SELECT COUNT(*) AS n FROM information_schema.STATISTICS WHERE \
             TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'custodian_audit_tx_idx'",
        ),
        _ => (
            "DROP INDEX custodian_audit_tx_idx",
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'custodian_audit_tx_idx'",
        ),
    };
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = custodian::diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = || -> i64 {
        let mut s = db.session().unwrap();
        let row: N = custodian::diesel::RunQueryDsl::get_result(
            custodian::diesel::sql_query(probe),
            s.connection(),
        )
        .unwrap();
        row.n
    };
    assert_eq!(count(), 1, "a new trail has the index");
    db.raw_sql(drop_sql);
    assert_eq!(count(), 0);
    db.install_audit().unwrap();
    assert_eq!(count(), 1, "install added it back");
}

/// A transaction that opted into an outcome row leaves one keyed by its id; one that did not
/// leaves none; pruning with a retention of 0 s deletes it. SQLite writes none (nothing to
/// settle there) and needs no table.
fn outcome_rows_are_written_and_pruned(kind: BackendKind) {
    let db = TestDb::with(kind, |c| c.commit_outcome.retention_secs = 0);
    db.create_table::<Transfer>().unwrap();
    if kind != BackendKind::Sqlite {
        db.install_tx_outcomes().unwrap();
    }
    let mut ids = Vec::new();
    for (i, record) in [true, false].into_iter().enumerate() {
        let options = TxOptions::new().record_outcome(record);
        let id = db
            .transaction_with(&options, |tx| {
                tx.insert(Transfer {
                    id: format!("t-{i}"),
                    src: 1,
                    dst: 2,
                    amount: 1,
                })?;
                Ok(tx.tx_id().unwrap().to_string())
            })
            .unwrap();
        ids.push(id);
    }
    if kind == BackendKind::Sqlite {
        return;
    }
    let mut s = db.session().unwrap();
    let rows: Vec<String> = s.load(outcome::table.select(outcome::tx_id)).unwrap();
    assert_eq!(
        rows,
        vec![ids[0].clone()],
        "only the opted-in transaction's row"
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(db.prune_tx_outcomes().unwrap(), 1);
    assert_eq!(s.count(outcome::table.count()).unwrap(), 0);
}

/// The outcome table, for reading it in tests.
mod outcome {
    custodian::diesel::table! {
        custodian_tx_outcome (tx_id) {
            tx_id -> Text,
        }
    }
    pub use custodian_tx_outcome::*;
}

mod cut {
    use custodian::BackendKind::{Mysql, Postgres};
    #[test]
    fn committed_unaudited_postgres() {
        super::committed_is_ok_without_rerun(Postgres, false);
    }
    #[test]
    fn committed_unaudited_mariadb() {
        super::committed_is_ok_without_rerun(Mysql, false);
    }
    #[test]
    fn committed_audited_postgres() {
        super::committed_is_ok_without_rerun(Postgres, true);
    }
    #[test]
    fn committed_audited_mariadb() {
        super::committed_is_ok_without_rerun(Mysql, true);
    }
    #[test]
    fn not_committed_unaudited_postgres() {
        super::not_committed_reruns(Postgres, false);
    }
    #[test]
    fn not_committed_unaudited_mariadb() {
        super::not_committed_reruns(Mysql, false);
    }
    #[test]
    fn not_committed_audited_postgres() {
        super::not_committed_reruns(Postgres, true);
    }
    #[test]
    fn not_committed_audited_mariadb() {
        super::not_committed_reruns(Mysql, true);
    }
    #[test]
    fn in_flight_unaudited_postgres() {
        super::in_flight_lands_once(Postgres, false);
    }
    #[test]
    fn in_flight_audited_postgres() {
        super::in_flight_lands_once(Postgres, true);
    }
    #[test]
    fn in_flight_unaudited_mariadb() {
        super::in_flight_lands_once(Mysql, false);
    }
    #[test]
    fn unreachable_unaudited_postgres() {
        super::unreachable_is_commit_unknown(Postgres, false);
    }
    #[test]
    fn unreachable_audited_mariadb() {
        super::unreachable_is_commit_unknown(Mysql, true);
    }
    #[test]
    fn unreachable_unaudited_mariadb() {
        super::unreachable_is_commit_unknown(Mysql, false);
    }
}

mod opted_out {
    use custodian::BackendKind::{Mysql, Postgres};
    #[test]
    fn postgres() {
        super::opted_out_is_commit_unknown(Postgres);
    }
    #[test]
    fn mariadb() {
        super::opted_out_is_commit_unknown(Mysql);
    }
}

mod audit_tx_index {
    use custodian::BackendKind::{Mysql, Postgres, Sqlite};
    #[test]
    fn postgres() {
        super::audit_tx_index_is_added_to_existing_trails(Postgres);
    }
    #[test]
    fn mariadb() {
        super::audit_tx_index_is_added_to_existing_trails(Mysql);
    }
    #[test]
    fn sqlite() {
        super::audit_tx_index_is_added_to_existing_trails(Sqlite);
    }
}

mod outcome_rows {
    use custodian::BackendKind::{Mysql, Postgres, Sqlite};
    #[test]
    fn postgres() {
        super::outcome_rows_are_written_and_pruned(Postgres);
    }
    #[test]
    fn mariadb() {
        super::outcome_rows_are_written_and_pruned(Mysql);
    }
    #[test]
    fn sqlite() {
        super::outcome_rows_are_written_and_pruned(Sqlite);
    }
}

/// PostgreSQL with `audit.records_with_commit`: the audit records travel in the `COMMIT`'s
/// batch, which the proxy cuts as it cuts a plain `COMMIT`; records and commit land or fail
/// together, so the outcome is settled by the records as before.
mod records_with_commit {
    use super::{cut_commit_with, once, Cut, TxOptions};
    use custodian::BackendKind::Postgres;

    #[test]
    fn committed_is_ok_without_rerun() {
        let seen = cut_commit_with(
            Postgres,
            Cut::AfterReply,
            true,
            false,
            TxOptions::new(),
            true,
        );
        seen.result.as_ref().unwrap();
        assert_eq!(seen.runs, 1, "not re-run");
        once(&seen, true);
    }

    #[test]
    fn not_committed_reruns() {
        let seen = cut_commit_with(Postgres, Cut::Swallow, true, false, TxOptions::new(), true);
        seen.result.as_ref().unwrap();
        assert_eq!(seen.runs, 2, "re-run once");
        once(&seen, true);
    }

    #[test]
    fn in_flight_lands_once() {
        let seen = cut_commit_with(
            Postgres,
            Cut::AfterSend,
            true,
            false,
            TxOptions::new(),
            true,
        );
        seen.result.as_ref().unwrap();
        assert!((1..=2).contains(&seen.runs), "{} runs", seen.runs);
        once(&seen, true);
    }
}
