//! The `custodian` command line, for auditors and operators, as a library: the `custodian`
//! binary calls [`main`]; an application's own binary calls [`main_with`] with its entities,
//! which adds the commands that need them (`migrate generate`, `drift`).
//!
//! ```text
//! custodian verify      [DB] [--checkpoint FILE | --witness FILE] [--public-key HEX]
//! custodian verify      [DB] --manifest FILE [--public-key HEX]
//! custodian backup      [DB] --out DIR --signing-key FILE [--logical]
//! custodian restore     --from DIR --url URL --public-key HEX
//! custodian import      [DB] --from DIR --public-key HEX
//! custodian seal        [DB]
//! custodian checkpoint  [DB] --signing-key FILE [--out FILE]
//! custodian keygen      --out FILE
//! custodian history     [DB] --entity TABLE --key JSON
//! custodian migrate run|pending [DB] --dir DIR
//! custodian migrate generate --dir DIR --name NAME [--allow-data-loss]   (needs the entities)
//! custodian drift       [DB]                                             (needs the entities)
//! custodian rotate-keys [DB] --actor ID [--batch N]
//! custodian recover     --coordinator NAME --log URL URL...
//! custodian health      [DB] [--liveness] [--migrations DIR] [--max-seal-lag SECS]
//! custodian metrics     [DB]        (feature `prometheus`: a Prometheus scrape of a probe)
//!
//! DB: --url URL | --config FILE [--database NAME]   (default: DATABASE_URL)
//! ```
//! The database comes from `--url`, else `--config` (TOML, see the README), else the
//! environment (`CUSTODIAN_URL` or `DATABASE_URL`); the audit seal key from the configuration or
//! `CUSTODIAN_AUDIT_KEY`. A checkpoint (given, or the latest in the witness file) is checked only
//! against trusted public keys (`--public-key`, `audit.trusted_keys`, the configured signing
//! key's). Exit status: 0 when the chain is intact, the schema matches (or the command
//! succeeded), 1 when verification found damage or `drift` found drift, 2 on a usage,
//! configuration or connection error (no audit key for a keyed trail, the wrong key, an
//! untrusted checkpoint, a generated migration that would lose data).
//!
//! An application's command line, with its entities (a `src/bin/admin.rs` of its own):
//!
//! ```no_run
//! use custodian::{entity, Entity};
//!
//! #[entity(table = "accounts")]
//! pub struct Account {
//!     #[column(primary_key, auto_increment)]
//!     pub id: i64,
//!     pub owner: String,
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     custodian::cli::main_with(&[Account::META])
//! }
//! ```

mod admin;
mod audit;
mod backup;
mod coordinate;
mod observe;
mod progress;
mod schema;

