//! What the audit trail costs, on PostgreSQL, MariaDB and SQLite.
//!
//! For each backend the bench creates a fresh database (a uniquely named database on the
//! PostgreSQL and MariaDB servers, a file in the temp directory for SQLite, all removed at the
//! end) and one custodian pool (`max_size = 2`) acting as principal `bench`, with an audit seal
//! key (HMAC-SHA-256). It then measures two things.
//!
//! **Verification speed.** An audited entity `LedgerEntry` (caller-chosen `i64` keys, so
//! `insert_many` inserts in bulk) is filled with N rows by `Session::insert_many` in calls of
//! 1,000 rows: N audit records. N is 100,000 if building the first 20,000 records projects to
//! under 60 s for 100,000, else 20,000. Then `Db::seal_audit()` binds the N records into the
//! hash chain (timed: seal rate), and `Db::verify_audit(None)` walks the chain (timed three
//! times: records/s; target >= 200,000 records/s on PostgreSQL). The chain contains exactly the
//! N records, since this part runs first on the fresh database.
//!
//! **Sealing checks.** At the end, on the whole trail: on the servers, a transaction that took
//! its record id before another one committed, and commits after a seal passed that id, must be
//! found unsealed by verify and sealed by the next seal; and a trail whose sealers' high-water
//! mark was removed is sealed by one rescan (timed), after which the next seal (timed) reads
//! only what is new.
//!
//! **Seal lag.** One more pass of audited TPC-B-like transactions with a sealer thread sealing
//! every 100 ms: for every record, the time from its write to the end of the seal that chained
//! it (p50, p99, max): the window in which a committed record is not yet in the chain.
//!
//! **TPC-B-like transactions.** pgbench's built-in `tpcb-like` script through entities: tables
//! of accounts, tellers and branches and a history table, as `#[entity]` structs, at a small
//! scale (1 branch, 10 tellers, 10,000 accounts). One transaction (`Db::transaction`) is:
//!
//! ```text
//! a = get::<Account>(aid); a.abalance += delta; update(a)    -- UPDATE accounts SET abalance = abalance + :delta
//! get::<Account>(aid).abalance                               -- SELECT abalance FROM accounts
//! t = get::<Teller>(tid); t.tbalance += delta; update(t)     -- UPDATE tellers ...
//! b = get::<Branch>(bid); b.bbalance += delta; update(b)     -- UPDATE branches ...
//! insert(History { tid, bid, aid, delta, mtime })            -- INSERT INTO history ...
//! ```
//!
//! with `aid`, `tid` and `delta` (-5,000..=5,000) drawn at random as pgbench does. The same
//! transaction runs on two identical sets of tables: one audited (custodian's default), one
//! marked `#[entity(unaudited)]`. One client thread (at scale 1 every transaction updates the
//! single branch row, so a second client only queues behind it; and the entity API has no
//! `SELECT ... FOR UPDATE` read, so two clients would lose updates on that row). Each of 7
//! rounds runs the audited and the unaudited side for 2 s each (the side that goes first
//! alternates), with the same random sequence; reported: median tps over the rounds and the
//! ratio audited / unaudited (target >= 0.8).
//!
//! ```text
//! cargo bench -j2 --bench audit                 # all three backends
//! cargo bench -j2 --bench audit -- sqlite       # only backends whose name contains a filter
//! CUSTODIAN_BENCH_QUICK=1 cargo bench --bench audit   # tiny smoke run
//! ```
//!
//! Servers: `CUSTODIAN_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`) and
//! `CUSTODIAN_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`), as for the test suite.

use std::hint::black_box;
use std::time::{Duration, Instant};

use custodian::{BackendKind, Db};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

#[path = "audit/chain.rs"]
mod chain;
mod common;
#[path = "audit/entities.rs"]
pub mod entities;
#[path = "audit/tpcb.rs"]
mod tpcb;

use chain::*;
use common::*;
use entities::*;
use tpcb::*;

// ------------------------------------------------------------------ settings and statistics

