//! What one audited write costs in statements, in autocommit on a checked-out session, against
//! its floor: an audited write is its own transaction (`BEGIN` .. `COMMIT`), the write itself
//! (which returns the row the record needs, where the backend can), and the insert of its
//! sealed record. The record's seal covers the images the database produced, so it cannot be
//! computed before the write returns and cannot go into the write's own statement (that would
//! need the seal key on the server). Any statement above that floor turns this red.

use crate::common::TestDb;
use custodian::diesel::connection::{Instrumentation, InstrumentationEvent};
use std::sync::{Arc, Mutex};

/// Runs `f` and returns the SQL of every statement it sent on the session's connection.
fn statements<R>(s: &mut Session, f: impl FnOnce(&mut Session) -> R) -> (R, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    s.connection()
        .set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let sql = query.to_string();
                let sql = sql.split(" -- binds").next().unwrap_or("").to_string();
                sink.lock().unwrap().push(sql);
            }
        });
    let out = f(s);
    s.connection()
        .set_instrumentation(None::<Box<dyn Instrumentation>>);
    let seen = seen.lock().unwrap().clone();
    (out, seen)
}
use crate::entities::Control;
use custodian::prelude::*;
use custodian::BackendKind;

/// The statements of one audited insert, update and delete by key, each in autocommit, and
/// their floor per backend:
/// - PostgreSQL: 4 each. `BEGIN`; the write, which returns what the record needs (the key of
///   an insert, the old row of an update through its locking sub-select, the removed row of a
///   delete); the record; `COMMIT`.
/// - MariaDB: 5 each. No `RETURNING`: an insert asks `LAST_INSERT_ID()` (diesel does not expose
///   the OK packet's insert id), an update or delete reads its before image under a row lock
///   first (one read less when the transaction already read the row: not the case here).
/// - SQLite: 4, 5, 4. `RETURNING` gives an update only the new row, so the old one is read
///   first; SQLite runs in process, so a statement there is no round trip.
fn an_audited_write_costs_its_floor(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    // The first write of a session may set the session up (its server session id).
    s.insert(Control::new("warm", 1)).unwrap();
    let (c, insert) = statements(&mut s, |s| s.insert(Control::new("c1", 1)));
    let mut c = c.unwrap();
    c.risk = 5;
    let (r, update) = statements(&mut s, |s| s.update(&mut c));
    r.unwrap();
    let (r, delete) = statements(&mut s, |s| s.delete(&c));
    r.unwrap();
    let floor = match db.kind {
        BackendKind::Postgres => [4, 4, 4],
        BackendKind::Mysql => [5, 5, 5],
        _ => [4, 5, 4],
    };
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
        assert_eq!(sent[sent.len() - 1], "COMMIT", "{} {op}", db.kind);
    }
}

on_all_backends!(an_audited_write_costs_its_floor);
