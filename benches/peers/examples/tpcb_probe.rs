//! Where an audited TPC-B-like transaction on SQLite spends its instructions (a diagnostic for
//! the peer bench's audited TPC-B cell): the peer bench's transaction (three expression updates,
//! a read, a history insert; `BEGIN IMMEDIATE`; a session per transaction) on its audited and
//! unaudited tables in one SQLite file, client and engine in one process, so that callgrind
//! sees both. Only `measured_pass` is meant to be counted:
//!
//! ```text
//! cargo build --release -j2 --example tpcb_probe
//! PROBE_SIDE=audited PROBE_TX=2000 valgrind --tool=callgrind \
//!   --toggle-collect='*measured_pass*' target/release/examples/tpcb_probe
//! ```
//!
//! `PROBE_SIDE`: `audited` (default) or `unaudited`; `PROBE_TX`: transactions counted (2000);
//! `PROBE_DROP_INDEX`: `entity`, `tx` or `both`: the audit table's indexes dropped before the
//! run, to see what each costs a transaction. Without valgrind it prints the elapsed time per
//! transaction of the measured pass.
use custodian::prelude::*;
use custodian::{Db, TxOptions};
use std::time::Instant;

macro_rules! tpcb_entities {
    ($account:ident, $teller:ident, $branch:ident, $history:ident,
     $ta:tt, $tt:tt, $tb:tt, $th:tt $(, $flag:ident)?) => {
        #[entity(table = $ta $(, $flag)?)]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $account {
            #[column(primary_key)]
            pub aid: i32,
            pub bid: i32,
            pub abalance: i32,
            pub filler: String,
        }

        #[entity(table = $tt $(, $flag)?)]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $teller {
            #[column(primary_key)]
            pub tid: i32,
            pub bid: i32,
            pub tbalance: i32,
            pub filler: String,
        }

        #[entity(table = $tb $(, $flag)?)]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $branch {
            #[column(primary_key)]
            pub bid: i32,
            pub bbalance: i32,
            pub filler: String,
        }

        #[entity(table = $th $(, $flag)?)]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $history {
            #[column(primary_key, auto_increment)]
            pub hid: i64,
            pub tid: i32,
            pub bid: i32,
            pub aid: i32,
            pub delta: i32,
            pub filler: Option<String>,
        }
    };
}

tpcb_entities!(
    Account,
    Teller,
    Branch,
    History,
    "tpcb_accounts",
    "tpcb_tellers",
    "tpcb_branches",
    "tpcb_history",
    unaudited
);
tpcb_entities!(
    AuditedAccount,
    AuditedTeller,
    AuditedBranch,
    AuditedHistory,
    "tpcb_a_accounts",
    "tpcb_a_tellers",
    "tpcb_a_branches",
    "tpcb_a_history"
);

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ACCOUNTS: u64 = 10_000;
const TELLERS: u64 = 10;

fn one(what: &str, n: usize) -> custodian::Result<()> {
    match n {
        1 => Ok(()),
        _ => Err(custodian::Error::config(what, format!("{n} rows, expected 1"))),
    }
}

/// The peer bench's transaction (benches/peers/src/cust.rs), on one side's tables.
macro_rules! tpcb_fn {
    ($name:ident, $account:ident, $teller:ident, $branch:ident, $history:ident,
     $ta:ident, $tt:ident, $tb:ident) => {
        fn $name(db: &Db, aid: i32, tid: i32, delta: i32) -> Res<()> {
            use $ta as a;
            use $tb as b;
            use $tt as t;
            db.session()?
                .transaction_with(&TxOptions::new().immediate(), |tx| {
                    one(
                        "accounts",
                        tx.update_where::<$account>(
                            a::aid.eq(aid),
                            a::abalance.eq(a::abalance + delta),
                        )?,
                    )?;
                    let balance: Option<i32> = tx.first(a::table.find(aid).select(a::abalance))?;
                    std::hint::black_box(balance);
                    one(
                        "tellers",
                        tx.update_where::<$teller>(
                            t::tid.eq(tid),
                            t::tbalance.eq(t::tbalance + delta),
                        )?,
                    )?;
                    one(
                        "branches",
                        tx.update_where::<$branch>(
                            b::bid.eq(1),
                            b::bbalance.eq(b::bbalance + delta),
                        )?,
                    )?;
                    tx.insert($history {
                        hid: 0,
                        tid,
                        bid: 1,
                        aid,
                        delta,
                        filler: None,
                    })?;
                    Ok(())
                })?;
            Ok(())
        }
    };
}

