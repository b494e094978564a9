//! The rig of the coordinated-transaction tests: a private PostgreSQL server that can prepare
//! transactions (`tests/cluster/pg-prepared.sh`, started once per process, stopped by
//! `run-tests`), one fresh database per test on it and on the shared MariaDB server with the
//! audit tables and an account, the sweep of a test's XA branches, and the raw-SQL probes the
//! tests judge by (prepared transactions left, balances and transfers).

use crate::common::{TestDb, AUDIT_KEY};
use custodian::audit::tables::custodian_audit as a;
use custodian::coordinate::Coordinator;
use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::Connection;
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Principal};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
/// One account per database; transfers move money from PostgreSQL's to MariaDB's.
#[entity(table = "co_accounts")]
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
}

/// A transfer, written to both databases by the coordinated transaction that makes it.
#[entity(table = "co_transfers")]
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    #[column(primary_key)]
    pub id: i64,
    pub amount: i64,
}

pub(crate) const START: i64 = 1_000_000;
/// The private server's port (`CUSTODIAN_PG_PREPARED_PORT`, as pg-prepared.sh).
pub(crate) fn pg_prepared_port() -> u16 {
    crate::cluster_rig::rig_port("CUSTODIAN_PG_PREPARED_PORT", 25450)
}

/// Tests read-lock it; the restart test write-locks it while the private server restarts.
pub(crate) static PRIVATE_PG: RwLock<()> = RwLock::new(());

pub(crate) fn rig_script() -> String {
    format!(
        "{}/tests/cluster/pg-prepared.sh",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Starts the private PostgreSQL server that can prepare transactions (once per process).
fn private_pg_base() -> &'static str {
    static UP: OnceLock<String> = OnceLock::new();
    UP.get_or_init(|| {
        let out = Command::new(rig_script())
            .arg("up")
            .output()
            .expect("run tests/cluster/pg-prepared.sh");
        assert!(
            out.status.success(),
            "tests/cluster/pg-prepared.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}", pg_prepared_port())
    })
}

pub(crate) static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A database on the private PostgreSQL server, dropped afterwards.
pub(crate) struct PreparedPg {
    name: String,
    pub(crate) url: String,
    db: Option<Db>,
}

impl std::ops::Deref for PreparedPg {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db.as_ref().expect("open database")
    }
}

