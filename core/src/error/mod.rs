//! The one [`Error`] type of custodian, classified so callers can act on the cause.
//!
//! Database errors are classified by the backend that produced them (see
//! [`Backend::classify`](crate::backend::Backend::classify)) and keep the database's code and
//! message in a [`DbError`]. Serialization failures and deadlocks are marked retryable;
//! [`Db::transaction`](crate::Db::transaction) retries them, and a connection lost before
//! `COMMIT`, under its [`RetryPolicy`](crate::RetryPolicy). A connection lost while `COMMIT`
//! was in flight is settled where the transaction can be looked up (audit records, outcome
//! rows: see [`CommitOutcomeConfig`](crate::CommitOutcomeConfig)); when it cannot be, it is
//! [`Error::CommitUnknown`]: the transaction may have committed, and it is never retried.
//!
//! Causes that come in kinds carry a typed kind to match on: [`ConstraintKind`] in
//! [`DbError::kind`], [`TimeoutKind`] in [`Error::Timeout`], [`IntegrityKind`] in
//! [`Error::Integrity`].
//!
//! ```
//! use custodian_core::{ConstraintKind, Error, IntegrityKind, TimeoutKind};
//!
//! fn advice(e: &Error) -> &'static str {
//!     match e {
//!         Error::Timeout { kind: TimeoutKind::Checkout, .. } => "pool exhausted: retry later",
//!         Error::Timeout { .. } => "too slow: narrow the query",
//!         Error::Integrity { kind: IntegrityKind::AuditTrail, .. } => "audit trail damaged",
//!         e if e.constraint_kind() == Some(ConstraintKind::ForeignKey) => "unknown parent",
//!         _ => "failed",
//!     }
//! }
//! let e = Error::integrity(IntegrityKind::AuditTrail, "audit record 7 has an invalid seal");
//! assert_eq!(advice(&e), "audit trail damaged");
//! ```

mod kinds;
mod loss;

