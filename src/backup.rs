//! Backups with verified restore (see the README's "Backup and recovery"): custodian-core's
//! [`backup`](custodian_core::backup) module, and [`restore`] with every backend this build
//! has.
//!
//! A backup, its verification, and an edited copy caught (SQLite; the same calls work on
//! PostgreSQL and MariaDB with their dump tools installed):
//!
//! ```
//! # fn main() -> custodian::Result<()> {
//! use custodian::audit::ed25519_dalek::SigningKey;
//! let dir = std::env::temp_dir().join(format!("custodian-doc-backup-{}", std::process::id()));
//! let _ = std::fs::remove_dir_all(&dir);
//! let src = dir.join("source.db");
//! std::fs::create_dir_all(&dir).unwrap();
//! let db = custodian::connect(&format!("sqlite://{}", src.display()))?;
//! db.session()?.execute_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")?;
//! db.session()?.execute_sql("INSERT INTO notes VALUES (1, 'kept')")?;
//!
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let manifest = custodian::backup::backup(&db, &dir.join("backup"), &key)?;
//! assert_eq!(manifest.body.tables["notes"].rows, 1);
//!
//! let copy = format!("sqlite://{}", dir.join("restored.db").display());
//! custodian::backup::restore(&dir.join("backup"), &copy, &[key.verifying_key()])?;
//! let restored = custodian::connect(&copy)?;
//! let check = custodian::backup::verify(&restored, &manifest, &[key.verifying_key()])?;
//! assert!(check.is_intact());
//!
//! restored.session()?.execute_sql("UPDATE notes SET body = 'changed'")?;
//! let check = custodian::backup::verify(&restored, &manifest, &[key.verifying_key()])?;
//! assert_eq!(check.findings[0].to_string(),
//!            "table notes: content differs from the manifest (same row count)");
//! # drop((db, restored)); let _ = std::fs::remove_dir_all(&dir);
//! # Ok(())
//! # }
//! ```

pub use custodian_core::backup::*;

use custodian_core::audit::ed25519_dalek::VerifyingKey;
use custodian_core::{DatabaseUrl, Result};
use std::path::Path;

/// Restores the backup in `dir` into the empty database at `url` (same engine): checks the
/// manifest's signature against `trusted` and the dump's SHA-256 first. See
/// [`restore_with`].
pub fn restore(dir: &Path, url: &str, trusted: &[VerifyingKey]) -> Result<Manifest> {
    restore_with(
        dir,
        &DatabaseUrl::new(url),
        custodian_backends::ALL,
        trusted,
    )
}
