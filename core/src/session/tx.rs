//! Transactions: joining or opening one, retry of serialization failures, savepoints, and
//! the end-of-transaction clean-up (pending audit records, remembered rows, session settings).

use super::outcome::Attempt;
use super::*;

impl Session {
    /// Whether the connection is inside a transaction: custodian's, or one opened on the raw
    /// connection (whose commit custodian does not see).
    pub(super) fn in_any_transaction(&mut self) -> bool {
        let raw_depth =
            <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(
                &mut self.conn,
            )
            .transaction_depth()
            .ok()
            .flatten();
        self.depth > 0 || raw_depth.is_some()
    }

    /// Runs `f` inside the current transaction, or a new one (without retry) if there is none.
    pub(super) fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        // Inside custodian's transaction, or one opened on the raw connection: join it.
        if self.in_any_transaction() {
            return f(self);
        }
        let mut f = Some(f);
        // IMMEDIATE on SQLite: the write reads (before images) then writes, and must not lose a
        // race to another writer half-way.
        self.transaction_with(&TxOptions::new().immediate().no_retry(), |s| {
            let f = f
                .take()
                .ok_or_else(|| Error::integrity(IntegrityKind::Internal, "write retried"))?;
            f(s)
        })
    }

    // ---------------------------------------------------------------- transactions

    /// Runs `f` in a transaction with default options. See [`Session::transaction_with`].
    pub fn transaction<T>(&mut self, f: impl FnMut(&mut Session) -> Result<T>) -> Result<T> {
        self.transaction_with(&TxOptions::default(), f)
    }

    /// Runs `f` in a transaction: commit on `Ok`, rollback on `Err` or panic (the panic goes
    /// on). Inside a transaction this makes a savepoint instead, and `options` do not apply.
    ///
    /// At the top level, a failed attempt is rolled back and `f` runs again from a fresh
    /// `BEGIN`, so `f` must be safe to repeat, when it failed with
    /// - a serialization failure, deadlock or lock wait timeout, or SQLite busy
    ///   ([`Error::is_retryable`]), from the closure or from the commit;
    /// - a lost connection ([`Error::Connection`]) before `COMMIT` was sent: the database
    ///   rolled the transaction back with the connection, and the next attempt runs on a
    ///   freshly opened one.
    ///
    /// Opening the fresh connection is retried the same way.
    ///
    /// A connection that breaks while `COMMIT` of a read-write transaction is in flight is
    /// settled on a fresh connection when the transaction can be looked up (its audit records,
    /// or its outcome row: see [`CommitOutcomeConfig`](crate::CommitOutcomeConfig)): the old
    /// server session is ended and waited for, then the records are looked for. Committed: the
    /// closure's result is returned, the closure does not run again. Not committed: the closure
    /// runs again, as after a connection lost before `COMMIT`. It is [`Error::CommitUnknown`],
    /// never retried, when the transaction cannot be looked up or the server cannot be reached
    /// within the policy's time budget (a read-only transaction is retried instead: it changed
    /// nothing). No other error is retried. Retries stop when the
    /// [`RetryPolicy`](crate::RetryPolicy) budget runs out (attempts, or time since the first
    /// attempt began); the last attempt's error is returned.
    ///
    /// A statement failure that leaves the connection unusable (see [`Session::run`]) makes
    /// the session replace its connection before the next attempt, so no attempt runs on a
    /// connection with a half-read result. `options.timeout` bounds each attempt: statements
    /// run after the deadline fail with [`Error::Timeout`] of kind
    /// [`TimeoutKind::TransactionDeadline`], and
    /// PostgreSQL and MariaDB also stop a statement still running at the deadline (the error
    /// then keeps the database's code).
    ///
    /// A panic in `f` rolls the transaction back before it continues, so the connection goes
    /// back to the pool outside any transaction.
    pub fn transaction_with<T>(
        &mut self,
        options: &TxOptions,
        mut f: impl FnMut(&mut Session) -> Result<T>,
    ) -> Result<T> {
        if self.depth > 0 {
            return self.savepoint(&mut f);
        }
        self.route(options)?;
        let policy = options
            .retry
            .clone()
            .unwrap_or_else(|| self.db.config.retry.clone());
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            // A connection retired by the last attempt (or before) is replaced first; failing
            // to open one is a lost connection too, retried within the budget.
            let outcome = match self.usable_connection() {
                Ok(()) => self.attempt(options, attempt, &mut f),
                Err(e) => Attempt::Done(Err(e)),
            };
            let outcome = match outcome {
                Attempt::Done(result) => result,
                Attempt::CutOff {
                    value,
                    error,
                    pending,
                } => match pending.and_then(|p| self.settle(&p, &policy)) {
                    Some(true) => {
                        // Committed: in a cluster, later reads wait for it as for any commit.
                        self.note_commit(options);
                        return Ok(value);
                    }
                    // Rolled back: as if the connection was lost before COMMIT.
                    Some(false) => Err(Error::Connection {
                        message: "the connection broke while COMMIT was in flight; the \
                                  transaction did not commit"
                            .into(),
                        source: Some(Box::new(error)),
                    }),
                    None => Err(error),
                },
            };
            let again = |e: &Error| {
                e.is_retryable()
                    || matches!(e, Error::Connection { .. })
                    // A read-only transaction changed nothing: committed or not, running it
                    // again has the same effect.
                    || (options.read_only && e.is_commit_unknown())
            };
            match outcome {
                Err(e) if again(&e) => {
                    let backoff = policy.delay(attempt);
                    if !policy.allows_retry(attempt, started.elapsed(), backoff) {
                        return Err(e);
                    }
                    crate::observe::retry(&e, attempt, backoff);
                    std::thread::sleep(backoff);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt: `BEGIN`, the closure, `COMMIT` (or rollback). A commit cut off mid-flight
    /// comes back as [`Attempt::CutOff`] with the closure's value, to be settled.
    pub(super) fn attempt<T>(
        &mut self,
        options: &TxOptions,
        attempt: u32,
        f: &mut impl FnMut(&mut Session) -> Result<T>,
    ) -> Attempt<T> {
        let tx_id = uuid::Uuid::new_v4().to_string();
        let span =
            crate::observe::transaction_span(&tx_id, attempt, options.isolation, options.read_only);
        let _entered = span.enter();
        let outcome = self.attempt_in_span(options, tx_id, f);
        crate::observe::transaction_end(&span, matches!(outcome, Attempt::Done(Ok(_))));
        outcome
    }

    fn attempt_in_span<T>(
        &mut self,
        options: &TxOptions,
        tx_id: String,
        f: &mut impl FnMut(&mut Session) -> Result<T>,
    ) -> Attempt<T> {
        let backend = self.db.backend;
        if let Err(e) = backend.begin(&mut self.conn, options) {
            let err = self.failed(e);
            // Undo anything set before the failed BEGIN (e.g. SQLite's query_only).
            let _ = self.end_transaction(options);
            return Attempt::Done(Err(err));
        }
        self.depth = 1;
        self.tx_id = Some(tx_id);
        self.next_ordinal = 0;
        self.deadline = options.timeout.map(|t| (Instant::now() + t, t));
        let setup = match options.timeout {
            Some(limit) => backend
                .set_transaction_timeout(&mut self.conn, limit)
                .map_err(|e| self.failed(e)),
            None => Ok(()),
        };
        let outcome = match setup {
            Ok(()) => panic::catch_unwind(AssertUnwindSafe(|| f(self))),
            Err(e) => Ok(Err(e)),
        };
        let mut cut_off = None;
        let finished = match outcome {
            Ok(Ok(value)) => {
                let audited = !self.pending_audit.is_empty();
                let mut inline = None;
                let ready = self
                    .check_doomed(1)
                    .and_then(|()| self.check_deadline())
                    // The records go with COMMIT where the backend can send them so, else now.
                    .and_then(|()| {
                        inline = self.inline_audit();
                        match inline {
                            Some(_) => Ok(()),
                            None => self.flush_audit(),
                        }
                    })
                    // A connection retired by a failure the closure did not pass on: no COMMIT
                    // is sent, the attempt fails as a lost connection (and is retried).
                    .and_then(|()| self.usable_connection())
                    .and_then(|()| self.prepare_outcome(options, audited));
                match ready {
                    Ok(pending) => {
                        let committed = self
                            .commit_top(options, pending.is_some(), inline.as_ref())
                            .map_err(|e| self.failed(e))
                            .and_then(|noted| self.confirm_written(noted));
                        match committed {
                            Ok(()) => {
                                self.evict_touched();
                                self.note_commit(options);
                                if pending.as_ref().is_some_and(|p| !p.audited()) {
                                    cut_off = Some(Ok(()));
                                }
                                Ok(value)
                            }
                            Err(e) => match e.at_commit() {
                                e @ Error::CommitUnknown { .. } => {
                                    // It may have committed: evicting costs a reload at most.
                                    self.evict_touched();
                                    cut_off = Some(Err((value, pending)));
                                    Err(e)
                                }
                                other => Err(other),
                            },
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Ok(Err(e)) => Err(e),
            Err(panic_payload) => {
                self.rollback_quietly();
                // The panic wins over a failed reset; a broken connection is discarded anyway.
                let _ = self.end_transaction(options);
                panic::resume_unwind(panic_payload);
            }
        };
        if finished.is_err() {
            self.rollback_quietly();
        }
        let reset = self.end_transaction(options);
        match (finished, cut_off) {
            (Err(error), Some(Err((value, pending)))) => Attempt::CutOff {
                value,
                error,
                pending,
            },
            (finished, committed) => {
                if let (Ok(_), Some(Ok(()))) = (&finished, committed) {
                    self.prune_outcomes_now_and_then();
                }
                Attempt::Done(finished.and_then(|value| reset.map(|()| value)))
            }
        }
    }

    /// Clears transaction state and undoes per-transaction connection settings.
    pub(super) fn end_transaction(&mut self, options: &TxOptions) -> Result<()> {
        self.depth = 0;
        self.doomed = None;
        self.deadline = None;
        self.tx_id = None;
        self.pending_audit.clear();
        self.seen.clear();
        // Anything still recorded was rolled back (a commit evicts first).
        self.touched.clear();
        self.reset_shapes();
        // A connection to be replaced keeps its settings: the fresh one starts from defaults.
        if self.discard || (options.timeout.is_none() && !options.read_only) {
            return Ok(());
        }
        let backend = self.db.backend;
        backend
            .reset_after_transaction(&mut self.conn, &self.db.config.session)
            .map_err(|e| backend.classify(e))
    }

    pub(super) fn rollback_quietly(&mut self) {
        // A failed rollback leaves diesel's transaction manager broken; the pool then discards
        // the connection instead of reusing it.
        let _ = <AnyConnection as Connection>::TransactionManager::rollback_transaction(
            &mut *self.conn,
        );
    }

    pub(super) fn savepoint<T>(
        &mut self,
        f: &mut impl FnMut(&mut Session) -> Result<T>,
    ) -> Result<T> {
        type Tm = <AnyConnection as Connection>::TransactionManager;
        self.usable_connection()?;
        if let Err(e) = Tm::begin_transaction(&mut *self.conn) {
            return Err(self.failed(e));
        }
        self.depth += 1;
        // Records of writes inside the savepoint go if the savepoint is rolled back.
        let mark = self.pending_audit.len();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(self)));
        self.depth -= 1;
        // A write that failed half-way inside the savepoint is undone by rolling it back.
        let outcome = match outcome {
            Ok(Ok(v)) => Ok(self.check_doomed(self.depth + 1).map(|()| v)),
            other => other,
        };
        if self.doomed.as_ref().is_some_and(|(at, _)| *at > self.depth) {
            self.doomed = None;
        }
        match outcome {
            Ok(Ok(v)) => match Tm::commit_transaction(&mut *self.conn) {
                Ok(()) => Ok(v),
                Err(e) => {
                    let err = self.failed(e);
                    let _ = Tm::rollback_transaction(&mut *self.conn);
                    self.pending_audit.truncate(mark);
                    Err(err)
                }
            },
            Ok(Err(e)) => {
                let _ = Tm::rollback_transaction(&mut *self.conn);
                self.pending_audit.truncate(mark);
                Err(e)
            }
            Err(p) => {
                let _ = Tm::rollback_transaction(&mut *self.conn);
                self.pending_audit.truncate(mark);
                panic::resume_unwind(p)
            }
        }
    }

    /// Marks the current transaction level as able only to roll back: a write failed after
    /// its first statement ran, with no savepoint of its own (see [`Session::update_where`]).
    pub(super) fn doom(&mut self, why: &Error) {
        if self.depth > 0 && self.doomed.is_none() {
            self.doomed = Some((self.depth, why.to_string()));
        }
    }

    /// Refuses to commit transaction level `level` (1 the transaction, more its savepoints)
    /// when a half-done write at that level or inside it doomed it.
    pub(super) fn check_doomed(&self, level: u32) -> Result<()> {
        match &self.doomed {
            Some((at, why)) if *at >= level => Err(Error::integrity(
                IntegrityKind::RollbackOnly,
                format!(
                    "the transaction cannot commit: a set write in it failed after its \
                         statement ran and was not undone ({why}); it was rolled back"
                ),
            )),
            _ => Ok(()),
        }
    }
}
