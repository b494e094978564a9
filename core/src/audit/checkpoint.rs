//! Signed checkpoints: an ed25519 signature over the chain head (sequence number and hash),
//! exported as JSON and kept outside the database. Verifying the chain against a checkpoint
//! detects truncation and rewritten history, even when a forger recomputed every later hash.

use crate::error::{Error, IntegrityKind, Result};
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

/// The outcome of [`Checkpoint::check_signature`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Signed, unchanged, by a trusted key.
    Valid,
    /// Signed by a key that is not trusted (whether or not the signature holds).
    Untrusted,
    /// The checkpoint or its signature is damaged.
    Invalid(String),
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
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks that the checkpoint is signed, unchanged, by one of the `trusted` keys (the
    /// auditor's copies of the signers' public keys; the key inside the checkpoint is never
    /// trusted on its own, since a forger can put any key there).
    pub fn check_signature(&self, trusted: &[VerifyingKey]) -> SignatureCheck {
        check_hex_signature(
            &self.public_key,
            &self.signature,
            &Self::message(self.seq, &self.hash, &self.at),
            trusted,
        )
        .map_or_else(|check| check, |_| SignatureCheck::Valid)
    }

    /// `Ok` when the checkpoint is signed, unchanged, by `trusted`; else [`Error::Integrity`].
    pub fn verify_signature(&self, trusted: &VerifyingKey) -> Result<()> {
        let bad = |why: &str| {
            Error::integrity(
                IntegrityKind::Checkpoint,
                format!("checkpoint at sequence {}: {why}", self.seq),
            )
        };
        match self.check_signature(std::slice::from_ref(trusted)) {
            SignatureCheck::Valid => Ok(()),
            SignatureCheck::Untrusted => Err(bad("signed by an untrusted key")),
            SignatureCheck::Invalid(why) => Err(bad(&why)),
        }
    }

    /// A public key from 64 hex digits.
    pub fn parse_public_key(hex: &str) -> Result<VerifyingKey> {
        crate::config::parse_public_key(hex)
    }

    /// A signing key from 64 hex digits (as `custodian keygen` writes it).
    pub fn parse_signing_key(hex: &str) -> Result<SigningKey> {
        crate::config::parse_signing_key(hex)
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

/// Checks an ed25519 signature kept as hex (`public_key`, `signature`) over `message`: the
/// key must be one of `trusted` (a key carried with the signed thing is never trusted on its
/// own, since a forger can put any key there). Returns the signer's key when the signature is
/// valid, else why not ([`SignatureCheck::Untrusted`] or [`SignatureCheck::Invalid`]).
pub(crate) fn check_hex_signature(
    public_key: &str,
    signature: &str,
    message: &[u8],
    trusted: &[VerifyingKey],
) -> std::result::Result<VerifyingKey, SignatureCheck> {
    let key = hex::decode(public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| SignatureCheck::Invalid("malformed public key".into()))?;
    if !trusted.contains(&key) {
        return Err(SignatureCheck::Untrusted);
    }
    let sig = hex::decode(signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| SignatureCheck::Invalid("malformed signature".into()))?;
    key.verify(message, &Signature::from_bytes(&sig))
        .map_err(|_| SignatureCheck::Invalid("the signature does not match its content".into()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_verify_and_detect_changes() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let cp = Checkpoint::sign(42, &"ab".repeat(32), &key);
        let trusted = [key.verifying_key()];
        cp.verify_signature(&key.verifying_key()).unwrap();
        assert_eq!(cp.check_signature(&trusted), SignatureCheck::Valid);
        let back = Checkpoint::from_json(&cp.to_json()).unwrap();
        assert_eq!(back, cp);
        let mut forged = cp.clone();
        forged.seq = 41;
        assert!(matches!(
            forged.check_signature(&trusted),
            SignatureCheck::Invalid(_)
        ));
        let other = SigningKey::from_bytes(&[4; 32]);
        let resigned = Checkpoint::sign(42, &cp.hash, &other);
        assert_eq!(
            resigned.check_signature(&trusted),
            SignatureCheck::Untrusted
        );
        assert_eq!(resigned.check_signature(&[]), SignatureCheck::Untrusted);
        assert!(resigned.verify_signature(&key.verifying_key()).is_err());
    }
}
