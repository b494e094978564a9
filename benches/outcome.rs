//! What settling cut-off commits costs, on PostgreSQL and MariaDB (SQLite settles nothing and
//! pays nothing).
//!
//! For each backend: a fresh database, an unaudited table `bench_accounts` and an audited twin
//! `bench_audited` (100 rows each), one pool (`max_size = 2`). One transaction reads a row by
//! key and writes it back with its balance plus one. Variants, interleaved transaction by
//! transaction (the order rotating), in rounds of `N` transactions per variant:
//!
//! - `diesel`: plain diesel on the session's connection, `conn.transaction(..)` with the same
//!   `SELECT` by key and `UPDATE` by key;
//! - `custodian`: `Session::transaction_with` on one long session, no outcome row
//!   (`record_outcome(false)`);
//! - `+ outcome row`: the same with `record_outcome(true)`: one more `INSERT` per transaction
//!   (the connection's server session is asked once per session);
//! - `audited, settled` and `audited, not settled`: `Db::transaction_with` (a session per
//!   transaction, as an application calling `Db` does) on the audited table, default options
//!   versus `record_outcome(false)`: the difference is the server-session query each new
//!   session asks before its first `COMMIT`.
//!
//! Reported per variant: the median of the rounds' µs per transaction, with the rounds' min and
//! max; and the ratios of medians. `CUSTODIAN_BENCH_QUICK=1` makes a smoke run.

mod common;

use common::{FreshDb, Res, TARGETS};
use custodian::prelude::*;
use custodian::{BackendKind, TxOptions};
use std::time::Instant;

#[entity(table = "bench_accounts", unaudited)]
#[derive(Debug, Clone)]
pub struct Acct {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
}

#[entity(table = "bench_audited")]
#[derive(Debug, Clone)]
pub struct AuditedAcct {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
}

const VARIANTS: [&str; 5] = [
    "diesel",
    "custodian",
    "+ outcome row",
    "audited, settled",
    "audited, not settled",
];

fn main() -> Res<()> {
    let quick = std::env::var("CUSTODIAN_BENCH_QUICK").is_ok();
    let (rounds, n) = if quick { (2, 20) } else { (9, 300) };
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for target in TARGETS {
        if target.kind == BackendKind::Sqlite {
            continue;
        }
        let wanted = filters.is_empty()
            || filters
                .iter()
                .any(|f| target.name.contains(f.as_str()) || target.aliases.contains(&f.as_str()));
        if !wanted {
            continue;
        }
        let fresh = match FreshDb::create(target.kind, "custodian_bench_outcome") {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{}: {e}", target.name);
                std::process::exit(2);
            }
        };
        run(target.name, fresh.db()?, rounds, n)?;
    }
    Ok(())
}

fn run(name: &str, db: &custodian::Db, rounds: usize, n: i64) -> Res<()> {
    db.create_table::<Acct>()?;
    db.create_table::<AuditedAcct>()?;
    db.install_tx_outcomes()?;
    let mut s = db.session()?;
    let mut rows: Vec<Acct> = (1..=100).map(|id| Acct { id, balance: 0 }).collect();
    s.insert_many(&mut rows)?;
    let mut rows: Vec<AuditedAcct> = (1..=100).map(|id| AuditedAcct { id, balance: 0 }).collect();
    s.insert_many(&mut rows)?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for round in 0..rounds + 1 {
        // Interleaved per transaction: each variant runs once in turn (the order rotating), so
        // drift in the machine's load hits every variant alike.
        let mut spent = vec![0f64; VARIANTS.len()];
        for i in 0..n {
            for k in 0..VARIANTS.len() {
                let v = (k + i as usize) % VARIANTS.len();
                let started = Instant::now();
                one(db, &mut s, v, 1 + i % 100)?;
                spent[v] += started.elapsed().as_secs_f64();
            }
        }
        // Round 0 warms up (statement caches, pool) and is not counted.
        if round > 0 {
            for (v, t) in spent.iter().enumerate() {
                samples[v].push(t * 1e6 / n as f64);
            }
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!("\n{name}: {rounds} rounds x {n} transactions per variant (µs per transaction)");
    println!("| variant | median | min | max |\n|---|---|---|---|");
    for (v, s) in samples.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            VARIANTS[v],
            medians[v],
            s.first().copied().unwrap_or_default(),
            s.last().copied().unwrap_or_default()
        );
    }
    println!(
        "ratios: custodian / diesel {:.3}; + outcome row / diesel {:.3}; + outcome row / \
         custodian {:.3}; audited settled / not settled {:.3}",
        medians[1] / medians[0],
        medians[2] / medians[0],
        medians[2] / medians[1],
        medians[3] / medians[4],
    );
    Ok(())
}

/// One transaction of variant `v` on row `id`.
fn one(db: &custodian::Db, s: &mut custodian::Session, v: usize, id: i64) -> Res<()> {
    match v {
        0 => {
            use custodian::diesel::Connection;
            s.connection()
                .transaction::<_, diesel::result::Error, _>(|c| {
                    let b: i64 = bench_accounts::table
                        .find(id)
                        .select(bench_accounts::balance)
                        .first(c)?;
                    diesel::update(bench_accounts::table.find(id))
                        .set(bench_accounts::balance.eq(b + 1))
                        .execute(c)?;
                    Ok(())
                })?;
        }
        1 | 2 => {
            let options = TxOptions::new().record_outcome(v == 2);
            s.transaction_with(&options, |tx| {
                let mut a = tx.get::<Acct>(&id)?;
                a.balance += 1;
                tx.update(&mut a)
            })?;
        }
        _ => {
            let options = if v == 3 {
                TxOptions::new()
            } else {
                TxOptions::new().record_outcome(false)
            };
            db.transaction_with(&options, |tx| {
                let mut a = tx.get::<AuditedAcct>(&id)?;
                a.balance += 1;
                tx.update(&mut a)
            })?;
        }
    }
    Ok(())
}

fn median(s: &mut [f64]) -> f64 {
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or_default()
}
