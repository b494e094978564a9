//! The hash chain: appending records (writers), sealing them into the chain in commit order
//! (sealers, one at a time across every process, under the head row's lock), and verifying it.

use super::checkpoint::Checkpoint;
use super::record::{link_hash, AuditKey, AuditRecord, GENESIS};
use super::tables::{
    self, custodian_audit as a, custodian_audit_chain as c, custodian_audit_head as h,
};
use crate::conn::AnyConnection;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::sql_types::StoredDatetime;
use crate::tx::TxOptions;
use diesel::prelude::*;

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

/// Creates the audit tables and the chain head if they do not exist yet.
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
        s.run(|conn| {
            diesel::insert_into(h::table)
                .values((h::id.eq(1), h::seq.eq(0i64), h::hash.eq(GENESIS)))
                .execute(conn)
        })?;
    }
    Ok(())
}

/// The insert values of one record.
macro_rules! record_values {
    ($r:expr) => {
        (
            a::tx_id.eq(&$r.tx_id),
            a::at.eq(StoredDatetime($r.at)),
            a::actor.eq(&$r.actor),
            a::tenant.eq(&$r.tenant),
            a::entity.eq(&$r.entity),
            a::entity_key.eq(&$r.entity_key),
            a::op.eq(&$r.op),
            a::before_image.eq(&$r.before),
            a::after_image.eq(&$r.after),
            a::reason.eq(&$r.reason),
            a::request_id.eq(&$r.request_id),
            a::mac.eq(&$r.mac),
        )
    };
}

/// Appends records (inside the writer's transaction): one record as a cached single-row
/// statement, more in multi-row statements of up to 2,000 records.
pub(crate) fn append(conn: &mut AnyConnection, records: &[AuditRecord]) -> QueryResult<usize> {
    if let [r] = records {
        return diesel::insert_into(a::table)
            .values(record_values!(r))
            .execute(conn);
    }
    let mut n = 0;
    for chunk in records.chunks(2_000) {
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

/// Seals every committed, unsealed record into the chain, oldest insertion first. Sealers
/// serialize on the head row (on every backend and across processes); writers never wait for
/// them. A record whose seal does not match its content under `key` was forged or altered
/// before sealing: nothing is sealed and the error names it.
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
        let (mut seq, mut prev): (i64, String) =
            tx.run(|conn| h::table.find(1).select((h::seq, h::hash)).first(conn))?;
        let mut sealed = 0;
        loop {
            let batch: Vec<RecordRow> = tx.run(|conn| {
                a::table
                    .left_join(c::table.on(c::record_id.eq(a::id)))
                    .filter(c::seq.is_null())
                    .order(a::id.asc())
                    .limit(BATCH)
                    .select(record_columns!())
                    .load(conn)
            })?;
            if batch.is_empty() {
                break;
            }
            let mut links = Vec::with_capacity(batch.len());
            for row in batch {
                let record = record_of(row);
                if !record.seal_is_valid(key) {
                    return Err(Error::Integrity(format!(
                        "audit record {} ({} {} {}) has an invalid seal: forged or altered before it was sealed",
                        record.id, record.op, record.entity, record.entity_key
                    )));
                }
                seq += 1;
                let hash = link_hash(&prev, &record.mac, seq);
                links.push((
                    c::seq.eq(seq),
                    c::record_id.eq(record.id),
                    c::prev_hash.eq(prev.clone()),
                    c::hash.eq(hash.clone()),
                ));
                prev = hash;
            }
            sealed += links.len();
            tx.run(|conn| {
                crate::dispatch!(conn, cn => diesel::insert_into(c::table).values(&links).execute(cn))
            })?;
        }
        tx.run(|conn| {
            diesel::update(h::table.find(1))
                .set((h::seq.eq(seq), h::hash.eq(&prev)))
                .execute(conn)
        })?;
        Ok(SealReport {
            sealed,
            head_seq: seq,
        })
    })
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

/// Up to `limit` links from sequence number `from` on, each joined with its record: the read
/// verification does, in one statement.
pub fn read_links(s: &mut Session, from: i64, limit: i64) -> Result<Vec<StoredLink>> {
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

/// Walks the whole chain and reports the first bad position and the kind of damage: every
/// record's seal is recomputed under `key`, every link is recomputed from its predecessor, the
/// head must match the last link, and, when given, the chain must still contain `checkpoint`
/// unchanged. Unsealed records are checked for valid seals too. Reads in batches; writes
/// nothing.
pub fn verify(
    s: &mut Session,
    key: Option<&AuditKey>,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport> {
    s.flush_audit()?;
    let mut running = GENESIS.to_string();
    let mut expected = 1i64;
    let mut links = 0u64;
    let mut at_checkpoint: Option<String> = None;
    let mut damage: Option<Damage> = None;
    'batches: loop {
        let records = read_links(s, expected, BATCH)?;
        if records.is_empty() {
            break;
        }
        for (i, (seq, record_id, prev_hash, hash, record)) in records.iter().enumerate() {
            let found = |kind, detail: String| Damage {
                seq: expected,
                kind,
                detail,
            };
            if *seq != expected {
                damage = Some(found(
                    DamageKind::Deleted,
                    format!("link {expected} is missing (next link is {seq})"),
                ));
                break 'batches;
            }
            let Some(record) = record else {
                damage = Some(found(
                    DamageKind::Deleted,
                    format!("record {record_id} of link {seq} is missing"),
                ));
                break 'batches;
            };
            let next_id = records.get(i + 1).map(|n| n.1);
            if !record.seal_is_valid(key) {
                let kind = match next_id {
                    // Records are sealed in insertion order: a record with a newer id than the
                    // one after it was added later, by someone other than custodian.
                    Some(next) if record.id > next => DamageKind::Inserted,
                    _ => DamageKind::Modified,
                };
                damage = Some(found(
                    kind,
                    format!(
                        "record {} ({} {} {}) does not match its seal",
                        record.id, record.op, record.entity, record.entity_key
                    ),
                ));
                break 'batches;
            }
            let should_be = link_hash(&running, &record.mac, *seq);
            if *prev_hash != running || *hash != should_be {
                // The content of another position fits this link: records were moved.
                let moved = records.iter().any(|(other_seq, _, _, _, other)| {
                    other_seq != seq
                        && other
                            .as_ref()
                            .is_some_and(|o| link_hash(&running, &o.mac, *seq) == *hash)
                });
                let kind = if moved {
                    DamageKind::Reordered
                } else {
                    DamageKind::Modified
                };
                damage = Some(found(
                    kind,
                    format!("link {seq} does not follow from link {}", seq - 1),
                ));
                break 'batches;
            }
            if checkpoint.is_some_and(|cp| cp.seq == *seq) {
                at_checkpoint = Some(hash.clone());
            }
            running = hash.clone();
            expected += 1;
            links += 1;
        }
    }
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
    let mut unsealed = 0u64;
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
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let record = record_of(row);
            after = record.id;
            unsealed += 1;
            if damage.is_none() && !record.seal_is_valid(key) {
                damage = Some(Damage {
                    seq: last_seq + 1,
                    kind: DamageKind::Inserted,
                    detail: format!(
                        "unsealed record {} ({} {} {}) does not match its seal",
                        record.id, record.op, record.entity, record.entity_key
                    ),
                });
            }
        }
    }
    Ok(VerifyReport {
        links,
        last_seq,
        last_hash: running,
        unsealed,
        damage,
    })
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
