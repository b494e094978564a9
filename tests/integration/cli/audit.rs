//! `verify`, `seal`, `checkpoint` and `history` from the command line, and the audit key from
//! the environment.

use super::*;

/// `verify` of `db`'s trail against the checkpoint file `checkpoint`, trusting `public_key`.
fn verify_against(db: &TestDb, checkpoint: &str, public_key: &str) -> (i32, String) {
    cli(&[
        "verify",
        "--url",
        &db.url,
        "--checkpoint",
        checkpoint,
        "--public-key",
        public_key,
    ])
}

/// `history` of the note with key `key` (JSON as typed on the command line); `url` is the
/// `--url=` argument.
fn history(url: &str, key: &str) -> (i32, String) {
    cli(&["history", url, "--entity", "cli_notes", "--key", key])
}

fn verify_seal_and_checkpoint_from_the_command_line(db: &TestDb) {
    write_notes(db, 20);
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
    let (code, out) = verify_against(db, f, &public);
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
    let (code, out) = verify_against(db, b, &public);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DAMAGED"), "{out}");

    // Damage made with SQL is reported with its position, and exit status 1.
    db.raw_sql("UPDATE custodian_audit SET actor = 'mallory' WHERE id = (SELECT record_id FROM custodian_audit_chain WHERE seq = 7)");
    let (code, out) = verify_against(db, f, &public);
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
    write_notes(db, 1);
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
        let (code, out) = history(&url, key);
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
    let (code, out) = history(&url, "[9]");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no audit records"), "{out}");
    let (code, out) = history(&url, "[1");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--key is not JSON"), "{out}");
}

on_all_backends!(history_prints_the_audit_records_of_one_row);
