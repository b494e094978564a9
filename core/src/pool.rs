//! The r2d2 connection pool: a connection manager that opens and prepares connections through
//! a [`Backend`], and statistics gathered through r2d2's event hooks.
//!
//! A connection is never handed to the next user if it is broken, was returned inside a
//! transaction (diesel marks those as broken) or failed in a way that leaves it unusable (the
//! session marks those broken), and with `test_on_check_out` every checkout
//! pings the server first, so a connection the server killed is replaced transparently.
//!
//! r2d2 reports a checkout that timed out with, at most, the text of the last failure to open
//! a connection. custodian keeps the failures to open a connection and to check one at
//! checkout typed instead ([`ConnectFailures`], fed by r2d2's error handler), so [`checkout`]
//! tells a pool whose connections are all in use ([`TimeoutKind::Checkout`]) from a server it
//! cannot reach or whose connections fail their check ([`Error::Connection`] naming why).

use crate::backend::Backend;
use crate::config::DatabaseConfig;
use crate::conn::AnyConnection;
use crate::error::{Error, Result, TimeoutKind};
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pool type custodian uses.
pub type Pool = r2d2::Pool<Manager>;

/// A connection checked out of the pool.
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// Opens, checks and prepares connections for r2d2.
#[derive(Debug)]
pub struct Manager {
    backend: &'static dyn Backend,
    config: DatabaseConfig,
}

impl Manager {
    /// A manager for the primary of `config`.
    pub fn new(backend: &'static dyn Backend, config: DatabaseConfig) -> Self {
        Manager { backend, config }
    }
}

/// Error type of the manager: custodian's error (r2d2 needs `std::error::Error`), and what
/// failed.
#[derive(Debug)]
pub enum ManagerError {
    /// Opening or preparing a connection failed.
    Open(Error),
    /// A pooled connection failed its check at checkout (`test_on_check_out`).
    Check(Error),
}

impl ManagerError {
    /// The error, whatever failed.
    pub fn into_error(self) -> Error {
        match self {
            ManagerError::Open(e) | ManagerError::Check(e) => e,
        }
    }
}

impl std::fmt::Display for ManagerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagerError::Open(e) | ManagerError::Check(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ManagerError {}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ManagerError;

    fn connect(&self) -> std::result::Result<AnyConnection, ManagerError> {
        open_connection(self.backend, &self.config).map_err(ManagerError::Open)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> std::result::Result<(), ManagerError> {
        // The test is pool upkeep, not an application statement (see `Probe::upkeep`).
        if let Some(probe) = crate::observe::Probe::of(conn) {
            probe.upkeep(true);
        }
        let tested = self.backend.ping(conn);
        if let Some(probe) = crate::observe::Probe::of(conn) {
            probe.upkeep(false);
        }
        tested.map_err(|e| ManagerError::Check(self.backend.classify(e)))
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        // diesel reports a connection as broken when its transaction manager is broken or a
        // transaction is still open: such a connection must not reach the next borrower. A
        // session marks the transaction manager broken when a statement failed in a way that
        // leaves the connection unusable (see `Backend::discards_connection_after`: a lost
        // connection, a MariaDB read that failed mid-result), so those are dropped here too.
        conn.is_broken()
    }
}

/// Opens and prepares a connection for the primary of `config`, as the pool does.
pub(crate) fn open_connection(
    backend: &'static dyn Backend,
    config: &DatabaseConfig,
) -> Result<AnyConnection> {
    let mut conn = backend.establish(&config.url)?;
    diesel::Connection::set_instrumentation(&mut conn, crate::observe::Probe::new(&config.observe));
    backend
        .prepare(&mut conn, &config.session)
        .map_err(|e| backend.classify(e))?;
    Ok(conn)
}

/// Counters of pool activity, fed by r2d2's event hooks.
#[derive(Debug, Default)]
pub struct PoolCounters {
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    checkouts: AtomicU64,
    timeouts: AtomicU64,
    wait_nanos_total: AtomicU64,
    wait_nanos_max: AtomicU64,
}

/// The last failure to open a connection and the last failed check of one, typed, with when
/// each happened.
#[derive(Debug, Default)]
pub struct ConnectFailures {
    last: Mutex<Failures>,
    /// A failed check is recorded: lets a checkout skip the lock when there is none to clear.
    check_failed: AtomicBool,
}

/// A failure and when it happened.
type Dated = Option<(Instant, Arc<Error>)>;

#[derive(Debug, Default)]
struct Failures {
    /// The last failure to open a connection; a connection opened since clears it.
    open: Dated,
    /// The last failed check at checkout; a checkout since (a connection that passed its check)
    /// clears it. A connection that opens does not: a server may accept connections whose
    /// every check then fails (a Galera node outside the primary component answers 1047), and
    /// the replacement opened after each failed check must not hide why.
    check: Dated,
}

impl ConnectFailures {
    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, error: ManagerError) {
        let mut last = self.failures();
        let at = Instant::now();
        match error {
            ManagerError::Open(e) => last.open = Some((at, Arc::new(e))),
            ManagerError::Check(e) => {
                last.check = Some((at, Arc::new(e)));
                self.check_failed.store(true, Ordering::Release);
            }
        }
    }

    /// A connection opened: opening works again.
    fn opened(&self) {
        self.failures().open = None;
    }

    /// A checkout handed out a connection that passed its check (or needed none).
    fn checked_out(&self) {
        // Every checkout comes here: no lock unless a failed check waits to be cleared.
        if self.check_failed.swap(false, Ordering::AcqRel) {
            self.failures().check = None;
        }
    }

    /// The later of the last failure to open a connection (unless one opened after it) and
    /// the last failed check (unless a checkout succeeded after it), if it happened at or
    /// after `since`.
    pub fn since(&self, since: Instant) -> Option<Arc<Error>> {
        let last = self.failures();
        [&last.open, &last.check]
            .into_iter()
            .flatten()
            .filter(|(at, _)| *at >= since)
            .max_by_key(|(at, _)| *at)
            .map(|(_, error)| error.clone())
    }
}

