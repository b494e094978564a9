//! Statements that give the write path a row as it was before the write (the audit record's
//! before image) without an extra round trip where the database allows it.
//!
//! - [`RowLock`] and [`NoLockModifier`]: `FOR UPDATE` on [`MultiBackend`], so that reading the
//!   row and locking it is one statement (diesel's own lock clause exists only for the concrete
//!   PostgreSQL and MySQL backends). SQLite has no row locks and gets no clause: custodian's
//!   write transactions there are `IMMEDIATE`, which already keeps other writers out.
//! - [`UpdateReturningOld`]: on PostgreSQL, the update itself returns the row as it was, by
//!   joining the target with a locking sub-select of the same row:
//!   `UPDATE t AS new SET … FROM (SELECT … FROM t WHERE … FOR UPDATE) AS t WHERE new.k = t.k
//!   RETURNING t.…`. The sub-select is aliased with the table's own name, so the filter, the
//!   `SET` expressions (`version = version + 1`) and the `RETURNING` list diesel renders as
//!   `"t"."col"` all read the locked, unchanged row.
//! - [`Returning`]: `<statement> RETURNING <columns>`: on PostgreSQL and SQLite a `DELETE`
//!   returns the removed row and an `INSERT` its key; on MariaDB 10.5 and later the same
//!   (diesel's MySQL backend has no `RETURNING`, so this fragment renders it there).
//! - [`BothImages`]: on PostgreSQL, a set update returning each row as it was and as updated.
//!
//! MariaDB has no `UPDATE … RETURNING`: there the write path reads the row with [`RowLock`]
//! first, or takes a row the transaction read already ([`Same`], [`Both`]). Its `INSERT …
//! RETURNING` and `DELETE … RETURNING` give a prepared statement no result metadata until it
//! has run once (MDEV-27013); `conn::run` runs such a statement's first execution on a
//! connection without reading its rows.

use crate::conn::MultiBackend;
pub use crate::conn::Returning;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{Expression, QueryResult, RunQueryDsl};

/// The `FOR UPDATE` lock mode of a locking read through [`crate::AnyConnection`]; see the module
/// doc. Used with `LockingDsl::with_lock` and `ModifyLockDsl::modify_lock(NoLockModifier)`.
#[derive(Debug, Clone, Copy, QueryId)]
pub struct RowLock;

/// The empty modifier that goes with [`RowLock`] (no `NOWAIT`, no `SKIP LOCKED`).
#[derive(Debug, Clone, Copy, QueryId)]
pub struct NoLockModifier;

impl QueryFragment<MultiBackend> for RowLock {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // SQLite has no row locks: its write transaction already excludes other writers.
        let locks_rows = match out.backend() {
            #[cfg(feature = "sqlite")]
            MultiBackend::Sqlite(_) => false,
            #[allow(unreachable_patterns)]
            _ => true,
        };
        if locks_rows {
            out.push_sql(" FOR UPDATE");
        }
        Ok(())
    }
}

impl QueryFragment<MultiBackend> for NoLockModifier {
    fn walk_ast<'b>(&'b self, _out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        Ok(())
    }
}

/// The same clauses on the concrete backends, for reads run on the connection's own backend
/// (`conn::run::find_built`): `FOR UPDATE` on PostgreSQL and MySQL, nothing on SQLite.
macro_rules! concrete_lock {
    ($feature:literal, $backend:ty, $sql:literal) => {
        #[cfg(feature = $feature)]
        impl QueryFragment<$backend> for RowLock {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $backend>) -> QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }
        #[cfg(feature = $feature)]
        impl QueryFragment<$backend> for NoLockModifier {
            fn walk_ast<'b>(&'b self, _out: AstPass<'_, 'b, $backend>) -> QueryResult<()> {
                Ok(())
            }
        }
    };
}
concrete_lock!("postgres", diesel::pg::Pg, " FOR UPDATE");
concrete_lock!("mysql", diesel::mysql::Mysql, " FOR UPDATE");
concrete_lock!("sqlite", diesel::sqlite::Sqlite, "");

/// PostgreSQL's one-statement update that returns the row as it was before (see the module
/// doc). Built by generated code, run only on a PostgreSQL connection: other databases cannot
/// return a joined table's columns from an update.
#[derive(Debug, Clone)]
pub struct UpdateReturningOld<Set, Filter, Sel> {
    /// The table's name, unqualified (the entity has no schema).
    pub table: &'static str,
    /// The primary key's column names.
    pub key: &'static [&'static str],
    /// The changeset, as `AsChangeset::as_changeset` made it.
    pub set: Set,
    /// The row's filter: key, and version and liveness where the entity has them.
    pub filter: Filter,
    /// Every column of the table, in the entity's order: what comes back.
    pub select: Sel,
}

const NEW: &str = "__custodian_new";

impl<Set, Filter, Sel> QueryFragment<MultiBackend> for UpdateReturningOld<Set, Filter, Sel>
where
    Set: QueryFragment<MultiBackend>,
    Filter: QueryFragment<MultiBackend>,
    Sel: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // Kept as a prepared statement (diesel's own UPDATE is not, because its changesets may
        // skip `None` fields): the generated changeset always sets the same columns, so the
        // text depends only on the types, which make the cache key.
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        out.push_sql(" AS ");
        out.push_identifier(NEW)?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" FROM (SELECT ");
        self.select.walk_ast(out.reborrow())?;
        out.push_sql(" FROM ");
        out.push_identifier(self.table)?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())?;
        out.push_sql(" FOR UPDATE) AS ");
        out.push_identifier(self.table)?;
        out.push_sql(" WHERE ");
        for (i, k) in self.key.iter().enumerate() {
            if i > 0 {
                out.push_sql(" AND ");
            }
            out.push_identifier(NEW)?;
            out.push_sql(".");
            out.push_identifier(k)?;
            out.push_sql(" = ");
            out.push_identifier(self.table)?;
            out.push_sql(".");
            out.push_identifier(k)?;
        }
        out.push_sql(" RETURNING ");
        self.select.walk_ast(out.reborrow())
    }
}

