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

use model::{AuditedItem, Item};
use plain::{Changes, NewRow, Row};

mod common;
use common::*;

/// The custodian side: one entity.
mod model {
    use custodian::entity;

    /// A row of the benchmark table; not audited, so it measures custodian against diesel.
    #[entity(table = "bench_items", unaudited)]
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

    /// The same row in its own table, audited (custodian's default): every write also appends
    /// a sealed audit record in the same transaction.
    #[entity(table = "bench_items_audited")]
    #[derive(Debug, Clone, PartialEq)]
    pub struct AuditedItem {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    impl From<Item> for AuditedItem {
        fn from(i: Item) -> Self {
            AuditedItem {
                id: i.id,
                code: i.code,
                title: i.title,
                owner: i.owner,
                risk: i.risk,
                active: i.active,
            }
        }
    }
}

/// The plain diesel side: its own schema and structs for the same table.
mod plain {
    diesel::table! {
        bench_items (id) {
            id -> BigInt,
            code -> Text,
            title -> Text,
            owner -> Nullable<Text>,
            risk -> Integer,
            active -> Bool,
        }
    }

    diesel::table! {
        /// The audited entity's table (only the key: clean-up between passes).
        bench_items_audited (id) {
            id -> BigInt,
        }
    }

    /// A loaded row.
    #[derive(Debug, diesel::Queryable, diesel::Selectable)]
    #[diesel(table_name = bench_items)]
    #[allow(dead_code)] // read through `black_box` only
    pub struct Row {
        pub id: i64,
        pub code: String,
        pub title: String,
        pub owner: Option<String>,
        pub risk: i32,
        pub active: bool,
    }

    /// A row to insert (the key is generated).
    #[derive(diesel::Insertable)]
    #[diesel(table_name = bench_items, treat_none_as_default_value = false)]
    pub struct NewRow<'a> {
        pub code: &'a str,
        pub title: &'a str,
        pub owner: Option<&'a str>,
        pub risk: i32,
        pub active: bool,
    }

    /// Every non-key column, as custodian's update sets them.
    #[derive(diesel::AsChangeset)]
    #[diesel(table_name = bench_items, treat_none_as_null = true)]
    pub struct Changes<'a> {
        pub code: &'a str,
        pub title: &'a str,
        pub owner: Option<&'a str>,
        pub risk: i32,
        pub active: bool,
    }

    impl<'a> From<&'a super::Item> for NewRow<'a> {
        fn from(i: &'a super::Item) -> Self {
            NewRow {
                code: &i.code,
                title: &i.title,
                owner: i.owner.as_deref(),
                risk: i.risk,
                active: i.active,
            }
        }
    }

    impl<'a> From<&'a super::Item> for Changes<'a> {
        fn from(i: &'a super::Item) -> Self {
            Changes {
                code: &i.code,
                title: &i.title,
                owner: i.owner.as_deref(),
                risk: i.risk,
                active: i.active,
            }
        }
    }
}

fn sample(tag: &str, i: usize) -> Item {
    Item {
        id: 0,
        code: format!("{tag}-{i:06}"),
        title: format!("Benchmark item {tag} number {i}"),
        owner: (i % 3 == 0).then(|| format!("owner-{}", i % 17)),
        risk: ((i * 37) % 100) as i32,
        active: i % 4 != 0,
    }
}

// ------------------------------------------------------------------ operations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Insert,
    Get,
    Update,
    Delete,
    Page,
    Bulk,
    InsertLastval,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::Insert,
        Op::Get,
        Op::Update,
        Op::Delete,
        Op::Page,
        Op::Bulk,
        Op::InsertLastval,
    ];

    fn label(self) -> &'static str {
        match self {
            Op::Insert => "insert 1 row, key returned",
            Op::Get => "get by key",
            Op::Update => "update 1 row by key",
            Op::Delete => "delete by key",
            Op::Page => "filtered+ordered page, 100 rows",
            Op::Bulk => "bulk insert 1,000 rows",
            Op::InsertLastval => "insert; diesel key via lastval()",
        }
    }

    fn applies_to(self, kind: BackendKind) -> bool {
        self != Op::InsertLastval || kind == BackendKind::Postgres
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// custodian on the unaudited entity.
    Custodian,
    /// plain diesel on the same table.
    Diesel,
}

