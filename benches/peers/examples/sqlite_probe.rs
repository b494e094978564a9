//! Where a pooled SQLite read by key spends its time, plain diesel against custodian (a
//! diagnostic for the peer bench's SQLite PK read cell): the same reads through a diesel pool
//! with custodian's connection settings or without them, through custodian, and through one
//! diesel connection with `first` (a bound `LIMIT`) and with `get_result` (none).
//! `cargo run --release -j2 --example sqlite_probe` (no server needed).
use custodian::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use std::time::Instant;

#[entity(table = "probe_items", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    pub code: String,
    pub title: String,
    pub owner: Option<String>,
    pub risk: i32,
    pub active: bool,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = probe_items)]
#[allow(dead_code)]
struct Row {
    id: i64,
    code: String,
    title: String,
    owner: Option<String>,
    risk: i32,
    active: bool,
}

#[derive(Debug)]
struct Pragmas(&'static str);
impl CustomizeConnection<diesel::SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, c: &mut diesel::SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        c.batch_execute(self.0)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

const N: i64 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("probe_{}.db", std::process::id()));
    let file = path.display().to_string();
    let mut config = custodian::DatabaseConfig::from_url(&format!("sqlite://{file}"))?;
    config.pool.max_size = 4;
    config.pool.min_idle = Some(4);
    let db = custodian::open(config.clone().audit_unkeyed())?;
    db.create_table::<Item>()?;
    {
        let mut s = db.session()?;
        let mut rows: Vec<Item> = (0..10_000)
            .map(|i| Item {
                id: 0,
                code: format!("c{i}"),
                title: format!("title {i}"),
                owner: None,
                risk: 1,
                active: true,
            })
            .collect();
        s.insert_many(&mut rows)?;
    }
    let variants: [(&str, &'static str); 3] = [
        ("diesel pool, bench pragmas", "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"),
        ("diesel pool, + secure_delete", "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON"),
        ("diesel pool, busy_timeout only", "PRAGMA busy_timeout = 5000"),
    ];
    if let Ok(n) = std::env::var("PROBE_CUSTODIAN_ONLY") {
        // For a profiler: only custodian's reads, n of them.
        let n: i64 = n.parse()?;
        for i in 0..n {
            std::hint::black_box(db.session()?.get::<Item>(&(i % 10_000 + 1))?);
        }
        return Ok(());
    }
    for round in 0..3 {
        for (name, pragmas) in variants {
            let pool = Pool::builder()
                .max_size(4)
                .min_idle(Some(4))
                .connection_customizer(Box::new(Pragmas(pragmas)))
                .build(ConnectionManager::<diesel::SqliteConnection>::new(&file))?;
            let t = Instant::now();
            for i in 0..N {
                let r: Row = probe_items::table
                    .find(i % 10_000 + 1)
                    .select(Row::as_select())
                    .first(&mut pool.get()?)?;
                std::hint::black_box(r);
            }
            println!(
                "round {round} {name}: {:.1} us/read",
                t.elapsed().as_secs_f64() * 1e6 / N as f64
            );
        }
        let t = Instant::now();
        for i in 0..N {
            std::hint::black_box(db.session()?.get::<Item>(&(i % 10_000 + 1))?);
        }
        println!(
            "round {round} custodian: {:.1} us/read",
            t.elapsed().as_secs_f64() * 1e6 / N as f64
        );
        let mut c = <diesel::SqliteConnection as diesel::Connection>::establish(&file)?;
        let t = Instant::now();
        for i in 0..N {
            let r: Row = probe_items::table
                .find(i % 10_000 + 1)
                .select(Row::as_select())
                .first(&mut c)?;
            std::hint::black_box(r);
        }
        println!(
            "round {round} diesel, one connection, no pool: {:.1} us/read",
            t.elapsed().as_secs_f64() * 1e6 / N as f64
        );
        let t = Instant::now();
        for i in 0..N {
            let r: Row = probe_items::table
                .find(i % 10_000 + 1)
                .select(Row::as_select())
                .get_result(&mut c)?;
            std::hint::black_box(r);
        }
        println!(
            "round {round} diesel, one connection, get_result (no LIMIT): {:.1} us/read",
            t.elapsed().as_secs_f64() * 1e6 / N as f64
        );
        let pool = Pool::builder()
            .max_size(4)
            .min_idle(Some(4))
            .connection_customizer(Box::new(Pragmas(variants[0].1)))
            .build(ConnectionManager::<diesel::SqliteConnection>::new(&file))?;
        let t = Instant::now();
        for i in 0..N {
            let r: Row = probe_items::table
                .find(i % 10_000 + 1)
                .select(Row::as_select())
                .get_result(&mut pool.get()?)?;
            std::hint::black_box(r);
        }
        println!(
            "round {round} diesel pool, get_result (no LIMIT): {:.1} us/read",
            t.elapsed().as_secs_f64() * 1e6 / N as f64
        );
    }
    drop(db);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{file}{s}"));
    }
    Ok(())
}
