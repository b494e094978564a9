//! History, as-of reconstruction and drift detection, all computed from the audit trail.
//!
//! A row's versions are its audit records' after-images, in the order they were written. An
//! entity as of a point (a time, or a chain sequence number) is rebuilt from the last image at
//! or before that point, so a report produced "as of T" is the same whatever happened after T.
//! Drift detection compares each live row with its last audited image: a difference means the
//! row was changed outside custodian.

use super::record::AuditRecord;
use crate::entity::{ColumnRole, Entity};
use crate::error::{Error, IntegrityKind, Result};

/// A point in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Everything written at or before this UTC time.
    Time(chrono::NaiveDateTime),
    /// Everything sealed at or before this chain sequence number.
    Seq(i64),
}

/// One version of an entity in its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Version<E> {
    /// Chain position, once sealed.
    pub seq: Option<i64>,
    /// The audit record (actor, time, operation, images).
    pub record: AuditRecord,
    /// The entity after the change; `None` after a delete.
    pub value: Option<E>,
}

/// A live row that differs from its audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftedRow {
    /// Table.
    pub entity: String,
    /// Primary key as canonical JSON.
    pub key: String,
    /// What differs.
    pub kind: DriftKind,
}

/// How a row drifted from its audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    /// The live row differs from its last audited image.
    Changed,
    /// The row exists but no audit record describes it (inserted outside custodian).
    Unrecorded,
    /// The audit trail says the row exists but it does not (deleted outside custodian).
    Missing,
}

pub(crate) fn image_of(
    record: &AuditRecord,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    match &record.after {
        None => Ok(None),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
            _ => Err(Error::integrity(
                IntegrityKind::AuditTrail,
                format!("audit record {} has a malformed after-image", record.id),
            )),
        },
    }
}

/// Whether a record describes a row version (refusals and erasures do not).
pub(crate) fn is_row_change(record: &AuditRecord) -> bool {
    !matches!(record.op.as_str(), "denied" | "erase")
}

pub(crate) fn rebuild<E: Entity>(record: &AuditRecord, with_deleted: bool) -> Result<Option<E>> {
    let Some(image) = image_of(record)? else {
        return Ok(None);
    };
    if !with_deleted {
        if let Some(col) = E::META.role(ColumnRole::DeletedAt) {
            if image.get(col.name).is_some_and(|v| !v.is_null()) {
                return Ok(None);
            }
        }
    }
    E::raw_from_image(&image).map(Some).map_err(|e| {
        Error::integrity_caused_by(
            IntegrityKind::Undecodable,
            format!("audit record {}: {e}", record.id),
            e,
        )
    })
}

pub(crate) fn before(point: AsOf, seq: Option<i64>, record: &AuditRecord) -> bool {
    match point {
        AsOf::Time(t) => record.at <= t,
        AsOf::Seq(s) => seq.is_some_and(|q| q <= s),
    }
}

pub(crate) fn key_json<E: Entity>(key: &E::Key) -> Result<String> {
    E::raw_key_image(key)
        .map(|k| k.to_string())
        .map_err(unencodable::<E>)
}

pub(crate) fn unencodable<E: Entity>(e: crate::value::DecodeError) -> Error {
    Error::integrity_caused_by(
        IntegrityKind::Unencodable,
        format!("{}: {e}", E::META.name),
        e,
    )
}
