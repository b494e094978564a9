//! Backup, restore and verify times with custodian next to the engine's own tool alone, on
//! PostgreSQL, MariaDB and SQLite.
//!
//! Per backend: a fresh database with an audited entity `BackupRow` filled with 100,000 rows by
//! `insert_many` in calls of 1,000 (so 100,000 audit records), sealed. Then, per round, in this
//! order (interleaved, so load drifts hit both sides alike):
//!
//! - tool dump: `pg_dump -Fc` / `mariadb-dump --single-transaction` / `sqlite3 .backup`;
//! - custodian backup: the same tool in the manifest's snapshot, plus the manifest (every row
//!   read in canonical form and hashed), signed;
//! - tool restore: `pg_restore` / `mariadb <dump` / file copy, into a new database;
//! - custodian restore: signature and dump hash checked, then the same tool;
//! - custodian verify: every table digested again, and the audit chain walked against the
//!   manifest's checkpoint.
//!
//! Prints the median and the spread (min..max) of each over the rounds, and the ratios
//! custodian / tool. `cargo bench --bench backup -- [ROUNDS] [ROWS]`: 5 rounds, 100,000 rows by
//! default.

#[path = "common/mod.rs"]
mod common;

use common::*;
use custodian::audit::ed25519_dalek::SigningKey;
use custodian::prelude::*;
use custodian::BackendKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[entity(table = "backup_rows")]
#[derive(Debug, Clone)]
pub struct BackupRow {
    #[column(primary_key)]
    pub id: i64,
    pub account: String,
    pub amount: i64,
    pub cleared: bool,
    pub at: chrono::NaiveDateTime,
    pub memo: Option<String>,
}

fn row(i: i64) -> BackupRow {
    BackupRow {
        id: i,
        account: format!("acct-{:05}", i % 5_000),
        amount: i * 37 % 100_000,
        cleared: i % 3 == 0,
        at: chrono::DateTime::from_timestamp(1_700_000_000 + i * 61, (i % 1000) as u32 * 1000)
            .unwrap()
            .naive_utc(),
        memo: (i % 4 == 0).then(|| format!("memo for row {i}")),
    }
}

fn run(mut cmd: Command) -> Res<()> {
    let out = cmd.stdout(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .map_or_else(|| PathBuf::from(tool), |d| d.join(tool))
}

fn url_of(kind: BackendKind, name: &str, sqlite: &Option<PathBuf>) -> String {
    match kind {
        BackendKind::Postgres => format!("{}/{name}", pg_base()),
        BackendKind::Mysql => format!("{}/{name}", mysql_base()),
        _ => format!("sqlite://{}", sqlite.as_ref().unwrap().display()),
    }
}

/// The engine's own tool alone: dump.
fn tool_dump(kind: BackendKind, url: &str, name: &str, out: &Path) -> Res<()> {
    match kind {
        BackendKind::Postgres => {
            let mut c = Command::new(pg_bin("pg_dump"));
            c.args(["-Fc", "--no-owner", "-f"]).arg(out).arg(url);
            run(c)
        }
        BackendKind::Mysql => {
            let mut c = Command::new("mariadb-dump");
            c.args(["-h127.0.0.1", "-P3306", "-uroot", "--protocol=tcp"])
                .args(["--single-transaction", "--hex-blob"])
                .arg(format!("--result-file={}", out.display()))
                .arg(name);
            run(c)
        }
        _ => {
            let path = custodian::backends::sqlite::path_of(url);
            let mut c = Command::new("sqlite3");
            c.arg(path).arg(format!(".backup '{}'", out.display()));
            run(c)
        }
    }
}

/// The engine's own tool alone: restore into the empty database `target`.
fn tool_restore(kind: BackendKind, dump: &Path, target: &str, name: &str) -> Res<()> {
    match kind {
        BackendKind::Postgres => {
            let mut c = Command::new(pg_bin("pg_restore"));
            c.args(["--no-owner", "--single-transaction", "-d", target])
                .arg(dump);
            run(c)
        }
        BackendKind::Mysql => {
            let mut c = Command::new("mariadb");
            c.args(["-h127.0.0.1", "-P3306", "-uroot", "--protocol=tcp"])
                .arg(name)
                .stdin(std::fs::File::open(dump)?);
            run(c)
        }
        _ => {
            std::fs::copy(dump, custodian::backends::sqlite::path_of(target))?;
            Ok(())
        }
    }
}

/// A new, empty database to restore into, and its drop.
struct Empty {
    kind: BackendKind,
    name: String,
    url: String,
    file: Option<PathBuf>,
}

impl Empty {
    fn new(kind: BackendKind, tag: &str) -> Res<Empty> {
        let name = format!("bkb_{tag}_{}", std::process::id());
        let file =
            (kind == BackendKind::Sqlite).then(|| std::env::temp_dir().join(format!("{name}.db")));
        use diesel::connection::SimpleConnection;
        match kind {
            BackendKind::Postgres => {
                pg_admin()?.batch_execute(&format!("CREATE DATABASE {name}"))?
            }
            BackendKind::Mysql => mysql_admin()?.batch_execute(&format!(
                "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))?,
            _ => {}
        }
        Ok(Empty {
            kind,
            url: url_of(kind, &name, &file),
            name,
            file,
        })
    }
}

impl Drop for Empty {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        let _ = match self.kind {
            BackendKind::Postgres => pg_admin().map(|mut c| {
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            }),
            BackendKind::Mysql => mysql_admin()
                .map(|mut c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))),
            _ => {
                if let Some(f) = &self.file {
                    for s in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{s}", f.display()));
                    }
                }
                Ok(Ok(()))
            }
        };
    }
}

