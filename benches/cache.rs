//! What the entity cache buys: `Session::get` by key of a cached entity served from the cache,
//! the same `get` with the cache turned off, and plain diesel's `table.find(id).first(conn)`.
//! Then what it costs writers (`writes`): see `cache_writes.rs`.
//!
//! One unaudited entity (`#[entity(cache)]`) on a fresh table seeded with 1,000 rows. Two
//! `Db` handles on the same database: one with the cache (every row read once before timing,
//! so every timed `get` is a hit), one with `[cache] enabled = false`; diesel runs on the raw
//! connection of a session of the uncached handle. Keys cycle through the 1,000 rows. The
//! three runners alternate in 9 rounds (the order rotates); each round times N operations per
//! runner, N calibrated per runner so that a pass takes about 200 ms. The report is the median
//! rate over the rounds, the spread (lowest and highest round), and the ratios in the same
//! rounds. No metrics recorder or tracing subscriber is installed. PostgreSQL by default (the
//! acceptance target: cached at least 20x uncached); name backends to run others.
//!
//! ```text
//! cargo bench -j2 --bench cache --all-features                    # PostgreSQL
//! cargo bench -j2 --bench cache --all-features -- sqlite mariadb  # backends whose name matches
//! ```

use std::hint::black_box;
use std::time::Instant;

use custodian::{Db, Session};
use diesel::prelude::*;

mod common;
use common::*;
mod cache_writes;

#[custodian::entity(
    table = "cache_bench_items",
    cache(capacity = 10000, ttl_secs = 600),
    unaudited
)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedItem {
    #[column(primary_key)]
    pub id: i64,
    pub code: String,
    pub risk: i32,
}

mod plain {
    diesel::table! {
        cache_bench_items (id) {
            id -> BigInt,
            code -> Text,
            risk -> Integer,
        }
    }

    /// The row as diesel loads it; the bench only hands it to `black_box`.
    #[derive(diesel::Queryable, Debug)]
    #[allow(dead_code)]
    pub struct Row {
        pub id: i64,
        pub code: String,
        pub risk: i32,
    }
}

const ROWS: i64 = 1_000;
const ROUNDS: usize = 9;

#[derive(Clone, Copy, PartialEq)]
enum Runner {
    Cached,
    Uncached,
    Diesel,
}

const RUNNERS: [Runner; 3] = [Runner::Cached, Runner::Uncached, Runner::Diesel];

struct Sessions {
    cached: Session,
    uncached: Session,
    plain: Session,
}

/// `n` reads by key through `runner`, starting at key `from`.
fn run(s: &mut Sessions, runner: Runner, n: usize, from: i64) -> Res<()> {
    for i in 0..n as i64 {
        let id = 1 + (from + i) % ROWS;
        match runner {
            Runner::Cached => {
                black_box(s.cached.get::<CachedItem>(&id)?);
            }
            Runner::Uncached => {
                black_box(s.uncached.get::<CachedItem>(&id)?);
            }
            Runner::Diesel => {
                let custodian::AnyConnection::Postgresql(c) = s.plain.connection() else {
                    let row: plain::Row = match s.plain.connection() {
                        custodian::AnyConnection::Mysql(c) => {
                            plain::cache_bench_items::table.find(id).first(c)?
                        }
                        custodian::AnyConnection::Sqlite(c) => {
                            plain::cache_bench_items::table.find(id).first(c)?
                        }
                        custodian::AnyConnection::Postgresql(_) => unreachable!(),
                    };
                    black_box(row);
                    continue;
                };
                let row: plain::Row = plain::cache_bench_items::table.find(id).first(c)?;
                black_box(row);
            }
        }
    }
    Ok(())
}

/// Operations per second of `n` operations.
fn rate(s: &mut Sessions, runner: Runner, n: usize, from: i64) -> Res<f64> {
    let start = Instant::now();
    run(s, runner, n, from)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench(target: &Target) -> Res<()> {
    let fresh = FreshDb::create(target.kind, "cb")?;
    let cached_db: &Db = fresh.db()?;
    cached_db.create_table::<CachedItem>()?;
    let mut config = cached_db.config().clone();
    config.cache.enabled = false;
    let uncached_db = custodian::open(config)?;
    {
        let mut s = cached_db.session()?;
        let rows: Vec<CachedItem> = (1..=ROWS)
            .map(|id| CachedItem {
                id,
                code: format!("C-{id:05}"),
                risk: (id % 5) as i32,
            })
            .collect();
        let mut rows = rows;
        s.insert_many(&mut rows)?;
    }
    let mut s = Sessions {
        cached: cached_db.session()?,
        uncached: uncached_db.session()?,
        plain: uncached_db.session()?,
    };
    let version = server_version(&mut s.plain)?;
    // Warm: every row in the cache, every statement prepared.
    for runner in RUNNERS {
        run(&mut s, runner, ROWS as usize, 0)?;
    }
    // Calibrate: N per runner for about 200 ms.
    let mut n = [0usize; 3];
    for (i, runner) in RUNNERS.into_iter().enumerate() {
        let probe = rate(&mut s, runner, 200, 0)?;
        n[i] = ((probe * 0.2) as usize).clamp(200, 2_000_000);
    }
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS {
        let mut this = [0f64; 3];
        for k in 0..3 {
            let i = (round + k) % 3;
            this[i] = rate(&mut s, RUNNERS[i], n[i], round as i64 * 7)?;
        }
        for i in 0..3 {
            rates[i].push(this[i]);
        }
        ratios[0].push(this[0] / this[1]);
        ratios[1].push(this[1] / this[2]);
        ratios[2].push(this[0] / this[2]);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n{} ({version}), {ROUNDS} rounds, load average {}",
        target.name,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (i, name) in ["cached get", "uncached get", "diesel find"]
        .iter()
        .enumerate()
    {
        let (lo, hi) = (
            rates[i].iter().copied().fold(f64::MAX, f64::min),
            rates[i].iter().copied().fold(0.0, f64::max),
        );
        println!(
            "  {name:<14} {:>12.0} ops/s (rounds {lo:.0} .. {hi:.0}, N = {})",
            median(&mut rates[i].clone()),
            n[i]
        );
    }
    for (i, name) in ["cached / uncached", "uncached / diesel", "cached / diesel"]
        .iter()
        .enumerate()
    {
        let (lo, hi) = (
            ratios[i].iter().copied().fold(f64::MAX, f64::min),
            ratios[i].iter().copied().fold(0.0, f64::max),
        );
        println!(
            "  {name:<18} {:>8.2}x (rounds {lo:.2} .. {hi:.2})",
            median(&mut ratios[i].clone())
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for target in &TARGETS {
        let chosen = if filters.is_empty() {
            target.name == "postgres"
        } else {
            filters
                .iter()
                .any(|f| target.name.contains(f.as_str()) || target.aliases.contains(&f.as_str()))
        };
        if chosen {
            bench(target)?;
            cache_writes::bench(target)?;
        }
    }
    Ok(())
}
