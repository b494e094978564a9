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
//!
//! [`Db`]: crate::Db

use crate::audit::{AuditOp, AuditRecord};
use crate::entity::{Entity, EntityMeta, Internal, RefAction};
use crate::error::{Error, IntegrityKind, Result};
use crate::session::Session;
use std::any::Any;
use std::collections::HashSet;

/// What `#[entity]` stores in a foreign key for the write path: records what the foreign key's
/// `on_delete` action does to the rows of the referencing entity when rows of the parent go.
/// The keys are a `Vec` of the parent's key type.
pub type CascadeFn = fn(&mut Session, &dyn Any, &mut Cascade) -> Result<()>;

/// The audit records of one cascade, and the rows it has visited (a cycle of references is
/// followed once).
#[derive(Debug)]
pub struct Cascade {
    at: chrono::NaiveDateTime,
    records: Vec<AuditRecord>,
    seen: HashSet<(String, String)>,
}

fn same_table(a: &EntityMeta, b: &EntityMeta) -> bool {
    a.table == b.table && a.schema == b.schema
}

fn image_error<E: Entity>(e: crate::value::DecodeError) -> Error {
    Error::integrity_caused_by(
        IntegrityKind::Undecodable,
        format!("{}: {e}", E::META.name),
        e,
    )
}

/// Records, into `trail`, what a hard delete of the `E` row with `key` makes the database do
/// to the rows referencing it (transitively). Call it before the delete, in its transaction.
pub(crate) fn before_hard_delete<E: Entity>(
    s: &mut Session,
    key: &E::Key,
    at: chrono::NaiveDateTime,
    trail: &mut Vec<AuditRecord>,
) -> Result<()> {
    if !s.known_entities().iter().any(|m| references::<E>(m)) {
        return Ok(());
    }
    let mut cascade = Cascade {
        at,
        records: Vec::new(),
        seen: HashSet::new(),
    };
    let root = E::raw_key_image(key).map_err(image_error::<E>)?;
    cascade
        .seen
        .insert((E::META.table.to_string(), root.to_string()));
    from_parents::<E>(s, &vec![key.clone()], &mut cascade)?;
    trail.append(&mut cascade.records);
    Ok(())
}

/// Whether `child` has a foreign key to `P` whose delete action changes rows.
fn references<P: Entity>(child: &EntityMeta) -> bool {
    child.columns.iter().any(|c| {
        c.references.is_some_and(|fk| {
            matches!(fk.on_delete, RefAction::Cascade | RefAction::SetNull)
                && same_table(&(fk.parent)(), &P::META)
        })
    })
}

/// Follows every cascading foreign key to `P` the `Db` knows, for the parent rows `keys`.
// A `Vec`, not a slice: the [`CascadeFn`]s take the keys as `dyn Any`, which needs a sized type.
#[allow(clippy::ptr_arg)]
fn from_parents<P: Entity>(
    s: &mut Session,
    keys: &Vec<P::Key>,
    cascade: &mut Cascade,
) -> Result<()> {
    for child in s.known_entities() {
        for column in child.columns {
            let Some(fk) = column.references else {
                continue;
            };
            if !matches!(fk.on_delete, RefAction::Cascade | RefAction::SetNull)
                || !same_table(&(fk.parent)(), &P::META)
            {
                continue;
            }
            let Some(follow) = fk.cascade else {
                continue;
            };
            follow(s, keys, cascade)?;
        }
    }
    Ok(())
}

/// The parent keys a `CascadeFn` receives, as the foreign key field `field`'s key type `K`.
pub fn cascade_keys<'k, K: 'static>(keys: &'k dyn Any, field: &str) -> Result<&'k Vec<K>> {
    keys.downcast_ref::<Vec<K>>().ok_or_else(|| {
        Error::integrity(
            IntegrityKind::Internal,
            format!("cascade through `{field}`: the parent keys are not of the field's key type"),
        )
    })
}

/// Records what the `on_delete` action of `C`'s foreign key `field` does to `rows` (the rows
/// referencing the parent rows being deleted, soft-deleted ones included), then follows the
/// cascade to the children of the rows it deletes. Generated `CascadeFn`s call it.
pub fn cascade_rows<C: Entity>(
    s: &mut Session,
    rows: Vec<C>,
    field: &str,
    cascade: &mut Cascade,
) -> Result<()> {
    let Some(fk) = C::META.column(field) else {
        return Ok(());
    };
    let Some(action) = fk.references.map(|r| r.on_delete) else {
        return Ok(());
    };
    if !matches!(action, RefAction::Cascade | RefAction::SetNull) {
        return Ok(());
    }
    let mut removed: Vec<C::Key> = Vec::new();
    for child in rows {
        let key = child.key();
        let key_image = C::raw_key_image(&key).map_err(image_error::<C>)?;
        if !cascade
            .seen
            .insert((C::META.table.to_string(), key_image.to_string()))
        {
            continue;
        }
        // The row as the cascade will find it: locked until the transaction ends.
        let Some(row) = s.run(|c| C::raw_find_for_update(Internal::new(), c, &key, true))? else {
            continue;
        };
        let before = row.raw_image().map_err(image_error::<C>)?;
        let (op, after) = match action {
            RefAction::SetNull => {
                let mut after = before.clone();
                after.insert(fk.name.to_string(), serde_json::Value::Null);
                (AuditOp::Update, Some(after))
            }
            _ => {
                removed.push(key.clone());
                (AuditOp::Delete, None)
            }
        };
        if C::AUDITED {
            let record = s.audit_record::<C>(op, &key, Some(before), after, cascade.at)?;
            cascade.records.push(record);
        }
    }
    if removed.is_empty() {
        return Ok(());
    }
    from_parents::<C>(s, &removed, cascade)
}
