//! Set-based writes on the write path: [`Session::update_where`] and [`Session::delete_where`].
//!
//! One statement's worth of rows is changed by a diesel filter and, for updates, a diesel
//! changeset (`balance.eq(balance + 10)`), without reading whole rows into Rust first. The
//! guarantees of single-row writes still hold, in one transaction:
//!
//! 1. The role is checked; the principal's tenant scope is ANDed into the filter in SQL, so
//!    rows of other tenants are neither changed nor counted.
//! 2. The matching rows are read under a lock, in key order (`FOR UPDATE` on PostgreSQL and
//!    MariaDB; SQLite's write transaction keeps other writers out): their true before images.
//! 3. The statement changes exactly those keys (`key IN (...)`), setting `updated_at` and
//!    bumping `version` (updates) or setting `deleted_at` (soft delete).
//! 4. The rows as updated (returned by the update on PostgreSQL and SQLite, read again by key
//!    on MariaDB): their after images are checked (columns the write path
//!    maintains untouched, still in the principal's tenant, masked columns unchanged, foreign
//!    keys readable, entity validators pass) and become one audit record per row.
//!
//! Any failure rolls the whole write back: nothing is changed and nothing recorded.

use super::set_sql::{key_order, DeleteKeys, SetKeys, SetLocked, Stamped, TenantScope};
use super::*;
use crate::conn::MultiBackend;
use crate::entity::{ColumnMeta, KeysFilter};
use diesel::query_builder::{AsChangeset, QueryFragment};

/// A set update's rows in key order (key, before image, row as read), and the rows as
/// updated by key image.
type UpdatedRows<E> = (Vec<(<E as Entity>::Key, Image, E)>, HashMap<String, Image>);

impl Session {
    /// Updates every live row of `E` that `filter` matches with a changeset in diesel's own
    /// DSL, computed by the database, and returns the number of rows updated: the set-based
    /// form of [`Session::update`], for changes such as `balance = balance + 10` that need no
    /// read-modify-write round trip and so no `SERIALIZABLE` isolation or retries.
    ///
    /// `filter` is any diesel boolean expression over `E`'s table that `E::query().filter(..)`
    /// accepts; `changes` any changeset of `E`'s table (`column.eq(expression)`, or a tuple of
    /// them). It runs on the write path, in a transaction of its own (a savepoint inside the
    /// caller's transaction):
    ///
    /// - the role must allow updates of `E`; rows outside the principal's tenant never match
    ///   (the scope is ANDed into the filter in SQL), so they are neither changed nor counted;
    /// - the matching rows are read with a lock, in key order (`SELECT … FOR UPDATE` on
    ///   PostgreSQL and MariaDB; on SQLite the write transaction keeps other writers out), then
    ///   updated by key: concurrent set updates of the same rows wait for each other, and none
    ///   is lost at the default isolation level;
    /// - `updated_at` is set and `version` bumped on every updated row;
    /// - the changeset may not assign the key, a column the write path maintains (version,
    ///   timestamps, soft-delete marker, encrypted fields and their blind indexes) or a column
    ///   the principal sees masked ([`Error::Forbidden`] before any SQL);
    /// - the rows as updated (returned by the update itself on PostgreSQL and SQLite, read
    ///   back by key on MariaDB) are checked: they may not leave the principal's tenant, their
    ///   foreign keys must name parents it may read ([`Error::Forbidden`], recorded as a
    ///   `denied` record), and every one must pass the entity's validators
    ///   ([`Error::Validation`], `index` naming the row in key order). Validators need whole
    ///   rows, so they judge the rows as updated, after the statement, and a failure rolls
    ///   the statement back;
    /// - audited entities get one `update` record per row with its true before and after
    ///   images, in the same transaction.
    ///
    /// Any failure (including a database error such as a check constraint, as a typed
    /// [`Error`]) rolls everything back: no row changed, nothing recorded. Entities with
    /// lifecycle hooks are refused ([`Error::Config`]): their `before_update` hook needs the
    /// row before the database computes it. Use [`Session::update`] for them. Like
    /// [`Session::select`], a filter on a masked column can tell, by the count, something
    /// about the masked values.
    ///
    /// A runnable example is in the `custodian` crate's `guide::session` module ("Set-based
    /// updates and deletes"), run as a doctest.
    pub fn update_where<E: Entity>(
        &mut self,
        filter: impl SetFilter<E>,
        changes: impl AsChangeset<Target = E::Table, Changeset = impl QueryFragment<MultiBackend>>,
    ) -> Result<usize> {
        if E::HOOKS {
            return Err(Error::config(
                "update_where",
                format!(
                    "{} has lifecycle hooks, which need each row before it is written: use \
                     Session::update",
                    E::META.name
                ),
            ));
        }
        let Some(scope) = self.set_write_scope::<E>(Action::Update)? else {
            return Ok(0);
        };
        let set = changes.as_changeset();
        let assigned = self.check_assignments::<E>(&set)?;
        let guarded = self.can_refuse_after_update::<E>(&assigned);
        let locked = filter.locked(scope);
        self.set_write_tx(guarded, |s| {
            let mut wrote = false;
            let outcome = s.update_locked::<E, _, _>(locked, set, &mut wrote);
            if let Err(e) = &outcome {
                if wrote && !guarded {
                    s.doom(e);
                }
            }
            outcome
        })
        .map_err(attribute_to_field::<E>)
    }

