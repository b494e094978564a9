//! Settling a commit cut off mid-flight: whether a read-write transaction whose connection
//! broke while `COMMIT` was in flight committed, found out instead of guessed.
//!
//! Before sending `COMMIT`, a transaction that can be looked up later notes two things: what
//! it left to look for in the same commit (its audit records, or its row in
//! `custodian_tx_outcome`, both keyed by its transaction id), and the server session its
//! connection talks to ([`Backend::server_session`](crate::backend::Backend::server_session),
//! asked once per connection). When the connection then breaks before the answer to `COMMIT`
//! arrives, the session, on a fresh connection:
//!
//! 1. ends the old server session (PostgreSQL `pg_terminate_backend`, MariaDB `KILL
//!    CONNECTION`) and waits until it is gone from the server's session list. The server
//!    removes a session only after its transaction ended: committed, if the `COMMIT` went
//!    through, else rolled back by the termination. From then on the transaction's outcome
//!    cannot change;
//! 2. only then looks for the transaction's records. Found: it committed, and the closure's
//!    result is returned. Not found: it rolled back, and the closure runs again like after a
//!    connection lost before `COMMIT`.
//!
//! Step 1 runs only on the server that held the old session: a MariaDB session name carries
//! its server (host, port, start), and a fresh connection that reached another server (a
//! failover target) neither ends nor looks up anything there, where the same connection id
//! names an unrelated session: the outcome is [`Error::CommitUnknown`]. A server restarted
//! since took the session with it: it counts as ended.
//!
//! A Galera cluster settles from another node instead: once the node the commit was cut off
//! on has left the primary component (as the node reached now sees it), it commits nothing
//! more, and its write set, if it replicated one, was ordered before the view that excluded
//! it, which the reached node has applied before a read with `wsrep_sync_wait`. Step 1 is then
//! waiting for the eviction (the cluster's `evs.suspect_timeout`: keep the retry budget above
//! it); step 2 looks on the reached node.
//!
//! Step 1 is what makes the lookup safe. A lookup while the old session still runs (its
//! `COMMIT` queued behind a slow commit, a deferred trigger, a lock) would see nothing and
//! report "not committed", and the transaction would commit afterwards: the closure's effect
//! twice. Waiting for the session to end closes that window on both servers. A session whose
//! client is gone without a word (a network partition) is ended by step 1 instead of being
//! waited for until TCP keepalive notices.
//!
//! The whole settlement runs within the retry policy's time budget (`max_elapsed_ms`, counted
//! from when the commit was cut off; at least 1 s), retrying a failed reconnect with its
//! backoff. Only when it cannot finish in time is the outcome [`Error::CommitUnknown`].
//!
//! SQLite is embedded: no connection sits between the caller and the commit, which returns or
//! fails, and a failed commit rolled back (the journal guarantees it). Its backend names no
//! server session, so nothing is noted and nothing is settled there.

use super::*;
use crate::tx::RetryPolicy;

/// What a cut-off commit is settled by: noted before `COMMIT` is sent.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    tx_id: String,
    /// The transaction wrote audit records (else an outcome row).
    audited: bool,
    /// The server session that ran it.
    server_session: String,
}

impl Pending {
    /// Whether it is settled by audit records (else by an outcome row).
    pub(super) fn audited(&self) -> bool {
        self.audited
    }
}

/// One attempt of a top-level transaction, as the retry loop sees it.
pub(super) enum Attempt<T> {
    /// It committed, failed or was rolled back: nothing left to settle.
    Done(Result<T>),
    /// The connection broke while `COMMIT` was in flight, after the closure returned `value`.
    CutOff {
        value: T,
        /// The [`Error::CommitUnknown`] the commit saw.
        error: Error,
        /// How to settle it, when the transaction can be looked up.
        pending: Option<Pending>,
    },
}

/// What spans and logs show as the SQL of audit records sent with `COMMIT`: their values are
/// written into the statement's text, and the SQL field never carries values.
const INLINED_RECORDS: &str =
    "INSERT INTO custodian_audit (the transaction's audit records, values not shown); COMMIT";

