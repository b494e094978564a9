//! The SQL of set-based writes ([`Session::update_where`], [`Session::delete_where`]): the
//! filter trait, the principal's tenant scope as a condition, the locking read in key order,
//! the update and delete restricted to the locked keys, and PostgreSQL's update with the
//! locking read inside it.

use super::*;
use crate::conn::MultiBackend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::methods::FilterDsl;
use diesel::sql_types;

/// A filter that [`Session::update_where`] and [`Session::delete_where`] accept for entity
/// `E`: any diesel boolean expression over `E`'s table that `E::query().filter(..)` accepts,
/// e.g. `accounts::balance.lt(0)` or `accounts::id.eq_any(ids)`. Implemented for every such
/// expression; not meant to be implemented by hand.
pub trait SetFilter<E: Entity> {
    #[doc(hidden)]
    /// The locking read of the rows the filter matches.
    type Locked: for<'a> LoadQuery<'a, AnyConnection, E> + QueryFragment<MultiBackend>;
    #[doc(hidden)]
    /// `E::query().filter(self).filter(scope)`, ordered by key, `FOR UPDATE`.
    fn locked(self, scope: TenantScope) -> Self::Locked;
    #[doc(hidden)]
    /// The same rows as a `WHERE` condition of an `UPDATE` of `E`'s table.
    type Condition: QueryFragment<MultiBackend>;
    #[doc(hidden)]
    /// `(self) AND <scope>`, and the soft-delete entity's live rows only.
    fn condition(self, scope: TenantScope) -> Self::Condition;
}

impl<E, F> SetFilter<E> for F
where
    E: Entity,
    E::Query: FilterDsl<F>,
    diesel::dsl::Filter<E::Query, F>: FilterDsl<TenantScope>,
    Locked<diesel::dsl::Filter<diesel::dsl::Filter<E::Query, F>, TenantScope>>:
        for<'a> LoadQuery<'a, AnyConnection, E> + QueryFragment<MultiBackend>,
    F: QueryFragment<MultiBackend>,
{
    type Locked = Locked<diesel::dsl::Filter<diesel::dsl::Filter<E::Query, F>, TenantScope>>;

    type Condition = Condition<F>;

    fn condition(self, scope: TenantScope) -> Condition<F> {
        Condition {
            filter: self,
            scope,
            deleted_at: E::META.role(ColumnRole::DeletedAt).map(|c| c.name),
        }
    }

    fn locked(self, scope: TenantScope) -> Self::Locked {
        Locked {
            query: FilterDsl::filter(FilterDsl::filter(E::query(), self), scope),
            key: E::META.primary_key().map(|c| c.name).collect(),
        }
    }
}

/// `(<filter>) AND <tenant scope>`, and `AND "deleted_at" IS NULL` for soft-delete
/// entities: the rows of a set update as the `WHERE` of an `UPDATE` of the entity's table
/// (the set update that needs no images, see `Session::update_where`).
#[doc(hidden)]
pub struct Condition<F> {
    filter: F,
    scope: TenantScope,
    deleted_at: Option<&'static str>,
}

impl<F: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for Condition<F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("(");
        self.filter.walk_ast(out.reborrow())?;
        out.push_sql(") AND ");
        self.scope.walk_ast(out.reborrow())?;
        if let Some(column) = self.deleted_at {
            out.push_sql(" AND ");
            out.push_identifier(column)?;
            out.push_sql(" IS NULL");
        }
        Ok(())
    }
}

/// `<query> ORDER BY <key> FOR UPDATE`: the locking read of a set-based write. PostgreSQL
/// locks the rows in that order, so two set writes over overlapping rows do not deadlock;
/// MariaDB locks rows as its plan reads them (key order when it reads by key), and a deadlock
/// there is an ordinary retryable [`Error::Serialization`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Locked<Q> {
    query: Q,
    key: Vec<&'static str>,
}

impl<Q: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for Locked<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(" ORDER BY ");
        for (i, k) in self.key.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(k)?;
        }
        crate::before_image::RowLock.walk_ast(out)
    }
}

impl<Q> QueryId for Locked<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Locked<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, C> RunQueryDsl<C> for Locked<Q> {}

/// The principal's tenant scope as a SQL condition: `"<tenant column>" = ?`, or `1 = 1` when
/// the entity's rows are not scoped to tenants.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct TenantScope {
    pub(super) scope: Option<(String, String)>,
}

impl diesel::Expression for TenantScope {
    type SqlType = sql_types::Bool;
}

impl<QS> diesel::AppearsOnTable<QS> for TenantScope {}

impl<QS> diesel::SelectableExpression<QS> for TenantScope {}

