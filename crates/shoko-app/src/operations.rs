//! What the systems team watches: whether Shoko is ready to serve (database
//! reachable, index lag within bound, disk space above its threshold, jobs
//! not failing), and the sizes and counts behind it, for `/health/ready`
//! and `/metrics`.

use std::path::Path;

use serde::Serialize;

use crate::App;

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Passed.
    pub ok: bool,
    /// What was found, in words.
    pub detail: String,
}

/// Every readiness check, by name.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// All passed.
    pub ready: bool,
    /// `database`, `index`, `disk`, `jobs`.
    pub checks: std::collections::BTreeMap<&'static str, Check>,
}

/// Numbers for `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gauges {
    /// Outbox rows the index has not applied.
    pub outbox_lag_rows: i64,
    /// Age of the oldest of them.
    pub outbox_lag_seconds: f64,
    /// Records in the index.
    pub index_documents: u64,
    /// Records whose availability is newer than their index documents.
    pub index_shelved: usize,
    /// Bytes of the index directory.
    pub index_bytes: u64,
    /// Bytes of the database (SQLite files or the PostgreSQL database).
    pub database_bytes: u64,
    /// Free bytes on the data dir's filesystem.
    pub disk_free_bytes: Option<u64>,
    /// Pool connections open and idle.
    pub pool: (u32, u32),
    /// Job runs by job and status.
    pub job_runs: Vec<(String, String, i64)>,
}

/// Bytes of the files under a directory (or of one file).
pub(crate) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

impl App {
    fn disk_free(&self) -> Option<u64> {
        let dir = self.operations.data_dir.as_ref()?;
        fs4::available_space(dir).ok()
    }

    /// Whether Shoko is ready to serve, check by check.
    pub async fn readiness(&self) -> Readiness {
        let mut checks = std::collections::BTreeMap::new();
        let db = self.store.ping().await;
        checks.insert(
            "database",
            Check {
                ok: db.is_ok(),
                detail: match db {
                    Ok(()) => format!("{} answers", self.store.engine().name()),
                    Err(e) => e.to_string(),
                },
            },
        );
        let bound = self.operations.max_index_lag_seconds as f64;
        checks.insert(
            "index",
            match self.index_status().await {
                Ok(s) => Check {
                    ok: s.lag_seconds <= bound && s.last_error.is_none(),
                    detail: match &s.last_error {
                        Some(e) => format!("indexing is stuck: {e}"),
                        None => format!(
                            "{} changes behind, oldest {:.1} s (bound {bound} s)",
                            s.lag_rows, s.lag_seconds
                        ),
                    },
                },
                Err(e) => Check {
                    ok: false,
                    detail: e.to_string(),
                },
            },
        );
        let minimum = self.operations.min_free_disk_mb * 1024 * 1024;
        checks.insert(
            "disk",
            match self.disk_free() {
                Some(free) => Check {
                    ok: free >= minimum,
                    detail: format!(
                        "{} MiB free (threshold {} MiB)",
                        free / 1024 / 1024,
                        self.operations.min_free_disk_mb
                    ),
                },
                None => Check {
                    ok: true,
                    detail: "no data dir to watch (database on a server)".into(),
                },
            },
        );
        checks.insert(
            "jobs",
            match self.job_list().await {
                Ok(jobs) => {
                    let failing: Vec<String> = jobs
                        .iter()
                        .filter(|j| {
                            j.last_run.as_ref().is_some_and(|r| {
                                r.status == "failed"
                                    && r.attempt >= i64::from(self.jobs.max_attempts.max(1))
                            })
                        })
                        .map(|j| j.name.to_owned())
                        .collect();
                    Check {
                        ok: failing.is_empty(),
                        detail: if failing.is_empty() {
                            "no job has given up".into()
                        } else {
                            format!("given up after every retry: {}", failing.join(", "))
                        },
                    }
                }
                Err(e) => Check {
                    ok: false,
                    detail: e.to_string(),
                },
            },
        );
        Readiness {
            ready: checks.values().all(|c| c.ok),
            checks,
        }
    }

    /// The numbers `/metrics` shows, read at scrape time.
    pub async fn gauges(&self) -> Gauges {
        let mut g = Gauges::default();
        if let Ok(s) = self.index_status().await {
            g.outbox_lag_rows = s.lag_rows;
            g.outbox_lag_seconds = s.lag_seconds;
            g.index_documents = s.documents;
            g.index_shelved = s.shelved;
        }
        if let Some(dir) = &self.operations.data_dir {
            g.index_bytes = dir_bytes(&dir.join("index"));
        }
        g.database_bytes = self.store.database_bytes().await.unwrap_or(0);
        g.disk_free_bytes = self.disk_free();
        g.pool = self.store.pool_connections();
        g.job_runs = self.store.job_run_counts().await.unwrap_or_default();
        g
    }
}

