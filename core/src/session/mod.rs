//! [`Session`]: a checked-out connection, the transaction driver, and the single write path.
//!
//! Every insert, update and delete that custodian performs goes through
//! `Session::write` (private): it enforces the transaction deadline, wraps multi-statement
//! writes in a transaction, runs the entity's raw statement and classifies errors. Validation,
//! access checks, hooks and audit records attach there, once, so no caller can skip them.
//! The set-based writes (`Session::update_where`, `Session::delete_where`) take the same steps
//! over the rows their filter matches, which they lock and read first (`set_write`).
//! Reads take diesel queries built on the generated tables.

use crate::access::{AccessControl, Action};
use crate::audit::chain;
use crate::audit::{AuditOp, AuditRecord};
use crate::conn::AnyConnection;
use crate::entity::{ColumnRole, Entity, EntityMeta, HookSession, Internal, Stamp, WriteKind};
use crate::error::{ConstraintKind, DbError, Error, IntegrityKind, Result, TimeoutKind};
use crate::pool::PooledConnection;
use crate::principal::Principal;
use crate::relations::BelongsTo;
use crate::tx::TxOptions;
use diesel::connection::{Connection, TransactionManager};
use diesel::query_dsl::methods::LimitDsl;
use diesel::query_dsl::LoadQuery;
use diesel::{OptionalExtension, QueryResult, RunQueryDsl};
use std::collections::HashMap;
use std::hash::Hash;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) mod guard;

pub use hooks::{run_after, run_before, Hooks};
pub use rerun::Rerunnable;
pub use set_sql::SetFilter;
pub(crate) use shared::Shared;

/// A connection checked out of the pool, with its transaction state.
///
/// Obtain one with [`Db::session`](crate::Db::session); it returns to the pool when dropped.
/// A session dropped inside a transaction rolls back: diesel marks its connection broken and
/// the pool discards it.
///
/// Runnable examples of the main methods (`insert`, `get`, `find`, `select`, `update`,
/// `delete`, bulk writes, `transaction` and savepoints) are in the `custodian` crate's
/// `guide::session` module, run as doctests.
pub struct Session {
    conn: PooledConnection,
    db: Arc<Shared>,
    depth: u32,
    /// When the open transaction's deadline passes, and the limit it was set from.
    deadline: Option<(Instant, Duration)>,
    principal: Option<Arc<Principal>>,
    access: Option<Arc<AccessControl>>,
    context: AuditContext,
    tx_id: Option<String>,
    /// Ordinal of the next audit record of the open transaction (records sealed so far).
    next_ordinal: i32,
    /// Audit records of the open transaction, appended in one statement just before commit.
    pending_audit: Vec<AuditRecord>,
    /// Rows of audited entities read by key in the open transaction (entity type, key image): a
    /// later update guarded by "unchanged since" takes them as its before image instead of
    /// reading the row again under a lock (MariaDB). Cleared when the transaction ends.
    seen: HashMap<(&'static str, String), Image>,
    /// A statement failed in a way that leaves the connection unusable
    /// ([`Backend::discards_connection_after`](crate::backend::Backend::discards_connection_after)):
    /// its transaction manager is marked broken, and the session opens a fresh connection
    /// before its next statement outside a transaction.
    discard: bool,
    /// The retired connection had a transaction open on the raw connection (not custodian's):
    /// the next statement fails instead of running on a fresh connection outside it.
    discarded_raw_transaction: bool,
    /// A write failed after its first statement ran, with no savepoint of its own to undo it
    /// (a set update's fast path): the transaction level it ran at (`depth`) and what failed.
    /// That level can only roll back: its commit (or a savepoint's release) fails instead.
    doomed: Option<(u32, String)>,
    /// The replica this reader session runs on (`None`: the primary).
    replica: Option<crate::cluster::Lease>,
    /// The commit position of the handle that opened the session, in a cluster: commits
    /// advance it (read-your-writes).
    causal: Option<Arc<crate::cluster::Causal>>,
    /// What the open transaction (or the write just made outside one) wrote, to evict from
    /// the entity cache when it commits (see [`crate::cache`]).
    touched: Vec<crate::cache::Touched>,
}

/// Most rows a transaction remembers for guarded updates; later reads are not remembered.
const SEEN_ROWS: usize = 256;

/// Optional context recorded with every audit record of a session's writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    /// Why the change is made (ticket, justification).
    pub reason: Option<String>,
    /// Correlation id of the request that made it.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend", &self.db.backend.kind())
            .field("transaction_depth", &self.depth)
            .finish()
    }
}

