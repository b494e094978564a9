//! [`Returning`]: `<statement> RETURNING <columns>`, rendered on the multi-backend connection
//! and on each concrete backend, for the statements `run` executes on the connection's own
//! backend (a delete returning the removed row, a one-row insert returning its key).

use super::MultiBackend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{Expression, QueryResult, RunQueryDsl};

/// `<statement> RETURNING <columns>` for a statement diesel renders without one (a `DELETE`
/// by key, a one-row `INSERT`): PostgreSQL, SQLite (3.35+) and MariaDB (10.5+) return the
/// deleted row or the inserted key. Renders on [`MultiBackend`] and, for statements run on the
/// connection's own backend (`conn::run`), on each concrete backend; on MariaDB only where the
/// server was found to have it (MySQL has none).
#[derive(Debug, Clone)]
pub struct Returning<Statement, Sel> {
    /// The statement, e.g. `diesel::delete(table.find(key))`.
    pub statement: Statement,
    /// The columns returned, in the entity's order.
    pub select: Sel,
}

impl<Statement, Sel> QueryFragment<MultiBackend> for Returning<Statement, Sel>
where
    Statement: QueryFragment<MultiBackend>,
    Sel: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.statement.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING ");
        self.select.walk_ast(out.reborrow())
    }
}

/// [`Returning`] on the concrete backends: the statement's own SQL, then `RETURNING`.
macro_rules! concrete_returning {
    ($feature:literal, $backend:ty) => {
        #[cfg(feature = $feature)]
        impl<Statement, Sel> QueryFragment<$backend> for Returning<Statement, Sel>
        where
            Statement: QueryFragment<$backend>,
            Sel: QueryFragment<$backend>,
        {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $backend>) -> QueryResult<()> {
                self.statement.walk_ast(out.reborrow())?;
                out.push_sql(" RETURNING ");
                self.select.walk_ast(out.reborrow())
            }
        }
    };
}
concrete_returning!("postgres", diesel::pg::Pg);
concrete_returning!("mysql", diesel::mysql::Mysql);
concrete_returning!("sqlite", diesel::sqlite::Sqlite);

impl<Statement: QueryId, Sel: QueryId> QueryId for Returning<Statement, Sel> {
    type QueryId = Returning<Statement::QueryId, Sel::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Statement::HAS_STATIC_QUERY_ID && Sel::HAS_STATIC_QUERY_ID;
}

impl<Statement, Sel: Expression> Query for Returning<Statement, Sel> {
    type SqlType = Sel::SqlType;
}

impl<Statement, Sel, C> RunQueryDsl<C> for Returning<Statement, Sel> {}
