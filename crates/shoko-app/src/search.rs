//! Search: the index kept in step with the catalogue through the outbox, and
//! queries answered with records from the database.
//!
//! The index's commit payload says which outbox row its documents have
//! applied; catching up applies every later row, oldest first, and commits
//! with the new position, so a crash at any point loses nothing (the rows are
//! applied again, and applying a row twice gives the same document).
//!
//! A row for an item's status change alone (a checkout, a return) changes
//! only the record's availability: it goes to the index's shelves in memory,
//! with no commit, and the shelved records are folded into their documents
//! in one commit once there are [`FOLD_RECORDS`] of them or the oldest is
//! [`FOLD_AFTER`] old. Until then the payload stays before them, so a
//! restart reads them again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use shoko_search::{IndexDoc, SearchError, SearchIndex, SearchRequest, Shelf};
use shoko_store::{RecordRow, StoreError, StoredItem};

use crate::App;

/// Shelved records (availability newer than their documents) that make the
/// indexer fold them into their documents: one commit of this many
/// documents instead of one per refresh. A few megabytes of memory.
pub const FOLD_RECORDS: usize = 5_000;

/// How long availability stays shelved at most before it is folded into
/// the documents; also bounds what a restart reads again from the outbox,
/// and how stale availability looks to `shoko search` beside a server.
pub const FOLD_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The current index, swappable while searches run (a rebuild builds a new
/// one beside it and swaps it in).
pub struct SearchHandle {
    current: RwLock<Arc<SearchIndex>>,
    dir: Option<PathBuf>,
    memory: usize,
    /// Outbox rows or records applied per index commit.
    batch: u64,
    /// When shelved availability is folded into the documents: this many
    /// records, or the oldest this old.
    fold: (usize, std::time::Duration),
    /// The last indexing failure, shown in health until a catch-up succeeds.
    last_error: std::sync::Mutex<Option<String>>,
    /// The outbox position searches see, announced after every index commit.
    applied: tokio::sync::watch::Sender<i64>,
}

/// Why search or indexing failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file system operation on the index directory failed.
    #[error("index directory: {0}")]
    Io(#[from] std::io::Error),
}

impl SearchHandle {
    /// Opens the index in `dir` (a new one in memory when `None`). A missing
    /// directory gives an empty index; one that cannot be opened is moved
    /// aside and replaced by an empty one, which the next catch-up rebuilds.
    /// An index whose writer another process holds is left alone
    /// ([`SearchError::InUse`]).
    pub fn open(dir: Option<&Path>, memory: usize) -> Result<SearchHandle, IndexError> {
        let index = match dir {
            None => SearchIndex::in_memory()?,
            Some(d) => match SearchIndex::open(d, memory) {
                Ok(i) => i,
                // Held by a running server: not ours to touch.
                Err(SearchError::InUse) => return Err(SearchError::InUse.into()),
                Err(e) => {
                    let aside = d.with_extension(format!("corrupt-{}", std::process::id()));
                    tracing::error!(error = %e, dir = %d.display(), aside = %aside.display(),
                        "search index cannot be opened; moved aside, rebuilding");
                    std::fs::rename(d, &aside)?;
                    SearchIndex::open(d, memory)?
                }
            },
        };
        let applied = tokio::sync::watch::Sender::new(index.applied_outbox_id());
        Ok(SearchHandle {
            current: RwLock::new(Arc::new(index)),
            dir: dir.map(Path::to_path_buf),
            memory,
            batch: 2000,
            fold: (FOLD_RECORDS, FOLD_AFTER),
            last_error: std::sync::Mutex::new(None),
            applied,
        })
    }

    /// Whether the index lives in a directory (not in memory).
    pub fn on_disk(&self) -> bool {
        self.dir.is_some()
    }

    /// Opens an existing index for searching only.
    pub fn open_read_only(dir: &Path) -> Result<SearchHandle, IndexError> {
        if !dir.exists() {
            return Err(IndexError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no search index at {}", dir.display()),
            )));
        }
        let index = SearchIndex::open_read_only(dir)?;
        let applied = tokio::sync::watch::Sender::new(index.applied_outbox_id());
        Ok(SearchHandle {
            current: RwLock::new(Arc::new(index)),
            dir: Some(dir.to_path_buf()),
            memory: 0,
            batch: 2000,
            fold: (FOLD_RECORDS, FOLD_AFTER),
            last_error: std::sync::Mutex::new(None),
            applied,
        })
    }

    /// Sets how many outbox rows or records each index commit applies.
    pub fn with_batch(mut self, batch: u64) -> SearchHandle {
        self.batch = batch.max(1);
        self
    }

    /// Sets when shelved availability is folded into the documents (see
    /// [`FOLD_RECORDS`], [`FOLD_AFTER`]).
    pub fn with_fold(mut self, records: usize, after: std::time::Duration) -> SearchHandle {
        self.fold = (records.max(1), after);
        self
    }

    /// The index searches use now.
    pub fn get(&self) -> Arc<SearchIndex> {
        self.current
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }
}

