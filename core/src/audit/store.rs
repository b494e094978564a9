//! Storage of the trail: installing its tables, appending records (inside the writer's
//! transaction), and reading records back, row by row when a row cannot be decoded.

use super::record::{AuditKey, AuditRecord, GENESIS};
use super::tables::{
    self, custodian_audit as a, custodian_audit_chain as c, custodian_audit_head as h,
};
use crate::conn::{AnyConnection, MultiBackend};
use crate::context::Context;
use crate::error::Result;
use crate::sql_types::StoredDatetime;
use diesel::prelude::*;

/// A record as read by diesel, in [`record_columns!`] order.
pub(crate) type RecordRow = (
    i64,
    String,
    i32,
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

pub(crate) fn record_of(r: RecordRow) -> AuditRecord {
    AuditRecord {
        id: r.0,
        tx_id: r.1,
        ordinal: r.2,
        at: r.3 .0,
        actor: r.4,
        tenant: r.5,
        entity: r.6,
        entity_key: r.7,
        op: r.8,
        before: r.9,
        after: r.10,
        reason: r.11,
        request_id: r.12,
        mac: r.13,
    }
}

/// The columns of a record, in [`RecordRow`] order.
macro_rules! record_columns {
    () => {
        (
            a::id,
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
        )
    };
}

/// Row 1 of `custodian_audit_head`: the last link (`seq`, `hash`), and the sealers' lock.
pub(crate) const HEAD_ROW: i32 = 1;
/// Row 2: the sealers' high-water mark (see the seal module).
pub(crate) const MARK_ROW: i32 = 2;
/// Row 3: how the trail is sealed: `seq` 1 and the audit key's check value in `hash` for a
/// keyed trail, `seq` 0 and [`UNKEYED`] for an unkeyed one.
pub(crate) const MODE_ROW: i32 = 3;
/// The mode row's `hash` of an unkeyed trail.
pub(crate) const UNKEYED: &str = "unkeyed";

/// Creates the audit tables, the chain head, the sealers' mark and the mode row if they do
/// not exist yet. The mode row records whether the trail is sealed with `key` (by its check
/// value), so that a verifier with another key, or none, is told so instead of seeing damage.
pub fn install(s: &mut impl Context, key: Option<&AuditKey>) -> Result<()> {
    let backend = s.backend();
    for meta in tables::ALL {
        let exists = s.run(|c| backend.live_columns(c, &meta))?.is_some();
        if !exists {
            for sql in backend.create_table_sql(&meta) {
                s.execute_sql(&sql)?;
            }
        }
    }
    // Trails installed before the transaction-id index existed get it now.
    s.execute_sql(&format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
        tables::TX_INDEX.name,
        tables::AUDIT.table,
        tables::TX_INDEX.columns[0]
    ))?;
    let heads: i64 = s.run(|conn| h::table.count().get_result(conn))?;
    if heads == 0 {
        let (mode, check) = match key {
            Some(k) => (1i64, k.check_value()),
            None => (0i64, UNKEYED.to_string()),
        };
        s.run(|conn| {
            diesel::insert_into(h::table)
                .values((h::id.eq(HEAD_ROW), h::seq.eq(0i64), h::hash.eq(GENESIS)))
                .execute(conn)?;
            diesel::insert_into(h::table)
                .values((h::id.eq(MODE_ROW), h::seq.eq(mode), h::hash.eq(check)))
                .execute(conn)
        })?;
    }
    Ok(())
}

