//! The audit trail: every write custodian makes is recorded in the same transaction, sealed
//! with the application's key, bound into a keyed hash chain in commit order, and verifiable
//! against signed checkpoints kept by a witness outside the database.
//!
//! - [`record`]: what a record holds, its canonical encoding, seal and chain link.
//! - [`tables`]: where records, the chain, its head and the sealers' gaps are stored.
//! - [`store`]: installing the tables, appending and reading records.
//! - [`seal`]: binding committed records into the chain.
//! - [`verify`]: walking the chain and reporting damage.
//! - [`checkpoint`] and [`witness`]: ed25519-signed checkpoints and the file that keeps them.
//! - [`history`]: versions of a row, entities as of a time or sequence number, drift.
//! - [`chain`]: the operations above under one name.

pub mod checkpoint;
pub mod history;
pub mod record;
pub mod seal;
mod settings;
pub mod store;
pub mod tables;
pub mod verify;
pub mod witness;

/// Appending, sealing and verifying, under one name.
pub mod chain {
    pub use super::seal::{seal, seal_with_progress, SealReport};
    pub(crate) use super::store::{append, inline_insert, recorded};
    pub use super::store::{head, install, records_of_entity, records_of_entity_key};
    pub use super::verify::{read_links, verify, StoredLink};
}

/// The ed25519 implementation checkpoints use (for signing and public keys).
pub use ed25519_dalek;

pub use checkpoint::{generate_signing_key, Checkpoint, SignatureCheck};
pub use history::{AsOf, DriftKind, DriftedRow, Version};
pub use record::{AuditKey, AuditOp, AuditRecord, ChainKey};
pub use seal::SealReport;
pub use verify::{Damage, DamageKind, SealMode, VerifyOptions, VerifyReport};
pub use witness::{Witness, WitnessEntry};

/// The current UTC time at microsecond precision, as records store it.
pub(crate) fn now_utc() -> chrono::NaiveDateTime {
    crate::value::ColumnValue::to_storage(&chrono::Utc::now()).0
}
