//! The bench's entities: the TPC-B tables (audited and unaudited sets) and the ledger of the
//! verification part, and a reproducible random number generator.

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
pub(crate) mod ledger {
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

pub(crate) use ledger::LedgerEntry;

/// splitmix64: reproducible random numbers without a dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (hi as i64 - lo as i64 + 1) as u64;
        (lo as i64 + (self.next() % span) as i64) as i32
    }
}
