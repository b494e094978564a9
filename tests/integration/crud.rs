//! Insert, get, update, delete, queries, pages, counts and bulk inserts on every backend.

use crate::common::TestDb;
use crate::entities::*;
use custodian::prelude::*;
use custodian::{BackendKind, Error};

fn insert_get_update_delete(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let a = s.insert(Control::new("AC-1", 3)).unwrap();
    let b = s.insert(Control::new("AC-2", 5)).unwrap();
    assert!(
        a.id > 0 && b.id > a.id,
        "keys assigned by the database: {} {}",
        a.id,
        b.id
    );
    assert_eq!(s.get::<Control>(&a.id).unwrap(), a);

    let mut changed = a.clone();
    changed.title = "Access reviews".into();
    changed.owner = Some("alice".into());
    s.update(&mut changed).unwrap();
    assert_eq!(s.get::<Control>(&a.id).unwrap(), changed);
    // Updating to identical values still finds the row (MariaDB reports matched rows).
    s.update(&mut changed).unwrap();
    // None writes NULL.
    changed.owner = None;
    s.update(&mut changed).unwrap();
    assert_eq!(s.get::<Control>(&a.id).unwrap().owner, None);

    s.delete(&changed).unwrap();
    assert!(s.find::<Control>(&a.id).unwrap().is_none());
    assert!(matches!(
        s.get::<Control>(&a.id),
        Err(Error::NotFound {
            entity: "Control",
            ..
        })
    ));
    assert!(matches!(
        s.update(&mut changed),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(s.delete(&changed), Err(Error::NotFound { .. })));
    s.delete_by_key::<Control>(&b.id).unwrap();
    assert_eq!(s.count(controls::table.count()).unwrap(), 0);
}

fn query_order_page_count(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Control> = (0..25)
        .map(|i| Control::new(&format!("C-{i:02}"), i % 5))
        .collect();
    assert_eq!(s.insert_many(&mut rows).unwrap(), 25);

    let risky: Vec<Control> = s
        .load(
            Control::query()
                .filter(controls::risk.ge(3))
                .order(controls::code.desc()),
        )
        .unwrap();
    assert_eq!(risky.len(), 10);
    assert_eq!(risky[0].code, "C-24");
    assert!(risky.windows(2).all(|w| w[0].code > w[1].code));

    let page = |n: i64| -> Vec<String> {
        let mut s = db.session().unwrap();
        let rows: Vec<Control> = s
            .load(
                Control::query()
                    .order(controls::code.asc())
                    .limit(10)
                    .offset(n * 10),
            )
            .unwrap();
        rows.into_iter().map(|c| c.code).collect()
    };
    assert_eq!(page(0).first().map(String::as_str), Some("C-00"));
    assert_eq!(page(1).first().map(String::as_str), Some("C-10"));
    assert_eq!(page(2).len(), 5);
    assert!(page(3).is_empty());

    assert_eq!(
        s.count(controls::table.filter(controls::risk.eq(0)).count())
            .unwrap(),
        5
    );
    let first: Option<Control> = s
        .first(
            Control::query()
                .filter(controls::code.like("C-1%"))
                .order(controls::code),
        )
        .unwrap();
    assert_eq!(first.unwrap().code, "C-10");
    let none: Option<Control> = s
        .first(Control::query().filter(controls::code.eq("nope")))
        .unwrap();
    assert!(none.is_none());
    // Plain diesel selections work on the generated table too.
    let codes: Vec<String> = s
        .load(
            controls::table
                .select(controls::code)
                .filter(controls::owner.is_null())
                .order(controls::code)
                .limit(2),
        )
        .unwrap();
    assert_eq!(codes, ["C-00", "C-01"]);
}

fn bulk_insert_spans_statements_and_is_atomic(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    db.raw_sql(match db.kind {
        BackendKind::Mysql => {
            "ALTER TABLE controls MODIFY code VARCHAR(64) NOT NULL, ADD UNIQUE KEY code (code)"
        }
        _ => "CREATE UNIQUE INDEX controls_code ON controls (code)",
    });
    let mut s = db.session().unwrap();
    // 5 bound columns per row: 12 000 rows need several statements on every backend.
    let mut rows: Vec<Control> = (0..12_000)
        .map(|i| Control::new(&format!("B-{i}"), 1))
        .collect();
    assert_eq!(s.insert_many(&mut rows).unwrap(), 12_000);
    assert_eq!(s.count(controls::table.count()).unwrap(), 12_000);

    // A duplicate in the last statement rolls back the statements before it.
    let mut more: Vec<Control> = (0..12_000)
        .map(|i| Control::new(&format!("X-{i}"), 1))
        .collect();
    more.last_mut().unwrap().code = "B-7".into();
    let err = s.insert_many(&mut more).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(s.count(controls::table.count()).unwrap(), 12_000);
    assert_eq!(s.insert_many::<Control>(&mut []).unwrap(), 0);
}

fn composite_keys_renames_generated_and_skipped(db: &TestDb) {
    db.create_table::<Membership>().unwrap();
    let mut s = db.session().unwrap();
    let m = Membership {
        team: "audit".into(),
        member: 7,
        role: "lead".into(),
        created_at: None,
        scratch: vec!["not stored".into()],
    };
    let stored = s.insert(m.clone()).unwrap();
    // The generated column is filled by the database and read back; skipped fields default.
    assert!(stored.created_at.is_some(), "generated column read back");
    assert!(stored.scratch.is_empty());
    let key = ("audit".to_string(), 7);
    assert_eq!(s.get::<Membership>(&key).unwrap(), stored);
    assert!(s
        .find::<Membership>(&("audit".to_string(), 8))
        .unwrap()
        .is_none());

    let mut changed = stored.clone();
    changed.role = "member".into();
    s.update(&mut changed).unwrap();
    assert_eq!(s.get::<Membership>(&key).unwrap().role, "member");
    // The renamed column exists under its SQL name.
    let n = s
        .count(
            memberships::table
                .filter(memberships::role.eq("member"))
                .count(),
        )
        .unwrap();
    assert_eq!(n, 1);
    db.raw_sql("UPDATE memberships SET member_role = 'owner'");
    assert_eq!(s.get::<Membership>(&key).unwrap().role, "owner");
    s.delete_by_key::<Membership>(&key).unwrap();
    assert_eq!(s.count(memberships::table.count()).unwrap(), 0);
}

on_all_backends!(
    insert_get_update_delete,
    query_order_page_count,
    bulk_insert_spans_statements_and_is_atomic,
    composite_keys_renames_generated_and_skipped,
);