impl App {
    /// Every consistency problem `shoko check` knows: circulation (item
    /// status, loans, counters, transits, holds), references to rows that
    /// do not exist, and the search index against the outbox and the
    /// database (when the index on disk is open).
    pub async fn consistency_problems(&self) -> Result<Vec<String>, shoko_store::StoreError> {
        let mut problems = self.store.circulation_problems().await?;
        problems.extend(self.store.orphan_problems().await?);
        if !self.search.on_disk() {
            return Ok(problems);
        }
        match self.index_status().await {
            Ok(s) => {
                if s.applied > s.latest {
                    problems.push(format!(
                        "outbox: the index has applied change {} but the newest change is {}: it belongs to another database; run `shoko reindex`",
                        s.applied, s.latest
                    ));
                }
                if let Some(e) = &s.last_error {
                    problems.push(format!(
                        "outbox: indexing is stuck at change {}: {e}",
                        s.applied + 1
                    ));
                }
                let records = self.store.counts().await?.records;
                if s.lag_rows == 0 && u64::try_from(records).unwrap_or(0) != s.documents {
                    problems.push(format!(
                        "index: {} documents but {records} records in the database; run `shoko reindex`",
                        s.documents
                    ));
                }
            }
            Err(e) => problems.push(format!("index: cannot be read: {e}")),
        }
        Ok(problems)
    }
}

/// What the start after an unclean stop found and repaired.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The problems found, in words.
    pub problems: Vec<String>,
    /// Rows repaired per kind.
    pub repaired: Vec<(&'static str, u64)>,
}

impl App {
    fn running_marker(&self) -> Option<std::path::PathBuf> {
        self.operations
            .data_dir
            .as_ref()
            .map(|d| d.join("shoko.running"))
    }

    /// Marks the server as running (a file in the data dir that a clean
    /// stop removes). If the marker is there already, the last run did not
    /// stop cleanly (a power cut, `kill -9`): circulation is checked and
    /// what has a safe repair is repaired, audited, before serving.
    pub async fn start_running(&self) -> Result<Option<Recovery>, crate::circulation::CircError> {
        let Some(marker) = self.running_marker() else {
            return Ok(None);
        };
        let unclean = marker.exists();
        let _ = std::fs::write(&marker, std::process::id().to_string());
        if !unclean {
            return Ok(None);
        }
        let problems = self.store.circulation_problems().await?;
        let mut recovery = Recovery {
            problems,
            repaired: Vec::new(),
        };
        if !recovery.problems.is_empty() {
            let ctx = shoko_store::WriteCtx {
                actor: "system".into(),
                now: self.clock.now_ms(),
                idempotency: None,
            };
            recovery.repaired = self.store.repair_circulation(&ctx).await?;
        }
        Ok(Some(recovery))
    }

    /// Removes the running marker: the server stopped cleanly.
    pub fn stop_running(&self) {
        if let Some(marker) = self.running_marker() {
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// What the operations page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The readiness checks.
    pub readiness: Readiness,
    /// Storage now and its forecast.
    pub capacity: crate::capacity::CapacityReport,
    /// Series over the forecast window, for charts: `disk_free`,
    /// `database`, `index`.
    pub series: Vec<(&'static str, Vec<shoko_store::Point>)>,
    /// `shoko doctor`'s findings.
    pub findings: Vec<crate::doctor::Finding>,
    /// The jobs with their last runs.
    pub jobs: Vec<crate::jobs::JobInfo>,
    /// The largest tables.
    pub tables: Vec<(String, u64)>,
}

impl App {
    /// Everything the operations page shows (staff only).
    pub async fn operations_overview(
        &self,
        caller: &crate::circulation::Caller,
    ) -> Result<Overview, crate::circulation::CircError> {
        caller.actor.require(shoko_domain::Permission::StaffRead)?;
        let capacity = self.capacity().await?;
        let since = self.clock.now_ms() - i64::from(capacity.window_days) * 86_400_000;
        let mut series = Vec::new();
        for name in ["disk_free", "database", "index"] {
            series.push((name, self.store.samples(name, since).await?));
        }
        let mut tables = self.store.table_sizes().await?;
        tables.truncate(10);
        Ok(Overview {
            readiness: self.readiness().await,
            capacity,
            series,
            findings: self.doctor().await,
            jobs: self.job_list().await.map_err(|e| {
                crate::circulation::CircError::Unexpected(match e {
                    crate::jobs::JobError::Store(s) => s,
                    other => shoko_store::StoreError::Corrupt(other.to_string()),
                })
            })?,
            tables,
        })
    }
}
