//! Coordinated transactions: one closure over sessions on several databases, committed on all
//! of them or on none, by two-phase commit with a recovery log.
//!
//! [`Coordinator::run`] opens a branch on every participant, runs the closure, then
//! 1. prepares every branch that can be prepared (PostgreSQL `PREPARE TRANSACTION`, MariaDB
//!    `XA PREPARE`), each with its audit records;
//! 2. decides: inserts `commit` for the transaction into the recovery log (see [`log`]'s
//!    table). When the log database is itself a participant, the row goes into its branch,
//!    which is committed in one phase: that commit is the decision. This is how a participant
//!    that cannot prepare (SQLite) takes part: it must hold the log;
//! 3. commits every prepared branch, then removes the log row.
//!
//! A failure before the decision rolls every branch back, and the closure runs again when the
//! failure is retryable (serialization failures, a lost connection), under the retry policy.
//! A coordinator killed at any point leaves prepared branches that [`Coordinator::recover`]
//! resolves by the log: committed where a `commit` row exists, rolled back otherwise. Recovery
//! records its own `abort` first, so a coordinator that was only slow cannot commit afterwards.

mod at_open;
pub mod log;
mod recover;

pub use self::at_open::recover_at_open;
pub use self::log::Decision;
pub use self::recover::RecoveryReport;

use crate::backend::{Resolution, TwoPhase, Xid};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::tx::{RetryPolicy, TxOptions};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// A point in a coordinated transaction, reported to [`Coordinator::observe`]'s callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The closure succeeded on every branch; nothing is prepared yet.
    BeforePrepare,
    /// The participant at this index is prepared.
    Prepared(usize),
    /// The decision to commit is durable.
    Decided,
    /// The prepared participant at this index is committed.
    Committed(usize),
}

/// Runs transactions across several databases and resolves the ones a crash left in doubt.
///
/// Its name is part of every global transaction id (`cust:<name>:<uuid>`), so that recovery
/// touches only this coordinator's branches: give each running instance its own name.
#[derive(Clone)]
pub struct Coordinator {
    name: String,
    log: Db,
    observer: Option<Arc<dyn Fn(Step) + Send + Sync>>,
    /// Held shared from the first prepare to the last commit of each transaction, and
    /// exclusively by [`Coordinator::hold_commits`].
    gate: Arc<RwLock<()>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("name", &self.name)
            .field("log", &self.log)
            .finish()
    }
}

/// One participant of an attempt.
struct Branch<'a> {
    two_phase: Option<&'static dyn TwoPhase>,
    xid: Xid,
    db: &'a Db,
}

