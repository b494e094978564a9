//! The recovery pass at open: resolves, on a database just opened, the in-doubt branches of
//! the coordinators its configuration names ([`RecoveryConfig`](crate::config::RecoveryConfig)).

use super::{Coordinator, RecoveryReport};
use crate::backend::Backend;
use crate::config::DatabaseConfig;
use crate::db::Db;
use crate::error::Result;

/// Runs the recovery pass that `db`'s configuration asks for (`recovery.coordinators`, by the
/// log at `recovery.log`, opened with `backends`) on `db` alone, and returns what it did; an
/// empty report when recovery at open is off. `custodian::open` calls it before returning a
/// handle; call it after [`Db::open`] to get the same.
///
/// A branch still attached to a live connection (MariaDB: its coordinator is running) is
/// reported, not waited for; its decision is recorded, so that coordinator ends it.
pub fn recover_at_open(db: &Db, backends: &[&'static dyn Backend]) -> Result<RecoveryReport> {
    let settings = &db.config().recovery;
    let (Some(log_url), true) = (&settings.log, settings.is_on()) else {
        return Ok(RecoveryReport::default());
    };
    let log = if log_url == &db.config().url {
        db.clone()
    } else {
        // The log's own pool, small: it serves this one pass and the coordinators' fences.
        let mut config = DatabaseConfig::new(log_url.clone());
        config.pool.max_size = 2;
        config.pool.min_idle = Some(0);
        config.retry = db.config().retry.clone();
        Db::open(config, backends)?
    };
    let mut report = RecoveryReport::default();
    for name in &settings.coordinators {
        let done = Coordinator::new(name, &log)?.recover(&[db])?;
        tracing::info!(
            coordinator = %name,
            committed = done.committed.len(),
            rolled_back = done.rolled_back.len(),
            attached = done.attached.len(),
            "recovery at open"
        );
        report.committed.extend(done.committed);
        report.rolled_back.extend(done.rolled_back);
        report.attached.extend(done.attached);
    }
    Ok(report)
}