/// How often the session list is read while the old session ends.
const POLL: Duration = Duration::from_millis(10);

/// How often a Galera node's view of the cluster is read while a lost node is evicted (which
/// takes the cluster's `evs.suspect_timeout`, seconds).
const NODE_POLL: Duration = Duration::from_millis(50);

impl Session {
    /// Before `COMMIT` of a read-write transaction: writes its outcome row when asked to (and
    /// it has no audit records to be found by), and notes what settles a cut-off commit.
    /// `None` when nothing could settle it (read-only, unaudited and not opted in, SQLite).
    pub(super) fn prepare_outcome(
        &mut self,
        options: &TxOptions,
        audited: bool,
    ) -> Result<Option<Pending>> {
        if options.read_only {
            return Ok(None);
        }
        // An explicit `record_outcome(false)` turns settling off, audited or not.
        let record = match options.record_outcome {
            Some(false) => return Ok(None),
            Some(true) => true,
            None => self.db.config.commit_outcome.record,
        };
        if !audited && !record {
            return Ok(None);
        }
        let Some(server_session) = self.server_session()? else {
            return Ok(None);
        };
        let tx_id = self.tx_id.clone().unwrap_or_default();
        if !audited {
            let at = now_utc();
            self.run(|c| crate::outcome::record(c, &tx_id, at))?;
        }
        Ok(Some(Pending {
            tx_id,
            audited,
            server_session,
        }))
    }

    /// Commits the open top-level transaction. On a Galera cluster, a read-write transaction
    /// known to have written (`written`: audit records or an outcome row) notes the
    /// connection's [written mark](crate::backend::Backend::commit_noting_written) in the same
    /// round trip, for [`Session::confirm_written`]; returns whether it did. `inline`: the
    /// transaction's audit records as one statement ([`Session::inline_audit`]) and how many,
    /// sent in the same round trip as `COMMIT`.
    pub(super) fn commit_top(
        &mut self,
        options: &TxOptions,
        written: bool,
        inline: Option<&(String, usize)>,
    ) -> QueryResult<bool> {
        if written && !options.read_only && self.db.config.cluster.galera.is_some() {
            return self.db.backend.commit_noting_written(&mut self.conn);
        }
        if let Some((statement, records)) = inline {
            if let Some(probe) = crate::observe::Probe::of(&mut self.conn) {
                probe.conceal_next(INLINED_RECORDS);
            }
            crate::conn::commit_after(&mut self.conn, statement)?;
            crate::observe::audit_records(*records);
            return Ok(false);
        }
        <AnyConnection as Connection>::TransactionManager::commit_transaction(&mut *self.conn)
            .map(|()| false)
    }

    /// After a `COMMIT` that answered OK and noted the written mark just before it (`noted`):
    /// the mark must have moved since, read with the noted one in one round trip. Unchanged, the
    /// transaction had been ended behind the client's back (a Galera brute-force abort no
    /// statement reported) and the `COMMIT` committed nothing: a retryable
    /// [`Error::Serialization`]. Failing to read the marks is a connection lost at `COMMIT`,
    /// settled like one.
    pub(super) fn confirm_written(&mut self, noted: bool) -> Result<()> {
        if !noted {
            return Ok(());
        }
        let backend = self.db.backend;
        let (before, after) = self
            .run(|c| backend.written_marks(c))
            .map_err(|e| match e {
                e @ Error::Connection { .. } => e,
                other => Error::Connection {
                    message: "the commit could not be confirmed".into(),
                    source: Some(Box::new(other)),
                },
            })?;
        let Some(before) = before else {
            return Ok(());
        };
        if after.as_deref() == Some(before.as_str()) {
            return Err(Error::Serialization {
                source: Box::new(crate::error::DbError::new(
                    backend.kind(),
                    None,
                    format!(
                        "COMMIT answered OK but replicated no write set (the last one written \
                         is still {before}): the cluster had aborted the transaction"
                    ),
                )),
            });
        }
        Ok(())
    }

