//! Field encryption and crypto-shredding on every backend: sealed values round-trip, blind-index
//! lookups, wrong keys and tampering fail cleanly, master-key rotation in resumable batches, and
//! erasure of a subject leaves no readable trace while the audit chain still verifies.

use crate::common::TestDb;
use custodian::audit::chain;
use custodian::crypto::store::custodian_subject_keys as k;
use custodian::crypto::{Crypto, Sealed};
use custodian::prelude::*;
use custodian::{BackendKind, DatabaseConfig, Principal};

pub(crate) const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const OTHER: &str = "9999999999999999999999999999999999999999999999999999999999999999";

/// A patient record: the SSN and salary are sealed under the patient's subject key, the SSN
/// also has a blind index for lookups.
#[entity(table = "patients")]
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(index)]
    pub subject: String,
    pub ssn: Sealed<String>,
    #[column(index)]
    pub ssn_index: String,
    pub salary: Sealed<i64>,
    pub notes: Option<Sealed<serde_json::Value>>,
}

pub(crate) fn with_keys(cfg: &mut DatabaseConfig, keys: &[(&str, &str)], active: &str) {
    cfg.crypto.keys = keys
        .iter()
        .map(|(id, hex)| (id.to_string(), hex.to_string()))
        .collect();
    cfg.crypto.active = Some(active.into());
}

/// A fresh test database whose crypto ring is `k1` (active).
pub(crate) fn crypto_db(kind: BackendKind) -> TestDb {
    TestDb::with(kind, |c| with_keys(c, &[("k1", K1)], "k1"))
}

/// Another handle on the same database with a different crypto configuration (a restart with
/// new settings): nothing cached.
pub(crate) fn reopen(db: &TestDb, tweak: impl FnOnce(&mut DatabaseConfig)) -> Db {
    let mut cfg = db.config().clone();
    tweak(&mut cfg);
    custodian::open(cfg)
        .unwrap()
        .acting_as(Principal::new("test-suite").with_role("admin"))
}

pub(crate) fn new_patient(
    c: &Crypto,
    s: &mut Session,
    subject: &str,
    ssn: &str,
    salary: i64,
) -> Patient {
    Patient {
        id: 0,
        subject: subject.into(),
        ssn: c.seal(s, subject, &ssn.to_string()).unwrap(),
        ssn_index: c.blind_index("ssn", ssn),
        salary: c.seal(s, subject, &salary).unwrap(),
        notes: Some(
            c.seal(
                s,
                subject,
                &serde_json::json!({ "diagnosis": format!("Diagnosis-of-{ssn}") }),
            )
            .unwrap(),
        ),
    }
}

fn insert_patient(c: &Crypto, s: &mut Session, subject: &str, ssn: &str, salary: i64) -> Patient {
    let p = new_patient(c, s, subject, ssn, salary);
    s.insert(p).unwrap()
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

fn text_rows<C>(conn: &mut C, sql: &str) -> Vec<String>
where
    C: diesel::Connection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, TextRow>,
{
    diesel::sql_query(sql)
        .load::<TextRow>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.t)
        .collect()
}

