//! Backups: online, consistent copies (SQLite `VACUUM INTO`; PostgreSQL
//! `pg_dump` of an exported snapshot) with a manifest of row counts beside
//! them, proved by opening the copy and counting again; restore; and the
//! daily `backup` job that keeps the newest few. Behind `shoko backup`,
//! `shoko backup --verify`, `shoko restore` and `shoko upgrade`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use shoko_store::{BackupCounts, Engine, Store, StoreOptions};

/// What is written beside a backup: `FILE.manifest.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// `SQLite` or `PostgreSQL`.
    pub engine: String,
    /// When, RFC 3339.
    pub created_at: String,
    /// Rows per table.
    pub counts: BackupCounts,
}

/// The manifest's path beside a backup file.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// The PostgreSQL client tool `name`: on the PATH, else from the newest
/// server installation.
pub fn pg_tool(name: &str) -> PathBuf {
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

pub(crate) fn run(cmd: &mut std::process::Command, what: &str) -> anyhow::Result<()> {
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
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
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
            let (copy, _) = Store::open_for_upgrade(
                &shoko_store::sqlite_url(&partial),
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

/// Opens a working copy of a backup and hands its URL to `work`: a SQLite
/// file is copied into a temporary directory; a PostgreSQL dump is restored
/// into a scratch database on `server_url`'s server, dropped afterwards.
pub async fn with_restored_copy<T>(
    file: &Path,
    server_url: &str,
    work: impl AsyncFnOnce(String) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if !server_url.starts_with("postgres") {
        let dir = tempfile::tempdir()?;
        let copy = dir.path().join("copy.db");
        std::fs::copy(file, &copy).with_context(|| format!("cannot read {}", file.display()))?;
        return work(shoko_store::sqlite_url(&copy)).await;
    }
    let scratch = format!("shoko_scratch_{}", std::process::id());
    let admin = Store::open_raw(server_url).await?;
    admin
        .execute_sql(&format!("DROP DATABASE IF EXISTS {scratch}"))
        .await?;
    admin
        .execute_sql(&format!("CREATE DATABASE {scratch}"))
        .await?;
    let target = match server_url.rsplit_once('/') {
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
    let out = match restored {
        Ok(()) => work(target).await,
        Err(e) => Err(e),
    };
    admin
        .execute_sql(&format!("DROP DATABASE IF EXISTS {scratch}"))
        .await?;
    admin.close().await?;
    out
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
    let server = if manifest.engine == Engine::Sqlite.name() {
        "sqlite:"
    } else {
        match server_url.filter(|u| u.starts_with("postgres")) {
            Some(s) => s,
            None => bail!(
                "verifying a PostgreSQL backup needs --database postgres://… (a server to restore it on)"
            ),
        }
    };
    let counts = with_restored_copy(file, server, async |url: String| {
        let (store, _) = Store::open_for_upgrade(&url, &StoreOptions::default())
            .await
            .with_context(|| format!("{} does not open as a Shoko database", file.display()))?;
        let counts = store.backup_counts().await;
        store.close().await?;
        Ok(counts?)
    })
    .await?;
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

impl crate::App {
    /// Where the daily backups go: `operations.backup_dir`, else
    /// `DATA_DIR/backups`; `None` for an application without a data dir.
    pub fn backup_dir(&self) -> Option<PathBuf> {
        self.operations
            .backup_dir
            .clone()
            .or_else(|| Some(self.operations.data_dir.as_ref()?.join("backups")))
    }

    /// Takes a backup into `dest` (online, consistent) with its manifest.
    pub async fn backup_to(&self, dest: &Path) -> anyhow::Result<BackupCounts> {
        backup(&self.store, &self.database_url, dest).await
    }

    /// Proves a backup opens and holds its manifest's rows; a PostgreSQL
    /// dump is restored into a scratch database on this database's server.
    pub async fn verify_backup(&self, file: &Path) -> anyhow::Result<BackupCounts> {
        verify(file, Some(&self.database_url)).await
    }

    /// The daily backup job: a backup named by its slot's local time,
    /// verified, then all but the newest `operations.backup_keep` removed.
    /// A re-run of the same slot finds the file there and only verifies it.
    pub(crate) async fn backup_job(
        &self,
        slot: i64,
    ) -> Result<crate::jobs::JobOutcome, crate::jobs::JobError> {
        use crate::jobs::JobError;
        let dir = self
            .backup_dir()
            .ok_or_else(|| JobError::Failed("no backup dir: set operations.backup_dir".into()))?;
        let local = chrono::DateTime::from_timestamp_millis(slot)
            .unwrap_or_default()
            .with_timezone(&self.circulation.time_zone);
        let extension = match self.store.engine() {
            Engine::Sqlite => "db",
            Engine::Postgres => "dump",
        };
        let dest = dir.join(format!("shoko-{}.{extension}", local.format("%Y%m%d-%H%M")));
        let failed = |e: anyhow::Error| JobError::Failed(format!("{e:#}"));
        if !dest.exists() || !manifest_path(&dest).exists() {
            let _ = std::fs::remove_file(&dest);
            self.backup_to(&dest).await.map_err(failed)?;
        }
        let counts = self.verify_backup(&dest).await.map_err(failed)?;
        let removed =
            prune_backups(&dir, self.operations.backup_keep.max(1) as usize).map_err(failed)?;
        let mut outcome = crate::jobs::JobOutcome::default();
        outcome.count(
            "records",
            counts.tables.get("records").copied().unwrap_or(0) as u64,
        );
        outcome.count("removed", removed as u64);
        outcome.outputs.push(dest.display().to_string());
        Ok(outcome)
    }
}

/// Removes all but the newest `keep` scheduled backups (`shoko-*.db` or
/// `shoko-*.dump`, newest by name, which is their time) and their
/// manifests; backups named otherwise (by hand, before an upgrade) are left.
pub fn prune_backups(dir: &Path, keep: usize) -> anyhow::Result<usize> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("shoko-") && (name.ends_with(".db") || name.ends_with(".dump"))
        })
        .collect();
    found.sort();
    let old = found.len().saturating_sub(keep);
    for file in &found[..old] {
        std::fs::remove_file(file).with_context(|| format!("cannot remove {}", file.display()))?;
        let _ = std::fs::remove_file(manifest_path(file));
    }
    Ok(old)
}