/// The cache key leaves out the changeset (diesel's assignment targets have no query id): the
/// selection, every column of one generated table, names the entity, and an entity's generated
/// changeset always has the same shape.
impl<Set, Filter: QueryId, Sel: QueryId> QueryId for UpdateReturningOld<Set, Filter, Sel> {
    type QueryId = UpdateReturningOld<(), Filter::QueryId, Sel::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Filter::HAS_STATIC_QUERY_ID && Sel::HAS_STATIC_QUERY_ID;
}

impl<Set, Filter, Sel: Expression> Query for UpdateReturningOld<Set, Filter, Sel> {
    type SqlType = Sel::SqlType;
}

impl<Set, Filter, Sel, C> RunQueryDsl<C> for UpdateReturningOld<Set, Filter, Sel> {}

/// A statement built at run time (a set-based write's `UPDATE … WHERE <keys>`), for
/// [`Returning`]: never kept prepared (its text depends on the number of keys).
#[derive(Clone, Copy)]
pub struct DynStatement<'a>(pub &'a dyn QueryFragment<MultiBackend>);

impl QueryFragment<MultiBackend> for DynStatement<'_> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}

impl QueryId for DynStatement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// A set update that returns every row it changed twice, as it was and as updated, in one
/// statement (PostgreSQL's `UPDATE … FROM (<locking read>) … RETURNING <old>, <new>`, built
/// by the session's set writes): its rows decode as `(E, E)`, `Sel` being `E`'s selection.
pub struct BothImages<'a, Sel> {
    /// The statement.
    pub statement: DynStatement<'a>,
    /// The entity's selection, whose SQL type each half of a row has.
    pub select: std::marker::PhantomData<Sel>,
}

impl<Sel> QueryFragment<MultiBackend> for BothImages<'_, Sel> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.statement.walk_ast(out)
    }
}

impl<Sel> QueryId for BothImages<'_, Sel> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Sel: Expression> Query for BothImages<'_, Sel> {
    type SqlType = (Sel::SqlType, Sel::SqlType);
}

impl<Sel, C> RunQueryDsl<C> for BothImages<'_, Sel> {}

/// `column` equals `value`, `NULL` equal to `NULL`, text compared byte for byte whatever the
/// column's collation (`TEXT`): the guard of an update that takes a row read earlier in the
/// transaction as its before image. It must never call two different rows equal; calling equal
/// rows different only costs the locking read it saves.
///
/// PostgreSQL `IS NOT DISTINCT FROM`, MariaDB `<=>` (text: `<=> BINARY ?`), SQLite `IS`
/// (text: `IS ? COLLATE BINARY`).
#[derive(Debug, Clone, Copy)]
pub struct Same<Column, Value, const TEXT: bool> {
    /// The column.
    pub column: Column,
    /// The bound value it must hold.
    pub value: Value,
}

impl<Column, Value, const TEXT: bool> QueryFragment<MultiBackend> for Same<Column, Value, TEXT>
where
    Column: QueryFragment<MultiBackend>,
    Value: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        let (op, prefix, suffix) = match out.backend() {
            #[cfg(feature = "postgres")]
            MultiBackend::Postgresql(_) => (" IS NOT DISTINCT FROM ", "", ""),
            #[cfg(feature = "mysql")]
            MultiBackend::Mysql(_) if TEXT => (" <=> ", "BINARY ", ""),
            #[cfg(feature = "mysql")]
            MultiBackend::Mysql(_) => (" <=> ", "", ""),
            #[cfg(feature = "sqlite")]
            MultiBackend::Sqlite(_) if TEXT => (" IS ", "", " COLLATE BINARY"),
            #[cfg(feature = "sqlite")]
            MultiBackend::Sqlite(_) => (" IS ", "", ""),
        };
        out.push_sql("(");
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(op);
        out.push_sql(prefix);
        self.value.walk_ast(out.reborrow())?;
        out.push_sql(suffix);
        out.push_sql(")");
        Ok(())
    }
}

impl<Column: QueryId, Value: QueryId, const TEXT: bool> QueryId for Same<Column, Value, TEXT> {
    type QueryId = Same<Column::QueryId, Value::QueryId, TEXT>;
    const HAS_STATIC_QUERY_ID: bool = Column::HAS_STATIC_QUERY_ID && Value::HAS_STATIC_QUERY_ID;
}

/// `left AND right`, for conditions that are not diesel expressions ([`Same`]).
#[derive(Debug, Clone, Copy)]
pub struct Both<Left, Right>(pub Left, pub Right);

impl<Left, Right> QueryFragment<MultiBackend> for Both<Left, Right>
where
    Left: QueryFragment<MultiBackend>,
    Right: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" AND ");
        self.1.walk_ast(out.reborrow())
    }
}

impl<Left: QueryId, Right: QueryId> QueryId for Both<Left, Right> {
    type QueryId = Both<Left::QueryId, Right::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Left::HAS_STATIC_QUERY_ID && Right::HAS_STATIC_QUERY_ID;
}
