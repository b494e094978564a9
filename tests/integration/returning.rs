//! Writes that learn from the statement itself what they would otherwise ask for (`INSERT …
//! RETURNING` its key, `DELETE … RETURNING` the removed row, the audit record's before image)
//! learn the right thing on a connection's first run of the statement and on every later one.
//! MariaDB describes a `RETURNING` statement's rows only once it ran on the connection, so
//! there the first run takes another way (`LAST_INSERT_ID()`, a locking read) than the later
//! ones; with `RETURNING` switched off every run does.

use crate::common::TestDb;
use crate::entities::Control;
use custodian::BackendKind;

/// Rows written per scenario: the first is the connection's first run of each statement.
const ROWS: usize = 3;

/// On one connection: `ROWS` audited inserts, each row's key checked against the row the
/// database holds under it; updates; then deletes, each checked gone and recorded with the row
/// as it was just before (the update's values).
fn keys_and_before_images_are_right_on_first_and_later_runs(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows = Vec::new();
    for i in 0..ROWS {
        let c = s.insert(Control::new(&format!("R-{i}"), 1)).unwrap();
        let stored: Control = s.get(&c.id).unwrap();
        assert_eq!(
            stored, c,
            "{} insert {i}: the key names the inserted row",
            db.kind
        );
        rows.push(c);
    }
    let keys: std::collections::BTreeSet<i64> = rows.iter().map(|c| c.id).collect();
    assert_eq!(keys.len(), ROWS, "{}: distinct keys {keys:?}", db.kind);
    for (i, c) in rows.iter_mut().enumerate() {
        c.risk = 10 + i as i32;
        s.update(c).unwrap();
    }
    for (i, c) in rows.iter().enumerate() {
        s.delete(c).unwrap();
        assert_eq!(
            s.find::<Control>(&c.id).unwrap(),
            None,
            "{} delete {i}",
            db.kind
        );
        let versions = s.history::<Control>(&c.id).unwrap();
        let last = &versions.last().expect("a recorded delete").record;
        assert_eq!(last.op, "delete", "{} delete {i}", db.kind);
        let before = last.before_json().unwrap();
        assert_eq!(before["id"], c.id, "{} delete {i}: {before}", db.kind);
        assert_eq!(before["code"], c.code.as_str(), "{} delete {i}", db.kind);
        assert_eq!(before["risk"], 10 + i as i64, "{} delete {i}", db.kind);
        assert_eq!(last.after, None, "{} delete {i}", db.kind);
    }
    drop(s);
    assert!(db.verify_audit(None).unwrap().is_intact(), "{}", db.kind);
}

/// One connection, so that every write after the first reuses the statements it prepared.
fn one_connection(kind: BackendKind, returning: bool) -> TestDb {
    TestDb::with(kind, |c| {
        c.pool.max_size = 1;
        c.pool.min_idle = Some(1);
        c.session.mariadb_returning = returning;
    })
}

#[test]
fn postgres() {
    keys_and_before_images_are_right_on_first_and_later_runs(&one_connection(
        BackendKind::Postgres,
        true,
    ));
}

#[test]
fn mariadb() {
    keys_and_before_images_are_right_on_first_and_later_runs(&one_connection(
        BackendKind::Mysql,
        true,
    ));
}

#[test]
fn mariadb_without_returning() {
    keys_and_before_images_are_right_on_first_and_later_runs(&one_connection(
        BackendKind::Mysql,
        false,
    ));
}

#[test]
fn sqlite() {
    keys_and_before_images_are_right_on_first_and_later_runs(&one_connection(
        BackendKind::Sqlite,
        true,
    ));
}

/// An audited entity with a unique column, to make an insert fail.
#[custodian::entity(table = "ret_codes")]
#[derive(Debug, Clone, PartialEq)]
pub struct Coded {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique)]
    pub code: String,
}

/// MariaDB with `RETURNING` on: when the first run of the insert on a connection fails (a
/// duplicate key), the session's next insert still completes, with the right key. MariaDB's
/// next run of that same prepared statement would never return, so the connection must be
/// replaced: the next insert runs on a thread and must answer within a minute.
#[test]
fn mariadb_a_failed_first_run_does_not_hang_the_next_insert() {
    let db = one_connection(BackendKind::Mysql, true);
    db.create_table::<Coded>().unwrap();
    // On another connection, so that the session's first run of the insert is the failing one.
    db.raw_sql("INSERT INTO ret_codes (code) VALUES ('A')");
    let mut s = db.session().unwrap();
    let dup = s.insert(Coded {
        id: 0,
        code: "A".into(),
    });
    assert!(
        matches!(dup, Err(custodian::Error::Conflict { .. })),
        "{dup:?}"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let inserted = s.insert(Coded {
            id: 0,
            code: "B".into(),
        });
        let found = inserted
            .as_ref()
            .ok()
            .map(|c| s.get::<Coded>(&c.id).map(|f| f.code));
        let _ = tx.send((inserted, found));
    });
    let (inserted, found) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the insert after a failed first run returns");
    let inserted = inserted.unwrap();
    assert_eq!(found.unwrap().unwrap(), "B", "key {}", inserted.id);
}
