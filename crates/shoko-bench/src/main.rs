//! `shoko-bench`: the search benchmarks of `scripts/bench-search` and the
//! circulation benchmark of `scripts/bench-circulation`.
//!
//! - `queries` draws a realistic query mix from a catalogue (known-item
//!   titles, 1–3 keywords, authors, ISBNs, Japanese title fragments).
//! - `baseline` builds the comparisons on the same records: PostgreSQL
//!   full-text search (`tsvector`, GIN; `pg_trgm` for CJK and ISBNs, as
//!   Evergreen does) and SQLite FTS5 with the trigram tokenizer.
//! - `load` runs the mix closed-loop at 1, 8 and 64 clients against Shoko's
//!   HTTP API or a baseline, every query with facets (language, format,
//!   decade), and prints p50/p99 latency and throughput.
//! - `overload` sends searches open-loop at a fixed rate and reports what was
//!   admitted, what was refused and how fast, and whether service recovers.
//! - `recall` checks Japanese title searches against a full scan.
//! - `follow` watches `/health` while an import runs: how fast the indexer
//!   keeps up.
//! - `desk-setup`, `desk-preload` and `desk` are the circulation benchmark of
//!   `scripts/bench-circulation` (see `desk.rs`).

mod desk;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use shoko_text::{TokenKind, normalize, tokenize};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints a query mix drawn from the catalogue, one `kind<TAB>text` per line.
    Queries {
        /// Shoko's database.
        #[arg(long)]
        database: String,
        /// How many queries.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Seed of the draw.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Builds the PostgreSQL and SQLite FTS5 baselines from Shoko's records.
    Baseline {
        /// Shoko's database to copy the records from.
        #[arg(long)]
        from: String,
        /// PostgreSQL database for the full-text baseline.
        #[arg(long)]
        postgres: Option<String>,
        /// SQLite file for the FTS5 baseline (created).
        #[arg(long)]
        sqlite: Option<PathBuf>,
    },
    /// Closed-loop load: `shoko=http://…` (the search API), `opac=http://…`
    /// (results pages), `record=http://…#N` (record pages of ids 1..=N),
    /// `postgres=postgres://…`, `sqlite=FILE`, or `index=DIR` (Shoko's index
    /// in this process, no HTTP).
    Load {
        /// What to load.
        #[arg(long)]
        target: String,
        /// The query mix.
        #[arg(long)]
        queries: PathBuf,
        /// Concurrent clients, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        clients: Vec<usize>,
        /// Seconds measured per run (after 2 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Open-loop searches at a fixed rate against Shoko.
    Overload {
        /// Shoko's base URL.
        #[arg(long)]
        url: String,
        /// The query mix.
        #[arg(long)]
        queries: PathBuf,
        /// Searches per second.
        #[arg(long)]
        rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Japanese title queries of 1–8 characters against a full scan.
    Recall {
        /// Shoko's database.
        #[arg(long)]
        database: String,
        /// Shoko's index directory.
        #[arg(long)]
        index: PathBuf,
        /// How many distinct queries (each also in its variant forms).
        #[arg(long, default_value_t = 3000)]
        n: usize,
    },
    /// Follows `/health` until `rows` more changes are applied.
    Follow {
        /// Shoko's base URL.
        #[arg(long)]
        url: String,
        /// Changes to wait for.
        #[arg(long)]
        rows: i64,
    },
    /// Gives the first N records an available item each (before the server starts).
    DeskSetup {
        /// Shoko's database URL.
        #[arg(long)]
        database: String,
        /// Items to make.
        #[arg(long)]
        items: u64,
    },
    /// Lends N items to one patron.
    DeskPreload {
        /// Shoko's base URL.
        #[arg(long)]
        url: String,
        /// A circulation account's bearer token.
        #[arg(long)]
        token: String,
        /// Shoko's database URL (to find the bench items).
        #[arg(long)]
        database: String,
        /// The patron's barcode.
        #[arg(long)]
        patron: String,
        /// Loans to make.
        #[arg(long)]
        n: usize,
    },
    /// Checkouts and check-ins closed-loop from N desks; prints Markdown rows.
    Desk {
        /// Shoko's base URL.
        #[arg(long)]
        url: String,
        /// A circulation account's bearer token.
        #[arg(long)]
        token: String,
        /// Shoko's database URL (to find the bench items).
        #[arg(long)]
        database: String,
        /// Desks at once.
        #[arg(long)]
        desks: usize,
        /// Length of the run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Each desk scans once per this many milliseconds (default: as fast as answered).
        #[arg(long)]
        pace_ms: Option<u64>,
        /// Desk d lends to patron `<prefix><d, 4 digits>`.
        #[arg(long, default_value = "P")]
        patron_prefix: String,
        /// First column of the printed rows.
        #[arg(long)]
        label: String,
        /// Also writes every operation to this file, one line each: desk,
        /// operation, start (ms into the run) and latency (ms), tab-separated.
        #[arg(long)]
        timeline: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Queries { database, n, seed } => queries(&database, n, seed).await,
        Command::Baseline {
            from,
            postgres,
            sqlite,
        } => baseline(&from, postgres.as_deref(), sqlite.as_deref()).await,
        Command::Load {
            target,
            queries,
            clients,
            seconds,
        } => load(&target, &queries, &clients, seconds).await,
        Command::Overload {
            url,
            queries,
            rate,
            seconds,
        } => overload(&url, &queries, rate, seconds).await,
        Command::Recall { database, index, n } => recall(&database, &index, n).await,
        Command::Follow { url, rows } => follow(&url, rows).await,
        Command::DeskSetup { database, items } => desk::setup(&database, items).await,
        Command::DeskPreload {
            url,
            token,
            database,
            patron,
            n,
        } => desk::preload(&url, &token, &database, &patron, n).await,
        Command::Desk {
            url,
            token,
            database,
            desks,
            seconds,
            pace_ms,
            patron_prefix,
            label,
            timeline,
        } => {
            let pace = pace_ms.map(Duration::from_millis);
            desk::run(
                &url,
                &token,
                &database,
                desks,
                seconds,
                pace,
                &patron_prefix,
                &label,
                timeline.as_deref(),
            )
            .await
        }
    }
}

/// A small deterministic generator (xorshift64*), so a seed gives the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The columns of a record the benchmarks use.
struct Row {
    id: i64,
    title: String,
    reading: String,
    authors: Vec<String>,
    subjects: Vec<String>,
    isbns: Vec<String>,
    language: String,
    format: String,
    year: Option<i32>,
}

async fn connect(url: &str, pool: u32) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool)
        .min_connections(1)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("connect to {url}"))
}

