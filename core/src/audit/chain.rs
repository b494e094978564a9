//! The hash chain: appending records (writers), sealing them into the chain in commit order
//! (sealers, one at a time across every process, under the head row's lock), and verifying it.

use super::checkpoint::Checkpoint;
use super::record::{link_hash, AuditKey, AuditRecord, GENESIS};
use super::tables::{
    self, custodian_audit as a, custodian_audit_chain as c, custodian_audit_gap as g,
    custodian_audit_head as h,
};
use crate::conn::AnyConnection;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::sql_types::StoredDatetime;
use crate::tx::TxOptions;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Records read or sealed per statement.
const BATCH: i64 = 5_000;

type RecordRow = (
    i64,
    String,
    StoredDatetime,
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

fn record_of(r: RecordRow) -> AuditRecord {
    AuditRecord {
        id: r.0,
        tx_id: r.1,
        at: r.2 .0,
        actor: r.3,
        tenant: r.4,
        entity: r.5,
        entity_key: r.6,
        op: r.7,
        before: r.8,
        after: r.9,
        reason: r.10,
        request_id: r.11,
        mac: r.12,
    }
}

/// The columns of a record, in [`RecordRow`] order.
macro_rules! record_columns {
    () => {
        (
            a::id,
            a::tx_id,
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
        )
    };
}

/// Creates the audit tables, the chain head and the sealers' high-water mark if they do not
/// exist yet. Adds what is missing to a trail installed by an older version.
pub fn install(s: &mut Session) -> Result<()> {
    let backend = s.backend();
    for meta in tables::ALL {
        let exists = s.run(|c| backend.live_columns(c, &meta))?.is_some();
        if !exists {
            for sql in backend.create_table_sql(&meta) {
                s.execute_sql(&sql)?;
            }
        }
    }
    let heads: i64 = s.run(|conn| h::table.count().get_result(conn))?;
    if heads == 0 {
        // A new chain: its high-water mark starts at 0 with no gaps. (A chain from before the
        // mark gets one at its next seal.)
        s.run(|conn| {
            diesel::insert_into(h::table)
                .values((h::id.eq(1), h::seq.eq(0i64), h::hash.eq(GENESIS)))
                .execute(conn)?;
            diesel::insert_into(h::table)
                .values((
                    h::id.eq(MARK_ROW),
                    h::seq.eq(0i64),
                    h::hash.eq(format!("{MARK_PREFIX}0")),
                ))
                .execute(conn)
        })?;
    }
    Ok(())
}

/// The insert values of one record, borrowed (or `owned`, cloned: a fixed-size batch's
/// prepared-statement cache key must not borrow).
macro_rules! record_values {
    ($r:expr) => {
        record_values!(@ $r, |v| v)
    };
    (owned $r:expr) => {
        record_values!(@ $r, |v| v.clone())
    };
    (@ $r:expr, |$v:ident| $take:expr) => {
        (
            a::tx_id.eq(record_values!(@take &$r.tx_id, $v, $take)),
            a::at.eq(StoredDatetime($r.at)),
            a::actor.eq(record_values!(@take &$r.actor, $v, $take)),
            a::tenant.eq(record_values!(@take &$r.tenant, $v, $take)),
            a::entity.eq(record_values!(@take &$r.entity, $v, $take)),
            a::entity_key.eq(record_values!(@take &$r.entity_key, $v, $take)),
            a::op.eq(record_values!(@take &$r.op, $v, $take)),
            a::before_image.eq(record_values!(@take &$r.before, $v, $take)),
            a::after_image.eq(record_values!(@take &$r.after, $v, $take)),
            a::reason.eq(record_values!(@take &$r.reason, $v, $take)),
            a::request_id.eq(record_values!(@take &$r.request_id, $v, $take)),
            a::mac.eq(record_values!(@take &$r.mac, $v, $take)),
        )
    };
    (@take $field:expr, $v:ident, $take:expr) => {{
        let $v = $field;
        $take
    }};
}

/// Appends records (inside the writer's transaction): one record as a cached single-row
/// statement, more in multi-row statements of up to 2,000 records, each statement's values
/// within `max_bytes` (the server's packet limit, `None`: no limit). A record that alone exceeds
/// the limit is refused with an error naming both sizes, before anything is sent.
pub(crate) fn append(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
    max_bytes: Option<usize>,
) -> QueryResult<usize> {
    // Bytes a record's values take on the wire: its text, plus a generous allowance per value
    // for length prefixes, types and the fixed-size values (id, time).
    fn wire_size(r: &AuditRecord) -> usize {
        let texts = [&r.tx_id, &r.actor, &r.entity, &r.entity_key, &r.op, &r.mac];
        let optional = [&r.tenant, &r.before, &r.after, &r.reason, &r.request_id];
        texts.iter().map(|t| t.len()).sum::<usize>()
            + optional
                .iter()
                .filter_map(|t| t.as_ref())
                .map(String::len)
                .sum::<usize>()
            + 16 * (texts.len() + optional.len() + 2)
    }
    // The statement header and the SQL text take part of the packet too: keep an eighth free.
    let budget = max_bytes.map(|m| m - m / 8);
    if let Some(budget) = budget {
        if let Some(r) = records.iter().find(|r| wire_size(r) > budget) {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "the audit record of {} (key {}) takes about {} bytes, more than the {} bytes                      one statement may carry (max_allowed_packet {}): raise max_allowed_packet",
                    r.entity,
                    r.entity_key,
                    wire_size(r),
                    budget,
                    max_bytes.unwrap_or_default()
                )
                .into(),
            ));
        }
    }
    let fits =
        |rs: &[AuditRecord]| budget.is_none_or(|b| rs.iter().map(wire_size).sum::<usize>() <= b);
    if let [r] = records {
        return diesel::insert_into(a::table)
            .values(record_values!(r))
            .execute(conn);
    }
    if fits(records) {
        // A transaction's few records: a fixed-size array, whose statement diesel keeps
        // prepared (a `Vec` insert is re-planned every time).
        macro_rules! fixed {
            ($($n:literal)*) => {
                match records.len() {
                    $($n => {
                        let rows: Vec<_> = records.iter().map(|r| record_values!(owned r)).collect();
                        if let Ok(rows) = <[_; $n]>::try_from(rows) {
                            return crate::dispatch!(conn, c => diesel::insert_into(a::table).values(rows).execute(c));
                        }
                    })*
                    _ => {}
                }
            };
        }
        fixed!(2 3 4 5 6 7 8);
    }
    let mut n = 0;
    let mut rest = records;
    while !rest.is_empty() {
        // The longest run from the front that fits (at least one record, which fits alone).
        let mut take = 1;
        let mut bytes = wire_size(&rest[0]);
        while take < rest.len().min(2_000) {
            let next = wire_size(&rest[take]);
            if budget.is_some_and(|b| bytes + next > b) {
                break;
            }
            bytes += next;
            take += 1;
        }
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let rows: Vec<_> = chunk.iter().map(|r| record_values!(r)).collect();
        n += crate::dispatch!(conn, c => diesel::insert_into(a::table).values(&rows).execute(c))?;
    }
    Ok(n)
}

