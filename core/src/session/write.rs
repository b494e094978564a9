//! The write path: the public insert, update, delete, purge and restore calls, and `write`,
//! the one function every write goes through (deadline, validation, access checks, hooks,
//! SQL, audit records), readable top to bottom.

use super::*;

impl Session {
    /// Inserts one entity and returns it as stored: validated, hooks run, timestamps and
    /// version set, with the key the database assigned (auto-increment) and, when the entity
    /// has database-generated columns, re-read.
    #[track_caller]
    pub fn insert<E: Entity>(&mut self, entity: E) -> Result<E> {
        let mut rows = [entity];
        self.write(Op::Insert(&mut rows))?;
        let [entity] = rows;
        if const { E::META.has_generated() } {
            return self.get(&entity.key());
        }
        Ok(entity)
    }

    /// Inserts many entities, all or nothing, with as few statements as the backend's
    /// parameter limit allows. Every entity is validated before anything is written; timestamps
    /// and versions are set in place. Returns the number of rows inserted. Keys assigned by the
    /// database are not read back: use [`Session::insert`] when you need them.
    #[track_caller]
    pub fn insert_many<E: Entity>(&mut self, entities: &mut [E]) -> Result<usize> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.write(Op::Insert(entities))
    }

    /// Updates every non-key column of the entity's live row; sets `updated_at` and bumps the
    /// version in place. [`Error::NotFound`] if no live row has its key; [`Error::Conflict`]
    /// (code `stale_version`) if a versioned row changed since this value was read.
    #[track_caller]
    pub fn update<E: Entity>(&mut self, entity: &mut E) -> Result<()> {
        self.write(Op::Update(std::slice::from_mut(entity)))
            .map(|_| ())
    }

    /// Updates many entities, all or nothing (one statement each, in one transaction).
    #[track_caller]
    pub fn update_many<E: Entity>(&mut self, entities: &mut [E]) -> Result<usize> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.write(Op::Update(entities))
    }

    /// Deletes the entity's row: soft-delete entities are marked deleted (hidden from queries,
    /// restorable), others are removed. [`Error::NotFound`] if no live row has its key.
    #[track_caller]
    pub fn delete<E: Entity>(&mut self, entity: &E) -> Result<()> {
        let key = entity.key();
        self.write::<E>(Op::Delete(std::slice::from_ref(&key), DeleteMode::Default))
            .map(|_| ())
    }

    /// [`Session::delete`] by key.
    #[track_caller]
    pub fn delete_by_key<E: Entity>(&mut self, key: &E::Key) -> Result<()> {
        self.write::<E>(Op::Delete(std::slice::from_ref(key), DeleteMode::Default))
            .map(|_| ())
    }

    /// Deletes many entities, all or nothing. Returns the number of rows deleted.
    #[track_caller]
    pub fn delete_many<E: Entity>(&mut self, entities: &[E]) -> Result<usize> {
        let keys: Vec<E::Key> = entities.iter().map(Entity::key).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        self.write::<E>(Op::Delete(&keys, DeleteMode::Default))
    }

    /// Removes the row for good, soft-delete entity or not (deleted rows included).
    #[track_caller]
    pub fn purge<E: Entity>(&mut self, entity: &E) -> Result<()> {
        self.purge_by_key::<E>(&entity.key())
    }

    /// [`Session::purge`] by key.
    #[track_caller]
    pub fn purge_by_key<E: Entity>(&mut self, key: &E::Key) -> Result<()> {
        self.write::<E>(Op::Delete(std::slice::from_ref(key), DeleteMode::Purge))
            .map(|_| ())
    }

    /// Brings a soft-deleted row back and returns it. [`Error::NotFound`] if no deleted row has
    /// this key.
    #[track_caller]
    pub fn restore<E: Entity>(&mut self, key: &E::Key) -> Result<E> {
        self.write::<E>(Op::Delete(std::slice::from_ref(key), DeleteMode::Restore))?;
        self.get(key)
    }

    /// Every soft-deleted row of `E` (none for other entities). Filter them with
    /// `E::query_deleted()` and [`Session::load`].
    #[track_caller]
    pub fn deleted<E: Entity>(&mut self) -> Result<Vec<E>>
    where
        E::QueryDeleted: for<'a> LoadQuery<'a, AnyConnection, E>,
    {
        self.select_once(E::query_deleted())
    }

    /// The write path: every custodian write runs through here, in this order: validation,
    /// before-hooks and stamps, SQL, after-stamps and after-hooks. Writes of several rows or of
    /// entities with hooks run in one transaction (the current one, or a new one).
    #[track_caller]
    pub(super) fn write<E: Entity>(&mut self, op: Op<'_, E>) -> Result<usize> {
        let name = match &op {
            Op::Insert(_) => "insert",
            Op::Update(_) => "update",
            Op::Delete(_, DeleteMode::Default) => "delete",
            Op::Delete(_, DeleteMode::Purge) => "purge",
            Op::Delete(_, DeleteMode::Restore) => "restore",
        };
        let caller = std::panic::Location::caller();
        self.observed(Some(&E::META), name, caller, move |s| s.write_observed(op))
    }

    /// The writer's checks before a write's first statement: the acting principal, if any,
    /// passes [`crate::Principal::check`]; an audited entity needs one, and a seal key (refused before
    /// any SQL: no row may be written that the trail cannot seal).
    pub(super) fn check_writer<E: Entity>(&self) -> Result<()> {
        if let Some(principal) = self.principal.as_deref() {
            principal.check()?;
        }
        if E::AUDITED {
            if self.principal.is_none() {
                return Err(no_principal::<E>());
            }
            self.db.sealing_key()?;
        }
        Ok(())
    }

    /// [`Session::write`] inside its observed context.
    fn write_observed<E: Entity>(&mut self, op: Op<'_, E>) -> Result<usize> {
        self.check_deadline()?;
        if let Op::Insert(rows) | Op::Update(rows) = &op {
            validate_all(rows)?;
            crate::validate::check_storable(rows)?;
        }
        self.check_writer::<E>()?;
        let mut op = op;
        self.authorize_write(&mut op)?;
        // The keys to evict from the entity cache once the write commits (an insert evicts
        // nothing: the cache holds no absent rows).
        let written: Vec<E::Key> = match &op {
            _ if E::CACHE.is_none() => Vec::new(),
            Op::Insert(_) => Vec::new(),
            Op::Update(rows) => rows.iter().map(Entity::key).collect(),
            Op::Delete(keys, _) => keys.to_vec(),
        };
        let deletes = matches!(op, Op::Delete(..));
        // A reader session's write goes to the primary, never to its replica.
        self.route_write()?;
        let statements = match &op {
            Op::Insert(rows) => rows.len().div_ceil(self.insert_chunk::<E>()),
            Op::Update(rows) => rows.len(),
            Op::Delete(keys, _) => keys.len(),
        };
        let result =
            if E::HOOKS || E::AUDITED || const { E::META.has_encrypted() } || statements > 1 {
                self.in_transaction(|s| s.write_rows(op))
            } else {
                let written = self.write_rows(op);
                if written.is_ok() {
                    self.note_autocommit();
                }
                written
            };
        // Recorded after the statements ran, so that outside a transaction the eviction
        // follows the commit.
        self.touch_keys::<E>(&written);
        if deletes {
            self.touch_dependents::<E>();
        }
        result.map_err(attribute_to_field::<E>)
    }

    pub(super) fn insert_chunk<E: Entity>(&self) -> usize {
        (self.db.backend.max_bind_params() / E::META.insert_width()).max(1)
    }

    pub(super) fn write_rows<E: Entity>(&mut self, op: Op<'_, E>) -> Result<usize> {
        let now = now_utc();
        let mut trail: Vec<AuditRecord> = Vec::new();
        let n = match op {
            Op::Insert(rows) => {
                for row in rows.iter_mut() {
                    row.raw_stamp(Stamp::Insert, now);
                    row.raw_before(WriteKind::Insert, &mut HookSession::new(self))?;
                }
                // Hooks may have changed the rows: what gets written must be storable too.
                crate::validate::check_storable(rows)?;
                let n = if const { E::META.has_encrypted() } {
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
                    row.raw_after(WriteKind::Insert, &mut HookSession::new(self))?;
                }
                n
            }
            Op::Update(rows) => {
                let mut n = 0;
                let encrypted = const { E::META.has_encrypted() };
                if rows.len() > 1 {
                    self.prefetch_before_images(rows)?;
                }
                for row in rows.iter_mut() {
                    row.raw_before(WriteKind::Update, &mut HookSession::new(self))?;
                    crate::validate::check_storable(std::slice::from_ref(&*row))?;
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
                            .run(|c| E::raw_find_for_update(Internal::new(), c, &key, false))?
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
                        match self.run_rows(|c| E::raw_update(Internal::new(), c, target, now))? {
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
                    row.raw_after(WriteKind::Update, &mut HookSession::new(self))?;
                }
                n
            }
            Op::Delete(keys, mode) => {
                let mut n = 0;
                let soft = const { E::META.soft_delete() };
                for key in keys {
                    let hard = mode == DeleteMode::Purge || (mode == DeleteMode::Default && !soft);
                    if hard {
                        // The rows the database's cascades will delete or set to NULL.
                        cascade::before_hard_delete::<E>(self, key, now, &mut trail)?;
                    }
                    // A hard delete without hooks: where the backend can, the delete returns
                    // the row it removed, the audit record's before image (one statement).
                    if E::AUDITED && !E::HOOKS && hard {
                        let returns = self.returns()?;
                        if let Some(gone) = self.run_counted(
                            |c| E::raw_delete_returning(Internal::new(), c, key, returns),
                            |r| u64::from(matches!(r, Some(Some(_)))),
                        )? {
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
                        let found = self.run(|c| {
                            E::raw_find_for_update(Internal::new(), c, key, with_deleted)
                        })?;
                        let mut e = found.ok_or_else(|| not_found::<E>(key))?;
                        if E::AUDITED {
                            before = Some(e.raw_image().map_err(image_error::<E>)?);
                        }
                        if E::HOOKS && const { E::META.has_encrypted() } {
                            // Hooks see the plaintext, the trail the ciphertext.
                            e = self.opened(e)?;
                        }
                        if mode != DeleteMode::Restore {
                            e.raw_before(WriteKind::Delete, &mut HookSession::new(self))?;
                        }
                        Some(e)
                    } else {
                        None
                    };
                    let m = match mode {
                        DeleteMode::Default if soft => self
                            .run_rows(|c| E::raw_set_deleted(Internal::new(), c, key, Some(now)))?,
                        DeleteMode::Restore if soft => {
                            self.run_rows(|c| E::raw_set_deleted(Internal::new(), c, key, None))?
                        }
                        DeleteMode::Restore => 0,
                        _ => self.run_rows(|c| E::raw_delete(Internal::new(), c, key))?,
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
                            e.raw_after(WriteKind::Delete, &mut HookSession::new(self))?;
                        }
                    }
                }
                n
            }
        };
        self.record_audit(trail)?;
        Ok(n)
    }
}
