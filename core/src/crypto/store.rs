//! `custodian_subject_keys`: one wrapped data key per subject, and the statements on it.

#![allow(missing_docs)] // diesel's table! items are described by the module docs.

use crate::before_image::{NoLockModifier, RowLock};
use crate::conn::AnyConnection;
use crate::context::Context;
use crate::entity::{ColumnMeta, EntityMeta, IndexMeta};
use crate::error::Result;
use crate::sql_types::StoredDatetime;
use crate::value::ColumnKind;
use diesel::prelude::*;
use diesel::query_dsl::methods::{LockingDsl as _, ModifyLockDsl as _};

diesel::table! {
    custodian_subject_keys (subject) {
        subject -> Text,
        data_key_id -> Text,
        master_key_id -> Text,
        wrapped -> Text,
        created_at -> crate::sql_types::Datetime,
    }
}

use custodian_subject_keys as k;

const fn col(name: &'static str, kind: ColumnKind) -> ColumnMeta {
    ColumnMeta {
        name,
        field: name,
        kind,
        ..ColumnMeta::PLAIN
    }
}

/// `custodian_subject_keys`: the data key of each subject, wrapped under a master key.
/// Deleting a row destroys the subject's key (crypto-shredding).
pub const SUBJECT_KEYS: EntityMeta = EntityMeta {
    name: "SubjectKey",
    table: "custodian_subject_keys",
    schema: None,
    columns: &[
        ColumnMeta {
            primary_key: true,
            ..col("subject", ColumnKind::Text)
        },
        ColumnMeta {
            unique: true,
            ..col("data_key_id", ColumnKind::Text)
        },
        col("master_key_id", ColumnKind::Text),
        col("wrapped", ColumnKind::Text),
        col("created_at", ColumnKind::Timestamp),
    ],
    // Rotation scans for rows not under the active master key.
    indexes: &[IndexMeta {
        name: "custodian_subject_keys_master_key_id_idx",
        columns: &["master_key_id"],
        unique: false,
    }],
};

/// One row of `custodian_subject_keys`.
#[derive(Clone, PartialEq, Eq, Queryable)]
pub(crate) struct KeyRow {
    pub subject: String,
    pub data_key_id: String,
    pub master_key_id: String,
    pub wrapped: String,
    pub created_at: StoredDatetime,
}

macro_rules! row_columns {
    () => {
        (
            k::subject,
            k::data_key_id,
            k::master_key_id,
            k::wrapped,
            k::created_at,
        )
    };
}

/// Creates `custodian_subject_keys` if it does not exist yet.
pub fn install(s: &mut impl Context) -> Result<()> {
    let backend = s.backend();
    if s.run(|c| backend.live_columns(c, &SUBJECT_KEYS))?.is_none() {
        for sql in backend.create_table_sql(&SUBJECT_KEYS) {
            s.execute_sql(&sql)?;
        }
    }
    Ok(())
}

/// Locks the row of `subject` until the transaction ends (PostgreSQL and MariaDB; SQLite's
/// write transaction already excludes other writers). A locking read also sees rows committed
/// after a repeatable-read snapshot was taken.
fn lock_subject(conn: &mut AnyConnection, subject: &str) -> QueryResult<()> {
    let q = || k::table.find(subject.to_string()).select(k::subject);
    q().with_lock(RowLock)
        .modify_lock(NoLockModifier)
        .execute(conn)
        .map(|_| ())
}

pub(crate) fn by_subject(
    conn: &mut AnyConnection,
    subject: &str,
    lock: bool,
) -> QueryResult<Option<KeyRow>> {
    if lock {
        lock_subject(conn, subject)?;
    }
    k::table
        .find(subject.to_string())
        .select(row_columns!())
        .first(conn)
        .optional()
}

pub(crate) fn by_key_id(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<KeyRow>> {
    k::table
        .filter(k::data_key_id.eq(id.to_string()))
        .select(row_columns!())
        .first(conn)
        .optional()
}

pub(crate) fn insert(conn: &mut AnyConnection, row: &KeyRow) -> QueryResult<usize> {
    diesel::insert_into(k::table)
        .values((
            k::subject.eq(&row.subject),
            k::data_key_id.eq(&row.data_key_id),
            k::master_key_id.eq(&row.master_key_id),
            k::wrapped.eq(&row.wrapped),
            k::created_at.eq(row.created_at),
        ))
        .execute(conn)
}

pub(crate) fn delete(conn: &mut AnyConnection, subject: &str) -> QueryResult<usize> {
    diesel::delete(k::table.find(subject.to_string())).execute(conn)
}

/// Up to `limit` rows not wrapped under `active`, by subject, locked on PostgreSQL and MariaDB.
pub(crate) fn not_under(
    conn: &mut AnyConnection,
    active: &str,
    limit: i64,
) -> QueryResult<Vec<KeyRow>> {
    let q = || {
        k::table
            .filter(k::master_key_id.ne(active.to_string()))
            .order(k::subject.asc())
            .limit(limit)
            .select(row_columns!())
    };
    q().with_lock(RowLock)
        .modify_lock(NoLockModifier)
        .load(conn)
}

pub(crate) fn count_not_under(conn: &mut AnyConnection, active: &str) -> QueryResult<i64> {
    k::table
        .filter(k::master_key_id.ne(active.to_string()))
        .count()
        .get_result(conn)
}

/// Re-wraps one row, if it is still under `old_master`; returns matched rows.
pub(crate) fn rewrap(
    conn: &mut AnyConnection,
    subject: &str,
    old_master: &str,
    new_master: &str,
    wrapped: &str,
) -> QueryResult<usize> {
    diesel::update(
        k::table
            .filter(k::subject.eq(subject.to_string()))
            .filter(k::master_key_id.eq(old_master.to_string())),
    )
    .set((
        k::master_key_id.eq(new_master.to_string()),
        k::wrapped.eq(wrapped.to_string()),
    ))
    .execute(conn)
}
