//! [`Db`]'s checks of the live schema against the entities: drift, advice (unindexed
//! foreign keys, full scans seen in slow plans) and the all-or-error check.

use super::Db;
use crate::entity::EntityMeta;
use crate::error::Result;
use crate::schema::{self, Drift, SchemaReport};

impl Db {
    /// Every difference between `entities` and the live schema: missing tables and columns,
    /// incompatible column types, nullability mismatches. Extra live columns are not drift.
    pub fn schema_drift(&self, entities: &[EntityMeta]) -> Result<Vec<Drift>> {
        self.inner.know(entities);
        let backend = self.inner.backend;
        let mut s = self.session()?;
        let mut drifts = Vec::new();
        for meta in entities {
            let live = s.run(|c| backend.live_columns(c, meta))?;
            drifts.extend(schema::compare(meta, live.as_deref(), |k, t| {
                backend.type_compatible(k, t)
            }));
        }
        Ok(drifts)
    }

    /// Advice on the live schema that is not drift (see [`Advice`]): a foreign key column of
    /// one of `entities` that leads no index of its table, and columns that the plans of this
    /// handle's slow statements show a full scan filtering on, none of which leads an index
    /// (any table, registered or not; only statements that were slow and whose plan was
    /// captured are seen).
    ///
    /// [`Advice`]: crate::schema::Advice
    pub fn schema_advice(&self, entities: &[EntityMeta]) -> Result<Vec<schema::Advice>> {
        let backend = self.inner.backend;
        let scans = self.inner.slow_scans.snapshot();
        let keyed: Vec<&EntityMeta> = entities
            .iter()
            .filter(|m| m.columns.iter().any(|c| c.references.is_some()))
            .collect();
        if keyed.is_empty() && scans.is_empty() {
            return Ok(Vec::new());
        }
        let mut s = self.session()?;
        let mut advice = Vec::new();
        for meta in keyed {
            let leading = s.run(|c| backend.index_leading_columns(c, meta.schema, meta.table))?;
            advice.extend(schema::unindexed_foreign_keys(meta, &leading));
        }
        advice.extend(schema::unindexed_filters(scans, |table| {
            let columns = s.run(|c| backend.backup().columns(c, table))?;
            let leading = s.run(|c| backend.index_leading_columns(c, None, table))?;
            Ok((columns, leading))
        })?);
        Ok(advice)
    }

    /// Checks that the live schema matches `entities`; otherwise [`Error::Integrity`](crate::Error::Integrity) with a
    /// report listing every problem (see [`Db::schema_drift`]).
    pub fn check_schema(&self, entities: &[EntityMeta]) -> Result<()> {
        SchemaReport {
            drifts: self.schema_drift(entities)?,
        }
        .into_result()
    }
}
