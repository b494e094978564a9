//! Migrations apply once, refuse edited files, and name the failing path.

use super::*;

fn migrations_apply_once_and_refuse_edited_files(db: &TestDb) {
    let dir = TempDir::new(db, "migrations");
    let entities = [
        MEMBERS_CASCADE,
        TEAMS,
        TAGS,
        Control::META,
        Membership::META,
        AllTypes::META,
    ];
    let written = custodian::migrate::generate(
        dir.path(),
        "Initial schema",
        &entities,
        custodian::backends::ALL,
    )
    .unwrap()
    .expect("a first migration");
    assert_eq!(written.len(), 3);
    let init = file_name(&written[0]);
    assert!(init.ends_with("_initial_schema"), "{init}");
    for w in &written {
        assert_eq!(file_name(w), init);
        assert!(w.join("up.sql").is_file() && w.join("down.sql").is_file());
    }
    let up_path = dir.path().join(backend_dir(db)).join(&init).join("up.sql");
    let up = std::fs::read_to_string(&up_path).unwrap();
    let teams_at = up.find("CREATE TABLE").unwrap();
    assert!(
        up[teams_at..].starts_with("CREATE TABLE \"teams\"")
            || up[teams_at..].starts_with("CREATE TABLE `teams`"),
        "{up}"
    );

    assert_eq!(db.pending_migrations(dir.path()).unwrap(), [init.as_str()]);
    assert_eq!(db.run_migrations(dir.path()).unwrap(), [init.as_str()]);
    db.check_schema(&entities).unwrap();
    // A second run applies nothing.
    assert!(db.run_migrations(dir.path()).unwrap().is_empty());
    assert!(db.pending_migrations(dir.path()).unwrap().is_empty());
    let mut s = db.session().unwrap();
    assert_eq!(count(&mut s, "custodian_migrations"), 1);
    drop(s);

    // The applied schema enforces its constraints.
    let mut s = db.session().unwrap();
    s.insert(CTag::new("A", 1, "plain")).unwrap();
    assert!(matches!(
        s.insert(CTag::new("A", 1, "plain")),
        Err(Error::Conflict { .. })
    ));
    drop(s);

    // A second migration is pending; then the first one's up.sql is edited.
    let mut more = entities.to_vec();
    more.push(Counter::META);
    let next =
        custodian::migrate::generate(dir.path(), "counters", &more, custodian::backends::ALL)
            .unwrap()
            .expect("counters is new");
    let next = file_name(&next[0]);
    assert!(next > init, "{next} sorts after {init}");
    assert_eq!(db.pending_migrations(dir.path()).unwrap(), [next.as_str()]);
    std::fs::write(&up_path, format!("{up}\n-- tweaked\n")).unwrap();
    for err in [
        db.run_migrations(dir.path()).unwrap_err(),
        db.pending_migrations(dir.path()).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert_eq!(
            err.integrity_kind(),
            Some(custodian::IntegrityKind::MigrationChecksum),
            "{err:?}"
        );
        assert!(msg.contains(&init), "{msg}");
        assert!(msg.contains("edited after it was applied"), "{msg}");
    }
    // Nothing ran: the pending migration's table does not exist.
    assert_eq!(
        db.schema_drift(&[Counter::META]).unwrap(),
        [Drift::MissingTable {
            table: "counters".into()
        }]
    );
    // Restored, the pending migration applies.
    std::fs::write(&up_path, &up).unwrap();
    assert_eq!(db.run_migrations(dir.path()).unwrap(), [next]);
    db.check_schema(&[Counter::META]).unwrap();
}

fn migration_errors_name_the_path(db: &TestDb) {
    let dir = TempDir::new(db, "bad_migrations");
    // No directory at all.
    let err = db.run_migrations(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    // A directory without this backend's sub-directory.
    std::fs::create_dir_all(dir.path()).unwrap();
    let err = db.pending_migrations(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains(backend_dir(db)), "{err}");
    // A migration directory without up.sql.
    let broken = dir
        .path()
        .join(backend_dir(db))
        .join("20240101000000_broken");
    std::fs::create_dir_all(&broken).unwrap();
    let err = db.run_migrations(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("20240101000000_broken"), "{err}");
    // A badly named one.
    std::fs::remove_dir_all(&broken).unwrap();
    let badly_named = dir.path().join(backend_dir(db)).join("init");
    std::fs::create_dir_all(&badly_named).unwrap();
    std::fs::write(badly_named.join("up.sql"), "SELECT 1;").unwrap();
    let err = db.run_migrations(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("init"), "{err}");
    // A failing statement: a database error naming the migration, nothing recorded.
    std::fs::remove_dir_all(&badly_named).unwrap();
    let failing = dir
        .path()
        .join(backend_dir(db))
        .join("20240101000000_failing");
    std::fs::create_dir_all(&failing).unwrap();
    std::fs::write(
        failing.join("up.sql"),
        "CREATE TABLE ok_table (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (;",
    )
    .unwrap();
    let err = db.run_migrations(dir.path()).unwrap_err();
    assert!(err.to_string().contains("20240101000000_failing"), "{err}");
    assert_eq!(
        db.pending_migrations(dir.path()).unwrap(),
        ["20240101000000_failing"]
    );
}

on_all_backends!(
    migrations_apply_once_and_refuse_edited_files,
    migration_errors_name_the_path,
);
