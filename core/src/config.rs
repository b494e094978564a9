//! Typed configuration: named databases, each with a primary URL, optional replicas, pool,
//! connection-session settings and the transaction retry policy.
//!
//! Configuration comes from a TOML file ([`Config::from_toml_str`], [`Config::from_file`]) and/or
//! the environment ([`Config::from_env`], [`Config::apply_env`]). Every knob has a documented
//! default; every invalid value is a [`Error::Config`] naming the setting.
//! Passwords never appear in `Debug`, `Display`, logs or errors: [`DatabaseUrl`] redacts them.
//!
//! ```
//! use custodian_core::config::Config;
//! let cfg = Config::from_toml_str(r#"
//!     [databases.main]
//!     url = "postgres://app:s3cret@127.0.0.1/ledger"
//!     replicas = ["postgres://app:s3cret@10.0.0.2/ledger"]
//!     pool = { max_size = 16, connection_timeout_ms = 5000 }
//!     session = { statement_timeout_ms = 30000 }
//!     retry = { max_attempts = 5 }
//! "#).unwrap();
//! let main = cfg.database("main").unwrap();
//! assert_eq!(main.pool.max_size, 16);
//! assert!(!format!("{main:?}").contains("s3cret"));
//! ```

use crate::error::{Error, Result};
use crate::tx::{CommitOutcomeConfig, RetryPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;

mod cluster;
mod database_url;
pub use cluster::{Balance, ClusterConfig, Galera};
use database_url::check_url;
pub use database_url::DatabaseUrl;

/// The name of the database used when only one is configured through `DATABASE_URL`.
pub const DEFAULT_DATABASE: &str = "main";

/// All configured databases, by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Named databases; one named `main` is used by [`Config::from_env`].
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
}

/// One logical database: a primary, optional replicas, and how to talk to them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// URL of the primary (writes and, for now, reads).
    pub url: DatabaseUrl,
    /// More hosts of the same database. With the hosts of a multi-host `url`
    /// (`postgres://u@h1:5432,h2:5433/db`) they form a cluster whose roles are discovered,
    /// not declared: which host is the primary is asked of each (see [`crate::cluster`]).
    #[serde(default)]
    pub replicas: Vec<DatabaseUrl>,
    /// Read routing of a database with several hosts (lag bound, health checks, balancing).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Connection pool knobs.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Settings applied to every new connection.
    #[serde(default)]
    pub session: SessionConfig,
    /// Retry policy for serialization failures and deadlocks in transactions.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Audit trail settings.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Settling a commit cut off mid-flight: transaction-outcome rows.
    #[serde(default)]
    pub commit_outcome: CommitOutcomeConfig,
    // --- crypto (field encryption, see crate::crypto) ---
    /// Field encryption: master keys and the active one (`[databases.NAME.crypto]`).
    #[serde(default)]
    pub crypto: CryptoConfig,
    // --- end crypto ---
    /// Statement probe settings: slow-statement log, N+1 detection
    /// (`[databases.NAME.observe]`).
    #[serde(default)]
    pub observe: crate::observe::ObserveConfig,
    /// Recovery at open of coordinated transactions' in-doubt branches (off by default).
    #[serde(default)]
    pub recovery: RecoveryConfig,
    /// Entity cache settings (`[databases.NAME.cache]`): see [`crate::cache`].
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
}

mod audit;
mod crypto;
mod recovery;
pub use audit::AuditConfig;
pub(crate) use audit::{
    key_bytes, missing_audit_key, parse_public_key, parse_signing_key, KEY_FORMAT,
};
pub use crypto::CryptoConfig;
pub use recovery::RecoveryConfig;
mod connection;
pub use connection::{PoolConfig, SessionConfig};

/// A boolean environment variable: `1`/`true` or `0`/`false`.
pub(crate) fn env_flag(var: &str, v: String) -> Result<bool> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::config(var, format!("`{v}` is not true or false"))),
    }
}

