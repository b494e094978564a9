//! What the modules below the session (the audit trail, field encryption, migrations) need
//! from one: SQL on its connection, in its dialect, inside its transactions.
//!
//! [`Session`](crate::Session) is the one implementation. Taking a `Context` instead of a
//! `Session` keeps those modules below the session in the crate's layering: the session uses
//! them (its write path appends and seals audit records, seals encrypted fields), and they
//! never name it. The trait is sealed; user code passes a `&mut Session` where a function asks
//! for `&mut impl Context`.

use crate::backend::Backend;
use crate::conn::AnyConnection;
use crate::error::Result;
use crate::tx::TxOptions;
use diesel::QueryResult;

/// SQL on a session's connection, in its dialect, inside its transactions. Implemented by
/// [`Session`](crate::Session) only.
pub trait Context: sealed::Sealed {
    /// The dialect of the connection.
    fn backend(&self) -> &'static dyn Backend;

    /// The raw connection, for what takes one directly (diesel's migration harness); errors
    /// of statements run on it are not classified.
    fn connection(&mut self) -> &mut AnyConnection;

    /// Runs `f` on the connection (checking the open transaction's deadline first) and
    /// classifies its error with the backend.
    fn run<T>(&mut self, f: impl FnOnce(&mut AnyConnection) -> QueryResult<T>) -> Result<T>;

    /// Executes raw SQL (DDL, maintenance); returns affected rows.
    fn execute_sql(&mut self, sql: &str) -> Result<usize> {
        use diesel::RunQueryDsl;
        self.run(|c| diesel::sql_query(sql).execute(c))
    }

    /// Runs `f` in a transaction with `options` (a savepoint inside an open one), retried as
    /// the options' policy allows.
    fn transaction_with<T>(
        &mut self,
        options: &TxOptions,
        f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<T>
    where
        Self: Sized;

    /// Nesting depth: 0 outside a transaction, 1 in a transaction, more in savepoints.
    fn transaction_depth(&self) -> u32;

    /// Appends the audit records the open transaction holds back until commit, so that what
    /// runs next reads the whole trail.
    fn flush_audit(&mut self) -> Result<()>;
}

pub(crate) mod sealed {
    /// Only the crate implements [`Context`](super::Context).
    pub trait Sealed {}
}