    /// The server session of the current connection, asked once per connection: kept on the
    /// connection's probe (the state custodian keeps per connection), so later sessions on the
    /// same pooled connection do not ask again (one round trip less per audited transaction of
    /// a session per request), and a replaced connection, with a probe of its own, is asked
    /// afresh.
    fn server_session(&mut self) -> Result<Option<String>> {
        if let Some(known) =
            crate::observe::Probe::of(&mut self.conn).and_then(|p| p.server_session())
        {
            return Ok(Some(known.to_string()));
        }
        let backend = self.db.backend;
        let named = self.run(|c| backend.server_session(c))?;
        if let (Some(name), Some(probe)) = (&named, crate::observe::Probe::of(&mut self.conn)) {
            probe.remember_server_session(name);
        }
        Ok(named)
    }

    /// Settles a cut-off commit: `Some(true)` committed, `Some(false)` rolled back, `None`
    /// when the server could not be asked within the budget (see the module doc).
    pub(super) fn settle(&mut self, pending: &Pending, policy: &RetryPolicy) -> Option<bool> {
        let budget = Duration::from_millis(policy.max_elapsed_ms.max(1_000));
        let deadline = Instant::now() + budget;
        let mut attempt = 1;
        loop {
            match self.look(pending, deadline) {
                Ok(found) => return Some(found),
                Err(e) if matches!(e, Error::Connection { .. }) || e.is_retryable() => {
                    let backoff = policy.delay(attempt);
                    if Instant::now() + backoff >= deadline {
                        return None;
                    }
                    std::thread::sleep(backoff);
                    attempt += 1;
                }
                // The server answered, but not what settles it (e.g. not allowed to end the
                // old session): the outcome stays unknown.
                Err(_) => return None,
            }
        }
    }

    /// One try of [`Session::settle`]: end the old session, wait until it is gone, look. On
    /// a Galera cluster, when the session reached another node than the one the commit was
    /// cut off on: wait until that node has left the cluster, then look.
    fn look(&mut self, pending: &Pending, deadline: Instant) -> Result<bool> {
        let backend = self.db.backend;
        let id = pending.server_session.as_str();
        if self.db.config.cluster.galera.is_some() {
            while let Some(left) = self.run(|c| backend.session_node_left(c, id))? {
                if left {
                    return self.recorded(pending);
                }
                if Instant::now() + NODE_POLL >= deadline {
                    return Err(Error::Timeout {
                        kind: TimeoutKind::TransactionDeadline,
                        message: format!(
                            "the Galera node of server session {id} is still in the cluster"
                        ),
                        limit: None,
                        source: None,
                    });
                }
                std::thread::sleep(NODE_POLL);
            }
        }
        self.run(|c| backend.end_server_session(c, id))?;
        while self.run(|c| backend.server_session_exists(c, id))? {
            if Instant::now() + POLL >= deadline {
                return Err(Error::Timeout {
                    kind: TimeoutKind::TransactionDeadline,
                    message: format!("server session {id} did not end"),
                    limit: None,
                    source: None,
                });
            }
            std::thread::sleep(POLL);
        }
        self.recorded(pending)
    }

    /// Whether the transaction's records (audit records, or its outcome row) are there.
    fn recorded(&mut self, pending: &Pending) -> Result<bool> {
        let tx_id = pending.tx_id.as_str();
        if pending.audited {
            self.run(|c| crate::audit::chain::recorded(c, tx_id))
        } else {
            self.run(|c| crate::outcome::recorded(c, tx_id))
        }
    }

    /// After a commit that went through: now and then (one commit in 1,024) deletes outcome
    /// rows past the retention period. A failure is ignored: the next prune catches up.
    pub(super) fn prune_outcomes_now_and_then(&mut self) {
        if crate::tx::random_below(1_024) != 0 {
            return;
        }
        let _ = self.prune_outcomes();
    }

    /// Deletes outcome rows past the retention period; returns how many.
    pub(crate) fn prune_outcomes(&mut self) -> Result<usize> {
        let retention = self.db.config.commit_outcome.retention_secs;
        let before = now_utc()
            - chrono::Duration::seconds(i64::try_from(retention).unwrap_or(i64::MAX / 1_000));
        self.run(|c| crate::outcome::prune(c, before))
    }
}
