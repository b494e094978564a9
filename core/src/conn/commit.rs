//! Committing with statements in the same round trip: `statements; COMMIT` sent as one batch,
//! with diesel's transaction manager kept in step as its own `COMMIT` keeps it.
//!
//! The batch is atomic with the commit: when a statement of it fails, the server runs none of
//! the rest (the `COMMIT` included) and the transaction is rolled back; when the connection
//! breaks while the batch is in flight, either all of it committed or none did, so a cut-off
//! commit is settled as a plain one is (its audit records are found or not).

use super::AnyConnection;
use diesel::connection::{
    Connection, SimpleConnection, TransactionDepthChange, TransactionManager,
    TransactionManagerStatus,
};
use diesel::QueryResult;

type Manager = <AnyConnection as Connection>::TransactionManager;

/// Sends `statements` and `COMMIT` of the open top-level transaction in one round trip. On
/// success the transaction depth drops as after diesel's commit; on failure the transaction is
/// rolled back, and a failed rollback leaves the manager in error (the pool then discards the
/// connection).
pub fn commit_after(conn: &mut AnyConnection, statements: &str) -> QueryResult<()> {
    let depth = Manager::transaction_manager_status_mut(conn).transaction_depth()?;
    if depth.map(|d| d.get()) != Some(1) {
        return Err(diesel::result::Error::NotInTransaction);
    }
    let mut batch = String::with_capacity(statements.len() + 8);
    batch.push_str(statements);
    batch.push_str("; COMMIT");
    match conn.batch_execute(&batch) {
        Ok(()) => {
            if let TransactionManagerStatus::Valid(valid) =
                Manager::transaction_manager_status_mut(conn)
            {
                // The connection may have seen the transaction end already: fine.
                let _ = valid.change_transaction_depth(TransactionDepthChange::DecreaseDepth);
            }
            Ok(())
        }
        Err(commit_error) => match Manager::rollback_transaction(conn) {
            Ok(()) => Err(commit_error),
            Err(rollback_error) => {
                Manager::transaction_manager_status_mut(conn).set_in_error();
                Err(diesel::result::Error::RollbackErrorOnCommit {
                    rollback_error: Box::new(rollback_error),
                    commit_error: Box::new(commit_error),
                })
            }
        },
    }
}
