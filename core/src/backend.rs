//! The seam between core and the database-specific code in `custodian-backends`.
//!
//! A [`Backend`] knows one database's dialect: how to connect and prepare a connection, how to
//! begin a transaction with given options, how to read the last generated key, how to classify
//! its errors, and how to write DDL. Core never contains backend-specific SQL; it calls these
//! methods. The backends crate provides one unit struct per database.

use crate::config::{DatabaseUrl, SessionConfig};
use crate::conn::AnyConnection;
use crate::entity::EntityMeta;
use crate::error::{BackendKind, Error};
use crate::schema::diff::SchemaChange;
use crate::schema::LiveColumn;
use crate::tx::TxOptions;
use crate::value::ColumnKind;
use diesel::QueryResult;
use std::time::Duration;

/// A host's role in a replicated database, as the server itself reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HostRole {
    /// Accepts writes (PostgreSQL not in recovery; MariaDB with `read_only` off).
    Primary,
    /// Serves reads only, replaying the primary's changes.
    Replica,
}

/// A value written into a statement's text by [`Backend::inline_literal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal<'a> {
    /// Text.
    Text(&'a str),
    /// An integer.
    Int(i64),
    /// A timestamp without time zone (microseconds).
    Timestamp(chrono::NaiveDateTime),
    /// SQL `NULL`.
    Null,
}

