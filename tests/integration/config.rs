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

/// Every way the error of a failed connection can be shown.
fn every_rendering(err: &Error) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    text
}

#[test]
fn secrets_stay_out_of_failed_connection_errors() {
    let servers = [
        ("postgres", "127.0.0.1:5432/postgres"),
        ("mysql", "127.0.0.1:3306/mysql"),
    ];
    for (scheme, server) in servers {
        let mut urls: Vec<String> = [
            "pa/ss9word",
            "pa?ss9word",
            "pa@ss9word",
            "pa#ss9word",
            "pa%2Fss9word",
            "wrong9password",
        ]
        .iter()
        .map(|pw| format!("{scheme}://ct_nobody:{pw}@{server}"))
        .collect();
        urls.push(format!(
            "{scheme}://ct_nobody@{server}?password=qu3ry9secret"
        ));
        for url in urls {
            let err = custodian::connect(&url).unwrap_err();
            let text = every_rendering(&err);
            for secret in ["ss9word", "pa%2F", "wrong9password", "qu3ry9secret"] {
                assert!(!text.contains(secret), "{url}: {text}");
            }
            assert!(text.contains("***"), "{url}: {text}");
        }
    }
    let err =
        custodian::connect("sqlite:///nonexistent-dir/x.db?password=qu3ry9secret").unwrap_err();
    assert!(!every_rendering(&err).contains("qu3ry9secret"), "{err}");
}
