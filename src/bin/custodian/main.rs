//! `custodian`: the command-line entry point for auditors and operators.
//!
//! ```text
//! custodian verify      [DB] [--checkpoint FILE | --witness FILE] [--public-key HEX]
//! custodian seal        [DB]
//! custodian checkpoint  [DB] --signing-key FILE [--out FILE]
//! custodian keygen      --out FILE
//! custodian history     [DB] --entity TABLE --key JSON
//! custodian migrate run|pending [DB] --dir DIR
//! custodian rotate-keys [DB] --actor ID [--batch N]
//!
//! DB: --url URL | --config FILE [--database NAME]   (default: DATABASE_URL)
//! ```
//! The database comes from `--url`, else `--config` (TOML, see the README), else the
//! environment (`CUSTODIAN_URL` or `DATABASE_URL`); the audit seal key from the configuration or
//! `CUSTODIAN_AUDIT_KEY`. A checkpoint (given, or the latest in the witness file) is checked only
//! against trusted public keys (`--public-key`, `audit.trusted_keys`, the configured signing
//! key's). Exit status: 0 when the chain is intact (or the command succeeded), 1 when
//! verification found damage, 2 on a usage, configuration or connection error (no audit key for
//! a keyed trail, the wrong key, an untrusted checkpoint).

mod admin;
mod audit;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use custodian::{Config, DatabaseConfig};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_STATUS: &str = "\
Exit status:
  0  the audit chain is intact, or the command succeeded
  1  verification found damage (a changed, missing or reordered record, a damaged checkpoint)
  2  usage, configuration or connection error (also: no audit key for a keyed trail, the wrong
     audit key, a checkpoint signed by a key that is not trusted)";

const DATABASE_HELP: &str = "\
The database comes from --url, else from --config FILE (the database named by --database,
default `main`), else from the environment (CUSTODIAN_URL or DATABASE_URL). The audit seal
key comes from the configuration or CUSTODIAN_AUDIT_KEY; other CUSTODIAN_* settings apply too.";

/// Audit, migration and key-management commands for a custodian database.
#[derive(Parser)]
#[command(
    name = "custodian",
    version,
    arg_required_else_help = true,
    after_long_help = format!("{DATABASE_HELP}\n\n{EXIT_STATUS}")
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which database to open.
#[derive(Args)]
pub struct DbArgs {
    /// Database URL: postgres://…, mysql://… (mariadb://…), sqlite://PATH; when neither --url
    /// nor --config is given, CUSTODIAN_URL or DATABASE_URL
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    url: Option<String>,
    /// TOML configuration file (used when --url is not given)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database in the configuration
    #[arg(long, value_name = "NAME", default_value = custodian::config::DEFAULT_DATABASE)]
    database: String,
    /// Whether `url` was typed on the command line (not taken from DATABASE_URL).
    #[arg(skip)]
    url_on_command_line: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Verify the audit chain: every sealed record, its order, and a checkpoint if given
    #[command(after_long_help = EXIT_STATUS)]
    Verify(audit::VerifyArgs),
    /// Seal the committed audit records not yet in the chain
    Seal {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Sign a checkpoint of the chain head with an ed25519 signing key
    Checkpoint(audit::CheckpointArgs),
    /// Generate an ed25519 signing key for checkpoints (file mode 0600, never overwritten)
    Keygen(audit::KeygenArgs),
    /// Print the audit records of one row, oldest first, one line each
    History(audit::HistoryArgs),
    /// Apply or list schema migrations from DIR/<backend>/
    #[command(subcommand)]
    Migrate(admin::Migrate),
    /// Re-wrap every data key under the active master key, batch by batch
    RotateKeys(admin::RotateArgs),
}

impl Command {
    fn db_args_mut(&mut self) -> Option<&mut DbArgs> {
        match self {
            Command::Verify(a) => Some(&mut a.db),
            Command::Seal { db } => Some(db),
            Command::Checkpoint(a) => Some(&mut a.db),
            Command::Keygen(_) => None,
            Command::History(a) => Some(&mut a.db),
            Command::Migrate(m) => Some(m.db_args_mut()),
            Command::RotateKeys(a) => Some(&mut a.db),
        }
    }
}

/// A command's failure: the message printed after `custodian: `, with exit status 2.
pub type Failure = String;

/// A library error as a command failure.
pub fn fail(e: custodian::Error) -> Failure {
    e.to_string()
}

/// The configuration of the database the arguments name: `--url`, else `--config`, else the
/// environment. `custodian::open` then applies the environment's CUSTODIAN_* settings (the
/// audit key among them) to whichever database is chosen here.
pub fn database(args: &DbArgs) -> custodian::Result<DatabaseConfig> {
    if let (Some(url), true) = (&args.url, args.url_on_command_line) {
        return DatabaseConfig::from_url(url);
    }
    let cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::from_env()?,
    };
    Ok(cfg.database(&args.database)?.clone())
}

/// Opens the database the arguments name.
pub fn open(args: &DbArgs) -> Result<custodian::Db, Failure> {
    custodian::open(database(args).map_err(fail)?).map_err(fail)
}

pub fn read(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The matches of the innermost subcommand given.
fn leaf(m: &ArgMatches) -> &ArgMatches {
    match m.subcommand() {
        Some((_, sub)) => leaf(sub),
        None => m,
    }
}

fn parse() -> Result<Cli, clap::Error> {
    let matches = Cli::command().try_get_matches()?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some(db) = cli.command.db_args_mut() {
        db.url_on_command_line =
            leaf(&matches).value_source("url") == Some(ValueSource::CommandLine);
    }
    Ok(cli)
}

/// Prints clap's help, version or usage error; exit status 0 for help and version, 2 otherwise.
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand) {
            eprintln!("custodian: unknown command `{name}`");
        }
    }
    let _ = e.print();
    if e.exit_code() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Verify(a) => audit::verify(&a),
        Command::Seal { db } => audit::seal(&db),
        Command::Checkpoint(a) => audit::checkpoint(&a),
        Command::Keygen(a) => audit::keygen(&a),
        Command::History(a) => audit::history(&a),
        Command::Migrate(m) => admin::migrate(&m),
        Command::RotateKeys(a) => admin::rotate_keys(&a),
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custodian: {e}");
            ExitCode::from(2)
        }
    }
}
