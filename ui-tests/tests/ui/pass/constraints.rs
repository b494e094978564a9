//! Column constraints and indexes: `unique`, `index`, `default`, `check`, `range`, `one_of`,
//! automatic enum checks, and `#[entity(unique(..), index(..))]`, as metadata and as DDL that
//! SQLite enforces.
#![deny(missing_docs)]

use custodian::{entity, Check, ColumnRole, DbEnum, Entity, Error};

/// Status of a control.
#[derive(DbEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Draft.
    Draft,
    /// Approved.
    #[db_enum(name = "approved")]
    Approved,
}

/// A control with every kind of column constraint.
#[entity(table = "controls", unique(framework, code), index(owner, level), index(level, owner))]
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// Key.
    #[column(primary_key, auto_increment)]
    pub id: i64,
    /// Framework of the control.
    pub framework: String,
    /// Code, unique within its framework.
    #[column(name = "control_code")]
    pub code: String,
    /// Unique everywhere.
    #[column(unique)]
    pub slug: String,
    /// Indexed.
    #[column(index)]
    pub owner: Option<String>,
    /// 1 to 5.
    #[column(range(min = 1, max = 5))]
    pub level: i32,
    /// At least -3.
    #[column(range(min = -3))]
    pub offset: Option<i16>,
    /// At most 10.
    #[column(range(max = 10))]
    pub weight: i64,
    /// One of a fixed list.
    #[column(one_of("low", "high"), default = "'low'")]
    pub risk: String,
    /// Raw SQL check.
    #[column(check = "length(note) < 20")]
    pub note: Option<String>,
    /// An enum: checked against its stored names automatically.
    pub status: Status,
    /// An optional enum: checked too.
    pub next_status: Option<Status>,
    /// Defaulted by the database.
    #[column(generated, default = "42")]
    pub score: Option<i32>,
}

fn control(slug: &str, level: i32) -> Control {
    Control {
        id: 0,
        framework: "iso".into(),
        code: slug.to_uppercase(),
        slug: slug.into(),
        owner: None,
        level,
        offset: None,
        weight: 1,
        risk: "low".into(),
        note: None,
        status: Status::Draft,
        next_status: Some(Status::Approved),
        score: None,
    }
}

fn main() -> custodian::Result<()> {
    let meta = Control::META;
    let col = |f: &str| meta.column(f).unwrap();
    assert!(col("slug").unique && !col("slug").indexed);
    assert!(col("owner").indexed && !col("owner").unique);
    assert_eq!(col("risk").default_sql, Some("'low'"));
    assert_eq!(col("score").default_sql, Some("42"));
    assert_eq!(col("level").check, Some(Check::Range { min: Some(1), max: Some(5) }));
    assert_eq!(col("offset").check, Some(Check::Range { min: Some(-3), max: None }));
    assert_eq!(col("weight").check, Some(Check::Range { min: None, max: Some(10) }));
    assert_eq!(col("risk").check, Some(Check::OneOf(&["low", "high"])));
    assert_eq!(col("note").check, Some(Check::Sql("length(note) < 20")));
    assert_eq!(col("status").check, Some(Check::OneOf(&["Draft", "approved"])));
    assert_eq!(col("next_status").check, Some(Check::OneOf(&["Draft", "approved"])));
    assert_eq!(col("framework").check, None);
    assert!(meta.columns.iter().all(|c| c.role == ColumnRole::Data && c.references.is_none()));
    assert_eq!(meta.indexes.len(), 3);
    assert_eq!(meta.indexes[0].name, "controls_framework_control_code_key");
    assert_eq!(meta.indexes[0].columns, ["framework", "control_code"]);
    assert!(meta.indexes[0].unique);
    assert_eq!(meta.indexes[1].name, "controls_owner_level_idx");
    assert!(!meta.indexes[1].unique);
    assert_eq!(meta.indexes[2].name, "controls_level_owner_idx");
    assert_eq!(
        <Status as custodian::ColumnValue>::ALLOWED,
        Some(&["Draft", "approved"][..])
    );

    let db = custodian::open(custodian::DatabaseConfig::from_url("sqlite::memory:")?.audit_unkeyed())?.acting_as(custodian::Principal::new("ui-test"));
    db.create_table::<Control>()?;
    let mut s = db.session()?;
    let stored = s.insert(control("ac-1", 3))?;
    assert_eq!(stored.score, Some(42), "generated columns are read back");

    // The database enforces each constraint; the error names the field.
    let field_of = |e: Error| {
        let v = e.field_errors().unwrap_or_else(|| panic!("not a field error: {e}"));
        v.fields.keys().next().cloned().unwrap()
    };
    let mut dup = control("ac-1", 3);
    dup.code = "AC-9".into();
    let err = s.insert(dup).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(field_of(err), "slug");
    let mut dup = control("ac-2", 3);
    dup.code = "AC-1".into();
    let err = s.insert(dup).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(field_of(err), "framework", "a composite unique reports its first field");
    assert!(s.insert(control("ac-3", 6)).is_err(), "range max");
    assert!(s.insert(control("ac-3", 0)).is_err(), "range min");
    let mut bad = control("ac-3", 1);
    bad.risk = "medium".into();
    assert!(s.insert(bad).is_err(), "one_of");
    let mut bad = control("ac-3", 1);
    bad.note = Some("a note far too long to pass".into());
    assert!(s.insert(bad).is_err(), "check");
    let mut bad = control("ac-3", 1);
    bad.offset = Some(-4);
    assert!(s.insert(bad).is_err(), "range min on Option");
    s.execute_sql("INSERT INTO controls (framework, control_code, slug, level, weight, status) VALUES ('x', 'y', 'z', 1, 1, 'Draft')")?;
    assert!(
        s.execute_sql("INSERT INTO controls (framework, control_code, slug, level, weight, status) VALUES ('x', 'y2', 'z2', 1, 1, 'Medium')")
            .is_err(),
        "enum check"
    );
    Ok(())
}
