//! `shoko`, the one binary: every role is a subcommand (serve, demo, import,
//! export, search, reindex, user, patron, openapi, config, backup, check,
//! upgrade, doctor, support-bundle). It alone reads the environment and the
//! configuration file.

mod config;
mod daemon;
mod support;

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use shoko_app::backup;
use shoko_app::import::{ImportProgress, InputFormat};
use shoko_app::{App, IndexOptions, StoreOptions, SystemClock};

use crate::config::Config;

/// mimalloc: the import and the MARC reader allocate millions of small
/// strings; it reads 250,000 records markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`).
/// mimalloc asks for them on its arenas, and each first touch of one is a
/// fault that zeroes 2 MiB (and, when the kernel has to compact memory to find
/// one, waits for that): under overload those faults took a sixth of the
/// request threads' time, and refusals that should take milliseconds took
/// over 100 ms (docs/benchmarks.md, "Overload, 2026-12-03, later"). Imports
/// and index builds ran as fast without them. It applies to every later fault
/// of the process, whichever allocator made the mapping.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // Only a kernel without the call refuses it; Shoko runs as before.
        eprintln!("warning: transparent huge pages stay on: {e}");
    }
}

/// Shoko (書庫): an integrated library system with its own public catalogue.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Where Shoko keeps its database, configuration and logs.
    #[arg(long, env = "SHOKO_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// `postgres://user:password@host/db` for PostgreSQL; default: SQLite in the data dir.
    #[arg(
        long = "database",
        env = "SHOKO_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    Auto,
    Iso2709,
    Marcxml,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Iso2709,
    Marcxml,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and pages.
    Serve {
        /// Address to listen on (default from the configuration: 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Start the server in the background (pid in DATA_DIR/shoko.pid, log in
    /// DATA_DIR/shoko.log); returns once it serves.
    Start {
        /// Address to listen on (default from the configuration).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Stop the background server: SIGTERM, then wait for it to finish.
    Stop,
    /// Whether the background server runs, where, and whether it is ready
    /// (exit 0 when running, 3 when not).
    Status,
    /// Create (or reuse) a data dir with demo records on four campuses, and serve.
    Demo {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Import MARC records (ISO 2709 or MARCXML, MARC-8 or UTF-8).
    Import {
        /// Input format; `auto` decides per file from its first bytes.
        #[arg(long, value_enum, default_value = "auto")]
        format: ImportFormat,
        /// Files to import, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Read MARC files and report every bad record, without importing anything.
    Validate {
        /// Input format; `auto` decides per file from its first bytes.
        #[arg(long, value_enum, default_value = "auto")]
        format: ImportFormat,
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Export every record.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "iso2709")]
        format: ExportFormat,
        /// Output file (written whole, then renamed into place); default: standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Search the catalogue (read-only; works beside a running server).
    Search {
        /// The query, as in the search API's `q`.
        query: String,
        /// How many hits to print.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Order: relevance, title, year or year_asc.
        #[arg(long, default_value = "relevance")]
        sort: String,
    },
    /// Rebuild the search index from the database beside the current one,
    /// then swap it in; beside a running server, the server swaps it in and
    /// searches meanwhile use the old index.
    Reindex,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Staff accounts: add, change a password, list.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Patrons: load from CSV.
    Patron {
        #[command(subcommand)]
        action: PatronAction,
    },
    /// Print the OpenAPI 3 document of the REST API.
    Openapi,
    /// Take an online, consistent backup into DEST (with DEST.manifest.json),
    /// or with --verify prove that a backup opens and holds its counted rows.
    Backup {
        /// The backup file to write (or, with --verify, to check).
        file: PathBuf,
        /// Check an existing backup instead of taking one.
        #[arg(long)]
        verify: bool,
    },
    /// Restore a backup into this data dir (SQLite) or database (PostgreSQL).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace an existing SQLite database file.
        #[arg(long)]
        force: bool,
    },
    /// Check that item status, loans, counters, transits and holds agree,
    /// printing each problem; with --repair, fix what has one safe answer.
    /// Exit 0 when all is well (after the repair), 1 when problems remain.
    Check {
        /// Repair what can be repaired safely.
        #[arg(long)]
        repair: bool,
    },
    /// Bring the database's schema up to this Shoko: with --dry-run, try
    /// the pending migrations on a copy and report their duration and any
    /// problem; without, take a verified backup first, then migrate.
    Upgrade {
        /// Try on a copy; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Everything an operator must watch, each marked ✔, ! or ✖ with what
    /// to do. Exit 0 when nothing fails, 1 otherwise.
    Doctor {
        /// Findings in Japanese.
        #[arg(long)]
        ja: bool,
    },
    /// Write one archive with version, redacted configuration, health,
    /// doctor, capacity, job runs, metrics and the end of the log.
    SupportBundle {
        /// The archive to write (default: shoko-support-DATE-TIME.tar.gz here).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Batch jobs: list them, run one now, show the history of runs.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
}

#[derive(Subcommand)]
enum JobsAction {
    /// Every job with its schedule and last run.
    List,
    /// Run a job now (notices, pick_lists, hold_shelf, reports).
    Run {
        /// The job.
        name: String,
    },
    /// Past runs, newest first.
    History {
        /// Only this job.
        name: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a staff account; the password is read from the first line of standard input.
    Add {
        /// Login name.
        username: String,
        /// admin, cataloguer, circulation, acquisitions or read_only.
        #[arg(long)]
        role: String,
        /// Name to show (default: the login name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Set a staff account's password, read from the first line of standard input;
    /// its sessions end.
    Passwd {
        /// Login name.
        username: String,
    },
    /// List staff accounts.
    List,
}

#[derive(Subcommand)]
enum PatronAction {
    /// Load patrons from CSV (header: barcode,name,name_reading,category,
    /// home_campus,email,phone,language,expires_on). Known barcodes are updated;
    /// bad rows are reported by line and the good rows loaded.
    Import {
        /// The CSV file (UTF-8).
        file: PathBuf,
    },
}

/// Exit code when some records were rejected and the rest imported.
const EXIT_SOME_REJECTED: u8 = 3;

fn main() -> ExitCode {
    without_transparent_huge_pages();
    let cli = Cli::parse();
    let data_dir = config::data_dir(cli.data_dir.clone());
    let config = match Config::load(&data_dir, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config);
    // The main thread keeps the process's priority and starts the thread
    // that accepts connections; the runtime's threads run below it.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(shoko_web::listener::run_below_the_accepting_thread)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, data_dir, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// How a command uses the search index on disk. Tantivy allows one writer
/// per index and a running server holds it, so other commands either leave
/// it alone or only read it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IndexUse {
    None,
    ReadOnly,
    Write,
}

/// Opens the application.
/// Whether opening failed because a running server holds the search index.
fn index_in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<shoko_app::search::IndexError>(),
            Some(shoko_app::search::IndexError::Search(
                shoko_search::SearchError::InUse
            ))
        )
    })
}

async fn open_app(
    cli_db: Option<&str>,
    data_dir: &Path,
    config: &Config,
    index_use: IndexUse,
) -> anyhow::Result<App> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let url = config.database_url(cli_db, data_dir);
    let options = StoreOptions {
        max_connections: config.database.max_connections.clamp(1, 100),
        acquire_timeout: Duration::from_millis(
            config.database.acquire_timeout_ms.clamp(100, 60_000),
        ),
    };
    let index = IndexOptions {
        dir: (index_use != IndexUse::None).then(|| data_dir.join("index")),
        writer_memory: config.search.writer_memory_mb.clamp(16, 1024) * 1024 * 1024,
        read_only: index_use == IndexUse::ReadOnly,
        batch: config.search.index_batch.clamp(10, 100_000),
        fold_records: config.search.fold_records.clamp(100, 1_000_000),
        fold_after: Duration::from_secs(config.search.fold_seconds.clamp(1, 3600)),
    };
    App::open(
        &url,
        &options,
        &index,
        shoko_app::Settings {
            catalogue: config.catalogue.clone(),
            circulation: config.circulation.clone(),
            jobs: shoko_app::JobsSettings {
                output_dir: Some(
                    config
                        .jobs
                        .output_dir
                        .clone()
                        .unwrap_or_else(|| data_dir.join("outputs")),
                ),
                ..config.jobs.clone()
            },
            mail: config.mail.clone(),
            operations: shoko_app::OperationsSettings {
                data_dir: Some(data_dir.to_owned()),
                ..config.operations.clone()
            },
        },
        Arc::new(SystemClock),
    )
    .await
}