/// Who runs a pass in a round: [`run_pass`] with a side, or [`run_audited_pass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runner {
    Custodian = 0,
    Diesel = 1,
    /// custodian on the audited entity (write operations only).
    Audited = 2,
}

/// The operations the audited side runs: the writes (reads are not audited).
const AUDITED_OPS: [Op; 4] = [Op::Insert, Op::Update, Op::Delete, Op::Bulk];

/// Operations per kind for one pass.
#[derive(Debug, Clone, Copy)]
struct Counts([usize; 7]);

impl Counts {
    fn uniform(single: usize, bulk: usize) -> Counts {
        let mut c = [single; 7];
        c[Op::Bulk as usize] = bulk;
        Counts(c)
    }
    fn get(&self, op: Op) -> usize {
        self.0[op as usize]
    }
}

/// Time taken by `n` operations of each kind in one pass.
type Pass = Vec<(Op, usize, Duration)>;

/// How the diesel side learns the generated key of a single-row insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyMode {
    /// PostgreSQL and SQLite: `RETURNING id` (the workspace enables diesel's
    /// `returning_clauses_for_sqlite_3_35`); MariaDB: `LAST_INSERT_ID()`.
    Native,
    /// PostgreSQL: a second statement `SELECT lastval()`, as custodian does.
    Lastval,
}

fn diesel_insert(conn: &mut AnyConnection, row: &NewRow<'_>, mode: KeyMode) -> QueryResult<i64> {
    use plain::bench_items::dsl::{bench_items, id};
    match conn {
        AnyConnection::Postgresql(c) => match mode {
            KeyMode::Native => diesel::insert_into(bench_items)
                .values(row)
                .returning(id)
                .get_result(c),
            KeyMode::Lastval => {
                diesel::insert_into(bench_items).values(row).execute(c)?;
                diesel::select(sql::<BigInt>("lastval()")).get_result(c)
            }
        },
        AnyConnection::Mysql(c) => {
            diesel::insert_into(bench_items).values(row).execute(c)?;
            let key: u64 =
                diesel::select(sql::<Unsigned<BigInt>>("LAST_INSERT_ID()")).get_result(c)?;
            i64::try_from(key).map_err(|e| diesel::result::Error::DeserializationError(e.into()))
        }
        AnyConnection::Sqlite(c) => diesel::insert_into(bench_items)
            .values(row)
            .returning(id)
            .get_result(c),
    }
}

fn expect_one(what: &str, n: usize) -> Res<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!("{what}: {n} rows affected, expected 1").into())
    }
}

/// Deletes every row above the seed (untimed clean-up between operations).
fn cleanup(s: &mut Session, seed_max: i64) -> Res<()> {
    use plain::bench_items::dsl::{bench_items, id};
    diesel::delete(bench_items.filter(id.gt(seed_max)))
        .execute(s.connection())
        .map_err(|e| format!("clean-up: {e}"))?;
    Ok(())
}

/// Single-row inserts; returns the stored items (with their keys) and the time taken.
fn run_insert(
    s: &mut Session,
    side: Side,
    items: Vec<Item>,
    mode: KeyMode,
) -> Res<(Vec<Item>, Duration)> {
    let mut stored = Vec::with_capacity(items.len());
    let start = Instant::now();
    match side {
        Side::Custodian => {
            for item in items {
                stored.push(s.insert(item)?);
            }
        }
        Side::Diesel => {
            let conn = s.connection();
            for item in items {
                let id = diesel_insert(conn, &NewRow::from(&item), mode)?;
                stored.push(Item { id, ..item });
            }
        }
    }
    let elapsed = start.elapsed();
    Ok((black_box(stored), elapsed))
}

