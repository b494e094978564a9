//! One host of a cluster: its pool, what the last check found (role, lag, up or banned), and
//! its counters; [`HostStatus`], the snapshot [`Db::cluster_status`](crate::Db::cluster_status)
//! returns; [`Lease`], a session's claim on a replica.

use crate::backend::{Backend, HostRole};
use crate::config::DatabaseConfig;
use crate::pool::{ConnectFailures, Pool, PoolCounters, PoolStats, PooledConnection};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the last check or failure found out about a host.
#[derive(Debug, Clone, Copy)]
struct Health {
    role: Option<HostRole>,
    /// Answered its last check and no connection to it failed since.
    up: bool,
    lag: Option<Duration>,
    checked: Option<Instant>,
}

/// One host of a cluster.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) config: DatabaseConfig,
    pub(crate) pool: Pool,
    pub(crate) counters: Arc<PoolCounters>,
    pub(crate) failures: Arc<ConnectFailures>,
    pub(crate) weight: u32,
    health: Mutex<Health>,
    in_flight: AtomicUsize,
    sessions: AtomicU64,
    errors: AtomicU64,
}

/// A host's state as [`Db::cluster_status`](crate::Db::cluster_status) reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostStatus {
    /// The host's URL, password masked.
    pub url: String,
    /// The role it reported at its last check; `None` if it never answered.
    pub role: Option<HostRole>,
    /// Whether it serves: answered its last check, no connection failed since. A host that is
    /// not up is banned until a check finds it answering again.
    pub up: bool,
    /// Replication lag at the last check (zero on the primary); `None` when unknown.
    pub lag: Option<Duration>,
    /// Sessions open on it now (replicas; the primary's sessions are not counted).
    pub in_flight: usize,
    /// Reader sessions it served since start.
    pub sessions: u64,
    /// Failed checks and connection failures since start.
    pub errors: u64,
    /// The host's own connection pool: size, idle, in use, and its activity counters.
    pub pool: PoolStats,
}

impl Host {
    /// A host with a lazily filled pool, not checked yet.
    pub(crate) fn new(backend: &'static dyn Backend, config: DatabaseConfig, weight: u32) -> Host {
        let counters = Arc::new(PoolCounters::default());
        let failures = Arc::new(ConnectFailures::default());
        let pool = crate::pool::build_lazy(backend, &config, counters.clone(), failures.clone());
        Host {
            config,
            pool,
            counters,
            failures,
            weight,
            health: Mutex::new(Health {
                role: None,
                up: false,
                lag: None,
                checked: None,
            }),
            in_flight: AtomicUsize::new(0),
            sessions: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn health(&self) -> Health {
        *self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection within `wait`, or `None` (the host is then banned).
    pub(crate) fn connection(&self, wait: Duration) -> Option<PooledConnection> {
        let conn = self
            .pool
            .try_get()
            .or_else(|| self.pool.get_timeout(wait).ok());
        if conn.is_none() {
            self.ban();
        }
        conn
    }

    /// A connection for a session of the host's own, failing fast: a connection that cannot
    /// be opened bans the host and is [`Error::Connection`](crate::Error::Connection) at once
    /// (retryable), not after the pool's whole `connection_timeout_ms`.
    pub(crate) fn checkout(&self) -> crate::Result<PooledConnection> {
        let conn = crate::pool::checkout_fail_fast(&self.pool, &self.failures, &self.config);
        if matches!(conn, Err(crate::Error::Connection { .. })) {
            self.ban();
        }
        conn
    }

    /// Asks the host its role and lag; a host that does not answer within `wait` is banned.
    pub(crate) fn check(&self, backend: &'static dyn Backend, wait: Duration) {
        let Some(mut conn) = self.connection(wait) else {
            return;
        };
        let answer = backend
            .role(&mut conn)
            .and_then(|role| Ok((role, backend.replica_lag(&mut conn)?)));
        match answer {
            Ok((role, lag)) => {
                *self.health.lock().unwrap_or_else(|e| e.into_inner()) = Health {
                    role: Some(role),
                    up: true,
                    lag,
                    checked: Some(Instant::now()),
                }
            }
            Err(_) => self.ban(),
        }
    }

    /// Takes the host out of service until a check finds it answering.
    pub(crate) fn ban(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.health.lock().unwrap_or_else(|e| e.into_inner()).up = false;
    }

    /// Whether the host answered its last check as `role`.
    pub(crate) fn is(&self, role: HostRole) -> bool {
        let h = self.health();
        h.up && h.role == Some(role)
    }

    /// Whether the host may serve reads now: an answering replica whose lag is known and,
    /// with a `bound`, within it at read time. The lag now is at most the lag the last check
    /// measured plus the time since that check (replay may have stopped right after it), so
    /// that sum is held to the bound: no round trip per read, and a replica whose checks stop
    /// answering drops out by itself once the bound has passed since its last one.
    pub(crate) fn serves_reads(&self, bound: Option<Duration>) -> bool {
        let h = self.health();
        h.up && h.role == Some(HostRole::Replica)
            && match (h.lag, h.checked, bound) {
                (None, _, _) | (_, None, _) => false,
                (Some(_), Some(_), None) => true,
                (Some(lag), Some(checked), Some(bound)) => lag + checked.elapsed() <= bound,
            }
    }

    /// Sessions open on the host now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The host's state now.
    pub(crate) fn status(&self) -> HostStatus {
        let h = self.health();
        HostStatus {
            url: self.config.url.redacted(),
            role: h.role,
            up: h.up,
            lag: h.lag,
            in_flight: self.in_flight(),
            sessions: self.sessions.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            pool: self.counters.snapshot(self.pool.state()),
        }
    }
}

/// A session's claim on a replica: counts as in flight there until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    host: Arc<Host>,
}

impl Lease {
    pub(crate) fn new(host: Arc<Host>) -> Lease {
        host.in_flight.fetch_add(1, Ordering::Relaxed);
        host.sessions.fetch_add(1, Ordering::Relaxed);
        Lease { host }
    }

    /// The replica failed a statement by losing the connection: banned until it answers.
    pub(crate) fn ban(&self) {
        self.host.ban();
    }

    /// Whether this lease is on `host`.
    pub(crate) fn on(&self, host: &Arc<Host>) -> bool {
        Arc::ptr_eq(&self.host, host)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.host.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
