//! The one typed configuration tree, loaded once: defaults in code, then
//! `shoko.toml` in the data dir, then `SHOKO_SECTION__KEY` environment
//! variables (double underscore between section and key). An unknown key in
//! either place is an error that names it. Only this binary reads them.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};
use shoko_app::{
    CatalogueSettings, CirculationSettings, JobsSettings, MailSettings, OperationsSettings,
};

/// The name of the configuration file inside the data dir.
pub const FILE_NAME: &str = "shoko.toml";

/// Everything Shoko can be told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Campuses, locations, item types, import.
    pub catalogue: CatalogueSettings,
    /// Patron categories, the loan policy, calendars, holds, recalls, blocks.
    pub circulation: CirculationSettings,
    /// Batch jobs: schedules, retries, notices, output files, the PDF font.
    pub jobs: JobsSettings,
    /// The SMTP server notices go through.
    pub mail: MailSettings,
    /// Readiness thresholds.
    pub operations: OperationsSettings,
    /// The search index.
    pub search: SearchConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; `--listen` overrides it.
    pub listen: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the
    /// per-client search rate); requests from other addresses are taken at
    /// their word of nothing.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Mark the session cookie `Secure`, so browsers send it only over HTTPS
    /// (and to `localhost`). Turn off only for plain HTTP on a trusted network.
    pub secure_cookies: bool,
    /// On SIGTERM, SIGINT or SIGPWR: how long requests in flight may take to
    /// finish before the server stops without them.
    pub shutdown_grace_seconds: u64,
    /// Connections open at once; above it a new one gets a canned 503 at
    /// accept, before any HTTP is read. `None`: 256 per core.
    pub max_connections: Option<usize>,
    /// How long a connection may wait for its next request after its last
    /// answer before it is closed (idle connections count against
    /// `max_connections`).
    pub keep_alive_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
            secure_cookies: true,
            shutdown_grace_seconds: 30,
            max_connections: None,
            keep_alive_seconds: 15,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:…` or `postgres://…`; empty means `shoko.db` in the data dir.
    /// `--database` and `SHOKO_DATABASE_URL` override it. A secret: its
    /// password is never printed.
    pub url: String,
    /// Connections in the pool (1–100). PostgreSQL uses one per concurrent request.
    pub max_connections: u32,
    /// Milliseconds a request waits for a connection before failing (100–60,000).
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> DatabaseConfig {
        DatabaseConfig {
            url: String::new(),
            max_connections: 8,
            acquire_timeout_ms: 5000,
        }
    }
}

/// `[search]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Memory for the index writer's buffer, in MiB (16–1,024). More means
    /// fewer, larger segments during a rebuild; searches do not use it.
    pub writer_memory_mb: usize,
    /// How often the server applies new catalogue changes to the index, in
    /// milliseconds (50–60,000): the longest a committed change waits before
    /// it can be found, plus the time to apply it.
    pub refresh_interval_ms: u64,
    /// Changes (or, in a rebuild, records) applied per index commit
    /// (10–100,000). Smaller commits show progress sooner; larger ones
    /// build faster.
    pub index_batch: u64,
    /// Records whose availability changed (checkouts, returns) held in
    /// memory beside the index before they are written into it in one
    /// commit (100–1,000,000).
    pub fold_records: usize,
    /// The longest such a change stays only in memory, in seconds (1–3,600):
    /// what a restart reads again from the outbox, and how stale
    /// availability looks to `shoko search` beside the server.
    pub fold_seconds: u64,
    /// Searches running at once (1–1,024); default two per core.
    pub max_concurrent: usize,
    /// Searches that may wait for a turn (0–10,000); more get 503 at once.
    /// Default four per core.
    pub queue: usize,
    /// Longest wait for a turn before 503, in milliseconds (1–10,000).
    pub queue_wait_ms: u64,
    /// Searches per second per client address (0: no limit); over it, 429.
    pub per_client_per_second: u32,
    /// Searches a client may make at once above its rate (1–10,000).
    pub per_client_burst: u32,
}

impl Default for SearchConfig {
    fn default() -> SearchConfig {
        let limits = shoko_web::Limits::for_this_machine();
        SearchConfig {
            writer_memory_mb: 64,
            refresh_interval_ms: 500,
            index_batch: 2000,
            fold_records: shoko_app::search::FOLD_RECORDS,
            fold_seconds: shoko_app::search::FOLD_AFTER.as_secs(),
            max_concurrent: limits.max_concurrent,
            queue: limits.queue,
            queue_wait_ms: limits.queue_wait.as_millis() as u64,
            per_client_per_second: limits.per_client_per_second,
            per_client_burst: limits.per_client_burst,
        }
    }
}

