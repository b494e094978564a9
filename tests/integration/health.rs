//! `Db::health` on every backend: ready when all is well; live but not ready with a drifted
//! schema or a sealer that lags; down when the server goes away (a TCP relay in front of
//! PostgreSQL or MariaDB that the test closes, an SQLite file whose directory is gone).

use crate::common::TestDb;
use crate::entities::Counter;
use custodian::health::HealthOptions;
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn options(max_seal_lag: Duration) -> HealthOptions {
    HealthOptions {
        entities: vec![Counter::META],
        migrations: None,
        max_seal_lag: Some(max_seal_lag),
    }
}

fn write_counters(db: &TestDb, n: usize) {
    let mut s = db.session().unwrap();
    for i in 0..n {
        s.insert(Counter {
            name: format!("c{i}"),
            value: i as i64,
        })
        .unwrap();
    }
}

/// Ready with a matching schema and a fresh trail; a dropped column is drift (live, not
/// ready), reported by name.
fn drifted_schema_is_not_ready(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    write_counters(db, 2);
    let report = db.health(&options(Duration::from_secs(3600)));
    assert!(report.is_ready(), "{report}");
    assert!(report.round_trip.is_some(), "{report}");
    assert!(
        report.pool.max_size >= 1 && report.pool.saturation <= 1.0,
        "{report}"
    );
    let audit = report.audit.clone().expect("the trail is installed");
    assert_eq!(audit.unsealed, 2, "{report}");
    db.raw_sql("ALTER TABLE counters DROP COLUMN value");
    let report = db.health(&options(Duration::from_secs(3600)));
    assert!(report.is_live() && !report.is_ready(), "{report}");
    assert_eq!(report.drift.len(), 1, "{report}");
    assert!(report.drift[0].contains("value"), "{report}");
    assert!(
        report.problems.iter().any(|p| p.contains("schema drift")),
        "{report}"
    );
}

/// Unsealed records older than the limit make the database not ready; sealing them makes it
/// ready again and moves the chain head.
fn lagging_sealer_is_not_ready(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    write_counters(db, 3);
    std::thread::sleep(Duration::from_millis(1100));
    let limit = Duration::from_millis(500);
    let report = db.health(&options(limit));
    assert!(report.is_live() && !report.is_ready(), "{report}");
    let audit = report.audit.clone().unwrap();
    assert_eq!(audit.unsealed, 3, "{report}");
    assert!(audit.seal_lag >= Duration::from_secs(1), "{report}");
    assert!(
        report.problems.iter().any(|p| p.contains("seal lag")),
        "{report}"
    );
    let head_before = audit.head_seq;
    db.seal_audit().unwrap();
    let report = db.health(&options(limit));
    assert!(report.is_ready(), "{report}");
    let audit = report.audit.unwrap();
    assert_eq!(audit.unsealed, 0);
    assert_eq!(audit.seal_lag, Duration::ZERO);
    assert_eq!(audit.head_seq, head_before + 3);
}

/// A TCP relay to `target`; `stop` closes the listening port and every relayed connection.
struct Relay {
    port: u16,
    stopped: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stopped = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop, kept) = (stopped.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut kept = kept.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            stopped,
            streams,
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // The listener is closed once the loop has seen the flag.
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the relay on port {} did not close", self.port);
    }
}

/// `url` with its `host:port` replaced by the relay's.
fn through(url: &str, port: u16) -> (String, String) {
    let after_at = url.find('@').unwrap() + 1;
    let end = after_at + url[after_at..].find('/').unwrap();
    let target = url[after_at..end].to_string();
    (
        format!("{}127.0.0.1:{port}{}", &url[..after_at], &url[end..]),
        target,
    )
}

/// Live and ready while the server answers; down (not live) once it is gone.
fn server_down_is_not_live(db: &TestDb) {
    let (cfg, relay, dir) = match db.kind {
        BackendKind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("{}-dir", db.name));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("h.db").display());
            (DatabaseConfig::from_url(&url).unwrap(), None, Some(dir))
        }
        _ => {
            let (url, target) = through(&db.url, 0);
            let relay = Relay::start(target);
            let (url, _) = through(&url, relay.port);
            (DatabaseConfig::from_url(&url).unwrap(), Some(relay), None)
        }
    };
    let mut cfg = cfg;
    cfg.pool.max_size = 2;
    cfg.pool.min_idle = Some(1);
    cfg.pool.connection_timeout_ms = 2_000;
    let handle = custodian::open(cfg).unwrap();
    let up = handle.health(&HealthOptions::default());
    assert!(up.is_live() && up.is_ready(), "{up}");
    match (&relay, &dir) {
        (Some(relay), _) => relay.stop(),
        (_, Some(dir)) => std::fs::remove_dir_all(dir).unwrap(),
        _ => unreachable!(),
    }
    let down = handle.health(&HealthOptions::default());
    assert!(!down.is_live() && !down.is_ready(), "{down}");
    assert!(down.round_trip.is_none());
    assert!(
        down.problems.iter().any(|p| p.starts_with("unreachable")),
        "{down}"
    );
    assert!(down.to_string().starts_with("status: down"), "{down}");
}

/// Runs the `custodian` binary with `args` and the test audit key; exit status and output.
fn custodian(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custodian"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CUSTODIAN_URL")
        .env("CUSTODIAN_AUDIT_KEY", crate::common::AUDIT_KEY)
        .output()
        .expect("run the custodian binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `custodian health` exits 0 when ready, 1 when not ready (0 with `--liveness`) and 1 when
/// the server is down; `custodian metrics` prints a scrape.
fn health_command_exit_status(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    let (code, out) = custodian(&["health", "--url", &db.url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status: ready"), "{out}");
    write_counters(db, 1);
    std::thread::sleep(Duration::from_millis(1100));
    let (code, out) = custodian(&["health", "--url", &db.url, "--max-seal-lag", "0"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("seal lag"), "{out}");
    let (code, out) = custodian(&[
        "health",
        "--url",
        &db.url,
        "--max-seal-lag",
        "0",
        "--liveness",
    ]);
    assert_eq!(code, 0, "{out}");
    let down = match db.kind {
        BackendKind::Sqlite => format!(
            "sqlite://{}",
            std::env::temp_dir()
                .join(format!("{}-gone", db.name))
                .join("x.db")
                .display()
        ),
        _ => {
            // A port nobody listens on: bound, then released.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            through(&db.url, port).0
        }
    };
    let (code, out) = custodian(&["health", "--url", &down]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("status: down"), "{out}");
    let (code, out) = custodian(&["metrics", "--url", &db.url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("custodian_pool_connections{state=\"idle\"}"),
        "{out}"
    );
    assert!(out.contains("custodian_audit_unsealed 1"), "{out}");
}

on_all_backends!(
    drifted_schema_is_not_ready,
    lagging_sealer_is_not_ready,
    server_down_is_not_live,
    health_command_exit_status,
);
