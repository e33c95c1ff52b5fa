//! The catalogue search index (Tantivy): document mapping, Japanese-aware
//! tokenising through `shoko-text`, queries and facets.
//!
//! One tokenizer serves every text field: words as they are, CJK characters as
//! `u:` unigrams and `b:` bigrams at their true positions. A query of one CJK
//! character is a unigram term; a longer CJK run is a phrase of consecutive
//! bigrams, so 大学 finds 東京大学 and a title holding the same bigrams out of
//! order does not match.
//!
//! The index remembers how far its documents have applied the catalogue
//! outbox in its own commit payload, so index contents and progress always
//! commit together. Availability that changed since (a checkout, a return)
//! is held in memory beside it (see [`Shelf`]) and folded into the documents
//! now and then; after a crash it is read again from the outbox rows after
//! the payload.

mod facets;
mod query;
mod shelves;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use shelves::Shelf;
use shelves::{AvailabilityFilter, Shelves};

use query::Field as QField;
pub use query::{Field as QueryField, Query, parse as parse_query};

use serde::Serialize;
use shoko_domain::{Isbn, Issn};
use shoko_text::{TokenKind, normalize, tokenize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, Occur, PhraseQuery, Query as TQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term, doc};

/// The tokenizer's registered name.
const TOKENIZER: &str = "shoko";

/// Normalises with `shoko-text`, then emits words, `u:` unigrams and `b:` bigrams.
#[derive(Clone, Default)]
pub struct ShokoTokenizer;

/// The tokens of one text, handed to Tantivy one by one.
pub struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The index terms of a text: what [`ShokoTokenizer`] emits.
pub fn index_terms(text: &str) -> Vec<(String, usize)> {
    let norm = normalize(text);
    tokenize(&norm)
        .into_iter()
        .map(|t| {
            let term = match t.kind {
                TokenKind::Word => t.text,
                TokenKind::Unigram => format!("u:{}", t.text),
                TokenKind::Bigram => format!("b:{}", t.text),
            };
            (term, t.position)
        })
        .collect()
}

impl Tokenizer for ShokoTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let tokens = index_terms(text)
            .into_iter()
            .map(|(text, position)| Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text,
                position_length: 1,
            })
            .collect();
        VecTokenStream { tokens, next: 0 }
    }
}

/// What the index holds for one bibliographic record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexDoc {
    /// The record's id.
    pub id: u64,
    /// Title to show.
    pub title: String,
    /// Title reading.
    pub title_reading: String,
    /// Names.
    pub authors: Vec<String>,
    /// Subject headings.
    pub subjects: Vec<String>,
    /// ISBN-13s (the ISBN-10 forms are indexed too).
    pub isbns: Vec<String>,
    /// ISSNs.
    pub issns: Vec<String>,
    /// Publisher.
    pub publisher: Option<String>,
    /// Year of publication.
    pub year: Option<i32>,
    /// Language code.
    pub language: Option<String>,
    /// Format code.
    pub format: String,
    /// Campuses holding an item.
    pub campuses: Vec<String>,
    /// Call numbers of its items.
    pub call_numbers: Vec<String>,
    /// Whether any item is on the shelf.
    pub available: bool,
    /// What a hit list shows of the record, stored as given (the caller's
    /// JSON), so that a page of hits needs no database round trip. Kept
    /// current like the rest of the document, through the outbox.
    pub display: Option<Arc<str>>,
}

/// Why the index could not do something.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Tantivy failed (I/O, a corrupt segment).
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The query is not valid (the user's to fix).
    #[error("query: {0}")]
    Query(String),
    /// Something inside the index went wrong (the operator's to look at).
    #[error("search index: {0}")]
    Internal(String),
    /// Another process holds the index's writer (a running server).
    #[error("the search index is in use by another process (a running `shoko serve`?)")]
    InUse,
}

impl SearchError {
    /// Tantivy's refusal of a second writer becomes [`SearchError::InUse`].
    fn from_open(e: tantivy::TantivyError) -> SearchError {
        match e {
            tantivy::TantivyError::LockFailure(..) => SearchError::InUse,
            other => SearchError::Index(other),
        }
    }
}

