//! Validation on every backend: each validator rule rejects bad data with the right field
//! error and nothing written, bulk writes are all or nothing, and database rejections come back
//! in the same field-keyed shape.

use crate::common::TestDb;
use crate::model::*;
use custodian::prelude::*;
use custodian::Error;

fn rejected(err: Error) -> (String, String) {
    let Error::Validation(v) = &err else {
        panic!("expected Validation, got {err:?}")
    };
    let (field, errs) = v.fields.iter().next().expect("one field");
    (field.clone(), errs[0].code.clone())
}

fn every_rule_rejects_with_its_field(db: &TestDb) {
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    type Case = (&'static str, fn(&mut Policy), &'static str, &'static str);
    let cases: [Case; 10] = [
        ("length", |p| p.title = "ab".into(), "title", "length"),
        ("range", |p| p.risk = 9, "risk", "range"),
        (
            "email",
            |p| p.owner_email = Some("not-an-email".into()),
            "owner_email",
            "email",
        ),
        (
            "url",
            |p| p.source_url = Some("no url".into()),
            "source_url",
            "url",
        ),
        ("regex", |p| p.code = "pol_1".into(), "code", "regex"),
        (
            "custom",
            |p| p.title = "tab\there".into(),
            "title",
            "no_tabs",
        ),
        ("required", |p| p.approver = None, "approver", "required"),
        (
            "nested",
            |p| p.attestation.signed_by = "x".repeat(21),
            "attestation.signed_by",
            "length",
        ),
        (
            "entity",
            |p| {
                p.effective_on = chrono::NaiveDate::from_ymd_opt(2026, 5, 1);
                p.review_on = chrono::NaiveDate::from_ymd_opt(2026, 1, 1);
            },
            "__entity",
            "review_before_effective",
        ),
        (
            "length max",
            |p| p.code = "ABCDE-12345678".into(),
            "code",
            "length",
        ),
    ];
    for (name, break_it, field, code) in cases {
        let mut p = Policy::new("VAL-1");
        break_it(&mut p);
        let err = s.insert(p.clone()).unwrap_err();
        let (f, c) = rejected(err);
        assert_eq!((f.as_str(), c.as_str()), (field, code), "rule {name}");
    }
    assert_eq!(
        s.count(policies::table.count()).unwrap(),
        0,
        "nothing written"
    );

    // Updates are validated too.
    let mut ok = s.insert(Policy::new("VAL-2")).unwrap();
    ok.risk = 0;
    let (f, _) = rejected(s.update(&mut ok).unwrap_err());
    assert_eq!(f, "risk");
    assert_eq!(s.get::<Policy>(&ok.id).unwrap().risk, 3);
}

fn bulk_with_one_invalid_row_writes_nothing(db: &TestDb) {
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Policy> = (0..50).map(|i| Policy::new(&format!("BLK-{i}"))).collect();
    rows[37].owner_email = Some("broken".into());
    let err = s.insert_many(&mut rows).unwrap_err();
    let Error::Validation(v) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(v.index, Some(37));
    assert!(v.fields.contains_key("owner_email"));
    assert_eq!(s.count(policies::table.count()).unwrap(), 0);

    rows[37].owner_email = None;
    s.insert_many(&mut rows).unwrap();
    let mut stored: Vec<Policy> = s.load(Policy::query().order(policies::id)).unwrap();
    stored[10].risk = 7;
    assert!(matches!(
        s.update_many(&mut stored),
        Err(Error::Validation(_))
    ));
    assert_eq!(
        s.count(policies::table.filter(policies::version.gt(1)).count())
            .unwrap(),
        0
    );
}

fn database_rejections_have_the_same_shape(db: &TestDb) {
    db.create_table::<Policy>().unwrap();
    let mut s = db.session().unwrap();
    s.insert(Policy::new("DUP-1")).unwrap();
    let err = s.insert(Policy::new("DUP-1")).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let from_db = err.field_errors().unwrap();
    assert_eq!(from_db.fields["code"][0].code, "unique", "{from_db:?}");

    let mut bad = Policy::new("DUP-2");
    bad.title = "no".into();
    let from_rust = s.insert(bad).unwrap_err().field_errors().unwrap();
    // Both serialize as {"fields": {"<field>": [{"code": ..., "message": ...}]}}.
    let a = serde_json::to_value(&from_db).unwrap();
    let b = serde_json::to_value(&from_rust).unwrap();
    assert!(a["fields"]["code"][0]["message"].is_string(), "{a}");
    assert!(b["fields"]["title"][0]["message"].is_string(), "{b}");
    assert_eq!(
        a.as_object().unwrap().keys().collect::<Vec<_>>(),
        b.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    // A check constraint the database enforces (risk 1..=5) also maps to its field, even when
    // the Rust rule is bypassed through the raw connection.
    let err = s.execute_sql("UPDATE policies SET risk = 42").unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
}

/// `#[derive(Validate)]` written above `#[entity]`: the derive is expanded first, so `#[entity]`
/// never sees it; its rules must run all the same.
#[derive(Debug, Clone, PartialEq, validator::Validate)]
#[entity(table = "derived_first")]
pub struct DerivedFirst {
    #[column(primary_key)]
    pub id: i64,
    #[validate(length(min = 3))]
    pub code: String,
}

fn validate_derived_above_entity_runs(db: &TestDb) {
    db.create_table::<DerivedFirst>().unwrap();
    let mut s = db.session().unwrap();
    let short = |id| DerivedFirst {
        id,
        code: "ab".into(),
    };
    let fine = |id| DerivedFirst {
        id,
        code: "abc".into(),
    };
    let err = s.insert(short(1)).unwrap_err();
    assert_eq!(rejected(err), ("code".into(), "length".into()));
    let err = s.insert_many(&mut [fine(2), short(3)]).unwrap_err();
    assert_eq!(rejected(err), ("code".into(), "length".into()));
    let mut kept = s.insert(fine(4)).unwrap();
    kept.code = "x".into();
    assert!(matches!(s.update(&mut kept), Err(Error::Validation(_))));
    drop(s);
    let mut s = db.session().unwrap();
    let stored: Vec<DerivedFirst> = s.load(DerivedFirst::query()).unwrap();
    assert_eq!(stored, [fine(4)]);
}

on_all_backends!(
    every_rule_rejects_with_its_field,
    bulk_with_one_invalid_row_writes_nothing,
    database_rejections_have_the_same_shape,
    validate_derived_above_entity_runs
);
