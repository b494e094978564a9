//! Clusters: one database on several hosts, a primary and read replicas, whose roles are
//! discovered (each host is asked: [`Backend::role`]), with a pool per host.
//!
//! Writes and transactions not declared read-only run on the primary. Reader sessions
//! ([`Db::reader`](crate::Db::reader)) and read-only transactions run on a replica the
//! [`Balancer`] picks among the eligible ones: answering, within the lag bound at read time
//! (the lag the last check measured plus the time since it), and, when the handle committed a write (read-your-writes), having replayed that
//! commit's position ([`Backend::has_replayed`], asked live). With no eligible replica they run
//! on the primary. A background thread, owned by the `Db` and stopped when it is dropped,
//! checks every host each interval; a host that fails a check or a connection is banned until
//! a check finds it answering again. When the primary stops answering as one and another host
//! does (a promoted replica), that host becomes the primary; until then write sessions fail at
//! once with [`Error::Connection`].
//!
//! Galera ([`Galera`]): several hosts answer as primary. In multi-writer mode each write
//! session takes the next answering primary in turn (one whose connection fails is banned and
//! the next one tried); in single-writer mode the first answering primary in configuration
//! order takes the writes and the others serve reads like replicas. Which nodes answer (synced
//! only) is the backend's business ([`Backend::role`]).

mod balance;
mod host;

pub use balance::{Balancer, Candidate, LeastInFlight, RoundRobin};
pub use host::HostStatus;
pub(crate) use host::Lease;

use crate::backend::{Backend, HostRole};
use crate::config::{Balance, DatabaseConfig, Galera};
use crate::error::{Error, Result};
use crate::pool::PooledConnection;
use host::Host;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};

/// Where a handle's reads must have caught up to: nothing, the position of its last commit,
/// or unknown (reading the position failed: reads go to the primary until a commit succeeds
/// in telling it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Position {
    #[default]
    None,
    At(String),
    Unknown,
}

/// The commit position of one handle and its clones, for read-your-writes.
#[derive(Debug, Default)]
pub(crate) struct Causal(Mutex<Position>);

impl Causal {
    /// A position to start from (imported from another handle).
    pub(crate) fn at(position: Option<&str>) -> Causal {
        Causal(Mutex::new(match position {
            Some(p) if !p.is_empty() => Position::At(p.to_string()),
            _ => Position::None,
        }))
    }

    pub(crate) fn get(&self) -> Position {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a commit: the later of the known position and `position` (`None`: unknown).
    pub(crate) fn advance(&self, backend: &dyn Backend, position: Option<String>) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *known = match (&*known, position) {
            (_, None) => Position::Unknown,
            (Position::At(old), Some(new)) => match backend.later_position(old, &new) {
                Some(later) => Position::At(later),
                None => Position::Unknown,
            },
            (_, Some(new)) => Position::At(new),
        };
    }
}

/// The hosts of one database and what routes reads among them.
pub(crate) struct Cluster {
    inner: Arc<Inner>,
    /// Dropping it (with the `Db`) stops the checker thread.
    _stop: Mutex<mpsc::Sender<()>>,
}

struct Inner {
    backend: &'static dyn Backend,
    hosts: Vec<Arc<Host>>,
    /// The host that answered as primary last (changes on failover).
    primary: AtomicUsize,
    balancer: Mutex<Arc<dyn Balancer>>,
    bound: Option<std::time::Duration>,
    wait: std::time::Duration,
    galera: Option<Galera>,
    /// Multi-writer turn: which answering primary the next write session takes.
    turn: AtomicUsize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("hosts", &self.status())
            .finish()
    }
}