/// Whether transaction `tx_id` has audit records: it committed (records are only ever
/// inserted inside their transaction).
pub(crate) fn recorded(conn: &mut AnyConnection, tx_id: &str) -> QueryResult<bool> {
    let n: i64 = a::table
        .filter(a::tx_id.eq(tx_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
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
            a::ordinal.eq($r.ordinal),
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
                            return crate::conn::run::execute(conn, diesel::insert_into(a::table).values(rows));
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
        n += crate::conn::run::execute(conn, diesel::insert_into(a::table).values(&rows))?;
    }
    Ok(n)
}

/// The most records one inlined statement ([`inline_insert`]) carries; more go as bind
/// parameters, in prepared multi-row statements the server parses once.
const INLINE_MAX_RECORDS: usize = 64;

/// The longest inlined statement, in bytes.
const INLINE_MAX_BYTES: usize = 1 << 20;

/// `records` as one `INSERT` with their values written in by `backend`
/// ([`Backend::inline_literal`](crate::backend::Backend::inline_literal)), to be sent with
/// `COMMIT`; `None` where the backend does not inline, for a value it cannot write, or past
/// [`INLINE_MAX_RECORDS`] records or a megabyte.
pub(crate) fn inline_insert(
    backend: &dyn crate::backend::Backend,
    records: &[AuditRecord],
) -> Option<String> {
    use crate::backend::Literal::{self, Int, Text, Timestamp};
    const HEAD: &str = "INSERT INTO \"custodian_audit\" (\"tx_id\", \"ordinal\", \"at\", \
        \"actor\", \"tenant\", \"entity\", \"entity_key\", \"op\", \"before_image\", \
        \"after_image\", \"reason\", \"request_id\", \"mac\") VALUES ";
    fn optional(v: &Option<String>) -> Literal<'_> {
        v.as_deref().map_or(Literal::Null, Literal::Text)
    }
    if records.is_empty() || records.len() > INLINE_MAX_RECORDS {
        return None;
    }
    let mut sql = String::with_capacity(HEAD.len() + 512 * records.len());
    sql.push_str(HEAD);
    for (i, r) in records.iter().enumerate() {
        // In the order of HEAD's columns (and of `record_values!`).
        let values: [Literal<'_>; 13] = [
            Text(&r.tx_id),
            Int(i64::from(r.ordinal)),
            Timestamp(r.at),
            Text(&r.actor),
            optional(&r.tenant),
            Text(&r.entity),
            Text(&r.entity_key),
            Text(&r.op),
            optional(&r.before),
            optional(&r.after),
            optional(&r.reason),
            optional(&r.request_id),
            Text(&r.mac),
        ];
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for (j, value) in values.into_iter().enumerate() {
            if j > 0 {
                sql.push_str(", ");
            }
            if !backend.inline_literal(&mut sql, value) {
                return None;
            }
        }
        sql.push(')');
        if sql.len() > INLINE_MAX_BYTES {
            return None;
        }
    }
    Some(sql)
}

/// A record as read back: decoded, or the id of a row whose columns do not decode (a value of
/// the wrong type or encoding, written behind custodian's back).
// Nearly every value is a record: boxing it would allocate once per record on verification's
// hot path to save space on the rare other cases.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Read {
    Record(AuditRecord),
    Undecodable(i64),
}

impl Read {
    pub(crate) fn id(&self) -> i64 {
        match self {
            Read::Record(r) => r.id,
            Read::Undecodable(id) => *id,
        }
    }
}

/// Runs a read, telling a row that does not decode (`Ok(None)`) from other failures.
pub(crate) fn decoded<T>(
    s: &mut impl Context,
    read: impl FnOnce(&mut AnyConnection) -> QueryResult<T>,
) -> Result<Option<T>> {
    s.run(|conn| match read(conn) {
        Err(diesel::result::Error::DeserializationError(_)) => Ok(None),
        other => other.map(Some),
    })
}

/// Loads the records with ids in `lo..=hi` (at most `limit`, ascending). When a row fails to
/// decode, the range is read again row by row and such rows come back as
/// [`Read::Undecodable`] instead of failing the whole read.
pub(crate) fn read_range(s: &mut impl Context, lo: i64, hi: i64, limit: i64) -> Result<Vec<Read>> {
    let range = || {
        a::table
            .filter(a::id.ge(lo))
            .filter(a::id.le(hi))
            .order(a::id.asc())
            .limit(limit)
    };
    read_or_each(
        s,
        |conn| range().select(record_columns!()).load(conn),
        |conn| range().select(a::id).load(conn),
    )
}