    /// Whether a set update of `E` assigning `assigned` can still be refused once its
    /// statement has run, for a reason of the caller's making: the entity has validators
    /// (they judge the rows as updated) or hooks, the changeset assigns the tenant column
    /// (a row may leave the principal's tenant), or it assigns a foreign key the access
    /// policy checks. Such an update runs in a savepoint inside the caller's transaction,
    /// so that a refusal undoes only it; any other runs without one (see
    /// [`Session::update_where`]).
    fn can_refuse_after_update<E: Entity>(&self, assigned: &[&'static str]) -> bool {
        if E::HOOKS || E::raw_validates() {
            return true;
        }
        let Some(ac) = self.access.as_deref() else {
            return false;
        };
        let tenant = ac.tenant_column(&E::META);
        E::META.columns.iter().any(|c| {
            assigned.contains(&c.name) && (c.references.is_some() || tenant == Some(c.name))
        })
    }

    /// Deletes every live row of `E` that `filter` matches and returns the number of rows
    /// deleted: the set-based form of [`Session::delete`]. Soft-delete entities have
    /// `deleted_at` set (only live rows match, and they stay restorable); others are removed,
    /// with the database's cascades recorded as single deletes record them.
    ///
    /// Like [`Session::update_where`]: one transaction; the role must allow deletes; the
    /// principal's tenant scope is ANDed into the filter; the rows are read under a lock in
    /// key order and deleted by key; lifecycle hooks run for each row (`before_delete` before
    /// the statement, `after_delete` after); audited entities get one `delete` record per row
    /// with its true before image (and, soft-deleted, its after image). Any failure rolls
    /// everything back.
    ///
    /// A runnable example is in the `custodian` crate's `guide::session` module ("Set-based
    /// updates and deletes"), run as a doctest.
    pub fn delete_where<E: Entity>(&mut self, filter: impl SetFilter<E>) -> Result<usize> {
        let Some(scope) = self.set_write_scope::<E>(Action::Delete)? else {
            return Ok(0);
        };
        let locked = filter.locked(scope);
        self.set_write_tx(true, |s| s.delete_locked::<E, _>(locked))
            .map_err(attribute_to_field::<E>)
    }

    /// The checks before a set-based write's first statement (as `write` makes them), and the
    /// principal's tenant scope; `None` when the principal may see no row at all.
    fn set_write_scope<E: Entity>(&mut self, action: Action) -> Result<Option<TenantScope>> {
        self.check_deadline()?;
        if let Some(principal) = self.principal.as_deref() {
            principal.check()?;
        }
        if E::AUDITED {
            if self.principal.is_none() {
                return Err(no_principal::<E>());
            }
            self.db.sealing_key()?;
        }
        self.authorize::<E>(action, None)?;
        let access = self.access.clone();
        let scope = match access.as_deref().and_then(|ac| ac.tenant_column(&E::META)) {
            None => None,
            Some(column) => match self.principal.as_deref().and_then(|p| p.tenant.as_deref()) {
                None => return Ok(None),
                Some(tenant) => Some((column.to_string(), tenant.to_string())),
            },
        };
        Ok(Some(TenantScope { scope }))
    }

    /// Refuses, before any SQL, a changeset that assigns a column the write path maintains
    /// (see [`maintained`]) or one the principal sees masked. The columns are read off the
    /// changeset as SQL (`"col" = …, "col" = …`; diesel qualifies columns inside expressions
    /// with their table, so only assignment targets appear bare after a separator). The
    /// after images are checked again all the same.
    fn check_assignments<E: Entity>(
        &mut self,
        set: &impl QueryFragment<MultiBackend>,
    ) -> Result<Vec<&'static str>> {
        let mut assignments = Vec::new();
        let sql = crate::conn::run::render_sql(&self.conn, |qb, backend| set.to_sql(qb, backend))
            .map_err(|e| self.classify(e))?;
        let masked = match self.access.as_deref() {
            Some(ac) => ac.masked_columns(&E::META, self.principal.as_deref()),
            None => Vec::new(),
        };
        for c in E::META.columns {
            let quoted = crate::conn::run::render_sql(&self.conn, |qb, _| {
                diesel::query_builder::QueryBuilder::push_identifier(qb, c.name)
            })
            .map_err(|e| self.classify(e))?;
            let target = format!("{quoted} = ");
            let assigned = sql.starts_with(&target) || sql.contains(&format!(", {target}"));
            if !assigned {
                continue;
            }
            assignments.push(c.name);
            if maintained::<E>(c)
                || c.role == ColumnRole::Version
                || c.role == ColumnRole::UpdatedAt
            {
                return Err(Error::Forbidden(format!(
                    "a set update of {} may not assign `{}`: the write path maintains it",
                    E::META.name,
                    c.field
                )));
            }
            if masked.iter().any(|m| m == c.name) {
                let why = format!("`{}` is masked for the principal, so read-only", c.field);
                return Err(self.deny::<E>(Action::Update, None, &why));
            }
        }
        Ok(assignments)
    }

