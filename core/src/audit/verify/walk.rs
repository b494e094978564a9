//! The walk along the chain: links read batch by batch with their records, checked on a second
//! thread while the next batch is read, each link against its predecessor.

use super::fast::{hex_matches, FastCheck};
use super::{Damage, DamageKind};
use crate::audit::record::{AuditRecord, ChainKey};
use crate::audit::store::{self, Read};
use crate::audit::tables::custodian_audit_chain as c;
use crate::context::Context;
use crate::error::Result;
use diesel::prelude::*;
use std::collections::HashSet;

/// Links read per batch.
pub(super) const BATCH: i64 = 5_000;

/// A link's record as read.
// Nearly every value is a record: boxing it would allocate once per record on verification's
// hot path to save space on the rare other cases.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum Slot {
    /// No record has the link's record id.
    Missing,
    /// The record's row does not decode.
    Undecodable,
    Record(AuditRecord),
}

/// One link with its record.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub seq: i64,
    pub record_id: i64,
    pub prev_hash: String,
    pub hash: String,
    pub record: Slot,
}

/// A batch of links as verification reads it.
pub(super) struct Batch {
    pub links: Vec<Link>,
    /// Records whose ids fell in the range read but that no link of the batch names.
    pub others: Vec<Read>,
    /// The range of record ids read, every record in it being in `links` or `others`.
    pub covered: Option<(i64, i64)>,
    /// A link row that does not decode: the batch ends before it.
    pub bad_link: bool,
}

/// Reads up to `limit` links from sequence number `from` on, each with its record, and the
/// records from `floor` on when `floor` lies below the batch's first record id (so that
/// consecutive batches see every record id, not only those the links name).
pub(super) fn read_batch(s: &mut impl Context, from: i64, limit: i64, floor: i64) -> Result<Batch> {
    let mut bad_link = false;
    let links: Vec<(i64, i64, String, String)> = match store::decoded(s, |conn| {
        c::table
            .filter(c::seq.ge(from))
            .order(c::seq.asc())
            .limit(limit)
            .select((c::seq, c::record_id, c::prev_hash, c::hash))
            .load(conn)
    })? {
        Some(links) => links,
        None => {
            // Keep the links before the first one that does not decode.
            bad_link = true;
            let mut good = Vec::new();
            let seqs: Vec<i64> = s.run(|conn| {
                c::table
                    .filter(c::seq.ge(from))
                    .order(c::seq.asc())
                    .limit(limit)
                    .select(c::seq)
                    .load(conn)
            })?;
            for seq in seqs {
                let one = store::decoded(s, |conn| {
                    c::table
                        .find(seq)
                        .select((c::seq, c::record_id, c::prev_hash, c::hash))
                        .first(conn)
                })?;
                match one {
                    Some(link) => good.push(link),
                    None => break,
                }
            }
            good
        }
    };
    let (Some(lo), Some(hi)) = (
        links.iter().map(|l| l.1).min(),
        links.iter().map(|l| l.1).max(),
    ) else {
        return Ok(Batch {
            links: Vec::new(),
            others: Vec::new(),
            covered: None,
            bad_link,
        });
    };
    let lo = lo.min(floor);
    let len = i64::try_from(links.len()).unwrap_or(i64::MAX);
    let spread = hi
        .checked_sub(lo)
        .is_none_or(|span| span >= len.saturating_mul(2).saturating_add(64));
    let (records, covered) = if spread {
        // Records sealed long after their neighbours: read just the ones the links name.
        let mut ids: Vec<i64> = links.iter().map(|l| l.1).collect();
        ids.sort_unstable();
        ids.dedup();
        (store::read_each(s, ids)?, None)
    } else {
        (store::read_range(s, lo, hi, i64::MAX)?, Some((lo, hi)))
    };
    // Each link's record by binary search (ids ascend); a record named by several links (a
    // damaged chain) is copied for all but the last.
    let at: Vec<Option<usize>> = links
        .iter()
        .map(|l| records.binary_search_by_key(&l.1, Read::id).ok())
        .collect();
    let mut uses = vec![0u32; records.len()];
    for i in at.iter().flatten() {
        uses[*i] += 1;
    }
    let mut records: Vec<Option<Read>> = records.into_iter().map(Some).collect();
    let links = links
        .into_iter()
        .zip(at)
        .map(|((seq, record_id, prev_hash, hash), at)| {
            let read = at.and_then(|i| {
                uses[i] -= 1;
                if uses[i] == 0 {
                    records[i].take()
                } else {
                    records[i].clone()
                }
            });
            let record = match read {
                None => Slot::Missing,
                Some(Read::Undecodable(_)) => Slot::Undecodable,
                Some(Read::Record(r)) => Slot::Record(r),
            };
            Link {
                seq,
                record_id,
                prev_hash,
                hash,
                record,
            }
        })
        .collect();
    Ok(Batch {
        links,
        others: records.into_iter().flatten().collect(),
        covered,
        bad_link,
    })
}