async fn rows(database: &str) -> anyhow::Result<Vec<Row>> {
    let db = connect(database, 1).await?;
    let sql = "SELECT id, title, title_reading, authors, subjects, isbns, \
               COALESCE(language, ''), format, year FROM records ORDER BY id";
    let list = |s: String| -> Vec<String> { serde_json::from_str(&s).unwrap_or_default() };
    let mut out = Vec::new();
    for r in db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
    {
        out.push(Row {
            id: r.try_get_by_index(0)?,
            title: r.try_get_by_index(1)?,
            reading: r.try_get_by_index(2)?,
            authors: list(r.try_get_by_index(3)?),
            subjects: list(r.try_get_by_index(4)?),
            isbns: list(r.try_get_by_index(5)?),
            language: r.try_get_by_index(6)?,
            format: r.try_get_by_index(7)?,
            year: r.try_get_by_index(8)?,
        });
    }
    Ok(out)
}

fn title_proper(title: &str) -> &str {
    [" : ", " / ", " = ", " ; ", " . "]
        .iter()
        .filter_map(|sep| title.find(sep))
        .min()
        .map_or(title, |i| &title[..i])
        .trim_end_matches(['.', ' ', '/', ':'])
}

/// The CJK runs of a text, normalised.
fn cjk_runs(text: &str) -> Vec<Vec<char>> {
    let norm = normalize(text);
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last: Option<usize> = None;
    for t in tokenize(&norm) {
        if t.kind != TokenKind::Unigram {
            continue;
        }
        let c = t.text.chars().next().unwrap_or(' ');
        match runs.last_mut() {
            Some(run) if last.is_some_and(|p| p + 1 == t.position) => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = Some(t.position);
    }
    runs
}

async fn queries(database: &str, n: usize, seed: u64) -> anyhow::Result<()> {
    let all = rows(database).await?;
    let latin: Vec<&Row> = all.iter().filter(|r| r.language == "eng").collect();
    let japanese: Vec<&Row> = all.iter().filter(|r| r.language == "jpn").collect();
    let with_isbn: Vec<&Row> = all.iter().filter(|r| !r.isbns.is_empty()).collect();
    let with_author: Vec<&Row> = latin
        .iter()
        .copied()
        .filter(|r| !r.authors.is_empty())
        .collect();
    if latin.is_empty() || japanese.is_empty() || with_isbn.is_empty() || with_author.is_empty() {
        bail!("the catalogue needs English and Japanese records, ISBNs and authors");
    }
    let mut rng = Rng(seed.max(1));
    let mut made = 0;
    while made < n {
        let (kind, text) = match rng.below(20) {
            // 25 % known-item titles.
            0..=4 => {
                let t = title_proper(&latin[rng.below(latin.len())].title).to_owned();
                ("known", t)
            }
            // 25 % one to three keywords from a title.
            5..=9 => {
                let r = latin[rng.below(latin.len())];
                let words: Vec<&str> = r
                    .title
                    .split_whitespace()
                    .filter(|w| w.len() >= 4 && w.chars().all(char::is_alphabetic))
                    .collect();
                if words.is_empty() {
                    continue;
                }
                let k = 1 + rng.below(3.min(words.len()));
                let start = rng.below(words.len() + 1 - k);
                ("keyword", words[start..start + k].join(" "))
            }
            // 15 % authors by surname.
            10..=12 => {
                let r = with_author[rng.below(with_author.len())];
                let surname = r.authors[0].split(',').next().unwrap_or("").trim();
                if surname.len() < 3 || !surname.chars().all(char::is_alphabetic) {
                    continue;
                }
                ("author", surname.to_owned())
            }
            // 10 % ISBNs.
            13..=14 => {
                let r = with_isbn[rng.below(with_isbn.len())];
                ("isbn", r.isbns[0].clone())
            }
            // 25 % Japanese title fragments of 2 to 6 characters.
            _ => {
                let r = japanese[rng.below(japanese.len())];
                // As written in the title (the baselines do not normalise).
                let runs: Vec<Vec<char>> = r
                    .title
                    .split(|c: char| !shoko_text::is_cjk(c))
                    .map(|run| run.chars().collect::<Vec<char>>())
                    .filter(|run| run.len() >= 2)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let run = &runs[rng.below(runs.len())];
                let len = (2 + rng.below(5)).min(run.len());
                let start = rng.below(run.len() + 1 - len);
                ("japanese", run[start..start + len].iter().collect())
            }
        };
        if text.trim().is_empty() || text.contains('\t') {
            continue;
        }
        println!("{kind}\t{text}");
        made += 1;
    }
    Ok(())
}

async fn baseline(from: &str, postgres: Option<&str>, sqlite: Option<&Path>) -> anyhow::Result<()> {
    let all = rows(from).await?;
    let joined = |v: &[String]| v.join(" ; ");
    if let Some(url) = postgres {
        let db = connect(url, 1).await?;
        let started = Instant::now();
        for sql in [
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            "DROP TABLE IF EXISTS bench_fts",
            "CREATE TABLE bench_fts (id bigint PRIMARY KEY, title text, authors text, \
             subjects text, isbns text, language text, format text, year int)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        for chunk in all.chunks(1000) {
            let mut sql = String::from(
                "INSERT INTO bench_fts (id, title, authors, subjects, isbns, language, format, year) VALUES ",
            );
            let mut values: Vec<sea_orm::Value> = Vec::new();
            for (k, r) in chunk.iter().enumerate() {
                let b = k * 8;
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${},${},${},${},${},${},${},${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                ));
                values.extend([
                    r.id.into(),
                    r.title.clone().into(),
                    joined(&r.authors).into(),
                    joined(&r.subjects).into(),
                    joined(&r.isbns).into(),
                    r.language.clone().into(),
                    r.format.clone().into(),
                    r.year.into(),
                ]);
            }
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        }
        for sql in [
            "ALTER TABLE bench_fts ADD COLUMN tsv tsvector GENERATED ALWAYS AS (\
             setweight(to_tsvector('simple', title), 'A') || \
             setweight(to_tsvector('simple', authors), 'B') || \
             to_tsvector('simple', subjects)) STORED",
            "ALTER TABLE bench_fts ADD COLUMN author_tsv tsvector GENERATED ALWAYS AS (\
             to_tsvector('simple', authors)) STORED",
            "CREATE INDEX bench_fts_tsv ON bench_fts USING gin (tsv)",
            "CREATE INDEX bench_fts_author ON bench_fts USING gin (author_tsv)",
            "CREATE INDEX bench_fts_title_trgm ON bench_fts USING gin (title gin_trgm_ops)",
            "CREATE INDEX bench_fts_isbn_trgm ON bench_fts USING gin (isbns gin_trgm_ops)",
            "VACUUM ANALYZE bench_fts",
        ] {
            db.execute_unprepared(sql).await?;
        }
        let size = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_total_relation_size('bench_fts')::bigint",
            ))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        println!(
            "postgres\tbuild_seconds={:.1}\tsize_mib={:.0}",
            started.elapsed().as_secs_f64(),
            size as f64 / 1048576.0
        );
    }
    if let Some(path) = sqlite {
        let _ = std::fs::remove_file(path);
        let db = connect(&format!("sqlite://{}?mode=rwc", path.display()), 1).await?;
        let started = Instant::now();
        for sql in [
            "PRAGMA journal_mode=WAL",
            "CREATE VIRTUAL TABLE fts USING fts5(title, authors, subjects, isbns, tokenize='trigram')",
            "CREATE TABLE meta (id INTEGER PRIMARY KEY, language TEXT, format TEXT, year INT)",
            "BEGIN",
        ] {
            db.execute_unprepared(sql).await?;
        }
        for r in &all {
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO fts (rowid, title, authors, subjects, isbns) VALUES (?, ?, ?, ?, ?)",
                [
                    r.id.into(),
                    r.title.clone().into(),
                    joined(&r.authors).into(),
                    joined(&r.subjects).into(),
                    joined(&r.isbns).into(),
                ],
            ))
            .await?;
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO meta (id, language, format, year) VALUES (?, ?, ?, ?)",
                [
                    r.id.into(),
                    r.language.clone().into(),
                    r.format.clone().into(),
                    r.year.into(),
                ],
            ))
            .await?;
        }
        db.execute_unprepared("COMMIT").await?;
        db.execute_unprepared("INSERT INTO fts(fts) VALUES ('optimize')")
            .await?;
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!(
            "sqlite\tbuild_seconds={:.1}\tsize_mib={:.0}",
            started.elapsed().as_secs_f64(),
            size as f64 / 1048576.0
        );
    }
    Ok(())
}

