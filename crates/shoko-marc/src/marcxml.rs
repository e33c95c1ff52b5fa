//! MARCXML (the Library of Congress "slim" schema): a streaming, lenient reader and a writer.
//!
//! The reader first cuts the byte stream into `<record>…</record>` pieces (any
//! namespace prefix), then parses each piece on its own. A piece that is not
//! well-formed XML, or not a valid record, costs only that record: the next
//! `<record>` is found by the cutter whatever state the parser was left in.

use std::io::{BufRead, Write};

use quick_xml::Reader as XmlReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use crate::{
    Field, ReadError, ReadRecord, ReadResult, Record, RecordError, Subfield, Tag, WriteError,
};

/// The MARCXML namespace.
pub const NAMESPACE: &str = "http://www.loc.gov/MARC21/slim";

/// A record larger than this is not MARC (ISO 2709 caps a record at 99,999
/// bytes; its XML form is a few times larger): the reader gives up on it and
/// looks for the next record rather than growing without bound.
const MAX_RECORD_XML: usize = 4 * 1024 * 1024;

/// Reads MARCXML records one at a time.
pub struct Reader<R> {
    input: R,
    piece: Vec<u8>,
    record: Vec<u8>,
    pos: u64,
    number: u64,
    /// A record start tag read while inside another record (that record never
    /// closed): it begins the next record.
    carried: Option<(u64, Vec<u8>)>,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// Wraps a buffered input.
    pub fn new(input: R) -> Reader<R> {
        Reader {
            input,
            piece: Vec::new(),
            record: Vec::new(),
            pos: 0,
            number: 0,
            carried: None,
            done: false,
        }
    }

    /// Reads up to and including the next `>`; returns false at end of input.
    fn read_piece(&mut self) -> std::io::Result<bool> {
        self.piece.clear();
        let n = self.input.read_until(b'>', &mut self.piece)?;
        self.pos += n as u64;
        Ok(n > 0)
    }
}

/// What the last tag of a piece is, as far as record boundaries go.
#[derive(PartialEq, Eq)]
enum Mark {
    Start,
    Empty,
    End,
    Other,
}

/// Looks at the tag that ends `piece` (from its last `<`): is it a record start or end?
fn mark(piece: &[u8]) -> (Mark, usize) {
    let Some(lt) = piece.iter().rposition(|&b| b == b'<') else {
        return (Mark::Other, 0);
    };
    let tag = &piece[lt + 1..];
    let (closing, tag) = match tag.strip_prefix(b"/") {
        Some(t) => (true, t),
        None => (false, tag),
    };
    let name_end = tag
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
        .unwrap_or(tag.len());
    let name = &tag[..name_end];
    let local = name.rsplit(|&b| b == b':').next().unwrap_or(name);
    if local != b"record" || !piece.ends_with(b">") {
        return (Mark::Other, lt);
    }
    let m = if closing {
        Mark::End
    } else if piece.ends_with(b"/>") {
        Mark::Empty
    } else {
        Mark::Start
    };
    (m, lt)
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<ReadResult, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Find the start of the next record.
        let offset = match self.carried.take() {
            Some((offset, start)) => {
                self.record = start;
                offset
            }
            None => loop {
                match self.read_piece() {
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e.into()));
                    }
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Ok(true) => {}
                }
                let (m, lt) = mark(&self.piece);
                let offset = self.pos - (self.piece.len() - lt) as u64;
                match m {
                    Mark::Start => {
                        self.record.clear();
                        self.record.extend_from_slice(&self.piece[lt..]);
                        break offset;
                    }
                    Mark::Empty => {
                        self.number += 1;
                        return Some(Ok(Err(RecordError {
                            number: self.number,
                            offset,
                            reason: "empty <record/> element".into(),
                        })));
                    }
                    Mark::End | Mark::Other => {}
                }
            },
        };
        self.number += 1;
        let number = self.number;
        let fail = |reason: String| {
            Some(Ok(Err(RecordError {
                number,
                offset,
                reason,
            })))
        };
        // Collect up to the matching end tag.
        loop {
            match self.read_piece() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
                Ok(false) => {
                    self.done = true;
                    return fail("the file ends inside this record: truncated?".into());
                }
                Ok(true) => {}
            }
            let (m, lt) = mark(&self.piece);
            match m {
                Mark::End => {
                    self.record.extend_from_slice(&self.piece);
                    break;
                }
                Mark::Start | Mark::Empty => {
                    let next_offset = self.pos - (self.piece.len() - lt) as u64;
                    self.record.extend_from_slice(&self.piece[..lt]);
                    if m == Mark::Start {
                        self.carried = Some((next_offset, self.piece[lt..].to_vec()));
                    }
                    return fail("a new <record> starts before this one is closed".into());
                }
                Mark::Other => {
                    self.record.extend_from_slice(&self.piece);
                    if self.record.len() > MAX_RECORD_XML {
                        return fail(format!(
                            "no </record> within {MAX_RECORD_XML} bytes: not a MARC record"
                        ));
                    }
                }
            }
        }
        Some(Ok(match parse(&self.record) {
            Ok((record, warnings)) => Ok(ReadRecord {
                record,
                number,
                offset,
                warnings,
            }),
            Err(reason) => Err(RecordError {
                number,
                offset,
                reason,
            }),
        }))
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|err| format!("bad attribute: {err}"))?;
        if a.key.local_name().into_inner() == name {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| format!("bad attribute value: {err}"))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn parse_tag(raw: Option<String>, warnings: &mut Vec<String>) -> Result<Tag, String> {
    let raw = raw.ok_or("a field has no tag attribute")?;
    let trimmed = raw.trim();
    // Some exporters drop leading zeros ("42" for 042).
    let fixed = if !trimmed.is_empty()
        && trimmed.len() < 3
        && trimmed.bytes().all(|b| b.is_ascii_digit())
    {
        let padded = format!("{trimmed:0>3}");
        warnings.push(format!("tag {raw:?} read as {padded}"));
        padded
    } else {
        trimmed.to_owned()
    };
    fixed
        .parse()
        .map_err(|e: String| format!("{e} (MARCXML tag attribute)"))
}

