//! [`ClusterConfig`]: how a database with several hosts routes reads, and the expansion of a
//! multi-host URL (`postgres://u@h1:5432,h2:5433/db`) into one URL per host.

use super::DatabaseUrl;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// How reads are spread over the replicas that may serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each eligible replica in turn (default).
    #[default]
    RoundRobin,
    /// The eligible replica with the fewest sessions open on it, relative to its weight.
    LeastInFlight,
}

/// How a Galera cluster (every synced node accepts writes) is used: set it to accept several
/// hosts answering as primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Galera {
    /// Every synced node takes writes and reads, in turn (certification conflicts between
    /// nodes surface as retryable 1213 errors).
    Multi,
    /// The first synced node in configuration order takes the writes; the other synced nodes
    /// serve reads like replicas. Fewer certification conflicts.
    Single,
}

/// Cluster settings of a database with several hosts (`[databases.NAME.cluster]`). Ignored
/// for a database with one host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// A replica behind its primary by more than this serves no reads; `None` (default): no
    /// bound. Enforced at read time without a round trip: the lag the last health check
    /// measured plus the time since that check must be within it, so keep `check_interval_ms`
    /// well below the bound (else replicas serve only just after each check).
    pub max_replica_lag_ms: Option<u64>,
    /// How often the background checker asks every host its role and lag. Default 1 000 ms.
    pub check_interval_ms: u64,
    /// Longest wait for a connection to a host, by the checker or when a read picks a replica,
    /// before the host counts as down. Default 1 000 ms.
    pub check_timeout_ms: u64,
    /// Round robin (default) or least in flight.
    pub balance: Balance,
    /// Weight of each host, in the order of [`DatabaseConfig::hosts`](super::DatabaseConfig::hosts)
    /// (default 1 each): least in flight divides a host's open sessions by it.
    pub weights: Vec<u32>,
    /// Galera mode (`galera = "multi" | "single"`); `None` (default): exactly one host may
    /// answer as primary.
    pub galera: Option<Galera>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            max_replica_lag_ms: None,
            check_interval_ms: 1_000,
            check_timeout_ms: 1_000,
            balance: Balance::default(),
            weights: Vec::new(),
            galera: None,
        }
    }
}

impl ClusterConfig {
    /// The lag bound as a duration.
    pub fn max_replica_lag(&self) -> Option<Duration> {
        self.max_replica_lag_ms.map(Duration::from_millis)
    }

    /// The health-check interval as a duration.
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }

    /// The connection wait of a check or replica pick, as a duration.
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms)
    }

    /// Checks the settings; `at` is the dotted path of the database in error messages.
    pub(super) fn validate(&self, at: &str, hosts: usize) -> Result<()> {
        let field = |k: &str| {
            format!("{at}.cluster.{k}")
                .trim_start_matches("url.")
                .to_string()
        };
        if self.check_interval_ms == 0 {
            return Err(Error::config(
                field("check_interval_ms"),
                "must be positive",
            ));
        }
        if self.check_timeout_ms == 0 {
            return Err(Error::config(field("check_timeout_ms"), "must be positive"));
        }
        if !self.weights.is_empty() && self.weights.len() != hosts {
            return Err(Error::config(
                field("weights"),
                format!("{} weights for {hosts} hosts", self.weights.len()),
            ));
        }
        if self.weights.contains(&0) {
            return Err(Error::config(
                field("weights"),
                "a weight must be at least 1",
            ));
        }
        Ok(())
    }
}

/// One URL per host of `url`: `scheme://userinfo@h1:p1,h2:p2/rest` becomes
/// `scheme://userinfo@h1:p1/rest`, `scheme://userinfo@h2:p2/rest`. A URL naming one host comes
/// back unchanged.
pub(super) fn expand(url: &DatabaseUrl) -> Vec<DatabaseUrl> {
    let raw = url.expose();
    let Some((scheme, rest)) = raw.split_once("://") else {
        return vec![url.clone()];
    };
    let (user, after_user) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let end = after_user.find(['/', '?']).unwrap_or(after_user.len());
    let (hosts, tail) = after_user.split_at(end);
    if !hosts.contains(',') {
        return vec![url.clone()];
    }
    hosts
        .split(',')
        .map(|host| {
            let user = user.map(|u| format!("{u}@")).unwrap_or_default();
            DatabaseUrl::new(format!("{scheme}://{user}{}{tail}", host.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_expands_per_host() {
        let urls = expand(&DatabaseUrl::new("postgres://u:p@h1:1,h2:2/db?x=1"));
        let urls: Vec<&str> = urls.iter().map(|u| u.expose()).collect();
        assert_eq!(
            urls,
            ["postgres://u:p@h1:1/db?x=1", "postgres://u:p@h2:2/db?x=1"]
        );
        let one = expand(&DatabaseUrl::new("mysql://u@h/db"));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].expose(), "mysql://u@h/db");
    }

    #[test]
    fn cluster_settings_parse_and_validate() {
        let cfg = crate::config::Config::from_toml_str(
            r#"
            [databases.main]
            url = "mysql://app@h1:3306,h2:3306/db"
            cluster = { max_replica_lag_ms = 2000, balance = "least_in_flight", weights = [1, 3], galera = "multi" }
            "#,
        )
        .unwrap();
        let main = cfg.database("main").unwrap();
        assert_eq!(main.hosts().len(), 2);
        assert_eq!(main.cluster.balance, Balance::LeastInFlight);
        assert_eq!(main.cluster.max_replica_lag(), Some(Duration::from_secs(2)));
        assert_eq!(main.cluster.galera, Some(Galera::Multi));
        let bad = crate::config::Config::from_toml_str(
            r#"
            [databases.main]
            url = "mysql://app@h1:3306,h2:3306/db"
            cluster = { weights = [1] }
            "#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("weights"), "{bad}");
    }
}