/// The fields of the schema.
#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    display: Field,
    all: Field,
    title: Field,
    title_reading: Field,
    title_exact: Field,
    author: Field,
    subject: Field,
    publisher: Field,
    isbn: Field,
    year: Field,
    language: Field,
    format: Field,
    campus: Field,
    availability: Field,
    title_sort: Field,
    call_number: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        display: b.add_text_field("display", STORED),
        all: b.add_text_field("all", text.clone()),
        title: b.add_text_field("title", text.clone()),
        title_reading: b.add_text_field("title_reading", text.clone()),
        title_exact: b.add_text_field("title_exact", STRING),
        author: b.add_text_field("author", text.clone()),
        subject: b.add_text_field("subject", text.clone()),
        publisher: b.add_text_field("publisher", text),
        isbn: b.add_text_field("isbn", STRING),
        year: b.add_i64_field("year", INDEXED | FAST),
        language: b.add_text_field("language", STRING | FAST),
        format: b.add_text_field("format", STRING | FAST),
        campus: b.add_text_field("campus", STRING | FAST),
        availability: b.add_text_field("availability", STRING | FAST),
        title_sort: b.add_text_field("title_sort", STRING | FAST),
        call_number: b.add_text_field("call_number", STRING),
    };
    (b.build(), fields)
}

/// The index in `dir` (created when the directory is empty), without a writer yet.
fn open_dir(dir: &Path) -> Result<(Index, Fields), SearchError> {
    let (schema, fields) = schema();
    std::fs::create_dir_all(dir).map_err(|e| SearchError::Index(e.into()))?;
    let directory = tantivy::directory::MmapDirectory::open(dir)
        .map_err(|e| SearchError::Internal(format!("index directory {}: {e}", dir.display())))?;
    let index = Index::builder()
        .schema(schema)
        .settings(index_settings())
        .open_or_create(directory)?;
    Ok((index, fields))
}

/// Stored documents in small blocks: a hit list reads twenty documents
/// from anywhere in the index, and each read decompresses its whole block.
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_blocksize: 2048,
        ..Default::default()
    }
}

/// A facet the search can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Facet {
    /// Campuses holding an item.
    Campus,
    /// Language code.
    Language,
    /// Format code.
    Format,
    /// `available` or `unavailable`.
    Availability,
    /// Decade of publication (`1990-1999`).
    Year,
}

impl Facet {
    /// The facet's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Facet::Campus => "campus",
            Facet::Language => "language",
            Facet::Format => "format",
            Facet::Availability => "availability",
            Facet::Year => "year",
        }
    }

    /// Parses an API name.
    pub fn parse(name: &str) -> Option<Facet> {
        [
            Facet::Campus,
            Facet::Language,
            Facet::Format,
            Facet::Availability,
            Facet::Year,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// The order of hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Best match first.
    #[default]
    Relevance,
    /// By title reading: Japanese in gojūon order of the reading, Latin alphabetically.
    Title,
    /// Newest first.
    YearDesc,
    /// Oldest first.
    YearAsc,
}

impl Sort {
    /// Parses an API name: `relevance`, `title`, `year` (newest first), `year_asc`.
    pub fn parse(name: &str) -> Option<Sort> {
        match name {
            "relevance" => Some(Sort::Relevance),
            "title" => Some(Sort::Title),
            "year" | "year_desc" => Some(Sort::YearDesc),
            "year_asc" => Some(Sort::YearAsc),
            _ => None,
        }
    }
}

/// What a title sorts by: its kana or romanised reading, normalised (so
/// katakana and hiragana readings interleave), else the title.
fn title_sort_key(d: &IndexDoc) -> String {
    let reading = if d.title_reading.trim().is_empty() {
        &d.title
    } else {
        &d.title_reading
    };
    shoko_text::sort_key(reading)
}

/// A search to run.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Order of the hits.
    pub sort: Sort,
    /// The query text (see [`SearchIndex::search`]).
    pub query: String,
    /// Hits to skip.
    pub offset: usize,
    /// Hits to return.
    pub limit: usize,
    /// Facets to count.
    pub facets: Vec<Facet>,
    /// Facet values every hit must have.
    pub filters: Vec<(Facet, String)>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The record's id.
    pub id: u64,
    /// Relevance.
    pub score: f32,
    /// The stored display payload, if the document has one.
    pub display: Option<String>,
}

/// The answer to a search.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchResult {
    /// All matching records.
    pub total: usize,
    /// The page asked for.
    pub hits: Vec<Hit>,
    /// Facet name → (value, count), most frequent first.
    pub facets: BTreeMap<String, Vec<(String, u64)>>,
}

