//! The cascade steps `#[entity]` generates for foreign keys whose `on_delete` action changes
//! rows (`cascade`, `set_null`), and the trait through which they reach the write path.
//!
//! When custodian hard-deletes a row, the database deletes the rows referencing it, or sets
//! their reference to `NULL`. The write path records those changes itself (see the session's
//! cascade module): for each foreign key to the deleted entity it calls the key's
//! [`CascadeFn`], which loads the referencing rows and hands them to [`cascade_rows`]; that
//! locks each row, has its audit record written, and follows the cascade further down.

use super::{Entity, EntityMeta, Internal, RefAction};
use crate::conn::AnyConnection;
use crate::error::{Error, IntegrityKind, Result};
use diesel::QueryResult;
use std::any::Any;

/// A row image, as audit records hold it.
pub type Image = serde_json::Map<String, serde_json::Value>;

/// What `#[entity]` stores in a foreign key for the write path: records what the foreign key's
/// `on_delete` action does to the rows of the referencing entity when rows of the parent go.
/// The keys are a `Vec` of the parent's key type.
pub type CascadeFn = fn(&mut dyn Cascading, &dyn Any) -> Result<()>;

/// The write path running a cascade, as the generated [`CascadeFn`]s and [`cascade_rows`] see
/// it. Implemented by the session's cascade; not meant to be implemented elsewhere.
pub trait Cascading {
    /// Most bind parameters one statement may carry.
    fn max_bind_params(&self) -> usize;

    /// Runs `f` on the write's connection and classifies its error.
    fn run(&mut self, f: &mut dyn FnMut(&mut AnyConnection) -> QueryResult<()>) -> Result<()>;

    /// Whether the row of `meta`'s table with key image `key` is reached for the first time
    /// (a cycle of references is followed once).
    fn first_visit(&mut self, meta: &EntityMeta, key: &serde_json::Value) -> bool;

    /// Records that the cascade deletes the row (`after` is `None`) or sets its reference to
    /// `NULL` (`after` is the row as the database leaves it).
    fn record(
        &mut self,
        meta: &EntityMeta,
        key: &serde_json::Value,
        before: Image,
        after: Option<Image>,
    ) -> Result<()>;

    /// Follows the cascade to the rows referencing the `parent` rows with `keys` (a `Vec` of
    /// the parent's key type).
    fn follow(&mut self, parent: &EntityMeta, keys: &dyn Any) -> Result<()>;
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

fn image_error<E: Entity>(e: crate::value::DecodeError) -> Error {
    Error::integrity_caused_by(
        IntegrityKind::Undecodable,
        format!("{}: {e}", E::META.name),
        e,
    )
}

/// Records what the `on_delete` action of `C`'s foreign key `field` does to `rows` (the rows
/// referencing the parent rows being deleted, soft-deleted ones included), then follows the
/// cascade to the children of the rows it deletes. Generated `CascadeFn`s call it.
pub fn cascade_rows<C: Entity>(cx: &mut dyn Cascading, rows: Vec<C>, field: &str) -> Result<()> {
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
        if !cx.first_visit(&C::META, &key_image) {
            continue;
        }
        // The row as the cascade will find it: locked until the transaction ends.
        let mut found = None;
        cx.run(&mut |c| {
            found = C::raw_find_for_update(Internal::new(), c, &key, true)?;
            Ok(())
        })?;
        let Some(row) = found else {
            continue;
        };
        let before = row.raw_image().map_err(image_error::<C>)?;
        let after = match action {
            RefAction::SetNull => {
                let mut after = before.clone();
                after.insert(fk.name.to_string(), serde_json::Value::Null);
                Some(after)
            }
            _ => {
                removed.push(key.clone());
                None
            }
        };
        if C::AUDITED {
            cx.record(&C::META, &key_image, before, after)?;
        }
    }
    if removed.is_empty() {
        return Ok(());
    }
    cx.follow(&C::META, &removed)
}
