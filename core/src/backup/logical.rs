//! The portable logical form: every table (but the migration ledger and the coordinator's log)
//! as JSON lines of canonical text, read in one snapshot, with a signed manifest. Imported into
//! another engine's database whose tables already exist (same column names, empty), the rows
//! and the audit trail come back value for value, so the chain verifies there against the
//! export's checkpoint.
//!
//! A table file `tables/<name>.jsonl` holds the column names (a JSON array, in name order) on
//! its first line, then one JSON array of values (text or null) per row.

use super::digest::TableHasher;
use super::manifest::{Manifest, TableDigest};
use super::read::{digest_table, extras, for_each_row, sorted_columns, tables, State};
use super::take::{fresh_dir, read_manifest, sign_state, write_manifest};
use super::{check, LOGICAL};
use crate::conn::MultiBackend;
use crate::db::Db;
use crate::error::{Error, IntegrityKind, Result};
use crate::migrate::LEDGER_TABLE;
use crate::tx::{IsolationLevel, TxOptions};
use diesel::sql_types::{Nullable, Text};
use diesel::RunQueryDsl;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// Tables a logical export leaves out: the target keeps its own schema history, and
/// coordinator decisions belong to the source's in-doubt transactions.
const NOT_EXPORTED: [&str; 2] = [LEDGER_TABLE, "custodian_coordinator_log"];

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config("backup", format!("cannot {what} {}: {e}", path.display()))
}

fn table_file(dir: &Path, table: &str) -> Result<std::path::PathBuf> {
    if table.is_empty() || table.contains(['/', '\\']) || table.starts_with('.') {
        return Err(Error::config(
            "backup",
            format!("table name {table:?} cannot name a file"),
        ));
    }
    Ok(dir.join("tables").join(format!("{table}.jsonl")))
}

/// Exports `db` into the new directory `dir` in the portable logical form, read in one
/// repeatable-read snapshot, with a manifest signed with `key`.
pub fn export(db: &Db, dir: &Path, key: &SigningKey) -> Result<Manifest> {
    fresh_dir(dir)?;
    let tables_dir = dir.join("tables");
    std::fs::create_dir_all(&tables_dir).map_err(|e| io_error("create", &tables_dir, e))?;
    let backend = db.backend();
    let options = TxOptions {
        isolation: Some(IsolationLevel::RepeatableRead),
        read_only: true,
        primary: true,
        ..TxOptions::default()
    };
    let taken_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let state = db.transaction_with(&options, |s| {
        let conn = s.connection();
        let mut digests = BTreeMap::new();
        for table in tables(conn, backend.backup(), backend, &NOT_EXPORTED)? {
            let path = table_file(dir, &table)?;
            let file = std::fs::File::create(&path).map_err(|e| io_error("write", &path, e))?;
            let mut out = BufWriter::new(file);
            let columns = sorted_columns(conn, backend, &table)?;
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let mut line = serde_json::to_string(&names).unwrap_or_default();
            line.push('\n');
            out.write_all(line.as_bytes())
                .map_err(|e| io_error("write", &path, e))?;
            let mut hasher = TableHasher::new();
            for_each_row(conn, backend, &table, &columns, |values| {
                hasher.add(&values);
                let mut line = serde_json::to_string(&values).unwrap_or_default();
                line.push('\n');
                out.write_all(line.as_bytes())
                    .map_err(|e| io_error("write", &path, e))
            })?;
            out.flush().map_err(|e| io_error("write", &path, e))?;
            digests.insert(
                table,
                TableDigest {
                    columns: names.iter().map(|n| n.to_string()).collect(),
                    rows: hasher.rows(),
                    hash: hasher.hex(),
                },
            );
        }
        let (migrations, audit_head) = extras(conn, backend)?;
        Ok(State {
            tables: digests,
            migrations,
            audit_head,
        })
    })?;
    let manifest = sign_state(state, backend, LOGICAL, None, None, taken_at, key)?;
    write_manifest(dir, &manifest)?;
    Ok(manifest)
}

