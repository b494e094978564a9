//! # custodian-core
//!
//! The runtime of [custodian](https://docs.rs/custodian): entities, the `Db` handle, sessions and
//! their single write path, transactions, the connection pool, configuration and errors.
//! Application code depends on the `custodian` facade, which re-exports this crate.
#![deny(missing_docs)]

pub mod conn;
pub mod entity;
#[doc(hidden)]
pub mod private;
pub mod value;

pub use conn::{AnyConnection, MultiBackend};
pub use entity::{ColumnMeta, Entity, EntityMeta};
pub use value::{stored, ColumnKind, ColumnValue, DbEnum, DecodeError, Decimal};
