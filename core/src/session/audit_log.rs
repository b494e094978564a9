//! Audit records of the session's writes: built, given their identity (transaction id and
//! ordinal) and seal, held until commit and appended in as few statements as fit.

use super::*;

impl Session {
    /// The entities the `Db` knows (created or checked), for cascades.
    pub(crate) fn known_entities(&self) -> Vec<crate::entity::EntityMeta> {
        self.db
            .entities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One audit record of this session's transaction, sealed by [`Session::record_audit`].
    pub(crate) fn audit_record<E: Entity>(
        &self,
        op: AuditOp,
        key: &E::Key,
        before: Option<Image>,
        after: Option<Image>,
        at: chrono::NaiveDateTime,
    ) -> Result<AuditRecord> {
        let actor = self.principal.as_deref().ok_or_else(no_principal::<E>)?;
        let key = E::raw_key_image(key).map_err(image_error::<E>)?;
        let image = |i: Image| serde_json::Value::Object(i).to_string();
        self.record_for(
            actor,
            crate::schema::display_name(&E::META),
            key.to_string(),
            op,
            before.map(image),
            after.map(image),
            at,
        )
    }

    /// An audit record of this session's transaction: `actor` changed the row `entity_key`
    /// of `entity` (images as JSON text), with the session's reason and request id. Refused
    /// before anything is appended when there is no seal key (unless unkeyed seals were
    /// chosen); the record is sealed when it is stamped.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_for(
        &self,
        actor: &Principal,
        entity: String,
        entity_key: String,
        op: AuditOp,
        before: Option<String>,
        after: Option<String>,
        at: chrono::NaiveDateTime,
    ) -> Result<AuditRecord> {
        self.db.sealing_key()?;
        Ok(AuditRecord {
            id: 0,
            tx_id: self.tx_id.clone().unwrap_or_default(),
            ordinal: 0,
            at,
            actor: actor.id.clone(),
            tenant: actor.tenant.clone(),
            entity,
            entity_key,
            op: op.as_str().to_string(),
            before,
            after,
            reason: self.context.reason.clone(),
            request_id: self.context.request_id.clone(),
            mac: String::new(),
        })
    }

    /// Appends the open transaction's pending audit records now (before commit, and before
    /// anything reads the trail inside the transaction).
    pub(crate) fn flush_audit(&mut self) -> Result<()> {
        if self.pending_audit.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending_audit);
        let max = self.statement_bytes()?;
        self.run(|c| chain::append(c, &records, max))?;
        crate::observe::audit_records(records.len());
        Ok(())
    }

    /// The open transaction's pending audit records as one statement with their values
    /// inlined, to be sent with `COMMIT` ([`chain::inline_insert`]), and how many; taken from
    /// the pending list. `None`, the records left pending, where the backend appends them
    /// separately, [`records_with_commit`](crate::config::AuditConfig::records_with_commit) is
    /// off, or the commit notes a Galera written mark instead.
    pub(super) fn inline_audit(&mut self) -> Option<(String, usize)> {
        if self.pending_audit.is_empty()
            || !self.db.config.audit.records_with_commit
            || self.db.config.cluster.galera.is_some()
        {
            return None;
        }
        let statement = chain::inline_insert(self.db.backend, &self.pending_audit)?;
        let records = std::mem::take(&mut self.pending_audit).len();
        Some((statement, records))
    }

    /// [`Backend::max_statement_bytes`](crate::backend::Backend::max_statement_bytes), asked
    /// once per `Db`.
    pub(super) fn statement_bytes(&mut self) -> Result<Option<usize>> {
        if let Some(known) = self.db.statement_bytes.get() {
            return Ok(*known);
        }
        let backend = self.db.backend;
        let known = self.run(|c| backend.max_statement_bytes(c))?;
        Ok(*self.db.statement_bytes.get_or_init(|| known))
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
            let max = self.statement_bytes()?;
            self.run(|c| chain::append(c, &records, max))?;
            crate::observe::audit_records(records.len());
        }
        Ok(())
    }

    /// Gives a record its identity and seals it: the open transaction's id (a fresh one outside
    /// custodian's transactions) and the next ordinal in it, so that no two records share both
    /// and a copied record is recognisable by its seal.
    pub(super) fn stamp(&mut self, mut record: AuditRecord) -> Result<AuditRecord> {
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
}
