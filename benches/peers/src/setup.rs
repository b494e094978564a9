//! A fresh database per backend (created and dropped around the run), the tables (created by
//! custodian, so every side reads and writes the same DDL), the seed rows, and the pools of
//! every side.

use crate::plain::{self, NewRow, Pools};
use crate::{model, sample_fields, sea, Kind, Res, Target, POOL, SCALE, SEED_ROWS};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::time::{SystemTime, UNIX_EPOCH};

fn pg_base() -> String {
    std::env::var("CUSTODIAN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn mysql_base() -> String {
    std::env::var("CUSTODIAN_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The benchmark database; dropped (or its files removed) on drop.
pub struct Fresh {
    kind: Kind,
    name: String,
    path: Option<std::path::PathBuf>,
}

impl Fresh {
    fn create(kind: Kind) -> Res<(Fresh, String, String)> {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let name = format!("custodian_peers_{}_{millis}", std::process::id());
        Ok(match kind {
            Kind::Pg => {
                let admin = format!("{}/postgres", pg_base());
                PgConnection::establish(&admin)
                    .map_err(|e| format!("cannot reach PostgreSQL at {admin}: {e}"))?
                    .batch_execute(&format!("CREATE DATABASE {name}"))?;
                let url = format!("{}/{name}", pg_base());
                (
                    Fresh {
                        kind,
                        name,
                        path: None,
                    },
                    url.clone(),
                    url,
                )
            }
            Kind::My => {
                MysqlConnection::establish(&mysql_base())
                    .map_err(|e| format!("cannot reach MariaDB at {}: {e}", mysql_base()))?
                    .batch_execute(&format!(
                        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ))?;
                let url = format!("{}/{name}", mysql_base());
                (
                    Fresh {
                        kind,
                        name,
                        path: None,
                    },
                    url.clone(),
                    url,
                )
            }
            Kind::Lite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                let file = path.display().to_string();
                (
                    Fresh {
                        kind,
                        name,
                        path: Some(path),
                    },
                    format!("sqlite://{file}"),
                    file,
                )
            }
        })
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let started = std::time::Instant::now();
        let result: Res<()> = match self.kind {
            Kind::Pg => PgConnection::establish(&format!("{}/postgres", pg_base()))
                .map_err(Into::into)
                .and_then(|mut c| {
                    Ok(c.batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))?)
                }),
            Kind::My => MysqlConnection::establish(&mysql_base())
                .map_err(Into::into)
                .and_then(|mut c| {
                    Ok(c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))?)
                }),
            Kind::Lite => {
                if let Some(p) = &self.path {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            eprintln!(
                "warning: could not drop benchmark database {}: {e}",
                self.name
            );
        }
        if started.elapsed().as_secs() >= 1 {
            eprintln!(
                "note: dropping {} took {:.1} s",
                self.name,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The audit seal key of the benchmark databases.
const AUDIT_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Creates the database, its tables and seed rows, and opens every side's pool.
pub fn target(kind: Kind) -> Res<Target> {
    let (fresh, custodian_url, diesel_url) = Fresh::create(kind)?;
    let mut config = custodian::DatabaseConfig::from_url(&custodian_url)?;
    config.pool.max_size = POOL;
    config.pool.min_idle = Some(POOL);
    config.audit.key = Some(AUDIT_KEY.into());
    // PostgreSQL: a second pool whose audit records go with COMMIT
    // (`audit.records_with_commit`, off by default), for the side that measures it.
    let batched = match kind {
        Kind::Pg => {
            let mut batched = config.clone();
            batched.audit.records_with_commit = true;
            Some(custodian::open(batched)?.acting_as(custodian::Principal::new("bench")))
        }
        _ => None,
    };
    let db = custodian::open(config)?.acting_as(custodian::Principal::new("bench"));
    db.create_tables(&[
        <model::Item as custodian::Entity>::META,
        <model::AuditedItem as custodian::Entity>::META,
        <model::Account as custodian::Entity>::META,
        <model::Teller as custodian::Entity>::META,
        <model::Branch as custodian::Entity>::META,
        <model::History as custodian::Entity>::META,
        <model::AuditedAccount as custodian::Entity>::META,
        <model::AuditedTeller as custodian::Entity>::META,
        <model::AuditedBranch as custodian::Entity>::META,
        <model::AuditedHistory as custodian::Entity>::META,
    ])?;
    let diesel = plain::open(kind, &diesel_url, POOL)?;
    seed(&diesel)?;
    let version = match &diesel {
        Pools::Pg(p) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('server_version')",
        ))
        .get_result::<String>(&mut p.get()?)?,
        Pools::My(p) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("VERSION()"))
            .get_result::<String>(&mut p.get()?)?,
        Pools::Lite(p) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "sqlite_version()",
        ))
        .get_result::<String>(&mut p.get()?)?,
    };
    let sea = match kind {
        Kind::Pg => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()?;
            let conn = runtime.block_on(sea::open(&diesel_url, POOL))?;
            Some((runtime, conn))
        }
        _ => None,
    };
    Ok(Target {
        kind,
        version,
        diesel,
        custodian: db,
        batched,
        sea,
        _fresh: fresh,
    })
}