/// Index lag, for health and the operations page.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    /// The last outbox row applied.
    pub applied: i64,
    /// The newest outbox row.
    pub latest: i64,
    /// Rows not yet applied.
    pub lag_rows: i64,
    /// Age in seconds of the oldest change not yet applied (0 when none).
    pub lag_seconds: f64,
    /// Records in the index.
    pub documents: u64,
    /// Records whose availability changed since their documents were
    /// written: searches see it from memory until it is folded in.
    pub shelved: usize,
    /// The last indexing failure, if the latest attempt failed.
    pub last_error: Option<String>,
}

/// Where `shoko reindex` leaves an index for a running server to swap in.
fn next_dir(index_dir: &Path) -> PathBuf {
    index_dir.with_extension("next")
}

/// One hit as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// Record id.
    pub id: i64,
    /// 001.
    pub control_number: Option<String>,
    /// Title.
    pub title: String,
    /// Title reading.
    pub title_reading: String,
    /// Names.
    pub authors: Vec<String>,
    /// Year.
    pub year: Option<i32>,
    /// Per campus: items on the shelf and items in all.
    pub availability: Vec<CampusAvailability>,
    /// Field (`title`, `authors`, `subjects`) → its text, HTML-escaped, with
    /// the matches in `<mark>`; only fields that matched.
    pub highlights: BTreeMap<String, String>,
}

/// Availability at one campus.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CampusAvailability {
    /// Campus code.
    pub campus: String,
    /// Items available.
    pub available: u32,
    /// Items held.
    pub total: u32,
}

/// A page of search results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    /// All matching records.
    pub total: usize,
    /// This page.
    pub hits: Vec<SearchHit>,
    /// Facet → values with counts.
    pub facets: BTreeMap<String, Vec<FacetValue>>,
}

/// One facet value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FacetValue {
    /// The value.
    pub value: String,
    /// Matching records with it.
    pub count: u64,
}

/// What a hit shows, stored in the index beside the document so a page of
/// hits is answered from the index alone.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Display {
    control_number: Option<String>,
    title: String,
    title_reading: String,
    authors: Vec<String>,
    subjects: Vec<String>,
    year: Option<i32>,
    availability: Vec<CampusAvailability>,
}

fn display_of(r: &RecordRow, items: &[&StoredItem]) -> Display {
    let mut per_campus: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for i in items {
        let e = per_campus.entry(i.campus.clone()).or_default();
        e.1 += 1;
        if i.status == "available" {
            e.0 += 1;
        }
    }
    Display {
        control_number: r.control_number.clone(),
        title: r.title.clone(),
        title_reading: r.title_reading.clone(),
        authors: r.authors.clone(),
        subjects: r.subjects.clone(),
        year: r.year,
        availability: per_campus
            .into_iter()
            .map(|(campus, (available, total))| CampusAvailability {
                campus,
                available,
                total,
            })
            .collect(),
    }
}

/// A hit as the API shows it, with the query's matches marked.
fn hit_of(id: i64, d: Display, marks: &[String]) -> SearchHit {
    let mut highlights = BTreeMap::new();
    if let Some(h) = shoko_text::highlight(&d.title, marks) {
        highlights.insert("title".to_owned(), h);
    }
    for (name, list) in [("authors", &d.authors), ("subjects", &d.subjects)] {
        let marked: Vec<String> = list
            .iter()
            .filter_map(|v| shoko_text::highlight(v, marks))
            .collect();
        if !marked.is_empty() {
            highlights.insert(name.to_owned(), marked.join("; "));
        }
    }
    SearchHit {
        id,
        control_number: d.control_number,
        title: d.title,
        title_reading: d.title_reading,
        authors: d.authors,
        year: d.year,
        availability: d.availability,
        highlights,
    }
}

