//! The typed kinds an [`Error`] carries: which backend, which constraint, which timeout, which
//! integrity check.

#[cfg(doc)]
use super::{DbError, Error};
use serde::Serialize;
use std::fmt;

/// Which backend an error or connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum BackendKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// SQLite.
    Sqlite,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Mysql => "mysql",
            BackendKind::Sqlite => "sqlite",
        })
    }
}

/// The kind of constraint that refused a write ([`DbError::kind`]). Serialized (and shown) in
/// snake case: `unique`, `not_null`, `foreign_key`, `check`, `exclusion`, `stale_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConstraintKind {
    /// A unique or primary-key constraint: the value is taken ([`Error::Conflict`]).
    Unique,
    /// A `NOT NULL` column got no value.
    NotNull,
    /// A foreign key: the parent row is missing, or is still referenced.
    ForeignKey,
    /// A `CHECK` constraint.
    Check,
    /// A PostgreSQL exclusion constraint.
    Exclusion,
    /// Not the database's: the row's version changed since it was read (optimistic locking,
    /// [`Error::Conflict`] with code `stale_version`).
    StaleVersion,
}

impl ConstraintKind {
    /// The snake-case name, e.g. `foreign_key`: also the code [`Error::field_errors`] uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::Unique => "unique",
            ConstraintKind::NotNull => "not_null",
            ConstraintKind::ForeignKey => "foreign_key",
            ConstraintKind::Check => "check",
            ConstraintKind::Exclusion => "exclusion",
            ConstraintKind::StaleVersion => "stale_version",
        }
    }
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which limit an [`Error::Timeout`] ran out of.
///
/// Lock waits are not timeouts here: a lock wait that runs out (PostgreSQL `lock_timeout`,
/// MariaDB `innodb_lock_wait_timeout`, SQLite `busy_timeout`) is a retryable
/// [`Error::Serialization`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No pooled connection came free within the pool's `connection_timeout_ms`. (When the
    /// server cannot be reached the checkout fails with [`Error::Connection`] instead.)
    Checkout,
    /// The database stopped a statement at the configured per-statement limit
    /// (`session.statement_timeout_ms`: PostgreSQL `statement_timeout`, MariaDB
    /// `max_statement_time`; SQLite has none).
    Statement,
    /// The transaction's deadline ([`TxOptions::timeout`](crate::TxOptions::timeout)) passed:
    /// the database stopped a statement running at it, or a statement or commit came after it.
    TransactionDeadline,
}

impl TimeoutKind {
    /// The snake-case name, e.g. `transaction_deadline`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Checkout => "checkout",
            TimeoutKind::Statement => "statement",
            TimeoutKind::TransactionDeadline => "transaction_deadline",
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which check an [`Error::Integrity`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntegrityKind {
    /// What the database returned does not fit: a stored value does not decode into its field
    /// (bad UUID, unknown enum variant), a generated key does not fit the key field, an audit
    /// image does not decode into the entity, fewer keys came back than rows were inserted.
    Undecodable,
    /// A value could not be encoded for the database or into an audit image.
    Unencodable,
    /// The audit trail is damaged (a record altered, forged, missing or undecodable; the
    /// chain's head row missing), or a record could not be kept safely.
    AuditTrail,
    /// A signed audit checkpoint does not verify (untrusted key, bad signature).
    Checkpoint,
    /// An applied migration's file no longer matches the checksum recorded when it ran.
    MigrationChecksum,
    /// The live schema does not match the entities; the source is the
    /// [`SchemaReport`](crate::SchemaReport).
    SchemaDrift,
    /// A migration left rows whose foreign key has no parent (SQLite migrations run with
    /// enforcement off, so the runner checks before committing); nothing of it is kept.
    DanglingForeignKey,
    /// An encrypted value or wrapped data key does not authenticate or parse: it was altered,
    /// moved to another row or subject, or the master key is the wrong one.
    Ciphertext,
    /// The cryptographic machinery failed (no randomness from the operating system, encryption
    /// failed, a subject's data key could be neither created nor found).
    Crypto,
    /// One of custodian's own invariants broke (a bug: please report it).
    Internal,
    /// Raised by application code (a hook or a transaction closure) for its own rule.
    Application,
    /// A transaction (or savepoint) was asked to commit after a write in it failed half-way
    /// without a savepoint of its own (see `Session::update_where`): it can only roll back,
    /// and it was rolled back.
    RollbackOnly,
    /// A backup manifest is not one, is not signed by a trusted key, or a backup does not
    /// match its manifest (see [`backup`](crate::backup)).
    Backup,
}

impl IntegrityKind {
    /// The snake-case name, e.g. `audit_trail`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityKind::Undecodable => "undecodable",
            IntegrityKind::Unencodable => "unencodable",
            IntegrityKind::AuditTrail => "audit_trail",
            IntegrityKind::Checkpoint => "checkpoint",
            IntegrityKind::MigrationChecksum => "migration_checksum",
            IntegrityKind::SchemaDrift => "schema_drift",
            IntegrityKind::DanglingForeignKey => "dangling_foreign_key",
            IntegrityKind::Ciphertext => "ciphertext",
            IntegrityKind::Crypto => "crypto",
            IntegrityKind::Internal => "internal",
            IntegrityKind::Application => "application",
            IntegrityKind::RollbackOnly => "rollback_only",
            IntegrityKind::Backup => "backup",
        }
    }
}

impl fmt::Display for IntegrityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
