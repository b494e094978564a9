//! A session's part in a coordinated transaction: a branch that ends in a two-phase prepare
//! (or, for the one participant that cannot prepare, in the coordinator's one-phase commit)
//! instead of `transaction_with`'s commit. Writes inside a branch take the one write path as
//! in any transaction; the branch's audit records are appended before it is prepared, so each
//! database's trail commits with its own branch.

use super::*;
use crate::backend::{TwoPhase, Xid};

impl Session {
    /// Opens a branch: branch `xid` of a two-phase participant, or a plain transaction for the
    /// participant committed in one phase. Its audit records carry `tx_id`, the coordinated
    /// transaction's id, in every database.
    pub(crate) fn begin_branch(
        &mut self,
        two_phase: Option<&dyn TwoPhase>,
        options: &TxOptions,
        xid: &Xid,
        tx_id: &str,
    ) -> Result<()> {
        if self.in_any_transaction() {
            return Err(Error::config(
                "transaction",
                "a coordinated transaction needs sessions outside any transaction",
            ));
        }
        self.usable_connection()?;
        let began = match two_phase {
            Some(tp) => tp.begin(&mut self.conn, options, xid),
            None => self.db.backend.begin(&mut self.conn, options),
        };
        if let Err(e) = began {
            let err = self.failed(e);
            let _ = self.end_transaction(options);
            return Err(err);
        }
        self.depth = 1;
        self.tx_id = Some(tx_id.to_string());
        self.next_ordinal = 0;
        self.deadline = options.timeout.map(|t| (Instant::now() + t, t));
        if let Some(limit) = options.timeout {
            let backend = self.db.backend;
            if let Err(e) = backend.set_transaction_timeout(&mut self.conn, limit) {
                let err = self.failed(e);
                self.abandon_branch(two_phase, options, xid);
                return Err(err);
            }
        }
        Ok(())
    }

    /// Appends the branch's held-back audit records and prepares it. A connection lost while
    /// the prepare was in flight is [`Error::CommitUnknown`]: the server may have prepared it.
    /// Afterwards the session is outside any transaction, prepared or not.
    pub(crate) fn prepare_branch(
        &mut self,
        two_phase: &dyn TwoPhase,
        options: &TxOptions,
        xid: &Xid,
    ) -> Result<()> {
        // A set write that failed half-done in the branch dooms it, as it dooms a transaction.
        let ready = self
            .check_doomed(1)
            .and_then(|()| self.check_deadline())
            .and_then(|()| self.flush_audit())
            .and_then(|()| self.usable_connection());
        if let Err(e) = ready {
            self.abandon_branch(Some(two_phase), options, xid);
            return Err(e);
        }
        let prepared = two_phase
            .prepare(&mut self.conn, xid)
            .map_err(|e| self.failed(e).at_commit());
        // The outcome is the coordinator's; evicting now means a reader may cache the old row
        // again before `COMMIT PREPARED` (until the TTL).
        self.evict_touched();
        let reset = self.end_transaction(options);
        prepared?;
        reset
    }

    /// Appends the held-back audit records and commits the one-phase branch; on failure it is
    /// rolled back (a connection lost during `COMMIT` is [`Error::CommitUnknown`]).
    pub(crate) fn commit_branch(&mut self, options: &TxOptions) -> Result<()> {
        let committed = self
            .check_doomed(1)
            .and_then(|()| self.check_deadline())
            .and_then(|()| self.flush_audit())
            .and_then(|()| self.usable_connection())
            .and_then(|()| {
                <AnyConnection as Connection>::TransactionManager::commit_transaction(
                    &mut *self.conn,
                )
                .map_err(|e| self.failed(e).at_commit())
            });
        match &committed {
            Ok(()) => self.evict_touched(),
            Err(e) if e.is_commit_unknown() => self.evict_touched(),
            Err(_) => self.rollback_quietly(),
        }
        let reset = self.end_transaction(options);
        committed?;
        reset
    }

    /// Rolls back a branch that was not prepared. Failures are ignored: a connection that
    /// cannot roll back is discarded, and the server rolls back what it held.
    pub(crate) fn abandon_branch(
        &mut self,
        two_phase: Option<&dyn TwoPhase>,
        options: &TxOptions,
        xid: &Xid,
    ) {
        match two_phase {
            Some(tp) if self.depth > 0 => {
                if let Err(e) = tp.rollback_open(&mut self.conn, xid) {
                    let _ = self.failed(e);
                }
            }
            Some(_) => {}
            None => self.rollback_quietly(),
        }
        let _ = self.end_transaction(options);
    }
}