/// Every row of every table of the database, each rendered as text, on a connection of its own.
pub(crate) fn dump_all(db: &TestDb) -> String {
    use diesel::Connection;
    let mut out = Vec::new();
    match db.kind {
        BackendKind::Postgres => {
            let c = &mut diesel::PgConnection::establish(&db.url).unwrap();
            let tables = text_rows(
                c,
                "SELECT table_name::text AS t FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            );
            assert!(tables.len() >= 5, "{tables:?}");
            for t in tables {
                out.extend(text_rows(c, &format!("SELECT x::text AS t FROM \"{t}\" x")));
            }
        }
        BackendKind::Mysql => {
            let c = &mut diesel::MysqlConnection::establish(&db.url).unwrap();
            let tables = text_rows(
                c,
                "SELECT CAST(table_name AS CHAR) AS t FROM information_schema.tables \
                 WHERE table_schema = DATABASE()",
            );
            assert!(tables.len() >= 5, "{tables:?}");
            for t in tables {
                let cols = text_rows(
                    c,
                    &format!(
                        "SELECT CAST(column_name AS CHAR) AS t FROM information_schema.columns \
                         WHERE table_schema = DATABASE() AND table_name = '{t}' \
                         ORDER BY ordinal_position"
                    ),
                );
                let expr = cols
                    .iter()
                    .map(|col| format!("CAST(`{col}` AS CHAR)"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.extend(text_rows(
                    c,
                    &format!("SELECT CONCAT_WS('|', {expr}) AS t FROM `{t}`"),
                ));
            }
        }
        _ => {
            let c = &mut diesel::SqliteConnection::establish(custodian::backends::sqlite::path_of(
                &db.url,
            ))
            .unwrap();
            let tables = text_rows(
                c,
                "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
            );
            assert!(tables.len() >= 5, "{tables:?}");
            for t in tables {
                let cols = text_rows(
                    c,
                    &format!("SELECT name AS t FROM pragma_table_info('{t}')"),
                );
                let expr = cols
                    .iter()
                    .map(|col| format!("COALESCE(CAST(\"{col}\" AS TEXT), '')"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                out.extend(text_rows(c, &format!("SELECT {expr} AS t FROM \"{t}\"")));
            }
        }
    }
    out.join("\n")
}

pub(crate) fn flip_last_digit(stored: &str) -> String {
    let mut t = stored.to_string();
    let last = t.pop().unwrap();
    t.push(if last == '0' { '1' } else { '0' });
    t
}

fn sealed_values_round_trip(base: &TestDb) {
    assert!(
        matches!(base.crypto(), Err(Error::Config { .. })),
        "no keys, no crypto"
    );
    let db = crypto_db(base.kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    let p = new_patient(&c, &mut s, "subj-1", "SSN-123-45-6789", 85_000);
    let p = s.insert(p).unwrap();
    let mut back = s.get::<Patient>(&p.id).unwrap();
    assert_eq!(back, p);
    assert_eq!(c.open(&mut s, &back.ssn).unwrap(), "SSN-123-45-6789");
    assert_eq!(c.open(&mut s, &back.salary).unwrap(), 85_000);
    assert_eq!(
        c.open(&mut s, back.notes.as_ref().unwrap()).unwrap(),
        serde_json::json!({ "diagnosis": "Diagnosis-of-SSN-123-45-6789" })
    );
    assert!(back.ssn.as_stored().starts_with("v1:"));
    assert_eq!(
        back.ssn.key_id(),
        back.salary.key_id(),
        "one data key per subject"
    );
    let shown = format!("{back:?}");
    assert!(!shown.contains("SSN-123"), "{shown}");

    // Update through the write path; open_for checks the subject.
    back.ssn = c
        .seal(&mut s, "subj-1", &"SSN-987-65-4321".to_string())
        .unwrap();
    back.notes = None;
    s.update(&mut back).unwrap();
    let again = s.get::<Patient>(&p.id).unwrap();
    assert_eq!(
        c.open_for(&mut s, "subj-1", &again.ssn).unwrap(),
        "SSN-987-65-4321"
    );
    assert!(matches!(
        c.open_for(&mut s, "subj-2", &again.ssn),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    assert_eq!(again.notes, None);

    // A second subject gets its own key; a handle without cache reads keys every time.
    let q = insert_patient(&c, &mut s, "subj-2", "SSN-222-22-2222", 1);
    assert_ne!(q.ssn.key_id(), p.ssn.key_id());
    let uncached = reopen(&db, |cfg| cfg.crypto.cache_ttl_ms = 0);
    let mut s2 = uncached.session().unwrap();
    let c2 = uncached.crypto().unwrap();
    assert_eq!(c2.open(&mut s2, &q.ssn).unwrap(), "SSN-222-22-2222");
    assert_eq!(c2.open(&mut s2, &again.ssn).unwrap(), "SSN-987-65-4321");

    // History (audit images) holds ciphertext that opens.
    let versions = s.history::<Patient>(&p.id).unwrap();
    assert_eq!(versions.len(), 2);
    let first = versions[0].value.as_ref().unwrap();
    assert_eq!(c.open(&mut s, &first.ssn).unwrap(), "SSN-123-45-6789");

    // No plaintext anywhere in the database, audit trail included.
    let dump = dump_all(&db);
    assert!(dump.contains(p.ssn.as_stored()), "the dump sees the data");
    for plain in ["SSN-123", "SSN-987", "SSN-222", "Diagnosis-of"] {
        assert!(!dump.contains(plain), "{plain} is stored in plaintext");
    }

    // Each key's creation is in the audit trail, without the wrapped key.
    for (subject, sealed) in [("subj-1", &p.ssn), ("subj-2", &q.ssn)] {
        let records = chain::records_of_entity_key(
            &mut s,
            "custodian_subject_keys",
            &format!(r#"["{subject}"]"#),
        )
        .unwrap();
        assert_eq!(records.len(), 1, "{subject}");
        let created = &records[0].1;
        assert_eq!(
            (created.op.as_str(), created.before.as_deref()),
            ("insert", None)
        );
        assert_eq!(created.actor, "test-suite");
        let after = created.after_json().unwrap();
        assert_eq!(after["data_key_id"], sealed.key_id());
        assert_eq!(after["master_key_id"], "k1");
        assert!(after.get("wrapped").is_none(), "{after}");
    }

    // Creating a key is audited: without an acting principal it fails closed, and nothing is
    // written (neither the key nor a record).
    let anonymous = custodian::open(db.config().clone()).unwrap();
    let mut anon = anonymous.session().unwrap();
    let err = c
        .seal(&mut anon, "subj-3", &"SSN-333".to_string())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("principal")),
        "{err:?}"
    );
    let keys: i64 = s.count(k::table.count()).unwrap();
    assert_eq!(keys, 2);
    assert!(
        chain::records_of_entity_key(&mut s, "custodian_subject_keys", r#"["subj-3"]"#)
            .unwrap()
            .is_empty()
    );
    // A known subject's key is only read: sealing needs no principal then.
    assert!(c.seal(&mut anon, "subj-1", &"SSN-111".to_string()).is_ok());
}

fn blind_index_finds_the_row(base: &TestDb) {
    let db = crypto_db(base.kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Patient> = (0..20)
        .map(|i| {
            new_patient(
                &c,
                &mut s,
                &format!("subj-{i}"),
                &format!("SSN-000-00-{i:04}"),
                i,
            )
        })
        .collect();
    s.insert_many(&mut rows).unwrap();

    let needle = c.blind_index("ssn", "SSN-000-00-0007");
    assert_eq!(needle.len(), 64);
    let found: Vec<Patient> = s
        .load(Patient::query().filter(patients::ssn_index.eq(needle.clone())))
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject, "subj-7");
    assert_eq!(c.open(&mut s, &found[0].ssn).unwrap(), "SSN-000-00-0007");
    let none: Vec<Patient> = s
        .load(Patient::query().filter(patients::ssn_index.eq(c.blind_index("ssn", "SSN-404"))))
        .unwrap();
    assert!(none.is_empty());

    // Deterministic across handles with the same index key, distinct per column and per key,
    // and stable across a rotation of the active key when index_key stays.
    assert_ne!(c.blind_index("other_column", "SSN-000-00-0007"), needle);
    let rotated = reopen(&db, |cfg| {
        with_keys(cfg, &[("k1", K1), ("k2", K2)], "k2");
        cfg.crypto.index_key = Some("k1".into());
    });
    assert_eq!(
        rotated
            .crypto()
            .unwrap()
            .blind_index("ssn", "SSN-000-00-0007"),
        needle
    );
    let other = reopen(&db, |cfg| with_keys(cfg, &[("k1", OTHER)], "k1"));
    assert_ne!(
        other
            .crypto()
            .unwrap()
            .blind_index("ssn", "SSN-000-00-0007"),
        needle
    );
}

fn wrong_keys_and_tampering_fail_cleanly(base: &TestDb) {
    let db = crypto_db(base.kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    let a = insert_patient(&c, &mut s, "subj-a", "SSN-AAA", 1);
    let b = insert_patient(&c, &mut s, "subj-b", "SSN-BBB", 2);

    // A wrong master key under the right id: the data key does not unwrap.
    let wrong = reopen(&db, |cfg| with_keys(cfg, &[("k1", OTHER)], "k1"));
    let (cw, mut sw) = (wrong.crypto().unwrap(), wrong.session().unwrap());
    let err = cw.open(&mut sw, &a.ssn).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Integrity {
                kind: custodian::IntegrityKind::Ciphertext,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(OTHER) && !err.to_string().contains(K1));
    assert!(matches!(
        cw.seal(&mut sw, "subj-a", &"x".to_string()),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    // The master key that wrapped it is not configured at all.
    let missing = reopen(&db, |cfg| with_keys(cfg, &[("k2", K2)], "k2"));
    let err = missing
        .crypto()
        .unwrap()
        .open(&mut missing.session().unwrap(), &a.ssn)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { message, .. } if message.contains("`k1`")),
        "{err:?}"
    );
    // A bad key in the configuration is refused when opening, naming the setting only.
    let bad = {
        let mut cfg = db.config().clone();
        cfg.crypto.keys.insert("k1".into(), "abc".into());
        custodian::open(cfg).unwrap_err()
    };
    assert!(matches!(bad, Error::Config { .. }) && !bad.to_string().contains("abc"));

    // Tampered ciphertext, in memory and in the database.
    let tampered = Sealed::<String>::from_stored(flip_last_digit(a.ssn.as_stored())).unwrap();
    assert!(matches!(
        c.open(&mut s, &tampered),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    db.raw_sql(&format!(
        "UPDATE patients SET ssn = '{}' WHERE id = {}",
        tampered.as_stored(),
        a.id
    ));
    let loaded = s.get::<Patient>(&a.id).unwrap();
    assert!(matches!(
        c.open(&mut s, &loaded.ssn),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    // Relabelled to another subject's data key.
    let relabelled = Sealed::<String>::from_stored(a.salary.as_stored().replacen(
        a.salary.key_id(),
        b.salary.key_id(),
        1,
    ))
    .unwrap();
    assert!(matches!(
        c.open(&mut s, &relabelled),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    // Copied whole from b's row into a's: it opens as b's value, but not as a's.
    db.raw_sql(&format!(
        "UPDATE patients SET ssn = '{}' WHERE id = {}",
        b.ssn.as_stored(),
        a.id
    ));
    let moved = s.get::<Patient>(&a.id).unwrap();
    assert!(matches!(
        c.open_for(&mut s, "subj-a", &moved.ssn),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    // Not even a sealed value: loading fails with an error, not a panic.
    db.raw_sql(&format!(
        "UPDATE patients SET ssn = 'garbage' WHERE id = {}",
        a.id
    ));
    assert!(s.get::<Patient>(&a.id).is_err());

    // Wrapped keys swapped between two subjects' rows: neither unwraps.
    let wa: String = s
        .first(k::table.find("subj-a").select(k::wrapped))
        .unwrap()
        .unwrap();
    let wb: String = s
        .first(k::table.find("subj-b").select(k::wrapped))
        .unwrap()
        .unwrap();
    db.raw_sql(&format!(
        "UPDATE custodian_subject_keys SET wrapped = '{wb}' WHERE subject = 'subj-a'"
    ));
    db.raw_sql(&format!(
        "UPDATE custodian_subject_keys SET wrapped = '{wa}' WHERE subject = 'subj-b'"
    ));
    let fresh = reopen(&db, |_| {});
    let (cf, mut sf) = (fresh.crypto().unwrap(), fresh.session().unwrap());
    assert!(matches!(
        cf.open(&mut sf, &b.ssn),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
    assert!(matches!(
        cf.open(&mut sf, &a.salary),
        Err(Error::Integrity {
            kind: custodian::IntegrityKind::Ciphertext,
            ..
        })
    ));
}

fn rotation_is_batched_and_resumable(base: &TestDb) {
    const N: usize = 500;
    let db = crypto_db(base.kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut rows: Vec<Patient> = db
        .transaction(|tx| {
            let mut rows: Vec<Patient> = (0..N)
                .map(|i| {
                    new_patient(
                        &c,
                        tx,
                        &format!("subj-{i:03}"),
                        &format!("SSN-{i:03}"),
                        i as i64,
                    )
                })
                .collect();
            tx.insert_many(&mut rows)?;
            Ok(rows)
        })
        .unwrap();
    let open_all = |db: &Db, rows: &[Patient]| {
        let (c, mut s) = (db.crypto().unwrap(), db.session().unwrap());
        for (i, p) in rows.iter().enumerate() {
            assert_eq!(c.open(&mut s, &p.ssn).unwrap(), format!("SSN-{i:03}"));
        }
    };

    // k2 becomes active; one batch runs, then the process "crashes".
    let both = |cfg: &mut DatabaseConfig| with_keys(cfg, &[("k1", K1), ("k2", K2)], "k2");
    let first = reopen(&db, both);
    let c1 = first.crypto().unwrap();
    let mut s1 = first.session().unwrap();
    assert_eq!(c1.pending_rotation(&mut s1).unwrap(), N as i64);
    assert_eq!(c1.rotate_batch(&mut s1, 100).unwrap(), 100);
    assert_eq!(c1.pending_rotation(&mut s1).unwrap(), (N - 100) as i64);
    // New subjects are wrapped under k2 straight away; half-rotated data all opens.
    rows.push(insert_patient(
        &c1,
        &mut s1,
        "subj-new",
        &format!("SSN-{N:03}"),
        0,
    ));
    assert_eq!(c1.pending_rotation(&mut s1).unwrap(), (N - 100) as i64);
    open_all(&first, &rows);
    drop((s1, first));

    // The restarted process resumes where the data says, in batches, and is idempotent.
    let second = reopen(&db, both);
    let c2 = second.crypto().unwrap();
    let mut s2 = second.session().unwrap();
    let report = c2.rotate(&mut s2, 100).unwrap();
    assert_eq!((report.rewrapped, report.batches), (N - 100, 4));
    assert_eq!(c2.pending_rotation(&mut s2).unwrap(), 0);
    assert_eq!(c2.rotate(&mut s2, 100).unwrap().rewrapped, 0);
    let under_k2: i64 = s2
        .count(k::table.filter(k::master_key_id.eq("k2")).count())
        .unwrap();
    assert_eq!(under_k2, N as i64 + 1);
    // Every re-wrap is an audited update of the key row (master key k1 -> k2, same data key).
    let rewraps: Vec<_> = chain::records_of_entity(&mut s2, "custodian_subject_keys")
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.op == "update")
        .collect();
    assert_eq!(rewraps.len(), N);
    for (_, r) in &rewraps {
        let (before, after) = (r.before_json().unwrap(), r.after_json().unwrap());
        assert_eq!(
            (&before["master_key_id"], &after["master_key_id"]),
            (&"k1".into(), &"k2".into())
        );
        assert_eq!(before["data_key_id"], after["data_key_id"]);
        assert!(after.get("wrapped").is_none() && before.get("wrapped").is_none());
    }

    // k1 can be retired: everything opens with k2 alone; without k2 nothing does.
    open_all(
        &reopen(&db, |cfg| with_keys(cfg, &[("k2", K2)], "k2")),
        &rows,
    );
    let old = reopen(&db, |cfg| with_keys(cfg, &[("k1", K1)], "k1"));
    assert!(matches!(
        old.crypto()
            .unwrap()
            .open(&mut old.session().unwrap(), &rows[0].ssn),
        Err(Error::Config { .. })
    ));
}

fn crypto_shredding_erases_a_subject(base: &TestDb) {
    let db = crypto_db(base.kind);
    db.create_table::<Patient>().unwrap();
    let c = db.crypto().unwrap();
    let mut s = db.session().unwrap();
    let mut alice = insert_patient(&c, &mut s, "subj-alice", "SSN-ALICE-1", 10);
    alice.ssn = c
        .seal(&mut s, "subj-alice", &"SSN-ALICE-2".to_string())
        .unwrap();
    s.update(&mut alice).unwrap();
    let bob = insert_patient(&c, &mut s, "subj-bob", "SSN-BOB-1", 20);
    db.seal_audit().unwrap();
    let alice_wrapped: String = s
        .first(k::table.find("subj-alice").select(k::wrapped))
        .unwrap()
        .unwrap();
    assert!(dump_all(&db).contains(&alice_wrapped));

    // Erasure without a principal is refused, and changes nothing.
    let anonymous = custodian::open(db.config().clone()).unwrap();
    let err = anonymous
        .crypto()
        .unwrap()
        .erase_subject(&mut anonymous.session().unwrap(), "subj-alice")
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");

    s.audit_context().reason = Some("erasure request 17".into());
    assert!(c.erase_subject(&mut s, "subj-alice").unwrap());
    assert!(
        !c.erase_subject(&mut s, "subj-alice").unwrap(),
        "already erased"
    );

    // Every table, audit trail included, as text: no plaintext, no trace of alice's key.
    let dump = dump_all(&db);
    assert!(
        !dump.contains(&alice_wrapped),
        "alice's wrapped key survives"
    );
    for plain in ["SSN-ALICE", "SSN-BOB", "Diagnosis-of"] {
        assert!(!dump.contains(plain), "{plain} is stored in plaintext");
    }

    // Alice's values are unreadable everywhere: live row, history, audit images, on this
    // handle and on a fresh one; bob's still open.
    let fresh = reopen(&db, |_| {});
    for (c, s) in [
        (c.clone(), &mut s),
        (fresh.crypto().unwrap(), &mut fresh.session().unwrap()),
    ] {
        let live = s.get::<Patient>(&alice.id).unwrap();
        let err = c.open(s, &live.ssn).unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden(m) if m.contains("erased")),
            "{err:?}"
        );
        assert!(matches!(c.open(s, &live.salary), Err(Error::Forbidden(_))));
        let versions = s.history::<Patient>(&alice.id).unwrap();
        assert_eq!(versions.len(), 2);
        for v in &versions {
            let old = v.value.as_ref().unwrap();
            assert!(matches!(c.open(s, &old.ssn), Err(Error::Forbidden(_))));
        }
        for (_, record) in chain::records_of_entity(s, "patients").unwrap() {
            let image = record.after_json().unwrap();
            let sealed = Sealed::<String>::from_stored(image["ssn"].as_str().unwrap()).unwrap();
            let opened = c.open(s, &sealed);
            if image["subject"] == "subj-alice" {
                assert!(matches!(opened, Err(Error::Forbidden(_))));
            } else {
                assert_eq!(opened.unwrap(), "SSN-BOB-1");
            }
        }
        assert_eq!(c.open(s, &bob.ssn).unwrap(), "SSN-BOB-1");
        assert_eq!(c.open(s, &bob.salary).unwrap(), 20);
    }

    // The chain, which hashed ciphertext, still verifies, and holds the erasure.
    let sealed = db.seal_audit().unwrap();
    assert_eq!(sealed.sealed, 1, "the erase record");
    let report = db.verify_audit(None).unwrap();
    assert!(report.is_intact(), "{:?}", report.damage);
    assert_eq!(report.unsealed, 0);
    let key_records =
        chain::records_of_entity_key(&mut s, "custodian_subject_keys", r#"["subj-alice"]"#)
            .unwrap();
    let ops: Vec<&str> = key_records.iter().map(|(_, r)| r.op.as_str()).collect();
    assert_eq!(
        ops,
        ["insert", "erase"],
        "the key's creation, then its erasure"
    );
    let (seq, record) = &key_records[1];
    assert!(seq.is_some(), "sealed into the chain");
    assert_eq!(record.op, "erase");
    assert_eq!(record.actor, "test-suite");
    assert_eq!(record.reason.as_deref(), Some("erasure request 17"));
    assert_eq!(record.after, None);
    let before = record.before_json().unwrap();
    assert_eq!(before["data_key_id"], alice.ssn.key_id());
    assert_eq!(before["master_key_id"], "k1");
    assert!(
        before.get("wrapped").is_none(),
        "the key is not kept in the trail"
    );

    // New data for the same subject gets a new key; the old values stay unreadable.
    let renewed = c
        .seal(&mut s, "subj-alice", &"SSN-ALICE-3".to_string())
        .unwrap();
    assert_ne!(renewed.key_id(), alice.ssn.key_id());
    assert_eq!(c.open(&mut s, &renewed).unwrap(), "SSN-ALICE-3");
    assert!(matches!(
        c.open(&mut s, &alice.ssn),
        Err(Error::Forbidden(_))
    ));
}

on_all_backends!(
    sealed_values_round_trip,
    blind_index_finds_the_row,
    wrong_keys_and_tampering_fail_cleanly,
    rotation_is_batched_and_resumable,
    crypto_shredding_erases_a_subject,
);
