//! The bank workload of the cluster tests: accounts whose balances always sum to the same
//! total, transfers between them in serializable transactions, each recording itself in the
//! same commit, and workers that check the sum on every read and keep what the caller saw
//! (acknowledged transfers with their time, failures surfaced, the port each ran on).

use custodian::diesel::RunQueryDsl;
use custodian::prelude::*;
use custodian::{BackendKind, Db, TxOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// An account.
#[entity(table = "accounts", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    pub balance: i64,
}

/// One transfer, written in the transfer's own transaction: present exactly when it
/// committed.
#[entity(table = "transfers", unaudited)]
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    #[column(primary_key)]
    pub id: String,
    pub src: i64,
    pub dst: i64,
    pub amount: i64,
}

/// Accounts `1..=n` with `balance` each, created with their tables in one transaction.
pub fn open_accounts(db: &Db, n: i64, balance: i64) {
    db.create_table::<Account>().expect("create accounts");
    db.create_table::<Transfer>().expect("create transfers");
    db.transaction(|s| {
        for id in 1..=n {
            s.insert(Account { id, balance })?;
        }
        Ok(())
    })
    .expect("open the accounts");
}

/// The port of the server `s` runs on, asked of the server.
pub fn port_of(s: &mut Session) -> custodian::Result<u16> {
    let sql = match s.backend().kind() {
        BackendKind::Postgres => "inet_server_port()::int8",
        _ => "CAST(@@port AS SIGNED)",
    };
    let port: i64 = custodian::diesel::select(custodian::diesel::dsl::sql::<
        custodian::diesel::sql_types::BigInt,
    >(sql))
    .get_result(s.connection())
    .map_err(|e| s.backend().classify(e))?;
    Ok(u16::try_from(port).unwrap_or(0))
}

/// What one worker saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub transfers: usize,
    pub reads: usize,
    /// Closure runs (first runs and retries).
    pub attempts: usize,
    /// Errors surfaced to the caller.
    pub failed: Vec<String>,
    /// Acknowledged transfers: id, when the caller saw `Ok`, and the port it ran on.
    pub acked: Vec<(String, Instant, u16)>,
    /// Acknowledged transfers per server port.
    pub on: BTreeMap<u16, usize>,
}

impl Tally {
    /// Every worker's tally in one.
    pub fn sum(tallies: Vec<Tally>) -> Tally {
        let mut all = Tally::default();
        for t in tallies {
            all.transfers += t.transfers;
            all.reads += t.reads;
            all.attempts += t.attempts;
            all.failed.extend(t.failed);
            all.acked.extend(t.acked);
            for (port, n) in t.on {
                *all.on.entry(port).or_default() += n;
            }
        }
        all
    }

    /// Operations the callers ran (transfers and reads).
    pub fn operations(&self) -> usize {
        self.transfers + self.reads
    }
}

/// One worker until `stop`: each operation a transaction of its own; serializable transfers
/// of 1-50 between distinct random accounts of `1..=n`, and every fifth operation a
/// serializable read-only transaction reading every balance, whose sum must be `total`
/// (asserted: a wrong sum fails the test). Transfer ids are `w-op`, so a retried closure
/// writes the same id.
pub fn worker(db: &Db, w: u64, stop: &AtomicBool, total: i64, n: i64) -> Tally {
    let mut tally = Tally::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let options = TxOptions::new().serializable();
    let read_options = TxOptions::new().serializable().read_only();
    let mut op = 0u64;
    while !stop.load(Ordering::SeqCst) {
        op += 1;
        if op % 5 == 0 {
            tally.reads += 1;
            let read = db.transaction_with(&read_options, |tx| {
                tally.attempts += 1;
                tx.load::<i64, _>(accounts::table.select(accounts::balance))
            });
            match read {
                Ok(b) => assert_eq!(b.iter().sum::<i64>(), total, "sum invariant on a read"),
                Err(e) => tally.failed.push(format!("read: {e}")),
            }
            continue;
        }
        let src = 1 + next(n as u64) as i64;
        let dst = 1 + (src + next(n as u64 - 1) as i64) % n;
        let amount = 1 + next(50) as i64;
        let id = format!("{w}-{op}");
        tally.transfers += 1;
        let result = db.transaction_with(&options, |tx| {
            tally.attempts += 1;
            transfer(tx, &id, src, dst, amount)
        });
        match result {
            Ok(port) => {
                *tally.on.entry(port).or_default() += 1;
                tally.acked.push((id, Instant::now(), port));
            }
            Err(e) => tally.failed.push(format!("transfer {id}: {e}")),
        }
    }
    tally
}

/// One transfer in the open transaction `tx`: both balances and the transfer's own row.
/// Returns the port it ran on.
pub fn transfer(
    tx: &mut Session,
    id: &str,
    src: i64,
    dst: i64,
    amount: i64,
) -> custodian::Result<u16> {
    let mut a = tx.get::<Account>(&src)?;
    let mut b = tx.get::<Account>(&dst)?;
    a.balance -= amount;
    b.balance += amount;
    tx.update(&mut a)?;
    tx.update(&mut b)?;
    tx.insert(Transfer {
        id: id.to_string(),
        src,
        dst,
        amount,
    })?;
    port_of(tx)
}

/// The ids of the transfers recorded on `db`'s primary.
pub fn recorded(db: &Db) -> BTreeSet<String> {
    let mut s = db.session().expect("a session on the primary");
    s.load::<String, _>(transfers::table.select(transfers::id))
        .expect("read the transfers")
        .into_iter()
        .collect()
}

/// Checks the books on `db`'s primary: the balances sum to `total`, each balance is its
/// opening `balance` moved by exactly the recorded transfers (none applied twice or without
/// its row), and every id of `acked` is recorded. Returns how many transfers are recorded.
pub fn audit_books<'a>(
    db: &Db,
    n: i64,
    balance: i64,
    acked: impl IntoIterator<Item = &'a str>,
) -> usize {
    let mut s = db.session().expect("a session on the primary");
    let accounts: Vec<(i64, i64)> = s
        .load(accounts::table.select((accounts::id, accounts::balance)))
        .expect("read the accounts");
    let transfers: Vec<(String, i64, i64, i64)> = s
        .load(transfers::table.select((
            transfers::id,
            transfers::src,
            transfers::dst,
            transfers::amount,
        )))
        .expect("read the transfers");
    assert_eq!(
        accounts.iter().map(|a| a.1).sum::<i64>(),
        n * balance,
        "sum at the end"
    );
    let mut expected: BTreeMap<i64, i64> = (1..=n).map(|id| (id, balance)).collect();
    for (_, src, dst, amount) in &transfers {
        *expected.get_mut(src).expect("a known account") -= amount;
        *expected.get_mut(dst).expect("a known account") += amount;
    }
    let actual: BTreeMap<i64, i64> = accounts.into_iter().collect();
    assert_eq!(
        actual, expected,
        "balances are the recorded transfers, each once"
    );
    let recorded: BTreeSet<&str> = transfers.iter().map(|t| t.0.as_str()).collect();
    let missing: Vec<&str> = acked
        .into_iter()
        .filter(|id| !recorded.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged transfers missing: {missing:?}"
    );
    transfers.len()
}