struct Settings {
    quick: bool,
    rounds: usize,
    pass: Duration,
    accounts: i32,
    tellers: i32,
    /// Chain length if building it is fast enough, and the fallback.
    chain_full: usize,
    chain_small: usize,
    /// Projected build time above which the fallback is used.
    chain_budget: Duration,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Half the min-max range of `v`, relative to `m`.
fn spread(v: &[f64], m: f64) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    if m > 0.0 && hi >= lo {
        (hi - lo) / 2.0 / m
    } else {
        0.0
    }
}

// ------------------------------------------------------------------ driver

struct Report {
    title: String,
    chain: ChainReport,
    tpcb: TpcbReport,
    /// Everything sealed and verified at the end (chain + TPC-B records).
    final_links: u64,
    final_seal: Duration,
    final_verify: Duration,
    seal_checks: SealChecks,
    /// Audited tps with a sealer running, and each record's seal lag (ms).
    lag: (f64, Vec<f64>),
    elapsed: Duration,
}

/// Seal lag under load: audited TPC-B-like transactions for one pass while a sealer thread
/// seals every `SEAL_EVERY`; for each record sealed, the time from its write (the record's
/// `at`) to the end of the seal that chained it. Returns (tps during the pass, lags in ms).
fn seal_lag(db: &Db, settings: &Settings) -> Res<(f64, Vec<f64>)> {
    use custodian::audit::tables::{custodian_audit as a, custodian_audit_chain as c};
    const SEAL_EVERY: Duration = Duration::from_millis(100);
    db.seal_audit()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sealer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || -> Result<Vec<f64>, String> {
            let mut lags = Vec::new();
            let mut s = db.session().map_err(|e| e.to_string())?;
            let mut head = custodian::audit::chain::head(&mut s)
                .map_err(|e| e.to_string())?
                .0;
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let report = db.seal_audit().map_err(|e| e.to_string())?;
                let sealed_at = chrono::Utc::now().naive_utc();
                let ats: Vec<custodian::sql_types::StoredDatetime> = s
                    .load(
                        c::table
                            .inner_join(a::table.on(a::id.eq(c::record_id)))
                            .filter(c::seq.gt(head))
                            .filter(c::seq.le(report.head_seq))
                            .select(a::at),
                    )
                    .map_err(|e| e.to_string())?;
                lags.extend(
                    ats.iter()
                        .map(|at| (sealed_at - at.0).num_microseconds().unwrap_or(0) as f64 / 1e3),
                );
                head = report.head_seq;
                if done {
                    return Ok(lags);
                }
                std::thread::sleep(SEAL_EVERY);
            }
        })
    };
    let (n, d) = tpcb_pass(db, Side::Audited, 0x1a9, settings.pass, settings)?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let lags = sealer.join().map_err(|_| "sealer panicked")??;
    Ok((n as f64 / d.as_secs_f64().max(1e-9), lags))
}

/// The `q` quantile (0 to 1) of `v`.
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn bench_backend(target: &Target, settings: &Settings) -> Res<Report> {
    let started = Instant::now();
    let fresh = FreshDb::create(target.kind, "custodian_bench_audit")?;
    let db = fresh.db()?;
    db.create_table::<LedgerEntry>()?;
    db.install_audit()?;
    let version = server_version(&mut db.session()?)?;
    println!("{} {version}: building the chain ...", target.name);

    let chain = bench_chain(db, settings)?;
    println!(
        "  {} records: built in {:.1} s, sealed in {:.2} s, verified in {:.3} s (median of 3); TPC-B ...",
        chain.n,
        chain.build.as_secs_f64(),
        chain.seal.as_secs_f64(),
        median(chain.verify.iter().map(Duration::as_secs_f64).collect()),
    );
    let tpcb = bench_tpcb(db, target.kind, settings)?;
    let lag = seal_lag(db, settings)?;
    check_tpcb(db)?;

    // Seal what the audited TPC-B transactions appended, and verify the whole trail.
    let start = Instant::now();
    db.seal_audit()?;
    let final_seal = start.elapsed();
    let start = Instant::now();
    let report = db.verify_audit(None)?;
    let final_verify = start.elapsed();
    if !report.is_intact() {
        return Err(format!("final verify: damaged: {:?}", report.damage).into());
    }
    let expected = chain.n as u64 + 4 * tpcb.transactions[Side::Audited as usize] as u64;
    // At least: the warm-up transactions appended records too.
    if report.links < expected {
        return Err(format!(
            "final verify: {} links, expected at least {expected}",
            report.links
        )
        .into());
    }

    let seal_checks = check_sealing(db, target.kind)?;

    let label = match target.kind {
        BackendKind::Postgres => "PostgreSQL",
        BackendKind::Mysql => "MariaDB",
        _ => "SQLite (file, WAL)",
    };
    drop(fresh);
    Ok(Report {
        title: format!("{label} {version}"),
        chain,
        tpcb,
        final_links: report.links,
        final_seal,
        final_verify,
        seal_checks,
        lag,
        elapsed: started.elapsed(),
    })
}

