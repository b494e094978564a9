//! Attacks on the audit trail by someone with raw SQL and none of the keys, on a 10,000-record
//! chain: each damage is made behind custodian's back and must be reported with its kind at
//! its first bad position, with and without a checkpoint where the design allows it.
//!
//! Here: the forger's tools and the attacks on a built chain; `trail` the damage around sealing.

use crate::audit::{entry, key, Entry};
use crate::common::TestDb;
use custodian::audit::tables::{
    custodian_audit as a, custodian_audit_chain as c, custodian_audit_head as h,
};
use custodian::audit::{
    chain, ChainKey, Checkpoint, DamageKind, VerifyOptions, VerifyReport, Witness,
};
use custodian::prelude::*;
use custodian::{BackendKind, Error};

const N: i64 = 10_000;

/// Applies `tamper` inside a transaction, verifies there with `options`, and rolls everything
/// back.
fn verify_tampered(
    db: &TestDb,
    options: &VerifyOptions<'_>,
    tamper: impl Fn(&mut Session),
) -> VerifyReport {
    let mut s = db.session().unwrap();
    let mut out = None;
    let _ = s.transaction_with(&TxOptions::new().no_retry(), |tx| {
        tamper(tx);
        out = Some(chain::verify(tx, Some(&key()), options).unwrap());
        Err::<(), _>(Error::Forbidden("roll the tampering back".into()))
    });
    out.unwrap()
}

fn record_at(s: &mut Session, seq: i64) -> i64 {
    s.first(c::table.filter(c::seq.eq(seq)).select(c::record_id))
        .unwrap()
        .unwrap()
}

fn assert_damage(report: &VerifyReport, seq: i64, kind: DamageKind) {
    let d = report
        .damage
        .as_ref()
        .unwrap_or_else(|| panic!("no damage found, expected {kind:?} at {seq}"));
    assert_eq!((d.seq, d.kind), (seq, kind), "{}", d.detail);
}

