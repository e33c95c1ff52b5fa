//! `shoko support-bundle`: one `.tar.gz` with what a support engineer asks
//! for first — version and platform, the effective configuration with
//! secrets redacted, schema, readiness, `shoko doctor`, capacity, recent job
//! runs, a metrics snapshot (from the running server, else computed here)
//! and the end of the log.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use shoko_app::App;

use crate::config::Config;

/// The most of the log the bundle carries (its end).
const LOG_TAIL_BYTES: u64 = 4 << 20;

fn add(
    tar: &mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    header.set_cksum();
    tar.append_data(&mut header, format!("shoko-support/{name}"), bytes)
        .with_context(|| format!("cannot add {name} to the bundle"))
}

fn log_tail(path: &Path) -> Vec<u8> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("no log at {}\n", path.display()).into_bytes();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    use std::io::Seek;
    let _ = file.seek(std::io::SeekFrom::Start(start));
    let mut out = Vec::new();
    let _ = file.read_to_end(&mut out);
    out
}

/// Writes the bundle to `output`; returns the names it holds.
pub async fn write_bundle(
    app: &App,
    config: &Config,
    data_dir: &Path,
    database_url: &str,
    output: &Path,
) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::create(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::default(),
    ));
    let mut names = Vec::new();
    let mut put = |tar: &mut tar::Builder<_>, name: &str, bytes: Vec<u8>| {
        names.push(name.to_owned());
        add(tar, name, &bytes)
    };
    let version = format!(
        "shoko {}\nbinary: {}\nplatform: {}\nengine: {}\ndatabase: {}\ndata dir: {}\ncreated: {}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::current_exe().map_or_else(|_| "?".into(), |p| p.display().to_string()),
        std::fs::read_to_string("/proc/version")
            .unwrap_or_default()
            .trim(),
        app.store.engine().name(),
        shoko_store::redact_url(database_url),
        data_dir.display(),
        chrono::Utc::now().to_rfc3339(),
    );
    put(&mut tar, "version.txt", version.into_bytes())?;
    let mut shown = config.clone();
    shown.database.url = database_url.to_owned();
    put(
        &mut tar,
        "config.toml",
        shown.to_redacted_toml().into_bytes(),
    )?;
    put(
        &mut tar,
        "schema.json",
        serde_json::to_vec_pretty(&app.store.schema().await?)?,
    )?;
    put(
        &mut tar,
        "health.json",
        serde_json::to_vec_pretty(&app.readiness().await)?,
    )?;
    let findings = app.doctor().await;
    let doctor: String = findings
        .iter()
        .map(|f| format!("{} {:<12} {}\n", f.level.mark(), f.area, f.en))
        .collect();
    put(&mut tar, "doctor.txt", doctor.into_bytes())?;
    put(
        &mut tar,
        "doctor.json",
        serde_json::to_vec_pretty(&findings)?,
    )?;
    put(
        &mut tar,
        "capacity.json",
        serde_json::to_vec_pretty(&app.capacity().await?)?,
    )?;
    put(
        &mut tar,
        "jobs.json",
        serde_json::to_vec_pretty(&app.job_history(None, 100).await?)?,
    )?;
    let metrics = match crate::daemon::running_addr(data_dir) {
        Some(addr) => crate::daemon::get(&addr, "/metrics")
            .unwrap_or_else(|e| format!("the server at {addr} did not answer: {e}\n")),
        None => format!(
            "no server running from this data dir; numbers read now:\n{:#?}\n",
            app.gauges().await
        ),
    };
    put(&mut tar, "metrics.txt", metrics.into_bytes())?;
    put(&mut tar, "shoko.log", log_tail(&data_dir.join("shoko.log")))?;
    tar.into_inner()
        .context("cannot finish the bundle")?
        .finish()
        .context("cannot finish the bundle")?
        .sync_all()?;
    Ok(names)
}