/// One pass of every operation on one side.
fn run_pass(db: &Db, side: Side, counts: &Counts, tag: &str, seed_max: i64) -> Res<Pass> {
    use model::bench_items as m;
    use plain::bench_items::dsl as t;

    let kind = db.backend_kind();
    let mut s = db.session()?;
    let mut pass = Pass::new();

    // Insert.
    let n = counts.get(Op::Insert);
    let items: Vec<Item> = (0..n).map(|i| sample(tag, i)).collect();
    let (stored, d) = run_insert(&mut s, side, items, KeyMode::Native)?;
    pass.push((Op::Insert, n, d));

    // Get by key, cycling through the inserted rows.
    let n = counts.get(Op::Get);
    let start = Instant::now();
    match side {
        Side::Custodian => {
            for i in 0..n {
                black_box(s.get::<Item>(&stored[i % stored.len()].id)?);
            }
        }
        Side::Diesel => {
            let conn = s.connection();
            for i in 0..n {
                let row: Row = t::bench_items
                    .find(stored[i % stored.len()].id)
                    .select(Row::as_select())
                    .first(conn)?;
                black_box(row);
            }
        }
    }
    pass.push((Op::Get, n, start.elapsed()));

    // Update by key.
    let n = counts.get(Op::Update);
    let mut changed: Vec<Item> = (0..n)
        .map(|i| {
            let mut item = stored[i % stored.len()].clone();
            change(
                tag,
                i,
                &mut item.title,
                &mut item.owner,
                &mut item.risk,
                &mut item.active,
            );
            item
        })
        .collect();
    let start = Instant::now();
    match side {
        Side::Custodian => {
            for item in &mut changed {
                s.update(item)?;
            }
        }
        Side::Diesel => {
            let conn = s.connection();
            for item in &changed {
                let n = diesel::update(t::bench_items.find(item.id))
                    .set(&Changes::from(item))
                    .execute(conn)?;
                expect_one("diesel update", n)?;
            }
        }
    }
    pass.push((Op::Update, n, start.elapsed()));

    // Delete by key: the rows inserted above.
    let n = counts.get(Op::Delete).min(stored.len());
    let start = Instant::now();
    match side {
        Side::Custodian => {
            for item in &stored[..n] {
                s.delete_by_key::<Item>(&item.id)?;
            }
        }
        Side::Diesel => {
            let conn = s.connection();
            for item in &stored[..n] {
                let n = diesel::delete(t::bench_items.find(item.id)).execute(conn)?;
                expect_one("diesel delete", n)?;
            }
        }
    }
    pass.push((Op::Delete, n, start.elapsed()));
    cleanup(&mut s, seed_max)?;

    // A filtered, ordered page of 100 seed rows.
    let n = counts.get(Op::Page);
    let start = Instant::now();
    for i in 0..n {
        let min_risk = (i % 50) as i32;
        let len = match side {
            Side::Custodian => {
                let rows: Vec<Item> = s.load(
                    Item::query()
                        .filter(m::active.eq(true))
                        .filter(m::risk.ge(min_risk))
                        .order(m::id.asc())
                        .limit(100),
                )?;
                black_box(rows).len()
            }
            Side::Diesel => {
                let rows: Vec<Row> = t::bench_items
                    .filter(t::active.eq(true))
                    .filter(t::risk.ge(min_risk))
                    .order(t::id.asc())
                    .limit(100)
                    .select(Row::as_select())
                    .load(s.connection())?;
                black_box(rows).len()
            }
        };
        if len != 100 {
            return Err(format!("page query returned {len} rows, expected 100").into());
        }
    }
    pass.push((Op::Page, n, start.elapsed()));

    // Bulk insert of 1,000 rows per operation.
    let n = counts.get(Op::Bulk);
    let mut rows: Vec<Item> = (0..1000).map(|i| sample(&format!("{tag}b"), i)).collect();
    let start = Instant::now();
    for _ in 0..n {
        let inserted = match side {
            Side::Custodian => s.insert_many(&mut rows)?,
            Side::Diesel => {
                let new: Vec<NewRow<'_>> = rows.iter().map(NewRow::from).collect();
                custodian::__private::run::execute(
                    s.connection(),
                    diesel::insert_into(t::bench_items).values(&new),
                )?
            }
        };
        if inserted != rows.len() {
            return Err(format!(
                "bulk insert stored {inserted} rows, expected {}",
                rows.len()
            )
            .into());
        }
    }
    pass.push((Op::Bulk, n, start.elapsed()));
    cleanup(&mut s, seed_max)?;

    // PostgreSQL: the diesel side reads the key with a second statement, as custodian does.
    if Op::InsertLastval.applies_to(kind) {
        let n = counts.get(Op::InsertLastval);
        let items: Vec<Item> = (0..n).map(|i| sample(&format!("{tag}l"), i)).collect();
        let (_, d) = run_insert(&mut s, side, items, KeyMode::Lastval)?;
        pass.push((Op::InsertLastval, n, d));
        cleanup(&mut s, seed_max)?;
    }
    Ok(pass)
}