/// What a seal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealReport {
    /// Records sealed by this call.
    pub sealed: usize,
    /// Sequence number of the last link.
    pub head_seq: i64,
}

/// The row of `custodian_audit_head` that holds the sealers' high-water mark.
const MARK_ROW: i32 = 2;

/// The mark row's `hash`: this prefix and the chain length the mark was written at. A mark
/// written at another length than the head's is stale (another sealer, e.g. an older custodian,
/// moved the head) and the next seal rescans everything once.
const MARK_PREFIX: &str = "high-water mark at link ";

/// Gap ids looked up, or gap rows written or deleted, per statement.
const GAP_IDS: usize = 1_000;

/// Ids read per statement when the gaps are rebuilt.
const ID_BATCH: i64 = 50_000;

/// Binds records into the chain, batch by batch, in the order given.
struct Sealer<'k> {
    key: Option<&'k AuditKey>,
    seq: i64,
    prev: String,
    sealed: usize,
}

impl Sealer<'_> {
    /// Checks the seals of `batch` and appends a link for each record.
    fn seal(&mut self, tx: &mut Session, batch: Vec<RecordRow>) -> Result<()> {
        let mut links = Vec::with_capacity(batch.len());
        for row in batch {
            let record = record_of(row);
            if !record.seal_is_valid(self.key) {
                return Err(Error::Integrity(format!(
                    "audit record {} ({} {} {}) has an invalid seal: forged or altered before it was sealed",
                    record.id, record.op, record.entity, record.entity_key
                )));
            }
            self.seq += 1;
            let hash = link_hash(&self.prev, &record.mac, self.seq);
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
                crate::dispatch!(conn, cn => diesel::insert_into(c::table).values(&links).execute(cn))
            })?;
        }
        Ok(())
    }
}

/// Seals every committed, unsealed record into the chain, oldest insertion first. Sealers
/// serialize on the head row (on every backend and across processes); writers never wait for
/// them. A record whose seal does not match its content under `key` was forged or altered
/// before sealing: nothing is sealed and the error names it.
///
/// A seal reads only what it has not seen: the records above the high-water mark (the highest
/// record id sealed), and the records whose ids were gaps below it at earlier seals (ids are
/// assigned at insert, so a transaction that commits after a seal can hold ids below records
/// that seal took; such gaps are kept in `custodian_audit_gap` until their records appear).
/// Without a valid mark (a database from before the mark, or a head moved by another sealer)
/// it finds unsealed records by a scan of the whole trail once, and sets the mark.
pub fn seal(s: &mut Session, key: Option<&AuditKey>) -> Result<SealReport> {
    s.flush_audit()?;
    let options = TxOptions::new().immediate().no_retry();
    s.transaction_with(&options, |tx| {
        // Take the sealers' lock: the head row.
        let locked = tx.run(|conn| {
            diesel::update(h::table.find(1))
                .set(h::seq.eq(h::seq))
                .execute(conn)
        })?;
        if locked != 1 {
            return Err(Error::Integrity(
                "the audit chain head is missing: run Db::install_audit".into(),
            ));
        }
        let (seq, prev): (i64, String) =
            tx.run(|conn| h::table.find(1).select((h::seq, h::hash)).first(conn))?;
        let mark: Option<(i64, String)> = tx.run(|conn| {
            h::table
                .find(MARK_ROW)
                .select((h::seq, h::hash))
                .first(conn)
                .optional()
        })?;
        let tracked = mark.and_then(|(high, note)| {
            let at: i64 = note.strip_prefix(MARK_PREFIX)?.parse().ok()?;
            (at == seq).then_some(high)
        });
        let mut sealer = Sealer {
            key,
            seq,
            prev,
            sealed: 0,
        };
        let high = match tracked {
            Some(high) => {
                seal_gaps(tx, &mut sealer)?;
                seal_above(tx, &mut sealer, high)?
            }
            None => {
                seal_unchained(tx, &mut sealer)?;
                let backend = tx.backend();
                if tx
                    .run(|conn| backend.live_columns(conn, &tables::GAP))?
                    .is_none()
                {
                    // Installed by an older version and not installed since: seal as it did,
                    // without a mark (Db::install_audit adds the gap table).
                    return finish_seal(tx, sealer, None);
                }
                rebuild_gaps(tx)?
            }
        };
        finish_seal(tx, sealer, Some(high))
    })
}

