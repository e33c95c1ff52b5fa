//! The catalogue search index (Tantivy): document mapping, Japanese-aware
//! tokenising through `shoko-text`, queries and facets.
//!
//! One tokenizer serves every text field: words as they are, CJK characters as
//! `u:` unigrams and `b:` bigrams at their true positions. A query of one CJK
//! character is a unigram term; a longer CJK run is a phrase of consecutive
//! bigrams, so 大学 finds 東京大学 and a title holding the same bigrams out of
//! order does not match.
//!
//! The index remembers how far it has applied the catalogue outbox in its own
//! commit payload, so index contents and progress always commit together.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use shoko_domain::{Isbn, Issn};
use shoko_text::{TokenKind, normalize, tokenize};
use tantivy::aggregation::AggregationCollector;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, PhraseQuery, Query, TermQuery};
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
}

/// The fields of the schema.
#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    all: Field,
    title: Field,
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
        all: b.add_text_field("all", text.clone()),
        title: b.add_text_field("title", text.clone()),
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
}

impl Facet {
    /// The facet's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Facet::Campus => "campus",
            Facet::Language => "language",
            Facet::Format => "format",
            Facet::Availability => "availability",
        }
    }

    /// Parses an API name.
    pub fn parse(name: &str) -> Option<Facet> {
        [
            Facet::Campus,
            Facet::Language,
            Facet::Format,
            Facet::Availability,
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
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if the directory is empty.
    /// `writer_memory` bounds the indexing buffer (Tantivy's minimum is 15 MB).
    pub fn open(dir: &Path, writer_memory: usize) -> Result<SearchIndex, SearchError> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir).map_err(|e| SearchError::Index(e.into()))?;
        let directory = tantivy::directory::MmapDirectory::open(dir).map_err(|e| {
            SearchError::Internal(format!("index directory {}: {e}", dir.display()))
        })?;
        let index = Index::open_or_create(directory, schema)?;
        Self::with_index(index, fields, Some(writer_memory))
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
        Self::with_index(Index::create_in_ram(schema), fields, Some(15_000_000))
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
        // One indexing thread: the server's cores belong to searches.
        let writer = match memory {
            Some(m) => Some(Mutex::new(
                index.writer_with_num_threads(1, m.max(15_000_000))?,
            )),
            None => None,
        };
        Ok(SearchIndex {
            index,
            reader,
            writer,
            fields,
        })
    }

    /// The last outbox row applied, from the last commit's payload (0 for a new index).
    pub fn applied_outbox_id(&self) -> Result<i64, SearchError> {
        let meta = self.index.load_metas()?;
        Ok(meta.payload.and_then(|p| p.parse().ok()).unwrap_or(0))
    }

    /// Replaces (or, with `None`, deletes) the documents of records, and
    /// commits together with the outbox position reached.
    pub fn apply(
        &self,
        changes: Vec<(u64, Option<IndexDoc>)>,
        outbox_id: i64,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let mut writer = self
            .writer
            .as_ref()
            .ok_or_else(|| SearchError::Internal("the index is open read-only".into()))?
            .lock()
            .map_err(|_| SearchError::Internal("index writer poisoned by a panic".into()))?;
        for (id, doc) in changes {
            writer.delete_term(Term::from_field_u64(f.id, id));
            if let Some(d) = doc {
                writer.add_document(self.document(&d))?;
            }
        }
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&outbox_id.to_string());
        commit.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
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

    /// Runs a search. The query is words and `"phrases"`, each optionally
    /// prefixed by a field (`title:`, `author:`, `subject:`, `publisher:`,
    /// `isbn:`), year ranges (`year:1990-2000`), call number prefixes
    /// (`callno:GR340`) and word prefixes (`comput*`); every part must match,
    /// parts joined by `OR` are alternatives, and `NOT part` or `-part`
    /// excludes. A bare part that is an ISBN also
    /// matches the ISBN field.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, SearchError> {
        let query = self.parse(&req.query)?;
        let searcher = self.reader.searcher();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, query)];
        for (facet, value) in &req.filters {
            let field = self.facet_field(*facet);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(field, value),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let limit = req.limit.clamp(1, 1000);
        let top = TopDocs::with_limit(limit).and_offset(req.offset);
        let docs: Vec<(f32, tantivy::DocAddress)> = match req.sort {
            Sort::Relevance => searcher.search(&query, &top.order_by_score())?,
            Sort::Title => unscored(searcher.search(
                &query,
                &top.order_by_string_fast_field("title_sort", Order::Asc),
            )?),
            Sort::YearDesc => unscored(
                searcher.search(&query, &top.order_by_fast_field::<i64>("year", Order::Desc))?,
            ),
            Sort::YearAsc => unscored(
                searcher.search(&query, &top.order_by_fast_field::<i64>("year", Order::Asc))?,
            ),
        };
        let mut facets = BTreeMap::new();
        let total = if req.facets.is_empty() {
            searcher.search(&query, &Count)?
        } else {
            let mut aggs = serde_json::Map::new();
            for f in &req.facets {
                aggs.insert(
                    f.name().into(),
                    serde_json::json!({ "terms": { "field": f.name(), "size": 100 } }),
                );
            }
            let aggs: Aggregations = serde_json::from_value(serde_json::Value::Object(aggs))
                .map_err(|e| SearchError::Internal(e.to_string()))?;
            let collector = AggregationCollector::from_aggs(aggs, Default::default());
            let (total, agg) = searcher.search(&query, &(Count, collector))?;
            let agg =
                serde_json::to_value(agg).map_err(|e| SearchError::Internal(e.to_string()))?;
            for f in &req.facets {
                let buckets = agg[f.name()]["buckets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let values = buckets
                    .iter()
                    .filter_map(|b| Some((b["key"].as_str()?.to_owned(), b["doc_count"].as_u64()?)))
                    .collect();
                facets.insert(f.name().to_owned(), values);
            }
            total
        };
        let mut hits = Vec::with_capacity(docs.len());
        for (score, addr) in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let id = doc
                .get_first(self.fields.id)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| SearchError::Internal("a document without id".into()))?;
            hits.push(Hit { id, score });
        }
        Ok(SearchResult {
            total,
            hits,
            facets,
        })
    }

    fn facet_field(&self, facet: Facet) -> Field {
        match facet {
            Facet::Campus => self.fields.campus,
            Facet::Language => self.fields.language,
            Facet::Format => self.fields.format,
            Facet::Availability => self.fields.availability,
        }
    }

    /// Turns the query text into a Tantivy query (every part must match).
    fn parse(&self, text: &str) -> Result<Box<dyn Query>, SearchError> {
        // Groups of alternatives joined by OR; each group must match, or must
        // not when it was written `NOT part` or `-part`.
        let mut groups: Vec<(Occur, Vec<Box<dyn Query>>)> = Vec::new();
        let (mut or_next, mut not_next) = (false, false);
        for part in split_query(text) {
            match part.as_str() {
                "OR" => {
                    or_next = !groups.is_empty();
                    continue;
                }
                "NOT" => {
                    not_next = true;
                    continue;
                }
                "AND" => continue,
                _ => {}
            }
            let (negated, part) = match part.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest.to_owned()),
                _ => (not_next, part),
            };
            not_next = false;
            let Some(query) = self.part_query(&part)? else {
                continue;
            };
            match groups.last_mut() {
                Some((_, alternatives)) if or_next && !negated => alternatives.push(query),
                _ => groups.push((
                    if negated { Occur::MustNot } else { Occur::Must },
                    vec![query],
                )),
            }
            or_next = false;
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = groups
            .into_iter()
            .map(|(occur, mut alternatives)| {
                let query: Box<dyn Query> = if alternatives.len() == 1 {
                    alternatives.remove(0)
                } else {
                    Box::new(BooleanQuery::new(
                        alternatives
                            .into_iter()
                            .map(|q| (Occur::Should, q))
                            .collect(),
                    ))
                };
                (occur, query)
            })
            .collect();
        if !clauses.iter().any(|(o, _)| *o == Occur::Must) {
            // Only exclusions (or nothing): start from every record.
            clauses.push((Occur::Must, Box::new(tantivy::query::AllQuery)));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// One part of a query: a word, a `"phrase"`, a `field:` part or a year range.
    fn part_query(&self, part: &str) -> Result<Option<Box<dyn Query>>, SearchError> {
        if let Some(range) = part.strip_prefix("year:") {
            return Ok(Some(self.year_query(range)?));
        }
        if let Some(call) = part.strip_prefix("callno:") {
            // A call number matches from its start: `callno:GR340` finds GR340 .A25 1999.
            let call = call_number_key(call.trim_matches('"').trim_end_matches('*'));
            return Ok((!call.is_empty()).then(|| self.prefix(self.fields.call_number, &call)));
        }
        if let Some(stem) = part.strip_suffix('*').filter(|p| !p.contains(':')) {
            let stem = normalize(stem);
            let is_word = !stem.is_empty()
                && !stem.contains(' ')
                && tokenize(&stem).iter().all(|t| t.kind == TokenKind::Word);
            if is_word {
                return Ok(Some(self.prefix(self.fields.all, &stem)));
            }
        }
        let (field, body) = match part.split_once(':') {
            Some((name, body)) if !part.starts_with('"') => match name {
                "title" => (self.fields.title, body),
                "author" => (self.fields.author, body),
                "subject" => (self.fields.subject, body),
                "publisher" => (self.fields.publisher, body),
                "isbn" => (self.fields.isbn, body),
                _ => (self.fields.all, part),
            },
            _ => (self.fields.all, part),
        };
        let body = body.trim_matches('"');
        if field == self.fields.isbn {
            return Ok(Some(self.isbn_query(body)?));
        }
        Ok(match (self.text_query(field, body), isbn_key(body)) {
            (Some(q), Some(key)) if field == self.fields.all => {
                let either: Vec<(Occur, Box<dyn Query>)> = vec![
                    (Occur::Should, q),
                    (Occur::Should, self.term(self.fields.isbn, &key)),
                ];
                Some(Box::new(BooleanQuery::new(either)))
            }
            (Some(q), _) => Some(q),
            (None, Some(key)) => Some(self.term(self.fields.isbn, &key)),
            (None, None) => None,
        })
    }

    /// `year:1999`, `year:1990-2000`, `year:-1950` or `year:2000-` (inclusive).
    fn year_query(&self, range: &str) -> Result<Box<dyn Query>, SearchError> {
        use std::ops::Bound;
        let year = |s: &str| -> Result<Bound<Term>, SearchError> {
            if s.is_empty() {
                return Ok(Bound::Unbounded);
            }
            let y: i64 = s
                .parse()
                .map_err(|_| SearchError::Query(format!("year {s:?} is not a number")))?;
            Ok(Bound::Included(Term::from_field_i64(self.fields.year, y)))
        };
        let (from, to) = match range.split_once('-') {
            Some((a, b)) => (year(a.trim())?, year(b.trim())?),
            None => (year(range.trim())?, year(range.trim())?),
        };
        Ok(Box::new(tantivy::query::RangeQuery::new(from, to)))
    }

    /// Every term of `field` that starts with `prefix`.
    fn prefix(&self, field: Field, prefix: &str) -> Box<dyn Query> {
        use std::ops::Bound;
        let end = format!("{prefix}\u{10FFFF}");
        Box::new(tantivy::query::RangeQuery::new(
            Bound::Included(Term::from_field_text(field, prefix)),
            Bound::Excluded(Term::from_field_text(field, &end)),
        ))
    }

    fn term(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::WithFreqsAndPositions,
        ))
    }

    fn isbn_query(&self, body: &str) -> Result<Box<dyn Query>, SearchError> {
        let key = isbn_key(body)
            .ok_or_else(|| SearchError::Query(format!("{body:?} is not an ISBN or ISSN")))?;
        Ok(self.term(self.fields.isbn, &key))
    }

    /// Words must all occur; a CJK run is one unigram or a phrase of bigrams.
    fn text_query(&self, field: Field, body: &str) -> Option<Box<dyn Query>> {
        let norm = normalize(body);
        let tokens = tokenize(&norm);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
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
            let query: Box<dyn Query> = match run.as_slice() {
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
fn unscored<K>(docs: Vec<(K, tantivy::DocAddress)>) -> Vec<(f32, tantivy::DocAddress)> {
    docs.into_iter().map(|(_, a)| (0.0, a)).collect()
}

/// Splits a query into parts on spaces, keeping `"quoted phrases"` (and
/// `field:"quoted phrases"`) whole.
fn split_query(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

/// The indexed form of an ISBN (any form, as ISBN-13) or ISSN (8 characters).
fn isbn_key(s: &str) -> Option<String> {
    if let Some(isbn) = Isbn::parse(s) {
        return Some(isbn.as_str().to_owned());
    }
    Issn::parse(s).map(|i| i.as_str().replace('-', ""))
}