/// The edit every update applies (the same on every side).
fn change(
    tag: &str,
    i: usize,
    title: &mut String,
    owner: &mut Option<String>,
    risk: &mut i32,
    active: &mut bool,
) {
    *title = format!("Updated item {tag} number {i}");
    *owner = Some(format!("reviewer-{}", i % 7));
    *risk = ((i * 11) % 100) as i32;
    *active = !*active;
}

/// Deletes every audited row above the seed (untimed). Their audit records stay: the trail is
/// append-only, as in production.
fn cleanup_audited(s: &mut Session, seed_max: i64) -> Res<()> {
    use plain::bench_items_audited::dsl::{bench_items_audited, id};
    diesel::delete(bench_items_audited.filter(id.gt(seed_max)))
        .execute(s.connection())
        .map_err(|e| format!("clean-up (audited): {e}"))?;
    Ok(())
}

/// One pass of the write operations on the audited entity: the same inputs and calls as the
/// custodian side of [`run_pass`], on `AuditedItem`.
fn run_audited_pass(db: &Db, counts: &Counts, tag: &str, seed_max: i64) -> Res<Pass> {
    let mut s = db.session()?;
    let mut pass = Pass::new();

    let n = counts.get(Op::Insert);
    let items: Vec<AuditedItem> = (0..n).map(|i| sample(tag, i).into()).collect();
    let mut stored = Vec::with_capacity(n);
    let start = Instant::now();
    for item in items {
        stored.push(s.insert(item)?);
    }
    pass.push((Op::Insert, n, start.elapsed()));
    let stored = black_box(stored);

    let n = counts.get(Op::Update);
    let mut changed: Vec<AuditedItem> = (0..n)
        .map(|i| {
            let mut item = stored[i % stored.len()].clone();
            change(
                tag,
                i,
                &mut item.title,
                &mut item.owner,
                &mut item.risk,
                &mut item.active,
            );
            item
        })
        .collect();
    let start = Instant::now();
    for item in &mut changed {
        s.update(item)?;
    }
    pass.push((Op::Update, n, start.elapsed()));

    let n = counts.get(Op::Delete).min(stored.len());
    let start = Instant::now();
    for item in &stored[..n] {
        s.delete_by_key::<AuditedItem>(&item.id)?;
    }
    pass.push((Op::Delete, n, start.elapsed()));
    cleanup_audited(&mut s, seed_max)?;

    let n = counts.get(Op::Bulk);
    let mut rows: Vec<AuditedItem> = (0..1000)
        .map(|i| sample(&format!("{tag}b"), i).into())
        .collect();
    let start = Instant::now();
    for _ in 0..n {
        let inserted = s.insert_many(&mut rows)?;
        if inserted != rows.len() {
            return Err(format!(
                "audited bulk insert stored {inserted} rows, expected {}",
                rows.len()
            )
            .into());
        }
    }
    pass.push((Op::Bulk, n, start.elapsed()));
    cleanup_audited(&mut s, seed_max)?;
    Ok(pass)
}

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