/// Moves the head to the last link sealed and, when given, sets the high-water mark.
fn finish_seal(tx: &mut Session, sealer: Sealer<'_>, high: Option<i64>) -> Result<SealReport> {
    let Sealer {
        seq, prev, sealed, ..
    } = sealer;
    tx.run(|conn| {
        diesel::update(h::table.find(1))
            .set((h::seq.eq(seq), h::hash.eq(&prev)))
            .execute(conn)
    })?;
    if let Some(high) = high {
        tx.run(|conn| {
            diesel::delete(h::table.find(MARK_ROW)).execute(conn)?;
            diesel::insert_into(h::table)
                .values((
                    h::id.eq(MARK_ROW),
                    h::seq.eq(high),
                    h::hash.eq(format!("{MARK_PREFIX}{seq}")),
                ))
                .execute(conn)
        })?;
    }
    Ok(SealReport {
        sealed,
        head_seq: seq,
    })
}

/// Seals the records that appeared in the gaps below the high-water mark, in id order, and
/// shrinks the gaps accordingly.
fn seal_gaps(tx: &mut Session, sealer: &mut Sealer<'_>) -> Result<()> {
    let gaps: Vec<(i64, i64)> = tx.run(|conn| {
        g::table
            .order(g::lo.asc())
            .select((g::lo, g::hi))
            .load(conn)
    })?;
    if gaps.is_empty() {
        return Ok(());
    }
    // Ids of the records found, ascending (the gaps are disjoint and read in order).
    let mut found: Vec<i64> = Vec::new();
    let mut i = 0;
    while i < gaps.len() {
        let (lo, hi) = gaps[i];
        if lo == hi {
            // A run of single-id gaps: one `IN` list.
            let mut ids = Vec::new();
            while i < gaps.len() && gaps[i].0 == gaps[i].1 && ids.len() < GAP_IDS {
                ids.push(gaps[i].0);
                i += 1;
            }
            let batch: Vec<RecordRow> = tx.run(|conn| {
                a::table
                    .filter(a::id.eq_any(ids))
                    .order(a::id.asc())
                    .select(record_columns!())
                    .load(conn)
            })?;
            found.extend(batch.iter().map(|r| r.0));
            sealer.seal(tx, batch)?;
        } else {
            i += 1;
            let mut after = lo - 1;
            loop {
                let batch: Vec<RecordRow> = tx.run(|conn| {
                    a::table
                        .filter(a::id.gt(after))
                        .filter(a::id.le(hi))
                        .order(a::id.asc())
                        .limit(BATCH)
                        .select(record_columns!())
                        .load(conn)
                })?;
                let Some(last) = batch.last().map(|r| r.0) else {
                    break;
                };
                after = last;
                found.extend(batch.iter().map(|r| r.0));
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
fn seal_above(tx: &mut Session, sealer: &mut Sealer<'_>, high: i64) -> Result<i64> {
    let mut after = high;
    let mut gaps = Vec::new();
    loop {
        let batch: Vec<RecordRow> = tx.run(|conn| {
            a::table
                .filter(a::id.gt(after))
                .order(a::id.asc())
                .limit(BATCH)
                .select(record_columns!())
                .load(conn)
        })?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            if r.0 > after.saturating_add(1) {
                gaps.push((after + 1, r.0 - 1));
            }
            after = r.0;
        }
        sealer.seal(tx, batch)?;
    }
    insert_gaps(tx, &gaps)?;
    Ok(after)
}

/// Seals every record without a link, found by joining the whole trail with the chain (for a
/// database without a valid high-water mark).
fn seal_unchained(tx: &mut Session, sealer: &mut Sealer<'_>) -> Result<()> {
    let mut after = i64::MIN;
    loop {
        let batch: Vec<RecordRow> = tx.run(|conn| {
            a::table
                .left_join(c::table.on(c::record_id.eq(a::id)))
                .filter(c::seq.is_null())
                .filter(a::id.gt(after))
                .order(a::id.asc())
                .limit(BATCH)
                .select(record_columns!())
                .load(conn)
        })?;
        let Some(last) = batch.last().map(|r| r.0) else {
            return Ok(());
        };
        after = last;
        sealer.seal(tx, batch)?;
    }
}

/// After [`seal_unchained`] (every visible record is in the chain): the gaps are the ids from 1
/// to the highest record id in the chain that no link names. Returns that highest id, the new
/// high-water mark.
fn rebuild_gaps(tx: &mut Session) -> Result<i64> {
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
fn insert_gaps(tx: &mut Session, gaps: &[(i64, i64)]) -> Result<()> {
    for chunk in gaps.chunks(GAP_IDS) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(lo, hi)| (g::lo.eq(*lo), g::hi.eq(*hi)))
            .collect();
        tx.run(|conn| {
            crate::dispatch!(conn, cn => diesel::insert_into(g::table).values(&rows).execute(cn))
        })?;
    }
    Ok(())
}

/// The kind of damage verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageKind {
    /// A record's content (or a link) was changed.
    Modified,
    /// A record or a link was removed.
    Deleted,
    /// A record that custodian did not write was added.
    Inserted,
    /// Records were moved to other positions.
    Reordered,
    /// The end of the chain was cut off (detected against the head or a checkpoint).
    Truncated,
}

/// The first damage found, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Sequence number of the first bad link (for unsealed records: the next one).
    pub seq: i64,
    /// What is wrong.
    pub kind: DamageKind,
    /// Details for a human.
    pub detail: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Links checked.
    pub links: u64,
    /// Sequence number of the last link.
    pub last_seq: i64,
    /// Hash of the last link.
    pub last_hash: String,
    /// Committed records not sealed yet (all with valid seals unless `damage` says otherwise).
    pub unsealed: u64,
    /// The first damage found; `None` if the chain is intact.
    pub damage: Option<Damage>,
}

