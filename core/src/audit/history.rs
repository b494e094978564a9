//! History, as-of reconstruction and drift detection, all computed from the audit trail.
//!
//! A row's versions are its audit records' after-images, in the order they were written. An
//! entity as of a point (a time, or a chain sequence number) is rebuilt from the last image at
//! or before that point, so a report produced "as of T" is the same whatever happened after T.
//! Drift detection compares each live row with its last audited image: a difference means the
//! row was changed outside custodian.

use super::chain;
use super::record::AuditRecord;
use crate::access::Action;
use crate::conn::AnyConnection;
use crate::entity::{ColumnRole, Entity};
use crate::error::{Error, IntegrityKind, Result};
use crate::session::Session;
use diesel::query_dsl::LoadQuery;
use std::collections::BTreeMap;

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

fn image_of(record: &AuditRecord) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
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
fn is_row_change(record: &AuditRecord) -> bool {
    !matches!(record.op.as_str(), "denied" | "erase")
}

fn rebuild<E: Entity>(record: &AuditRecord, with_deleted: bool) -> Result<Option<E>> {
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

fn before(point: AsOf, seq: Option<i64>, record: &AuditRecord) -> bool {
    match point {
        AsOf::Time(t) => record.at <= t,
        AsOf::Seq(s) => seq.is_some_and(|q| q <= s),
    }
}

fn key_json<E: Entity>(key: &E::Key) -> Result<String> {
    E::raw_key_image(key)
        .map(|k| k.to_string())
        .map_err(unencodable::<E>)
}

fn unencodable<E: Entity>(e: crate::value::DecodeError) -> Error {
    Error::integrity_caused_by(
        IntegrityKind::Unencodable,
        format!("{}: {e}", E::META.name),
        e,
    )
}

impl Session {
    /// Every version of the row with this key, oldest first (one per audited write).
    pub fn history<E: Entity>(&mut self, key: &E::Key) -> Result<Vec<Version<E>>> {
        self.authorize::<E>(Action::Read, Some(key))?;
        let entity = crate::schema::display_name(&E::META);
        let records = chain::records_of_entity_key(self, &entity, &key_json::<E>(key)?)?;
        let mut versions = Vec::with_capacity(records.len());
        for (seq, record) in records.into_iter().filter(|(_, r)| is_row_change(r)) {
            // A version is judged by its own images (a hard delete has only a before image):
            // one outside the principal's tenant is not shown. Masks apply to the value and to
            // the record's images; the value is rebuilt from the unmasked image first, because
            // encrypted fields must be opened before they are masked.
            let value = rebuild::<E>(&record, true)?;
            let Some(record) = self.visible_record::<E>(record)? else {
                continue;
            };
            if let Some(value) = self.visible(value)? {
                versions.push(Version { seq, record, value });
            }
        }
        Ok(versions)
    }

    /// The row with this key as it was at `point` (`None` if it did not exist or was deleted).
    pub fn as_of<E: Entity>(&mut self, key: &E::Key, point: AsOf) -> Result<Option<E>> {
        self.authorize::<E>(Action::Read, Some(key))?;
        let entity = crate::schema::display_name(&E::META);
        let records = chain::records_of_entity_key(self, &entity, &key_json::<E>(key)?)?;
        match records
            .iter()
            .rev()
            .find(|(seq, r)| is_row_change(r) && before(point, *seq, r))
        {
            Some((_, record)) => Ok(self.visible(rebuild::<E>(record, false)?)?.flatten()),
            None => Ok(None),
        }
    }

    /// Every live row of `E` as it was at `point`, in key order of the audit trail; filter and
    /// page the result in Rust. Built from the audit trail alone.
    pub fn as_of_all<E: Entity>(&mut self, point: AsOf) -> Result<Vec<E>> {
        self.authorize::<E>(Action::Read, None)?;
        let entity = crate::schema::display_name(&E::META);
        let mut last: BTreeMap<String, AuditRecord> = BTreeMap::new();
        for (seq, record) in chain::records_of_entity(self, &entity)? {
            if is_row_change(&record) && before(point, seq, &record) {
                last.insert(record.entity_key.clone(), record);
            }
        }
        let mut out = Vec::with_capacity(last.len());
        for record in last.values() {
            if let Some(e) = rebuild::<E>(record, false)? {
                out.push(e);
            }
        }
        self.visible_all(out)
    }

    /// Rows of `E` whose stored values differ from their last audited image: changed, inserted
    /// or deleted outside custodian. Under an access policy it needs the read permission and
    /// lists only rows the principal may read: a live row by its stored values, a missing one
    /// by its last audited image.
    pub fn audit_drift<E: Entity>(&mut self) -> Result<Vec<DriftedRow>>
    where
        E::QueryWithDeleted: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        self.authorize::<E>(Action::Read, None)?;
        let entity = crate::schema::display_name(&E::META);
        let mut audited: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut readable_missing = std::collections::BTreeSet::new();
        for (_, record) in chain::records_of_entity(self, &entity)? {
            if !is_row_change(&record) {
                continue;
            }
            let image = image_of(&record)?;
            if image.as_ref().is_some_and(|m| self.may_read_image::<E>(m)) {
                readable_missing.insert(record.entity_key.clone());
            } else {
                readable_missing.remove(&record.entity_key);
            }
            let image = image.map(|m| serde_json::Value::Object(m).to_string());
            audited.insert(record.entity_key, image);
        }
        let live: Vec<E> = self.load(E::query_with_deleted())?;
        let mut drift = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for row in &live {
            let key = key_json::<E>(&row.key())?;
            let image = row.raw_image().map_err(unencodable::<E>)?;
            let readable = self.may_read_image::<E>(&image);
            let image = serde_json::Value::Object(image).to_string();
            seen.insert(key.clone());
            if !readable {
                continue;
            }
            let kind = match audited.get(&key) {
                Some(Some(last)) if *last == image => None,
                Some(Some(_)) => Some(DriftKind::Changed),
                Some(None) | None => Some(DriftKind::Unrecorded),
            };
            if let Some(kind) = kind {
                drift.push(DriftedRow {
                    entity: entity.clone(),
                    key,
                    kind,
                });
            }
        }
        for (key, image) in audited {
            if image.is_some() && !seen.contains(&key) && readable_missing.contains(&key) {
                drift.push(DriftedRow {
                    entity: entity.clone(),
                    key,
                    kind: DriftKind::Missing,
                });
            }
        }
        Ok(drift)
    }
}
