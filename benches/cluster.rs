//! Cluster reads on the private PostgreSQL rig (`tests/cluster/pg.sh`, a primary and two
//! streaming replicas; the bench starts it, on `CUSTODIAN_PG_RIG_PORT` like the tests, and
//! leaves it running: `tests/cluster/pg.sh down` stops it).
//!
//! Two measurements, each repeated in rounds whose order of configurations rotates, reported
//! as median and spread (min-max) over the rounds, with the load average before and after:
//!
//! 1. **Read throughput with 0, 1 and 2 replicas.** Four threads, each for 500 ms per round,
//!    open a reader session (`Db::reader`) and read one row by key (`Session::find`). With 0
//!    replicas the `Db` has the primary's URL alone (no cluster); with 1 and 2 it has the
//!    primary and that many replicas, and reader sessions run on the replicas.
//! 2. **Routing overhead, one thread.** The time of one checkout plus one read by key, for:
//!    plain diesel on an r2d2 pool of the primary; a single-URL `Db::session`; a cluster's
//!    `Db::session` (the primary, through the cluster's routing); a cluster's `Db::reader`
//!    (a replica picked by the balancer). The ratios to plain diesel are the cost of
//!    custodian's session and of routing.
//!
//! ```text
//! cargo bench -j2 --bench cluster
//! CUSTODIAN_BENCH_QUICK=1 cargo bench -j2 --bench cluster   # tiny smoke run
//! ```

use custodian::prelude::*;
use custodian::{DatabaseConfig, Db};
use diesel::r2d2::{ConnectionManager, Pool};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A row read by key.
#[entity(table = "bench_notes", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    #[column(primary_key)]
    pub id: i64,
    pub body: String,
}

const ROWS: i64 = 1_000;
const DB: &str = "bench_cluster";

type Res<T> = Result<T, String>;

fn ports() -> [u16; 3] {
    let p = std::env::var("CUSTODIAN_PG_RIG_PORT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25432);
    [p, p + 1, p + 2]
}

fn url(hosts: &[u16]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("postgres://postgres@{}/{DB}", hosts.join(","))
}

fn rig_up() -> Res<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/pg.sh");
    let out = std::process::Command::new(script)
        .arg("up")
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", ports()[0]);
    let mut c = PgConnection::establish(&admin).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .execute(&mut c)
        .map_err(|e| e.to_string())?;
    diesel::sql_query(format!("CREATE DATABASE {DB}"))
        .execute(&mut c)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn open(hosts: &[u16]) -> Res<Db> {
    let mut cfg = DatabaseConfig::from_url(&url(hosts))
        .map_err(|e| e.to_string())?
        .check_interval(Duration::from_millis(100));
    cfg.pool.max_size = 8;
    cfg.audit.unkeyed = true;
    custodian::open(cfg).map_err(|e| e.to_string())
}

/// Creates and fills the table, then waits until both replicas have every row.
fn seed(db: &Db) -> Res<()> {
    db.create_table::<Note>().map_err(|e| e.to_string())?;
    db.transaction(|s| {
        for id in 1..=ROWS {
            s.insert(Note {
                id,
                body: format!("note {id}"),
            })?;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for port in &ports()[1..] {
        let replica = format!("postgres://postgres@127.0.0.1:{port}/{DB}");
        loop {
            let n: Option<i64> = PgConnection::establish(&replica).ok().and_then(|mut c| {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "(SELECT COUNT(*) FROM bench_notes)",
                ))
                .get_result(&mut c)
                .ok()
            });
            if n == Some(ROWS) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("replica {port} did not catch up within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Let a check see the replicas caught up.
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// Reads per second of `threads` threads for `span`, each read a reader session and a find.
fn throughput(db: &Db, threads: usize, span: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut key = t as i64;
                while !stop.load(Ordering::Relaxed) {
                    key = key % ROWS + 1;
                    let mut s = db.reader().expect("reader");
                    black_box(s.find::<Note>(&key).expect("find"));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(span);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("reader thread");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Nanoseconds per call of `op`, over `n` calls.
fn per_op(n: u64, mut op: impl FnMut(i64)) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        op((i as i64) % ROWS + 1);
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Median and (min, max) of `values`.
fn stats(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn main() -> Res<()> {
    let quick = std::env::var("CUSTODIAN_BENCH_QUICK").is_ok();
    let (rounds, span, n) = if quick {
        (3, Duration::from_millis(100), 200)
    } else {
        (7, Duration::from_millis(500), 2_000)
    };
    let p = ports();
    rig_up()?;
    let single = open(&p[..1])?;
    seed(&single)?;
    let one = open(&p[..2])?;
    let two = open(&p)?;
    let plain: Pool<ConnectionManager<PgConnection>> = Pool::builder()
        .max_size(8)
        .build(ConnectionManager::new(url(&p[..1])))
        .map_err(|e| e.to_string())?;
    println!("load average before: {}", load_average());

    let configs: [(&str, &Db); 3] = [
        ("0 replicas", &single),
        ("1 replica", &one),
        ("2 replicas", &two),
    ];
    let mut rates = vec![Vec::new(); 3];
    for round in 0..rounds {
        for k in 0..3 {
            let i = (round + k) % 3;
            rates[i].push(throughput(configs[i].1, 4, span));
        }
    }
    println!("\nRead throughput, 4 threads, reader session + find by key ({rounds} rounds):");
    let base = stats(&mut rates[0].clone()).0;
    for (i, (name, _)) in configs.iter().enumerate() {
        let (median, lo, hi) = stats(&mut rates[i]);
        println!(
            "  {name:<11} {median:>8.0} reads/s (min {lo:.0}, max {hi:.0}), ratio to 0 replicas {:.2}",
            median / base
        );
    }

    let runners: [&str; 4] = [
        "plain diesel (r2d2 checkout + find)",
        "single-URL Db::session + find",
        "cluster Db::session + find (primary)",
        "cluster Db::reader + find (replica)",
    ];
    let mut times = vec![Vec::new(); 4];
    for round in 0..rounds {
        for k in 0..4 {
            let i = (round + k) % 4;
            let t = match i {
                0 => per_op(n, |key| {
                    let mut c = plain.get().expect("checkout");
                    black_box(
                        bench_notes::table
                            .find(key)
                            .select((bench_notes::id, bench_notes::body))
                            .first::<(i64, String)>(&mut c)
                            .expect("find"),
                    );
                }),
                1 => per_op(n, |key| {
                    let mut s = single.session().expect("session");
                    black_box(s.find::<Note>(&key).expect("find"));
                }),
                2 => per_op(n, |key| {
                    let mut s = two.session().expect("session");
                    black_box(s.find::<Note>(&key).expect("find"));
                }),
                _ => per_op(n, |key| {
                    let mut s = two.reader().expect("reader");
                    black_box(s.find::<Note>(&key).expect("find"));
                }),
            };
            times[i].push(t);
        }
    }
    println!("\nOne thread, checkout + find by key ({rounds} rounds of {n}):");
    let base = stats(&mut times[0].clone()).0;
    for (i, name) in runners.iter().enumerate() {
        let (median, lo, hi) = stats(&mut times[i]);
        println!(
            "  {name:<40} {:>7.1} us (min {:.1}, max {:.1}), plain diesel / this {:.2}",
            median / 1e3,
            lo / 1e3,
            hi / 1e3,
            base / median
        );
    }
    println!("\nload average after: {}", load_average());
    Ok(())
}
