//! Sealing: binding committed records into the chain in commit order, one sealer at a time
//! across every process (under the head row's lock). Writers never wait for it.
//!
//! A seal reads only what it has not seen: the records above the high-water mark (the highest
//! record id sealed), and the records whose ids were gaps below it at earlier seals (ids are
//! assigned at insert, so a transaction that commits after a seal can hold ids below records
//! that seal took; such gaps are kept in `custodian_audit_gap` until their records appear).
//!
//! Nothing a sealer reads from the head table is trusted blindly: the chain continues from the
//! last link actually stored, and the mark is used only when its MAC (under the chain key, over
//! the mark, the chain's end and every gap) holds. A mark raised, or a gap removed, by someone
//! without the key fails that check, and the seal then finds unsealed records by a scan of the
//! whole trail, so sealing cannot be suspended by editing the head.

use super::record::{AuditKey, ChainKey, GENESIS};
use super::store::{self, Read, MARK_ROW};
use super::tables::{
    custodian_audit as a, custodian_audit_chain as c, custodian_audit_gap as g,
    custodian_audit_head as h,
};
use crate::conn::AnyConnection;
use crate::context::Context;
use crate::error::{Error, IntegrityKind, Result};
use crate::observe::{Progress, ProgressFn};
use crate::tx::TxOptions;
use diesel::prelude::*;

/// Records read or sealed per statement.
const BATCH: i64 = 5_000;

/// Gap ids looked up, or gap rows written or deleted, per statement.
const GAP_IDS: usize = 1_000;

/// Ids read per statement when the gaps are rebuilt.
const ID_BATCH: i64 = 50_000;

/// What a seal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealReport {
    /// Records sealed by this call.
    pub sealed: usize,
    /// Sequence number of the last link.
    pub head_seq: i64,
}

/// Binds records into the chain, batch by batch, in the order given.
struct Sealer<'k> {
    key: Option<&'k AuditKey>,
    chain: ChainKey,
    seq: i64,
    prev: String,
    sealed: usize,
    progress: Option<ProgressFn<'k>>,
    /// The current phase: its name, its total, and `sealed` when it started.
    phase: (&'static str, Option<u64>, usize),
}

impl Sealer<'_> {
    /// Starts reporting `phase`, with no total.
    fn phase(&mut self, phase: &'static str) {
        self.phase = (phase, None, self.sealed);
    }

    /// Starts reporting `phase`, whose total `count` reads (only when progress is reported).
    fn phase_counted(
        &mut self,
        tx: &mut impl Context,
        phase: &'static str,
        count: impl FnOnce(&mut AnyConnection) -> diesel::QueryResult<i64>,
    ) -> Result<()> {
        let total = match self.progress {
            Some(_) => Some(u64::try_from(tx.run(count)?).unwrap_or(0)),
            None => None,
        };
        self.phase = (phase, total, self.sealed);
        Ok(())
    }

    fn report(&self) {
        if let Some(report) = self.progress {
            let (phase, total, base) = self.phase;
            report(Progress {
                done: (self.sealed - base) as u64,
                total,
                phase,
            });
        }
    }

    /// Checks the seals of `batch` and appends a link for each record.
    fn seal(&mut self, tx: &mut impl Context, batch: Vec<Read>) -> Result<()> {
        let mut links = Vec::with_capacity(batch.len());
        for read in batch {
            let record = match read {
                Read::Record(r) => r,
                Read::Undecodable(id) => {
                    return Err(Error::integrity(
                        IntegrityKind::AuditTrail,
                        format!(
                            "audit record {id} cannot be decoded: altered behind custodian's back"
                        ),
                    ))
                }
            };
            if !record.seal_is_valid(self.key) {
                return Err(Error::integrity(
                    IntegrityKind::AuditTrail,
                    format!(
                        "audit record {} ({} {} {}) has an invalid seal: forged or altered before it was sealed",
                        record.id, record.op, record.entity, record.entity_key
                    ),
                ));
            }
            self.seq += 1;
            let hash = self
                .chain
                .link_hash(&self.prev, &record.mac, self.seq, record.id);
            let prev = std::mem::replace(&mut self.prev, hash.clone());
            links.push((
                c::seq.eq(self.seq),
                c::record_id.eq(record.id),
                c::prev_hash.eq(prev),
                c::hash.eq(hash),
            ));
        }
        self.sealed += links.len();
        if !links.is_empty() {
            tx.run(|conn| {
                crate::conn::run::execute(conn, diesel::insert_into(c::table).values(&links))
            })?;
        }
        self.report();
        Ok(())
    }
}

