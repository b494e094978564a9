//! Reads what a manifest states from a live database, on one connection inside whatever
//! snapshot the caller opened: each table's columns, row count and digest (rows read in the
//! backend's canonical text form), the applied migrations and the audit chain head.

use super::digest::TableHasher;
use super::manifest::{ChainHead, TableDigest};
use crate::backend::{Backend, BackupDialect};
use crate::conn::AnyConnection;
use crate::error::{Error, IntegrityKind, Result};
use crate::migrate::LEDGER_TABLE;
use crate::schema::LiveColumn;
use diesel::connection::DefaultLoadingMode;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use std::collections::BTreeMap;

/// The audit trail's head table.
const HEAD_TABLE: &str = "custodian_audit_head";

/// A database's state as a manifest states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) tables: BTreeMap<String, TableDigest>,
    pub(crate) migrations: Vec<String>,
    pub(crate) audit_head: Option<ChainHead>,
}

#[derive(QueryableByName)]
struct CanonRow {
    #[diesel(sql_type = Nullable<Text>)]
    row: Option<String>,
}

#[derive(QueryableByName)]
struct LedgerRow {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    checksum: String,
}

#[derive(QueryableByName)]
struct HeadRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    hash: String,
}

/// Columns sorted by name: the order values are hashed in, the same on every engine.
pub(crate) fn sorted_columns(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    table: &str,
) -> Result<Vec<LiveColumn>> {
    let mut columns = backend
        .backup()
        .columns(conn, table)
        .map_err(|e| backend.classify(e))?;
    columns.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(columns)
}

/// Calls `each` with every row of `table` in canonical form (values in `columns` order).
pub(crate) fn for_each_row(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    table: &str,
    columns: &[LiveColumn],
    mut each: impl FnMut(Vec<Option<String>>) -> Result<()>,
) -> Result<()> {
    let sql = backend.backup().canonical_rows_sql(table, columns);
    let rows = diesel::sql_query(sql)
        .load_iter::<CanonRow, DefaultLoadingMode>(conn)
        .map_err(|e| backend.classify(e))?;
    for row in rows {
        let row = row.map_err(|e| backend.classify(e))?;
        let values: Vec<Option<String>> = row
            .row
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .ok()
            .flatten()
            .filter(|v: &Vec<Option<String>>| v.len() == columns.len())
            .ok_or_else(|| {
                Error::integrity(
                    IntegrityKind::Undecodable,
                    format!("{table}: a row did not read back in canonical form"),
                )
            })?;
        each(values)?;
    }
    Ok(())
}

/// The digest of one table.
pub(crate) fn digest_table(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    table: &str,
) -> Result<TableDigest> {
    let columns = sorted_columns(conn, backend, table)?;
    let mut hasher = TableHasher::new();
    for_each_row(conn, backend, table, &columns, |values| {
        hasher.add(&values);
        Ok(())
    })?;
    Ok(TableDigest {
        columns: columns.into_iter().map(|c| c.name).collect(),
        rows: hasher.rows(),
        hash: hasher.hex(),
    })
}

/// The tables of the database, less those in `skip`.
pub(crate) fn tables(
    conn: &mut AnyConnection,
    dialect: &dyn BackupDialect,
    backend: &dyn Backend,
    skip: &[&str],
) -> Result<Vec<String>> {
    let all = dialect.tables(conn).map_err(|e| backend.classify(e))?;
    Ok(all
        .into_iter()
        .filter(|t| !skip.contains(&t.as_str()))
        .collect())
}

/// Reads the state of the database on `conn`: every table but those in `skip`.
pub(crate) fn read_state(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    skip: &[&str],
) -> Result<State> {
    let names = tables(conn, backend.backup(), backend, skip)?;
    let mut tables = BTreeMap::new();
    for name in &names {
        tables.insert(name.clone(), digest_table(conn, backend, name)?);
    }
    let (migrations, audit_head) = extras(conn, backend)?;
    Ok(State {
        tables,
        migrations,
        audit_head,
    })
}

/// The applied migrations and the audit chain head of the database on `conn`.
pub(crate) fn extras(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
) -> Result<(Vec<String>, Option<ChainHead>)> {
    let all = backend
        .backup()
        .tables(conn)
        .map_err(|e| backend.classify(e))?;
    let migrations = if all.iter().any(|t| t == LEDGER_TABLE) {
        let rows: Vec<LedgerRow> = diesel::sql_query(format!(
            "SELECT version, checksum FROM {LEDGER_TABLE} ORDER BY version"
        ))
        .load(conn)
        .map_err(|e| backend.classify(e))?;
        rows.into_iter()
            .map(|r| format!("{} {}", r.version, r.checksum))
            .collect()
    } else {
        Vec::new()
    };
    let audit_head = if all.iter().any(|t| t == HEAD_TABLE) {
        let rows: Vec<HeadRow> =
            diesel::sql_query(format!("SELECT seq, hash FROM {HEAD_TABLE} WHERE id = 1"))
                .load(conn)
                .map_err(|e| backend.classify(e))?;
        rows.into_iter().next().map(|r| ChainHead {
            seq: r.seq,
            hash: r.hash,
        })
    } else {
        None
    };
    Ok((migrations, audit_head))
}
