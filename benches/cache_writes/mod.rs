//! What the entity cache costs writers: `Session::update` by key of a cached entity whose
//! commit evicts here only (no Redis), publishes its invalidation (`invalidation = "async"`),
//! or publishes and waits for the other process's acknowledgement (`"sync"`, the default), and
//! the same update of an entity without a cache on the sync handle (nothing to publish).
//!
//! Each Redis handle has a peer: a second `Db` on the same channel (its own subscriber thread
//! and connection, as another process would have; it runs in this process), holding every
//! row in its cache. The four runners alternate in 9 rounds (the order rotates); N per runner
//! is calibrated to about 200 ms a pass. Reported: median rate, lowest and highest round, and
//! the cost per commit against the cache without Redis, from the same rounds. Redis at
//! `127.0.0.1:6379` (or `CUSTODIAN_BENCH_REDIS=host:port`).

use super::{median, CachedItem, ROUNDS, ROWS};
use crate::common::*;
use custodian::cache::Invalidation;
use custodian::{Db, Session};
use std::time::Instant;

#[custodian::entity(table = "cache_bench_plain", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlainItem {
    #[column(primary_key)]
    pub id: i64,
    pub code: String,
    pub risk: i32,
}

const NAMES: [&str; 4] = [
    "cached, no Redis",
    "cached, async",
    "cached, sync",
    "uncached, sync handle",
];

/// A handle on the same database with `tweak` applied to its cache section.
fn handle(base: &Db, tweak: impl FnOnce(&mut custodian::cache::CacheConfig)) -> Res<Db> {
    let mut config = base.config().clone();
    tweak(&mut config.cache);
    Ok(custodian::open(config)?.acting_as(custodian::Principal::new("bench")))
}

/// `n` updates through runner `i`, values from `from`.
fn run(s: &mut [Session; 4], i: usize, n: usize, from: i64) -> Res<()> {
    for k in 0..n as i64 {
        let id = 1 + (from + k) % ROWS;
        let code = format!("C-{:05}", from + k);
        let risk = ((from + k) % 5) as i32;
        if i == 3 {
            s[i].update(&mut PlainItem { id, code, risk })?;
        } else {
            s[i].update(&mut CachedItem { id, code, risk })?;
        }
    }
    Ok(())
}

fn rate(s: &mut [Session; 4], i: usize, n: usize, from: i64) -> Res<f64> {
    let start = Instant::now();
    run(s, i, n, from)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub(crate) fn bench(target: &Target) -> Res<()> {
    let redis = std::env::var("CUSTODIAN_BENCH_REDIS").unwrap_or("127.0.0.1:6379".into());
    if std::net::TcpStream::connect(&redis).is_err() {
        return Err(format!(
            "Redis is needed at {redis}: start it with `redis-server --daemonize yes`"
        )
        .into());
    }
    let fresh = FreshDb::create(target.kind, "cw")?;
    let base: &Db = fresh.db()?;
    base.create_table::<CachedItem>()?;
    base.create_table::<PlainItem>()?;
    {
        let mut s = base.session()?;
        let mut rows: Vec<CachedItem> = (1..=ROWS)
            .map(|id| CachedItem {
                id,
                code: format!("C-{id:05}"),
                risk: 0,
            })
            .collect();
        s.insert_many(&mut rows)?;
        let mut plain: Vec<PlainItem> = (1..=ROWS)
            .map(|id| PlainItem {
                id,
                code: format!("C-{id:05}"),
                risk: 0,
            })
            .collect();
        s.insert_many(&mut plain)?;
    }
    let channel = |mode: &str| format!("custodian-bench-{}-{mode}", std::process::id());
    let with_redis = |mode: Invalidation, name: &str| {
        let (url, channel) = (format!("redis://{redis}"), channel(name));
        move |c: &mut custodian::cache::CacheConfig| {
            c.redis = Some(url);
            c.channel = channel;
            c.invalidation = mode;
        }
    };
    let local = handle(base, |_| {})?;
    let async_db = handle(base, with_redis(Invalidation::Async, "async"))?;
    let sync_db = handle(base, with_redis(Invalidation::Sync, "sync"))?;
    let peers = [
        handle(base, with_redis(Invalidation::Async, "async"))?,
        handle(base, with_redis(Invalidation::Sync, "sync"))?,
    ];
    for peer in &peers {
        let mut s = peer.session()?;
        for id in 1..=ROWS {
            s.get::<CachedItem>(&id)?;
        }
    }
    let mut s = [
        local.session()?,
        async_db.session()?,
        sync_db.session()?,
        sync_db.session()?,
    ];
    let version = server_version(&mut s[0])?;
    for i in 0..4 {
        run(&mut s, i, 200, 0)?;
    }
    let mut n = [0usize; 4];
    for (i, n) in n.iter_mut().enumerate() {
        *n = ((rate(&mut s, i, 100, 0)? * 0.2) as usize).clamp(50, 200_000);
    }
    let mut rates: [Vec<f64>; 4] = Default::default();
    // Per round: microseconds per commit above the cache without Redis.
    let mut extra: [Vec<f64>; 4] = Default::default();
    for round in 0..ROUNDS {
        let mut this = [0f64; 4];
        for k in 0..4 {
            let i = (round + k) % 4;
            this[i] = rate(&mut s, i, n[i], 1_000 * (round as i64 + 1))?;
        }
        for i in 0..4 {
            rates[i].push(this[i]);
            extra[i].push(1e6 / this[i] - 1e6 / this[0]);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n{} ({version}), writes: {ROUNDS} rounds, Redis {redis}, load average {}",
        target.name,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for i in 0..4 {
        let lo = rates[i].iter().copied().fold(f64::MAX, f64::min);
        let hi = rates[i].iter().copied().fold(0.0, f64::max);
        println!(
            "  {:<22} {:>9.0} commits/s (rounds {lo:.0} .. {hi:.0}, N = {}), {:>+8.1} µs per \
             commit vs no Redis (median of rounds)",
            NAMES[i],
            median(&mut rates[i].clone()),
            n[i],
            median(&mut extra[i].clone()),
        );
    }
    drop(peers);
    Ok(())
}