fn to_doc(r: &RecordRow, items: &[&StoredItem]) -> IndexDoc {
    let campuses: BTreeSet<String> = items.iter().map(|i| i.campus.clone()).collect();
    IndexDoc {
        id: r.id as u64,
        title: r.title.clone(),
        title_reading: r.title_reading.clone(),
        authors: r.authors.clone(),
        subjects: r.subjects.clone(),
        isbns: r.isbns.clone(),
        issns: r.issns.clone(),
        publisher: r.publisher.clone(),
        year: r.year,
        language: r.language.clone(),
        format: r.format.clone(),
        campuses: campuses.into_iter().collect(),
        call_numbers: items.iter().filter_map(|i| i.call_number.clone()).collect(),
        available: items.iter().any(|i| i.status == "available"),
        display: serde_json::to_string(&display_of(r, items))
            .ok()
            .map(Arc::from),
    }
}

impl App {
    /// Documents for these records; `None` for a record that no longer exists.
    async fn docs_for(&self, ids: &[i64]) -> Result<Vec<(u64, Option<IndexDoc>)>, IndexError> {
        let records = self.store.record_summaries(ids).await?;
        let items = self.store.items_of_records(ids).await?;
        let mut by_record: HashMap<i64, Vec<&StoredItem>> = HashMap::new();
        for i in &items {
            by_record.entry(i.record_id).or_default().push(i);
        }
        let found: HashMap<i64, &RecordRow> = records.iter().map(|r| (r.id, r)).collect();
        Ok(ids
            .iter()
            .map(|id| {
                let doc = found
                    .get(id)
                    .map(|r| to_doc(r, by_record.get(id).map(Vec::as_slice).unwrap_or(&[])));
                (*id as u64, doc)
            })
            .collect())
    }

    /// Applies every outbox row the index has not seen; returns how many.
    /// A new, empty index is built from the records instead.
    pub async fn index_catch_up(&self) -> Result<u64, IndexError> {
        let index = self.search.get();
        let mut applied = index.applied_outbox_id();
        if applied == 0
            && index.num_docs() == 0
            && let Some((head, _)) = self.store.outbox_head().await?
        {
            // A new or lost index: build it whole, beside, and swap it in.
            self.rebuild(&|_| {}).await?;
            return Ok(head as u64);
        }
        let mut total = 0;
        loop {
            let rows = self.store.outbox_after(applied, self.search.batch).await?;
            let Some(last) = rows.last().map(|r| r.id) else {
                break;
            };
            let mut whole: BTreeSet<i64> = BTreeSet::new();
            let mut status: BTreeSet<i64> = BTreeSet::new();
            for r in &rows {
                if r.status_only {
                    status.insert(r.record_id);
                } else {
                    whole.insert(r.record_id);
                }
            }
            let (shelved, since) = index.shelved();
            let (fold_records, fold_after) = self.search.fold;
            let fold = shelved + status.len() >= fold_records
                || since.is_some_and(|t| t.elapsed() >= fold_after);
            if fold {
                whole.extend(index.shelved_ids().into_iter().map(|id| id as i64));
                whole.append(&mut status);
            }
            status.retain(|id| !whole.contains(id));
            let mut changes = Vec::with_capacity(whole.len());
            for chunk in whole
                .into_iter()
                .collect::<Vec<_>>()
                .chunks(self.search.batch as usize)
            {
                changes.extend(self.docs_for(chunk).await?);
            }
            let mut shelves = Vec::with_capacity(status.len());
            for (id, doc) in self
                .docs_for(&status.into_iter().collect::<Vec<_>>())
                .await?
            {
                match doc {
                    Some(d) => shelves.push((
                        id,
                        Shelf {
                            available: d.available,
                            display: d.display,
                        },
                    )),
                    // Deleted since: its document goes.
                    None => changes.push((id, None)),
                }
            }
            let (documents, shelved) = (changes.len(), shelves.len());
            // Off the runtime's threads: a commit takes milliseconds that
            // desks and searches would otherwise wait behind.
            let writing = Arc::clone(&index);
            tokio::task::spawn_blocking(move || writing.apply(changes, shelves, last))
                .await
                .map_err(|e| SearchError::Internal(format!("indexing stopped: {e}")))??;
            self.search.applied.send_replace(last);
            total += rows.len() as u64;
            applied = last;
            if documents > 0 {
                tracing::info!(
                    applied,
                    rows = total,
                    documents,
                    folded = fold,
                    "search index: changes applied"
                );
            } else {
                // Availability alone, every refresh at a busy desk.
                tracing::debug!(applied, shelved, "search index: availability shelved");
            }
        }
        Ok(total)
    }