/// Reads records with `records`; when a row does not decode, reads their ids with `ids` and
/// then each record on its own, marking the rows that do not decode.
fn read_or_each(
    s: &mut impl Context,
    records: impl FnOnce(&mut AnyConnection) -> QueryResult<Vec<RecordRow>>,
    ids: impl FnOnce(&mut AnyConnection) -> QueryResult<Vec<i64>>,
) -> Result<Vec<Read>> {
    match decoded(s, records)? {
        Some(rows) => Ok(rows
            .into_iter()
            .map(|r| Read::Record(record_of(r)))
            .collect()),
        None => {
            let ids = s.run(ids)?;
            read_each(s, ids)
        }
    }
}

/// Loads the records `ids` one by one (ascending as given), undecodable rows marked.
pub(crate) fn read_each(s: &mut impl Context, ids: Vec<i64>) -> Result<Vec<Read>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let one = decoded(s, |conn| {
            a::table
                .find(id)
                .select(record_columns!())
                .first::<RecordRow>(conn)
                .optional()
        })?;
        match one {
            Some(Some(r)) => out.push(Read::Record(record_of(r))),
            Some(None) => {}
            None => out.push(Read::Undecodable(id)),
        }
    }
    Ok(out)
}

/// Loads the records no link names with ids above `after` (at most `limit`, ascending), by a
/// join of the whole trail with the chain; undecodable rows marked.
pub(crate) fn read_unchained(s: &mut impl Context, after: i64, limit: i64) -> Result<Vec<Read>> {
    let unchained = || {
        a::table
            .left_join(c::table.on(c::record_id.eq(a::id)))
            .filter(c::seq.is_null())
            .filter(a::id.gt(after))
            .order(a::id.asc())
            .limit(limit)
    };
    read_or_each(
        s,
        |conn| unchained().select(record_columns!()).load(conn),
        |conn| unchained().select(a::id).load(conn),
    )
}

/// Row `id` of `custodian_audit_head` (`HEAD_ROW`, `MARK_ROW` or `MODE_ROW`): `(seq, hash)`,
/// `None` if it is missing.
pub(crate) fn head_row(s: &mut impl Context, id: i32) -> Result<Option<(i64, String)>> {
    s.run(|conn| {
        h::table
            .find(id)
            .select((h::seq, h::hash))
            .first(conn)
            .optional()
    })
}

/// The head of the chain: `(seq, hash)` of the last link, as the head row states it.
pub fn head(s: &mut impl Context) -> Result<(i64, String)> {
    head_row(s, HEAD_ROW)?.ok_or_else(|| {
        crate::error::Error::integrity(
            crate::error::IntegrityKind::AuditTrail,
            "the audit chain's head row is missing",
        )
    })
}

/// Every record about one entity row, oldest first, with its chain position if sealed.
pub fn records_of_entity_key(
    s: &mut impl Context,
    entity: &str,
    key_json: &str,
) -> Result<Vec<(Option<i64>, AuditRecord)>> {
    records_about(s, entity, Some(key_json))
}

/// Every record about one entity (table), oldest first, with its chain position if sealed.
pub fn records_of_entity(
    s: &mut impl Context,
    entity: &str,
) -> Result<Vec<(Option<i64>, AuditRecord)>> {
    records_about(s, entity, None)
}

/// The records about `entity` (only its row `key_json` when given), oldest first, with their
/// chain positions if sealed.
fn records_about(
    s: &mut impl Context,
    entity: &str,
    key_json: Option<&str>,
) -> Result<Vec<(Option<i64>, AuditRecord)>> {
    s.flush_audit()?;
    let rows: Vec<(Option<i64>, RecordRow)> = s.run(|conn| {
        let mut query = a::table
            .left_join(c::table.on(c::record_id.eq(a::id)))
            .filter(a::entity.eq(entity))
            .order(a::id.asc())
            .select((c::seq.nullable(), record_columns!()))
            .into_boxed::<MultiBackend>();
        if let Some(key_json) = key_json {
            query = query.filter(a::entity_key.eq(key_json));
        }
        query.load(conn)
    })?;
    Ok(rows
        .into_iter()
        .map(|(seq, r)| (seq, record_of(r)))
        .collect())
}
