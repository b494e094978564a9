//! Audit records for the rows a database cascade changes.
//!
//! A foreign key declared `on_delete = "cascade"` or `"set_null"` lets the database delete the
//! referencing rows, or set their reference to `NULL`, when custodian hard-deletes the row they
//! reference. Those changes never pass through the write path, so custodian records them
//! itself, in the same transaction: before the parent row goes, every row the cascade will
//! reach (children, their children, ...) is read under a lock and gets one audit record, a
//! `delete` (after image: none) or an `update` (after image: the row with its reference
//! `NULL`, exactly what the database writes). Hooks, validation and access checks do not run
//! for them: the database, not the application, makes these changes.
//!
//! The write path learns which entities reference which from the entities the [`Db`] knows:
//! those passed to `create_table(s)`, `check_schema` or `schema_drift`. A referencing entity
//! the `Db` was never told about goes unrecorded (audit drift then reports its rows).
//! The per-entity steps are generated (see the entity layer's cascade module); this module
//! drives them.
//!
//! [`Db`]: crate::Db

use super::{image_error, no_principal_for, Image, Session};
use crate::audit::{AuditOp, AuditRecord};
use crate::conn::AnyConnection;
use crate::entity::{Cascading, Entity, EntityMeta, RefAction};
use crate::error::Result;
use diesel::QueryResult;
use std::any::Any;
use std::collections::HashSet;

/// One cascade in progress: the session it runs in, the records it made, the rows it visited.
struct Cascade<'s> {
    session: &'s mut Session,
    at: chrono::NaiveDateTime,
    known: Vec<EntityMeta>,
    records: Vec<AuditRecord>,
    seen: HashSet<(String, String)>,
}

fn same_table(a: &EntityMeta, b: &EntityMeta) -> bool {
    a.table == b.table && a.schema == b.schema
}

/// Whether `child` has a foreign key to `parent` whose delete action changes rows.
fn references(child: &EntityMeta, parent: &EntityMeta) -> bool {
    child.columns.iter().any(|c| {
        c.references.is_some_and(|fk| {
            matches!(fk.on_delete, RefAction::Cascade | RefAction::SetNull)
                && same_table(&(fk.parent)(), parent)
        })
    })
}

/// The known entities whose rows the database deletes or changes when rows of `parent` are
/// hard-deleted or their keys change: children with a cascading or nulling foreign key to
/// it, and theirs, transitively.
pub(crate) fn dependents(known: &[EntityMeta], parent: &EntityMeta) -> Vec<EntityMeta> {
    let mut found: Vec<EntityMeta> = Vec::new();
    let mut todo = vec![*parent];
    while let Some(p) = todo.pop() {
        for child in known {
            let cascades = child.columns.iter().any(|c| {
                c.references.is_some_and(|fk| {
                    let acts = |a| matches!(a, RefAction::Cascade | RefAction::SetNull);
                    (acts(fk.on_delete) || acts(fk.on_update)) && same_table(&(fk.parent)(), &p)
                })
            });
            if cascades && !found.iter().any(|f| same_table(f, child)) {
                found.push(*child);
                todo.push(*child);
            }
        }
    }
    found
}

/// Records, into `trail`, what a hard delete of the `E` row with `key` makes the database do
/// to the rows referencing it (transitively). Call it before the delete, in its transaction.
pub(crate) fn before_hard_delete<E: Entity>(
    s: &mut Session,
    key: &E::Key,
    at: chrono::NaiveDateTime,
    trail: &mut Vec<AuditRecord>,
) -> Result<()> {
    let known = s.known_entities();
    if !known.iter().any(|m| references(m, &E::META)) {
        return Ok(());
    }
    let root = E::raw_key_image(key).map_err(image_error::<E>)?;
    let mut cascade = Cascade {
        session: s,
        at,
        known,
        records: Vec::new(),
        seen: HashSet::new(),
    };
    cascade.first_visit(&E::META, &root);
    cascade.follow(&E::META, &vec![key.clone()])?;
    trail.append(&mut cascade.records);
    Ok(())
}

impl Cascading for Cascade<'_> {
    fn max_bind_params(&self) -> usize {
        self.session.backend().max_bind_params()
    }

    fn run(&mut self, f: &mut dyn FnMut(&mut AnyConnection) -> QueryResult<()>) -> Result<()> {
        self.session.run(f)
    }

    fn first_visit(&mut self, meta: &EntityMeta, key: &serde_json::Value) -> bool {
        self.seen.insert((meta.table.to_string(), key.to_string()))
    }

    fn record(
        &mut self,
        meta: &EntityMeta,
        key: &serde_json::Value,
        before: Image,
        after: Option<Image>,
    ) -> Result<()> {
        let actor = self
            .session
            .principal
            .clone()
            .ok_or_else(|| no_principal_for(meta.name))?;
        let op = match after {
            Some(_) => AuditOp::Update,
            None => AuditOp::Delete,
        };
        let image = |i: Image| serde_json::Value::Object(i).to_string();
        let record = self.session.record_for(
            &actor,
            crate::schema::display_name(meta),
            key.to_string(),
            op,
            Some(image(before)),
            after.map(image),
            self.at,
        )?;
        self.records.push(record);
        Ok(())
    }

    fn follow(&mut self, parent: &EntityMeta, keys: &dyn Any) -> Result<()> {
        let known = self.known.clone();
        for child in &known {
            for column in child.columns {
                let Some(fk) = column.references else {
                    continue;
                };
                if !matches!(fk.on_delete, RefAction::Cascade | RefAction::SetNull)
                    || !same_table(&(fk.parent)(), parent)
                {
                    continue;
                }
                if let Some(step) = fk.cascade {
                    step(self, keys)?;
                }
            }
        }
        Ok(())
    }
}
