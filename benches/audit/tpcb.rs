//! pgbench's `tpcb-like` transaction through custodian, audited and unaudited.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Audited = 0,
    Unaudited = 1,
}

/// Runs TPC-B-like transactions on one side for `duration`; returns (transactions, elapsed).
pub(crate) fn tpcb_pass(
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

pub(crate) struct TpcbReport {
    /// tps per round, per side.
    pub(crate) tps: [Vec<f64>; 2],
    pub(crate) transactions: [usize; 2],
}

pub(crate) fn bench_tpcb(db: &Db, kind: BackendKind, settings: &Settings) -> Res<TpcbReport> {
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
pub(crate) fn check_tpcb(db: &Db) -> Res<()> {
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
