//! The plain diesel side: its own `table!`s and structs for the same tables, concrete
//! connections (`PgConnection`, `MysqlConnection`, `SqliteConnection`) behind diesel's r2d2
//! pools, one checkout per operation.

use crate::{retry, sample_fields, Res, Rng};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

diesel::table! {
    peer_items (id) {
        id -> BigInt,
        code -> Text,
        title -> Text,
        owner -> Nullable<Text>,
        risk -> Integer,
        active -> Bool,
    }
}

diesel::table! {
    tpcb_accounts (aid) {
        aid -> Integer,
        bid -> Integer,
        abalance -> Integer,
        filler -> Text,
    }
}

diesel::table! {
    tpcb_tellers (tid) {
        tid -> Integer,
        bid -> Integer,
        tbalance -> Integer,
        filler -> Text,
    }
}

diesel::table! {
    tpcb_branches (bid) {
        bid -> Integer,
        bbalance -> Integer,
        filler -> Text,
    }
}

diesel::table! {
    tpcb_history (hid) {
        hid -> BigInt,
        tid -> Integer,
        bid -> Integer,
        aid -> Integer,
        delta -> Integer,
        filler -> Nullable<Text>,
    }
}

/// A loaded row.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = peer_items)]
#[allow(dead_code)] // read through `black_box` only
pub struct Row {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub owner: Option<String>,
    pub risk: i32,
    pub active: bool,
}

/// A row to insert and, with the key, to update (every non-key column, as custodian's update).
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = peer_items, treat_none_as_default_value = false, treat_none_as_null = true)]
pub struct NewRow<'a> {
    pub code: &'a str,
    pub title: &'a str,
    pub owner: Option<&'a str>,
    pub risk: i32,
    pub active: bool,
}

/// The pools, one per backend, each of its own connection type.
pub enum Pools {
    Pg(Pool<ConnectionManager<PgConnection>>),
    My(Pool<ConnectionManager<MysqlConnection>>),
    Lite(Pool<ConnectionManager<SqliteConnection>>),
}

/// SQLite as custodian opens it (WAL, synchronous NORMAL, foreign keys, the same busy
/// timeout), without custodian's `secure_delete` (a diesel user would not set it).
#[derive(Debug)]
struct LitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for LitePragmas {
    fn on_acquire(&self, c: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        c.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the pool of `size` connections (all opened up front, r2d2's defaults otherwise:
/// `test_on_check_out` on).
pub fn open(kind: crate::Kind, url: &str, size: u32) -> Res<Pools> {
    Ok(match kind {
        crate::Kind::Pg => Pools::Pg(
            Pool::builder()
                .max_size(size)
                .min_idle(Some(size))
                .build(ConnectionManager::new(url))?,
        ),
        crate::Kind::My => Pools::My(
            Pool::builder()
                .max_size(size)
                .min_idle(Some(size))
                .build(ConnectionManager::new(url))?,
        ),
        crate::Kind::Lite => Pools::Lite(
            Pool::builder()
                .max_size(size)
                .min_idle(Some(size))
                .connection_customizer(Box::new(LitePragmas))
                .build(ConnectionManager::new(url))?,
        ),
    })
}

/// The five statements of `tpcb-like` on the connection `$c`.
macro_rules! tpcb_statements {
    ($c:ident, $aid:expr, $tid:expr, $bid:expr, $delta:expr) => {{
        use tpcb_accounts::dsl as a;
        use tpcb_branches::dsl as b;
        use tpcb_history::dsl as h;
        use tpcb_tellers::dsl as t;
        diesel::update(a::tpcb_accounts.find($aid))
            .set(a::abalance.eq(a::abalance + $delta))
            .execute($c)?;
        let balance: i32 = a::tpcb_accounts.find($aid).select(a::abalance).first($c)?;
        std::hint::black_box(balance);
        diesel::update(t::tpcb_tellers.find($tid))
            .set(t::tbalance.eq(t::tbalance + $delta))
            .execute($c)?;
        diesel::update(b::tpcb_branches.find($bid))
            .set(b::bbalance.eq(b::bbalance + $delta))
            .execute($c)?;
        diesel::insert_into(h::tpcb_history)
            .values((
                h::tid.eq($tid),
                h::bid.eq($bid),
                h::aid.eq($aid),
                h::delta.eq($delta),
            ))
            .execute($c)?;
        QueryResult::Ok(())
    }};
}

/// Runs `$body` with `$c` a checked-out connection of the pool's concrete type.
macro_rules! with_conn {
    ($pools:expr, $c:ident => $body:expr) => {
        match $pools {
            Pools::Pg(p) => {
                let mut pooled = p.get()?;
                let $c: &mut PgConnection = &mut pooled;
                $body
            }
            Pools::My(p) => {
                let mut pooled = p.get()?;
                let $c: &mut MysqlConnection = &mut pooled;
                $body
            }
            Pools::Lite(p) => {
                let mut pooled = p.get()?;
                let $c: &mut SqliteConnection = &mut pooled;
                $body
            }
        }
    };
}

fn one(what: &str, n: usize) -> Res<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!("diesel {what}: {n} rows, expected 1").into())
    }
}