/// Every column of a record but its id.
type Content = (
    String,
    i32,
    custodian::sql_types::StoredDatetime,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn content(s: &mut Session, id: i64) -> Content {
    s.first(a::table.find(id).select((
        a::tx_id,
        a::ordinal,
        a::at,
        a::actor,
        a::tenant,
        a::entity,
        a::entity_key,
        a::op,
        a::before_image,
        a::after_image,
        a::reason,
        a::request_id,
        a::mac,
    )))
    .unwrap()
    .unwrap()
}

fn put_content(s: &mut Session, id: i64, v: Content) {
    s.run(|conn| {
        diesel::update(a::table.find(id))
            .set((
                a::tx_id.eq(v.0),
                a::ordinal.eq(v.1),
                a::at.eq(v.2),
                a::actor.eq(v.3),
                a::tenant.eq(v.4),
                a::entity.eq(v.5),
                a::entity_key.eq(v.6),
                a::op.eq(v.7),
                a::before_image.eq(v.8),
                a::after_image.eq(v.9),
                a::reason.eq(v.10),
                a::request_id.eq(v.11),
                a::mac.eq(v.12),
            ))
            .execute(conn)
    })
    .unwrap();
}

/// Inserts a copy of the record of link `seq` as a new row (a replay); returns the copy's id.
fn replay(s: &mut Session, seq: i64) -> i64 {
    let id = record_at(s, seq);
    let v = content(s, id);
    s.run(|conn| {
        diesel::insert_into(a::table)
            .values((
                a::tx_id.eq(v.0),
                a::ordinal.eq(v.1),
                a::at.eq(v.2),
                a::actor.eq(v.3),
                a::tenant.eq(v.4),
                a::entity.eq(v.5),
                a::entity_key.eq(v.6),
                a::op.eq(v.7),
                a::before_image.eq(v.8),
                a::after_image.eq(v.9),
                a::reason.eq(v.10),
                a::request_id.eq(v.11),
                a::mac.eq(v.12),
            ))
            .execute(conn)
    })
    .unwrap();
    s.first(a::table.select(a::id).order(a::id.desc()))
        .unwrap()
        .unwrap()
}

/// What a forger without the key can do: recompute links `from..` with the public, unkeyed
/// formula, in the order the links now name their records, and move the head to the end.
fn relink_without_key(s: &mut Session, from: i64) {
    let unkeyed = ChainKey::new(None);
    let links: Vec<(i64, i64)> = s
        .load(
            c::table
                .filter(c::seq.ge(from))
                .order(c::seq)
                .select((c::seq, c::record_id)),
        )
        .unwrap();
    let mut prev: String = s
        .first(c::table.filter(c::seq.eq(from - 1)).select(c::hash))
        .unwrap()
        .unwrap();
    for (seq, rid) in links {
        let hash = unkeyed.link_hash(&prev, &content(s, rid).12, seq, rid);
        s.run(|conn| {
            diesel::update(c::table.find(seq))
                .set((c::prev_hash.eq(&prev), c::hash.eq(&hash)))
                .execute(conn)
        })
        .unwrap();
        prev = hash;
    }
    let last: i64 = s
        .first(c::table.select(c::seq).order(c::seq.desc()))
        .unwrap()
        .unwrap();
    s.run(|conn| {
        diesel::update(h::table.find(1))
            .set((h::seq.eq(last), h::hash.eq(&prev)))
            .execute(conn)
    })
    .unwrap();
}

/// Cuts the chain after link `cut` (links and records), moves the head there, and puts back
/// the head rows as they were when the chain ended at `cut` (a forger who kept a copy).
fn truncate(s: &mut Session, cut: i64, old_head: &[(i32, i64, String)]) {
    let ids: Vec<i64> = s
        .load(c::table.filter(c::seq.gt(cut)).select(c::record_id))
        .unwrap();
    s.run(|conn| diesel::delete(c::table.filter(c::seq.gt(cut))).execute(conn))
        .unwrap();
    s.run(|conn| diesel::delete(a::table.filter(a::id.eq_any(ids))).execute(conn))
        .unwrap();
    s.run(|conn| diesel::delete(h::table).execute(conn))
        .unwrap();
    for (id, seq, hash) in old_head {
        s.run(|conn| {
            diesel::insert_into(h::table)
                .values((h::id.eq(id), h::seq.eq(seq), h::hash.eq(hash)))
                .execute(conn)
        })
        .unwrap();
    }
}

fn head_rows(db: &TestDb) -> Vec<(i32, i64, String)> {
    db.session()
        .unwrap()
        .load(h::table.order(h::id).select((h::id, h::seq, h::hash)))
        .unwrap()
}

/// The chain of `N` entries, with two updates of entry 42 on top (`N + 2` links), sealed.
/// Returns the head rows as they were at link `N`.
fn build_chain(db: &TestDb) -> Vec<(i32, i64, String)> {
    db.create_table::<Entry>().unwrap();
    let mut s = db.session().unwrap();
    let mut rows: Vec<Entry> = (1..=N).map(entry).collect();
    s.insert_many(&mut rows).unwrap();
    assert_eq!(db.seal_audit().unwrap().head_seq, N);
    let at_n = head_rows(db);
    let mut e = s.get::<Entry>(&42).unwrap();
    e.amount = 421;
    s.update(&mut e).unwrap();
    e.amount = 422;
    s.update(&mut e).unwrap();
    assert_eq!(db.seal_audit().unwrap().head_seq, N + 2);
    at_n
}

fn tampering_is_detected(db: &TestDb) {
    let at_n = build_chain(db);
    let last = N + 2;
    let signer = custodian::audit::generate_signing_key().unwrap();
    let cp = db.checkpoint(&signer).unwrap();
    assert_eq!(cp.seq, last);
    let plain = VerifyOptions::new();
    let with_cp = VerifyOptions::new()
        .checkpoint(cp.clone())
        .trust(signer.verifying_key());
    let intact = db.verify_audit_with(&with_cp).unwrap();
    assert!(intact.is_intact(), "{:?}", intact.damage);
    assert_eq!(intact.links, last as u64);

    for options in [&plain, &with_cp] {
        // Modify one field of one record.
        let r = verify_tampered(db, options, |tx| {
            let id = record_at(tx, 5_000);
            tx.run(|c| {
                diesel::update(a::table.find(id))
                    .set(a::actor.eq("mallory"))
                    .execute(c)
            })
            .unwrap();
        });
        assert_damage(&r, 5_000, DamageKind::Modified);

        // Delete one record; delete a link with its record.
        let r = verify_tampered(db, options, |tx| {
            let id = record_at(tx, 4_321);
            tx.run(|c| diesel::delete(a::table.find(id)).execute(c))
                .unwrap();
        });
        assert_damage(&r, 4_321, DamageKind::Deleted);
        let r = verify_tampered(db, options, |tx| {
            let id = record_at(tx, 6_000);
            tx.run(|c| diesel::delete(c::table.find(6_000i64)).execute(c))
                .unwrap();
            tx.run(|c| diesel::delete(a::table.find(id)).execute(c))
                .unwrap();
        });
        assert_damage(&r, 6_000, DamageKind::Deleted);

        // Delete a record and its link, renumber the later links and recompute them.
        let r = verify_tampered(db, options, |tx| {
            let k = 6_500i64;
            let id = record_at(tx, k);
            tx.run(|c| diesel::delete(c::table.find(k)).execute(c))
                .unwrap();
            tx.run(|c| diesel::delete(a::table.find(id)).execute(c))
                .unwrap();
            let later: Vec<i64> = tx
                .load(c::table.filter(c::seq.gt(k)).order(c::seq).select(c::seq))
                .unwrap();
            for seq in later {
                tx.run(|c| {
                    diesel::update(c::table.find(seq))
                        .set(c::seq.eq(seq - 1))
                        .execute(c)
                })
                .unwrap();
            }
            relink_without_key(tx, k);
        });
        assert_damage(&r, 6_500, DamageKind::Deleted);

        // Swap two links' records and recompute.
        let r = verify_tampered(db, options, |tx| {
            let (x, y) = (record_at(tx, 2_000), record_at(tx, 2_001));
            tx.run(|c| {
                diesel::update(c::table.find(2_000i64))
                    .set(c::record_id.eq(-1i64))
                    .execute(c)
            })
            .unwrap();
            tx.run(|c| {
                diesel::update(c::table.find(2_001i64))
                    .set(c::record_id.eq(x))
                    .execute(c)
            })
            .unwrap();
            tx.run(|c| {
                diesel::update(c::table.find(2_000i64))
                    .set(c::record_id.eq(y))
                    .execute(c)
            })
            .unwrap();
            relink_without_key(tx, 2_000);
        });
        assert_damage(&r, 2_000, DamageKind::Reordered);

        // Swap two records' contents.
        let r = verify_tampered(db, options, |tx| {
            let (x, y) = (record_at(tx, 3_000), record_at(tx, 3_001));
            let (cx, cy) = (content(tx, x), content(tx, y));
            put_content(tx, x, cy);
            put_content(tx, y, cx);
        });
        assert_damage(&r, 3_000, DamageKind::Reordered);

        // Rewrite one record with a made-up seal and recompute every later link.
        let r = verify_tampered(db, options, |tx| {
            let id = record_at(tx, 8_000);
            let mut v = content(tx, id);
            v.9 = Some("{\"account\":\"acct-0\",\"amount\":1,\"id\":8000,\"note\":null}".into());
            v.12 = "e".repeat(64);
            put_content(tx, id, v);
            relink_without_key(tx, 8_000);
        });
        assert_damage(&r, 8_000, DamageKind::Modified);

        // A forged record chained into history (renumbering and relinking), and one unsealed.
        let r = verify_tampered(db, options, |tx| {
            let at = 7_000i64;
            let forged = replay(tx, at);
            tx.run(|c| {
                diesel::update(a::table.find(forged))
                    .set((a::actor.eq("mallory"), a::mac.eq("f".repeat(64))))
                    .execute(c)
            })
            .unwrap();
            let tail: Vec<i64> = tx
                .load(
                    c::table
                        .filter(c::seq.ge(at))
                        .order(c::seq.desc())
                        .select(c::seq),
                )
                .unwrap();
            for seq in tail {
                tx.run(|c| {
                    diesel::update(c::table.find(seq))
                        .set(c::seq.eq(seq + 1))
                        .execute(c)
                })
                .unwrap();
            }
            tx.run(|c| {
                diesel::insert_into(c::table)
                    .values((
                        c::seq.eq(at),
                        c::record_id.eq(forged),
                        c::prev_hash.eq(""),
                        c::hash.eq(""),
                    ))
                    .execute(c)
            })
            .unwrap();
            relink_without_key(tx, at);
        });
        assert_damage(&r, 7_000, DamageKind::Inserted);
        let r = verify_tampered(db, options, |tx| {
            let forged = replay(tx, 1);
            tx.run(|c| {
                diesel::update(a::table.find(forged))
                    .set(a::op.eq("delete"))
                    .execute(c)
            })
            .unwrap();
        });
        assert_damage(&r, last + 1, DamageKind::Inserted);

        // Replays: a copy of a sealed record, unsealed and then chained by a sealer.
        let r = verify_tampered(db, options, |tx| {
            replay(tx, 1_234);
        });
        assert_damage(&r, last + 1, DamageKind::Replayed);
        let r = verify_tampered(db, options, |tx| {
            replay(tx, 1_234);
            chain::seal(tx, Some(&key())).unwrap();
        });
        assert_damage(&r, last + 1, DamageKind::Replayed);
        // Roll entry 42 back to 421 and replay the record that made it 421: history and drift
        // would show a version its actor never wrote last.
        let r = verify_tampered(db, options, |tx| {
            tx.run(|c| {
                diesel::sql_query("UPDATE ledger SET amount = 421 WHERE id = 42").execute(c)
            })
            .unwrap();
            replay(tx, N + 1);
            assert!(
                tx.audit_drift::<Entry>().unwrap().is_empty(),
                "the rollback is hidden from drift"
            );
        });
        assert_damage(&r, last + 1, DamageKind::Replayed);

        // The head rows: deleted, moved, the sealers' mark raised.
        let r = verify_tampered(db, options, |tx| {
            tx.run(|c| diesel::delete(h::table.find(1)).execute(c))
                .unwrap();
        });
        assert_damage(&r, last, DamageKind::Deleted);
        let r = verify_tampered(db, options, |tx| {
            tx.run(|c| {
                diesel::update(h::table.find(2))
                    .set(h::seq.eq(h::seq + 1_000))
                    .execute(c)
            })
            .unwrap();
        });
        assert_damage(&r, last, DamageKind::Modified);
        let r = verify_tampered(db, options, |tx| {
            tx.run(|c| diesel::delete(h::table.find(2)).execute(c))
                .unwrap();
        });
        assert_damage(&r, last, DamageKind::Deleted);
    }

    // A clean cut with the head rows of that time put back is invisible on its own, and caught
    // against a checkpoint taken after it.
    let r = verify_tampered(db, &plain, |tx| truncate(tx, N, &at_n));
    assert!(r.is_intact(), "{:?}", r.damage);
    let r = verify_tampered(db, &with_cp, |tx| truncate(tx, N, &at_n));
    assert_damage(&r, N + 1, DamageKind::Truncated);
    // A cut that keeps today's head rows is caught without a checkpoint.
    let r = verify_tampered(db, &plain, |tx| {
        let now = head_rows(db);
        truncate(tx, N, &now);
        let hash: String = tx
            .first(c::table.filter(c::seq.eq(N)).select(c::hash))
            .unwrap()
            .unwrap();
        tx.run(|c| {
            diesel::update(h::table.find(1))
                .set((h::seq.eq(N), h::hash.eq(hash)))
                .execute(c)
        })
        .unwrap();
    });
    assert!(!r.is_intact());

    // All tampering was rolled back: the chain is intact again.
    assert!(db.verify_audit_with(&with_cp).unwrap().is_intact());
}

on_all_backends!(tampering_is_detected,);

mod trail;
