//! The private cluster rigs for the cluster tests: started once per test process
//! (`tests/cluster/pg.sh up`, `tests/cluster/mariadb.sh up`; `./run-tests` stops them at exit),
//! one fresh database per test on the rig, and the rig commands (stop, lag, pause).

use custodian::diesel::connection::SimpleConnection;
use custodian::diesel::Connection;
use custodian::BackendKind;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The first port of a rig: `var` when set (the rig script reads the same variable), else
/// `default`. A second test run on the same machine sets its own ports and data directories.
pub fn rig_port(var: &str, default: u16) -> u16 {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a port number")),
        Err(_) => default,
    }
}

/// PostgreSQL rig ports: the primary, then two replicas (`CUSTODIAN_PG_RIG_PORT`).
pub fn pg_ports() -> &'static [u16; 3] {
    static PORTS: OnceLock<[u16; 3]> = OnceLock::new();
    PORTS.get_or_init(|| {
        let p = rig_port("CUSTODIAN_PG_RIG_PORT", 25432);
        [p, p + 1, p + 2]
    })
}

/// MariaDB rig ports: the primary, then one replica (`CUSTODIAN_MARIADB_RIG_PORT`).
pub fn my_ports() -> &'static [u16; 2] {
    static PORTS: OnceLock<[u16; 2]> = OnceLock::new();
    PORTS.get_or_init(|| {
        let p = rig_port("CUSTODIAN_MARIADB_RIG_PORT", 23061);
        [p, p + 1]
    })
}

/// Runs a rig command of `tests/cluster/{name}.sh` (`pg`, `mariadb`, `galera`,
/// `pg-prepared`); a failure fails the test with the command to run by hand.
pub fn run_script(name: &str, args: &[&str]) {
    let script = format!("{}/tests/cluster/{name}.sh", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "`{script} {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command of the rig of `kind` (`pg.sh` or `mariadb.sh`).
pub fn rig(kind: BackendKind, args: &[&str]) {
    let name = if kind == BackendKind::Postgres {
        "pg"
    } else {
        "mariadb"
    };
    run_script(name, args);
}

/// The rig's ports for `kind`.
pub fn ports(kind: BackendKind) -> &'static [u16] {
    if kind == BackendKind::Postgres {
        pg_ports()
    } else {
        my_ports()
    }
}

fn host_url(kind: BackendKind, port: u16, db: &str) -> String {
    match kind {
        BackendKind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{db}"),
        _ => format!("mysql://app:app@127.0.0.1:{port}/{db}"),
    }
}

/// One cluster test's database on the rig, replicated to every replica; dropped afterwards.
/// Holding it also holds the rig: tests that stop or delay hosts do not overlap.
pub struct RigDb {
    pub kind: BackendKind,
    pub name: String,
    _rig: MutexGuard<'static, ()>,
}

impl RigDb {
    /// Starts the rig if this process has not, heals it (every host running, replaying
    /// without delay), creates a database and waits (10 s at most)
    /// until every replica has it.
    pub fn new(kind: BackendKind) -> RigDb {
        static PG: OnceLock<()> = OnceLock::new();
        static MY: OnceLock<()> = OnceLock::new();
        static PG_LOCK: Mutex<()> = Mutex::new(());
        static MY_LOCK: Mutex<()> = Mutex::new(());
        let (once, lock) = if kind == BackendKind::Postgres {
            (&PG, &PG_LOCK)
        } else {
            (&MY, &MY_LOCK)
        };
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        once.get_or_init(|| rig(kind, &["up"]));
        // A test that failed half-way may have left a host stopped, paused or delayed.
        rig(kind, &["heal"]);
        let name = format!(
            "cl_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let base = if kind == BackendKind::Postgres {
            "postgres"
        } else {
            "mysql"
        };
        RigDb::raw(
            kind,
            ports(kind)[0],
            base,
            &format!("CREATE DATABASE {name}"),
        );
        let started = Instant::now();
        for &port in &ports(kind)[1..] {
            while !RigDb::reachable(kind, port, &name) {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "database {name} not replicated to port {port} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        RigDb {
            kind,
            name,
            _rig: guard,
        }
    }

    fn reachable(kind: BackendKind, port: u16, db: &str) -> bool {
        let url = host_url(kind, port, db);
        match kind {
            BackendKind::Postgres => custodian::diesel::PgConnection::establish(&url).is_ok(),
            _ => custodian::diesel::MysqlConnection::establish(&url).is_ok(),
        }
    }

    /// Runs `sql` on the host at `port`, database `db`, outside custodian.
    pub fn raw(kind: BackendKind, port: u16, db: &str, sql: &str) {
        let url = host_url(kind, port, db);
        match kind {
            BackendKind::Postgres => custodian::diesel::PgConnection::establish(&url)
                .map(|mut c| c.batch_execute(sql))
                .expect("rig connection")
                .expect("rig statement"),
            _ => custodian::diesel::MysqlConnection::establish(&url)
                .map(|mut c| c.batch_execute(sql))
                .expect("rig connection")
                .expect("rig statement"),
        }
    }

    /// The multi-host URL of this database: every host of the rig, primary first.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = ports(self.kind)
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        match self.kind {
            BackendKind::Postgres => {
                format!("postgres://postgres@{}/{}", hosts.join(","), self.name)
            }
            _ => format!("mysql://app:app@{}/{}", hosts.join(","), self.name),
        }
    }
}

impl Drop for RigDb {
    fn drop(&mut self) {
        let base = if self.kind == BackendKind::Postgres {
            "postgres"
        } else {
            "mysql"
        };
        let sql = match self.kind {
            BackendKind::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let url = host_url(self.kind, ports(self.kind)[0], base);
        let _ = match self.kind {
            BackendKind::Postgres => custodian::diesel::PgConnection::establish(&url)
                .map(|mut c| c.batch_execute(&sql).is_ok()),
            _ => custodian::diesel::MysqlConnection::establish(&url)
                .map(|mut c| c.batch_execute(&sql).is_ok()),
        };
    }
}
