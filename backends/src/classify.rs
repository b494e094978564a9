//! Error classification shared by the backends: diesel's error kinds map to custodian's
//! [`Error`] causes; each backend adds its code and what it can read from its messages.

use custodian_core::{BackendKind, ConstraintKind, DbError, Error, IntegrityKind, TimeoutKind};
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};

/// A backend's refinement of a database error: code, column, and a cause override.
#[derive(Debug, Default)]
pub struct Refinement {
    /// The database's code (SQLSTATE, errno, result code name).
    pub code: Option<String>,
    /// The column, when the message names it.
    pub column: Option<String>,
    /// The table, when the message names it.
    pub table: Option<String>,
    /// The constraint, when the message names it.
    pub constraint: Option<String>,
    /// A cause that diesel's kind does not show (deadlock, lock timeout, statement timeout).
    pub cause: Option<Cause>,
    /// The constraint kind, when diesel's kind does not show it (e.g. MariaDB check failures).
    pub kind: Option<ConstraintKind>,
}

/// Causes a backend can recognise from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Retryable: deadlock, lock wait timeout, busy database.
    Serialization,
    /// The database stopped the statement at its time limit ([`TimeoutKind::Statement`]; the
    /// session makes it [`TimeoutKind::TransactionDeadline`] when the limit was the deadline's).
    Timeout,
    /// A constraint (not null, foreign key, check) refused the write.
    Constraint,
    /// A unique constraint refused the write.
    Conflict,
    /// The connection is gone.
    Connection,
}

/// Classifies a diesel error, with `refine` reading backend-specific details from the kind
/// and the database's error information.
///
/// A failed `COMMIT` whose rollback failed too (diesel's `RollbackErrorOnCommit`) is
/// classified by the commit's error: a lost connection stays [`Error::Connection`], which the
/// session reports as [`Error::CommitUnknown`].
pub fn classify(
    backend: BackendKind,
    err: DieselError,
    refine: impl Fn(&DatabaseErrorKind, &dyn DatabaseErrorInformation) -> Refinement,
) -> Error {
    classify_with(backend, err, &refine)
}

type Refine<'a> = &'a dyn Fn(&DatabaseErrorKind, &dyn DatabaseErrorInformation) -> Refinement;

fn classify_with(backend: BackendKind, err: DieselError, refine: Refine<'_>) -> Error {
    match err {
        DieselError::RollbackErrorOnCommit { commit_error, .. } => {
            classify_with(backend, *commit_error, refine)
        }
        DieselError::DatabaseError(kind, info) => {
            let r = refine(&kind, info.as_ref());
            let db = Box::new(DbError {
                backend,
                code: r.code,
                message: info.message().to_string(),
                constraint: info.constraint_name().map(str::to_string).or(r.constraint),
                table: info.table_name().map(str::to_string).or(r.table),
                column: info.column_name().map(str::to_string).or(r.column),
                field: None,
                kind: match kind {
                    DatabaseErrorKind::UniqueViolation => Some(ConstraintKind::Unique),
                    DatabaseErrorKind::NotNullViolation => Some(ConstraintKind::NotNull),
                    DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::RestrictViolation => Some(ConstraintKind::ForeignKey),
                    DatabaseErrorKind::CheckViolation => Some(ConstraintKind::Check),
                    DatabaseErrorKind::ExclusionViolation => Some(ConstraintKind::Exclusion),
                    _ => r.kind,
                },
            });
            let cause = r.cause.or(match kind {
                DatabaseErrorKind::UniqueViolation => Some(Cause::Conflict),
                DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation => Some(Cause::Constraint),
                DatabaseErrorKind::SerializationFailure => Some(Cause::Serialization),
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    Some(Cause::Connection)
                }
                _ => None,
            });
            match cause {
                Some(Cause::Conflict) => Error::Conflict { source: db },
                Some(Cause::Constraint) => Error::Constraint { source: db },
                Some(Cause::Serialization) => Error::Serialization { source: db },
                Some(Cause::Timeout) => Error::Timeout {
                    kind: TimeoutKind::Statement,
                    message: db.message.clone(),
                    limit: None,
                    source: Some(db),
                },
                Some(Cause::Connection) => Error::Connection {
                    message: db.message.clone(),
                    source: Some(db),
                },
                None => Error::Database { source: db },
            }
        }
        DieselError::NotFound => Error::NotFound {
            entity: "row",
            key: "(query)".into(),
        },
        DieselError::BrokenTransactionManager => Error::Connection {
            message: "the connection's transaction state is broken; it will be discarded".into(),
            source: None,
        },
        DieselError::DeserializationError(e) => Error::Integrity {
            kind: IntegrityKind::Undecodable,
            message: format!("a stored value could not be read: {e}"),
            source: Some(e),
        },
        DieselError::SerializationError(e) => Error::Integrity {
            kind: IntegrityKind::Unencodable,
            message: format!("a value could not be written: {e}"),
            source: Some(e),
        },
        other => Error::Database {
            source: Box::new(DbError::new(backend, None, other.to_string())),
        },
    }
}

/// Text between the first pair of `open`/`close` after `after` in `message`.
pub fn between<'a>(message: &'a str, after: &str, open: char, close: char) -> Option<&'a str> {
    let rest = &message[message.find(after)? + after.len()..];
    let start = rest.find(open)? + open.len_utf8();
    let end = rest[start..].find(close)? + start;
    Some(&rest[start..end])
}

/// Maps a connection failure to [`Error::Connection`], naming the redacted URL. The driver's
/// message is kept only with the URL's secrets scrubbed from it, as message and as source, so
/// no error chain can show them.
pub fn connection_error(url: &custodian_core::DatabaseUrl, err: diesel::ConnectionError) -> Error {
    let cause = url.scrub(err.to_string().trim());
    Error::Connection {
        message: format!("could not connect to {}: {cause}", url.redacted()),
        source: Some(cause.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_extracts_names() {
        assert_eq!(
            between("Key (code)=(A) already exists.", "Key", '(', ')'),
            Some("code")
        );
        assert_eq!(
            between("Duplicate entry 'A' for key 'code'", "for key", '\'', '\''),
            Some("code")
        );
        assert_eq!(between("nothing here", "Key", '(', ')'), None);
    }
}