/// What differs per database. Implemented by `custodian-backends`; object-safe.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// Which database this is.
    fn kind(&self) -> BackendKind;

    /// URL schemes this backend serves, e.g. `["postgres", "postgresql"]`.
    fn schemes(&self) -> &'static [&'static str];

    /// Opens a new connection. Errors are [`Error::Connection`] with the redacted URL.
    fn establish(&self, url: &DatabaseUrl) -> Result<AnyConnection, Error>;

    /// Prepares a freshly opened connection (time zone, strict modes, pragmas, timeouts).
    fn prepare(&self, conn: &mut AnyConnection, settings: &SessionConfig) -> QueryResult<()>;

    /// A cheap query proving the connection works. The pool runs it on every checkout (with
    /// `test_on_check_out`), so it must cost one round trip, as diesel's own check does.
    fn ping(&self, conn: &mut AnyConnection) -> QueryResult<()>;

    /// The prefix that makes a statement return its plan instead of running: PostgreSQL
    /// `EXPLAIN (FORMAT JSON) `, MariaDB `EXPLAIN FORMAT=JSON `, SQLite `EXPLAIN QUERY PLAN `.
    fn explain_prefix(&self) -> &'static str;

    /// The plan of a statement that ran (a slow one), from its SQL and the values it ran
    /// with, on the connection it ran on; `Ok(None)` when this backend cannot plan it with
    /// such values. The values must not appear in the plan, and a failed capture must leave
    /// the connection's transaction usable. The default, for backends that plan a statement
    /// with unbound placeholders (SQLite), puts [`Backend::explain_prefix`] before the SQL.
    fn explain_statement(
        &self,
        conn: &mut AnyConnection,
        sql: &str,
        _binds: &[crate::observe::binds::BindValue],
    ) -> QueryResult<Option<String>> {
        crate::observe::plan(conn, self.explain_prefix(), &crate::observe::Text(sql)).map(Some)
    }

    /// The tables `plan` (what [`Backend::explain_statement`] returned for `sql`) reads in full
    /// while filtering them, each with the names its filter uses, for the schema advice. The
    /// names come from the plan's condition where the database shows it, else from `sql`'s
    /// `WHERE`; they are never values (literals are skipped). A plan this backend cannot
    /// read yields none. The default: none.
    fn filtered_scans(&self, _plan: &str, _sql: &str) -> Vec<crate::observe::FilteredScan> {
        Vec::new()
    }

    /// Begins a top-level transaction with the given options. Nothing set here may outlive the
    /// transaction.
    fn begin(&self, conn: &mut AnyConnection, options: &TxOptions) -> QueryResult<()>;

    /// Limits each statement of the current transaction to `limit` (best effort: SQLite has
    /// no statement timeout and returns `Ok`).
    fn set_transaction_timeout(&self, conn: &mut AnyConnection, limit: Duration)
        -> QueryResult<()>;

    /// Undoes connection state that [`Backend::begin`] or [`Backend::set_transaction_timeout`]
    /// could not scope to the transaction. Called after every top-level commit or rollback of a
    /// transaction with a timeout or read-only.
    fn reset_after_transaction(
        &self,
        conn: &mut AnyConnection,
        settings: &SessionConfig,
    ) -> QueryResult<()>;

    /// The server session this connection talks to, as text only this backend reads back
    /// (PostgreSQL: backend pid and start time; MariaDB: connection id and the server it lives
    /// on, which alone can end or look it up), or `None` where a
    /// connection cannot be lost with a `COMMIT` in flight (SQLite is embedded: its commit
    /// either returns or fails, and a failed one rolled back). Asked before `COMMIT` of a
    /// transaction whose outcome custodian resolves should the connection break.
    fn server_session(&self, _conn: &mut AnyConnection) -> QueryResult<Option<String>> {
        Ok(None)
    }

    /// Asks the server to end the session `id` ([`Backend::server_session`] of another
    /// connection, lost by its client): whatever transaction it still runs is rolled back
    /// unless its commit already went through. A session that is gone already is `Ok`.
    fn end_server_session(&self, _conn: &mut AnyConnection, _id: &str) -> QueryResult<()> {
        Ok(())
    }

    /// Whether the server session `id` still exists. Once it does not, its transaction has
    /// ended on the server (committed or rolled back) and can no longer change.
    fn server_session_exists(&self, _conn: &mut AnyConnection, _id: &str) -> QueryResult<bool> {
        Ok(false)
    }

    /// Galera: whether the node of server session `id`, another node of the cluster this
    /// connection's node belongs to, has left the primary component as this node sees it
    /// (`Some(true)`; `Some(false)`: still a member, or this node is outside the primary
    /// component itself). A node that left commits nothing more, and every write set it
    /// replicated before leaving is ordered before the view that excluded it, so a read with
    /// `wsrep_sync_wait` here sees it. `None` when `id` lives on this connection's own server
    /// (the default: settle it there); an error when it lives on another server that is no
    /// Galera node.
    fn session_node_left(&self, _conn: &mut AnyConnection, _id: &str) -> QueryResult<Option<bool>> {
        Ok(None)
    }

    /// The key the database generated for the last insert on this connection (for a
    /// multi-row insert on MySQL / MariaDB: the first row's).
    fn last_insert_id(&self, conn: &mut AnyConnection) -> QueryResult<i64>;

    /// Whether a multi-row `INSERT` learns its keys from [`Backend::last_insert_id`] (when
    /// [`Backend::consecutive_insert_ids`] holds) instead of returning them (`RETURNING`):
    /// MariaDB.
    fn keys_from_last_insert_id(&self) -> bool {
        false
    }

    /// Whether a transaction keeps the rows of audited entities it read by key, so that a later
    /// update can be guarded by "every column unchanged since" instead of reading the row again
    /// under a lock: worth it where that read is a round trip and the update cannot return the
    /// old row itself (MariaDB).
    fn keeps_rows_for_guarded_updates(&self) -> bool {
        false
    }

    /// Whether the server returns rows from `INSERT` and `DELETE` (`RETURNING`), asked once per
    /// database: PostgreSQL and SQLite always (the default); MariaDB from 10.5 on; MySQL never.
    fn returns_rows(&self, _conn: &mut AnyConnection) -> QueryResult<bool> {
        Ok(true)
    }

    /// Whether the rows of one multi-row `INSERT` get consecutive auto-increment keys starting
    /// at [`Backend::last_insert_id`], so that a bulk insert learns every row's key without
    /// `RETURNING` (MariaDB with `innodb_autoinc_lock_mode` 0 or 1 and
    /// `auto_increment_increment` 1). Backends whose insert returns keys answer `false`.
    fn consecutive_insert_ids(&self, _conn: &mut AnyConnection) -> QueryResult<bool> {
        Ok(false)
    }

    /// Turns a diesel error from this backend into a classified [`Error`].
    fn classify(&self, err: diesel::result::Error) -> Error;

    /// Whether a connection whose statement failed with `err` must not run another statement:
    /// the session replaces it (and the pool, should the session end first, discards it).
    /// Every backend: a lost connection ([`Error::Connection`]). Backends whose driver can be
    /// left mid-result by a failure add theirs (MariaDB).
    fn discards_connection_after(&self, err: &Error) -> bool {
        matches!(err, Error::Connection { .. })
    }

    /// The DDL creating an entity's table in this dialect: `CREATE TABLE` with its primary
    /// key, `NOT NULL`, defaults and named check, unique and foreign-key constraints, then one
    /// `CREATE INDEX` per non-unique index. Statements carry no trailing `;`.
    fn create_table_sql(&self, meta: &EntityMeta) -> Vec<String>;

    /// `DROP TABLE IF EXISTS` for an entity, in this dialect.
    fn drop_table_sql(&self, meta: &EntityMeta) -> String;

    /// The statements of one migration step in this dialect (no trailing `;`): a table created
    /// as [`Backend::create_table_sql`] creates it, dropped, or altered step by step
    /// (PostgreSQL and MariaDB: `ALTER TABLE`; SQLite: a new table, the rows copied, the old
    /// table dropped and the new one renamed, its indexes recreated).
    fn schema_change_sql(&self, change: &SchemaChange) -> Vec<String>;

    /// Prepares the connection that runs migrations, before the first one (outside any
    /// transaction). SQLite turns foreign-key enforcement off, which it cannot do inside a
    /// transaction, so that a table rebuild does not fire the foreign-key actions of the rows
    /// of the table it drops.
    fn before_migrations(&self, _conn: &mut AnyConnection) -> QueryResult<()> {
        Ok(())
    }

    /// The foreign-key violations the migration just run left behind, described, where
    /// [`Backend::before_migrations`] turned enforcement off; checked before each migration
    /// commits, which fails if any.
    fn foreign_key_violations(&self, _conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// Restores what [`Backend::before_migrations`] changed, after the last migration ran or
    /// one failed.
    fn after_migrations(&self, _conn: &mut AnyConnection) -> QueryResult<()> {
        Ok(())
    }

    /// Whether DDL statements take part in transactions (PostgreSQL, SQLite), so a failed
    /// migration leaves nothing behind. MariaDB commits implicitly around each DDL statement.
    fn transactional_ddl(&self) -> bool;

    /// The live columns of an entity's table, in table order; `None` if the table does not
    /// exist. Reads the entity's schema (database) or the connection's current one.
    fn live_columns(
        &self,
        conn: &mut AnyConnection,
        meta: &EntityMeta,
    ) -> QueryResult<Option<Vec<LiveColumn>>>;

    /// The first column of every index of `table` in `schema` (`None`: the connection's
    /// current schema or database), primary key and unique constraints included (empty when
    /// the table does not exist): the schema advice reports a foreign key column, or a column
    /// a slow plan filtered a full scan on, that is none of them.
    fn index_leading_columns(
        &self,
        conn: &mut AnyConnection,
        schema: Option<&str>,
        table: &str,
    ) -> QueryResult<Vec<String>>;

    /// Whether a live column type (as [`Backend::live_columns`] reports it) can hold values of
    /// `kind`: what this backend's own DDL creates for `kind`, and obvious equivalents.
    fn type_compatible(&self, kind: ColumnKind, live_type: &str) -> bool;

    /// Most bind parameters one statement may carry.
    fn max_bind_params(&self) -> usize {
        30_000
    }

    /// Most bytes one statement and its bound values may take on the wire (MariaDB's
    /// `max_allowed_packet`), `None` if the backend sets no such limit. The audit trail sizes
    /// its multi-row inserts by it.
    fn max_statement_bytes(&self, _conn: &mut AnyConnection) -> QueryResult<Option<usize>> {
        Ok(None)
    }

    /// Rewrites the live storage of `table` so that rows deleted from it are no longer in the
    /// database's own files (crypto-shredding: an erased subject's wrapped key). Runs outside
    /// any transaction. PostgreSQL: `VACUUM FULL` (a new heap file); MariaDB: `OPTIMIZE TABLE`
    /// (InnoDB rebuilds the table into a new tablespace); SQLite: deleted rows are zeroed by
    /// `secure_delete`, and the write-ahead log is checkpointed and truncated. Logs, replicas
    /// and backups are beyond its reach.
    fn rewrite_table_storage(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<()>;

    /// Two-phase commit, for branches of a coordinated transaction
    /// ([`coordinate`](crate::coordinate)); `None` where the database cannot prepare a
    /// transaction (SQLite).
    fn two_phase(&self) -> Option<&'static dyn TwoPhase> {
        None
    }

    /// Backups: the engine's dump tool, its snapshot, and rows in the canonical text form that
    /// backup manifests hash ([`backup`](crate::backup)).
    fn backup(&self) -> &'static dyn BackupDialect;

    // --- replication (clusters, see `crate::cluster`) ---

    /// The role of the host this connection talks to (PostgreSQL `pg_is_in_recovery()`,
    /// MariaDB `@@read_only`). Backends without replicas answer [`HostRole::Primary`].
    fn role(&self, _conn: &mut AnyConnection) -> QueryResult<HostRole> {
        Ok(HostRole::Primary)
    }

    /// How far a replica's data is behind its primary; zero on a primary; `None` when it
    /// cannot be told (replication broken or paused on MariaDB), which makes the host unusable
    /// for reads under a lag bound.
    fn replica_lag(&self, _conn: &mut AnyConnection) -> QueryResult<Option<Duration>> {
        Ok(Some(Duration::ZERO))
    }

    /// Commits the open top-level transaction as diesel's transaction manager does, noting on
    /// the server, in the same round trip just before `COMMIT`, the connection's written mark:
    /// a value that changes exactly when this connection commits a replicated write set
    /// (MariaDB Galera: `WSREP_LAST_WRITTEN_GTID()`). Returns whether it noted one; the default
    /// commits only. Used on a Galera cluster, where a local transaction that loses to a
    /// replicated write set is ended (a brute-force abort) while the client is between
    /// statements; the server does not always report it, the statements after it may run
    /// and commit on their own, and the `COMMIT` then answers OK with no transaction open.
    fn commit_noting_written(&self, conn: &mut AnyConnection) -> QueryResult<bool> {
        use diesel::connection::{Connection, TransactionManager};
        <AnyConnection as Connection>::TransactionManager::commit_transaction(conn).map(|()| false)
    }

    /// Writes `value` into `out` as a literal of this dialect that the server reads back as the
    /// same value whatever its settings, for statements sent in the same round trip as a
    /// transaction's `COMMIT` (core's `conn::commit_after`): the simple query
    /// protocol that carries several statements takes no bind parameters. Returns `false`
    /// (having written nothing usable: the statement is then not sent inlined) where one round
    /// trip cannot carry both for less (the default: MariaDB would switch multi-statements on
    /// and off around it, two round trips more; SQLite runs in process), or for a value it
    /// cannot write.
    fn inline_literal(&self, _out: &mut String, _value: Literal<'_>) -> bool {
        false
    }

    /// After a `COMMIT` by [`Backend::commit_noting_written`], in one round trip: the written
    /// mark noted before it and the mark now. Unchanged, the `COMMIT` committed nothing.
    /// `(None, None)` where there is no mark.
    fn written_marks(
        &self,
        _conn: &mut AnyConnection,
    ) -> QueryResult<(Option<String>, Option<String>)> {
        Ok((None, None))
    }

    /// The replication position just after everything this connection committed (PostgreSQL:
    /// the WAL insert LSN; MariaDB: `@@gtid_binlog_pos`), as text; `None` without replication.
    fn commit_position(&self, _conn: &mut AnyConnection) -> QueryResult<Option<String>> {
        Ok(None)
    }

    /// Whether the replica on this connection has replayed `position` (as
    /// [`Backend::commit_position`] returned it on the primary). Does not wait.
    fn has_replayed(&self, _conn: &mut AnyConnection, _position: &str) -> QueryResult<bool> {
        Ok(true)
    }

    /// The later of two positions (for MariaDB GTID lists: per domain); `None` when either does
    /// not parse as a position of this backend.
    fn later_position(&self, _a: &str, _b: &str) -> Option<String> {
        None
    }

    /// Whether a replica can run a transaction with `options` (a PostgreSQL hot standby
    /// refuses serializable transactions): otherwise it runs on the primary.
    fn replica_runs(&self, _options: &TxOptions) -> bool {
        true
    }
}

