//! `keygen`, `--help` and `--version`, refused arguments, and where the database URL comes
//! from (`--url`, `DATABASE_URL`, a configuration file).

use super::*;

#[test]
fn keygen_writes_a_key_only_its_owner_can_read() {
    let dir = std::env::temp_dir().join(format!("custodian-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("signing.key");
    let path = key_file.to_str().unwrap();
    let (code, out) = cli(&["keygen", "--out", path]);
    assert_eq!(code, 0, "{out}");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64, "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    // An existing key file is neither overwritten nor loosened.
    let (code, out) = cli(&["keygen", "--out", path]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot write"), "{out}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_and_version_describe_the_commands() {
    let (code, out) = cli(&["--help"]);
    assert_eq!(code, 0, "{out}");
    for word in [
        "verify",
        "seal",
        "checkpoint",
        "keygen",
        "history",
        "migrate",
        "rotate-keys",
        "DATABASE_URL",
        "Exit status",
        "1  verification found damage",
    ] {
        assert!(out.contains(word), "{word}: {out}");
    }
    let (code, out) = cli(&["-h"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rotate-keys"), "{out}");
    let (code, out) = cli(&["--version"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        format!("custodian {}", env!("CARGO_PKG_VERSION"))
    );
    for (args, says) in [
        (
            &["verify", "--help"][..],
            &[
                "--url",
                "--config",
                "--database",
                "--checkpoint",
                "--witness",
                "--public-key",
                "Exit status",
            ][..],
        ),
        (&["help", "checkpoint"], &["--signing-key", "--out"]),
        (&["keygen", "-h"], &["--out", "0600"]),
        (&["history", "--help"], &["--entity", "--key"]),
        (&["migrate", "--help"], &["run", "pending"]),
        (&["migrate", "run", "--help"], &["--dir", "--url"]),
        (&["rotate-keys", "--help"], &["--actor", "--batch"]),
    ] {
        let (code, out) = cli(args);
        assert_eq!(code, 0, "{args:?}: {out}");
        for word in says {
            assert!(out.contains(word), "{args:?}: {word}: {out}");
        }
    }

    // Usage errors exit with 2 and say what is wrong.
    for (args, says) in [
        (&[][..], "Usage"),
        (&["verfy"], "unknown command `verfy`"),
        (&["verify", "--bogus"], "--bogus"),
        (&["seal", "extra"], "extra"),
        (&["keygen"], "--out"),
        (&["checkpoint", "--url", "sqlite::memory:"], "--signing-key"),
        (&["migrate", "run"], "--dir"),
        (&["rotate-keys", "--url", "sqlite::memory:"], "--actor"),
        (
            &["rotate-keys", "--actor", "ops", "--batch", "0"],
            "--batch",
        ),
    ] {
        let (code, out) = cli(args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
}

/// `--url=URL` and `--url URL` are the same; DATABASE_URL is the default when neither `--url`
/// nor `--config` is given, and does not replace a configuration file's named database.
fn the_database_url_comes_from_the_option_or_the_environment(db: &TestDb) {
    write_notes(db, 3);
    let eq = format!("--url={}", db.url);
    for args in [
        vec!["verify", eq.as_str()],
        vec!["verify", "--url", &db.url],
    ] {
        let (code, out) = cli(&args);
        assert_eq!(code, 0, "{args:?}: {out}");
        assert!(out.contains("intact: 0 links"), "{out}");
        assert!(out.contains("3 records not sealed yet"), "{out}");
    }
    let (code, out) = cli(&["seal", &eq]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sealed 3 records"), "{out}");

    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("CUSTODIAN_AUDIT_KEY", AUDIT_KEY),
    ];
    let (code, out) = cli_with_env(&["verify"], &env);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 3 links"), "{out}");

    // An unreachable DATABASE_URL is not used for a named database of a configuration file.
    let file = std::env::temp_dir().join(format!("custodian-cli-url-{}.toml", db.name));
    std::fs::write(&file, format!("[databases.ledger]\nurl = \"{}\"\n", db.url)).unwrap();
    let config = file.to_str().unwrap();
    let unreachable = "postgres://u:pw@127.0.0.1:1/x";
    let env = [
        ("DATABASE_URL", unreachable),
        ("CUSTODIAN_AUDIT_KEY", AUDIT_KEY),
    ];
    let (code, out) = cli_with_env(
        &["verify", "--config", config, "--database", "ledger"],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 3 links"), "{out}");
    // Given on the command line, the URL wins over the configuration file.
    let (code, out) = cli(&[
        "verify",
        "--url",
        unreachable,
        "--config",
        config,
        "--database",
        "ledger",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("could not connect") && !out.contains("pw@"),
        "{out}"
    );
    std::fs::remove_file(&file).ok();
}

on_all_backends!(the_database_url_comes_from_the_option_or_the_environment);
