//! Transactions under faults: a MariaDB read that fails mid-fetch, connections killed under a
//! serializable bank workload. Every test bounds its work with a watchdog, so a hang fails the
//! test (after killing the test database's connections) instead of blocking the run.
//!
//! Here: the tables, the connection killer and the watchdog; the tests are in `mid_fetch`,
//! `connections` and `bank_load`.

use crate::common::TestDb;
use custodian::diesel::connection::TransactionManager;
use custodian::diesel::Connection;
use custodian::prelude::*;
use custodian::{BackendKind, Error};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

/// An account of the bank workload; `note` widens each row so a multi-row read spans several
/// network packets.
#[entity(table = "accounts", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
    pub note: String,
}

/// One acknowledged transfer, written in the transfer's own transaction.
#[entity(table = "transfers", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    #[column(primary_key)]
    pub id: String,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
}

/// The test database, for killing its connections from any thread.
#[derive(Debug, Clone)]
pub struct Target {
    kind: BackendKind,
    url: String,
    name: String,
}

impl Target {
    pub fn of(db: &TestDb) -> Target {
        Target {
            kind: db.kind,
            url: db.url.clone(),
            name: db.name.clone(),
        }
    }

    /// Kills every connection to the test database except the caller's own: PostgreSQL
    /// `pg_terminate_backend` (waiting until each is gone), MariaDB `KILL`, each limited to
    /// this test's database. Returns how many it killed.
    pub fn kill(&self) -> usize {
        use custodian::diesel::sql_types::BigInt;
        use custodian::diesel::{Connection, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        match self.kind {
            BackendKind::Postgres => {
                let mut c = custodian::diesel::PgConnection::establish(&self.url).unwrap();
                let ids: Vec<Id> = custodian::diesel::sql_query(format!(
                    "SELECT CAST(pid AS BIGINT) AS id FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    self.name
                ))
                .load(&mut c)
                .unwrap();
                // One statement per connection, so the filter above surely ran first; each
                // waits (up to 5 s) until the backend is gone.
                ids.into_iter()
                    .filter(|Id { id }| {
                        custodian::diesel::sql_query(format!(
                            "SELECT pg_terminate_backend({id}, 5000)"
                        ))
                        .execute(&mut c)
                        .is_ok()
                    })
                    .count()
            }
            BackendKind::Mysql => {
                let mut c = custodian::diesel::MysqlConnection::establish(&self.url).unwrap();
                let ids: Vec<Id> = custodian::diesel::sql_query(format!(
                    "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST \
                     WHERE DB = '{}' AND ID <> CONNECTION_ID() AND COMMAND <> 'Killed'",
                    self.name
                ))
                .load(&mut c)
                .unwrap();
                let mut killed = 0;
                for Id { id } in ids {
                    // The connection may have closed meanwhile (unknown thread id).
                    if custodian::diesel::sql_query(format!("KILL {id}"))
                        .execute(&mut c)
                        .is_ok()
                    {
                        killed += 1;
                    }
                }
                killed
            }
            _ => 0,
        }
    }
}

/// Runs `f` on a thread and waits at most `limit` for it. A hang kills the test database's
/// connections (so the stuck thread and the database's drop can finish) and fails the test.
fn within<T: Send + 'static>(
    db: &TestDb,
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Target::of(db).kill();
            panic!("{what} did not finish within {limit:?}: hung");
        }
    }
}

fn open_accounts(db: &TestDb, n: i64, balance: i64) {
    db.create_table::<Account>().unwrap();
    db.create_table::<Transfer>().unwrap();
    let mut rows: Vec<Account> = (1..=n)
        .map(|id| Account {
            id,
            balance,
            note: format!("{id:0>120}"),
        })
        .collect();
    db.session().unwrap().insert_many(&mut rows).unwrap();
}

mod bank_load;
mod connections;
mod mid_fetch;
