//! What the audit trail costs, on PostgreSQL, MariaDB and SQLite.
//!
//! For each backend the bench creates a fresh database (a uniquely named database on the
//! PostgreSQL and MariaDB servers, a file in the temp directory for SQLite, all removed at the
//! end) and one custodian pool (`max_size = 2`) acting as principal `bench`, with an audit seal
//! key (HMAC-SHA-256). It then measures two things.
//!
//! **Verification speed.** An audited entity `LedgerEntry` (caller-chosen `i64` keys, so
//! `insert_many` inserts in bulk) is filled with N rows by `Session::insert_many` in calls of
//! 1,000 rows: N audit records. N is 100,000 if building the first 20,000 records projects to
//! under 60 s for 100,000, else 20,000. Then `Db::seal_audit()` binds the N records into the
//! hash chain (timed: seal rate), and `Db::verify_audit(None)` walks the chain (timed three
//! times: records/s; target >= 200,000 records/s on PostgreSQL). The chain contains exactly the
//! N records, since this part runs first on the fresh database.
//!
//! **Sealing checks.** At the end, on the whole trail: on the servers, a transaction that took
//! its record id before another one committed, and commits after a seal passed that id, must be
//! found unsealed by verify and sealed by the next seal; and a trail whose sealers' high-water
//! mark was removed is sealed by one rescan (timed), after which the next seal (timed) reads
//! only what is new.
//!
//! **Seal lag.** One more pass of audited TPC-B-like transactions with a sealer thread sealing
//! every 100 ms: for every record, the time from its write to the end of the seal that chained
//! it (p50, p99, max): the window in which a committed record is not yet in the chain.
//!
//! **TPC-B-like transactions.** pgbench's built-in `tpcb-like` script through entities: tables
//! of accounts, tellers and branches and a history table, as `#[entity]` structs, at a small
//! scale (1 branch, 10 tellers, 10,000 accounts). One transaction (`Db::transaction`) is:
//!
//! ```text
//! a = get::<Account>(aid); a.abalance += delta; update(a)    -- UPDATE accounts SET abalance = abalance + :delta
//! get::<Account>(aid).abalance                               -- SELECT abalance FROM accounts
//! t = get::<Teller>(tid); t.tbalance += delta; update(t)     -- UPDATE tellers ...
//! b = get::<Branch>(bid); b.bbalance += delta; update(b)     -- UPDATE branches ...
//! insert(History { tid, bid, aid, delta, mtime })            -- INSERT INTO history ...
//! ```
//!
//! with `aid`, `tid` and `delta` (-5,000..=5,000) drawn at random as pgbench does. The same
//! transaction runs on two identical sets of tables: one audited (custodian's default), one
//! marked `#[entity(unaudited)]`. One client thread (at scale 1 every transaction updates the
//! single branch row, so a second client only queues behind it; and the entity API has no
//! `SELECT ... FOR UPDATE` read, so two clients would lose updates on that row). Each of 7
//! rounds runs the audited and the unaudited side for 2 s each (the side that goes first
//! alternates), with the same random sequence; reported: median tps over the rounds and the
//! ratio audited / unaudited (target >= 0.8).
//!
//! ```text
//! cargo bench -j2 --bench audit                 # all three backends
//! cargo bench -j2 --bench audit -- sqlite       # only backends whose name contains a filter
//! CUSTODIAN_BENCH_QUICK=1 cargo bench --bench audit   # tiny smoke run
//! ```
//!
//! Servers: `CUSTODIAN_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`) and
//! `CUSTODIAN_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`), as for the test suite.

use std::hint::black_box;
use std::time::{Duration, Instant};

use custodian::{BackendKind, Db};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

mod common;
use common::*;

// ------------------------------------------------------------------ entities

