//! The `custodian` command line: verify, seal, checkpoint and keygen against real databases.
//!
//! Here: running the binary; the commands' tests are in `audit`, `options` and `admin`.

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

mod admin;
mod audit;
mod options;
