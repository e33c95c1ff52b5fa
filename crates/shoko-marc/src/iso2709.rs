//! ISO 2709 ("MARC communications format"): a streaming, lenient reader and a writer.
//!
//! The reader splits the input on record terminators (0x1D), so a record whose
//! leader or directory is wrong costs only that record: the next one starts
//! after the terminator. It keeps one record in memory at a time.

use std::io::{BufRead, Write};

use crate::{
    FIELD_TERMINATOR, Field, RECORD_TERMINATOR, ReadError, ReadRecord, ReadResult, Record,
    RecordError, SUBFIELD_DELIMITER, Subfield, Tag, WriteError, marc8,
};

/// Reads ISO 2709 records one at a time.
pub struct Reader<R> {
    input: R,
    buf: Vec<u8>,
    /// Byte offset of the next unread byte.
    pos: u64,
    /// Number of the last record returned (good or bad).
    number: u64,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// Wraps a buffered input.
    pub fn new(input: R) -> Reader<R> {
        Reader {
            input,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
            number: 0,
            done: false,
        }
    }
}

/// Bytes that some systems leave between or after records (line ends, a DOS
/// end-of-file mark, padding); they are not records.
fn is_filler(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | b' ' | b'\t' | 0x1A | 0x00)
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<ReadResult, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        let n = match self.input.read_until(RECORD_TERMINATOR, &mut self.buf) {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Some(Err(e.into()));
            }
        };
        if n == 0 {
            self.done = true;
            return None;
        }
        let skip = self.buf.iter().take_while(|&&b| is_filler(b)).count();
        let offset = self.pos + skip as u64;
        self.pos += n as u64;
        let chunk = &self.buf[skip..];
        if chunk.is_empty() {
            self.done = true;
            return None;
        }
        self.number += 1;
        let number = self.number;
        let fail = |reason: String| {
            Some(Ok(Err(RecordError {
                number,
                offset,
                reason,
            })))
        };
        if chunk.last() != Some(&RECORD_TERMINATOR) {
            self.done = true;
            return fail(format!(
                "the file ends inside this record ({} bytes, no record terminator): truncated?",
                chunk.len()
            ));
        }
        Some(Ok(parse(chunk).map_or_else(
            |reason| {
                Err(RecordError {
                    number,
                    offset,
                    reason,
                })
            },
            |(record, warnings)| {
                Ok(ReadRecord {
                    record,
                    number,
                    offset,
                    warnings,
                })
            },
        )))
    }
}

fn digits(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0usize, |acc, &b| acc * 10 + usize::from(b - b'0')),
    )
}

/// How the bytes of a record's fields are to be turned into text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Marc8,
}

