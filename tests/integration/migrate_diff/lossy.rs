//! Changes that lose data are refused until opted in.

use super::*;

fn lossy_changes_need_opt_in(db: &TestDb) {
    let dir = TempDir::new(db, "migrate_lossy");
    start_at_v1(db, dir.path());
    generate(dir.path(), "v2", &v2::metas()).unwrap().unwrap();
    db.run_migrations(dir.path()).unwrap();

    // v3 drops a column and a table, narrows a type: refused, naming each, nothing written.
    let before = all_migrations(dir.path());
    let err = generate(dir.path(), "v3", &v3::metas()).unwrap_err();
    let Error::DataLoss { changes } = &err else {
        panic!("{err:?}")
    };
    let found: Vec<(&str, Option<&str>, &LossKind)> = changes
        .iter()
        .map(|c| (c.table.as_str(), c.column.as_deref(), &c.kind))
        .collect();
    assert_eq!(
        found,
        [
            ("md_people", Some("note"), &LossKind::DropColumn),
            (
                "md_people",
                Some("score"),
                &LossKind::NarrowType {
                    from: custodian::ColumnKind::Integer,
                    to: custodian::ColumnKind::SmallInt
                }
            ),
            ("md_badges", None, &LossKind::DropTable),
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`md_people.note`") && msg.contains("allow_data_loss"),
        "{msg}"
    );
    assert_eq!(all_migrations(dir.path()), before, "nothing written");

    // Opted in, the migration is written and applies; the other columns keep their data.
    let options = GenerateOptions::new().allow_data_loss(true);
    let written = custodian::migrate::generate_with(
        dir.path(),
        "v3",
        &v3::metas(),
        custodian::backends::ALL,
        &options,
    )
    .unwrap()
    .expect("v3 written");
    assert_eq!(written.len(), 3);
    assert_eq!(db.run_migrations(dir.path()).unwrap().len(), 1);
    db.check_schema(&v3::metas()).unwrap();
    assert!(db
        .schema_drift(&[v2::Person::META])
        .unwrap()
        .contains(&Drift::MissingColumn {
            table: "md_people".into(),
            column: "note".into()
        }));
    assert_eq!(
        db.schema_drift(&[v2::Badge::META]).unwrap(),
        [Drift::MissingTable {
            table: "md_badges".into()
        }]
    );
    let mut s = db.session().unwrap();
    let people: Vec<v3::Person> = s.load(v3::Person::query()).unwrap();
    let mut kept: Vec<_> = people
        .iter()
        .map(|p| (p.ref_code.as_str(), p.score))
        .collect();
    kept.sort();
    assert_eq!(kept, [("A1", 50), ("B2", 70)]);
    assert_eq!(count(&mut s, "md_cards"), 2);

    // A column becoming NOT NULL without a default is refused too.
    let mut tightened = v3::metas();
    let person = tightened
        .iter_mut()
        .find(|m| m.table == "md_people")
        .unwrap();
    static COLUMNS: std::sync::OnceLock<Vec<custodian::ColumnMeta>> = std::sync::OnceLock::new();
    let columns = COLUMNS.get_or_init(|| {
        v3::Person::META
            .columns
            .iter()
            .map(|c| custodian::ColumnMeta {
                nullable: c.nullable && c.name != "email",
                ..*c
            })
            .collect()
    });
    person.columns = columns;
    let err = generate(dir.path(), "tighten", &tightened).unwrap_err();
    let Error::DataLoss { changes } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].column.as_deref(), Some("email"));
    assert_eq!(changes[0].kind, LossKind::NotNullWithoutDefault);
}

on_all_backends!(lossy_changes_need_opt_in);
