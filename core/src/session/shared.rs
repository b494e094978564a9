//! The state every [`Session`](super::Session) of one database shares, held by the
//! [`Db`](crate::Db) handle and by each of its sessions.

use crate::backend::Backend;
use crate::config::DatabaseConfig;
use crate::entity::EntityMeta;
use crate::error::Result;
use crate::pool::{ConnectFailures, Pool, PoolCounters};
use std::sync::Arc;

/// What every session of one [`Db`](crate::Db) shares: the dialect, configuration, keys,
/// pool, the line for `denied` records, and facts asked of the server once.
pub(crate) struct Shared {
    pub(crate) backend: &'static dyn Backend,
    pub(crate) audit_key: Option<crate::audit::AuditKey>,
    pub(crate) config: DatabaseConfig,
    /// Field encryption, when master keys are configured.
    pub(crate) crypto: Option<crate::crypto::Crypto>,
    pub(crate) pool: Pool,
    pub(crate) counters: Arc<PoolCounters>,
    /// The pool's last connection failure, to tell an unreachable server from a busy pool.
    pub(crate) failures: Arc<ConnectFailures>,
    /// [`Backend::consecutive_insert_ids`], asked once (server settings).
    pub(crate) consecutive_ids: std::sync::OnceLock<bool>,
    /// [`Backend::returns_rows`], asked once (server version).
    pub(crate) returns_rows: std::sync::OnceLock<bool>,
    /// The connection reserved for `denied` audit records, outside the pool.
    pub(crate) denials: super::guard::DenialLine,
    /// [`Backend::max_statement_bytes`], asked once (server settings).
    pub(crate) statement_bytes: std::sync::OnceLock<Option<usize>>,
    /// The entities this `Db` created or checked: the write path follows their cascading
    /// foreign keys (see [`crate::cascade`]).
    pub(crate) entities: std::sync::Mutex<Vec<EntityMeta>>,
    /// The hosts of a database with several (`None` for one host: `pool` is its pool).
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    /// The entity cache (see [`crate::cache`]).
    pub(crate) cache: crate::cache::Caches,
    /// Filtered full scans seen in the plans of slow statements, for the schema advice.
    pub(crate) slow_scans: crate::observe::ScanLog,
}

impl Shared {
    /// The key sealing new audit records: `None` only when unkeyed seals were chosen
    /// (`audit.unkeyed`); without a key otherwise, [`Error::Config`] saying how to set one.
    pub(crate) fn sealing_key(&self) -> Result<Option<&crate::audit::AuditKey>> {
        match &self.audit_key {
            Some(key) => Ok(Some(key)),
            None if self.config.audit.unkeyed => Ok(None),
            None => Err(crate::config::missing_audit_key()),
        }
    }

    /// The configuration of the primary's own connections: with several hosts, the
    /// discovered primary's URL.
    pub(crate) fn primary_config(&self) -> &DatabaseConfig {
        match &self.cluster {
            Some(cluster) => &cluster.primary().config,
            None => &self.config,
        }
    }

    /// A connection to the primary: the pool's, or in a cluster the current primary's (see
    /// `Cluster::primary_connection`).
    pub(crate) fn primary_connection(&self) -> Result<crate::pool::PooledConnection> {
        match &self.cluster {
            Some(cluster) => cluster.primary_connection(),
            None => crate::pool::checkout(&self.pool, &self.failures, &self.config),
        }
    }

    /// Adds `entities` to the ones this `Db` knows (each table once).
    pub(crate) fn know(&self, entities: &[EntityMeta]) {
        let mut known = self.entities.lock().unwrap_or_else(|e| e.into_inner());
        for meta in entities {
            if !known
                .iter()
                .any(|k| k.table == meta.table && k.schema == meta.schema)
            {
                known.push(*meta);
            }
        }
    }
}
