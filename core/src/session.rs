//! [`Session`]: a checked-out connection, the transaction driver, and the single write path.
//!
//! Every insert, update and delete that custodian performs goes through
//! `Session::write` (private): it enforces the transaction deadline, wraps multi-statement
//! writes in a transaction, runs the entity's raw statement and classifies errors. Validation,
//! access checks, hooks and audit records attach there, once, so no caller can skip them.
//! Reads take diesel queries built on the generated tables.

use crate::conn::AnyConnection;
use crate::db::DbInner;
use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::pool::PooledConnection;
use crate::tx::TxOptions;
use diesel::connection::{Connection, TransactionManager};
use diesel::query_dsl::methods::LimitDsl;
use diesel::query_dsl::LoadQuery;
use diesel::{OptionalExtension, QueryResult, RunQueryDsl};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// A connection checked out of the pool, with its transaction state.
///
/// Obtain one with [`Db::session`](crate::Db::session); it returns to the pool when dropped.
/// A session dropped inside a transaction rolls back: diesel marks its connection broken and
/// the pool discards it.
pub struct Session {
    conn: PooledConnection,
    db: Arc<DbInner>,
    depth: u32,
    deadline: Option<Instant>,
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
enum Write<'a, E: Entity> {
    Insert(&'a [E]),
    Update(&'a E),
    Delete(&'a E::Key),
}

impl Session {
    pub(crate) fn new(conn: PooledConnection, db: Arc<DbInner>) -> Self {
        Session {
            conn,
            db,
            depth: 0,
            deadline: None,
        }
    }

    /// Nesting depth: 0 outside a transaction, 1 in a transaction, more in savepoints.
    pub fn transaction_depth(&self) -> u32 {
        self.depth
    }

    /// The raw connection, for diesel queries custodian does not wrap. Writes made through it
    /// bypass the write path (no validation, hooks or audit): use it for reads and deliberate
    /// escape hatches only.
    pub fn connection(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    fn classify(&self, e: diesel::result::Error) -> Error {
        self.db.backend.classify(e)
    }

    fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Error::Timeout(
                "transaction deadline passed; the transaction is rolled back".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the connection and classifies its error with the backend.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut AnyConnection) -> QueryResult<T>) -> Result<T> {
        self.check_deadline()?;
        let r = f(&mut self.conn);
        r.map_err(|e| self.classify(e))
    }

    /// Executes raw SQL (DDL, maintenance). Returns affected rows. Not a write-path operation:
    /// do not use it to change entity data.
    pub fn execute_sql(&mut self, sql: &str) -> Result<usize> {
        self.run(|c| diesel::sql_query(sql).execute(c))
    }

    // ---------------------------------------------------------------- reads

    /// Loads every row of a diesel query, e.g. `Control::query().filter(...).order(...)`.
    pub fn load<T, Q>(&mut self, query: Q) -> Result<Vec<T>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        self.run(|c| query.load(c))
    }

    /// Loads the first row of a diesel query, if any.
    pub fn first<T, Q>(&mut self, query: Q) -> Result<Option<T>>
    where
        Q: LimitDsl + RunQueryDsl<AnyConnection>,
        diesel::dsl::Limit<Q>: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        self.run(|c| query.first(c).optional())
    }

    /// Runs a counting query, e.g. `controls::table.filter(...).count()`.
    pub fn count<Q>(&mut self, query: Q) -> Result<i64>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, i64>,
    {
        self.run(|c| query.get_result(c))
    }

    /// The entity with this primary key, if it exists.
    pub fn find<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        self.run(|c| E::raw_find(c, key))
    }

    /// The entity with this primary key; [`Error::NotFound`] if it does not exist.
    pub fn get<E: Entity>(&mut self, key: &E::Key) -> Result<E> {
        self.find::<E>(key)?.ok_or_else(|| Error::NotFound {
            entity: E::META.name,
            key: format!("{key:?}"),
        })
    }

    // ---------------------------------------------------------------- writes

    /// Inserts one entity and returns it as stored: with the key the database assigned
    /// (auto-increment) and, when the entity has database-generated columns, re-read.
    pub fn insert<E: Entity>(&mut self, entity: E) -> Result<E> {
        let mut entity = entity;
        self.write(Write::Insert(std::slice::from_ref(&entity)))?;
        if E::META.has_auto_increment() {
            let backend = self.db.backend;
            let id = self.run(|c| backend.last_insert_id(c))?;
            entity
                .raw_set_generated_key(id)
                .map_err(|e| Error::Integrity(format!("generated key {id}: {e}")))?;
        }
        if E::META.has_generated() {
            return self.get(&entity.key());
        }
        Ok(entity)
    }

