//! [`Session`] as the [`Context`] of the modules below it (audit trail, field encryption,
//! migrations): each method is the session's own.

use super::*;
use crate::context::{sealed::Sealed, Context};

impl Sealed for Session {}

impl Context for Session {
    fn backend(&self) -> &'static dyn crate::backend::Backend {
        Session::backend(self)
    }

    fn connection(&mut self) -> &mut AnyConnection {
        Session::connection(self)
    }

    fn run<T>(&mut self, f: impl FnOnce(&mut AnyConnection) -> QueryResult<T>) -> Result<T> {
        Session::run(self, f)
    }

    fn transaction_with<T>(
        &mut self,
        options: &TxOptions,
        f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<T> {
        Session::transaction_with(self, options, f)
    }

    fn transaction_depth(&self) -> u32 {
        Session::transaction_depth(self)
    }

    fn flush_audit(&mut self) -> Result<()> {
        Session::flush_audit(self)
    }
}

impl crate::crypto::KeyContext for Session {
    fn crypto(&self) -> Result<crate::crypto::Crypto> {
        Session::crypto(self)
    }

    fn principal(&self) -> Option<&Principal> {
        Session::principal(self)
    }

    fn may_erase(&self) -> bool {
        Session::may_erase(self)
    }

    fn refuse(
        &mut self,
        what: &str,
        entity: String,
        entity_key: String,
        action: &str,
        why: &str,
    ) -> Error {
        Session::refuse(self, what, entity, entity_key, action, why)
    }

    fn record_change(
        &mut self,
        entity: String,
        entity_key: String,
        op: AuditOp,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<()> {
        let actor = self
            .principal
            .clone()
            .ok_or_else(|| super::no_principal_for(&entity))?;
        let record = self.record_for(
            &actor,
            entity,
            entity_key,
            op,
            before,
            after,
            crate::audit::now_utc(),
        )?;
        self.record_audit(vec![record])
    }

    fn subject_erased(&mut self) {
        self.touch_encrypted();
    }
}
