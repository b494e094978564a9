//! The serializable bank workload while a killer thread terminates every connection of the
//! test database.

use super::*;

/// What one worker of the bank workload saw.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: Vec<String>,
    unknown: Vec<String>,
    failed: Vec<(String, String)>,
    /// Closure runs, retries included.
    attempts: usize,
    reads: usize,
    failed_reads: Vec<String>,
}

/// The bank workload: `ACCOUNTS` accounts, 8 threads making serializable transfers (and
/// every fifth operation a serializable read of every balance) through `Session::transaction`,
/// while a killer thread terminates every connection of the test database every 1.5 s
/// (PostgreSQL, MariaDB). Transfers record their outcome (`commit_outcome.record`), so a commit
/// cut off by a kill is settled by custodian. Checks: no hang, the sum of balances on every
/// read, every acknowledged transfer stored exactly once, no failed one stored, no commit
/// outcome surfaced as unknown (the server stays reachable), balances matching the stored
/// transfers, and at most 1% of operations surfacing a failure.
fn bank_workload(kind: BackendKind) {
    const ACCOUNTS: i64 = 12;
    const INITIAL: i64 = 1_000;
    const THREADS: u64 = 8;
    let run = Duration::from_secs(8);
    let db = TestDb::with(kind, |c| {
        c.pool.max_size = 10;
        c.pool.min_idle = Some(2);
        c.session.busy_timeout_ms = 5_000;
        c.commit_outcome.record = true;
    });
    open_accounts(&db, ACCOUNTS, INITIAL);
    let total = ACCOUNTS * INITIAL;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut options = TxOptions::new().serializable();
    if kind == BackendKind::Sqlite {
        // One writer at a time from the start: a deferred transaction that reads, then writes,
        // fails busy without waiting.
        options = options.immediate();
    }
    let shared = (*db).clone();
    let target = Target::of(&db);
    let (tallies, kills) = within(&db, run + Duration::from_secs(60), "bank workload", {
        let stop = stop.clone();
        move || {
            let workers: Vec<_> = (0..THREADS)
                .map(|w| {
                    let (db, stop, options) = (shared.clone(), stop.clone(), options.clone());
                    std::thread::spawn(move || worker(&db, w, &stop, &options, total))
                })
                .collect();
            let killer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut kills = 0;
                    if target.kind == BackendKind::Sqlite {
                        return kills;
                    }
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1_500));
                        kills += target.kill();
                    }
                    kills
                })
            };
            std::thread::sleep(run);
            stop.store(true, Ordering::SeqCst);
            let tallies: Vec<Tally> = workers.into_iter().map(|h| h.join().unwrap()).collect();
            (tallies, killer.join().unwrap())
        }
    });

    let mut s = db.session().unwrap();
    let stored: Vec<Transfer> = s.load(transfers::table).unwrap();
    let ids: std::collections::HashMap<&str, &Transfer> =
        stored.iter().map(|t| (t.id.as_str(), t)).collect();
    assert_eq!(ids.len(), stored.len(), "each transfer stored once");
    let acknowledged: Vec<&String> = tallies.iter().flat_map(|t| &t.acknowledged).collect();
    let unknown: Vec<&String> = tallies.iter().flat_map(|t| &t.unknown).collect();
    let failed: Vec<&(String, String)> = tallies.iter().flat_map(|t| &t.failed).collect();
    for id in &acknowledged {
        assert!(
            ids.contains_key(id.as_str()),
            "acknowledged transfer {id} is missing"
        );
    }
    for (id, e) in &failed {
        assert!(
            !ids.contains_key(id.as_str()),
            "failed transfer {id} ({e}) is stored"
        );
    }
    let unknown_committed = unknown
        .iter()
        .filter(|id| ids.contains_key(id.as_str()))
        .count();
    assert_eq!(
        stored.len(),
        acknowledged.len() + unknown_committed,
        "every stored transfer was acknowledged or had an unknown outcome"
    );
    // Balances follow from the stored transfers alone.
    let mut expected = vec![INITIAL; ACCOUNTS as usize + 1];
    for t in &stored {
        expected[t.src as usize] -= t.amount;
        expected[t.dst as usize] += t.amount;
    }
    let balances: Vec<(i64, i64)> = s
        .load(accounts::table.select((accounts::id, accounts::balance)))
        .unwrap();
    assert_eq!(balances.iter().map(|b| b.1).sum::<i64>(), total);
    for (id, balance) in balances {
        assert_eq!(balance, expected[id as usize], "account {id}");
    }

    let transfers = acknowledged.len() + unknown.len() + failed.len();
    let reads: usize = tallies.iter().map(|t| t.reads).sum();
    let failed_reads: Vec<&String> = tallies.iter().flat_map(|t| &t.failed_reads).collect();
    let attempts: usize = tallies.iter().map(|t| t.attempts).sum();
    let operations = transfers + reads;
    let surfaced = failed.len() + failed_reads.len();
    println!(
        "bank workload on {kind}: {operations} operations ({transfers} transfers, {reads} \
         reads), {attempts} closure runs, {kills} connections killed; {} acknowledged, {} \
         commit outcome unknown ({unknown_committed} of them committed), {} transfers and {} \
         reads failed ({surfaced} surfaced = {:.2}%)",
        acknowledged.len(),
        unknown.len(),
        failed.len(),
        failed_reads.len(),
        100.0 * surfaced as f64 / operations.max(1) as f64,
    );
    if !failed.is_empty() || !failed_reads.is_empty() {
        println!("failures: {failed:?} {failed_reads:?}");
    }
    assert!(transfers >= 100, "the workload ran: {transfers} transfers");
    assert!(
        unknown.is_empty(),
        "commit outcomes surfaced as unknown while the server was reachable: {unknown:?}"
    );
    assert!(
        surfaced * 100 <= operations,
        "{surfaced} of {operations} operations failed: {failed:?} {failed_reads:?}"
    );
}