/// One set of TPC-B tables as entities, and the transaction on them. `$flag` is empty (audited,
/// custodian's default) or `unaudited`.
macro_rules! tpcb_set {
    ($module:ident, [$($flag:tt)*], $accounts:tt, $tellers:tt, $branches:tt, $history:tt) => {
        pub mod $module {
            use custodian::{entity, Session};

            /// `pgbench_accounts`.
            #[entity(table = $accounts $(, $flag)*)]
            #[derive(Debug, Clone, PartialEq)]
            pub struct Account {
                #[column(primary_key)]
                pub aid: i32,
                pub bid: i32,
                pub abalance: i32,
                pub filler: String,
            }

            /// `pgbench_tellers`.
            #[entity(table = $tellers $(, $flag)*)]
            #[derive(Debug, Clone, PartialEq)]
            pub struct Teller {
                #[column(primary_key)]
                pub tid: i32,
                pub bid: i32,
                pub tbalance: i32,
                pub filler: String,
            }

            /// `pgbench_branches`.
            #[entity(table = $branches $(, $flag)*)]
            #[derive(Debug, Clone, PartialEq)]
            pub struct Branch {
                #[column(primary_key)]
                pub bid: i32,
                pub bbalance: i32,
                pub filler: String,
            }

            /// `pgbench_history` (which has no key; an entity needs one: auto-increment).
            #[entity(table = $history $(, $flag)*)]
            #[derive(Debug, Clone, PartialEq)]
            pub struct History {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                pub tid: i32,
                pub bid: i32,
                pub aid: i32,
                pub delta: i32,
                pub mtime: chrono::NaiveDateTime,
                pub filler: Option<String>,
            }

            /// The tables, parents first.
            pub fn metas() -> Vec<custodian::EntityMeta> {
                use custodian::Entity;
                vec![Branch::META, Teller::META, Account::META, History::META]
            }

            /// pgbench's `tpcb-like` script through the entity API, in the caller's
            /// transaction. Returns the account balance read back.
            pub fn transaction(
                s: &mut Session,
                aid: i32,
                tid: i32,
                bid: i32,
                delta: i32,
            ) -> custodian::Result<i32> {
                let mut a = s.get::<Account>(&aid)?;
                a.abalance += delta;
                s.update(&mut a)?;
                let balance = s.get::<Account>(&aid)?.abalance;
                let mut t = s.get::<Teller>(&tid)?;
                t.tbalance += delta;
                s.update(&mut t)?;
                let mut b = s.get::<Branch>(&bid)?;
                b.bbalance += delta;
                s.update(&mut b)?;
                s.insert(History {
                    id: 0,
                    tid,
                    bid,
                    aid,
                    delta,
                    mtime: chrono::Utc::now().naive_utc(),
                    filler: None,
                })?;
                Ok(balance)
            }

            /// Seed rows at `scale` (pgbench: 1 branch, 10 tellers, 100,000 accounts per
            /// scale unit; here `accounts` per branch), blank-padded fillers as pgbench's
            /// `char(n)` columns hold them.
            pub fn seed(
                s: &mut Session,
                branches: i32,
                tellers_per_branch: i32,
                accounts_per_branch: i32,
            ) -> custodian::Result<()> {
                let mut b: Vec<Branch> = (1..=branches)
                    .map(|bid| Branch {
                        bid,
                        bbalance: 0,
                        filler: " ".repeat(88),
                    })
                    .collect();
                s.insert_many(&mut b)?;
                let mut t: Vec<Teller> = (1..=branches * tellers_per_branch)
                    .map(|tid| Teller {
                        tid,
                        bid: (tid - 1) / tellers_per_branch + 1,
                        tbalance: 0,
                        filler: " ".repeat(84),
                    })
                    .collect();
                s.insert_many(&mut t)?;
                let total = branches * accounts_per_branch;
                let mut from = 1;
                while from <= total {
                    let to = (from + 4_999).min(total);
                    let mut a: Vec<Account> = (from..=to)
                        .map(|aid| Account {
                            aid,
                            bid: (aid - 1) / accounts_per_branch + 1,
                            abalance: 0,
                            filler: " ".repeat(84),
                        })
                        .collect();
                    s.insert_many(&mut a)?;
                    from = to + 1;
                }
                Ok(())
            }
        }
    };
}

tpcb_set!(
    audited,
    [],
    "tpcb_accounts",
    "tpcb_tellers",
    "tpcb_branches",
    "tpcb_history"
);
tpcb_set!(
    unaudited,
    [unaudited],
    "tpcb_u_accounts",
    "tpcb_u_tellers",
    "tpcb_u_branches",
    "tpcb_u_history"
);

