//! A changed entity yields only its changes, rows survive, SQLite's rebuild does not cascade,
//! an unchanged model writes nothing, and `down.sql` restores the previous shape.

use super::*;

fn changed_entities_migrate_keeping_rows(db: &TestDb) {
    let dir = TempDir::new(db, "migrate_diff");
    let people = start_at_v1(db, dir.path());

    // Nothing changed: nothing is written.
    let before = all_migrations(dir.path());
    assert_eq!(generate(dir.path(), "again", &v1::metas()).unwrap(), None);
    assert_eq!(all_migrations(dir.path()), before);

    // v2: one migration with only the changes.
    let written = generate(dir.path(), "v2", &v2::metas())
        .unwrap()
        .expect("v2 changes the model");
    assert_eq!(written.len(), 3);
    let v2_dir = mine(db, &written);
    let up = std::fs::read_to_string(v2_dir.join("up.sql")).unwrap();
    assert!(
        !up.contains("CREATE TABLE \"md_teams\"") && !up.contains("CREATE TABLE `md_teams`"),
        "{up}"
    );
    assert!(up.contains("md_badges"), "{up}");
    match db.kind {
        BackendKind::Postgres => {
            assert!(
                up.contains("RENAME COLUMN \"code\" TO \"ref_code\""),
                "{up}"
            );
            assert!(up.contains("ALTER COLUMN \"age\" TYPE BIGINT"), "{up}");
        }
        BackendKind::Mysql => {
            assert!(up.contains("RENAME COLUMN `code` TO `ref_code`"), "{up}");
            assert!(
                up.contains("MODIFY COLUMN `ref_code` VARCHAR(255) NOT NULL"),
                "{up}"
            );
        }
        _ => {
            assert!(
                up.contains("CREATE TABLE \"_custodian_rebuild_md_people\""),
                "{up}"
            );
            assert!(
                up.contains("ALTER TABLE \"_custodian_rebuild_md_people\" RENAME TO \"md_people\""),
                "{up}"
            );
        }
    }
    let applied = db.run_migrations(dir.path()).unwrap();
    assert_eq!(applied, [v2_dir.file_name().unwrap().to_str().unwrap()]);
    db.check_schema(&v2::metas()).unwrap();

    // The rows survived, under the new names and types; the NULL nickname got the default;
    // the cards (whose foreign key cascades) were not deleted by SQLite's rebuild.
    let mut s = db.session().unwrap();
    assert_eq!(count(&mut s, "md_cards"), 2);
    let a: v2::Person = s.find(&people[0].id).unwrap().expect("A1 kept");
    assert_eq!(
        a,
        v2::Person {
            id: people[0].id,
            ref_code: "A1".into(),
            age: 30,
            nickname: "none".into(),
            note: "note of A1".into(),
            score: 50,
            team_id: None,
            email: None,
        }
    );
    let b: v2::Person = s.find(&people[1].id).unwrap().expect("B2 kept");
    assert_eq!(
        (b.ref_code.as_str(), b.nickname.as_str(), b.age),
        ("B2", "bee", 40)
    );

    // The new schema works and enforces the new constraints.
    let teams: Vec<v2::Team> = s.load(v2::Team::query()).unwrap();
    let team = teams.into_iter().next().expect("team kept");
    assert_eq!(team.name, "red");
    let c = s
        .insert(v2::Person {
            id: 0,
            ref_code: "C3".into(),
            age: 5_000_000_000,
            nickname: "cee".into(),
            note: String::new(),
            score: 100,
            team_id: Some(team.id),
            email: Some("c@example.invalid".into()),
        })
        .unwrap();
    assert_eq!(
        s.find::<v2::Person>(&c.id).unwrap().unwrap().age,
        5_000_000_000
    );
    assert!(c.id > people[1].id + 1, "key {} used again", c.id);
    let dup = v2::Person {
        id: 0,
        ref_code: "A1".into(),
        ..c.clone()
    };
    let err = s.insert(dup).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "new unique: {err:?}");
    let err = s
        .insert(v2::Person {
            id: 0,
            ref_code: "D4".into(),
            score: 101,
            ..c.clone()
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::Constraint { .. }),
        "new check: {err:?}"
    );
    let err = s
        .insert(v2::Person {
            id: 0,
            ref_code: "E5".into(),
            team_id: Some(999),
            ..c.clone()
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::Constraint { .. }),
        "new foreign key: {err:?}"
    );
    s.insert(v2::Badge {
        code: "gold".into(),
        label: "Gold".into(),
    })
    .unwrap();
    // Foreign keys are enforced again after the migration (SQLite turns them off to run it).
    let err = s
        .insert(v2::Card {
            id: 0,
            person_id: 999,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Constraint { .. }), "{err:?}");
    // The new foreign key acts: deleting the team clears the reference.
    s.delete(&team).unwrap();
    assert_eq!(s.find::<v2::Person>(&c.id).unwrap().unwrap().team_id, None);
    s.delete_by_key::<v2::Person>(&c.id).unwrap();
    s.delete_by_key::<v2::Badge>(&"gold".to_string()).unwrap();
    drop(s);

    // And v2 again is no change.
    assert_eq!(
        generate(dir.path(), "v2 again", &v2::metas()).unwrap(),
        None
    );

    // down.sql restores v1's shape, and the renamed column's data comes back under its old
    // name.
    let down = std::fs::read_to_string(v2_dir.join("down.sql")).unwrap();
    if db.kind == BackendKind::Sqlite {
        // SQLite rebuilds tables, which must not run while foreign keys are enforced (dropping
        // the old table would delete the cards): down.sql refuses before changing anything.
        use custodian::diesel::connection::SimpleConnection;
        use custodian::diesel::Connection;
        let path = custodian::backends::sqlite::path_of(&db.url);
        let mut raw = custodian::diesel::SqliteConnection::establish(path).unwrap();
        let err = raw
            .batch_execute(&format!("PRAGMA foreign_keys = ON; BEGIN; {down} COMMIT;"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(custodian::backends::rebuild::GUARD_CONSTRAINT),
            "{err}"
        );
        drop(raw);
        db.check_schema(&v2::metas()).unwrap();
        db.raw_sql(&format!("PRAGMA foreign_keys = OFF; {down}"));
    } else {
        db.raw_sql(&down);
    }
    db.check_schema(&v1::metas()).unwrap();
    assert_eq!(
        db.schema_drift(&[v2::Person::META]).unwrap()[0],
        Drift::MissingColumn {
            table: "md_people".into(),
            column: "ref_code".into()
        }
    );
    let mut s = db.session().unwrap();
    let a: v1::Person = s.find(&people[0].id).unwrap().unwrap();
    assert_eq!(
        (a.code.as_str(), a.age, a.nickname.as_deref()),
        ("A1", 30, Some("none"))
    );
    assert_eq!(count(&mut s, "md_cards"), 2);
    s.insert(person_v1("F6", 1, None, 1000)).unwrap();
}

on_all_backends!(changed_entities_migrate_keeping_rows);
