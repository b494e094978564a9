//! Transactions: options (isolation, read-only, SQLite immediate, timeout, outcome rows), the
//! retry policy for serialization failures, deadlocks and connections lost before `COMMIT`, and
//! the settings for settling commits cut off mid-flight.
//!
//! A transaction commits when its closure returns `Ok`, rolls back when it returns `Err` or
//! panics (the panic then continues), and nested transactions are savepoints. The driver loop
//! lives in [`Session::transaction_with`](crate::Session::transaction_with).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// SQL isolation levels. Where a backend lacks one, the next stronger level is used:
///
/// | level | PostgreSQL | MariaDB | SQLite |
/// |---|---|---|---|
/// | `ReadUncommitted` | read committed (PostgreSQL accepts the level and runs it as read committed) | read uncommitted | serializable |
/// | `ReadCommitted` | read committed | read committed | serializable |
/// | `RepeatableRead` | repeatable read (snapshot) | repeatable read | serializable |
/// | `Serializable` | serializable | serializable | serializable |
///
/// SQLite transactions are always serializable (one writer at a time, readers see a snapshot),
/// so every level runs as serializable there; `PRAGMA read_uncommitted` only applies to
/// shared-cache connections, which custodian does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Statements may see rows other transactions have written but not committed (dirty
    /// reads), where the database has the level: MariaDB. See the table above for the others.
    ReadUncommitted,
    /// Each statement sees data committed before it began.
    ReadCommitted,
    /// The transaction sees one snapshot.
    RepeatableRead,
    /// Transactions behave as if run one after another; conflicts fail with a retryable error.
    Serializable,
}

impl IsolationLevel {
    /// The SQL spelling, e.g. `REPEATABLE READ`.
    pub fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// How to run one transaction. Build with the methods; the default is the database's default
/// isolation, read-write, no timeout, and the database's retry policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxOptions {
    /// Isolation level; `None` uses the server's default.
    pub isolation: Option<IsolationLevel>,
    /// Read-only transaction (PostgreSQL and MariaDB natively, SQLite through `query_only`).
    pub read_only: bool,
    /// PostgreSQL `DEFERRABLE` (with serializable read-only: waits for a safe snapshot).
    pub deferrable: bool,
    /// SQLite `BEGIN IMMEDIATE`: take the write lock at the start instead of at the first write.
    pub immediate: bool,
    /// Deadline for the whole transaction, including retries' attempts each.
    pub timeout: Option<Duration>,
    /// Retry policy overriding the database's one for this transaction.
    pub retry: Option<RetryPolicy>,
    /// Runs on the primary even when read-only (a cluster otherwise may run a read-only
    /// transaction on a replica).
    pub primary: bool,
    /// Settle a cut-off commit of this transaction (see [`CommitOutcomeConfig`]): `Some(true)`
    /// writes an outcome row when the transaction has no audit records to be found by;
    /// `Some(false)` settles nothing (a cut-off commit is [`Error::CommitUnknown`], audited or
    /// not); `None` settles audited transactions and follows the database's
    /// `commit_outcome.record` for the others.
    pub record_outcome: Option<bool>,
}

impl TxOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the isolation level.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }
    /// Shorthand for serializable isolation.
    pub fn serializable(self) -> Self {
        self.isolation(IsolationLevel::Serializable)
    }
    /// Makes the transaction read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    /// Runs the transaction on the primary of a cluster even when it is read-only.
    pub fn on_primary(mut self) -> Self {
        self.primary = true;
        self
    }
    /// PostgreSQL `DEFERRABLE`.
    pub fn deferrable(mut self) -> Self {
        self.deferrable = true;
        self
    }
    /// SQLite `BEGIN IMMEDIATE`.
    pub fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }
    /// Limits each attempt of the transaction to `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
    /// Overrides the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
    /// Turns retrying off for this transaction.
    pub fn no_retry(self) -> Self {
        self.retry(RetryPolicy::disabled())
    }
    /// `true`: writes a transaction-outcome row in this transaction (unless its audit records
    /// settle it), whatever the database's `commit_outcome.record` says, so that a commit cut
    /// off mid-flight is settled instead of surfacing as [`Error::CommitUnknown`]. `false`:
    /// settles nothing, not even by audit records (custodian's own DDL and seal transactions
    /// use it). See [`CommitOutcomeConfig`].
    pub fn record_outcome(mut self, record: bool) -> Self {
        self.record_outcome = Some(record);
        self
    }
}

