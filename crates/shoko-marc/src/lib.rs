//! MARC 21 records in memory, and the readers and writers for ISO 2709 and MARCXML.
//!
//! A [`Record`] always holds Unicode text: MARC-8 input is decoded on the way in
//! (see [`marc8`]) and every writer emits UTF-8 (leader/09 = `a`). Readers are
//! streaming iterators that keep one record in memory at a time and never give up
//! on a file because of one bad record: each bad record becomes a
//! [`RecordError`] naming its number and byte offset, and reading resumes at the
//! next record.

pub mod iso2709;
pub mod marc8;
pub mod marcxml;

use std::fmt;

/// The record terminator of ISO 2709.
pub const RECORD_TERMINATOR: u8 = 0x1D;
/// The field terminator of ISO 2709.
pub const FIELD_TERMINATOR: u8 = 0x1E;
/// The subfield delimiter of ISO 2709.
pub const SUBFIELD_DELIMITER: u8 = 0x1F;

/// A three-character field tag such as `245`. Usually digits; some local
/// systems use letters, which MARC 21 allows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag([u8; 3]);

impl Tag {
    /// Builds a tag from three printable ASCII bytes.
    pub fn new(bytes: [u8; 3]) -> Option<Tag> {
        bytes
            .iter()
            .all(|b| b.is_ascii_graphic())
            .then_some(Tag(bytes))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a tag holds only ASCII bytes")
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 3] {
        &self.0
    }

    /// Control fields (00X) have no indicators and no subfields.
    pub fn is_control(&self) -> bool {
        self.0[0] == b'0' && self.0[1] == b'0'
    }
}

impl std::str::FromStr for Tag {
    type Err = String;
    fn from_str(s: &str) -> Result<Tag, String> {
        let bytes: [u8; 3] = s
            .as_bytes()
            .try_into()
            .map_err(|_| format!("tag {s:?} is not three characters"))?;
        Tag::new(bytes).ok_or_else(|| format!("tag {s:?} is not printable ASCII"))
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One subfield: a one-character code and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subfield {
    /// The subfield code, e.g. `a`.
    pub code: char,
    /// The text, in Unicode.
    pub value: String,
}

/// A variable field: a control field (00X) or a data field with indicators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// 001–009: a tag and a value.
    Control {
        /// The field tag.
        tag: Tag,
        /// The whole value, in Unicode.
        value: String,
    },
    /// 010–999 (and local alphabetic tags): indicators and subfields.
    Data {
        /// The field tag.
        tag: Tag,
        /// First indicator.
        ind1: char,
        /// Second indicator.
        ind2: char,
        /// Subfields in their order.
        subfields: Vec<Subfield>,
    },
}

impl Field {
    /// The field's tag.
    pub fn tag(&self) -> Tag {
        match self {
            Field::Control { tag, .. } | Field::Data { tag, .. } => *tag,
        }
    }

    /// Subfields of a data field (none for a control field).
    pub fn subfields(&self) -> &[Subfield] {
        match self {
            Field::Control { .. } => &[],
            Field::Data { subfields, .. } => subfields,
        }
    }

    /// The values of every subfield with this code, in order.
    pub fn subfield_values(&self, code: char) -> impl Iterator<Item = &str> {
        self.subfields()
            .iter()
            .filter(move |s| s.code == code)
            .map(|s| s.value.as_str())
    }

    /// The first subfield with this code.
    pub fn first(&self, code: char) -> Option<&str> {
        self.subfield_values(code).next()
    }

    /// Indicators of a data field.
    pub fn indicators(&self) -> Option<(char, char)> {
        match self {
            Field::Control { .. } => None,
            Field::Data { ind1, ind2, .. } => Some((*ind1, *ind2)),
        }
    }
}

/// A bibliographic (or other) MARC record: the 24-character leader and the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The leader. Positions 00–04 and 12–16 are recomputed by writers; 09 is
    /// always `a` (Unicode) once the record is in memory.
    pub leader: [u8; 24],
    /// Fields in record order.
    pub fields: Vec<Field>,
}

impl Record {
    /// An empty record with a default bibliographic leader (language material, monograph).
    pub fn new() -> Record {
        Record {
            leader: *b"00000nam a2200000   4500",
            fields: Vec::new(),
        }
    }

    /// The leader as text.
    pub fn leader_str(&self) -> String {
        String::from_utf8_lossy(&self.leader).into_owned()
    }

    /// Every field with this tag.
    pub fn fields_with<'a>(&'a self, tag: &str) -> impl Iterator<Item = &'a Field> + use<'a> {
        let tag: Option<[u8; 3]> = tag.as_bytes().try_into().ok();
        self.fields
            .iter()
            .filter(move |f| Some(*f.tag().as_bytes()) == tag)
    }

    /// The first field with this tag.
    pub fn field<'a>(&'a self, tag: &str) -> Option<&'a Field> {
        self.fields_with(tag).next()
    }

    /// The value of the first control field with this tag.
    pub fn control<'a>(&'a self, tag: &str) -> Option<&'a str> {
        self.fields_with(tag).find_map(|f| match f {
            Field::Control { value, .. } => Some(value.as_str()),
            Field::Data { .. } => None,
        })
    }
}

impl Default for Record {
    fn default() -> Self {
        Record::new()
    }
}

/// A record read from a file, with where it was and anything worth a warning.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    /// The record.
    pub record: Record,
    /// 1-based position of the record in its file.
    pub number: u64,
    /// Byte offset of the record's first byte in its file.
    pub offset: u64,
    /// Problems that did not stop the record from being read (an unmappable
    /// MARC-8 character, a guessed character set).
    pub warnings: Vec<String>,
}

/// A record that could not be read, and where it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record {number} at byte {offset}: {reason}")]
pub struct RecordError {
    /// 1-based position of the record in its file.
    pub number: u64,
    /// Byte offset of the record's first byte in its file.
    pub offset: u64,
    /// What is wrong, for a person.
    pub reason: String,
}

/// What a reader yields for each record: the record, or why it was rejected.
pub type ReadResult = Result<ReadRecord, RecordError>;

/// A problem that stops a whole file from being read (the file cannot be read
/// at all); per-record problems are [`RecordError`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying reader failed.
    #[error("cannot read input: {0}")]
    Io(#[from] std::io::Error),
}

/// A record that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// ISO 2709 limits a record to 99,999 bytes and a field to 9,999.
    #[error("record too long for ISO 2709: {what}")]
    TooLong {
        /// Which limit was passed.
        what: String,
    },
    /// ISO 2709 indicators and subfield codes are single ASCII bytes, and
    /// 00X tags are control fields; MARCXML can say more.
    #[error("cannot be written as ISO 2709: {what}")]
    NotRepresentable {
        /// The field and the character.
        what: String,
    },
    /// The underlying writer failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// The two serialisations Shoko reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ISO 2709 ("MARC communications format", `.mrc`).
    Iso2709,
    /// MARCXML (the Library of Congress slim schema).
    MarcXml,
}

impl Format {
    /// Guesses the format from the first bytes of a file: XML starts with `<`
    /// (after an optional byte-order mark and whitespace).
    pub fn sniff(head: &[u8]) -> Format {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Format::MarcXml,
            _ => Format::Iso2709,
        }
    }
}

/// Reads records of either format from a buffered reader.
pub fn reader<R: std::io::BufRead + 'static>(
    format: Format,
    input: R,
) -> Box<dyn Iterator<Item = Result<ReadResult, ReadError>>> {
    match format {
        Format::Iso2709 => Box::new(iso2709::Reader::new(input)),
        Format::MarcXml => Box::new(marcxml::Reader::new(input)),
    }
}
