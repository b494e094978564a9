//! Routing in a cluster: a reader session moves to the primary before a transaction a replica
//! must not run, a replica that lost its connection is left for another (a read it cut off is
//! run again there, once), and a commit records the handle's position for read-your-writes.

use super::*;

impl Session {
    /// Whether this session runs on a replica (a [`Db::reader`](crate::Db::reader) session
    /// that has not moved to the primary).
    pub fn on_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Makes this a session of a replica, advancing `causal` on commits.
    #[inline]
    pub(crate) fn routed(
        mut self,
        replica: Option<crate::cluster::Lease>,
        causal: Option<Arc<crate::cluster::Causal>>,
    ) -> Self {
        self.replica = replica;
        self.causal = causal;
        self
    }

    /// Before a top-level transaction: a reader session moves to the primary for good unless
    /// the transaction is read-only, not forced to the primary, and one a replica can run.
    /// Writes outside a transaction open one, so they move it too: no write is sent to a
    /// replica through the write path.
    pub(super) fn route(&mut self, options: &TxOptions) -> Result<()> {
        if self.replica.is_none()
            || (options.read_only && !options.primary && self.db.backend.replica_runs(options))
        {
            return Ok(());
        }
        self.move_to_primary()
    }

    /// Before a write outside a transaction: a reader session moves to the primary. (Inside a
    /// read-only transaction on a replica the write fails as it would on the primary.)
    pub(super) fn route_write(&mut self) -> Result<()> {
        if self.replica.is_some() && self.depth == 0 && !self.in_any_transaction() {
            return self.move_to_primary();
        }
        Ok(())
    }

    /// Swaps the replica connection for one of the primary.
    fn move_to_primary(&mut self) -> Result<()> {
        self.conn = self.db.primary_connection()?;
        self.replica = None;
        self.discard = false;
        self.discarded_raw_transaction = false;
        Ok(())
    }

    /// Replaces a replica connection a failure retired: the replica is banned and the session
    /// goes on on another eligible replica, or the primary.
    pub(super) fn reroute(&mut self) -> Result<()> {
        let Some(lease) = self.replica.take() else {
            return Ok(());
        };
        lease.ban();
        let position = self.causal.as_ref().map(|c| c.get()).unwrap_or_default();
        let other = self
            .db
            .cluster
            .as_ref()
            .and_then(|c| c.replica(&position, Some(&lease)));
        match other {
            Some((conn, next)) => {
                self.conn = conn;
                self.replica = Some(next);
                self.discard = false;
                self.discarded_raw_transaction = false;
                Ok(())
            }
            None => self.move_to_primary(),
        }
    }

    /// Runs a read that can be run again (a look-up by key, or a query held as a
    /// [`Rerunnable`](super::Rerunnable)). On a replica, outside any transaction, a read
    /// whose connection is lost is run once more within the same call on another eligible
    /// replica, or the primary: the lost replica is banned on the way ([`Session::reroute`]).
    /// Only reads come here; writes and transactions never run twice by this path.
    pub(super) fn read_again_elsewhere<T: crate::observe::Rows>(
        &mut self,
        mut read: impl FnMut(&mut AnyConnection) -> diesel::QueryResult<T>,
    ) -> Result<T> {
        match self.run_rows(&mut read) {
            Err(Error::Connection { .. })
                if self.replica.is_some() && self.depth == 0 && !self.in_any_transaction() =>
            {
                self.run_rows(read)
            }
            other => other,
        }
    }

    /// After a top-level commit of a transaction that may have written, in a cluster: the
    /// handle's position advances to the primary's (one round trip), so its later reads wait
    /// for a replica that replayed it. A position that cannot be read sends those reads to the
    /// primary instead.
    pub(super) fn note_commit(&mut self, options: &TxOptions) {
        if options.read_only || self.replica.is_some() {
            return;
        }
        if let Some(causal) = &self.causal {
            let backend = self.db.backend;
            let position = backend.commit_position(&mut self.conn).ok().flatten();
            causal.advance(backend, position);
        }
    }

    /// After a write that committed on its own (one statement outside any transaction): the
    /// handle's position advances as after a commit.
    pub(super) fn note_autocommit(&mut self) {
        if self.causal.is_some() && self.depth == 0 && !self.in_any_transaction() {
            self.note_commit(&TxOptions::new());
        }
    }
}