fn parse_indicator(
    raw: Option<String>,
    tag: Tag,
    which: u8,
    warnings: &mut Vec<String>,
) -> Result<char, String> {
    let raw = raw.unwrap_or_default();
    let mut chars = raw.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(' '),
        (Some(c), None) => {
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == ' ') {
                warnings.push(format!(
                    "field {tag}: indicator {which} is {c:?}, not a MARC 21 value"
                ));
            }
            Ok(c)
        }
        _ => Err(format!(
            "field {tag}: indicator {which} is {raw:?}, not one character"
        )),
    }
}

/// Where the parser is inside a record.
enum Open {
    None,
    Leader,
    Control(Tag),
    Data,
    Subfield(char),
}

/// Parses one `<record>` element.
pub fn parse(xml: &[u8]) -> Result<(Record, Vec<String>), String> {
    let mut reader = XmlReader::from_reader(xml);
    let mut warnings = Vec::new();
    let mut leader: Option<String> = None;
    let mut fields: Vec<Field> = Vec::new();
    let mut open = Open::None;
    let mut text = String::new();
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML at byte {at} of the record: {e}"))?;
        match event {
            Event::Start(_) | Event::Empty(_) => {
                let empty = matches!(event, Event::Empty(_));
                let (Event::Start(e) | Event::Empty(e)) = event else {
                    unreachable!("matched above")
                };
                let name = e.local_name();
                text.clear();
                match name.into_inner() {
                    "record" => {}
                    "leader" => open = Open::Leader,
                    "controlfield" => {
                        open = Open::Control(parse_tag(attr(&e, "tag")?, &mut warnings)?);
                    }
                    "datafield" => {
                        let tag = parse_tag(attr(&e, "tag")?, &mut warnings)?;
                        if tag.is_control() {
                            warnings.push(format!(
                                "datafield with control-field tag {tag}: ISO 2709 cannot carry it"
                            ));
                        }
                        let ind1 = parse_indicator(attr(&e, "ind1")?, tag, 1, &mut warnings)?;
                        let ind2 = parse_indicator(attr(&e, "ind2")?, tag, 2, &mut warnings)?;
                        fields.push(Field::Data {
                            tag,
                            ind1,
                            ind2,
                            subfields: Vec::new(),
                        });
                        open = Open::Data;
                    }
                    "subfield" => {
                        let code = attr(&e, "code")?.unwrap_or_default();
                        let mut cs = code.chars();
                        let c = match (cs.next(), cs.next()) {
                            (Some(c), None) if !c.is_whitespace() && !c.is_control() => c,
                            _ => {
                                return Err(format!(
                                    "subfield code {code:?} is not one letter or digit"
                                ));
                            }
                        };
                        if !c.is_ascii_graphic() {
                            warnings.push(format!(
                                "subfield code {c:?} is not ASCII: ISO 2709 cannot carry it"
                            ));
                        }
                        open = Open::Subfield(c);
                    }
                    other => {
                        warnings.push(format!("unknown element <{}> ignored", other));
                    }
                }
                if empty {
                    close(&mut open, &mut text, &mut leader, &mut fields)?;
                }
            }
            Event::Text(t) => {
                text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
            }
            Event::GeneralRef(r) => {
                let name = r.clone().into_inner();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name}; at byte {at}"))?
                        .to_string(),
                };
                text.push_str(&resolved);
            }
            Event::CData(c) => {
                text.push_str(&c.into_inner());
            }
            Event::End(_) => close(&mut open, &mut text, &mut leader, &mut fields)?,
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    let leader = leader.ok_or("the record has no <leader>")?;
    let mut bytes = [b' '; 24];
    let lb = leader.as_bytes();
    if lb.len() != 24 || !leader.is_ascii() {
        warnings.push(format!(
            "leader {leader:?} is not 24 ASCII characters: padded or cut"
        ));
    }
    for (slot, &b) in bytes.iter_mut().zip(lb.iter()) {
        *slot = if b.is_ascii_graphic() || b == b' ' {
            b
        } else {
            b' '
        };
    }
    bytes[9] = b'a';
    Ok((
        Record {
            leader: bytes,
            fields,
        },
        warnings,
    ))
}