/// Parses one record, terminator included. Errors are for a person to read.
pub fn parse(chunk: &[u8]) -> Result<(Record, Vec<String>), String> {
    let mut warnings = Vec::new();
    if chunk.len() < 25 {
        return Err(format!(
            "only {} bytes: shorter than a leader (24 bytes) and a terminator",
            chunk.len()
        ));
    }
    let mut leader: [u8; 24] = chunk[..24].try_into().expect("checked length above");
    if let Some(p) = leader
        .iter()
        .position(|b| !b.is_ascii() || b.is_ascii_control())
    {
        return Err(format!(
            "leader/{p:02} is byte 0x{:02X}: a leader is printable ASCII",
            leader[p]
        ));
    }
    match digits(&leader[0..5]) {
        None => {
            return Err(format!(
                "leader/00-04 (record length) is {:?}, not a number",
                String::from_utf8_lossy(&leader[0..5])
            ));
        }
        Some(declared) if declared != chunk.len() => warnings.push(format!(
            "leader says the record is {declared} bytes; its terminator is at byte {}",
            chunk.len()
        )),
        Some(_) => {}
    }
    let base = digits(&leader[12..17]).ok_or_else(|| {
        format!(
            "leader/12-16 (base address of data) is {:?}, not a number",
            String::from_utf8_lossy(&leader[12..17])
        )
    })?;
    if base < 25 || base > chunk.len() || chunk[base - 1] != FIELD_TERMINATOR {
        return Err(format!(
            "leader/12-16 says data starts at byte {base}, but the directory does not end there"
        ));
    }
    let directory = &chunk[24..base - 1];
    if !directory.len().is_multiple_of(12) {
        return Err(format!(
            "directory is {} bytes, not a multiple of 12",
            directory.len()
        ));
    }
    let mut charset = if leader[9] == b'a' {
        Charset::Utf8
    } else {
        Charset::Marc8
    };
    if charset == Charset::Marc8 && !chunk.is_ascii() && std::str::from_utf8(chunk).is_ok() {
        // ANSEL diacritics (0xE0–0xFE) are followed by ASCII letters, which is
        // never valid UTF-8; a record that is valid UTF-8 with non-ASCII bytes
        // is UTF-8 whatever leader/09 says.
        warnings.push("leader/09 says MARC-8 but the record is valid UTF-8: read as UTF-8".into());
        charset = Charset::Utf8;
    }
    let indicator_count = match leader[10] {
        b'2' => 2,
        c @ b'0'..=b'9' => {
            warnings.push(format!(
                "leader/10 says {} indicators; MARC 21 has 2",
                c as char
            ));
            usize::from(c - b'0')
        }
        _ => 2,
    };
    let data = &chunk[base..chunk.len() - 1];
    let data_text = match charset {
        Charset::Utf8 => std::str::from_utf8(data).ok(),
        Charset::Marc8 => None,
    };
    let mut fields = Vec::with_capacity(directory.len() / 12);
    for (n, entry) in directory.chunks_exact(12).enumerate() {
        let tag = Tag::new(entry[0..3].try_into().expect("12-byte entry")).ok_or_else(|| {
            format!(
                "directory entry {}: tag {:?} is not printable",
                n + 1,
                &entry[0..3]
            )
        })?;
        let (Some(len), Some(start)) = (digits(&entry[3..7]), digits(&entry[7..12])) else {
            return Err(format!(
                "directory entry {} (tag {tag}): length or start {:?} is not a number",
                n + 1,
                String::from_utf8_lossy(&entry[3..12])
            ));
        };
        let bytes = data.get(start..start + len).ok_or_else(|| {
            format!(
                "field {tag}: bytes {start}..{} lie outside the record",
                start + len
            )
        })?;
        let Some((&FIELD_TERMINATOR, content)) = bytes.split_last() else {
            return Err(format!(
                "field {tag} (directory entry {}): no field terminator at its end",
                n + 1
            ));
        };
        let checked = data_text.and_then(|t| t.get(start..start + content.len()));
        fields.push(parse_field(
            tag,
            content,
            checked,
            charset,
            indicator_count,
            &mut warnings,
        )?);
    }
    leader[9] = b'a';
    Ok((Record { leader, fields }, warnings))
}

/// Turns field bytes into text. `checked` is the same bytes as text when the
/// whole record was already validated as UTF-8 (one pass instead of one per field).
fn decode<'a>(
    tag: Tag,
    bytes: &'a [u8],
    checked: Option<&'a str>,
    charset: Charset,
    warnings: &mut Vec<String>,
) -> Result<std::borrow::Cow<'a, str>, String> {
    if let Some(text) = checked {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(std::borrow::Cow::Borrowed(s)),
            Err(e) => Err(format!(
                "field {tag}: invalid UTF-8 at byte {} of the field",
                e.valid_up_to()
            )),
        },
        Charset::Marc8 => {
            let d = marc8::decode(bytes);
            warnings.extend(
                d.warnings
                    .into_iter()
                    .map(|w| format!("field {tag}: MARC-8 {w}")),
            );
            Ok(std::borrow::Cow::Owned(d.text))
        }
    }
}

fn parse_field(
    tag: Tag,
    content: &[u8],
    checked: Option<&str>,
    charset: Charset,
    indicator_count: usize,
    warnings: &mut Vec<String>,
) -> Result<Field, String> {
    if tag.is_control() {
        return Ok(Field::Control {
            tag,
            value: decode(tag, content, checked, charset, warnings)?.into_owned(),
        });
    }
    let Some((indicators, rest)) = content.split_at_checked(indicator_count) else {
        return Err(format!(
            "field {tag}: shorter than its {indicator_count} indicators"
        ));
    };
    let mut ind = [' ', ' '];
    for (k, &b) in indicators.iter().enumerate() {
        if !(b.is_ascii_graphic() || b == b' ') {
            return Err(format!(
                "field {tag}: indicator {} is byte 0x{b:02X}, not a printable ASCII character",
                k + 1
            ));
        }
        match ind.get_mut(k) {
            Some(slot) => *slot = b as char,
            None => warnings.push(format!(
                "field {tag}: extra indicator {:?} dropped",
                b as char
            )),
        }
    }
    for (k, c) in ind.iter().enumerate() {
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == ' ') {
            warnings.push(format!(
                "field {tag}: indicator {} is {c:?}, not a MARC 21 value",
                k + 1
            ));
        }
    }
    // Decode the whole field at once: MARC-8 escapes may carry across subfields.
    let checked_rest = checked.and_then(|t| t.get(indicators.len()..));
    let text = decode(tag, rest, checked_rest, charset, warnings)?;
    // Split on the delimiter byte: ASCII, so every cut is a char boundary
    // and each piece can be sliced from the text without validating again.
    let base = text.as_ptr() as usize;
    let mut pieces = text
        .as_bytes()
        .split(|&b| b == SUBFIELD_DELIMITER)
        .map(|p| {
            let start = p.as_ptr() as usize - base;
            &text[start..start + p.len()]
        });
    let before = pieces.next().unwrap_or_default();
    if !before.is_empty() {
        warnings.push(format!(
            "field {tag}: {before:?} between the indicators and the first subfield dropped"
        ));
    }
    let parts = pieces;
    let mut subfields: Vec<Subfield> = Vec::with_capacity(4);
    for (k, part) in parts.enumerate() {
        let mut chars = part.chars();
        let Some(code) = chars.next() else {
            warnings.push(format!("field {tag}: empty subfield {} dropped", k + 1));
            continue;
        };
        if !code.is_ascii_graphic() {
            // A delimiter byte inside text (seen in EACC data, where it stands
            // in for punctuation): keep the text in the subfield it interrupts.
            let Some(previous) = subfields.last_mut() else {
                return Err(format!(
                    "field {tag}: subfield {} has code {code:?}, not a letter or digit",
                    k + 1
                ));
            };
            warnings.push(format!(
                "field {tag}: stray subfield delimiter before {code:?} dropped; text kept in ${}",
                previous.code
            ));
            previous.value.push_str(part);
            continue;
        }
        subfields.push(Subfield {
            code,
            value: chars.as_str().to_owned(),
        });
    }
    Ok(Field::Data {
        tag,
        ind1: ind[0],
        ind2: ind[1],
        subfields,
    })
}

