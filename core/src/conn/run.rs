//! Statements run on whichever connection an [`AnyConnection`] holds, typed against that
//! backend.
//!
//! diesel's `MultiBackend` covers the SQL the backends share; a multi-row `INSERT` or a
//! `RETURNING` clause must be typed against the concrete backend instead. These functions take
//! a statement whose type is the same for every backend, require (through the bound traits
//! below) that it runs on each backend this build has, and run it on the one the connection
//! holds. Generated entity code calls them, so it compiles the same whichever features are on,
//! and a backend's capabilities (`RETURNING` or not) are decided here, once.
//!
//! Each bound trait is an alias: with the backend's feature on, it requires diesel's trait for
//! that backend's connection; with the feature off, every type has it.

use super::{AnyConnection, MultiBackend};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::QueryResult;

/// Declares `$name` as an alias of `$bound` when `$feature` is on, and as a trait of every type
/// when it is off.
macro_rules! bound_alias {
    ($feature:literal, $doc:literal, $name:ident, $($bound:tt)+) => {
        #[doc = $doc]
        #[cfg(feature = $feature)]
        pub trait $name: $($bound)+ {}
        #[cfg(feature = $feature)]
        impl<T: $($bound)+> $name for T {}
        #[doc = $doc]
        #[cfg(not(feature = $feature))]
        pub trait $name {}
        #[cfg(not(feature = $feature))]
        impl<T> $name for T {}
    };
}

bound_alias!(
    "postgres",
    "A statement that executes on PostgreSQL (every type, in a build without PostgreSQL).",
    ExecutesOnPg,
    ExecuteDsl<diesel::PgConnection>
);
bound_alias!(
    "mysql",
    "A statement that executes on MySQL/MariaDB (every type, in a build without MySQL).",
    ExecutesOnMysql,
    ExecuteDsl<diesel::MysqlConnection>
);
bound_alias!(
    "sqlite",
    "A statement that executes on SQLite (every type, in a build without SQLite).",
    ExecutesOnSqlite,
    ExecuteDsl<diesel::SqliteConnection>
);

/// A query that loads rows of `U` on PostgreSQL (every type, in a build without PostgreSQL).
#[cfg(feature = "postgres")]
pub trait LoadsOnPg<'q, U>:
    diesel::query_dsl::methods::LoadQuery<'q, diesel::PgConnection, U>
{
}
#[cfg(feature = "postgres")]
impl<'q, U, T: diesel::query_dsl::methods::LoadQuery<'q, diesel::PgConnection, U>> LoadsOnPg<'q, U>
    for T
{
}
/// A query that loads rows of `U` on PostgreSQL (every type, in a build without PostgreSQL).
#[cfg(not(feature = "postgres"))]
pub trait LoadsOnPg<'q, U> {}
#[cfg(not(feature = "postgres"))]
impl<'q, U, T> LoadsOnPg<'q, U> for T {}

/// A query that loads rows of `U` on SQLite (every type, in a build without SQLite).
#[cfg(feature = "sqlite")]
pub trait LoadsOnSqlite<'q, U>:
    diesel::query_dsl::methods::LoadQuery<'q, diesel::SqliteConnection, U>
{
}
#[cfg(feature = "sqlite")]
impl<'q, U, T: diesel::query_dsl::methods::LoadQuery<'q, diesel::SqliteConnection, U>>
    LoadsOnSqlite<'q, U> for T
{
}
/// A query that loads rows of `U` on SQLite (every type, in a build without SQLite).
#[cfg(not(feature = "sqlite"))]
pub trait LoadsOnSqlite<'q, U> {}
#[cfg(not(feature = "sqlite"))]
impl<'q, U, T> LoadsOnSqlite<'q, U> for T {}

