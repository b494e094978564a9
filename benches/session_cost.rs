//! What a session per operation costs on SQLite: custodian on an unaudited entity against plain
//! diesel on its own r2d2 pool of `SqliteConnection`s (the peer bench's setup: WAL, synchronous
//! NORMAL, foreign keys, busy timeout; r2d2's defaults, connections tested on checkout), every
//! operation on its own checkout (`db.session()?` / `pool.get()?`) as an application does.
//!
//! Workloads: `get` (a row by key among 10,000) and `crud` (insert with the key returned, get
//! by key, update every non-key column by key, delete by key: four checkouts per cycle).
//!
//! ```text
//! cargo bench -j2 --bench session_cost            # timed, interleaved rounds, ratios
//! benches/session_instructions.sh                 # instructions per operation (callgrind)
//! ```
//!
//! **Instruction counts.** `SESSION_COST_ONLY=diesel-get|custodian-get|diesel-crud|custodian-crud`
//! runs one runner alone for `SESSION_COST_OPS` operations (default 5,000; a CRUD cycle is one
//! operation) after a warm-up pass of the same size; callgrind counts only the measured pass
//! with `--toggle-collect='*measured_pass*'`.

use std::hint::black_box;
use std::time::Instant;

use custodian::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[entity(table = "cost_items", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
    pub title: String,
    pub owner: Option<String>,
    pub risk: i32,
    pub active: bool,
}

mod plain {
    diesel::table! {
        cost_items (id) {
            id -> BigInt,
            code -> Text,
            title -> Text,
            owner -> Nullable<Text>,
            risk -> Integer,
            active -> Bool,
        }
    }

    /// A loaded row.
    #[derive(Debug, diesel::Queryable, diesel::Selectable)]
    #[diesel(table_name = cost_items)]
    #[allow(dead_code)] // read through `black_box` only
    pub struct Row {
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    /// A row to insert and, with the key, to update (every non-key column, as custodian's).
    #[derive(diesel::Insertable, diesel::AsChangeset)]
    #[diesel(table_name = cost_items, treat_none_as_null = true)]
    pub struct NewRow<'a> {
        pub code: &'a str,
        pub title: &'a str,
        pub owner: Option<&'a str>,
        pub risk: i32,
        pub active: bool,
    }
}

/// SQLite as custodian opens it, without `secure_delete` (a diesel user would not set it).
#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<diesel::SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, c: &mut diesel::SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        c.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

type DieselPool = Pool<ConnectionManager<diesel::SqliteConnection>>;

const SEED_ROWS: i64 = 10_000;
const POOL: u32 = 4;
const ROUNDS: usize = 9;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Runner {
    DieselGet,
    CustodianGet,
    DieselCrud,
    CustodianCrud,
}

impl Runner {
    const ALL: [Runner; 4] = [
        Runner::DieselGet,
        Runner::CustodianGet,
        Runner::DieselCrud,
        Runner::CustodianCrud,
    ];

    fn name(self) -> &'static str {
        match self {
            Runner::DieselGet => "diesel-get",
            Runner::CustodianGet => "custodian-get",
            Runner::DieselCrud => "diesel-crud",
            Runner::CustodianCrud => "custodian-crud",
        }
    }
}

fn fields(i: u64) -> (String, String, Option<String>, i32, bool) {
    (
        format!("c-{i:07}"),
        format!("Session cost item number {i}"),
        (i % 3 == 0).then(|| format!("owner-{}", i % 17)),
        ((i * 37) % 100) as i32,
        i % 4 != 0,
    )
}

fn diesel_crud(pool: &DieselPool, i: u64) -> Res<()> {
    use diesel::prelude::*;
    use plain::cost_items::dsl as t;
    let (code, title, owner, risk, active) = fields(i);
    let key: i64 = diesel::insert_into(t::cost_items)
        .values(&plain::NewRow {
            code: &code,
            title: &title,
            owner: owner.as_deref(),
            risk,
            active,
        })
        .returning(t::id)
        .get_result(&mut pool.get()?)?;
    let row: plain::Row = t::cost_items
        .find(key)
        .select(plain::Row::as_select())
        .get_result(&mut pool.get()?)?;
    let title = format!("changed {i}");
    let n = diesel::update(t::cost_items.find(key))
        .set(&plain::NewRow {
            code: &row.code,
            title: &title,
            owner: row.owner.as_deref(),
            risk: (row.risk + 1) % 100,
            active: !row.active,
        })
        .execute(&mut pool.get()?)?;
    assert_eq!(n, 1);
    let n = diesel::delete(t::cost_items.find(key)).execute(&mut pool.get()?)?;
    assert_eq!(n, 1);
    Ok(())
}

