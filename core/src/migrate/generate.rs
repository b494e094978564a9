//! Writing migrations: [`generate`] compares the entities with the model stored by the newest
//! migration (`schema.json`) and writes the SQL of the differences for each backend.
//!
//! Each generated migration directory holds `up.sql`, `down.sql` and `schema.json`, the
//! [`Snapshot`] of the entities it was generated from. The next [`generate`] reads the newest
//! snapshot of each backend's directory, [`diff`]s it with the entities given (which must be
//! the whole model: an entity left out is a table to drop), and writes only the changes;
//! `down.sql` is the diff the other way round.

use super::{config_error, version_of};
use crate::backend::Backend;
use crate::entity::EntityMeta;
use crate::error::{BackendKind, Error, Result};
use crate::schema;
use crate::schema::diff::{diff, undo_hints, SchemaChange};
use crate::schema::loss::losses;
use crate::schema::model::{Snapshot, SNAPSHOT_FORMAT};
use std::path::{Path, PathBuf};

/// The file of a migration directory holding the model it was generated from.
pub const SNAPSHOT_FILE: &str = "schema.json";

/// What [`generate_with`] may do beyond the safe changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// Write changes that lose data or fail on existing rows (drop a table or column, narrow
    /// a type, make a column `NOT NULL` without a default) instead of refusing them with
    /// [`Error::DataLoss`].
    pub allow_data_loss: bool,
}

impl GenerateOptions {
    /// The defaults: refuse changes that lose data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`GenerateOptions::allow_data_loss`].
    pub fn allow_data_loss(mut self, allow: bool) -> Self {
        self.allow_data_loss = allow;
        self
    }
}