/// The id of one branch of a coordinated transaction: the global id names the coordinator and
/// the transaction, the branch number the participant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xid {
    /// `cust:<coordinator>:<uuid>`, at most 64 bytes (MariaDB's limit for `XA` ids).
    pub global: String,
    /// The participant's position in the coordinated transaction.
    pub branch: u32,
}

/// What became of a prepared branch asked to commit or roll back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// It is committed or rolled back, as asked (or was already).
    Resolved,
    /// It is still attached to the live connection that prepared it, which alone can end it
    /// (MariaDB keeps a prepared `XA` branch with its connection until that closes): its
    /// coordinator is still running.
    Attached,
}

/// How one database prepares, commits and rolls back a branch of a coordinated transaction:
/// PostgreSQL `PREPARE TRANSACTION` / `COMMIT PREPARED`, MariaDB `XA`.
///
/// A prepared branch survives the connection that prepared it (and a server restart): any
/// later connection to the same database can commit or roll it back by its [`Xid`].
pub trait TwoPhase: Send + Sync + std::fmt::Debug {
    /// Fails with [`Error::Config`] when the server is set up so that it cannot prepare
    /// transactions (PostgreSQL with `max_prepared_transactions = 0`).
    fn check(&self, conn: &mut AnyConnection) -> Result<(), Error>;

