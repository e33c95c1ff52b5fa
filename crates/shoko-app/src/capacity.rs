//! Capacity: the `capacity` job samples storage (free space on the data
//! dir's filesystem, the database and each table, PostgreSQL tablespaces,
//! the search index) into `storage_samples`; the report forecasts the days
//! until full from the growth over a recent window and raises alerts when
//! that is too soon or when a day's growth was far above normal. The
//! operations page, `shoko doctor` and `/metrics` show it.

use serde::Serialize;
use shoko_domain::capacity::{self, Forecast, Spike};
use shoko_store::StoreError;

use crate::App;
use crate::jobs::{JobError, JobOutcome};

const DAY_MS: i64 = 86_400_000;

/// Something the systems team must act on.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `days_left` or `spike`.
    pub kind: &'static str,
    /// The series it is about (`disk_free`, `database`, `index`, …).
    pub series: String,
    /// In English.
    pub en: String,
    /// In Japanese.
    pub ja: String,
}

/// What storage looks like now and where it is going.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CapacityReport {
    /// When the latest samples were taken (Unix ms).
    pub sampled_at: Option<i64>,
    /// The latest sample of every series.
    pub latest: Vec<(String, u64)>,
    /// Free space on the data dir's filesystem: its forecast.
    pub disk: Option<Forecast>,
    /// Room left under `operations.database_quota_mb` (PostgreSQL).
    pub quota: Option<Forecast>,
    /// Days of growth the forecast rests on.
    pub window_days: u32,
    /// What needs acting on.
    pub alerts: Vec<Alert>,
}

impl CapacityReport {
    /// The fewest days until something is full, if anything is filling.
    pub fn days_until_full(&self) -> Option<f64> {
        [self.disk, self.quota]
            .into_iter()
            .flatten()
            .filter_map(|f| f.days_until_full)
            .reduce(f64::min)
    }

    /// The latest value of a series.
    pub fn latest(&self, series: &str) -> Option<u64> {
        self.latest
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, b)| *b)
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.0} MiB", bytes / 1_048_576.0)
}

impl App {
    /// Measures storage now: one sample per series.
    pub async fn measure_storage(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut samples = Vec::new();
        let database = self.store.database_bytes().await?;
        samples.push(("database".to_owned(), database));
        for (table, bytes) in self.store.table_sizes().await? {
            samples.push((format!("table:{table}"), bytes));
        }
        for (space, bytes) in self.store.tablespace_sizes().await? {
            samples.push((format!("tablespace:{space}"), bytes));
        }
        if let Some(dir) = &self.operations.data_dir {
            samples.push((
                "index".to_owned(),
                crate::operations::dir_bytes(&dir.join("index")),
            ));
            if let Ok(free) = fs4::available_space(dir) {
                samples.push(("disk_free".to_owned(), free));
            }
        }
        if let Some(quota) = self.operations.database_quota_mb {
            samples.push((
                "quota_free".to_owned(),
                (quota * 1_048_576).saturating_sub(database),
            ));
        }
        Ok(samples)
    }

    /// The capacity report from the stored samples.
    pub async fn capacity(&self) -> Result<CapacityReport, StoreError> {
        let ops = &self.operations;
        let window_days = ops.forecast_window_days.clamp(1, 366);
        let now = self.clock.now_ms();
        let since = now - i64::from(window_days) * DAY_MS;
        let latest = self.store.latest_samples().await?;
        let sampled_at = self
            .store
            .samples("database", since)
            .await?
            .last()
            .map(|p| p.at_ms);
        let window = i64::from(window_days) * DAY_MS;
        let disk = capacity::forecast(&self.store.samples("disk_free", since).await?, window);
        let quota = capacity::forecast(&self.store.samples("quota_free", since).await?, window);
        let mut alerts = Vec::new();
        for (series, forecast, what_en, what_ja) in [
            (
                "disk_free",
                disk,
                "the data dir's disk",
                "データディレクトリのディスク",
            ),
            (
                "quota_free",
                quota,
                "the database's quota",
                "データベースの割り当て容量",
            ),
        ] {
            if let Some(days) = forecast.and_then(|f| f.days_until_full)
                && days < f64::from(ops.alert_days_left)
            {
                alerts.push(Alert {
                    kind: "days_left",
                    series: series.into(),
                    en: format!(
                        "{what_en} will be full in {days:.0} days at the present growth (alert below {} days)",
                        ops.alert_days_left
                    ),
                    ja: format!(
                        "現在の増加ペースでは{what_ja}はあと{days:.0}日で一杯になります（{}日未満で警告）",
                        ops.alert_days_left
                    ),
                });
            }
        }
        let spike_window = since - 2 * DAY_MS;
        for series in ["database", "index"] {
            let used = self.store.samples(series, spike_window).await?;
            if let Some(Spike {
                last_day,
                normal_day,
            }) = capacity::spike(
                &used,
                f64::from(ops.spike_factor),
                ops.spike_min_mb * 1_048_576,
            ) {
                alerts.push(Alert {
                    kind: "spike",
                    series: series.into(),
                    en: format!(
                        "the {series} grew {} in the last day, against {} on a normal day",
                        mib(last_day as f64),
                        mib(normal_day as f64)
                    ),
                    ja: format!(
                        "{}が直近1日で{}増えました（通常は1日{}）",
                        if series == "database" {
                            "データベース"
                        } else {
                            "検索索引"
                        },
                        mib(last_day as f64),
                        mib(normal_day as f64)
                    ),
                });
            }
        }
        Ok(CapacityReport {
            sampled_at,
            latest,
            disk,
            quota,
            window_days,
            alerts,
        })
    }

    /// The `capacity` job: samples storage, forgets samples past
    /// `operations.samples_keep_days`, and logs each alert as an error.
    pub(crate) async fn capacity_job(&self) -> Result<JobOutcome, JobError> {
        let now = self.clock.now_ms();
        let samples = self.measure_storage().await?;
        self.store.insert_samples(now, &samples).await?;
        let keep = i64::from(self.operations.samples_keep_days.max(1)) * DAY_MS;
        let pruned = self.store.prune_samples(now - keep).await?;
        let report = self.capacity().await?;
        for a in &report.alerts {
            tracing::error!(kind = a.kind, series = %a.series, "capacity alert: {}", a.en);
        }
        let mut outcome = JobOutcome::default();
        outcome.count("samples", samples.len() as u64);
        outcome.count("pruned", pruned);
        outcome.count("alerts", report.alerts.len() as u64);
        Ok(outcome)
    }
}