/// The mark row's `hash`: the chain length it was written at, and a MAC under the chain key
/// over the mark, the chain's end and the gaps.
pub(crate) fn mark_note(
    chain: &ChainKey,
    high: i64,
    seq: i64,
    last: &str,
    gaps: &[(i64, i64)],
) -> String {
    let mut text = format!("custodian-mark-v2\n{high}\n{seq}\n{last}\n");
    for (lo, hi) in gaps {
        text.push_str(&format!("{lo}-{hi}\n"));
    }
    let mac = hex::encode(chain.digest(&[text.as_bytes()]));
    format!("{seq}:{mac}")
}

/// The last link stored: `(seq, hash)`, or `(0, GENESIS)` for an empty chain.
pub(crate) fn last_link(s: &mut impl Context) -> Result<(i64, String)> {
    let last: Option<(i64, String)> = s.run(|conn| {
        c::table
            .order(c::seq.desc())
            .select((c::seq, c::hash))
            .first(conn)
            .optional()
    })?;
    Ok(last.unwrap_or_else(|| (0, GENESIS.to_string())))
}

/// The gap ranges, ascending.
pub(crate) fn read_gaps(tx: &mut impl Context) -> Result<Vec<(i64, i64)>> {
    tx.run(|conn| {
        g::table
            .order(g::lo.asc())
            .select((g::lo, g::hi))
            .load(conn)
    })
}

/// Seals every committed, unsealed record into the chain, oldest insertion first. A record
/// whose seal does not match its content under `key`, or that cannot be decoded, was forged
/// or altered before sealing: nothing is sealed and the error names it.
pub fn seal(s: &mut impl Context, key: Option<&AuditKey>) -> Result<SealReport> {
    seal_with_progress(s, key, None)
}

/// [`seal`], reporting to `progress` after each batch: phase `"seal gaps"` (records committed
/// late below the high-water mark; no total), then `"seal"` (the records above it), or, when
/// the mark cannot be trusted, `"seal unchained"` (every record without a link). Totals are
/// counted at the start of their phase, only when `progress` is given.
pub fn seal_with_progress(
    s: &mut impl Context,
    key: Option<&AuditKey>,
    progress: Option<ProgressFn<'_>>,
) -> Result<SealReport> {
    s.flush_audit()?;
    let options = TxOptions::new()
        .immediate()
        .no_retry()
        .record_outcome(false);
    s.transaction_with(&options, |tx| {
        // Take the sealers' lock: the head row.
        let locked = tx.run(|conn| {
            diesel::update(h::table.find(store::HEAD_ROW))
                .set(h::seq.eq(h::seq))
                .execute(conn)
        })?;
        if locked != 1 {
            // The head row is only a mirror of the last link (and the lock): put it back, so
            // that deleting it cannot stop sealing. A concurrent sealer doing the same fails on
            // the key and seals next time.
            tx.run(|conn| {
                diesel::insert_into(h::table)
                    .values((
                        h::id.eq(store::HEAD_ROW),
                        h::seq.eq(0i64),
                        h::hash.eq(GENESIS),
                    ))
                    .execute(conn)
            })?;
        }
        let chain = ChainKey::new(key);
        let (seq, prev) = last_link(tx)?;
        let mark = store::head_row(tx, MARK_ROW)?;
        let gaps = read_gaps(tx)?;
        let trusted =
            mark.filter(|(high, note)| *note == mark_note(&chain, *high, seq, &prev, &gaps));
        let mut sealer = Sealer {
            key,
            chain,
            seq,
            prev,
            sealed: 0,
            progress,
            phase: ("seal", None, 0),
        };
        let high = match trusted {
            Some((high, _)) => {
                sealer.phase("seal gaps");
                seal_gaps(tx, &mut sealer, gaps)?;
                // A range count on the key: cheap next to the seal itself.
                sealer.phase_counted(tx, "seal", |conn| {
                    a::table.filter(a::id.gt(high)).count().get_result(conn)
                })?;
                seal_above(tx, &mut sealer, high)?
            }
            None => {
                sealer.phase_counted(tx, "seal unchained", |conn| {
                    a::table
                        .left_join(c::table.on(c::record_id.eq(a::id)))
                        .filter(c::seq.is_null())
                        .count()
                        .get_result(conn)
                })?;
                seal_unchained(tx, &mut sealer)?;
                rebuild_gaps(tx)?
            }
        };
        finish_seal(tx, sealer, high)
    })
}