impl Config {
    /// Parses TOML and validates every database.
    pub fn from_toml_str(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let path = e.span().map(|s| format!("at {}..{}", s.start, s.end));
            Error::config(
                path.unwrap_or_else(|| "toml".into()),
                e.message().to_string(),
            )
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file, then applies environment overrides.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path.display().to_string(), e.to_string()))?;
        let mut cfg = Config::from_toml_str(&text)?;
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// A configuration from the environment alone: `DATABASE_URL` plus `CUSTODIAN_*` overrides.
    pub fn from_env() -> Result<Config> {
        let mut cfg = Config::default();
        cfg.apply_env(|k| std::env::var(k).ok())?;
        if cfg.databases.is_empty() {
            return Err(Error::config("DATABASE_URL", "not set"));
        }
        Ok(cfg)
    }

    /// Applies environment overrides to the `main` database, reading variables with `get`:
    /// `DATABASE_URL` or `CUSTODIAN_URL` sets its URL (creating `main` if absent), then
    /// [`DatabaseConfig::apply_env`] applies the `CUSTODIAN_*` settings. The environment wins
    /// over the file.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let url = get("CUSTODIAN_URL").or_else(|| get("DATABASE_URL"));
        if let Some(url) = url {
            match self.databases.get_mut(DEFAULT_DATABASE) {
                Some(db) => db.url = DatabaseUrl::new(url),
                None => {
                    self.databases.insert(
                        DEFAULT_DATABASE.into(),
                        DatabaseConfig::new(DatabaseUrl::new(url)),
                    );
                }
            }
        }
        if let Some(db) = self.databases.get_mut(DEFAULT_DATABASE) {
            db.apply_env(get)?;
        }
        self.validate()
    }

    /// The database called `name`.
    pub fn database(&self, name: &str) -> Result<&DatabaseConfig> {
        self.databases.get(name).ok_or_else(|| {
            Error::config(
                format!("databases.{name}"),
                format!(
                    "no such database; configured: {}",
                    self.databases
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Checks every database's settings.
    pub fn validate(&self) -> Result<()> {
        for (name, db) in &self.databases {
            db.validate(&format!("databases.{name}"))?;
        }
        Ok(())
    }
}

/// URL schemes custodian understands, and the backend each selects.
pub const SCHEMES: &[(&str, &str)] = &[
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("mysql", "mysql"),
    ("mariadb", "mysql"),
    ("sqlite", "sqlite"),
];

impl DatabaseConfig {
    /// A database with default pool, session and retry settings.
    pub fn new(url: DatabaseUrl) -> Self {
        DatabaseConfig {
            url,
            replicas: Vec::new(),
            cluster: ClusterConfig::default(),
            pool: PoolConfig::default(),
            session: SessionConfig::default(),
            retry: RetryPolicy::default(),
            audit: AuditConfig::default(),
            commit_outcome: CommitOutcomeConfig::default(),
            crypto: CryptoConfig::default(),
            observe: Default::default(),
            recovery: RecoveryConfig::default(),
            cache: Default::default(),
        }
    }

    /// Applies the environment's `CUSTODIAN_*` settings to this database, reading variables
    /// with `get` (`|k| std::env::var(k).ok()` for the process environment). **The environment
    /// wins**: a variable that is set replaces the value from the TOML file or the builder, as in
    /// [`Config::from_env`] and [`Config::from_file`]. `custodian::connect`, `custodian::open`,
    /// `custodian::open_named` and the `custodian` command apply it to the database they open.
    /// The URL is not read here: an explicit URL is kept (`DATABASE_URL` names the `main`
    /// database in [`Config::apply_env`]).
    ///
    /// | variable | setting |
    /// |---|---|
    /// | `CUSTODIAN_REPLICAS` | `replicas`, comma-separated |
    /// | `CUSTODIAN_POOL_MAX_SIZE`, `CUSTODIAN_POOL_MIN_IDLE` | pool sizes |
    /// | `CUSTODIAN_POOL_CONNECTION_TIMEOUT_MS`, `CUSTODIAN_POOL_IDLE_TIMEOUT_MS`, `CUSTODIAN_POOL_MAX_LIFETIME_MS` | pool times |
    /// | `CUSTODIAN_POOL_TEST_ON_CHECK_OUT` | `true`/`false` |
    /// | `CUSTODIAN_STATEMENT_TIMEOUT_MS`, `CUSTODIAN_BUSY_TIMEOUT_MS`, `CUSTODIAN_APPLICATION_NAME` | session |
    /// | `CUSTODIAN_RETRY_MAX_ATTEMPTS`, `CUSTODIAN_RETRY_MAX_ELAPSED_MS` | retry policy (attempts: 0 or 1 turns retry off; time budget: 0 for none) |
    /// | `CUSTODIAN_AUDIT_KEY`, `CUSTODIAN_AUDIT_UNKEYED`, `CUSTODIAN_AUDIT_SIGNING_KEY`, `CUSTODIAN_AUDIT_WITNESS`, `CUSTODIAN_AUDIT_TRUSTED_KEYS` | audit trail (see [`AuditConfig::apply_env`]) |
    /// | `CUSTODIAN_RECOVER_COORDINATORS`, `CUSTODIAN_RECOVER_LOG` | recovery at open (see [`RecoveryConfig`]) |
    /// | `CUSTODIAN_CRYPTO_KEYS`, `CUSTODIAN_CRYPTO_ACTIVE`, `CUSTODIAN_CRYPTO_INDEX_KEY`, `CUSTODIAN_CRYPTO_CACHE_TTL_MS` | field encryption (see [`CryptoConfig`]) |
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn num<T: std::str::FromStr>(var: &str, v: String) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| Error::config(var, format!("`{v}` is not a valid number")))
        }
        if let Some(v) = get("CUSTODIAN_REPLICAS") {
            self.replicas = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(DatabaseUrl::new)
                .collect();
        }
        if let Some(v) = get("CUSTODIAN_POOL_MAX_SIZE") {
            self.pool.max_size = num("CUSTODIAN_POOL_MAX_SIZE", v)?;
        }
        if let Some(v) = get("CUSTODIAN_POOL_MIN_IDLE") {
            self.pool.min_idle = Some(num("CUSTODIAN_POOL_MIN_IDLE", v)?);
        }
        if let Some(v) = get("CUSTODIAN_POOL_CONNECTION_TIMEOUT_MS") {
            self.pool.connection_timeout_ms = num("CUSTODIAN_POOL_CONNECTION_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("CUSTODIAN_POOL_IDLE_TIMEOUT_MS") {
            self.pool.idle_timeout_ms = Some(num("CUSTODIAN_POOL_IDLE_TIMEOUT_MS", v)?);
        }
        if let Some(v) = get("CUSTODIAN_POOL_MAX_LIFETIME_MS") {
            self.pool.max_lifetime_ms = Some(num("CUSTODIAN_POOL_MAX_LIFETIME_MS", v)?);
        }
        if let Some(v) = get("CUSTODIAN_POOL_TEST_ON_CHECK_OUT") {
            self.pool.test_on_check_out = env_flag("CUSTODIAN_POOL_TEST_ON_CHECK_OUT", v)?;
        }
        if let Some(v) = get("CUSTODIAN_STATEMENT_TIMEOUT_MS") {
            self.session.statement_timeout_ms = Some(num("CUSTODIAN_STATEMENT_TIMEOUT_MS", v)?);
        }
        if let Some(v) = get("CUSTODIAN_BUSY_TIMEOUT_MS") {
            self.session.busy_timeout_ms = num("CUSTODIAN_BUSY_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("CUSTODIAN_APPLICATION_NAME") {
            self.session.application_name = v;
        }
        self.audit.apply_env(&get)?;
        if let Some(v) = get("CUSTODIAN_RETRY_MAX_ATTEMPTS") {
            self.retry.max_attempts = num("CUSTODIAN_RETRY_MAX_ATTEMPTS", v)?;
        }
        if let Some(v) = get("CUSTODIAN_RETRY_MAX_ELAPSED_MS") {
            self.retry.max_elapsed_ms = num("CUSTODIAN_RETRY_MAX_ELAPSED_MS", v)?;
        }
        self.recovery.apply_env(&get);
        // --- crypto: CUSTODIAN_CRYPTO_KEYS, _ACTIVE, _INDEX_KEY, _CACHE_TTL_MS ---
        self.crypto.apply_env(&get)
    }

    /// Allows sealing audit records without a key when none is configured
    /// (`audit.unkeyed = true`): for demos and tests, where no key is at hand. See
    /// [`AuditConfig`].
    pub fn audit_unkeyed(mut self) -> Self {
        self.audit.unkeyed = true;
        self
    }

    /// Parses and validates a URL into a database with default settings.
    pub fn from_url(url: &str) -> Result<Self> {
        let cfg = DatabaseConfig::new(DatabaseUrl::new(url));
        cfg.validate("url")?;
        Ok(cfg)
    }

    /// Adds a host to the database (see [`DatabaseConfig::replicas`]); its role is discovered.
    pub fn host(mut self, url: &str) -> Self {
        self.replicas.push(DatabaseUrl::new(url));
        self
    }

    /// Bounds replica lag: a replica further behind serves no reads (see [`ClusterConfig`]).
    pub fn max_replica_lag(mut self, limit: std::time::Duration) -> Self {
        self.cluster.max_replica_lag_ms =
            Some(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets how often hosts are checked (see [`ClusterConfig::check_interval_ms`]).
    pub fn check_interval(mut self, every: std::time::Duration) -> Self {
        self.cluster.check_interval_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Chooses how reads are spread over replicas.
    pub fn balance(mut self, balance: Balance) -> Self {
        self.cluster.balance = balance;
        self
    }

    /// Every host of this database, one URL each: the hosts of `url` (several in a multi-host
    /// URL), then those of `replicas`. One host means no cluster.
    pub fn hosts(&self) -> Vec<DatabaseUrl> {
        std::iter::once(&self.url)
            .chain(&self.replicas)
            .flat_map(cluster::expand)
            .collect()
    }

    /// Whether this is an in-memory SQLite database (one connection, gone when it closes).
    pub fn is_sqlite_memory(&self) -> bool {
        matches!(self.url.expose(), "sqlite::memory:" | "sqlite://:memory:")
    }

    /// Checks the settings; `at` is the dotted path used in error messages.
    pub fn validate(&self, at: &str) -> Result<()> {
        let url_field = if at == "url" {
            "url".to_string()
        } else {
            format!("{at}.url")
        };
        check_url(&self.url, &url_field)?;
        self.cache.validate(if at == "url" { "" } else { at })?;
        let hosts = self.hosts();
        if self.url.scheme() == "sqlite" && (hosts.len() > 1 || self.url.expose().contains(',')) {
            return Err(Error::config(
                if self.replicas.is_empty() {
                    url_field.clone()
                } else {
                    format!("{at}.replicas")
                },
                "SQLite is one file and has no replicas or other hosts: name one database file",
            ));
        }
        self.cluster.validate(at, hosts.len())?;
        self.recovery.validate(at)?;
        for (i, h) in hosts.iter().enumerate().filter(|_| hosts.len() > 1) {
            check_url(h, &format!("{url_field} (host {})", i + 1))?;
        }
        for (i, r) in self.replicas.iter().enumerate() {
            check_url(r, &format!("{at}.replicas[{i}]"))?;
            if r.scheme() != self.url.scheme() {
                return Err(Error::config(
                    format!("{at}.replicas[{i}]"),
                    "a replica must use the same backend as the primary",
                ));
            }
        }
        let p = &self.pool;
        let field = |k: &str| {
            if at == "url" {
                format!("pool.{k}")
            } else {
                format!("{at}.pool.{k}")
            }
        };
        if p.max_size == 0 {
            return Err(Error::config(field("max_size"), "must be at least 1"));
        }
        if let Some(min) = p.min_idle {
            if min > p.max_size {
                return Err(Error::config(
                    field("min_idle"),
                    format!("{min} is larger than max_size {}", p.max_size),
                ));
            }
        }
        if p.connection_timeout_ms == 0 {
            return Err(Error::config(
                field("connection_timeout_ms"),
                "must be positive",
            ));
        }
        if p.idle_timeout_ms == Some(0) || p.max_lifetime_ms == Some(0) {
            return Err(Error::config(
                field(if p.idle_timeout_ms == Some(0) {
                    "idle_timeout_ms"
                } else {
                    "max_lifetime_ms"
                }),
                "must be positive (leave it out for no limit)",
            ));
        }
        self.audit.validate(&if at == "url" {
            "audit".to_string()
        } else {
            format!("{at}.audit")
        })?;
        // --- crypto ---
        self.crypto.validate(&if at == "url" {
            "crypto".to_string()
        } else {
            format!("{at}.crypto")
        })?;
        // --- end crypto ---
        self.retry.validate(&format!("{at}.retry"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_everywhere() {
        let u = DatabaseUrl::new("postgres://app:hunter2@db.local:5432/x?sslmode=disable");
        assert_eq!(
            u.redacted(),
            "postgres://app:***@db.local:5432/x?sslmode=disable"
        );
        assert!(!format!("{u:?} {u}").contains("hunter2"));
        let cfg = DatabaseConfig::from_url("mysql://root:pw@127.0.0.1/test").unwrap();
        assert!(!format!("{cfg:?}").contains("pw@"));
        let err = DatabaseConfig::from_url("oracle://u:topsecret@h/db").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn bad_urls_and_knobs_name_the_field() {
        let e = DatabaseConfig::from_url("ftp://x/y").unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } if field == "url"),
            "{e}"
        );
        let e = DatabaseConfig::from_url("postgres:///db").unwrap_err();
        assert!(e.to_string().contains("no host"), "{e}");
        let e = DatabaseConfig::from_url("sqlite://").unwrap_err();
        assert!(e.to_string().contains("no path"), "{e}");
        let e = Config::from_toml_str(
            "[databases.main]\nurl = \"sqlite::memory:\"\npool = { max_size = 0 }\n",
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } if field == "databases.main.pool.max_size"),
            "{e}"
        );
        let e = Config::from_toml_str(
            "[databases.main]\nurl = \"sqlite::memory:\"\npool = { max_sise = 3 }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_sise"), "{e}");
        let e = Config::from_toml_str(
            "[databases.main]\nurl = \"sqlite::memory:\"\npool = { max_size = 2, min_idle = 5 }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("min_idle"), "{e}");
    }

    #[test]
    fn mariadb_returning_is_off_unless_switched_on() {
        let off = DatabaseConfig::from_url("mysql://root@127.0.0.1/test").unwrap();
        assert!(!off.session.mariadb_returning);
        let on = Config::from_toml_str(
            "[databases.main]\nurl = \"mysql://root@127.0.0.1/test\"\nsession = { mariadb_returning = true }\n",
        )
        .unwrap();
        assert!(on.database("main").unwrap().session.mariadb_returning);
    }

    #[test]
    fn records_with_commit_is_off_unless_switched_on() {
        let off = DatabaseConfig::from_url("postgres://postgres@127.0.0.1/test").unwrap();
        assert!(!off.audit.records_with_commit);
        let on = Config::from_toml_str(
            "[databases.main]\nurl = \"postgres://postgres@127.0.0.1/test\"\naudit = { records_with_commit = true }\n",
        )
        .unwrap();
        assert!(on.database("main").unwrap().audit.records_with_commit);
    }

    #[test]
    fn env_overrides_apply_to_main() {
        let env = |k: &str| match k {
            "DATABASE_URL" => Some("sqlite://ledger.db".to_string()),
            "CUSTODIAN_POOL_MAX_SIZE" => Some("3".to_string()),
            "CUSTODIAN_RETRY_MAX_ATTEMPTS" => Some("1".to_string()),
            _ => None,
        };
        let mut cfg = Config::default();
        cfg.apply_env(env).unwrap();
        let main = cfg.database("main").unwrap();
        assert_eq!(main.pool.max_size, 3);
        assert_eq!(main.retry.max_attempts, 1);
        let bad = |k: &str| match k {
            "DATABASE_URL" => Some("sqlite://ledger.db".to_string()),
            "CUSTODIAN_POOL_MAX_SIZE" => Some("many".to_string()),
            _ => None,
        };
        let e = Config::default().apply_env(bad).unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } if field == "CUSTODIAN_POOL_MAX_SIZE"),
            "{e}"
        );
        assert!(cfg.database("reporting").is_err());
    }

    #[test]
    fn env_sets_the_audit_key_and_unkeyed_seals_of_any_database() {
        let key = "ab".repeat(32);
        let env = |k: &str| match k {
            "CUSTODIAN_AUDIT_KEY" => Some(key.clone()),
            "CUSTODIAN_POOL_MAX_SIZE" => Some("3".to_string()),
            _ => None,
        };
        // The environment wins over the builder, and the explicit URL is kept.
        let mut db = DatabaseConfig::from_url("sqlite://ledger.db").unwrap();
        db.audit.key = Some("cd".repeat(32));
        db.apply_env(env).unwrap();
        assert_eq!(db.audit.key.as_deref(), Some(key.as_str()));
        assert_eq!(db.pool.max_size, 3);
        assert_eq!(db.url.expose(), "sqlite://ledger.db");
        assert!(!db.audit.unkeyed);

        let mut db = DatabaseConfig::from_url("sqlite://ledger.db").unwrap();
        for (value, unkeyed) in [("1", true), ("true", true), ("0", false), ("false", false)] {
            db.apply_env(|k| (k == "CUSTODIAN_AUDIT_UNKEYED").then(|| value.to_string()))
                .unwrap();
            assert_eq!(db.audit.unkeyed, unkeyed, "{value}");
        }
        let e = db
            .apply_env(|k| (k == "CUSTODIAN_AUDIT_UNKEYED").then(|| "yes".to_string()))
            .unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } if field == "CUSTODIAN_AUDIT_UNKEYED"),
            "{e}"
        );
        let cfg = Config::from_toml_str(
            "[databases.main]\nurl = \"sqlite::memory:\"\naudit = { unkeyed = true }\n",
        )
        .unwrap();
        assert!(cfg.database("main").unwrap().audit.unkeyed);
        assert!(
            DatabaseConfig::from_url("sqlite::memory:")
                .unwrap()
                .audit_unkeyed()
                .audit
                .unkeyed
        );
    }
}