/// The first 16 bytes of a seal, as a number: what identifies a record in the replay check.
pub(super) fn seal_id(mac: &str) -> Option<u128> {
    mac.get(..32).and_then(|h| u128::from_str_radix(h, 16).ok())
}

/// Where the walk along the chain stands, carried from batch to batch.
pub(super) struct Walk {
    pub fast: FastCheck,
    pub chain: ChainKey,
    pub checkpoint_seq: Option<i64>,
    /// Hash of the last link checked.
    pub running: String,
    /// Sequence number of the next link.
    pub expected: i64,
    pub links: u64,
    /// Record id of the last link checked.
    pub last_record: i64,
    pub at_checkpoint: Option<String>,
    pub damage: Option<Damage>,
    /// Seals of the records chained so far: a second one is a replayed copy.
    pub seals: HashSet<u128>,
    /// Record ids named by links.
    pub ids: HashSet<i64>,
    /// Records read along the way that no link of their batch named (a later link may).
    pub others: Vec<Read>,
}

impl Walk {
    /// Checks the next batch of links; `false` once damage is found, which ends the walk.
    pub(super) fn check(&mut self, batch: &Batch) -> bool {
        let links = &batch.links;
        for (i, link) in links.iter().enumerate() {
            let expected = self.expected;
            let found = |kind, detail: String| Damage {
                seq: expected,
                kind,
                detail,
            };
            if link.seq != expected {
                self.damage = Some(found(
                    DamageKind::Deleted,
                    format!("link {expected} is missing (next link is {})", link.seq),
                ));
                return false;
            }
            let record = match &link.record {
                Slot::Missing => {
                    self.damage = Some(found(
                        DamageKind::Deleted,
                        format!("record {} of link {} is missing", link.record_id, link.seq),
                    ));
                    return false;
                }
                Slot::Undecodable => {
                    self.damage = Some(found(
                        DamageKind::Modified,
                        format!(
                            "record {} of link {} cannot be decoded (a value of the wrong type or encoding)",
                            link.record_id, link.seq
                        ),
                    ));
                    return false;
                }
                Slot::Record(r) => r,
            };
            let next_id = links.get(i + 1).map(|n| n.record_id);
            if !self.fast.seal_is_valid(record) {
                let kind = match next_id {
                    // Records are sealed in insertion order: a record with a newer id than the
                    // one after it was added later, by someone other than custodian.
                    Some(next) if record.id > next => DamageKind::Inserted,
                    _ => DamageKind::Modified,
                };
                self.damage = Some(found(
                    kind,
                    format!(
                        "record {} ({} {} {}) does not match its seal",
                        record.id, record.op, record.entity, record.entity_key
                    ),
                ));
                return false;
            }
            let seal = seal_id(&record.mac).unwrap_or_default();
            if self.seals.contains(&seal) || self.ids.contains(&record.id) {
                self.damage = Some(found(
                    DamageKind::Replayed,
                    format!(
                        "record {} ({} {} {}, transaction {} #{}) is a copy of a record chained earlier",
                        record.id, record.op, record.entity, record.entity_key, record.tx_id, record.ordinal
                    ),
                ));
                return false;
            }
            let should_be =
                self.chain
                    .link_digest(&self.running, &record.mac, link.seq, link.record_id);
            if link.prev_hash != self.running || !hex_matches(&should_be, &link.hash) {
                let kind = self.classify_broken_link(batch, i, record);
                self.damage = Some(found(
                    kind,
                    format!(
                        "link {} does not follow from link {} under the chain key",
                        link.seq,
                        link.seq - 1
                    ),
                ));
                return false;
            }
            if self.checkpoint_seq == Some(link.seq) {
                self.at_checkpoint = Some(link.hash.clone());
            }
            self.running.clone_from(&link.hash);
            self.expected += 1;
            self.links += 1;
            self.last_record = record.id;
            self.seals.insert(seal);
            self.ids.insert(record.id);
        }
        true
    }

