//! The audit tables: records (`custodian_audit`), the chain (`custodian_audit_chain`), its
//! head (`custodian_audit_head`, whose row 1 sealers lock) and the sealers' gaps
//! (`custodian_audit_gap`), with their metadata for DDL.
//!
//! Writers only ever insert into `custodian_audit`, inside their own transaction; they never
//! touch the chain, so concurrent writers do not queue behind one lock. Sealing appends to
//! `custodian_audit_chain` later, in commit order, under the head row's lock.
//!
//! Sealers keep their place so that a seal reads only what is new: row 2 of
//! `custodian_audit_head` holds the highest record id sealed (the high-water mark, with a MAC
//! over it, the chain's end and the gaps, checked before it is used), and
//! `custodian_audit_gap` the ids below it that were not there to seal (records of transactions
//! that committed later than the seal, or never: rolled back). A seal reads the records above the
//! mark and those in the gaps, and nothing else.

#![allow(missing_docs)] // diesel's table! items are described by the module docs.

use crate::entity::{ColumnMeta, EntityMeta, IndexMeta};
use crate::value::ColumnKind;

diesel::table! {
    custodian_audit (id) {
        id -> BigInt,
        tx_id -> Text,
        ordinal -> Integer,
        at -> crate::sql_types::Datetime,
        actor -> Text,
        tenant -> Nullable<Text>,
        entity -> Text,
        entity_key -> Text,
        op -> Text,
        before_image -> Nullable<Text>,
        after_image -> Nullable<Text>,
        reason -> Nullable<Text>,
        request_id -> Nullable<Text>,
        mac -> Text,
    }
}

diesel::table! {
    custodian_audit_chain (seq) {
        seq -> BigInt,
        record_id -> BigInt,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    custodian_audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    custodian_audit_gap (lo) {
        lo -> BigInt,
        hi -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(custodian_audit, custodian_audit_chain);

const fn col(name: &'static str, kind: ColumnKind, nullable: bool) -> ColumnMeta {
    ColumnMeta {
        name,
        field: name,
        kind,
        nullable,
        ..ColumnMeta::PLAIN
    }
}

/// `custodian_audit`: one row per audited change, sealed by its writer.
pub const AUDIT: EntityMeta = EntityMeta {
    name: "AuditRecord",
    table: "custodian_audit",
    schema: None,
    columns: &[
        ColumnMeta {
            primary_key: true,
            auto_increment: true,
            ..col("id", ColumnKind::BigInt, false)
        },
        col("tx_id", ColumnKind::Uuid, false),
        col("ordinal", ColumnKind::Integer, false),
        col("at", ColumnKind::Timestamp, false),
        col("actor", ColumnKind::Text, false),
        col("tenant", ColumnKind::Text, true),
        col("entity", ColumnKind::Text, false),
        col("entity_key", ColumnKind::Text, false),
        col("op", ColumnKind::Text, false),
        col("before_image", ColumnKind::Text, true),
        col("after_image", ColumnKind::Text, true),
        col("reason", ColumnKind::Text, true),
        col("request_id", ColumnKind::Text, true),
        col("mac", ColumnKind::Text, false),
    ],
    indexes: &[
        IndexMeta {
            name: "custodian_audit_entity_key_idx",
            columns: &["entity", "entity_key"],
            unique: false,
        },
        TX_INDEX,
    ],
};

/// The index on `custodian_audit.tx_id`: settling a commit cut off mid-flight looks a
/// transaction's records up by id. Trails installed before it existed get it from
/// [`install`](super::chain::install) (`CREATE INDEX IF NOT EXISTS`).
pub const TX_INDEX: IndexMeta = IndexMeta {
    name: "custodian_audit_tx_idx",
    columns: &["tx_id"],
    unique: false,
};

/// `custodian_audit_chain`: the hash chain, one link per sealed record.
pub const CHAIN: EntityMeta = EntityMeta {
    name: "AuditChainLink",
    table: "custodian_audit_chain",
    schema: None,
    columns: &[
        ColumnMeta {
            primary_key: true,
            ..col("seq", ColumnKind::BigInt, false)
        },
        ColumnMeta {
            unique: true,
            ..col("record_id", ColumnKind::BigInt, false)
        },
        col("prev_hash", ColumnKind::Text, false),
        col("hash", ColumnKind::Text, false),
    ],
    indexes: &[],
};

/// `custodian_audit_head`: row 1 is the last sealed position (`seq`, `hash`) and the sealers'
/// lock; row 2 is the sealers' high-water mark (`seq`: the highest record id sealed; `hash`:
/// the chain length it was written at and a MAC binding it to the chain's end and the gaps, so
/// a mark moved or gaps changed by anyone without the key are not trusted); row 3 says how the
/// trail is sealed (keyed, with the key's check value, or unkeyed).
pub const HEAD: EntityMeta = EntityMeta {
    name: "AuditChainHead",
    table: "custodian_audit_head",
    schema: None,
    columns: &[
        ColumnMeta {
            primary_key: true,
            ..col("id", ColumnKind::Integer, false)
        },
        col("seq", ColumnKind::BigInt, false),
        col("hash", ColumnKind::Text, false),
    ],
    indexes: &[],
};

/// `custodian_audit_gap`: ranges `lo..=hi` of record ids below the sealers' high-water mark that
/// no seal has seen yet. A record that appears in a gap (its transaction committed after the
/// seal that passed its id) is sealed by the next seal.
pub const GAP: EntityMeta = EntityMeta {
    name: "AuditChainGap",
    table: "custodian_audit_gap",
    schema: None,
    columns: &[
        ColumnMeta {
            primary_key: true,
            ..col("lo", ColumnKind::BigInt, false)
        },
        col("hi", ColumnKind::BigInt, false),
    ],
    indexes: &[],
};

/// All audit tables, parents first.
pub const ALL: [EntityMeta; 4] = [AUDIT, CHAIN, HEAD, GAP];