impl VerifyReport {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.damage.is_none()
    }

    /// `Ok` if intact, else [`Error::Integrity`] describing the first damage.
    pub fn into_result(self) -> Result<VerifyReport> {
        match &self.damage {
            None => Ok(self),
            Some(d) => Err(Error::Integrity(format!(
                "audit chain damaged at sequence {}: {:?}: {}",
                d.seq, d.kind, d.detail
            ))),
        }
    }
}

type LinkRow = (i64, i64, String, String, Option<RecordRow>);

/// One link of the chain with its record, as stored (the record is `None` if it was deleted).
pub type StoredLink = (i64, i64, String, String, Option<AuditRecord>);

/// Up to `limit` links from sequence number `from` on, each with its record: the read
/// verification does. Two range scans, the links by `seq` and their records by `id` (records
/// are sealed in insertion order, so a batch's ids are close together); a batch whose record
/// ids are spread wide (records sealed long after their neighbours) is read with a join.
pub fn read_links(s: &mut Session, from: i64, limit: i64) -> Result<Vec<StoredLink>> {
    Ok(read_batch(s, from, limit, i64::MAX)?.links)
}

/// A batch of links as verification reads it.
struct Batch {
    links: Vec<StoredLink>,
    /// Records whose ids fell in the range read but that no link of the batch names.
    others: Vec<AuditRecord>,
    /// The range of record ids read, every record in it being in `links` or `others`; `None`
    /// when the batch was read with a join.
    covered: Option<(i64, i64)>,
}

/// [`read_links`], also reading the records from `floor` on when `floor` lies below the
/// batch's first record id (so that consecutive batches see every record id, not only those
/// the links name), and returning the records no link names.
fn read_batch(s: &mut Session, from: i64, limit: i64, floor: i64) -> Result<Batch> {
    let links: Vec<(i64, i64, String, String)> = s.run(|conn| {
        c::table
            .filter(c::seq.ge(from))
            .order(c::seq.asc())
            .limit(limit)
            .select((c::seq, c::record_id, c::prev_hash, c::hash))
            .load(conn)
    })?;
    let (Some(lo), Some(hi)) = (
        links.iter().map(|l| l.1).min(),
        links.iter().map(|l| l.1).max(),
    ) else {
        return Ok(Batch {
            links: Vec::new(),
            others: Vec::new(),
            covered: None,
        });
    };
    let lo = lo.min(floor);
    let len = i64::try_from(links.len()).unwrap_or(i64::MAX);
    let spread = hi
        .checked_sub(lo)
        .is_none_or(|span| span >= len.saturating_mul(2).saturating_add(64));
    if spread {
        return Ok(Batch {
            links: read_links_joined(s, from, limit)?,
            others: Vec::new(),
            covered: None,
        });
    }
    let records: Vec<RecordRow> = s.run(|conn| {
        a::table
            .filter(a::id.ge(lo))
            .filter(a::id.le(hi))
            .order(a::id.asc())
            .select(record_columns!())
            .load(conn)
    })?;
    // Each link's record (by binary search: ids ascend); a record named by several links (a
    // damaged chain) is copied for all but the last.
    let at: Vec<Option<usize>> = links
        .iter()
        .map(|l| records.binary_search_by_key(&l.1, |r| r.0).ok())
        .collect();
    let mut uses = vec![0u32; records.len()];
    for i in at.iter().flatten() {
        uses[*i] += 1;
    }
    let mut records: Vec<Option<RecordRow>> = records.into_iter().map(Some).collect();
    let links = links
        .into_iter()
        .zip(at)
        .map(|((seq, rid, prev, hash), at)| {
            let record = at.and_then(|i| {
                uses[i] -= 1;
                if uses[i] == 0 {
                    records[i].take()
                } else {
                    records[i].clone()
                }
            });
            (seq, rid, prev, hash, record.map(record_of))
        })
        .collect();
    Ok(Batch {
        links,
        others: records.into_iter().flatten().map(record_of).collect(),
        covered: Some((lo, hi)),
    })
}