/// One worker: its own session for the whole run, transfers between random accounts with ids
/// chosen before each transaction, a read of every balance every fifth operation.
fn worker(
    db: &custodian::Db,
    w: u64,
    stop: &std::sync::atomic::AtomicBool,
    options: &TxOptions,
    total: i64,
) -> Tally {
    let mut tally = Tally::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut s = db.session().unwrap();
    // Not IMMEDIATE: SQLite refuses to take the write lock of a read-only transaction.
    let read_options = TxOptions::new().serializable().read_only();
    let mut op = 0u64;
    while !stop.load(Ordering::SeqCst) {
        op += 1;
        if op % 5 == 0 {
            let read = s.transaction_with(&read_options, |tx| {
                tally.attempts += 1;
                tx.load::<i64, _>(accounts::table.select(accounts::balance))
            });
            tally.reads += 1;
            match read {
                Ok(balances) => assert_eq!(balances.iter().sum::<i64>(), total, "sum invariant"),
                Err(e) => tally.failed_reads.push(e.to_string()),
            }
            continue;
        }
        let id = format!("w{w}-{op}");
        let src = 1 + next(12) as i64;
        let dst = 1 + (src + next(11) as i64) % 12;
        let amount = 1 + next(50) as i64;
        let result = s.transaction_with(options, |tx| {
            tally.attempts += 1;
            let mut a = tx.get::<Account>(&src)?;
            let mut b = tx.get::<Account>(&dst)?;
            a.balance -= amount;
            b.balance += amount;
            tx.update(&mut a)?;
            tx.update(&mut b)?;
            tx.insert(Transfer {
                id: id.clone(),
                src,
                dst,
                amount,
            })?;
            Ok(())
        });
        match result {
            Ok(()) => tally.acknowledged.push(id),
            Err(e) if e.is_commit_unknown() => tally.unknown.push(id),
            Err(e) => tally.failed.push((id, e.to_string())),
        }
    }
    tally
}

mod bank {
    use custodian::BackendKind::{Mysql, Postgres, Sqlite};
    #[test]
    fn postgres() {
        super::bank_workload(Postgres);
    }
    #[test]
    fn mariadb() {
        super::bank_workload(Mysql);
    }
    #[test]
    fn sqlite() {
        super::bank_workload(Sqlite);
    }
}
