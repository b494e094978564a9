//! MySQL / MariaDB errors: the error number and cause of a failure diesel reports only by
//! message (lost or killed connections, Galera's node outside the primary component,
//! deadlocks, lock waits, statements stopped at their time limit), and which failures retire
//! the connection.

use crate::classify::{self, between, Cause, Refinement};
use custodian_core::{BackendKind, ConstraintKind, Error};
use diesel::result::DatabaseErrorKind;

/// [`Backend::classify`](custodian_core::Backend::classify) for MySQL / MariaDB.
pub(super) fn classify(err: diesel::result::Error) -> Error {
    classify::classify(BackendKind::Mysql, err, |kind, info| {
        let m = info.message();
        let (code, cause) = match kind {
            DatabaseErrorKind::UniqueViolation => ("1062", None),
            DatabaseErrorKind::ForeignKeyViolation if m.contains("delete or update a parent") => {
                ("1451", None)
            }
            DatabaseErrorKind::ForeignKeyViolation => ("1452", None),
            DatabaseErrorKind::NotNullViolation => ("1048", None),
            DatabaseErrorKind::CheckViolation => ("3819", None),
            DatabaseErrorKind::SerializationFailure => ("1213", None),
            DatabaseErrorKind::ReadOnlyTransaction => ("1792", None),
            _ => match message_code(m) {
                Some((code, cause)) => (code, Some(cause)),
                None => ("", None),
            },
        };
        // "Duplicate entry 'X' for key 'code'": custodian's DDL names unique keys after
        // their column; MariaDB may prefix the table ("t.code").
        let key = between(m, "for key", '\'', '\'')
            .map(|k| k.rsplit('.').next().unwrap_or(k).to_string());
        let column = match &key {
            Some(k) if k != "PRIMARY" => Some(k.clone()),
            // "... CONSTRAINT `t_c_fkey` FOREIGN KEY (`c`) REFERENCES ..."
            _ => between(m, "Column", '\'', '\'')
                .or_else(|| between(m, "FOREIGN KEY", '`', '`'))
                .map(str::to_string),
        };
        Refinement {
            code: (!code.is_empty()).then(|| code.to_string()),
            column,
            constraint: key,
            cause,
            kind: (code == "4025").then_some(ConstraintKind::Check),
            ..Refinement::default()
        }
    })
}

/// [`Backend::discards_connection_after`](custodian_core::Backend::discards_connection_after)
/// for MySQL / MariaDB.
pub(super) fn discards_connection_after(err: &Error) -> bool {
    // A statement whose result breaks off part-way (a deadlock or lock wait timeout found
    // while rows are being read, a statement stopped at its time limit) leaves diesel's
    // cached prepared statement unreset, and its next execution blocks for ever in
    // `mysql_stmt_execute`. Such a failure cannot be told from one before the first row,
    // so each of them retires the connection, as a lost one does.
    matches!(
        err,
        Error::Connection { .. }
            | Error::Serialization { .. }
            | Error::Timeout {
                source: Some(_),
                ..
            }
    )
}

