//! The transaction-outcome table (`custodian_tx_outcome`): one row per opted-in read-write
//! transaction, written in that transaction, so that a commit cut off mid-flight can be told
//! apart from one that never happened by looking for the row.
//!
//! A row only matters until its transaction's commit outcome is known, which is seconds after
//! the commit at most; [`prune`] deletes rows older than a retention period. How the rows are
//! used (and why the lookup cannot race the lost session) is described in the session's
//! commit-outcome module, `Session::transaction_with`.

#![allow(missing_docs)] // diesel's table! items are described by the module docs.

use crate::conn::AnyConnection;
use crate::entity::{ColumnMeta, EntityMeta};
use crate::sql_types::StoredDatetime;
use crate::value::ColumnKind;
use diesel::{ExpressionMethods, QueryDsl, QueryResult, RunQueryDsl};

diesel::table! {
    custodian_tx_outcome (tx_id) {
        tx_id -> Text,
        at -> crate::sql_types::Datetime,
    }
}

/// `custodian_tx_outcome`: the id of each opted-in transaction (primary key) and when it
/// was written (UTC), for pruning.
pub const TABLE: EntityMeta = EntityMeta {
    name: "TxOutcome",
    table: "custodian_tx_outcome",
    schema: None,
    columns: &[
        ColumnMeta {
            name: "tx_id",
            field: "tx_id",
            kind: ColumnKind::Uuid,
            nullable: false,
            primary_key: true,
            ..ColumnMeta::PLAIN
        },
        ColumnMeta {
            name: "at",
            field: "at",
            kind: ColumnKind::Timestamp,
            nullable: false,
            ..ColumnMeta::PLAIN
        },
    ],
    indexes: &[],
};

/// Writes the outcome row of transaction `tx_id` (inside that transaction).
pub fn record(conn: &mut AnyConnection, tx_id: &str, at: chrono::NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(custodian_tx_outcome::table)
        .values((
            custodian_tx_outcome::tx_id.eq(tx_id),
            custodian_tx_outcome::at.eq(StoredDatetime(at)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Whether transaction `tx_id` left its outcome row: it committed.
pub fn recorded(conn: &mut AnyConnection, tx_id: &str) -> QueryResult<bool> {
    let n: i64 = custodian_tx_outcome::table
        .filter(custodian_tx_outcome::tx_id.eq(tx_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Deletes outcome rows written before `before`; returns how many.
pub fn prune(conn: &mut AnyConnection, before: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        custodian_tx_outcome::table.filter(custodian_tx_outcome::at.lt(StoredDatetime(before))),
    )
    .execute(conn)
}
