//! How audited writes get their images, on every backend: bulk inserts of auto-increment
//! entities learn every row's key in multi-row statements (even with another writer inserting
//! at the same time), an update's before image is the row it actually replaced (under
//! concurrent updates of one row), and deletes, purges, stale versions and missing rows record
//! exactly what happened.

use crate::common::{count_statements, TestDb};
use crate::entities::{Control, Counter};
use crate::model::Policy;
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::Error;
use std::collections::HashMap;

/// (id, entity, key, op, before, after) of every record, in id order.
type Row = (i64, String, String, String, Option<String>, Option<String>);

fn trail(s: &mut Session) -> Vec<Row> {
    s.load(a::table.order(a::id).select((
        a::id,
        a::entity,
        a::entity_key,
        a::op,
        a::before_image,
        a::after_image,
    )))
    .unwrap()
}

fn json(image: &Option<String>) -> serde_json::Value {
    serde_json::from_str(image.as_deref().expect("an image")).unwrap()
}

/// Two writers bulk-insert controls at once; every row learns the key the database gave it,
/// and every insert record names that key with that row's image.
fn bulk_insert_learns_every_key(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    // Keys do not start at 1.
    s.insert(Control::new("first", 1)).unwrap();
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tag| {
            let db = (*db).clone();
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                let mut mine = Vec::new();
                for batch in 0..5 {
                    let mut rows: Vec<Control> = (0..300)
                        .map(|i| Control::new(&format!("{tag}-{batch}-{i}"), i % 5))
                        .collect();
                    assert_eq!(s.insert_many(&mut rows).unwrap(), 300);
                    mine.extend(rows);
                }
                mine
            })
        })
        .collect();
    let mut inserted: Vec<Control> = Vec::new();
    for w in writers {
        inserted.extend(w.join().unwrap());
    }
    assert_eq!(inserted.len(), 3000);

    let stored: HashMap<i64, Control> = s
        .select(Control::query())
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    assert_eq!(stored.len(), 3001);
    for c in &inserted {
        assert_eq!(
            stored.get(&c.id),
            Some(c),
            "row {} got the key of another",
            c.code
        );
    }
    let records: HashMap<String, serde_json::Value> = trail(&mut s)
        .into_iter()
        .filter(|r| r.3 == "insert")
        .map(|r| (r.2.clone(), json(&r.5)))
        .collect();
    assert_eq!(
        records.len(),
        3001,
        "one insert record per row, keys distinct"
    );
    for c in &inserted {
        let after = &records[&format!("[{}]", c.id)];
        assert_eq!(after["code"], c.code.as_str());
        assert_eq!(after["id"], c.id);
    }
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Two writers update one row without optimistic locking (lost updates are possible, as
/// plain SQL would allow): each record's before image is the row its update replaced, so the
/// records form one unbroken sequence of values, and the last after image is the live row.
fn update_before_image_is_the_replaced_row(db: &TestDb) {
    db.create_table::<Counter>().unwrap();
    let mut s = db.session().unwrap();
    s.insert(Counter {
        name: "c".into(),
        value: 0,
    })
    .unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let db = (*db).clone();
            std::thread::spawn(move || {
                let mut s = db.session().unwrap();
                // Read-modify-write: on SQLite, IMMEDIATE takes the write lock at BEGIN, so the
                // two writers queue on busy_timeout; deferred, a loaded machine can exhaust the
                // retries on stale snapshots (no effect on the servers).
                let options = custodian::TxOptions::new().immediate();
                for i in 0..40 {
                    s.transaction_with(&options, |tx| {
                        let mut c = tx.get::<Counter>(&"c".to_string())?;
                        c.value = c.value * 10 + w + 1 + i % 3;
                        c.value %= 1_000_000_007;
                        tx.update(&mut c)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let updates: Vec<Row> = trail(&mut s)
        .into_iter()
        .filter(|r| r.3 == "update")
        .collect();
    assert_eq!(updates.len(), 80);
    for pair in updates.windows(2) {
        assert_eq!(
            json(&pair[1].4),
            json(&pair[0].5),
            "record {} replaced what record {} wrote",
            pair[1].0,
            pair[0].0
        );
    }
    let live = s.get::<Counter>(&"c".to_string()).unwrap();
    assert_eq!(json(&updates[79].5)["value"], live.value);
    assert_eq!(json(&updates[0].4)["value"], 0);
    assert!(db.verify_audit(None).unwrap().is_intact());
}

/// Deletes and purges record the removed row; a stale version, an update of a deleted row and
/// a delete of a missing row change nothing and record nothing.
fn deletes_and_misses_record_what_happened(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();

    let mut c = s.insert(Control::new("gone", 4)).unwrap();
    c.owner = Some("ops".into());
    s.update(&mut c).unwrap();
    s.delete(&c).unwrap();
    let before_miss = trail(&mut s).len();
    assert!(matches!(
        s.delete_by_key::<Control>(&c.id),
        Err(Error::NotFound { .. })
    ));
    let mut ghost = c.clone();
    assert!(matches!(s.update(&mut ghost), Err(Error::NotFound { .. })));
    assert_eq!(trail(&mut s).len(), before_miss, "misses record nothing");
    let rs = trail(&mut s);
    let delete = rs.iter().find(|r| r.3 == "delete").unwrap();
    assert_eq!(delete.2, format!("[{}]", c.id));
    assert_eq!(json(&delete.4)["owner"], "ops");
    assert_eq!(json(&delete.4)["risk"], 4);
    assert_eq!(delete.5, None);

    // A versioned, soft-deleted entity: stale version, update after soft delete, purge.
    let mut p = s.insert(Policy::new("POL-1")).unwrap();
    let mut stale = p.clone();
    p.title = "Policy one, revised".into();
    s.update(&mut p).unwrap();
    let before_stale = trail(&mut s).len();
    stale.title = "lost".into();
    assert!(matches!(s.update(&mut stale), Err(Error::Conflict { .. })));
    assert_eq!(
        trail(&mut s).len(),
        before_stale,
        "a stale version records nothing"
    );
    let update = trail(&mut s).pop().unwrap();
    assert_eq!(update.3, "update");
    assert_eq!(json(&update.4)["title"], "Policy POL-1");
    assert_eq!(json(&update.4)["version"], 1);
    assert_eq!(json(&update.5)["title"], "Policy one, revised");
    assert_eq!(json(&update.5)["version"], 2);

    s.delete(&p).unwrap();
    let mut deleted = p.clone();
    deleted.title = "after delete".into();
    assert!(matches!(
        s.update(&mut deleted),
        Err(Error::NotFound { .. } | Error::Conflict { .. })
    ));
    s.purge_by_key::<Policy>(&p.id).unwrap();
    let rs = trail(&mut s);
    let ops: Vec<&str> = rs[rs.len() - 2..].iter().map(|r| r.3.as_str()).collect();
    assert_eq!(ops, ["delete", "purge"]);
    let purge = rs.last().unwrap();
    assert!(
        !json(&purge.4)["deleted_at"].is_null(),
        "the purge's before image is the soft-deleted row"
    );
    assert_eq!(json(&purge.4)["title"], "Policy one, revised");
    assert_eq!(purge.5, None);
    assert!(s.find_with_deleted::<Policy>(&p.id).unwrap().is_none());
    assert!(db.verify_audit(None).unwrap().is_intact());
}

on_all_backends!(
    bulk_insert_learns_every_key,
    update_before_image_is_the_replaced_row,
    deletes_and_misses_record_what_happened,
);

/// A row read in a transaction and changed outside custodian before custodian updates it: the
/// update's before image is the row it replaced, not the earlier read, whatever changed (a
/// number, only the case of a text under a case-insensitive collation, a value to NULL).
fn guarded_update_sees_changes_after_the_read(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    if db.kind == custodian::BackendKind::Mysql {
        // custodian creates text columns with a binary collation; many existing tables are not.
        s.execute_sql(
            "ALTER TABLE controls MODIFY owner TEXT CHARACTER SET utf8mb4 \
             COLLATE utf8mb4_general_ci NULL",
        )
        .unwrap();
    }
    let mut c = Control::new("guard", 1);
    c.owner = Some("ops".into());
    let c = s.insert(c).unwrap();
    let id = c.id;
    let changes = [
        ("risk = 9", "risk", serde_json::json!(9)),
        ("owner = 'OPS'", "owner", serde_json::json!("OPS")),
        ("owner = NULL", "owner", serde_json::Value::Null),
        ("", "owner", serde_json::json!("ops")),
    ];
    for (i, (sql, column, expected)) in changes.into_iter().enumerate() {
        let title = format!("title {i}");
        let mut read = None;
        s.transaction(|tx| {
            let mut x = tx.get::<Control>(&id)?;
            read = Some(x.clone());
            if !sql.is_empty() {
                tx.execute_sql(&format!("UPDATE controls SET {sql} WHERE id = {id}"))?;
            }
            x.title = title.clone();
            tx.update(&mut x)
        })
        .unwrap();
        let last = trail(&mut s).pop().unwrap();
        assert_eq!(last.3, "update");
        let before = json(&last.4);
        assert_eq!(
            before[column], expected,
            "change {i} ({sql}) is in the before image"
        );
        assert_eq!(before["title"], read.unwrap().title.as_str());
        assert_eq!(json(&last.5)["title"], title.as_str());
    }
}

on_all_backends!(guarded_update_sees_changes_after_the_read);

/// An audited entity whose columns the database fills: each row of a bulk insert is its own
/// `DEFAULT VALUES` statement, and still learns its own key.
#[entity(table = "tickets")]
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(generated)]
    pub opened_at: Option<chrono::NaiveDateTime>,
}

fn bulk_insert_of_default_rows_learns_every_key(db: &TestDb) {
    db.create_table::<Ticket>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows = vec![
        Ticket {
            id: 0,
            opened_at: None,
        };
        5
    ];
    assert_eq!(s.insert_many(&mut rows).unwrap(), 5);
    let mut ids: Vec<i64> = rows.iter().map(|t| t.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "five distinct keys: {ids:?}");
    let stored: Vec<i64> = s
        .select(Ticket::query())
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let mut stored_sorted = stored;
    stored_sorted.sort_unstable();
    assert_eq!(sorted, stored_sorted);
    let keys: Vec<String> = trail(&mut s).into_iter().map(|r| r.2).collect();
    assert_eq!(
        keys,
        ids.iter().map(|id| format!("[{id}]")).collect::<Vec<_>>(),
        "each record names its row's key"
    );
}

on_all_backends!(bulk_insert_of_default_rows_learns_every_key);

/// A bulk update naming one row twice, and rows whose before images must be the stored rows:
/// the second update of the row replaces what the first wrote.
fn bulk_update_before_images(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Control> = (0..4)
        .map(|i| s.insert(Control::new(&format!("bulk-{i}"), i)).unwrap())
        .collect();
    let mut first = rows[0].clone();
    first.title = "first pass".into();
    let mut again = rows[0].clone();
    again.title = "second pass".into();
    for r in rows.iter_mut().skip(1) {
        r.risk += 10;
    }
    let mut batch = vec![first];
    batch.extend(rows[1..].iter().cloned());
    batch.push(again);
    assert_eq!(s.update_many(&mut batch).unwrap(), 5);
    let updates: Vec<Row> = trail(&mut s)
        .into_iter()
        .filter(|r| r.3 == "update")
        .collect();
    assert_eq!(updates.len(), 5);
    assert_eq!(json(&updates[0].4)["title"], "Control bulk-0");
    assert_eq!(json(&updates[0].5)["title"], "first pass");
    for (i, u) in updates[1..4].iter().enumerate() {
        assert_eq!(json(&u.4)["risk"], i as i64 + 1);
        assert_eq!(json(&u.5)["risk"], i as i64 + 11);
    }
    assert_eq!(
        json(&updates[4].4)["title"],
        "first pass",
        "replaced the first pass"
    );
    assert_eq!(json(&updates[4].5)["title"], "second pass");
    assert!(db.verify_audit(None).unwrap().is_intact());
}

on_all_backends!(bulk_update_before_images);

/// How many statements each audited write sends, per backend, inside a transaction (its
/// records go in with the transaction's others at commit): the before image comes from the
/// write itself where the backend allows it. A regression here is a slower audit trail.
fn audited_writes_send_few_statements(db: &TestDb) {
    use custodian::BackendKind::{Mysql, Postgres};
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let mut warm: Vec<Control> = (0..3).map(|i| Control::new(&format!("w{i}"), i)).collect();
    s.insert_many(&mut warm).unwrap(); // MariaDB asks its auto-increment settings once per Db
    let kind = db.kind;
    let expect = |pg: usize, my: usize, lite: usize| match kind {
        Postgres => pg,
        Mysql => my,
        _ => lite,
    };
    let id = warm[0].id;
    s.transaction(|tx| {
        let mut read = tx.get::<Control>(&id)?;
        read.title = "after a read".into();
        let (r, n) = count_statements(tx, |tx| tx.update(&mut read));
        r?;
        assert_eq!(
            n,
            expect(1, 1, 2),
            "update of a row read in the transaction"
        );

        let mut blind = warm[1].clone();
        blind.title = "without a read".into();
        let (r, n) = count_statements(tx, |tx| tx.update(&mut blind));
        r?;
        assert_eq!(n, expect(1, 2, 2), "update of a row not read before");

        let mut rows: Vec<Control> = (0..10).map(|i| Control::new(&format!("b{i}"), i)).collect();
        let (r, n) = count_statements(tx, |tx| tx.insert_many(&mut rows));
        r?;
        assert_eq!(n, expect(1, 2, 1), "bulk insert learning 10 keys");

        for r in rows.iter_mut() {
            r.risk += 1;
        }
        let (r, n) = count_statements(tx, |tx| tx.update_many(&mut rows));
        r?;
        assert_eq!(n, expect(10, 11, 20), "bulk update of 10 rows");

        let (r, n) = count_statements(tx, |tx| tx.delete(&rows[0]));
        r?;
        assert_eq!(n, expect(1, 2, 1), "delete");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        trail(&mut s).len(),
        3 + 2 + 10 + 10 + 1,
        "every write recorded"
    );
}

on_all_backends!(audited_writes_send_few_statements);