pub use kinds::{BackendKind, ConstraintKind, IntegrityKind, TimeoutKind};
pub use loss::{LossKind, LossyChange};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Result with custodian's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in custodian, by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No row has the requested key.
    #[error("{entity} with key {key} not found")]
    NotFound {
        /// Entity (struct) name.
        entity: &'static str,
        /// The key that was looked up, as debug text.
        key: String,
    },
    /// A unique or primary-key constraint refused the write (or, later, a stale version).
    #[error("conflict: {}", describe_constraint(.source))]
    Conflict {
        /// The database's error, with constraint and column where known.
        source: Box<DbError>,
    },
    /// A not-null, foreign-key or check constraint refused the write.
    #[error("constraint violated: {}", describe_constraint(.source))]
    Constraint {
        /// The database's error, with constraint and column where known.
        source: Box<DbError>,
    },
    /// The data is invalid; nothing was written.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// The acting principal may not do this; nothing was written.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A serialization failure or deadlock: retrying the transaction may succeed.
    #[error("serialization failure (retryable): {source}")]
    Serialization {
        /// The database's error.
        source: Box<DbError>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("connection error: {message}")]
    Connection {
        /// What failed, with the (password-free) address.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The connection broke while `COMMIT` was in flight and custodian could not settle
    /// whether the transaction committed: it had nothing to look up (unaudited and no outcome
    /// row, see [`CommitOutcomeConfig`](crate::CommitOutcomeConfig)), or the server could not
    /// be reached (or the old session not ended) within the retry policy's time budget. Never
    /// retried automatically (the closure's effects may be in the database); the caller
    /// resolves the outcome by reading what the transaction wrote (e.g. a row keyed by an id it
    /// chose before the transaction). `source` is the connection failure, as classified.
    #[error("commit outcome unknown, the transaction may have committed: {source}")]
    CommitUnknown {
        /// The failure the commit saw (an [`Error::Connection`]).
        #[source]
        source: Box<Error>,
    },
    /// The same statement shape ran more times in one transaction (or session) than the
    /// N+1 threshold allows, with N+1 detection in error mode
    /// ([`NPlusOneMode::Error`](crate::observe::NPlusOneMode::Error)): load the rows in one
    /// batch (`get_many`, `children`, `parents`).
    #[error("N+1 query pattern: {sql} ran {count} times for {entity} from {call_site}")]
    NPlusOne {
        /// The entity read (struct name).
        entity: String,
        /// `file:line:column` of the application's call that crossed the threshold.
        call_site: String,
        /// How many times the statement ran.
        count: u32,
        /// The statement's SQL, with placeholders (no bind values).
        sql: String,
    },

    /// An operation ran out of time; `kind` says which limit (pool checkout, statement time,
    /// transaction deadline).
    #[error("timed out: {message}")]
    Timeout {
        /// Which limit ran out.
        kind: TimeoutKind,
        /// What was waited for, with the limit where known.
        message: String,
        /// The limit that ran out, where known.
        limit: Option<Duration>,
        /// The database's error when the database stopped the statement (its code, e.g.
        /// PostgreSQL `57014`, MariaDB `1969`).
        source: Option<Box<DbError>>,
    },
    /// The configuration is invalid; `field` names the offending setting.
    #[error("invalid configuration `{field}`: {message}")]
    Config {
        /// Dotted path of the setting, e.g. `databases.main.pool.max_size`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Data is not what it must be: a stored value does not decode, the audit trail or a
    /// ciphertext does not verify, an applied migration was edited, the schema drifted.
    /// `kind` says which check failed.
    #[error("integrity: {message}")]
    Integrity {
        /// Which check failed.
        kind: IntegrityKind,
        /// What failed, naming the record, value, migration or table.
        message: String,
        /// The underlying error (e.g. the decoder's), if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// [`migrate::generate`](crate::migrate::generate) found changes that lose data (drop a
    /// table or column, narrow a type, make a column `NOT NULL` without a default) and wrote
    /// nothing; [`GenerateOptions::allow_data_loss`](crate::migrate::GenerateOptions) opts in.
    #[error("migration not written, it would lose data: {}", list_losses(.changes))]
    DataLoss {
        /// Each refused change, naming its table and column.
        changes: Vec<LossyChange>,
    },
    /// Any other database error, with the database's code and message.
    #[error("database error: {source}")]
    Database {
        /// The database's error.
        source: Box<DbError>,
    },
}

impl Error {
    /// Whether retrying the whole transaction may succeed (serialization failure or deadlock).
    ///
    /// [`Session::transaction`](crate::Session::transaction) also retries a transaction whose
    /// connection was lost before its `COMMIT` was sent ([`Error::Connection`]), on a fresh
    /// connection; it never retries [`Error::CommitUnknown`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Serialization { .. })
    }

    /// Whether this is [`Error::CommitUnknown`]: the transaction may have committed.
    pub fn is_commit_unknown(&self) -> bool {
        matches!(self, Error::CommitUnknown { .. })
    }

    /// The error of a failed `COMMIT`: a lost connection ([`Error::Connection`]) becomes
    /// [`Error::CommitUnknown`] with it as source, since the server may have committed before
    /// the connection broke; any other error is the server's answer to the `COMMIT` (the
    /// transaction rolled back) and stays as it is.
    pub fn at_commit(self) -> Error {
        match self {
            e @ Error::Connection { .. } => Error::CommitUnknown {
                source: Box::new(e),
            },
            other => other,
        }
    }

    /// The database's error, for causes that come from the database: with its code
    /// (SQLSTATE, error number, result code) where the database gave one. A statement the
    /// database stopped ([`Error::Timeout`]) and a connection the server broke
    /// ([`Error::Connection`]) keep theirs too, as does a checkout that failed on the
    /// database's error (its source is that error, shared: `Arc<Error>`).
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Conflict { source }
            | Error::Constraint { source }
            | Error::Serialization { source }
            | Error::Database { source } => Some(source.as_ref()),
            Error::Timeout { source, .. } => source.as_deref(),
            Error::CommitUnknown { source } => source.db_error(),
            Error::Connection {
                source: Some(source),
                ..
            } => source.downcast_ref::<DbError>().or_else(|| {
                source
                    .downcast_ref::<std::sync::Arc<Error>>()
                    .and_then(|e| e.db_error())
            }),
            _ => None,
        }
    }

    /// The kind of constraint that refused the write, for [`Error::Conflict`] and
    /// [`Error::Constraint`] (and any error whose [`DbError`] names one).
    pub fn constraint_kind(&self) -> Option<ConstraintKind> {
        self.db_error().and_then(|e| e.kind)
    }

    /// Which limit ran out, for [`Error::Timeout`].
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        match self {
            Error::Timeout { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Which check failed, for [`Error::Integrity`].
    pub fn integrity_kind(&self) -> Option<IntegrityKind> {
        match self {
            Error::Integrity { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// An [`Error::Integrity`] of `kind` without an underlying error. Application code that
    /// refuses an operation for its own integrity rule (a hook, a transaction closure) uses
    /// [`IntegrityKind::Application`].
    pub fn integrity(kind: IntegrityKind, message: impl Into<String>) -> Self {
        Error::Integrity {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Integrity`] of `kind` caused by `source` (kept as the error's source).
    pub fn integrity_caused_by(
        kind: IntegrityKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Integrity {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Timeout`] of `kind` that ran out after `limit`, without a database error.
    pub fn timeout(kind: TimeoutKind, message: impl Into<String>, limit: Option<Duration>) -> Self {
        Error::Timeout {
            kind,
            message: message.into(),
            limit,
            source: None,
        }
    }

    /// Shorthand for a [`Error::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for a [`Error::Connection`] with a source.
    pub fn connection(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Connection {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

fn list_losses(changes: &[LossyChange]) -> String {
    let all: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    format!(
        "{} (pass GenerateOptions::allow_data_loss to write it anyway)",
        all.join("; ")
    )
}

fn describe_constraint(e: &DbError) -> String {
    let mut s = e.message.clone();
    if let Some(c) = &e.column {
        s.push_str(&format!(" (column `{c}`)"));
    } else if let Some(c) = &e.constraint {
        s.push_str(&format!(" (constraint `{c}`)"));
    }
    s
}

/// A database's own error: its code, message and, where the database says, constraint and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbError {
    /// The backend that raised it.
    pub backend: BackendKind,
    /// SQLSTATE (PostgreSQL), error number (MariaDB) or result code name (SQLite), as far as
    /// the driver exposes it.
    pub code: Option<String>,
    /// The database's message.
    pub message: String,
    /// The violated constraint's name, if reported.
    pub constraint: Option<String>,
    /// The table involved, if reported.
    pub table: Option<String>,
    /// The column involved, if reported or derivable from the message.
    pub column: Option<String>,
    /// The entity field of that column, filled in by the write path.
    pub field: Option<String>,
    /// The kind of constraint violated, set by the backend's classifier (serialized in snake
    /// case: `unique`, `not_null`, `foreign_key`, `check`, ...).
    pub kind: Option<ConstraintKind>,
}

impl DbError {
    /// A database error with only backend, code and message known.
    pub fn new(backend: BackendKind, code: Option<String>, message: impl Into<String>) -> Self {
        DbError {
            backend,
            code,
            message: message.into(),
            constraint: None,
            table: None,
            column: None,
            field: None,
            kind: None,
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "[{} {}] {}", self.backend, code, self.message),
            None => write!(f, "[{}] {}", self.backend, self.message),
        }
    }
}

impl std::error::Error for DbError {}

/// Field-keyed validation errors, serializable for API responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationErrors {
    /// Errors per field name; `"__entity"` holds entity-level errors.
    pub fields: BTreeMap<String, Vec<FieldError>>,
    /// Position of the offending entity in a bulk operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// One reason a field is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Machine-readable code, e.g. `length`, `unique`, `not_null`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ValidationErrors {
    /// Adds an error for `field`.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.fields
            .entry(field.into())
            .or_default()
            .push(FieldError {
                code: code.into(),
                message: message.into(),
            });
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.index {
            write!(f, "item {i}: ")?;
        }
        let mut first = true;
        for (field, errs) in &self.fields {
            for e in errs {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{field}: {}", e.message)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(code: &str) -> DbError {
        DbError {
            backend: BackendKind::Postgres,
            code: Some(code.into()),
            message: "duplicate key value violates unique constraint \"t_code_key\"".into(),
            constraint: Some("t_code_key".into()),
            table: Some("t".into()),
            column: Some("code".into()),
            field: Some("code".into()),
            kind: Some(ConstraintKind::Unique),
        }
    }

    #[test]
    fn conflict_names_the_column_and_keeps_the_code() {
        let e = Error::Conflict {
            source: Box::new(db("23505")),
        };
        assert!(e.to_string().contains("column `code`"), "{e}");
        assert_eq!(e.db_error().unwrap().code.as_deref(), Some("23505"));
        assert!(!e.is_retryable());
        assert!(Error::Serialization {
            source: Box::new(db("40001"))
        }
        .is_retryable());
    }

    #[test]
    fn kinds_serialize_and_show_in_snake_case() {
        let json = serde_json::to_value(db("23505")).unwrap();
        assert_eq!(json["kind"], "unique");
        assert_eq!(ConstraintKind::ForeignKey.to_string(), "foreign_key");
        assert_eq!(
            serde_json::to_value(TimeoutKind::TransactionDeadline).unwrap(),
            "transaction_deadline"
        );
        assert_eq!(
            IntegrityKind::MigrationChecksum.to_string(),
            "migration_checksum"
        );
    }

    #[test]
    fn timeouts_and_connections_keep_the_database_code() {
        let mut stopped = db("57014");
        stopped.kind = None;
        let e = Error::Timeout {
            kind: TimeoutKind::Statement,
            message: "canceling statement due to statement timeout".into(),
            limit: Some(Duration::from_millis(200)),
            source: Some(Box::new(stopped.clone())),
        };
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Statement));
        assert_eq!(e.db_error().unwrap().code.as_deref(), Some("57014"));
        assert!(std::error::Error::source(&e).is_some());
        let gone = Error::Connection {
            message: "terminating connection".into(),
            source: Some(Box::new(stopped.clone())),
        };
        assert_eq!(gone.db_error().unwrap().code.as_deref(), Some("57014"));
        // A checkout that failed on a database error (e.g. while preparing the connection).
        let checkout = Error::Connection {
            message: "no connection to postgres://h/d".into(),
            source: Some(Box::new(std::sync::Arc::new(Error::Database {
                source: Box::new(stopped),
            }))),
        };
        assert_eq!(checkout.db_error().unwrap().code.as_deref(), Some("57014"));
    }

    #[test]
    fn a_lost_commit_is_commit_unknown_and_keeps_its_source() {
        let mut gone = db("57P01");
        gone.kind = None;
        let lost = Error::Connection {
            message: "terminating connection due to administrator command".into(),
            source: Some(Box::new(gone)),
        };
        let e = lost.at_commit();
        assert!(e.is_commit_unknown() && !e.is_retryable(), "{e:?}");
        assert_eq!(e.db_error().unwrap().code.as_deref(), Some("57P01"));
        let source = std::error::Error::source(&e).unwrap();
        assert!(
            source.to_string().starts_with("connection error"),
            "{source}"
        );
        // The server answered the COMMIT: the transaction rolled back, the error stays.
        let refused = Error::Serialization {
            source: Box::new(db("40001")),
        }
        .at_commit();
        assert!(refused.is_retryable() && !refused.is_commit_unknown());
    }

    #[test]
    fn integrity_keeps_kind_message_and_source() {
        let cause: Box<dyn std::error::Error + Send + Sync> = "invalid UUID".into();
        let e = Error::integrity_caused_by(IntegrityKind::Undecodable, "Control: id", cause);
        assert_eq!(e.integrity_kind(), Some(IntegrityKind::Undecodable));
        assert_eq!(e.to_string(), "integrity: Control: id");
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("invalid UUID"));
        assert_eq!(Error::config("x", "y").integrity_kind(), None);
    }

    #[test]
    fn validation_errors_serialize_by_field() {
        let mut v = ValidationErrors::default();
        v.add("code", "length", "must be at most 8 characters");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["fields"]["code"][0]["code"], "length");
        assert_eq!(v.to_string(), "code: must be at most 8 characters");
    }
}
