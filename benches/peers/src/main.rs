//! Peer benchmark: custodian against plain diesel and SeaORM, each side on its own connection
//! types and pools, as its users would run it.
//!
//! Sides: plain diesel (`PgConnection` / `MysqlConnection` / `SqliteConnection` behind
//! `diesel::r2d2` pools), custodian on `#[entity(unaudited)]` entities, custodian on the same
//! tables' audited twins (`#[entity]`, custodian's default), and SeaORM 2 (PostgreSQL only, its
//! own sqlx pool, async on tokio). Every pool holds `POOL` connections, all opened up front,
//! each library's defaults otherwise (connections tested on checkout by all three).
//!
//! Workloads, each at 1 and 4 threads (SeaORM: tasks on a tokio runtime with as many worker
//! threads), every operation on its own checkout:
//! - CRUD loop: insert (key returned), get by key, update every non-key column by key, delete
//!   by key: four checkouts per cycle; reported in cycles/s.
//! - PK read: a row by random primary key among 10,000 seed rows.
//! - TPC-B-like: pgbench's `tpcb-like` transaction (update accounts balance += delta, select
//!   that balance, update tellers, update branches, insert history) at the default isolation
//!   level; 10,000 accounts, 10 tellers, 1 branch.
//!
//! All backends, workloads and sides run in one process in interleaved rounds: each round
//! runs every cell (backend, workload, threads) once per side for `PEERS_SECONDS` (0.5 s), the
//! order of the sides rotating from round to round. Reported: median rate over the rounds,
//! the median of the per-round ratios to plain diesel, and their spread (half the min-max
//! range, relative to the median).
//!
//! ```text
//! cd benches/peers && cargo run --release -j2                 # everything (~5 min)
//! cargo run --release -j2 -- pg                               # backends whose name contains a filter
//! PEERS_ROUNDS=3 PEERS_SECONDS=0.2 cargo run --release -j2    # shorter
//! PEERS_QUICK=1 cargo run --release -j2                       # smoke run, numbers meaningless
//! ```
//!
//! Servers: `CUSTODIAN_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`) and
//! `CUSTODIAN_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`), as for the test suite.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod count;
mod cust;
mod model;
mod plain;
mod sea;
mod setup;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Connections per pool, every side.
pub const POOL: u32 = 4;
const THREADS: [usize; 2] = [1, 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pg,
    My,
    Lite,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pg => "postgres",
            Kind::My => "mariadb",
            Kind::Lite => "sqlite",
        }
    }
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::Pg => &["postgres", "postgresql", "pg"],
            Kind::My => &["mariadb", "mysql"],
            Kind::Lite => &["sqlite"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    Crud,
    PkRead,
    Tpcb,
}

impl Work {
    const ALL: [Work; 3] = [Work::Crud, Work::PkRead, Work::Tpcb];
    fn label(self) -> &'static str {
        match self {
            Work::Crud => "CRUD loop (cycles/s)",
            Work::PkRead => "PK read",
            Work::Tpcb => "TPC-B-like (tx/s)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Diesel,
    Custodian,
    Audited,
    /// Audited with `audit.records_with_commit` (PostgreSQL only).
    Batched,
    SeaOrm,
}

impl Side {
    const ALL: [Side; 5] = [
        Side::Diesel,
        Side::Custodian,
        Side::Audited,
        Side::Batched,
        Side::SeaOrm,
    ];
}

/// pgbench's scale, reduced to 10,000 accounts.
pub struct Scale {
    pub accounts: i32,
    pub tellers: i32,
    pub branches: i32,
}

pub const SCALE: Scale = Scale {
    accounts: 10_000,
    tellers: 10,
    branches: 1,
};

/// Rows in the CRUD table (the PK read draws among them).
pub const SEED_ROWS: i64 = 10_000;

/// xorshift64: the same sequence for every side of a cell in a round.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: i32) -> i32 {
        (self.next() % n as u64) as i32
    }
    /// `(aid, tid, bid, delta)` as pgbench draws them (delta in -5000..=5000).
    pub fn tpcb(&mut self, s: &Scale) -> (i32, i32, i32, i32) {
        (
            self.below(s.accounts) + 1,
            self.below(s.tellers) + 1,
            self.below(s.branches) + 1,
            self.below(10_001) - 5_000,
        )
    }
}