/// One write, as the write path sees it.
enum Op<'a, E: Entity> {
    Insert(&'a mut [E]),
    Update(&'a mut [E]),
    Delete(&'a [E::Key], DeleteMode),
}

/// What a delete does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteMode {
    /// Soft delete for soft-delete entities, hard delete otherwise.
    Default,
    /// Hard delete, soft-deleted rows included.
    Purge,
    /// Undo a soft delete.
    Restore,
}

/// A JSON image of a stored row.
type Image = serde_json::Map<String, serde_json::Value>;

/// The written row `sealed` (with its key, stamps and blind indexes) holding the plaintext of
/// `plain`'s encrypted fields again: what the caller's entity holds after a write.
fn with_plaintext<E: Entity>(sealed: &E, plain: &Image) -> Result<E> {
    let mut image = sealed.raw_image().map_err(image_error::<E>)?;
    crate::crypto::fields::restore_plaintext(&E::META, &mut image, plain);
    E::raw_from_image(&image).map_err(image_error::<E>)
}

fn image_error<E: Entity>(e: crate::value::DecodeError) -> Error {
    Error::integrity_caused_by(
        IntegrityKind::Undecodable,
        format!("{}: {e}", E::META.name),
        e,
    )
}

/// A generated key the database returned that does not fit the entity's key field.
fn generated_key_error(id: i64, e: crate::value::DecodeError) -> Error {
    Error::integrity_caused_by(
        IntegrityKind::Undecodable,
        format!("generated key {id}: {e}"),
        e,
    )
}

/// Audited writes fail closed without an acting principal.
fn no_principal<E: Entity>() -> Error {
    no_principal_for(E::META.name)
}

/// Writes of the entity `name` without an acting principal: refused, they could not be audited.
fn no_principal_for(name: &str) -> Error {
    Error::Forbidden(format!(
        "writes of {name} are audited and need an acting principal: use Db::acting_as or \
         Session::act_as"
    ))
}

fn not_found<E: Entity>(key: &E::Key) -> Error {
    Error::NotFound {
        entity: E::META.name,
        key: format!("{key:?}"),
    }
}

fn dedup<K: Eq + Hash + Clone>(keys: &mut Vec<K>) {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.retain(|k| seen.insert(k.clone()));
}

/// The current UTC time, truncated to microseconds like every stored timestamp.
fn now_utc() -> chrono::NaiveDateTime {
    crate::value::ColumnValue::to_storage(&chrono::Utc::now()).0
}

/// Validates every entity; the first invalid one is reported with its position when bulk.
fn validate_all<E: Entity>(rows: &[E]) -> Result<()> {
    for (i, row) in rows.iter().enumerate() {
        if let Err(mut v) = row.validate() {
            let fields: Vec<&str> = v.fields.keys().map(String::as_str).collect();
            crate::observe::validation_failed(E::META.name, &fields);
            if rows.len() > 1 {
                v.index = Some(i);
            }
            return Err(Error::Validation(v));
        }
    }
    Ok(())
}

/// Names the entity field of the column (or index) a constraint error reports.
fn attribute_to_field<E: Entity>(mut err: Error) -> Error {
    if let Error::Conflict { source } | Error::Constraint { source } = &mut err {
        let meta = E::META;
        let by_index = source.constraint.as_deref().and_then(|name| {
            meta.all_indexes()
                .into_iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, cols, _)| cols.first().copied())
        });
        let column = by_index
            .and_then(|c| meta.column_named(c))
            .or_else(|| source.column.as_deref().and_then(|c| meta.column_named(c)))
            .or_else(|| {
                if source
                    .constraint
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("PRIMARY"))
                {
                    meta.primary_key().next()
                } else {
                    None
                }
            });
        // SQLite does not say which foreign key failed: with one, it can only be that one.
        let column = column.or_else(|| {
            let mut fks = meta.columns.iter().filter(|c| c.references.is_some());
            match (source.kind, fks.next(), fks.next()) {
                (Some(ConstraintKind::ForeignKey), Some(only), None) => Some(only),
                _ => None,
            }
        });
        if let Some(c) = column {
            source.column = Some(c.name.to_string());
            if source.field.is_none() {
                source.field = Some(c.field.to_string());
            }
        }
    }
    err
}

