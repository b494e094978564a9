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

use super::Returning;
use super::{AnyConnection, MultiBackend};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::result::Error::NotFound;
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

/// Whether the connection's server returns rows from `INSERT` and `DELETE` (`RETURNING`),
/// as the session learned it once per database: PostgreSQL and SQLite always; MariaDB 10.5
/// and later unless [`SessionConfig::mariadb_returning`](crate::SessionConfig::mariadb_returning)
/// is off; MySQL never. Generated statements pass it on to the runners below, which consult
/// it only on a MySQL/MariaDB connection.
#[derive(Debug, Clone, Copy)]
// Read only by the MySQL/MariaDB arms; a build without that backend never looks at it.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub struct Returns(bool);

impl Returns {
    /// `RETURNING` is used on MySQL/MariaDB connections when `server_has_it`.
    pub(crate) const fn new(server_has_it: bool) -> Self {
        Returns(server_has_it)
    }
}

/// Whether `e` is diesel's MySQL error for a prepared statement the server described without
/// result columns: MariaDB does that for `INSERT … RETURNING` and `DELETE … RETURNING` until
/// the statement has run once on the connection (MDEV-27013). diesel asks for the columns
/// before it executes, so nothing ran.
#[cfg(feature = "mysql")]
fn not_yet_described(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DeserializationError(inner)
        if inner.to_string() == "No metadata exists")
}

/// The rows of `statement` (a `RETURNING` statement) on MariaDB; `Ok(None)`, nothing run, when
/// the server has not described its rows on this connection yet (see [`not_yet_described`]):
/// the caller then runs it once with [`ExecuteDsl::execute`], which discards the rows and
/// leaves the prepared statement described for every later run.
#[cfg(feature = "mysql")]
fn load_on_mariadb<'q, T, R>(
    c: &mut diesel::MysqlConnection,
    statement: T,
) -> QueryResult<Option<Vec<R>>>
where
    T: diesel::query_dsl::methods::LoadQuery<'q, diesel::MysqlConnection, R>,
{
    match diesel::RunQueryDsl::load(statement, c) {
        Ok(rows) => Ok(Some(rows)),
        Err(e) if not_yet_described(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs `statement` once without reading its rows: MariaDB's first run of a `RETURNING`
/// statement on a connection (see [`load_on_mariadb`]). Should it fail (a duplicate key), the
/// connection's transaction manager is marked broken: MariaDB's next run of that prepared
/// statement would never return (seen with its client library 3.3 and MariaDB 10.11), and
/// diesel cannot drop one statement from its cache, so the session replaces the connection
/// before its next statement and the pool never hands it out again.
#[cfg(feature = "mysql")]
fn first_run_on_mariadb<T>(conn: &mut AnyConnection, statement: T) -> QueryResult<usize>
where
    T: ExecuteDsl<diesel::MysqlConnection>,
{
    let result = match conn {
        AnyConnection::Mysql(c) => ExecuteDsl::execute(statement, c),
        #[allow(unreachable_patterns)]
        _ => Ok(0),
    };
    if result.is_err() {
        use diesel::connection::{Connection, TransactionManager};
        <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .set_in_error();
    }
    result
}

/// Executes a one-row insert (`insert` builds it) and returns the value the database gave the
/// column `key`, from the insert itself (`INSERT … RETURNING`) where the server can; else
/// executes the plain insert and returns `None` (MySQL, MariaDB before 10.5 or with
/// `RETURNING` switched off, and MariaDB's first run of the statement on a connection: the
/// caller asks `LAST_INSERT_ID()`).
pub fn insert_returning<'q, S, Sel, K>(
    conn: &mut AnyConnection,
    returns: Returns,
    insert: impl Fn() -> S,
    key: Sel,
) -> QueryResult<Option<K>>
where
    S: ExecutesOnMysql,
    Sel: Copy,
    Returning<S, Sel>: LoadsOnAny<'q, K> + ExecutesOnMysql,
{
    let returning = || Returning {
        statement: insert(),
        select: key,
    };
    #[cfg(feature = "mysql")]
    if let AnyConnection::Mysql(c) = conn {
        if !returns.0 {
            return ExecuteDsl::execute(insert(), c).map(|_| None);
        }
        if let Some(rows) = load_on_mariadb(c, returning())? {
            return rows.into_iter().next().map(Some).ok_or(NotFound);
        }
        return first_run_on_mariadb(conn, returning()).map(|_| None);
    }
    let _ = returns;
    let rows = load_rows(conn, returning())?;
    rows.into_iter().next().map(Some).ok_or(NotFound)
}

/// Deletes by key (`delete` builds the statement) and returns the removed row, loaded as the
/// tuple `R` of `select`'s stored types and built with `build`, from the delete itself
/// (`DELETE … RETURNING`): `Ok(Some(None))` when no row matched; `Ok(None)`, nothing run, where
/// the server cannot (the caller reads the row under a lock and deletes it). On MariaDB's first
/// run of the statement on a connection, `locked` reads the row under a lock and the statement
/// then runs without reading its rows.
pub fn delete_returning<'q, S, Sel, R, E>(
    conn: &mut AnyConnection,
    returns: Returns,
    delete: impl Fn() -> S,
    select: Sel,
    build: impl Fn(R) -> diesel::deserialize::Result<E>,
    locked: impl FnOnce(&mut AnyConnection) -> QueryResult<Option<E>>,
) -> QueryResult<Option<Option<E>>>
where
    Sel: Copy,
    Returning<S, Sel>: LoadsOnAny<'q, R> + ExecutesOnMysql,
{
    let returning = || Returning {
        statement: delete(),
        select,
    };
    #[cfg(feature = "mysql")]
    if let AnyConnection::Mysql(c) = conn {
        if !returns.0 {
            return Ok(None);
        }
        if let Some(rows) = load_on_mariadb(c, returning())? {
            return first_built(rows, &build).map(Some);
        }
        let Some(row) = locked(conn)? else {
            return Ok(Some(None));
        };
        let deleted = first_run_on_mariadb(conn, returning())?;
        return Ok(Some((deleted > 0).then_some(row)));
    }
    let _ = (returns, locked);
    first_built(load_rows(conn, returning())?, &build).map(Some)
}

/// Executes `returning` (a multi-row `INSERT … RETURNING`) and collects the returned values
/// where the backend has `RETURNING`; `None` without executing anything otherwise. MariaDB
/// gets `None` even with `RETURNING`: diesel prepares a multi-row insert afresh on every run
/// (its text depends on the number of rows), and MariaDB describes such a statement's rows only
/// after it ran (MDEV-27013), so every run would be a first one; the caller
/// learns the keys from `LAST_INSERT_ID()` instead.
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

/// The rows of `query`, loaded on the connection's own backend.
fn load_rows<'q, Q, R>(conn: &mut AnyConnection, query: Q) -> QueryResult<Vec<R>>
where
    Q: LoadsOnAny<'q, R>,
{
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => diesel::RunQueryDsl::load(query, c),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => diesel::RunQueryDsl::load(query, c),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => diesel::RunQueryDsl::load(query, c),
    }
}