/// Records r2d2's connection failures (opening or checking) in [`ConnectFailures`], typed.
/// Replaces r2d2's default handler, which logs them.
#[derive(Debug, Clone)]
pub struct FailureHandler(pub Arc<ConnectFailures>);

impl r2d2::HandleError<ManagerError> for FailureHandler {
    fn handle_error(&self, error: ManagerError) {
        self.0.record(error);
    }
}

/// Feeds [`PoolCounters`] from r2d2's events, and clears what [`ConnectFailures`] holds when
/// it no longer holds: a failure to open when a connection opens, a failed check when a
/// checkout succeeds.
#[derive(Debug, Clone)]
pub struct CountingHandler(pub Arc<PoolCounters>, pub Arc<ConnectFailures>);

impl r2d2::HandleEvent for CountingHandler {
    fn handle_acquire(&self, _: r2d2::event::AcquireEvent) {
        self.0.connections_opened.fetch_add(1, Ordering::Relaxed);
        self.1.opened();
    }
    fn handle_release(&self, _: r2d2::event::ReleaseEvent) {
        self.0.connections_closed.fetch_add(1, Ordering::Relaxed);
    }
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        let nanos = u64::try_from(event.duration().as_nanos()).unwrap_or(u64::MAX);
        self.0.checkouts.fetch_add(1, Ordering::Relaxed);
        self.1.checked_out();
        self.0.wait_nanos_total.fetch_add(nanos, Ordering::Relaxed);
        self.0.wait_nanos_max.fetch_max(nanos, Ordering::Relaxed);
        crate::observe::pool_acquire(event.duration());
    }
    fn handle_timeout(&self, _: r2d2::event::TimeoutEvent) {
        self.0.timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of pool state and activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Connections open now (idle and in use).
    pub size: u32,
    /// Idle connections now.
    pub idle: u32,
    /// Connections checked out now.
    pub in_use: u32,
    /// Connections opened since start (by the pool, or by a session replacing a connection a
    /// failure left unusable).
    pub connections_opened: u64,
    /// Connections closed since start (broken, expired or idle too long, or replaced by a
    /// session after a failure left them unusable).
    pub connections_closed: u64,
    /// Successful checkouts since start.
    pub checkouts: u64,
    /// Checkouts that timed out since start.
    pub timeouts: u64,
    /// Total time spent waiting for a checkout.
    pub wait_total: Duration,
    /// Longest single checkout wait.
    pub wait_max: Duration,
}

