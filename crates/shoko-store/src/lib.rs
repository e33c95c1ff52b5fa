//! Persistence for SQLite (embedded default) and PostgreSQL (production) from
//! one code path: SeaORM's connection and sea-query's statement builder, which
//! writes each statement in the dialect of the engine chosen by the URL.
//!
//! Every write that changes the catalogue also writes a `catalogue_outbox` row
//! in the same transaction, so the search index can never miss a change.

mod acquisitions;
mod backup;
mod capacity;
mod catalogue;
mod circulation;
mod inline;
mod jobs;
mod migrations;
mod wal;
mod write;
mod writer;

use writer::SqliteWriter;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};
use sea_orm_migration::MigratorTrait;

pub use acquisitions::{
    FundRow, InvoiceLineRow, InvoiceRow, NewInvoiceLine, NewOrderLine, NewVendor, OrderLineRow,
    VendorRow,
};
pub use backup::{BackupCounts, Snapshot};
pub use catalogue::{
    BatchOutcome, Counts, ImportRecord, ItemWarning, OutboxRow, RecordRow, RecordWrite,
    ReferenceData, StoredItem,
};
pub use circulation::{
    AuditRow, CheckinContext, CheckoutContext, CopyDetails, FineRow, HoldRow, LoanRow, NewLoan,
    PatronFields, PatronRow, SessionRow, StaffRow, TransitRow,
};
pub use jobs::{JobRunRow, NewNotice, NoticeRow, PickCandidate, TransitSlip};
pub use shoko_domain::capacity::Point;
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

/// The URL of a SQLite database file (created when missing).
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
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
    /// The disk or tablespace is full: the write was refused and rolled
    /// back, nothing committed is lost, and writes succeed again as soon as
    /// space is freed.
    #[error(
        "storage is full: the write was refused and nothing stored was lost; free space on the database's disk or tablespace and writes resume ({0})"
    )]
    StorageFull(String),
    /// The database was made by an older Shoko and needs its migrations.
    #[error(
        "the database's schema is older than this Shoko {version}: {n} migration(s) pending ({names}). Run `shoko upgrade --dry-run` to try them on a copy, then `shoko upgrade` (it takes a backup first)",
        version = env!("CARGO_PKG_VERSION"), n = .pending.len(), names = .pending.join(", ")
    )]
    SchemaOlder {
        /// The migrations not yet applied.
        pending: Vec<String>,
    },
    /// The database was upgraded by a newer Shoko.
    #[error(
        "the database's schema is newer than this Shoko {version}: it has migrations this version does not know ({names}). Run the newer Shoko, or restore the backup taken before the upgrade",
        version = env!("CARGO_PKG_VERSION"), names = .unknown.join(", ")
    )]
    SchemaNewer {
        /// The applied migrations this version does not know.
        unknown: Vec<String>,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Db(DbErr),
    /// An idempotency key sent again with a different request.
    #[error("idempotency key {0:?} was already used for a different request")]
    KeyReused(String),
    /// A stored value that Shoko did not write (corruption, or a manual edit).
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    /// Tells a full disk (SQLite `SQLITE_FULL`, PostgreSQL SQLSTATE 53100
    /// `disk_full`) from other errors, so the caller can say so and the
    /// client can retry later instead of seeing an unexplained 500.
    fn from(e: DbErr) -> StoreError {
        if is_storage_full(&e) {
            return StoreError::StorageFull(e.to_string());
        }
        StoreError::Db(e)
    }
}

