//! Schema migrations: SQL files generated from entities, applied in order, guarded by checksums.
//!
//! A migration directory holds one sub-directory per backend (`postgres`, `mysql`, `sqlite`,
//! as [`BackendKind`] displays), each laid out as diesel's file-based migrations:
//!
//! ```text
//! migrations/
//!   postgres/20250101120000_init/up.sql
//!   postgres/20250101120000_init/down.sql
//!   postgres/20250101120000_init/schema.json
//!   mysql/20250101120000_init/...
//!   sqlite/20250101120000_init/...
//! ```
//!
//! [`generate`] writes a new migration for every backend holding the differences between the
//! entities and the model stored with the newest migration (`schema.json`, a [`Snapshot`]):
//! tables created and dropped, columns added, dropped, renamed and changed, indexes and
//! constraints added and dropped, with `down.sql` reversing them. It refuses changes that lose
//! data ([`Error::DataLoss`]) unless [`GenerateOptions::allow_data_loss`] is set, and writes
//! nothing when nothing changed. See [`generate_with`].
//!
//! [`Db::run_migrations`](crate::Db::run_migrations)
//! [`Db::run_migrations`](crate::Db::run_migrations) applies the pending ones of the database's
//! backend with diesel's [`MigrationHarness`] (which keeps its own
//! `__diesel_schema_migrations` table, so the diesel CLI sees the same state) and records each
//! applied migration with the SHA-256 of its `up.sql` in the table [`LEDGER_TABLE`]. Before
//! anything runs, every applied migration's `up.sql` is hashed again: a migration edited after
//! it was applied fails the run with [`Error::Integrity`] and nothing is executed.
//!
//! Each migration runs in a transaction together with its ledger row on PostgreSQL and SQLite;
//! MariaDB commits DDL implicitly, so a migration failing half-way there leaves its first
//! statements applied. On SQLite, foreign-key enforcement is off while migrations run (a table
//! rebuild drops the old table, whose rows must not cascade), and each migration must leave no
//! foreign-key violation behind before it commits (see [`Backend::before_migrations`]).

use crate::backend::Backend;
use crate::conn::{AnyConnection, MultiBackend};
use crate::context::Context;
use crate::error::{BackendKind, DbError, Error, IntegrityKind, Result};
use crate::tx::TxOptions;
use diesel::migration::{Migration, MigrationSource};
use diesel::prelude::*;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

mod generate;

pub use crate::schema::diff::{diff, undo_hints, AlterOp, SchemaChange, TableAlter};
pub use crate::schema::loss::{losses, widens, LossKind, LossyChange};
pub use crate::schema::model::{
    CheckDef, ColumnDef, ForeignKeyDef, IndexDef, Snapshot, TableDef, SNAPSHOT_FORMAT,
};
pub use generate::{
    changes_sql, generate, generate_with, last_snapshot, migration_sql, GenerateOptions,
    SNAPSHOT_FILE,
};

/// The table recording applied migrations: `version`, `name` (directory name) and `checksum`
/// (hex SHA-256 of `up.sql`).
pub const LEDGER_TABLE: &str = "custodian_migrations";

#[allow(missing_docs)]
mod ledger {
    diesel::table! {
        custodian_migrations (version) {
            version -> Text,
            name -> Text,
            checksum -> Text,
        }
    }
}
use ledger::custodian_migrations as led;

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS custodian_migrations (\
     version VARCHAR(50) NOT NULL PRIMARY KEY, \
     name VARCHAR(255) NOT NULL, \
     checksum CHAR(64) NOT NULL)";

/// One migration found on disk.
struct Found {
    /// Directory name, `<version>_<name>`.
    name: String,
    /// Version as diesel reads it (the part before the first `_`, without `-`).
    version: String,
    /// Hex SHA-256 of `up.sql`.
    checksum: String,
    /// Path of `up.sql`.
    up: PathBuf,
    migration: Box<dyn Migration<MultiBackend>>,
}

/// Hex SHA-256 of `bytes`.
pub fn checksum(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn config_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::config("migrations", format!("{}: {message}", path.display()))
}