/// Opens the application with the index on disk read-only when there is
/// one (to compare it with the database), else without an index.
async fn open_app_reading_index(
    db: Option<&str>,
    data_dir: &Path,
    config: &Config,
) -> anyhow::Result<App> {
    if data_dir.join("index").exists() {
        match open_app(db, data_dir, config, IndexUse::ReadOnly).await {
            Ok(app) => return Ok(app),
            Err(e)
                if e.chain()
                    .any(|c| c.downcast_ref::<shoko_app::StoreError>().is_some()) =>
            {
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the search index cannot be read; checking without it")
            }
        }
    }
    open_app(db, data_dir, config, IndexUse::None).await
}

/// Where `shoko upgrade` puts its backup, by the time it starts.
fn upgrade_backup_path(data_dir: &Path, config: &Config, url: &str) -> PathBuf {
    let dir = config
        .operations
        .backup_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("backups"));
    let extension = if url.starts_with("postgres") {
        "dump"
    } else {
        "db"
    };
    dir.join(format!(
        "pre-upgrade-{}.{extension}",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    ))
}

async fn upgrade(
    db: Option<&str>,
    data_dir: &Path,
    config: &Config,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let url = config.database_url(db, data_dir);
    let report = if dry_run {
        shoko_app::upgrade::dry_run(&url, data_dir).await?
    } else {
        shoko_app::upgrade::upgrade(&url, &upgrade_backup_path(data_dir, config, &url)).await?
    };
    if report.before.pending.is_empty() {
        println!(
            "✔ the schema is current ({}); nothing to do",
            report.before.applied.last().map_or("none", String::as_str)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let what = if dry_run { "on a copy: " } else { "" };
    if let Some(b) = &report.backup {
        println!("✔ backup taken and verified: {}", b.display());
    }
    println!(
        "{what}applied {} in {:.2} s: {}",
        report.applied.len(),
        report.seconds,
        report.applied.join(", ")
    );
    for p in &report.problems {
        println!("✖ {p}");
    }
    if report.problems.is_empty() {
        println!(
            "✔ {}no rows lost; circulation consistent{}",
            what,
            if dry_run {
                "; the database itself is unchanged: run `shoko upgrade`"
            } else {
                ""
            }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// The demo upgrades its own data dir (with a backup first) when a newer
/// Shoko finds an older schema there, so `shoko demo` stays one command.
async fn demo_upgrade(db: Option<&str>, data_dir: &Path, config: &Config) -> anyhow::Result<()> {
    let url = config.database_url(db, data_dir);
    if !data_dir.join("shoko.db").exists() && db.is_none() {
        return Ok(());
    }
    let (store, schema) =
        shoko_app::Store::open_for_upgrade(&url, &StoreOptions::default()).await?;
    store.close().await?;
    if schema.is_new() || schema.pending.is_empty() {
        return Ok(());
    }
    let report =
        shoko_app::upgrade::upgrade(&url, &upgrade_backup_path(data_dir, config, &url)).await?;
    tracing::info!(applied = ?report.applied, backup = ?report.backup, "demo data dir upgraded");
    Ok(())
}

async fn run(cli: Cli, data_dir: PathBuf, config: Config) -> anyhow::Result<ExitCode> {
    let db = cli.database.as_deref();
    match cli.command {
        Command::Config => {
            let mut shown = config.clone();
            shown.database.url = config.database_url(db, &data_dir);
            print!("{}", shown.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen } => {
            let app = open_app(db, &data_dir, &config, IndexUse::Write).await?;
            serve(app, &config, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen } => {
            let config = demo_config(&data_dir, config)?;
            demo_upgrade(db, &data_dir, &config).await?;
            let app = open_app(db, &data_dir, &config, IndexUse::Write).await?;
            if app.store.counts().await?.records == 0 {
                let file = data_dir.join("demo.mrc");
                std::fs::write(&file, DEMO_RECORDS)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                let report = app
                    .import_files(
                        &[file],
                        InputFormat::Auto,
                        Arc::new(shoko_app::import::Silent),
                    )
                    .await?;
                tracing::info!(
                    records = report.imported,
                    items = report.items_created,
                    "demo records imported"
                );
            }
            demo_people(&app).await?;
            serve(app, &config, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { format, files } => {
            let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
            import(&app, format, &files).await
        }
        Command::Validate { format, files } => validate(format, &files),
        Command::Openapi => {
            let doc = shoko_web::openapi()
                .to_pretty_json()
                .context("cannot write the OpenAPI document")?;
            println!("{doc}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Start { listen } => {
            daemon::start(&data_dir, db, listen.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop => {
            daemon::stop(&data_dir, config.server.shutdown_grace_seconds)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => Ok(if daemon::status(&data_dir)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        }),
        Command::Backup { file, verify } => {
            if verify {
                let url = config.database_url(db, &data_dir);
                let counts = backup::verify(&file, Some(&url)).await?;
                println!("✔ {} opens and holds {:?}", file.display(), counts.tables);
            } else {
                let url = config.database_url(db, &data_dir);
                let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
                let counts = backup::backup(&app.store, &url, &file).await?;
                println!("backup {} written: {:?}", file.display(), counts.tables);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { file, force } => {
            let url = config.database_url(db, &data_dir);
            let db_file = url
                .strip_prefix("sqlite://")
                .map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)));
            std::fs::create_dir_all(&data_dir)?;
            backup::restore(&file, &url, db_file.as_deref(), force).await?;
            println!("restored {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { repair } => {
            let app = open_app_reading_index(db, &data_dir, &config).await?;
            check(&app, repair).await
        }
        Command::Upgrade { dry_run } => upgrade(db, &data_dir, &config, dry_run).await,
        Command::Doctor { ja } => {
            let app = open_app_reading_index(db, &data_dir, &config).await?;
            let findings = app.doctor().await;
            for f in &findings {
                println!(
                    "{} {:<12} {}",
                    f.level.mark(),
                    f.area,
                    if ja { &f.ja } else { &f.en }
                );
            }
            Ok(
                if findings
                    .iter()
                    .any(|f| f.level == shoko_app::doctor::Level::Fail)
                {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        Command::SupportBundle { output } => {
            let app = open_app_reading_index(db, &data_dir, &config).await?;
            let output = output.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "shoko-support-{}.tar.gz",
                    chrono::Local::now().format("%Y%m%d-%H%M%S")
                ))
            });
            let url = config.database_url(db, &data_dir);
            let names = support::write_bundle(&app, &config, &data_dir, &url, &output).await?;
            println!("{} written: {}", output.display(), names.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { action } => {
            let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
            app.check_schedules()?;
            app.recover_interrupted_runs().await?;
            jobs(&app, action).await
        }
        Command::User { action } => {
            let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
            user(&app, action).await
        }
        Command::Patron {
            action: PatronAction::Import { file },
        } => {
            let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let load = app
                .load_patrons(&App::system(), std::io::BufReader::new(input))
                .await?;
            for r in &load.rejected {
                eprintln!("{}:{}: {}", file.display(), r.line, r.reason);
            }
            eprintln!(
                "{} patrons created, {} updated, {} rows rejected",
                load.created,
                load.updated,
                load.rejected.len()
            );
            Ok(if load.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_SOME_REJECTED)
            })
        }
        Command::Search { query, limit, sort } => {
            let sort = shoko_search::Sort::parse(&sort).with_context(|| {
                format!("sort {sort:?} is not relevance, title, year or year_asc")
            })?;
            let app = open_app(db, &data_dir, &config, IndexUse::ReadOnly)
                .await
                .context(
                    "cannot open the search index (run `shoko serve` or `shoko reindex` once)",
                )?;
            let page = app
                .search(&shoko_search::SearchRequest {
                    query,
                    limit,
                    sort,
                    ..Default::default()
                })
                .await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{} records", page.total)?;
            for h in &page.hits {
                let year = h.year.map_or_else(|| "----".to_owned(), |y| y.to_string());
                writeln!(
                    out,
                    "{}\t{year}\t{}\t{}",
                    h.id,
                    h.title,
                    h.authors.join("; ")
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex => {
            let bar = std::io::stderr().is_terminal().then(|| {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {pos} records indexed ({per_sec})")
                        .expect("the template is valid"),
                );
                bar
            });
            let shown = bar.clone();
            let progress = move |n| {
                if let Some(b) = &shown {
                    b.set_position(n);
                }
            };
            let n = match open_app(db, &data_dir, &config, IndexUse::Write).await {
                Ok(app) => app.reindex(&progress).await?,
                Err(e) if index_in_use(&e) => {
                    // A server holds the index: build beside it and let it swap.
                    let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
                    let index_dir = data_dir.join("index");
                    let n = app.build_for_running_server(&index_dir, &progress).await?;
                    if let Some(bar) = &bar {
                        bar.set_message("waiting for the server to swap it in");
                    }
                    let next = index_dir.with_extension("next");
                    let deadline = std::time::Instant::now() + Duration::from_secs(600);
                    while next.exists() {
                        if std::time::Instant::now() > deadline {
                            anyhow::bail!(
                                "the new index is ready in {} but the server has not swapped it in; \
                                 is `shoko serve` still running on this data dir?",
                                next.display()
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    eprintln!("the running server swapped in the new index");
                    n
                }
                Err(e) => return Err(e),
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!("indexed {n} records");
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { format, output } => {
            let app = open_app(db, &data_dir, &config, IndexUse::None).await?;
            let format = match format {
                ExportFormat::Iso2709 => shoko_marc::Format::Iso2709,
                ExportFormat::Marcxml => shoko_marc::Format::MarcXml,
            };
            let n = match output {
                None => {
                    app.export(format, BufWriter::new(std::io::stdout().lock()))
                        .await?
                }
                Some(path) => {
                    let tmp = path.with_extension("partial");
                    let file = std::fs::File::create(&tmp)
                        .with_context(|| format!("cannot create {}", tmp.display()))?;
                    let n = app.export(format, BufWriter::new(&file)).await?;
                    file.sync_all()?;
                    std::fs::rename(&tmp, &path)?;
                    n
                }
            };
            eprintln!("exported {n} records");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The demo catalogue: real Library of Congress records in Japanese, Chinese,
/// Korean and English with items on four campuses (see tools/make-demo.py).
const DEMO_RECORDS: &[u8] = include_bytes!("../../../fixtures/demo/demo.mrc");

/// The demo's configuration, written to the data dir the first time so that
/// an operator can read and change it.
const DEMO_CONFIG: &str = include_str!("demo.toml");

fn demo_config(data_dir: &Path, config: Config) -> anyhow::Result<Config> {
    let file = data_dir.join(config::FILE_NAME);
    if file.exists() {
        return Ok(config);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    std::fs::write(&file, DEMO_CONFIG)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(Config::load(data_dir, std::env::vars())?)
}

/// The demo's staff accounts and patrons, made once: `admin` and `desk`
/// (circulation) with the passwords the README gives, and ten patrons who
/// log in with `shoko-demo-patron`.
async fn demo_people(app: &App) -> anyhow::Result<()> {
    let system = App::system();
    if !app.staff_accounts(&system).await?.is_empty() {
        return Ok(());
    }
    for (name, display, role, password) in [
        (
            "admin",
            "管理者 (demo)",
            shoko_domain::Role::Admin,
            "shoko-demo-admin",
        ),
        (
            "desk",
            "カウンター (demo)",
            shoko_domain::Role::Circulation,
            "shoko-demo-desk",
        ),
    ] {
        let username = shoko_domain::Username::parse(name)?;
        app.add_staff(&system, &username, display, role, password)
            .await?;
    }
    let load = app.load_patrons(&system, DEMO_PATRONS.as_bytes()).await?;
    anyhow::ensure!(
        load.rejected.is_empty(),
        "demo patrons rejected: {:?}",
        load.rejected
    );
    for line in DEMO_PATRONS.lines().skip(1) {
        let barcode = line.split(',').next().unwrap_or_default();
        if let Some(p) = app.store.patron_by_barcode(barcode).await? {
            app.set_patron_password(&system, p.id, "shoko-demo-patron")
                .await?;
        }
    }
    tracing::info!(
        patrons = load.created,
        "demo accounts: admin / shoko-demo-admin, desk / shoko-demo-desk, patrons D0001–D0010 / shoko-demo-patron"
    );
    Ok(())
}

const DEMO_PATRONS: &str = include_str!("../../../fixtures/demo/patrons.csv");

async fn check(app: &App, repair: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let problems = app.consistency_problems().await?;
    for p in &problems {
        writeln!(out, "✖ {p}")?;
    }
    if problems.is_empty() {
        writeln!(
            out,
            "✔ item status, open loans, counters, transits, holds, references, outbox and index agree"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if !repair {
        writeln!(
            out,
            "{} problems; `shoko check --repair` fixes them",
            problems.len()
        )?;
        return Ok(ExitCode::FAILURE);
    }
    let ctx = shoko_store::WriteCtx {
        actor: "system".into(),
        now: app.clock.now_ms(),
        idempotency: None,
    };
    for (kind, n) in app.store.repair_circulation(&ctx).await? {
        if n > 0 {
            writeln!(out, "→ repaired {n}: {kind}")?;
        }
    }
    let left = app.consistency_problems().await?;
    for p in &left {
        writeln!(out, "✖ still: {p}")?;
    }
    if left.is_empty() {
        writeln!(
            out,
            "✔ item status, open loans, counters, transits, holds, references, outbox and index agree"
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn run_line(r: &shoko_store::JobRunRow) -> String {
    let when = chrono::DateTime::from_timestamp_millis(r.started_at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    format!(
        "{}\t{}\t{}\t{when}\tattempt {}\t{}\t{}",
        r.id,
        r.job,
        r.status,
        r.attempt,
        r.counts,
        r.error.as_deref().unwrap_or("")
    )
}

async fn jobs(app: &App, action: JobsAction) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match action {
        JobsAction::List => {
            for j in app.job_list().await? {
                let state = if j.schedule.enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                let last = j
                    .last_run
                    .as_ref()
                    .map_or_else(|| "never run".to_owned(), run_line);
                writeln!(out, "{}\t{state}\t{}\t{last}", j.name, j.schedule.cron)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsAction::Run { name } => {
            let run = app.run_job_now(&name).await?;
            writeln!(out, "{}", run_line(&run))?;
            for f in &run.outputs {
                writeln!(out, "{f}")?;
            }
            Ok(if run.status == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        JobsAction::History { name, limit } => {
            for r in app.job_history(name.as_deref(), limit).await? {
                writeln!(out, "{}", run_line(&r))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The first line of standard input, without its line end: a password.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

async fn user(app: &App, action: UserAction) -> anyhow::Result<ExitCode> {
    let system = App::system();
    match action {
        UserAction::Add {
            username,
            role,
            name,
        } => {
            let username = shoko_domain::Username::parse(&username)?;
            let role = shoko_domain::Role::from_code(&role).with_context(|| {
                format!(
                    "role {role:?} is not admin, cataloguer, circulation, acquisitions or read_only"
                )
            })?;
            let password = password_from_stdin()?;
            let name = name.unwrap_or_else(|| username.to_string());
            let s = app
                .add_staff(&system, &username, &name, role, &password)
                .await?;
            eprintln!("staff account {} ({}) added", s.username, s.role);
        }
        UserAction::Passwd { username } => {
            let username = shoko_domain::Username::parse(&username)?;
            let password = password_from_stdin()?;
            app.update_staff(&system, &username, None, None, None, Some(&password))
                .await?;
            eprintln!("password of {username} changed; its sessions have ended");
        }
        UserAction::List => {
            let mut out = std::io::stdout().lock();
            for s in app.staff_accounts(&system).await? {
                let state = if s.active { "active" } else { "inactive" };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    s.username, s.role, state, s.display_name
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Database connections of the search indexer's own pool.
const INDEXER_CONNECTIONS: u32 = 2;

/// Starts the search indexer on a thread of its own, with a runtime of its
/// own, below the threads that serve requests
/// ([`shoko_web::listener::INDEXER_NICE`]); the threads it starts (on
/// SQLite its connections') inherit its priority, and its index commits
/// run lower still (`shoko_search::in_background`). Returns
/// once the thread is lowered and has its connections, with what resolves
/// when the indexer has stopped.
async fn spawn_indexer(
    app: App,
    every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the indexer's runtime")?;
    let (ready, started) = tokio::sync::oneshot::channel();
    let (stopped, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shoko-indexer".into())
        .spawn(move || {
            shoko_web::listener::lower_this_thread(shoko_web::listener::INDEXER_NICE);
            runtime.block_on(async {
                // Opened here, so that on SQLite its connections' threads
                // run at this thread's priority too: the reads of a refresh
                // are most of its work.
                let app = match app.with_own_pool(INDEXER_CONNECTIONS).await {
                    Ok(own) => own,
                    Err(e) => {
                        tracing::warn!(error = %e, "the indexer shares the requests' connections");
                        app
                    }
                };
                let _ = ready.send(());
                app.index_forever(every, stop).await;
            });
            let _ = stopped.send(());
        })
        .context("cannot start the indexer's thread")?;
    started
        .await
        .context("the indexer's thread stopped as it started")?;
    Ok(done)
}

/// Serves on `listen` (else the configured address) until SIGTERM or Ctrl-C.
async fn serve(app: App, config: &Config, listen: Option<String>) -> anyhow::Result<()> {
    let listen = listen.unwrap_or(config.server.listen.clone());
    let refresh = Duration::from_millis(config.search.refresh_interval_ms.clamp(50, 60_000));
    let limits = config.search_limits();
    let signals = shutdown_signal()?;
    let listener = shoko_web::listener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(recovery) = app.start_running().await? {
        tracing::warn!(
            problems = recovery.problems.len(),
            "the last run did not stop cleanly; circulation checked"
        );
        for p in &recovery.problems {
            tracing::warn!(problem = %p, "found after the unclean stop");
        }
        for (kind, n) in recovery.repaired.iter().filter(|(_, n)| *n > 0) {
            eprintln!("after the unclean stop, repaired {n}: {kind}");
        }
    }
    let caught_up = app.index_catch_up().await?;
    tracing::info!(rows = caught_up, "search index caught up");
    let (stop_indexer, stop) = tokio::sync::watch::channel(false);
    let scheduler_stop = stop.clone();
    let indexer = spawn_indexer(app.clone(), refresh, stop).await?;
    app.check_schedules()?;
    let scheduler_app = app.clone();
    let scheduler = tokio::spawn(async move {
        scheduler_app
            .scheduler_forever(Duration::from_secs(20), scheduler_stop)
            .await;
    });
    tracing::info!(%addr, database = app.store.engine().name(), "Shoko is serving");
    eprintln!("Shoko is serving on http://{addr}/");
    let store = app.store.clone();
    let marker_app = app.clone();
    tracing::info!(
        max_concurrent = limits.max_concurrent,
        queue = limits.queue,
        per_client_per_second = limits.per_client_per_second,
        "search admission limits"
    );
    let (stopping, stop_requested) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signals.await;
        let _ = stopping.send(true);
    });
    let mut graceful = stop_requested.clone();
    let mut bound = stop_requested;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let connections = shoko_web::listener::Connections {
        max_open: config
            .server
            .max_connections
            .unwrap_or(256 * cores)
            .clamp(16, 65_536),
        keep_alive: Duration::from_secs(config.server.keep_alive_seconds.clamp(1, 3600)),
    };
    let serving = shoko_web::serve(
        app,
        limits,
        config.server.secure_cookies,
        connections,
        listener,
        async move {
            let _ = graceful.wait_for(|stop| *stop).await;
        },
    );
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    tokio::select! {
        served = serving => served?,
        _ = async {
            let _ = bound.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(seconds = grace.as_secs(), "requests still running after the grace period; stopping without them");
        }
    }
    let _ = stop_indexer.send(true);
    let _ = indexer.await;
    let _ = scheduler.await;
    store.close().await?;
    marker_app.stop_running();
    tracing::info!("stopped cleanly");
    eprintln!("Shoko stopped cleanly");
    Ok(())
}

/// Listens for SIGTERM, SIGINT (Ctrl-C) and SIGPWR from now on, and
/// returns a future that completes at the first. Registering before the
/// server says it serves means a stop sent the moment it is up (a service
/// manager, a test) is never missed and never kills it uncleanly.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    // SIGPWR (30 on Linux): a UPS on battery tells init, which tells
    // services; the rolling blackouts of the account behind Shoko made this
    // a daily stop.
    let mut power = signal(SignalKind::from_raw(30)).ok();
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
            _ = async {
                match power.as_mut() {
                    Some(p) => { p.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}

/// Shows import progress: a bar on a terminal, a line per batch otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl ImportProgress for Progress {
    fn read(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }

    fn committed(&self, records: u64) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{records} records committed")),
            None => eprintln!("committed {records} records"),
        }
    }
}

/// Reads every record of every file; prints `valid N, rejected R` and one
/// line per bad record, like `import` does, and exits the same way.
fn validate(format: ImportFormat, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut valid, mut rejected) = (0u64, Vec::new());
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut input = std::io::BufReader::with_capacity(256 * 1024, file);
        let format = match format {
            ImportFormat::Auto => {
                shoko_marc::Format::sniff(std::io::BufRead::fill_buf(&mut input)?)
            }
            ImportFormat::Iso2709 => shoko_marc::Format::Iso2709,
            ImportFormat::Marcxml => shoko_marc::Format::MarcXml,
        };
        for item in shoko_marc::reader(format, input) {
            match item.with_context(|| format!("cannot read {}", path.display()))? {
                Ok(_) => valid += 1,
                Err(e) => rejected.push(format!("{}: {e}", path.display())),
            }
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "valid {valid}, rejected {}", rejected.len())?;
    for r in &rejected {
        writeln!(out, "rejected: {r}")?;
    }
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SOME_REJECTED)
    })
}

async fn import(app: &App, format: ImportFormat, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut total = 0;
    for f in files {
        total += std::fs::metadata(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .len();
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta} {msg}")
                .expect("the template is valid"),
        );
        bar
    });
    let progress = Arc::new(Progress { bar: bar.clone() });
    let format = match format {
        ImportFormat::Auto => InputFormat::Auto,
        ImportFormat::Iso2709 => InputFormat::Exactly(shoko_marc::Format::Iso2709),
        ImportFormat::Marcxml => InputFormat::Exactly(shoko_marc::Format::MarcXml),
    };
    let started = std::time::Instant::now();
    let report = app.import_files(files, format, progress).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    const MAX_WARNINGS: usize = 200;
    for w in report.warnings.iter().take(MAX_WARNINGS) {
        eprintln!("warning: {w}");
    }
    if report.warnings.len() > MAX_WARNINGS {
        eprintln!(
            "warning: … and {} more",
            report.warnings.len() - MAX_WARNINGS
        );
    }
    let processed = report.imported + report.updated;
    eprintln!(
        "{processed} records in {secs:.1} s ({:.0} records/s), {} items created",
        processed as f64 / secs.max(1e-9),
        report.items_created
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "imported {}, updated {}, rejected {}",
        report.imported,
        report.updated,
        report.rejections.len()
    )?;
    for r in &report.rejections {
        writeln!(out, "rejected: {r}")?;
    }
    Ok(if report.rejections.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SOME_REJECTED)
    })
}
