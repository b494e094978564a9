//! What one audited write costs in statements, in autocommit on a checked-out session, against
//! its floor: an audited write is its own transaction (`BEGIN` .. `COMMIT`), the write itself
//! (which returns the row the record needs, where the backend can), and the insert of its
//! sealed record. The record's seal covers the images the database produced, so it cannot be
//! computed before the write returns and cannot go into the write's own statement (that would
//! need the seal key on the server); on PostgreSQL with `audit.records_with_commit` it goes with
//! `COMMIT`, in one round trip. Any statement above that floor turns this red.

use crate::common::TestDb;
use custodian::DatabaseConfig;

/// Runs `f` and returns the SQL of every statement it sent, as the application's default
/// instrumentation sees them: custodian's probe stays on the connection (with what it keeps per
/// connection) and forwards them. The session must be of a [`fresh`] database.
fn statements<R>(s: &mut Session, f: impl FnOnce(&mut Session) -> R) -> (R, Vec<String>) {
    let mut out = None;
    let seen = crate::instrumentation_chain::seen_during(|| out = Some(f(s)));
    let seen = seen
        .iter()
        .map(|sql| sql.split(" -- binds").next().unwrap_or("").to_string())
        .collect();
    (out.expect("`f` ran"), seen)
}

/// A database of `kind` whose connections carry the default instrumentation [`statements`]
/// reads (connections opened after it was installed do).
fn fresh(kind: BackendKind, tweak: impl FnOnce(&mut DatabaseConfig)) -> TestDb {
    crate::instrumentation_chain::install();
    TestDb::with(kind, tweak)
}
use crate::entities::Control;
use custodian::prelude::*;
use custodian::BackendKind;

/// The statements of one audited insert, update and delete by key, each in autocommit, and
/// their floor per backend:
/// - PostgreSQL: 4 each. `BEGIN`; the write, which returns what the record needs (the key of
///   an insert, the old row of an update through its locking sub-select, the removed row of a
///   delete); the record; `COMMIT`.
/// - MariaDB (default, `RETURNING` not used): 5 each. The insert asks `LAST_INSERT_ID()`
///   (diesel does not expose the OK packet's insert id); an update or delete reads its before
///   image under a row lock first (one read less when the transaction already read the row:
///   not the case here).
/// - SQLite: 4, 5, 4. `RETURNING` gives an update only the new row, so the old one is read
///   first; SQLite runs in process, so a statement there is no round trip.
fn an_audited_write_costs_its_floor(db: &TestDb) {
    let floor = match db.kind {
        BackendKind::Postgres => [4, 4, 4],
        BackendKind::Mysql => [5, 5, 5],
        _ => [4, 5, 4],
    };
    audited_writes_cost(&fresh(db.kind, |_| {}), floor);
}

on_all_backends!(an_audited_write_costs_its_floor);

/// PostgreSQL with `audit.records_with_commit` switched on: 3 each, the record sent with
/// `COMMIT` in one round trip.
#[test]
fn postgres_with_records_with_commit_saves_a_round_trip_per_transaction() {
    let db = TestDb::with(BackendKind::Postgres, |c| {
        c.audit.records_with_commit = true
    });
    audited_writes_cost(&db, [3, 3, 3]);
}

/// MariaDB 10.5+ with `session.mariadb_returning` switched on: 4, 5, 4. The insert returns its
/// key and the delete the removed row (`RETURNING`); an update has no `RETURNING` there.
#[test]
fn mariadb_with_returning_saves_a_statement_per_insert_and_delete() {
    let db = fresh(BackendKind::Mysql, |c| c.session.mariadb_returning = true);
    audited_writes_cost(&db, [4, 5, 4]);
}

/// Checks the statements of an audited insert, update and delete by key against `floor`.
fn audited_writes_cost(db: &TestDb, floor: [usize; 3]) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    // The first writes of a session may set it up (its server session id) and the first run
    // of a statement on a connection may cost more (MariaDB describes a `RETURNING`
    // statement's rows only once it ran): one of each first.
    let warm = s.insert(Control::new("warm", 1)).unwrap();
    s.delete(&warm).unwrap();
    let (c, insert) = statements(&mut s, |s| s.insert(Control::new("c1", 1)));
    let mut c = c.unwrap();
    c.risk = 5;
    let (r, update) = statements(&mut s, |s| s.update(&mut c));
    r.unwrap();
    let (r, delete) = statements(&mut s, |s| s.delete(&c));
    r.unwrap();
    for ((op, sent), floor) in [
        ("insert", &insert),
        ("update", &update),
        ("delete", &delete),
    ]
    .into_iter()
    .zip(floor)
    {
        assert_eq!(sent.len(), floor, "{} {op}: {sent:#?}", db.kind);
        let records = sent
            .iter()
            .filter(|q| q.contains("custodian_audit"))
            .count();
        assert_eq!(records, 1, "{} {op}: one record insert: {sent:#?}", db.kind);
        assert!(
            sent[0].starts_with("BEGIN") || sent[0].starts_with("START TRANSACTION"),
            "{} {op}: {sent:#?}",
            db.kind
        );
        let last = &sent[sent.len() - 1];
        match db.kind {
            BackendKind::Postgres if db.config().audit.records_with_commit => assert!(
                last.starts_with("INSERT INTO \"custodian_audit\"") && last.ends_with("; COMMIT"),
                "{} {op}: the record goes with COMMIT: {last}",
                db.kind
            ),
            _ => assert_eq!(last, "COMMIT", "{} {op}", db.kind),
        }
    }
}

