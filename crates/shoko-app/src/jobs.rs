//! The scheduler and its jobs. Each job has a cron schedule in the library's
//! time zone; every run is recorded (slot, attempt, start, end, outcome,
//! counts, files). A failed run is retried with a doubling wait and, after
//! the last try, given up with an error in the log and the run history. A
//! run that was going when the process died is marked `interrupted` and its
//! slot run again. Jobs are idempotent: notices are made once per subject
//! and state and sent once, files are rewritten whole, expiries are state
//! changes — so a re-run never repeats a side effect.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone};
use serde::Serialize;
use shoko_store::{JobRunRow, StoreError};

use crate::App;
use crate::circulation::CircError;
use crate::settings::JobSchedule;

/// This process, as the owner of the runs it starts.
fn this_process() -> String {
    std::process::id().to_string()
}

/// Whether the process that owns a run is still alive (on this machine: the
/// jobs run on the one server and the commands beside it).
fn process_alive(owner: &str) -> bool {
    if owner == this_process() {
        return true;
    }
    let Ok(pid) = owner.parse::<u32>() else {
        return false;
    };
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("shoko"))
}

/// The jobs Shoko has, by name.
pub const JOBS: [&str; 7] = [
    "notices",
    "pick_lists",
    "hold_shelf",
    "reports",
    "capacity",
    "backup",
    "claims",
];

/// Why a job could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job has this name.
    #[error("no job {0:?}; the jobs are {jobs}", jobs = JOBS.join(", "))]
    Unknown(String),
    /// The schedule is not a cron expression.
    #[error("job {job}: schedule {cron:?} is not valid: {message}")]
    BadSchedule {
        /// The job.
        job: String,
        /// Its schedule.
        cron: String,
        /// What is wrong.
        message: String,
    },
    /// The job ran and failed.
    #[error("{0}")]
    Failed(String),
    /// The job is running already (in this or another process).
    #[error("the job is already running (run {0})")]
    Busy(i64),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CircError> for JobError {
    fn from(e: CircError) -> JobError {
        JobError::Failed(e.to_string())
    }
}

/// What a job did: counts by name and the files it wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobOutcome {
    /// Counts by name (`sent`, `made`, `rows` …).
    pub counts: serde_json::Map<String, serde_json::Value>,
    /// Files written.
    pub outputs: Vec<String>,
    /// Work that failed in part (some notices not delivered): the run is
    /// recorded as failed and retried, and what succeeded stays done.
    pub partial_failure: Option<String>,
}

impl JobOutcome {
    /// Adds to a count.
    pub fn count(&mut self, name: &str, n: u64) {
        let v = self
            .counts
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        self.counts.insert(name.into(), (v + n).into());
    }
}

/// A job's settings and its most recent run, for `shoko jobs list`.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    /// Name.
    pub name: &'static str,
    /// Schedule.
    pub schedule: JobSchedule,
    /// The last run.
    pub last_run: Option<JobRunRow>,
}

fn parse_cron(job: &str, s: &JobSchedule) -> Result<croner::Cron, JobError> {
    s.cron
        .parse::<croner::Cron>()
        .map_err(|e| JobError::BadSchedule {
            job: job.into(),
            cron: s.cron.clone(),
            message: e.to_string(),
        })
}

impl App {
    fn schedule_of(&self, job: &str) -> Result<&JobSchedule, JobError> {
        let j = &self.jobs;
        Ok(match job {
            "notices" => &j.notices,
            "pick_lists" => &j.pick_lists,
            "hold_shelf" => &j.hold_shelf,
            "reports" => &j.reports,
            "capacity" => &j.capacity,
            "backup" => &j.backup,
            "claims" => &j.claims,
            other => return Err(JobError::Unknown(other.into())),
        })
    }

    /// Checks every schedule (at start, so a typo is an error, not a job
    /// that silently never runs).
    pub fn check_schedules(&self) -> Result<(), JobError> {
        for job in JOBS {
            parse_cron(job, self.schedule_of(job)?)?;
        }
        Ok(())
    }