impl Coordinator {
    /// A coordinator named `name` (1 to 20 characters: letters, digits, `-`, `_`) whose
    /// decisions go to the database `log`, where it creates its table if missing. It does not
    /// recover anything by itself: call [`Coordinator::recover`] at start-up, or have the
    /// databases recover at open ([`RecoveryConfig`](crate::config::RecoveryConfig)).
    pub fn new(name: &str, log: &Db) -> Result<Coordinator> {
        let valid = (1..=20).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::config(
                "coordinator",
                format!(
                    "coordinator name {name:?}: use 1 to 20 letters, digits, `-` or `_` (it is \
                     part of every global transaction id)"
                ),
            ));
        }
        self::log::install(&mut log.session()?)?;
        Ok(Coordinator {
            name: name.to_string(),
            log: log.clone(),
            observer: None,
            gate: Arc::new(RwLock::new(())),
        })
    }

    /// Calls `f` at each [`Step`] of every coordinated transaction (tracing, tests).
    pub fn observe(mut self, f: impl Fn(Step) + Send + Sync + 'static) -> Coordinator {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Runs `f` while no transaction of this coordinator (or its clones) is between its first
    /// prepare and its last commit: it waits for those in phase two to finish and holds new
    /// ones before they prepare. What `f` snapshots on the participants then holds every
    /// coordinated transaction on all of them or on none (see
    /// [`backup_cut`](crate::backup::backup_cut)). Keep `f` short: commits wait for it.
    pub fn hold_commits<T>(&self, f: impl FnOnce() -> T) -> T {
        let _held = self.gate.write().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// The coordinator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn step(&self, step: Step) {
        if let Some(f) = &self.observer {
            f(step);
        }
    }

    fn prefix(&self) -> String {
        format!("cust:{}:", self.name)
    }

    /// Runs `f` over one session per database of `dbs` (in that order) and commits on all of
    /// them or none, with default options. See [`Coordinator::run_with`].
    pub fn run<T>(&self, dbs: &[&Db], f: impl FnMut(&mut [Session]) -> Result<T>) -> Result<T> {
        self.run_with(dbs, &TxOptions::default(), f)
    }

    /// Runs `f` over one session per database of `dbs` (in that order), each inside a branch
    /// opened with `options`, and commits every branch or none.
    ///
    /// A failure before the decision (from `f`, from a prepare, from the decision itself)
    /// rolls back every branch; a retryable one ([`Error::is_retryable`], a lost connection)
    /// runs `f` again on fresh branches, within the retry policy (`options.retry`, else the
    /// log database's). After the decision the result is `Ok`: a branch whose commit failed
    /// stays prepared, and [`Coordinator::recover`] commits it.
    ///
    /// Every database must be able to prepare a transaction (PostgreSQL with
    /// `max_prepared_transactions > 0`, MariaDB), except the log database if it takes part:
    /// it commits last, in one phase, so SQLite can take part only as the log database.
    /// [`Error::Config`] otherwise, and for a database given twice.
    /// [`Error::CommitUnknown`] when the decision was in flight and the log database could not
    /// be asked within the retry budget: then only `recover` can tell.
    pub fn run_with<T>(
        &self,
        dbs: &[&Db],
        options: &TxOptions,
        mut f: impl FnMut(&mut [Session]) -> Result<T>,
    ) -> Result<T> {
        self.check_participants(dbs)?;
        let policy = options
            .retry
            .clone()
            .unwrap_or_else(|| self.log.config().retry.clone());
        retrying(&policy, || self.attempt(dbs, options, &mut f))
    }

    fn is_log(&self, db: &Db) -> bool {
        Arc::ptr_eq(&db.inner, &self.log.inner)
    }

    fn check_participants(&self, dbs: &[&Db]) -> Result<()> {
        if dbs.is_empty() {
            return Err(Error::config("coordinate", "no database to coordinate"));
        }
        for (i, db) in dbs.iter().enumerate() {
            if dbs[..i].iter().any(|d| Arc::ptr_eq(&d.inner, &db.inner)) {
                return Err(Error::config(
                    "coordinate",
                    format!("database {i} is given twice; pass each database once"),
                ));
            }
            if db.backend().two_phase().is_none() && !self.is_log(db) {
                return Err(Error::config(
                    "coordinate",
                    format!(
                        "{} cannot prepare a transaction, so it can take part in a coordinated \
                         transaction only as the coordinator's log database (committed last, \
                         in one phase): open the coordinator with this database as its log",
                        db.backend_kind()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One attempt: branches, closure, prepares, decision, commits.
    fn attempt<T>(
        &self,
        dbs: &[&Db],
        options: &TxOptions,
        f: &mut impl FnMut(&mut [Session]) -> Result<T>,
    ) -> Result<T> {
        let tx_id = uuid::Uuid::new_v4().to_string();
        let global = format!("{}{tx_id}", self.prefix());
        let branches: Vec<Branch> = dbs
            .iter()
            .enumerate()
            .map(|(i, db)| Branch {
                // The log database commits in one phase when it takes part.
                two_phase: if self.is_log(db) {
                    None
                } else {
                    db.backend().two_phase()
                },
                xid: Xid {
                    global: global.clone(),
                    branch: i as u32,
                },
                db,
            })
            .collect();
        let mut sessions = Vec::with_capacity(dbs.len());
        for b in &branches {
            sessions.push(b.db.session()?);
        }
        let mut opened = 0;
        let mut outcome = Ok(());
        for (b, s) in branches.iter().zip(sessions.iter_mut()) {
            outcome = s.begin_branch(b.two_phase, options, &b.xid, &tx_id);
            if outcome.is_err() {
                break;
            }
            opened += 1;
        }
        let value = outcome.and_then(|()| f(&mut sessions));
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                for (b, s) in branches.iter().zip(sessions.iter_mut()).take(opened) {
                    s.abandon_branch(b.two_phase, options, &b.xid);
                }
                return Err(e);
            }
        };
        // From the first prepare to the last commit, a common cut waits (`hold_commits`).
        let _cut = self.gate.read().unwrap_or_else(|p| p.into_inner());
        self.step(Step::BeforePrepare);
        // Phase one.
        for (i, (b, s)) in branches.iter().zip(sessions.iter_mut()).enumerate() {
            let Some(tp) = b.two_phase else { continue };
            if let Err(e) = s.prepare_branch(tp, options, &b.xid) {
                let e = self.explain_prepare_failure(s, tp, e);
                let in_doubt = e.is_commit_unknown();
                self.roll_back(&branches, &mut sessions, options, i);
                if !in_doubt {
                    return Err(e);
                }
                // The server may have prepared the branch before the connection broke. No
                // commit was decided, so it must roll back: try now; recovery does it later
                // if the branch is not there yet. The attempt failed as a lost connection.
                let _ =
                    b.db.session()
                        .and_then(|mut f| f.run(|c| tp.rollback_prepared(c, &b.xid)));
                return Err(Error::Connection {
                    message: format!(
                        "the connection to participant {i} was lost during PREPARE; no commit \
                         was decided and every branch is rolled back"
                    ),
                    source: Some(Box::new(e)),
                });
            }
            self.step(Step::Prepared(i));
        }
        // The decision.
        if let Err(e) = self.decide(&branches, &mut sessions, options, &global) {
            let last = branches.len();
            if e.is_commit_unknown() {
                return Err(e);
            }
            self.roll_back(&branches, &mut sessions, options, last);
            return Err(e);
        }
        self.step(Step::Decided);
        // Phase two: a failure here leaves the branch prepared for recovery.
        let mut all = true;
        for (i, (b, s)) in branches.iter().zip(sessions.iter_mut()).enumerate() {
            let Some(tp) = b.two_phase else { continue };
            match commit_prepared(s, b.db, tp, &b.xid) {
                Ok(()) => self.step(Step::Committed(i)),
                Err(_) => all = false,
            }
        }
        if all {
            let _ = self
                .log
                .session()
                .and_then(|mut s| log::forget(&mut s, &global));
        }
        Ok(value)
    }

    /// Writes the commit decision. With the log database taking part, the row goes into its
    /// branch and that branch's commit decides; otherwise the row is inserted on its own.
    /// A connection lost while the decision was in flight is resolved by asking the log (with
    /// an `abort` fence); when the log cannot be reached, [`Error::CommitUnknown`].
    fn decide(
        &self,
        branches: &[Branch],
        sessions: &mut [Session],
        options: &TxOptions,
        global: &str,
    ) -> Result<()> {
        let own = branches.iter().position(|b| self.is_log(b.db));
        let decided = match own {
            Some(i) => log::insert(&mut sessions[i], global, Decision::Commit)
                .and_then(|()| sessions[i].commit_branch(options))
                .inspect_err(|_| {
                    sessions[i].abandon_branch(None, options, &branches[i].xid);
                }),
            None => self.log.session().and_then(|mut s| {
                // Only a connection lost once the insert was sent leaves the decision unknown.
                log::insert(&mut s, global, Decision::Commit).map_err(Error::at_commit)
            }),
        };
        match decided {
            Err(e) if e.is_commit_unknown() => match self.ask_log(global) {
                Ok(Decision::Commit) => Ok(()),
                Ok(Decision::Abort) => Err(Error::Connection {
                    message: "the connection to the log database was lost while the decision \
                              was in flight, and it was not recorded: every branch is rolled \
                              back"
                        .into(),
                    source: None,
                }),
                Err(_) => Err(e),
            },
            other => other,
        }
    }

    /// The recorded decision, fencing out a late commit; retried briefly on lost connections.
    fn ask_log(&self, global: &str) -> Result<Decision> {
        retrying(&self.log.config().retry, || {
            self.log
                .session()
                .and_then(|mut s| log::decide_abort_unless_committed(&mut s, global))
        })
    }

    /// Rolls back every branch: prepared ones (before index `prepared_up_to`) by their xid, the
    /// rest on their own sessions. A prepared branch that cannot be rolled back now stays for
    /// recovery, which finds no commit decision and rolls it back.
    fn roll_back(
        &self,
        branches: &[Branch],
        sessions: &mut [Session],
        options: &TxOptions,
        prepared_up_to: usize,
    ) {
        for (i, (b, s)) in branches.iter().zip(sessions.iter_mut()).enumerate() {
            match b.two_phase {
                Some(tp) if i < prepared_up_to => {
                    // On the connection that prepared it: MariaDB lets no other end it.
                    let _ = s.run(|c| tp.rollback_prepared(c, &b.xid));
                }
                tp => s.abandon_branch(tp, options, &b.xid),
            }
        }
    }

    /// A failed prepare on a server that cannot prepare at all becomes that [`Error::Config`].
    fn explain_prepare_failure(&self, s: &mut Session, tp: &dyn TwoPhase, e: Error) -> Error {
        if e.is_commit_unknown() || matches!(e, Error::Connection { .. }) || e.is_retryable() {
            return e;
        }
        match tp.check(s.connection()) {
            Err(config @ Error::Config { .. }) => config,
            _ => e,
        }
    }
}

/// Commits a prepared branch on the session that prepared it (MariaDB lets no other
/// connection end it while that one lives) or, if that connection is gone, on a fresh one.
fn commit_prepared(s: &mut Session, db: &Db, tp: &dyn TwoPhase, xid: &Xid) -> Result<()> {
    let done = match s.run(|c| tp.commit_prepared(c, xid)) {
        Err(Error::Connection { .. }) => db.session()?.run(|c| tp.commit_prepared(c, xid))?,
        other => other?,
    };
    match done {
        Resolution::Resolved => Ok(()),
        Resolution::Attached => Err(Error::Connection {
            message: "a prepared branch stayed attached to another connection".into(),
            source: None,
        }),
    }
}

/// Runs `f` until it returns anything but a retryable error or a lost connection, or until
/// `policy` allows no further attempt (then its last error), sleeping the policy's backoff
/// between attempts.
fn retrying<T>(policy: &RetryPolicy, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if e.is_retryable() || matches!(e, Error::Connection { .. }) => {
                let backoff = policy.delay(attempt);
                if !policy.allows_retry(attempt, started.elapsed(), backoff) {
                    return Err(e);
                }
                std::thread::sleep(backoff);
                attempt += 1;
            }
            other => return other,
        }
    }
}