/// The audited entity of the verification part: keys chosen by the caller (the bench has
/// always used them; auto-increment entities are inserted in bulk too, learning their keys).
mod ledger {
    use custodian::entity;

    #[entity(table = "audit_ledger")]
    #[derive(Debug, Clone, PartialEq)]
    pub struct LedgerEntry {
        #[column(primary_key)]
        pub id: i64,
        pub account: i32,
        pub amount: i64,
        pub memo: String,
    }
}

use ledger::LedgerEntry;

/// splitmix64: reproducible random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (hi as i64 - lo as i64 + 1) as u64;
        (lo as i64 + (self.next() % span) as i64) as i32
    }
}

// ------------------------------------------------------------------ settings and statistics

struct Settings {
    quick: bool,
    rounds: usize,
    pass: Duration,
    accounts: i32,
    tellers: i32,
    /// Chain length if building it is fast enough, and the fallback.
    chain_full: usize,
    chain_small: usize,
    /// Projected build time above which the fallback is used.
    chain_budget: Duration,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Half the min-max range of `v`, relative to `m`.
fn spread(v: &[f64], m: f64) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    if m > 0.0 && hi >= lo {
        (hi - lo) / 2.0 / m
    } else {
        0.0
    }
}

// ------------------------------------------------------------------ verification

struct ChainReport {
    n: usize,
    build: Duration,
    seal: Duration,
    verify: Vec<Duration>,
    breakdown: Breakdown,
}

/// Builds a chain of N audit records with bulk inserts of an audited entity, seals it, and
/// verifies it three times.
fn bench_chain(db: &Db, settings: &Settings) -> Res<ChainReport> {
    const CALL: usize = 1_000;
    let mut s = db.session()?;
    let probe = settings.chain_small;
    let mut n = 0usize;
    let mut target = settings.chain_full;
    let start = Instant::now();
    while n < target {
        let mut rows: Vec<LedgerEntry> = (n..(n + CALL).min(target))
            .map(|i| LedgerEntry {
                id: i as i64 + 1,
                account: (i % 10_000) as i32 + 1,
                amount: ((i * 7_919) % 1_000_000) as i64 - 500_000,
                memo: format!("transfer {i:07} for account {}", i % 10_000 + 1),
            })
            .collect();
        let inserted = s.insert_many(&mut rows)?;
        if inserted != rows.len() {
            return Err(format!("insert_many stored {inserted} of {} rows", rows.len()).into());
        }
        n += inserted;
        if n == probe && target > probe {
            let projected = start.elapsed().as_secs_f64() * target as f64 / probe as f64;
            if projected > settings.chain_budget.as_secs_f64() {
                println!(
                    "  chain: {probe} records took {:.1} s, {target} would take ~{projected:.0} s: \
                     using {probe}",
                    start.elapsed().as_secs_f64()
                );
                target = probe;
            }
        }
    }
    let build = start.elapsed();
    drop(s);

    let start = Instant::now();
    let sealed = db.seal_audit()?;
    let seal = start.elapsed();
    if sealed.sealed != n || sealed.head_seq != n as i64 {
        return Err(format!(
            "seal_audit sealed {} records up to {}, expected {n}",
            sealed.sealed, sealed.head_seq
        )
        .into());
    }

    let mut verify = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let report = black_box(db.verify_audit(None)?);
        verify.push(start.elapsed());
        if !report.is_intact() || report.links != n as u64 || report.unsealed != 0 {
            return Err(format!("verify_audit: unexpected report {report:?}").into());
        }
    }
    let breakdown = verify_breakdown(db, n)?;
    Ok(ChainReport {
        n,
        build,
        seal,
        verify,
        breakdown,
    })
}

/// Where `verify_audit`'s time goes: the same batched read as `custodian::audit::chain::verify`
/// (`chain::read_links`: 5,000 links by sequence number, then their records by id range), timed
/// without any check; then, on the rows in memory, the checks verify makes per record, each
/// timed on its own through the public functions: the seal (`AuditRecord::seal_is_valid`,
/// HMAC-SHA-256 of the canonical encoding) and the keyed link (`ChainKey::link_hash`, HMAC-SHA-256). Verify
/// itself makes the same checks without per-record allocations, on a second thread while it
/// reads the next batch.
struct Breakdown {
    read: Duration,
    canonical: Duration,
    seal: Duration,
    link: Duration,
}

