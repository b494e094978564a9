//! The recovery log: one row per coordinated transaction whose outcome was decided, in the
//! table `custodian_coordinator_log` of the coordinator's log database.
//!
//! The row is the decision. A coordinator commits by inserting `commit` for the transaction's
//! global id; recovery aborts an undecided transaction by inserting `abort` for it. The global
//! id is the table's primary key, so whichever insert commits first wins and the other fails
//! with a duplicate key. An insert of a key that another open transaction has inserted waits
//! for that transaction to end (PostgreSQL and InnoDB wait on the key, SQLite on its write
//! lock), so recovery never decides while a coordinator's decision is in flight.

use crate::error::{ConstraintKind, Error, Result};
use crate::session::Session;
use diesel::prelude::*;

diesel::table! {
    /// Decisions of coordinated transactions.
    custodian_coordinator_log (gid) {
        /// Global id `cust:<coordinator>:<uuid>`.
        gid -> Text,
        /// `commit` or `abort`.
        decision -> Text,
        /// When the decision was made, milliseconds since the Unix epoch.
        decided_at -> BigInt,
    }
}

use custodian_coordinator_log as log;

/// The log table's DDL, the same on every backend.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS custodian_coordinator_log (\
     gid VARCHAR(64) NOT NULL PRIMARY KEY, \
     decision VARCHAR(8) NOT NULL, \
     decided_at BIGINT NOT NULL)";

/// What was decided for a coordinated transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Every branch commits.
    Commit,
    /// Every branch rolls back.
    Abort,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates the log table if it is missing.
pub(crate) fn install(s: &mut Session) -> Result<()> {
    s.execute_sql(CREATE).map(|_| ())
}

/// Inserts the decision for `gid` (in the session's open transaction, if any). A duplicate key
/// (the other decision got there first) is [`Error::Conflict`] of kind unique.
pub(crate) fn insert(s: &mut Session, gid: &str, decision: Decision) -> Result<()> {
    s.run(|c| {
        diesel::insert_into(log::table)
            .values((
                log::gid.eq(gid),
                log::decision.eq(decision.as_str()),
                log::decided_at.eq(now_ms()),
            ))
            .execute(c)
    })
    .map(|_| ())
}

/// The decision recorded for `gid`, if any.
pub(crate) fn read(s: &mut Session, gid: &str) -> Result<Option<Decision>> {
    let found: Option<String> = s.run(|c| {
        log::table
            .filter(log::gid.eq(gid))
            .select(log::decision)
            .first(c)
            .optional()
    })?;
    match found.as_deref() {
        None => Ok(None),
        Some("commit") => Ok(Some(Decision::Commit)),
        Some("abort") => Ok(Some(Decision::Abort)),
        Some(other) => Err(Error::integrity(
            crate::error::IntegrityKind::Internal,
            format!("recovery log row {gid} holds an unknown decision {other:?}"),
        )),
    }
}

/// The decision for `gid`, making one if there is none: an `abort` row is inserted, which
/// fences out a coordinator still about to commit (its insert then fails). Waits for a
/// decision in flight to end first (see the module doc).
pub(crate) fn decide_abort_unless_committed(s: &mut Session, gid: &str) -> Result<Decision> {
    if let Some(d) = read(s, gid)? {
        return Ok(d);
    }
    match insert(s, gid, Decision::Abort) {
        Ok(()) => Ok(Decision::Abort),
        Err(e) if e.constraint_kind() == Some(ConstraintKind::Unique) => {
            read(s, gid)?.ok_or_else(|| {
                Error::integrity(
                    crate::error::IntegrityKind::Internal,
                    format!("recovery log row {gid} vanished after a duplicate key"),
                )
            })
        }
        Err(e) => Err(e),
    }
}

/// Removes the row of a transaction whose branches have all been committed.
pub(crate) fn forget(s: &mut Session, gid: &str) -> Result<()> {
    s.run(|c| diesel::delete(log::table.filter(log::gid.eq(gid))).execute(c))
        .map(|_| ())
}

/// Removes `abort` rows older than `retention`. They fence out a coordinator that might still
/// try to commit; one that has not done so by then is gone.
pub(crate) fn prune(s: &mut Session, retention: std::time::Duration) -> Result<usize> {
    let cutoff = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    s.run(|c| {
        diesel::delete(
            log::table
                .filter(log::decision.eq(Decision::Abort.as_str()))
                .filter(log::decided_at.lt(cutoff)),
        )
        .execute(c)
    })
}