/// The first of `rows` built with `build`, if any.
fn first_built<R, E>(
    rows: Vec<R>,
    build: impl Fn(R) -> diesel::deserialize::Result<E>,
) -> QueryResult<Option<E>> {
    rows.into_iter()
        .next()
        .map(|r| build(r).map_err(diesel::result::Error::DeserializationError))
        .transpose()
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
    load_rows(conn, query)?
        .into_iter()
        .map(|r| build(r).map_err(diesel::result::Error::DeserializationError))
        .collect()
}

/// [`load_built`] for a query that matches at most one row (a primary key): the row, or `None`.
/// The row is read straight off the statement, as diesel's `get_result` does (no vector is
/// collected for it).
pub fn find_built<'q, Q, R, E>(
    conn: &mut AnyConnection,
    query: Q,
    build: impl Fn(R) -> diesel::deserialize::Result<E>,
) -> QueryResult<Option<E>>
where
    Q: LoadsOnAny<'q, R>,
{
    first_row(conn, query)?
        .map(|r| build(r).map_err(diesel::result::Error::DeserializationError))
        .transpose()
}

/// The first row of `query`, loaded on the connection's own backend, or `None` when it has none.
fn first_row<'q, Q, R>(conn: &mut AnyConnection, query: Q) -> QueryResult<Option<R>>
where
    Q: LoadsOnAny<'q, R>,
{
    use diesel::OptionalExtension;
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => diesel::RunQueryDsl::get_result(query, c).optional(),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => diesel::RunQueryDsl::get_result(query, c).optional(),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => diesel::RunQueryDsl::get_result(query, c).optional(),
    }
}
