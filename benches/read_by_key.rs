//! SQLite read by key: custodian (a session per read, and one session) against plain diesel
//! through an r2d2 pool, interleaved rounds, median ratio and spread.
//! `cargo bench -j2 --bench read_by_key` (no server needed).
use custodian::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use std::time::Instant;

mod items;

use items::model::Item;
use items::plain::{bench_items, Row};

const N: i64 = 20_000;

fn med(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("sqlprobe_{}.db", std::process::id()));
    let file = path.display().to_string();
    let mut config = custodian::DatabaseConfig::from_url(&format!("sqlite://{file}"))?;
    config.pool.max_size = 4;
    config.pool.min_idle = Some(4);
    let db = custodian::open(config.audit_unkeyed())?;
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
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(Some(4))
        .build(ConnectionManager::<diesel::SqliteConnection>::new(&file))?;
    let (mut r_pool, mut r_one) = (Vec::new(), Vec::new());
    for round in 0..7 {
        let t = Instant::now();
        for i in 0..N {
            let r: Row = bench_items::table
                .find(i % 10_000 + 1)
                .select(Row::as_select())
                .get_result(&mut pool.get()?)?;
            std::hint::black_box(r);
        }
        let diesel_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
        let t = Instant::now();
        for i in 0..N {
            std::hint::black_box(db.session()?.get::<Item>(&(i % 10_000 + 1))?);
        }
        let cust_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
        let mut s = db.session()?;
        let t = Instant::now();
        for i in 0..N {
            std::hint::black_box(s.get::<Item>(&(i % 10_000 + 1))?);
        }
        let one_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
        drop(s);
        println!("round {round}: diesel pool {diesel_us:.2} us, custodian session/read {cust_us:.2} us (ratio {:.2}), one session {one_us:.2} us (ratio {:.2})", diesel_us / cust_us, diesel_us / one_us);
        r_pool.push(diesel_us / cust_us);
        r_one.push(diesel_us / one_us);
    }
    let spread = |v: &Vec<f64>| {
        (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        )
    };
    println!("median ratio diesel/custodian (speed of custodian vs diesel): session per read {:.2} {:?}, one session {:.2} {:?}", med(r_pool.clone()), spread(&r_pool), med(r_one.clone()), spread(&r_one));
    drop(db);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{file}{s}"));
    }
    Ok(())
}
