//! CRUD throughput of custodian against hand-written diesel, on PostgreSQL, MariaDB and SQLite.
//!
//! For each backend the bench creates a fresh database (a uniquely named database on the
//! PostgreSQL and MariaDB servers, a file in the temp directory for SQLite, all removed at the
//! end), one table `bench_items` (auto-increment `i64` key, two text columns, a nullable text
//! column, an integer and a boolean), seeds it with 10,000 rows, and opens one custodian pool
//! acting as principal `bench`, with an audit seal key. The entity `Item` on `bench_items` is
//! `#[entity(unaudited)]`; `AuditedItem`, the same columns on `bench_items_audited` (same seed
//! rows), is audited, as entities are by default.
//!
//! The same workload then runs through custodian's [`Session`] API and through plain diesel on
//! the raw connection of a session from the same pool (`Session::connection`), with a diesel
//! `table!` and `Queryable` / `Insertable` / `AsChangeset` structs written as a diesel user
//! would:
//!
//! | operation | custodian | diesel |
//! |---|---|---|
//! | insert one row, get its key | `Session::insert` | `insert_into` + `RETURNING id` (PostgreSQL, SQLite), + `SELECT LAST_INSERT_ID()` (MariaDB) |
//! | insert, key via `lastval()` (PostgreSQL only) | `Session::insert` | `insert_into` + `SELECT lastval()` |
//! | get by key | `Session::get` | `table.find(id).select(..).first(conn)` |
//! | update one row by key | `Session::update` | `update(table.find(id)).set(&changeset)`, rows checked |
//! | delete by key | `Session::delete_by_key` | `delete(table.find(id))`, rows checked |
//! | page of 100 rows | `Session::load(Item::query().filter(..).order(..).limit(100))` | the same query on the diesel table |
//! | bulk insert of 1,000 rows | `Session::insert_many` | `insert_into(table).values(&vec)` on the concrete connection |
//!
//! Every operation runs on its own (autocommit), as an application would issue it. Input values
//! are built before the clock starts; conversions into diesel's insertable and changeset structs
//! are timed, as custodian's conversions are. Custodian and diesel alternate in rounds (the
//! side that goes first alternates too); each of 7 rounds times N operations per kind, N calibrated
//! per backend and operation so that one measurement takes about 300 ms. The report is the
//! median rate over the rounds and the ratio custodian / diesel.
//!
//! Audit on / off: each round also runs the write operations (insert, update, delete, bulk
//! insert) through the same `Session` calls on `AuditedItem`, with the same N; a second table
//! per backend gives the ratio audited / unaudited (target >= 0.8) against the unaudited
//! custodian side of the same rounds. The order of the three runners rotates across rounds.
//!
//! ```text
//! cargo bench -j2 --bench crud                 # all three backends
//! cargo bench -j2 --bench crud -- sqlite       # only backends whose name contains a filter
//! CUSTODIAN_BENCH_QUICK=1 cargo bench --bench crud   # tiny smoke run
//! ```
//!
//! Servers: `CUSTODIAN_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`) and
//! `CUSTODIAN_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`), as for the test suite.

use std::hint::black_box;
use std::time::{Duration, Instant};

use custodian::{AnyConnection, BackendKind, Db, Entity, Session};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Unsigned};

mod common;
mod items;
#[path = "crud/passes.rs"]
mod passes;

use common::*;
use items::{model, plain, sample};
use passes::*;

use model::{AuditedItem, Item};
use plain::{NewRow, Row};

// ------------------------------------------------------------------ driver

struct Settings {
    quick: bool,
    rounds: usize,
    seed_rows: usize,
    target: Duration,
}

struct Report {
    title: String,
    lines: Vec<Line>,
    /// Audited writes against the unaudited custodian side of the same rounds.
    audit_lines: Vec<Line>,
    elapsed: Duration,
}

/// One operation's result: median rates and the spread of the rounds around them.
struct Line {
    op: Op,
    n: usize,
    custodian: Stat,
    diesel: Stat,
}