fn close(
    open: &mut Open,
    text: &mut String,
    leader: &mut Option<String>,
    fields: &mut Vec<Field>,
) -> Result<(), String> {
    match std::mem::replace(open, Open::None) {
        Open::Leader => *leader = Some(std::mem::take(text)),
        Open::Control(tag) => fields.push(Field::Control {
            tag,
            value: std::mem::take(text),
        }),
        Open::Subfield(code) => {
            if let Some(Field::Data { subfields, .. }) = fields.last_mut() {
                subfields.push(Subfield {
                    code,
                    value: std::mem::take(text),
                });
            }
            *open = Open::Data;
        }
        Open::Data | Open::None => {}
    }
    text.clear();
    Ok(())
}

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// Writes records as a MARCXML `<collection>`.
pub struct Writer<W: Write> {
    out: W,
    started: bool,
}

impl<W: Write> Writer<W> {
    /// Wraps an output; wrap a file in a `BufWriter` for speed.
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            started: false,
        }
    }

    fn start(&mut self) -> std::io::Result<()> {
        if !self.started {
            self.started = true;
            writeln!(self.out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
            writeln!(self.out, "<collection xmlns=\"{NAMESPACE}\">")?;
        }
        Ok(())
    }

    /// Writes one record.
    pub fn write(&mut self, record: &Record) -> Result<(), WriteError> {
        self.start()?;
        let o = &mut self.out;
        let mut leader = record.leader;
        leader[9] = b'a';
        writeln!(o, "  <record>")?;
        writeln!(
            o,
            "    <leader>{}</leader>",
            escape(&String::from_utf8_lossy(&leader))
        )?;
        for f in &record.fields {
            match f {
                Field::Control { tag, value } => writeln!(
                    o,
                    "    <controlfield tag=\"{}\">{}</controlfield>",
                    escape(tag.as_str()),
                    escape(value)
                )?,
                Field::Data {
                    tag,
                    ind1,
                    ind2,
                    subfields,
                } => {
                    writeln!(
                        o,
                        "    <datafield tag=\"{}\" ind1=\"{}\" ind2=\"{}\">",
                        escape(tag.as_str()),
                        escape(&ind1.to_string()),
                        escape(&ind2.to_string())
                    )?;
                    for sf in subfields {
                        writeln!(
                            o,
                            "      <subfield code=\"{}\">{}</subfield>",
                            escape(&sf.code.to_string()),
                            escape(&sf.value)
                        )?;
                    }
                    writeln!(o, "    </datafield>")?;
                }
            }
        }
        writeln!(o, "  </record>")?;
        Ok(())
    }

    /// Closes the collection, flushes and returns the output.
    pub fn finish(mut self) -> Result<W, WriteError> {
        self.start()?;
        writeln!(self.out, "</collection>")?;
        self.out.flush()?;
        Ok(self.out)
    }
}