fn print_report(r: &Report, settings: &Settings) {
    println!();
    println!("## {} ({:.1} s)", r.title, r.elapsed.as_secs_f64());
    println!();
    let tps_a = median(r.tpcb.tps[0].clone());
    let tps_u = median(r.tpcb.tps[1].clone());
    let ratio = if tps_u > 0.0 { tps_a / tps_u } else { 0.0 };
    println!(
        "TPC-B-like, 1 client, 1 branch / {} tellers / {} accounts, {} rounds of {:.1} s per side:",
        settings.tellers,
        settings.accounts,
        settings.rounds,
        settings.pass.as_secs_f64()
    );
    println!();
    println!(
        "| {:<10} | {:>12} | {:>12} | {:>10} | {:>8} |",
        "side", "median tps", "transactions", "spread", "a / u"
    );
    println!(
        "|{:-<12}|{:->14}|{:->14}|{:->12}|{:->10}|",
        ":", ":", ":", ":", ":"
    );
    println!(
        "| {:<10} | {:>12.0} | {:>12} | {:>9.0}% | {:>6.3}{} |",
        "audited",
        tps_a,
        r.tpcb.transactions[0],
        spread(&r.tpcb.tps[0], tps_a) * 100.0,
        ratio,
        if ratio < 0.8 { " !" } else { "  " }
    );
    println!(
        "| {:<10} | {:>12.0} | {:>12} | {:>9.0}% | {:>8} |",
        "unaudited",
        tps_u,
        r.tpcb.transactions[1],
        spread(&r.tpcb.tps[1], tps_u) * 100.0,
        ""
    );
    let rounds: Vec<String> = r.tpcb.tps[0]
        .iter()
        .zip(&r.tpcb.tps[1])
        .map(|(a, u)| format!("{:.2}", a / u))
        .collect();
    println!();
    println!("Ratio per round: {}", rounds.join(", "));
    println!();

    let c = &r.chain;
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let verify_s: Vec<f64> = c.verify.iter().map(Duration::as_secs_f64).collect();
    let verify_med = median(verify_s.clone());
    let verify_best = verify_s.iter().cloned().fold(f64::INFINITY, f64::min);
    let verify_rate = c.n as f64 / verify_med.max(1e-9);
    println!(
        "Audit chain of {} records (insert_many of 1,000 rows per call):",
        c.n
    );
    println!();
    println!(
        "| {:<38} | {:>9} | {:>12} |",
        "step", "seconds", "records/s"
    );
    println!("|{:-<40}|{:->11}|{:->14}|", ":", ":", ":");
    println!(
        "| {:<38} | {:>9.2} | {:>12.0} |",
        "build (audited insert_many)",
        c.build.as_secs_f64(),
        rate(c.n as u64, c.build)
    );
    println!(
        "| {:<38} | {:>9.2} | {:>12.0} |",
        "seal_audit()",
        c.seal.as_secs_f64(),
        rate(c.n as u64, c.seal)
    );
    println!(
        "| {:<38} | {:>9.3} | {:>10.0}{} |",
        "verify_audit(None), median of 3",
        verify_med,
        verify_rate,
        if verify_rate < 200_000.0 { " !" } else { "  " }
    );
    println!(
        "| {:<38} | {:>9.3} | {:>12.0} |",
        "verify_audit(None), best of 3",
        verify_best,
        c.n as f64 / verify_best.max(1e-9)
    );
    let b = &c.breakdown;
    for (label, d) in [
        ("  breakdown: verify's query, no checks", b.read),
        ("  breakdown: canonical encoding only", b.canonical),
        ("  breakdown: record seals (HMAC) only", b.seal),
        ("  breakdown: link hashes only", b.link),
    ] {
        println!(
            "| {:<38} | {:>9.3} | {:>12.0} |",
            label,
            d.as_secs_f64(),
            rate(c.n as u64, d)
        );
    }
    println!(
        "| {:<38} | {:>9.3} | {:>12.0} |",
        format!("after TPC-B: seal ({} links total)", r.final_links),
        r.final_seal.as_secs_f64(),
        rate(r.final_links.saturating_sub(c.n as u64), r.final_seal)
    );
    println!(
        "| {:<38} | {:>9.3} | {:>12.0} |",
        "after TPC-B: verify whole trail",
        r.final_verify.as_secs_f64(),
        rate(r.final_links, r.final_verify)
    );
    let (tps, lags) = &r.lag;
    println!();
    println!(
        "Seal lag (record written -> chained) with a sealer every 100 ms during {:.1} s of audited \
         TPC-B ({tps:.0} tps, {} records): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        settings.pass.as_secs_f64(),
        lags.len(),
        quantile(lags.clone(), 0.5),
        quantile(lags.clone(), 0.99),
        quantile(lags.clone(), 1.0),
    );
    let k = &r.seal_checks;
    println!();
    println!(
        "Seal of one record behind the {} links (seconds): {}; without the high-water mark \
         (removed: a rescan) {:.3}; next seal, mark set again {:.3}",
        r.final_links,
        match k.late {
            Some(d) => format!(
                "committed after a seal that passed its id {:.3}",
                d.as_secs_f64()
            ),
            None => "late commits not checked (SQLite serializes writers)".into(),
        },
        k.rescan.as_secs_f64(),
        k.marked.as_secs_f64()
    );
}