/// The search index on disk.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// `None` for an index opened read-only (a second process beside the
    /// server, which holds the one writer Tantivy allows).
    writer: Option<Mutex<IndexWriter>>,
    fields: Fields,
    /// The writer's memory budget.
    memory: usize,
    /// Facet columns, opened once per index generation.
    facet_columns: facets::FacetColumns,
    /// Availability newer than the documents, and since when there is any.
    shelves: RwLock<(Arc<Shelves>, Option<std::time::Instant>)>,
    /// The outbox row up to which the documents are current (the payload).
    committed: AtomicI64,
    /// The outbox row up to which documents and shelves together are.
    applied: AtomicI64,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if the directory is empty.
    /// `writer_memory` bounds the indexing buffer (Tantivy's minimum is 15 MB).
    pub fn open(dir: &Path, writer_memory: usize) -> Result<SearchIndex, SearchError> {
        let (index, fields) = open_dir(dir)?;
        Self::with_index(index, fields, Some(writer_memory))
    }

    /// Opens a new index for a full build: its writer uses every core (up to
    /// four), since nothing searches it yet. [`SearchIndex::compact`] turns
    /// it into a serving index.
    pub fn open_for_build(dir: &Path, writer_memory: usize) -> Result<SearchIndex, SearchError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let (index, fields) = open_dir(dir)?;
        let mut built = Self::with_index(index, fields, None)?;
        let memory = writer_memory.max(15_000_000);
        let index = &built.index;
        let writer = in_background(|| index.writer_with_num_threads(threads, memory * threads))?;
        built.writer = Some(Mutex::new(writer));
        built.memory = memory;
        Ok(built)
    }

    /// Opens an existing index for searching only.
    pub fn open_read_only(dir: &Path) -> Result<SearchIndex, SearchError> {
        let (_, fields) = schema();
        let index = Index::open_in_dir(dir)?;
        Self::with_index(index, fields, None)
    }

    /// An index in memory, for tests.
    pub fn in_memory() -> Result<SearchIndex, SearchError> {
        let (schema, fields) = schema();
        let index = Index::builder()
            .schema(schema)
            .settings(index_settings())
            .create_in_ram()?;
        Self::with_index(index, fields, Some(15_000_000))
    }

    fn with_index(
        index: Index,
        fields: Fields,
        memory: Option<usize>,
    ) -> Result<SearchIndex, SearchError> {
        index.tokenizers().register(TOKENIZER, ShokoTokenizer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        // One indexing thread: the server's cores belong to searches. The
        // writer's threads start at a lower priority (see `in_background`).
        let writer = match memory {
            Some(m) => in_background(|| {
                let writer: IndexWriter = index
                    .writer_with_num_threads(1, m.max(15_000_000))
                    .map_err(SearchError::from_open)?;
                writer.set_merge_policy(Box::new(steady_merge_policy()));
                Ok::<_, SearchError>(Some(Mutex::new(writer)))
            })?,
            None => None,
        };
        let committed = index
            .load_metas()?
            .payload
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(SearchIndex {
            index,
            reader,
            writer,
            fields,
            memory: memory.unwrap_or(15_000_000).max(15_000_000),
            facet_columns: facets::FacetColumns::default(),
            shelves: RwLock::new((Arc::default(), None)),
            committed: AtomicI64::new(committed),
            applied: AtomicI64::new(committed),
        })
    }

    /// The last outbox row applied, to the documents or the shelves (0 for
    /// a new index). On opening, the documents' position from the last
    /// commit's payload.
    pub fn applied_outbox_id(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The last outbox row the documents on disk are current to: where a
    /// restarted indexer goes on from.
    pub fn committed_outbox_id(&self) -> i64 {
        self.committed.load(Ordering::Acquire)
    }

    fn shelf_snapshot(&self) -> (Arc<Shelves>, Option<std::time::Instant>) {
        let guard = self.shelves.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&guard.0), guard.1)
    }

    /// How many records' availability is newer than their documents, and
    /// since when there has been any.
    pub fn shelved(&self) -> (usize, Option<std::time::Instant>) {
        let (shelves, since) = self.shelf_snapshot();
        (shelves.len(), since)
    }

    /// The records whose availability is newer than their documents.
    pub fn shelved_ids(&self) -> Vec<u64> {
        self.shelf_snapshot().0.keys().copied().collect()
    }

    /// Applies outbox rows up to `outbox_id`: replaces (or, with `None`,
    /// deletes) the documents of `changes`, and records the newer
    /// availability of `shelves` (records whose items only changed status)
    /// without touching their documents.
    ///
    /// Documents are committed together with the outbox position up to which
    /// the documents alone are current: while shelves are pending, the
    /// position before the first of them, so that a restart reads them
    /// again from the outbox. Shelves alone commit nothing. A document
    /// written for a shelved record replaces its shelf: applying every
    /// shelved record as a document folds them all, and the position moves
    /// up to `outbox_id`.
    ///
    /// Blocks until the commit is done; it runs on a thread of its own at a
    /// lower priority (see [`in_background`]).
    pub fn apply(
        &self,
        changes: Vec<(u64, Option<IndexDoc>)>,
        shelves: Vec<(u64, Shelf)>,
        outbox_id: i64,
    ) -> Result<(), SearchError> {
        let (before, since) = self.shelf_snapshot();
        let mut after = Shelves::clone(&before);
        for (id, _) in &changes {
            after.remove(id);
        }
        let documents_current_to = if !after.is_empty() {
            // Older shelves stay: their rows are still only in memory.
            self.committed_outbox_id()
        } else if shelves.is_empty() {
            outbox_id
        } else {
            // Every row before this batch is in the documents now.
            self.applied_outbox_id()
        };
        if !changes.is_empty() || documents_current_to != self.committed_outbox_id() {
            in_background(|| {
                self.stage(changes)?;
                self.commit(documents_current_to)
            })?;
        }
        after.extend(shelves);
        let since = match (after.is_empty(), since) {
            (true, _) => None,
            (false, Some(t)) => Some(t),
            (false, None) => Some(std::time::Instant::now()),
        };
        *self.shelves.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(after), since);
        self.applied.store(outbox_id, Ordering::Release);
        Ok(())
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, IndexWriter>, SearchError> {
        self.writer
            .as_ref()
            .ok_or_else(|| SearchError::Internal("the index is open read-only".into()))?
            .lock()
            .map_err(|_| SearchError::Internal("index writer poisoned by a panic".into()))
    }

    /// Replaces or deletes documents without committing: invisible, and
    /// lost in a crash, until [`SearchIndex::commit`].
    pub fn stage(&self, changes: Vec<(u64, Option<IndexDoc>)>) -> Result<(), SearchError> {
        let f = self.fields;
        let writer = self.writer()?;
        for (id, doc) in changes {
            writer.delete_term(Term::from_field_u64(f.id, id));
            if let Some(d) = doc {
                writer.add_document(self.document(&d))?;
            }
        }
        Ok(())
    }

    /// Commits what was staged, with the outbox position reached, and makes
    /// it visible to searches.
    pub fn commit(&self, outbox_id: i64) -> Result<(), SearchError> {
        let mut writer = self.writer()?;
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&outbox_id.to_string());
        commit.commit()?;
        drop(writer);
        self.committed.store(outbox_id, Ordering::Release);
        self.applied.fetch_max(outbox_id, Ordering::AcqRel);
        self.reader.reload()?;
        Ok(())
    }

    /// Finishes a full build: waits for background merges, merges every
    /// segment into one (each search then visits one segment instead of
    /// dozens), and reopens the writer. Later changes add small segments
    /// that the merge policy folds in as usual.
    pub fn compact(self) -> Result<SearchIndex, SearchError> {
        let SearchIndex {
            index,
            reader,
            writer,
            fields,
            memory,
            ..
        } = self;
        drop(reader);
        let Some(writer) = writer else {
            return Err(SearchError::Internal("the index is open read-only".into()));
        };
        let writer = writer
            .into_inner()
            .map_err(|_| SearchError::Internal("index writer poisoned by a panic".into()))?;
        writer.wait_merging_threads()?;
        in_background(|| {
            let mut writer: IndexWriter = index.writer_with_num_threads(1, memory)?;
            writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
            let ids = index.searchable_segment_ids()?;
            if ids.len() > 1 {
                writer.merge(&ids).wait()?;
            }
            writer.wait_merging_threads()
        })?;
        Self::with_index(index, fields, Some(memory))
    }

    fn document(&self, d: &IndexDoc) -> TantivyDocument {
        let f = self.fields;
        let mut doc = doc!(
            f.id => d.id,
            f.title => d.title.as_str(),
            f.title => d.title_reading.as_str(),
            f.format => d.format.as_str(),
            f.availability => if d.available { "available" } else { "unavailable" },
            f.title_sort => title_sort_key(d).as_str(),
        );
        for text in [&d.title, &d.title_reading] {
            doc.add_text(f.all, text);
        }
        doc.add_text(f.title_reading, &d.title_reading);
        if let Some(display) = &d.display {
            doc.add_text(f.display, display.as_ref());
        }
        let mut exact: BTreeSet<String> = BTreeSet::new();
        for t in [&d.title, &d.title_reading] {
            exact.insert(title_key(t));
            exact.insert(title_key(title_proper(t)));
        }
        for key in exact.into_iter().filter(|k| !k.is_empty()) {
            doc.add_text(f.title_exact, key);
        }
        for a in &d.authors {
            doc.add_text(f.author, a);
            doc.add_text(f.all, a);
        }
        for s in &d.subjects {
            doc.add_text(f.subject, s);
            doc.add_text(f.all, s);
        }
        if let Some(p) = &d.publisher {
            doc.add_text(f.publisher, p);
            doc.add_text(f.all, p);
        }
        // ISBN-13 only: a query in ISBN-10 form is converted before matching.
        for i in &d.isbns {
            doc.add_text(f.isbn, i);
        }
        for i in &d.issns {
            doc.add_text(f.isbn, i.replace('-', ""));
        }
        if let Some(y) = d.year {
            doc.add_i64(f.year, i64::from(y));
        }
        if let Some(l) = &d.language {
            doc.add_text(f.language, l);
        }
        for c in &d.campuses {
            doc.add_text(f.campus, c);
        }
        for c in &d.call_numbers {
            doc.add_text(f.call_number, call_number_key(c));
        }
        doc
    }

    /// How many records the index holds.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Runs a search written in the search box syntax (see [`parse_query`]).
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, SearchError> {
        self.search_query(&parse_query(&req.query)?, req)
    }

    /// Runs a query tree (from the search box, or CQL) with the request's
    /// page, order, facets and filters; `req.query` is not read.
    pub fn search_query(
        &self,
        query: &Query,
        req: &SearchRequest,
    ) -> Result<SearchResult, SearchError> {
        let searcher = self.reader.searcher();
        let shelves = Some(self.shelf_snapshot().0).filter(|s| !s.is_empty());
        let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = vec![(Occur::Must, self.compile(query)?)];
        // With shelves pending, availability is decided match by match.
        let mut wanted_availability: Option<Option<bool>> = None;
        for (facet, value) in &req.filters {
            if *facet == Facet::Availability && shelves.is_some() {
                let wanted = match value.as_str() {
                    "available" => Some(true),
                    "unavailable" => Some(false),
                    _ => None,
                };
                wanted_availability = match wanted_availability {
                    Some(before) if before != wanted => Some(None),
                    _ => Some(wanted),
                };
                continue;
            }
            clauses.push((Occur::Must, self.filter(*facet, value)?));
        }
        // Known-item searches first: the whole title, exactly, then the
        // query as a phrase in the title. Only scores; never narrows.
        if let Some(text) = query
            .known_item_text()
            .filter(|_| req.sort == Sort::Relevance)
        {
            let key = title_key(&text);
            if !key.is_empty() {
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        self.term(self.fields.title_exact, &key),
                        20.0,
                    )),
                ));
            }
            if let Some(phrase) = self.phrase_query(self.fields.title, &text) {
                clauses.push((Occur::Should, Box::new(BoostQuery::new(phrase, 3.0))));
            }
        }
        let query = BooleanQuery::new(clauses);
        let limit = req.limit.clamp(1, 1000);
        let top = TopDocs::with_limit(limit).and_offset(req.offset);
        let counter = if req.facets.is_empty() {
            None
        } else {
            Some(
                self.facet_columns
                    .collector(&searcher, &req.facets, shelves.clone())?,
            )
        };
        let keep = match (wanted_availability, &shelves) {
            (Some(wanted), Some(shelves)) => Some((
                self.facet_columns.for_searcher(&searcher)?,
                Arc::clone(shelves),
                wanted,
            )),
            _ => None,
        };
        // Hits, total and facets in one pass over the matches.
        let (docs, total, counted) = match req.sort {
            Sort::Relevance => one_pass(&searcher, &query, top.order_by_score(), counter, keep)?,
            Sort::Title => unscored(one_pass(
                &searcher,
                &query,
                top.order_by_string_fast_field("title_sort", Order::Asc),
                counter,
                keep,
            )?),
            Sort::YearDesc => unscored(one_pass(
                &searcher,
                &query,
                top.order_by_fast_field::<i64>("year", Order::Desc),
                counter,
                keep,
            )?),
            Sort::YearAsc => unscored(one_pass(
                &searcher,
                &query,
                top.order_by_fast_field::<i64>("year", Order::Asc),
                counter,
                keep,
            )?),
        };
        let mut facets = BTreeMap::new();
        for (facet, values) in counted.unwrap_or_default() {
            let mut values: Vec<(String, u64)> = values.into_iter().collect();
            if facet == Facet::Year {
                // Newest decade first.
                values.sort_by_key(|(decade, _)| {
                    std::cmp::Reverse(decade.split('-').next().and_then(|y| y.parse::<i64>().ok()))
                });
            } else {
                // Most frequent first, then by value.
                values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                values.truncate(100);
            }
            facets.insert(facet.name().to_owned(), values);
        }
        for f in &req.facets {
            facets.entry(f.name().to_owned()).or_default();
        }
        let mut hits = Vec::with_capacity(docs.len());
        for (score, addr) in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let id = doc
                .get_first(self.fields.id)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| SearchError::Internal("a document without id".into()))?;
            let display = match shelves.as_ref().and_then(|s| s.get(&id)) {
                Some(shelf) => shelf.display.as_deref().map(str::to_owned),
                None => doc
                    .get_first(self.fields.display)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            };
            hits.push(Hit { id, score, display });
        }
        Ok(SearchResult {
            total,
            hits,
            facets,
        })
    }

    /// The ids of every record the query matches, in no order: for exports
    /// of a result set and for checking recall against a full scan.
    pub fn matching_ids(&self, query: &str) -> Result<Vec<u64>, SearchError> {
        let query = self.compile(&parse_query(query)?)?;
        let searcher = self.reader.searcher();
        let found = searcher.search(&query, &tantivy::collector::DocSetCollector)?;
        let mut columns = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            columns.push(segment.fast_fields().u64("id")?);
        }
        found
            .into_iter()
            .map(|addr| {
                columns[addr.segment_ord as usize]
                    .first(addr.doc_id)
                    .ok_or_else(|| SearchError::Internal("a document without id".into()))
            })
            .collect()
    }

    /// A facet value every hit must have; a decade is `1990-1999`.
    fn filter(&self, facet: Facet, value: &str) -> Result<Box<dyn TQuery>, SearchError> {
        let field = match facet {
            Facet::Campus => self.fields.campus,
            Facet::Language => self.fields.language,
            Facet::Format => self.fields.format,
            Facet::Availability => self.fields.availability,
            Facet::Year => {
                let bad = || SearchError::Query(format!("year filter {value:?} is not FROM-TO"));
                let (from, to) = value.split_once('-').ok_or_else(bad)?;
                let from = from.trim().parse().map_err(|_| bad())?;
                let to = to.trim().parse().map_err(|_| bad())?;
                return Ok(self.year_range(Some(from), Some(to)));
            }
        };
        Ok(Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        )))
    }

    /// Turns a query tree into a Tantivy query.
    fn compile(&self, query: &Query) -> Result<Box<dyn TQuery>, SearchError> {
        Ok(match query {
            Query::All => Box::new(AllQuery),
            Query::Text { field, text } => self.text_or_isbn(*field, text, false)?,
            Query::Phrase { field, text } => self.text_or_isbn(*field, text, true)?,
            Query::Prefix { field, text } => self.prefix_query(*field, text)?,
            Query::Year { from, to } => self.year_range(*from, *to),
            Query::Or(parts) => Box::new(BooleanQuery::new(
                parts
                    .iter()
                    .map(|p| Ok((Occur::Should, self.compile(p)?)))
                    .collect::<Result<Vec<_>, SearchError>>()?,
            )),
            Query::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn TQuery>),
                (Occur::MustNot, self.compile(inner)?),
            ])),
            Query::And(parts) => {
                let mut clauses = Vec::with_capacity(parts.len() + 1);
                for p in parts {
                    clauses.push(match p {
                        Query::Not(inner) => (Occur::MustNot, self.compile(inner)?),
                        other => (Occur::Must, self.compile(other)?),
                    });
                }
                if !clauses.iter().any(|(o, _)| *o == Occur::Must) {
                    // Only exclusions: start from every record.
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
        })
    }

    fn text_field(&self, field: QField) -> Field {
        match field {
            QField::All => self.fields.all,
            QField::Title => self.fields.title,
            QField::TitleReading => self.fields.title_reading,
            QField::Author => self.fields.author,
            QField::Subject => self.fields.subject,
            QField::Publisher => self.fields.publisher,
            QField::Isbn => self.fields.isbn,
            QField::CallNumber => self.fields.call_number,
        }
    }

    /// Text or a phrase; an ISBN field wants an ISBN, and a keyword that is
    /// an ISBN also matches the ISBN field. Text with nothing searchable in
    /// it (only punctuation) matches every record rather than none.
    fn text_or_isbn(
        &self,
        field: QField,
        body: &str,
        phrase: bool,
    ) -> Result<Box<dyn TQuery>, SearchError> {
        if field == QField::Isbn {
            return self.isbn_query(body);
        }
        if field == QField::CallNumber {
            return self.prefix_query(field, body);
        }
        let f = self.text_field(field);
        let text = if phrase {
            self.phrase_query(f, body)
        } else {
            self.text_query(f, body)
        };
        Ok(match (text, isbn_key(body)) {
            (Some(q), Some(key)) if field == QField::All => Box::new(BooleanQuery::new(vec![
                (Occur::Should, q),
                (Occur::Should, self.term(self.fields.isbn, &key)),
            ])),
            (Some(q), _) => q,
            (None, Some(key)) => self.term(self.fields.isbn, &key),
            (None, None) => Box::new(AllQuery),
        })
    }

    /// A word prefix (`comput*`) or a call number prefix.
    fn prefix_query(&self, field: QField, stem: &str) -> Result<Box<dyn TQuery>, SearchError> {
        if field == QField::CallNumber {
            let call = call_number_key(stem);
            if call.is_empty() {
                return Ok(Box::new(AllQuery));
            }
            return Ok(self.prefix(self.fields.call_number, &call));
        }
        let norm = normalize(stem);
        let is_word = !norm.is_empty()
            && !norm.contains(' ')
            && tokenize(&norm).iter().all(|t| t.kind == TokenKind::Word);
        if is_word && field != QField::Isbn {
            Ok(self.prefix(self.text_field(field), &norm))
        } else {
            // CJK text already matches anywhere inside a word.
            self.text_or_isbn(field, stem, false)
        }
    }

    /// Year of publication between two inclusive bounds.
    fn year_range(&self, from: Option<i64>, to: Option<i64>) -> Box<dyn TQuery> {
        use std::ops::Bound;
        let bound = |y: Option<i64>| match y {
            Some(y) => Bound::Included(Term::from_field_i64(self.fields.year, y)),
            None => Bound::Unbounded,
        };
        Box::new(tantivy::query::RangeQuery::new(bound(from), bound(to)))
    }

    /// Every term of `field` that starts with `prefix`.
    fn prefix(&self, field: Field, prefix: &str) -> Box<dyn TQuery> {
        use std::ops::Bound;
        let end = format!("{prefix}\u{10FFFF}");
        Box::new(tantivy::query::RangeQuery::new(
            Bound::Included(Term::from_field_text(field, prefix)),
            Bound::Excluded(Term::from_field_text(field, &end)),
        ))
    }

    fn term(&self, field: Field, text: &str) -> Box<dyn TQuery> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::WithFreqsAndPositions,
        ))
    }

    fn isbn_query(&self, body: &str) -> Result<Box<dyn TQuery>, SearchError> {
        let key = isbn_key(body)
            .ok_or_else(|| SearchError::Query(format!("{body:?} is not an ISBN or ISSN")))?;
        Ok(self.term(self.fields.isbn, &key))
    }

    /// Words must all occur; a CJK run is one unigram or a phrase of bigrams.
    fn text_query(&self, field: Field, body: &str) -> Option<Box<dyn TQuery>> {
        let norm = normalize(body);
        let tokens = tokenize(&norm);
        let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
        // CJK runs: unigrams at consecutive positions.
        let mut runs: Vec<Vec<&str>> = Vec::new();
        let mut last: Option<usize> = None;
        for t in &tokens {
            match t.kind {
                TokenKind::Word => clauses.push((Occur::Must, self.term(field, &t.text))),
                TokenKind::Unigram => {
                    match runs.last_mut() {
                        Some(run) if last.is_some_and(|p| p + 1 == t.position) => run.push(&t.text),
                        _ => runs.push(vec![&t.text]),
                    }
                    last = Some(t.position);
                }
                TokenKind::Bigram => {}
            }
        }
        for run in runs {
            let query: Box<dyn TQuery> = match run.as_slice() {
                [one] => self.term(field, &format!("u:{one}")),
                [a, b] => self.term(field, &format!("b:{a}{b}")),
                _ => {
                    let terms = run
                        .windows(2)
                        .enumerate()
                        .map(|(i, w)| {
                            (
                                i,
                                Term::from_field_text(field, &format!("b:{}{}", w[0], w[1])),
                            )
                        })
                        .collect();
                    Box::new(PhraseQuery::new_with_offset(terms))
                }
            };
            clauses.push((Occur::Must, query));
        }
        match clauses.len() {
            0 => None,
            1 => clauses.pop().map(|(_, q)| q),
            _ => Some(Box::new(BooleanQuery::new(clauses))),
        }
    }

    /// Every word and character in this order: words and CJK bigrams (a
    /// lone CJK character as its unigram) at the positions the tokenizer
    /// gives them, so the phrase matches exactly where the text does.
    fn phrase_query(&self, field: Field, body: &str) -> Option<Box<dyn TQuery>> {
        let norm = normalize(body);
        let tokens = tokenize(&norm);
        let bigram_at: BTreeSet<usize> = tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Bigram)
            .map(|t| t.position)
            .collect();
        let mut terms: Vec<(usize, Term)> = Vec::new();
        for t in &tokens {
            let text = match t.kind {
                TokenKind::Word => t.text.clone(),
                TokenKind::Bigram => format!("b:{}", t.text),
                TokenKind::Unigram
                    if !bigram_at.contains(&t.position)
                        && (t.position == 0 || !bigram_at.contains(&(t.position - 1))) =>
                {
                    format!("u:{}", t.text)
                }
                TokenKind::Unigram => continue,
            };
            terms.push((t.position, Term::from_field_text(field, &text)));
        }
        match terms.len() {
            0 => None,
            1 => Some(Box::new(TermQuery::new(
                terms.remove(0).1,
                IndexRecordOption::WithFreqsAndPositions,
            ))),
            _ => {
                let first = terms[0].0;
                let terms = terms.into_iter().map(|(p, t)| (p - first, t)).collect();
                Some(Box::new(PhraseQuery::new_with_offset(terms)))
            }
        }
    }
}

