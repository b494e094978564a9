//! Backups with verified restore, attacked: on each engine a backup is restored into a new
//! database and verified against its signed manifest; then a row changed, deleted or added
//! behind custodian's back, an audit record rewritten, a manifest edited by hand or checked
//! with the wrong key, another backup's dump or restore, must each be reported (naming the
//! table) or refused. A backup taken while writers run must verify (dump and manifest read
//! the same snapshot). Also the command line's exit codes.

use crate::common::{TestDb, AUDIT_KEY};
use custodian::audit::ed25519_dalek::SigningKey;
use custodian::backup::{self, Finding, Manifest};
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Principal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A ledger row with the types a compliance table holds.
#[entity(table = "bk_entries")]
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub account: String,
    pub amount: i64,
    pub cleared: bool,
    pub at: chrono::NaiveDateTime,
    pub proof: Vec<u8>,
    pub note: Option<String>,
    pub ref_id: uuid::Uuid,
}

pub fn entry(i: i64) -> Entry {
    Entry {
        id: 0,
        account: format!("acct-{}", i % 7),
        amount: i * 100 - 3,
        cleared: i % 2 == 0,
        at: chrono::NaiveDate::from_ymd_opt(2026, 1, 1 + (i % 28) as u32)
            .unwrap()
            .and_hms_micro_opt(10, (i % 60) as u32, 5, (i * 37 % 1_000_000) as u32)
            .unwrap(),
        proof: vec![0, 0xff, i as u8, b'\''],
        note: (i % 3 == 0).then(|| format!("note 'quoted' \\ {i}")),
        ref_id: uuid::Uuid::from_u128(i as u128 * 7919),
    }
}

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

