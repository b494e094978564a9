//! Observability: the metrics custodian records, the tracing spans and events it emits, and
//! the settings of its statement probe (slow statements, N+1 detection).
//!
//! Metrics go through the [`metrics`] facade: until the application installs a recorder
//! (`metrics-exporter-prometheus`, or custodian's `prometheus` feature) every call is the
//! facade's no-op. Names follow Prometheus conventions, with units:
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `custodian_statements_total` | counter | `entity`, `op` |
//! | `custodian_statement_seconds` | histogram | `entity`, `op` |
//! | `custodian_transactions_total` | counter | `outcome` (`committed`, `rolled_back`) |
//! | `custodian_retries_total` | counter | `cause` |
//! | `custodian_conflicts_total` | counter | `kind` |
//! | `custodian_denials_total` | counter | `entity`, `action` |
//! | `custodian_audit_records_total` | counter | |
//! | `custodian_pool_acquire_seconds` | histogram | |
//! | `custodian_pool_connections` | gauge | `state` (`active`, `idle`) |
//! | `custodian_audit_unsealed` | gauge | (set by `Db::health`) |
//! | `custodian_audit_seal_lag_seconds` | gauge | (set by `Db::health`) |
//! | `custodian_n_plus_one_total` | counter | `entity` |
//! | `custodian_slow_statements_total` | counter | `entity`, `op` |
//!
//! Tracing: a `custodian.transaction` span per transaction attempt (fields `id`, `attempt`,
//! `isolation`, `read_only`, `outcome`) and a `custodian.statement` span per statement
//! (`entity`, `op`, `sql`, `duration_ms`, `error`, `rows`). The pool's test of a connection on
//! checkout (`test_on_check_out`) is pool upkeep, not a statement: it has no span and is not
//! in the statement metrics. `rows` is the number of rows a
//! session read returned or a session write changed, recorded when the session has the
//! result of a call that ran exactly one statement (diesel's instrumentation does not see
//! rows); raw SQL through `Session::execute_sql` records its affected rows too. The SQL is
//! the statement's text with placeholders (audit records sent with `COMMIT`, whose values are
//! written into the text, show a fixed text instead); bind values reach a span (field `binds`) only
//! with `log_bind_values` on, and never for a statement on an entity with encrypted or
//! masked columns. Retries, denials, validation failures, integrity findings, slow
//! statements and N+1 patterns are events.

pub mod binds;
mod explain;
mod probe;
mod progress;
mod rows;
mod scans;

pub(crate) use explain::Text;
pub use explain::{plan, plan_of_sql};
pub(crate) use rows::Rows;

pub use probe::{Context, NPlusOneFinding, Probe, SlowStatement};
pub use progress::{Progress, ProgressFn};
pub use scans::FilteredScan;
pub(crate) use scans::{ScanLog, ScanSeen};

use crate::error::Error;
use serde::Deserialize;
use std::time::Duration;

/// What the statement probe does when one statement shape repeats in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NPlusOneMode {
    /// No counting (the default in release builds).
    Off,
    /// A `warn` event naming the entity and the call site (the default in debug builds).
    Warn,
    /// The read that crosses the threshold fails with [`Error::NPlusOne`].
    Error,
}

impl Default for NPlusOneMode {
    fn default() -> Self {
        if cfg!(debug_assertions) {
            NPlusOneMode::Warn
        } else {
            NPlusOneMode::Off
        }
    }
}

/// Settings of the statement probe (`[databases.NAME.observe]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObserveConfig {
    /// Statements slower than this many milliseconds are logged (a `warn` event on target
    /// `custodian::slow`) with their plan. `None`: no slow log.
    pub slow_statement_ms: Option<u64>,
    /// At most this many slow-statement plans are captured per minute per connection.
    pub slow_plans_per_minute: u32,
    /// N+1 detection mode.
    pub n_plus_one: NPlusOneMode,
    /// A statement shape run more than this many times in one transaction (or, outside
    /// transactions, one session) is an N+1 pattern.
    pub n_plus_one_threshold: u32,
    /// Statement spans carry a `binds` field with the bind values, for statements on
    /// entities without encrypted columns or columns the access policy masks (never for raw
    /// statements). Off by default.
    pub log_bind_values: bool,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            slow_statement_ms: None,
            slow_plans_per_minute: 6,
            n_plus_one: NPlusOneMode::default(),
            n_plus_one_threshold: 10,
            log_bind_values: false,
        }
    }
}

impl ObserveConfig {
    /// The slow-statement threshold as a duration.
    pub fn slow_threshold(&self) -> Option<Duration> {
        self.slow_statement_ms.map(Duration::from_millis)
    }
}

/// Counts a finished transaction attempt and records its outcome on its span.
pub(crate) fn transaction_end(span: &tracing::Span, committed: bool) {
    let outcome = if committed {
        "committed"
    } else {
        "rolled_back"
    };
    span.record("outcome", outcome);
    metrics::counter!("custodian_transactions_total", "outcome" => outcome).increment(1);
}

