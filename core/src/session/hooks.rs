//! Lifecycle hooks: code an entity runs before and after its inserts, updates and deletes.
//!
//! Implement [`Hooks`] for the entity and mark it `#[entity(hooks)]`. Hooks run inside the
//! write's transaction (custodian opens one if none is open), for single and bulk writes alike;
//! an `Err` from a `before_*` hook aborts the write and rolls back everything the transaction did.
//! Writes made through the session inside a hook take the write path too.

use super::Session;
use crate::entity::{Entity, HookSession, WriteKind};
use crate::error::{Error, IntegrityKind, Result};

/// Lifecycle hooks of an entity; every method defaults to doing nothing.
pub trait Hooks: Entity {
    /// Before the row is inserted (after validation); may change the value.
    fn before_insert(&mut self, _session: &mut Session) -> Result<()> {
        Ok(())
    }
    /// After the row is inserted, with its generated key.
    fn after_insert(&self, _session: &mut Session) -> Result<()> {
        Ok(())
    }
    /// Before the row is updated (after validation); may change the value.
    fn before_update(&mut self, _session: &mut Session) -> Result<()> {
        Ok(())
    }
    /// After the row is updated.
    fn after_update(&self, _session: &mut Session) -> Result<()> {
        Ok(())
    }
    /// Before the row is deleted (soft or hard), with its current stored value.
    fn before_delete(&mut self, _session: &mut Session) -> Result<()> {
        Ok(())
    }
    /// After the row is deleted.
    fn after_delete(&self, _session: &mut Session) -> Result<()> {
        Ok(())
    }
}

/// Dispatches a `before_*` hook; generated code for `#[entity(hooks)]` calls this.
pub fn run_before<E: Hooks>(
    entity: &mut E,
    kind: WriteKind,
    s: &mut HookSession<'_>,
) -> Result<()> {
    use WriteKind::*;
    let s = session(s)?;
    match kind {
        Insert => entity.before_insert(s),
        Update => entity.before_update(s),
        Delete => entity.before_delete(s),
    }
}

/// Dispatches an `after_*` hook; generated code for `#[entity(hooks)]` calls this.
pub fn run_after<E: Hooks>(entity: &E, kind: WriteKind, s: &mut HookSession<'_>) -> Result<()> {
    use WriteKind::*;
    let s = session(s)?;
    match kind {
        Insert => entity.after_insert(s),
        Update => entity.after_update(s),
        Delete => entity.after_delete(s),
    }
}

/// The session the write path wrapped into `s` (it always wraps a [`Session`]).
fn session<'s>(s: &'s mut HookSession<'_>) -> Result<&'s mut Session> {
    s.get::<Session>().ok_or_else(|| {
        Error::integrity(
            IntegrityKind::Internal,
            "a lifecycle hook was called without the session of its write",
        )
    })
}
