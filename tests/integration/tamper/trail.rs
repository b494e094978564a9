//! Damage that must neither stop sealing nor pass for an error or an intact trail: a raised
//! mark, undecodable rows, a tail cut under the witness, and verification with the wrong key.

use super::*;

/// Raising the sealers' mark or deleting the head row does not stop sealing: the next seal sees
/// the mark's MAC fail and scans the whole trail, and puts the head row back.
fn a_raised_mark_does_not_stop_sealing(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut (1..=10).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    db.raw_sql("UPDATE custodian_audit_head SET seq = seq + 1000000 WHERE id = 2");
    let r = db.verify_audit(None).unwrap();
    assert_damage(&r, 10, DamageKind::Modified);
    s.insert_many(&mut (11..=15).map(entry).collect::<Vec<_>>())
        .unwrap();
    let sealed = db.seal_audit().unwrap();
    assert_eq!((sealed.sealed, sealed.head_seq), (5, 15));
    let r = db.verify_audit(None).unwrap();
    assert!(r.is_intact(), "{:?}", r.damage);
    assert_eq!((r.links, r.unsealed), (15, 0));
    // Nor does deleting the head row.
    db.raw_sql("DELETE FROM custodian_audit_head WHERE id = 1");
    assert_damage(&db.verify_audit(None).unwrap(), 15, DamageKind::Deleted);
    s.insert(entry(16)).unwrap();
    assert_eq!(db.seal_audit().unwrap().head_seq, 16);
    let r = db.verify_audit(None).unwrap();
    assert!(r.is_intact(), "{:?}", r.damage);
    assert_eq!((r.links, r.unsealed), (16, 0));
}

/// A row whose columns no longer decode is damage at its position, not an error.
fn undecodable_rows_are_damage(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut (1..=100).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    s.insert(entry(101)).unwrap();
    let id = record_at(&mut s, 40);
    let id_unsealed: i64 = s
        .first(a::table.select(a::id).order(a::id.desc()))
        .unwrap()
        .unwrap();
    drop(s);
    match db.kind {
        BackendKind::Postgres => {
            db.raw_sql("ALTER TABLE custodian_audit ALTER COLUMN mac DROP NOT NULL")
        }
        BackendKind::Mysql => db.raw_sql("ALTER TABLE custodian_audit MODIFY mac TEXT NULL"),
        _ => {}
    }
    let corrupt = |id: i64| match db.kind {
        BackendKind::Sqlite => db.raw_sql(&format!(
            "UPDATE custodian_audit SET at = 'not a time' WHERE id = {id}"
        )),
        _ => db.raw_sql(&format!(
            "UPDATE custodian_audit SET mac = NULL WHERE id = {id}"
        )),
    };
    corrupt(id_unsealed);
    let r = db.verify_audit(None).unwrap();
    assert_damage(&r, 101, DamageKind::Modified);
    corrupt(id);
    let r = db.verify_audit(None).unwrap();
    assert_damage(&r, 40, DamageKind::Modified);
    let err = db.seal_audit().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Integrity {
                kind: custodian::IntegrityKind::AuditTrail,
                ..
            }
        ),
        "{err}"
    );
}

/// The sealer signs checkpoints into the witness; verification checks against the latest, so a
/// tail cut below it is found even with the head rows of that time put back.
fn the_witness_catches_a_tail_cut(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!("custodian-witness-{}", db.name));
    let _ = std::fs::remove_file(&dir);
    let signer = custodian::audit::generate_signing_key().unwrap();
    let signer_hex = hex::encode(signer.to_bytes());
    let witness_path = dir.to_str().unwrap().to_string();
    let db = TestDb::with(db.kind, |cfg| {
        cfg.audit.signing_key = Some(signer_hex.clone());
        cfg.audit.witness = Some(witness_path.clone());
        cfg.audit.checkpoint_every_links = 5;
    });
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut (1..=10).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    let at_10 = head_rows(&db);
    s.insert_many(&mut (11..=12).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    // Grown by 2 < 5 links, within 60 s: no new checkpoint yet.
    let witness = Witness::file(&dir);
    let latest = match witness.latest().unwrap() {
        Some(custodian::audit::WitnessEntry::Checkpoint(cp)) => cp,
        other => panic!("{other:?}"),
    };
    assert_eq!(latest.seq, 10);
    s.insert_many(&mut (13..=20).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    let r = db.verify_audit(None).unwrap();
    assert!(r.is_intact(), "{:?}", r.damage);
    assert_eq!(r.checkpoint_seq, Some(20));
    drop(s);
    // Cut back to 10 links with that time's head rows: caught against the witness.
    let mut s = db.session().unwrap();
    let mut report = None;
    let _ = s.transaction_with(&TxOptions::new().no_retry(), |tx| {
        truncate(tx, 10, &at_10);
        let options = VerifyOptions::new()
            .witness(Witness::file(&witness_path))
            .trust(signer.verifying_key());
        report = Some(chain::verify(tx, Some(&key()), &options).unwrap());
        Err::<(), _>(Error::Forbidden("rollback".into()))
    });
    assert_damage(&report.unwrap(), 11, DamageKind::Truncated);
    // A damaged witness is damage; a checkpoint signed by a stranger is an error.
    std::fs::write(&dir, "{ garbage\n").unwrap();
    let r = db.verify_audit(None).unwrap();
    assert_eq!(r.damage.map(|d| d.kind), Some(DamageKind::Modified));
    let stranger = custodian::audit::generate_signing_key().unwrap();
    let (seq, hash) = chain::head(&mut db.session().unwrap()).unwrap();
    witness
        .append(&Checkpoint::sign(seq, &hash, &stranger))
        .unwrap();
    std::fs::write(
        &dir,
        std::fs::read_to_string(&dir)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let err = db.verify_audit(None).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("not a trusted key"), "{err}");
    let _ = std::fs::remove_file(&dir);
}

/// Without the key, or with another one, verification refuses to judge: an error, never
/// "intact" and never damage.
fn the_wrong_key_is_an_error(db: &TestDb) {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    s.insert_many(&mut (1..=3).map(entry).collect::<Vec<_>>())
        .unwrap();
    db.seal_audit().unwrap();
    let mut s = db.session().unwrap();
    let none = chain::verify(&mut s, None, &VerifyOptions::new()).unwrap_err();
    assert!(matches!(none, Error::Config { .. }), "{none}");
    assert!(none.to_string().contains("CUSTODIAN_AUDIT_KEY"), "{none}");
    let other = custodian::audit::AuditKey::from_bytes([0x5a; 32]);
    let wrong = chain::verify(&mut s, Some(&other), &VerifyOptions::new()).unwrap_err();
    assert!(matches!(wrong, Error::Config { .. }), "{wrong}");
    // A checkpoint is never taken on its own word.
    let signer = custodian::audit::generate_signing_key().unwrap();
    let cp = db.checkpoint(&signer).unwrap();
    let untrusted = db.verify_audit(Some(&cp)).unwrap_err();
    assert!(matches!(untrusted, Error::Config { .. }), "{untrusted}");
    // The mode row changed (the key is right): damage at the head.
    db.raw_sql("UPDATE custodian_audit_head SET hash = 'unkeyed', seq = 0 WHERE id = 3");
    let r = db.verify_audit(None).unwrap();
    assert_eq!(r.damage.map(|d| d.kind), Some(DamageKind::Modified));
}

on_all_backends!(
    a_raised_mark_does_not_stop_sealing,
    undecodable_rows_are_damage,
    the_witness_catches_a_tail_cut,
    the_wrong_key_is_an_error,
);
