//! `custodian`: the command-line entry point for auditors and operators.
//!
//! ```text
//! custodian verify     [--url URL | --config FILE [--database NAME]] [--checkpoint FILE | --witness FILE] [--public-key HEX]
//! custodian seal       [--url URL | --config FILE [--database NAME]]
//! custodian checkpoint [--url URL | --config FILE [--database NAME]] --signing-key FILE [--out FILE]
//! custodian keygen     --out FILE
//! ```
//! The database comes from `--url`, `--config` (TOML, see the README) or `DATABASE_URL`; the
//! audit seal key from the configuration or `CUSTODIAN_AUDIT_KEY`. A checkpoint (given, or the
//! latest in the witness file) is checked only against trusted public keys (`--public-key`,
//! `audit.trusted_keys`, the configured signing key's). Exit status: 0 when the chain is intact
//! (or the command succeeded), 1 when verification found damage, 2 on a usage, configuration
//! or connection error (no audit key for a keyed trail, the wrong key, an untrusted checkpoint).

use custodian::audit::Checkpoint;
use custodian::{Config, DatabaseConfig};
use std::process::ExitCode;

const USAGE: &str = "usage:
  custodian verify     [--url URL | --config FILE [--database NAME]] [--checkpoint FILE | --witness FILE] [--public-key HEX]
  custodian seal       [--url URL | --config FILE [--database NAME]]
  custodian checkpoint [--url URL | --config FILE [--database NAME]] --signing-key FILE [--out FILE]
  custodian keygen     --out FILE";

struct Args {
    command: String,
    options: std::collections::HashMap<String, String>,
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = raw.next().ok_or("no command given")?;
    let mut options = std::collections::HashMap::new();
    while let Some(flag) = raw.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{flag}`"))?;
        let known = [
            "url",
            "config",
            "database",
            "checkpoint",
            "public-key",
            "signing-key",
            "witness",
            "out",
        ];
        if !known.contains(&name) {
            return Err(format!("unknown option `--{name}`"));
        }
        let value = raw
            .next()
            .ok_or_else(|| format!("`--{name}` needs a value"))?;
        options.insert(name.to_string(), value);
    }
    Ok(Args { command, options })
}

fn database(args: &Args) -> custodian::Result<DatabaseConfig> {
    // `custodian::open` applies the environment's CUSTODIAN_* settings (the audit key among
    // them) to whichever database is chosen here.
    if let Some(url) = args.options.get("url") {
        return DatabaseConfig::from_url(url);
    }
    let cfg = match args.options.get("config") {
        Some(path) => Config::from_file(path)?,
        None => Config::from_env()?,
    };
    let name = args
        .options
        .get("database")
        .map_or(custodian::config::DEFAULT_DATABASE, String::as_str);
    Ok(cfg.database(name)?.clone())
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// Writes `bytes` to a new file at `path` that only its owner may read and write: created with
/// mode 0600 (on Unix), so the secret is never readable by others, not even between creating and
/// restricting the file. An existing file is left alone (it may hold a key still in use, and its
/// permissions are not this command's to change).
fn write_secret(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let fail = |e: custodian::Error| e.to_string();
    match args.command.as_str() {
        "keygen" => {
            let out = args.options.get("out").ok_or("`keygen` needs --out FILE")?;
            let key = custodian::audit::generate_signing_key().map_err(fail)?;
            write_secret(out, custodian::hex::encode(&key.to_bytes()).as_bytes())
                .map_err(|e| format!("cannot write {out}: {e}"))?;
            println!(
                "signing key written to {out}; public key {}",
                custodian::hex::encode(key.verifying_key().as_bytes())
            );
            Ok(ExitCode::SUCCESS)
        }
        "seal" => {
            let db = custodian::open(database(args).map_err(fail)?).map_err(fail)?;
            let report = db.seal_audit().map_err(fail)?;
            println!(
                "sealed {} records; chain head at sequence {}",
                report.sealed, report.head_seq
            );
            Ok(ExitCode::SUCCESS)
        }
        "checkpoint" => {
            let key_file = args
                .options
                .get("signing-key")
                .ok_or("`checkpoint` needs --signing-key FILE")?;
            let bytes: [u8; 32] = custodian::hex::decode(read(key_file)?.trim())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{key_file} does not hold a 64-hex-digit signing key"))?;
            let key = custodian::audit::ed25519_dalek::SigningKey::from_bytes(&bytes);
            let db = custodian::open(database(args).map_err(fail)?).map_err(fail)?;
            let cp = db.checkpoint(&key).map_err(fail)?;
            match args.options.get("out") {
                Some(out) => std::fs::write(out, cp.to_json())
                    .map_err(|e| format!("cannot write {out}: {e}"))?,
                None => println!("{}", cp.to_json()),
            }
            eprintln!("checkpoint at sequence {} ({})", cp.seq, cp.hash);
            Ok(ExitCode::SUCCESS)
        }
        "verify" => {
            let cfg = database(args).map_err(fail)?;
            let mut options = custodian::audit::VerifyOptions::new()
                .trust_all(cfg.audit.trusted_keys().map_err(fail)?)
                .max_unsealed_age(cfg.audit.max_unsealed_age());
            if let Some(hex) = args.options.get("public-key") {
                options = options.trust(Checkpoint::parse_public_key(hex).map_err(fail)?);
            }
            if let Some(path) = args.options.get("checkpoint") {
                match Checkpoint::from_json(&read(path)?) {
                    Ok(cp) => options = options.checkpoint(cp),
                    Err(e) => {
                        // The auditor's own copy is damaged: that is a finding, not a usage error.
                        println!("DAMAGED: the checkpoint file {path} is not a checkpoint: {e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            let witness = args
                .options
                .get("witness")
                .cloned()
                .or(cfg.audit.witness.clone());
            if let Some(path) = witness {
                options = options.witness(custodian::audit::Witness::file(path));
            }
            let started = std::time::Instant::now();
            let progress = |links: u64| {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                eprint!(
                    "\rverified {links} links ({:.0} links/s)",
                    links as f64 / secs
                );
            };
            // Progress goes to a terminal only, so piped output stays one line.
            let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            if on_terminal {
                options = options.progress(&progress);
            }
            let db = custodian::open(cfg).map_err(fail)?;
            let report = db.verify_audit_with(&options).map_err(fail)?;
            if on_terminal && report.links > 0 {
                eprintln!();
            }
            let mode = match report.mode {
                custodian::audit::SealMode::Keyed => "keyed (HMAC under the audit key)",
                custodian::audit::SealMode::Unkeyed => {
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
                    Ok(ExitCode::SUCCESS)
                }
                Some(d) => {
                    println!("DAMAGED at sequence {}: {:?}: {}", d.seq, d.kind, d.detail);
                    Ok(ExitCode::from(1))
                }
            }
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("custodian: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custodian: {e}");
            ExitCode::from(2)
        }
    }
}
