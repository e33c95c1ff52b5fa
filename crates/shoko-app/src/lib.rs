//! Shoko's use cases: import, export, reading the catalogue, adding items.
//! The one place that wires storage, domain and MARC together; HTTP and the
//! command line call in here and know nothing of SQL.

pub mod catalogue;
pub mod clock;
pub mod export;
pub mod import;
pub mod settings;

use std::sync::Arc;

pub use clock::{Clock, SystemClock};
pub use settings::CatalogueSettings;
pub use shoko_store::{Engine, Store, StoreError, StoreOptions};

/// The running application: storage, settings and the clock, shared by every
/// request and command.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub store: Store,
    /// Catalogue settings from the configuration.
    pub settings: Arc<CatalogueSettings>,
    /// Today's date and time; a fake in tests.
    pub clock: Arc<dyn Clock>,
}

impl App {
    /// Opens the store, runs migrations and brings campuses, locations and
    /// item types in line with the settings.
    pub async fn open(
        database_url: &str,
        options: &StoreOptions,
        settings: CatalogueSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StoreError> {
        let store = Store::open(database_url, options).await?;
        store
            .sync_reference_data(&settings.reference_data())
            .await?;
        Ok(App {
            store,
            settings: Arc::new(settings),
            clock,
        })
    }
}
