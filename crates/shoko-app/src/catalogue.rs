//! Reading the catalogue and adding items: what the API and pages call.

use serde::Serialize;
use shoko_domain::ItemSpec;
use shoko_marc::{Record, iso2709};
use shoko_store::{RecordRow, StoreError, StoredItem};

use crate::App;

/// A bibliographic record with its items and its full MARC record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    /// The record's derived fields.
    #[serde(flatten)]
    pub record: RecordRow,
    /// Its items.
    pub items: Vec<StoredItem>,
    /// The MARC record.
    #[serde(skip)]
    pub marc: Record,
}

/// Why an item could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddItemError {
    /// No record with that id.
    #[error("record {0} does not exist")]
    NoRecord(i64),
    /// The barcode is on another item already.
    #[error("barcode {0} is already in use")]
    BarcodeTaken(String),
    /// A code the library has not configured.
    #[error("{0}")]
    UnknownCode(String),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StoreError),
}

impl App {
    async fn view(&self, record: RecordRow) -> Result<RecordView, StoreError> {
        let (marc, _) = iso2709::parse(&record.marc)
            .map_err(|e| StoreError::Corrupt(format!("record {}: {e}", record.id)))?;
        let items = self.store.items_of(record.id).await?;
        Ok(RecordView {
            record,
            items,
            marc,
        })
    }

    /// One record with its items.
    pub async fn record(&self, id: i64) -> Result<Option<RecordView>, StoreError> {
        match self.store.record(id).await? {
            Some(r) => Ok(Some(self.view(r).await?)),
            None => Ok(None),
        }
    }

    /// The records whose 001 is this control number.
    pub async fn records_by_control_number(
        &self,
        number: &str,
    ) -> Result<Vec<RecordView>, StoreError> {
        let mut out = Vec::new();
        for r in self.store.records_by_control_number(number).await? {
            out.push(self.view(r).await?);
        }
        Ok(out)
    }

    /// Adds an item to a record after checking its codes against the settings.
    pub async fn add_item(
        &self,
        record_id: i64,
        item: ItemSpec,
    ) -> Result<StoredItem, AddItemError> {
        self.settings
            .check_item(&item)
            .map_err(AddItemError::UnknownCode)?;
        if self.store.record(record_id).await?.is_none() {
            return Err(AddItemError::NoRecord(record_id));
        }
        self.store
            .add_item(record_id, &item, self.clock.now_ms())
            .await?
            .ok_or_else(|| AddItemError::BarcodeTaken(item.barcode.to_string()))
    }
}