fn verify_breakdown(db: &Db, n: usize) -> Res<Breakdown> {
    use custodian::audit::record::{AuditKey, AuditRecord, ChainKey, GENESIS};
    let key = AuditKey::from_hex(BENCH_AUDIT_KEY).ok_or("bad audit key")?;
    let chain = ChainKey::new(Some(&key));
    let mut s = db.session()?;
    let mut links: Vec<(i64, String, String, AuditRecord)> = Vec::with_capacity(n);
    let mut expected = 1i64;
    let start = Instant::now();
    loop {
        // The same read verification does.
        let batch = custodian::audit::chain::read_links(&mut s, expected, 5_000)?;
        if batch.is_empty() {
            break;
        }
        for (seq, _, prev, hash, rec) in batch {
            let r = rec.ok_or("record missing")?;
            links.push((seq, prev, hash, r));
            expected = seq + 1;
        }
    }
    let read = start.elapsed();
    if links.len() != n {
        return Err(format!("breakdown read {} links, expected {n}", links.len()).into());
    }

    let start = Instant::now();
    for (_, _, _, r) in &links {
        black_box(r.canonical());
    }
    let canonical = start.elapsed();

    let start = Instant::now();
    for (_, _, _, r) in &links {
        if !r.seal_is_valid(Some(&key)) {
            return Err(format!("breakdown: record {} does not match its seal", r.id).into());
        }
    }
    let seal = start.elapsed();

    let start = Instant::now();
    let mut running = GENESIS.to_string();
    for (seq, prev, hash, r) in &links {
        let next = chain.link_hash(&running, &r.mac, *seq, r.id);
        if *prev != running || *hash != next {
            return Err(format!("breakdown: link {seq} does not follow").into());
        }
        running = next;
    }
    let link = start.elapsed();
    Ok(Breakdown {
        read,
        canonical,
        seal,
        link,
    })
}

// ------------------------------------------------------------------ sealing: late commits

/// What [`check_sealing`] timed.
struct SealChecks {
    /// The seal after a late commit (on the servers; SQLite serializes writers).
    late: Option<Duration>,
    /// A seal without the high-water mark: a rescan of the whole trail (as after a mark that
    /// was removed or fails its MAC).
    rescan: Duration,
    /// The seal after it, with the mark set again.
    marked: Duration,
}

/// Checks, on the full trail, that a seal never skips a record committed after a seal that
/// passed its id, and that a trail without the sealers' high-water mark is sealed by one
/// rescan, which sets the mark again.
fn check_sealing(db: &Db, kind: BackendKind) -> Res<SealChecks> {
    use custodian::audit::chain;
    use custodian::TxOptions;
    let mut late = None;
    if kind != BackendKind::Sqlite {
        // Transaction A takes its record id first and commits last.
        let before = db.verify_audit(None)?.links;
        let mut a = db.session()?;
        let mut inner: Res<()> = Ok(());
        a.transaction_with(&TxOptions::new().no_retry(), |tx| {
            tx.insert(ledger_entry(90_000_001))?;
            // Reading the trail flushes the transaction's records: its id is taken now.
            chain::records_of_entity_key(tx, "audit_ledger", "[90000001]")?;
            db.session()?.insert(ledger_entry(90_000_002))?;
            let sealed = db.seal_audit()?.sealed;
            let report = db.verify_audit(None)?;
            if sealed != 1 || !report.is_intact() || report.unsealed != 0 {
                inner = Err(format!(
                    "late commit: sealed {sealed} before it, expected 1; {report:?}"
                )
                .into());
            }
            Ok(())
        })?;
        inner?;
        // Committed now, below the highest record id sealed: unsealed, and found by verify.
        let report = db.verify_audit(None)?;
        if !report.is_intact() || report.unsealed != 1 || report.links != before + 1 {
            return Err(format!("late commit: verify before the next seal: {report:?}").into());
        }
        let start = Instant::now();
        let sealed = db.seal_audit()?.sealed;
        late = Some(start.elapsed());
        let report = db.verify_audit(None)?;
        if sealed != 1 || !report.is_intact() || report.unsealed != 0 || report.links != before + 2
        {
            return Err(format!(
                "late commit: the next seal sealed {sealed}, expected the late record; {report:?}"
            )
            .into());
        }
    }
    // The mark removed: the next seal rescans.
    let mut s = db.session()?;
    s.execute_sql("DELETE FROM custodian_audit_head WHERE id = 2")?;
    s.insert(ledger_entry(90_000_003))?;
    drop(s);
    let start = Instant::now();
    let sealed = db.seal_audit()?.sealed;
    let rescan = start.elapsed();
    db.session()?.insert(ledger_entry(90_000_004))?;
    let start = Instant::now();
    let sealed_after = db.seal_audit()?.sealed;
    let marked = start.elapsed();
    let report = db.verify_audit(None)?;
    if sealed != 1 || sealed_after != 1 || !report.is_intact() || report.unsealed != 0 {
        return Err(format!(
            "seal without a mark: sealed {sealed} then {sealed_after}, expected 1 and 1; {report:?}"
        )
        .into());
    }
    Ok(SealChecks {
        late,
        rescan,
        marked,
    })
}

