//! What the public catalogue's pages show beyond search: a record with the
//! live state of every copy (on the shelf, on loan until a date, in transit
//! to a campus, on the hold shelf until a date), and a patron's own "My
//! Library" (loans with titles, holds and requests, fines).

use std::collections::HashMap;

use serde::Serialize;
use shoko_store::{FineRow, HoldRow, LoanRow, PatronRow, StoredItem};

use crate::App;
use crate::catalogue::RecordView;
use crate::circulation::{Caller, CircError};

/// One copy and where it is now.
#[derive(Debug, Clone, Serialize)]
pub struct CopyState {
    /// The item.
    pub item: StoredItem,
    /// On loan: when it is due back (Unix ms).
    pub due_at: Option<i64>,
    /// In transit: the campus it travels to.
    pub transit_to: Option<String>,
    /// On the hold shelf: the last day it waits (Unix ms).
    pub shelf_until: Option<i64>,
}

/// A record page's data.
#[derive(Debug, Clone)]
pub struct RecordPage {
    /// The record and its items.
    pub view: RecordView,
    /// Each item's state.
    pub copies: Vec<CopyState>,
}

/// One line of My Library: a loan, hold or fine with the title it is about.
#[derive(Debug, Clone, Serialize)]
pub struct Titled<T> {
    /// The row.
    #[serde(flatten)]
    pub row: T,
    /// The title of its record.
    pub title: String,
    /// The item's barcode and call number, when it is about one copy.
    pub item: Option<StoredItem>,
}

/// A patron's own page.
#[derive(Debug, Clone, Serialize)]
pub struct MyLibrary {
    /// The patron.
    pub patron: PatronRow,
    /// Why they may not borrow now, in words (English; the page translates
    /// the known reasons).
    pub block: Option<shoko_domain::circulation::BlockReason>,
    /// Open loans, soonest due first.
    pub loans: Vec<Titled<LoanRow>>,
    /// Holds and requests not yet collected or cancelled.
    pub holds: Vec<Titled<HoldRow>>,
    /// Fines with money still owed.
    pub fines: Vec<Titled<FineRow>>,
}

impl App {
    /// A record with the state of each copy; `None` when there is none.
    pub async fn record_page(&self, id: i64) -> Result<Option<RecordPage>, CircError> {
        let Some(view) = self.record(id).await? else {
            return Ok(None);
        };
        let ids: Vec<i64> = view.items.iter().map(|i| i.id).collect();
        let mut details = self.store.copy_details(&ids).await?;
        let copies = view
            .items
            .iter()
            .map(|item| CopyState {
                item: item.clone(),
                due_at: details.due.remove(&item.id),
                transit_to: details.transit_to.remove(&item.id),
                shelf_until: details.shelf_until.remove(&item.id),
            })
            .collect();
        Ok(Some(RecordPage { view, copies }))
    }

    /// The logged-in patron's loans, holds and fines with their titles.
    pub async fn my_library(&self, caller: &Caller) -> Result<MyLibrary, CircError> {
        let shoko_domain::Actor::Patron { id } = caller.actor else {
            return Err(shoko_domain::Denied::NotLoggedIn.into());
        };
        let view = self.patron_view(caller, id).await?;
        let loans = self.store.open_loans(id, 0, 500).await?;
        let holds = self.store.holds_of_patron(id).await?;
        let fines: Vec<FineRow> = self
            .store
            .fines_of_patron(id)
            .await?
            .into_iter()
            .filter(|f| f.amount > f.paid + f.waived)
            .collect();
        let mut item_ids: Vec<i64> = loans.iter().map(|l| l.item_id).collect();
        item_ids.extend(holds.iter().filter_map(|h| h.item_id));
        item_ids.extend(fines.iter().filter_map(|f| f.item_id));
        let mut items: HashMap<i64, StoredItem> = HashMap::new();
        for item_id in item_ids {
            if let std::collections::hash_map::Entry::Vacant(e) = items.entry(item_id)
                && let Some(item) = self.store.item(item_id).await?
            {
                e.insert(item);
            }
        }
        let mut record_ids: Vec<i64> = loans.iter().map(|l| l.record_id).collect();
        record_ids.extend(holds.iter().map(|h| h.record_id));
        record_ids.extend(items.values().map(|i| i.record_id));
        record_ids.sort_unstable();
        record_ids.dedup();
        let titles: HashMap<i64, String> = self
            .store
            .record_summaries(&record_ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r.title))
            .collect();
        let title = |record: i64| titles.get(&record).cloned().unwrap_or_default();
        Ok(MyLibrary {
            patron: view.patron,
            block: view.block,
            loans: loans
                .into_iter()
                .map(|l| Titled {
                    title: title(l.record_id),
                    item: items.get(&l.item_id).cloned(),
                    row: l,
                })
                .collect(),
            holds: holds
                .into_iter()
                .map(|h| Titled {
                    title: title(h.record_id),
                    item: h.item_id.and_then(|i| items.get(&i).cloned()),
                    row: h,
                })
                .collect(),
            fines: fines
                .into_iter()
                .map(|f| {
                    let item = f.item_id.and_then(|i| items.get(&i).cloned());
                    Titled {
                        title: item
                            .as_ref()
                            .map(|i| title(i.record_id))
                            .unwrap_or_default(),
                        item,
                        row: f,
                    }
                })
                .collect(),
        })
    }
}
