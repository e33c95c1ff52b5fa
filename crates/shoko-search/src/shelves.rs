//! Availability newer than the documents. A checkout or a return changes
//! only whether a record has a copy on the shelf, yet a Tantivy document can
//! only be replaced whole, and each replacement costs a commit, new segment
//! files, later merges and a reader reload. So an item's status change goes
//! into memory instead: the record's availability and its hit display, kept
//! beside the index and consulted by every search, until the indexer folds
//! them into the documents in one commit (see [`crate::SearchIndex::apply`]).
//!
//! Searches read a snapshot (an `Arc`), so the indexer never waits for them.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::facets::SegmentColumns;

/// A record's availability as the database has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Shelf {
    /// Whether any copy is on the shelf.
    pub available: bool,
    /// The hit display to show instead of the document's.
    pub display: Option<Arc<str>>,
}

/// Record id → its newer availability.
pub(crate) type Shelves = HashMap<u64, Shelf, FxBuildHasher>;

/// The facet value a record's availability counts under.
pub(crate) fn availability_value(available: bool) -> &'static str {
    if available {
        "available"
    } else {
        "unavailable"
    }
}

/// Passes on to `inner` only the matches whose availability, newer or as
/// indexed, is `wanted`: the availability filter while shelves are pending
/// (the indexed term alone would keep stale matches and miss new ones).
pub(crate) struct AvailabilityFilter<C> {
    pub(crate) inner: C,
    pub(crate) columns: Arc<Vec<SegmentColumns>>,
    pub(crate) shelves: Arc<Shelves>,
    /// `None`: a value no record has, so nothing passes.
    pub(crate) wanted: Option<bool>,
}

/// [`AvailabilityFilter`] in one segment.
pub(crate) struct SegmentAvailabilityFilter<S> {
    inner: S,
    columns: Arc<Vec<SegmentColumns>>,
    segment: usize,
    shelves: Arc<Shelves>,
    wanted: Option<bool>,
    /// The wanted value's term ordinal in this segment's column.
    wanted_ord: Option<u64>,
}

impl<C: Collector> Collector for AvailabilityFilter<C> {
    type Fruit = C::Fruit;
    type Child = SegmentAvailabilityFilter<C::Child>;

    fn for_segment(
        &self,
        segment_local_id: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let ord = segment_local_id as usize;
        let columns = self.columns.get(ord).ok_or_else(|| {
            tantivy::TantivyError::InternalError("availability of an unknown segment".into())
        })?;
        let wanted_ord = match (self.wanted, &columns.availability) {
            (Some(w), Some(column)) => column.dictionary().term_ord(availability_value(w))?,
            _ => None,
        };
        Ok(SegmentAvailabilityFilter {
            inner: self.inner.for_segment(segment_local_id, segment)?,
            columns: Arc::clone(&self.columns),
            segment: ord,
            shelves: Arc::clone(&self.shelves),
            wanted: self.wanted,
            wanted_ord,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.inner.requires_scoring()
    }

    fn merge_fruits(
        &self,
        fruits: Vec<<Self::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<Self::Fruit> {
        self.inner.merge_fruits(fruits)
    }
}

impl<S: SegmentCollector> SegmentCollector for SegmentAvailabilityFilter<S> {
    type Fruit = S::Fruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(wanted) = self.wanted else { return };
        let columns = &self.columns[self.segment];
        let passes = match columns.id.first(doc).and_then(|id| self.shelves.get(&id)) {
            Some(shelf) => shelf.available == wanted,
            None => match (&columns.availability, self.wanted_ord) {
                (Some(column), Some(ord)) => column.term_ords(doc).any(|o| o == ord),
                _ => false,
            },
        };
        if passes {
            self.inner.collect(doc, score);
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.inner.harvest()
    }
}