    /// Every job with its schedule and last run.
    pub async fn job_list(&self) -> Result<Vec<JobInfo>, JobError> {
        let mut out = Vec::new();
        for name in JOBS {
            out.push(JobInfo {
                name,
                schedule: self.schedule_of(name)?.clone(),
                last_run: self.store.job_runs(Some(name), 1).await?.pop(),
            });
        }
        Ok(out)
    }

    /// The latest time at or before `now` the schedule names, within the
    /// last 8 days (after a long stop only the latest missed slot runs).
    fn latest_slot(&self, cron: &croner::Cron, now: i64) -> Option<i64> {
        let tz = self.circulation.time_zone;
        let now_t = tz.timestamp_millis_opt(now).single()?;
        let mut t = now_t - chrono::Duration::days(8);
        let mut latest = None;
        while let Ok(next) = cron.find_next_occurrence(&t, false) {
            if next > now_t {
                break;
            }
            latest = Some(next.timestamp_millis());
            t = next;
        }
        latest
    }

    /// What the scheduler should run now: for each enabled job, the latest
    /// slot not yet done, or a failed slot whose retry wait is over.
    pub async fn due_jobs(&self, now: i64) -> Result<Vec<(&'static str, i64, i64)>, JobError> {
        let mut due = Vec::new();
        for job in JOBS {
            let schedule = self.schedule_of(job)?;
            if !schedule.enabled {
                continue;
            }
            let cron = parse_cron(job, schedule)?;
            let Some(slot) = self.latest_slot(&cron, now) else {
                continue;
            };
            match self.store.last_scheduled_run(job).await? {
                None => due.push((job, slot, 1)),
                Some(run) if run.slot < slot => due.push((job, slot, 1)),
                Some(run) if run.status == "running" || run.status == "succeeded" => {}
                Some(run) => {
                    let max = i64::from(self.jobs.max_attempts.max(1));
                    if run.attempt >= max {
                        continue;
                    }
                    let wait = i64::from(self.jobs.retry_after_minutes)
                        * 60_000
                        * (1i64 << (run.attempt - 1).clamp(0, 20));
                    let since = run.finished_at.unwrap_or(run.started_at);
                    if run.status == "interrupted" || now >= since + wait {
                        due.push((job, run.slot, run.attempt + 1));
                    }
                }
            }
        }
        Ok(due)
    }

