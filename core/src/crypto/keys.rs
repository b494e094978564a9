//! Master keys, the key ring, AES-256-GCM sealing of bytes, wrapping of data keys and the
//! blind-index key.

use crate::config::CryptoConfig;
use crate::error::{Error, IntegrityKind, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// 32 bytes of key material, wiped from memory when dropped.
pub(crate) type KeyBytes = Zeroizing<[u8; 32]>;

/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;

/// Fresh random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| {
        Error::integrity(
            IntegrityKind::Crypto,
            format!("no randomness from the operating system: {e}"),
        )
    })?;
    Ok(b)
}

/// Additional authenticated data: a domain tag, then each field as a big-endian `u32` length
/// and its bytes, so fields cannot run into each other.
pub(crate) fn aad(tag: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(tag.as_bytes());
    out.push(b'\n');
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// AES-256-GCM under `key` with a random nonce: `nonce || ciphertext || tag`.
pub(crate) fn encrypt(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce: [u8; NONCE_LEN] = random()?;
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .map_err(|_| Error::integrity(IntegrityKind::Crypto, "AES-GCM encryption failed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`; `None` when the tag does not match (wrong key, altered
/// bytes or different AAD).
pub(crate) fn decrypt(key: &[u8; 32], aad: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = data.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// The master keys, by id, with the active one (wraps new data keys) and the key blind indexes
/// are computed with. `Debug` shows ids only.
pub struct KeyRing {
    keys: BTreeMap<String, KeyBytes>,
    active: String,
    index_id: String,
    index_key: KeyBytes,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .field("index_key", &self.index_id)
            .finish()
    }
}

fn derive_index_key(master: &[u8; 32]) -> KeyBytes {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key");
    mac.update(b"custodian-blind-index-key-v1");
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl KeyRing {
    /// A ring of `keys` (id and 32 bytes) with `active` wrapping new data keys and `index`
    /// (default: `active`) deriving the blind-index key. Unknown ids are [`Error::Config`].
    pub fn new(
        keys: impl IntoIterator<Item = (String, [u8; 32])>,
        active: &str,
        index: Option<&str>,
    ) -> Result<KeyRing> {
        let keys: BTreeMap<String, KeyBytes> = keys
            .into_iter()
            .map(|(id, k)| (id, Zeroizing::new(k)))
            .collect();
        let index_id = index.unwrap_or(active).to_string();
        if !keys.contains_key(active) {
            return Err(Error::config(
                "crypto.active",
                format!("`{active}` is not one of the configured keys"),
            ));
        }
        let index_key = match keys.get(&index_id) {
            Some(k) => derive_index_key(k),
            None => {
                return Err(Error::config(
                    "crypto.index_key",
                    format!("`{index_id}` is not one of the configured keys"),
                ))
            }
        };
        Ok(KeyRing {
            keys,
            active: active.to_string(),
            index_id,
            index_key,
        })
    }

    /// The ring configured in `cfg` (already validated); `None` when no key is configured.
    pub fn from_config(cfg: &CryptoConfig) -> Result<Option<KeyRing>> {
        cfg.validate("crypto")?;
        let Some(active) = cfg.active_id() else {
            return Ok(None);
        };
        let mut keys = Vec::with_capacity(cfg.keys.len());
        for (id, hex) in &cfg.keys {
            let bytes = Zeroizing::new(hex::decode(hex.trim()).ok().unwrap_or_default());
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                Error::config(
                    format!("crypto.keys.{id}"),
                    "must be 64 hex digits (32 bytes)",
                )
            })?;
            keys.push((id.clone(), key));
        }
        KeyRing::new(keys, active, cfg.index_key.as_deref()).map(Some)
    }

    /// Id of the active master key.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Id of the master key the blind-index key is derived from.
    pub fn index_key_id(&self) -> &str {
        &self.index_id
    }

    /// Ids of every master key in the ring.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub(crate) fn active_key(&self) -> &[u8; 32] {
        &self.keys[&self.active]
    }

    pub(crate) fn get(&self, id: &str) -> Result<&[u8; 32]> {
        self.keys.get(id).map(|k| &**k).ok_or_else(|| {
            Error::config(
                "crypto.keys",
                format!(
                    "master key `{id}` is needed but not configured (configured: {})",
                    self.keys.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    pub(crate) fn index_key(&self) -> &[u8; 32] {
        &self.index_key
    }
}

const WRAP_TAG: &str = "custodian-wrap-v1";

/// Wraps a data key under a master key. The AAD binds master key id, data key id and subject, so
/// a wrapped key copied to another subject's row, or relabelled, does not unwrap.
pub(crate) fn wrap(
    master: &[u8; 32],
    master_id: &str,
    data_key_id: &str,
    subject: &str,
    data_key: &[u8; 32],
) -> Result<String> {
    let aad = aad(WRAP_TAG, &[master_id, data_key_id, subject]);
    Ok(hex::encode(&encrypt(master, &aad, data_key)?))
}

/// Unwraps what [`wrap`] made; [`Error::Integrity`] when it does not authenticate.
pub(crate) fn unwrap(
    master: &[u8; 32],
    master_id: &str,
    data_key_id: &str,
    subject: &str,
    wrapped: &str,
) -> Result<KeyBytes> {
    let fail = || {
        Error::integrity(
            IntegrityKind::Ciphertext,
            format!(
                "data key {data_key_id} does not unwrap under master key `{master_id}`: the \
                 master key is wrong, or the key row was altered or moved"
            ),
        )
    };
    let bytes = hex::decode(wrapped.trim()).ok().ok_or_else(fail)?;
    let aad = aad(WRAP_TAG, &[master_id, data_key_id, subject]);
    let plain = decrypt(master, &aad, &bytes).ok_or_else(fail)?;
    let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| fail())?;
    Ok(Zeroizing::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_binds_ids_and_subject() {
        let (m, dk) = ([1u8; 32], [9u8; 32]);
        let w = wrap(&m, "k1", "d1", "alice", &dk).unwrap();
        assert_eq!(*unwrap(&m, "k1", "d1", "alice", &w).unwrap(), dk);
        assert!(unwrap(&m, "k1", "d1", "bob", &w).is_err(), "moved to bob");
        assert!(unwrap(&m, "k1", "d2", "alice", &w).is_err(), "relabelled");
        assert!(unwrap(&m, "k2", "d1", "alice", &w).is_err(), "other key id");
        assert!(
            unwrap(&[2u8; 32], "k1", "d1", "alice", &w).is_err(),
            "wrong key"
        );
        assert!(unwrap(&m, "k1", "d1", "alice", "zz").is_err(), "not hex");
        assert!(unwrap(&m, "k1", "d1", "alice", "00").is_err(), "short");
    }

    #[test]
    fn ring_debug_hides_keys_and_checks_ids() {
        let ring = KeyRing::new([("k1".to_string(), [0xab; 32])], "k1", None).unwrap();
        let shown = format!("{ring:?}");
        assert!(!shown.contains("abab") && !shown.contains("171"), "{shown}");
        assert!(KeyRing::new([("k1".to_string(), [0; 32])], "k2", None).is_err());
        assert!(KeyRing::new([("k1".to_string(), [0; 32])], "k1", Some("k9")).is_err());
        assert!(matches!(ring.get("k7"), Err(Error::Config { .. })));
        assert_eq!(ring.index_key_id(), "k1");
    }

    #[test]
    fn aad_fields_are_delimited() {
        assert_ne!(aad("t", &["ab", "c"]), aad("t", &["a", "bc"]));
    }
}
