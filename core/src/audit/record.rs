//! One audit record, its canonical encoding, its seal (HMAC-SHA-256 under the audit key), and
//! the keyed link that binds a sealed record to its place in the chain.
//!
//! The canonical encoding is backend-independent: a version tag, the record's ordinal in its
//! transaction (big-endian `i32`), then every other field in a fixed order, each as a
//! big-endian `u32` length and its UTF-8 bytes (`u32::MAX` for a missing value). Images are
//! canonical JSON (object keys sorted), timestamps are `YYYY-MM-DD HH:MM:SS.ffffff` in UTC. A
//! chain copied from SQLite to PostgreSQL therefore verifies the same.
//!
//! The seal binds a record's identity: its transaction id and its ordinal in that transaction
//! are unique, so two rows with the same seal are a copy (a replay), which verification reports.
//! The link binds its position: sequence number, previous link and the record's row id, under
//! a chain key derived from the audit key, so the chain cannot be renumbered, reordered or
//! re-linked around a removed record without the key.

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
#[derive(Clone)]
pub struct AuditKey {
    bytes: [u8; 32],
    /// HMAC-SHA-256 under `bytes` with its key schedule done once, cloned for each seal.
    mac: Hmac<Sha256>,
}

impl AuditKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AuditKey {
            bytes,
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("HMAC takes any key length"),
        }
    }

    /// A key from 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        crate::config::key_bytes(hex).map(AuditKey::from_bytes)
    }

    /// A fresh random key from the operating system.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        Ok(AuditKey::from_bytes(bytes))
    }

    /// The key as 64 hex digits (to store in a secret manager).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// HMAC-SHA-256 under this key, ready for a message.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl PartialEq for AuditKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for AuditKey {}

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
    /// Position of the record among its transaction's records (from 0); with `tx_id` it names
    /// the record uniquely, so the seal of a copy equals the original's.
    pub ordinal: i32,
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

/// The first bytes of every canonical encoding (the format's version).
pub const CANONICAL_TAG: &[u8] = b"custodian-audit-v2\n";

/// Formats a timestamp the way the canonical encoding and JSON images do.
pub fn format_at(at: &chrono::NaiveDateTime) -> String {
    match at_digits(at) {
        // The digits are ASCII.
        Some(text) => text.iter().map(|&b| char::from(b)).collect(),
        None => at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
    }
}

