//! The witness: an append-only file outside the audited database that receives signed
//! checkpoints, one JSON line each, flushed to disk before the append returns. Someone who can
//! rewrite the database but not this file (keep it on another host or volume, or ship it to
//! write-once storage) cannot cut or rewrite the chain below the latest witnessed checkpoint
//! unnoticed: verification checks the chain against it.

use super::checkpoint::Checkpoint;
use crate::error::{Error, IntegrityKind, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An append-only file of checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    path: PathBuf,
}

/// The latest entry of a witness file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessEntry {
    /// A checkpoint (its signature not checked yet).
    Checkpoint(Checkpoint),
    /// A line that is not a checkpoint: the file was damaged.
    Unreadable {
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

impl Witness {
    /// The witness file at `path` (created on the first append).
    pub fn file(path: impl Into<PathBuf>) -> Witness {
        Witness { path: path.into() }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::config(
            "audit.witness",
            format!(
                "cannot {what} the witness file {}: {e}",
                self.path.display()
            ),
        )
    }

    /// Appends `checkpoint` as one line and waits until it is on disk.
    pub fn append(&self, checkpoint: &Checkpoint) -> Result<()> {
        let line = serde_json::to_string(checkpoint).map_err(|e| {
            Error::integrity_caused_by(
                IntegrityKind::Unencodable,
                format!("checkpoint not encodable: {e}"),
                e,
            )
        })?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io_error("open", e))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error("write", e))
    }

    /// The checkpoint of highest sequence number in the file (`None` for a missing or empty
    /// file), or the first line that is not a checkpoint.
    pub fn latest(&self) -> Result<Option<WitnessEntry>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Ok(Some(WitnessEntry::Unreadable {
                    line: 0,
                    why: "the file is not UTF-8 text".into(),
                }))
            }
            Err(e) => return Err(self.io_error("read", e)),
        };
        let mut best: Option<Checkpoint> = None;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Checkpoint>(line) {
                Ok(cp) => {
                    if best.as_ref().is_none_or(|b| cp.seq >= b.seq) {
                        best = Some(cp);
                    }
                }
                Err(e) => {
                    return Ok(Some(WitnessEntry::Unreadable {
                        line: i + 1,
                        why: e.to_string(),
                    }))
                }
            }
        }
        Ok(best.map(WitnessEntry::Checkpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn appends_and_finds_the_latest() {
        let dir = std::env::temp_dir().join(format!("custodian-witness-{}", std::process::id()));
        let w = Witness::file(&dir);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(w.latest().unwrap(), None);
        let key = SigningKey::from_bytes(&[9; 32]);
        let a = Checkpoint::sign(10, &"a".repeat(64), &key);
        let b = Checkpoint::sign(20, &"b".repeat(64), &key);
        w.append(&b).unwrap();
        w.append(&a).unwrap();
        assert_eq!(w.latest().unwrap(), Some(WitnessEntry::Checkpoint(b)));
        std::fs::write(&dir, "{not json}\n").unwrap();
        assert!(matches!(
            w.latest().unwrap(),
            Some(WitnessEntry::Unreadable { line: 1, .. })
        ));
        let _ = std::fs::remove_file(&dir);
    }
}
