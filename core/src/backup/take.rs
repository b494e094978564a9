//! Physical backups with the engine's own tool, and their restore. The manifest is read from
//! the same snapshot as the dump (see [`Snapshot`]); several databases are backed up at a
//! common cut by holding a coordinator's commits while their snapshots start.

use super::manifest::{DumpFile, Manifest, ManifestBody};
use super::read::{read_state, State};
use super::{check, MANIFEST_FILE, PHYSICAL};
use crate::audit::Checkpoint;
use crate::backend::{Backend, Snapshot};
use crate::config::DatabaseUrl;
use crate::coordinate::Coordinator;
use crate::db::Db;
use crate::error::{Error, IntegrityKind, Result};
use crate::session::Session;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config("backup", format!("cannot {what} {}: {e}", path.display()))
}

/// Hex SHA-256 of a file's content.
pub(crate) fn file_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| io_error("read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| io_error("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A new, empty backup directory.
pub(crate) fn fresh_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let empty = std::fs::read_dir(dir)
        .map_err(|e| io_error("read", dir, e))?
        .next()
        .is_none();
    if !empty {
        return Err(Error::config(
            "backup",
            format!(
                "{} is not empty: back up into a new directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Writes the signed manifest into `dir`.
pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, manifest.to_json()).map_err(|e| io_error("write", &path, e))
}

/// Reads the manifest in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
    Manifest::from_json(&text)
}

/// Signs `state` as the manifest of a backup.
pub(crate) fn sign_state(
    state: State,
    backend: &dyn Backend,
    kind: &str,
    dump: Option<DumpFile>,
    cut: Option<String>,
    taken_at: String,
    key: &SigningKey,
) -> Result<Manifest> {
    // An empty chain (sequence 0) has nothing a checkpoint could cover; its head row is
    // still compared.
    let checkpoint = state
        .audit_head
        .as_ref()
        .filter(|h| h.seq > 0)
        .map(|h| Checkpoint::sign(h.seq, &h.hash, key));
    let body = ManifestBody {
        format: 1,
        id: uuid::Uuid::new_v4().to_string(),
        cut,
        backend: backend.kind().to_string(),
        taken_at,
        kind: kind.to_string(),
        dump,
        tables: state.tables,
        migrations: (kind == PHYSICAL).then_some(state.migrations),
        audit_head: state.audit_head,
        checkpoint,
    };
    Manifest::sign(body, key)
}

/// A backup whose snapshot is open.
struct Started {
    session: Session,
    snapshot: Snapshot,
    taken_at: String,
    out: PathBuf,
    /// Where to read the manifest from, once dumped (`Some(None)`: the snapshot's session).
    dumped: Option<Option<DatabaseUrl>>,
}

fn start(db: &Db, dir: &Path) -> Result<Started> {
    fresh_dir(dir)?;
    let backend = db.backend();
    let mut session = db.session()?;
    let snapshot = session.run(|c| backend.backup().begin_snapshot(c))?;
    Ok(Started {
        session,
        snapshot,
        taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        out: dir.join(backend.backup().dump_file_name()),
        dumped: None,
    })
}

fn dump(db: &Db, started: &mut Started) -> Result<()> {
    if started.dumped.is_none() {
        let source =
            db.backend()
                .backup()
                .dump(&db.config().url, &started.snapshot, &started.out)?;
        started.dumped = Some(source);
    }
    Ok(())
}

fn finish(
    db: &Db,
    dir: &Path,
    mut started: Started,
    cut: Option<String>,
    key: &SigningKey,
) -> Result<Manifest> {
    let backend = db.backend();
    let read = dump(db, &mut started).and_then(|()| match started.dumped.clone().flatten() {
        Some(copy) => read_state(&mut backend.establish(&copy)?, backend, &[]),
        None => read_state(started.session.connection(), backend, &[]),
    });
    let ended = started.session.run(|c| backend.backup().end_snapshot(c));
    let state = read?;
    ended?;
    let dump = DumpFile {
        file: backend.backup().dump_file_name().to_string(),
        tool: backend.backup().tool().to_string(),
        sha256: file_sha256(&started.out)?,
    };
    let manifest = sign_state(
        state,
        backend,
        PHYSICAL,
        Some(dump),
        cut,
        started.taken_at,
        key,
    )?;
    write_manifest(dir, &manifest)?;
    Ok(manifest)
}

/// Ends a snapshot left open by a failed backup, so its connection goes back clean.
fn abandon(db: &Db, started: &mut Started) {
    let _ = started
        .session
        .run(|c| db.backend().backup().end_snapshot(c));
}

/// Backs up `db` into the new directory `dir` with the engine's own tool, and writes a
/// manifest signed with `key` read from the same snapshot: `pg_dump` joining the manifest's
/// exported snapshot (writers go on); `mariadb-dump --single-transaction` while writers are
/// held out by a read lock (readers go on); SQLite `VACUUM INTO`, the manifest read from the
/// copy. Returns the manifest.
pub fn backup(db: &Db, dir: &Path, key: &SigningKey) -> Result<Manifest> {
    let started = start(db, dir)?;
    finish(db, dir, started, None, key)
}

/// Backs up several databases at a common cut, each into `dir/<name>`: `coordinator`'s
/// commits are held while every snapshot starts, so no transaction it coordinates is in one
/// backup and not in another. Commits of other coordinators are not held. The manifests share
/// a `cut` id.
pub fn backup_cut(
    coordinator: &Coordinator,
    dbs: &[(&str, &Db)],
    dir: &Path,
    key: &SigningKey,
) -> Result<Vec<Manifest>> {
    let cut = uuid::Uuid::new_v4().to_string();
    let mut started: Vec<Started> = Vec::with_capacity(dbs.len());
    let opened = coordinator.hold_commits(|| -> Result<()> {
        for (name, db) in dbs {
            let mut s = start(db, &dir.join(name))?;
            // A copy-as-snapshot (SQLite) is the snapshot: make it inside the hold.
            let copied = if s.snapshot == Snapshot::FromCopy {
                dump(db, &mut s)
            } else {
                Ok(())
            };
            started.push(s);
            copied?;
        }
        Ok(())
    });
    if let Err(e) = opened {
        for (s, (_, db)) in started.iter_mut().zip(dbs) {
            abandon(db, s);
        }
        return Err(e);
    }
    let mut manifests = Vec::with_capacity(dbs.len());
    let mut failed = None;
    for (s, (name, db)) in started.into_iter().zip(dbs) {
        let mut s = s;
        if failed.is_some() {
            abandon(db, &mut s);
            continue;
        }
        match finish(db, &dir.join(name), s, Some(cut.clone()), key) {
            Ok(m) => manifests.push(m),
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(manifests),
    }
}

/// Restores the backup in `dir` into the database at `url` (same engine, no tables yet),
/// after checking that its manifest is signed by one of `trusted` and that the dump is the
/// one the manifest names (SHA-256). `backends` are those this build has (the facade's
/// `custodian::backup::restore` passes them). Verify the result with [`check::verify`].
pub fn restore_with(
    dir: &Path,
    url: &DatabaseUrl,
    backends: &[&'static dyn Backend],
    trusted: &[VerifyingKey],
) -> Result<Manifest> {
    let manifest = read_manifest(dir)?;
    if let Some(edited) = check::signature_finding(&manifest, trusted)? {
        return Err(Error::integrity(IntegrityKind::Backup, edited.to_string()));
    }
    let Some(dump) = &manifest.body.dump else {
        return Err(Error::config(
            "backup",
            "this is a logical export: load it with `import` (custodian import), not restore",
        ));
    };
    let backend = backends
        .iter()
        .copied()
        .find(|b| b.schemes().contains(&url.scheme()))
        .ok_or_else(|| Error::config("url", format!("no backend for {}", url.redacted())))?;
    if backend.kind().to_string() != manifest.body.backend {
        return Err(Error::config(
            "backup",
            format!(
                "a {} backup restores into {} only; move data between engines with a logical \
                 export (custodian export / import)",
                manifest.body.backend, manifest.body.backend
            ),
        ));
    }
    let file = dir.join(&dump.file);
    if file_sha256(&file)? != dump.sha256 {
        return Err(Error::integrity(
            IntegrityKind::Backup,
            format!(
                "{} is not the dump this manifest was signed for (SHA-256 differs)",
                file.display()
            ),
        ));
    }
    {
        let mut conn = backend.establish(url)?;
        let tables = backend
            .backup()
            .tables(&mut conn)
            .map_err(|e| backend.classify(e))?;
        if !tables.is_empty() {
            return Err(Error::config(
                "backup",
                format!(
                    "{} already has tables ({}): restore into a new, empty database",
                    url.redacted(),
                    tables.join(", ")
                ),
            ));
        }
    }
    backend.backup().restore(url, &file)?;
    Ok(manifest)
}