/// Appends one record in ISO 2709, UTF-8 (leader/09 = `a`), to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), WriteError> {
    for field in &record.fields {
        if matches!(field, Field::Data { .. }) && field.tag().is_control() {
            return Err(WriteError::NotRepresentable {
                what: format!("data field with control-field tag {}", field.tag()),
            });
        }
        let codes = field.subfields().iter().map(|s| s.code);
        let inds = field
            .indicators()
            .map(|(a, b)| [a, b])
            .into_iter()
            .flatten();
        if let Some(c) = inds
            .chain(codes)
            .find(|c| !(c.is_ascii_graphic() || *c == ' '))
        {
            return Err(WriteError::NotRepresentable {
                what: format!(
                    "field {}: {c:?} as an indicator or subfield code",
                    field.tag()
                ),
            });
        }
    }
    let mut directory = Vec::with_capacity(record.fields.len() * 12);
    let mut data = Vec::with_capacity(record.fields.len() * 64);
    for field in &record.fields {
        let start = data.len();
        match field {
            Field::Control { value, .. } => data.extend_from_slice(value.as_bytes()),
            Field::Data {
                ind1,
                ind2,
                subfields,
                ..
            } => {
                push_char(&mut data, *ind1);
                push_char(&mut data, *ind2);
                for sf in subfields {
                    data.push(SUBFIELD_DELIMITER);
                    push_char(&mut data, sf.code);
                    data.extend_from_slice(sf.value.as_bytes());
                }
            }
        }
        data.push(FIELD_TERMINATOR);
        let len = data.len() - start;
        if len > 9999 || start > 99_999 {
            return Err(WriteError::TooLong {
                what: format!("field {} is {len} bytes (at most 9,999)", field.tag()),
            });
        }
        directory.extend_from_slice(field.tag().as_bytes());
        write!(directory, "{len:04}{start:05}")?;
    }
    directory.push(FIELD_TERMINATOR);
    data.push(RECORD_TERMINATOR);
    let base = 24 + directory.len();
    let total = base + data.len();
    if total > 99_999 {
        return Err(WriteError::TooLong {
            what: format!("record is {total} bytes (at most 99,999)"),
        });
    }
    let mut leader = record.leader;
    leader[0..5].copy_from_slice(format!("{total:05}").as_bytes());
    leader[9] = b'a';
    leader[10] = b'2';
    leader[11] = b'2';
    leader[12..17].copy_from_slice(format!("{base:05}").as_bytes());
    leader[20..24].copy_from_slice(b"4500");
    out.reserve(total);
    out.extend_from_slice(&leader);
    out.extend_from_slice(&directory);
    out.extend_from_slice(&data);
    Ok(())
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Writes records as ISO 2709 to any output.
pub struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Wraps an output; wrap a file in a `BufWriter` for speed.
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            buf: Vec::new(),
        }
    }

    /// Writes one record.
    pub fn write(&mut self, record: &Record) -> Result<(), WriteError> {
        self.buf.clear();
        encode(record, &mut self.buf)?;
        self.out.write_all(&self.buf)?;
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> Result<W, WriteError> {
        self.out.flush()?;
        Ok(self.out)
    }
}
