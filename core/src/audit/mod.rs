//! The audit trail: every write custodian makes is recorded in the same transaction, sealed
//! with the application's key, bound into a hash chain in commit order, and verifiable
//! against signed checkpoints.
//!
//! - [`record`]: what a record holds, its canonical encoding and seal.
//! - [`tables`]: where records, the chain and its head are stored.
//! - [`chain`]: appending, sealing, verifying.
//! - [`checkpoint`]: ed25519-signed checkpoints of the chain head.
//! - [`history`]: versions of a row, entities as of a time or sequence number, drift.

pub mod chain;
pub mod checkpoint;
pub mod history;
pub mod record;
pub mod tables;

/// The ed25519 implementation checkpoints use (for signing and public keys).
pub use ed25519_dalek;

pub use chain::{Damage, DamageKind, SealReport, VerifyReport};
pub use checkpoint::{generate_signing_key, Checkpoint};
pub use history::{AsOf, DriftKind, DriftedRow, Version};
pub use record::{AuditKey, AuditOp, AuditRecord};
