//! Enforcement of the access policy where a plain row check is not enough: references to
//! parent rows, audit records read back, and `denied` records that must outlive the caller's
//! transaction.
//!
//! - A write whose foreign key names a parent row the principal may not read is refused. The
//!   refusal reads the same whether the parent belongs to another tenant or does not exist, so
//!   a foreign-key error cannot be used to learn another tenant's keys.
//! - Audit records are judged by their own images (a deleted row has only a before image) and
//!   returned with masked columns masked in those images too.
//! - `denied` records go through a connection each [`Db`](crate::Db) reserves for them, opened
//!   on the first refusal outside the pool, so an exhausted pool cannot push the record into
//!   the caller's transaction (where a rollback would erase it).
//! - Report counts ([`Session::count_visible`]) apply the tenant scope in SQL.

use super::Session;
use crate::access::{AccessControl, Action};
use crate::audit::{chain, AuditRecord};
use crate::backend::Backend;
use crate::config::DatabaseConfig;
use crate::conn::{AnyConnection, MultiBackend};
use crate::entity::{ColumnMeta, Entity, EntityMeta};
use crate::error::{Error, IntegrityKind, Result};
use crate::value::ColumnKind;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{sql_types, QueryResult, RunQueryDsl};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The connection a database reserves for `denied` records: outside the pool, opened when the
/// first refusal is recorded, replaced when the server has closed it.
#[derive(Default)]
pub(crate) struct DenialLine {
    conn: Mutex<Option<AnyConnection>>,
}

impl DenialLine {
    /// Appends `record` in its own statement (autocommit) on the reserved connection.
    fn append(
        &self,
        backend: &'static dyn Backend,
        config: &DatabaseConfig,
        record: &AuditRecord,
    ) -> Result<()> {
        // A poisoned lock (a panic during an earlier append) still guards a connection that
        // the ping below checks before use.
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = slot.as_mut() {
            if backend.ping(conn).is_err() {
                *slot = None;
            }
        }
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => {
                let mut conn = backend.establish(&config.url)?;
                backend
                    .prepare(&mut conn, &config.session)
                    .map_err(|e| backend.classify(e))?;
                slot.insert(conn)
            }
        };
        let appended = chain::append(conn, std::slice::from_ref(record), None)
            .map(|_| ())
            .map_err(|e| backend.classify(e));
        if appended.is_err() {
            // Do not keep a connection in an unknown state: the next refusal opens a new one.
            *slot = None;
        }
        appended
    }
}

/// `SELECT COUNT(*) FROM <parent> WHERE <key> = ? AND <tenant> = ?`: whether the parent row
/// exists in the principal's tenant (one answer for "missing" and "another tenant's").
struct ParentInTenant<'a> {
    parent: &'a EntityMeta,
    key_column: &'static str,
    key: KeyValue,
    tenant_column: &'a str,
    tenant: &'a str,
}

/// A parent key as bound to SQL, by the parent key column's kind.
enum KeyValue {
    SmallInt(i16),
    Integer(i32),
    BigInt(i64),
    Text(String),
}

impl KeyValue {
    /// The stored value of a JSON image for a key column of `kind`; `None` when the image
    /// does not hold such a value, or the kind is not one custodian can bind as a key here.
    fn of(kind: ColumnKind, json: &serde_json::Value) -> Option<KeyValue> {
        match kind {
            ColumnKind::SmallInt => i16::try_from(json.as_i64()?).ok().map(KeyValue::SmallInt),
            ColumnKind::Integer => i32::try_from(json.as_i64()?).ok().map(KeyValue::Integer),
            ColumnKind::BigInt => json.as_i64().map(KeyValue::BigInt),
            ColumnKind::Text
            | ColumnKind::Uuid
            | ColumnKind::Enum
            | ColumnKind::Decimal
            | ColumnKind::Json => json.as_str().map(|s| KeyValue::Text(s.to_string())),
            _ => None,
        }
    }
}

impl QueryId for ParentInTenant<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for ParentInTenant<'_> {
    type SqlType = sql_types::BigInt;
}

impl RunQueryDsl<AnyConnection> for ParentInTenant<'_> {}