fn ledger_entry(id: i64) -> LedgerEntry {
    LedgerEntry {
        id,
        account: 1,
        amount: 1,
        memo: format!("seal check {id}"),
    }
}

// ------------------------------------------------------------------ TPC-B

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Audited = 0,
    Unaudited = 1,
}

/// Runs TPC-B-like transactions on one side for `duration`; returns (transactions, elapsed).
fn tpcb_pass(
    db: &Db,
    side: Side,
    seed: u64,
    duration: Duration,
    settings: &Settings,
) -> Res<(usize, Duration)> {
    let mut rng = Rng(seed);
    let tellers = settings.tellers;
    let accounts = settings.accounts;
    let mut done = 0usize;
    let start = Instant::now();
    while start.elapsed() < duration {
        let aid = rng.range(1, accounts);
        let tid = rng.range(1, tellers);
        let bid = 1;
        let delta = rng.range(-5_000, 5_000);
        let balance = match side {
            Side::Audited => db.transaction(|tx| audited::transaction(tx, aid, tid, bid, delta))?,
            Side::Unaudited => {
                db.transaction(|tx| unaudited::transaction(tx, aid, tid, bid, delta))?
            }
        };
        black_box(balance);
        done += 1;
    }
    Ok((done, start.elapsed()))
}

struct TpcbReport {
    /// tps per round, per side.
    tps: [Vec<f64>; 2],
    transactions: [usize; 2],
}

fn bench_tpcb(db: &Db, kind: BackendKind, settings: &Settings) -> Res<TpcbReport> {
    let mut metas = audited::metas();
    metas.extend(unaudited::metas());
    db.create_tables(&metas)?;
    {
        let mut s = db.session()?;
        unaudited::seed(&mut s, 1, settings.tellers, settings.accounts)?;
        // The audited tables get the same rows copied in SQL: no audit records for the seed.
        for (to, from, cols) in [
            ("tpcb_branches", "tpcb_u_branches", "bid, bbalance, filler"),
            (
                "tpcb_tellers",
                "tpcb_u_tellers",
                "tid, bid, tbalance, filler",
            ),
            (
                "tpcb_accounts",
                "tpcb_u_accounts",
                "aid, bid, abalance, filler",
            ),
        ] {
            s.execute_sql(&format!(
                "INSERT INTO {to} ({cols}) SELECT {cols} FROM {from}"
            ))?;
        }
        if kind == BackendKind::Postgres {
            s.execute_sql("ANALYZE")?;
        }
    }
    let warm = if settings.quick {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(500)
    };
    for side in [Side::Audited, Side::Unaudited] {
        tpcb_pass(db, side, 1, warm, settings)?;
    }
    let mut report = TpcbReport {
        tps: [Vec::new(), Vec::new()],
        transactions: [0, 0],
    };
    for round in 0..settings.rounds {
        let order = if round % 2 == 0 {
            [Side::Audited, Side::Unaudited]
        } else {
            [Side::Unaudited, Side::Audited]
        };
        // Both sides draw the same sequence of accounts, tellers and deltas in a round.
        let seed = 0x5eed_0000 + round as u64;
        for side in order {
            let (n, d) = tpcb_pass(db, side, seed, settings.pass, settings)?;
            report.tps[side as usize].push(n as f64 / d.as_secs_f64().max(1e-9));
            report.transactions[side as usize] += n;
        }
    }
    Ok(report)
}

