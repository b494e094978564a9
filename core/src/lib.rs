//! # custodian-core
//!
//! The runtime of [custodian](https://docs.rs/custodian): entities, the `Db` handle, sessions and
//! their single write path, transactions, the connection pool, configuration and errors.
//! Application code depends on the `custodian` facade, which re-exports this crate.
#![deny(missing_docs)]

pub mod access;
pub mod audit;
pub mod backend;
pub mod backup;
mod before_image;
pub mod cache;
mod cached_update;
pub mod cluster;
pub mod config;
mod conn;
pub mod context;
pub mod coordinate;
pub mod crypto;
mod db;
pub mod entity;
pub mod error;
pub mod health;
pub mod migrate;
pub mod observe;
pub mod outcome;
mod pool;
mod principal;
#[doc(hidden)]
pub mod private;
mod relations;
pub mod schema;
pub mod session;
pub mod sql_types;
pub mod tx;
pub mod validate;
pub mod value;

#[cfg(test)]
mod layers;

pub use access::{AccessControl, Action, EntityRules};
pub use backend::{Backend, HostRole};
pub use cluster::{Balancer, HostStatus};
pub use config::{
    Balance, ClusterConfig, Config, DatabaseConfig, DatabaseUrl, Galera, PoolConfig, SessionConfig,
};
pub use conn::{AnyConnection, MultiBackend};
pub use coordinate::Coordinator;
pub use crypto::{Crypto, Sealed};
pub use db::Db;
pub use entity::{
    Check, ColumnMeta, ColumnRole, Entity, EntityMeta, ForeignKey, IndexMeta, RefAction, Stamp,
    WriteKind,
};
pub use error::{
    BackendKind, ConstraintKind, DbError, Error, FieldError, IntegrityKind, Result, TimeoutKind,
    ValidationErrors,
};
pub use pool::PoolStats;
pub use principal::Principal;
pub use relations::BelongsTo;
pub use schema::{Advice, Drift, LiveColumn, SchemaReport};
pub use session::Hooks;
pub use session::{AuditContext, Rerunnable, Session, SetFilter};
pub use tx::{CommitOutcomeConfig, IsolationLevel, RetryPolicy, TxOptions};
pub use value::{stored, ColumnKind, ColumnValue, DbEnum, Decimal, DecodeError};
