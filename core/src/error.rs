//! The one [`Error`] type of custodian, classified so callers can act on the cause.
//!
//! Database errors are classified by the backend that produced them (see
//! [`Backend::classify`](crate::backend::Backend::classify)) and keep the database's code and
//! message in a [`DbError`]. Serialization failures and deadlocks are marked retryable;
//! [`Db::transaction`](crate::Db::transaction) retries them under its
//! [`RetryPolicy`](crate::RetryPolicy).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

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
    /// An operation ran out of time (pool checkout, statement or transaction deadline).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The configuration is invalid; `field` names the offending setting.
    #[error("invalid configuration `{field}`: {message}")]
    Config {
        /// Dotted path of the setting, e.g. `databases.main.pool.max_size`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Data read from the database is not what the entity expects, or an integrity check failed.
    #[error("integrity: {0}")]
    Integrity(String),
    /// [`migrate::generate`](crate::migrate::generate) found changes that lose data (drop a
    /// table or column, narrow a type, make a column `NOT NULL` without a default) and wrote
    /// nothing; [`GenerateOptions::allow_data_loss`](crate::migrate::GenerateOptions) opts in.
    #[error("migration not written, it would lose data: {}", list_losses(.changes))]
    DataLoss {
        /// Each refused change, naming its table and column.
        changes: Vec<crate::migrate::LossyChange>,
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
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Serialization { .. })
    }

    /// The database's error, for causes that come from the database.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Conflict { source }
            | Error::Constraint { source }
            | Error::Serialization { source }
            | Error::Database { source } => Some(source.as_ref()),
            _ => None,
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

fn list_losses(changes: &[crate::migrate::LossyChange]) -> String {
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
    /// The kind of constraint violated: `unique`, `not_null`, `foreign_key`, `check`.
    pub kind: Option<&'static str>,
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
            kind: Some("unique"),
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
    fn validation_errors_serialize_by_field() {
        let mut v = ValidationErrors::default();
        v.add("code", "length", "must be at most 8 characters");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["fields"]["code"][0]["code"], "length");
        assert_eq!(v.to_string(), "code: must be at most 8 characters");
    }
}