/// The balances must add up on both sides: the sum of the history's deltas equals the total of
/// every balance column (no lost update, nothing half-committed).
fn check_tpcb(db: &Db) -> Res<()> {
    let cast = match db.backend_kind() {
        BackendKind::Mysql => "SIGNED",
        _ => "BIGINT",
    };
    let mut s = db.session()?;
    for prefix in ["tpcb", "tpcb_u"] {
        let mut sums = Vec::new();
        for (column, table) in [
            ("delta", "history"),
            ("abalance", "accounts"),
            ("tbalance", "tellers"),
            ("bbalance", "branches"),
        ] {
            let q = format!(
                "CAST((SELECT COALESCE(SUM({column}), 0) FROM {prefix}_{table}) AS {cast})"
            );
            let sum: i64 = diesel::select(sql::<BigInt>(&q)).get_result(s.connection())?;
            sums.push(sum);
        }
        if sums.iter().any(|&x| x != sums[0]) {
            return Err(format!(
                "{prefix}: balances do not add up (history, accounts, tellers, branches: {sums:?})"
            )
            .into());
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ driver

struct Report {
    title: String,
    chain: ChainReport,
    tpcb: TpcbReport,
    /// Everything sealed and verified at the end (chain + TPC-B records).
    final_links: u64,
    final_seal: Duration,
    final_verify: Duration,
    seal_checks: SealChecks,
    /// Audited tps with a sealer running, and each record's seal lag (ms).
    lag: (f64, Vec<f64>),
    elapsed: Duration,
}

/// Seal lag under load: audited TPC-B-like transactions for one pass while a sealer thread
/// seals every `SEAL_EVERY`; for each record sealed, the time from its write (the record's
/// `at`) to the end of the seal that chained it. Returns (tps during the pass, lags in ms).
fn seal_lag(db: &Db, settings: &Settings) -> Res<(f64, Vec<f64>)> {
    use custodian::audit::tables::{custodian_audit as a, custodian_audit_chain as c};
    const SEAL_EVERY: Duration = Duration::from_millis(100);
    db.seal_audit()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sealer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || -> Result<Vec<f64>, String> {
            let mut lags = Vec::new();
            let mut s = db.session().map_err(|e| e.to_string())?;
            let mut head = custodian::audit::chain::head(&mut s)
                .map_err(|e| e.to_string())?
                .0;
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let report = db.seal_audit().map_err(|e| e.to_string())?;
                let sealed_at = chrono::Utc::now().naive_utc();
                let ats: Vec<custodian::sql_types::StoredDatetime> = s
                    .load(
                        c::table
                            .inner_join(a::table.on(a::id.eq(c::record_id)))
                            .filter(c::seq.gt(head))
                            .filter(c::seq.le(report.head_seq))
                            .select(a::at),
                    )
                    .map_err(|e| e.to_string())?;
                lags.extend(
                    ats.iter()
                        .map(|at| (sealed_at - at.0).num_microseconds().unwrap_or(0) as f64 / 1e3),
                );
                head = report.head_seq;
                if done {
                    return Ok(lags);
                }
                std::thread::sleep(SEAL_EVERY);
            }
        })
    };
    let (n, d) = tpcb_pass(db, Side::Audited, 0x1a9, settings.pass, settings)?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let lags = sealer.join().map_err(|_| "sealer panicked")??;
    Ok((n as f64 / d.as_secs_f64().max(1e-9), lags))
}

