//! What crypto-shredding leaves on disk: after an erasure commits, the files holding the key
//! table no longer hold the erased subject's wrapped key. SQLite: the database file and its
//! write-ahead log (secure_delete overwrites the deleted row, the WAL is checkpointed and
//! truncated). PostgreSQL: the table's heap file (rewritten by VACUUM FULL). MariaDB: the
//! table's InnoDB tablespace (rebuilt by OPTIMIZE TABLE). Logs and replicas are beyond this
//! (see README).

use crate::common::TestDb;
use crate::crypto::{crypto_db, Patient};
use custodian::crypto::store::custodian_subject_keys as k;
use custodian::diesel::sql_types::Text;
use custodian::prelude::*;
use custodian::BackendKind;

/// One text value from the server, read on a fresh session.
fn text_of(db: &TestDb, sql: &str) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        v: String,
    }
    let rows: Vec<Row> = db
        .session()
        .unwrap()
        .load(custodian::diesel::sql_query(sql))
        .unwrap();
    rows.into_iter().next().unwrap().v
}

/// The files of the key table on a server, after its dirty pages were written out.
fn key_table_files(db: &TestDb) -> Vec<String> {
    match db.kind {
        BackendKind::Postgres => {
            db.raw_sql("CHECKPOINT");
            vec![text_of(
                db,
                "SELECT current_setting('data_directory') || '/' || \
                 pg_relation_filepath('custodian_subject_keys') AS v",
            )]
        }
        _ => {
            db.raw_sql("FLUSH TABLES custodian_subject_keys FOR EXPORT; UNLOCK TABLES");
            let dir = text_of(db, "SELECT @@datadir AS v");
            vec![format!("{dir}/{}/custodian_subject_keys.ibd", db.name)]
        }
    }
}

fn files_holding(files: &[String], needle: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .cloned()
        .collect()
}

/// The servers' key table files hold no erased key once the erasure has committed.
fn server_files_hold_no_erased_key(kind: BackendKind) {
    let db = crypto_db(kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    for subject in ["subj-alice", "subj-bob"] {
        c.seal(&mut s, subject, &"SSN-1".to_string()).unwrap();
    }
    let wrapped = |s: &mut Session, subject: &str| -> String {
        s.first(k::table.find(subject.to_string()).select(k::wrapped))
            .unwrap()
            .unwrap()
    };
    let alice = wrapped(&mut s, "subj-alice");
    let bob = wrapped(&mut s, "subj-bob");
    let before = key_table_files(&db);
    assert_eq!(
        files_holding(&before, alice.as_bytes()),
        before,
        "the probe finds a stored key"
    );
    assert!(c.erase_subject(&mut s, "subj-alice").unwrap());
    drop(s);
    let after = key_table_files(&db);
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    assert_eq!(
        files_holding(&all, alice.as_bytes()),
        Vec::<String>::new(),
        "key table files before the erasure {before:?}, after {after:?}"
    );
    // Only the erased key is gone.
    assert_eq!(files_holding(&after, bob.as_bytes()), after);
}

#[test]
fn postgres_files_hold_no_erased_key() {
    server_files_hold_no_erased_key(BackendKind::Postgres);
}

#[test]
fn mariadb_files_hold_no_erased_key() {
    server_files_hold_no_erased_key(BackendKind::Mysql);
}

/// Whether `needle` occurs in the database file or its WAL.
fn on_disk(db: &TestDb, needle: &[u8]) -> Vec<String> {
    let path = custodian::backends::sqlite::path_of(&db.url).to_string();
    let mut found = Vec::new();
    for file in [path.clone(), format!("{path}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(file);
        }
    }
    found
}

#[test]
fn sqlite_files_hold_no_erased_key() {
    let db = crypto_db(BackendKind::Sqlite);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    for subject in ["subj-alice", "subj-bob"] {
        let p = Patient {
            id: 0,
            subject: subject.into(),
            ssn: c.seal(&mut s, subject, &"SSN-1".to_string()).unwrap(),
            ssn_index: c.blind_index("ssn", "SSN-1"),
            salary: c.seal(&mut s, subject, &10).unwrap(),
            notes: None,
        };
        s.insert(p).unwrap();
    }
    let wrapped = |s: &mut Session, subject: &str| -> String {
        s.first(k::table.find(subject.to_string()).select(k::wrapped))
            .unwrap()
            .unwrap()
    };
    let alice = wrapped(&mut s, "subj-alice");
    let bob = wrapped(&mut s, "subj-bob");
    assert!(
        !on_disk(&db, alice.as_bytes()).is_empty(),
        "the probe finds a stored key"
    );

    assert!(c.erase_subject(&mut s, "subj-alice").unwrap());
    assert_eq!(on_disk(&db, alice.as_bytes()), Vec::<String>::new());
    // Only the erased key is gone.
    assert!(!on_disk(&db, bob.as_bytes()).is_empty());
}