    /// Begins branch `xid` with `options`; afterwards diesel's transaction manager counts one
    /// open transaction, so savepoints nest inside the branch as in any transaction.
    fn begin(&self, conn: &mut AnyConnection, options: &TxOptions, xid: &Xid) -> QueryResult<()>;

    /// Prepares the branch open on `conn`. Afterwards, whether it succeeded or failed, the
    /// connection is outside any transaction (a failed prepare rolled the branch back, unless
    /// the connection was lost, when the server may or may not have prepared it).
    fn prepare(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<()>;

    /// Rolls back the branch still open (not prepared) on `conn`.
    fn rollback_open(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<()>;

    /// Commits a prepared branch. A branch no longer prepared was resolved by whoever got
    /// there first, by the same decision: [`Resolution::Resolved`] too.
    fn commit_prepared(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<Resolution>;

    /// Rolls back a prepared branch; see [`TwoPhase::commit_prepared`].
    fn rollback_prepared(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<Resolution>;

    /// The prepared branches of this database whose global id starts with `prefix`.
    fn prepared(&self, conn: &mut AnyConnection, prefix: &str) -> QueryResult<Vec<Xid>>;
}

/// How a backup's dump and its manifest see the same data ([`BackupDialect::begin_snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Snapshot {
    /// A read transaction on the manifest's connection exported this snapshot, which the dump
    /// tool joins (PostgreSQL `pg_export_snapshot()` and `pg_dump --snapshot`).
    Exported(String),
    /// The manifest's connection holds every writer out (MariaDB `FLUSH TABLES WITH READ
    /// LOCK`) until [`BackupDialect::end_snapshot`]; the dump runs inside the hold.
    WritersHeld,
    /// The dump is a consistent copy made in one read transaction (SQLite `VACUUM INTO`): the
    /// manifest is read from the copy.
    FromCopy,
}

/// How one database is dumped, restored and read in canonical form for backup manifests.
///
/// The canonical text of a value is the same on every engine for the column kinds custodian
/// creates: integers and booleans in decimal (`1`/`0`), bytes in lowercase hex, dates as
/// `YYYY-MM-DD`, timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`, text as stored. Floating-point
/// values are in the engine's own shortest text form, which may differ between engines.
pub trait BackupDialect: Send + Sync + std::fmt::Debug {
    /// The dump tool, as the manifest names it (`pg_dump`, `mariadb-dump`, `VACUUM INTO`).
    fn tool(&self) -> &'static str;

    /// The dump's file name inside a backup directory.
    fn dump_file_name(&self) -> &'static str;

    /// The base tables of the connection's database (PostgreSQL: its current schema), by name.
    fn tables(&self, conn: &mut AnyConnection) -> QueryResult<Vec<String>>;

    /// The columns of `table`, in table order.
    fn columns(&self, conn: &mut AnyConnection, table: &str) -> QueryResult<Vec<LiveColumn>>;

    /// A query returning one nullable text column named `row`: per row of `table`, a JSON
    /// array of the canonical text of `columns` (in the order given; `null` for NULL).
    fn canonical_rows_sql(&self, table: &str, columns: &[LiveColumn]) -> String;

    /// A statement inserting `rows` rows of canonical text into `columns` of `table`, one
    /// bound text parameter per value (in row order), each turned back into the column's type.
    fn import_sql(&self, table: &str, columns: &[LiveColumn], rows: usize) -> String;

    /// After rows with explicit keys were imported into `table`: moves its key generator past
    /// them (PostgreSQL sequences; MariaDB and SQLite do it by themselves).
    fn after_import(&self, _conn: &mut AnyConnection, _table: &str) -> QueryResult<()> {
        Ok(())
    }

    /// Starts the snapshot a backup reads on `conn` (outside any transaction).
    fn begin_snapshot(&self, conn: &mut AnyConnection) -> QueryResult<Snapshot>;

    /// Ends the snapshot [`BackupDialect::begin_snapshot`] started: ends its transaction and
    /// lets writers in again.
    fn end_snapshot(&self, conn: &mut AnyConnection) -> QueryResult<()>;

    /// Dumps the database at `url` into the file `out` within `snapshot`. Returns the URL of
    /// a database to read the manifest from when that is the copy ([`Snapshot::FromCopy`]).
    fn dump(
        &self,
        url: &DatabaseUrl,
        snapshot: &Snapshot,
        out: &std::path::Path,
    ) -> Result<Option<DatabaseUrl>, Error>;

    /// Loads the dump `from` into the database at `url`, which has no tables.
    fn restore(&self, url: &DatabaseUrl, from: &std::path::Path) -> Result<(), Error>;
}
