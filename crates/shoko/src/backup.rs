//! `shoko backup`, `shoko backup --verify` and `shoko restore`: online,
//! consistent backups (SQLite `VACUUM INTO`; PostgreSQL `pg_dump` of an
//! exported snapshot) with a manifest of row counts beside them, proved by
//! opening the copy and counting again.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use shoko_store::{BackupCounts, Engine, Store, StoreOptions};

/// What is written beside a backup: `FILE.manifest.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    engine: String,
    created_at: String,
    counts: BackupCounts,
}

fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// The PostgreSQL client tool `name`: on the PATH, else from the newest
/// server installation.
fn pg_tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.is_file())
                .collect();
            dirs.sort_by_key(|p| {
                p.components()
                    .rev()
                    .nth(2)
                    .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
                    .unwrap_or(0)
            });
            dirs.pop()
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run(cmd: &mut std::process::Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {what} (install the PostgreSQL client tools)"))?;
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Takes a backup of the running database into `dest`.
pub async fn backup(store: &Store, url: &str, dest: &Path) -> anyhow::Result<BackupCounts> {
    ensure!(
        !dest.exists(),
        "{} exists already; choose a new name",
        dest.display()
    );
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let counts = match store.engine() {
        Engine::Sqlite => {
            store.vacuum_into(&partial).await?;
            let copy = Store::open(
                &crate::config::sqlite_url(&partial),
                &StoreOptions::default(),
            )
            .await
            .context("the new backup does not open")?;
            let counts = copy.backup_counts().await?;
            copy.close().await?;
            for suffix in ["-wal", "-shm"] {
                let mut side = partial.as_os_str().to_owned();
                side.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(side));
            }
            counts
        }
        Engine::Postgres => {
            let snapshot = store.export_snapshot().await?;
            let dumped = run(
                std::process::Command::new(pg_tool("pg_dump"))
                    .arg("--format=custom")
                    .arg(format!("--snapshot={}", snapshot.id))
                    .arg("--file")
                    .arg(&partial)
                    .arg(url),
                "pg_dump",
            );
            let counts = snapshot.counts.clone();
            snapshot.release().await?;
            dumped?;
            counts
        }
    };
    std::fs::rename(&partial, dest)
        .with_context(|| format!("cannot move the backup to {}", dest.display()))?;
    let manifest = Manifest {
        engine: store.engine().name().to_owned(),
        created_at: chrono::Utc::now().to_rfc3339(),
        counts: counts.clone(),
    };
    std::fs::write(manifest_path(dest), serde_json::to_vec_pretty(&manifest)?)
        .context("cannot write the manifest")?;
    Ok(counts)
}

/// Proves a backup opens and holds the rows its manifest says. A
/// PostgreSQL dump is restored into a scratch database on `server_url`'s
/// server, counted and dropped.
pub async fn verify(file: &Path, server_url: Option<&str>) -> anyhow::Result<BackupCounts> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(manifest_path(file))
            .with_context(|| format!("no manifest beside {}", file.display()))?,
    )
    .context("the manifest is not valid")?;
    let counts = if manifest.engine == Engine::Sqlite.name() {
        let dir = tempfile::tempdir()?;
        let copy = dir.path().join("verify.db");
        std::fs::copy(file, &copy).with_context(|| format!("cannot read {}", file.display()))?;
        let store = Store::open(&crate::config::sqlite_url(&copy), &StoreOptions::default())
            .await
            .with_context(|| format!("{} does not open as a Shoko database", file.display()))?;
        let counts = store.backup_counts().await?;
        store.close().await?;
        counts
    } else {
        let Some(server) = server_url.filter(|u| u.starts_with("postgres")) else {
            bail!(
                "verifying a PostgreSQL backup needs --database postgres://… (a server to restore it on)"
            );
        };
        let scratch = format!("shoko_verify_{}", std::process::id());
        let admin = Store::open_raw(server).await?;
        admin
            .execute_sql(&format!("DROP DATABASE IF EXISTS {scratch}"))
            .await?;
        admin
            .execute_sql(&format!("CREATE DATABASE {scratch}"))
            .await?;
        let target = match server.rsplit_once('/') {
            Some((s, _)) => format!("{s}/{scratch}"),
            None => bail!("the database URL has no database part"),
        };
        let restored = run(
            std::process::Command::new(pg_tool("pg_restore"))
                .args(["--no-owner", "--dbname"])
                .arg(&target)
                .arg(file),
            "pg_restore",
        );
        let counts = match restored {
            Ok(()) => {
                let store = Store::open(&target, &StoreOptions::default()).await?;
                let c = store.backup_counts().await;
                store.close().await?;
                c.map_err(anyhow::Error::from)
            }
            Err(e) => Err(e),
        };
        admin
            .execute_sql(&format!("DROP DATABASE IF EXISTS {scratch}"))
            .await?;
        counts?
    };
    ensure!(
        counts == manifest.counts,
        "the backup's rows differ from its manifest: {:?} against {:?}",
        counts.tables,
        manifest.counts.tables
    );
    Ok(counts)
}

/// Restores a backup: a SQLite file becomes `db_file` (refused if one is
/// there, unless `force`); a PostgreSQL dump is restored into `url`.
pub async fn restore(
    file: &Path,
    url: &str,
    db_file: Option<&Path>,
    force: bool,
) -> anyhow::Result<()> {
    match Engine::from_url(url)? {
        Engine::Sqlite => {
            let dest = db_file.context("a SQLite restore needs the database file")?;
            ensure!(
                force || !dest.exists(),
                "{} exists; move it away or pass --force",
                dest.display()
            );
            let partial = dest.with_extension("restoring");
            std::fs::copy(file, &partial)
                .with_context(|| format!("cannot read {}", file.display()))?;
            std::fs::File::open(&partial)?.sync_all()?;
            for suffix in ["-wal", "-shm"] {
                let mut side = dest.as_os_str().to_owned();
                side.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(side));
            }
            std::fs::rename(&partial, dest)?;
        }
        Engine::Postgres => run(
            std::process::Command::new(pg_tool("pg_restore"))
                .args(["--clean", "--if-exists", "--no-owner", "--dbname"])
                .arg(url)
                .arg(file),
            "pg_restore",
        )?,
    }
    Ok(())
}
