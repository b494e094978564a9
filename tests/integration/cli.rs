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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custodian"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CUSTODIAN_AUDIT_UNKEYED")
        .env_remove("CUSTODIAN_AUDIT_KEY");
    if let Some(k) = key {
        cmd.env("CUSTODIAN_AUDIT_KEY", k);
    }
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
    let stranger = custodian::hex::encode(stranger.verifying_key().as_bytes());
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