/// The error number and cause of a MariaDB / MySQL error diesel reports only by message (its
/// MySQL driver keeps the number to itself apart from a few kinds). Matched without regard to
/// case, since the server's and the two client libraries' wordings differ.
fn message_code(message: &str) -> Option<(&'static str, Cause)> {
    let m = message.to_ascii_lowercase();
    let has = |s: &str| m.contains(s);
    Some(if has("lock wait timeout exceeded") {
        ("1205", Cause::Serialization)
    } else if has("deadlock found") {
        ("1213", Cause::Serialization)
    } else if has("max_statement_time exceeded") {
        ("1969", Cause::Timeout)
    } else if m.starts_with("constraint") && has("failed for") {
        ("4025", Cause::Constraint)
    } else if has("server has gone away") {
        // CR_SERVER_GONE_ERROR: the client library found the connection closed.
        ("2006", Cause::Connection)
    } else if has("lost connection") && has("system error") {
        // CR_SERVER_LOST_EXTENDED: "Lost connection to server at '...', system error: N".
        ("2055", Cause::Connection)
    } else if has("lost connection") {
        // CR_SERVER_LOST: the connection broke during a query.
        ("2013", Cause::Connection)
    } else if has("connection was killed") {
        // ER_CONNECTION_KILLED: KILL of this connection.
        ("1927", Cause::Connection)
    } else if has("wsrep has not yet prepared node") {
        // ER_UNKNOWN_COM_ERROR as Galera sends it: the node is not synced / not in the
        // primary component. The connection is useless until it is; the cluster bans the node.
        ("1047", Cause::Connection)
    } else if has("server shutdown in progress") {
        // ER_SERVER_SHUTDOWN.
        ("1053", Cause::Connection)
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::super::Mysql;
    use custodian_core::{Backend, Error};
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    fn unknown(message: &str) -> Error {
        Mysql.classify(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(message.to_string()),
        ))
    }

    /// The cause and code of `message` as MariaDB reports it, and in upper and lower case.
    fn each_case(message: &str) -> [String; 3] {
        [
            message.to_string(),
            message.to_uppercase(),
            message.to_lowercase(),
        ]
    }

    #[test]
    fn a_lost_server_is_a_connection_error() {
        for (message, code) in [
            ("Server has gone away", "2006"),
            ("MySQL server has gone away", "2006"),
            ("Lost connection to server during query", "2013"),
            ("Lost connection to MySQL server during query", "2013"),
            (
                "Lost connection to server at 'handshake: reading initial communication packet', system error: 104",
                "2055",
            ),
            ("Connection was killed", "1927"),
            ("Server shutdown in progress", "1053"),
            ("WSREP has not yet prepared node for application use", "1047"),
        ] {
            for message in each_case(message) {
                let err = unknown(&message);
                assert!(Mysql.discards_connection_after(&err), "{message}");
                assert_eq!(err.db_error().unwrap().code.as_deref(), Some(code), "{message}");
                let Error::Connection {
                    source: Some(source),
                    ..
                } = &err
                else {
                    panic!("{message}: expected Connection, got {err:?}");
                };
                // The source is the DbError.
                let db = source.downcast_ref::<custodian_core::DbError>().unwrap();
                assert_eq!(db.code.as_deref(), Some(code), "{message}");
            }
        }
        let other = unknown("Table 't' doesn't exist");
        assert!(matches!(other, Error::Database { .. }));
        assert!(!Mysql.discards_connection_after(&other));
    }

    #[test]
    fn deadlocks_and_lock_waits_are_retryable_and_retire_the_connection() {
        for (message, code) in [
            (
                "Deadlock found when trying to get lock; try restarting transaction",
                "1213",
            ),
            (
                "Lock wait timeout exceeded; try restarting transaction",
                "1205",
            ),
        ] {
            for message in each_case(message) {
                let err = unknown(&message);
                assert!(err.is_retryable(), "{message}: {err:?}");
                assert_eq!(err.db_error().unwrap().code.as_deref(), Some(code));
                assert!(Mysql.discards_connection_after(&err), "{message}");
            }
        }
        // diesel's own kind for 1213.
        let err = Mysql.classify(DieselError::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new("Deadlock found when trying to get lock".to_string()),
        ));
        assert!(err.is_retryable() && Mysql.discards_connection_after(&err));
        let stopped = unknown("Query execution was interrupted (max_statement_time exceeded)");
        assert_eq!(
            stopped.timeout_kind(),
            Some(custodian_core::TimeoutKind::Statement)
        );
        assert!(Mysql.discards_connection_after(&stopped));
        // A constraint refusal arrives before any row: the connection stays.
        let refused = Mysql.classify(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("Duplicate entry 'A' for key 'code'".to_string()),
        ));
        assert!(!Mysql.discards_connection_after(&refused));
    }

    #[test]
    fn a_failed_commit_whose_rollback_failed_is_classified_by_the_commit_error() {
        let lost = |m: &str| -> Box<DieselError> {
            Box::new(DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(m.to_string()),
            ))
        };
        let err = Mysql.classify(DieselError::RollbackErrorOnCommit {
            commit_error: lost("Lost connection to server during query"),
            rollback_error: lost("Server has gone away"),
        });
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
        assert!(err.at_commit().is_commit_unknown());
        let err = Mysql.classify(DieselError::RollbackErrorOnCommit {
            commit_error: lost("Deadlock found when trying to get lock"),
            rollback_error: lost("Server has gone away"),
        });
        assert!(err.at_commit().is_retryable());
    }
}