mod audit_log;
mod branch;
mod cached;
mod cascade;
mod context;
mod history;
mod hooks;
mod observed;
mod outcome;
mod policy;
mod read;
mod relations;
mod rerun;
mod route;
mod set_sql;
mod set_update;
mod set_write;
mod shared;
mod tx;
mod write;
mod write_steps;

impl Session {
    #[inline(always)]
    pub(crate) fn new(
        conn: PooledConnection,
        db: Arc<Shared>,
        principal: Option<Arc<Principal>>,
        access: Option<Arc<AccessControl>>,
    ) -> Self {
        let mut session = Session {
            conn,
            db,
            depth: 0,
            deadline: None,
            principal,
            access,
            context: AuditContext::default(),
            tx_id: None,
            next_ordinal: 0,
            pending_audit: Vec::new(),
            seen: HashMap::new(),
            discard: false,
            discarded_raw_transaction: false,
            doomed: None,
            replica: None,
            causal: None,
            touched: Vec::new(),
        };
        // A pooled connection's probe still counts the last session's statement shapes.
        session.reset_shapes();
        session
    }

    /// Identifier of the current transaction (recorded in audit records), if one is open.
    pub fn tx_id(&self) -> Option<&str> {
        self.tx_id.as_deref()
    }

    /// Whether the access policy (if any) lets this session erase data subjects.
    pub fn may_erase(&self) -> bool {
        self.access
            .as_deref()
            .is_none_or(|ac| ac.may_erase(self.principal.as_deref()))
    }

    /// The acting principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// Makes this session act as `principal` from now on.
    pub fn act_as(&mut self, principal: Principal) {
        self.principal = Some(Arc::new(principal));
    }

    // --- crypto ---

    /// The field-encryption handle of this session's database (see [`crate::crypto`]);
    /// [`Error::Config`] when no master key is configured.
    pub fn crypto(&self) -> Result<crate::crypto::Crypto> {
        self.db
            .crypto
            .clone()
            .ok_or_else(crate::crypto::not_configured)
    }

    // --- end crypto ---

    /// Reason and request id recorded with this session's next writes.
    pub fn audit_context(&mut self) -> &mut AuditContext {
        &mut self.context
    }

    /// Nesting depth: 0 outside a transaction, 1 in a transaction, more in savepoints.
    pub fn transaction_depth(&self) -> u32 {
        self.depth
    }