/// The `q` quantile (0 to 1) of `v`.
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn bench_backend(target: &Target, settings: &Settings) -> Res<Report> {
    let started = Instant::now();
    let fresh = FreshDb::create(target.kind, "custodian_bench_audit")?;
    let db = fresh.db()?;
    db.create_table::<LedgerEntry>()?;
    db.install_audit()?;
    let version = server_version(&mut db.session()?)?;
    println!("{} {version}: building the chain ...", target.name);

    let chain = bench_chain(db, settings)?;
    println!(
        "  {} records: built in {:.1} s, sealed in {:.2} s, verified in {:.3} s (median of 3); TPC-B ...",
        chain.n,
        chain.build.as_secs_f64(),
        chain.seal.as_secs_f64(),
        median(chain.verify.iter().map(Duration::as_secs_f64).collect()),
    );
    let tpcb = bench_tpcb(db, target.kind, settings)?;
    let lag = seal_lag(db, settings)?;
    check_tpcb(db)?;

    // Seal what the audited TPC-B transactions appended, and verify the whole trail.
    let start = Instant::now();
    db.seal_audit()?;
    let final_seal = start.elapsed();
    let start = Instant::now();
    let report = db.verify_audit(None)?;
    let final_verify = start.elapsed();
    if !report.is_intact() {
        return Err(format!("final verify: damaged: {:?}", report.damage).into());
    }
    let expected = chain.n as u64 + 4 * tpcb.transactions[Side::Audited as usize] as u64;
    // At least: the warm-up transactions appended records too.
    if report.links < expected {
        return Err(format!(
            "final verify: {} links, expected at least {expected}",
            report.links
        )
        .into());
    }

    let seal_checks = check_sealing(db, target.kind)?;

    let label = match target.kind {
        BackendKind::Postgres => "PostgreSQL",
        BackendKind::Mysql => "MariaDB",
        _ => "SQLite (file, WAL)",
    };
    drop(fresh);
    Ok(Report {
        title: format!("{label} {version}"),
        chain,
        tpcb,
        final_links: report.links,
        final_seal,
        final_verify,
        seal_checks,
        lag,
        elapsed: started.elapsed(),
    })
}