/// What an exact known-item title match compares: the normalised text
/// without spaces or punctuation.
fn title_key(text: &str) -> String {
    normalize(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The title proper: the title up to its subtitle or statement of
/// responsibility (` : `, ` / `, ` = `).
fn title_proper(title: &str) -> &str {
    [" : ", " / ", " = ", " ; "]
        .iter()
        .filter_map(|sep| title.find(sep))
        .min()
        .map_or(title, |i| &title[..i])
}

/// A call number as indexed and queried: upper case, single spaces, no
/// space after a period (`gr340 .a25` and `GR340.A25` are the same).
fn call_number_key(s: &str) -> String {
    let upper = normalize(s).to_uppercase();
    upper
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(". ", ".")
        .replace(" .", ".")
}

/// Hits in a sorted order carry no score.
fn unscored<K, R>(
    (docs, total, agg): (Vec<(K, tantivy::DocAddress)>, usize, R),
) -> (Vec<(f32, tantivy::DocAddress)>, usize, R) {
    (
        docs.into_iter().map(|(_, a)| (0.0, a)).collect(),
        total,
        agg,
    )
}

/// What decides availability match by match while shelves are pending:
/// the columns, the shelves, and the value wanted (`None`: a value no record has).
type KeepAvailability = (Arc<Vec<facets::SegmentColumns>>, Arc<Shelves>, Option<bool>);

/// The top hits, the count and (when asked) the facets, in one pass; with
/// `keep`, over the matches of the wanted availability only.
fn one_pass<C>(
    searcher: &tantivy::Searcher,
    query: &dyn TQuery,
    top: C,
    counter: Option<facets::FacetCollector>,
    keep: Option<KeepAvailability>,
) -> Result<(C::Fruit, usize, Option<facets::FacetFruit>), SearchError>
where
    C: tantivy::collector::Collector,
{
    let all = (top, Count, counter);
    let (docs, total, counted) = match keep {
        Some((columns, shelves, wanted)) => searcher.search(
            query,
            &AvailabilityFilter {
                inner: all,
                columns,
                shelves,
                wanted,
            },
        )?,
        None => searcher.search(query, &all)?,
    };
    Ok((docs, total, counted))
}

/// The indexed form of an ISBN (any form, as ISBN-13) or ISSN (8 characters).
fn isbn_key(s: &str) -> Option<String> {
    if let Some(isbn) = Isbn::parse(s) {
        return Some(isbn.as_str().to_owned());
    }
    Issn::parse(s).map(|i| i.as_str().replace('-', ""))
}

/// How much lower than the server's own threads indexing runs (added to
/// the nice value of the thread that starts it: Linux then gives a waiting
/// desk or search about nine tenths of a core the indexer also wants).
pub const INDEXING_NICE: i32 = 10;

/// Runs `f` on a new thread at a lower scheduling priority and waits for it.
/// Tantivy starts its writer's threads (indexing, merging, the segment
/// updater) from the threads that open, feed and commit the writer; on
/// Linux a thread inherits its creator's priority, so every thread of the
/// writer runs below the threads that answer requests. Indexing a checkout's change then waits for a desk,
/// never the other way round; the index still keeps up when the desks
/// leave any CPU free. Elsewhere this only runs `f` on its own thread.
pub fn in_background<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("shoko-indexing".into())
            .spawn_scoped(scope, || {
                #[cfg(target_os = "linux")]
                {
                    // Raising one's own nice value needs no privilege; were
                    // it refused, indexing would merely run at the caller's.
                    let me = rustix::thread::gettid();
                    let caller = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
                    let lower = (caller + INDEXING_NICE).min(19);
                    let _ = rustix::process::setpriority_process(Some(me), lower);
                }
                f()
            })
            .expect("a thread for indexing");
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// How the server's writer merges the small segments that its frequent
/// commits make (one per refresh: at the desk, every checkout re-indexes its
/// record). Tantivy's default puts every segment under 10,000 documents in
/// one layer, so each merge rewrote the growing small segment with the few
/// new documents: under sixteen desks that took half the server's CPU.
/// Layers from 100 documents make merges geometric (each document is
/// rewritten about log(n) times), and a segment with a fifth of its
/// documents deleted is merged to drop them.
fn steady_merge_policy() -> tantivy::indexer::LogMergePolicy {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_min_layer_size(100);
    policy.set_min_num_segments(8);
    policy.set_del_docs_ratio_before_merge(0.2);
    policy
}