impl Pools {
    /// Inserts one row and returns its key: `RETURNING id` on PostgreSQL and SQLite,
    /// `SELECT LAST_INSERT_ID()` on the same connection on MariaDB.
    fn insert(&self, row: &NewRow<'_>) -> Res<i64> {
        use peer_items::dsl as t;
        Ok(match self {
            Pools::Pg(p) => diesel::insert_into(t::peer_items)
                .values(row)
                .returning(t::id)
                .get_result(&mut p.get()?)?,
            Pools::Lite(p) => diesel::insert_into(t::peer_items)
                .values(row)
                .returning(t::id)
                .get_result(&mut p.get()?)?,
            Pools::My(p) => {
                let c = &mut p.get()?;
                diesel::insert_into(t::peer_items).values(row).execute(c)?;
                diesel::define_sql_function! {
                    #[sql_name = "LAST_INSERT_ID"]
                    fn last_insert_id() -> diesel::sql_types::Unsigned<diesel::sql_types::BigInt>;
                }
                let key: u64 = diesel::select(last_insert_id()).get_result(c)?;
                i64::try_from(key)?
            }
        })
    }

    /// One CRUD cycle: insert, get by key, update, delete, each on its own checkout.
    pub fn crud(&self, tag: u64, i: u64) -> Res<()> {
        use peer_items::dsl as t;
        let (c0, t0, o0, r0, a0) = sample_fields(tag, i);
        let key = self.insert(&NewRow {
            code: &c0,
            title: &t0,
            owner: o0.as_deref(),
            risk: r0,
            active: a0,
        })?;
        let row: Row =
            with_conn!(self, c => t::peer_items.find(key).select(Row::as_select()).get_result(c)?);
        let t1 = format!("changed {i}");
        let changes = NewRow {
            code: &row.code,
            title: &t1,
            owner: row.owner.as_deref(),
            risk: (row.risk + 1) % 100,
            active: !row.active,
        };
        let n = with_conn!(self, c => diesel::update(t::peer_items.find(key)).set(&changes).execute(c)?);
        one("update", n)?;
        let n = with_conn!(self, c => diesel::delete(t::peer_items.find(key)).execute(c)?);
        one("delete", n)
    }

    /// A read by primary key on its own checkout. `get_result`, not `first`: `first` binds a
    /// `LIMIT`, and diesel's SQLite connection prepares such a statement again on every call
    /// (about 11 µs a read here, see `examples/sqlite_probe.rs`); custodian's find has no
    /// `LIMIT` either.
    pub fn get(&self, key: i64) -> Res<()> {
        use peer_items::dsl as t;
        let row: Row =
            with_conn!(self, c => t::peer_items.find(key).select(Row::as_select()).get_result(c)?);
        std::hint::black_box(row);
        Ok(())
    }

    /// pgbench's `tpcb-like` transaction, at the default isolation level (SQLite: `BEGIN
    /// IMMEDIATE`, as custodian's side), retried on a deadlock or serialization failure.
    pub fn tpcb(&self, rng: &mut Rng, scale: &crate::Scale) -> Res<()> {
        let (aid, tid, bid, delta) = rng.tpcb(scale);
        retry(|| {
            match self {
                Pools::Pg(p) => p
                    .get()?
                    .transaction(|c| tpcb_statements!(c, aid, tid, bid, delta))?,
                Pools::My(p) => p
                    .get()?
                    .transaction(|c| tpcb_statements!(c, aid, tid, bid, delta))?,
                Pools::Lite(p) => p
                    .get()?
                    .immediate_transaction(|c| tpcb_statements!(c, aid, tid, bid, delta))?,
            }
            Ok(())
        })
    }
}
