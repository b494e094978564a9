//! What a read by key costs in round trips: through a fresh checkout (the pool tests the
//! connection first, as r2d2 does by default), custodian sends the server as many commands as
//! plain diesel does through its own r2d2 pool. On MariaDB counted by the server itself: the
//! connection's `Questions` plus `Com_stmt_prepare` (every command the server answers; a
//! `batch_execute` there is three: multi-statements switched on, the statement, switched off).
//! On every backend, also the statements diesel's instrumentation sees on the connection: on
//! PostgreSQL each is one round trip (cached prepared statements and simple queries alike).
//! PostgreSQL's own counters are no use here: `pg_stat_database.xact_commit` of the test
//! database, read after the statistics settled, went up by 54 and 47 for the two sides' 20
//! statements each, so it counts more than these connections' statements. An extra round trip per checkout or per read (a ping through
//! `batch_execute`, a transaction around a plain read) turns these red.

use crate::common::TestDb;
use crate::entities::Control;
use custodian::diesel::connection::{Instrumentation, InstrumentationEvent};
use custodian::diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use custodian::prelude::*;
use custodian::{AnyConnection, BackendKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

diesel::table! {
    controls (id) {
        id -> BigInt,
        code -> Text,
        title -> Text,
        owner -> Nullable<Text>,
        risk -> Integer,
        active -> Bool,
    }
}

/// The plain diesel side's row.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = controls)]
#[allow(dead_code)] // compared by key only
struct Row {
    id: i64,
    code: String,
    title: String,
    owner: Option<String>,
    risk: i32,
    active: bool,
}

/// Reads by key per measurement.
const READS: usize = 10;

/// A one-connection pool with one row; returns its key.
fn one_connection_with_a_row(db: &TestDb) -> (TestDb, i64) {
    let db = TestDb::with(db.kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
    });
    db.create_table::<Control>().unwrap();
    let key = db
        .session()
        .unwrap()
        .insert(Control::new("RT-1", 1))
        .unwrap()
        .id;
    (db, key)
}

/// A plain diesel pool of one connection on the same database, r2d2's defaults otherwise.
fn diesel_pool<C: R2D2Connection + 'static>(url: &str) -> Pool<ConnectionManager<C>> {
    Pool::builder()
        .max_size(1)
        .min_idle(Some(1))
        .build(ConnectionManager::new(url))
        .unwrap()
}

/// Counts the statements the connection's instrumentation reports, from now on.
fn counting(counter: &Arc<AtomicUsize>) -> impl Instrumentation {
    let seen = counter.clone();
    move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { .. } = event {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `READS` reads by key through custodian, each in a fresh session.
fn custodian_reads(db: &TestDb, key: i64) {
    for _ in 0..READS {
        let c = db.session().unwrap().get::<Control>(&key).unwrap();
        assert_eq!(c.id, key);
    }
}

/// `READS` reads by key through plain diesel, each on a fresh checkout of `$pool`.
macro_rules! diesel_reads {
    ($pool:expr, $key:expr) => {
        for _ in 0..READS {
            let row: Row = controls::table
                .find($key)
                .select(Row::as_select())
                .first(&mut $pool.get().unwrap())
                .unwrap();
            assert_eq!(row.id, $key);
        }
    };
}

/// Statements seen by instrumentation over the reads and the checkout that ends the count.
fn custodian_statements(db: &TestDb, key: i64) -> usize {
    let counter = Arc::new(AtomicUsize::new(0));
    db.session()
        .unwrap()
        .connection()
        .set_instrumentation(counting(&counter));
    custodian_reads(db, key);
    db.session()
        .unwrap()
        .connection()
        .set_instrumentation(None::<Box<dyn Instrumentation>>);
    counter.load(Ordering::SeqCst)
}

macro_rules! diesel_statements {
    ($pool:expr, $key:expr) => {{
        let counter = Arc::new(AtomicUsize::new(0));
        $pool.get().unwrap().set_instrumentation(counting(&counter));
        diesel_reads!($pool, $key);
        $pool
            .get()
            .unwrap()
            .set_instrumentation(None::<Box<dyn Instrumentation>>);
        counter.load(Ordering::SeqCst)
    }};
}

/// Commands the MariaDB server answered on this connection so far: statements (`Questions`,
/// which counts `COM_SET_OPTION` too) and prepares (`Com_stmt_prepare`).
fn mysql_answered(c: &mut diesel::MysqlConnection) -> i64 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT CAST(SUM(VARIABLE_VALUE) AS SIGNED) FROM information_schema.SESSION_STATUS \
         WHERE VARIABLE_NAME IN ('QUESTIONS', 'COM_STMT_PREPARE'))",
    ))
    .get_result(c)
    .unwrap()
}

fn custodian_answered(db: &TestDb) -> i64 {
    let mut s = db.session().unwrap();
    match s.connection() {
        AnyConnection::Mysql(c) => mysql_answered(c),
        other => panic!("not MariaDB: {other:?}"),
    }
}

fn a_read_by_key_costs_what_it_costs_in_diesel(db: &TestDb) {
    let (db, key) = one_connection_with_a_row(db);
    // Warm both sides' statement caches (the ping, the read).
    custodian_reads(&db, key);
    let sqlite_path;
    let (custodian, diesel) = match db.kind {
        BackendKind::Postgres => {
            // One round trip per statement: both sides' statements are cached prepared ones
            // (one exchange each) or simple queries.
            let pool = diesel_pool::<diesel::PgConnection>(&db.url);
            diesel_reads!(pool, key);
            let (c, d) = (
                custodian_statements(&db, key),
                diesel_statements!(pool, key),
            );
            (c as i64, d as i64)
        }
        BackendKind::Mysql => {
            let pool = diesel_pool::<diesel::MysqlConnection>(&db.url);
            diesel_reads!(pool, key);
            let statements = (
                custodian_statements(&db, key),
                diesel_statements!(pool, key),
            );
            assert_eq!(
                statements.0, statements.1,
                "statements sent for {READS} reads (custodian, diesel)"
            );
            let before = custodian_answered(&db);
            custodian_reads(&db, key);
            let custodian = custodian_answered(&db) - before;
            let before = mysql_answered(&mut pool.get().unwrap());
            diesel_reads!(pool, key);
            let diesel = mysql_answered(&mut pool.get().unwrap()) - before;
            (custodian, diesel)
        }
        _ => {
            sqlite_path = custodian::backends::sqlite::path_of(&db.url).to_string();
            let pool = diesel_pool::<diesel::SqliteConnection>(&sqlite_path);
            diesel_reads!(pool, key);
            let (c, d) = (
                custodian_statements(&db, key),
                diesel_statements!(pool, key),
            );
            (c as i64, d as i64)
        }
    };
    // Each side: a check of the connection and the read, per read.
    assert_eq!(
        custodian, diesel,
        "server commands for {READS} reads by key through fresh checkouts on {:?}: custodian \
         {custodian}, plain diesel {diesel}",
        db.kind
    );
    if db.kind != BackendKind::Mysql {
        // The reads' checks and reads, and the check of the checkout that ends the count.
        assert_eq!(custodian, 2 * READS as i64 + 1, "two statements per read");
    }
}

on_all_backends!(a_read_by_key_costs_what_it_costs_in_diesel);
