//! Facet counting. Tantivy's aggregations open every fast-field column of
//! every segment again on each search, which on a 250,000-record index cost
//! more than the search itself; here the columns are opened once per index
//! generation (a new set after each commit) and a search only counts term
//! ordinals, one small array per facet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use crate::shelves::{Shelves, availability_value};
use crate::{Facet, SearchError};

/// The facet columns of one segment, and its record ids.
pub(crate) struct SegmentColumns {
    pub(crate) id: Column<u64>,
    campus: Option<StrColumn>,
    language: Option<StrColumn>,
    format: Option<StrColumn>,
    pub(crate) availability: Option<StrColumn>,
    year: Column<i64>,
}

impl SegmentColumns {
    fn open(segment: &SegmentReader) -> Result<SegmentColumns, SearchError> {
        let f = segment.fast_fields();
        Ok(SegmentColumns {
            id: f.u64("id")?,
            campus: f.str("campus")?,
            language: f.str("language")?,
            format: f.str("format")?,
            availability: f.str("availability")?,
            year: f.i64("year")?,
        })
    }

    fn str_column(&self, facet: Facet) -> Option<&StrColumn> {
        match facet {
            Facet::Campus => self.campus.as_ref(),
            Facet::Language => self.language.as_ref(),
            Facet::Format => self.format.as_ref(),
            Facet::Availability => self.availability.as_ref(),
            Facet::Year => None,
        }
    }
}

/// The columns of every segment of one searcher generation.
#[derive(Default)]
pub(crate) struct FacetColumns {
    cached: Mutex<Option<(u64, Arc<Vec<SegmentColumns>>)>>,
}

impl FacetColumns {
    pub(crate) fn for_searcher(
        &self,
        searcher: &Searcher,
    ) -> Result<Arc<Vec<SegmentColumns>>, SearchError> {
        let generation = searcher.generation().generation_id();
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| SearchError::Internal("facet column cache poisoned".into()))?;
        if let Some((g, columns)) = cached.as_ref()
            && *g == generation
        {
            return Ok(Arc::clone(columns));
        }
        let columns = Arc::new(
            searcher
                .segment_readers()
                .iter()
                .map(SegmentColumns::open)
                .collect::<Result<Vec<_>, _>>()?,
        );
        *cached = Some((generation, Arc::clone(&columns)));
        Ok(columns)
    }

    /// A collector counting `facets` over the matches of a search; a
    /// record in `shelves` counts under its newer availability.
    pub(crate) fn collector(
        &self,
        searcher: &Searcher,
        facets: &[Facet],
        shelves: Option<Arc<Shelves>>,
    ) -> Result<FacetCollector, SearchError> {
        Ok(FacetCollector {
            columns: self.for_searcher(searcher)?,
            facets: facets.to_vec(),
            shelves: shelves.filter(|s| !s.is_empty()),
        })
    }
}

/// Counts facet values; its fruit is facet → value → count.
pub(crate) struct FacetCollector {
    columns: Arc<Vec<SegmentColumns>>,
    facets: Vec<Facet>,
    shelves: Option<Arc<Shelves>>,
}

/// Counts in one segment: per facet, one counter per term ordinal (or per
/// decade for years).
pub(crate) struct SegmentFacetCounter {
    columns: Arc<Vec<SegmentColumns>>,
    segment: usize,
    facets: Vec<Facet>,
    counts: Vec<Vec<u64>>,
    decades: BTreeMap<i64, u64>,
    shelves: Option<Arc<Shelves>>,
    /// Records counted under their newer availability: (available, not).
    shelved: (u64, u64),
}

pub(crate) type FacetFruit = BTreeMap<Facet, BTreeMap<String, u64>>;

impl Collector for FacetCollector {
    type Fruit = FacetFruit;
    type Child = SegmentFacetCounter;

    fn for_segment(
        &self,
        segment_local_id: SegmentOrdinal,
        _segment: &SegmentReader,
    ) -> tantivy::Result<SegmentFacetCounter> {
        let segment = segment_local_id as usize;
        let columns = self.columns.get(segment).ok_or_else(|| {
            tantivy::TantivyError::InternalError("facet columns of an unknown segment".into())
        })?;
        let counts = self
            .facets
            .iter()
            .map(|f| vec![0; columns.str_column(*f).map_or(0, |c| c.num_terms())])
            .collect();
        Ok(SegmentFacetCounter {
            columns: Arc::clone(&self.columns),
            segment,
            facets: self.facets.clone(),
            counts,
            decades: BTreeMap::new(),
            shelves: self.shelves.clone(),
            shelved: (0, 0),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetFruit>) -> tantivy::Result<FacetFruit> {
        let mut all = FacetFruit::new();
        for fruit in fruits {
            for (facet, values) in fruit {
                let into = all.entry(facet).or_default();
                for (value, n) in values {
                    *into.entry(value).or_default() += n;
                }
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentFacetCounter {
    type Fruit = FacetFruit;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let columns = &self.columns[self.segment];
        for (k, facet) in self.facets.iter().enumerate() {
            if *facet == Facet::Year {
                if let Some(year) = columns.year.first(doc) {
                    *self.decades.entry(year.div_euclid(10) * 10).or_default() += 1;
                }
                continue;
            }
            if *facet == Facet::Availability
                && let Some(shelf) = self.shelves.as_ref().and_then(|s| {
                    let id = columns.id.first(doc)?;
                    s.get(&id)
                })
            {
                if shelf.available {
                    self.shelved.0 += 1;
                } else {
                    self.shelved.1 += 1;
                }
                continue;
            }
            if let Some(column) = columns.str_column(*facet) {
                for ord in column.term_ords(doc) {
                    if let Some(n) = self.counts[k].get_mut(ord as usize) {
                        *n += 1;
                    }
                }
            }
        }
    }

    fn harvest(self) -> FacetFruit {
        let columns = &self.columns[self.segment];
        let mut fruit = FacetFruit::new();
        let mut term = String::new();
        for (k, facet) in self.facets.iter().enumerate() {
            let values = fruit.entry(*facet).or_default();
            if *facet == Facet::Availability {
                for (available, n) in [(true, self.shelved.0), (false, self.shelved.1)] {
                    if n > 0 {
                        *values
                            .entry(availability_value(available).to_owned())
                            .or_default() += n;
                    }
                }
            }
            if *facet == Facet::Year {
                for (from, n) in &self.decades {
                    values.insert(format!("{from}-{}", from + 9), *n);
                }
                continue;
            }
            let Some(column) = columns.str_column(*facet) else {
                continue;
            };
            for (ord, n) in self.counts[k].iter().enumerate() {
                if *n > 0 && column.ord_to_str(ord as u64, &mut term).unwrap_or(false) {
                    *values.entry(term.clone()).or_default() += *n;
                }
            }
        }
        fruit
    }
}
