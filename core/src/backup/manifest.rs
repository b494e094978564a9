//! The backup manifest: what a backup holds (per table its columns, row count and content
//! digest; the applied migrations; the audit chain head and a checkpoint of it; the dump file
//! and its SHA-256), signed with an ed25519 key. A manifest verifies only with the signer's
//! public key, held by the auditor; one edited by hand no longer verifies.

use crate::audit::checkpoint::check_hex_signature;
use crate::audit::{Checkpoint, SignatureCheck};
use crate::error::{Error, IntegrityKind, Result};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The digest of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDigest {
    /// Column names, in name order (the order values are hashed in).
    pub columns: Vec<String>,
    /// Row count.
    pub rows: u64,
    /// Sum of the rows' SHA-256 hashes modulo 2^256, hex (see [`TableHasher`](super::TableHasher)).
    pub hash: String,
}

/// The audit chain's last sealed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    /// Sequence number of the last link.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// The dump a backup wrote next to its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpFile {
    /// File name, inside the backup directory.
    pub file: String,
    /// The tool that wrote it.
    pub tool: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// What the manifest states; the signature covers exactly its JSON encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestBody {
    /// Format version (1).
    pub format: u32,
    /// This backup's id (a UUID).
    pub id: String,
    /// The id shared by the backups of one common cut across several databases.
    pub cut: Option<String>,
    /// The engine backed up (`postgres`, `mysql`, `sqlite`).
    pub backend: String,
    /// When the snapshot was taken (UTC, RFC 3339).
    pub taken_at: String,
    /// `physical` (the engine's own dump) or `logical` (custodian's portable export).
    pub kind: String,
    /// The dump file (physical backups).
    pub dump: Option<DumpFile>,
    /// Every table backed up, by name.
    pub tables: BTreeMap<String, TableDigest>,
    /// Applied migrations (`version checksum`), oldest first; `None` when not part of the
    /// backup (logical exports: the target keeps its own schema history).
    pub migrations: Option<Vec<String>>,
    /// The audit chain head in the snapshot (`None` without an audit trail).
    pub audit_head: Option<ChainHead>,
    /// A checkpoint of that head, signed with the manifest's key.
    pub checkpoint: Option<Checkpoint>,
}

/// A signed [`ManifestBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What is signed.
    pub body: ManifestBody,
    /// Hex ed25519 public key of the signer.
    pub public_key: String,
    /// Hex ed25519 signature over [`Manifest::message`].
    pub signature: String,
}

impl Manifest {
    /// The exact bytes signed.
    pub fn message(body: &ManifestBody) -> Result<Vec<u8>> {
        let json = serde_json::to_string(body)
            .map_err(|e| Error::integrity(IntegrityKind::Unencodable, format!("manifest: {e}")))?;
        Ok(format!("custodian-manifest-v1\n{json}").into_bytes())
    }

    /// Signs `body` with `key`.
    pub fn sign(body: ManifestBody, key: &SigningKey) -> Result<Manifest> {
        let signature = key.sign(&Self::message(&body)?);
        Ok(Manifest {
            body,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        })
    }

    /// Whether the manifest is signed, unchanged, by one of `trusted` (the key inside the
    /// manifest is never trusted on its own). Its checkpoint must be signed by the same key.
    pub fn check_signature(&self, trusted: &[VerifyingKey]) -> SignatureCheck {
        let Ok(message) = Self::message(&self.body) else {
            return SignatureCheck::Invalid("the manifest cannot be encoded".into());
        };
        let key = match check_hex_signature(&self.public_key, &self.signature, &message, trusted) {
            Ok(key) => key,
            Err(check) => return check,
        };
        match &self.body.checkpoint {
            Some(cp) => cp.check_signature(&[key]),
            None => SignatureCheck::Valid,
        }
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A manifest from its JSON; [`Error::Integrity`] (kind `Backup`) when it is not one.
    pub fn from_json(text: &str) -> Result<Manifest> {
        serde_json::from_str(text).map_err(|e| {
            Error::integrity(
                IntegrityKind::Backup,
                format!("not a custodian backup manifest: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> ManifestBody {
        let mut tables = BTreeMap::new();
        tables.insert(
            "accounts".to_string(),
            TableDigest {
                columns: vec!["id".into(), "owner".into()],
                rows: 2,
                hash: "ab".repeat(32),
            },
        );
        ManifestBody {
            format: 1,
            id: "id".into(),
            cut: None,
            backend: "sqlite".into(),
            taken_at: "2026-01-01T00:00:00Z".into(),
            kind: "physical".into(),
            dump: None,
            tables,
            migrations: Some(vec![]),
            audit_head: Some(ChainHead {
                seq: 3,
                hash: "cd".repeat(32),
            }),
            checkpoint: None,
        }
    }

    #[test]
    fn verifies_only_unchanged_and_with_the_right_key() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut b = body();
        b.checkpoint = Some(Checkpoint::sign(3, &"cd".repeat(32), &key));
        let m = Manifest::sign(b, &key).unwrap();
        let trusted = [key.verifying_key()];
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back.check_signature(&trusted), SignatureCheck::Valid);

        let mut edited = back.clone();
        edited.body.tables.get_mut("accounts").unwrap().rows = 3;
        assert!(matches!(
            edited.check_signature(&trusted),
            SignatureCheck::Invalid(_)
        ));
        let other = SigningKey::from_bytes(&[6; 32]);
        assert_eq!(
            back.check_signature(&[other.verifying_key()]),
            SignatureCheck::Untrusted
        );
        // A checkpoint signed by another key spoils the manifest.
        let mut b = body();
        b.checkpoint = Some(Checkpoint::sign(3, &"cd".repeat(32), &other));
        let m = Manifest::sign(b, &key).unwrap();
        assert_eq!(m.check_signature(&trusted), SignatureCheck::Untrusted);
        // A field added by hand makes it no manifest at all.
        let text = back
            .to_json()
            .replacen("\"format\"", "\"extra\": 1, \"format\"", 1);
        assert!(Manifest::from_json(&text).is_err());
    }

    /// The checkpoint is judged under the manifest's own key: one signed by another key is
    /// refused even when the auditor trusts that key too.
    #[test]
    fn the_checkpoint_must_be_signed_by_the_manifests_key() {
        let (key, other) = (
            SigningKey::from_bytes(&[5; 32]),
            SigningKey::from_bytes(&[6; 32]),
        );
        let both = [key.verifying_key(), other.verifying_key()];
        let mut b = body();
        b.checkpoint = Some(Checkpoint::sign(3, &"cd".repeat(32), &other));
        let m = Manifest::sign(b, &key).unwrap();
        assert_eq!(m.check_signature(&both), SignatureCheck::Untrusted);
        let mut b = body();
        b.checkpoint = Some(Checkpoint::sign(3, &"cd".repeat(32), &key));
        let m = Manifest::sign(b, &key).unwrap();
        assert_eq!(m.check_signature(&both), SignatureCheck::Valid);
    }
}