    /// Indexes every record into `index`, recording `head` as applied.
    async fn build_into(
        &self,
        index: &SearchIndex,
        head: i64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, IndexError> {
        let (mut after, mut n) = (0, 0u64);
        loop {
            let ids = self
                .store
                .record_ids_after(after, self.search.batch)
                .await?;
            let Some(&last) = ids.last() else { break };
            after = last;
            let changes = self.docs_for(&ids).await?;
            n += changes.len() as u64;
            // One commit at the end: a crash mid-build leaves no position,
            // so the build starts again rather than trusting a partial index.
            index.stage(changes)?;
            tracing::info!(records = n, "search index: records indexed");
            progress(n);
        }
        index.commit(head)?;
        Ok(n)
    }

    /// Rebuilds the index from the database beside the current one, then
    /// swaps it in; searches use the old index until the swap.
    pub async fn reindex(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<u64, IndexError> {
        let n = self.rebuild(progress).await?;
        // Changes made while the rebuild ran are in the outbox after its head.
        self.index_catch_up().await?;
        Ok(n)
    }

    /// Builds a whole index beside the current one, compacts it to one
    /// segment, and swaps it in.
    async fn rebuild(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<u64, IndexError> {
        let handle = &self.search;
        match &handle.dir {
            None => {
                let head = self.store.outbox_head().await?.map_or(0, |h| h.0);
                let fresh = SearchIndex::in_memory()?;
                let n = self.build_into(&fresh, head, progress).await?;
                let fresh = fresh.compact()?;
                if let Ok(mut cur) = handle.current.write() {
                    *cur = Arc::new(fresh);
                }
                handle.applied.send_replace(head);
                Ok(n)
            }
            Some(d) => {
                let building = d.with_extension("building");
                let n = self.build_at(&building, progress).await?;
                self.swap_in(&building)?;
                Ok(n)
            }
        }
    }

    /// Builds a whole index from the database in `dir` (replacing whatever
    /// is there) and compacts it; returns how many records it holds.
    async fn build_at(
        &self,
        dir: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, IndexError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let head = self.store.outbox_head().await?.map_or(0, |h| h.0);
        let fresh = SearchIndex::open_for_build(dir, self.search.memory)?;
        let n = self.build_into(&fresh, head, progress).await?;
        drop(fresh.compact()?);
        Ok(n)
    }

    /// Builds a new index for the server that holds `index_dir`, and leaves
    /// it beside as `index.next`; the server swaps it in at its next indexer
    /// round, searches using the old index until then. For `shoko reindex`
    /// while `shoko serve` runs.
    pub async fn build_for_running_server(
        &self,
        index_dir: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, IndexError> {
        let building = index_dir.with_extension("building-cli");
        let n = self.build_at(&building, progress).await?;
        let next = next_dir(index_dir);
        if next.exists() {
            std::fs::remove_dir_all(&next)?;
        }
        std::fs::rename(&building, &next)?;
        Ok(n)
    }

    /// Replaces the current index by the finished one in `ready`: searches
    /// move to it at once, and the old one is removed.
    fn swap_in(&self, ready: &Path) -> Result<(), IndexError> {
        let handle = &self.search;
        let Some(d) = &handle.dir else {
            return Ok(());
        };
        let old = d.with_extension("old");
        let mut cur = handle.current.write().unwrap_or_else(|p| p.into_inner());
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        if d.exists() {
            std::fs::rename(d, &old)?;
        }
        std::fs::rename(ready, d)?;
        let index = SearchIndex::open(d, handle.memory)?;
        let applied = index.applied_outbox_id();
        *cur = Arc::new(index);
        drop(cur);
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        handle.applied.send_replace(applied);
        Ok(())
    }

    /// Swaps in an index that `shoko reindex` built beside this server, if any.
    fn take_next_index(&self) -> Result<bool, IndexError> {
        let Some(d) = &self.search.dir else {
            return Ok(false);
        };
        let next = next_dir(d);
        if !next.exists() {
            return Ok(false);
        }
        self.swap_in(&next)?;
        tracing::info!("swapped in the index built by `shoko reindex`");
        Ok(true)
    }

    /// Waits until searches see every change up to outbox row `outbox_id`,
    /// at most `timeout`; tells whether they do. A page that has just saved
    /// a change can wait for it to be searchable instead of guessing.
    pub async fn wait_until_indexed(&self, outbox_id: i64, timeout: std::time::Duration) -> bool {
        let mut rx = self.search.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|&applied| applied >= outbox_id))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How far behind the catalogue the index is.
    pub async fn index_status(&self) -> Result<IndexStatus, IndexError> {
        let index = self.search.get();
        let applied = index.applied_outbox_id();
        let (latest, _) = self.store.outbox_head().await?.unwrap_or((0, 0));
        let lag_seconds = match self.store.outbox_after(applied, 1).await?.first() {
            Some(row) => ((self.clock.now_ms() - row.created_at).max(0) as f64) / 1000.0,
            None => 0.0,
        };
        Ok(IndexStatus {
            applied,
            latest,
            lag_rows: (latest - applied).max(0),
            lag_seconds,
            documents: index.num_docs(),
            shelved: index.shelved().0,
            last_error: self.search.last_error.lock().ok().and_then(|e| e.clone()),
        })
    }

    /// Keeps the index in step until `stop` says so: catches up at once, then
    /// every `every` (see [`App::index_round`]).
    pub async fn index_forever(
        &self,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.index_round().await;
        }
    }

    /// One round of the indexer: catches up, and records the outcome for
    /// health. A failure is logged and shown in health, and retried on the
    /// next round; nothing is skipped, since the position only moves on
    /// success (a record that cannot be indexed holds the index back, and
    /// health names it, until the record is repaired).
    pub async fn index_round(&self) {
        let outcome = match self.take_next_index() {
            Ok(_) => self.index_catch_up().await,
            Err(e) => Err(e),
        };
        let mut last = self
            .search
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(n) => {
                if last.take().is_some() {
                    tracing::info!("indexing works again");
                }
                if n > 0 {
                    tracing::debug!(rows = n, "index caught up");
                }
            }
            Err(e) => {
                if last.as_deref() != Some(e.to_string().as_str()) {
                    tracing::error!(error = %e, "indexing failed; retrying until it succeeds");
                }
                *last = Some(e.to_string());
            }
        }
    }

    /// Runs a search and fills the hits from the database.
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchPage, IndexError> {
        let index = self.search.get();
        let request = req.clone();
        let result = tokio::task::spawn_blocking(move || index.search(&request))
            .await
            .map_err(|e| {
                IndexError::Search(SearchError::Internal(format!("search task: {e}")))
            })??;
        let mut marks = Vec::new();
        if let Ok(q) = shoko_search::parse_query(&req.query) {
            q.highlight_texts(&mut marks);
        }
        // Hits come from the index; a document indexed before it carried its
        // display (an index from an older release) is read from the database.
        let mut shown: HashMap<i64, Display> = HashMap::new();
        let mut missing = Vec::new();
        for h in &result.hits {
            match h
                .display
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
            {
                Some(d) => {
                    shown.insert(h.id as i64, d);
                }
                None => missing.push(h.id as i64),
            }
        }
        if !missing.is_empty() {
            let records = self.store.record_summaries(&missing).await?;
            let items = self.store.items_of_records(&missing).await?;
            for r in &records {
                let mine: Vec<&StoredItem> = items.iter().filter(|i| i.record_id == r.id).collect();
                shown.insert(r.id, display_of(r, &mine));
            }
        }
        let hits = result
            .hits
            .iter()
            .filter_map(|h| {
                let id = h.id as i64;
                shown.remove(&id).map(|d| hit_of(id, d, &marks))
            })
            .collect();
        let facets = result
            .facets
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.into_iter()
                        .map(|(value, count)| FacetValue { value, count })
                        .collect(),
                )
            })
            .collect();
        Ok(SearchPage {
            total: result.total,
            hits,
            facets,
        })
    }
}