    /// One round of the scheduler: runs every job that is due, in order.
    pub async fn scheduler_tick(&self) -> Result<Vec<JobRunRow>, JobError> {
        let now = self.clock.now_ms();
        let mut runs = Vec::new();
        for (job, slot, attempt) in self.due_jobs(now).await? {
            match self.run_job(job, slot, attempt, "schedule").await {
                Ok(run) => runs.push(run),
                Err(JobError::Busy(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(runs)
    }

    /// Marks runs left `running` by a process that has died as
    /// `interrupted` (the scheduler runs their slot again) and notices it
    /// left `sending` as `uncertain`. Runs of a live process are left alone.
    /// Called when the server starts and before every command that runs or
    /// shows jobs.
    pub async fn recover_interrupted_runs(&self) -> Result<Vec<JobRunRow>, JobError> {
        let mut interrupted = Vec::new();
        for r in self.store.running_runs().await? {
            if process_alive(&r.owner) {
                continue;
            }
            self.store.interrupt_run(r.id, self.clock.now_ms()).await?;
            tracing::warn!(job = %r.job, run = r.id, "job run interrupted by a stop; it will run again");
            if r.job == "notices" {
                let n = self.store.notices_sending_to_uncertain().await?;
                if n > 0 {
                    tracing::warn!(
                        notices = n,
                        "notices were being sent when the process stopped; the mail server may or may not have them, so they are marked uncertain and not sent again"
                    );
                }
            }
            interrupted.push(r);
        }
        Ok(interrupted)
    }

    /// Runs a job now, by hand, for the current time.
    pub async fn run_job_now(&self, job: &str) -> Result<JobRunRow, JobError> {
        let job = JOBS
            .into_iter()
            .find(|j| *j == job)
            .ok_or_else(|| JobError::Unknown(job.into()))?;
        let now = self.clock.now_ms();
        self.run_job(job, now, 1, "manual").await
    }

    /// Runs a job for a slot and records the run. A job that fails is
    /// recorded as failed (and logged as an error: an alert); the error is
    /// not returned, so one failing job does not stop the others.
    pub async fn run_job(
        &self,
        job: &'static str,
        slot: i64,
        attempt: i64,
        trigger: &str,
    ) -> Result<JobRunRow, JobError> {
        if let Some(busy) = self
            .store
            .running_runs()
            .await?
            .into_iter()
            .find(|r| r.job == job && process_alive(&r.owner))
        {
            return Err(JobError::Busy(busy.id));
        }
        let run = self
            .store
            .start_run(
                job,
                slot,
                attempt,
                trigger,
                &this_process(),
                self.clock.now_ms(),
            )
            .await?;
        tracing::info!(job, run = run.id, attempt, "job started");
        let outcome = match job {
            "notices" => self.notices_job(run.id).await,
            "pick_lists" => self.pick_lists_job(slot).await,
            "hold_shelf" => self.hold_shelf_job().await,
            "reports" => self.reports_job(slot).await,
            "capacity" => self.capacity_job().await,
            "backup" => self.backup_job(slot).await,
            "claims" => self.claims_job(slot).await,
            other => Err(JobError::Unknown(other.into())),
        };
        let (status, counts, outputs, error) = match outcome {
            Ok(o) => match o.partial_failure {
                None => ("succeeded", o.counts, o.outputs, None),
                Some(e) => ("failed", o.counts, o.outputs, Some(e)),
            },
            Err(e) => (
                "failed",
                Default::default(),
                Vec::new(),
                Some(e.to_string()),
            ),
        };
        if let Some(e) = &error {
            tracing::error!(job, run = run.id, attempt, error = %e, "job failed");
        } else {
            tracing::info!(job, run = run.id, "job succeeded");
        }
        let counts = serde_json::Value::Object(counts);
        self.store
            .finish_run(
                run.id,
                status,
                &counts,
                &outputs,
                error.as_deref(),
                self.clock.now_ms(),
            )
            .await?;
        Ok(JobRunRow {
            status: status.into(),
            finished_at: Some(self.clock.now_ms()),
            counts,
            outputs,
            error,
            ..run
        })
    }

    /// The history of runs, newest first.
    pub async fn job_history(
        &self,
        job: Option<&str>,
        limit: u64,
    ) -> Result<Vec<JobRunRow>, JobError> {
        if let Some(j) = job {
            self.schedule_of(j)?;
        }
        Ok(self.store.job_runs(job, limit).await?)
    }

    /// Runs the scheduler until `stop` turns true: marks interrupted runs,
    /// then looks for due jobs every `every`.
    pub async fn scheduler_forever(
        &self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if let Err(e) = self.recover_interrupted_runs().await {
            tracing::error!(error = %e, "cannot check for interrupted job runs");
        }
        let mut first = true;
        loop {
            let runs = match self.scheduler_tick().await {
                Ok(runs) => runs.len(),
                Err(e) => {
                    tracing::error!(error = %e, "scheduler round failed");
                    0
                }
            };
            if first {
                // Jobs missed while the server was down (on a new database,
                // every job) run at start; a backup then loads the machine
                // for a while, which whoever measures the server waits out.
                tracing::info!(runs, "jobs due at start done");
                first = false;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// The local date of a slot, for file names and report days.
    pub(crate) fn slot_date(&self, slot: i64) -> NaiveDate {
        DateTime::from_timestamp_millis(slot)
            .unwrap_or_default()
            .with_timezone(&self.circulation.time_zone)
            .date_naive()
    }

    /// Where jobs write their files for a date (created when missing).
    pub(crate) fn output_dir(&self, date: NaiveDate) -> Result<std::path::PathBuf, JobError> {
        let base = self
            .jobs
            .output_dir
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("outputs"));
        let dir = base.join(date.format("%Y-%m-%d").to_string());
        std::fs::create_dir_all(&dir)
            .map_err(|e| JobError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }
}
