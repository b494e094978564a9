//! Settings of the audit trail (`[databases.NAME.audit]` in TOML, `CUSTODIAN_AUDIT_*` in the
//! environment): the seal key, automatic checkpoints and their witness, the keys trusted to
//! sign checkpoints, and how long records may wait to be sealed.

use crate::error::{Error, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Audit trail settings (`[databases.NAME.audit]`).
///
/// Audited writes need one of the two: a `key`, or `unkeyed = true` saying on purpose that
/// records may be sealed without one. With neither, an audited write is refused with
/// [`Error::Config`] before anything is written. A configured key is always used.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Key sealing every audit record and linking the chain (HMAC-SHA-256), 64 hex digits;
    /// also from `CUSTODIAN_AUDIT_KEY`. Keep it out of the database. Without it records are
    /// sealed with plain SHA-256, which detects accidental corruption but not a forger with
    /// database access.
    pub key: Option<String>,
    /// Allow sealing records without a key (plain SHA-256) when none is configured: that detects
    /// accidental corruption but not a forger with database access, so it is for demos and tests.
    /// Ignored when a key is configured. Also `CUSTODIAN_AUDIT_UNKEYED=1` or
    /// [`DatabaseConfig::audit_unkeyed`](crate::DatabaseConfig::audit_unkeyed). Default false.
    pub unkeyed: bool,
    /// ed25519 signing key (64 hex digits, as `custodian keygen` writes it) with which the
    /// sealer signs checkpoints into the [`witness`](AuditConfig::witness); also from
    /// `CUSTODIAN_AUDIT_SIGNING_KEY`. Its public key is trusted by verification.
    pub signing_key: Option<String>,
    /// The witness file that receives signed checkpoints (append-only, outside the audited
    /// database); also from `CUSTODIAN_AUDIT_WITNESS`. Verification checks the chain against
    /// its latest checkpoint.
    pub witness: Option<String>,
    /// Public keys (64 hex digits each) whose checkpoints verification trusts, besides the
    /// configured signing key's; also from `CUSTODIAN_AUDIT_TRUSTED_KEYS`, comma-separated.
    pub trusted_keys: Vec<String>,
    /// A seal signs a checkpoint once the chain has grown this many links since the last
    /// witnessed one. Default 10 000.
    pub checkpoint_every_links: u64,
    /// ...or once this many seconds have passed since it (and the chain has grown). Default 60.
    pub checkpoint_every_secs: u64,
    /// Verification reports records left unsealed longer than this as damage
    /// ([`DamageKind::Unsealed`](crate::audit::DamageKind::Unsealed)); `None` never. Default
    /// 3 600 s: run the sealer more often than that.
    pub max_unsealed_secs: Option<u64>,
    /// PostgreSQL: send a transaction's audit records in the same round trip as its `COMMIT`
    /// (one round trip less per audited transaction; the statement is parsed at every commit
    /// instead of prepared once, so it pays only where a round trip costs more than that, a
    /// network hop rather than localhost). That batch cannot carry bind parameters,
    /// so the records' values are written into the statement's text, and the server shows that
    /// text where it shows statements: `pg_stat_activity.query` (to the same role and to roles
    /// with `pg_read_all_stats`, until the connection's next statement, so also while it idles
    /// in the pool; monitoring agents sample it) and the `STATEMENT` line of the server log when
    /// the commit fails. With bind parameters those show placeholders. Turn it on where the
    /// server's logs and statistics are kept under the same controls as the audited data.
    /// custodian's own spans and logs never show the values either way. Ignored on MariaDB and
    /// SQLite. Default false.
    pub records_with_commit: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            key: None,
            unkeyed: false,
            signing_key: None,
            witness: None,
            trusted_keys: Vec::new(),
            checkpoint_every_links: 10_000,
            checkpoint_every_secs: 60,
            max_unsealed_secs: Some(3_600),
            records_with_commit: false,
        }
    }
}

impl fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("AuditConfig")
            .field("key", &secret(&self.key))
            .field("unkeyed", &self.unkeyed)
            .field("signing_key", &secret(&self.signing_key))
            .field("witness", &self.witness)
            .field("trusted_keys", &self.trusted_keys)
            .field("checkpoint_every_links", &self.checkpoint_every_links)
            .field("checkpoint_every_secs", &self.checkpoint_every_secs)
            .field("max_unsealed_secs", &self.max_unsealed_secs)
            .field("records_with_commit", &self.records_with_commit)
            .finish()
    }
}

impl AuditConfig {
    /// The parsed checkpoint signing key, if configured.
    pub fn signing_key(&self) -> Result<Option<SigningKey>> {
        self.signing_key
            .as_deref()
            .map(parse_signing_key)
            .transpose()
    }

