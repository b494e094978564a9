//! [`Rerunnable`]: a diesel query held so that it can be sent more than once. A read that a
//! replica's lost connection cut off runs again on another host within the same call
//! ([`Session::load`], [`Session::select`]); diesel consumes a query when it runs it, so the
//! session keeps it shared and hands diesel a handle each time.

use crate::conn::MultiBackend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};
use std::sync::Arc;

/// A query shared by every run of one read (see the module doc). It appears in the bounds of
/// [`Session::load`](crate::Session::load) and [`Session::select`](crate::Session::select):
/// any query diesel can load as `T` qualifies, boxed ones included; callers never build one.
#[derive(Debug)]
pub struct Rerunnable<Q>(Arc<Q>);

impl<Q> Rerunnable<Q> {
    /// Holds `query` for several runs.
    pub(crate) fn new(query: Q) -> Self {
        Rerunnable(Arc::new(query))
    }

    /// A handle for one run (the query is shared, not copied).
    pub(crate) fn again(&self) -> Self {
        Rerunnable(self.0.clone())
    }
}

impl<Q: Query> Query for Rerunnable<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for Rerunnable<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }
}

impl<Q: QueryId> QueryId for Rerunnable<Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
    const IS_WINDOW_FUNCTION: bool = Q::IS_WINDOW_FUNCTION;
}

impl<Q, Conn> RunQueryDsl<Conn> for Rerunnable<Q> {}
