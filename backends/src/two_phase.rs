//! Two-phase commit per dialect: PostgreSQL `PREPARE TRANSACTION` / `COMMIT PREPARED` and
//! MariaDB `XA START` / `XA PREPARE` / `XA COMMIT`, behind core's [`TwoPhase`] seam.
//!
//! diesel's transaction manager does not know these statements, so each begin and prepare
//! also tells it whether a transaction is open: savepoints inside a branch then nest as they do
//! in any transaction, and after a prepare the connection is free for the next one.

#[cfg(feature = "mysql")]
use crate::mysql::my;
#[cfg(feature = "postgres")]
use crate::postgres::pg;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use custodian_core::backend::{Resolution, TwoPhase, Xid};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use custodian_core::{AnyConnection, Error, TxOptions};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionDepthChange,
    TransactionManager, TransactionManagerStatus,
};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use diesel::QueryResult;

/// Tells diesel's transaction manager that a transaction was opened (`open`) or ended by a
/// statement it did not run itself.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn count_transaction<C>(conn: &mut C, open: bool) -> QueryResult<()>
where
    C: Connection<TransactionManager = AnsiTransactionManager>,
{
    match AnsiTransactionManager::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(status) if open => {
            status.change_transaction_depth(TransactionDepthChange::IncreaseDepth)
        }
        TransactionManagerStatus::Valid(status) => {
            while status.transaction_depth().is_some() {
                status.change_transaction_depth(TransactionDepthChange::DecreaseDepth)?;
            }
            Ok(())
        }
        TransactionManagerStatus::InError => Err(diesel::result::Error::BrokenTransactionManager),
    }
}

/// The characters a global id may hold: it is written into SQL as a literal, and ids come back
/// from the server's list of prepared transactions.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn checked(xid: &Xid) -> QueryResult<&str> {
    let ok = !xid.global.is_empty()
        && xid.global.len() <= 64
        && xid
            .global
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_'));
    if ok {
        Ok(&xid.global)
    } else {
        Err(diesel::result::Error::QueryBuilderError(
            format!("invalid global transaction id {:?}", xid.global).into(),
        ))
    }
}

/// PostgreSQL's `PREPARE TRANSACTION`; the gid is `<global>:<branch>`.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy, Default)]
pub struct PgPrepared;

#[cfg(feature = "postgres")]
fn gid(xid: &Xid) -> QueryResult<String> {
    Ok(format!("'{}:{}'", checked(xid)?, xid.branch))
}

/// A branch that is no longer prepared was resolved by whoever got there first (the
/// coordinator's second phase or a recovery), by the same decision: not an error.
#[cfg(feature = "postgres")]
fn resolved_if_gone(r: QueryResult<()>) -> QueryResult<Resolution> {
    match r.map(|()| Resolution::Resolved) {
        Err(diesel::result::Error::DatabaseError(_, info))
            if info
                .message()
                .starts_with("prepared transaction with identifier")
                && info.message().ends_with("does not exist") =>
        {
            Ok(Resolution::Resolved)
        }
        other => other,
    }
}

#[cfg(feature = "postgres")]
impl TwoPhase for PgPrepared {
    fn check(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        use diesel::RunQueryDsl;
        let setting: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('max_prepared_transactions')",
        ))
        .get_result(pg(conn).map_err(|e| Error::config("url", e.to_string()))?)
        .map_err(|e| Error::config("max_prepared_transactions", e.to_string()))?;
        if setting.trim() == "0" {
            return Err(Error::config(
                "max_prepared_transactions",
                "this PostgreSQL server has max_prepared_transactions = 0, so it cannot prepare \
                 a transaction for two-phase commit; set it above 0 (as many as coordinated \
                 transactions may be in flight at once) in postgresql.conf and restart the server",
            ));
        }
        Ok(())
    }

    fn begin(&self, conn: &mut AnyConnection, options: &TxOptions, _: &Xid) -> QueryResult<()> {
        custodian_core::Backend::begin(&crate::Postgres, conn, options)
    }

    fn prepare(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<()> {
        let c = pg(conn)?;
        let sql = format!("PREPARE TRANSACTION {}", gid(xid)?);
        let prepared = c.batch_execute(&sql);
        // Prepared or not (a failed PREPARE is a ROLLBACK), the session's transaction is over.
        let counted = count_transaction(c, false);
        prepared.and(counted)
    }

    fn rollback_open(&self, conn: &mut AnyConnection, _: &Xid) -> QueryResult<()> {
        AnsiTransactionManager::rollback_transaction(pg(conn)?)
    }

    fn commit_prepared(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<Resolution> {
        resolved_if_gone(pg(conn)?.batch_execute(&format!("COMMIT PREPARED {}", gid(xid)?)))
    }

    fn rollback_prepared(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<Resolution> {
        resolved_if_gone(pg(conn)?.batch_execute(&format!("ROLLBACK PREPARED {}", gid(xid)?)))
    }

    fn prepared(&self, conn: &mut AnyConnection, prefix: &str) -> QueryResult<Vec<Xid>> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            gid: String,
        }
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT gid FROM pg_prepared_xacts \
             WHERE database = current_database() AND starts_with(gid, $1) ORDER BY gid",
        )
        .bind::<diesel::sql_types::Text, _>(prefix)
        .load(pg(conn)?)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let (global, branch) = r.gid.rsplit_once(':')?;
                Some(Xid {
                    global: global.to_string(),
                    branch: branch.parse().ok()?,
                })
            })
            .collect())
    }
}