tpcb_fn!(
    tpcb,
    Account,
    Teller,
    Branch,
    History,
    tpcb_accounts,
    tpcb_tellers,
    tpcb_branches
);
tpcb_fn!(
    tpcb_audited,
    AuditedAccount,
    AuditedTeller,
    AuditedBranch,
    AuditedHistory,
    tpcb_a_accounts,
    tpcb_a_tellers,
    tpcb_a_branches
);

/// xorshift64, as the peer bench draws accounts, tellers and deltas.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n) as i32
    }
}

fn pass(db: &Db, audited: bool, rng: &mut Rng, n: usize) -> Res<()> {
    for _ in 0..n {
        let (aid, tid) = (rng.below(ACCOUNTS) + 1, rng.below(TELLERS) + 1);
        let delta = rng.below(10_001) - 5_000;
        match audited {
            true => tpcb_audited(db, aid, tid, delta)?,
            false => tpcb(db, aid, tid, delta)?,
        }
    }
    Ok(())
}

/// The pass callgrind counts (`--toggle-collect='*measured_pass*'`).
#[inline(never)]
fn measured_pass(db: &Db, audited: bool, rng: &mut Rng, n: usize) -> Res<()> {
    pass(db, audited, rng, n)
}

fn main() -> Res<()> {
    let audited = match std::env::var("PROBE_SIDE").as_deref() {
        Ok("unaudited") => false,
        Ok("audited") | Err(_) => true,
        Ok(other) => return Err(format!("PROBE_SIDE={other}: audited or unaudited").into()),
    };
    let n: usize = std::env::var("PROBE_TX").map_or(Ok(2000), |v| v.parse())?;
    let path = std::env::temp_dir().join(format!("tpcb_probe_{}.db", std::process::id()));
    let result = run(&path.display().to_string(), audited, n);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result
}

fn run(file: &str, audited: bool, n: usize) -> Res<()> {
    let mut config = custodian::DatabaseConfig::from_url(&format!("sqlite://{file}"))?;
    config.pool.max_size = 4;
    config.pool.min_idle = Some(4);
    config.audit.key =
        Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into());
    let db = custodian::open(config)?.acting_as(custodian::Principal::new("bench"));
    db.create_tables(&[
        <Account as custodian::Entity>::META,
        <Teller as custodian::Entity>::META,
        <Branch as custodian::Entity>::META,
        <History as custodian::Entity>::META,
        <AuditedAccount as custodian::Entity>::META,
        <AuditedTeller as custodian::Entity>::META,
        <AuditedBranch as custodian::Entity>::META,
        <AuditedHistory as custodian::Entity>::META,
    ])?;
    {
        let mut s = db.session()?;
        let blank = " ".repeat(84);
        for prefix in ["tpcb", "tpcb_a"] {
            s.execute_sql(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ACCOUNTS}) \
                 INSERT INTO {prefix}_accounts (aid, bid, abalance, filler) SELECT i, 1, 0, '{blank}' FROM n"
            ))?;
            s.execute_sql(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {TELLERS}) \
                 INSERT INTO {prefix}_tellers (tid, bid, tbalance, filler) SELECT i, 1, 0, '{blank}' FROM n"
            ))?;
            s.execute_sql(&format!(
                "INSERT INTO {prefix}_branches (bid, bbalance, filler) VALUES (1, 0, '{blank}')"
            ))?;
        }
        let drop = match std::env::var("PROBE_DROP_INDEX").as_deref() {
            Ok("entity") => &["custodian_audit_entity_key_idx"][..],
            Ok("tx") => &["custodian_audit_tx_idx"][..],
            Ok("both") => &["custodian_audit_entity_key_idx", "custodian_audit_tx_idx"][..],
            Ok(other) => return Err(format!("PROBE_DROP_INDEX={other}: entity, tx or both").into()),
            Err(_) => &[][..],
        };
        for index in drop {
            s.execute_sql(&format!("DROP INDEX {index}"))?;
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Warm: the pool's connections, their statement caches, the audit table's first pages.
    pass(&db, audited, &mut rng, 200)?;
    let start = Instant::now();
    measured_pass(&db, audited, &mut rng, n)?;
    let elapsed = start.elapsed();
    println!(
        "{} {} tx: {:.1} us/tx",
        if audited { "audited" } else { "unaudited" },
        n,
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
