//! Bulk import of MARC files: parse and derive on one thread, write batches on
//! another, one transaction per batch, so two cores are both busy and memory
//! stays bounded (two batches in flight at most).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use shoko_domain::catalogue::summarise;
use shoko_domain::items::items_from_record;
use shoko_marc::{Format, iso2709};
use shoko_store::{ImportRecord, StoreError};
use tokio::sync::mpsc;

use crate::App;

/// How to read the input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Decide per file from its first bytes.
    Auto,
    /// Force one format.
    Exactly(Format),
}

/// A record that was not imported, and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The file.
    pub file: String,
    /// 1-based record number in the file.
    pub number: u64,
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: record {} at byte {}: {}",
            self.file, self.number, self.offset, self.reason
        )
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The import run's id in the database.
    pub run: i64,
    /// New records.
    pub imported: u64,
    /// Records that replaced an earlier import of themselves.
    pub updated: u64,
    /// Records not imported.
    pub rejections: Vec<Rejection>,
    /// Items created.
    pub items_created: u64,
    /// Problems that did not stop a record: file, record number, what.
    pub warnings: Vec<String>,
}

/// Told about progress as the import goes.
pub trait ImportProgress: Send + Sync {
    /// Bytes of input read so far, over all files.
    fn read(&self, _bytes: u64) {}
    /// A batch was committed: records committed so far in this run.
    fn committed(&self, _records: u64) {}
}

/// Reports nothing.
pub struct Silent;
impl ImportProgress for Silent {}

/// Why an import stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file could not be opened or read.
    #[error("{file}: {source}")]
    Input {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// The database refused a batch; every earlier batch is committed.
    #[error("storing a batch failed (earlier batches are committed): {0}")]
    Store(#[from] StoreError),
}

/// What the reading thread sends to the writer.
enum Msg {
    Batch(Vec<ImportRecord>, Vec<String>),
    Rejected(Rejection),
    Failed(ImportError),
}

/// Reads one file and sends batches; returns false when the writer is gone.
fn read_file(
    app: &App,
    path: &Path,
    format: InputFormat,
    tx: &mpsc::Sender<Msg>,
    progress: &dyn ImportProgress,
    bytes_before: u64,
) -> Result<bool, ImportError> {
    let name = path.display().to_string();
    let io = |source| ImportError::Input {
        file: name.clone(),
        source,
    };
    let mut input = BufReader::with_capacity(256 * 1024, File::open(path).map_err(io)?);
    let format = match format {
        InputFormat::Exactly(f) => f,
        InputFormat::Auto => Format::sniff(input.fill_buf().map_err(io)?),
    };
    let settings = &app.settings;
    let batch_size = settings.import_batch_size.clamp(1, 50_000);
    let mut batch = Vec::with_capacity(batch_size);
    let mut warnings = Vec::new();
    for item in shoko_marc::reader(format, input) {
        let read = match item {
            Ok(r) => r,
            Err(shoko_marc::ReadError::Io(e)) => return Err(io(e)),
        };
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                let rejection = Rejection {
                    file: name.clone(),
                    number: e.number,
                    offset: e.offset,
                    reason: e.reason,
                };
                if tx.blocking_send(Msg::Rejected(rejection)).is_err() {
                    return Ok(false);
                }
                continue;
            }
        };
        let mut marc = Vec::with_capacity(1024);
        if let Err(e) = iso2709::encode(&read.record, &mut marc) {
            let rejection = Rejection {
                file: name.clone(),
                number: read.number,
                offset: read.offset,
                reason: e.to_string(),
            };
            if tx.blocking_send(Msg::Rejected(rejection)).is_err() {
                return Ok(false);
            }
            continue;
        }
        for w in &read.warnings {
            warnings.push(format!("{name}: record {}: {w}", read.number));
        }
        let mut items = Vec::new();
        for item in items_from_record(
            &read.record,
            &settings.item_fields,
            &settings.default_item_type,
        ) {
            match item.and_then(|i| settings.check_item(&i).map(|()| i)) {
                Ok(i) => items.push(i),
                Err(w) => {
                    warnings.push(format!("{name}: record {}: {w}; item skipped", read.number))
                }
            }
        }
        batch.push(ImportRecord::new(
            read.number,
            summarise(&read.record),
            marc,
            items,
        ));
        if batch.len() >= batch_size {
            progress.read(bytes_before + read.offset);
            let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
            if tx
                .blocking_send(Msg::Batch(full, std::mem::take(&mut warnings)))
                .is_err()
            {
                return Ok(false);
            }
        }
    }
    if (!batch.is_empty() || !warnings.is_empty())
        && tx.blocking_send(Msg::Batch(batch, warnings)).is_err()
    {
        return Ok(false);
    }
    Ok(true)
}

impl App {
    /// Imports MARC files. Each batch is one transaction; a batch reported to
    /// `progress` as committed survives a crash, and a re-run updates instead
    /// of duplicating. Rejected records are listed with file, record number,
    /// byte offset and reason; they never stop the import.
    pub async fn import_files(
        &self,
        files: &[PathBuf],
        format: InputFormat,
        progress: std::sync::Arc<dyn ImportProgress>,
    ) -> Result<ImportReport, ImportError> {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let run = self
            .store
            .begin_import_run(&names, self.clock.now_ms())
            .await?;
        let mut report = ImportReport {
            run,
            ..ImportReport::default()
        };
        // Two batches in flight: one being written, one being parsed.
        let (tx, mut rx) = mpsc::channel::<Msg>(2);
        let reader_app = self.clone();
        let reader_files = files.to_vec();
        let reader_progress = progress.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut before = 0u64;
            for path in &reader_files {
                match read_file(
                    &reader_app,
                    path,
                    format,
                    &tx,
                    reader_progress.as_ref(),
                    before,
                ) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Msg::Failed(e));
                        return;
                    }
                }
                before += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                reader_progress.read(before);
            }
        });
        let mut committed = 0u64;
        let mut failure = None;
        let (mut waited, mut writing) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        let mut clock = std::time::Instant::now();
        while let Some(msg) = rx.recv().await {
            waited += clock.elapsed();
            match msg {
                Msg::Rejected(r) => report.rejections.push(r),
                Msg::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                Msg::Batch(batch, warnings) => {
                    let size = batch.len() as u64;
                    report.warnings.extend(warnings);
                    let outcome = match self
                        .store
                        .write_import_batch(run, batch, self.clock.now_ms())
                        .await
                    {
                        Ok(o) => o,
                        Err(e) => {
                            failure = Some(e.into());
                            break;
                        }
                    };
                    committed += size;
                    report.imported += outcome.imported;
                    report.updated += outcome.updated;
                    report.items_created += outcome.items_created;
                    report.warnings.extend(
                        outcome
                            .warnings
                            .into_iter()
                            .map(|w| format!("record {}: {}", w.number, w.reason)),
                    );
                    progress.committed(committed);
                }
            }
            writing += clock.elapsed();
            clock = std::time::Instant::now();
        }
        writing = writing.saturating_sub(waited);
        tracing::debug!(
            ?waited,
            ?writing,
            "import: time waiting for parsed batches, and writing them"
        );
        drop(rx);
        // The reader ends on its own once the channel is closed.
        let _ = reader.await;
        if let Some(e) = failure {
            return Err(e);
        }
        self.store
            .finish_import_run(run, report.rejections.len() as u64, self.clock.now_ms())
            .await?;
        Ok(report)
    }
}
