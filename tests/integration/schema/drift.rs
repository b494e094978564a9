//! The drift check: missing tables and columns, changed types and nullability.

use super::*;

fn all_entities() -> [EntityMeta; 5] {
    [
        Control::META,
        Membership::META,
        Counter::META,
        AllTypes::META,
        TAGS,
    ]
}

fn check_schema_passes_on_a_fresh_schema(db: &TestDb) {
    db.create_tables(&all_entities()).unwrap();
    db.check_schema(&all_entities()).unwrap();
    assert!(db.schema_drift(&all_entities()).unwrap().is_empty());
    // Extra live columns are not drift.
    db.raw_sql("ALTER TABLE counters ADD COLUMN extra INTEGER");
    db.check_schema(&all_entities()).unwrap();
}

fn check_schema_reports_dropped_columns_and_tables(db: &TestDb) {
    db.create_tables(&all_entities()).unwrap();
    db.raw_sql("ALTER TABLE controls DROP COLUMN owner");
    db.raw_sql("DROP TABLE counters");
    let err = db.check_schema(&all_entities()).unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        err.integrity_kind(),
        Some(custodian::IntegrityKind::SchemaDrift),
        "{err:?}"
    );
    let report = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<custodian::SchemaReport>())
        .expect("the drift report is the source");
    assert_eq!(report.drifts.len(), 2, "{report}");
    assert!(msg.contains("column `controls.owner` is missing"), "{msg}");
    assert!(msg.contains("table `counters` is missing"), "{msg}");
    assert!(msg.contains("2 problems"), "{msg}");
    assert_eq!(
        db.schema_drift(&all_entities()).unwrap(),
        [
            Drift::MissingColumn {
                table: "controls".into(),
                column: "owner".into()
            },
            Drift::MissingTable {
                table: "counters".into()
            },
        ]
    );
}

fn check_schema_reports_type_and_nullability_changes(db: &TestDb) {
    db.create_tables(&all_entities()).unwrap();
    match db.kind {
        BackendKind::Postgres => db.raw_sql(
            "ALTER TABLE controls ALTER COLUMN risk TYPE TEXT; \
             ALTER TABLE controls ALTER COLUMN title DROP NOT NULL",
        ),
        BackendKind::Mysql => db.raw_sql(
            "ALTER TABLE controls MODIFY risk LONGTEXT NOT NULL, MODIFY title LONGTEXT NULL",
        ),
        _ => db.raw_sql(
            "DROP TABLE controls; CREATE TABLE controls (\
             id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT NOT NULL, title TEXT, \
             owner TEXT, risk TEXT NOT NULL, active BOOLEAN NOT NULL)",
        ),
    }
    let drift = db.schema_drift(&all_entities()).unwrap();
    assert_eq!(drift.len(), 2, "{drift:?}");
    assert!(
        matches!(&drift[0], Drift::Nullability { table, column, entity_nullable: false, live_nullable: true }
            if table == "controls" && column == "title"),
        "{drift:?}"
    );
    assert!(
        matches!(&drift[1], Drift::TypeMismatch { table, column, expected: ColumnKind::Integer, found }
            if table == "controls" && column == "risk" && found.to_ascii_lowercase().contains("text")),
        "{drift:?}"
    );
    let msg = db.check_schema(&all_entities()).unwrap_err().to_string();
    assert!(msg.contains("`controls.risk` has type"), "{msg}");
    assert!(msg.contains("`controls.title` accepts NULL"), "{msg}");
}

on_all_backends!(
    check_schema_passes_on_a_fresh_schema,
    check_schema_reports_dropped_columns_and_tables,
    check_schema_reports_type_and_nullability_changes,
);
