//! The update half of set-based writes ([`Session::update_where`]): the locking read, the
//! update by key (on PostgreSQL one statement, the locking read inside the update, returning
//! both images), lifecycle hooks around it, and the checks of the rows as updated that turn
//! them into audit records.

use super::set_sql::{key_order, SetKeys, SetLocked, Stamped};
use super::set_write::maintained;
use super::*;
use crate::conn::MultiBackend;
use diesel::query_builder::QueryFragment;

/// A set update's rows in key order (key, before image, row as read), and the rows as
/// updated by key image.
type UpdatedRows<E> = (Vec<(<E as Entity>::Key, Image, E)>, HashMap<String, Image>);

impl Session {
    /// Whether a set update of `E` assigning `assigned` can still be refused once its
    /// statement has run, for a reason of the caller's making: the entity has validators
    /// (they judge the rows as updated) or hooks, the changeset assigns the tenant column
    /// (a row may leave the principal's tenant), or it assigns a foreign key the access
    /// policy checks. Such an update runs in a savepoint inside the caller's transaction,
    /// so that a refusal undoes only it; any other runs without one (see
    /// [`Session::update_where`]).
    pub(super) fn can_refuse_after_update<E: Entity>(&self, assigned: &[&'static str]) -> bool {
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

    /// Whether a set update of `E` needs no row images at all: nothing records them (the
    /// entity is unaudited), no validator or hook judges them, and no access policy checks
    /// its foreign keys (the caller has already found that the changeset cannot move a row
    /// out of the tenant). It is then one `UPDATE … WHERE <filter>`, as diesel sends it.
    pub(super) fn needs_no_images<E: Entity>(&self) -> bool {
        !E::AUDITED
            && !E::HOOKS
            && !E::raw_validates()
            && (self.access.is_none() || E::META.columns.iter().all(|c| c.references.is_none()))
    }

    /// The set update without images: `UPDATE <table> SET <set>, <stamps> WHERE <condition>`,
    /// returning the number of rows it changed.
    pub(super) fn update_plain<E: Entity, C, S>(&mut self, condition: &C, set: &S) -> Result<usize>
    where
        C: QueryFragment<MultiBackend>,
        S: QueryFragment<MultiBackend>,
    {
        let stamps = stamps::<E>(now_utc());
        let statement = SetKeys {
            meta: &E::META,
            set: Some(set),
            stamps: &stamps,
            filter: condition,
        };
        self.run_rows(|c| statement.execute(c))
    }

    /// The locking read, the update by key and the checks of the rows as updated; `wrote`
    /// turns true once an update statement is sent (it may have changed rows).
    pub(super) fn update_locked<E: Entity, Q, S>(
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
        let stamps = stamps::<E>(now);
        // PostgreSQL: the locking read inside the update, both images returned by it.
        // Hooks run between the locking read and the update: not one statement then.
        let pairs = match (E::META.schema, E::HOOKS) {
            (None, false) => {
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
            _ => None,
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
        let n = updated.len();
        if E::HOOKS {
            for row in updated {
                // Hooks see the plaintext, the trail the ciphertext.
                let row = match const { E::META.has_encrypted() } {
                    true => self.opened(row)?,
                    false => row,
                };
                row.raw_after(WriteKind::Update, &mut HookSession::new(self))?;
            }
        }
        Ok(n)
    }

    /// Runs `before_update` on every locked row of a set update, as it is before the update
    /// (encrypted fields opened), in key order. A hook may refuse (its error rolls the whole
    /// set update back); it may not change the value, since a set update writes only its
    /// changeset: a changed value is refused with [`Error::Config`] rather than lost.
    fn before_set_update<E: Entity>(&mut self, rows: &[(E::Key, Image, E)]) -> Result<()> {
        for (key, image, _) in rows {
            let mut row = E::raw_from_image(image).map_err(image_error::<E>)?;
            if const { E::META.has_encrypted() } {
                row = self.opened(row)?;
            }
            let was = row.raw_image().map_err(image_error::<E>)?;
            row.raw_before(WriteKind::Update, &mut HookSession::new(self))?;
            if row.raw_image().map_err(image_error::<E>)? != was {
                return Err(Error::config(
                    "update_where",
                    format!(
                        "the before_update hook of {} changed row {key:?}, which a set update \
                         cannot write (it writes only its changeset): use Session::update",
                        E::META.name
                    ),
                ));
            }
        }
        Ok(())
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
        if E::HOOKS {
            self.before_set_update::<E>(&rows)?;
        }
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
            match self.run_counted(
                |c| E::raw_update_returning(Internal::new(), c, &statement),
                |r| r.as_ref().map_or(0, |v| v.len() as u64),
            )? {
                Some(rows) => keep(&mut after, rows)?,
                None => {
                    self.run_rows(|c| statement.execute(c))?;
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

/// The columns a set update sets itself: `updated_at = now`, `version = version + 1`.
fn stamps<E: Entity>(now: chrono::NaiveDateTime) -> Vec<Stamped> {
    let mut stamps = Vec::new();
    if let Some(c) = E::META.role(ColumnRole::UpdatedAt) {
        stamps.push(Stamped::Now(c.name, crate::sql_types::StoredDatetime(now)));
    }
    if let Some(c) = E::META.role(ColumnRole::Version) {
        stamps.push(Stamped::Increment(c.name));
    }
    stamps
}
