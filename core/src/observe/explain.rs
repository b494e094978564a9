//! Query plans: a diesel query (or a statement's SQL text) behind the backend's `EXPLAIN`
//! prefix, and the plan rows read back as text whatever their column is called.

use crate::conn::{AnyConnection, MultiBackend};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::row::NamedRow;
use diesel::sql_types::{Nullable, Untyped};
use diesel::{QueryResult, QueryableByName, RunQueryDsl};

/// `query` preceded by an `EXPLAIN` prefix (the backend's, see `Backend::explain_prefix`).
#[derive(Debug)]
pub(crate) struct Explain<'q, Q: ?Sized> {
    prefix: &'static str,
    query: &'q Q,
}

impl<Q: QueryFragment<MultiBackend> + ?Sized> QueryFragment<MultiBackend> for Explain<'_, Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql(self.prefix);
        self.query.walk_ast(out)
    }
}

impl<Q: ?Sized> QueryId for Explain<'_, Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: ?Sized> Query for Explain<'_, Q> {
    type SqlType = Untyped;
}

impl<Q: ?Sized> RunQueryDsl<AnyConnection> for Explain<'_, Q> {}

/// SQL text as a query fragment (a logged statement's SQL, whose placeholders stay unbound).
#[derive(Debug)]
pub(crate) struct Text<'s>(pub &'s str);

impl QueryFragment<MultiBackend> for Text<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

/// One row of a plan: PostgreSQL's `QUERY PLAN` (JSON), MariaDB's `EXPLAIN` (JSON), SQLite's
/// `detail` (one step of `EXPLAIN QUERY PLAN`).
struct PlanRow(String);

impl QueryableByName<MultiBackend> for PlanRow {
    fn build<'a>(row: &impl NamedRow<'a, MultiBackend>) -> diesel::deserialize::Result<Self> {
        for column in ["QUERY PLAN", "EXPLAIN", "detail"] {
            if let Ok(v) =
                NamedRow::get::<Nullable<diesel::sql_types::Text>, Option<String>>(row, column)
            {
                return Ok(PlanRow(v.unwrap_or_default()));
            }
        }
        Err("the plan has no column this build knows".into())
    }
}

/// The plan of `query` behind `prefix` (a backend's [`Backend::explain_prefix`]), its rows
/// joined by newlines.
///
/// [`Backend::explain_prefix`]: crate::Backend::explain_prefix
pub fn plan<Q: QueryFragment<MultiBackend> + ?Sized>(
    conn: &mut AnyConnection,
    prefix: &'static str,
    query: &Q,
) -> QueryResult<String> {
    let rows: Vec<PlanRow> = Explain { prefix, query }.load(conn)?;
    Ok(rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n"))
}

/// The plan an `EXPLAIN` statement `sql` returns, its rows joined by newlines (for backends
/// that build their own `EXPLAIN`).
pub fn plan_of_sql(conn: &mut AnyConnection, sql: &str) -> QueryResult<String> {
    let rows: Vec<PlanRow> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n"))
}
