//! [`CachedUpdate`]: the `UPDATE … SET … WHERE <key>` of an entity's write path as a statement
//! diesel keeps prepared.
//!
//! diesel never caches its own `UPDATE` (a changeset may skip `None` fields, so the text can
//! change between calls) and every update is parsed and planned again. The changeset generated
//! by `#[entity]` always sets the same columns, so the text depends only on the types, and the
//! statement can be prepared once per connection like a select.

use crate::conn::MultiBackend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// `UPDATE <table> SET <set> WHERE <filter>`, prepared once per connection.
#[derive(Debug, Clone)]
pub struct CachedUpdate<Table, Set, Filter> {
    /// The generated table (`table`), rendered with its schema if it has one.
    pub table: Table,
    /// The changeset, as `AsChangeset::as_changeset` made it.
    pub set: Set,
    /// The row's filter: key, and version and liveness where the entity has them.
    pub filter: Filter,
}

impl<Table, Set, Filter> QueryFragment<MultiBackend> for CachedUpdate<Table, Set, Filter>
where
    Table: QueryFragment<MultiBackend>,
    Set: QueryFragment<MultiBackend>,
    Filter: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

/// The cache key leaves out the changeset (diesel's assignment targets have no query id): the
/// table and the filter name the entity, and an entity's generated changeset always has the
/// same shape.
impl<Table: QueryId, Set, Filter: QueryId> QueryId for CachedUpdate<Table, Set, Filter> {
    type QueryId = CachedUpdate<Table::QueryId, (), Filter::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Table::HAS_STATIC_QUERY_ID && Filter::HAS_STATIC_QUERY_ID;
}

impl<Table, Set, Filter, C> RunQueryDsl<C> for CachedUpdate<Table, Set, Filter> {}
