//! [`Principal`]: who is acting. Every session carries one for its writes; the audit trail
//! records it, and access policies decide by its roles and tenant.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The acting user or service: an id, roles, and optionally the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identifier (user id, service name).
    pub id: String,
    /// Roles, for access policies.
    pub roles: BTreeSet<String>,
    /// Tenant, for row filters that isolate tenants.
    pub tenant: Option<String>,
}

impl Principal {
    /// A principal with no roles and no tenant. An empty id is refused with
    /// [`Error::Forbidden`] at the first write or erasure (see [`Principal::try_new`] to refuse
    /// it here).
    ///
    /// ```
    /// let alice = custodian_core::Principal::new("alice").with_role("auditor").in_tenant("acme");
    /// assert!(alice.has_role("auditor"));
    /// assert_eq!(alice.tenant.as_deref(), Some("acme"));
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Principal {
            id: id.into(),
            roles: BTreeSet::new(),
            tenant: None,
        }
    }

    /// A principal with no roles and no tenant; [`Error::Forbidden`] if `id` is empty or only
    /// white space (the audit trail could not say who acted).
    ///
    /// ```
    /// use custodian_core::Principal;
    /// assert!(Principal::try_new("svc-ledger").is_ok());
    /// assert!(Principal::try_new(" ").is_err());
    /// ```
    pub fn try_new(id: impl Into<String>) -> Result<Self> {
        let principal = Principal::new(id);
        principal.check()?;
        Ok(principal)
    }

    /// [`Error::Forbidden`] if the id is empty or only white space. Every write and erasure
    /// checks the acting principal with it before touching the database.
    pub fn check(&self) -> Result<()> {
        if self.id.trim().is_empty() {
            return Err(Error::Forbidden(
                "the acting principal has an empty id: give it the stable id of the user or \
                 service acting, so the audit trail can name it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }

    /// Sets the tenant.
    pub fn in_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}
