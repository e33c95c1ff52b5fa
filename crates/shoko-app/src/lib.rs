//! Shoko's use cases: import, export, the catalogue, circulation, patrons,
//! staff accounts and logins.
//! The one place that wires storage, domain and MARC together; HTTP and the
//! command line call in here and know nothing of SQL.

pub mod acquisitions;
pub mod auth;
pub mod backup;
pub mod capacity;
pub mod catalogue;
pub mod circulation;
pub mod clock;
pub mod doctor;
pub mod export;
pub mod import;
pub mod jobs;
pub mod notices;
pub mod opac;
pub mod operations;
pub mod patrons;
pub mod printing;
pub mod search;
pub mod settings;
pub mod upgrade;

use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use settings::{
    CatalogueSettings, CirculationSettings, JobsSettings, MailSettings, OperationsSettings,
    Settings,
};
pub use shoko_store::{Engine, Store, StoreError, StoreOptions};

/// The running application: storage, settings and the clock, shared by every
/// request and command. Cloning it (every request does, several times) is
/// one reference count: a profile of the search path under load found a
/// twentieth of the server's time in cloning and dropping the parts one by one.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What an [`App`] holds.
pub struct AppParts {
    /// The database.
    pub store: Store,
    /// Catalogue settings from the configuration.
    pub settings: Arc<CatalogueSettings>,
    /// Circulation settings from the configuration.
    pub circulation: Arc<CirculationSettings>,
    /// Batch job settings.
    pub jobs: Arc<JobsSettings>,
    /// The SMTP server for notices.
    pub mail: Arc<MailSettings>,
    /// Readiness thresholds and the data dir.
    pub operations: Arc<OperationsSettings>,
    /// Today's date and time; a fake in tests.
    pub clock: Arc<dyn Clock>,
    /// The search index.
    pub search: Arc<search::SearchHandle>,
    /// The database URL (with its password: for `pg_dump`, never shown).
    database_url: Arc<str>,
}

/// Where the search index lives and how much memory its writer may use.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The index directory; `None` keeps it in memory (tests).
    pub dir: Option<std::path::PathBuf>,
    /// Bytes for the index writer's buffer (at least 15 MB).
    pub writer_memory: usize,
    /// Open an existing index for searching only (a command beside the server).
    pub read_only: bool,
    /// Outbox rows (or records, in a rebuild) applied per index commit.
    pub batch: u64,
    /// Shelved availability is folded into the documents once this many
    /// records have it ([`search::FOLD_RECORDS`])…
    pub fold_records: usize,
    /// …or the oldest is this old ([`search::FOLD_AFTER`]).
    pub fold_after: std::time::Duration,
}

impl Default for IndexOptions {
    fn default() -> IndexOptions {
        IndexOptions {
            dir: None,
            writer_memory: 15_000_000,
            read_only: false,
            batch: 2000,
            fold_records: search::FOLD_RECORDS,
            fold_after: search::FOLD_AFTER,
        }
    }
}

impl App {
    /// Opens the store (running migrations), brings campuses, locations and
    /// item types in line with the settings, and opens the search index.
    pub async fn open(
        database_url: &str,
        options: &StoreOptions,
        index: &IndexOptions,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let Settings {
            catalogue: settings,
            circulation,
            jobs,
            mail,
            operations,
        } = settings;
        let store = Store::open(database_url, options).await?;
        store
            .sync_reference_data(&settings.reference_data())
            .await?;
        let search = match (&index.dir, index.read_only) {
            (Some(dir), true) => search::SearchHandle::open_read_only(dir)?,
            _ => search::SearchHandle::open(index.dir.as_deref(), index.writer_memory)?,
        }
        .with_batch(index.batch)
        .with_fold(index.fold_records, index.fold_after);
        Ok(App(Arc::new(AppParts {
            store,
            settings: Arc::new(settings),
            circulation: Arc::new(circulation),
            jobs: Arc::new(jobs),
            mail: Arc::new(mail),
            operations: Arc::new(operations),
            clock,
            search: Arc::new(search),
            database_url: database_url.into(),
        })))
    }

    /// This application with a database pool of its own (see
    /// [`Store::with_own_pool`]), for work that reads much and must not
    /// take the requests' connections: the search indexer. Everything else
    /// (settings, clock, search index) is shared.
    pub async fn with_own_pool(&self, max_connections: u32) -> Result<App, StoreError> {
        let store = self
            .store
            .with_own_pool(&self.database_url, max_connections)
            .await?;
        Ok(App(Arc::new(AppParts {
            store,
            settings: Arc::clone(&self.settings),
            circulation: Arc::clone(&self.circulation),
            jobs: Arc::clone(&self.jobs),
            mail: Arc::clone(&self.mail),
            operations: Arc::clone(&self.operations),
            clock: Arc::clone(&self.clock),
            search: Arc::clone(&self.search),
            database_url: Arc::clone(&self.database_url),
        })))
    }
}
