//! The operator commands: `migrate run` and `pending`, `rotate-keys`, and `migrate generate`
//! and `drift` from an application's own binary.

use super::*;

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