impl Cluster {
    /// Opens a pool per host of `config`, asks each its role and starts the checker; `None`
    /// for a database with one host (nothing is asked then). Exactly one host must answer as
    /// primary: none is [`Error::Connection`], several is [`Error::Config`].
    pub(crate) fn open(
        backend: &'static dyn Backend,
        config: &DatabaseConfig,
    ) -> Result<Option<Cluster>> {
        let urls = config.hosts();
        if urls.len() < 2 {
            return Ok(None);
        }
        let settings = &config.cluster;
        let hosts: Vec<Arc<Host>> = urls
            .into_iter()
            .enumerate()
            .map(|(i, url)| {
                let mut host = config.clone();
                host.url = url;
                host.replicas.clear();
                let weight = settings.weights.get(i).copied().unwrap_or(1);
                Arc::new(Host::new(backend, host, weight))
            })
            .collect();
        std::thread::scope(|s| {
            for h in &hosts {
                s.spawn(|| h.check(settings.check_timeout()));
            }
        });
        let primaries: Vec<usize> = (0..hosts.len())
            .filter(|&i| hosts[i].is(HostRole::Primary))
            .collect();
        let names = |which: &[usize]| {
            which
                .iter()
                .map(|&i| hosts[i].config.url.redacted())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let primary = match primaries[..] {
            [one] => one,
            [first, ..] if settings.galera.is_some() => first,
            [] => {
                return Err(Error::Connection {
                    message: format!(
                        "no host of {} answered as primary",
                        names(&(0..hosts.len()).collect::<Vec<_>>())
                    ),
                    source: None,
                })
            }
            _ => {
                return Err(Error::config(
                    "url",
                    format!(
                        "several hosts answer as primary: {} (a Galera cluster? set cluster.galera = \"multi\" or \"single\")",
                        names(&primaries)
                    ),
                ))
            }
        };
        let balancer: Arc<dyn Balancer> = match settings.balance {
            Balance::RoundRobin => Arc::new(RoundRobin::default()),
            Balance::LeastInFlight => Arc::new(LeastInFlight),
        };
        let inner = Arc::new(Inner {
            backend,
            hosts,
            primary: AtomicUsize::new(primary),
            balancer: Mutex::new(balancer),
            bound: settings.max_replica_lag(),
            wait: settings.check_timeout(),
            galera: settings.galera,
            turn: AtomicUsize::new(0),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let weak = Arc::downgrade(&inner);
        let every = settings.check_interval();
        std::thread::Builder::new()
            .name("custodian-cluster-check".into())
            .spawn(move || checker(weak, stopped, every))
            .map_err(|e| Error::Connection {
                message: format!("could not start the cluster health checker: {e}"),
                source: None,
            })?;
        Ok(Some(Cluster {
            inner,
            _stop: Mutex::new(stop),
        }))
    }

    /// The primary's pool, counters and configuration (its own URL): the host that answered
    /// as primary last.
    pub(crate) fn primary(&self) -> &Host {
        &self.inner.hosts[self.inner.primary.load(Ordering::Acquire)]
    }

    /// A connection to the primary. While the primary is banned (lost, and no other host
    /// answers as primary yet) this fails at once with [`Error::Connection`], which the
    /// transaction retry policy retries: a failover is a wait for the next check.
    pub(crate) fn primary_connection(&self) -> Result<PooledConnection> {
        if self.multi_writer() {
            return self.any_primary_connection();
        }
        let host = self.primary();
        if !host.is(HostRole::Primary) {
            return Err(Error::Connection {
                message: format!(
                    "the primary {} is not answering as primary; waiting for a host that does",
                    host.config.url.redacted()
                ),
                source: None,
            });
        }
        host.checkout()
    }

    /// Multi-writer mode: a connection to the next answering primary in turn; a host whose
    /// connection fails is banned and the next one tried. None answering is
    /// [`Error::Connection`] (retryable: the checker readmits nodes as they sync).
    fn any_primary_connection(&self) -> Result<PooledConnection> {
        let hosts = &self.inner.hosts;
        let start = self.inner.turn.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..hosts.len() {
            let host = &hosts[(start + i) % hosts.len()];
            if !host.is(HostRole::Primary) {
                continue;
            }
            match host.checkout() {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Connection {
            message: "no node of the Galera cluster answers as a synced primary".into(),
            source: None,
        }))
    }

    /// Whether write sessions are spread over several primaries (Galera multi-writer mode).
    pub(crate) fn multi_writer(&self) -> bool {
        self.inner.galera == Some(Galera::Multi)
    }

    /// Replaces the balancer.
    pub(crate) fn set_balancer(&self, balancer: Arc<dyn Balancer>) {
        *self
            .inner
            .balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = balancer;
    }

    /// Every host's state, in configuration order.
    pub(crate) fn status(&self) -> Vec<HostStatus> {
        self.inner.hosts.iter().map(|h| h.status()).collect()
    }

    /// A connection to an eligible replica that has replayed `position`, other than the one
    /// `avoid` is on, with its lease; `None` when no replica qualifies (read on the primary).
    /// Each candidate is tried once, in the balancer's order; one whose connection fails is
    /// banned.
    pub(crate) fn replica(
        &self,
        position: &Position,
        avoid: Option<&Lease>,
    ) -> Option<(PooledConnection, Lease)> {
        let inner = &self.inner;
        if *position == Position::Unknown {
            return None;
        }
        let current = inner.primary.load(Ordering::Acquire);
        // Single-writer Galera: the synced nodes that do not take the writes serve reads.
        let reader = |i: usize, h: &Arc<Host>| {
            h.serves_reads(inner.bound)
                || (inner.galera == Some(Galera::Single) && i != current && h.is(HostRole::Primary))
        };
        let mut left: Vec<&Arc<Host>> = inner
            .hosts
            .iter()
            .enumerate()
            .filter(|(i, h)| reader(*i, h) && avoid.is_none_or(|l| !l.on(h)))
            .map(|(_, h)| h)
            .collect();
        let balancer = inner
            .balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        while !left.is_empty() {
            let candidates: Vec<Candidate> = left
                .iter()
                .enumerate()
                .map(|(i, h)| Candidate {
                    host: i,
                    in_flight: h.in_flight(),
                    weight: h.weight,
                })
                .collect();
            let host = left.remove(balancer.pick(&candidates).min(left.len() - 1));
            let Some(mut conn) = host.connection(inner.wait) else {
                continue;
            };
            let caught_up = match position {
                Position::At(p) => inner.backend.has_replayed(&mut conn, p),
                _ => Ok(true),
            };
            match caught_up {
                Ok(true) => return Some((conn, Lease::new(host.clone()))),
                Ok(false) => {}
                Err(_) => host.ban(),
            }
        }
        None
    }
}

impl Inner {
    /// After a check: when the primary no longer answers as one and exactly one other host
    /// does (a promoted replica), that host becomes the primary. On Galera the first answering
    /// primary in configuration order takes over.
    fn follow_primary(&self) {
        let current = self.primary.load(Ordering::Acquire);
        if self.hosts[current].is(HostRole::Primary) {
            return;
        }
        let mut primaries = (0..self.hosts.len()).filter(|&i| self.hosts[i].is(HostRole::Primary));
        if self.galera.is_some() {
            if let Some(next) = primaries.next() {
                self.primary.store(next, Ordering::Release);
            }
            return;
        }
        if let (Some(next), None) = (primaries.next(), primaries.next()) {
            self.primary.store(next, Ordering::Release);
        }
    }
}

/// Checks every host each `every` until the cluster is dropped.
fn checker(cluster: Weak<Inner>, stop: mpsc::Receiver<()>, every: std::time::Duration) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(inner) = cluster.upgrade() else {
            return;
        };
        for host in &inner.hosts {
            host.check(inner.wait);
        }
        inner.follow_primary();
    }
}