/// [`read_links`] in one statement: the links joined with their records.
fn read_links_joined(s: &mut Session, from: i64, limit: i64) -> Result<Vec<StoredLink>> {
    let batch: Vec<LinkRow> = s.run(|conn| {
        c::table
            .left_join(a::table.on(a::id.eq(c::record_id)))
            .filter(c::seq.ge(from))
            .order(c::seq.asc())
            .limit(limit)
            .select((
                c::seq,
                c::record_id,
                c::prev_hash,
                c::hash,
                record_columns!().nullable(),
            ))
            .load(conn)
    })?;
    Ok(batch
        .into_iter()
        .map(|(seq, rid, prev, hash, rec)| (seq, rid, prev, hash, rec.map(record_of)))
        .collect())
}

/// The checks of [`AuditRecord::seal_is_valid`] and [`link_hash`], for verification's hot
/// loop: the HMAC key schedule is done once, the canonical encoding is written into a reused
/// buffer, and digests are compared with the stored hex without allocating. Gives the same
/// answers (the unit tests below compare them).
struct FastCheck {
    /// `None` without a key (plain SHA-256, as [`AuditRecord::compute_mac`]).
    hmac: Option<Hmac<Sha256>>,
    buf: Vec<u8>,
}

impl FastCheck {
    fn new(key: Option<&AuditKey>) -> Self {
        let hmac = key.and_then(|k| {
            let bytes = crate::hex::decode(&k.to_hex())?;
            <Hmac<Sha256> as Mac>::new_from_slice(&bytes).ok()
        });
        FastCheck {
            hmac,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Whether `record`'s stored seal matches its content.
    fn seal_is_valid(&mut self, record: &AuditRecord) -> bool {
        if !canonical_into(record, &mut self.buf) {
            self.buf = record.canonical();
        }
        let digest: [u8; 32] = match &self.hmac {
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(&self.buf);
                mac.finalize().into_bytes().into()
            }
            None => Sha256::digest(&self.buf).into(),
        };
        hex_matches(&digest, &record.mac)
    }
}

/// Whether `hex` is the lower-case hex of `digest` (what [`crate::hex::encode`] writes).
fn hex_matches(digest: &[u8; 32], hex: &str) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let hex = hex.as_bytes();
    hex.len() == 64
        && digest.iter().zip(hex.chunks_exact(2)).all(|(b, pair)| {
            pair[0] == DIGITS[usize::from(b >> 4)] && pair[1] == DIGITS[usize::from(b & 0x0f)]
        })
}

/// [`link_hash`] as bytes.
fn link_digest(prev_hash: &str, mac: &str, seq: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custodian-chain-v1\n");
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(mac.as_bytes());
    h.update(b"\n");
    h.update(seq.to_be_bytes());
    h.finalize().into()
}

