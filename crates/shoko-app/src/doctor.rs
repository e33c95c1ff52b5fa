//! `shoko doctor`: everything an operator must watch, in one list —
//! version and schema, readiness, storage and its forecast, index against
//! database, circulation consistency, jobs, backups, notices in doubt —
//! each finding marked ok, warn or fail with what to do. The operations
//! page and the support bundle show the same list.

use serde::Serialize;

use crate::App;

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As it should be.
    Ok,
    /// Needs attention soon.
    Warn,
    /// Needs action now.
    Fail,
}

impl Level {
    /// The mark printed before it.
    pub fn mark(self) -> &'static str {
        match self {
            Level::Ok => "✔",
            Level::Warn => "!",
            Level::Fail => "✖",
        }
    }
}

/// One thing the doctor looked at.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How it stands.
    pub level: Level,
    /// What was looked at: `schema`, `database`, `disk`, `capacity`, …
    pub area: &'static str,
    /// What was found, in English.
    pub en: String,
    /// What was found, in Japanese.
    pub ja: String,
}

fn finding(level: Level, area: &'static str, en: String, ja: String) -> Finding {
    Finding {
        level,
        area,
        en,
        ja,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

impl App {
    /// Looks at everything an operator must watch.
    pub async fn doctor(&self) -> Vec<Finding> {
        use Level::*;
        let mut out = Vec::new();
        let version = env!("CARGO_PKG_VERSION");
        match self.store.schema().await {
            Result::Ok(s) => out.push(finding(
                Ok,
                "schema",
                format!(
                    "Shoko {version} on {}, schema at {} ({} migrations)",
                    self.store.engine().name(),
                    s.applied.last().map_or("none", String::as_str),
                    s.applied.len()
                ),
                format!(
                    "Shoko {version}（{}）、スキーマ {}（移行 {} 件）",
                    self.store.engine().name(),
                    s.applied.last().map_or("なし", String::as_str),
                    s.applied.len()
                ),
            )),
            Err(e) => out.push(finding(Fail, "schema", e.to_string(), e.to_string())),
        }
        let ready = self.readiness().await;
        for (name, check) in &ready.checks {
            out.push(finding(
                if check.ok { Ok } else { Fail },
                name,
                check.detail.clone(),
                check.detail.clone(),
            ));
        }
        match self.capacity().await {
            Result::Ok(report) => {
                let db = report.latest("database").unwrap_or(0);
                let index = report.latest("index").unwrap_or(0);
                let age_h = report
                    .sampled_at
                    .map(|t| (self.clock.now_ms() - t) as f64 / 3_600_000.0);
                match age_h {
                    None => out.push(finding(
                        Warn,
                        "capacity",
                        "no storage samples yet: the capacity job samples every hour (`shoko jobs run capacity` now)".into(),
                        "容量の記録がまだありません（capacity ジョブが毎時記録します。今すぐなら `shoko jobs run capacity`）".into(),
                    )),
                    Some(h) if h > 2.0 => out.push(finding(
                        Warn,
                        "capacity",
                        format!("the latest storage sample is {h:.0} hours old: is the capacity job running?"),
                        format!("最新の容量記録は{h:.0}時間前です。capacity ジョブは動いていますか"),
                    )),
                    Some(_) => {}
                }
                let forecast = match report.days_until_full() {
                    Some(d) => (
                        format!("full in {d:.0} days at the present growth"),
                        format!("現在の増加ペースであと{d:.0}日で一杯"),
                    ),
                    None => ("not filling up".into(), "増加していません".into()),
                };
                out.push(finding(
                    if report.alerts.is_empty() { Ok } else { Warn },
                    "capacity",
                    format!(
                        "database {}, index {}, {} free; {} (window {} days)",
                        mib(db),
                        mib(index),
                        report.latest("disk_free").map_or("? MiB".into(), mib),
                        forecast.0,
                        report.window_days
                    ),
                    format!(
                        "データベース {}、索引 {}、空き {}。{}（直近{}日から予測）",
                        mib(db),
                        mib(index),
                        report.latest("disk_free").map_or("? MiB".into(), mib),
                        forecast.1,
                        report.window_days
                    ),
                ));
                for a in report.alerts {
                    out.push(finding(Warn, "capacity", a.en, a.ja));
                }
            }
            Err(e) => out.push(finding(Fail, "capacity", e.to_string(), e.to_string())),
        }
        match self.consistency_problems().await {
            Result::Ok(p) if p.is_empty() => out.push(finding(
                Ok,
                "consistency",
                "circulation, outbox, index and references agree".into(),
                "貸出・アウトボックス・索引・参照は整合しています".into(),
            )),
            Result::Ok(p) => out.push(finding(
                Fail,
                "consistency",
                format!("{} problems, first: {}; run `shoko check` (and `--repair`)", p.len(), p[0]),
                format!("不整合が{}件（最初: {}）。`shoko check`（修復は `--repair`）を実行してください", p.len(), p[0]),
            )),
            Err(e) => out.push(finding(Fail, "consistency", e.to_string(), e.to_string())),
        }
        if let Result::Ok(jobs) = self.job_list().await {
            for j in jobs {
                let (level, en, ja) = match &j.last_run {
                    None if !j.schedule.enabled => (Ok, "disabled".to_owned(), "無効".to_owned()),
                    None => (
                        Ok,
                        format!("not run yet (schedule {})", j.schedule.cron),
                        format!("未実行（予定 {}）", j.schedule.cron),
                    ),
                    Some(r) if r.status == "failed" => (
                        Warn,
                        format!(
                            "last run failed (attempt {}): {}",
                            r.attempt,
                            r.error.as_deref().unwrap_or("")
                        ),
                        format!(
                            "前回の実行が失敗しました（{}回目）: {}",
                            r.attempt,
                            r.error.as_deref().unwrap_or("")
                        ),
                    ),
                    Some(r) => (
                        Ok,
                        format!("last run {}", r.status),
                        format!("前回 {}", r.status),
                    ),
                };
                out.push(finding(
                    level,
                    "jobs",
                    format!("{}: {en}", j.name),
                    format!("{}: {ja}", j.name),
                ));
            }
        }
        out.push(self.backup_finding());
        if let Result::Ok(n) = self.store.notices_with_status("uncertain").await
            && n > 0
        {
            out.push(finding(
                Warn,
                "notices",
                format!("{n} notices may or may not have been sent (the server stopped while sending); check the mail server's log"),
                format!("送信中に停止したため、送信済みか不明な通知が{n}件あります。メールサーバーのログを確認してください"),
            ));
        }
        out
    }

    fn backup_finding(&self) -> Finding {
        let Some(dir) = self.backup_dir() else {
            return finding(
                Level::Warn,
                "backup",
                "no backup dir (set operations.backup_dir)".into(),
                "バックアップ先がありません（operations.backup_dir を設定してください）".into(),
            );
        };
        let newest = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("shoko-") && (n.ends_with(".db") || n.ends_with(".dump"))
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max();
        match newest {
            None => finding(
                Level::Warn,
                "backup",
                format!("no scheduled backup in {} yet", dir.display()),
                format!("{} に定期バックアップがまだありません", dir.display()),
            ),
            Some((when, path)) => {
                let hours = when.elapsed().map_or(0.0, |d| d.as_secs_f64() / 3600.0);
                finding(
                    if hours > 48.0 { Level::Warn } else { Level::Ok },
                    "backup",
                    format!("newest backup {} ({hours:.0} hours old)", path.display()),
                    format!("最新のバックアップ {}（{hours:.0}時間前）", path.display()),
                )
            }
        }
    }
}