fn is_storage_full(e: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    // Whatever wrapper the driver's error came in (a commit, a pool
    // connection), the operating system's words are in its text.
    let text = e.to_string();
    if text.contains("No space left on device") || text.contains("database or disk is full") {
        return true;
    }
    // A new PostgreSQL connection writes the catalog cache file into the
    // database's directory when the cache was invalidated; on a full
    // tablespace it is refused with these words alone (no error code, no
    // errno).
    if text.contains("could not write init file") {
        return true;
    }
    let runtime = match e {
        DbErr::Exec(r) | DbErr::Query(r) | DbErr::Conn(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx_err) = runtime else {
        return false;
    };
    match &**sqlx_err {
        sqlx::Error::Database(d) => {
            // SQLite's primary result code 13 (extended codes keep it in
            // the low byte); PostgreSQL's class 53 disk_full.
            let code = d.code().unwrap_or_default();
            code == "53100"
                || code.parse::<i64>().is_ok_and(|c| c & 0xff == 13)
                || d.message().contains("database or disk is full")
        }
        sqlx::Error::Io(io) => io.raw_os_error() == Some(28),
        _ => false,
    }
}

/// Lets a SQLite connection back into the pool only when it is out of any
/// transaction. SQLite rolls a transaction back by itself on some errors
/// (`SQLITE_FULL` is the one a full disk gives); the driver then fails to
/// roll back what is no longer there and keeps counting the transaction as
/// open. The next transaction on that connection would be a savepoint inside
/// a transaction that never commits: a write acknowledged and then lost when
/// the connection closes, holding the write lock meanwhile. Such a
/// connection is closed instead (which rolls back whatever it holds), and
/// the pool opens a fresh one.
///
/// The check reads the driver's count as it stands, without waiting for
/// the connection's worker thread: the count only falls when a queued
/// rollback runs, so a connection read as out of every transaction is out
/// of it for good. A transaction dropped without commit or rollback leaves
/// its rollback queued and the count not yet down; that connection is
/// closed too, which costs a reopen on an error path only. Waiting for the
/// worker instead would be one more round trip on every release, and on
/// SQLite's one writer connection it would sit inside every write's turn.
fn sqlite_connection_in_step(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    _: sea_orm::sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn Future<Output = Result<bool, sea_orm::sqlx::Error>> + Send + '_>> {
    use sea_orm::sqlx::Connection as _;
    let in_step = !conn.is_in_transaction();
    if !in_step {
        tracing::debug!("closing a database connection released inside a transaction");
    }
    Box::pin(std::future::ready(Ok(in_step)))
}

/// Where a database's schema stands against this Shoko's migrations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaState {
    /// Migrations applied, oldest first.
    pub applied: Vec<String>,
    /// Migrations this Shoko has that are not applied yet.
    pub pending: Vec<String>,
    /// Applied migrations this Shoko does not know (a newer Shoko made them).
    pub unknown: Vec<String>,
}

impl SchemaState {
    /// A database no Shoko has touched.
    pub fn is_new(&self) -> bool {
        self.applied.is_empty()
    }
}

/// The names of every migration this Shoko has, oldest first.
pub fn known_migrations() -> Vec<String> {
    migrations::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
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
    /// SQLite's writer; `None` on PostgreSQL, which runs writers
    /// concurrently, each transaction on a connection of the pool.
    writers: Option<Arc<SqliteWriter>>,
}

impl Store {
    /// Connects, applies the settings that make a commit durable, and runs
    /// every pending migration.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let store = Store::connect(url, options).await?;
        store.checked().await
    }

    /// Connects with the durable settings, touching no schema.
    async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let engine = Engine::from_url(url)?;
        // WAL with synchronous=FULL: a commit is on disk when it returns, so
        // an acknowledged write survives kill -9 and power loss.
        let db = pool(
            url,
            engine,
            options.max_connections,
            options.acquire_timeout,
            SqliteRole::Pool,
        )
        .await?;
        let writers = if engine == Engine::Sqlite {
            Some(Arc::new(
                SqliteWriter::open(url, options, db.clone()).await?,
            ))
        } else {
            None
        };
        Ok(Store {
            db,
            engine,
            writers,
        })
    }
}