impl<GB> diesel::expression::ValidGrouping<GB> for TenantScope {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl QueryId for TenantScope {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<MultiBackend> for TenantScope {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        match &self.scope {
            Some((column, tenant)) => {
                out.push_identifier(column)?;
                out.push_sql(" = ");
                out.push_bind_param::<sql_types::Text, _>(tenant)
            }
            None => {
                out.push_sql("1 = 1");
                Ok(())
            }
        }
    }
}

/// A column the write path sets in a set-based write.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stamped {
    /// `"c" = <now>`.
    Now(&'static str, crate::sql_types::StoredDatetime),
    /// `"c" = "c" + 1`.
    Increment(&'static str),
}

/// `UPDATE <table> SET <set>, <stamps> WHERE <keys>`.
pub(super) struct SetKeys<'a, S> {
    pub(super) meta: &'a EntityMeta,
    pub(super) set: Option<S>,
    pub(super) stamps: &'a [Stamped],
    pub(super) filter: &'a dyn QueryFragment<MultiBackend>,
}

fn push_table(meta: &EntityMeta, out: &mut AstPass<'_, '_, MultiBackend>) -> QueryResult<()> {
    if let Some(schema) = meta.schema {
        out.push_identifier(schema)?;
        out.push_sql(".");
    }
    out.push_identifier(meta.table)
}

/// The assignments of the columns the write path maintains (`updated_at = <now>`, `version =
/// version + 1`), after a changeset when `after_set`; an increment reads the column of
/// `source` when given (the locked row of [`SetLocked`]), else the updated row's own.
fn push_stamps<'b>(
    stamps: &'b [Stamped],
    after_set: bool,
    source: Option<&'b str>,
    out: &mut AstPass<'_, 'b, MultiBackend>,
) -> QueryResult<()> {
    for (i, stamp) in stamps.iter().enumerate() {
        if after_set || i > 0 {
            out.push_sql(", ");
        }
        match stamp {
            Stamped::Now(column, at) => {
                out.push_identifier(column)?;
                out.push_sql(" = ");
                out.push_bind_param::<crate::sql_types::Datetime, _>(at)?;
            }
            Stamped::Increment(column) => {
                out.push_identifier(column)?;
                out.push_sql(" = ");
                if let Some(source) = source {
                    out.push_identifier(source)?;
                    out.push_sql(".");
                }
                out.push_identifier(column)?;
                out.push_sql(" + 1");
            }
        }
    }
    Ok(())
}

impl<S: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for SetKeys<'_, S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        push_table(self.meta, &mut out)?;
        out.push_sql(" SET ");
        if let Some(set) = &self.set {
            set.walk_ast(out.reborrow())?;
        }
        push_stamps(self.stamps, self.set.is_some(), None, &mut out)?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out)
    }
}

impl<S> QueryId for SetKeys<'_, S> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<S> RunQueryDsl<AnyConnection> for SetKeys<'_, S> {}

/// The alias of the updated table in [`SetLocked`].
const NEW: &str = "__custodian_new";

/// PostgreSQL's set update in one statement, the locking read inside it:
/// `UPDATE t AS __custodian_new SET <set>, <stamps> FROM (<locked read>) AS t
/// WHERE __custodian_new.<key> = t.<key> RETURNING t.<columns>, __custodian_new.<columns>`.
/// The locking read is aliased with the table's own name, so the changeset's expressions
/// (which diesel renders as `"t"."col"`) and the first half of `RETURNING` read the locked
/// row as it was (the newest committed version, once locked); the second half is the row as
/// updated. Only for entities without a schema (the alias is the bare table name).
pub(super) struct SetLocked<'a, S, Q> {
    pub(super) meta: &'a EntityMeta,
    pub(super) set: &'a S,
    pub(super) stamps: &'a [Stamped],
    pub(super) locked: &'a Q,
}

fn push_columns(
    meta: &EntityMeta,
    alias: &str,
    out: &mut AstPass<'_, '_, MultiBackend>,
) -> QueryResult<()> {
    for (i, c) in meta.columns.iter().enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        out.push_identifier(alias)?;
        out.push_sql(".");
        out.push_identifier(c.name)?;
    }
    Ok(())
}

impl<S, Q> QueryFragment<MultiBackend> for SetLocked<'_, S, Q>
where
    S: QueryFragment<MultiBackend>,
    Q: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        let table = self.meta.table;
        out.push_sql("UPDATE ");
        out.push_identifier(table)?;
        out.push_sql(" AS ");
        out.push_identifier(NEW)?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        push_stamps(self.stamps, true, Some(table), &mut out)?;
        out.push_sql(" FROM (");
        self.locked.walk_ast(out.reborrow())?;
        out.push_sql(") AS ");
        out.push_identifier(table)?;
        out.push_sql(" WHERE ");
        for (i, k) in self.meta.primary_key().enumerate() {
            if i > 0 {
                out.push_sql(" AND ");
            }
            out.push_identifier(NEW)?;
            out.push_sql(".");
            out.push_identifier(k.name)?;
            out.push_sql(" = ");
            out.push_identifier(table)?;
            out.push_sql(".");
            out.push_identifier(k.name)?;
        }
        out.push_sql(" RETURNING ");
        push_columns(self.meta, table, &mut out)?;
        out.push_sql(", ");
        push_columns(self.meta, NEW, &mut out)
    }
}

impl<S, Q> QueryId for SetLocked<'_, S, Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// `DELETE FROM <table> WHERE <keys>`.
pub(super) struct DeleteKeys<'a> {
    pub(super) meta: &'a EntityMeta,
    pub(super) filter: &'a dyn QueryFragment<MultiBackend>,
}

impl QueryFragment<MultiBackend> for DeleteKeys<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("DELETE FROM ");
        push_table(self.meta, &mut out)?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out)
    }
}

impl QueryId for DeleteKeys<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<AnyConnection> for DeleteKeys<'_> {}

/// The order of two key images (a key's stored values, as the audit trail records them):
/// numbers by value, text by bytes, composite keys column by column. Rows returned by one
/// statement in no particular order are put in key order with it.
pub(super) fn key_order(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    use serde_json::Value;
    match (a, b) {
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .map(|(a, b)| key_order(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len())),
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .unwrap_or(std::cmp::Ordering::Equal),
        },
        (Value::String(a), Value::String(b)) => a.cmp(b),
        _ => a.to_string().cmp(&b.to_string()),
    }
}