/// A query that loads rows of `U` on MySQL/MariaDB (every type, in a build without MySQL).
#[cfg(feature = "mysql")]
pub trait LoadsOnMysql<'q, U>:
    diesel::query_dsl::methods::LoadQuery<'q, diesel::MysqlConnection, U>
{
}
#[cfg(feature = "mysql")]
impl<'q, U, T: diesel::query_dsl::methods::LoadQuery<'q, diesel::MysqlConnection, U>>
    LoadsOnMysql<'q, U> for T
{
}
/// A query that loads rows of `U` on MySQL/MariaDB (every type, in a build without MySQL).
#[cfg(not(feature = "mysql"))]
pub trait LoadsOnMysql<'q, U> {}
#[cfg(not(feature = "mysql"))]
impl<'q, U, T> LoadsOnMysql<'q, U> for T {}

/// A query that loads rows of `U` on every backend this build has.
pub trait LoadsOnAny<'q, U>: LoadsOnPg<'q, U> + LoadsOnMysql<'q, U> + LoadsOnSqlite<'q, U> {}
impl<'q, U, T: LoadsOnPg<'q, U> + LoadsOnMysql<'q, U> + LoadsOnSqlite<'q, U>> LoadsOnAny<'q, U>
    for T
{
}

/// A statement that executes on every backend this build has.
pub trait ExecutesOnAny: ExecutesOnPg + ExecutesOnMysql + ExecutesOnSqlite {}
impl<T: ExecutesOnPg + ExecutesOnMysql + ExecutesOnSqlite> ExecutesOnAny for T {}

/// Executes `statement` (typically a multi-row `INSERT`) on the connection's own backend and
/// returns the number of rows it affected.
pub fn execute<S: ExecutesOnAny>(conn: &mut AnyConnection, statement: S) -> QueryResult<usize> {
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => ExecuteDsl::execute(statement, c),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => ExecuteDsl::execute(statement, c),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => ExecuteDsl::execute(statement, c),
    }
}

/// Whether the connection's backend returns rows from `INSERT`, `UPDATE` and `DELETE`
/// (`RETURNING`: PostgreSQL, SQLite 3.35 and later; not MySQL/MariaDB).
pub fn has_returning(conn: &AnyConnection) -> bool {
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => true,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(_) => false,
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(_) => true,
    }
}

/// The SQL `f` renders in the connection's dialect (diesel's query builder of its backend).
pub fn render_sql(
    conn: &AnyConnection,
    f: impl FnOnce(
        &mut <MultiBackend as diesel::backend::Backend>::QueryBuilder,
        &MultiBackend,
    ) -> QueryResult<()>,
) -> QueryResult<String> {
    type Builder = <MultiBackend as diesel::backend::Backend>::QueryBuilder;
    let (mut builder, backend) = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => (
            Builder::Postgresql(Default::default()),
            MultiBackend::Postgresql(Default::default()),
        ),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(_) => (
            Builder::Mysql(Default::default()),
            MultiBackend::Mysql(Default::default()),
        ),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(_) => (
            Builder::Sqlite(Default::default()),
            MultiBackend::Sqlite(Default::default()),
        ),
    };
    f(&mut builder, &backend)?;
    Ok(diesel::query_builder::QueryBuilder::finish(builder))
}

/// Runs `f` when the connection is PostgreSQL and returns its result; `Ok(None)` on any other
/// backend. Statements only PostgreSQL runs (an `UPDATE` returning the row it replaced, see
/// [`UpdateReturningOld`](crate::private::UpdateReturningOld)) are built inside `f`: in a build
/// without PostgreSQL `f` is never called, so the compiler never generates its code.
pub fn on_postgres<R>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> QueryResult<R>,
) -> QueryResult<Option<R>> {
    #[cfg(feature = "postgres")]
    if matches!(conn, AnyConnection::Postgresql(_)) {
        return f(conn).map(Some);
    }
    let _ = (conn, f);
    Ok(None)
}