/// A directory name's version, if it has the shape `<digits and dashes>_<name>`.
fn version_of(dir_name: &str) -> Option<String> {
    let (version, rest) = dir_name.split_once('_')?;
    let ok = !version.is_empty()
        && !rest.is_empty()
        && version.chars().all(|c| c.is_ascii_digit() || c == '-')
        && version.chars().any(|c| c.is_ascii_digit());
    ok.then(|| version.replace('-', ""))
}

/// The migrations of `backend` under `dir`, sorted by version.
fn load(dir: &Path, backend: BackendKind) -> Result<Vec<Found>> {
    if !dir.is_dir() {
        return Err(config_error(dir, "migration directory does not exist"));
    }
    let sub = dir.join(backend.to_string());
    if !sub.is_dir() {
        return Err(config_error(
            &sub,
            format!("no {backend} migrations: the directory does not exist"),
        ));
    }
    let source = FileBasedMigrations::from_path(&sub).map_err(|e| match e {
        diesel_migrations::MigrationError::UnknownMigrationFormat(p) => {
            config_error(&p, "malformed migration: no up.sql")
        }
        other => config_error(&sub, format!("cannot read migrations: {other}")),
    })?;
    let migrations = MigrationSource::<MultiBackend>::migrations(&source)
        .map_err(|e| config_error(&sub, format!("cannot read migrations: {e}")))?;
    let mut found = Vec::with_capacity(migrations.len());
    let mut seen = HashSet::new();
    for migration in migrations {
        let name = migration.name().to_string();
        let path = sub.join(&name);
        let version = version_of(&name).ok_or_else(|| {
            config_error(
                &path,
                "malformed migration: the directory name must be `<version>_<name>` with a \
                 numeric version (digits and dashes)",
            )
        })?;
        if !seen.insert(version.clone()) {
            return Err(config_error(
                &path,
                format!("malformed migration: version {version} is used twice"),
            ));
        }
        let up = path.join("up.sql");
        let sql = std::fs::read(&up).map_err(|e| config_error(&up, e))?;
        if String::from_utf8_lossy(&sql).trim().is_empty() {
            return Err(config_error(&up, "malformed migration: up.sql is empty"));
        }
        found.push(Found {
            name,
            version,
            checksum: checksum(&sql),
            up,
            migration,
        });
    }
    found.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(found)
}

fn harness_error(kind: BackendKind, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Database {
        source: Box::new(DbError::new(kind, None, format!("{what}: {e}"))),
    }
}

/// `(version, checksum)` rows of the ledger.
type LedgerRows = Vec<(String, String)>;

/// What the database has applied: the ledger's rows, and diesel's versions.
fn applied(s: &mut impl Context, kind: BackendKind) -> Result<(LedgerRows, HashSet<String>)> {
    s.execute_sql(CREATE_LEDGER)?;
    let rows: Vec<(String, String)> = s.run(|c| {
        led::table
            .select((led::version, led::checksum))
            .order(led::version)
            .load(c)
    })?;
    let diesel_versions = MigrationHarness::<MultiBackend>::applied_migrations(s.connection())
        .map_err(|e| harness_error(kind, "reading applied migrations", e))?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    Ok((rows, diesel_versions))
}

/// Verifies checksums, records checksums of migrations diesel applied without custodian, and
/// returns the pending migrations.
fn plan(s: &mut impl Context, kind: BackendKind, found: Vec<Found>) -> Result<Vec<Found>> {
    let (rows, diesel_versions) = applied(s, kind)?;
    let mut edited = Vec::new();
    for (version, sum) in &rows {
        if let Some(f) = found.iter().find(|f| &f.version == version) {
            if &f.checksum != sum {
                edited.push(format!(
                    "migration `{}` was edited after it was applied: {} has SHA-256 {}, {} was recorded",
                    f.name,
                    f.up.display(),
                    f.checksum,
                    sum
                ));
            }
        }
    }
    if !edited.is_empty() {
        return Err(Error::integrity(
            IntegrityKind::MigrationChecksum,
            format!(
                "{}; nothing was run (restore the applied files and add a new migration instead)",
                edited.join("; ")
            ),
        ));
    }
    let mut pending = Vec::new();
    for f in found {
        let recorded = rows.iter().any(|(v, _)| v == &f.version);
        if recorded {
            continue;
        }
        if diesel_versions.contains(&f.version) {
            // Applied by diesel directly: adopt it with today's checksum.
            record(s, &f)?;
            continue;
        }
        pending.push(f);
    }
    Ok(pending)
}

