//! Master-key rotation in resumable batches, and crypto-shredding: erasing a subject leaves no
//! readable trace while the audit chain still verifies.

use super::*;

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
    rotation_is_batched_and_resumable,
    crypto_shredding_erases_a_subject,
);