fn custodian_crud(db: &custodian::Db, i: u64) -> Res<()> {
    let (code, title, owner, risk, active) = fields(i);
    let stored = db.session()?.insert(Item {
        id: 0,
        code,
        title,
        owner,
        risk,
        active,
    })?;
    let mut row = db.session()?.get::<Item>(&stored.id)?;
    row.title = format!("changed {i}");
    row.risk = (row.risk + 1) % 100;
    row.active = !row.active;
    db.session()?.update(&mut row)?;
    db.session()?.delete_by_key::<Item>(&row.id)?;
    Ok(())
}

/// `n` operations of `runner`; operations per second.
fn pass(db: &custodian::Db, pool: &DieselPool, runner: Runner, n: u64) -> Res<f64> {
    use diesel::prelude::*;
    let started = Instant::now();
    for i in 0..n {
        let key = (i * 7919) as i64 % SEED_ROWS + 1;
        match runner {
            Runner::DieselGet => {
                let row: plain::Row = plain::cost_items::table
                    .find(key)
                    .select(plain::Row::as_select())
                    .get_result(&mut pool.get()?)?;
                black_box(row);
            }
            Runner::CustodianGet => {
                black_box(db.session()?.get::<Item>(&key)?);
            }
            Runner::DieselCrud => diesel_crud(pool, i)?,
            Runner::CustodianCrud => custodian_crud(db, i)?,
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The pass that callgrind counts (`--toggle-collect='*measured_pass*'`); never inlined so
/// that its symbol exists.
#[inline(never)]
fn measured_pass(db: &custodian::Db, pool: &DieselPool, runner: Runner, n: u64) -> Res<f64> {
    pass(db, pool, runner, n)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let path = std::env::temp_dir().join(format!("session_cost_{}.db", std::process::id()));
    let file = path.display().to_string();
    let result = run(&file);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{file}{suffix}"));
    }
    result
}

fn run(file: &str) -> Res<()> {
    let mut config = custodian::DatabaseConfig::from_url(&format!("sqlite://{file}"))?;
    config.pool.max_size = POOL;
    config.pool.min_idle = Some(POOL);
    let db = custodian::open(config.audit_unkeyed())?;
    db.create_table::<Item>()?;
    let mut rows: Vec<Item> = (0..SEED_ROWS as u64)
        .map(|i| {
            let (code, title, owner, risk, active) = fields(i);
            Item {
                id: 0,
                code,
                title,
                owner,
                risk,
                active,
            }
        })
        .collect();
    db.session()?.insert_many(&mut rows)?;
    let pool = Pool::builder()
        .max_size(POOL)
        .min_idle(Some(POOL))
        .connection_customizer(Box::new(Pragmas))
        .build(ConnectionManager::new(file))?;
    if let Ok(which) = std::env::var("SESSION_COST_ONLY") {
        let runner = Runner::ALL
            .into_iter()
            .find(|r| r.name() == which)
            .ok_or_else(|| format!("SESSION_COST_ONLY={which}: one of diesel-get, custodian-get, diesel-crud, custodian-crud"))?;
        let n: u64 = std::env::var("SESSION_COST_OPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000);
        pass(&db, &pool, runner, n)?;
        let rate = measured_pass(&db, &pool, runner, n)?;
        println!("{which}: {n} operations, {rate:.0} ops/s");
        return Ok(());
    }
    // Timed: each round runs every runner once (the order rotating) for about 200 ms each.
    let sizes = [
        ((pass(&db, &pool, Runner::DieselGet, 500)? * 0.2) as u64).max(100),
        0,
        ((pass(&db, &pool, Runner::DieselCrud, 100)? * 0.2) as u64).max(20),
        0,
    ];
    let size = |r: usize| sizes[r & !1];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); 2];
    for round in 0..ROUNDS {
        let mut this = [0.0; 4];
        for k in 0..4 {
            let r = (k + round) % 4;
            this[r] = pass(&db, &pool, Runner::ALL[r], size(r))?;
        }
        for r in 0..4 {
            rates[r].push(this[r]);
        }
        ratios[0].push(this[1] / this[0]);
        ratios[1].push(this[3] / this[2]);
    }
    for (r, runner) in Runner::ALL.iter().enumerate() {
        let v = &mut rates[r];
        let (lo, hi) = (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "{:<15} median {:>9.0} ops/s (rounds {lo:.0} .. {hi:.0})",
            runner.name(),
            median(v)
        );
    }
    for (i, name) in ["get: custodian / diesel", "crud: custodian / diesel"]
        .iter()
        .enumerate()
    {
        let v = &mut ratios[i];
        let (lo, hi) = (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "{name}: median {:.3} (rounds {lo:.3} .. {hi:.3})",
            median(v)
        );
    }
    Ok(())
}