/// A database for restores on `kind`: a new, empty one (PostgreSQL, MariaDB) or a path no
/// database is open on yet (SQLite).
pub struct Target {
    pub url: String,
    _server: Option<TestDb>,
    file: Option<PathBuf>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Target {
    pub fn new(kind: BackendKind) -> Target {
        match kind {
            BackendKind::Sqlite => {
                let path = std::env::temp_dir().join(format!(
                    "bk_target_{}_{}.db",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                Target {
                    url: format!("sqlite://{}", path.display()),
                    _server: None,
                    file: Some(path),
                }
            }
            _ => {
                let db = TestDb::new(kind);
                Target {
                    url: db.url.clone(),
                    _server: Some(db),
                    file: None,
                }
            }
        }
    }

    pub fn open(&self) -> Db {
        open(&self.url)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

pub fn open(url: &str) -> Db {
    let mut cfg = DatabaseConfig::from_url(url).expect("valid url");
    cfg.pool.max_size = 4;
    cfg.audit.key = Some(AUDIT_KEY.into());
    custodian::open(cfg)
        .expect("open database")
        .acting_as(Principal::new("backup-test").with_role("admin"))
}

/// A new directory (removed on drop).
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(what: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "bk_{what}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` audited entries, some updated and one deleted, the trail sealed.
pub fn populate(db: &Db, n: i64) {
    db.install_audit().unwrap();
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Entry> = (1..=n).map(entry).collect();
    s.insert_many(&mut rows).unwrap();
    let mut first = rows[0].clone();
    first.note = Some("updated".into());
    s.update(&mut first).unwrap();
    s.delete(&rows[1]).unwrap();
    db.seal_audit().unwrap();
}

fn restore(dir: &Path, kind: BackendKind) -> Target {
    let target = Target::new(kind);
    backup::restore(dir, &target.url, &[key().verifying_key()]).expect("restore");
    target
}

fn findings(db: &Db, manifest: &Manifest) -> Vec<Finding> {
    backup::verify(db, manifest, &[key().verifying_key()])
        .expect("verify")
        .findings
}

fn raw(url: &str, kind: BackendKind, sql: &str) {
    use custodian::diesel::connection::SimpleConnection;
    use custodian::diesel::Connection;
    match kind {
        BackendKind::Postgres => custodian::diesel::PgConnection::establish(url)
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
        BackendKind::Mysql => custodian::diesel::MysqlConnection::establish(url)
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
        _ => custodian::diesel::SqliteConnection::establish(custodian::backends::sqlite::path_of(
            url,
        ))
        .unwrap()
        .batch_execute(sql)
        .unwrap(),
    }
}

fn restored_copy_verifies_and_every_change_behind_its_back_is_named(db: &TestDb) {
    populate(db, 40);
    let dir = Dir::new("one");
    let manifest = backup::backup(db, &dir.join("b"), &key()).unwrap();
    assert_eq!(manifest.body.tables["bk_entries"].rows, 39);
    assert!(manifest.body.audit_head.as_ref().unwrap().seq >= 41);

    // Intact.
    let t = restore(&dir.join("b"), db.kind);
    assert_eq!(findings(&t.open(), &manifest), vec![]);
    // The restored application works on: its key generator is past the restored rows.
    t.open().session().unwrap().insert(entry(99)).unwrap();

    // One changed value, in the middle of a row.
    let t = restore(&dir.join("b"), db.kind);
    raw(
        &t.url,
        db.kind,
        "UPDATE bk_entries SET amount = amount + 1 WHERE id = 7",
    );
    assert_eq!(
        findings(&t.open(), &manifest),
        vec![Finding::Content {
            table: "bk_entries".into()
        }]
    );
    // A deleted row.
    let t = restore(&dir.join("b"), db.kind);
    raw(&t.url, db.kind, "DELETE FROM bk_entries WHERE id = 9");
    assert_eq!(
        findings(&t.open(), &manifest),
        vec![Finding::RowCount {
            table: "bk_entries".into(),
            expected: 39,
            found: 38
        }]
    );
    // An added row (a copy of one that exists, under a new key).
    let t = restore(&dir.join("b"), db.kind);
    raw(
        &t.url,
        db.kind,
        "INSERT INTO bk_entries (id, account, amount, cleared, at, proof, note, ref_id) \
         SELECT 1000, account, amount, cleared, at, proof, note, ref_id FROM bk_entries \
         WHERE id = 3",
    );
    assert_eq!(
        findings(&t.open(), &manifest),
        vec![Finding::RowCount {
            table: "bk_entries".into(),
            expected: 39,
            found: 40
        }]
    );
    // An audit record rewritten: the table's digest and the chain both say so.
    let t = restore(&dir.join("b"), db.kind);
    raw(
        &t.url,
        db.kind,
        "UPDATE custodian_audit SET actor = 'mallory' WHERE id = 5",
    );
    let found = findings(&t.open(), &manifest);
    assert_eq!(
        found[0],
        Finding::Content {
            table: "custodian_audit".into()
        }
    );
    assert!(matches!(found.last(), Some(Finding::Chain(_))), "{found:?}");
}

fn manifests_are_signed_and_restore_takes_only_its_own_dump(db: &TestDb) {
    populate(db, 12);
    let dir = Dir::new("sig");
    let a = backup::backup(db, &dir.join("a"), &key()).unwrap();
    db.session().unwrap().insert(entry(50)).unwrap();
    db.seal_audit().unwrap();
    let b = backup::backup(db, &dir.join("b"), &key()).unwrap();
    let trusted = [key().verifying_key()];

    // The wrong key: not trusted, an error (exit status 2 on the command line).
    let other = SigningKey::from_bytes(&[22; 32]).verifying_key();
    let t = restore(&dir.join("a"), db.kind);
    let err = backup::verify(&t.open(), &a, &[other]).unwrap_err();
    assert_eq!(
        err.integrity_kind(),
        Some(custodian::IntegrityKind::Backup),
        "{err}"
    );
    assert!(backup::restore(&dir.join("a"), &Target::new(db.kind).url, &[other]).is_err());

    // Edited by hand to hide a deleted row: the signature no longer holds.
    raw(&t.url, db.kind, "DELETE FROM bk_entries WHERE id = 5");
    let mut edited = a.clone();
    edited.body.tables.get_mut("bk_entries").unwrap().rows -= 1;
    let found = findings(&t.open(), &edited);
    assert!(
        matches!(found.as_slice(), [Finding::Signature(_)]),
        "{found:?}"
    );
    let text = std::fs::read_to_string(dir.join("a/manifest.json"))
        .unwrap()
        .replacen("\"rows\": 11", "\"rows\": 10", 1);
    let edited = Manifest::from_json(&text).unwrap();
    assert!(matches!(
        findings(&t.open(), &edited).as_slice(),
        [Finding::Signature(_)]
    ));

    // A restore of the other backup does not pass for this one.
    let t = restore(&dir.join("b"), db.kind);
    let found = findings(&t.open(), &a);
    assert!(
        found.contains(&Finding::RowCount {
            table: "bk_entries".into(),
            expected: 11,
            found: 12
        }),
        "{found:?}"
    );
    assert!(found.iter().any(|f| matches!(f, Finding::AuditHead { .. })));
    assert_eq!(findings(&t.open(), &b), vec![]);

    // Another backup's dump under this manifest is refused before anything is loaded.
    let dump = &a.body.dump.as_ref().unwrap().file;
    std::fs::copy(dir.join("b").join(dump), dir.join("a").join(dump)).unwrap();
    let target = Target::new(db.kind);
    let err = backup::restore(&dir.join("a"), &target.url, &trusted).unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");

    // A database that already has tables is not overwritten.
    let err = backup::restore(&dir.join("b"), &t.url, &trusted).unwrap_err();
    assert!(err.to_string().contains("already has tables"), "{err}");
}

/// Writers insert audited rows (and seal) without pause while the backup runs: the restored
/// copy must match its manifest exactly, which holds only when the dump and the manifest
/// read the same snapshot.
fn a_backup_taken_while_writers_run_verifies(db: &TestDb) {
    populate(db, 2_000);
    let stop = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    let dir = Dir::new("live");
    let manifest = std::thread::scope(|scope| {
        for w in 0..2 {
            let (stop, written) = (&stop, &written);
            scope.spawn(move || {
                let mut i = 10_000 + w * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let mut s = db.session().unwrap();
                    let mut rows: Vec<Entry> = (i..i + 5).map(entry).collect();
                    match s.insert_many(&mut rows) {
                        Ok(_) => {
                            written.fetch_add(5, Ordering::Relaxed);
                        }
                        Err(e) if e.is_retryable() => {}
                        Err(e) => panic!("writer: {e}"),
                    }
                    i += 5;
                    if i % 50 == 0 {
                        let _ = db.seal_audit();
                    }
                }
            });
        }
        while written.load(Ordering::Relaxed) < 50 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let m = backup::backup(db, &dir.join("b"), &key());
        let during = written.load(Ordering::Relaxed);
        while written.load(Ordering::Relaxed) < during + 50 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        m.unwrap()
    });
    let t = restore(&dir.join("b"), db.kind);
    assert_eq!(findings(&t.open(), &manifest), vec![]);
    // The writers went on after the backup: the live database is past the manifest.
    let live = findings(db, &manifest);
    assert!(
        live.iter().any(|f| matches!(f, Finding::RowCount { .. })),
        "{live:?}"
    );
}

on_all_backends!(
    restored_copy_verifies_and_every_change_behind_its_back_is_named,
    manifests_are_signed_and_restore_takes_only_its_own_dump,
    a_backup_taken_while_writers_run_verifies,
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custodian"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CUSTODIAN_URL")
        .env("CUSTODIAN_AUDIT_KEY", AUDIT_KEY)
        .output()
        .expect("run the custodian binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The command line: backup, restore and `verify --manifest` with the exit codes of `verify`
/// (0 intact, 1 damage, 2 untrusted key).
fn backup_restore_and_verify_from_the_command_line(db: &TestDb) {
    populate(db, 10);
    let dir = Dir::new("cli");
    std::fs::create_dir_all(&dir.0).unwrap();
    let key_file = dir.join("backup.key");
    std::fs::write(&key_file, hex(&key().to_bytes())).unwrap();
    let public = hex(key().verifying_key().as_bytes());
    let out = dir.join("b");
    let (code, text) = cli(&[
        "backup",
        "--url",
        &db.url,
        "--out",
        out.to_str().unwrap(),
        "--signing-key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let target = Target::new(db.kind);
    let (code, text) = cli(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--url",
        &target.url,
        "--public-key",
        &public,
    ]);
    assert_eq!(code, 0, "{text}");
    let manifest = out.join("manifest.json");
    let verify = |key: &str, manifest: &Path| {
        cli(&[
            "verify",
            "--url",
            &target.url,
            "--manifest",
            manifest.to_str().unwrap(),
            "--public-key",
            key,
        ])
    };
    let (code, text) = verify(&public, &manifest);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("intact: 5 tables"), "{text}");

    let other = hex(SigningKey::from_bytes(&[23; 32]).verifying_key().as_bytes());
    let (code, text) = verify(&other, &manifest);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not trusted"), "{text}");

    let edited = dir.join("edited.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&edited, text.replacen("\"rows\": 9", "\"rows\": 8", 1)).unwrap();
    let (code, text) = verify(&public, &edited);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DAMAGED: manifest signature"), "{text}");

    raw(
        &target.url,
        db.kind,
        "UPDATE bk_entries SET account = 'x' WHERE id = 4",
    );
    let (code, text) = verify(&public, &manifest);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("DAMAGED: table bk_entries: content differs"),
        "{text}"
    );
}

on_all_backends!(backup_restore_and_verify_from_the_command_line);