    /// Runs a set-based write in its own transaction, or inside custodian's open transaction:
    /// `guarded`, in a savepoint of it, so that a failure after its statement (a validator, a
    /// check of the rows as updated) undoes the statement even when the caller goes on;
    /// otherwise in the transaction itself (the write dooms it if it fails half-way). Inside
    /// a transaction opened on the raw connection it joins that one (whose rollback is the
    /// caller's).
    fn set_write_tx<T>(
        &mut self,
        guarded: bool,
        f: impl FnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        if self.depth == 0 || !guarded {
            return self.in_transaction(f);
        }
        let mut f = Some(f);
        self.savepoint(&mut |s| match f.take() {
            Some(f) => f(s),
            None => Err(Error::integrity(
                IntegrityKind::Internal,
                "set write retried",
            )),
        })
    }

    /// How many keys one set-based statement names: a composite key one at a time.
    fn keys_per_statement<E: Entity>(&self) -> usize {
        if E::META.primary_key().count() > 1 {
            1
        } else {
            self.db.backend.max_bind_params().max(1)
        }
    }

    fn keys_filter<E: Entity>(keys: &[E::Key]) -> Result<KeysFilter<E>> {
        E::raw_keys_filter(keys).ok_or_else(|| {
            Error::config(
                "update_where/delete_where",
                format!("{} cannot select rows by key for a set write", E::META.name),
            )
        })
    }

