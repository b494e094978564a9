//! Verifying a database against a manifest: the signature first (an edited manifest proves
//! nothing), then every table's columns, row count and digest, the migrations, the audit chain
//! head, and the chain itself walked against the manifest's checkpoint. Differences are
//! findings, never errors; errors mean the check could not be made.

use super::manifest::{ChainHead, Manifest};
use super::read::{read_state, State};
use crate::audit::{Damage, SignatureCheck, VerifyOptions};
use crate::db::Db;
use crate::error::{Error, IntegrityKind, Result};
use crate::tx::{IsolationLevel, TxOptions};
use ed25519_dalek::VerifyingKey;

/// One way a database differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The manifest's signature does not match its content: it was edited.
    Signature(String),
    /// A table of the manifest is missing.
    MissingTable(String),
    /// A table the manifest does not list (physical backups only).
    ExtraTable(String),
    /// A table's columns differ.
    Columns {
        /// The table.
        table: String,
        /// The manifest's column names.
        expected: Vec<String>,
        /// The database's.
        found: Vec<String>,
    },
    /// A table has another number of rows.
    RowCount {
        /// The table.
        table: String,
        /// The manifest's count.
        expected: u64,
        /// The database's.
        found: u64,
    },
    /// A table has as many rows, but other content.
    Content {
        /// The table.
        table: String,
    },
    /// The applied migrations differ.
    Migrations {
        /// The manifest's (`version checksum`).
        expected: Vec<String>,
        /// The database's.
        found: Vec<String>,
    },
    /// The audit chain head differs.
    AuditHead {
        /// The manifest's.
        expected: Option<ChainHead>,
        /// The database's.
        found: Option<ChainHead>,
    },
    /// The audit chain does not verify against the manifest's checkpoint.
    Chain(Damage),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = |h: &Option<ChainHead>| {
            h.as_ref()
                .map_or("none".to_string(), |h| format!("{} {}", h.seq, h.hash))
        };
        match self {
            Finding::Signature(why) => write!(f, "manifest signature: {why}"),
            Finding::MissingTable(t) => write!(f, "table {t}: missing"),
            Finding::ExtraTable(t) => write!(f, "table {t}: not in the manifest"),
            Finding::Columns {
                table,
                expected,
                found,
            } => write!(
                f,
                "table {table}: columns {found:?}, manifest has {expected:?}"
            ),
            Finding::RowCount {
                table,
                expected,
                found,
            } => write!(f, "table {table}: {found} rows, manifest has {expected}"),
            Finding::Content { table } => write!(
                f,
                "table {table}: content differs from the manifest (same row count)"
            ),
            Finding::Migrations { expected, found } => {
                write!(f, "migrations: {found:?}, manifest has {expected:?}")
            }
            Finding::AuditHead { expected, found } => write!(
                f,
                "audit chain head: {}, manifest has {}",
                head(found),
                head(expected)
            ),
            Finding::Chain(d) => write!(
                f,
                "audit chain damaged at sequence {}: {:?}: {}",
                d.seq, d.kind, d.detail
            ),
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCheck {
    /// Tables compared.
    pub tables: usize,
    /// Rows compared, over all tables.
    pub rows: u64,
    /// Every difference found; empty when the database matches.
    pub findings: Vec<Finding>,
}

impl BackupCheck {
    /// Whether the database matches the manifest.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Reads the state of `db` in one read-only snapshot.
pub(crate) fn snapshot_state(db: &Db, skip: &[&str]) -> Result<State> {
    let options = TxOptions {
        isolation: Some(IsolationLevel::RepeatableRead),
        read_only: true,
        primary: true,
        ..TxOptions::default()
    };
    let backend = db.backend();
    db.transaction_with(&options, |s| read_state(s.connection(), backend, skip))
}

/// The error for a manifest signed by none of the trusted keys.
fn untrusted() -> Error {
    Error::integrity(
        IntegrityKind::Backup,
        "the manifest is signed by a key that is not trusted (give the backup key's public key)",
    )
}

/// Checks `manifest`'s signature: `Ok(None)` when valid, `Ok(Some(finding))` when edited,
/// an error when the signer is not trusted.
pub(crate) fn signature_finding(
    manifest: &Manifest,
    trusted: &[VerifyingKey],
) -> Result<Option<Finding>> {
    match manifest.check_signature(trusted) {
        SignatureCheck::Valid => Ok(None),
        SignatureCheck::Untrusted => Err(untrusted()),
        SignatureCheck::Invalid(why) => Ok(Some(Finding::Signature(why))),
    }
}

/// Verifies `db` against `manifest`, signed by one of `trusted`. A logical export's manifest
/// is compared on its own tables only, and without migrations.
///
/// Errors: [`Error::Integrity`] (kind `Backup`) when the manifest is signed by no trusted
/// key; the audit trail's errors when it cannot be verified (no audit key, the wrong one).
pub fn verify(db: &Db, manifest: &Manifest, trusted: &[VerifyingKey]) -> Result<BackupCheck> {
    if let Some(edited) = signature_finding(manifest, trusted)? {
        return Ok(BackupCheck {
            tables: 0,
            rows: 0,
            findings: vec![edited],
        });
    }
    let body = &manifest.body;
    let state = snapshot_state(db, &[])?;
    let mut findings = Vec::new();
    let mut rows = 0;
    for (name, expected) in &body.tables {
        let Some(found) = state.tables.get(name) else {
            findings.push(Finding::MissingTable(name.clone()));
            continue;
        };
        rows += found.rows;
        if found.columns != expected.columns {
            findings.push(Finding::Columns {
                table: name.clone(),
                expected: expected.columns.clone(),
                found: found.columns.clone(),
            });
        } else if found.rows != expected.rows {
            findings.push(Finding::RowCount {
                table: name.clone(),
                expected: expected.rows,
                found: found.rows,
            });
        } else if found.hash != expected.hash {
            findings.push(Finding::Content {
                table: name.clone(),
            });
        }
    }
    if body.kind == super::PHYSICAL {
        for name in state.tables.keys() {
            if !body.tables.contains_key(name) {
                findings.push(Finding::ExtraTable(name.clone()));
            }
        }
    }
    if let Some(expected) = &body.migrations {
        if *expected != state.migrations {
            findings.push(Finding::Migrations {
                expected: expected.clone(),
                found: state.migrations.clone(),
            });
        }
    }
    if body.audit_head != state.audit_head {
        findings.push(Finding::AuditHead {
            expected: body.audit_head.clone(),
            found: state.audit_head.clone(),
        });
    }
    if let Some(cp) = &body.checkpoint {
        let key = crate::audit::Checkpoint::parse_public_key(&manifest.public_key)?;
        let report =
            db.verify_audit_with(&VerifyOptions::new().trust(key).checkpoint(cp.clone()))?;
        if let Some(damage) = report.damage {
            findings.push(Finding::Chain(damage));
        }
    }
    Ok(BackupCheck {
        tables: body.tables.len(),
        rows,
        findings,
    })
}