    /// The backend (dialect) of this session's database.
    pub fn backend(&self) -> &'static dyn crate::backend::Backend {
        self.db.backend
    }

    /// The raw connection, for diesel queries custodian does not wrap. Writes made through it
    /// bypass the write path (no validation, hooks or audit): use it for reads and deliberate
    /// escape hatches only.
    ///
    /// A connection a failure left unusable is replaced first (outside a transaction; should
    /// opening the new one fail, the old one is returned and its next statement fails).
    pub fn connection(&mut self) -> &mut AnyConnection {
        let _ = self.usable_connection();
        &mut self.conn
    }

    /// After a failed statement: when the backend says the connection must not run another
    /// statement, marks its transaction manager broken (so the pool discards it, should the
    /// session end first) and remembers to replace it. A statement runner that found the
    /// connection unusable itself (see `conn::run`) marked it broken already: replaced too.
    fn note_failure(&mut self, err: &Error) {
        let marked = matches!(
            <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(
                &mut self.conn,
            ),
            diesel::connection::TransactionManagerStatus::InError
        );
        if (marked || self.db.backend.discards_connection_after(err)) && !self.discard {
            self.discarded_raw_transaction = self.depth == 0 && self.in_any_transaction();
            self.discard = true;
            <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(
                &mut self.conn,
            )
            .set_in_error();
        }
    }

    /// Classifies `e` and notes it (see [`Session::note_failure`]).
    fn failed(&mut self, e: diesel::result::Error) -> Error {
        let err = self.classify(e);
        crate::observe::statement_failed(&err);
        self.note_failure(&err);
        err
    }

    /// Makes sure the connection can run statements: one marked for discarding is replaced
    /// by a freshly opened and prepared connection in the same pool slot (the old one is
    /// closed, which ends whatever it had open on the server). Inside a transaction that would
    /// lose the transaction, so it is an [`Error::Connection`] instead: the transaction fails
    /// and is retried, if at all, from its start.
    fn usable_connection(&mut self) -> Result<()> {
        if !self.discard {
            return Ok(());
        }
        if self.depth > 0 || std::mem::take(&mut self.discarded_raw_transaction) {
            return Err(Error::Connection {
                message: "a statement of this transaction left its connection unusable; the \
                          connection is discarded and the transaction rolled back"
                    .into(),
                source: None,
            });
        }
        if self.replica.is_some() {
            return self.reroute();
        }
        if self.db.cluster.is_some() {
            // A cluster: a pooled connection of the host that is primary now (after a
            // failover, or the next synced Galera node), never a connection to one host left
            // in another host's pool. The retired connection is marked broken, so its own
            // pool closes it.
            self.conn = self.db.primary_connection()?;
            self.discard = false;
            return Ok(());
        }
        let fresh = crate::pool::open_connection(self.db.backend, self.db.primary_config())?;
        *self.conn = fresh;
        self.db.counters.replaced_in_place();
        self.discard = false;
        Ok(())
    }

    fn classify(&self, e: diesel::result::Error) -> Error {
        self.timeout_limit(self.db.backend.classify(e))
    }

    /// Names the limit of a statement the database stopped: inside a transaction with a
    /// deadline the statement limit is the deadline's (the backends set it for the
    /// transaction), otherwise the session's `statement_timeout_ms`.
    fn timeout_limit(&self, err: Error) -> Error {
        match err {
            Error::Timeout {
                kind: TimeoutKind::Statement,
                message,
                limit: None,
                source,
            } => match self.deadline {
                Some((_, limit)) => Error::Timeout {
                    kind: TimeoutKind::TransactionDeadline,
                    message: format!(
                        "transaction deadline of {} ms passed: {message}; the transaction is \
                         rolled back",
                        limit.as_millis()
                    ),
                    limit: Some(limit),
                    source,
                },
                None => Error::Timeout {
                    kind: TimeoutKind::Statement,
                    limit: self
                        .db
                        .config
                        .session
                        .statement_timeout_ms
                        .map(Duration::from_millis),
                    message,
                    source,
                },
            },
            other => other,
        }
    }

    fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => Err(Error::timeout(
                TimeoutKind::TransactionDeadline,
                format!(
                    "transaction deadline of {} ms passed; the transaction is rolled back",
                    limit.as_millis()
                ),
                Some(limit),
            )),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the connection and classifies its error with the backend.
    ///
    /// A failure that leaves the connection unusable (a lost connection; on MariaDB also a
    /// deadlock, lock wait timeout or stopped statement, which can break off a result
    /// part-way) retires the connection: outside a transaction the next statement runs on a
    /// fresh one, inside a transaction every later statement fails with
    /// [`Error::Connection`] until the transaction ends. (A transaction opened on the raw
    /// connection is lost with it: the next statement fails with [`Error::Connection`], the
    /// ones after run on the fresh connection.) The fresh connection is prepared from the
    /// configuration; session settings made by hand on the old one are gone.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut AnyConnection) -> QueryResult<T>) -> Result<T> {
        self.check_deadline()?;
        self.usable_connection()?;
        match f(&mut self.conn) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Executes raw SQL (DDL, maintenance). Returns affected rows. Not a write-path operation:
    /// do not use it to change entity data.
    #[track_caller]
    pub fn execute_sql(&mut self, sql: &str) -> Result<usize> {
        let caller = std::panic::Location::caller();
        self.observed(None, "sql", caller, |s| {
            s.run_rows(|c| diesel::sql_query(sql).execute(c))
        })
    }
}
