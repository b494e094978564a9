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
//!    Lifecycle hooks' `before_*` run on them.
//! 3. The statement changes exactly those rows, setting `updated_at` and bumping `version`
//!    (updates) or setting `deleted_at` (soft delete). PostgreSQL updates with the locking
//!    read as its sub-select, in one statement returning both images (see `set_update`).
//! 4. The rows as updated (returned by the update on PostgreSQL and SQLite, read again by key
//!    on MariaDB): their after images are checked (columns the write path
//!    maintains untouched, still in the principal's tenant, masked columns unchanged, foreign
//!    keys readable, entity validators pass) and become one audit record per row; `after_*`
//!    hooks run on them.
//!
//! Any failure rolls the whole write back: nothing is changed and nothing recorded.

use super::set_sql::{DeleteKeys, SetKeys, Stamped, TenantScope};
use super::*;
use crate::conn::MultiBackend;
use crate::entity::{ColumnMeta, KeysFilter};
use diesel::query_builder::{AsChangeset, QueryFragment};

impl Session {
    /// Updates every live row of `E` that `filter` matches with a changeset in diesel's own
    /// DSL, computed by the database, and returns the number of rows updated: the set-based
    /// form of [`Session::update`], for changes such as `balance = balance + 10` that need no
    /// read-modify-write round trip and so no `SERIALIZABLE` isolation or retries.
    ///
    /// `filter` is any diesel boolean expression over `E`'s table that `E::query().filter(..)`
    /// accepts; `changes` any changeset of `E`'s table (`column.eq(expression)`, or a tuple of
    /// them). It runs on the write path, in a transaction of its own, or in the caller's:
    ///
    /// - the role must allow updates of `E`; rows outside the principal's tenant never match
    ///   (the scope is ANDed into the filter in SQL), so they are neither changed nor counted;
    /// - the matching rows are read with a lock, in key order (`SELECT … FOR UPDATE` on
    ///   PostgreSQL and MariaDB; on SQLite the write transaction keeps other writers out), then
    ///   updated by key: concurrent set updates of the same rows wait for each other, and none
    ///   is lost at the default isolation level. On PostgreSQL the locking read is a sub-select
    ///   of the update, which returns each row as it was and as updated: one statement;
    ///   SQLite's update returns the rows as updated (two statements); MariaDB reads them
    ///   back by key (three);
    /// - `updated_at` is set and `version` bumped on every updated row;
    /// - the changeset may not assign the key, a column the write path maintains (version,
    ///   timestamps, soft-delete marker, encrypted fields and their blind indexes) or a column
    ///   the principal sees masked ([`Error::Forbidden`] before any SQL);
    /// - the rows as updated are checked: they may not leave the principal's tenant, their
    ///   foreign keys must name parents it may read ([`Error::Forbidden`], recorded as a
    ///   `denied` record), and every one must pass the entity's validators
    ///   ([`Error::Validation`], `index` naming the row in key order). Validators need whole
    ///   rows, so they judge the rows as updated, after the statement, and a failure rolls
    ///   the statement back;
    /// - lifecycle hooks: `before_update` runs on every locked row as it is before the update
    ///   (the database computes the new values, so the hook sees the old ones), in key order,
    ///   before the statement; it may refuse (an `Err` rolls the whole set update back) but
    ///   not change the value, since a set update writes only its changeset (a changed value
    ///   is refused with [`Error::Config`] rather than silently dropped: use
    ///   [`Session::update`] for such hooks). `after_update` runs on every row as updated,
    ///   after its audit record is made; an `Err` rolls everything back too;
    /// - audited entities get one `update` record per row with its true before and after
    ///   images, in the same transaction.
    ///
    /// Any failure (including a database error such as a check constraint, as a typed
    /// [`Error`]) rolls everything back: no row changed, nothing recorded. Inside the caller's
    /// transaction the update runs in a savepoint when the caller can make it fail after its
    /// statement (the entity has validators or hooks, or the changeset assigns the tenant
    /// column or a foreign key the access policy checks), so that such a refusal undoes only
    /// the set update and the caller may go on. Otherwise it runs without one (a savepoint
    /// costs two statements): if it then fails after its statement was sent (a database error
    /// in the update, or something only a database trigger could cause), the caller's
    /// transaction (or enclosing savepoint) can only roll back, and committing it fails with
    /// [`IntegrityKind::RollbackOnly`] after rolling it back, so no half-done set update is
    /// ever kept. Like [`Session::select`], a filter on a masked column can tell, by the
    /// count, something about the masked values.
    ///
    /// A runnable example is in the `custodian` crate's `guide::session` module ("Set-based
    /// updates and deletes"), run as a doctest.
    pub fn update_where<E: Entity>(
        &mut self,
        filter: impl SetFilter<E>,
        changes: impl AsChangeset<Target = E::Table, Changeset = impl QueryFragment<MultiBackend>>,
    ) -> Result<usize> {
        let updated = self.update_where_uncached(filter, changes);
        // Any row may have changed (a key column, through cascades, others' rows too).
        self.touch_table(&E::META);
        self.touch_dependents::<E>();
        updated
    }

