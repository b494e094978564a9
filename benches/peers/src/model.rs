//! The custodian side's entities: the CRUD row and pgbench's four tables, each twice, once
//! `#[entity(unaudited)]` and once audited (custodian's default), same columns.

use custodian::prelude::*;

/// What the CRUD loop needs of its row type, for both the unaudited and the audited entity.
pub trait ItemLike: Entity<Key = i64> + Clone {
    fn sample(tag: u64, i: u64) -> Self;
    fn id(&self) -> i64;
    fn change(&mut self, i: u64);
}

macro_rules! item_entity {
    ($name:ident, $table:tt $(, $flag:ident)?) => {
        #[entity(table = $table $(, $flag)?)]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            #[column(primary_key, auto_increment)]
            pub id: i64,
            pub code: String,
            pub title: String,
            pub owner: Option<String>,
            pub risk: i32,
            pub active: bool,
        }

        impl ItemLike for $name {
            fn sample(tag: u64, i: u64) -> Self {
                let (code, title, owner, risk, active) = crate::sample_fields(tag, i);
                $name { id: 0, code, title, owner, risk, active }
            }
            fn id(&self) -> i64 {
                self.id
            }
            fn change(&mut self, i: u64) {
                self.title = format!("changed {i}");
                self.risk = (self.risk + 1) % 100;
                self.active = !self.active;
            }
        }
    };
}

item_entity!(Item, "peer_items", unaudited);
item_entity!(AuditedItem, "peer_items_audited");

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

        /// pgbench's history has no key; an entity needs one, so every side's table has
        /// an auto-increment `hid`.
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