/// The span of one transaction attempt.
pub(crate) fn transaction_span(
    id: &str,
    attempt: u32,
    isolation: Option<crate::tx::IsolationLevel>,
    read_only: bool,
) -> tracing::Span {
    tracing::info_span!(
        target: "custodian::transaction",
        "custodian.transaction",
        id,
        attempt,
        isolation = isolation.map_or("default", |i| i.sql()),
        read_only,
        outcome = tracing::field::Empty,
    )
}

/// Why a transaction attempt is retried, as the `cause` label names it.
fn retry_cause(err: &Error) -> &'static str {
    match err {
        Error::Serialization { .. } => "serialization",
        Error::Connection { .. } => "connection",
        Error::CommitUnknown { .. } => "commit_unknown",
        _ => "other",
    }
}

/// Counts and logs a retry of a failed transaction attempt.
pub(crate) fn retry(err: &Error, attempt: u32, backoff: Duration) {
    let cause = retry_cause(err);
    metrics::counter!("custodian_retries_total", "cause" => cause).increment(1);
    tracing::info!(
        target: "custodian::transaction",
        cause,
        attempt,
        backoff_ms = backoff.as_millis() as u64,
        "transaction retried"
    );
}

/// Counts a failed statement's error where it is a conflict (unique key, serialization).
pub(crate) fn statement_failed(err: &Error) {
    let kind = match err {
        Error::Conflict { .. } => "unique",
        Error::Serialization { .. } => "serialization",
        _ => return,
    };
    metrics::counter!("custodian_conflicts_total", "kind" => kind).increment(1);
}

/// Counts and logs a refused action.
pub(crate) fn denial(entity: &str, action: &str) {
    metrics::counter!(
        "custodian_denials_total",
        "entity" => entity.to_string(),
        "action" => action.to_string()
    )
    .increment(1);
    tracing::warn!(target: "custodian::access", entity, action, "access denied");
}

/// Logs a write refused by validation (the field names only, never their values).
pub(crate) fn validation_failed(entity: &str, fields: &[&str]) {
    tracing::info!(
        target: "custodian::validate",
        entity,
        fields = %fields.join(","),
        "validation failed"
    );
}

/// Counts a read by key served by the entity cache.
#[cfg(feature = "cache")]
pub(crate) fn cache_hit(entity: &'static str) {
    metrics::counter!("custodian_cache_hits_total", "entity" => entity).increment(1);
}

/// Counts a read by key the entity cache could not serve (it went to the database).
#[cfg(feature = "cache")]
pub(crate) fn cache_miss(entity: &'static str) {
    metrics::counter!("custodian_cache_misses_total", "entity" => entity).increment(1);
}

/// Counts a row leaving the entity cache: invalidated by a write, expired, or pushed out by
/// the size bound.
#[cfg(feature = "cache")]
pub(crate) fn cache_eviction(entity: &'static str) {
    metrics::counter!("custodian_cache_evictions_total", "entity" => entity).increment(1);
}

/// Counts a commit whose invalidation did not reach every process in time: `reason` is
/// `ack` (a process did not acknowledge within `ack_timeout_ms`; it bypasses its cache until
/// it catches up) or `publish` (Redis could not be reached: processes still connected to it
/// may serve the old row until it expires).
#[cfg(feature = "cache")]
pub(crate) fn cache_invalidation_incomplete(reason: &'static str) {
    metrics::counter!("custodian_cache_invalidation_incomplete_total", "reason" => reason)
        .increment(1);
}

/// Counts audit records appended to the trail.
pub(crate) fn audit_records(count: usize) {
    metrics::counter!("custodian_audit_records_total").increment(count as u64);
}

/// Logs integrity findings of an audit verification.
pub(crate) fn integrity_findings(count: usize) {
    if count > 0 {
        tracing::error!(target: "custodian::audit", findings = count, "audit trail verification found problems");
    }
}

/// Records the time a pool checkout waited.
pub(crate) fn pool_acquire(waited: Duration) {
    metrics::histogram!("custodian_pool_acquire_seconds").record(waited.as_secs_f64());
}

/// Sets the pool's connection gauges.
pub(crate) fn pool_connections(total: u32, idle: u32) {
    metrics::gauge!("custodian_pool_connections", "state" => "active")
        .set(f64::from(total.saturating_sub(idle)));
    metrics::gauge!("custodian_pool_connections", "state" => "idle").set(f64::from(idle));
}

/// Sets the audit seal gauges.
pub(crate) fn audit_seal_state(unsealed: u64, lag: Duration) {
    metrics::gauge!("custodian_audit_unsealed").set(unsealed as f64);
    metrics::gauge!("custodian_audit_seal_lag_seconds").set(lag.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_settings_parse_from_toml() {
        let cfg: ObserveConfig = toml::from_str(
            "slow_statement_ms = 200\nn_plus_one = \"error\"\nn_plus_one_threshold = 3\n",
        )
        .unwrap();
        assert_eq!(cfg.slow_threshold(), Some(Duration::from_millis(200)));
        assert_eq!(cfg.n_plus_one, NPlusOneMode::Error);
        assert_eq!(cfg.n_plus_one_threshold, 3);
        assert_eq!(cfg.slow_plans_per_minute, 6);
        assert!(toml::from_str::<ObserveConfig>("n_plus_one = \"loud\"").is_err());
        assert!(toml::from_str::<ObserveConfig>("slow_ms = 1").is_err());
    }
}
