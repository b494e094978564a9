//! Crypto settings (`[databases.NAME.crypto]`) and their environment overrides.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Field-encryption settings: the master key ring and which key is active.
///
/// ```toml
/// [databases.main.crypto]
/// keys = { k1 = "<64 hex digits>", k2 = "<64 hex digits>" }
/// active = "k2"        # wraps new subject keys; older ones are re-wrapped by Crypto::rotate
/// index_key = "k1"     # blind indexes are derived from this one (default: active)
/// cache_ttl_ms = 60000 # how long an unwrapped data key is reused for opening values
/// ```
///
/// Environment: `CUSTODIAN_CRYPTO_KEYS=k1:hex,k2:hex`, `CUSTODIAN_CRYPTO_ACTIVE=k2`,
/// `CUSTODIAN_CRYPTO_INDEX_KEY=k1`, `CUSTODIAN_CRYPTO_CACHE_TTL_MS=0`. Without keys, field
/// encryption is off and `Db::crypto` is an [`Error::Config`]. Key material never appears in
/// `Debug` output or errors.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CryptoConfig {
    /// Master keys by id: 64 hex digits (32 bytes) each. Ids are 1 to 64 characters of
    /// `A-Z a-z 0-9 _ - .`.
    pub keys: BTreeMap<String, String>,
    /// Id of the master key that wraps new data keys; optional when there is exactly one key.
    pub active: Option<String>,
    /// Id of the master key blind indexes are derived from; defaults to `active`. Keep it
    /// stable across rotations (or rebuild every blind index when it changes).
    pub index_key: Option<String>,
    /// How long an unwrapped data key is kept in memory for opening values, in milliseconds.
    /// Default 60 000; `0` reads the key from the database on every open. After an erasure in
    /// another process, this process may still open the erased subject's values this long.
    pub cache_ttl_ms: u64,
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            keys: BTreeMap::new(),
            active: None,
            index_key: None,
            cache_ttl_ms: 60_000,
        }
    }
}

impl fmt::Debug for CryptoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoConfig")
            .field(
                "keys",
                &self
                    .keys
                    .keys()
                    .map(|id| (id, "***"))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("active", &self.active)
            .field("index_key", &self.index_key)
            .field("cache_ttl_ms", &self.cache_ttl_ms)
            .finish()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl CryptoConfig {
    /// Whether any master key is configured (field encryption is on).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the active master key: `active`, or the only key.
    pub fn active_id(&self) -> Option<&str> {
        match &self.active {
            Some(a) => Some(a.as_str()),
            None if self.keys.len() == 1 => self.keys.keys().next().map(String::as_str),
            None => None,
        }
    }

    /// Checks ids, key lengths and that `active` and `index_key` name configured keys; `at` is
    /// the dotted path used in error messages. Messages name key ids, never key material.
    pub fn validate(&self, at: &str) -> Result<()> {
        let field = |k: &str| format!("{at}.{k}");
        for (id, hex) in &self.keys {
            if !valid_id(id) {
                return Err(Error::config(
                    field("keys"),
                    format!("`{id}` is not a valid key id (1-64 of A-Z a-z 0-9 _ - .)"),
                ));
            }
            let ok = hex::decode(hex.trim()).ok().is_some_and(|b| b.len() == 32);
            if !ok {
                return Err(Error::config(
                    field(&format!("keys.{id}")),
                    "must be 64 hex digits (32 bytes)",
                ));
            }
        }
        if self.keys.is_empty() {
            if self.active.is_some() || self.index_key.is_some() {
                return Err(Error::config(
                    field("keys"),
                    "no master key configured, but `active` or `index_key` is set",
                ));
            }
            return Ok(());
        }
        let Some(active) = self.active_id() else {
            return Err(Error::config(
                field("active"),
                "several master keys are configured: say which one is active",
            ));
        };
        if !self.keys.contains_key(active) {
            return Err(Error::config(
                field("active"),
                format!("`{active}` is not one of the configured keys"),
            ));
        }
        if let Some(ix) = &self.index_key {
            if !self.keys.contains_key(ix) {
                return Err(Error::config(
                    field("index_key"),
                    format!("`{ix}` is not one of the configured keys"),
                ));
            }
        }
        Ok(())
    }

    /// Applies `CUSTODIAN_CRYPTO_KEYS` (`id:hex,id:hex`, replaces the ring),
    /// `CUSTODIAN_CRYPTO_ACTIVE`, `CUSTODIAN_CRYPTO_INDEX_KEY` and
    /// `CUSTODIAN_CRYPTO_CACHE_TTL_MS`, reading variables with `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("CUSTODIAN_CRYPTO_KEYS") {
            let mut keys = BTreeMap::new();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((id, hex)) = item.split_once(':') else {
                    return Err(Error::config(
                        "CUSTODIAN_CRYPTO_KEYS",
                        "expected comma-separated `id:hex` pairs",
                    ));
                };
                keys.insert(id.trim().to_string(), hex.trim().to_string());
            }
            self.keys = keys;
        }
        if let Some(v) = get("CUSTODIAN_CRYPTO_ACTIVE") {
            self.active = Some(v.trim().to_string()).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("CUSTODIAN_CRYPTO_INDEX_KEY") {
            self.index_key = Some(v.trim().to_string()).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("CUSTODIAN_CRYPTO_CACHE_TTL_MS") {
            self.cache_ttl_ms = v.trim().parse().map_err(|_| {
                Error::config(
                    "CUSTODIAN_CRYPTO_CACHE_TTL_MS",
                    format!("`{v}` is not a valid number"),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    #[test]
    fn env_overrides_and_validation() {
        let mut c = CryptoConfig::default();
        c.apply_env(|k| match k {
            "CUSTODIAN_CRYPTO_KEYS" => Some(format!("k1:{K1}, k2:{K2}")),
            "CUSTODIAN_CRYPTO_ACTIVE" => Some("k2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.keys.len(), 2);
        assert_eq!(c.active_id(), Some("k2"));
        c.validate("crypto").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(K1) && !shown.contains(K2), "{shown}");

        c.active = None;
        assert!(c.validate("crypto").is_err(), "two keys need an active one");
        c.active = Some("k3".into());
        assert!(c.validate("crypto").is_err());
        c.active = Some("k1".into());
        c.keys.insert("bad id".into(), K1.into());
        assert!(c.validate("crypto").is_err());
        c.keys.remove("bad id");
        c.keys.insert("k3".into(), "abcd".into());
        let err = c.validate("crypto").unwrap_err().to_string();
        assert!(
            err.contains("crypto.keys.k3") && !err.contains("abcd"),
            "{err}"
        );
        assert!(CryptoConfig::default()
            .apply_env(|k| (k == "CUSTODIAN_CRYPTO_KEYS").then(|| "nocolon".into()))
            .is_err());
    }

    #[test]
    fn toml_section_parses() {
        let c: CryptoConfig =
            toml::from_str(&format!("keys = {{ k1 = \"{K1}\" }}\ncache_ttl_ms = 0\n")).unwrap();
        assert_eq!(c.active_id(), Some("k1"), "a single key is the active one");
        assert_eq!(c.cache_ttl_ms, 0);
        c.validate("crypto").unwrap();
    }
}