/// Imports the logical export in `dir` (manifest signed by one of `trusted`) into `db`, in one
/// transaction. Every exported table must exist in `db` with the same column names and no
/// rows: create the application's tables first (its migrations, or `create_tables`);
/// custodian's own tables (audit trail, subject keys) are created here when missing. Open `db`
/// with the source's audit key: the imported trail stays sealed under it. Each file's rows are checked against the manifest's digest; a file that
/// differs rolls the whole import back. Tables are loaded parents first, by the foreign keys of
/// the entities `db` knows (those its `create_table(s)` made), the others in name order before
/// them; a foreign key between tables `db` has no entity for must allow that order. Verify the
/// result with
/// [`verify`](super::verify).
pub fn import_into(dir: &Path, db: &Db, trusted: &[VerifyingKey]) -> Result<Manifest> {
    let manifest = read_manifest(dir)?;
    if let Some(edited) = check::signature_finding(&manifest, trusted)? {
        return Err(Error::integrity(IntegrityKind::Backup, edited.to_string()));
    }
    if manifest.body.kind != LOGICAL {
        return Err(Error::config(
            "backup",
            "this is a physical backup: load it with restore, into the same engine",
        ));
    }
    create_own_tables(db, &manifest)?;
    let backend = db.backend();
    db.transaction(|s| {
        let tables = load_order(&manifest, &s.known_entities())?;
        let conn = s.connection();
        clear_fresh_audit_head(conn, backend, &manifest)?;
        for (table, expected) in tables {
            let columns = sorted_columns(conn, backend, table)?;
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            if names != expected.columns {
                return Err(Error::config(
                    "backup",
                    format!(
                        "table {table}: the target has columns {names:?}, the export {:?}",
                        expected.columns
                    ),
                ));
            }
            if digest_table(conn, backend, table)?.rows != 0 {
                return Err(Error::config(
                    "backup",
                    format!("table {table} already has rows: import into empty tables"),
                ));
            }
            let path = table_file(dir, table)?;
            let file = std::fs::File::open(&path).map_err(|e| io_error("read", &path, e))?;
            let mut lines = std::io::BufReader::new(file).lines();
            let header: Vec<String> = lines
                .next()
                .transpose()
                .map_err(|e| io_error("read", &path, e))?
                .and_then(|l| serde_json::from_str(&l).ok())
                .unwrap_or_default();
            if header != expected.columns {
                return Err(damaged(table, "its column line differs from the manifest"));
            }
            let per_statement = (backend.max_bind_params() / columns.len().max(1)).clamp(1, 500);
            let mut hasher = TableHasher::new();
            let mut batch: Vec<Vec<Option<String>>> = Vec::with_capacity(per_statement);
            for line in lines {
                let line = line.map_err(|e| io_error("read", &path, e))?;
                let values: Vec<Option<String>> = serde_json::from_str(&line)
                    .ok()
                    .filter(|v: &Vec<Option<String>>| v.len() == columns.len())
                    .ok_or_else(|| damaged(table, "a line is not a row of its columns"))?;
                hasher.add(&values);
                batch.push(values);
                if batch.len() == per_statement {
                    insert(conn, backend, table, &columns, &batch)?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                insert(conn, backend, table, &columns, &batch)?;
            }
            if hasher.rows() != expected.rows || hasher.hex() != expected.hash {
                return Err(damaged(table, "its rows differ from the manifest's digest"));
            }
            backend
                .backup()
                .after_import(conn, table)
                .map_err(|e| backend.classify(e))?;
        }
        Ok(())
    })?;
    Ok(manifest)
}

/// Creates custodian's own tables (audit trail, subject keys, transaction outcomes) that the
/// export has and `db` lacks, empty: `install_audit` would write the head rows the import
/// brings. Any other missing table is the application's to create.
fn create_own_tables(db: &Db, manifest: &Manifest) -> Result<()> {
    let own: Vec<crate::entity::EntityMeta> = crate::audit::tables::ALL
        .into_iter()
        .chain([crate::crypto::store::SUBJECT_KEYS, crate::outcome::TABLE])
        .collect();
    let present = {
        let mut s = db.session()?;
        tables(s.connection(), db.backend().backup(), db.backend(), &[])?
    };
    let mut missing = Vec::new();
    for table in manifest.body.tables.keys() {
        if present.contains(table) {
            continue;
        }
        match own.iter().find(|m| m.table == table) {
            Some(meta) => missing.push(*meta),
            None => {
                return Err(Error::config(
                    "backup",
                    format!(
                        "table {table} does not exist: create the application's tables (its \
                         migrations or create_tables) before the import"
                    ),
                ))
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        db.create_tables(&missing)
    }
}

/// An audit trail installed on the target but empty (no record, no link) has only the head
/// rows its installation wrote; the export brings the source's, which replace them.
fn clear_fresh_audit_head(
    conn: &mut crate::conn::AnyConnection,
    backend: &dyn crate::backend::Backend,
    manifest: &Manifest,
) -> Result<()> {
    use crate::audit::tables::{AUDIT, CHAIN, HEAD};
    if !manifest.body.tables.contains_key(HEAD.table) {
        return Ok(());
    }
    for meta in [AUDIT, CHAIN] {
        if digest_table(conn, backend, meta.table)?.rows != 0 {
            return Ok(());
        }
    }
    diesel::sql_query(format!("DELETE FROM {}", HEAD.table))
        .execute(conn)
        .map_err(|e| backend.classify(e))?;
    Ok(())
}

fn damaged(table: &str, why: &str) -> Error {
    Error::integrity(
        IntegrityKind::Backup,
        format!("the export's file for table {table} is damaged: {why}; nothing was imported"),
    )
}

fn insert(
    conn: &mut crate::conn::AnyConnection,
    backend: &dyn crate::backend::Backend,
    table: &str,
    columns: &[crate::schema::LiveColumn],
    rows: &[Vec<Option<String>>],
) -> Result<()> {
    let sql = backend.backup().import_sql(table, columns, rows.len());
    let mut query = diesel::sql_query(sql).into_boxed::<MultiBackend>();
    for row in rows {
        for value in row {
            query = query.bind::<Nullable<Text>, _>(value.clone());
        }
    }
    query.execute(conn).map_err(|e| backend.classify(e))?;
    Ok(())
}

/// The export's tables in the order they can be loaded: those of no entity `db` knows first
/// (custodian's own tables, which reference nothing), in name order, then the known entities'
/// tables with every referenced table before the tables referencing it.
fn load_order<'m>(
    manifest: &'m Manifest,
    known: &[crate::entity::EntityMeta],
) -> Result<Vec<(&'m String, &'m super::manifest::TableDigest)>> {
    let order: Vec<&str> = crate::schema::dependency_order(known)?
        .iter()
        .map(|m| m.table)
        .collect();
    let mut tables: Vec<_> = manifest.body.tables.iter().collect();
    tables.sort_by_key(|(t, _)| order.iter().position(|o| o == t).map_or(0, |p| p + 1));
    Ok(tables)
}
