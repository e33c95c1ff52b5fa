//! Upgrades: the schema's migrations are tried on a copy first
//! (`shoko upgrade --dry-run`: duration, row counts before and after, the
//! consistency check afterwards), and applied only after a verified backup
//! (`shoko upgrade`). A service pack is then a command, not a week of
//! validating by hand on a test machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use shoko_store::{Engine, SchemaState, Store, StoreOptions};

use crate::backup;

/// What an upgrade (or its dry run) did.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    /// The schema before.
    pub before: SchemaState,
    /// Migrations applied (on the copy, for a dry run).
    pub applied: Vec<String>,
    /// Seconds the migrations took.
    pub seconds: f64,
    /// What looks wrong afterwards: rows lost, inconsistencies, the
    /// migration's error. Empty when the upgrade is safe.
    pub problems: Vec<String>,
    /// The backup taken first (a real upgrade).
    pub backup: Option<PathBuf>,
}

impl UpgradeReport {
    /// The schema is current: nothing was done.
    fn nothing_to_do(before: SchemaState) -> UpgradeReport {
        UpgradeReport {
            before,
            applied: Vec::new(),
            seconds: 0.0,
            problems: Vec::new(),
            backup: None,
        }
    }
}

/// Runs the pending migrations on `store` and checks the result.
async fn migrate_and_check(store: &Store, before: SchemaState) -> UpgradeReport {
    let mut problems = Vec::new();
    let counts_before = store.backup_counts().await;
    let started = Instant::now();
    let applied = match store.upgrade().await {
        Ok(a) => a,
        Err(e) => {
            problems.push(format!("the migration failed: {e}"));
            Vec::new()
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    match (counts_before, store.backup_counts().await) {
        (Ok(b), Ok(a)) => {
            for (table, n) in &b.tables {
                let after = a.tables.get(table).copied().unwrap_or(0);
                if after != *n {
                    problems.push(format!("{table}: {n} rows before, {after} after"));
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => problems.push(format!("cannot count rows: {e}")),
    }
    match store.circulation_problems().await {
        Ok(p) => problems.extend(p),
        Err(e) => problems.push(format!("cannot check circulation: {e}")),
    }
    UpgradeReport {
        before,
        applied,
        seconds,
        problems,
        backup: None,
    }
}

/// Tries the pending migrations on a copy of the database at `url` (a file
/// in `scratch`, or a scratch database on the same PostgreSQL server) and
/// reports; the database itself is not changed.
pub async fn dry_run(url: &str, scratch: &Path) -> anyhow::Result<UpgradeReport> {
    let (store, before) = Store::open_for_upgrade(url, &StoreOptions::default()).await?;
    if before.pending.is_empty() {
        store.close().await?;
        return Ok(UpgradeReport::nothing_to_do(before));
    }
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let dir = tempfile::tempdir_in(scratch)?;
    let copy = dir.path().join(match store.engine() {
        Engine::Sqlite => "dry-run.db",
        Engine::Postgres => "dry-run.dump",
    });
    backup::backup(&store, url, &copy).await?;
    store.close().await?;
    let report = backup::with_restored_copy(&copy, url, async |copy_url: String| {
        let (copy_store, _) = Store::open_for_upgrade(&copy_url, &StoreOptions::default()).await?;
        let report = migrate_and_check(&copy_store, before).await;
        copy_store.close().await?;
        Ok(report)
    })
    .await?;
    Ok(report)
}

/// Takes a backup into `backup_dest` and verifies it, then applies the
/// pending migrations and checks the result.
pub async fn upgrade(url: &str, backup_dest: &Path) -> anyhow::Result<UpgradeReport> {
    let (store, before) = Store::open_for_upgrade(url, &StoreOptions::default()).await?;
    if before.pending.is_empty() {
        store.close().await?;
        return Ok(UpgradeReport::nothing_to_do(before));
    }
    backup::backup(&store, url, backup_dest)
        .await
        .context("the backup before the upgrade failed; nothing was changed")?;
    backup::verify(backup_dest, Some(url))
        .await
        .context("the backup before the upgrade does not verify; nothing was changed")?;
    let mut report = migrate_and_check(&store, before).await;
    report.backup = Some(backup_dest.to_owned());
    store.close().await?;
    Ok(report)
}