    /// The locked rows of a set-based write, with their keys and images.
    fn lock_rows<E: Entity, Q>(&mut self, locked: Q) -> Result<Vec<(E::Key, Image, E)>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        let rows: Vec<E> = self.run(|c| locked.load(c))?;
        rows.into_iter()
            .map(|row| {
                let image = row.raw_image().map_err(image_error::<E>)?;
                // A row kept for a guarded update is stale now.
                let _ = self.recall::<E>(&row.key());
                Ok((row.key(), image, row))
            })
            .collect()
    }

    /// The locking read, the update by key and the checks of the rows as updated; `wrote`
    /// turns true once an update statement is sent (it may have changed rows).
    fn update_locked<E: Entity, Q, S>(
        &mut self,
        locked: Q,
        set: S,
        wrote: &mut bool,
    ) -> Result<usize>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E> + QueryFragment<MultiBackend>,
        S: QueryFragment<MultiBackend>,
    {
        let now = now_utc();
        let mut stamps = Vec::new();
        if let Some(c) = E::META.role(ColumnRole::UpdatedAt) {
            stamps.push(Stamped::Now(c.name, crate::sql_types::StoredDatetime(now)));
        }
        if let Some(c) = E::META.role(ColumnRole::Version) {
            stamps.push(Stamped::Increment(c.name));
        }
        // PostgreSQL: the locking read inside the update, both images returned by it.
        let pairs = match E::META.schema {
            None => {
                let statement = SetLocked {
                    meta: &E::META,
                    set: &set,
                    stamps: &stamps,
                    locked: &locked,
                };
                // Once the update is sent, its rows may have changed even if it fails later
                // (its result not decoding, say).
                *wrote = true;
                let pairs =
                    self.run(|c| E::raw_update_returning_both(Internal::new(), c, &statement))?;
                *wrote = pairs.is_some();
                pairs
            }
            Some(_) => None,
        };
        let (rows, mut after) = match pairs {
            Some(pairs) => self.both_images::<E>(pairs)?,
            None => self.lock_and_update::<E, _, _>(locked, &set, &stamps, wrote)?,
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let access = self.access.clone();
        let principal = self.principal.clone();
        let masked = access
            .as_deref()
            .map(|ac| ac.masked_columns(&E::META, principal.as_deref()))
            .unwrap_or_default();
        let mut updated = Vec::with_capacity(rows.len());
        let mut trail = Vec::new();
        for (i, (key, before, _)) in rows.into_iter().enumerate() {
            let key_image = E::raw_key_image(&key).map_err(image_error::<E>)?;
            let Some(image) = after.remove(&key_image.to_string()) else {
                return Err(Error::Forbidden(format!(
                    "a set update of {} may not change a row's key or soft-delete marker \
                     ({key:?})",
                    E::META.name
                )));
            };
            if let Some(column) = changed_maintained::<E>(&before, &image) {
                return Err(Error::Forbidden(format!(
                    "a set update of {} may not assign `{column}`: the write path maintains it",
                    E::META.name
                )));
            }
            if let Some(column) = masked.iter().find(|c| before.get(*c) != image.get(*c)) {
                let why = format!("`{column}` is masked for the principal, so read-only");
                return Err(self.deny::<E>(Action::Update, Some(&key), &why));
            }
            if let Some(ac) = access.as_deref() {
                if !ac.row_in_scope(&E::META, &image, principal.as_deref()) {
                    let why = "the update would move the row to another tenant";
                    return Err(self.deny::<E>(Action::Update, Some(&key), why));
                }
            }
            let row = E::raw_from_image(&image).map_err(image_error::<E>)?;
            if let Err(mut v) = row.validate() {
                v.index = Some(i);
                return Err(Error::Validation(v));
            }
            if E::AUDITED {
                trail.push(self.audit_record::<E>(
                    AuditOp::Update,
                    &key,
                    Some(before),
                    Some(image),
                    now,
                )?);
            }
            updated.push(row);
        }
        if let Some(ac) = access.as_deref() {
            self.check_references::<E>(ac, Action::Update, &updated)?;
        }
        self.record_audit(trail)?;
        Ok(updated.len())
    }

    /// The rows of PostgreSQL's one-statement set update, as the other backends' path gives
    /// them: `(key, before image, row)` in key order, and the after images by key image.
    fn both_images<E: Entity>(&mut self, pairs: Vec<(E, E)>) -> Result<UpdatedRows<E>> {
        let mut rows = Vec::with_capacity(pairs.len());
        let mut after = HashMap::with_capacity(pairs.len());
        for (old, new) in pairs {
            let image = old.raw_image().map_err(image_error::<E>)?;
            // A row kept for a guarded update is stale now.
            let _ = self.recall::<E>(&old.key());
            let key = E::raw_key_image(&new.key()).map_err(image_error::<E>)?;
            after.insert(key.to_string(), new.raw_image().map_err(image_error::<E>)?);
            let order = E::raw_key_image(&old.key()).map_err(image_error::<E>)?;
            rows.push((order, (old.key(), image, old)));
        }
        rows.sort_by(|a, b| key_order(&a.0, &b.0));
        Ok((rows.into_iter().map(|(_, row)| row).collect(), after))
    }

    /// The locking read of a set update, then the update by key (with `RETURNING` where the
    /// backend has it, else followed by a read of the rows as updated).
    fn lock_and_update<E: Entity, Q, S>(
        &mut self,
        locked: Q,
        set: &S,
        stamps: &[Stamped],
        wrote: &mut bool,
    ) -> Result<UpdatedRows<E>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
        S: QueryFragment<MultiBackend>,
    {
        let rows = self.lock_rows::<E, _>(locked)?;
        let keys: Vec<E::Key> = rows.iter().map(|(k, _, _)| k.clone()).collect();
        // The rows as updated, by key image: returned by the update itself where the backend
        // has `RETURNING` (SQLite), else read back by key.
        let mut after: HashMap<String, Image> = HashMap::with_capacity(keys.len());
        let keep = |after: &mut HashMap<String, Image>, rows: Vec<E>| -> Result<()> {
            for row in rows {
                let key = E::raw_key_image(&row.key()).map_err(image_error::<E>)?;
                after.insert(key.to_string(), row.raw_image().map_err(image_error::<E>)?);
            }
            Ok(())
        };
        let mut read_back = false;
        for chunk in keys.chunks(self.keys_per_statement::<E>()) {
            let filter = Self::keys_filter::<E>(chunk)?;
            let statement = SetKeys {
                meta: &E::META,
                set: Some(set),
                stamps,
                filter: &filter,
            };
            *wrote = true;
            match self.run(|c| E::raw_update_returning(Internal::new(), c, &statement))? {
                Some(rows) => keep(&mut after, rows)?,
                None => {
                    self.run(|c| statement.execute(c))?;
                    read_back = true;
                }
            }
        }
        if read_back {
            for chunk in keys.chunks(self.db.backend.max_bind_params().max(1)) {
                let rows = self.run(|c| E::raw_find_many(Internal::new(), c, chunk))?;
                keep(&mut after, rows)?;
            }
        }
        Ok((rows, after))
    }

    fn delete_locked<E: Entity, Q>(&mut self, locked: Q) -> Result<usize>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        let now = now_utc();
        let mut rows = self.lock_rows::<E, _>(locked)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let soft = E::META.soft_delete();
        if E::HOOKS {
            for (_, image, row) in rows.iter_mut() {
                if E::META.has_encrypted() {
                    // Hooks see the plaintext, the trail the ciphertext.
                    *row = self.opened(E::raw_from_image(image).map_err(image_error::<E>)?)?;
                }
                row.raw_before(WriteKind::Delete, &mut HookSession::new(self))?;
            }
        }
        let mut trail = Vec::new();
        let keys: Vec<E::Key> = rows.iter().map(|(k, _, _)| k.clone()).collect();
        if !soft {
            for key in &keys {
                cascade::before_hard_delete::<E>(self, key, now, &mut trail)?;
            }
        }
        let stamps = E::META
            .role(ColumnRole::DeletedAt)
            .map(|c| [Stamped::Now(c.name, crate::sql_types::StoredDatetime(now))]);
        let mut n = 0;
        let mut after: HashMap<String, Image> = HashMap::new();
        for chunk in keys.chunks(self.keys_per_statement::<E>()) {
            let filter = Self::keys_filter::<E>(chunk)?;
            n += match &stamps {
                Some(stamps) => {
                    let statement = SetKeys::<()> {
                        meta: &E::META,
                        set: None,
                        stamps,
                        filter: &filter,
                    };
                    // The rows as soft-deleted come back where the backend has `RETURNING`.
                    match self.run(|c| E::raw_update_returning(Internal::new(), c, &statement))? {
                        Some(rows) if E::AUDITED => {
                            let m = rows.len();
                            for row in rows {
                                let key = E::raw_key_image(&row.key()).map_err(image_error::<E>)?;
                                let image = row.raw_image().map_err(image_error::<E>)?;
                                after.insert(key.to_string(), image);
                            }
                            m
                        }
                        Some(rows) => rows.len(),
                        None => self.run(|c| statement.execute(c))?,
                    }
                }
                None => {
                    let statement = DeleteKeys {
                        meta: &E::META,
                        filter: &filter,
                    };
                    self.run(|c| statement.execute(c))?
                }
            };
        }
        if n != keys.len() {
            return Err(Error::integrity(
                IntegrityKind::Internal,
                format!(
                    "{} locked rows of {} to delete but {n} were deleted",
                    keys.len(),
                    E::META.name
                ),
            ));
        }
        if E::AUDITED {
            for (key, before, _) in &rows {
                let after = match soft {
                    false => None,
                    true => {
                        let returned = E::raw_key_image(key)
                            .map_err(image_error::<E>)
                            .map(|k| after.remove(&k.to_string()))?;
                        match returned {
                            Some(image) => Some(image),
                            None => self.reread_image::<E>(key)?,
                        }
                    }
                };
                trail.push(self.audit_record::<E>(
                    AuditOp::Delete,
                    key,
                    Some(before.clone()),
                    after,
                    now,
                )?);
            }
        }
        self.record_audit(trail)?;
        if E::HOOKS {
            for (_, _, row) in rows.iter_mut() {
                if soft {
                    row.raw_stamp(Stamp::SoftDelete, now);
                }
                row.raw_after(WriteKind::Delete, &mut HookSession::new(self))?;
            }
        }
        Ok(n)
    }
}

