//! What custodian's metrics cost: the same reads and updates through plain diesel, through
//! custodian with no `metrics` recorder installed (the facade's no-op path), and through
//! custodian with a Prometheus recorder installed, on each backend.
//!
//! One unaudited entity on a fresh table seeded with 1,000 rows; each operation is on its
//! own (autocommit). The three runners alternate in 9 rounds (the order rotates); each round
//! times N operations per runner, N calibrated so that a diesel pass takes about 200 ms. The
//! report is the median rate over the rounds, the spread (lowest and highest round), and the
//! ratios against diesel in the same rounds. No tracing subscriber is installed.
//!
//! ```text
//! cargo bench -j2 --bench metrics_cost --all-features            # all three backends
//! cargo bench -j2 --bench metrics_cost --all-features -- sqlite  # backends whose name matches
//! ```
//!
//! **Instruction counts.** Timings on a shared machine cannot show a 2% difference, so the
//! no-recorder cost is also counted in instructions, which do not depend on the load:
//! `METRICS_COST_ONLY=diesel|no-recorder|recorder` runs one runner alone for
//! `METRICS_COST_OPS` get+update pairs (default 2,000) after a warm-up pass of the same size,
//! under `valgrind --tool=callgrind --toggle-collect='*measured_pass*'`, so that only the measured
//! pass is counted. `benches/metrics_instructions.sh` runs the three and prints instructions
//! per operation and the share spent inside the `metrics` facade.

use std::hint::black_box;
use std::time::Instant;

use custodian::Db;
use diesel::prelude::*;

mod common;
use common::*;

#[custodian::entity(table = "metric_items", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct MetricItem {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
    pub risk: i32,
}

mod plain {
    diesel::table! {
        metric_items (id) {
            id -> BigInt,
            code -> Text,
            risk -> Integer,
        }
    }
}

const ROWS: i64 = 1_000;
const ROUNDS: usize = 9;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Runner {
    Diesel,
    NoRecorder,
    Recorder,
}

/// `n` reads by key then `n` updates by key; operations per second.
fn pass(db: &Db, runner: Runner, n: usize, recorder: &dyn metrics::Recorder) -> Res<f64> {
    let mut s = db.session()?;
    let work = |s: &mut custodian::Session| -> Res<()> {
        for i in 0..n {
            let id = (i as i64 % ROWS) + 1;
            if runner == Runner::Diesel {
                let row: (i64, String, i32) = plain::metric_items::table
                    .find(id)
                    .select((
                        plain::metric_items::id,
                        plain::metric_items::code,
                        plain::metric_items::risk,
                    ))
                    .first(s.connection())?;
                black_box(&row);
                let changed = diesel::update(plain::metric_items::table.find(id))
                    .set(plain::metric_items::risk.eq(row.2 + 1))
                    .execute(s.connection())?;
                assert_eq!(changed, 1);
            } else {
                let mut item = s.get::<MetricItem>(&id)?;
                item.risk += 1;
                s.update(&mut item)?;
            }
        }
        Ok(())
    };
    let started = Instant::now();
    match runner {
        Runner::Recorder => metrics::with_local_recorder(recorder, || work(&mut s))?,
        _ => work(&mut s)?,
    }
    Ok((2 * n) as f64 / started.elapsed().as_secs_f64())
}

/// The pass that callgrind counts (`--toggle-collect='*measured_pass*'`); never inlined so
/// that its symbol exists.
#[inline(never)]
fn measured_pass(db: &Db, runner: Runner, n: usize, recorder: &dyn metrics::Recorder) -> Res<f64> {
    pass(db, runner, n, recorder)
}

/// `METRICS_COST_ONLY`: one runner, a warm-up pass and one measured pass of a fixed size.
fn only(target: &Target, which: &str) -> Res<()> {
    let runner = match which {
        "diesel" => Runner::Diesel,
        "no-recorder" => Runner::NoRecorder,
        "recorder" => Runner::Recorder,
        other => {
            return Err(
                format!("METRICS_COST_ONLY={other}: diesel, no-recorder or recorder").into(),
            )
        }
    };
    let n: usize = std::env::var("METRICS_COST_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let fresh = FreshDb::create(target.kind, "metrics_cost")?;
    let db = fresh.db()?;
    seed(db)?;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    pass(db, runner, n, &recorder)?;
    let rate = measured_pass(db, runner, n, &recorder)?;
    println!(
        "{} {which}: {n} get+update pairs, {rate:.0} ops/s",
        target.name
    );
    Ok(())
}

/// The table and its 1,000 rows.
fn seed(db: &Db) -> Res<()> {
    db.create_table::<MetricItem>()?;
    let mut rows: Vec<MetricItem> = (0..ROWS)
        .map(|i| MetricItem {
            id: 0,
            code: format!("M-{i}"),
            risk: 0,
        })
        .collect();
    db.session()?.insert_many(&mut rows)?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench(target: &Target) -> Res<()> {
    let fresh = FreshDb::create(target.kind, "metrics_cost")?;
    let db = fresh.db()?;
    seed(db)?;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    // Calibrate on diesel: about 200 ms per pass.
    let probe = pass(db, Runner::Diesel, 200, &recorder)?;
    let n = ((probe * 0.2 / 2.0) as usize).clamp(100, 20_000);
    let runners = [Runner::Diesel, Runner::NoRecorder, Runner::Recorder];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); 2];
    for round in 0..ROUNDS {
        let mut this = [0.0; 3];
        for k in 0..3 {
            let i = (k + round) % 3;
            this[i] = pass(db, runners[i], n, &recorder)?;
        }
        for i in 0..3 {
            rates[i].push(this[i]);
        }
        ratios[0].push(this[1] / this[0]);
        ratios[1].push(this[2] / this[0]);
    }
    println!(
        "{} ({} get+update pairs per pass, {ROUNDS} rounds):",
        target.name, n
    );
    for (i, r) in runners.iter().enumerate() {
        let v = &rates[i];
        let (lo, hi) = (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "  {:<12} median {:>9.0} ops/s  (rounds {:.0} .. {:.0})",
            format!("{r:?}"),
            median(v.clone()),
            lo,
            hi
        );
    }
    for (i, name) in ["no recorder / diesel", "recorder / diesel"]
        .iter()
        .enumerate()
    {
        let v = &ratios[i];
        let (lo, hi) = (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "  {name:<22} median {:.3}  (rounds {lo:.3} .. {hi:.3})",
            median(v.clone())
        );
    }
    let scrape = recorder.handle().render();
    let counted = scrape
        .lines()
        .filter(|l| l.starts_with("custodian_statements_total{"))
        .count();
    println!("  (the recorder saw {counted} statement series)");
    Ok(())
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for target in TARGETS.iter().filter(|t| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| t.name.contains(f.as_str()) || t.aliases.contains(&f.as_str()))
    }) {
        let outcome = match std::env::var("METRICS_COST_ONLY") {
            Ok(which) => only(target, &which),
            Err(_) => bench(target),
        };
        if let Err(e) = outcome {
            eprintln!("{}: {e}", target.name);
            std::process::exit(1);
        }
    }
}
