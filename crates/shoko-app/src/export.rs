//! Export of the whole catalogue as ISO 2709 or MARCXML, page by page in id
//! order, so memory stays flat however large the catalogue is.

use std::io::Write;

use shoko_marc::{Format, iso2709, marcxml};
use shoko_store::StoreError;

use crate::App;

/// Records read from the database per page.
const PAGE: u64 = 1000;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Write(#[from] shoko_marc::WriteError),
    /// A stored record could not be read back (see `shoko check`).
    #[error("stored record {id} is not valid ISO 2709: {reason}")]
    Stored {
        /// The record's id.
        id: i64,
        /// What is wrong.
        reason: String,
    },
}

/// Either writer, so one loop serves both formats.
enum Sink<W: Write> {
    Iso(iso2709::Writer<W>),
    Xml(marcxml::Writer<W>),
}

impl<W: Write> Sink<W> {
    fn write(&mut self, record: &shoko_marc::Record) -> Result<(), shoko_marc::WriteError> {
        match self {
            Sink::Iso(w) => w.write(record),
            Sink::Xml(w) => w.write(record),
        }
    }

    fn finish(self) -> Result<(), shoko_marc::WriteError> {
        match self {
            Sink::Iso(w) => w.finish().map(drop),
            Sink::Xml(w) => w.finish().map(drop),
        }
    }
}

impl App {
    /// Writes every record to `out`; returns how many.
    pub async fn export<W: Write>(&self, format: Format, out: W) -> Result<u64, ExportError> {
        let mut sink = match format {
            Format::Iso2709 => Sink::Iso(iso2709::Writer::new(out)),
            Format::MarcXml => Sink::Xml(marcxml::Writer::new(out)),
        };
        let (mut after, mut n) = (0, 0);
        loop {
            let page = self.store.records_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for r in &page {
                let (record, _) = iso2709::parse(&r.marc)
                    .map_err(|reason| ExportError::Stored { id: r.id, reason })?;
                sink.write(&record)?;
                n += 1;
            }
        }
        sink.finish()?;
        Ok(n)
    }
}
