//! What crypto-shredding leaves on disk. SQLite: after an erasure commits, neither the database
//! file nor its write-ahead log holds the erased subject's wrapped key (secure_delete overwrites
//! the deleted row, the WAL is checkpointed and truncated). A property of SQLite's files, so
//! SQLite only; PostgreSQL and MariaDB keep dead row versions until VACUUM / purge (see README).

use crate::common::TestDb;
use crate::crypto::{crypto_db, Patient};
use custodian::crypto::store::custodian_subject_keys as k;
use custodian::prelude::*;
use custodian::BackendKind;

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
