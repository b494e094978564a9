//! The `custodian` command line: verify, seal, checkpoint and keygen against real databases.

use crate::common::{TestDb, AUDIT_KEY};
use custodian::prelude::*;
use std::process::Command;

#[entity(table = "cli_notes")]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    #[column(primary_key)]
    pub id: i64,
    pub text: String,
}

fn cli(args: &[&str]) -> (i32, String) {
    cli_with_key(args, Some(AUDIT_KEY))
}

/// Runs the binary with `CUSTODIAN_AUDIT_KEY` set to `key` (or unset).
fn cli_with_key(args: &[&str], key: Option<&str>) -> (i32, String) {
    match key {
        Some(k) => cli_with_env(args, &[("CUSTODIAN_AUDIT_KEY", k)]),
        None => cli_with_env(args, &[]),
    }
}

/// Runs the binary with only the variables in `vars` among those custodian reads.
fn cli_with_env(args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custodian"));
    cmd.args(args);
    for var in [
        "DATABASE_URL",
        "CUSTODIAN_URL",
        "CUSTODIAN_AUDIT_UNKEYED",
        "CUSTODIAN_AUDIT_KEY",
        "CUSTODIAN_CRYPTO_KEYS",
        "CUSTODIAN_CRYPTO_ACTIVE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("run the custodian binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn verify_seal_and_checkpoint_from_the_command_line(db: &TestDb) {
    db.create_table::<Note>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(
        &mut (1..=20)
            .map(|id| Note {
                id,
                text: format!("n{id}"),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    drop(s);
    let dir = std::env::temp_dir().join(format!("custodian-cli-{}", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("signing.key");
    let cp_file = dir.join("checkpoint.json");
    let (k, f) = (key_file.to_str().unwrap(), cp_file.to_str().unwrap());

    let (code, out) = cli(&["seal", "--url", &db.url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sealed 20 records"), "{out}");
    let (code, out) = cli(&["keygen", "--out", k]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&[
        "checkpoint",
        "--url",
        &db.url,
        "--signing-key",
        k,
        "--out",
        f,
    ]);
    assert_eq!(code, 0, "{out}");
    let public = Checkpoint::from_json(&std::fs::read_to_string(&cp_file).unwrap())
        .unwrap()
        .public_key;
    let (code, out) = cli(&[
        "verify",
        "--url",
        &db.url,
        "--checkpoint",
        f,
        "--public-key",
        &public,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 20 links"), "{out}");
    assert!(out.contains("sealed keyed"), "{out}");
    assert!(out.contains("checkpoint at 20"), "{out}");

    // Without the key, with another key, or with a checkpoint nobody trusts: an error (2),
    // never "intact" and never "DAMAGED".
    let other_key = "ff".repeat(32);
    let stranger = custodian::audit::generate_signing_key().unwrap();
    let stranger = hex::encode(stranger.verifying_key().as_bytes());
    for (args, key, says) in [
        (
            vec!["verify", "--url", &db.url],
            None,
            "CUSTODIAN_AUDIT_KEY",
        ),
        (
            vec!["verify", "--url", &db.url],
            Some(other_key.as_str()),
            "not the key",
        ),
        (
            vec!["verify", "--url", &db.url, "--checkpoint", f],
            Some(AUDIT_KEY),
            "trusted",
        ),
        (
            vec![
                "verify",
                "--url",
                &db.url,
                "--checkpoint",
                f,
                "--public-key",
                &stranger,
            ],
            Some(AUDIT_KEY),
            "not a trusted key",
        ),
    ] {
        let (code, out) = cli_with_key(&args, key);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
        assert!(!out.contains("intact") && !out.contains("DAMAGED"), "{out}");
    }

    // A damaged checkpoint file is a finding (1).
    let broken = dir.join("broken.json");
    let mut cp_text = std::fs::read_to_string(&cp_file).unwrap();
    cp_text = cp_text.replacen("\"seq\": 20", "\"seq\": 19", 1);
    std::fs::write(&broken, cp_text).unwrap();
    let b = broken.to_str().unwrap();
    let (code, out) = cli(&[
        "verify",
        "--url",
        &db.url,
        "--checkpoint",
        b,
        "--public-key",
        &public,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DAMAGED"), "{out}");

    // Damage made with SQL is reported with its position, and exit status 1.
    db.raw_sql("UPDATE custodian_audit SET actor = 'mallory' WHERE id = (SELECT record_id FROM custodian_audit_chain WHERE seq = 7)");
    let (code, out) = cli(&[
        "verify",
        "--url",
        &db.url,
        "--checkpoint",
        f,
        "--public-key",
        &public,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DAMAGED at sequence 7: Modified"), "{out}");

    // Usage and connection errors exit with 2 and say why.
    let (code, out) = cli(&["verfy"]);
    assert_eq!(code, 2);
    assert!(out.contains("unknown command"), "{out}");
    let (code, out) = cli(&["verify", "--url", "postgres://u:pw@127.0.0.1:1/x"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("could not connect") && !out.contains("pw@"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

use custodian::audit::Checkpoint;

on_all_backends!(verify_seal_and_checkpoint_from_the_command_line);

/// The environment's audit key applies to the database the command opens, whatever its name in
/// the configuration file (not only `main`).
fn the_audit_key_comes_from_the_environment_for_any_named_database(db: &TestDb) {
    db.create_table::<Note>().unwrap();
    db.session()
        .unwrap()
        .insert(Note {
            id: 1,
            text: "sealed with the suite's key".into(),
        })
        .unwrap();
    let file = std::env::temp_dir().join(format!("custodian-cli-{}.toml", db.name));
    std::fs::write(&file, format!("[databases.ledger]\nurl = \"{}\"\n", db.url)).unwrap();
    let config = file.to_str().unwrap();
    let args = ["verify", "--config", config, "--database", "ledger"];
    let (code, out) = cli_with_key(&args, Some(AUDIT_KEY));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
    // Another key in the environment is used too: it is not the trail's key, which is an
    // error (2), not damage.
    let other = "ab".repeat(32);
    let (code, out) = cli_with_key(&args, Some(&other));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("not the key this trail was sealed with"),
        "{out}"
    );
    std::fs::remove_file(&file).ok();
}

on_all_backends!(the_audit_key_comes_from_the_environment_for_any_named_database);

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

fn write_notes(db: &TestDb, n: i64) {
    db.create_table::<Note>().unwrap();
    let mut s = db.session().unwrap();
    for id in 1..=n {
        s.insert(Note {
            id,
            text: format!("n{id}"),
        })
        .unwrap();
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

#[entity(table = "cli_migrated")]
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    #[column(primary_key)]
    pub id: i64,
    pub label: String,
}

fn migrate_lists_and_applies_pending_migrations(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!("custodian-cli-migrations-{}", db.name));
    let _ = std::fs::remove_dir_all(&dir);
    let written = custodian::migrate::generate(
        &dir,
        "cli table",
        &[Migrated::META],
        custodian::backends::ALL,
    )
    .unwrap()
    .expect("a first migration");
    assert_eq!(written.len(), 3, "one migration per backend");
    let name = written[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let d = dir.to_str().unwrap();
    let url = format!("--url={}", db.url);

    let (code, out) = cli(&["migrate", "pending", &url, "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("pending {name}")), "{out}");
    assert!(out.contains("1 migrations pending"), "{out}");
    let (code, out) = cli(&["migrate", "run", &url, "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("applied {name}")), "{out}");
    assert!(out.contains("1 migrations applied"), "{out}");
    let (code, out) = cli(&["migrate", "pending", "--url", &db.url, "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 migrations pending") && !out.contains(&name),
        "{out}"
    );
    let (code, out) = cli(&["migrate", "run", &url, "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 migrations applied"), "{out}");
    // The migration's table exists.
    db.session()
        .unwrap()
        .insert(Migrated {
            id: 1,
            label: "migrated".into(),
        })
        .unwrap();

    // A directory without migrations for this backend is a configuration error naming it.
    let missing = dir.join("nowhere");
    let (code, out) = cli(&["migrate", "run", &url, "--dir", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nowhere"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

on_all_backends!(migrate_lists_and_applies_pending_migrations);

fn history_prints_the_audit_records_of_one_row(db: &TestDb) {
    write_notes(db, 2);
    let mut s = db.session().unwrap();
    let mut note = s.find::<Note>(&1).unwrap().unwrap();
    note.text = "edited".into();
    s.update(&mut note).unwrap();
    drop(s);
    let url = format!("--url={}", db.url);
    let (code, out) = cli(&["seal", &url]);
    assert_eq!(code, 0, "{out}");
    db.session().unwrap().delete(&note).unwrap();

    for key in ["[1]", "1", "[ 1 ]"] {
        let (code, out) = cli(&["history", &url, "--entity", "cli_notes", "--key", key]);
        assert_eq!(code, 0, "{key}: {out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{key}: {out}");
        assert!(
            lines[0].starts_with("1 ") && lines[0].contains(" test-suite insert "),
            "{out}"
        );
        assert!(
            lines[0].contains("before=null after={") && lines[0].contains("\"n1\""),
            "{out}"
        );
        assert!(
            lines[1].starts_with("3 ") && lines[1].contains(" update "),
            "{out}"
        );
        assert!(
            lines[1].contains("\"n1\"") && lines[1].contains("\"edited\""),
            "{out}"
        );
        assert!(
            lines[2].starts_with("unsealed ") && lines[2].contains(" delete "),
            "{out}"
        );
        assert!(lines[2].ends_with("after=null"), "{out}");
        assert!(!out.contains("\"n2\""), "{out}");
    }
    let (code, out) = cli(&["history", &url, "--entity", "cli_notes", "--key", "[9]"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no audit records"), "{out}");
    let (code, out) = cli(&["history", &url, "--entity", "cli_notes", "--key", "[1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--key is not JSON"), "{out}");
}

on_all_backends!(history_prints_the_audit_records_of_one_row);

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn rotate_keys_rewraps_every_data_key_batch_by_batch(db: &TestDb) {
    let mut cfg = db.config().clone();
    cfg.crypto.keys = [("k1".to_string(), K1.to_string())].into();
    cfg.crypto.active = Some("k1".into());
    let old = custodian::open(cfg)
        .unwrap()
        .acting_as(custodian::Principal::new("test-suite"));
    old.install_audit().unwrap();
    old.install_crypto().unwrap();
    let (c, mut s) = (old.crypto().unwrap(), old.session().unwrap());
    for i in 0..5 {
        c.seal(&mut s, &format!("subject-{i}"), &"secret".to_string())
            .unwrap();
    }
    drop((s, old));

    let url = format!("--url={}", db.url);
    let keys = format!("k1:{K1},k2:{K2}");
    let env = [
        ("CUSTODIAN_AUDIT_KEY", AUDIT_KEY),
        ("CUSTODIAN_CRYPTO_KEYS", keys.as_str()),
        ("CUSTODIAN_CRYPTO_ACTIVE", "k2"),
    ];
    let args = ["rotate-keys", &url, "--actor", "ops", "--batch", "2"];
    let (code, out) = cli_with_env(&args, &env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("batch 1: re-wrapped 2 data keys; 3 left"),
        "{out}"
    );
    assert!(
        out.contains("batch 2: re-wrapped 2 data keys; 1 left"),
        "{out}"
    );
    assert!(
        out.contains("batch 3: re-wrapped 1 data keys; 0 left"),
        "{out}"
    );
    assert!(
        out.contains("5 data keys re-wrapped in 3 batches under master key k2"),
        "{out}"
    );
    let rewraps = custodian::audit::chain::records_of_entity(
        &mut db.session().unwrap(),
        "custodian_subject_keys",
    )
    .unwrap()
    .into_iter()
    .filter(|(_, r)| r.op == "update" && r.actor == "ops")
    .count();
    assert_eq!(rewraps, 5);
    // Nothing is left: running it again does nothing.
    let (code, out) = cli_with_env(&args, &env);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 data keys re-wrapped in 0 batches"), "{out}");
    // Without master keys: a configuration error.
    let (code, out) = cli(&args);
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("re-wrapped"), "{out}");
}

on_all_backends!(rotate_keys_rewraps_every_data_key_batch_by_batch);

#[entity(table = "cli_generated")]
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    #[column(primary_key)]
    pub id: i64,
    pub label: String,
}

#[entity(table = "cli_generated_other")]
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedOther {
    #[column(primary_key)]
    pub id: i64,
}

/// Migration directories written under `dir`, over all backends.
fn migrations_in(dir: &std::path::Path) -> usize {
    ["postgres", "mysql", "sqlite"]
        .iter()
        .filter_map(|b| std::fs::read_dir(dir.join(b)).ok())
        .map(|entries| entries.count())
        .sum()
}

/// `migrate generate` and `drift` from an application's own binary (`cli::main_with`), and the
/// plain binary's refusal without entities.
fn entity_commands_generate_migrations_and_report_drift(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!("custodian-cli-generate-{}", db.name));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let run = |args: &[&str], entities: &[custodian::EntityMeta]| {
        custodian::cli::run_args(
            std::iter::once("custodian").chain(args.iter().copied()),
            entities,
        )
    };
    let generate = ["migrate", "generate", "--dir", d, "--name", "cli generated"];
    assert_eq!(run(&generate, &[Generated::META]), 0);
    assert_eq!(migrations_in(&dir), 3, "one migration per backend");
    // Nothing changed: nothing written.
    assert_eq!(run(&generate, &[Generated::META]), 0);
    assert_eq!(migrations_in(&dir), 3);
    // Dropping the table loses data: refused (status 2), nothing written, unless allowed.
    assert_eq!(run(&generate, &[GeneratedOther::META, Note::META]), 2);
    assert_eq!(migrations_in(&dir), 3);

    let url = format!("--url={}", db.url);
    // The table does not exist yet: drift, status 1.
    assert_eq!(run(&["drift", &url], &[Generated::META]), 1);
    let (code, out) = cli(&["migrate", "run", &url, "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run(&["drift", &url], &[Generated::META]), 0);
    // Changed behind custodian's back: a column dropped by raw SQL is drift again.
    db.session()
        .unwrap()
        .execute_sql("ALTER TABLE cli_generated DROP COLUMN label")
        .unwrap();
    assert_eq!(run(&["drift", &url], &[Generated::META]), 1);

    // The plain binary has no entities: it says how to get them, status 2.
    let (code, out) = cli(&["drift", &url]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("main_with"), "{out}");
    let (code, out) = cli(&generate);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("main_with"), "{out}");
    assert_eq!(migrations_in(&dir), 3);
    std::fs::remove_dir_all(&dir).ok();
}

on_all_backends!(entity_commands_generate_migrations_and_report_drift);
