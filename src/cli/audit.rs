//! The audit commands: verify, seal, checkpoint, keygen, history.

use super::{database, fail, open, read, DbArgs, Failure};
use crate::audit::Checkpoint;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Checkpoint file (JSON, from `custodian checkpoint`) the chain must extend
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Witness file whose latest checkpoint the chain must extend [default: audit.witness]
    #[arg(long, value_name = "FILE")]
    witness: Option<String>,
    /// Also trust checkpoints (and manifests) signed by this ed25519 public key (64 hex digits)
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
    /// Verify the database against a backup manifest instead: every table's row count and
    /// content, the migrations, and the audit chain against the manifest's checkpoint
    #[arg(long, value_name = "FILE", conflicts_with_all = ["checkpoint", "witness"])]
    manifest: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// File holding the ed25519 signing key (64 hex digits, from `custodian keygen`)
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Write the checkpoint JSON to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// New file for the signing key (created with mode 0600; an existing file is an error)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// The entity's table, as the audit records name it
    #[arg(long, value_name = "TABLE")]
    entity: String,
    /// The row's primary key as JSON: `[1]`, `["a", 2]`; a single value may omit the brackets
    #[arg(long, value_name = "JSON")]
    key: String,
}

/// Writes `bytes` to a new file at `path` that only its owner may read and write: created with
/// mode 0600 (on Unix), so the secret is never readable by others, not even between creating and
/// restricting the file. An existing file is left alone (it may hold a key still in use, and its
/// permissions are not this command's to change).
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub(crate) fn keygen(args: &KeygenArgs) -> Result<u8, Failure> {
    let out = &args.out;
    let key = crate::audit::generate_signing_key().map_err(fail)?;
    write_secret(out, hex::encode(key.to_bytes()).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "signing key written to {}; public key {}",
        out.display(),
        hex::encode(key.verifying_key().as_bytes())
    );
    Ok(0)
}

pub(crate) fn seal(db: &DbArgs) -> Result<u8, Failure> {
    let bar = super::progress::Bar::stderr();
    let show = |p| bar.show(p);
    let report = open(db)?
        .seal_audit_with_progress(Some(&show))
        .map_err(fail)?;
    drop(bar);
    println!(
        "sealed {} records; chain head at sequence {}",
        report.sealed, report.head_seq
    );
    Ok(0)
}

pub(crate) fn checkpoint(args: &CheckpointArgs) -> Result<u8, Failure> {
    let key = super::backup::read_signing_key(&args.signing_key)?;
    let cp = open(&args.db)?.checkpoint(&key).map_err(fail)?;
    match &args.out {
        Some(out) => std::fs::write(out, cp.to_json())
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?,
        None => println!("{}", cp.to_json()),
    }
    eprintln!("checkpoint at sequence {} ({})", cp.seq, cp.hash);
    Ok(0)
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<u8, Failure> {
    if let Some(path) = &args.manifest {
        return super::backup::verify_manifest(&args.db, path, args.public_key.as_deref());
    }
    let cfg = database(&args.db).map_err(fail)?;
    let mut options = crate::audit::VerifyOptions::new()
        .trust_all(cfg.audit.trusted_keys().map_err(fail)?)
        .max_unsealed_age(cfg.audit.max_unsealed_age());
    if let Some(hex) = &args.public_key {
        options = options.trust(Checkpoint::parse_public_key(hex).map_err(fail)?);
    }
    if let Some(path) = &args.checkpoint {
        match Checkpoint::from_json(&read(path)?) {
            Ok(cp) => options = options.checkpoint(cp),
            Err(e) => {
                // The auditor's own copy is damaged: that is a finding, not a usage error.
                println!(
                    "DAMAGED: the checkpoint file {} is not a checkpoint: {e}",
                    path.display()
                );
                return Ok(1);
            }
        }
    }
    if let Some(path) = args.witness.clone().or(cfg.audit.witness.clone()) {
        options = options.witness(crate::audit::Witness::file(path));
    }
    // Drawn on a terminal only, so piped output stays one line.
    let bar = super::progress::Bar::stderr();
    let show = |p| bar.show(p);
    options = options.progress(&show);
    let db = crate::open(cfg).map_err(fail)?;
    let report = db.verify_audit_with(&options).map_err(fail)?;
    drop(bar);
    let mode = match report.mode {
        crate::audit::SealMode::Keyed => "keyed (HMAC under the audit key)",
        crate::audit::SealMode::Unkeyed => {
            "UNKEYED (plain SHA-256: anyone with database access can rewrite it)"
        }
    };
    let against = report
        .checkpoint_seq
        .map_or("no checkpoint".to_string(), |s| {
            format!("checkpoint at {s}")
        });
    match &report.damage {
        None => {
            println!(
                "intact: {} links up to sequence {} ({}); {} records not sealed yet; sealed {mode}; checked against {against}",
                report.links, report.last_seq, report.last_hash, report.unsealed
            );
            Ok(0)
        }
        Some(d) => {
            println!("DAMAGED at sequence {}: {:?}: {}", d.seq, d.kind, d.detail);
            Ok(1)
        }
    }
}

/// The key as the audit trail stores it: compact JSON array (a single value is wrapped).
fn key_json(text: &str) -> Result<String, Failure> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("--key is not JSON ({e}): {text}"))?;
    Ok(match value {
        serde_json::Value::Array(_) => value.to_string(),
        single => serde_json::Value::Array(vec![single]).to_string(),
    })
}

pub(crate) fn history(args: &HistoryArgs) -> Result<u8, Failure> {
    let key = key_json(&args.key)?;
    let db = open(&args.db)?;
    let mut s = db.session().map_err(fail)?;
    let records =
        crate::audit::chain::records_of_entity_key(&mut s, &args.entity, &key).map_err(fail)?;
    if records.is_empty() {
        eprintln!("no audit records for {} {key}", args.entity);
    }
    for (seq, r) in records {
        let seq = seq.map_or("unsealed".to_string(), |n| n.to_string());
        println!(
            "{seq} {} {} {} before={} after={}",
            r.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            r.actor,
            r.op,
            r.before.as_deref().unwrap_or("null"),
            r.after.as_deref().unwrap_or("null"),
        );
    }
    Ok(0)
}