/// Runs `f` when the connection is MySQL/MariaDB and returns its result; `Ok(None)` on any
/// other backend. Statements only MariaDB runs (the update guarded by a row read earlier in the
/// transaction) are built inside `f`: in a build without MySQL `f` is never called, so the
/// compiler never generates its code.
pub fn on_mysql<R>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> QueryResult<R>,
) -> QueryResult<Option<R>> {
    #[cfg(feature = "mysql")]
    if matches!(conn, AnyConnection::Mysql(_)) {
        return f(conn).map(Some);
    }
    let _ = (conn, f);
    Ok(None)
}

/// Executes `insert` and returns the value the database gave the `RETURNING` column where the
/// backend has `RETURNING` (`returning` turns `insert` into that statement), or executes
/// `insert` as it is and returns `None` (MySQL/MariaDB: the caller asks `LAST_INSERT_ID()`).
pub fn insert_returning<'q, S, R, K>(
    conn: &mut AnyConnection,
    insert: S,
    returning: impl FnOnce(S) -> R,
) -> QueryResult<Option<K>>
where
    S: ExecutesOnMysql,
    R: LoadsOnPg<'q, K> + LoadsOnSqlite<'q, K>,
{
    // Each arm uses only its own bounds; in a build without some backend the rest go unused.
    let _ = &returning;
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => {
            diesel::RunQueryDsl::get_result(returning(insert), c).map(Some)
        }
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => ExecuteDsl::execute(insert, c).map(|_| None),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => diesel::RunQueryDsl::get_result(returning(insert), c).map(Some),
    }
}

/// Executes `returning` (a multi-row `INSERT … RETURNING`) and collects the returned values
/// where the backend has `RETURNING`; `None` without executing anything otherwise.
pub fn insert_returning_all<'q, R, K>(
    conn: &mut AnyConnection,
    returning: R,
) -> QueryResult<Option<Vec<K>>>
where
    R: LoadsOnPg<'q, K> + LoadsOnSqlite<'q, K>,
{
    let _ = &returning;
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => diesel::RunQueryDsl::get_results(returning, c).map(Some),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(_) => Ok(None),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => diesel::RunQueryDsl::get_results(returning, c).map(Some),
    }
}

/// Loads the rows of `query` on the connection's own backend and builds each with `build`.
///
/// Generated reads by key call this instead of loading through the [`AnyConnection`]: diesel's
/// multi-backend connection renders a statement's SQL text again on every execution, even when
/// the prepared statement is cached, which is most of the CPU a read by key costs on SQLite.
/// On the concrete connection a cached statement is found by its type and only the binds are
/// collected. `build` is the entity's `Queryable::build` (the row is the tuple of the columns'
/// stored types).
pub fn load_built<'q, Q, R, E>(
    conn: &mut AnyConnection,
    query: Q,
    build: impl Fn(R) -> diesel::deserialize::Result<E>,
) -> QueryResult<Vec<E>>
where
    Q: LoadsOnAny<'q, R>,
{
    let rows: Vec<R> = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => diesel::RunQueryDsl::load(query, c)?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => diesel::RunQueryDsl::load(query, c)?,
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => diesel::RunQueryDsl::load(query, c)?,
    };
    rows.into_iter()
        .map(|r| build(r).map_err(diesel::result::Error::DeserializationError))
        .collect()
}

/// [`load_built`] for a query that matches at most one row (a primary key): the row, or `None`.
pub fn find_built<'q, Q, R, E>(
    conn: &mut AnyConnection,
    query: Q,
    build: impl Fn(R) -> diesel::deserialize::Result<E>,
) -> QueryResult<Option<E>>
where
    Q: LoadsOnAny<'q, R>,
{
    use diesel::OptionalExtension;
    let row: Option<R> = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => diesel::RunQueryDsl::get_result(query, c).optional()?,
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => diesel::RunQueryDsl::get_result(query, c).optional()?,
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => diesel::RunQueryDsl::get_result(query, c).optional()?,
    };
    row.map(|r| build(r).map_err(diesel::result::Error::DeserializationError))
        .transpose()
}
