//! The backup commands: backup (physical or logical), restore, import, and `verify
//! --manifest`.

use super::{database, fail, open, read, DbArgs, Failure};
use crate::audit::ed25519_dalek::{SigningKey, VerifyingKey};
use crate::audit::Checkpoint;
use crate::backup::{BackupCheck, Manifest};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// New directory for the dump and its manifest
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// File holding the ed25519 key that signs the manifest (from `custodian keygen`)
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Write the portable logical form (JSON lines, loadable into another engine with
    /// `custodian import`) instead of the engine's own dump
    #[arg(long)]
    logical: bool,
}

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// Backup directory (from `custodian backup`)
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The new, empty database to restore into (same engine as the backup)
    #[arg(long, value_name = "URL")]
    url: String,
    /// The backup key's ed25519 public key (64 hex digits): the manifest must be signed by it
    #[arg(long, value_name = "HEX")]
    public_key: String,
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Logical export directory (from `custodian backup --logical`)
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The export key's ed25519 public key (64 hex digits): the manifest must be signed by it
    #[arg(long, value_name = "HEX")]
    public_key: String,
}

/// A signing key from a file of 64 hex digits.
pub(crate) fn read_signing_key(path: &Path) -> Result<SigningKey, Failure> {
    let bytes: [u8; 32] = hex::decode(read(path)?.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "{} does not hold a 64-hex-digit signing key",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn public_key(hex: &str) -> Result<VerifyingKey, Failure> {
    Checkpoint::parse_public_key(hex).map_err(fail)
}

fn summary(manifest: &Manifest) -> String {
    let rows: u64 = manifest.body.tables.values().map(|t| t.rows).sum();
    let head = manifest
        .body
        .audit_head
        .as_ref()
        .map_or("no audit trail".to_string(), |h| {
            format!("audit chain head at sequence {}", h.seq)
        });
    format!("{} tables, {rows} rows, {head}", manifest.body.tables.len())
}

pub(crate) fn backup(args: &BackupArgs) -> Result<u8, Failure> {
    let key = read_signing_key(&args.signing_key)?;
    let db = open(&args.db)?;
    let manifest = if args.logical {
        crate::backup::export(&db, &args.out, &key)
    } else {
        crate::backup::backup(&db, &args.out, &key)
    }
    .map_err(fail)?;
    println!(
        "backed up into {} ({}; {})",
        args.out.display(),
        manifest.body.kind,
        summary(&manifest)
    );
    Ok(0)
}

pub(crate) fn restore(args: &RestoreArgs) -> Result<u8, Failure> {
    let trusted = [public_key(&args.public_key)?];
    let manifest = crate::backup::restore(&args.from, &args.url, &trusted).map_err(fail)?;
    println!(
        "restored {} ({}); check it with `custodian verify --manifest {}`",
        args.from.display(),
        summary(&manifest),
        args.from.join(crate::backup::MANIFEST_FILE).display()
    );
    Ok(0)
}

pub(crate) fn import(args: &ImportArgs) -> Result<u8, Failure> {
    let trusted = [public_key(&args.public_key)?];
    let db = open(&args.db)?;
    let manifest = crate::backup::import_into(&args.from, &db, &trusted).map_err(fail)?;
    println!(
        "imported {} ({}); check it with `custodian verify --manifest {}`",
        args.from.display(),
        summary(&manifest),
        args.from.join(crate::backup::MANIFEST_FILE).display()
    );
    Ok(0)
}

/// `custodian verify --manifest FILE`: exit status 0 when the database matches, 1 on any
/// finding (an edited or unreadable manifest among them), 2 when the manifest is signed by no
/// trusted key or the check cannot be made.
pub(crate) fn verify_manifest(
    db: &DbArgs,
    path: &Path,
    extra_key: Option<&str>,
) -> Result<u8, Failure> {
    let cfg = database(db).map_err(fail)?;
    let mut trusted = cfg.audit.trusted_keys().map_err(fail)?;
    if let Some(hex) = extra_key {
        trusted.push(public_key(hex)?);
    }
    let manifest = match Manifest::from_json(&read(path)?) {
        Ok(m) => m,
        Err(e) => {
            println!("DAMAGED: {} is not a backup manifest: {e}", path.display());
            return Ok(1);
        }
    };
    let db = crate::open(cfg).map_err(fail)?;
    let check: BackupCheck = crate::backup::verify(&db, &manifest, &trusted).map_err(fail)?;
    if check.is_intact() {
        println!(
            "intact: {} tables, {} rows and the audit chain match the manifest {} ({})",
            check.tables, check.rows, manifest.body.id, manifest.body.taken_at
        );
        return Ok(0);
    }
    for finding in &check.findings {
        println!("DAMAGED: {finding}");
    }
    Ok(1)
}