impl PoolCounters {
    /// A session replaced its connection in place (the old one closed, a new one opened in
    /// the same pool slot): counted as one connection closed and one opened.
    pub(crate) fn replaced_in_place(&self) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Combines the counters with the pool's current state.
    pub fn snapshot(&self, state: r2d2::State) -> PoolStats {
        PoolStats {
            size: state.connections,
            idle: state.idle_connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
            connections_opened: self.connections_opened.load(Ordering::Relaxed),
            connections_closed: self.connections_closed.load(Ordering::Relaxed),
            checkouts: self.checkouts.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            wait_total: Duration::from_nanos(self.wait_nanos_total.load(Ordering::Relaxed)),
            wait_max: Duration::from_nanos(self.wait_nanos_max.load(Ordering::Relaxed)),
        }
    }
}

/// A connection failure as the error of a checkout or pool build that waited for it: an
/// [`Error::Connection`] naming the redacted URL, with the failure as its source.
fn unreachable(config: &DatabaseConfig, waited: &str, failure: Arc<Error>) -> Error {
    let cause = match &*failure {
        Error::Connection { message, .. } => message.clone(),
        other => other.to_string(),
    };
    Error::Connection {
        message: format!("{waited} {}: {cause}", config.url.redacted()),
        source: Some(Box::new(failure)),
    }
}

/// Checks a connection out of `pool`, waiting at most the pool's `connection_timeout_ms`.
///
/// A wait during which opening a connection failed (and none opened since), or checking one
/// failed (and no checkout succeeded since), is [`Error::Connection`] naming the last such
/// failure, with it as its source (the server is unreachable, refuses the credentials, fails
/// every connection's check, ...); a wait without failures is [`Error::Timeout`] of kind
/// [`TimeoutKind::Checkout`]: every connection was in use.
pub fn checkout(
    pool: &Pool,
    failures: &ConnectFailures,
    config: &DatabaseConfig,
) -> Result<PooledConnection> {
    let started = Instant::now();
    let conn = pool.get().map_err(|_| match failures.since(started) {
        Some(failure) => unreachable(config, "no connection to", failure),
        None => checkout_timeout(pool, config),
    })?;
    let state = pool.state();
    crate::observe::pool_connections(state.connections, state.idle_connections);
    Ok(conn)
}

/// [`checkout`] for one host of a cluster: the same errors, but a failure to open a
/// connection ends the wait at once (within [`FAIL_FAST_SLICE`]) instead of after
/// `connection_timeout_ms`, so a lost host is reported while the caller can still go
/// elsewhere or retry.
pub(crate) fn checkout_fail_fast(
    pool: &Pool,
    failures: &ConnectFailures,
    config: &DatabaseConfig,
) -> Result<PooledConnection> {
    let started = Instant::now();
    let limit = config.pool.connection_timeout();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if let Some(conn) = pool.try_get() {
            return Ok(conn);
        }
        if let Some(failure) = failures.since(started) {
            return Err(unreachable(config, "no connection to", failure));
        }
        if left.is_zero() {
            return Err(checkout_timeout(pool, config));
        }
        if let Ok(conn) = pool.get_timeout(left.min(FAIL_FAST_SLICE)) {
            return Ok(conn);
        }
    }
}

/// How long [`checkout_fail_fast`] waits between looks at the host's connection failures.
const FAIL_FAST_SLICE: Duration = Duration::from_millis(20);

/// The error of a checkout that waited its whole limit without a connection failure.
fn checkout_timeout(pool: &Pool, config: &DatabaseConfig) -> Error {
    let state = pool.state();
    let limit = config.pool.connection_timeout();
    Error::timeout(
        TimeoutKind::Checkout,
        format!(
            "no pooled connection free within {} ms ({} of {} in use)",
            limit.as_millis(),
            state.connections.saturating_sub(state.idle_connections),
            state.connections
        ),
        Some(limit),
    )
}