/// Moves the head to the last link sealed and writes the high-water mark with its MAC.
fn finish_seal(tx: &mut impl Context, sealer: Sealer<'_>, high: i64) -> Result<SealReport> {
    let gaps = read_gaps(tx)?;
    let note = mark_note(&sealer.chain, high, sealer.seq, &sealer.prev, &gaps);
    let Sealer {
        seq, prev, sealed, ..
    } = sealer;
    tx.run(|conn| {
        diesel::update(h::table.find(store::HEAD_ROW))
            .set((h::seq.eq(seq), h::hash.eq(&prev)))
            .execute(conn)?;
        diesel::delete(h::table.find(MARK_ROW)).execute(conn)?;
        diesel::insert_into(h::table)
            .values((h::id.eq(MARK_ROW), h::seq.eq(high), h::hash.eq(note)))
            .execute(conn)
    })?;
    Ok(SealReport {
        sealed,
        head_seq: seq,
    })
}

/// Reads the records `ids` (ascending) in one statement, row by row if one does not decode.
fn read_ids(tx: &mut impl Context, ids: Vec<i64>) -> Result<Vec<Read>> {
    let (Some(lo), Some(hi)) = (ids.first().copied(), ids.last().copied()) else {
        return Ok(Vec::new());
    };
    let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
    let span = hi.saturating_sub(lo).saturating_add(1);
    if span <= i64::try_from(ids.len() * 4).unwrap_or(i64::MAX) {
        // Dense ids: one range read, keeping the ids asked for.
        let all = store::read_range(tx, lo, hi, span)?;
        return Ok(all
            .into_iter()
            .filter(|r| wanted.contains(&r.id()))
            .collect());
    }
    store::read_each(tx, ids)
}

