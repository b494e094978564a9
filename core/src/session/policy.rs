//! Access checks on the write and read paths: roles, tenant scope, masks, and the `denied`
//! records of refusals.

use super::*;

impl Session {
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
    pub(super) fn authorize_write<E: Entity>(&mut self, op: &mut Op<'_, E>) -> Result<()> {
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
                let Some(stored) = self.run(|c| E::raw_find(Internal::new(), c, &key, true))?
                else {
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
            if let Some(existing) = self.run(|c| E::raw_find(Internal::new(), c, &key, true))? {
                let image = existing.raw_image().map_err(image_error::<E>)?;
                if !ac.row_in_scope(&E::META, &image, principal.as_deref()) {
                    return Err(self.deny::<E>(action, Some(&key), outside));
                }
            }
        }
        Ok(())
    }

    /// A `Forbidden` error, after recording the refusal in the audit trail.
    pub(super) fn deny<E: Entity>(
        &mut self,
        action: Action,
        key: Option<&E::Key>,
        why: &str,
    ) -> Error {
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
        crate::observe::denial(what, action);
        match self.record_denial(entity, entity_key, action, why) {
            Ok(()) => err,
            Err(e) => {
                Error::Forbidden(format!("{err} (and the refusal could not be audited: {e})"))
            }
        }
    }

    /// Appends a `denied` record outside the caller's transaction, so that the caller rolling
    /// back cannot erase it (see [`guard`]); an error when it cannot be recorded.
    pub(super) fn record_denial(
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
        let encrypted = const { E::META.has_encrypted() };
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
        if self.access.is_none() && !const { E::META.has_encrypted() } {
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
    pub(super) fn update_miss<E: Entity>(&mut self, entity: &E) -> Error {
        let key = entity.key();
        let exists = matches!(
            self.run(|c| E::raw_find(Internal::new(), c, &key, false)),
            Ok(Some(_))
        );
        match (E::META.role(ColumnRole::Version), entity.version()) {
            (Some(col), Some(version)) if exists => Error::Conflict {
                source: Box::new(DbError {
                    code: Some("stale_version".into()),
                    table: Some(E::META.table.into()),
                    column: Some(col.name.into()),
                    field: Some(col.field.into()),
                    kind: Some(ConstraintKind::StaleVersion),
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
}