/// `at` as `YYYY-MM-DD HH:MM:SS.ffffff`, written by hand (chrono's formatter parses its format
/// string on every call); `None` for what chrono writes otherwise: years outside 1000 to 9999
/// and leap seconds.
fn at_digits(at: &chrono::NaiveDateTime) -> Option<[u8; 26]> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(1000..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut out = *b"0000-00-00 00:00:00.000000";
    let mut put = |from: usize, width: usize, mut v: u32| {
        for i in (from..from + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    put(20, 6, nanos / 1_000);
    Some(out)
}

impl AuditRecord {
    /// The backend-independent bytes that are sealed and chained (everything but `id` and
    /// `mac`).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_canonical(&mut |bytes| out.extend_from_slice(bytes));
        out
    }

    /// Passes the canonical encoding to `put`, piece by piece (to a digest without a buffer).
    pub(crate) fn write_canonical(&self, put: &mut impl FnMut(&[u8])) {
        put(CANONICAL_TAG);
        put(&self.ordinal.to_be_bytes());
        let digits = at_digits(&self.at);
        let slow;
        let at: &[u8] = match &digits {
            Some(d) => d,
            None => {
                slow = format_at(&self.at);
                slow.as_bytes()
            }
        };
        for v in [
            Some(self.tx_id.as_bytes()),
            Some(at),
            Some(self.actor.as_bytes()),
            self.tenant.as_deref().map(str::as_bytes),
            Some(self.entity.as_bytes()),
            Some(self.entity_key.as_bytes()),
            Some(self.op.as_bytes()),
            self.before.as_deref().map(str::as_bytes),
            self.after.as_deref().map(str::as_bytes),
            self.reason.as_deref().map(str::as_bytes),
            self.request_id.as_deref().map(str::as_bytes),
        ] {
            match v {
                Some(v) => {
                    let len = u32::try_from(v.len()).unwrap_or(u32::MAX - 1);
                    put(&len.to_be_bytes());
                    put(&v[..len as usize]);
                }
                None => put(&u32::MAX.to_be_bytes()),
            }
        }
    }

    /// The seal's digest: HMAC-SHA-256 of the canonical encoding under `key`, SHA-256 without.
    pub(crate) fn seal_digest(&self, key: Option<&AuditKey>) -> [u8; 32] {
        match key {
            Some(k) => {
                let mut mac = k.mac();
                self.write_canonical(&mut |bytes| mac.update(bytes));
                mac.finalize().into_bytes().into()
            }
            None => {
                let mut sha = Sha256::new();
                self.write_canonical(&mut |bytes| sha.update(bytes));
                sha.finalize().into()
            }
        }
    }

    /// Computes the seal of this record's content under `key`.
    pub fn compute_mac(&self, key: Option<&AuditKey>) -> String {
        hex::encode(self.seal_digest(key))
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

/// The key that links the chain: derived from the audit key (HMAC-SHA-256 of a fixed label),
/// so one secret serves both, yet a record seal can never be confused with a link. Without an
/// audit key (unkeyed trails) links are plain SHA-256, which anyone can recompute.
#[derive(Clone)]
pub struct ChainKey(Option<Hmac<Sha256>>);

impl ChainKey {
    /// The chain key of `key` (`None`: an unkeyed trail).
    pub fn new(key: Option<&AuditKey>) -> ChainKey {
        ChainKey(key.map(|k| {
            let derived = keyed(&k.bytes, b"custodian-chain-key-v2");
            // HMAC accepts keys of any length.
            <Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("HMAC takes any key length")
        }))
    }

    /// Whether links are keyed.
    pub fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    /// The digest of `parts` under this key (or plain SHA-256 when unkeyed).
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        match &self.0 {
            Some(keyed) => {
                let mut mac = keyed.clone();
                for p in parts {
                    mac.update(p);
                }
                mac.finalize().into_bytes().into()
            }
            None => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }

    /// The link of the record sealed `mac` (row id `record_id`) at sequence number `seq`,
    /// following the link `prev_hash`.
    pub fn link_digest(&self, prev_hash: &str, mac: &str, seq: i64, record_id: i64) -> [u8; 32] {
        self.digest(&[
            b"custodian-chain-v2\n",
            prev_hash.as_bytes(),
            b"\n",
            mac.as_bytes(),
            b"\n",
            &seq.to_be_bytes(),
            &record_id.to_be_bytes(),
        ])
    }

    /// [`ChainKey::link_digest`] as lower-case hex, as stored.
    pub fn link_hash(&self, prev_hash: &str, mac: &str, seq: i64, record_id: i64) -> String {
        hex::encode(self.link_digest(prev_hash, mac, seq, record_id))
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_keyed() {
            "ChainKey(keyed)"
        } else {
            "ChainKey(unkeyed)"
        })
    }
}

/// HMAC-SHA-256 of `message` under `key`.
fn keyed(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl AuditKey {
    /// A value that tells whether a verifier holds the key the trail was sealed with, without
    /// revealing the key: hex HMAC of a fixed label.
    pub fn check_value(&self) -> String {
        hex::encode(keyed(&self.bytes, b"custodian-key-check-v2"))
    }
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
            ordinal: 0,
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
        let digest = hex::encode(Sha256::digest(record().canonical()));
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
    fn links_depend_on_position_and_key() {
        let key = AuditKey::from_bytes([7; 32]);
        let chain = ChainKey::new(Some(&key));
        let a = chain.link_hash(GENESIS, "aa", 1, 10);
        assert_ne!(a, chain.link_hash(GENESIS, "aa", 2, 10));
        assert_ne!(a, chain.link_hash(GENESIS, "ab", 1, 10));
        assert_ne!(
            a,
            chain.link_hash(GENESIS, "aa", 1, 11),
            "the row id is bound"
        );
        let other = ChainKey::new(Some(&AuditKey::from_bytes([8; 32])));
        assert_ne!(a, other.link_hash(GENESIS, "aa", 1, 10));
        assert_ne!(a, ChainKey::new(None).link_hash(GENESIS, "aa", 1, 10));
        let seal = record().seal(Some(&key)).mac;
        assert_ne!(
            hex::encode(chain.digest(&[&record().canonical()])),
            seal,
            "the chain key is not the seal key"
        );
        assert_ne!(
            key.check_value(),
            AuditKey::from_bytes([8; 32]).check_value()
        );
        assert_eq!(AuditOp::from_name("purge"), Some(AuditOp::Purge));
    }

    #[test]
    fn timestamps_are_formatted_as_chrono_formats_them() {
        let times = [
            (2026, 3, 1, 9, 30, 0, 120_000),
            (1000, 1, 1, 0, 0, 0, 0),
            (9999, 12, 31, 23, 59, 59, 999_999_999),
            (999, 12, 31, 23, 59, 59, 0),
            (10_000, 1, 1, 0, 0, 0, 1_000),
            (2016, 12, 31, 23, 59, 59, 1_500_000_000),
            (-44, 3, 15, 12, 0, 0, 7),
        ];
        for (y, mo, d, h, mi, s, nano) in times {
            let t = chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_nano_opt(h, mi, s, nano)
                .unwrap();
            assert_eq!(
                format_at(&t),
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                "{t:?}"
            );
        }
    }

    #[test]
    fn seals_are_pinned() {
        // Trails already sealed must keep verifying: the v2 seals of this record, keyed and
        // unkeyed, at three timestamps (microseconds, whole seconds, a year before 1000).
        let key = AuditKey::from_bytes([7; 32]);
        let pinned = [
            (
                (2026, 3, 1, 9, 30, 0, 120),
                "bbfb5c6196c2a4f91dedc963711b889bb3275056188132bf64319977fcb4025a",
                "104cc304c2931a7ad4c019bc2d1760ddd62adaf43ed62a27a03c0dd8fb8e23cd",
            ),
            (
                (1999, 12, 31, 23, 59, 59, 0),
                "13236410899550abb6be4157e0b137288471011147069b56ad8503a2ddedb4bb",
                "c85445bb34fd40d3f67ff51b289774a1a7882adaf9ef4df32c54483cb275fa3d",
            ),
            (
                (812, 1, 2, 3, 4, 5, 999_999),
                "fce22955f9284bc250293a3a3eb123157bf9ee3c0ad35797f485adf9bc5445d2",
                "26a26718a43bb42033ecd2966c23537d3eec45c9e00a31747415ea032142190e",
            ),
        ];
        for ((y, mo, d, h, mi, s, us), keyed, plain) in pinned {
            let mut r = record();
            r.at = chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_micro_opt(h, mi, s, us)
                .unwrap();
            assert_eq!(r.compute_mac(Some(&key)), keyed, "{}", r.at);
            assert_eq!(r.compute_mac(None), plain, "{}", r.at);
            assert_eq!(
                hex::encode(Sha256::digest(r.canonical())),
                plain,
                "the unkeyed seal is the digest of the canonical bytes"
            );
        }
    }

    #[test]
    fn the_seal_binds_the_ordinal() {
        let key = AuditKey::from_bytes([7; 32]);
        let first = record().seal(Some(&key));
        let mut second = record();
        second.ordinal = 1;
        assert_ne!(second.seal(Some(&key)).mac, first.mac);
        let mut moved = first.clone();
        moved.ordinal = 1;
        assert!(!moved.seal_is_valid(Some(&key)));
    }
}
