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
    let out = Command::new(env!("CARGO_BIN_EXE_custodian"))
        .args(args)
        .env("CUSTODIAN_AUDIT_KEY", AUDIT_KEY)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run the custodian binary");
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

    // Damage made with SQL is reported with its position, and exit status 1.
    db.raw_sql("UPDATE custodian_audit SET actor = 'mallory' WHERE id = (SELECT record_id FROM custodian_audit_chain WHERE seq = 7)");
    let (code, out) = cli(&["verify", "--url", &db.url, "--checkpoint", f]);
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
