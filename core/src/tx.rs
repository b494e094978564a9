//! Transactions: options (isolation, read-only, SQLite immediate, timeout) and the retry policy
//! for serialization failures and deadlocks.
//!
//! A transaction commits when its closure returns `Ok`, rolls back when it returns `Err` or
//! panics (the panic then continues), and nested transactions are savepoints. The driver loop
//! lives in [`Session::transaction_with`](crate::Session::transaction_with).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// SQL isolation levels. Where a backend lacks one, the next stronger level is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
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
}

/// Bounded, jittered exponential backoff for retryable failures (serialization failures and
/// deadlocks). Configurable in TOML under `[databases.NAME.retry]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, including the first. Default 5; `1` (or `0`) turns retrying off.
    pub max_attempts: u32,
    /// Backoff before the second attempt. Default 5 ms; doubles each attempt.
    pub base_delay_ms: u64,
    /// Upper bound of one backoff. Default 500 ms.
    pub max_delay_ms: u64,
    /// Randomise each backoff between half and all of its value. Default true.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 5,
            max_delay_ms: 500,
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

    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
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

/// A pseudo-random number below `n`, from the standard library's randomly keyed hasher.
/// A random number below `n` from the operating system (0 without randomness: jitter only
/// spreads retries apart, a fixed delay is still correct).
fn random_below(n: u64) -> u64 {
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
        assert_eq!(fixed.delay(30), Duration::from_millis(500));
        let d = p.delay(3);
        assert!(
            d >= Duration::from_millis(10) && d <= Duration::from_millis(20),
            "{d:?}"
        );
    }

    #[test]
    fn disabled_policy_never_retries() {
        assert!(!RetryPolicy::disabled().allows_retry_after(1));
        assert!(RetryPolicy::default().allows_retry_after(4));
        assert!(!RetryPolicy::default().allows_retry_after(5));
        let bad = RetryPolicy {
            base_delay_ms: 10,
            max_delay_ms: 1,
            ..Default::default()
        };
        assert!(bad.validate("retry").is_err());
    }
}