/// The CRUD row's fields: code, title, owner, risk, active.
pub fn sample_fields(tag: u64, i: u64) -> (String, String, Option<String>, i32, bool) {
    (
        format!("p{tag}-{i:07}"),
        format!("Peer benchmark item {tag} number {i}"),
        (i % 3 == 0).then(|| format!("owner-{}", i % 17)),
        ((i * 37) % 100) as i32,
        i % 4 != 0,
    )
}

/// Runs `f` again (up to 20 times) after a deadlock, serialization failure or SQLite busy
/// error: the plain diesel side's retry (custodian's transactions retry by themselves;
/// PostgreSQL at read committed never needs it for this workload).
pub fn retry(mut f: impl FnMut() -> Res<()>) -> Res<()> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if attempt < 20 && retryable(&e.to_string()) => attempt += 1,
            other => return other,
        }
    }
}

fn retryable(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("deadlock") || m.contains("could not serialize") || m.contains("database is locked")
}

/// Runs `f(thread, rng, i)` on `threads` threads until `dur` has passed; returns operations
/// per second.
fn timed_sync(
    threads: usize,
    dur: Duration,
    seed: u64,
    f: &(dyn Fn(usize, &mut Rng, u64) -> Res<()> + Sync),
) -> Res<f64> {
    let start = Instant::now();
    let deadline = start + dur;
    let counts: Vec<Res<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut rng = Rng::new(seed * 16 + t as u64 + 1);
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        f(t, &mut rng, n)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// One backend: the pools of every side.
struct Target {
    kind: Kind,
    version: String,
    diesel: plain::Pools,
    custodian: custodian::Db,
    /// PostgreSQL: a pool of the same database with `audit.records_with_commit` on.
    batched: Option<custodian::Db>,
    /// SeaORM's pool and the runtime its tasks run on (4 worker threads; the 1-thread cells
    /// run one task).
    sea: Option<(tokio::runtime::Runtime, sea_orm::DatabaseConnection)>,
    /// Dropped last, after every pool: removes the database.
    _fresh: setup::Fresh,
}

impl Target {
    fn sides(&self) -> Vec<Side> {
        Side::ALL
            .into_iter()
            .filter(|s| *s != Side::SeaOrm || self.sea.is_some())
            .filter(|s| *s != Side::Batched || self.batched.is_some())
            .collect()
    }

    /// One operation of `work` by a synchronous side (not SeaORM), as thread `t` of a cell
    /// whose CRUD rows are tagged `tag`.
    fn one(&self, side: Side, work: Work, tag: u64, t: usize, rng: &mut Rng, i: u64) -> Res<()> {
        let db = &self.custodian;
        let crud_tag = tag * 10 + t as u64;
        let key = (rng.next() % SEED_ROWS as u64) as i64 + 1;
        match (side, work) {
            (Side::Diesel, Work::Crud) => self.diesel.crud(crud_tag, i),
            (Side::Diesel, Work::PkRead) => self.diesel.get(key),
            (Side::Diesel, Work::Tpcb) => self.diesel.tpcb(rng, &SCALE),
            (Side::Custodian, Work::Crud) => cust::crud::<model::Item>(db, crud_tag, i),
            (Side::Custodian, Work::PkRead) => cust::get::<model::Item>(db, key),
            (Side::Custodian, Work::Tpcb) => cust::tpcb(db, rng, &SCALE),
            (Side::Audited, Work::Crud) => cust::crud::<model::AuditedItem>(db, crud_tag, i),
            (Side::Audited, Work::PkRead) => cust::get::<model::AuditedItem>(db, key),
            (Side::Audited, Work::Tpcb) => cust::tpcb_audited(db, rng, &SCALE),
            (Side::Batched, work) => {
                let db = self
                    .batched
                    .as_ref()
                    .ok_or("records with COMMIT: PostgreSQL only")?;
                match work {
                    Work::Crud => cust::crud::<model::AuditedItem>(db, crud_tag, i),
                    Work::PkRead => cust::get::<model::AuditedItem>(db, key),
                    Work::Tpcb => cust::tpcb_audited(db, rng, &SCALE),
                }
            }
            (Side::SeaOrm, _) => Err("SeaORM runs asynchronously".into()),
        }
    }

    /// Rate of `side` on `work` with `threads` threads for `dur`.
    fn run(&self, side: Side, work: Work, threads: usize, dur: Duration, seed: u64) -> Res<f64> {
        let tag = seed * 1_000 + side as u64 * 100 + threads as u64 * 10 + work as u64;
        match side {
            Side::SeaOrm => {
                let (rt, conn) = self.sea.as_ref().ok_or("SeaORM runs on PostgreSQL only")?;
                rt.block_on(timed_async(conn.clone(), work, threads, dur, seed, tag))
            }
            _ => timed_sync(threads, dur, seed, &|t, rng, i| {
                self.one(side, work, tag, t, rng, i)
            }),
        }
    }

    /// Statements per operation of each diesel-based side, as diesel's instrumentation counts
    /// them on every connection (connection checks included), over `n` operations on one
    /// thread.
    /// Also returns the statements by shape: (shape, statements per operation, mean µs).
    fn statements(&self, work: Work, side: Side, n: u64) -> Res<(f64, Vec<(String, f64, f64)>)> {
        let mut rng = Rng::new(99);
        count::arm(true);
        let before = count::total();
        for i in 0..n {
            self.one(side, work, 999_999, 0, &mut rng, i)?;
        }
        let counted = count::total() - before;
        count::arm(false);
        let shapes = count::shapes()
            .into_iter()
            .map(|(shape, k, micros)| (shape, k as f64 / n as f64, micros))
            .collect();
        Ok((counted as f64 / n as f64, shapes))
    }
}

/// The SeaORM side of [`timed_sync`]: `threads` tasks on the runtime.
async fn timed_async(
    conn: sea_orm::DatabaseConnection,
    work: Work,
    threads: usize,
    dur: Duration,
    seed: u64,
    tag: u64,
) -> Res<f64> {
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(seed * 16 + t as u64 + 1);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    match work {
                        Work::Crud => sea::crud(&conn, tag * 10 + t as u64, n).await?,
                        Work::PkRead => {
                            let key = (rng.next() % SEED_ROWS as u64) as i64 + 1;
                            sea::get(&conn, key).await?
                        }
                        Work::Tpcb => sea::tpcb(&conn, &mut rng, &SCALE).await?,
                    }
                    n += 1;
                }
                Res::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median and spread (half the min-max range relative to the median, in %).
fn summary(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    let m = median(&mut v);
    let spread = (v[v.len() - 1] - v[0]) / 2.0 / m * 100.0;
    (m, spread)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Res<()> {
    let quick = std::env::var_os("PEERS_QUICK").is_some();
    let rounds = if quick {
        1
    } else {
        env_num("PEERS_ROUNDS", 7.0) as usize
    }
    .max(1);
    let dur = Duration::from_secs_f64(if quick {
        0.05
    } else {
        env_num("PEERS_SECONDS", 0.5)
    });
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let kinds: Vec<Kind> = [Kind::Pg, Kind::My, Kind::Lite]
        .into_iter()
        .filter(|k| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| k.aliases().iter().any(|a| a.contains(f.as_str())))
        })
        .collect();

    let started = Instant::now();
    println!(
        "# peers: {} rounds of {:.2} s per side and cell, pool {POOL}, threads {THREADS:?}",
        rounds,
        dur.as_secs_f64()
    );
    println!(
        "start: load average {}, nproc {}",
        load_average(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Before any connection opens: every diesel connection counts its statements while armed.
    count::install()?;
    let mut targets = Vec::new();
    for kind in kinds {
        let t0 = Instant::now();
        targets.push(setup::target(kind)?);
        println!(
            "set up {} in {:.1} s",
            kind.name(),
            t0.elapsed().as_secs_f64()
        );
    }

    // Warm-up: every side and cell once, briefly.
    for t in &targets {
        for work in Work::ALL {
            for threads in THREADS {
                for side in t.sides() {
                    t.run(side, work, threads, dur.min(Duration::from_millis(200)), 0)?;
                }
            }
        }
    }

    // Statements per operation, counted outside the timed runs.
    // Each statement kind is timed too (one thread, PEERS_SHAPE_OPS operations per side).
    let shape_ops = env_num("PEERS_SHAPE_OPS", 200.0) as u64;
    let mut statements: BTreeMap<(Kind, Work, Side), f64> = BTreeMap::new();
    let mut shapes: BTreeMap<(Kind, Work, Side), Vec<(String, f64, f64)>> = BTreeMap::new();
    for t in &targets {
        for work in Work::ALL {
            for side in t.sides().into_iter().filter(|s| *s != Side::SeaOrm) {
                let (per_op, by_shape) = t.statements(work, side, shape_ops)?;
                statements.insert((t.kind, work, side), per_op);
                shapes.insert((t.kind, work, side), by_shape);
            }
        }
    }

    // rates[(kind, work, threads, side)] = one rate per round.
    let mut rates: BTreeMap<(Kind, Work, usize, Side), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for t in &targets {
            for work in Work::ALL {
                for threads in THREADS {
                    let mut sides = t.sides();
                    let k = round % sides.len();
                    sides.rotate_left(k);
                    for side in sides {
                        let rate = t.run(side, work, threads, dur, round as u64 + 1)?;
                        rates
                            .entry((t.kind, work, threads, side))
                            .or_default()
                            .push(rate);
                    }
                }
            }
        }
        println!(
            "round {}/{rounds} done at {:.0} s, load average {}",
            round + 1,
            started.elapsed().as_secs_f64(),
            load_average()
        );
    }

    for t in &targets {
        setup::check_balances(t)?;
    }

    println!(
        "\nend: load average {}, {:.0} s in all",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    for t in &targets {
        println!("\n### {} {}\n", t.kind.name(), t.version);
        let sides = t.sides();
        let mut header = String::from("| workload | threads | diesel ops/s |");
        let mut rule = String::from("|:--|--:|--:|");
        for s in &sides[1..] {
            header.push_str(&format!(" {} / diesel |", side_name(*s)));
            rule.push_str("--:|");
        }
        header.push_str(" audited / unaudited |");
        rule.push_str("--:|");
        println!("{header}\n{rule}");
        for work in Work::ALL {
            for threads in THREADS {
                let d = &rates[&(t.kind, work, threads, Side::Diesel)];
                let (dm, ds) = summary(d);
                let mut line = format!("| {} | {threads} | {dm:.0} ±{ds:.0}% |", work.label());
                for s in &sides[1..] {
                    let r = &rates[&(t.kind, work, threads, *s)];
                    let ratios: Vec<f64> = r.iter().zip(d).map(|(x, y)| x / y).collect();
                    let (rm, rs) = summary(&ratios);
                    let (sm, _) = summary(r);
                    line.push_str(&format!(" {rm:.2} ±{rs:.0}% ({sm:.0}/s) |"));
                }
                let a = &rates[&(t.kind, work, threads, Side::Audited)];
                let u = &rates[&(t.kind, work, threads, Side::Custodian)];
                let ratios: Vec<f64> = a.iter().zip(u).map(|(x, y)| x / y).collect();
                let (rm, rs) = summary(&ratios);
                line.push_str(&format!(" {rm:.2} ±{rs:.0}% |"));
                println!("{line}");
            }
        }
    }
    println!(
        "\nStatements per operation (diesel's instrumentation, connection checks included; \
         SeaORM is not counted):\n"
    );
    println!(
        "| backend | workload | diesel | custodian | custodian audited |\n|:--|:--|--:|--:|--:|"
    );
    for t in &targets {
        for work in Work::ALL {
            let n = |side| statements[&(t.kind, work, side)];
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} |",
                t.kind.name(),
                work.label(),
                n(Side::Diesel),
                n(Side::Custodian),
                n(Side::Audited)
            );
        }
    }
    println!(
        "\nTime per statement kind: {shape_ops} operations per side on one thread, outside the \
         timed runs; per operation, the statements of that shape and the mean time of one \
         (diesel's start to finish event: rendering, round trip, server, result).\n"
    );
    for t in &targets {
        for work in [Work::Crud, Work::Tpcb] {
            println!("#### {} {}\n", t.kind.name(), work.label());
            println!("| side | statement | per op | mean µs | µs per op |\n|:--|:--|--:|--:|--:|");
            for side in t.sides().into_iter().filter(|s| *s != Side::SeaOrm) {
                let mut sum = 0.0;
                for (shape, per_op, micros) in &shapes[&(t.kind, work, side)] {
                    sum += per_op * micros;
                    println!(
                        "| {} | `` {} `` | {per_op:.2} | {micros:.0} | {:.0} |",
                        side_name(side),
                        shape.replace('|', "\\|"),
                        per_op * micros
                    );
                }
                println!("| {} | **all** | | | **{sum:.0}** |", side_name(side));
            }
            println!();
        }
    }
    println!(
        "\nRatios: median over {rounds} rounds of the per-round ratio (round r of a side against \
         round r of plain diesel), ± half the min-max range relative to the median; rates: \
         median ops/s. CRUD loop rates are cycles of four operations."
    );
    Ok(())
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Diesel => "diesel",
        Side::Custodian => "custodian",
        Side::Audited => "custodian audited",
        Side::Batched => "audited, records with COMMIT",
        Side::SeaOrm => "SeaORM",
    }
}