    fn update_where_uncached<E: Entity>(
        &mut self,
        filter: impl SetFilter<E>,
        changes: impl AsChangeset<Target = E::Table, Changeset = impl QueryFragment<MultiBackend>>,
    ) -> Result<usize> {
        let Some(scope) = self.set_write_scope::<E>(Action::Update)? else {
            return Ok(0);
        };
        let set = changes.as_changeset();
        let assigned = self.check_assignments::<E>(&set)?;
        let guarded = self.can_refuse_after_update::<E>(&assigned);
        if !guarded && self.needs_no_images::<E>() {
            // One statement, atomic by itself: no transaction of its own, no savepoint.
            let condition = filter.condition(scope);
            return self
                .update_plain::<E, _, _>(&condition, &set)
                .map_err(attribute_to_field::<E>);
        }
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
        // Only an `after_delete` hook can refuse once the rows are gone (`before_delete` runs
        // before the statement): without hooks no savepoint, and a failure after the
        // statement was sent dooms the caller's transaction, as in `update_where`.
        let guarded = E::HOOKS;
        let deleted = self
            .set_write_tx(guarded, |s| {
                let mut wrote = false;
                let outcome = s.delete_locked::<E, _>(locked, &mut wrote);
                if let Err(e) = &outcome {
                    if wrote && !guarded {
                        s.doom(e);
                    }
                }
                outcome
            })
            .map_err(attribute_to_field::<E>);
        self.touch_table(&E::META);
        self.touch_dependents::<E>();
        deleted
    }

    /// The checks before a set-based write's first statement (as `write` makes them), and the
    /// principal's tenant scope; `None` when the principal may see no row at all.
    fn set_write_scope<E: Entity>(&mut self, action: Action) -> Result<Option<TenantScope>> {
        self.check_deadline()?;
        self.check_writer::<E>()?;
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
    pub(super) fn keys_per_statement<E: Entity>(&self) -> usize {
        if E::META.primary_key().count() > 1 {
            1
        } else {
            self.db.backend.max_bind_params().max(1)
        }
    }

    pub(super) fn keys_filter<E: Entity>(keys: &[E::Key]) -> Result<KeysFilter<E>> {
        E::raw_keys_filter(keys).ok_or_else(|| {
            Error::config(
                "update_where/delete_where",
                format!("{} cannot select rows by key for a set write", E::META.name),
            )
        })
    }

    /// The locked rows of a set-based write, with their keys and images.
    pub(super) fn lock_rows<E: Entity, Q>(&mut self, locked: Q) -> Result<Vec<(E::Key, Image, E)>>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        let rows: Vec<E> = self.run_rows(|c| locked.load(c))?;
        rows.into_iter()
            .map(|row| {
                let image = row.raw_image().map_err(image_error::<E>)?;
                // A row kept for a guarded update is stale now.
                let _ = self.recall::<E>(&row.key());
                Ok((row.key(), image, row))
            })
            .collect()
    }

    fn delete_locked<E: Entity, Q>(&mut self, locked: Q, wrote: &mut bool) -> Result<usize>
    where
        Q: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        let now = now_utc();
        let mut rows = self.lock_rows::<E, _>(locked)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let soft = const { E::META.soft_delete() };
        if E::HOOKS {
            for (_, image, row) in rows.iter_mut() {
                if const { E::META.has_encrypted() } {
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
            *wrote = true;
            n += match &stamps {
                Some(stamps) => {
                    let statement = SetKeys::<()> {
                        meta: &E::META,
                        set: None,
                        stamps,
                        filter: &filter,
                    };
                    // The rows as soft-deleted come back where the backend has `RETURNING`.
                    match self.run_counted(
                        |c| E::raw_update_returning(Internal::new(), c, &statement),
                        |r| r.as_ref().map_or(0, |v| v.len() as u64),
                    )? {
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
                        None => self.run_rows(|c| statement.execute(c))?,
                    }
                }
                None => {
                    let statement = DeleteKeys {
                        meta: &E::META,
                        filter: &filter,
                    };
                    self.run_rows(|c| statement.execute(c))?
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

/// Columns a set update must leave as they are: the key, `created_at`, `deleted_at`, encrypted
/// fields, blind indexes and (with encrypted fields) the data subject. `version` and
/// `updated_at` the write path sets itself.
pub(super) fn maintained<E: Entity>(c: &ColumnMeta) -> bool {
    c.primary_key
        || matches!(c.role, ColumnRole::CreatedAt | ColumnRole::DeletedAt)
        || c.encrypted
        || c.blind_index_of.is_some()
        || (const { E::META.has_encrypted() } && c.subject)
}
