//! The timed operations: one pass of every operation on one side (custodian or diesel), and
//! the audited writes.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Get,
    Update,
    Delete,
    Page,
    Bulk,
    InsertLastval,
}

impl Op {
    pub(crate) const ALL: [Op; 7] = [
        Op::Insert,
        Op::Get,
        Op::Update,
        Op::Delete,
        Op::Page,
        Op::Bulk,
        Op::InsertLastval,
    ];

    pub(crate) fn label(self) -> &'static str {
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

    pub(crate) fn applies_to(self, kind: BackendKind) -> bool {
        self != Op::InsertLastval || kind == BackendKind::Postgres
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// custodian on the unaudited entity.
    Custodian,
    /// plain diesel on the same table.
    Diesel,
}

/// Who runs a pass in a round: [`run_pass`] with a side, or [`run_audited_pass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    Custodian = 0,
    Diesel = 1,
    /// custodian on the audited entity (write operations only).
    Audited = 2,
}

/// The operations the audited side runs: the writes (reads are not audited).
pub(crate) const AUDITED_OPS: [Op; 4] = [Op::Insert, Op::Update, Op::Delete, Op::Bulk];

/// Operations per kind for one pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts(pub(crate) [usize; 7]);

impl Counts {
    pub(crate) fn uniform(single: usize, bulk: usize) -> Counts {
        let mut c = [single; 7];
        c[Op::Bulk as usize] = bulk;
        Counts(c)
    }
    pub(crate) fn get(&self, op: Op) -> usize {
        self.0[op as usize]
    }
}

/// Time taken by `n` operations of each kind in one pass.
pub(crate) type Pass = Vec<(Op, usize, Duration)>;

/// How the diesel side learns the generated key of a single-row insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMode {
    /// PostgreSQL and SQLite: `RETURNING id` (the workspace enables diesel's
    /// `returning_clauses_for_sqlite_3_35`); MariaDB: `LAST_INSERT_ID()`.
    Native,
    /// PostgreSQL: a second statement `SELECT lastval()`, as custodian does.
    Lastval,
}

pub(crate) fn diesel_insert(
    conn: &mut AnyConnection,
    row: &NewRow<'_>,
    mode: KeyMode,
) -> QueryResult<i64> {
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

pub(crate) fn expect_one(what: &str, n: usize) -> Res<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!("{what}: {n} rows affected, expected 1").into())
    }
}

/// Deletes every row above the seed (untimed clean-up between operations).
pub(crate) fn cleanup(s: &mut Session, seed_max: i64) -> Res<()> {
    use plain::bench_items::dsl::{bench_items, id};
    diesel::delete(bench_items.filter(id.gt(seed_max)))
        .execute(s.connection())
        .map_err(|e| format!("clean-up: {e}"))?;
    Ok(())
}

/// Single-row inserts; returns the stored items (with their keys) and the time taken.
pub(crate) fn run_insert(
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
pub(crate) fn run_pass(
    db: &Db,
    side: Side,
    counts: &Counts,
    tag: &str,
    seed_max: i64,
) -> Res<Pass> {
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
                    .set(&NewRow::from(item))
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
pub(crate) fn change(
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
pub(crate) fn cleanup_audited(s: &mut Session, seed_max: i64) -> Res<()> {
    use plain::bench_items_audited::dsl::{bench_items_audited, id};
    diesel::delete(bench_items_audited.filter(id.gt(seed_max)))
        .execute(s.connection())
        .map_err(|e| format!("clean-up (audited): {e}"))?;
    Ok(())
}

/// One pass of the write operations on the audited entity: the same inputs and calls as the
/// custodian side of [`run_pass`], on `AuditedItem`.
pub(crate) fn run_audited_pass(db: &Db, counts: &Counts, tag: &str, seed_max: i64) -> Res<Pass> {
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