/// One query of the mix.
#[derive(Clone)]
struct BenchQuery {
    kind: String,
    text: String,
}

fn read_queries(path: &Path) -> anyhow::Result<Vec<BenchQuery>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let list: Vec<BenchQuery> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, t)| BenchQuery {
            kind: k.to_owned(),
            text: t.to_owned(),
        })
        .collect();
    if list.is_empty() {
        bail!("{}: no queries", path.display());
    }
    Ok(list)
}

/// Where the load goes.
#[derive(Clone)]
enum Target {
    Shoko(Arc<RawHttp>),
    /// The public catalogue's results page (`/?q=…`, all five facets).
    Opac(Arc<RawHttp>),
    /// The public catalogue's record pages, ids spread over 1..=N.
    Record(Arc<RawHttp>, u64),
    /// The index in this process: what a search costs without HTTP.
    Index(Arc<shoko_search::SearchIndex>),
    Sql(DatabaseConnection, DbBackend),
}

/// Keep-alive HTTP/1.1 GETs over plain TCP, as little client work per
/// request as possible: the load generator shares the machine with the
/// server, and every cycle it spends is one the server does not get.
struct RawHttp {
    addr: std::net::SocketAddr,
    host: String,
    idle: std::sync::Mutex<Vec<tokio::net::TcpStream>>,
}