    /// Inserts many entities with as few statements as the backend's parameter limit allows,
    /// all or nothing. Returns the number of rows inserted. Keys assigned by the database are
    /// not read back: use [`Session::insert`] when you need them.
    pub fn insert_many<E: Entity>(&mut self, entities: &[E]) -> Result<usize> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.write(Write::Insert(entities))
    }

    /// Updates every non-key column of the entity's row. [`Error::NotFound`] if no row has its key.
    pub fn update<E: Entity>(&mut self, entity: &E) -> Result<()> {
        self.write(Write::Update(entity)).map(|_| ())
    }

    /// Deletes the entity's row. [`Error::NotFound`] if no row has its key.
    pub fn delete<E: Entity>(&mut self, entity: &E) -> Result<()> {
        let key = entity.key();
        self.write::<E>(Write::Delete(&key)).map(|_| ())
    }

    /// Deletes the row with this key. [`Error::NotFound`] if there is none.
    pub fn delete_by_key<E: Entity>(&mut self, key: &E::Key) -> Result<()> {
        self.write::<E>(Write::Delete(key)).map(|_| ())
    }

    /// The write path: every custodian write runs through here.
    fn write<E: Entity>(&mut self, op: Write<'_, E>) -> Result<usize> {
        self.check_deadline()?;
        let not_found = |key: &dyn std::fmt::Debug| Error::NotFound {
            entity: E::META.name,
            key: format!("{key:?}"),
        };
        match op {
            Write::Insert(rows) => {
                let per_statement =
                    (self.db.backend.max_bind_params() / E::META.insert_width()).max(1);
                if rows.len() <= per_statement {
                    return self.run(|c| E::raw_insert(c, rows));
                }
                // Several statements: all or nothing.
                self.in_transaction(|s| {
                    let mut n = 0;
                    for chunk in rows.chunks(per_statement) {
                        n += s.run(|c| E::raw_insert(c, chunk))?;
                    }
                    Ok(n)
                })
            }
            Write::Update(entity) => match self.run(|c| E::raw_update(c, entity))? {
                0 => Err(not_found(&entity.key())),
                n => Ok(n),
            },
            Write::Delete(key) => match self.run(|c| E::raw_delete(c, key))? {
                0 => Err(not_found(key)),
                n => Ok(n),
            },
        }
    }

    /// Runs `f` inside the current transaction, or a new one (without retry) if there is none.
    fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        if self.depth > 0 {
            return f(self);
        }
        let mut f = Some(f);
        self.transaction_with(&TxOptions::new().no_retry(), |s| {
            let f = f
                .take()
                .ok_or_else(|| Error::Integrity("write retried".into()))?;
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
    /// At the top level, a retryable failure (serialization failure, deadlock, SQLite busy)
    /// from the closure or from the commit rolls back and runs `f` again under the retry
    /// policy, so `f` must be safe to repeat. `options.timeout` bounds each attempt: statements
    /// run after the deadline fail with [`Error::Timeout`], and PostgreSQL and MariaDB also stop
    /// a statement still running at the deadline.
    pub fn transaction_with<T>(
        &mut self,
        options: &TxOptions,
        mut f: impl FnMut(&mut Session) -> Result<T>,
    ) -> Result<T> {
        if self.depth > 0 {
            return self.savepoint(&mut f);
        }
        let policy = options
            .retry
            .clone()
            .unwrap_or_else(|| self.db.config.retry.clone());
        let mut attempt = 1;
        loop {
            match self.attempt(options, &mut f) {
                Err(e) if e.is_retryable() && policy.allows_retry_after(attempt) => {
                    std::thread::sleep(policy.delay(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn attempt<T>(
        &mut self,
        options: &TxOptions,
        f: &mut impl FnMut(&mut Session) -> Result<T>,
    ) -> Result<T> {
        let backend = self.db.backend;
        if let Err(e) = backend.begin(&mut self.conn, options) {
            // Undo anything set before the failed BEGIN (e.g. SQLite's query_only).
            let _ = self.end_transaction(options);
            return Err(backend.classify(e));
        }
        self.depth = 1;
        self.deadline = options.timeout.map(|t| Instant::now() + t);
        let setup = match options.timeout {
            Some(limit) => backend
                .set_transaction_timeout(&mut self.conn, limit)
                .map_err(|e| backend.classify(e)),
            None => Ok(()),
        };
        let outcome = match setup {
            Ok(()) => panic::catch_unwind(AssertUnwindSafe(|| f(self))),
            Err(e) => Ok(Err(e)),
        };
        let finished = match outcome {
            Ok(Ok(value)) => self
                .check_deadline()
                .and_then(|()| {
                    <AnyConnection as Connection>::TransactionManager::commit_transaction(
                        &mut *self.conn,
                    )
                    .map_err(|e| backend.classify(e))
                })
                .map(|()| value),
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
        let value = finished?;
        reset.map(|()| value)
    }

    /// Clears transaction state and undoes per-transaction connection settings.
    fn end_transaction(&mut self, options: &TxOptions) -> Result<()> {
        self.depth = 0;
        self.deadline = None;
        if options.timeout.is_none() && !options.read_only {
            return Ok(());
        }
        let backend = self.db.backend;
        backend
            .reset_after_transaction(&mut self.conn, &self.db.config.session)
            .map_err(|e| backend.classify(e))
    }

    fn rollback_quietly(&mut self) {
        // A failed rollback leaves diesel's transaction manager broken; the pool then discards
        // the connection instead of reusing it.
        let _ = <AnyConnection as Connection>::TransactionManager::rollback_transaction(
            &mut *self.conn,
        );
    }

    fn savepoint<T>(&mut self, f: &mut impl FnMut(&mut Session) -> Result<T>) -> Result<T> {
        type Tm = <AnyConnection as Connection>::TransactionManager;
        let backend = self.db.backend;
        Tm::begin_transaction(&mut *self.conn).map_err(|e| backend.classify(e))?;
        self.depth += 1;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(self)));
        self.depth -= 1;
        match outcome {
            Ok(Ok(v)) => match Tm::commit_transaction(&mut *self.conn) {
                Ok(()) => Ok(v),
                Err(e) => {
                    let err = backend.classify(e);
                    let _ = Tm::rollback_transaction(&mut *self.conn);
                    Err(err)
                }
            },
            Ok(Err(e)) => {
                let _ = Tm::rollback_transaction(&mut *self.conn);
                Err(e)
            }
            Err(p) => {
                let _ = Tm::rollback_transaction(&mut *self.conn);
                panic::resume_unwind(p)
            }
        }
    }
}