/// The first column the write path maintains that a set update changed otherwise than the
/// write path does: the key, `created_at`, `deleted_at`, encrypted fields, blind indexes and
/// the data subject (of entities with encrypted fields), a version not bumped by exactly one.
/// `updated_at` is the write path's own assignment (a second assignment of it is refused by
/// PostgreSQL and SQLite, and on MariaDB the write path's comes last).
fn changed_maintained<E: Entity>(before: &Image, after: &Image) -> Option<&'static str> {
    for c in E::META.columns {
        let (b, a) = (before.get(c.name), after.get(c.name));
        if maintained::<E>(c) && b != a {
            return Some(c.field);
        }
        if c.role == ColumnRole::Version {
            let bumped = match (b.and_then(|v| v.as_i64()), a.and_then(|v| v.as_i64())) {
                (Some(b), Some(a)) => a == b + 1,
                _ => false,
            };
            if !bumped {
                return Some(c.field);
            }
        }
    }
    None
}

/// Columns a set update must leave as they are: the key, `created_at`, `deleted_at`, encrypted
/// fields, blind indexes and (with encrypted fields) the data subject. `version` and
/// `updated_at` the write path sets itself.
fn maintained<E: Entity>(c: &ColumnMeta) -> bool {
    c.primary_key
        || matches!(c.role, ColumnRole::CreatedAt | ColumnRole::DeletedAt)
        || c.encrypted
        || c.blind_index_of.is_some()
        || (E::META.has_encrypted() && c.subject)
}