/// The r2d2 builder for `config`'s pool settings, with custodian's event handlers.
fn builder(
    config: &DatabaseConfig,
    counters: Arc<PoolCounters>,
    failures: &Arc<ConnectFailures>,
) -> r2d2::Builder<Manager> {
    let p = &config.pool;
    let memory = config.is_sqlite_memory();
    // An in-memory SQLite database lives and dies with its one connection.
    let max_size = if memory { 1 } else { p.max_size };
    let min_idle = if memory { Some(1) } else { p.min_idle };
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(min_idle)
        .connection_timeout(p.connection_timeout())
        .idle_timeout(if memory {
            None
        } else {
            p.idle_timeout_ms.map(Duration::from_millis)
        })
        .max_lifetime(if memory {
            None
        } else {
            p.max_lifetime_ms.map(Duration::from_millis)
        })
        .test_on_check_out(p.test_on_check_out)
        .error_handler(Box::new(FailureHandler(failures.clone())))
        .event_handler(Box::new(CountingHandler(counters, failures.clone())))
}

/// Builds the pool for the host of `config` without waiting for a connection: one host of a
/// cluster, which may be down now and come back later (r2d2 keeps opening connections).
pub(crate) fn build_lazy(
    backend: &'static dyn Backend,
    config: &DatabaseConfig,
    counters: Arc<PoolCounters>,
    failures: Arc<ConnectFailures>,
) -> Pool {
    builder(config, counters, &failures).build_unchecked(Manager::new(backend, config.clone()))
}

/// Builds the pool for the primary of `config`, opening `min_idle` connections up front so a
/// dead server or bad credentials fail here with a clear error.
pub fn build(
    backend: &'static dyn Backend,
    config: &DatabaseConfig,
    counters: Arc<PoolCounters>,
    failures: Arc<ConnectFailures>,
) -> Result<Pool> {
    let builder = builder(config, counters, &failures);
    let manager = Manager::new(backend, config.clone());
    // Open one connection first so an unreachable server reports its own error, not a timeout.
    let probe = manager.connect().map_err(ManagerError::into_error)?;
    drop(probe);
    let started = Instant::now();
    builder
        .build(manager)
        .map_err(|e| match failures.since(started) {
            Some(failure) => unreachable(config, "could not fill the pool for", failure),
            None => Error::Connection {
                message: format!("could not fill the pool for {}: {e}", config.url.redacted()),
                source: None,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(cause: &str) -> Error {
        Error::Connection {
            message: cause.into(),
            source: None,
        }
    }

    fn cause(failures: &ConnectFailures, since: Instant) -> Option<String> {
        failures.since(since).map(|e| e.to_string())
    }

    /// A server that accepts connections and fails their every check: each failed check is
    /// followed by a replacement that opens, and that opening must not hide the check's cause.
    #[test]
    fn a_connection_that_opens_does_not_hide_a_failed_check() {
        let failures = ConnectFailures::default();
        let started = Instant::now();
        failures.record(ManagerError::Check(failure("1047")));
        failures.opened();
        assert_eq!(
            cause(&failures, started).as_deref(),
            Some("connection error: 1047")
        );
        // A connection that passed its check was handed out: the pool works.
        failures.checked_out();
        assert_eq!(cause(&failures, started), None);
    }

    #[test]
    fn a_failure_to_open_lasts_until_a_connection_opens() {
        let failures = ConnectFailures::default();
        let started = Instant::now();
        failures.record(ManagerError::Open(failure("refused")));
        failures.checked_out();
        assert_eq!(
            cause(&failures, started).as_deref(),
            Some("connection error: refused")
        );
        failures.opened();
        assert_eq!(cause(&failures, started), None);
    }

    #[test]
    fn the_later_failure_is_named_and_only_since_the_wait_began() {
        let failures = ConnectFailures::default();
        failures.record(ManagerError::Open(failure("refused")));
        std::thread::sleep(Duration::from_millis(2));
        let started = Instant::now();
        assert_eq!(cause(&failures, started), None, "failed before the wait");
        failures.record(ManagerError::Check(failure("1047")));
        assert_eq!(
            cause(&failures, started).as_deref(),
            Some("connection error: 1047")
        );
        std::thread::sleep(Duration::from_millis(2));
        failures.record(ManagerError::Open(failure("refused again")));
        assert_eq!(
            cause(&failures, started).as_deref(),
            Some("connection error: refused again")
        );
    }
}