impl RawHttp {
    fn new(base: &str) -> anyhow::Result<RawHttp> {
        let url = reqwest::Url::parse(base)?;
        let host = url.host_str().context("a host")?.to_owned();
        let port = url.port_or_known_default().context("a port")?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))?
            .next()
            .context("an address")?;
        Ok(RawHttp {
            addr,
            host: format!("{host}:{port}"),
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// One GET; the status code. The connection goes back to the pool when
    /// the whole response was read.
    async fn get(&self, path: &str) -> anyhow::Result<u16> {
        Ok(self.answer(path).await?.status)
    }

    /// One GET, and how it was answered.
    async fn answer(&self, path: &str) -> anyhow::Result<Answer> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let fresh = pooled.is_none();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = tokio::net::TcpStream::connect(self.addr).await?;
                c.set_nodelay(true)?;
                c
            }
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        conn.write_all(request.as_bytes()).await?;
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&buf[..head_end])?;
        let status: u16 = head.get(9..12).context("a status line")?.parse()?;
        // A server that says it closes (a refusal at accept) is not reused.
        let closes = head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("connection: close"));
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("a content-length")?;
        while buf.len() < head_end + length {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection mid-response");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if !closes && let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(Answer {
            status,
            closes,
            fresh,
        })
    }
}