/// [`AuditRecord::canonical`] into `out` (cleared first), with the timestamp written by hand;
/// `false` (and `out` unspecified) for timestamps it does not handle (years outside 1000 to
/// 9999, leap seconds), which the caller encodes with [`AuditRecord::canonical`].
fn canonical_into(r: &AuditRecord, out: &mut Vec<u8>) -> bool {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (r.at.year(), r.at.nanosecond());
    if !(1000..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return false;
    }
    // "%Y-%m-%d %H:%M:%S%.6f"
    let mut at = [0u8; 26];
    let mut put = |from: usize, width: usize, mut v: u32| {
        for i in (from..from + width).rev() {
            at[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, r.at.month());
    put(8, 2, r.at.day());
    put(11, 2, r.at.hour());
    put(14, 2, r.at.minute());
    put(17, 2, r.at.second());
    put(20, 6, nanos / 1_000);
    for (i, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        at[i] = sep;
    }
    out.clear();
    out.extend_from_slice(b"custodian-audit-v1\n");
    for v in [
        Some(r.tx_id.as_bytes()),
        Some(&at[..]),
        Some(r.actor.as_bytes()),
        r.tenant.as_deref().map(str::as_bytes),
        Some(r.entity.as_bytes()),
        Some(r.entity_key.as_bytes()),
        Some(r.op.as_bytes()),
        r.before.as_deref().map(str::as_bytes),
        r.after.as_deref().map(str::as_bytes),
        r.reason.as_deref().map(str::as_bytes),
        r.request_id.as_deref().map(str::as_bytes),
    ] {
        match v {
            Some(v) => {
                let len = u32::try_from(v.len()).unwrap_or(u32::MAX - 1);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&v[..len as usize]);
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    true
}

/// Record ids named by the links walked, as a bitmap: whether they are distinct, and the
/// highest. Gives up (`usable = false`) on a repeated id, an id below 0, or ids too sparse for
/// a bitmap of at most 16 bits per link (or 8 MiB).
struct IdSet {
    words: Vec<u64>,
    usable: bool,
    max: i64,
}

impl IdSet {
    fn new() -> Self {
        IdSet {
            words: Vec::new(),
            usable: true,
            max: i64::MIN,
        }
    }

    /// Whether `id` was added (meaningful while `usable`).
    fn contains(&self, id: i64) -> bool {
        usize::try_from(id).is_ok_and(|bit| {
            self.words
                .get(bit / 64)
                .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
        })
    }

    /// Adds the record id of link number `links`.
    fn insert(&mut self, id: i64, links: u64) {
        if !self.usable {
            return;
        }
        self.max = self.max.max(id);
        let Ok(bit) = usize::try_from(id) else {
            self.usable = false;
            return;
        };
        let word = bit / 64;
        if word >= self.words.len() {
            let limit = usize::try_from(links / 4)
                .unwrap_or(usize::MAX)
                .max(1 << 20);
            if word >= limit {
                self.usable = false;
                return;
            }
            let len = (word + 1).max(self.words.len() * 2).min(limit);
            self.words.resize(len, 0);
        }
        let mask = 1u64 << (bit % 64);
        if self.words[word] & mask != 0 {
            self.usable = false;
        }
        self.words[word] |= mask;
    }
}

/// Where the walk along the chain stands, carried from batch to batch.
struct Walk {
    fast: FastCheck,
    checkpoint_seq: Option<i64>,
    /// Hash of the last link checked.
    running: String,
    /// Sequence number of the next link.
    expected: i64,
    links: u64,
    at_checkpoint: Option<String>,
    damage: Option<Damage>,
    ids: IdSet,
    /// Records read along the way that no link of their batch named (a later link may).
    others: Vec<AuditRecord>,
}

impl Walk {
    /// Checks the next batch of links (those from `expected` on, as [`read_links`] returns
    /// them); `false` once damage is found, which ends the walk.
    fn check(&mut self, records: &[StoredLink]) -> bool {
        for (i, (seq, record_id, prev_hash, hash, record)) in records.iter().enumerate() {
            let expected = self.expected;
            let found = |kind, detail: String| Damage {
                seq: expected,
                kind,
                detail,
            };
            if *seq != expected {
                self.damage = Some(found(
                    DamageKind::Deleted,
                    format!("link {expected} is missing (next link is {seq})"),
                ));
                return false;
            }
            let Some(record) = record else {
                self.damage = Some(found(
                    DamageKind::Deleted,
                    format!("record {record_id} of link {seq} is missing"),
                ));
                return false;
            };
            let next_id = records.get(i + 1).map(|n| n.1);
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
            let should_be = link_digest(&self.running, &record.mac, *seq);
            if *prev_hash != self.running || !hex_matches(&should_be, hash) {
                // The content of another position fits this link: records were moved.
                let running = &self.running;
                let moved = records.iter().any(|(other_seq, _, _, _, other)| {
                    other_seq != seq
                        && other
                            .as_ref()
                            .is_some_and(|o| link_hash(running, &o.mac, *seq) == *hash)
                });
                let kind = if moved {
                    DamageKind::Reordered
                } else {
                    DamageKind::Modified
                };
                self.damage = Some(found(
                    kind,
                    format!("link {seq} does not follow from link {}", seq - 1),
                ));
                return false;
            }
            if self.checkpoint_seq == Some(*seq) {
                self.at_checkpoint = Some(hash.clone());
            }
            self.running.clone_from(hash);
            self.expected += 1;
            self.links += 1;
            self.ids.insert(*record_id, self.links);
        }
        true
    }
}

/// Reads the chain batch by batch on `s` while a second thread checks the batch read before:
/// reading (the database's work and decoding rows) and checking (hashing) overlap. Stops
/// reading once the checker has found damage. Returns the highest record id up to which every
/// record (from 1 on) was read, if the batches' record reads left no hole.
fn walk(s: &mut Session, walk: &mut Walk) -> Result<Option<i64>> {
    std::thread::scope(|scope| {
        let (to_check, batches) = std::sync::mpsc::sync_channel::<Batch>(1);
        let checker = scope.spawn(move || {
            for batch in batches {
                if !walk.check(&batch.links) {
                    break;
                }
                walk.others.extend(batch.others);
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
            let Some(last) = batch.links.last().map(|link| link.0) else {
                break Ok(covered);
            };
            covered = match (covered, batch.covered) {
                (Some(c), Some((lo, hi))) if lo <= c.saturating_add(1) => Some(c.max(hi)),
                _ => None,
            };
            // A batch without damage ends at its last link: the next one starts after it.
            // (With damage the checker stops, and what is read after does not matter.)
            if to_check.send(batch).is_err() {
                break Ok(None);
            }
            match last.checked_add(1) {
                Some(next) => from = next,
                None => break Ok(None),
            }
        };
        drop(to_check);
        if let Err(panic) = checker.join() {
            std::panic::resume_unwind(panic);
        }
        read
    })
}

/// Walks the whole chain and reports the first bad position and the kind of damage: every
/// record's seal is recomputed under `key`, every link is recomputed from its predecessor, the
/// head must match the last link, and, when given, the chain must still contain `checkpoint`
/// unchanged. Unsealed records are checked for valid seals too. Reads in batches (checking one
/// batch while reading the next); writes nothing.
pub fn verify(
    s: &mut Session,
    key: Option<&AuditKey>,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport> {
    s.flush_audit()?;
    let mut state = Walk {
        fast: FastCheck::new(key),
        checkpoint_seq: checkpoint.map(|cp| cp.seq),
        running: GENESIS.to_string(),
        expected: 1,
        links: 0,
        at_checkpoint: None,
        damage: None,
        ids: IdSet::new(),
        others: Vec::new(),
    };
    let covered = walk(s, &mut state)?;
    let Walk {
        running,
        expected,
        links,
        at_checkpoint,
        mut damage,
        ids,
        others,
        ..
    } = state;
    let whole_chain = damage.is_none();
    let last_seq = expected - 1;
    if damage.is_none() {
        let (head_seq, head_hash): (i64, String) =
            s.run(|conn| h::table.find(1).select((h::seq, h::hash)).first(conn))?;
        if head_seq > last_seq {
            damage = Some(Damage {
                seq: last_seq + 1,
                kind: DamageKind::Truncated,
                detail: format!("the head says {head_seq} links, the chain ends at {last_seq}"),
            });
        } else if head_seq == last_seq && head_hash != running {
            damage = Some(Damage {
                seq: last_seq,
                kind: DamageKind::Modified,
                detail: "the head hash differs from the last link".into(),
            });
        }
    }
    if damage.is_none() {
        if let Some(cp) = checkpoint {
            if cp.seq > last_seq {
                damage = Some(Damage {
                    seq: last_seq + 1,
                    kind: DamageKind::Truncated,
                    detail: format!(
                        "the checkpoint covers {} links, the chain ends at {last_seq}",
                        cp.seq
                    ),
                });
            } else if at_checkpoint.as_deref() != Some(cp.hash.as_str()) {
                damage = Some(Damage {
                    seq: cp.seq,
                    kind: DamageKind::Modified,
                    detail: "history up to the checkpoint was rewritten: its hash differs".into(),
                });
            }
        }
    }
    // Records committed but not sealed yet must still carry valid seals.
    let mut unsealed = Unsealed {
        key,
        next_seq: last_seq + 1,
        count: 0,
        damage: None,
    };
    let found = if !(whole_chain && ids.usable) {
        false
    } else if covered.is_some_and(|c| c >= ids.max) {
        // Every record up to the highest one in the chain was read: those no link named are
        // the unsealed ones below it.
        let mut below: Vec<AuditRecord> = others
            .into_iter()
            .filter(|r| r.id > 0 && !ids.contains(r.id))
            .collect();
        below.sort_unstable_by_key(|r| r.id);
        below.dedup_by_key(|r| r.id);
        for record in &below {
            unsealed.check(record);
        }
        unsealed.above(s, ids.max.max(0), None)?
    } else {
        unsealed.above(s, ids.max.max(0), Some(links))?
    };
    if !found {
        unsealed.count = 0;
        unsealed.damage = None;
        unsealed.unchained(s)?;
    }
    if damage.is_none() {
        damage = unsealed.damage;
    }
    Ok(VerifyReport {
        links,
        last_seq,
        last_hash: running,
        unsealed: unsealed.count,
        damage,
    })
}

/// The records of the trail that are not in the chain, as verification finds them.
struct Unsealed<'k> {
    key: Option<&'k AuditKey>,
    /// Where an invalid one is reported: after the last link.
    next_seq: i64,
    count: u64,
    /// The first with an invalid seal.
    damage: Option<Damage>,
}

impl Unsealed<'_> {
    fn check(&mut self, record: &AuditRecord) {
        self.count += 1;
        if self.damage.is_none() && !record.seal_is_valid(self.key) {
            self.damage = Some(Damage {
                seq: self.next_seq,
                kind: DamageKind::Inserted,
                detail: format!(
                    "unsealed record {} ({} {} {}) does not match its seal",
                    record.id, record.op, record.entity, record.entity_key
                ),
            });
        }
    }

    fn check_rows(&mut self, batch: Vec<RecordRow>) {
        for row in batch {
            self.check(&record_of(row));
        }
    }

    /// After a walk of the whole chain whose links name distinct records, the highest being
    /// `high`: checks the records above `high`. Returns whether these are all the unsealed
    /// ones: given `links`, whether the trail holds that many records more (if not, some record
    /// below `high` is not in the chain, and [`Unsealed::unchained`] has to find it); without,
    /// the caller has accounted for those below `high`.
    fn above(&mut self, s: &mut Session, high: i64, links: Option<u64>) -> Result<bool> {
        let total: Option<i64> = match links {
            Some(_) => Some(s.run(|conn| a::table.count().get_result(conn))?),
            None => None,
        };
        let mut after = high;
        loop {
            let batch: Vec<RecordRow> = s.run(|conn| {
                a::table
                    .filter(a::id.gt(after))
                    .order(a::id.asc())
                    .limit(BATCH)
                    .select(record_columns!())
                    .load(conn)
            })?;
            let Some(last) = batch.last().map(|r| r.0) else {
                break;
            };
            after = last;
            self.check_rows(batch);
        }
        Ok(match (total, links) {
            (Some(total), Some(links)) => {
                u64::try_from(total).ok() == links.checked_add(self.count)
            }
            _ => true,
        })
    }

    /// Checks every record without a link, found by joining the whole trail with the chain.
    fn unchained(&mut self, s: &mut Session) -> Result<()> {
        let mut after = 0i64;
        loop {
            let batch: Vec<RecordRow> = s.run(|conn| {
                a::table
                    .left_join(c::table.on(c::record_id.eq(a::id)))
                    .filter(c::seq.is_null())
                    .filter(a::id.gt(after))
                    .order(a::id.asc())
                    .limit(BATCH)
                    .select(record_columns!())
                    .load(conn)
            })?;
            let Some(last) = batch.last().map(|r| r.0) else {
                return Ok(());
            };
            after = last;
            self.check_rows(batch);
        }
    }
}

/// The head of the chain: `(seq, hash)` of the last link.
pub fn head(s: &mut Session) -> Result<(i64, String)> {
    s.run(|conn| h::table.find(1).select((h::seq, h::hash)).first(conn))
}

/// Every record about one entity row, oldest first, with its chain position if sealed.
pub fn records_of_entity_key(
    s: &mut Session,
    entity: &str,
    key_json: &str,
) -> Result<Vec<(Option<i64>, AuditRecord)>> {
    s.flush_audit()?;
    let (entity, key_json) = (entity.to_string(), key_json.to_string());
    let rows: Vec<(Option<i64>, RecordRow)> = s.run(|conn| {
        a::table
            .left_join(c::table.on(c::record_id.eq(a::id)))
            .filter(a::entity.eq(entity))
            .filter(a::entity_key.eq(key_json))
            .order(a::id.asc())
            .select((c::seq.nullable(), record_columns!()))
            .load(conn)
    })?;
    Ok(rows
        .into_iter()
        .map(|(seq, r)| (seq, record_of(r)))
        .collect())
}

/// Every record about one entity (table), oldest first, with its chain position if sealed.
pub fn records_of_entity(s: &mut Session, entity: &str) -> Result<Vec<(Option<i64>, AuditRecord)>> {
    s.flush_audit()?;
    let entity = entity.to_string();
    let rows: Vec<(Option<i64>, RecordRow)> = s.run(|conn| {
        a::table
            .left_join(c::table.on(c::record_id.eq(a::id)))
            .filter(a::entity.eq(entity))
            .order(a::id.asc())
            .select((c::seq.nullable(), record_columns!()))
            .load(conn)
    })?;
    Ok(rows
        .into_iter()
        .map(|(seq, r)| (seq, record_of(r)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: chrono::NaiveDateTime) -> AuditRecord {
        AuditRecord {
            id: 7,
            tx_id: "6f1c1c7e-8f3a-4c33-9e3b-1f0e2a9d4b10".into(),
            at,
            actor: "alice".into(),
            tenant: None,
            entity: "controls".into(),
            entity_key: "[1]".into(),
            op: "update".into(),
            before: Some(r#"{"code":"A","id":1}"#.into()),
            after: Some(String::new()),
            reason: None,
            request_id: Some("req-1".into()),
            mac: String::new(),
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nano: u32) -> chrono::NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_nano_opt(h, mi, s, nano)
            .unwrap()
    }

    #[test]
    fn fast_checks_agree_with_the_record_checks() {
        let key = AuditKey::from_bytes([7; 32]);
        let times = [
            at(2026, 3, 1, 9, 30, 0, 120_000),
            at(1000, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(999, 12, 31, 23, 59, 59, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
            at(-44, 3, 15, 12, 0, 0, 7),
        ];
        let mut handled = 0;
        for t in times {
            let mut buf = Vec::new();
            if canonical_into(&record(t), &mut buf) {
                assert_eq!(buf, record(t).canonical(), "{t}");
                handled += 1;
            }
            for k in [Some(&key), None] {
                let sealed = record(t).seal(k);
                let mut fast = FastCheck::new(k);
                assert!(sealed.seal_is_valid(k));
                assert!(fast.seal_is_valid(&sealed), "{t} {k:?}");
                let mut tampered = sealed.clone();
                tampered.tenant = Some(String::new());
                assert!(!fast.seal_is_valid(&tampered));
                let mut upper = sealed.clone();
                upper.mac = upper.mac.to_uppercase();
                assert_eq!(fast.seal_is_valid(&upper), upper.seal_is_valid(k));
                let mut other_key = FastCheck::new(Some(&AuditKey::from_bytes([8; 32])));
                assert!(!other_key.seal_is_valid(&sealed));
            }
        }
        assert_eq!(handled, 3, "the years 1000 to 9999 without leap seconds");
        let digest = link_digest(GENESIS, "aa", 3);
        assert!(hex_matches(&digest, &link_hash(GENESIS, "aa", 3)));
        assert!(!hex_matches(&digest, &link_hash(GENESIS, "aa", 4)));
        assert!(!hex_matches(
            &digest,
            &link_hash(GENESIS, "aa", 3).to_uppercase()
        ));
        assert!(!hex_matches(&digest, ""));
    }
}