fn print_report(r: &Report, settings: &Settings) {
    println!();
    println!("## {} ({:.1} s)", r.title, r.elapsed.as_secs_f64());
    println!();
    let tps_a = median(r.tpcb.tps[0].clone());
    let tps_u = median(r.tpcb.tps[1].clone());
    let ratio = if tps_u > 0.0 { tps_a / tps_u } else { 0.0 };
    println!(
        "TPC-B-like, 1 client, 1 branch / {} tellers / {} accounts, {} rounds of {:.1} s per side:",
        settings.tellers,
        settings.accounts,
        settings.rounds,
        settings.pass.as_secs_f64()
    );
    println!();
    println!(
        "| {:<10} | {:>12} | {:>12} | {:>10} | {:>8} |",
        "side", "median tps", "transactions", "spread", "a / u"
    );
    println!(
        "|{:-<12}|{:->14}|{:->14}|{:->12}|{:->10}|",
        ":", ":", ":", ":", ":"
    );
    println!(
        "| {:<10} | {:>12.0} | {:>12} | {:>9.0}% | {:>6.3}{} |",
        "audited",
        tps_a,
        r.tpcb.transactions[0],
        spread(&r.tpcb.tps[0], tps_a) * 100.0,
        ratio,
        if ratio < 0.8 { " !" } else { "  " }
    );
    println!(
        "| {:<10} | {:>12.0} | {:>12} | {:>9.0}% | {:>8} |",
        "unaudited",
        tps_u,
        r.tpcb.transactions[1],
        spread(&r.tpcb.tps[1], tps_u) * 100.0,
        ""
    );
    let rounds: Vec<String> = r.tpcb.tps[0]
        .iter()
        .zip(&r.tpcb.tps[1])
        .map(|(a, u)| format!("{:.2}", a / u))
        .collect();
    println!();
    println!("Ratio per round: {}", rounds.join(", "));
    println!();

    let c = &r.chain;
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let verify_s: Vec<f64> = c.verify.iter().map(Duration::as_secs_f64).collect();
    let verify_med = median(verify_s.clone());
    let verify_best = verify_s.iter().cloned().fold(f64::INFINITY, f64::min);
    let verify_rate = c.n as f64 / verify_med.max(1e-9);
    println!(
        "Audit chain of {} records (insert_many of 1,000 rows per call):",
        c.n
    );
    println!();
    println!(
        "| {:<38} | {:>9} | {:>12} |",
        "step", "seconds", "records/s"
    );
    println!("|{:-<40}|{:->11}|{:->14}|", ":", ":", ":");
    println!(
        "| {:<38} | {:>9.2} | {:>12.0} |",
        "build (audited insert_many)",
        c.build.as_secs_f64(),
        rate(c.n as u64, c.build)
    );
    println!(
        "| {:<38} | {:>9.2} | {:>12.0} |",
        "seal_audit()",
        c.seal.as_secs_f64(),
        rate(c.n as u64, c.seal)
    );
    println!(
        "| {:<38} | {:>9.3} | {:>10.0}{} |",
        "verify_audit(None), median of 3",
        verify_med,
        verify_rate,
        if verify_rate < 200_000.0 { " !" } else { "  " }
    );
    println!(
        "| {:<38} | {:>9.3} | {:>12.0} |",
        "verify_audit(None), best of 3",
        verify_best,
        c.n as f64 / verify_best.max(1e-9)
    );
    let b = &c.breakdown;
    for (label, d) in [
        ("  breakdown: verify's query, no checks", b.read),
        ("  breakdown: canonical encoding only", b.canonical),
        ("  breakdown: record seals (HMAC) only", b.seal),
        ("  breakdown: link hashes only", b.link),
    ] {
        println!(
            "| {:<38} | {:>9.3} | {:>12.0} |",
            label,
            d.as_secs_f64(),
            rate(c.n as u64, d)
        );
    }
    println!(
        "| {:<38} | {:>9.3} | {:>12.0} |",
        format!("after TPC-B: seal ({} links total)", r.final_links),
        r.final_seal.as_secs_f64(),
        rate(r.final_links.saturating_sub(c.n as u64), r.final_seal)
    );
    println!(
        "| {:<38} | {:>9.3} | {:>12.0} |",
        "after TPC-B: verify whole trail",
        r.final_verify.as_secs_f64(),
        rate(r.final_links, r.final_verify)
    );
    let (tps, lags) = &r.lag;
    println!();
    println!(
        "Seal lag (record written -> chained) with a sealer every 100 ms during {:.1} s of audited \
         TPC-B ({tps:.0} tps, {} records): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        settings.pass.as_secs_f64(),
        lags.len(),
        quantile(lags.clone(), 0.5),
        quantile(lags.clone(), 0.99),
        quantile(lags.clone(), 1.0),
    );
    let k = &r.seal_checks;
    println!();
    println!(
        "Seal of one record behind the {} links (seconds): {}; without the high-water mark \
         (removed: a rescan) {:.3}; next seal, mark set again {:.3}",
        r.final_links,
        match k.late {
            Some(d) => format!(
                "committed after a seal that passed its id {:.3}",
                d.as_secs_f64()
            ),
            None => "late commits not checked (SQLite serializes writers)".into(),
        },
        k.rescan.as_secs_f64(),
        k.marked.as_secs_f64()
    );
}

fn run() -> Res<()> {
    // `cargo bench` passes `--bench`; every other argument is a backend filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.to_lowercase())
        .collect();
    let selected: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    t.name.contains(f.as_str()) || t.aliases.iter().any(|a| a.contains(f.as_str()))
                })
        })
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "no backend matches {filters:?}; choose among postgres, mariadb, sqlite"
        )
        .into());
    }

    let quick = std::env::var("CUSTODIAN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let settings = Settings {
        quick,
        rounds: if quick { 2 } else { 7 },
        pass: if quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        },
        accounts: if quick { 1_000 } else { 10_000 },
        tellers: 10,
        chain_full: if quick { 2_000 } else { 100_000 },
        chain_small: if quick { 1_000 } else { 20_000 },
        chain_budget: Duration::from_secs(60),
    };

    for t in &selected {
        let reachable = match t.kind {
            BackendKind::Postgres => pg_admin().map(drop),
            BackendKind::Mysql => mysql_admin().map(drop),
            _ => Ok(()),
        };
        if let Err(e) = reachable {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }

    println!(
        "custodian audit benchmark: TPC-B-like audited vs unaudited, chain seal and verify{}",
        if quick {
            " (CUSTODIAN_BENCH_QUICK: smoke run, numbers meaningless)"
        } else {
            ""
        }
    );
    for t in selected {
        let report = bench_backend(t, &settings).map_err(|e| format!("{}: {e}", t.name))?;
        print_report(&report, &settings);
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("audit bench failed: {e}");
        std::process::exit(1);
    }
}
