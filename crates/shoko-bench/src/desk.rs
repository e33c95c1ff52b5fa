//! The circulation desk benchmark: checkouts and check-ins through the HTTP
//! API, closed-loop, each desk with its own items and patron, every commit
//! durable; and the same for a patron who already has hundreds of loans.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{connect, ms, percentile};

/// Gives the first `n` records one available item each at HONGO, with
/// barcodes `B<record id>`, behind the server's back (before it starts).
pub async fn setup(database: &str, n: u64) -> anyhow::Result<()> {
    let db = connect(database, 1).await?;
    let sql = format!(
        "INSERT INTO items (record_id, barcode, call_number, campus_code, location_code, \
         item_type, status, version, created_at, updated_at) \
         SELECT id, 'B' || id, NULL, 'HONGO', NULL, 'BOOK', 'available', 1, 0, 0 \
         FROM records ORDER BY id LIMIT {n}"
    );
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .context("insert bench items")?;
    Ok(())
}

async fn barcodes(database: &str) -> anyhow::Result<Vec<String>> {
    let db = connect(database, 1).await?;
    let backend: DbBackend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT barcode FROM items WHERE barcode LIKE 'B%' AND status = 'available' ORDER BY id",
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).map_err(Into::into))
        .collect()
}

struct Desk {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Desk {
    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/v1/{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        let d = t.elapsed();
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(d)
    }

    async fn checkout(&self, patron: &str, item: &str) -> anyhow::Result<Duration> {
        self.post(
            "loans",
            serde_json::json!({"patron_barcode": patron, "item_barcode": item, "campus": "HONGO"}),
        )
        .await
    }

    async fn checkin(&self, item: &str) -> anyhow::Result<Duration> {
        self.post(
            "checkins",
            serde_json::json!({"item_barcode": item, "campus": "HONGO"}),
        )
        .await
    }
}

/// Latencies of checkouts and check-ins over a run.
#[derive(Default)]
struct Run {
    checkouts: Vec<Duration>,
    checkins: Vec<Duration>,
    /// Every operation: desk, operation, start (since the run began), latency.
    timeline: Vec<(usize, &'static str, Duration, Duration)>,
}

fn row(label: &str, op: &str, lat: &mut [Duration], seconds: f64) -> String {
    lat.sort();
    format!(
        "| {label} | {op} | {} | {:.0}/s | {} | {} | {} |",
        lat.len(),
        lat.len() as f64 / seconds,
        ms(percentile(lat, 0.5)),
        ms(percentile(lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
    )
}

/// Runs `desks` desks for `seconds`: each lends its own items, one at a
/// time, to its own patron (`<prefix><desk>`), and takes them back. With
/// `pace` each desk scans once per `pace` (as staff do, a scan every second
/// or two); without, each scans as soon as the last answer came (capacity).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    url: &str,
    token: &str,
    database: &str,
    desks: usize,
    seconds: u64,
    pace: Option<Duration>,
    patron_prefix: &str,
    label: &str,
    timeline: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let items = barcodes(database).await?;
    if items.len() < desks * 4 {
        bail!("{} available bench items for {desks} desks", items.len());
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..desks {
        let mine: Vec<String> = items
            .iter()
            .skip(d)
            .step_by(desks)
            .take(200)
            .cloned()
            .collect();
        let desk = Desk {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token: token.to_owned(),
        };
        let patron = format!("{patron_prefix}{:04}", d + 1);
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let mut k = 0;
            // Desks start spread over one pace, as real desks are not in step.
            let mut next =
                Instant::now() + pace.map_or(Duration::ZERO, |p| p * d as u32 / desks as u32);
            while Instant::now() < deadline {
                let item = &mine[k % mine.len()];
                k += 1;
                if let Some(p) = pace {
                    tokio::time::sleep_until(next.into()).await;
                    next += p;
                }
                let at = started.elapsed();
                let took = desk.checkout(&patron, item).await?;
                run.checkouts.push(took);
                run.timeline.push((d, "checkout", at, took));
                if let Some(p) = pace {
                    tokio::time::sleep_until(next.into()).await;
                    next += p;
                }
                let at = started.elapsed();
                let took = desk.checkin(item).await?;
                run.checkins.push(took);
                run.timeline.push((d, "check-in", at, took));
            }
            anyhow::Ok(run)
        }));
    }
    let mut all = Run::default();
    for t in tasks {
        let r = t.await??;
        all.checkouts.extend(r.checkouts);
        all.checkins.extend(r.checkins);
        all.timeline.extend(r.timeline);
    }
    if let Some(path) = timeline {
        all.timeline.sort_by_key(|&(_, _, at, _)| at);
        let lines: String = all
            .timeline
            .iter()
            .map(|(d, op, at, took)| format!("{d}\t{op}\t{}\t{}\n", ms(*at), ms(*took)))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("write {}", path.display()))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("{}", row(label, "checkout", &mut all.checkouts, elapsed));
    println!("{}", row(label, "check-in", &mut all.checkins, elapsed));
    Ok(())
}

/// Lends `n` items to one patron, so that later runs measure a patron with
/// that many open loans.
pub async fn preload(
    url: &str,
    token: &str,
    database: &str,
    patron: &str,
    n: usize,
) -> anyhow::Result<()> {
    let items = barcodes(database).await?;
    let desk = Desk {
        http: reqwest::Client::new(),
        url: url.to_owned(),
        token: token.to_owned(),
    };
    // From the end, so the desks' items (taken from the front) stay free.
    for item in items.iter().rev().take(n) {
        desk.checkout(patron, item).await?;
    }
    Ok(())
}