fn run() -> Res<()> {
    // `cargo bench` passes `--bench`; every other argument is a backend filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.to_lowercase())
        .collect();
    let selected: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    t.name.contains(f.as_str()) || t.aliases.iter().any(|a| a.contains(f.as_str()))
                })
        })
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "no backend matches {filters:?}; choose among postgres, mariadb, sqlite"
        )
        .into());
    }

    let quick = std::env::var("CUSTODIAN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let settings = Settings {
        quick,
        rounds: if quick { 2 } else { 7 },
        pass: if quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        },
        accounts: if quick { 1_000 } else { 10_000 },
        tellers: 10,
        chain_full: if quick { 2_000 } else { 100_000 },
        chain_small: if quick { 1_000 } else { 20_000 },
        chain_budget: Duration::from_secs(60),
    };

    for t in &selected {
        let reachable = match t.kind {
            BackendKind::Postgres => pg_admin().map(drop),
            BackendKind::Mysql => mysql_admin().map(drop),
            _ => Ok(()),
        };
        if let Err(e) = reachable {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }

    println!(
        "custodian audit benchmark: TPC-B-like audited vs unaudited, chain seal and verify{}",
        if quick {
            " (CUSTODIAN_BENCH_QUICK: smoke run, numbers meaningless)"
        } else {
            ""
        }
    );
    for t in selected {
        let report = bench_backend(t, &settings).map_err(|e| format!("{}: {e}", t.name))?;
        print_report(&report, &settings);
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("audit bench failed: {e}");
        std::process::exit(1);
    }
}
