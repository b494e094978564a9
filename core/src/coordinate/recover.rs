//! Recovery: finds the prepared branches a coordinator left behind and commits or rolls back
//! each by its recovery log, so that no prepared transaction holds its locks forever.

use super::log::{self, Decision};
use super::Coordinator;
use crate::backend::{Resolution, Xid};
use crate::db::Db;
use crate::error::Result;
use std::collections::HashMap;
use std::time::Duration;

/// How long `abort` rows stay in the log: a coordinator that has not tried to commit by then
/// is gone. Recovery must run within this time of a crash for a decided commit to be found.
const ABORT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What [`Coordinator::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Prepared branches committed, because their transaction's decision was `commit`.
    pub committed: Vec<Xid>,
    /// Prepared branches rolled back: their transaction had no commit decision (recovery
    /// recorded `abort` for it, so its coordinator cannot commit it later).
    pub rolled_back: Vec<Xid>,
    /// Prepared branches still attached to the live connection that prepared them (MariaDB):
    /// their coordinator is running, and only it can end them. The decision is recorded
    /// (for an undecided one, `abort`), so it ends them that way.
    pub attached: Vec<Xid>,
}

impl Coordinator {
    /// Resolves this coordinator's in-doubt branches on `dbs`: every prepared branch whose
    /// global id names this coordinator is committed if the log holds `commit` for its
    /// transaction and rolled back otherwise (after recording `abort`, which waits for a
    /// decision still in flight). Run it at start-up, with every database the coordinator
    /// writes to, and after a crash; it is safe to run at any time and more than once.
    ///
    /// A branch of a transaction still running in another process under the same
    /// coordinator name is rolled back too (that transaction then fails and is retried):
    /// give each running instance its own name.
    pub fn recover(&self, dbs: &[&Db]) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let mut decided: HashMap<String, Decision> = HashMap::new();
        let mut log_session = self.log.session()?;
        let prefix = self.prefix();
        for db in dbs {
            let Some(tp) = db.backend().two_phase() else {
                // SQLite takes part only as the log, committed in one phase: nothing is
                // ever prepared there.
                continue;
            };
            let mut s = db.session()?;
            for xid in s.run(|c| tp.prepared(c, &prefix))? {
                let decision = match decided.get(&xid.global) {
                    Some(d) => *d,
                    None => {
                        let d = log::decide_abort_unless_committed(&mut log_session, &xid.global)?;
                        decided.insert(xid.global.clone(), d);
                        d
                    }
                };
                let resolution = match decision {
                    Decision::Commit => s.run(|c| tp.commit_prepared(c, &xid))?,
                    Decision::Abort => s.run(|c| tp.rollback_prepared(c, &xid))?,
                };
                match (resolution, decision) {
                    (Resolution::Attached, _) => report.attached.push(xid),
                    (Resolution::Resolved, Decision::Commit) => report.committed.push(xid),
                    (Resolution::Resolved, Decision::Abort) => report.rolled_back.push(xid),
                }
            }
        }
        log::prune(&mut log_session, ABORT_RETENTION)?;
        Ok(report)
    }
}