    /// What most likely happened at a link whose record is sound but whose hash does not follow
    /// (only someone without the chain key recomputes links, and gets them wrong).
    fn classify_broken_link(&self, batch: &Batch, i: usize, record: &AuditRecord) -> DamageKind {
        let link = &batch.links[i];
        // The record of another position fits this link, whether the links were re-pointed
        // (its row id) or the rows' contents exchanged (this link's row id): records were moved.
        let fits = |mac: &str, id: i64| {
            hex_matches(
                &self.chain.link_digest(&self.running, mac, link.seq, id),
                &link.hash,
            )
        };
        let moved = batch.links.iter().any(|other| {
            other.seq != link.seq
                && matches!(&other.record, Slot::Record(o)
                    if fits(&o.mac, other.record_id) || fits(&o.mac, link.record_id))
        });
        // Records are chained in insertion order (but for late commits): a record newer than
        // the next link's was moved up.
        let out_of_order = batch
            .links
            .get(i + 1)
            .is_some_and(|next| record.id > next.record_id && self.last_record < next.record_id);
        if moved || out_of_order {
            return DamageKind::Reordered;
        }
        // Ids between the previous link's record and this one that no longer exist: a record
        // was removed and the chain renumbered around it.
        if let Some((lo, hi)) = batch.covered {
            let from = self.last_record.saturating_add(1).max(lo);
            let to = record.id.min(hi.saturating_add(1));
            if from < to {
                let present: HashSet<i64> = batch
                    .links
                    .iter()
                    .map(|l| l.record_id)
                    .chain(batch.others.iter().map(Read::id))
                    .collect();
                if (from..to).any(|id| !present.contains(&id)) {
                    return DamageKind::Deleted;
                }
            }
        }
        DamageKind::Modified
    }
}

/// Reads the chain batch by batch on `s` while a second thread checks the batch read before:
/// reading (the database's work and decoding rows) and checking (hashing) overlap. Stops
/// reading once the checker has found damage. Returns the highest record id up to which every
/// record (from 1 on) was read, if the batches' record reads left no hole, and whether the walk
/// stopped at a link row that does not decode.
pub(super) fn walk(
    s: &mut impl Context,
    walk: &mut Walk,
    progress: Option<(crate::observe::ProgressFn<'_>, Option<u64>)>,
) -> Result<(Option<i64>, bool)> {
    std::thread::scope(|scope| {
        let (to_check, batches) = std::sync::mpsc::sync_channel::<Batch>(1);
        let checker = scope.spawn(move || {
            for batch in batches {
                if !walk.check(&batch) {
                    break;
                }
                walk.others.extend(batch.others);
                if let Some((report, total)) = progress {
                    report(crate::observe::Progress {
                        done: walk.links,
                        total,
                        phase: "verify",
                    });
                }
            }
        });
        let mut from = 1i64;
        let mut covered = Some(0i64);
        let read = loop {
            let floor = covered.map_or(i64::MAX, |c| c.saturating_add(1));
            let batch = match read_batch(s, from, BATCH, floor) {
                Ok(batch) => batch,
                Err(e) => break Err(e),
            };
            let bad_link = batch.bad_link;
            let Some(last) = batch.links.last().map(|link| link.seq) else {
                break Ok((covered, bad_link));
            };
            covered = match (covered, batch.covered) {
                (Some(c), Some((lo, hi))) if lo <= c.saturating_add(1) => Some(c.max(hi)),
                _ => None,
            };
            // A batch without damage ends at its last link: the next one starts after it.
            if to_check.send(batch).is_err() {
                break Ok((None, false));
            }
            if bad_link {
                break Ok((covered, true));
            }
            match last.checked_add(1) {
                Some(next) => from = next,
                None => break Ok((None, false)),
            }
        };
        drop(to_check);
        if let Err(panic) = checker.join() {
            std::panic::resume_unwind(panic);
        }
        read
    })
}