struct Stat {
    median: f64,
    /// Half the range of the rounds' rates, relative to the median.
    spread: f64,
}

impl Stat {
    fn of(rates: &[f64]) -> Stat {
        let median = median(rates.to_vec());
        let (lo, hi) = rates
            .iter()
            .fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let spread = if median > 0.0 && hi >= lo {
            (hi - lo) / 2.0 / median
        } else {
            0.0
        };
        Stat { median, spread }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Rounds to two significant digits, within `[lo, hi]`.
fn nice(n: f64, lo: usize, hi: usize) -> usize {
    let n = n.clamp(lo as f64, hi as f64);
    let scale = 10f64.powi((n.log10().floor() as i32 - 1).max(0));
    ((n / scale).round() * scale) as usize
}

fn bench_backend(target: &Target, settings: &Settings) -> Res<Report> {
    let started = Instant::now();
    let fresh = FreshDb::create(target.kind, "custodian_bench")?;
    let db = fresh.db()?;
    db.create_table::<Item>()?;
    db.create_table::<AuditedItem>()?;

    let (version, seed_max) = {
        let mut s = db.session()?;
        let mut seed: Vec<Item> = (0..settings.seed_rows).map(|i| sample("seed", i)).collect();
        s.insert_many(&mut seed)?;
        // The audited table gets the same seed rows, copied in SQL (no audit records).
        s.execute_sql(
            "INSERT INTO bench_items_audited (code, title, owner, risk, active) \
             SELECT code, title, owner, risk, active FROM bench_items ORDER BY id",
        )?;
        if target.kind == BackendKind::Postgres {
            s.execute_sql("ANALYZE bench_items")?;
            s.execute_sql("ANALYZE bench_items_audited")?;
        }
        let seed_max: Option<i64> = plain::bench_items::table
            .select(diesel::dsl::max(plain::bench_items::id))
            .first(s.connection())?;
        let seed_max = seed_max.ok_or("seed rows missing")?;
        let audited_max: Option<i64> = plain::bench_items_audited::table
            .select(diesel::dsl::max(plain::bench_items_audited::id))
            .first(s.connection())?;
        let audited_max = audited_max.ok_or("audited seed rows missing")?;
        (server_version(&mut s)?, (seed_max, audited_max))
    };
    let (seed_max, audited_max) = seed_max;
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| op.applies_to(target.kind))
        .collect();

    // Warm-up (statement caches, buffer pools), then a calibration pass on both sides.
    let counts = if settings.quick {
        Counts::uniform(20, 2)
    } else {
        for side in [Side::Custodian, Side::Diesel] {
            run_pass(db, side, &Counts::uniform(20, 2), "warm", seed_max)?;
        }
        run_audited_pass(db, &Counts::uniform(20, 2), "warm", audited_max)?;
        let probe = Counts::uniform(100, 5);
        let mut per_op = [0f64; 7];
        for side in [Side::Custodian, Side::Diesel] {
            for (op, n, d) in run_pass(db, side, &probe, "probe", seed_max)? {
                per_op[op as usize] += d.as_secs_f64() / n as f64 / 2.0;
            }
        }
        let mut c = [0usize; 7];
        for op in Op::ALL {
            let want = settings.target.as_secs_f64() / per_op[op as usize].max(1e-9);
            c[op as usize] = if op == Op::Bulk {
                nice(want, 3, 2_000)
            } else {
                nice(want, 50, 200_000)
            };
        }
        // Delete removes rows inserted in the same pass.
        c[Op::Delete as usize] = c[Op::Delete as usize].min(c[Op::Insert as usize]);
        Counts(c)
    };

    // Three runners per round; which one goes first rotates (and so does the order of the others
    // in alternate rounds).
    let mut rates: Vec<[Vec<f64>; 3]> = (0..7).map(|_| Default::default()).collect();
    for round in 0..settings.rounds {
        let mut order = [Runner::Custodian, Runner::Diesel, Runner::Audited];
        order.rotate_left(round % 3);
        if round % 2 == 1 {
            order.swap(1, 2);
        }
        for runner in order {
            let pass = match runner {
                Runner::Custodian => run_pass(
                    db,
                    Side::Custodian,
                    &counts,
                    &format!("r{round}c"),
                    seed_max,
                )?,
                Runner::Diesel => {
                    run_pass(db, Side::Diesel, &counts, &format!("r{round}d"), seed_max)?
                }
                Runner::Audited => {
                    run_audited_pass(db, &counts, &format!("r{round}a"), audited_max)?
                }
            };
            for (op, n, d) in pass {
                rates[op as usize][runner as usize].push(n as f64 / d.as_secs_f64().max(1e-12));
            }
        }
    }

    let line = |op: Op, a: Runner, b: Runner| Line {
        op,
        n: counts.get(op),
        custodian: Stat::of(&rates[op as usize][a as usize]),
        diesel: Stat::of(&rates[op as usize][b as usize]),
    };
    let lines = ops
        .iter()
        .map(|&op| line(op, Runner::Custodian, Runner::Diesel))
        .collect();
    // Here `custodian` is the audited side and `diesel` the unaudited one.
    let audit_lines = AUDITED_OPS
        .iter()
        .map(|&op| line(op, Runner::Audited, Runner::Custodian))
        .collect();
    let label = match target.kind {
        BackendKind::Postgres => "PostgreSQL",
        BackendKind::Mysql => "MariaDB",
        _ => "SQLite (file, WAL)",
    };
    drop(fresh);
    Ok(Report {
        title: format!("{label} {version}"),
        lines,
        audit_lines,
        elapsed: started.elapsed(),
    })
}

fn print_report(r: &Report, settings: &Settings) {
    println!();
    println!(
        "## {} ({} rounds, median; {:.1} s)",
        r.title,
        settings.rounds,
        r.elapsed.as_secs_f64()
    );
    println!();
    print_table(&r.lines, ["custodian", "diesel", "c / d"], 0.95);
    println!();
    println!("Audit on / off (custodian, audited entity / unaudited entity, same rounds):");
    println!();
    print_table(&r.audit_lines, ["audited", "unaudited", "a / u"], 0.8);
}

/// One results table; `names` are the two sides and the spread label, `target` the ratio below
/// which a line is marked `!`.
fn print_table(lines: &[Line], names: [&str; 3], target: f64) {
    let [a, b, spread_label] = names;
    println!(
        "| {:<34} | {:>8} | {:>15} | {:>15} | {:>16} | {:>13} |",
        "operation",
        "n/round",
        format!("{a} ops/s"),
        format!("{b} ops/s"),
        format!("{a}/{b}"),
        format!("spread {spread_label}")
    );
    println!(
        "|{:-<36}|{:->10}|{:->17}|{:->17}|{:->18}|{:->15}|",
        ":", ":", ":", ":", ":", ":"
    );
    for l in lines {
        let (c, d) = (l.custodian.median, l.diesel.median);
        let ratio = if d > 0.0 { c / d } else { 0.0 };
        let mark = if ratio < target { " !" } else { "  " };
        let spread = format!(
            "±{:.0}% / ±{:.0}%",
            l.custodian.spread * 100.0,
            l.diesel.spread * 100.0
        );
        println!(
            "| {:<34} | {:>8} | {:>15.0} | {:>15.0} | {:>14.3}{mark} | {:>13} |",
            l.op.label(),
            l.n,
            c,
            d,
            ratio,
            spread
        );
    }
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
        seed_rows: if quick { 1_000 } else { 10_000 },
        target: Duration::from_millis(300),
    };

    // Every selected server must be up before anything runs.
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
        "custodian CRUD benchmark: custodian vs plain diesel, {} rounds{}",
        settings.rounds,
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
        eprintln!("crud bench failed: {e}");
        std::process::exit(1);
    }
}
