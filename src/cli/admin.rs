//! The operator commands: schema migrations and master key rotation.

use super::{fail, open, DbArgs, Failure};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Subcommand)]
pub(crate) enum Migrate {
    /// Apply the pending migrations, oldest first (then create custodian's own tables)
    Run(MigrateArgs),
    /// List the migrations `migrate run` would apply
    Pending(MigrateArgs),
    /// Write a migration taking each backend from its newest migration's schema to the
    /// application's entities (needs them: see `custodian::cli::main_with`)
    Generate(GenerateArgs),
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// Migrations directory, with one subdirectory per backend (postgres, mysql, sqlite)
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Name of the migration (its directory is `<version>_<name>`)
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Write changes that lose data (dropped tables and columns, narrowed types)
    #[arg(long)]
    allow_data_loss: bool,
}

#[derive(Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Migrations directory, with one subdirectory per backend (postgres, mysql, sqlite)
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

impl Migrate {
    pub(crate) fn db_args_mut(&mut self) -> Option<&mut DbArgs> {
        match self {
            Migrate::Run(a) | Migrate::Pending(a) => Some(&mut a.db),
            Migrate::Generate(_) => None,
        }
    }
}

pub(crate) fn migrate(m: &Migrate, entities: &[crate::EntityMeta]) -> Result<u8, Failure> {
    match m {
        Migrate::Generate(a) => {
            return super::schema::generate(&a.dir, &a.name, a.allow_data_loss, entities)
        }
        Migrate::Run(a) => {
            let bar = super::progress::Bar::stderr();
            let show = |p| bar.show(p);
            let applied = open(&a.db)?
                .run_migrations_with_progress(&a.dir, Some(&show))
                .map_err(fail)?;
            drop(bar);
            for name in &applied {
                println!("applied {name}");
            }
            println!("{} migrations applied", applied.len());
        }
        Migrate::Pending(a) => {
            let pending = open(&a.db)?.pending_migrations(&a.dir).map_err(fail)?;
            for name in &pending {
                println!("pending {name}");
            }
            println!("{} migrations pending", pending.len());
        }
    }
    Ok(0)
}

#[derive(Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Principal recorded as the actor of each audited re-wrap
    #[arg(long, value_name = "ID")]
    actor: String,
    /// Data keys re-wrapped per transaction
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
}

/// Re-wraps data keys under the active master key one batch (one transaction) at a time
/// ([`crate::Crypto::rotate_with_progress`]), printing a line per batch; stops when none is
/// left under an older key. The keys left after a batch are the total counted before the first
/// batch less those re-wrapped so far.
pub(crate) fn rotate_keys(args: &RotateArgs) -> Result<u8, Failure> {
    let actor = crate::Principal::try_new(args.actor.as_str()).map_err(fail)?;
    let db = open(&args.db)?.acting_as(actor);
    let crypto = db.crypto().map_err(fail)?;
    let mut s = db.session().map_err(fail)?;
    let bar = super::progress::Bar::stderr();
    // Keys re-wrapped before the current batch, and batches so far.
    let (before, batches) = (AtomicU64::new(0), AtomicU64::new(0));
    let show = |p: crate::observe::Progress| {
        bar.show(p);
        let n = p
            .done
            .saturating_sub(before.swap(p.done, Ordering::Relaxed));
        let batch = batches.fetch_add(1, Ordering::Relaxed) + 1;
        let left = p.total.unwrap_or(0).saturating_sub(p.done);
        println!("batch {batch}: re-wrapped {n} data keys; {left} left");
    };
    let report = crypto
        .rotate_with_progress(&mut s, args.batch as usize, Some(&show))
        .map_err(fail)?;
    drop(bar);
    println!(
        "rotation done: {} data keys re-wrapped in {} batches under master key {}",
        report.rewrapped,
        report.batches,
        crypto.key_ring().active_id()
    );
    Ok(0)
}