impl PreparedPg {
    pub(crate) fn new() -> PreparedPg {
        let base = private_pg_base();
        let name = format!(
            "co_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        custodian::diesel::PgConnection::establish(&format!("{base}/postgres"))
            .expect("reach the private PostgreSQL")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let url = format!("{base}/{name}");
        PreparedPg {
            db: Some(open(&url)),
            name,
            url,
        }
    }
}

impl Drop for PreparedPg {
    fn drop(&mut self) {
        drop(self.db.take());
        if let Ok(mut c) =
            custodian::diesel::PgConnection::establish(&format!("{}/postgres", private_pg_base()))
        {
            // A prepared transaction left by a failed test would keep the database busy.
            let _ = c.batch_execute(&format!(
                "DO $$ DECLARE g text; BEGIN FOR g IN SELECT gid FROM pg_prepared_xacts \
                 WHERE database = '{0}' LOOP EXECUTE format('ROLLBACK PREPARED %L', g); \
                 END LOOP; END $$; DROP DATABASE IF EXISTS {0} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The settings every test database is opened with.
pub(crate) fn config(url: &str) -> DatabaseConfig {
    let mut cfg = DatabaseConfig::from_url(url).expect("valid url");
    cfg.pool.max_size = 4;
    cfg.pool.min_idle = Some(1);
    cfg.audit.key = Some(AUDIT_KEY.into());
    cfg
}

pub(crate) fn open(url: &str) -> Db {
    custodian::open(config(url))
        .expect("open database")
        .acting_as(Principal::new("coordinator-test").with_role("admin"))
}

pub(crate) fn prepare_tables(db: &Db) {
    db.install_audit().unwrap();
    db.create_table::<Account>().unwrap();
    db.create_table::<Transfer>().unwrap();
    db.session()
        .unwrap()
        .insert(Account {
            id: 1,
            balance: START,
        })
        .unwrap();
}

/// Rolls back, when dropped, any XA branch one test's coordinators (named `base`, or
/// `base` + `r<n>`) left prepared on the MariaDB server: a failed assertion must not leave
/// locks that would block the test database's `DROP DATABASE` for ever. Only that test's:
/// other tests run at the same time. Declare it after the MariaDB database, so it drops first.
pub(crate) struct XaSweep(pub(crate) String, pub(crate) String);

impl Drop for XaSweep {
    fn drop(&mut self) {
        use custodian::diesel::RunQueryDsl;
        #[derive(custodian::diesel::QueryableByName)]
        struct XaRow {
            #[diesel(sql_type = custodian::diesel::sql_types::BigInt)]
            gtrid_length: i64,
            #[diesel(sql_type = custodian::diesel::sql_types::Binary)]
            data: Vec<u8>,
        }
        let Ok(mut c) = custodian::diesel::MysqlConnection::establish(&self.0) else {
            return;
        };
        let (exact, numbered) = (format!("cust:{}:", self.1), format!("cust:{}r", self.1));
        let rows: Vec<XaRow> = custodian::diesel::sql_query("XA RECOVER")
            .load(&mut c)
            .unwrap_or_default();
        for r in rows {
            let split = r.gtrid_length as usize;
            let (g, b) = r.data.split_at(split.min(r.data.len()));
            let (g, b) = (String::from_utf8_lossy(g), String::from_utf8_lossy(b));
            if g.starts_with(&exact) || g.starts_with(&numbered) {
                let _ = c.batch_execute(&format!("XA ROLLBACK '{g}','{b}'"));
            }
        }
    }
}

pub(crate) fn unique_name() -> String {
    format!(
        "t{}x{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a guarded PostgreSQL test holds while it runs (see [`PRIVATE_PG`]).
enum PgLock {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// The rig of a coordinated-transaction test: a database on the private PostgreSQL server and
/// one on the shared MariaDB server, both with the audit tables and an account holding
/// [`START`]; a SQLite database (the log, or a participant); the coordinators' base name; and
/// the sweep of that name's XA branches. Fields drop in order: the sweep before the MariaDB
/// database (a prepared branch would block its `DROP DATABASE`), the lock last.
pub(crate) struct Rig {
    /// The base name of the test's coordinators (see [`unique_name`]).
    pub(crate) name: String,
    /// A SQLite database, without tables.
    pub(crate) log: TestDb,
    _sweep: XaSweep,
    pub(crate) my: TestDb,
    pub(crate) pg: PreparedPg,
    _lock: PgLock,
}

impl Rig {
    /// A rig sharing the private PostgreSQL server with other tests.
    pub(crate) fn new() -> Rig {
        Rig::with(PgLock::Shared(
            PRIVATE_PG.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    /// A rig with the private PostgreSQL server to itself (the test restarts it).
    pub(crate) fn exclusive() -> Rig {
        Rig::with(PgLock::Exclusive(
            PRIVATE_PG.write().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    fn with(lock: PgLock) -> Rig {
        let pg = PreparedPg::new();
        let my = TestDb::new(BackendKind::Mysql);
        let name = unique_name();
        let sweep = XaSweep(my.url.clone(), name.clone());
        let log = TestDb::new(BackendKind::Sqlite);
        prepare_tables(&pg);
        prepare_tables(&my);
        Rig {
            name,
            log,
            _sweep: sweep,
            my,
            pg,
            _lock: lock,
        }
    }
}

/// Moves `amount` from PostgreSQL's account to MariaDB's and records transfer `id` in both.
pub(crate) fn transfer(
    coord: &Coordinator,
    pg: &Db,
    my: &Db,
    id: i64,
    amount: i64,
) -> custodian::Result<()> {
    coord.run(&[pg, my], |s| {
        let mut from: Account = s[0].get(&1)?;
        from.balance -= amount;
        s[0].update(&mut from)?;
        let mut to: Account = s[1].get(&1)?;
        to.balance += amount;
        s[1].update(&mut to)?;
        s[0].insert(Transfer { id, amount })?;
        s[1].insert(Transfer { id, amount })?;
        Ok(())
    })
}

/// What the two databases hold: (balance, transfers) of each.
pub(crate) fn state(pg: &Db, my: &Db) -> ((i64, Vec<Transfer>), (i64, Vec<Transfer>)) {
    let read = |db: &Db| {
        let mut s = db.session().unwrap();
        let balance = s.get::<Account>(&1).unwrap().balance;
        let transfers = s
            .select::<Transfer, _>(co_transfers::table.order(co_transfers::id))
            .unwrap();
        (balance, transfers)
    };
    (read(pg), read(my))
}

/// Prepared transactions of coordinator `name` still on either server, read with raw SQL.
pub(crate) fn prepared_left(pg_url: &str, my_url: &str, name: &str) -> usize {
    use custodian::diesel::RunQueryDsl;
    #[derive(custodian::diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = custodian::diesel::sql_types::BigInt)]
        n: i64,
    }
    #[derive(custodian::diesel::QueryableByName)]
    struct XaRow {
        #[diesel(sql_type = custodian::diesel::sql_types::Binary)]
        data: Vec<u8>,
    }
    let prefix = format!("cust:{name}:");
    let mut pg = custodian::diesel::PgConnection::establish(pg_url).unwrap();
    let on_pg = custodian::diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_prepared_xacts WHERE gid LIKE '{prefix}%'"
    ))
    .get_result::<Count>(&mut pg)
    .unwrap()
    .n as usize;
    let mut my = custodian::diesel::MysqlConnection::establish(my_url).unwrap();
    let on_my = custodian::diesel::sql_query("XA RECOVER")
        .load::<XaRow>(&mut my)
        .unwrap()
        .into_iter()
        .filter(|r| r.data.starts_with(prefix.as_bytes()))
        .count();
    on_pg + on_my
}

/// The audit records of transfer rows in `db`, as (transaction id, key).
pub(crate) fn transfer_records(db: &Db) -> Vec<(String, String)> {
    db.session()
        .unwrap()
        .load(
            a::table
                .filter(a::entity.eq("co_transfers"))
                .order(a::id)
                .select((a::tx_id, a::entity_key)),
        )
        .unwrap()
}