fn secs<T>(f: impl FnOnce() -> Res<T>) -> Res<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn bench(kind: BackendKind, rounds: usize, rows: i64) -> Res<()> {
    let fresh = FreshDb::create(kind, "bkb")?;
    let db = fresh.db()?;
    db.install_audit()?;
    db.create_table::<BackupRow>()?;
    let built = Instant::now();
    for start in (0..rows).step_by(1_000) {
        let mut chunk: Vec<BackupRow> = (start..(start + 1_000).min(rows)).map(row).collect();
        db.session()?.insert_many(&mut chunk)?;
    }
    db.seal_audit()?;
    let version = server_version(&mut db.session()?)?;
    println!(
        "\n### {kind}: {version}; {rows} rows, {rows} audit records (built in {:.1} s); load average {}",
        built.elapsed().as_secs_f64(),
        loadavg()
    );
    let url = url_of(kind, &fresh.name, &fresh.sqlite_path);
    let key = SigningKey::from_bytes(&[9; 32]);
    let trusted = [key.verifying_key()];
    let work = std::env::temp_dir().join(format!("bkb_{}_{}", kind, std::process::id()));
    let names = [
        "tool dump",
        "custodian backup",
        "tool restore",
        "custodian restore",
        "custodian verify",
    ];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut size = 0;
    for round in 0..rounds {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let dump = work.join("tool.dump");
        t[0].push(secs(|| tool_dump(kind, &url, &fresh.name, &dump))?);
        let dir = work.join("custodian");
        t[1].push(secs(|| Ok(custodian::backup::backup(db, &dir, &key)?))?);
        let manifest = custodian::backup::read_manifest(&dir)?;
        size = std::fs::metadata(&dump)?.len();
        let plain = Empty::new(kind, &format!("t{round}"))?;
        t[2].push(secs(|| tool_restore(kind, &dump, &plain.url, &plain.name))?);
        let ours = Empty::new(kind, &format!("c{round}"))?;
        t[3].push(secs(|| {
            Ok(custodian::backup::restore(&dir, &ours.url, &trusted)?)
        })?);
        let mut config = custodian::DatabaseConfig::from_url(&ours.url)?;
        config.audit.key = Some(BENCH_AUDIT_KEY.into());
        let restored = custodian::open(config)?;
        let mut intact = false;
        t[4].push(secs(|| {
            intact = custodian::backup::verify(&restored, &manifest, &trusted)?.is_intact();
            Ok(())
        })?);
        if !intact {
            return Err("the restored copy does not match its manifest".into());
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "dump size {:.1} MB; {rounds} rounds; load average after {}",
        size as f64 / 1e6,
        loadavg()
    );
    println!("| step | median s | min..max s |");
    println!("|---|---|---|");
    for (name, v) in names.iter().zip(&t) {
        let (m, lo, hi) = stats(v);
        println!("| {name} | {m:.2} | {lo:.2}..{hi:.2} |");
    }
    let ratio = |a: usize, b: usize| {
        let r: Vec<f64> = t[a].iter().zip(&t[b]).map(|(x, y)| x / y).collect();
        stats(&r)
    };
    for (label, a, b) in [
        ("backup / tool dump", 1, 0),
        ("restore / tool restore", 3, 2),
        ("verify / tool dump", 4, 0),
    ] {
        let (m, lo, hi) = ratio(a, b);
        println!("| ratio {label} | {m:.2} | {lo:.2}..{hi:.2} |");
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rounds = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let rows = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    for target in &TARGETS {
        bench(target.kind, rounds, rows)?;
    }
    Ok(())
}
