//! Signed checkpoints: an ed25519 signature over the chain head (sequence number and hash),
//! exported as JSON and kept outside the database. Verifying the chain against a checkpoint
//! detects truncation and rewritten history, even when a forger recomputed every later hash.

use crate::error::{Error, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// A signed statement "the chain had `seq` links ending in `hash` at `at`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number of the last link covered.
    pub seq: i64,
    /// Hash of that link.
    pub hash: String,
    /// When the checkpoint was made (UTC, RFC 3339).
    pub at: String,
    /// Hex ed25519 public key of the signer.
    pub public_key: String,
    /// Hex ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

/// A fresh ed25519 signing key from the operating system's randomness.
pub fn generate_signing_key() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| Error::Config {
        field: "audit.signing_key".into(),
        message: format!("no randomness available: {e}"),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

impl Checkpoint {
    /// The exact bytes signed.
    pub fn message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
        format!("custodian-checkpoint-v1\n{seq}\n{hash}\n{at}\n").into_bytes()
    }

    /// Signs the head `(seq, hash)` with `key`.
    pub fn sign(seq: i64, hash: &str, key: &SigningKey) -> Checkpoint {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let signature = key.sign(&Self::message(seq, hash, &at));
        Checkpoint {
            seq,
            hash: hash.to_string(),
            at,
            public_key: crate::hex::encode(key.verifying_key().as_bytes()),
            signature: crate::hex::encode(&signature.to_bytes()),
        }
    }

    /// Checks the signature, and that it was made by `trusted` (the auditor's copy of the
    /// public key; without it only self-consistency is checked, which a forger can fake).
    pub fn verify_signature(&self, trusted: Option<&VerifyingKey>) -> Result<()> {
        let bad =
            |why: &str| Error::Integrity(format!("checkpoint at sequence {}: {why}", self.seq));
        let key_bytes: [u8; 32] = crate::hex::decode(&self.public_key)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("malformed public key"))?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad("invalid public key"))?;
        if let Some(t) = trusted {
            if t != &key {
                return Err(bad("signed by an untrusted key"));
            }
        }
        let sig_bytes: [u8; 64] = crate::hex::decode(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("malformed signature"))?;
        key.verify(
            &Self::message(self.seq, &self.hash, &self.at),
            &Signature::from_bytes(&sig_bytes),
        )
        .map_err(|_| bad("the signature does not match"))
    }

    /// The checkpoint as JSON, to store outside the database.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A checkpoint from its JSON export.
    pub fn from_json(text: &str) -> Result<Checkpoint> {
        serde_json::from_str(text).map_err(|e| Error::Config {
            field: "checkpoint".into(),
            message: format!("not a custodian checkpoint: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_verify_and_detect_changes() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let cp = Checkpoint::sign(42, &"ab".repeat(32), &key);
        cp.verify_signature(Some(&key.verifying_key())).unwrap();
        let back = Checkpoint::from_json(&cp.to_json()).unwrap();
        assert_eq!(back, cp);
        let mut forged = cp.clone();
        forged.seq = 41;
        assert!(forged.verify_signature(None).is_err());
        let other = SigningKey::from_bytes(&[4; 32]);
        let resigned = Checkpoint::sign(42, &cp.hash, &other);
        assert!(resigned.verify_signature(None).is_ok());
        assert!(resigned
            .verify_signature(Some(&key.verifying_key()))
            .is_err());
    }
}