/// How the server answered one request.
struct Answer {
    status: u16,
    /// The server closed the connection after it (Shoko's refusal at
    /// accept, above its connection bound; the admission gate's 503 keeps
    /// the connection).
    closes: bool,
    /// The request opened a new connection (none was idle in the pool).
    fresh: bool,
}

/// The path and query of Shoko's search API for a query of the mix.
fn search_path(q: &BenchQuery) -> String {
    let mut url = reqwest::Url::parse("http://x/api/v1/search").expect("a valid URL");
    url.query_pairs_mut()
        .append_pair("q", &shoko_query(q))
        .append_pair("limit", "20")
        .append_pair("facet", "language")
        .append_pair("facet", "format")
        .append_pair("facet", "year");
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

/// The search box text Shoko gets for a query of the mix.
fn shoko_query(q: &BenchQuery) -> String {
    match q.kind.as_str() {
        "author" => format!("author:{}", q.text),
        _ => q.text.clone(),
    }
}

const PG_FACETS: &str = " UNION ALL SELECT 't', '', count(*)::float8 FROM m \
    UNION ALL SELECT 'l', language, count(*)::float8 FROM m GROUP BY language \
    UNION ALL SELECT 'f', format, count(*)::float8 FROM m GROUP BY format \
    UNION ALL SELECT 'y', (year / 10 * 10)::text, count(*)::float8 FROM m GROUP BY year / 10 * 10";

const SQLITE_FACETS: &str = " UNION ALL SELECT 't', '', count(*) FROM m \
    UNION ALL SELECT 'l', language, count(*) FROM m GROUP BY language \
    UNION ALL SELECT 'f', format, count(*) FROM m GROUP BY format \
    UNION ALL SELECT 'y', CAST(year / 10 * 10 AS TEXT), count(*) FROM m GROUP BY year / 10 * 10";

/// The baseline's statement and parameter for a query of the mix: top 20 by
/// rank, total, and the three facets, in one round trip.
fn sql_for(q: &BenchQuery, backend: DbBackend) -> (String, String) {
    match backend {
        DbBackend::Postgres => {
            let (matcher, rank) = match q.kind.as_str() {
                "known" | "keyword" => (
                    "tsv @@ plainto_tsquery('simple', $1)",
                    "ts_rank(tsv, plainto_tsquery('simple', $1))",
                ),
                "author" => (
                    "author_tsv @@ plainto_tsquery('simple', $1)",
                    "ts_rank(author_tsv, plainto_tsquery('simple', $1))",
                ),
                "isbn" => ("isbns LIKE '%' || $1 || '%'", "1.0"),
                _ => ("title ILIKE '%' || $1 || '%'", "1.0"),
            };
            (
                format!(
                    "WITH m AS (SELECT id, language, format, year, {rank} AS r FROM bench_fts \
                     WHERE {matcher}) SELECT 'h', id::text, r::float8 FROM \
                     (SELECT id, r FROM m ORDER BY r DESC, id LIMIT 20) h{PG_FACETS}"
                ),
                q.text.clone(),
            )
        }
        _ => {
            // The trigram tokenizer needs three characters; shorter words
            // cannot be matched through the index.
            let words: Vec<String> = q
                .text
                .split_whitespace()
                .filter(|w| w.chars().count() >= 3)
                .map(|w| format!("\"{}\"", w.replace('"', "")))
                .collect();
            let (matcher, param) = match q.kind.as_str() {
                "known" | "keyword" if !words.is_empty() => ("fts MATCH ?1", words.join(" ")),
                "author" => ("fts MATCH ?1", format!("authors : \"{}\"", q.text)),
                "isbn" => ("fts MATCH ?1", format!("isbns : \"{}\"", q.text)),
                "japanese" if q.text.chars().count() >= 3 => {
                    ("fts MATCH ?1", format!("title : \"{}\"", q.text))
                }
                _ => ("fts.title LIKE '%' || ?1 || '%'", q.text.clone()),
            };
            let rank = if matcher.contains("MATCH") {
                "fts.rank"
            } else {
                "0.0"
            };
            (
                format!(
                    "WITH m AS (SELECT meta.id AS id, language, format, year, {rank} AS r \
                     FROM fts JOIN meta ON meta.id = fts.rowid WHERE {matcher}) \
                     SELECT * FROM (SELECT 'h', CAST(id AS TEXT), r FROM m ORDER BY r, id LIMIT 20)\
                     {SQLITE_FACETS}"
                ),
                param,
            )
        }
    }
}

impl Target {
    async fn open(spec: &str, pool: u32) -> anyhow::Result<Target> {
        let (kind, rest) = spec
            .split_once('=')
            .context("a target is shoko=URL, postgres=URL or sqlite=FILE")?;
        Ok(match kind {
            "shoko" => Target::Shoko(Arc::new(RawHttp::new(rest)?)),
            "opac" => Target::Opac(Arc::new(RawHttp::new(rest)?)),
            "record" => {
                let (url, n) = rest
                    .rsplit_once('#')
                    .context("record=URL#RECORDS: the number of records to spread over")?;
                Target::Record(Arc::new(RawHttp::new(url)?), n.parse()?)
            }
            "index" => Target::Index(Arc::new(shoko_search::SearchIndex::open_read_only(
                Path::new(rest),
            )?)),
            "postgres" => Target::Sql(connect(rest, pool).await?, DbBackend::Postgres),
            "sqlite" => Target::Sql(
                connect(&format!("sqlite://{rest}?mode=ro"), pool).await?,
                DbBackend::Sqlite,
            ),
            _ => bail!("unknown target {kind:?}"),
        })
    }

    /// Runs one query; the HTTP status (200 for SQL).
    async fn run(&self, q: &BenchQuery) -> anyhow::Result<u16> {
        match self {
            Target::Shoko(http) => Ok(http.get(&search_path(q)).await?),
            Target::Opac(http) => {
                let mut url = reqwest::Url::parse("http://x/").expect("a valid URL");
                url.query_pairs_mut().append_pair("q", &shoko_query(q));
                Ok(http
                    .get(&format!("/?{}", url.query().unwrap_or("")))
                    .await?)
            }
            Target::Record(http, n) => {
                // FNV-1a of the query text: the same page for the same query.
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in q.text.bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
                Ok(http.get(&format!("/records/{}", h % n.max(&1) + 1)).await?)
            }
            Target::Index(index) => {
                let index = Arc::clone(index);
                let request = shoko_search::SearchRequest {
                    query: shoko_query(q),
                    limit: 20,
                    facets: vec![
                        shoko_search::Facet::Language,
                        shoko_search::Facet::Format,
                        shoko_search::Facet::Year,
                    ],
                    ..Default::default()
                };
                let found = tokio::task::spawn_blocking(move || index.search(&request)).await??;
                std::hint::black_box(found.total);
                Ok(200)
            }
            Target::Sql(db, backend) => {
                let (sql, param) = sql_for(q, *backend);
                let rows = db
                    .query_all_raw(Statement::from_sql_and_values(
                        *backend,
                        sql,
                        [param.into()],
                    ))
                    .await?;
                std::hint::black_box(rows.len());
                Ok(200)
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

async fn closed_loop(
    target: &Target,
    queries: &Arc<Vec<BenchQuery>>,
    clients: usize,
    length: Duration,
) -> (Vec<Duration>, u64, BTreeMap<String, Vec<Duration>>) {
    let deadline = Instant::now() + length;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let target = target.clone();
        let queries = Arc::clone(queries);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut by_kind: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
            let mut errors = 0u64;
            let mut k = c * 7919;
            while Instant::now() < deadline {
                let q = &queries[k % queries.len()];
                k += 1;
                let t = Instant::now();
                match target.run(q).await {
                    Ok(200) => {
                        let d = t.elapsed();
                        lat.push(d);
                        by_kind.entry(q.kind.clone()).or_default().push(d);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors, by_kind)
        }));
    }
    let (mut all, mut errors, mut kinds) = (Vec::new(), 0, BTreeMap::new());
    for t in tasks {
        if let Ok((lat, e, by_kind)) = t.await {
            all.extend(lat);
            errors += e;
            for (k, v) in by_kind {
                kinds.entry(k).or_insert_with(Vec::new).extend(v);
            }
        }
    }
    all.sort();
    (all, errors, kinds)
}

async fn load(spec: &str, path: &Path, clients: &[usize], seconds: u64) -> anyhow::Result<()> {
    let queries = Arc::new(read_queries(path)?);
    let name = spec.split_once('=').map_or(spec, |(k, _)| k);
    for &c in clients {
        let target = Target::open(spec, c.clamp(1, 64) as u32).await?;
        closed_loop(&target, &queries, c, Duration::from_secs(2)).await;
        let (lat, errors, kinds) =
            closed_loop(&target, &queries, c, Duration::from_secs(seconds)).await;
        let rate = lat.len() as f64 / seconds as f64;
        println!(
            "| {name} | {c} | {} | {:.0} | {} | {} | {} | {errors} |",
            lat.len(),
            rate,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default()),
        );
        let detail: Vec<String> = kinds
            .into_iter()
            .map(|(k, mut v)| {
                v.sort();
                format!(
                    "{k} p50 {} p99 {}",
                    ms(percentile(&v, 0.5)),
                    ms(percentile(&v, 0.99))
                )
            })
            .collect();
        eprintln!("{name} {c} clients: {}", detail.join("; "));
    }
    Ok(())
}

async fn overload(url: &str, path: &Path, rate: f64, seconds: u64) -> anyhow::Result<()> {
    let queries = Arc::new(read_queries(path)?);
    let target = Target::open(&format!("shoko={url}"), 256).await?;
    let Target::Shoko(http) = &target else {
        bail!("overload measures Shoko's HTTP API");
    };
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    let mut k = 0usize;
    while Instant::now() < end {
        tick.tick().await;
        let http = http.clone();
        let q = queries[k % queries.len()].clone();
        k += 1;
        let due = Instant::now();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let late = t - due;
            let outcome =
                tokio::time::timeout(Duration::from_secs(10), http.answer(&search_path(&q))).await;
            (outcome, t.elapsed(), late)
        }));
    }
    let sent = tasks.len();
    let (mut ok, mut refused, mut hung, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    // Refusals by where they were made: at accept (the connection bound; the
    // connection is closed) or by the admission gate, on a connection the
    // request opened or on one it reused.
    let (mut at_accept, mut gate_fresh, mut gate_reused) = (Vec::new(), Vec::new(), Vec::new());
    // A request the generator itself started late tells of the generator's
    // overload: its answers then wait in the generator's queues as well.
    let (mut started_late, mut latest) = (0, Duration::ZERO);
    for t in tasks {
        let Ok((outcome, d, late)) = t.await else {
            failed += 1;
            continue;
        };
        started_late += usize::from(late > Duration::from_millis(100));
        latest = latest.max(late);
        match outcome {
            Ok(Ok(a)) if a.status == 200 => ok.push(d),
            Ok(Ok(a)) if a.status == 503 || a.status == 429 => {
                refused.push(d);
                match (a.closes, a.fresh) {
                    (true, _) => at_accept.push(d),
                    (false, true) => gate_fresh.push(d),
                    (false, false) => gate_reused.push(d),
                }
            }
            Err(_) => hung += 1,
            _ => failed += 1,
        }
    }
    ok.sort();
    refused.sort();
    let over =
        |v: &[Duration], ms: u64| v.iter().filter(|d| **d > Duration::from_millis(ms)).count();
    let kind = |v: &mut Vec<Duration>| {
        v.sort();
        format!(
            "{} (p99 {} ms, {} over 100 ms)",
            v.len(),
            ms(percentile(v, 0.99)),
            over(v, 100)
        )
    };
    eprintln!(
        "{rate:.0}/s: refused over 100 ms / 1 s: {} / {}; admitted over 100 ms / 1 s: {} / {}; \
         started over 100 ms late by the generator: {started_late} (latest {} ms); \
         refused at accept {}, by the gate on a new connection {}, on a reused one {}",
        over(&refused, 100),
        over(&refused, 1000),
        over(&ok, 100),
        over(&ok, 1000),
        ms(latest),
        kind(&mut at_accept),
        kind(&mut gate_fresh),
        kind(&mut gate_reused),
    );
    // As soon as the load drops: one client, three seconds.
    let (after, after_errors, _) = closed_loop(&target, &queries, 1, Duration::from_secs(3)).await;
    println!(
        "| {rate:.0}/s | {sent} | {} | {} | {} | {} | {} | {} | {hung} | {failed} | {} ok, {after_errors} failed, p99 {} |",
        ok.len(),
        ms(percentile(&ok, 0.5)),
        ms(percentile(&ok, 0.99)),
        refused.len(),
        ms(percentile(&refused, 0.99)),
        ms(refused.last().copied().unwrap_or_default()),
        after.len(),
        ms(percentile(&after, 0.99)),
    );
    Ok(())
}

