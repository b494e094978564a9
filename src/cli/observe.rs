//! `custodian health` (liveness and readiness probe) and, with the `prometheus` feature,
//! `custodian metrics` (a Prometheus scrape of a health probe).

use super::{database, fail, DbArgs, Failure};
use crate::health::{HealthOptions, HealthReport};
use crate::EntityMeta;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `custodian health`.
#[derive(Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Liveness only: exit 0 when the database answers, whatever the other probes find
    #[arg(long)]
    liveness: bool,
    /// Migrations directory: pending migrations make the database not ready
    #[arg(long, value_name = "DIR")]
    migrations: Option<PathBuf>,
    /// Oldest unsealed audit record allowed, in seconds (default: audit.max_unsealed_secs)
    #[arg(long, value_name = "SECS")]
    max_seal_lag: Option<u64>,
}

/// Probes the database and prints the report; a database that cannot be opened is down.
fn probe(args: &HealthArgs, entities: &[EntityMeta]) -> Result<HealthReport, String> {
    let config = database(&args.db).map_err(fail)?;
    let db = crate::open(config).map_err(|e| e.to_string())?;
    Ok(db.health(&HealthOptions {
        entities: entities.to_vec(),
        migrations: args.migrations.clone(),
        max_seal_lag: args.max_seal_lag.map(std::time::Duration::from_secs),
    }))
}

/// `custodian health`: prints the report; exit status 0 when ready (with `--liveness`: when
/// live), 1 otherwise.
pub(crate) fn health(args: &HealthArgs, entities: &[EntityMeta]) -> Result<u8, Failure> {
    let ok = match probe(args, entities) {
        Ok(report) => {
            print!("{report}");
            if args.liveness {
                report.is_live()
            } else {
                report.is_ready()
            }
        }
        Err(down) => {
            println!("status: down\nproblem: unreachable: {down}");
            false
        }
    };
    Ok(if ok { 0 } else { 1 })
}

/// `custodian metrics`: installs the Prometheus recorder, runs a health probe and prints the
/// scrape (pool, audit seal and statement metrics of the probe).
#[cfg(feature = "prometheus")]
pub(crate) fn metrics(args: &HealthArgs, entities: &[EntityMeta]) -> Result<u8, Failure> {
    let handle = crate::prometheus::install().map_err(fail)?;
    let ok = probe(args, entities).is_ok_and(|r| r.is_live());
    print!("{}", handle.render());
    Ok(if ok { 0 } else { 1 })
}
