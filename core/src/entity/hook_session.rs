//! The session a lifecycle hook runs in, as the entity layer passes it on.

use std::any::Any;

/// The session a write is running in, handed through [`Entity`](super::Entity)'s raw hook
/// operations to the entity's [`Hooks`](crate::Hooks) impl, which receives it as a
/// `&mut Session`.
///
/// The entity layer sits below the session in custodian's layering and does not name the
/// session type: the write path wraps itself here, and the generated hook bridge
/// (`#[entity(hooks)]`) takes the session back out.
pub struct HookSession<'a>(&'a mut dyn Any);

impl<'a> HookSession<'a> {
    /// Wraps the session of a write.
    pub(crate) fn new(session: &'a mut dyn Any) -> Self {
        HookSession(session)
    }

    /// The session, if it is a `T`.
    pub(crate) fn get<T: 'static>(&mut self) -> Option<&mut T> {
        self.0.downcast_mut::<T>()
    }
}

impl std::fmt::Debug for HookSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSession")
    }
}
