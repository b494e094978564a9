//! What both benchmarks share: the backends to run on, a fresh database per backend (created
//! and dropped around the run), and the server version for the report.

#![allow(dead_code)] // each bench uses its own subset

use custodian::{AnyConnection, BackendKind, DatabaseConfig, Db, Principal, Session};
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The benchmarks' result type.
pub type Res<T> = Result<T, Box<dyn StdError>>;

/// The audit seal key of the benchmark databases.
pub const BENCH_AUDIT_KEY: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// ------------------------------------------------------------------ databases

pub struct Target {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: BackendKind,
}

pub const TARGETS: [Target; 3] = [
    Target {
        name: "postgres",
        aliases: &["postgresql", "pg"],
        kind: BackendKind::Postgres,
    },
    Target {
        name: "mariadb",
        aliases: &["mysql"],
        kind: BackendKind::Mysql,
    },
    Target {
        name: "sqlite",
        aliases: &[],
        kind: BackendKind::Sqlite,
    },
];

pub const PG_HINT: &str =
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
     (or set CUSTODIAN_TEST_PG=postgres://user@host:port)";
pub const MYSQL_HINT: &str =
    "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd \
     (or set CUSTODIAN_TEST_MYSQL=mysql://user@host:port)";

pub fn pg_base() -> String {
    std::env::var("CUSTODIAN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn mysql_base() -> String {
    std::env::var("CUSTODIAN_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub fn pg_admin() -> Result<diesel::PgConnection, String> {
    let url = format!("{}/postgres", pg_base());
    diesel::PgConnection::establish(&url)
        .map_err(|e| format!("cannot reach PostgreSQL at {url}: {e}\n{PG_HINT}"))
}

pub fn mysql_admin() -> Result<diesel::MysqlConnection, String> {
    let url = mysql_base();
    diesel::MysqlConnection::establish(&url)
        .map_err(|e| format!("cannot reach MariaDB at {url}: {e}\n{MYSQL_HINT}"))
}

/// A database created for this run; dropped (or its file removed) on drop.
pub struct FreshDb {
    pub kind: BackendKind,
    pub name: String,
    pub sqlite_path: Option<PathBuf>,
    pub db: Option<Db>,
}

impl FreshDb {
    pub fn create(kind: BackendKind, prefix: &str) -> Res<FreshDb> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let name = format!("{prefix}_{}_{millis}", std::process::id());
        let mut fresh = FreshDb {
            kind,
            name: name.clone(),
            sqlite_path: None,
            db: None,
        };
        let url = match kind {
            BackendKind::Postgres => {
                pg_admin()?
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .map_err(|e| format!("create PostgreSQL database {name}: {e}"))?;
                format!("{}/{name}", pg_base())
            }
            BackendKind::Mysql => {
                mysql_admin()?
                    .batch_execute(&format!(
                        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ))
                    .map_err(|e| format!("create MariaDB database {name}: {e}"))?;
                format!("{}/{name}", mysql_base())
            }
            _ => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let url = format!("sqlite://{}", path.display());
                fresh.sqlite_path = Some(path);
                url
            }
        };
        let mut config = DatabaseConfig::from_url(&url)?;
        config.pool.max_size = 2;
        config.pool.min_idle = Some(1);
        config.audit.key = Some(BENCH_AUDIT_KEY.into());
        // Audited writes need an acting principal; unaudited ones ignore it.
        let db = custodian::open(config).map_err(|e| format!("open {url}: {e}"))?;
        fresh.db = Some(db.acting_as(Principal::new("bench")));
        Ok(fresh)
    }

    pub fn db(&self) -> Res<&Db> {
        self.db
            .as_ref()
            .ok_or_else(|| "database already closed".into())
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // Close the pool first so that no connection holds the database open.
        drop(self.db.take());
        let result = match self.kind {
            BackendKind::Postgres => pg_admin().and_then(|mut c| {
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(|e| e.to_string())
            }),
            BackendKind::Mysql => mysql_admin().and_then(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))
                    .map_err(|e| e.to_string())
            }),
            _ => {
                if let Some(path) = &self.sqlite_path {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            eprintln!(
                "warning: could not drop benchmark database {}: {e}",
                self.name
            );
        }
    }
}

pub fn server_version(s: &mut Session) -> Res<String> {
    let expr = match s.connection() {
        AnyConnection::Postgresql(_) => "current_setting('server_version')",
        AnyConnection::Mysql(_) => "VERSION()",
        AnyConnection::Sqlite(_) => "sqlite_version()",
    };
    Ok(diesel::select(sql::<Text>(expr)).get_result(s.connection())?)
}