impl Store {
    /// The same database (at `url`, which this store was opened with)
    /// through a pool of its own of up to `max_connections`, sharing this
    /// store's SQLite writer, so that writes still go through the one
    /// writer. For work that reads much beside the requests: it waits for
    /// none of their connections, and on SQLite its connections run on
    /// threads of their own, started by the thread that opens the pool
    /// and with its priority.
    pub async fn with_own_pool(
        &self,
        url: &str,
        max_connections: u32,
    ) -> Result<Store, StoreError> {
        let db = pool(
            url,
            self.engine,
            max_connections.max(1),
            StoreOptions::default().acquire_timeout,
            SqliteRole::Pool,
        )
        .await?;
        Ok(Store {
            db,
            engine: self.engine,
            writers: self.writers.clone(),
        })
    }
}

impl SqliteWriter {
    /// Opens the writer's connection beside the pool's (`readers`, which
    /// also checkpoints the log).
    pub(crate) async fn open(
        url: &str,
        options: &StoreOptions,
        readers: DatabaseConnection,
    ) -> Result<SqliteWriter, StoreError> {
        // The log is written at commit and flushed by [`wal::WalSync`]
        // before the write is acknowledged.
        let db = pool(
            url,
            Engine::Sqlite,
            1,
            options.acquire_timeout,
            SqliteRole::Writer,
        )
        .await?;
        let file = url
            .parse::<SqliteConnectOptions>()
            .ok()
            .map(|o| o.get_filename().to_owned())
            .filter(|p| !p.as_os_str().is_empty() && p.as_os_str() != ":memory:");
        Ok(SqliteWriter::new(
            db,
            wal::WalSync::new(file.as_deref()),
            readers,
        ))
    }
}

/// Which SQLite connections a pool holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SqliteRole {
    /// Readers, and writes outside the writer (administration, migrations):
    /// `synchronous=FULL`, a commit is flushed when it returns.
    Pool,
    /// The writer: `synchronous=NORMAL` (flushed by [`wal::WalSync`]) and
    /// no checkpoints of its own (a pool connection runs them, outside the
    /// writer's turn).
    Writer,
}

/// A connection pool for `url` with Shoko's settings (on SQLite, those of `role`).
async fn pool(
    url: &str,
    engine: Engine,
    max_connections: u32,
    acquire_timeout: Duration,
    role: SqliteRole,
) -> Result<DatabaseConnection, StoreError> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .sqlx_logging(false);
    if engine == Engine::Sqlite {
        opts.map_sqlx_sqlite_opts(move |o| sqlite_options(o, role));
        opts.map_sqlx_sqlite_pool_opts(|pool| pool.after_release(sqlite_connection_in_step));
        // A SQLite connection is a file in this process, not a link that
        // can break: pinging it before each use is a round trip to its
        // worker thread that finds nothing (and, on the writer, is one more
        // wait inside the writer's turn).
        opts.test_before_acquire(false);
    } else {
        // A PostgreSQL connection can break while it waits in the pool (a
        // restarted server, a dropped link), but one used within the last
        // second seldom has: pinging every connection before each use was
        // two round trips more for every desk scan (one for the session
        // check, one for the write).
        opts.test_before_acquire_if_idle_for(Duration::from_secs(1));
    }
    Database::connect(opts)
        .await
        .map_err(|source| StoreError::Open {
            engine: engine.name(),
            url: redact_url(url),
            source,
        })
}