/// How custodian settles a commit cut off mid-flight (`[databases.NAME.commit_outcome]`).
///
/// When the connection breaks while `COMMIT` of a read-write transaction is in flight, the
/// transaction may or may not have committed. custodian resolves it on a fresh connection
/// when the transaction left something to look for in the same commit: its audit records
/// (audited writes) or, for unaudited transactions that opt in, one row in
/// `custodian_tx_outcome` keyed by the transaction id. Committed: the closure's result is
/// returned. Not committed: the closure runs again under the retry policy. Only when the
/// server cannot be reached within the retry policy's time budget is the outcome unknown
/// ([`Error::CommitUnknown`]). Transactions with neither (unaudited, not opted in) surface
/// [`Error::CommitUnknown`] as before.
///
/// The cost of `record`: one single-row insert per read-write transaction (plus, once per
/// session, one query naming the connection's server session; audited transactions pay that
/// query too). `BENCHMARKS.md` has the measured ratio.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitOutcomeConfig {
    /// Write an outcome row in every unaudited read-write transaction of this database.
    /// Default false; [`TxOptions::record_outcome`] overrides it per transaction. The table is
    /// created by [`Db::install_tx_outcomes`](crate::Db::install_tx_outcomes) (which
    /// `create_tables` and `run_migrations` call when this is on).
    pub record: bool,
    /// Outcome rows older than this many seconds are deleted, now and then after a commit and
    /// by [`Db::prune_tx_outcomes`](crate::Db::prune_tx_outcomes). Default 3,600. A row is
    /// only needed until its transaction's outcome is settled (seconds at most).
    pub retention_secs: u64,
}

impl Default for CommitOutcomeConfig {
    fn default() -> Self {
        CommitOutcomeConfig {
            record: false,
            retention_secs: 3_600,
        }
    }
}

