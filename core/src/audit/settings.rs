//! The audit settings as audit types: the seal key and the witness named by an
//! [`AuditConfig`], and a [`DatabaseConfig`] sealing with a given key.

use super::record::AuditKey;
use super::witness::Witness;
use crate::config::{AuditConfig, DatabaseConfig, KEY_FORMAT};
use crate::error::{Error, Result};

impl AuditConfig {
    /// The parsed seal key, if configured.
    pub fn key(&self) -> Result<Option<AuditKey>> {
        match &self.key {
            None => Ok(None),
            Some(hex) => AuditKey::from_hex(hex)
                .map(Some)
                .ok_or_else(|| Error::config("audit.key", KEY_FORMAT)),
        }
    }

    /// The witness, if configured.
    pub fn witness(&self) -> Option<Witness> {
        self.witness.as_ref().map(Witness::file)
    }
}

impl DatabaseConfig {
    /// Seals audit records with `key` (`audit.key`).
    pub fn with_audit_key(mut self, key: &AuditKey) -> Self {
        self.audit.key = Some(key.to_hex());
        self
    }
}