impl QueryFragment<MultiBackend> for ParentInTenant<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("SELECT COUNT(*) FROM ");
        if let Some(schema) = self.parent.schema {
            out.push_identifier(schema)?;
            out.push_sql(".");
        }
        out.push_identifier(self.parent.table)?;
        out.push_sql(" WHERE ");
        out.push_identifier(self.key_column)?;
        out.push_sql(" = ");
        match &self.key {
            KeyValue::SmallInt(v) => out.push_bind_param::<sql_types::SmallInt, _>(v)?,
            KeyValue::Integer(v) => out.push_bind_param::<sql_types::Integer, _>(v)?,
            KeyValue::BigInt(v) => out.push_bind_param::<sql_types::BigInt, _>(v)?,
            KeyValue::Text(v) => out.push_bind_param::<sql_types::Text, _>(v)?,
        }
        out.push_sql(" AND ");
        out.push_identifier(self.tenant_column)?;
        out.push_sql(" = ");
        out.push_bind_param::<sql_types::Text, _>(self.tenant)?;
        Ok(())
    }
}

/// `SELECT COUNT(*) FROM (<query>) AS custodian_scoped [WHERE <tenant column> = ?]`: a count
/// of an entity query's rows with the tenant scope applied in SQL.
struct ScopedCount<'a, Q> {
    query: Q,
    scope: Option<(&'a str, &'a str)>,
}

impl<Q> QueryId for ScopedCount<'_, Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for ScopedCount<'_, Q> {
    type SqlType = sql_types::BigInt;
}

impl<Q> RunQueryDsl<AnyConnection> for ScopedCount<'_, Q> {}

impl<Q: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for ScopedCount<'_, Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("SELECT COUNT(*) FROM (");
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(") AS ");
        out.push_identifier("custodian_scoped")?;
        if let Some((column, tenant)) = self.scope {
            out.push_sql(" WHERE ");
            out.push_identifier("custodian_scoped")?;
            out.push_sql(".");
            out.push_identifier(column)?;
            out.push_sql(" = ");
            out.push_bind_param::<sql_types::Text, _>(tenant)?;
        }
        Ok(())
    }
}

impl Session {
    /// Counts the rows of an entity query (e.g. `Vendor::query().filter(...)`) that the
    /// principal may read: the read permission is checked and the tenant scope is applied in
    /// SQL, around the query. The policy-aware form of [`Session::count`] for reports; like
    /// [`Session::select`], it does not stop a filter on a masked column from telling, by the
    /// count, something about the masked values.
    pub fn count_visible<E: Entity, Q>(&mut self, query: Q) -> Result<i64>
    where
        Q: for<'a> diesel::query_dsl::LoadQuery<'a, AnyConnection, E>
            + QueryFragment<MultiBackend>
            + QueryId,
    {
        self.authorize::<E>(Action::Read, None)?;
        let access = self.access.clone();
        let principal = self.principal.clone();
        let scope = match access.as_deref().and_then(|ac| ac.tenant_column(&E::META)) {
            None => None,
            Some(column) => match principal.as_deref().and_then(|p| p.tenant.as_deref()) {
                // Rows are scoped to tenants and the principal has none: it may read none.
                None => return Ok(0),
                Some(tenant) => Some((column, tenant)),
            },
        };
        let count = ScopedCount { query, scope };
        self.run(|c| count.get_result::<i64>(c))
    }

    /// Appends a `denied` record so that it persists whatever the caller's transaction does:
    /// on the database's reserved connection, never in the caller's transaction. An in-memory
    /// SQLite database has only the caller's connection: there the record is appended on it
    /// outside a transaction, and inside one the refusal cannot be recorded (an error).
    pub(super) fn persist_denial(&mut self, record: &AuditRecord) -> Result<()> {
        if !self.db.config.is_sqlite_memory() {
            self.db
                .denials
                .append(self.db.backend, self.db.primary_config(), record)?;
            crate::observe::audit_records(1);
            return Ok(());
        }
        if self.in_any_transaction() {
            return Err(Error::integrity(
                IntegrityKind::AuditTrail,
                "an in-memory SQLite database has one connection, and it is inside the caller's \
                 transaction, whose rollback would erase the record",
            ));
        }
        self.run(|c| chain::append(c, std::slice::from_ref(record), None))?;
        crate::observe::audit_records(1);
        Ok(())
    }