/// 10,000 CRUD rows and pgbench's tables at the reduced scale, written with plain diesel, then
/// copied into the audited twins (without audit records, as seed data).
fn seed(pools: &Pools) -> Res<()> {
    let fields: Vec<_> = (0..SEED_ROWS as u64).map(|i| sample_fields(0, i)).collect();
    let rows: Vec<NewRow<'_>> = fields
        .iter()
        .map(|(code, title, owner, risk, active)| NewRow {
            code,
            title,
            owner: owner.as_deref(),
            risk: *risk,
            active: *active,
        })
        .collect();
    let blank = |n: usize| " ".repeat(n);
    let accounts: Vec<_> = (1..=SCALE.accounts)
        .map(|n| {
            use plain::tpcb_accounts::dsl::*;
            (aid.eq(n), bid.eq(1), abalance.eq(0), filler.eq(blank(84)))
        })
        .collect();
    let tellers: Vec<_> = (1..=SCALE.tellers)
        .map(|t| {
            use plain::tpcb_tellers::dsl::*;
            (tid.eq(t), bid.eq(1), tbalance.eq(0), filler.eq(blank(84)))
        })
        .collect();
    let branches: Vec<_> = (1..=SCALE.branches)
        .map(|b| {
            use plain::tpcb_branches::dsl::*;
            (bid.eq(b), bbalance.eq(0), filler.eq(blank(88)))
        })
        .collect();
    // The audited copy's keys come from its own sequence (1 to 10,000 again), so that it goes
    // on from there.
    let copies = "INSERT INTO peer_items_audited (code, title, owner, risk, active) \
         SELECT code, title, owner, risk, active FROM peer_items ORDER BY id; \
         INSERT INTO tpcb_a_accounts SELECT * FROM tpcb_accounts; \
         INSERT INTO tpcb_a_tellers SELECT * FROM tpcb_tellers; \
         INSERT INTO tpcb_a_branches SELECT * FROM tpcb_branches";
    macro_rules! fill {
        ($c:expr) => {{
            let c = $c;
            for chunk in rows.chunks(1_000) {
                diesel::insert_into(plain::peer_items::table)
                    .values(chunk)
                    .execute(c)?;
            }
            for chunk in accounts.chunks(1_000) {
                diesel::insert_into(plain::tpcb_accounts::table)
                    .values(chunk)
                    .execute(c)?;
            }
            diesel::insert_into(plain::tpcb_tellers::table)
                .values(&tellers)
                .execute(c)?;
            diesel::insert_into(plain::tpcb_branches::table)
                .values(&branches)
                .execute(c)?;
            c.batch_execute(copies)?;
        }};
    }
    match pools {
        Pools::Pg(p) => fill!(&mut *p.get()?),
        Pools::My(p) => fill!(&mut *p.get()?),
        Pools::Lite(p) => fill!(&mut *p.get()?),
    }
    Ok(())
}

/// TPC-B's invariant after the run: on each set of tables the balances of accounts, tellers
/// and branches and the history's deltas all add up to the same sum (no lost update).
pub fn check_balances(t: &Target) -> Res<()> {
    let int = if t.kind == Kind::My {
        "SIGNED"
    } else {
        "BIGINT"
    };
    for prefix in ["tpcb_", "tpcb_a_"] {
        let sums = [
            "accounts|abalance",
            "tellers|tbalance",
            "branches|bbalance",
            "history|delta",
        ]
        .map(|tc| {
            let (table, col) = tc.split_once('|').unwrap_or_default();
            format!("(SELECT CAST(COALESCE(SUM({col}), 0) AS {int}) FROM {prefix}{table})")
        })
        .join(", ");
        type Four = (i64, i64, i64, i64);
        use diesel::sql_types::BigInt;
        let q = || diesel::select(diesel::dsl::sql::<(BigInt, BigInt, BigInt, BigInt)>(&sums));
        let (a, b, c, d): Four = match &t.diesel {
            Pools::Pg(p) => q().get_result(&mut p.get()?)?,
            Pools::My(p) => q().get_result(&mut p.get()?)?,
            Pools::Lite(p) => q().get_result(&mut p.get()?)?,
        };
        if !(a == b && b == c && c == d) {
            return Err(format!(
                "{} {prefix}*: balances do not add up: accounts {a}, tellers {b}, branches {c}, history {d}",
                t.kind.name()
            )
            .into());
        }
    }
    Ok(())
}
