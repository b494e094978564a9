//! Connection settings of a database: the r2d2 pool's knobs ([`PoolConfig`]) and what each
//! new connection is set up with ([`SessionConfig`]).

use serde::Deserialize;
use std::time::Duration;

/// r2d2 pool knobs. Durations are in milliseconds in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Most connections open at once. Default 10. (`sqlite::memory:` always uses 1.)
    pub max_size: u32,
    /// Idle connections kept ready; `None` (default) keeps `max_size`.
    pub min_idle: Option<u32>,
    /// Longest wait for a free connection before [`Error::Timeout`](crate::Error::Timeout) of kind
    /// [`TimeoutKind::Checkout`](crate::TimeoutKind::Checkout) (or [`Error::Connection`](crate::Error::Connection) when
    /// opening or checking connections failed meanwhile).
    /// Default 30 000 ms.
    pub connection_timeout_ms: u64,
    /// Close connections idle this long; `None` never. Default 600 000 ms (10 min).
    pub idle_timeout_ms: Option<u64>,
    /// Close connections this old; `None` never. Default 1 800 000 ms (30 min).
    pub max_lifetime_ms: Option<u64>,
    /// Ping a connection before handing it out. Default true.
    pub test_on_check_out: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 10,
            min_idle: None,
            connection_timeout_ms: 30_000,
            idle_timeout_ms: Some(600_000),
            max_lifetime_ms: Some(1_800_000),
            test_on_check_out: true,
        }
    }
}

impl PoolConfig {
    /// Checkout timeout as a duration.
    pub fn connection_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_timeout_ms)
    }
}

/// Settings applied to each new connection by its backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// PostgreSQL `application_name`. Default `custodian`.
    pub application_name: String,
    /// Per-statement limit (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`); a
    /// statement stopped at it fails with [`Error::Timeout`](crate::Error::Timeout) of kind
    /// [`TimeoutKind::Statement`](crate::TimeoutKind::Statement). SQLite has no statement
    /// limit and ignores it. `None` (default) for no limit.
    pub statement_timeout_ms: Option<u64>,
    /// SQLite `busy_timeout`: how long to wait for a lock. Default 5 000 ms.
    pub busy_timeout_ms: u64,
    /// On MariaDB 10.5 and later, an insert returns its generated key and an audited delete the
    /// row it removed in the same statement (`INSERT … RETURNING`, `DELETE … RETURNING`): one
    /// round trip less each than `LAST_INSERT_ID()` after the insert or a locking read before
    /// the delete. **Default false, experimental:** MariaDB describes such a prepared
    /// statement's rows only after its first run (MDEV-27013), and when that first run fails
    /// (a duplicate key), the next run of the same prepared statement on that connection
    /// would never return (seen with MariaDB 10.11 and its client library 3.3): custodian
    /// then replaces the connection. Other databases ignore it.
    pub mariadb_returning: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            application_name: "custodian".into(),
            statement_timeout_ms: None,
            busy_timeout_ms: 5_000,
            mariadb_returning: false,
        }
    }
}