/// MariaDB's `XA` transactions; the xid is `'<global>','<branch>'`.
#[cfg(feature = "mysql")]
#[derive(Debug, Clone, Copy, Default)]
pub struct MariaXa;

#[cfg(feature = "mysql")]
fn xa_id(xid: &Xid) -> QueryResult<String> {
    Ok(format!("'{}','{}'", checked(xid)?, xid.branch))
}

/// How long a branch whose client is gone may stay attached to its dying connection.
#[cfg(feature = "mysql")]
const DETACH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(feature = "mysql")]
impl MariaXa {
    /// `XA COMMIT` or `XA ROLLBACK` of a prepared branch. MariaDB answers `XAER_NOTA` (1397)
    /// both for an unknown xid and for a branch still attached to the connection that
    /// prepared it, which the server keeps for a moment after its client died: while
    /// `XA RECOVER` still lists the branch, wait and try again; once it is no longer listed it
    /// was resolved by whoever got there first, by the same decision. Still listed after
    /// [`DETACH_WAIT`]: its connection is alive ([`Resolution::Attached`]).
    fn resolve(&self, conn: &mut AnyConnection, xid: &Xid, verb: &str) -> QueryResult<Resolution> {
        let sql = format!("XA {verb} {}", xa_id(xid)?);
        let deadline = std::time::Instant::now() + DETACH_WAIT;
        loop {
            match my(conn)?.batch_execute(&sql) {
                Err(diesel::result::Error::DatabaseError(_, info))
                    if info.message().contains("XAER_NOTA") =>
                {
                    let listed = self.prepared(conn, &xid.global)?.iter().any(|x| x == xid);
                    if !listed {
                        return Ok(Resolution::Resolved);
                    }
                    if std::time::Instant::now() >= deadline {
                        return Ok(Resolution::Attached);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other.map(|()| Resolution::Resolved),
            }
        }
    }
}

#[cfg(feature = "mysql")]
impl TwoPhase for MariaXa {
    fn check(&self, _: &mut AnyConnection) -> Result<(), Error> {
        Ok(())
    }

    fn begin(&self, conn: &mut AnyConnection, options: &TxOptions, xid: &Xid) -> QueryResult<()> {
        let c = my(conn)?;
        let mut sql = String::new();
        if let Some(level) = options.isolation {
            // Applies to the next transaction only: the branch.
            sql.push_str(&format!(
                "SET TRANSACTION ISOLATION LEVEL {}; ",
                level.sql()
            ));
        }
        sql.push_str(&format!("XA START {}", xa_id(xid)?));
        c.batch_execute(&sql)?;
        count_transaction(c, true)
    }

    fn prepare(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<()> {
        let c = my(conn)?;
        let id = xa_id(xid)?;
        let mut prepared = c.batch_execute(&format!("XA END {id}"));
        if prepared.is_ok() {
            prepared = c.batch_execute(&format!("XA PREPARE {id}"));
        }
        if prepared.is_err() {
            // A branch that failed to end or prepare is rolled back here; on a lost
            // connection the server rolls back one that was not prepared.
            let _ = c.batch_execute(&format!("XA ROLLBACK {id}"));
        }
        let counted = count_transaction(c, false);
        prepared.and(counted)
    }

    fn rollback_open(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<()> {
        let c = my(conn)?;
        let id = xa_id(xid)?;
        // XA END fails if the branch was already ended (a failed prepare): roll back anyway.
        let _ = c.batch_execute(&format!("XA END {id}"));
        let rolled = c.batch_execute(&format!("XA ROLLBACK {id}"));
        let counted = count_transaction(c, false);
        rolled.and(counted)
    }

    fn commit_prepared(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<Resolution> {
        self.resolve(conn, xid, "COMMIT")
    }

    fn rollback_prepared(&self, conn: &mut AnyConnection, xid: &Xid) -> QueryResult<Resolution> {
        self.resolve(conn, xid, "ROLLBACK")
    }

    fn prepared(&self, conn: &mut AnyConnection, prefix: &str) -> QueryResult<Vec<Xid>> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            gtrid_length: i64,
            #[diesel(sql_type = diesel::sql_types::Binary)]
            data: Vec<u8>,
        }
        // XA RECOVER lists the server's prepared branches of every database: the prefix
        // (which names the coordinator) keeps other applications' branches out.
        let rows: Vec<Row> = diesel::sql_query("XA RECOVER").load(my(conn)?)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let split = usize::try_from(r.gtrid_length).ok()?;
                let global = std::str::from_utf8(r.data.get(..split)?).ok()?;
                let branch = std::str::from_utf8(r.data.get(split..)?).ok()?;
                Some(Xid {
                    global: global.to_string(),
                    branch: branch.parse().ok()?,
                })
            })
            .filter(|x| x.global.starts_with(prefix))
            .collect())
    }
}
