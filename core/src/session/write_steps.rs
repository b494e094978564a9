//! The steps of the write path that differ by statement: an update returning the row it
//! replaced, inserts that learn their keys, and the stored images audit records are made of.

use super::*;
use crate::conn::run::Returns;

impl Session {
    /// Updates `row` in one statement that also proves the row it replaced, and returns that
    /// row's image: on PostgreSQL the update returns it; on MariaDB a row read earlier in the
    /// transaction is taken if the update, guarded by every column still holding it, matches.
    /// `Ok(None)` (nothing written) when neither applies: the caller reads under a lock first.
    pub(super) fn update_yielding_before<E: Entity>(
        &mut self,
        row: &E,
        key: &E::Key,
        now: chrono::NaiveDateTime,
    ) -> Result<Option<Image>> {
        match self.run_counted(
            |c| E::raw_update_returning_old(Internal::new(), c, row, now),
            |r| u64::from(matches!(r, Some(Some(_)))),
        )? {
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
        let guarded = self.run_counted(
            |c| E::raw_update_if_unchanged(Internal::new(), c, row, now, &seen_row),
            |r| r.unwrap_or(0) as u64,
        )?;
        Ok((guarded == Some(1)).then_some(seen))
    }

    /// Inserts `rows` (stamped, hooks run) and adds their audit records to `trail`; rows with
    /// an auto-increment key learn it.
    pub(super) fn insert_rows<E: Entity>(
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
            let returns = self.returns()?;
            for row in rows.iter_mut() {
                let returned = self.run_counted(
                    |c| E::raw_insert_one(Internal::new(), c, row, returns),
                    |_| 1,
                )?;
                n += 1;
                let id = match returned {
                    Some(id) => id,
                    None => self.run(|c| backend.last_insert_id(c))?,
                };
                row.raw_set_generated_key(id)
                    .map_err(|e| generated_key_error(id, e))?;
            }
        } else if let [row] = rows {
            let returns = self.returns()?;
            self.run_counted(
                |c| E::raw_insert_one(Internal::new(), c, row, returns),
                |_| 1,
            )?;
            n = 1;
        } else {
            for chunk in rows.chunks(self.insert_chunk::<E>()) {
                n += self.run_rows(|c| E::raw_insert(Internal::new(), c, chunk))?;
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

    /// Whether this database's writes return rows ([`Returns`]): the setting, and the server
    /// asked once.
    pub(super) fn returns(&mut self) -> Result<Returns> {
        if !self.db.config.session.mariadb_returning {
            return Ok(Returns::new(false));
        }
        let has = match self.db.returns_rows.get() {
            Some(known) => *known,
            None => {
                let backend = self.db.backend;
                let known = self.run(|c| backend.returns_rows(c))?;
                *self.db.returns_rows.get_or_init(|| known)
            }
        };
        Ok(Returns::new(has))
    }

    /// Inserts rows with an auto-increment key in multi-row statements and gives each row its
    /// key (the audit records name them): returned by the insert on PostgreSQL and SQLite,
    /// consecutive from `LAST_INSERT_ID()` on MariaDB when its settings guarantee that.
    /// `Ok(false)` (nothing inserted) when neither holds: the caller inserts row by row.
    pub(super) fn insert_learning_keys<E: Entity>(&mut self, rows: &mut [E]) -> Result<bool> {
        let backend = self.db.backend;
        if backend.keys_from_last_insert_id() {
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
            let keys = match self.run(|c| E::raw_insert_returning_keys(Internal::new(), c, rows))? {
                Some(keys) => keys,
                None if backend.keys_from_last_insert_id() => {
                    let inserted = self.run_rows(|c| E::raw_insert(Internal::new(), c, rows))?;
                    let first = self.run(|c| backend.last_insert_id(c))?;
                    (0..inserted as i64).map(|i| first + i).collect()
                }
                None => return Ok(false),
            };
            if keys.len() != rows.len() {
                return Err(Error::integrity(
                    IntegrityKind::Undecodable,
                    format!(
                        "{} rows inserted into {} but {} keys came back",
                        rows.len(),
                        crate::schema::display_name(&E::META),
                        keys.len()
                    ),
                ));
            }
            for (row, id) in rows.iter_mut().zip(keys) {
                row.raw_set_generated_key(id)
                    .map_err(|e| generated_key_error(id, e))?;
            }
        }
        Ok(true)
    }

    /// A copy of the row whose image is `plain` with its encrypted fields sealed and its blind
    /// indexes filled; `stored` is the row in the database (updates).
    pub(super) fn sealed_copy<E: Entity>(
        &mut self,
        plain: &Image,
        stored: Option<&Image>,
    ) -> Result<E> {
        let mut image = plain.clone();
        crate::crypto::fields::seal_image(self, &E::META, &mut image, stored)?;
        E::raw_from_image(&image).map_err(image_error::<E>)
    }

    /// `e` with its encrypted fields opened.
    pub(super) fn opened<E: Entity>(&mut self, e: E) -> Result<E> {
        let mut image = e.raw_image().map_err(image_error::<E>)?;
        crate::crypto::fields::open_image(self, &E::META, &mut image)?;
        E::raw_from_image(&image).map_err(image_error::<E>)
    }

    /// The image of a row as stored: re-read when the database fills columns itself.
    pub(super) fn stored_image<E: Entity>(
        &mut self,
        row: &E,
        key: &E::Key,
    ) -> Result<Option<Image>> {
        if const { E::META.has_generated() } {
            return self.reread_image::<E>(key);
        }
        row.raw_image().map(Some).map_err(image_error::<E>)
    }

    pub(super) fn reread_image<E: Entity>(&mut self, key: &E::Key) -> Result<Option<Image>> {
        self.run(|c| E::raw_find(Internal::new(), c, key, true))?
            .map(|e| e.raw_image())
            .transpose()
            .map_err(image_error::<E>)
    }
}
