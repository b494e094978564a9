//! [`Db::health`]: one typed report of whether the database serves (liveness) and whether
//! this application should take traffic on it (readiness): connectivity and round-trip time,
//! pool saturation, schema drift against the registered entities, the audit trail's seal lag
//! and chain head, pending migrations.

use crate::audit::tables::{custodian_audit as a, custodian_audit_chain as c};
use crate::db::Db;
use crate::entity::EntityMeta;
use crate::error::{Error, Result};
use diesel::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What [`Db::health`] checks beyond connectivity.
#[derive(Debug, Clone, Default)]
pub struct HealthOptions {
    /// Entities whose tables must match the live schema (none: no drift check).
    pub entities: Vec<EntityMeta>,
    /// Migrations directory whose pending migrations make the database not ready.
    pub migrations: Option<PathBuf>,
    /// Oldest unsealed audit record allowed before the database is not ready (default: the
    /// audit configuration's `max_unsealed_secs`; neither: the lag is reported only).
    pub max_seal_lag: Option<Duration>,
}

/// The pool's state when the report was made.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolHealth {
    /// Connections open.
    pub connections: u32,
    /// Connections checked out.
    pub in_use: u32,
    /// The pool's maximum size.
    pub max_size: u32,
    /// `in_use / max_size`: 1.0 means every connection is busy and checkouts wait.
    pub saturation: f64,
}

/// The audit trail's sealing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHealth {
    /// Committed records not sealed into the chain yet.
    pub unsealed: u64,
    /// How long ago the oldest unsealed record was written (zero when all are sealed).
    pub seal_lag: Duration,
    /// Sequence number of the chain head.
    pub head_seq: i64,
    /// Hash of the chain head.
    pub head_hash: String,
}

/// The report of [`Db::health`]. Each probe that could not run says why in `problems`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// A fresh connection opened and answered a ping.
    pub reachable: bool,
    /// Time of that ping (one round trip), when reachable.
    pub round_trip: Option<Duration>,
    /// The pool's state.
    pub pool: PoolHealth,
    /// Differences between the registered entities and the live schema, as text.
    pub drift: Vec<String>,
    /// Advice on the live schema that is not drift (a foreign key without an index, a column
    /// slow plans filtered a full scan on without an index), as text; advice does not make
    /// the database not ready. See [`Db::schema_advice`].
    pub advice: Vec<String>,
    /// The audit trail's state; `None` when its tables are not installed (or the database is
    /// unreachable).
    pub audit: Option<AuditHealth>,
    /// Migrations not applied yet (with [`HealthOptions::migrations`]).
    pub pending_migrations: Vec<String>,
    /// Why the database is not live or not ready, one line each.
    pub problems: Vec<String>,
}

impl HealthReport {
    /// Liveness: the database answers.
    pub fn is_live(&self) -> bool {
        self.reachable
    }

    /// Readiness: the database answers and no probe found a problem (drift, pending
    /// migrations, a seal lag over the limit, a probe that failed).
    pub fn is_ready(&self) -> bool {
        self.reachable && self.problems.is_empty()
    }
}

impl std::fmt::Display for HealthReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match (self.is_live(), self.is_ready()) {
            (_, true) => "ready",
            (true, false) => "live, not ready",
            (false, _) => "down",
        };
        writeln!(f, "status: {state}")?;
        match self.round_trip {
            Some(rt) => writeln!(f, "round trip: {:.3} ms", rt.as_secs_f64() * 1000.0)?,
            None => writeln!(f, "round trip: -")?,
        }
        writeln!(
            f,
            "pool: {} of {} in use ({} open, saturation {:.2})",
            self.pool.in_use, self.pool.max_size, self.pool.connections, self.pool.saturation
        )?;
        match &self.audit {
            Some(a) => writeln!(
                f,
                "audit: {} unsealed, seal lag {} s, chain head {} {}",
                a.unsealed,
                a.seal_lag.as_secs(),
                a.head_seq,
                a.head_hash
            )?,
            None => writeln!(f, "audit: not installed")?,
        }
        writeln!(f, "schema drift: {}", self.drift.len())?;
        for a in &self.advice {
            writeln!(f, "advice: {a}")?;
        }
        writeln!(f, "pending migrations: {}", self.pending_migrations.len())?;
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        Ok(())
    }
}

