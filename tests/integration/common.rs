//! Test support: a fresh, isolated database per test on each backend, dropped afterwards.
//!
//! PostgreSQL and MariaDB tests create a database named `ct_<pid>_<n>` and drop it when the
//! test ends; SQLite tests use a file in the system temp directory. A missing server fails the
//! test with the command that starts it: nothing is skipped.
#![allow(dead_code)]

use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::Connection;
use custodian::{BackendKind, DatabaseConfig, Db};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Base URL of the PostgreSQL server used by tests (no database part).
pub fn pg_base() -> String {
    std::env::var("CUSTODIAN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Base URL of the MariaDB server used by tests (no database part).
pub fn mysql_base() -> String {
    std::env::var("CUSTODIAN_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The audit seal key of the test databases.
pub const AUDIT_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn unique_name() -> String {
    format!(
        "ct_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database created for one test; removed on drop.
pub struct TestDb {
    pub kind: BackendKind,
    pub url: String,
    pub name: String,
    db: Option<Db>,
}

impl std::ops::Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db.as_ref().expect("open test database")
    }
}

const PG_HINT: &str = "PostgreSQL is required for the test suite. Start it with: \
     pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
     (or set CUSTODIAN_TEST_PG=postgres://user@host:port)";
const MYSQL_HINT: &str = "MariaDB is required for the test suite. Start it with: \
     start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd \
     (or set CUSTODIAN_TEST_MYSQL=mysql://user@host:port)";

fn pg_admin() -> custodian::diesel::PgConnection {
    let url = format!("{}/postgres", pg_base());
    custodian::diesel::PgConnection::establish(&url)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}\n{PG_HINT}"))
}

fn mysql_admin() -> custodian::diesel::MysqlConnection {
    let url = mysql_base();
    custodian::diesel::MysqlConnection::establish(&url)
        .unwrap_or_else(|e| panic!("cannot reach MariaDB at {url}: {e}\n{MYSQL_HINT}"))
}

impl TestDb {
    /// A fresh database on `kind` with the given configuration tweak applied.
    pub fn with(kind: BackendKind, tweak: impl FnOnce(&mut DatabaseConfig)) -> TestDb {
        let name = unique_name();
        let url = match kind {
            BackendKind::Postgres => {
                pg_admin()
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                format!("{}/{name}", pg_base())
            }
            BackendKind::Mysql => {
                mysql_admin()
                    .batch_execute(&format!(
                        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ))
                    .expect("create test database");
                format!("{}/{name}", mysql_base())
            }
            _ => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                format!("sqlite://{}", path.display())
            }
        };
        let mut cfg = DatabaseConfig::from_url(&url).expect("valid test url");
        cfg.pool.max_size = 4;
        cfg.pool.min_idle = Some(1);
        cfg.pool.connection_timeout_ms = 10_000;
        cfg.audit.key = Some(AUDIT_KEY.into());
        tweak(&mut cfg);
        let db = custodian::open(cfg)
            .unwrap_or_else(|e| panic!("open {kind} test database: {e}"))
            .acting_as(custodian::Principal::new("test-suite").with_role("admin"));
        TestDb {
            kind,
            url,
            name,
            db: Some(db),
        }
    }

    /// A fresh database on `kind` with test defaults.
    pub fn new(kind: BackendKind) -> TestDb {
        Self::with(kind, |_| {})
    }

    /// Runs raw SQL on a separate, unpooled connection (to tamper or inspect behind custodian).
    pub fn raw_sql(&self, sql: &str) {
        match self.kind {
            BackendKind::Postgres => custodian::diesel::PgConnection::establish(&self.url)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
            BackendKind::Mysql => custodian::diesel::MysqlConnection::establish(&self.url)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
            _ => custodian::diesel::SqliteConnection::establish(
                custodian::backends::sqlite::path_of(&self.url),
            )
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close the pool first so no connection holds the database open.
        drop(self.db.take());
        match self.kind {
            BackendKind::Postgres => {
                let _ = pg_admin().batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
            BackendKind::Mysql => {
                let _ =
                    mysql_admin().batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
            }
            _ => {
                let path = std::env::temp_dir().join(format!("{}.db", self.name));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

/// Defines one `#[test]` per backend for a scenario `fn name(db: &TestDb)`.
#[macro_export]
macro_rules! on_all_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn postgres() {
                super::$name(&$crate::common::TestDb::new(custodian::BackendKind::Postgres));
            }
            #[test]
            fn mariadb() {
                super::$name(&$crate::common::TestDb::new(custodian::BackendKind::Mysql));
            }
            #[test]
            fn sqlite() {
                super::$name(&$crate::common::TestDb::new(custodian::BackendKind::Sqlite));
            }
        }
    )*};
}

/// Runs `f` and counts the SQL statements it sent on the session's connection.
pub fn count_statements<R>(
    s: &mut custodian::Session,
    f: impl FnOnce(&mut custodian::Session) -> R,
) -> (R, usize) {
    use custodian::diesel::connection::{Instrumentation, InstrumentationEvent};
    use std::sync::Arc;
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    s.connection()
        .set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { .. } = event {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
    let out = f(s);
    s.connection()
        .set_instrumentation(None::<Box<dyn Instrumentation>>);
    let n = counter.load(Ordering::SeqCst);
    (out, n)
}