/// `name` reduced to lower-case ASCII letters, digits and `_`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The migration directories of `sub` (one backend), newest first.
fn migration_dirs(sub: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !sub.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(sub)
        .map_err(|e| config_error(sub, e))?
        .flatten()
    {
        if !e.path().is_dir() {
            continue;
        }
        if let Some(v) = version_of(&e.file_name().to_string_lossy()) {
            out.push((v.parse().unwrap_or(0), e.path()));
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// The next version: the current UTC time as `YYYYMMDDHHMMSS`, or one more than the newest
/// version already in `dir` if that is later, so versions stay unique and sortable.
fn next_version(dir: &Path) -> Result<String> {
    let now: u64 = chrono::Utc::now()
        .format("%Y%m%d%H%M%S")
        .to_string()
        .parse()
        .unwrap_or(0);
    let mut newest = 0u64;
    if dir.is_dir() {
        let subs = std::fs::read_dir(dir).map_err(|e| config_error(dir, e))?;
        for sub in subs.flatten() {
            if let Some((v, _)) = migration_dirs(&sub.path())?.first() {
                newest = newest.max(*v);
            }
        }
    }
    Ok(now.max(newest + 1).to_string())
}

/// The model the newest migration of `backend` under `dir` was generated from: an empty one
/// if there are no migrations. Migrations without a snapshot (written by hand) are skipped;
/// migrations none of which has one are [`Error::Config`], since their tables are unknown.
pub fn last_snapshot(dir: &Path, backend: BackendKind) -> Result<Snapshot> {
    let sub = dir.join(backend.to_string());
    let dirs = migration_dirs(&sub)?;
    for (_, path) in &dirs {
        let file = path.join(SNAPSHOT_FILE);
        if !file.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|e| config_error(&file, e))?;
        let snap: Snapshot = serde_json::from_str(&text)
            .map_err(|e| config_error(&file, format!("malformed snapshot: {e}")))?;
        if snap.format != SNAPSHOT_FORMAT {
            return Err(config_error(
                &file,
                format!(
                    "snapshot format {} is not the supported {SNAPSHOT_FORMAT}",
                    snap.format
                ),
            ));
        }
        return Ok(snap);
    }
    if let Some((_, newest)) = dirs.first() {
        return Err(config_error(
            newest,
            format!(
                "no migration of {} has a {SNAPSHOT_FILE}, so the schema they create is \
                 unknown; generate needs one to compare the entities with (write \
                 `serde_json::to_string(&Snapshot::of(&metas))` of the entities those \
                 migrations create into {}/{SNAPSHOT_FILE})",
                sub.display(),
                newest.display()
            ),
        ));
    }
    Ok(Snapshot {
        format: SNAPSHOT_FORMAT,
        tables: Vec::new(),
    })
}

/// The SQL of `changes` for `backend`, one statement per paragraph.
pub fn changes_sql(backend: &dyn Backend, changes: &[SchemaChange]) -> String {
    let mut out = String::new();
    for change in changes {
        for stmt in backend.schema_change_sql(change) {
            out.push_str(&stmt);
            out.push_str(";\n\n");
        }
    }
    out
}

/// The DDL of a migration creating `metas` (in dependency order) for `backend`: `(up, down)`.
pub fn migration_sql(backend: &dyn Backend, metas: &[EntityMeta]) -> Result<(String, String)> {
    let target = Snapshot::of(&schema::dependency_order(metas)?);
    let empty = Snapshot::default();
    let up = diff(&empty, &target)?;
    let down = diff(&target, &empty)?;
    Ok((changes_sql(backend, &up), changes_sql(backend, &down)))
}

/// [`generate_with`] with the default [`GenerateOptions`]: changes that lose data are refused.
pub fn generate(
    dir: impl AsRef<Path>,
    name: &str,
    metas: &[EntityMeta],
    backends: &[&'static dyn Backend],
) -> Result<Option<Vec<PathBuf>>> {
    generate_with(dir, name, metas, backends, &GenerateOptions::default())
}

/// Writes a migration named `name` taking each of `backends` (pass
/// `custodian::backends::ALL`) from the model of its newest migration under `dir` to the
/// tables of `metas`, which must list every entity of the model: a table the last snapshot has
/// and `metas` lacks is dropped. The first migration creates every table.
///
/// Each backend gets `dir/<backend>/<version>_<name>/` with `up.sql` (tables created parents
/// first; columns added, dropped, renamed (`#[column(renamed_from = "old")]`) and changed;
/// indexes, unique, check and foreign-key constraints added and dropped; PostgreSQL and MariaDB
/// with `ALTER TABLE`, SQLite by rebuilding the table and copying its rows), `down.sql`
/// (the reverse) and [`SNAPSHOT_FILE`] (the model of `metas`). The version is the current UTC
/// time (`YYYYMMDDHHMMSS`), or one more than the newest version in `dir`. Returns the
/// directories written, or `None` when no backend has a change (nothing is written).
///
/// Errors (all found before anything is written, except a failed write): changes that lose
/// data without [`GenerateOptions::allow_data_loss`] are [`Error::DataLoss`] listing each table
/// and column; an empty name, a foreign-key cycle, a primary-key change, migrations of which
/// none has a snapshot, or a file that cannot be read or written are [`Error::Config`].
pub fn generate_with(
    dir: impl AsRef<Path>,
    name: &str,
    metas: &[EntityMeta],
    backends: &[&'static dyn Backend],
    options: &GenerateOptions,
) -> Result<Option<Vec<PathBuf>>> {
    let dir = dir.as_ref();
    let slug = slug(name);
    if slug.is_empty() {
        return Err(Error::config(
            "migrations",
            format!("migration name `{name}` has no letters or digits"),
        ));
    }
    let target = Snapshot::of(&schema::dependency_order(metas)?);
    let stored = Snapshot {
        tables: target
            .tables
            .iter()
            .cloned()
            .map(|mut t| {
                t.columns.iter_mut().for_each(|c| c.renamed_from = None);
                t
            })
            .collect(),
        ..target.clone()
    };
    let mut plans = Vec::with_capacity(backends.len());
    let mut lost = Vec::new();
    for backend in backends {
        let previous = last_snapshot(dir, backend.kind())?;
        let up = diff(&previous, &target)?;
        if changes_sql(*backend, &up).trim().is_empty() {
            continue; // nothing this backend writes as DDL changed
        }
        let down = diff(&stored, &undo_hints(&previous, &up))?;
        for l in losses(&up) {
            if !lost.contains(&l) {
                lost.push(l);
            }
        }
        plans.push((*backend, up, down));
    }
    if !lost.is_empty() && !options.allow_data_loss {
        return Err(Error::DataLoss { changes: lost });
    }
    if plans.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string_pretty(&stored)
        .map_err(|e| config_error(dir, format!("cannot write the snapshot: {e}")))?;
    let version = next_version(dir)?;
    let mut written = Vec::with_capacity(plans.len());
    for (backend, up, down) in plans {
        let path = dir
            .join(backend.kind().to_string())
            .join(format!("{version}_{slug}"));
        std::fs::create_dir_all(&path).map_err(|e| config_error(&path, e))?;
        let files = [
            ("up.sql", changes_sql(backend, &up)),
            ("down.sql", changes_sql(backend, &down)),
            (SNAPSHOT_FILE, json.clone() + "\n"),
        ];
        for (file, text) in files {
            let p = path.join(file);
            std::fs::write(&p, text).map_err(|e| config_error(&p, e))?;
        }
        written.push(path);
    }
    Ok(Some(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug(" Add users & roles! "), "add_users_roles");
    }

    #[test]
    fn versions_increase_within_a_directory() {
        let dir = std::env::temp_dir().join(format!("custodian_mv_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sqlite").join("99990101000000_future")).unwrap();
        assert_eq!(next_version(&dir).unwrap(), "99990101000001");
        // A migration without a snapshot leaves the schema unknown.
        let err = last_snapshot(&dir, BackendKind::Sqlite).unwrap_err();
        assert!(err.to_string().contains(SNAPSHOT_FILE), "{err}");
        assert!(last_snapshot(&dir, BackendKind::Postgres)
            .unwrap()
            .tables
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
