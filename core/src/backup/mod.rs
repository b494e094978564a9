//! Backups whose restore is verified: a signed manifest of what a database holds, physical
//! backups with each engine's own tool, verified restore, portable logical export/import, and
//! a common cut across databases.
//!
//! - [`manifest`]: the signed statement (per table row count and content digest, migrations,
//!   audit chain head and checkpoint, the dump's SHA-256).
//! - [`digest`]: the order-independent table digest over canonical rows.
//! - [`backup`], [`backup_cut`], [`restore_with`]: physical backups, one database or several
//!   at a common cut, and their restore.
//! - [`verify`]: a database against a manifest.
//! - [`export`] and [`import_into`]: the portable logical form, between engines.

mod check;
pub mod digest;
mod logical;
pub mod manifest;
mod read;
mod take;

pub use check::{verify, BackupCheck, Finding};
pub use digest::TableHasher;
pub use logical::{export, import_into};
pub use manifest::{ChainHead, DumpFile, Manifest, ManifestBody, TableDigest};
pub use take::{backup, backup_cut, read_manifest, restore_with};

/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// [`ManifestBody::kind`] of a backup made with the engine's own tool.
pub const PHYSICAL: &str = "physical";

/// [`ManifestBody::kind`] of a logical export.
pub const LOGICAL: &str = "logical";