/// Katakana for the hiragana of a normalised query (a variant a user types).
fn katakana(s: &str) -> String {
    s.chars()
        .map(|c| match c as u32 {
            0x3041..=0x3096 => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// The query with every kanji that has an old form written in it.
fn old_forms(s: &str) -> String {
    let old: BTreeMap<char, char> = shoko_text::kanji::OLD_TO_NEW
        .iter()
        .map(|&(o, n)| (n, o))
        .collect();
    s.chars().map(|c| *old.get(&c).unwrap_or(&c)).collect()
}

/// Full-width letters and digits (the width variant).
fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            c => c,
        })
        .collect()
}

async fn recall(database: &str, index: &Path, n: usize) -> anyhow::Result<()> {
    let all = rows(database).await?;
    let index = shoko_search::SearchIndex::open_read_only(index)?;
    let titles: Vec<(u64, String, String)> = all
        .iter()
        .map(|r| (r.id as u64, normalize(&r.title), normalize(&r.reading)))
        .collect();
    let japanese: Vec<&Row> = all.iter().filter(|r| r.language == "jpn").collect();
    // Every 1–8 character fragment of every Japanese title, then a sample.
    let mut fragments = BTreeSet::new();
    for r in &japanese {
        for run in cjk_runs(&r.title) {
            for len in 1..=8.min(run.len()) {
                for start in 0..=run.len() - len {
                    fragments.insert(run[start..start + len].iter().collect::<String>());
                }
            }
        }
    }
    // The same number of each length, 1 to 8 characters (or all there are).
    let mut rng = Rng(11);
    let mut sample = BTreeSet::new();
    for len in 1..=8 {
        let of_len: Vec<&String> = fragments
            .iter()
            .filter(|f| f.chars().count() == len)
            .collect();
        let want = (n / 8).min(of_len.len());
        let mut picked = BTreeSet::new();
        while picked.len() < want {
            picked.insert(of_len[rng.below(of_len.len())].clone());
        }
        sample.extend(picked);
    }
    let by_len = |len: usize| sample.iter().filter(|q| q.chars().count() == len).count();
    let (mut checked, mut missing, mut extra, mut hits) = (0u64, 0u64, 0u64, 0u64);
    let mut worst: Vec<String> = Vec::new();
    let started = Instant::now();
    for q in &sample {
        let nq = normalize(q);
        let expected: BTreeSet<u64> = titles
            .iter()
            .filter(|(_, t, r)| t.contains(nq.as_str()) || r.contains(nq.as_str()))
            .map(|(id, _, _)| *id)
            .collect();
        let mut forms = vec![q.clone(), katakana(q), old_forms(q), full_width(q)];
        forms.dedup();
        for form in forms {
            let got: BTreeSet<u64> = index
                .matching_ids(&format!("title:{form}"))?
                .into_iter()
                .collect();
            checked += 1;
            hits += got.len() as u64;
            let m = expected.difference(&got).count() as u64;
            let e = got.difference(&expected).count() as u64;
            if (m > 0 || e > 0) && worst.len() < 10 {
                worst.push(format!("{form}: {m} missing, {e} extra"));
            }
            missing += m;
            extra += e;
        }
    }
    println!(
        "records={} japanese={} fragments={} sampled={} (1:{} 2:{} 3:{} 4:{} 5-8:{}) searches={} hits={} missing={} extra={} seconds={:.1}",
        all.len(),
        japanese.len(),
        fragments.len(),
        sample.len(),
        by_len(1),
        by_len(2),
        by_len(3),
        by_len(4),
        (5..=8).map(by_len).sum::<usize>(),
        checked,
        hits,
        missing,
        extra,
        started.elapsed().as_secs_f64()
    );
    for w in worst {
        println!("  {w}");
    }
    if missing > 0 || extra > 0 {
        bail!("recall or precision below 1.0");
    }
    Ok(())
}

async fn follow(url: &str, rows: i64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let status = || async {
        let h: serde_json::Value = http
            .get(format!("{}/health", url.trim_end_matches('/')))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok((
            h["index"]["applied"].as_i64().unwrap_or(0),
            h["index"]["lag_rows"].as_i64().unwrap_or(0),
            h["index"]["lag_seconds"].as_f64().unwrap_or(0.0),
        ))
    };
    let (start, _, _) = status().await?;
    let started = Instant::now();
    let (mut peak_rows, mut peak_seconds) = (0i64, 0f64);
    loop {
        let (applied, lag, lag_s) = status().await?;
        peak_rows = peak_rows.max(lag);
        peak_seconds = peak_seconds.max(lag_s);
        if applied >= start + rows && lag == 0 {
            let s = started.elapsed().as_secs_f64();
            println!(
                "applied={} seconds={s:.1} rate={:.0} peak_lag_rows={peak_rows} peak_lag_seconds={peak_seconds:.1}",
                applied - start,
                (applied - start) as f64 / s
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
