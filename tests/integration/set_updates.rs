//! Set-based writes (`Session::update_where`, `Session::delete_where`) on every backend,
//! attacking their guarantees: concurrent `balance = balance + d` transfers at the default
//! isolation lose nothing and need no retry; every changed row gets exactly one audit record
//! with its true before and after images; a tenant-scoped principal neither changes nor counts
//! another tenant's rows; a validator or a database check failing on one row rolls back every
//! row and records nothing; soft delete and version columns behave.
//!
//! Here: the entities and the raw reads the tests judge by; the tests are in `writes`,
//! `access` and `rules`.

use crate::common::TestDb;
use custodian::audit::tables::custodian_audit as a;
use custodian::prelude::*;
use custodian::{AccessControl, ConstraintKind, EntityRules, Error, Principal, TxOptions};
use std::collections::HashMap;

/// An account: the validator caps the balance, the database refuses one below -1000.
#[derive(Debug, Clone, PartialEq, validator::Validate)]
#[entity(table = "su_accounts")]
pub struct Account {
    #[column(primary_key)]
    pub id: i64,
    #[column(index)]
    pub tenant: String,
    #[column(range(min = -1000))]
    #[validate(range(max = 1_000_000))]
    pub balance: i64,
    pub note: String,
    #[column(version)]
    pub version: i64,
    #[column(updated_at)]
    pub updated_at: chrono::NaiveDateTime,
}

/// A soft-deletable, versioned ticket.
#[entity(table = "su_tickets")]
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    #[column(primary_key)]
    pub id: i64,
    pub state: String,
    #[column(version)]
    pub version: i32,
    #[column(updated_at)]
    pub updated_at: chrono::NaiveDateTime,
    #[column(deleted_at)]
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

fn account(id: i64, tenant: &str, balance: i64) -> Account {
    Account {
        id,
        tenant: tenant.into(),
        balance,
        note: String::new(),
        version: 0,
        updated_at: chrono::NaiveDateTime::default(),
    }
}

/// (id, balance, version) of every account, read with plain SQL (no policy, no entity).
fn raw_accounts(s: &mut Session) -> Vec<(i64, i64, i64)> {
    s.load(su_accounts::table.order(su_accounts::id).select((
        su_accounts::id,
        su_accounts::balance,
        su_accounts::version,
    )))
    .unwrap()
}

/// (entity, key, op, before, after) of every record, in id order.
type Record = (String, String, String, Option<String>, Option<String>);

fn trail(s: &mut Session) -> Vec<Record> {
    s.load(a::table.order(a::id).select((
        a::entity,
        a::entity_key,
        a::op,
        a::before_image,
        a::after_image,
    )))
    .unwrap()
}

fn json(image: &Option<String>) -> serde_json::Value {
    serde_json::from_str(image.as_deref().expect("an image")).unwrap()
}

/// The update records of accounts, by account id.
fn account_updates(s: &mut Session) -> HashMap<i64, Vec<(serde_json::Value, serde_json::Value)>> {
    let mut out: HashMap<i64, Vec<_>> = HashMap::new();
    for (entity, key, op, before, after) in trail(s) {
        if entity == "su_accounts" && op == "update" {
            let key: serde_json::Value = serde_json::from_str(&key).unwrap();
            let id = key
                .as_i64()
                .or_else(|| key[0].as_i64())
                .expect("an integer key");
            out.entry(id)
                .or_default()
                .push((json(&before), json(&after)));
        }
    }
    out
}

mod access;
mod rules;
mod writes;