use crate::{Config, DatabaseConfig, EntityMeta};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
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
pub(crate) struct DbArgs {
    /// Database URL: postgres://…, mysql://… (mariadb://…), sqlite://PATH; when neither --url
    /// nor --config is given, CUSTODIAN_URL or DATABASE_URL
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    url: Option<String>,
    /// TOML configuration file (used when --url is not given)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database in the configuration
    #[arg(long, value_name = "NAME", default_value = crate::config::DEFAULT_DATABASE)]
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
    /// Apply, list or generate schema migrations under DIR/<backend>/
    #[command(subcommand)]
    Migrate(admin::Migrate),
    /// Compare the entities with the live tables; exit status 1 when they differ
    Drift {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Back up the database with its engine's tool (or --logical: portable JSON lines) and a
    /// signed manifest of every table's rows, the migrations and the audit chain head
    Backup(backup::BackupArgs),
    /// Restore a backup into a new, empty database of the same engine, after checking the
    /// manifest's signature and the dump's hash; then run `verify --manifest`
    Restore(backup::RestoreArgs),
    /// Load a logical export (`backup --logical`) into empty tables, on any engine
    Import(backup::ImportArgs),
    /// Re-wrap every data key under the active master key, batch by batch
    RotateKeys(admin::RotateArgs),
    /// Commit or roll back, by its recovery log, what a crashed coordinator left prepared;
    /// exit status 1 when a branch is still held by a live connection
    Recover(coordinate::RecoverArgs),
    /// Probe the database (round trip, pool, schema drift with the entities, audit seal lag,
    /// migrations); exit status 0 when ready (--liveness: when it answers), 1 otherwise
    Health(observe::HealthArgs),
    /// Print a Prometheus scrape of a health probe (feature `prometheus`)
    #[cfg(feature = "prometheus")]
    Metrics(observe::HealthArgs),
}

impl Command {
    fn db_args_mut(&mut self) -> Option<&mut DbArgs> {
        match self {
            Command::Verify(a) => Some(&mut a.db),
            Command::Seal { db } => Some(db),
            Command::Checkpoint(a) => Some(&mut a.db),
            Command::Keygen(_) => None,
            Command::History(a) => Some(&mut a.db),
            Command::Migrate(m) => m.db_args_mut(),
            Command::Drift { db } => Some(db),
            Command::RotateKeys(a) => Some(&mut a.db),
            Command::Recover(_) => None,
            Command::Backup(a) => Some(&mut a.db),
            Command::Restore(_) => None,
            Command::Import(a) => Some(&mut a.db),
            Command::Health(a) => Some(&mut a.db),
            #[cfg(feature = "prometheus")]
            Command::Metrics(a) => Some(&mut a.db),
        }
    }
}

/// A command's failure: the message printed after `custodian: `, with exit status 2.
pub(crate) type Failure = String;

/// A library error as a command failure.
pub(crate) fn fail(e: crate::Error) -> Failure {
    e.to_string()
}

/// The configuration of the database the arguments name: `--url`, else `--config`, else the
/// environment. `crate::open` then applies the environment's CUSTODIAN_* settings (the
/// audit key among them) to whichever database is chosen here.
pub(crate) fn database(args: &DbArgs) -> crate::Result<DatabaseConfig> {
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
pub(crate) fn open(args: &DbArgs) -> Result<crate::Db, Failure> {
    crate::open(database(args).map_err(fail)?).map_err(fail)
}

pub(crate) fn read(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The matches of the innermost subcommand given.
fn leaf(m: &ArgMatches) -> &ArgMatches {
    match m.subcommand() {
        Some((_, sub)) => leaf(sub),
        None => m,
    }
}

fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some(db) = cli.command.db_args_mut() {
        db.url_on_command_line =
            leaf(&matches).value_source("url") == Some(ValueSource::CommandLine);
    }
    Ok(cli)
}

/// Prints clap's help, version or usage error; exit status 0 for help and version, 2 otherwise.
fn usage(e: clap::Error) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand) {
            eprintln!("custodian: unknown command `{name}`");
        }
    }
    let _ = e.print();
    if e.exit_code() == 0 {
        0
    } else {
        2
    }
}

fn run(cli: Cli, entities: &[EntityMeta]) -> Result<u8, Failure> {
    match cli.command {
        Command::Verify(a) => audit::verify(&a),
        Command::Seal { db } => audit::seal(&db),
        Command::Checkpoint(a) => audit::checkpoint(&a),
        Command::Keygen(a) => audit::keygen(&a),
        Command::History(a) => audit::history(&a),
        Command::Migrate(m) => admin::migrate(&m, entities),
        Command::Drift { db } => schema::drift(&db, entities),
        Command::RotateKeys(a) => admin::rotate_keys(&a),
        Command::Recover(a) => coordinate::recover(&a),
        Command::Backup(a) => backup::backup(&a),
        Command::Restore(a) => backup::restore(&a),
        Command::Import(a) => backup::import(&a),
        Command::Health(a) => observe::health(&a, entities),
        #[cfg(feature = "prometheus")]
        Command::Metrics(a) => observe::metrics(&a, entities),
    }
}

/// Runs the command line of `std::env::args()` without entities: the `custodian` binary.
/// The commands that need the application's entities (`migrate generate`, `drift`) say so
/// and exit with status 2; see [`main_with`].
pub fn main() -> ExitCode {
    main_with(&[])
}

/// Runs the command line of `std::env::args()` with the application's entities (`E::META`
/// of each), which `migrate generate` and `drift` work on. Call it from a binary of the
/// application (see the [module documentation](self)).
pub fn main_with(entities: &[EntityMeta]) -> ExitCode {
    ExitCode::from(run_args(std::env::args_os(), entities))
}

/// Runs the command line `args` (the program name first) with `entities` and returns its
/// exit status: 0 success (an intact chain, no drift), 1 damage or drift found, 2 a usage,
/// configuration or connection error. Output goes to standard output and error.
pub fn run_args<I, T>(args: I, entities: &[EntityMeta]) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    match run(cli, entities) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custodian: {e}");
            2
        }
    }
}