/// An unaudited entity with an auto-increment key.
#[entity(table = "plain_controls", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct PlainControl {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
}

/// An unaudited insert in autocommit is one statement, as plain diesel's is, and still returns
/// the row with the key the database assigned: PostgreSQL and SQLite return it from the insert
/// (`RETURNING`); MariaDB asks `LAST_INSERT_ID()` after it (two statements) unless
/// `session.mariadb_returning` is on.
fn an_unaudited_insert_learns_its_key(db: &TestDb) {
    let expected = match db.kind {
        BackendKind::Mysql => 2,
        _ => 1,
    };
    unaudited_insert_costs(&fresh(db.kind, |_| {}), expected);
}

on_all_backends!(an_unaudited_insert_learns_its_key);

/// [`an_unaudited_insert_learns_its_key`] with MariaDB's `RETURNING` switched on: one.
#[test]
fn mariadb_with_returning_inserts_unaudited_in_one_statement() {
    let db = fresh(BackendKind::Mysql, |c| c.session.mariadb_returning = true);
    unaudited_insert_costs(&db, 1);
}

fn unaudited_insert_costs(db: &TestDb, expected: usize) {
    db.create_table::<PlainControl>().unwrap();
    let mut s = db.session().unwrap();
    let first = s
        .insert(PlainControl {
            id: 0,
            code: "warm".into(),
        })
        .unwrap();
    let (p, sent) = statements(&mut s, |s| {
        s.insert(PlainControl {
            id: 0,
            code: "p1".into(),
        })
    });
    let p = p.unwrap();
    assert_eq!(sent.len(), expected, "{}: {sent:#?}", db.kind);
    assert!(p.id > first.id, "{}: {} after {}", db.kind, p.id, first.id);
    let found: PlainControl = s.get(&p.id).unwrap();
    assert_eq!(found.code, "p1", "{}", db.kind);
}

/// The floor holds for a session per write (a request handler's pattern), not only within one
/// session: what a connection's first audited write asks once (its server session name) is
/// kept with the pooled connection, so a later session on it asks nothing more. One pooled
/// connection, so every session gets the same one; the statements are seen through the
/// application's default instrumentation, which leaves custodian's probe in place.
fn a_session_per_write_costs_the_floor(db: &TestDb) {
    let floor = match db.kind {
        BackendKind::Postgres => [4, 4, 4],
        BackendKind::Mysql => [5, 5, 5],
        _ => [4, 5, 4],
    };
    crate::instrumentation_chain::install();
    let db = TestDb::with(db.kind, |c| c.pool.max_size = 1);
    db.create_table::<Control>().unwrap();
    {
        let mut s = db.session().unwrap();
        let warm = s.insert(Control::new("warm", 1)).unwrap();
        s.delete(&warm).unwrap();
    }
    let mut s = db.session().unwrap();
    let mut inserted = None;
    let insert = crate::instrumentation_chain::seen_during(|| {
        inserted = Some(s.insert(Control::new("c1", 1)).unwrap());
    });
    drop(s);
    let mut c = inserted.unwrap();
    c.risk = 5;
    let mut s = db.session().unwrap();
    let update = crate::instrumentation_chain::seen_during(|| s.update(&mut c).unwrap());
    drop(s);
    let mut s = db.session().unwrap();
    let delete = crate::instrumentation_chain::seen_during(|| s.delete(&c).unwrap());
    for ((op, sent), floor) in [("insert", insert), ("update", update), ("delete", delete)]
        .into_iter()
        .zip(floor)
    {
        assert_eq!(
            sent.len(),
            floor,
            "{} {op} in a new session: {sent:#?}",
            db.kind
        );
    }
}

on_all_backends!(a_session_per_write_costs_the_floor);
