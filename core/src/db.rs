//! [`Db`]: the one handle applications hold. It owns the configuration, the backend and the
//! connection pool, and hands out [`Session`]s.

use crate::access::AccessControl;
use crate::audit;
use crate::backend::Backend;
use crate::config::DatabaseConfig;
use crate::entity::{Entity, EntityMeta};
use crate::error::{BackendKind, Error, Result};
use crate::migrate;
use crate::pool::{self, ConnectFailures, PoolCounters, PoolStats};
use crate::principal::Principal;
use crate::schema::{self, Drift, SchemaReport};
use crate::session::{Session, Shared};
use crate::tx::TxOptions;
use std::path::Path;
use std::sync::Arc;

/// A pooled handle to one database. Cheap to clone; share it between threads.
///
/// Every topic of the `custodian` crate's `guide` opens one in a runnable example.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Shared>,
    principal: Option<Arc<Principal>>,
    access: Option<Arc<AccessControl>>,
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
        let counters = Arc::new(PoolCounters::default());
        let failures = Arc::new(ConnectFailures::default());
        let pool = pool::build(backend, &config, counters.clone(), failures.clone())?;
        Ok(Db {
            principal: None,
            access: None,
            inner: Arc::new(Shared {
                audit_key: config.audit.key()?,
                crypto: crate::crypto::Crypto::from_config(&config)?,
                backend,
                config,
                pool,
                counters,
                failures,
                consecutive_ids: std::sync::OnceLock::new(),
                denials: Default::default(),
                statement_bytes: std::sync::OnceLock::new(),
                entities: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// Checks a connection out of the pool. Waits at most the pool's `connection_timeout_ms`:
    /// then [`Error::Timeout`] of kind [`TimeoutKind::Checkout`](crate::TimeoutKind::Checkout)
    /// when every connection stayed in use, or [`Error::Connection`] when opening a connection
    /// failed meanwhile (server unreachable, credentials refused), with that failure as source.
    pub fn session(&self) -> Result<Session> {
        let conn = pool::checkout(&self.inner.pool, &self.inner.failures, &self.inner.config)?;
        Ok(Session::new(
            conn,
            self.inner.clone(),
            self.principal.clone(),
            self.access.clone(),
        ))
    }

    /// A handle whose sessions act as `principal` (recorded in the audit trail, checked by
    /// access policies). Cheap: it shares the pool.
    pub fn acting_as(&self, principal: Principal) -> Db {
        Db {
            inner: self.inner.clone(),
            principal: Some(Arc::new(principal)),
            access: self.access.clone(),
        }
    }

    /// A handle whose sessions enforce `access` on every read and write of the entities it
    /// governs (see [`access`](crate::access)). Keeps the principal.
    pub fn with_access(&self, access: AccessControl) -> Db {
        Db {
            inner: self.inner.clone(),
            principal: self.principal.clone(),
            access: Some(Arc::new(access)),
        }
    }

    /// The principal this handle's sessions act as, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// Runs `f` in a transaction on a fresh session: commit on `Ok`, rollback on `Err` or panic,
    /// retried on serialization failures and on a connection lost before `COMMIT`, under the
    /// configured [`RetryPolicy`](crate::RetryPolicy); a connection lost during `COMMIT` is
    /// [`Error::CommitUnknown`](crate::Error::CommitUnknown). See
    /// [`Session::transaction_with`].
    pub fn transaction<T>(&self, f: impl FnMut(&mut Session) -> Result<T>) -> Result<T> {
        self.session()?.transaction(f)
    }

    /// [`Db::transaction`] with explicit [`TxOptions`].
    pub fn transaction_with<T>(
        &self,
        options: &TxOptions,
        f: impl FnMut(&mut Session) -> Result<T>,
    ) -> Result<T> {
        self.session()?.transaction_with(options, f)
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

    /// Pool size, idle and busy connections, and activity counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.counters.snapshot(self.inner.pool.state())
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
            s.transaction_with(&TxOptions::new().no_retry(), |tx| {
                audit::chain::install(tx, key)
            })
        } else {
            audit::chain::install(&mut s, key)
        }
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
            s.transaction_with(&TxOptions::new().no_retry(), crate::crypto::install)
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
        let report = audit::chain::seal(&mut self.session()?, self.inner.audit_key.as_ref())?;
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
            s.transaction_with(&TxOptions::new().no_retry(), run)
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
        let applied = migrate::run(&mut self.session()?, dir.as_ref())?;
        // custodian's own tables are managed by custodian, like diesel's migration table.
        self.install_audit()?;
        if self.inner.crypto.is_some() {
            self.install_crypto()?; // crypto
        }
        Ok(applied)
    }

    /// The names of the migrations [`Db::run_migrations`] would apply.
    pub fn pending_migrations(&self, dir: impl AsRef<Path>) -> Result<Vec<String>> {
        migrate::pending(&mut self.session()?, dir.as_ref())
    }

    /// Every difference between `entities` and the live schema: missing tables and columns,
    /// incompatible column types, nullability mismatches. Extra live columns are not drift.
    pub fn schema_drift(&self, entities: &[EntityMeta]) -> Result<Vec<Drift>> {
        self.inner.know(entities);
        let backend = self.inner.backend;
        let mut s = self.session()?;
        let mut drifts = Vec::new();
        for meta in entities {
            let live = s.run(|c| backend.live_columns(c, meta))?;
            drifts.extend(schema::compare(meta, live.as_deref(), |k, t| {
                backend.type_compatible(k, t)
            }));
        }
        Ok(drifts)
    }

    /// Checks that the live schema matches `entities`; otherwise [`Error::Integrity`] with a
    /// report listing every problem (see [`Db::schema_drift`]).
    pub fn check_schema(&self, entities: &[EntityMeta]) -> Result<()> {
        SchemaReport {
            drifts: self.schema_drift(entities)?,
        }
        .into_result()
    }
}
