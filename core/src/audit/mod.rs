//! The audit trail: every write custodian makes is recorded in the same transaction, sealed
//! with the application's key, bound into a hash chain in commit order, and verifiable
//! against signed checkpoints.
//!
//! - [`record`]: what a record holds, its canonical encoding and seal.
//! - [`tables`]: where records, the chain and its head are stored.
//! - [`chain`]: appending, sealing, verifying.
//! - [`checkpoint`]: ed25519-signed checkpoints of the chain head.

pub mod chain;
pub mod checkpoint;
pub mod record;
pub mod tables;

pub use chain::{Damage, DamageKind, SealReport, VerifyReport};
pub use checkpoint::{generate_signing_key, Checkpoint};
pub use record::{AuditKey, AuditOp, AuditRecord};
