//! One host of a cluster: its pool, what the last check found (role, lag, up or banned), and
//! its counters; [`HostStatus`], the snapshot [`Db::cluster_status`](crate::Db::cluster_status)
//! returns; [`Lease`], a session's claim on a replica.
//!
//! A banned host is checked through a connection of the check's own, not through its pool:
//! r2d2 retries a failed connect with a backoff that grows to half of
//! `connection_timeout_ms`, so a pool whose connections all died opens none for that long
//! after the host is back. When the check's connection answers, the host gets a fresh pool
//! (which opens its first connection at once) and is readmitted: within one check interval
//! of answering again.

use crate::backend::{Backend, HostRole};
use crate::config::DatabaseConfig;
use crate::pool::{ConnectFailures, Pool, PoolCounters, PoolStats, PooledConnection};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
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
    backend: &'static dyn Backend,
    /// Replaced by a fresh one when a banned host answers again.
    pool: RwLock<Pool>,
    /// Banned since its pool last served: the next check probes with its own connection.
    banned: AtomicBool,
    /// A probe's connection is being opened (a frozen host may hold it past its check).
    probing: Arc<AtomicBool>,
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
            backend,
            pool: RwLock::new(pool),
            banned: AtomicBool::new(false),
            probing: Arc::new(AtomicBool::new(false)),
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

    /// The host's pool now (a handle: cloning shares the pool).
    pub(crate) fn pool(&self) -> Pool {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A connection within `wait`, or `None` (the host is then banned).
    pub(crate) fn connection(&self, wait: Duration) -> Option<PooledConnection> {
        let pool = self.pool();
        let conn = pool.try_get().or_else(|| pool.get_timeout(wait).ok());
        if conn.is_none() {
            self.ban();
        }
        conn
    }

    /// A connection for a session of the host's own, failing fast: a connection that cannot
    /// be opened bans the host and is [`Error::Connection`](crate::Error::Connection) at once
    /// (retryable), not after the pool's whole `connection_timeout_ms`.
    pub(crate) fn checkout(&self) -> crate::Result<PooledConnection> {
        let conn = crate::pool::checkout_fail_fast(&self.pool(), &self.failures, &self.config);
        if matches!(conn, Err(crate::Error::Connection { .. })) {
            self.ban();
        }
        conn
    }

    /// Asks the host its role and lag; a host that does not answer within `wait` is banned.
    /// A banned host is asked through a connection of its own ([`Host::probe`]).
    pub(crate) fn check(&self, wait: Duration) {
        if self.banned.load(Ordering::Acquire) {
            return self.probe(wait);
        }
        let Some(mut conn) = self.connection(wait) else {
            return;
        };
        match ask(self.backend, &mut conn) {
            Ok((role, lag)) => self.answered(role, lag),
            Err(_) => self.ban(),
        }
    }

    /// Checks a banned host with a newly opened connection, bypassing the pool's reconnect
    /// backoff. It is opened on a thread of its own so that a host that accepts connections
    /// but never answers (frozen) holds up neither the checker nor the other hosts' checks
    /// beyond `wait`; at most one such connection is being opened per host. When it answers,
    /// the host gets a fresh pool before it is readmitted.
    fn probe(&self, wait: Duration) {
        if self.probing.swap(true, Ordering::AcqRel) {
            // The probe of an earlier check is still waiting on the host: not answering.
            self.ban();
            return;
        }
        let (tell, told) = mpsc::channel();
        let (backend, config, probing) = (self.backend, self.config.clone(), self.probing.clone());
        let spawned = std::thread::Builder::new()
            .name("custodian-probe".into())
            .spawn(move || {
                let answer = crate::pool::open_connection(backend, &config)
                    .and_then(|mut c| ask(backend, &mut c).map_err(|e| backend.classify(e)));
                probing.store(false, Ordering::Release);
                let _ = tell.send(answer);
            });
        if spawned.is_err() {
            self.probing.store(false, Ordering::Release);
            self.ban();
            return;
        }
        match told.recv_timeout(wait) {
            Ok(Ok((role, lag))) => {
                let fresh = crate::pool::build_lazy(
                    self.backend,
                    &self.config,
                    self.counters.clone(),
                    self.failures.clone(),
                );
                *self.pool.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                self.banned.store(false, Ordering::Release);
                self.answered(role, lag);
            }
            _ => self.ban(),
        }
    }

    /// Records a check's answer: the host serves in `role`.
    fn answered(&self, role: HostRole, lag: Option<Duration>) {
        *self.health.lock().unwrap_or_else(|e| e.into_inner()) = Health {
            role: Some(role),
            up: true,
            lag,
            checked: Some(Instant::now()),
        }
    }

    /// Takes the host out of service until a check finds it answering.
    pub(crate) fn ban(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.banned.store(true, Ordering::Release);
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
            pool: self.counters.snapshot(self.pool().state()),
        }
    }
}

/// The host's role and replication lag, asked on `conn`.
fn ask(
    backend: &dyn Backend,
    conn: &mut crate::conn::AnyConnection,
) -> diesel::QueryResult<(HostRole, Option<Duration>)> {
    let role = backend.role(conn)?;
    Ok((role, backend.replica_lag(conn)?))
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