impl Config {
    /// The search gate's limits, clamped to their safe ranges.
    pub fn search_limits(&self) -> shoko_web::Limits {
        let s = &self.search;
        shoko_web::Limits {
            max_concurrent: s.max_concurrent.clamp(1, 1024),
            queue: s.queue.min(10_000),
            queue_wait: std::time::Duration::from_millis(s.queue_wait_ms.clamp(1, 10_000)),
            per_client_per_second: s.per_client_per_second,
            per_client_burst: s.per_client_burst.clamp(1, 10_000),
            trusted_proxies: self.server.trusted_proxies.clone(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `shoko=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `DATA_DIR/shoko.toml` if present, then the
    /// `SHOKO_*__*` variables from `env`.
    pub fn load(
        data_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = data_dir.join(FILE_NAME);
        // Collect the variables once; a nested key needs the double underscore,
        // so SHOKO_DATA_DIR and SHOKO_DATABASE_URL (command-line options) are
        // not taken as configuration keys.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("SHOKO_")
                    .filter(|rest| rest.contains("__"))
                    .map(|rest| (rest.to_lowercase().replace("__", "."), v))
            })
            .collect();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if file.exists() {
            figment = figment.merge(Toml::file_exact(&file));
        }
        for (key, value) in vars {
            // Parsed the way figment parses environment values: numbers,
            // booleans and arrays are recognised, anything else is a string.
            let value: figment::value::Value = value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value));
            figment = figment.merge(Serialized::global(&key, value));
        }
        figment.extract().map_err(|e| {
            let mut msg = String::new();
            for err in e {
                let source = err
                    .metadata
                    .as_ref()
                    .map(|m| m.name.to_string())
                    .unwrap_or_default();
                let at = if err.path.is_empty() {
                    String::new()
                } else {
                    format!(" at key `{}`", err.path.join("."))
                };
                msg.push_str(&format!("{err}{at} ({source} {})", file_hint(&file)));
            }
            ConfigError(msg)
        })
    }

    /// The effective database URL: the command line or `SHOKO_DATABASE_URL`
    /// first, then the file, then SQLite in the data dir.
    pub fn database_url(&self, cli: Option<&str>, data_dir: &Path) -> String {
        match cli.filter(|u| !u.is_empty()) {
            Some(u) => u.to_owned(),
            None if !self.database.url.is_empty() => self.database.url.clone(),
            None => sqlite_url(&data_dir.join("shoko.db")),
        }
    }

    /// The configuration as TOML with every secret replaced by `***`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = shoko_store::redact_url(&shown.database.url);
        if shown.mail.password.is_some() {
            shown.mail.password = Some("***".into());
        }
        toml::to_string_pretty(&shown).expect("the configuration always serialises")
    }
}

fn file_hint(file: &Path) -> String {
    format!("; configuration file {}", file.display())
}

/// The SQLite URL for a database file (created if missing).
pub fn sqlite_url(path: &Path) -> String {
    shoko_store::sqlite_url(path)
}

/// The data dir: `--data-dir`, else `SHOKO_DATA_DIR`, else `./shoko-data`.
pub fn data_dir(cli: Option<PathBuf>) -> PathBuf {
    cli.unwrap_or_else(|| PathBuf::from("shoko-data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some(t) = toml {
            std::fs::write(dir.path().join(FILE_NAME), t).expect("write config");
        }
        Config::load(
            dir.path(),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_load_without_a_file() {
        let c = load(None, &[]).expect("defaults");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let err = load(Some("[server]\nlisten = \"0.0.0.0:80\"\nlistne = 1\n"), &[])
            .expect_err("unknown key");
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn an_unknown_environment_key_is_named() {
        let err = load(None, &[("SHOKO_SERVER__PORT", "80")]).expect_err("unknown key");
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            Some("[server]\nlisten = \"0.0.0.0:80\"\n"),
            &[
                ("SHOKO_SERVER__LISTEN", "127.0.0.1:9999"),
                ("SHOKO_DATA_DIR", "/x"),
            ],
        )
        .expect("loads");
        assert_eq!(c.server.listen, "127.0.0.1:9999");
    }

    #[test]
    fn campuses_come_from_the_file_with_japanese_names() {
        let c = load(
            Some(
                "[[catalogue.campuses]]\ncode = \"hongo\"\nname_ja = \"本郷\"\nname_en = \"Hongo\"\n",
            ),
            &[],
        )
        .expect("loads");
        assert_eq!(c.catalogue.campuses[0].code.as_str(), "HONGO");
        assert_eq!(c.catalogue.campuses[0].name_ja, "本郷");
    }

    #[test]
    fn a_bad_campus_code_is_an_error_naming_it() {
        let err = load(
            Some("[[catalogue.campuses]]\ncode = \"本 郷\"\nname_ja = \"x\"\nname_en = \"x\"\n"),
            &[],
        )
        .expect_err("bad code");
        assert!(err.to_string().contains("campus code"), "{err}");
    }

    #[test]
    fn the_database_password_is_redacted() {
        let c = load(
            Some("[database]\nurl = \"postgres://shoko:hunter2@db/shoko\"\n"),
            &[],
        )
        .expect("loads");
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://shoko:***@db/shoko"), "{shown}");
    }
}