/// Bounded, jittered exponential backoff for retryable failures. Configurable in TOML under
/// `[databases.NAME.retry]`.
///
/// What [`Session::transaction`](crate::Session::transaction) retries, re-running the whole
/// closure from a fresh `BEGIN`:
/// - serialization failures and deadlocks ([`Error::Serialization`]: PostgreSQL 40001 and
///   40P01, lock timeouts 55P03, MariaDB 1213 and 1205, SQLite busy and locked);
/// - a connection lost before `COMMIT` was sent ([`Error::Connection`]): the database rolled
///   the transaction back with the connection, and the next attempt runs on a fresh one.
///
/// A connection lost while `COMMIT` was in flight is settled (see [`CommitOutcomeConfig`]):
/// the closure runs again only if the transaction did not commit. Settling runs within
/// `max_elapsed_ms` (at least 1 s) from the cut, with this policy's backoff between tries.
///
/// What it never retries: [`Error::CommitUnknown`] (an outcome that could not be settled, so
/// the transaction may have committed), a failure to check out a connection, and every other
/// error (constraints, validation, timeouts, the closure's own errors).
///
/// The budget: another attempt starts only while both hold: fewer than `max_attempts`
/// attempts were made, and the first attempt began less than `max_elapsed_ms` ago (counting
/// the backoff before the next one). Between attempts it sleeps a backoff that doubles from
/// `base_delay_ms` up to `max_delay_ms`, jittered so that transactions which conflicted once
/// do not collide again in step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, including the first. Default 20; `1` (or `0`) turns retrying off.
    pub max_attempts: u32,
    /// Time budget: no attempt starts later than this many milliseconds after the first one
    /// began. Default 5,000. `0` means no time budget (attempts only).
    pub max_elapsed_ms: u64,
    /// Backoff before the second attempt. Default 5 ms; doubles each attempt.
    pub base_delay_ms: u64,
    /// Upper bound of one backoff. Default 250 ms.
    pub max_delay_ms: u64,
    /// Randomise each backoff between half and all of its value. Default true.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 20,
            max_elapsed_ms: 5_000,
            base_delay_ms: 5,
            max_delay_ms: 250,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn disabled() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based), by count alone.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based) when the first
    /// began `elapsed` ago and the backoff before the next is `backoff`: both the attempt count
    /// and the time budget must allow it.
    pub fn allows_retry(&self, attempt: u32, elapsed: Duration, backoff: Duration) -> bool {
        self.allows_retry_after(attempt)
            && (self.max_elapsed_ms == 0
                || elapsed + backoff < Duration::from_millis(self.max_elapsed_ms))
    }

    /// Backoff before attempt `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay_ms);
        if !self.jitter || capped == 0 {
            return Duration::from_millis(capped);
        }
        let half = capped / 2;
        Duration::from_millis(half + random_below(capped - half + 1))
    }

    /// Checks the knobs; `at` is the dotted path used in error messages.
    pub fn validate(&self, at: &str) -> Result<()> {
        if self.base_delay_ms > self.max_delay_ms {
            return Err(Error::config(
                format!("{at}.base_delay_ms"),
                format!(
                    "{} is larger than max_delay_ms {}",
                    self.base_delay_ms, self.max_delay_ms
                ),
            ));
        }
        if self.max_attempts > 100 {
            return Err(Error::config(
                format!("{at}.max_attempts"),
                "must be at most 100",
            ));
        }
        Ok(())
    }
}

/// A random number below `n` from the operating system (0 without randomness: jitter only
/// spreads retries apart, a fixed delay is still correct).
pub(crate) fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) % n.max(1),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = p.delay(attempt);
            assert!(d <= Duration::from_millis(p.max_delay_ms), "{d:?}");
        }
        let fixed = RetryPolicy {
            jitter: false,
            ..p.clone()
        };
        assert_eq!(fixed.delay(1), Duration::from_millis(5));
        assert_eq!(fixed.delay(3), Duration::from_millis(20));
        assert_eq!(fixed.delay(30), Duration::from_millis(250));
        let d = p.delay(3);
        assert!(
            d >= Duration::from_millis(10) && d <= Duration::from_millis(20),
            "{d:?}"
        );
    }

    #[test]
    fn the_time_budget_stops_retries_before_the_attempts_run_out() {
        let p = RetryPolicy {
            max_attempts: 100,
            max_elapsed_ms: 1_000,
            ..RetryPolicy::default()
        };
        let ms = Duration::from_millis;
        assert!(p.allows_retry(3, ms(500), ms(100)));
        assert!(
            !p.allows_retry(3, ms(950), ms(100)),
            "the backoff would end past the budget"
        );
        assert!(!p.allows_retry(3, ms(1_200), ms(0)));
        assert!(
            !p.allows_retry(100, ms(0), ms(0)),
            "attempts still bound it"
        );
        let no_budget = RetryPolicy {
            max_elapsed_ms: 0,
            ..p
        };
        assert!(no_budget.allows_retry(3, Duration::from_secs(3600), ms(100)));
    }

    #[test]
    fn disabled_policy_never_retries() {
        assert!(!RetryPolicy::disabled().allows_retry_after(1));
        assert!(RetryPolicy::default().allows_retry_after(19));
        assert!(!RetryPolicy::default().allows_retry_after(20));
        let bad = RetryPolicy {
            base_delay_ms: 10,
            max_delay_ms: 1,
            ..Default::default()
        };
        assert!(bad.validate("retry").is_err());
    }
}
