//! The custodian side: `custodian::open` pools, one `Session` per operation
//! (`db.session()?`), the entity API; the same code runs the unaudited and the audited entities.

use crate::model::{self, ItemLike};
use crate::{Res, Rng, Scale};
use custodian::prelude::*;
use custodian::{Db, TxOptions};

/// One CRUD cycle on entity `E`: insert, get by key, update, delete, each in its own session.
pub fn crud<E: ItemLike>(db: &Db, tag: u64, i: u64) -> Res<()> {
    let stored = db.session()?.insert(E::sample(tag, i))?;
    let mut row = db.session()?.get::<E>(&stored.id())?;
    row.change(i);
    db.session()?.update(&mut row)?;
    db.session()?.delete_by_key::<E>(&row.id())?;
    Ok(())
}

/// A read by primary key in its own session.
pub fn get<E: ItemLike>(db: &Db, key: i64) -> Res<()> {
    std::hint::black_box(db.session()?.get::<E>(&key)?);
    Ok(())
}

fn one(what: &str, n: usize) -> custodian::Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(custodian::Error::config(
            what,
            format!("{n} rows, expected 1"),
        ))
    }
}

/// pgbench's `tpcb-like` transaction through `Session::transaction_with` (`immediate`: `BEGIN
/// IMMEDIATE` on SQLite, as the diesel side; no effect elsewhere) and `Session::update_where`
/// with `balance = balance + delta`; custodian retries serialization failures itself.
macro_rules! tpcb_fn {
    ($name:ident, $account:ident, $teller:ident, $branch:ident, $history:ident,
     $ta:ident, $tt:ident, $tb:ident) => {
        pub fn $name(db: &Db, rng: &mut Rng, scale: &Scale) -> Res<()> {
            use model::{$account, $branch, $history, $teller};
            use model::{$ta as a, $tb as b, $tt as t};
            let (aid, tid, bid, delta) = rng.tpcb(scale);
            db.session()?
                .transaction_with(&TxOptions::new().immediate(), |tx| {
                    let n = tx.update_where::<$account>(
                        a::aid.eq(aid),
                        a::abalance.eq(a::abalance + delta),
                    )?;
                    one("accounts", n)?;
                    let balance: Option<i32> = tx.first(a::table.find(aid).select(a::abalance))?;
                    std::hint::black_box(balance);
                    let n = tx.update_where::<$teller>(
                        t::tid.eq(tid),
                        t::tbalance.eq(t::tbalance + delta),
                    )?;
                    one("tellers", n)?;
                    let n = tx.update_where::<$branch>(
                        b::bid.eq(bid),
                        b::bbalance.eq(b::bbalance + delta),
                    )?;
                    one("branches", n)?;
                    tx.insert($history {
                        hid: 0,
                        tid,
                        bid,
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
