//! [`Session`]: a checked-out connection, the transaction driver, and the single write path.
//!
//! Every insert, update and delete that custodian performs goes through
//! `Session::write` (private): it enforces the transaction deadline, wraps multi-statement
//! writes in a transaction, runs the entity's raw statement and classifies errors. Validation,
//! access checks, hooks and audit records attach there, once, so no caller can skip them.
//! Reads take diesel queries built on the generated tables.

use crate::access::{AccessControl, Action};
use crate::audit::chain;
use crate::audit::{AuditOp, AuditRecord};
use crate::conn::AnyConnection;
use crate::db::DbInner;
use crate::entity::{ColumnRole, Entity, Stamp, WriteKind};
use crate::error::{BackendKind, DbError, Error, Result};
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
use std::time::Instant;

pub(crate) mod guard;

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
    db: Arc<DbInner>,
    depth: u32,
    deadline: Option<Instant>,
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
    Error::Integrity(format!("{}: {e}", E::META.name))
}

/// Audited writes fail closed without an acting principal.
fn no_principal<E: Entity>() -> Error {
    Error::Forbidden(format!(
        "writes of {} are audited and need an acting principal: use Db::acting_as or Session::act_as",
        E::META.name
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
                (Some("foreign_key"), Some(only), None) => Some(only),
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

impl Session {
    pub(crate) fn new(
        conn: PooledConnection,
        db: Arc<DbInner>,
        principal: Option<Arc<Principal>>,
        access: Option<Arc<AccessControl>>,
    ) -> Self {
        Session {
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
        }
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

    /// The key sealing this session's audit records (see `DbInner::sealing_key`).
    pub(crate) fn sealing_key(&self) -> Result<Option<&crate::audit::AuditKey>> {
        self.db.sealing_key()
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
    /// Raw: no access policy applies (use [`Session::select`] for entities).
    pub fn load<T, Q>(&mut self, query: Q) -> Result<Vec<T>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        self.run(|c| query.load(c))
    }

    /// Loads the first row of a diesel query, if any. Raw: no access policy applies.
    pub fn first<T, Q>(&mut self, query: Q) -> Result<Option<T>>
    where
        Q: LimitDsl + RunQueryDsl<AnyConnection>,
        diesel::dsl::Limit<Q>: for<'a> LoadQuery<'a, AnyConnection, T>,
    {
        self.run(|c| query.first(c).optional())
    }

    /// Runs a counting query, e.g. `controls::table.filter(...).count()`. Raw: no access
    /// policy applies (use [`Session::count_visible`] for entities).
    pub fn count<Q>(&mut self, query: Q) -> Result<i64>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, i64>,
    {
        self.run(|c| query.get_result(c))
    }

    /// The live entity with this primary key, if it exists (and the principal may see it).
    pub fn find<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        self.authorize::<E>(Action::Read, Some(key))?;
        let found = self.run(|c| E::raw_find(c, key, false))?;
        if let Some(row) = &found {
            self.remember(row);
        }
        Ok(self.visible(found)?.flatten())
    }

    /// Whether this transaction keeps rows read of `E` for guarded updates: audited entities
    /// without encrypted fields, on MariaDB (PostgreSQL's update returns the old row itself, and
    /// on SQLite a locking read costs no round trip, less than remembering every read row).
    fn guards_updates<E: Entity>(&self) -> bool {
        self.depth > 0
            && E::AUDITED
            && !E::META.has_encrypted()
            && self.db.backend.kind() == BackendKind::Mysql
    }

    /// Where a row of `E` with `key` is kept in `seen`.
    fn seen_key<E: Entity>(key: &E::Key) -> Option<(&'static str, String)> {
        let key = E::raw_key_image(key).ok()?;
        Some((std::any::type_name::<E>(), key.to_string()))
    }

    /// Keeps `row` as read, for a guarded update of it later in the transaction.
    fn keep<E: Entity>(&mut self, row: &E) {
        if let (Some(key), Ok(image)) = (Self::seen_key::<E>(&row.key()), row.raw_image()) {
            self.seen.insert(key, image);
        }
    }

    /// Keeps a row read by key (up to [`SEEN_ROWS`] per transaction).
    fn remember<E: Entity>(&mut self, row: &E) {
        if self.guards_updates::<E>() && self.seen.len() < SEEN_ROWS {
            self.keep(row);
        }
    }

    /// Before a bulk update on MariaDB: reads the rows in one statement per chunk of keys and
    /// keeps them (beyond the cap), so that each row's update is a guarded one instead of a
    /// locking read plus the update. The guard, not this read, proves each before image: a row
    /// changed in between (by a hook, a trigger, another writer) falls back to the locking read.
    fn prefetch_before_images<E: Entity>(&mut self, rows: &[E]) -> Result<()> {
        if !self.guards_updates::<E>() {
            return Ok(());
        }
        let keys: Vec<E::Key> = rows.iter().map(Entity::key).collect();
        for chunk in keys.chunks(self.db.backend.max_bind_params().max(1)) {
            for row in self.run(|c| E::raw_find_many(c, chunk))? {
                self.keep(&row);
            }
        }
        Ok(())
    }

    /// The row kept for `key` in this transaction, if any (taken out: an update replaces it).
    fn recall<E: Entity>(&mut self, key: &E::Key) -> Option<Image> {
        if self.seen.is_empty() {
            return None;
        }
        self.seen.remove(&Self::seen_key::<E>(key)?)
    }

    /// The entity with this primary key, soft-deleted or not.
    pub fn find_with_deleted<E: Entity>(&mut self, key: &E::Key) -> Result<Option<E>> {
        self.authorize::<E>(Action::Read, Some(key))?;
        let found = self.run(|c| E::raw_find(c, key, true))?;
        Ok(self.visible(found)?.flatten())
    }

    /// Loads entities with a diesel query, e.g. `Control::query().filter(...).limit(50)`,
    /// applying access control (tenant scope drops rows, masks apply). Prefer it to
    /// [`Session::load`] for entities when policies are in force.
    pub fn select<E: Entity, Q>(&mut self, query: Q) -> Result<Vec<E>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        self.authorize::<E>(Action::Read, None)?;
        let rows: Vec<E> = self.run(|c| query.load(c))?;
        self.visible_all(rows)
    }

    /// The live entity with this primary key; [`Error::NotFound`] if it does not exist.
    pub fn get<E: Entity>(&mut self, key: &E::Key) -> Result<E> {
        self.find::<E>(key)?.ok_or_else(|| not_found::<E>(key))
    }

    /// The live entities with these primary keys, in one statement per 30 000 keys (any order;
    /// missing keys are absent).
    pub fn get_many<E: Entity>(&mut self, keys: &[E::Key]) -> Result<Vec<E>> {
        self.authorize::<E>(Action::Read, None)?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.db.backend.max_bind_params().max(1)) {
            out.extend(self.run(|c| E::raw_find_many(c, chunk))?);
        }
        self.visible_all(out)
    }

    // ---------------------------------------------------------------- relationships

    /// The parent a child points at (`None` when its foreign key is `NULL` or the parent is gone).
    pub fn parent<C, P>(&mut self, child: &C) -> Result<Option<P>>
    where
        C: BelongsTo<P>,
        P: Entity,
    {
        match child.parent_key() {
            Some(key) => self.find::<P>(&key),
            None => Ok(None),
        }
    }

    /// The parents of many children, in the children's order, in one statement.
    pub fn parents<C, P>(&mut self, children: &[C]) -> Result<Vec<Option<P>>>
    where
        C: BelongsTo<P>,
        P: Entity + Clone,
        P::Key: Eq + Hash,
    {
        let mut keys: Vec<P::Key> = children.iter().filter_map(|c| c.parent_key()).collect();
        dedup(&mut keys);
        let found: HashMap<P::Key, P> = self
            .get_many::<P>(&keys)?
            .into_iter()
            .map(|p| (p.key(), p))
            .collect();
        Ok(children
            .iter()
            .map(|c| c.parent_key().and_then(|k| found.get(&k).cloned()))
            .collect())
    }

    /// The children of each parent (`has_many`), in the parents' order, in one statement per
    /// 30 000 parents: loading 100 parents with their children takes two queries, not 101.
    pub fn children<P, C>(&mut self, parents: &[P]) -> Result<Vec<Vec<C>>>
    where
        P: Entity,
        C: BelongsTo<P>,
        P::Key: Eq + Hash,
    {
        self.authorize::<C>(Action::Read, None)?;
        let mut keys: Vec<P::Key> = parents.iter().map(Entity::key).collect();
        dedup(&mut keys);
        let mut by_parent: HashMap<P::Key, Vec<C>> = HashMap::new();
        for chunk in keys.chunks(self.db.backend.max_bind_params().max(1)) {
            let loaded = self.run(|c| C::raw_children_of(c, chunk))?;
            for child in self.visible_all(loaded)? {
                if let Some(k) = child.parent_key() {
                    by_parent.entry(k).or_default().push(child);
                }
            }
        }
        Ok(parents
            .iter()
            .map(|p| by_parent.remove(&p.key()).unwrap_or_default())
            .collect())
    }

    /// The one child of a parent (`has_one`), if any.
    pub fn child<P, C>(&mut self, parent: &P) -> Result<Option<C>>
    where
        P: Entity,
        C: BelongsTo<P>,
    {
        self.authorize::<C>(Action::Read, None)?;
        let key = parent.key();
        let loaded = self.run(|c| C::raw_children_of(c, std::slice::from_ref(&key)))?;
        Ok(self.visible_all(loaded)?.into_iter().next())
    }

    /// Many-to-many: for each left entity, the right entities linked to it through join
    /// entity `J` (which belongs to both). Two statements in all.
    pub fn related<L, J, R>(&mut self, lefts: &[L]) -> Result<Vec<Vec<R>>>
    where
        L: Entity,
        J: BelongsTo<L> + BelongsTo<R>,
        R: Entity + Clone,
        L::Key: Eq + Hash,
        R::Key: Eq + Hash,
    {
        let links: Vec<Vec<J>> = self.children::<L, J>(lefts)?;
        let mut right_keys: Vec<R::Key> = links
            .iter()
            .flatten()
            .filter_map(<J as BelongsTo<R>>::parent_key)
            .collect();
        dedup(&mut right_keys);
        let rights: HashMap<R::Key, R> = self
            .get_many::<R>(&right_keys)?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        Ok(links
            .iter()
            .map(|ls| {
                ls.iter()
                    .filter_map(|j| <J as BelongsTo<R>>::parent_key(j))
                    .filter_map(|k| rights.get(&k).cloned())
                    .collect()
            })
            .collect())
    }

    /// Links two entities through join entity `J` (an insert of `J` on the write path).
    pub fn attach<J: Entity>(&mut self, link: J) -> Result<J> {
        self.insert(link)
    }

    /// Removes a many-to-many link (a hard delete of `J` on the write path).
    pub fn detach<J: Entity>(&mut self, link: &J) -> Result<()> {
        self.purge(link)
    }

    // ---------------------------------------------------------------- writes

    /// Inserts one entity and returns it as stored: validated, hooks run, timestamps and
    /// version set, with the key the database assigned (auto-increment) and, when the entity
    /// has database-generated columns, re-read.
    pub fn insert<E: Entity>(&mut self, entity: E) -> Result<E> {
        let mut rows = [entity];
        self.write(Op::Insert(&mut rows))?;
        let [entity] = rows;
        if E::META.has_generated() {
            return self.get(&entity.key());
        }
        Ok(entity)
    }

    /// Inserts many entities, all or nothing, with as few statements as the backend's
    /// parameter limit allows. Every entity is validated before anything is written; timestamps
    /// and versions are set in place. Returns the number of rows inserted. Keys assigned by the
    /// database are not read back: use [`Session::insert`] when you need them.
    pub fn insert_many<E: Entity>(&mut self, entities: &mut [E]) -> Result<usize> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.write(Op::Insert(entities))
    }

    /// Updates every non-key column of the entity's live row; sets `updated_at` and bumps the
    /// version in place. [`Error::NotFound`] if no live row has its key; [`Error::Conflict`]
    /// (code `stale_version`) if a versioned row changed since this value was read.
    pub fn update<E: Entity>(&mut self, entity: &mut E) -> Result<()> {
        self.write(Op::Update(std::slice::from_mut(entity)))
            .map(|_| ())
    }

    /// Updates many entities, all or nothing (one statement each, in one transaction).
    pub fn update_many<E: Entity>(&mut self, entities: &mut [E]) -> Result<usize> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.write(Op::Update(entities))
    }

    /// Deletes the entity's row: soft-delete entities are marked deleted (hidden from queries,
    /// restorable), others are removed. [`Error::NotFound`] if no live row has its key.
    pub fn delete<E: Entity>(&mut self, entity: &E) -> Result<()> {
        let key = entity.key();
        self.write::<E>(Op::Delete(std::slice::from_ref(&key), DeleteMode::Default))
            .map(|_| ())
    }

    /// [`Session::delete`] by key.
    pub fn delete_by_key<E: Entity>(&mut self, key: &E::Key) -> Result<()> {
        self.write::<E>(Op::Delete(std::slice::from_ref(key), DeleteMode::Default))
            .map(|_| ())
    }

    /// Deletes many entities, all or nothing. Returns the number of rows deleted.
    pub fn delete_many<E: Entity>(&mut self, entities: &[E]) -> Result<usize> {
        let keys: Vec<E::Key> = entities.iter().map(Entity::key).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        self.write::<E>(Op::Delete(&keys, DeleteMode::Default))
    }

    /// Removes the row for good, soft-delete entity or not (deleted rows included).
    pub fn purge<E: Entity>(&mut self, entity: &E) -> Result<()> {
        self.purge_by_key::<E>(&entity.key())
    }

    /// [`Session::purge`] by key.
    pub fn purge_by_key<E: Entity>(&mut self, key: &E::Key) -> Result<()> {
        self.write::<E>(Op::Delete(std::slice::from_ref(key), DeleteMode::Purge))
            .map(|_| ())
    }

    /// Brings a soft-deleted row back and returns it. [`Error::NotFound`] if no deleted row has
    /// this key.
    pub fn restore<E: Entity>(&mut self, key: &E::Key) -> Result<E> {
        self.write::<E>(Op::Delete(std::slice::from_ref(key), DeleteMode::Restore))?;
        self.get(key)
    }

    /// Every soft-deleted row of `E` (none for other entities). Filter them with
    /// `E::query_deleted()` and [`Session::load`].
    pub fn deleted<E: Entity>(&mut self) -> Result<Vec<E>>
    where
        E::QueryDeleted: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        self.select(E::query_deleted())
    }

    /// The write path: every custodian write runs through here, in this order: validation,
    /// before-hooks and stamps, SQL, after-stamps and after-hooks. Writes of several rows or of
    /// entities with hooks run in one transaction (the current one, or a new one).
    fn write<E: Entity>(&mut self, op: Op<'_, E>) -> Result<usize> {
        self.check_deadline()?;
        if let Op::Insert(rows) | Op::Update(rows) = &op {
            validate_all(rows)?;
        }
        if let Some(principal) = self.principal.as_deref() {
            principal.check()?;
        }
        if E::AUDITED {
            if self.principal.is_none() {
                return Err(no_principal::<E>());
            }
            // Refused before any SQL: no row may be written that the trail cannot seal.
            self.db.sealing_key()?;
        }
        let mut op = op;
        self.authorize_write(&mut op)?;
        let statements = match &op {
            Op::Insert(rows) => rows.len().div_ceil(self.insert_chunk::<E>()),
            Op::Update(rows) => rows.len(),
            Op::Delete(keys, _) => keys.len(),
        };
        let result = if E::HOOKS || E::AUDITED || E::META.has_encrypted() || statements > 1 {
            self.in_transaction(|s| s.write_rows(op))
        } else {
            self.write_rows(op)
        };
        result.map_err(attribute_to_field::<E>)
    }

    fn insert_chunk<E: Entity>(&self) -> usize {
        (self.db.backend.max_bind_params() / E::META.insert_width()).max(1)
    }

    fn write_rows<E: Entity>(&mut self, op: Op<'_, E>) -> Result<usize> {
        let now = now_utc();
        let mut trail: Vec<AuditRecord> = Vec::new();
        let n = match op {
            Op::Insert(rows) => {
                for row in rows.iter_mut() {
                    row.raw_stamp(Stamp::Insert, now);
                    row.raw_before(WriteKind::Insert, self)?;
                }
                let n = if E::META.has_encrypted() {
                    // Encrypted fields are written sealed; the caller's rows keep the plaintext.
                    let plain = rows
                        .iter()
                        .map(|r| r.raw_image().map_err(image_error::<E>))
                        .collect::<Result<Vec<_>>>()?;
                    let mut sealed = plain
                        .iter()
                        .map(|p| self.sealed_copy::<E>(p, None))
                        .collect::<Result<Vec<E>>>()?;
                    let n = self.insert_rows(&mut sealed, now, &mut trail)?;
                    for ((row, sealed), plain) in rows.iter_mut().zip(&sealed).zip(&plain) {
                        *row = with_plaintext(sealed, plain)?;
                    }
                    n
                } else {
                    self.insert_rows(rows, now, &mut trail)?
                };
                for row in rows.iter() {
                    row.raw_after(WriteKind::Insert, self)?;
                }
                n
            }
            Op::Update(rows) => {
                let mut n = 0;
                let encrypted = E::META.has_encrypted();
                if rows.len() > 1 {
                    self.prefetch_before_images(rows)?;
                }
                for row in rows.iter_mut() {
                    row.raw_before(WriteKind::Update, self)?;
                    let key = row.key();
                    // The row as stored: the audit record's before image, and the ciphertext
                    // that unchanged encrypted fields keep. Where the backend can, the update
                    // itself yields it; else a locking read comes first.
                    let mut before = if E::AUDITED && !encrypted {
                        self.update_yielding_before(row, &key, now)?
                    } else {
                        None
                    };
                    let updated = before.is_some();
                    if updated {
                        n += 1;
                    }
                    if !updated && (E::AUDITED || encrypted) {
                        before = self
                            .run(|c| E::raw_find_for_update(c, &key, false))?
                            .map(|b| b.raw_image())
                            .transpose()
                            .map_err(image_error::<E>)?;
                    }
                    let mut sealed = None;
                    if encrypted {
                        let plain = row.raw_image().map_err(image_error::<E>)?;
                        sealed = Some((self.sealed_copy::<E>(&plain, before.as_ref())?, plain));
                    }
                    let target = match sealed.as_mut() {
                        Some((sealed, _)) => sealed,
                        None => &mut *row,
                    };
                    if !updated {
                        match self.run(|c| E::raw_update(c, target, now))? {
                            0 => return Err(self.update_miss(target)),
                            m => n += m,
                        }
                    }
                    target.raw_stamp(Stamp::Update, now);
                    if E::AUDITED {
                        let after = self.stored_image::<E>(target, &key)?;
                        trail.push(self.audit_record::<E>(
                            AuditOp::Update,
                            &key,
                            before,
                            after,
                            now,
                        )?);
                    }
                    if let Some((sealed, plain)) = sealed {
                        *row = with_plaintext(&sealed, &plain)?;
                    }
                    row.raw_after(WriteKind::Update, self)?;
                }
                n
            }
            Op::Delete(keys, mode) => {
                let mut n = 0;
                let soft = E::META.soft_delete();
                for key in keys {
                    // A hard delete without hooks: where the backend can, the delete returns
                    // the row it removed, the audit record's before image (one statement).
                    let hard = mode == DeleteMode::Purge || (mode == DeleteMode::Default && !soft);
                    if E::AUDITED && !E::HOOKS && hard {
                        if let Some(gone) = self.run(|c| E::raw_delete_returning(c, key))? {
                            let gone = gone.ok_or_else(|| not_found::<E>(key))?;
                            let before = Some(gone.raw_image().map_err(image_error::<E>)?);
                            let op = match mode {
                                DeleteMode::Purge => AuditOp::Purge,
                                _ => AuditOp::Delete,
                            };
                            trail.push(self.audit_record::<E>(op, key, before, None, now)?);
                            n += 1;
                            continue;
                        }
                    }
                    // The row as it is now: for hooks and for the audit record's before image.
                    let mut before = None;
                    let mut current = if E::HOOKS || E::AUDITED {
                        let with_deleted = mode != DeleteMode::Default;
                        let found = self.run(|c| E::raw_find_for_update(c, key, with_deleted))?;
                        let mut e = found.ok_or_else(|| not_found::<E>(key))?;
                        if E::AUDITED {
                            before = Some(e.raw_image().map_err(image_error::<E>)?);
                        }
                        if E::HOOKS && E::META.has_encrypted() {
                            // Hooks see the plaintext, the trail the ciphertext.
                            e = self.opened(e)?;
                        }
                        if mode != DeleteMode::Restore {
                            e.raw_before(WriteKind::Delete, self)?;
                        }
                        Some(e)
                    } else {
                        None
                    };
                    let m = match mode {
                        DeleteMode::Default if soft => {
                            self.run(|c| E::raw_set_deleted(c, key, Some(now)))?
                        }
                        DeleteMode::Restore if soft => {
                            self.run(|c| E::raw_set_deleted(c, key, None))?
                        }
                        DeleteMode::Restore => 0,
                        _ => self.run(|c| E::raw_delete(c, key))?,
                    };
                    if m == 0 {
                        return Err(not_found::<E>(key));
                    }
                    n += m;
                    if let Some(e) = current.as_mut() {
                        if E::AUDITED {
                            let before = before.take();
                            let (op, after) = match mode {
                                DeleteMode::Purge => (AuditOp::Purge, None),
                                DeleteMode::Default if !soft => (AuditOp::Delete, None),
                                DeleteMode::Default => {
                                    (AuditOp::Delete, self.reread_image::<E>(key)?)
                                }
                                DeleteMode::Restore => {
                                    (AuditOp::Restore, self.reread_image::<E>(key)?)
                                }
                            };
                            trail.push(self.audit_record::<E>(op, key, before, after, now)?);
                        }
                        if mode != DeleteMode::Restore {
                            if soft && mode == DeleteMode::Default {
                                e.raw_stamp(Stamp::SoftDelete, now);
                            }
                            e.raw_after(WriteKind::Delete, self)?;
                        }
                    }
                }
                n
            }
        };
        self.record_audit(trail)?;
        Ok(n)
    }

    /// Updates `row` in one statement that also proves the row it replaced, and returns that
    /// row's image: on PostgreSQL the update returns it; on MariaDB a row read earlier in the
    /// transaction is taken if the update, guarded by every column still holding it, matches.
    /// `Ok(None)` (nothing written) when neither applies: the caller reads under a lock first.
    fn update_yielding_before<E: Entity>(
        &mut self,
        row: &E,
        key: &E::Key,
        now: chrono::NaiveDateTime,
    ) -> Result<Option<Image>> {
        match self.run(|c| E::raw_update_returning_old(c, row, now))? {
            Some(Some(old)) => return old.raw_image().map(Some).map_err(image_error::<E>),
            Some(None) => return Err(self.update_miss(row)),
            None => {}
        }
        let Some(seen) = self.recall::<E>(key) else {
            return Ok(None);
        };
        let Ok(seen_row) = E::raw_from_image(&seen) else {
            return Ok(None);
        };
        let guarded = self.run(|c| E::raw_update_if_unchanged(c, row, now, &seen_row))?;
        Ok((guarded == Some(1)).then_some(seen))
    }

    /// Inserts `rows` (stamped, hooks run) and adds their audit records to `trail`; rows with
    /// an auto-increment key learn it.
    fn insert_rows<E: Entity>(
        &mut self,
        rows: &mut [E],
        now: chrono::NaiveDateTime,
        trail: &mut Vec<AuditRecord>,
    ) -> Result<usize> {
        let auto = E::META.has_auto_increment();
        let mut n = 0;
        if auto && E::AUDITED && rows.len() > 1 && self.insert_learning_keys(rows)? {
            n = rows.len();
        } else if auto && (rows.len() == 1 || E::AUDITED) {
            // Each row learns the key the database assigned (the audit record names it).
            let backend = self.db.backend;
            for row in rows.iter_mut() {
                let returned = self.run(|c| E::raw_insert_one(c, row))?;
                n += 1;
                let id = match returned {
                    Some(id) => id,
                    None => self.run(|c| backend.last_insert_id(c))?,
                };
                row.raw_set_generated_key(id)
                    .map_err(|e| Error::Integrity(format!("generated key {id}: {e}")))?;
            }
        } else if let [row] = rows {
            self.run(|c| E::raw_insert_one(c, row))?;
            n = 1;
        } else {
            for chunk in rows.chunks(self.insert_chunk::<E>()) {
                n += self.run(|c| E::raw_insert(c, chunk))?;
            }
        }
        if E::AUDITED {
            for row in rows.iter() {
                let key = row.key();
                let after = self.stored_image::<E>(row, &key)?;
                trail.push(self.audit_record::<E>(AuditOp::Insert, &key, None, after, now)?);
            }
        }
        Ok(n)
    }

    /// Inserts rows with an auto-increment key in multi-row statements and gives each row its
    /// key (the audit records name them): returned by the insert on PostgreSQL and SQLite,
    /// consecutive from `LAST_INSERT_ID()` on MariaDB when its settings guarantee that.
    /// `Ok(false)` (nothing inserted) when neither holds: the caller inserts row by row.
    fn insert_learning_keys<E: Entity>(&mut self, rows: &mut [E]) -> Result<bool> {
        let backend = self.db.backend;
        if backend.kind() == BackendKind::Mysql {
            // Rows of only database-filled columns go in one `DEFAULT VALUES` insert each, and
            // `LAST_INSERT_ID()` would name the last of them.
            if E::META.inserted_columns() == 0 {
                return Ok(false);
            }
            let consecutive = match self.db.consecutive_ids.get() {
                Some(known) => *known,
                None => {
                    let known = self.run(|c| backend.consecutive_insert_ids(c))?;
                    *self.db.consecutive_ids.get_or_init(|| known)
                }
            };
            if !consecutive {
                return Ok(false);
            }
        }
        let chunk = self.insert_chunk::<E>();
        for rows in rows.chunks_mut(chunk) {
            let keys = match self.run(|c| E::raw_insert_returning_keys(c, rows))? {
                Some(keys) => keys,
                None if backend.kind() == BackendKind::Mysql => {
                    let inserted = self.run(|c| E::raw_insert(c, rows))?;
                    let first = self.run(|c| backend.last_insert_id(c))?;
                    (0..inserted as i64).map(|i| first + i).collect()
                }
                None => return Ok(false),
            };
            if keys.len() != rows.len() {
                return Err(Error::Integrity(format!(
                    "{} rows inserted into {} but {} keys came back",
                    rows.len(),
                    crate::schema::display_name(&E::META),
                    keys.len()
                )));
            }
            for (row, id) in rows.iter_mut().zip(keys) {
                row.raw_set_generated_key(id)
                    .map_err(|e| Error::Integrity(format!("generated key {id}: {e}")))?;
            }
        }
        Ok(true)
    }

    /// A copy of the row whose image is `plain` with its encrypted fields sealed and its blind
    /// indexes filled; `stored` is the row in the database (updates).
    fn sealed_copy<E: Entity>(&mut self, plain: &Image, stored: Option<&Image>) -> Result<E> {
        let mut image = plain.clone();
        crate::crypto::fields::seal_image(self, &E::META, &mut image, stored)?;
        E::raw_from_image(&image).map_err(image_error::<E>)
    }

    /// `e` with its encrypted fields opened.
    fn opened<E: Entity>(&mut self, e: E) -> Result<E> {
        let mut image = e.raw_image().map_err(image_error::<E>)?;
        crate::crypto::fields::open_image(self, &E::META, &mut image)?;
        E::raw_from_image(&image).map_err(image_error::<E>)
    }

    /// The image of a row as stored: re-read when the database fills columns itself.
    fn stored_image<E: Entity>(&mut self, row: &E, key: &E::Key) -> Result<Option<Image>> {
        if E::META.has_generated() {
            return self.reread_image::<E>(key);
        }
        row.raw_image().map(Some).map_err(image_error::<E>)
    }

    fn reread_image<E: Entity>(&mut self, key: &E::Key) -> Result<Option<Image>> {
        self.run(|c| E::raw_find(c, key, true))?
            .map(|e| e.raw_image())
            .transpose()
            .map_err(image_error::<E>)
    }

    /// One audit record of this session's transaction, sealed by [`Session::record_audit`].
    fn audit_record<E: Entity>(
        &self,
        op: AuditOp,
        key: &E::Key,
        before: Option<Image>,
        after: Option<Image>,
        at: chrono::NaiveDateTime,
    ) -> Result<AuditRecord> {
        let actor = self.principal.as_deref().ok_or_else(no_principal::<E>)?;
        let key = E::raw_key_image(key).map_err(image_error::<E>)?;
        let record = AuditRecord {
            id: 0,
            tx_id: self.tx_id.clone().unwrap_or_default(),
            ordinal: 0,
            at,
            actor: actor.id.clone(),
            tenant: actor.tenant.clone(),
            entity: crate::schema::display_name(&E::META),
            entity_key: key.to_string(),
            op: op.as_str().to_string(),
            before: before.map(|b| serde_json::Value::Object(b).to_string()),
            after: after.map(|a| serde_json::Value::Object(a).to_string()),
            reason: self.context.reason.clone(),
            request_id: self.context.request_id.clone(),
            mac: String::new(),
        };
        // Refuse before anything is appended when there is no key (unless unkeyed seals were
        // chosen); the record is sealed when it is stamped.
        self.db.sealing_key()?;
        Ok(record)
    }

    // ---------------------------------------------------------------- access control

    /// Refuses `action` on `E` unless the access policy permits it; a refusal is audited.
    pub(crate) fn authorize<E: Entity>(
        &mut self,
        action: Action,
        key: Option<&E::Key>,
    ) -> Result<()> {
        match self.access.clone() {
            Some(ac) if !ac.permits(&E::META, action, self.principal.as_deref()) => {
                Err(self.deny::<E>(action, key, "the principal's roles do not allow it"))
            }
            _ => Ok(()),
        }
    }

    /// Checks a write against the policy: the role, and that every new and existing row is in
    /// the principal's tenant.
    fn authorize_write<E: Entity>(&mut self, op: &mut Op<'_, E>) -> Result<()> {
        let Some(ac) = self.access.clone() else {
            return Ok(());
        };
        let (action, first_key) = match op {
            Op::Insert(rows) => (Action::Insert, rows.first().map(Entity::key)),
            Op::Update(rows) => (Action::Update, rows.first().map(Entity::key)),
            Op::Delete(keys, _) => (Action::Delete, keys.first().cloned()),
        };
        self.authorize::<E>(action, first_key.as_ref())?;
        let principal = self.principal.clone();
        // Columns this principal only sees masked are read-only for it: an update keeps their
        // stored values instead of writing the mask back.
        let masked = ac.masked_columns(&E::META, principal.as_deref());
        if let (Op::Update(rows), false) = (&mut *op, masked.is_empty()) {
            for row in rows.iter_mut() {
                let key = row.key();
                let Some(stored) = self.run(|c| E::raw_find(c, &key, true))? else {
                    continue;
                };
                let stored = stored.raw_image().map_err(image_error::<E>)?;
                let mut image = row.raw_image().map_err(image_error::<E>)?;
                for column in &masked {
                    if let Some(v) = stored.get(column) {
                        image.insert(column.clone(), v.clone());
                    }
                }
                *row = E::raw_from_image(&image).map_err(image_error::<E>)?;
            }
        }
        if let Op::Insert(rows) | Op::Update(rows) = &*op {
            self.check_references::<E>(&ac, action, rows)?;
        }
        if !ac.has_row_scope(&E::META) {
            return Ok(());
        }
        let outside = "the row belongs to another tenant";
        if let Op::Insert(rows) | Op::Update(rows) = op {
            for row in rows.iter() {
                let image = row.raw_image().map_err(image_error::<E>)?;
                if !ac.row_in_scope(&E::META, &image, principal.as_deref()) {
                    return Err(self.deny::<E>(action, Some(&row.key()), outside));
                }
            }
        }
        let keys: Vec<E::Key> = match op {
            Op::Insert(_) => Vec::new(),
            Op::Update(rows) => rows.iter().map(Entity::key).collect(),
            Op::Delete(keys, _) => keys.to_vec(),
        };
        for key in keys {
            if let Some(existing) = self.run(|c| E::raw_find(c, &key, true))? {
                let image = existing.raw_image().map_err(image_error::<E>)?;
                if !ac.row_in_scope(&E::META, &image, principal.as_deref()) {
                    return Err(self.deny::<E>(action, Some(&key), outside));
                }
            }
        }
        Ok(())
    }

    /// A `Forbidden` error, after recording the refusal in the audit trail.
    fn deny<E: Entity>(&mut self, action: Action, key: Option<&E::Key>, why: &str) -> Error {
        let entity_key = match key.map(E::raw_key_image).transpose() {
            Ok(k) => k.map_or_else(|| "null".to_string(), |k| k.to_string()),
            Err(e) => return image_error::<E>(e),
        };
        let entity = crate::schema::display_name(&E::META);
        self.refuse(E::META.name, entity, entity_key, action.as_str(), why)
    }

    /// A `Forbidden` error for `action` on `what` (`entity` and `entity_key` as the audit trail
    /// names them), after recording the refusal in the audit trail.
    pub(crate) fn refuse(
        &mut self,
        what: &str,
        entity: String,
        entity_key: String,
        action: &str,
        why: &str,
    ) -> Error {
        let who = self
            .principal
            .as_deref()
            .map_or("an anonymous session", |p| p.id.as_str());
        let err = Error::Forbidden(format!("{who} may not {action} {what}: {why}"));
        match self.record_denial(entity, entity_key, action, why) {
            Ok(()) => err,
            Err(e) => {
                Error::Forbidden(format!("{err} (and the refusal could not be audited: {e})"))
            }
        }
    }

    /// Appends a `denied` record outside the caller's transaction, so that the caller rolling
    /// back cannot erase it (see [`guard`]); an error when it cannot be recorded.
    fn record_denial(
        &mut self,
        entity: String,
        entity_key: String,
        action: &str,
        why: &str,
    ) -> Result<()> {
        let principal = self.principal.as_deref();
        let record = AuditRecord {
            id: 0,
            tx_id: self.tx_id.clone().unwrap_or_default(),
            ordinal: 0,
            at: now_utc(),
            actor: principal.map_or_else(|| "anonymous".to_string(), |p| p.id.clone()),
            tenant: principal.and_then(|p| p.tenant.clone()),
            entity,
            entity_key,
            op: AuditOp::Denied.as_str().to_string(),
            before: None,
            after: Some(serde_json::json!({ "action": action, "why": why }).to_string()),
            reason: self.context.reason.clone(),
            request_id: self.context.request_id.clone(),
            mac: String::new(),
        };
        let record = self.stamp(record)?;
        self.persist_denial(&record)
    }

    /// Applies tenant scope and masks to a loaded entity (`None` if it is out of scope).
    /// Encrypted fields are opened (see [`crate::crypto::fields`]) before masks apply.
    pub(crate) fn visible<E: Entity>(&mut self, entity: Option<E>) -> Result<Option<Option<E>>> {
        let Some(e) = entity else {
            return Ok(Some(None));
        };
        let encrypted = E::META.has_encrypted();
        let access = self.access.clone();
        if access.is_none() && !encrypted {
            return Ok(Some(Some(e)));
        }
        let mut image = e.raw_image().map_err(image_error::<E>)?;
        let p = self.principal.clone();
        if let Some(ac) = access.as_deref() {
            if !ac.row_in_scope(&E::META, &image, p.as_deref()) {
                return Ok(None);
            }
        }
        let mut changed = false;
        if encrypted {
            crate::crypto::fields::open_image(self, &E::META, &mut image)?;
            changed = true;
        }
        if let Some(ac) = access.as_deref() {
            changed |= ac.mask(&E::META, &mut image, p.as_deref());
        }
        if changed {
            return E::raw_from_image(&image)
                .map(|visible| Some(Some(visible)))
                .map_err(image_error::<E>);
        }
        Ok(Some(Some(e)))
    }

    /// [`Session::visible`] over many entities.
    pub(crate) fn visible_all<E: Entity>(&mut self, rows: Vec<E>) -> Result<Vec<E>> {
        if self.access.is_none() && !E::META.has_encrypted() {
            return Ok(rows);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(Some(e)) = self.visible(Some(row))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Why an update matched no row: a stale version (the row exists) or a missing row.
    fn update_miss<E: Entity>(&mut self, entity: &E) -> Error {
        let key = entity.key();
        let exists = matches!(self.run(|c| E::raw_find(c, &key, false)), Ok(Some(_)));
        match (E::META.role(ColumnRole::Version), entity.version()) {
            (Some(col), Some(version)) if exists => Error::Conflict {
                source: Box::new(DbError {
                    code: Some("stale_version".into()),
                    table: Some(E::META.table.into()),
                    column: Some(col.name.into()),
                    field: Some(col.field.into()),
                    kind: Some("stale_version"),
                    ..DbError::new(
                        self.db.backend.kind(),
                        None,
                        format!(
                            "{} {key:?} was changed since version {version} was read",
                            E::META.name
                        ),
                    )
                }),
            },
            _ => not_found::<E>(&key),
        }
    }

    /// Runs `f` inside the current transaction, or a new one (without retry) if there is none.
    /// Appends the open transaction's pending audit records now (before commit, and before
    /// anything reads the trail inside the transaction).
    pub(crate) fn flush_audit(&mut self) -> Result<()> {
        if self.pending_audit.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending_audit);
        self.run(|c| chain::append(c, &records)).map(|_| ())
    }

    /// Adds records (of the write path, or of key changes) to this session's transaction:
    /// appended with the others just before commit, dropped with a rolled-back savepoint;
    /// appended at once inside a transaction opened on the raw connection, whose commit
    /// custodian does not see.
    pub(crate) fn record_audit(&mut self, records: Vec<AuditRecord>) -> Result<()> {
        let records = records
            .into_iter()
            .map(|r| self.stamp(r))
            .collect::<Result<Vec<_>>>()?;
        if self.depth > 0 {
            self.pending_audit.extend(records);
        } else if !records.is_empty() {
            self.run(|c| chain::append(c, &records))?;
        }
        Ok(())
    }

    /// Gives a record its identity and seals it: the open transaction's id (a fresh one outside
    /// custodian's transactions) and the next ordinal in it, so that no two records share both
    /// and a copied record is recognisable by its seal.
    fn stamp(&mut self, mut record: AuditRecord) -> Result<AuditRecord> {
        if record.tx_id.is_empty() {
            record.tx_id = match &self.tx_id {
                Some(id) => id.clone(),
                None => {
                    self.next_ordinal = 0;
                    let id = uuid::Uuid::new_v4().to_string();
                    if self.depth > 0 {
                        self.tx_id = Some(id.clone());
                    }
                    id
                }
            };
        }
        record.ordinal = self.next_ordinal;
        self.next_ordinal = self.next_ordinal.saturating_add(1);
        Ok(record.seal(self.db.sealing_key()?))
    }

    fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        // Inside custodian's transaction, or one opened on the raw connection: join it.
        let raw_depth =
            <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(
                &mut self.conn,
            )
            .transaction_depth()
            .ok()
            .flatten();
        if self.depth > 0 || raw_depth.is_some() {
            return f(self);
        }
        let mut f = Some(f);
        // IMMEDIATE on SQLite: the write reads (before images) then writes, and must not lose a
        // race to another writer half-way.
        self.transaction_with(&TxOptions::new().immediate().no_retry(), |s| {
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
        self.tx_id = Some(uuid::Uuid::new_v4().to_string());
        self.next_ordinal = 0;
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
                .and_then(|()| self.flush_audit())
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
        self.tx_id = None;
        self.pending_audit.clear();
        self.seen.clear();
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
        // Records of writes inside the savepoint go if the savepoint is rolled back.
        let mark = self.pending_audit.len();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(self)));
        self.depth -= 1;
        match outcome {
            Ok(Ok(v)) => match Tm::commit_transaction(&mut *self.conn) {
                Ok(()) => Ok(v),
                Err(e) => {
                    let err = backend.classify(e);
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
}
