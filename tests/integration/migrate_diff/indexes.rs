//! Indexes and unique constraints come and go between migrations.

use super::*;

mod tags1 {
    use custodian::prelude::*;

    #[entity(table = "md_tags")]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Tag {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(index)]
        pub owner: String,
        pub label: String,
    }
}

/// Plain indexes only: `owner`'s index goes, one on `(label, owner)` comes.
mod tags2 {
    use custodian::prelude::*;

    #[entity(table = "md_tags", index(label, owner))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Tag {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub owner: String,
        pub label: String,
    }
}

/// A unique constraint over `(owner, label)`.
mod tags3 {
    use custodian::prelude::*;

    #[entity(table = "md_tags", index(label, owner), unique(owner, label))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Tag {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub owner: String,
        pub label: String,
    }
}

fn indexes_and_unique_constraints_come_and_go(db: &TestDb) {
    let dir = TempDir::new(db, "migrate_indexes");
    generate(dir.path(), "tags", &[tags1::Tag::META])
        .unwrap()
        .unwrap();
    db.run_migrations(dir.path()).unwrap();
    let mut s = db.session().unwrap();
    let tag = |owner: &str, label: &str| tags3::Tag {
        id: 0,
        owner: owner.into(),
        label: label.into(),
    };
    s.insert(tags1::Tag {
        id: 0,
        owner: "ann".into(),
        label: "x".into(),
    })
    .unwrap();
    drop(s);

    // Index changes alone are CREATE / DROP INDEX on every backend, no table rebuild.
    let written = generate(dir.path(), "tag indexes", &[tags2::Tag::META])
        .unwrap()
        .unwrap();
    let up = std::fs::read_to_string(mine(db, &written).join("up.sql")).unwrap();
    assert!(
        up.contains("DROP INDEX") && up.contains("CREATE INDEX"),
        "{up}"
    );
    assert!(!up.contains("_custodian_rebuild_"), "{up}");
    assert_eq!(db.run_migrations(dir.path()).unwrap().len(), 1);
    db.check_schema(&[tags2::Tag::META]).unwrap();

    // A unique constraint: duplicates are refused afterwards, and allowed again after down.sql.
    let written = generate(dir.path(), "tag unique", &[tags3::Tag::META])
        .unwrap()
        .unwrap();
    assert_eq!(db.run_migrations(dir.path()).unwrap().len(), 1);
    let mut s = db.session().unwrap();
    assert_eq!(count(&mut s, "md_tags"), 1, "rows kept");
    s.insert(tag("bob", "x")).unwrap();
    let err = s.insert(tag("ann", "x")).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    drop(s);
    assert_eq!(
        generate(dir.path(), "same", &[tags3::Tag::META]).unwrap(),
        None
    );
    let down = std::fs::read_to_string(mine(db, &written).join("down.sql")).unwrap();
    db.raw_sql(&format!(
        "{}{down}",
        if db.kind == BackendKind::Sqlite {
            "PRAGMA foreign_keys = OFF; "
        } else {
            ""
        }
    ));
    let mut s = db.session().unwrap();
    s.insert(tag("ann", "x")).unwrap();
    assert_eq!(count(&mut s, "md_tags"), 3);
}

on_all_backends!(indexes_and_unique_constraints_come_and_go);
