//! The chain measurements: building and verifying a chain (with a breakdown of verification's
//! cost), and sealing with commits that arrive late.

use super::*;

pub(crate) struct ChainReport {
    pub(crate) n: usize,
    pub(crate) build: Duration,
    pub(crate) seal: Duration,
    pub(crate) verify: Vec<Duration>,
    pub(crate) breakdown: Breakdown,
}

/// Builds a chain of N audit records with bulk inserts of an audited entity, seals it, and
/// verifies it three times.
pub(crate) fn bench_chain(db: &Db, settings: &Settings) -> Res<ChainReport> {
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
pub(crate) struct Breakdown {
    pub(crate) read: Duration,
    pub(crate) canonical: Duration,
    pub(crate) seal: Duration,
    pub(crate) link: Duration,
}

pub(crate) fn verify_breakdown(db: &Db, n: usize) -> Res<Breakdown> {
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
pub(crate) struct SealChecks {
    /// The seal after a late commit (on the servers; SQLite serializes writers).
    pub(crate) late: Option<Duration>,
    /// A seal without the high-water mark: a rescan of the whole trail (as after a mark that
    /// was removed or fails its MAC).
    pub(crate) rescan: Duration,
    /// The seal after it, with the mark set again.
    pub(crate) marked: Duration,
}

/// Checks, on the full trail, that a seal never skips a record committed after a seal that
/// passed its id, and that a trail without the sealers' high-water mark is sealed by one
/// rescan, which sets the mark again.
pub(crate) fn check_sealing(db: &Db, kind: BackendKind) -> Res<SealChecks> {
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

pub(crate) fn ledger_entry(id: i64) -> LedgerEntry {
    LedgerEntry {
        id,
        account: 1,
        amount: 1,
        memo: format!("seal check {id}"),
    }
}
