//! Errors on every backend: unique violations are Conflict naming the column and keeping the
//! database's code; other constraint violations are Constraint.

use crate::common::TestDb;
use crate::entities::*;
use custodian::prelude::*;
use custodian::{BackendKind, Error};

fn unique_violation_is_conflict_naming_the_column(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    db.raw_sql(match db.kind {
        BackendKind::Mysql => {
            "ALTER TABLE controls MODIFY code VARCHAR(64) NOT NULL, ADD UNIQUE KEY code (code)"
        }
        _ => "CREATE UNIQUE INDEX controls_code ON controls (code)",
    });
    let mut s = db.session().unwrap();
    s.insert(Control::new("U-1", 1)).unwrap();
    let err = s.insert(Control::new("U-1", 2)).unwrap_err();
    let Error::Conflict { source } = &err else {
        panic!("expected Conflict, got {err:?}")
    };
    assert_eq!(source.column.as_deref(), Some("code"), "{source:?}");
    let expected = match db.kind {
        BackendKind::Postgres => "23505",
        BackendKind::Mysql => "1062",
        _ => "SQLITE_CONSTRAINT_UNIQUE",
    };
    assert_eq!(source.code.as_deref(), Some(expected));
    assert!(err.to_string().contains("code"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(s.count(controls::table.count()).unwrap(), 1);

    // A duplicate primary key is a Conflict too.
    let c = Counter {
        name: "k".into(),
        value: 1,
    };
    db.create_table::<Counter>().unwrap();
    s.insert(c.clone()).unwrap();
    assert!(matches!(s.insert(c), Err(Error::Conflict { .. })));
}

fn not_null_violation_is_constraint(db: &TestDb) {
    db.create_table::<Control>().unwrap();
    let mut s = db.session().unwrap();
    let err = s
        .execute_sql("INSERT INTO controls (code, title, risk, active) VALUES (NULL, 't', 1, TRUE)")
        .unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
    assert_eq!(
        err.db_error().and_then(|e| e.column.as_deref()),
        Some("code"),
        "{err:?}"
    );
}

on_all_backends!(
    unique_violation_is_conflict_naming_the_column,
    not_null_violation_is_constraint
);
