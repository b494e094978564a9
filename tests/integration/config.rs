//! Configuration through the facade: files, environment, and the errors of bad settings.

use custodian::{Config, Error};

#[test]
fn toml_config_opens_the_named_database() {
    let path = std::env::temp_dir().join(format!("custodian-cfg-{}.toml", std::process::id()));
    let db_path = std::env::temp_dir().join(format!("custodian-cfg-{}.db", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "[databases.ledger]\nurl = \"sqlite://{}\"\npool = {{ max_size = 3, min_idle = 1 }}\nsession = {{ busy_timeout_ms = 250 }}\nretry = {{ max_attempts = 2 }}\n",
            db_path.display()
        ),
    )
    .unwrap();
    let cfg = Config::from_file(&path).unwrap();
    let db = custodian::open_named(&cfg, "ledger").unwrap();
    assert_eq!(db.config().pool.max_size, 3);
    assert_eq!(db.config().retry.max_attempts, 2);
    assert!(db.pool_stats().size >= 1);
    let err = custodian::open_named(&cfg, "missing").unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "databases.missing"),
        "{err}"
    );
    drop(db);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&db_path);
}

#[test]
fn bad_settings_name_the_field() {
    let err = custodian::connect("oracle://scott:tiger@db/orcl").unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "url"),
        "{err}"
    );
    assert!(!err.to_string().contains("tiger"));
    let err = Config::from_toml_str("[databases.main]\nurl = \"postgres://h/db\"\nretry = { base_delay_ms = 900, max_delay_ms = 10 }\n")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "databases.main.retry.base_delay_ms"),
        "{err}"
    );
    let err = Config::from_toml_str("[databases.main]\nurl = 5\n").unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
}