impl Db {
    /// Probes the database (see [`HealthReport`]). Never fails: a probe that cannot run is a
    /// problem in the report. Connectivity is checked on a fresh connection, not a pooled
    /// one, so a server that went away is seen at once. Also sets the `custodian_audit_*`
    /// and pool gauges.
    pub fn health(&self, options: &HealthOptions) -> HealthReport {
        let mut problems = Vec::new();
        let (reachable, round_trip) = match self.ping_fresh() {
            Ok(rt) => (true, Some(rt)),
            Err(e) => {
                problems.push(format!("unreachable: {e}"));
                (false, None)
            }
        };
        let stats = self.pool_stats();
        let max_size = self.config().pool.max_size.max(1);
        let in_use = stats.size.saturating_sub(stats.idle);
        crate::observe::pool_connections(stats.size, stats.idle);
        let pool = PoolHealth {
            connections: stats.size,
            in_use,
            max_size,
            saturation: f64::from(in_use) / f64::from(max_size),
        };
        let mut report = HealthReport {
            reachable,
            round_trip,
            pool,
            drift: Vec::new(),
            advice: Vec::new(),
            audit: None,
            pending_migrations: Vec::new(),
            problems,
        };
        if reachable {
            self.probe_schema(options, &mut report);
        }
        report
    }

    /// Opens a connection outside the pool and times one ping on it.
    fn ping_fresh(&self) -> Result<Duration> {
        let backend = self.backend();
        let mut conn = crate::pool::open_connection(backend, self.config())?;
        let started = Instant::now();
        backend.ping(&mut conn).map_err(|e| backend.classify(e))?;
        Ok(started.elapsed())
    }

    fn probe_schema(&self, options: &HealthOptions, report: &mut HealthReport) {
        if !options.entities.is_empty() {
            match self.schema_drift(&options.entities) {
                Ok(drift) => {
                    for d in &drift {
                        report.problems.push(format!("schema drift: {d}"));
                    }
                    report.drift = drift.iter().map(ToString::to_string).collect();
                }
                Err(e) => report
                    .problems
                    .push(format!("schema drift not checked: {e}")),
            }
        }
        // Without entities there is still the advice from slow plans.
        match self.schema_advice(&options.entities) {
            Ok(advice) => report.advice = advice.iter().map(ToString::to_string).collect(),
            Err(e) => report
                .problems
                .push(format!("schema advice not checked: {e}")),
        }
        if let Some(dir) = &options.migrations {
            match self.pending_migrations(dir) {
                Ok(pending) => {
                    for m in &pending {
                        report.problems.push(format!("migration pending: {m}"));
                    }
                    report.pending_migrations = pending;
                }
                Err(e) => report.problems.push(format!("migrations not checked: {e}")),
            }
        }
        match self.audit_health() {
            Ok(Some(audit)) => {
                crate::observe::audit_seal_state(audit.unsealed, audit.seal_lag);
                let limit = options
                    .max_seal_lag
                    .or_else(|| self.config().audit.max_unsealed_age());
                if let Some(limit) = limit.filter(|l| audit.unsealed > 0 && audit.seal_lag > *l) {
                    report.problems.push(format!(
                        "audit seal lag {} s over the limit of {} s ({} records unsealed)",
                        audit.seal_lag.as_secs(),
                        limit.as_secs(),
                        audit.unsealed
                    ));
                }
                report.audit = Some(audit);
            }
            Ok(None) => {}
            Err(e) => report
                .problems
                .push(format!("audit trail not checked: {e}")),
        }
    }

    /// The trail's unsealed count, seal lag and chain head; `None` when it is not installed.
    fn audit_health(&self) -> Result<Option<AuditHealth>> {
        let backend = self.backend();
        let mut s = self.session()?;
        let installed = s.run(|conn| backend.live_columns(conn, &crate::audit::tables::AUDIT))?;
        if installed.is_none() {
            return Ok(None);
        }
        let unchained = || {
            a::table
                .left_join(c::table.on(c::record_id.eq(a::id)))
                .filter(c::seq.is_null())
        };
        let unsealed: i64 = s.run(|conn| unchained().count().get_result(conn))?;
        let oldest: Option<crate::sql_types::StoredDatetime> = s.run(|conn| {
            unchained()
                .select(a::at)
                .order(a::at.asc())
                .first(conn)
                .optional()
        })?;
        let (head_seq, head_hash) = crate::audit::chain::head(&mut s)?;
        let now = chrono::Utc::now().naive_utc();
        let seal_lag = oldest
            .map(|at| (now - at.0).to_std().unwrap_or_default())
            .unwrap_or_default();
        Ok(Some(AuditHealth {
            unsealed: u64::try_from(unsealed)
                .map_err(|_| Error::integrity(crate::error::IntegrityKind::Internal, "count"))?,
            seal_lag,
            head_seq,
            head_hash,
        }))
    }
}