    /// The keys whose checkpoints are trusted: the configured ones and the signing key's.
    pub fn trusted_keys(&self) -> Result<Vec<VerifyingKey>> {
        let mut keys = self
            .trusted_keys
            .iter()
            .map(|k| parse_public_key(k))
            .collect::<Result<Vec<_>>>()?;
        if let Some(signer) = self.signing_key()? {
            keys.push(signer.verifying_key());
        }
        Ok(keys)
    }

    /// The bound on unsealed records' age.
    pub fn max_unsealed_age(&self) -> Option<Duration> {
        self.max_unsealed_secs.map(Duration::from_secs)
    }

    /// Checks every setting; errors name the setting under `at` (e.g. `databases.main.audit`).
    pub fn validate(&self, at: &str) -> Result<()> {
        fn named<'a>(at: &'a str, field: &'static str) -> impl Fn(Error) -> Error + 'a {
            move |e| match e {
                Error::Config { message, .. } => Error::config(format!("{at}.{field}"), message),
                other => other,
            }
        }
        if self.key.as_deref().is_some_and(|k| key_bytes(k).is_none()) {
            return Err(Error::config(format!("{at}.key"), KEY_FORMAT));
        }
        self.signing_key().map_err(named(at, "signing_key"))?;
        self.trusted_keys().map_err(named(at, "trusted_keys"))?;
        if self.checkpoint_every_links == 0 || self.checkpoint_every_secs == 0 {
            return Err(Error::config(
                format!("{at}.checkpoint_every_links"),
                "checkpoint intervals must be positive",
            ));
        }
        if self.signing_key.is_some() != self.witness.is_some() {
            return Err(Error::config(
                format!("{at}.witness"),
                "automatic checkpoints need both a signing key and a witness",
            ));
        }
        Ok(())
    }

    /// Applies, read with `get`: `CUSTODIAN_AUDIT_KEY` (`key`), `CUSTODIAN_AUDIT_UNKEYED`
    /// (`unkeyed`, `1`/`true` or `0`/`false`), `CUSTODIAN_AUDIT_SIGNING_KEY` (`signing_key`),
    /// `CUSTODIAN_AUDIT_WITNESS` (`witness`) and `CUSTODIAN_AUDIT_TRUSTED_KEYS`
    /// (`trusted_keys`, comma-separated).
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("CUSTODIAN_AUDIT_KEY") {
            self.key = Some(v);
        }
        if let Some(v) = get("CUSTODIAN_AUDIT_UNKEYED") {
            self.unkeyed = super::env_flag("CUSTODIAN_AUDIT_UNKEYED", v)?;
        }
        if let Some(v) = get("CUSTODIAN_AUDIT_SIGNING_KEY") {
            self.signing_key = Some(v);
        }
        if let Some(v) = get("CUSTODIAN_AUDIT_WITNESS") {
            self.witness = Some(v);
        }
        if let Some(v) = get("CUSTODIAN_AUDIT_TRUSTED_KEYS") {
            self.trusted_keys = v
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        Ok(())
    }
}

/// The error of an audited write when no key is configured and unkeyed seals were not chosen.
/// What `audit.key` must look like.
pub(crate) const KEY_FORMAT: &str = "must be 64 hex digits (32 bytes)";

/// The 32 bytes of an audit seal key given as 64 hex digits.
pub(crate) fn key_bytes(hex: &str) -> Option<[u8; 32]> {
    hex::decode(hex.trim()).ok()?.try_into().ok()
}

/// An ed25519 public key from 64 hex digits.
pub(crate) fn parse_public_key(hex: &str) -> Result<VerifyingKey> {
    key_bytes(hex)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| {
            Error::config(
                "audit.trusted_keys",
                "a public key is 64 hex digits (ed25519)",
            )
        })
}

/// An ed25519 signing key from 64 hex digits (as `custodian keygen` writes it).
pub(crate) fn parse_signing_key(hex: &str) -> Result<SigningKey> {
    key_bytes(hex)
        .map(|b| SigningKey::from_bytes(&b))
        .ok_or_else(|| {
            Error::config(
                "audit.signing_key",
                "a signing key is 64 hex digits (ed25519)",
            )
        })
}

pub(crate) fn missing_audit_key() -> Error {
    Error::config(
        "audit.key",
        "audited writes need a key sealing their audit records: set CUSTODIAN_AUDIT_KEY or \
         audit.key to 64 hex digits (for example from `openssl rand -hex 32`), kept outside the \
         database; or, for demos and tests, allow unkeyed seals explicitly with \
         `audit.unkeyed = true`, CUSTODIAN_AUDIT_UNKEYED=1 or DatabaseConfig::audit_unkeyed()",
    )
}
