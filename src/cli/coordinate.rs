//! `custodian recover`: resolves the coordinated transactions a crashed coordinator left
//! prepared, by its recovery log.

use super::{fail, Failure};
use clap::Args;

#[derive(Args)]
pub(crate) struct RecoverArgs {
    /// The coordinator's name (the one its application gives `Coordinator::new`)
    #[arg(long, value_name = "NAME")]
    coordinator: String,
    /// URL of the coordinator's log database
    #[arg(long, value_name = "URL")]
    log: String,
    /// URL of each database the coordinator writes to
    #[arg(value_name = "URL", required = true)]
    participants: Vec<String>,
}

/// Resolves every prepared branch of the coordinator on the given databases and prints what
/// it did; exit status 0, or 1 when a branch is still attached to a live connection.
pub(crate) fn recover(a: &RecoverArgs) -> Result<u8, Failure> {
    let log = crate::connect(&a.log).map_err(fail)?;
    let mut dbs = Vec::with_capacity(a.participants.len());
    for url in &a.participants {
        dbs.push(crate::connect(url).map_err(fail)?);
    }
    let coordinator = crate::Coordinator::new(&a.coordinator, &log).map_err(fail)?;
    let refs: Vec<&crate::Db> = dbs.iter().collect();
    let report = coordinator.recover(&refs).map_err(fail)?;
    for (what, xids) in [
        ("committed", &report.committed),
        ("rolled back", &report.rolled_back),
        ("still attached to a live connection", &report.attached),
    ] {
        for x in xids {
            println!("{what}: {} branch {}", x.global, x.branch);
        }
    }
    println!(
        "{} committed, {} rolled back, {} attached",
        report.committed.len(),
        report.rolled_back.len(),
        report.attached.len()
    );
    Ok(if report.attached.is_empty() { 0 } else { 1 })
}
