//! A row's history, the entity as of a point, and audit drift: [`Session`] methods over
//! the audit trail, with the read permission checked and masks applied.

use super::*;
use crate::audit::chain;
use crate::audit::history::{
    before, image_of, is_row_change, key_json, rebuild, unencodable, AsOf, DriftKind, DriftedRow,
    Version,
};
use std::collections::BTreeMap;

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
        let live: Vec<E> = self.load_once(E::query_with_deleted())?;
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