fn record(s: &mut impl Context, f: &Found) -> Result<()> {
    s.run(|c| {
        diesel::insert_into(led::table)
            .values((
                led::version.eq(&f.version),
                led::name.eq(&f.name),
                led::checksum.eq(&f.checksum),
            ))
            .execute(c)
    })
    .map(|_| ())
}

fn apply(s: &mut impl Context, kind: BackendKind, f: &Found) -> Result<()> {
    let conn: &mut AnyConnection = s.connection();
    MigrationHarness::<MultiBackend>::run_migration(conn, f.migration.as_ref())
        .map_err(|e| harness_error(kind, &format!("migration `{}` failed", f.name), e))?;
    record(s, f)
}

/// Applies the pending migrations of the session's backend under `dir`, oldest first; returns
/// the names (`<version>_<name>`) of those applied. See the [module documentation](self).
pub fn run<C: Context>(s: &mut C, dir: &Path) -> Result<Vec<String>> {
    run_with_progress(s, dir, None)
}

/// [`run`], reporting [`Progress`](crate::observe::Progress) (phase `"migrate"`, one unit per
/// migration, the total known up front) to `progress` after each migration is applied.
pub fn run_with_progress<C: Context>(
    s: &mut C,
    dir: &Path,
    progress: Option<crate::observe::ProgressFn<'_>>,
) -> Result<Vec<String>> {
    let backend = s.backend();
    let kind = backend.kind();
    let found = load(dir, kind)?;
    let pending = plan(s, kind, found)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    s.run(|c| backend.before_migrations(c))?;
    let result = apply_all(s, backend, &pending, progress);
    let restored = s.run(|c| backend.after_migrations(c));
    let done = result?;
    restored?;
    Ok(done)
}

fn apply_all<C: Context>(
    s: &mut C,
    backend: &dyn Backend,
    pending: &[Found],
    progress: Option<crate::observe::ProgressFn<'_>>,
) -> Result<Vec<String>> {
    let kind = backend.kind();
    let mut done = Vec::with_capacity(pending.len());
    for f in pending {
        let checked = |s: &mut C| {
            apply(s, kind, f)?;
            let violations = s.run(|c| backend.foreign_key_violations(c))?;
            if violations.is_empty() {
                Ok(())
            } else {
                Err(Error::integrity(
                    IntegrityKind::DanglingForeignKey,
                    format!(
                        "migration `{}` leaves rows whose foreign key has no parent: {}",
                        f.name,
                        violations.join("; ")
                    ),
                ))
            }
        };
        if backend.transactional_ddl() {
            s.transaction_with(&TxOptions::new().no_retry().record_outcome(false), checked)?;
        } else {
            checked(s)?;
        }
        done.push(f.name.clone());
        if let Some(report) = progress {
            report(crate::observe::Progress {
                done: done.len() as u64,
                total: Some(pending.len() as u64),
                phase: "migrate",
            });
        }
    }
    Ok(done)
}

/// The names of the migrations [`run`] would apply, after the same checksum verification.
pub fn pending(s: &mut impl Context, dir: &Path) -> Result<Vec<String>> {
    let kind = s.backend().kind();
    let found = load(dir, kind)?;
    Ok(plan(s, kind, found)?.into_iter().map(|f| f.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert_eq!(
            version_of("20250101120000_init").as_deref(),
            Some("20250101120000")
        );
        assert_eq!(
            version_of("2025-01-01-120000_init").as_deref(),
            Some("20250101120000")
        );
        assert_eq!(version_of("init"), None);
        assert_eq!(version_of("v1_init"), None);
        assert_eq!(
            checksum(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
