//! Sealed values round-trip, blind-index lookups find their row, and wrong keys and tampering
//! fail cleanly.

use super::*;

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

on_all_backends!(
    sealed_values_round_trip,
    blind_index_finds_the_row,
    wrong_keys_and_tampering_fail_cleanly,
);
