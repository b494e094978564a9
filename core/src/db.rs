//! [`Db`]: the one handle applications hold. It owns the configuration, the backend and the
//! connection pool, and hands out [`Session`]s.

use crate::access::AccessControl;
use crate::audit;
use crate::backend::Backend;
use crate::cluster::{Balancer, Causal, Cluster, HostStatus};
use crate::config::DatabaseConfig;
use crate::entity::{Entity, EntityMeta};
use crate::error::{BackendKind, Error, Result};
use crate::migrate;
use crate::pool::{self, ConnectFailures, PoolCounters, PoolStats};
use crate::principal::Principal;
use crate::schema;
use crate::session::{Session, Shared};
use crate::tx::TxOptions;
use std::path::Path;
use std::sync::Arc;

mod schema_checks;

/// A pooled handle to one database. Cheap to clone; share it between threads.
///
/// Every topic of the `custodian` crate's `guide` opens one in a runnable example.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Shared>,
    principal: Option<Arc<Principal>>,
    access: Option<Arc<AccessControl>>,
    /// The commit position this handle and its clones read their own writes from (clusters).
    causal: Arc<Causal>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.inner.backend.kind())
            .field("url", &self.inner.config.url)
            .finish()
    }
}

impl Db {
    /// Opens the database described by `config`, choosing among `backends` by URL scheme, and
    /// fills the pool. An unknown scheme is [`Error::Config`]; an unreachable server or bad
    /// credentials are [`Error::Connection`].
    ///
    /// Applications call `custodian::connect` or `custodian::open`, which pass every backend and
    /// first apply the environment's `CUSTODIAN_*` settings; this function reads no environment.
    pub fn open(config: DatabaseConfig, backends: &[&'static dyn Backend]) -> Result<Db> {
        config.validate("url")?;
        let scheme = config.url.scheme();
        let backend = backends
            .iter()
            .copied()
            .find(|b| b.schemes().contains(&scheme))
            .ok_or_else(|| {
                let built: Vec<String> = backends.iter().map(|b| b.kind().to_string()).collect();
                Error::config(
                    "url",
                    format!(
                        "no backend for scheme `{scheme}` in {}: this build has {}; each of \
                         custodian's cargo features `postgres`, `mysql` and `sqlite` adds one",
                        config.url.redacted(),
                        if built.is_empty() {
                            "none".to_string()
                        } else {
                            built.join(", ")
                        },
                    ),
                )
            })?;
        let cluster = Cluster::open(backend, &config)?;
        let (pool, counters, failures) = match &cluster {
            // The primary's pool of a cluster serves every session that is not a reader's.
            Some(c) => {
                let p = c.primary();
                (p.pool(), p.counters.clone(), p.failures.clone())
            }
            None => {
                let counters = Arc::new(PoolCounters::default());
                let failures = Arc::new(ConnectFailures::default());
                let pool = pool::build(backend, &config, counters.clone(), failures.clone())?;
                (pool, counters, failures)
            }
        };
        let cache = crate::cache::Caches::open(&config.cache)?;
        Ok(Db {
            principal: None,
            access: None,
            causal: Arc::default(),
            inner: Arc::new(Shared {
                cache,
                cluster,
                audit_key: config.audit.key()?,
                crypto: crate::crypto::Crypto::from_config(&config)?,
                backend,
                config,
                pool,
                counters,
                failures,
                consecutive_ids: std::sync::OnceLock::new(),
                returns_rows: std::sync::OnceLock::new(),
                denials: Default::default(),
                statement_bytes: std::sync::OnceLock::new(),
                entities: std::sync::Mutex::new(Vec::new()),
                slow_scans: Default::default(),
            }),
        })
    }

    /// Checks a connection out of the pool. Waits at most the pool's `connection_timeout_ms`:
    /// then [`Error::Timeout`] of kind [`TimeoutKind::Checkout`](crate::TimeoutKind::Checkout)
    /// when every connection stayed in use, or [`Error::Connection`] when opening a connection
    /// failed meanwhile (server unreachable, credentials refused), with that failure as source.
    pub fn session(&self) -> Result<Session> {
        // One expression, so that the session is built where it is returned (a session is
        // large: each move of it was a copy worth about 2% of a read by key on SQLite).
        Ok(Session::new(
            self.inner.primary_connection()?,
            self.inner.clone(),
            self.principal.clone(),
            self.access.clone(),
        )
        .routed(
            None,
            self.inner.cluster.as_ref().map(|_| self.causal.clone()),
        ))
    }

    /// A session for reads that may run on a replica (see [`crate::cluster`]): one that is
    /// answering, within `max_replica_lag` and, once this handle (or a clone) committed a
    /// write, has replayed that commit; else the primary. The balancer picks among eligible
    /// replicas. Its writes and transactions not declared read-only move it to the primary
    /// before they begin; `FOR UPDATE` reads happen only inside those. With one host this is
    /// [`Db::session`].
    pub fn reader(&self) -> Result<Session> {
        let Some(cluster) = &self.inner.cluster else {
            return self.session();
        };
        match cluster.replica(&self.causal.get(), None) {
            Some((conn, lease)) => Ok(Session::new(
                conn,
                self.inner.clone(),
                self.principal.clone(),
                self.access.clone(),
            )
            .routed(Some(lease), Some(self.causal.clone()))),
            None => self.session(),
        }
    }

    /// The replication position of this handle's last committed write, as a token to pass
    /// to [`Db::with_position`] in another handle or process (e.g. in a web session), so its
    /// reads see that write. `None` before any write, with one host, or when the position could
    /// not be read (this handle then reads from the primary).
    pub fn position(&self) -> Option<String> {
        match self.causal.get() {
            crate::cluster::Position::At(p) => Some(p),
            _ => None,
        }
    }

    /// A handle sharing the pools, with its own read-your-writes position starting at
    /// `token` (from [`Db::position`]; `None`: from nothing). Its reads wait for replicas that
    /// replayed it; its commits advance it, not this handle's.
    pub fn with_position(&self, token: Option<&str>) -> Db {
        Db {
            inner: self.inner.clone(),
            principal: self.principal.clone(),
            access: self.access.clone(),
            causal: Arc::new(Causal::at(token)),
        }
    }

    /// Every host of a cluster: role, whether it serves, lag, sessions in flight, errors (in
    /// configuration order). Empty for a database with one host.
    pub fn cluster_status(&self) -> Vec<HostStatus> {
        self.inner
            .cluster
            .as_ref()
            .map(Cluster::status)
            .unwrap_or_default()
    }

    /// Spreads this database's reads over replicas with `balancer` instead of the configured
    /// one (for every handle sharing the pools). No effect with one host.
    pub fn with_balancer(&self, balancer: Arc<dyn Balancer>) -> &Db {
        if let Some(c) = &self.inner.cluster {
            c.set_balancer(balancer);
        }
        self
    }

    /// A handle whose sessions act as `principal` (recorded in the audit trail, checked by
    /// access policies). Cheap: it shares the pool.
    pub fn acting_as(&self, principal: Principal) -> Db {
        Db {
            inner: self.inner.clone(),
            principal: Some(Arc::new(principal)),
            access: self.access.clone(),
            causal: self.causal.clone(),
        }
    }

    /// A handle whose sessions enforce `access` on every read and write of the entities it
    /// governs (see [`access`](crate::access)). Keeps the principal.
    pub fn with_access(&self, access: AccessControl) -> Db {
        Db {
            inner: self.inner.clone(),
            principal: self.principal.clone(),
            access: Some(Arc::new(access)),
            causal: self.causal.clone(),
        }
    }

    /// The principal this handle's sessions act as, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// Runs `f` in a transaction on a fresh session: commit on `Ok`, rollback on `Err` or panic,
    /// retried on serialization failures and on a connection lost before `COMMIT`, under the
    /// configured [`RetryPolicy`](crate::RetryPolicy); a connection lost during `COMMIT` is
    /// [`Error::CommitUnknown`](crate::Error::CommitUnknown). In a cluster whose primary is
    /// lost, it waits under the same policy for a host to answer as primary. See
    /// [`Session::transaction_with`].
    pub fn transaction<T>(&self, f: impl FnMut(&mut Session) -> Result<T>) -> Result<T> {
        self.transaction_with(&TxOptions::default(), f)
    }

    /// [`Db::transaction`] with explicit [`TxOptions`]. In a cluster a read-only transaction
    /// runs on a replica as a [`Db::reader`] session's would (unless
    /// [`TxOptions::on_primary`]).
    pub fn transaction_with<T>(
        &self,
        options: &TxOptions,
        f: impl FnMut(&mut Session) -> Result<T>,
    ) -> Result<T> {
        if options.read_only && !options.primary && self.inner.cluster.is_some() {
            return self.reader()?.transaction_with(options, f);
        }
        if self.inner.cluster.is_none() {
            return self.session()?.transaction_with(options, f);
        }
        // A cluster whose primary is lost: the session itself waits, under the retry policy,
        // for a host to answer as primary.
        let policy = options
            .retry
            .clone()
            .unwrap_or_else(|| self.inner.config.retry.clone());
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            match self.session() {
                Ok(mut s) => return s.transaction_with(options, f),
                Err(e @ Error::Connection { .. }) => {
                    let backoff = policy.delay(attempt);
                    if !policy.allows_retry(attempt, started.elapsed(), backoff) {
                        return Err(e);
                    }
                    std::thread::sleep(backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Which database this handle talks to.
    pub fn backend_kind(&self) -> BackendKind {
        self.inner.backend.kind()
    }

    /// The backend (dialect) in use.
    pub fn backend(&self) -> &'static dyn Backend {
        self.inner.backend
    }

    /// The configuration this handle was opened with.
    pub fn config(&self) -> &DatabaseConfig {
        &self.inner.config
    }

    /// Pool size, idle and busy connections, and activity counters. In a cluster these are
    /// the pool of the host that is primary now (it serves every session that is not a
    /// reader's); each host's own pool is in [`Db::cluster_status`].
    pub fn pool_stats(&self) -> PoolStats {
        match &self.inner.cluster {
            Some(cluster) => {
                let primary = cluster.primary();
                primary.counters.snapshot(primary.pool().state())
            }
            None => self.inner.counters.snapshot(self.inner.pool.state()),
        }
    }

    /// Creates the table of entity `E` with its constraints and indexes (fails if it exists).
    pub fn create_table<E: Entity>(&self) -> Result<()> {
        self.create_tables(&[E::META])
    }

    /// Drops the table of entity `E` if it exists.
    pub fn drop_table<E: Entity>(&self) -> Result<()> {
        let sql = self.inner.backend.drop_table_sql(&E::META);
        self.session()?.execute_sql(&sql).map(|_| ())
    }

    /// Creates the tables of `entities` with their constraints and indexes, parents before the
    /// tables referencing them (see [`schema::dependency_order`]), and custodian's audit tables
    /// if they do not exist yet (entities are audited by default). An entity's schema is created
    /// first if it is missing (PostgreSQL schema, MariaDB database); on SQLite a schema names an
    /// attached database, which must be attached already. A table that exists is an error
    /// (use migrations for a database that outlives the process). A foreign-key cycle is
    /// [`Error::Config`] naming the tables; nothing is created then. On PostgreSQL and SQLite
    /// all tables are created in one transaction (all or none); MariaDB commits each statement.
    pub fn create_tables(&self, entities: &[EntityMeta]) -> Result<()> {
        self.inner.know(entities);
        self.install_audit()?;
        if self.inner.crypto.is_some() {
            self.install_crypto()?; // crypto
        }
        if self.inner.config.commit_outcome.record {
            self.install_tx_outcomes()?;
        }
        let backend = self.inner.backend;
        let statements: Vec<String> = schema::dependency_order(entities)?
            .iter()
            .flat_map(|meta| backend.create_table_sql(meta))
            .collect();
        self.execute_ddl(&statements)
    }

    /// Drops the tables of `entities` that exist, children before their parents (in one
    /// transaction on PostgreSQL and SQLite).
    pub fn drop_tables(&self, entities: &[EntityMeta]) -> Result<()> {
        let backend = self.inner.backend;
        let statements: Vec<String> = schema::dependency_order(entities)?
            .iter()
            .rev()
            .map(|meta| backend.drop_table_sql(meta))
            .collect();
        self.execute_ddl(&statements)
    }

    /// Creates the audit tables (records, chain, head, gaps) if they do not exist yet, noting
    /// whether the trail is sealed with the configured audit key (by its check value).
    pub fn install_audit(&self) -> Result<()> {
        let mut s = self.session()?;
        let key = self.inner.audit_key.as_ref();
        if self.inner.backend.transactional_ddl() {
            s.transaction_with(&TxOptions::new().no_retry().record_outcome(false), |tx| {
                audit::chain::install(tx, key)
            })
        } else {
            audit::chain::install(&mut s, key)
        }
    }

    /// Creates the transaction-outcome table (`custodian_tx_outcome`) if it does not exist
    /// yet. Needed by transactions that record their outcome (see
    /// [`CommitOutcomeConfig`](crate::CommitOutcomeConfig)); [`Db::create_tables`] and
    /// [`Db::run_migrations`] call it when `commit_outcome.record` is on.
    pub fn install_tx_outcomes(&self) -> Result<()> {
        let mut s = self.session()?;
        let backend = self.inner.backend;
        let meta = crate::outcome::TABLE;
        if s.run(|c| backend.live_columns(c, &meta))?.is_none() {
            for sql in backend.create_table_sql(&meta) {
                s.execute_sql(&sql)?;
            }
        }
        Ok(())
    }

    /// Deletes transaction-outcome rows older than `commit_outcome.retention_secs`; returns
    /// how many. Commits also prune now and then, so calling this is optional.
    pub fn prune_tx_outcomes(&self) -> Result<usize> {
        self.session()?.prune_outcomes()
    }

    // --- crypto ---

    /// The field-encryption handle (see [`crate::crypto`]); [`Error::Config`] when no master
    /// key is configured (`[databases.NAME.crypto]` or `CUSTODIAN_CRYPTO_KEYS`).
    pub fn crypto(&self) -> Result<crate::crypto::Crypto> {
        self.inner
            .crypto
            .clone()
            .ok_or_else(crate::crypto::not_configured)
    }

    /// Creates the table of subject data keys (`custodian_subject_keys`) if it does not exist
    /// yet. [`Db::create_tables`] and [`Db::run_migrations`] call it when crypto is configured.
    pub fn install_crypto(&self) -> Result<()> {
        let mut s = self.session()?;
        if self.inner.backend.transactional_ddl() {
            s.transaction_with(
                &TxOptions::new().no_retry().record_outcome(false),
                crate::crypto::install,
            )
        } else {
            crate::crypto::install(&mut s)
        }
    }

    // --- end crypto ---

    /// Seals every committed audit record not yet in the chain (see [`audit::seal::seal`]).
    /// Run it from a background thread or a scheduler. With a signing key and a witness
    /// configured, it then signs a checkpoint into the witness when the chain has grown by
    /// `checkpoint_every_links` or `checkpoint_every_secs` have passed since the last one.
    pub fn seal_audit(&self) -> Result<audit::SealReport> {
        self.seal_audit_with_progress(None)
    }

    /// [`Db::seal_audit`], reporting its progress to `progress` after each batch (see
    /// [`audit::chain::seal_with_progress`] for the phases).
    pub fn seal_audit_with_progress(
        &self,
        progress: Option<crate::observe::ProgressFn<'_>>,
    ) -> Result<audit::SealReport> {
        let report = audit::chain::seal_with_progress(
            &mut self.session()?,
            self.inner.audit_key.as_ref(),
            progress,
        )?;
        let cfg = &self.inner.config.audit;
        if let (Some(signer), Some(witness)) = (cfg.signing_key()?, cfg.witness()) {
            let latest = match witness.latest()? {
                Some(audit::WitnessEntry::Checkpoint(cp)) => Some(cp),
                _ => None,
            };
            let due = match &latest {
                None => report.head_seq > 0,
                Some(cp) => {
                    let grown = report.head_seq.saturating_sub(cp.seq);
                    let age = chrono::DateTime::parse_from_rfc3339(&cp.at)
                        .map(|at| chrono::Utc::now().signed_duration_since(at))
                        .ok()
                        .and_then(|d| d.to_std().ok());
                    grown > 0
                        && (u64::try_from(grown).unwrap_or(u64::MAX) >= cfg.checkpoint_every_links
                            || age.is_none_or(|a| a.as_secs() >= cfg.checkpoint_every_secs))
                }
            };
            if due {
                witness.append(&self.sign_head(&signer)?)?;
            }
        }
        Ok(report)
    }

    /// Verifies the whole audit trail with the configured key, against `checkpoint` when given
    /// or else the configured witness's latest checkpoint, trusting the configured public keys
    /// (see [`Db::verify_audit_with`]). Reads only.
    pub fn verify_audit(
        &self,
        checkpoint: Option<&audit::Checkpoint>,
    ) -> Result<audit::VerifyReport> {
        let cfg = &self.inner.config.audit;
        let mut options = audit::VerifyOptions::new()
            .trust_all(cfg.trusted_keys()?)
            .max_unsealed_age(cfg.max_unsealed_age());
        if let Some(cp) = checkpoint {
            options = options.checkpoint(cp.clone());
        }
        if let Some(w) = cfg.witness() {
            options = options.witness(w);
        }
        self.verify_audit_with(&options)
    }

    /// Verifies the whole audit trail with the configured key and the given options (see
    /// [`audit::verify::verify`]): damage is reported in the [`audit::VerifyReport`]; an error
    /// means verification could not be done (wrong or missing key, untrusted checkpoint, no
    /// connection). Reads only.
    pub fn verify_audit_with(
        &self,
        options: &audit::VerifyOptions<'_>,
    ) -> Result<audit::VerifyReport> {
        let report =
            audit::chain::verify(&mut self.session()?, self.inner.audit_key.as_ref(), options)?;
        crate::observe::integrity_findings(usize::from(report.damage.is_some()));
        Ok(report)
    }

    /// Seals pending records, then signs the chain head with `key`: export the checkpoint
    /// (`to_json`) and keep it outside the database.
    pub fn checkpoint(&self, key: &ed25519_dalek::SigningKey) -> Result<audit::Checkpoint> {
        audit::chain::seal(&mut self.session()?, self.inner.audit_key.as_ref())?;
        self.sign_head(key)
    }

    /// Signs the last link stored (not the head row, which a signer must not take on trust).
    fn sign_head(&self, key: &ed25519_dalek::SigningKey) -> Result<audit::Checkpoint> {
        let (seq, hash) = audit::seal::last_link(&mut self.session()?)?;
        Ok(audit::Checkpoint::sign(seq, &hash, key))
    }

    /// Runs DDL statements in order, in one transaction where DDL is transactional.
    fn execute_ddl(&self, statements: &[String]) -> Result<()> {
        let run = |s: &mut Session| {
            statements
                .iter()
                .try_for_each(|sql| s.execute_sql(sql).map(|_| ()))
        };
        let mut s = self.session()?;
        if self.inner.backend.transactional_ddl() {
            s.transaction_with(&TxOptions::new().no_retry().record_outcome(false), run)
        } else {
            run(&mut s)
        }
    }

    /// Applies the pending migrations for this database's backend from `dir/<backend>/`
    /// (see [`migrate`]), oldest first, and returns their names. Fails with
    /// [`Error::Integrity`] before running anything if an applied migration's `up.sql` was
    /// edited; a missing directory or malformed migration is [`Error::Config`] with its path.
    /// Afterwards custodian's audit tables are created if missing (see [`Db::install_audit`]).
    pub fn run_migrations(&self, dir: impl AsRef<Path>) -> Result<Vec<String>> {
        self.run_migrations_with_progress(dir, None)
    }

    /// [`Db::run_migrations`], reporting progress (phase `"migrate"`, one unit per migration)
    /// to `progress` after each migration is applied.
    pub fn run_migrations_with_progress(
        &self,
        dir: impl AsRef<Path>,
        progress: Option<crate::observe::ProgressFn<'_>>,
    ) -> Result<Vec<String>> {
        let applied = migrate::run_with_progress(&mut self.session()?, dir.as_ref(), progress)?;
        // custodian's own tables are managed by custodian, like diesel's migration table.
        self.install_audit()?;
        if self.inner.crypto.is_some() {
            self.install_crypto()?; // crypto
        }
        if self.inner.config.commit_outcome.record {
            self.install_tx_outcomes()?;
        }
        Ok(applied)
    }

    /// The names of the migrations [`Db::run_migrations`] would apply.
    pub fn pending_migrations(&self, dir: impl AsRef<Path>) -> Result<Vec<String>> {
        migrate::pending(&mut self.session()?, dir.as_ref())
    }
}