/// The settings every SQLite connection of Shoko has, with those of its role.
fn sqlite_options(o: SqliteConnectOptions, role: SqliteRole) -> SqliteConnectOptions {
    // The writer reads pages through a memory map instead of a read() per
    // page (the first 2 GiB less 64 KiB of the file, SQLite's ceiling
    // SQLITE_MAX_MMAP_SIZE; pages past it are read): the desk's short
    // transactions spent much of their time in those system calls. A pool
    // connection does not: SQLite drops a
    // connection's map whenever another connection has written since its
    // last transaction, so with the writer busy every read unmapped and
    // mapped the file again and faulted its pages back in (9 % of the
    // server's CPU at 16 desks, with every unmapping stopping the other
    // core to flush its TLB); the writer never sees another's write.
    let (synchronous, autocheckpoint, mmap_size) = match role {
        SqliteRole::Pool => (SqliteSynchronous::Full, "4096", "0"),
        SqliteRole::Writer => (SqliteSynchronous::Normal, "0", "2147418112"),
    };
    o.create_if_missing(true)
        // 4 KiB pages (set when the file is created): a checkout
        // changes a dozen pages (the item, the patron, the last leaf of
        // the loan, audit, outbox and key tables and their indexes),
        // each written to the log whole. With 16 KiB pages, which made
        // the import write fewer pages, 16 desks wrote 200 MB of log a
        // second; with group commit the import is no longer bound by it.
        .page_size(4096)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("cache_size", "-65536")
        // Checkpoint every 16 MiB of WAL (4,096 pages of 4 KiB) when a
        // pool connection writes; the writer's log is checkpointed by
        // `SqliteWriter` every second.
        .pragma("wal_autocheckpoint", autocheckpoint)
        .pragma("temp_store", "memory")
        .pragma("mmap_size", mmap_size)
}

impl Store {
    /// Migrates a new database; refuses one whose schema is older or newer
    /// than this Shoko (an older one is upgraded by `shoko upgrade`, which
    /// takes a backup first, never behind the operator's back).
    async fn checked(self) -> Result<Store, StoreError> {
        let store = self;
        let schema = store.schema().await?;
        if !schema.unknown.is_empty() {
            return Err(StoreError::SchemaNewer {
                unknown: schema.unknown,
            });
        }
        if schema.is_new() {
            store.upgrade().await?;
        } else if !schema.pending.is_empty() {
            return Err(StoreError::SchemaOlder {
                pending: schema.pending,
            });
        }
        Ok(store)
    }

    /// Connects like [`Store::open`] but leaves the schema as it is, for
    /// `shoko upgrade` (which looks at it, tries it on a copy, applies it).
    /// Refuses a schema newer than this Shoko.
    pub async fn open_for_upgrade(
        url: &str,
        options: &StoreOptions,
    ) -> Result<(Store, SchemaState), StoreError> {
        let store = Store::connect(url, options).await?;
        let schema = store.schema().await?;
        if !schema.unknown.is_empty() {
            return Err(StoreError::SchemaNewer {
                unknown: schema.unknown,
            });
        }
        Ok((store, schema))
    }