    /// Refuses a write of `rows` whose foreign key names a parent row the principal may not
    /// read: the principal's roles do not allow reading the parent entity, or the parent is
    /// scoped to tenants and the row is not in the principal's tenant, or no such row exists.
    /// The last two give the same refusal, so it does not tell whether another tenant has the
    /// row. Parents the principal may read in full are left to the database's own check.
    ///
    /// A parent's scope is its own tenant column: the policy gives no other way to scope rows,
    /// and reads of a parent without one are not scoped either.
    pub(super) fn check_references<E: Entity>(
        &mut self,
        ac: &AccessControl,
        action: Action,
        rows: &[E],
    ) -> Result<()> {
        let references: Vec<(&'static ColumnMeta, EntityMeta)> = E::META
            .columns
            .iter()
            .filter_map(|c| c.references.map(|fk| (c, (fk.parent)())))
            .collect();
        if references.is_empty() {
            return Ok(());
        }
        let principal = self.principal.clone();
        // Rows of a bulk write often share parents: each parent row is looked up once.
        let mut judged: HashMap<(&'static str, String), bool> = HashMap::new();
        for row in rows {
            let image = row.raw_image().map_err(super::image_error::<E>)?;
            for (column, parent) in &references {
                let Some(value) = image.get(column.name).filter(|v| !v.is_null()) else {
                    continue;
                };
                let readable = match judged.get(&(column.name, value.to_string())) {
                    Some(known) => *known,
                    None => {
                        let readable = ac.permits(parent, Action::Read, principal.as_deref())
                            && match (
                                ac.tenant_column(parent),
                                principal.as_deref().and_then(|p| p.tenant.as_deref()),
                            ) {
                                (None, _) => true,
                                (Some(_), None) => false,
                                (Some(tenant_column), Some(tenant)) => {
                                    self.parent_in_tenant(parent, value, tenant_column, tenant)?
                                }
                            };
                        judged.insert((column.name, value.to_string()), readable);
                        readable
                    }
                };
                if !readable {
                    let why = format!(
                        "`{}` refers to a {} the principal may not read (or to none)",
                        column.field, parent.name
                    );
                    return Err(self.deny::<E>(action, Some(&row.key()), &why));
                }
            }
        }
        Ok(())
    }

    /// Whether the row of `parent` whose key is `key` exists with `tenant` in `tenant_column`.
    fn parent_in_tenant(
        &mut self,
        parent: &EntityMeta,
        key: &serde_json::Value,
        tenant_column: &str,
        tenant: &str,
    ) -> Result<bool> {
        let mut keys = parent.primary_key();
        let (Some(key_column), None) = (keys.next(), keys.next()) else {
            return Err(Error::config(
                "access",
                format!(
                    "{} is referenced by a single column but has no single-column primary key",
                    parent.name
                ),
            ));
        };
        let Some(key) = KeyValue::of(key_column.kind, key) else {
            // No stored key of the parent can equal this value: no such row.
            return Ok(false);
        };
        let query = ParentInTenant {
            parent,
            key_column: key_column.name,
            key,
            tenant_column,
            tenant,
        };
        self.run(|c| query.get_result::<i64>(c)).map(|n| n > 0)
    }

    /// Whether the acting principal may read the row of `E` with this image (tenant scope).
    pub(crate) fn may_read_image<E: Entity>(
        &self,
        image: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        self.access
            .as_deref()
            .is_none_or(|ac| ac.row_in_scope(&E::META, image, self.principal.as_deref()))
    }

    /// An audit record of a row of `E` as the acting principal may see it: `None` when one of
    /// its images is outside the principal's tenant, else the record with the columns masked
    /// for the principal masked in both images. Such a record's images are no longer the ones
    /// its seal covers.
    pub(crate) fn visible_record<E: Entity>(
        &self,
        mut record: AuditRecord,
    ) -> Result<Option<AuditRecord>> {
        let Some(ac) = self.access.as_deref() else {
            return Ok(Some(record));
        };
        let (id, principal) = (record.id, self.principal.as_deref());
        let images = [record.before.as_deref(), record.after.as_deref()];
        if !ac.record_in_scope(&E::META, images, principal) {
            return Ok(None);
        }
        for image in [&mut record.before, &mut record.after] {
            if let Some(text) = image.as_mut() {
                *text = ac
                    .mask_image_text(&E::META, text, principal)
                    .ok_or_else(|| {
                        Error::integrity(
                            IntegrityKind::AuditTrail,
                            format!("audit record {id} has a malformed image"),
                        )
                    })?;
            }
        }
        Ok(Some(record))
    }
}