/// Seals the records that appeared in the gaps below the high-water mark, in id order, and
/// shrinks the gaps accordingly.
fn seal_gaps(tx: &mut impl Context, sealer: &mut Sealer<'_>, gaps: Vec<(i64, i64)>) -> Result<()> {
    if gaps.is_empty() {
        return Ok(());
    }
    // Ids of the records found, ascending (the gaps are disjoint and read in order).
    let mut found: Vec<i64> = Vec::new();
    let mut i = 0;
    while i < gaps.len() {
        let (lo, hi) = gaps[i];
        if lo == hi {
            // A run of single-id gaps: one look-up of the ids that exist.
            let mut ids = Vec::new();
            while i < gaps.len() && gaps[i].0 == gaps[i].1 && ids.len() < GAP_IDS {
                ids.push(gaps[i].0);
                i += 1;
            }
            let present: Vec<i64> = tx.run(|conn| {
                a::table
                    .filter(a::id.eq_any(ids))
                    .order(a::id.asc())
                    .select(a::id)
                    .load(conn)
            })?;
            let batch = read_ids(tx, present)?;
            found.extend(batch.iter().map(Read::id));
            sealer.seal(tx, batch)?;
        } else {
            i += 1;
            let mut after = lo - 1;
            loop {
                let batch = store::read_range(tx, after.saturating_add(1), hi, BATCH)?;
                let Some(last) = batch.last().map(Read::id) else {
                    break;
                };
                after = last;
                found.extend(batch.iter().map(Read::id));
                sealer.seal(tx, batch)?;
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    // Replace every gap that lost ids by what is left of it.
    let mut emptied = Vec::new();
    let mut left = Vec::new();
    let mut f = found.iter().copied().peekable();
    for (lo, hi) in gaps {
        while f.next_if(|id| *id < lo).is_some() {}
        let mut next = lo;
        let mut touched = false;
        while let Some(id) = f.next_if(|id| *id <= hi) {
            touched = true;
            if id > next {
                left.push((next, id - 1));
            }
            next = id + 1;
        }
        if touched {
            emptied.push(lo);
            if next <= hi {
                left.push((next, hi));
            }
        }
    }
    for chunk in emptied.chunks(GAP_IDS) {
        tx.run(|conn| diesel::delete(g::table.filter(g::lo.eq_any(chunk.to_vec()))).execute(conn))?;
    }
    insert_gaps(tx, &left)
}

/// Seals the records above the high-water mark `high`, in id order, records the ids skipped
/// between them as gaps, and returns the new mark.
fn seal_above(tx: &mut impl Context, sealer: &mut Sealer<'_>, high: i64) -> Result<i64> {
    let mut after = high;
    let mut gaps = Vec::new();
    loop {
        let batch = store::read_range(tx, after.saturating_add(1), i64::MAX, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            if r.id() > after.saturating_add(1) {
                gaps.push((after + 1, r.id() - 1));
            }
            after = r.id();
        }
        sealer.seal(tx, batch)?;
    }
    insert_gaps(tx, &gaps)?;
    Ok(after)
}

/// Seals every record without a link, found by joining the whole trail with the chain (when
/// the mark cannot be trusted).
fn seal_unchained(tx: &mut impl Context, sealer: &mut Sealer<'_>) -> Result<()> {
    let mut after = i64::MIN;
    loop {
        let batch = store::read_unchained(tx, after, BATCH)?;
        let Some(last) = batch.last().map(Read::id) else {
            return Ok(());
        };
        after = last;
        sealer.seal(tx, batch)?;
    }
}

/// After [`seal_unchained`] (every visible record is in the chain): the gaps are the ids from 1
/// to the highest record id in the chain that no link names. Returns that highest id, the new
/// high-water mark.
fn rebuild_gaps(tx: &mut impl Context) -> Result<i64> {
    let high: Option<i64> =
        tx.run(|conn| c::table.select(diesel::dsl::max(c::record_id)).first(conn))?;
    let high = high.unwrap_or(0);
    tx.run(|conn| diesel::delete(g::table).execute(conn))?;
    let mut gaps = Vec::new();
    let mut after = 0i64;
    loop {
        let ids: Vec<i64> = tx.run(|conn| {
            c::table
                .filter(c::record_id.gt(after))
                .filter(c::record_id.le(high))
                .order(c::record_id.asc())
                .limit(ID_BATCH)
                .select(c::record_id)
                .load(conn)
        })?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if id > after + 1 {
                gaps.push((after + 1, id - 1));
            }
            after = id;
        }
    }
    insert_gaps(tx, &gaps)?;
    Ok(high)
}

/// Stores gap ranges.
fn insert_gaps(tx: &mut impl Context, gaps: &[(i64, i64)]) -> Result<()> {
    for chunk in gaps.chunks(GAP_IDS) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(lo, hi)| (g::lo.eq(*lo), g::hi.eq(*hi)))
            .collect();
        tx.run(|conn| {
            crate::conn::run::execute(conn, diesel::insert_into(g::table).values(&rows))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_binds_the_chain_end_and_the_gaps() {
        let chain = ChainKey::new(Some(&AuditKey::from_bytes([5; 32])));
        let gaps = [(3, 4), (9, 9)];
        let note = mark_note(&chain, 20, 17, "ab", &gaps);
        assert_eq!(note, mark_note(&chain, 20, 17, "ab", &gaps));
        assert_ne!(note, mark_note(&chain, 21, 17, "ab", &gaps), "raised mark");
        assert_ne!(note, mark_note(&chain, 20, 18, "ab", &gaps));
        assert_ne!(note, mark_note(&chain, 20, 17, "ac", &gaps));
        assert_ne!(
            note,
            mark_note(&chain, 20, 17, "ab", &gaps[..1]),
            "gap removed"
        );
        let other = ChainKey::new(Some(&AuditKey::from_bytes([6; 32])));
        assert_ne!(note, mark_note(&other, 20, 17, "ab", &gaps));
    }
}