    /// Where the schema stands against this Shoko's migrations.
    pub async fn schema(&self) -> Result<SchemaState, StoreError> {
        let sql = match self.engine {
            Engine::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
            }
            Engine::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
            }
        };
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.backend(), sql))
            .await?
            .ok_or_else(|| StoreError::Corrupt("schema query gave no row".into()))?;
        let tables: i64 = row.try_get_by_index(0)?;
        let applied = if tables == 0 {
            Vec::new()
        } else {
            self.applied_migrations().await?
        };
        let known = known_migrations();
        Ok(SchemaState {
            pending: known
                .iter()
                .filter(|k| !applied.contains(k))
                .cloned()
                .collect(),
            unknown: applied
                .iter()
                .filter(|a| !known.contains(a))
                .cloned()
                .collect(),
            applied,
        })
    }

    /// Applies every pending migration, each in its own transaction where
    /// the engine allows it; returns their names.
    pub async fn upgrade(&self) -> Result<Vec<String>, StoreError> {
        let pending = self.schema().await?.pending;
        migrations::Migrator::up(&self.db, None)
            .await
            .map_err(StoreError::Migration)?;
        Ok(pending)
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
        if let Some(w) = &self.writers {
            w.db.clone().close().await?;
        }
        self.db.close().await?;
        Ok(())
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One write inside `begin_write`, committed; its error if refused.
    async fn write(store: &Store, sql: &str) -> Result<(), StoreError> {
        let txn = store.begin_write().await?;
        txn.execute_unprepared(sql).await?;
        txn.commit().await
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        number(&store.db, sql).await
    }

    /// The number in the first column of the first row `sql` gives.
    async fn number(db: &DatabaseConnection, sql: &str) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect(sql)
            .expect("a row");
        row.try_get_by_index(0).expect("a number")
    }

    #[test]
    fn a_connection_postgresql_refuses_for_its_full_tablespace_is_storage_full() {
        // What the driver gives when a new backend cannot write its catalog
        // cache file (the web tests' full-disk story met it in CI).
        let refused = DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "error returned from database: could not write init file".into(),
        ));
        assert!(matches!(
            StoreError::from(refused),
            StoreError::StorageFull(_)
        ));
        let other = DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "error returned from database: password authentication failed".into(),
        ));
        assert!(matches!(StoreError::from(other), StoreError::Db(_)));
    }

    /// The first column of each row `sql` gives, as text.
    async fn texts(db: &DatabaseConnection, sql: &str) -> Vec<String> {
        db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .expect(sql)
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).expect("text"))
            .collect()
    }

    /// A new SQLite store with the default options (and its database, kept
    /// for as long as the store is used).
    async fn sqlite_store() -> (shoko_testkit::TestDb, Store) {
        let db = shoko_testkit::TestDb::sqlite();
        let store = Store::connect(db.url(), &StoreOptions::default())
            .await
            .expect("open");
        (db, store)
    }

    // SQLite alone, these two: how the bundled library is built and how its
    // connections read pages.
    #[tokio::test]
    async fn sqlite_is_built_with_a_stable_query_planner() {
        // Without it every statement with `LIMIT ?` is parsed and planned
        // again each time it runs (see .cargo/config.toml).
        let (_db, store) = sqlite_store().await;
        let options = texts(&store.db, "PRAGMA compile_options").await;
        assert!(options.iter().any(|o| o == "ENABLE_QPSG"), "{options:?}");
    }

    #[tokio::test]
    async fn only_sqlites_writer_reads_through_a_memory_map() {
        let (_db, store) = sqlite_store().await;
        let writer = &store.writers.as_ref().expect("SQLite's writer").db;
        assert_eq!(number(writer, "PRAGMA mmap_size").await, 0x7fff_0000);
        assert_eq!(number(&store.db, "PRAGMA mmap_size").await, 0);
    }

    // SQLite alone: it rolls a transaction back by itself on a full disk,
    // which PostgreSQL never does behind its client's back.
    #[tokio::test]
    async fn a_write_after_sqlite_rolled_back_a_refused_one_is_committed_for_real() {
        let db = shoko_testkit::TestDb::sqlite();
        let options = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let store = Store::connect(db.url(), &options).await.expect("open");
        store
            .db
            .execute_unprepared("CREATE TABLE t (x BLOB NOT NULL)")
            .await
            .expect("table");
        // The writer's one connection may not grow the file: as full as a
        // full disk, for that connection only.
        let writer = &store.writers.as_ref().expect("SQLite's writer").db;
        let pages = count(&store, "PRAGMA page_count").await;
        writer
            .execute_unprepared(&format!("PRAGMA max_page_count = {pages}"))
            .await
            .expect("limit");
        // Refused: SQLite rolls back the whole transaction by itself.
        let refused = write(&store, "INSERT INTO t VALUES (randomblob(100000))").await;
        assert!(
            matches!(refused, Err(StoreError::StorageFull(_))),
            "{refused:?}"
        );
        // On a connection that believed itself still in that transaction,
        // this refusal would roll back to a savepoint and leave it open.
        let _ = write(
            &store,
            "INSERT INTO t SELECT randomblob(100000) FROM (VALUES (1), (2))",
        )
        .await;
        let _ = writer
            .execute_unprepared("PRAGMA max_page_count = 1073741823")
            .await;
        write(&store, "INSERT INTO t VALUES ('kept')")
            .await
            .expect("a write once there is room");
        // Acknowledged means committed: another connection sees it.
        let other = Store::connect(db.url(), &StoreOptions::default())
            .await
            .expect("open again");
        assert_eq!(
            count(&other, "SELECT count(*) FROM t WHERE x = 'kept'").await,
            1
        );
    }
}
