//! Persistence for SQLite (embedded default) and PostgreSQL (production) from
//! one code path: SeaORM's connection and sea-query's statement builder, which
//! writes each statement in the dialect of the engine chosen by the URL.
//!
//! Every write that changes the catalogue also writes a `catalogue_outbox` row
//! in the same transaction, so the search index can never miss a change.

mod backup;
mod catalogue;
mod circulation;
mod jobs;
mod migrations;
mod write;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};
use sea_orm_migration::MigratorTrait;

pub use backup::{BackupCounts, Snapshot};
pub use catalogue::{
    BatchOutcome, Counts, ImportRecord, ItemWarning, RecordRow, RecordWrite, ReferenceData,
    StoredItem,
};
pub use circulation::{
    AuditRow, FineRow, HoldRow, LoanRow, NewLoan, PatronFields, PatronRow, SessionRow, StaffRow,
    TransitRow,
};
pub use jobs::{JobRunRow, NewNotice, NoticeRow, PickCandidate, TransitSlip};
pub use write::{IdempotencyKey, WriteCtx, WriteTx};

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One file, embedded; the default.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Engine {
    /// Picks the engine from a database URL.
    pub fn from_url(url: &str) -> Result<Engine, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err(StoreError::BadUrl {
                url: redact_url(url),
            })
        }
    }

    /// The engine's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// Replaces the password in a database URL with `***`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// What can go wrong in storage, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no engine Shoko knows.
    #[error("database URL {url:?} is neither sqlite:… nor postgres://…")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot open the {engine} database at {url}: {source}")]
    Open {
        /// Which engine.
        engine: &'static str,
        /// The URL, password redacted.
        url: String,
        /// The driver's error.
        source: DbErr,
    },
    /// A migration failed; the database is left at the last one that succeeded.
    #[error("schema migration failed: {0}")]
    Migration(DbErr),
    /// Any other database error.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// An idempotency key sent again with a different request.
    #[error("idempotency key {0:?} was already used for a different request")]
    KeyReused(String),
    /// A stored value that Shoko did not write (corruption, or a manual edit).
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

/// Connection settings with their safe ranges.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size. SQLite serialises writers anyway; PostgreSQL takes one
    /// connection per concurrent request (1–100).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing fast.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The database, migrated and ready.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    engine: Engine,
    /// SQLite's writers wait here in order (SQLite allows one at a time);
    /// `None` on PostgreSQL, which runs writers concurrently.
    writers: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Store {
    /// Connects, applies the settings that make a commit durable, and runs
    /// every pending migration.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let engine = Engine::from_url(url)?;
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false);
        if engine == Engine::Sqlite {
            // WAL with synchronous=FULL: a commit is on disk when it returns,
            // so an acknowledged write survives kill -9 and power loss.
            opts.map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
                o.create_if_missing(true)
                    // 16 KiB pages (set when the file is created): a catalogue
                    // row with its MARC record is about 1 KiB, and the import
                    // writes a quarter as many pages as with 4 KiB.
                    .page_size(16384)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    .pragma("cache_size", "-65536")
                    // Checkpoint every 64 MiB of WAL (4,096 pages of 16 KiB).
                    .pragma("wal_autocheckpoint", "4096")
                    .pragma("temp_store", "memory")
                    // Read pages through a memory map (up to 4 GiB) instead
                    // of a read() per page: the desk's short transactions
                    // spent much of their time in those system calls.
                    .pragma("mmap_size", "4294967296")
            });
        }
        let db = Database::connect(opts)
            .await
            .map_err(|source| StoreError::Open {
                engine: engine.name(),
                url: redact_url(url),
                source,
            })?;
        migrations::Migrator::up(&db, None)
            .await
            .map_err(StoreError::Migration)?;
        let writers = (engine == Engine::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Store {
            db,
            engine,
            writers,
        })
    }

    /// Connects without migrating (for administration: creating and dropping
    /// scratch databases on a PostgreSQL server).
    pub async fn open_raw(url: &str) -> Result<Store, StoreError> {
        let engine = Engine::from_url(url)?;
        let db = Database::connect(url.to_owned())
            .await
            .map_err(|source| StoreError::Open {
                engine: engine.name(),
                url: redact_url(url),
                source,
            })?;
        Ok(Store {
            db,
            engine,
            writers: None,
        })
    }

    /// Runs one administrative statement.
    pub async fn execute_sql(&self, sql: &str) -> Result<(), StoreError> {
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }

    /// The engine this store runs on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The names of the migrations applied, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT version FROM seaql_migrations ORDER BY version",
            ))
            .await?;
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).map_err(StoreError::from))
            .collect()
    }

    /// Answers whether the database responds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }

    /// The database's size in bytes (SQLite pages in use; PostgreSQL's
    /// `pg_database_size`).
    pub async fn database_bytes(&self) -> Result<u64, StoreError> {
        let sql = match self.engine {
            Engine::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            Engine::Postgres => "SELECT pg_database_size(current_database())",
        };
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.backend(), sql))
            .await?
            .ok_or_else(|| StoreError::Corrupt("size query gave no row".into()))?;
        let bytes: i64 = row.try_get_by_index(0)?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    /// Connections in the pool: (open, idle).
    pub fn pool_connections(&self) -> (u32, u32) {
        match self.engine {
            Engine::Sqlite => {
                let p = self.db.get_sqlite_connection_pool();
                (p.size(), u32::try_from(p.num_idle()).unwrap_or(u32::MAX))
            }
            Engine::Postgres => {
                let p = self.db.get_postgres_connection_pool();
                (p.size(), u32::try_from(p.num_idle()).unwrap_or(u32::MAX))
            }
        }
    }

    /// Closes the pool, letting SQLite checkpoint its WAL.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await?;
        Ok(())
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }
}
