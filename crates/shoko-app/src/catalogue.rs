//! Reading and changing the catalogue: records, their items, item status.
//! What the API and pages call.

use serde::Serialize;
use shoko_domain::catalogue::summarise;
use shoko_domain::{Denied, Permission};
use shoko_domain::{ItemSpec, ItemStatus};
use shoko_marc::{Record, iso2709};
use shoko_store::{ImportRecord, RecordRow, RecordWrite, StoreError, StoredItem, WriteCtx};

use crate::circulation::Caller;

use crate::App;

/// A bibliographic record with its items and its full MARC record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// Not logged in, or not allowed.
    #[error(transparent)]
    Denied(#[from] Denied),
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
        caller: &Caller,
        record_id: i64,
        item: ItemSpec,
    ) -> Result<StoredItem, AddItemError> {
        caller.actor.require(Permission::CatalogueWrite)?;
        self.settings
            .check_item(&item)
            .map_err(AddItemError::UnknownCode)?;
        if self.store.record(record_id).await?.is_none() {
            return Err(AddItemError::NoRecord(record_id));
        }
        self.store
            .add_item(record_id, &item, &self.write_ctx(caller))
            .await?
            .ok_or_else(|| AddItemError::BarcodeTaken(item.barcode.to_string()))
    }
}

/// How an edited MARC record is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarcFormat {
    /// ISO 2709 (`application/marc`).
    Iso2709,
    /// MARCXML (`application/marcxml+xml`).
    MarcXml,
}

/// Why a record could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum RecordChangeError {
    /// No record with that id.
    #[error("record {0} does not exist")]
    NoRecord(i64),
    /// Someone changed the record after the editor read it.
    #[error(
        "record {id} has changed since version {expected} (it is now version {current}); reload it and edit again"
    )]
    Stale {
        /// The record.
        id: i64,
        /// The version the editor started from.
        expected: i64,
        /// The version now stored.
        current: i64,
    },
    /// A record with items cannot be deleted.
    #[error("record {id} still has {items} item(s); withdraw or move them first")]
    HasItems {
        /// The record.
        id: i64,
        /// How many items it has.
        items: i64,
    },
    /// The new MARC record cannot be stored.
    #[error("the MARC record is not valid: {0}")]
    BadRecord(String),
    /// Not logged in, or not allowed.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StoreError),
}

impl App {
    fn change_outcome(
        id: i64,
        expected: i64,
        outcome: RecordWrite,
    ) -> Result<Option<RecordRow>, RecordChangeError> {
        match outcome {
            RecordWrite::Written(r) => Ok(Some(*r)),
            RecordWrite::Deleted => Ok(None),
            RecordWrite::NotFound => Err(RecordChangeError::NoRecord(id)),
            RecordWrite::Stale { current } => Err(RecordChangeError::Stale {
                id,
                expected,
                current,
            }),
            RecordWrite::HasItems(items) => Err(RecordChangeError::HasItems { id, items }),
        }
    }

    /// Replaces a record's MARC record (its items stay as they are), if it is
    /// still at `expected_version`. The search index follows through the outbox.
    pub async fn replace_record(
        &self,
        caller: &Caller,
        id: i64,
        expected_version: i64,
        marc: &Record,
    ) -> Result<RecordView, RecordChangeError> {
        caller.actor.require(Permission::CatalogueWrite)?;
        let mut bytes = Vec::new();
        iso2709::encode(marc, &mut bytes)
            .map_err(|e| RecordChangeError::BadRecord(e.to_string()))?;
        let prepared = ImportRecord::new(1, summarise(marc), bytes, Vec::new());
        let outcome = self
            .store
            .replace_record(id, expected_version, prepared, &self.write_ctx(caller))
            .await?;
        let row = Self::change_outcome(id, expected_version, outcome)?
            .ok_or_else(|| StoreError::Corrupt(format!("record {id}: update gave no row")))?;
        Ok(self.view(row).await?)
    }

    /// Replaces a record's MARC record from the bytes an editor sent; the
    /// permission is checked before the bytes are read.
    pub async fn replace_record_from(
        &self,
        caller: &Caller,
        id: i64,
        expected_version: i64,
        format: MarcFormat,
        bytes: &[u8],
    ) -> Result<RecordView, RecordChangeError> {
        caller.actor.require(Permission::CatalogueWrite)?;
        let parsed = match format {
            MarcFormat::Iso2709 => iso2709::parse(bytes),
            MarcFormat::MarcXml => shoko_marc::marcxml::parse(bytes),
        };
        let (marc, _warnings) = parsed.map_err(|e| RecordChangeError::BadRecord(e.to_string()))?;
        self.replace_record(caller, id, expected_version, &marc)
            .await
    }

    /// Deletes a record without items, if it is still at `expected_version`.
    pub async fn delete_record(
        &self,
        caller: &Caller,
        id: i64,
        expected_version: i64,
    ) -> Result<(), RecordChangeError> {
        caller.actor.require(Permission::CatalogueWrite)?;
        let outcome = self
            .store
            .delete_record(id, expected_version, &self.write_ctx(caller))
            .await?;
        Self::change_outcome(id, expected_version, outcome).map(|_| ())
    }

    /// Sets an item's status (missing, withdrawn, …). `None` when no item has this id.
    pub async fn set_item_status(
        &self,
        caller: &Caller,
        item_id: i64,
        status: ItemStatus,
    ) -> Result<Option<StoredItem>, AddItemError> {
        caller.actor.require(Permission::CatalogueWrite)?;
        Ok(self
            .store
            .set_item_status(item_id, status.code(), &self.write_ctx(caller))
            .await?)
    }

    /// The context of a write by this caller now.
    pub(crate) fn write_ctx(&self, caller: &Caller) -> WriteCtx {
        WriteCtx {
            actor: caller.actor.audit_name(),
            now: self.clock.now_ms(),
            idempotency: caller.idempotency.clone(),
        }
    }
}
