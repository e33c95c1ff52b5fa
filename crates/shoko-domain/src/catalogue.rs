//! The bibliographic record's derived fields: what Shoko reads out of the MARC
//! record to show, sort, match and search it. The MARC record stays the truth;
//! these are recomputed from it whenever it changes.

use serde::Serialize;
use shoko_marc::{Field, Record};
use unicode_normalization::UnicodeNormalization;

/// The broad kind of material, from leader/06–07.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Printed or manuscript language material, monographs.
    Book,
    /// Language material issued in parts: journals, series.
    Serial,
    /// Printed or manuscript music.
    Score,
    /// Musical or spoken sound recordings.
    SoundRecording,
    /// Projected and video material.
    Video,
    /// Cartographic material.
    Map,
    /// Computer files.
    Electronic,
    /// Two-dimensional graphics, kits, objects.
    Visual,
    /// Mixed materials, archives.
    Mixed,
}

impl Format {
    /// Reads leader/06 (type of record) and /07 (bibliographic level).
    pub fn from_leader(leader: &[u8; 24]) -> Format {
        match (leader[6], leader[7]) {
            (b'a' | b't', b's' | b'b' | b'i') => Format::Serial,
            (b'a' | b't', _) => Format::Book,
            (b'c' | b'd', _) => Format::Score,
            (b'i' | b'j', _) => Format::SoundRecording,
            (b'g', _) => Format::Video,
            (b'e' | b'f', _) => Format::Map,
            (b'm', _) => Format::Electronic,
            (b'k' | b'o' | b'r', _) => Format::Visual,
            (b'p', _) => Format::Mixed,
            _ => Format::Book,
        }
    }

    /// The stable code stored and shown in the API.
    pub fn code(self) -> &'static str {
        match self {
            Format::Book => "book",
            Format::Serial => "serial",
            Format::Score => "score",
            Format::SoundRecording => "sound_recording",
            Format::Video => "video",
            Format::Map => "map",
            Format::Electronic => "electronic",
            Format::Visual => "visual",
            Format::Mixed => "mixed",
        }
    }
}

/// The keys that say two records are the same record (re-import updates
/// instead of duplicating): 001 with 003 when the record has an 001; the
/// first 035 $a only for a record without 001.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchKeys {
    /// `"{003}|{001}"` when the record has an 001.
    pub control: Option<String>,
    /// The first 035 $a, spaces removed, e.g. `(OCoLC)12345`.
    pub system: Option<String>,
}

/// Everything derived from a bibliographic record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BibSummary {
    /// 001.
    pub control_number: Option<String>,
    /// 003.
    pub control_org: Option<String>,
    /// Matching keys for re-import.
    pub keys: MatchKeys,
    /// The title to show: the vernacular form (880 linked to 245) where the
    /// record has one, else 245 $a $b $n $p.
    pub title: String,
    /// The title by which to sort: a kana reading where the record gives one,
    /// else the romanised 245 of a vernacular record, else the title without
    /// its non-filing article ("The ", "A ").
    pub title_reading: String,
    /// Names from 100/110/111/700/710/711, each in every script the record has.
    pub authors: Vec<String>,
    /// Subject headings (6XX) with subdivisions joined by " -- ".
    pub subjects: Vec<String>,
    /// Valid ISBNs, as ISBN-13.
    pub isbns: Vec<String>,
    /// Valid ISSNs.
    pub issns: Vec<String>,
    /// Publisher from 264 (production/publication) or 260 $b.
    pub publisher: Option<String>,
    /// Year of publication from 008/07-10, else the first four digits of 264/260 $c.
    pub year: Option<i32>,
    /// Language code from 008/35-37, else 041 $a.
    pub language: Option<String>,
    /// Broad format from the leader.
    pub format: Format,
}

/// Strips the ISBD punctuation that ends a MARC subfield (" /", " :", ",", ".").
pub fn trim_punctuation(s: &str) -> &str {
    let s = s.trim();
    let trimmed = s.trim_end_matches([' ', '/', ':', ';', ',', '=']);
    // A final period is punctuation unless it ends an abbreviation like "Co." or an initial "J.".
    match trimmed.strip_suffix('.') {
        Some(rest) if !rest.ends_with(|c: char| c.is_uppercase()) || rest.chars().count() > 3 => {
            rest.trim_end()
        }
        _ => trimmed,
    }
}

/// Joins the chosen subfields, punctuation trimmed, in NFC: MARC 21 records
/// usually carry decomposed accents (o + U+0304), derived fields are composed (ō).
fn join_subfields(field: &Field, codes: &str, sep: &str) -> String {
    let parts: Vec<&str> = field
        .subfields()
        .iter()
        .filter(|s| codes.contains(s.code))
        .map(|s| trim_punctuation(&s.value))
        .filter(|s| !s.is_empty())
        .collect();
    nfc(parts.join(sep))
}

/// NFC, skipping the work for text that is already ASCII (most Latin data).
fn nfc(s: String) -> String {
    if s.is_ascii() { s } else { s.nfc().collect() }
}

/// Whether text holds CJK ideographs, kana or hangul.
pub fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c as u32,
            0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
            | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x20000..=0x2FFFF | 0xFF66..=0xFF9F)
    })
}

/// Whether text is a kana reading: kana, long-vowel marks, spaces and punctuation only.
pub fn is_kana_reading(s: &str) -> bool {
    let mut any = false;
    for c in s.chars() {
        match c as u32 {
            0x3041..=0x309F | 0x30A0..=0x30FF | 0xFF66..=0xFF9F => any = true,
            _ if c.is_whitespace()
                || c.is_ascii_punctuation()
                || ('\u{3000}'..='\u{303F}').contains(&c) => {}
            _ => return false,
        }
    }
    any
}

/// The 880 fields linked to a field with this tag (by $6 "245-01").
fn linked_880<'a>(record: &'a Record, tag: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
    record
        .fields_with("880")
        .filter(move |f| f.first('6').is_some_and(|l| l.starts_with(tag)))
}

fn title_of(field: &Field) -> String {
    join_subfields(field, "abnp", " ")
}

/// Reads the derived fields out of a record.
pub fn summarise(record: &Record) -> BibSummary {
    let control_number = record
        .control("001")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let control_org = record
        .control("003")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let system = record
        .fields_with("035")
        .find_map(|f| f.first('a'))
        .map(|s| s.split_whitespace().collect::<String>())
        .filter(|s| !s.is_empty());
    let keys = MatchKeys {
        control: control_number
            .as_ref()
            .map(|n| format!("{}|{n}", control_org.as_deref().unwrap_or(""))),
        system,
    };

    let t245 = record.field("245");
    let roman = t245.map(title_of).unwrap_or_default();
    let vernacular: Vec<String> = linked_880(record, "245").map(title_of).collect();
    let kana = vernacular.iter().find(|t| is_kana_reading(t)).cloned();
    let shown = vernacular
        .iter()
        .find(|t| has_cjk(t) && !is_kana_reading(t))
        .or_else(|| vernacular.iter().find(|t| !t.is_empty()))
        .cloned();
    let (title, title_reading) = match shown {
        Some(v) => {
            let reading = kana.unwrap_or_else(|| roman.clone());
            (v, reading)
        }
        None => {
            let nonfiling = t245
                .and_then(Field::indicators)
                .and_then(|(_, i2)| i2.to_digit(10))
                .unwrap_or(0) as usize;
            let reading: String = roman.chars().skip(nonfiling).collect();
            (roman.clone(), kana.unwrap_or(reading))
        }
    };

    let mut authors = Vec::new();
    for tag in ["100", "110", "111", "700", "710", "711"] {
        for f in record.fields_with(tag) {
            push_unique(&mut authors, join_subfields(f, "abcdq", " "));
        }
        for f in linked_880(record, tag) {
            push_unique(&mut authors, join_subfields(f, "abcdq", " "));
        }
    }
    let mut subjects = Vec::new();
    for f in record
        .fields
        .iter()
        .filter(|f| f.tag().as_str().starts_with('6'))
    {
        if f.tag().as_str() == "653" {
            push_unique(&mut subjects, join_subfields(f, "a", " -- "));
        } else if f.tag().as_str() != "880" {
            push_unique(&mut subjects, join_subfields(f, "abcdtvxyz", " -- "));
        }
    }
    for f in record.fields_with("880") {
        if f.first('6').is_some_and(|l| l.starts_with('6')) {
            push_unique(&mut subjects, join_subfields(f, "abcdtvxyz", " -- "));
        }
    }

    let mut isbns = Vec::new();
    for f in record.fields_with("020") {
        for v in f.subfield_values('a') {
            if let Some(i) = crate::Isbn::parse(v) {
                push_unique(&mut isbns, i.as_str().to_owned());
            }
        }
    }
    let mut issns = Vec::new();
    for f in record.fields_with("022") {
        for v in f.subfield_values('a') {
            if let Some(i) = crate::Issn::parse(v) {
                push_unique(&mut issns, i.as_str().to_owned());
            }
        }
    }

    let imprint = record
        .fields_with("264")
        .find(|f| f.indicators().is_some_and(|(_, i2)| i2 == '1'))
        .or_else(|| record.field("264"))
        .or_else(|| record.field("260"));
    let imprint_880 = linked_880(record, "264")
        .next()
        .or_else(|| linked_880(record, "260").next());
    let publisher = imprint_880
        .and_then(|f| f.first('b'))
        .or_else(|| imprint.and_then(|f| f.first('b')))
        .map(|s| nfc(trim_punctuation(s).to_owned()))
        .filter(|s| !s.is_empty());

    let f008 = record.control("008").unwrap_or("");
    let year = f008
        .get(7..11)
        .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|y| y.parse().ok())
        .or_else(|| imprint.and_then(|f| f.first('c')).and_then(first_year));
    let language = f008
        .get(35..38)
        .filter(|l| l.bytes().all(|b| b.is_ascii_lowercase()))
        .map(str::to_owned)
        .or_else(|| {
            record
                .field("041")
                .and_then(|f| f.first('a'))
                .map(|s| s.chars().take(3).collect())
        });

    BibSummary {
        control_number,
        control_org,
        keys,
        title,
        title_reading,
        authors,
        subjects,
        isbns,
        issns,
        publisher,
        year,
        language,
        format: Format::from_leader(&record.leader),
    }
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if !v.is_empty() && !list.contains(&v) {
        list.push(v);
    }
}

fn first_year(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(3))
        .find(|&i| b[i..i + 4].iter().all(u8::is_ascii_digit))
        .and_then(|i| s[i..i + 4].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoko_marc::{Subfield, Tag};

    fn data(tag: &str, i2: char, subs: &[(char, &str)]) -> Field {
        Field::Data {
            tag: tag.parse::<Tag>().expect("tag"),
            ind1: '1',
            ind2: i2,
            subfields: subs
                .iter()
                .map(|(c, v)| Subfield {
                    code: *c,
                    value: (*v).to_owned(),
                })
                .collect(),
        }
    }

    fn control(tag: &str, v: &str) -> Field {
        Field::Control {
            tag: tag.parse::<Tag>().expect("tag"),
            value: v.to_owned(),
        }
    }

    fn japanese() -> Record {
        let mut r = Record::new();
        r.fields = vec![
            control("001", "12345"),
            control("003", "DLC"),
            control("008", "990101s1999    ja a          000 0 jpn  "),
            data("020", ' ', &[('a', "4-7710-1234-2 (pbk.)")]),
            data("100", ' ', &[('6', "880-01"), ('a', "Abe, Kazue.")]),
            data(
                "245",
                '0',
                &[
                    ('6', "880-02"),
                    ('a', "Dentō wagei kōdan no subete /"),
                    ('c', "Abe Kazue."),
                ],
            ),
            data(
                "260",
                ' ',
                &[
                    ('a', "Tōkyō :"),
                    ('b', "Yūzankaku,"),
                    ('c', "Heisei 11 [1999]"),
                ],
            ),
            data("650", '0', &[('a', "Storytelling"), ('z', "Japan.")]),
            data("880", ' ', &[('6', "100-01/$1"), ('a', "阿部主計.")]),
            data(
                "880",
                '0',
                &[
                    ('6', "245-02/$1"),
                    ('a', "伝統話芸・講談のすべて /"),
                    ('c', "阿部主計."),
                ],
            ),
        ];
        r
    }

    #[test]
    fn a_japanese_record_shows_its_vernacular_title_and_sorts_by_its_romanisation() {
        let s = summarise(&japanese());
        assert_eq!(s.title, "伝統話芸・講談のすべて");
        assert_eq!(s.title_reading, "Dentō wagei kōdan no subete");
        assert_eq!(
            s.authors,
            vec!["Abe, Kazue".to_owned(), "阿部主計".to_owned()]
        );
        assert_eq!(s.isbns, vec!["9784771012349".to_owned()]);
        assert_eq!(s.year, Some(1999));
        assert_eq!(s.language.as_deref(), Some("jpn"));
        assert_eq!(s.subjects, vec!["Storytelling -- Japan".to_owned()]);
        assert_eq!(s.keys.control.as_deref(), Some("DLC|12345"));
        assert_eq!(s.format, Format::Book);
    }

    #[test]
    fn a_kana_reading_linked_to_the_title_is_preferred_for_sorting() {
        let mut r = japanese();
        r.fields.push(data(
            "880",
            '0',
            &[
                ('6', "245-03/$1"),
                ('a', "デントウ ワゲイ コウダン ノ スベテ"),
            ],
        ));
        assert_eq!(
            summarise(&r).title_reading,
            "デントウ ワゲイ コウダン ノ スベテ"
        );
    }

    #[test]
    fn an_english_title_sorts_without_its_article() {
        let mut r = Record::new();
        r.fields = vec![data(
            "245",
            '4',
            &[('a', "The Perl cookbook /"), ('c', "Tom.")],
        )];
        let s = summarise(&r);
        assert_eq!(s.title, "The Perl cookbook");
        assert_eq!(s.title_reading, "Perl cookbook");
        assert_eq!(
            s.keys,
            MatchKeys {
                control: None,
                system: None
            }
        );
    }

    #[test]
    fn the_year_falls_back_to_the_imprint_date() {
        let mut r = Record::new();
        r.fields = vec![data("264", '1', &[('b', "岩波書店,"), ('c', "c2015.")])];
        let s = summarise(&r);
        assert_eq!(s.year, Some(2015));
        assert_eq!(s.publisher.as_deref(), Some("岩波書店"));
    }

    #[test]
    fn kana_readings_are_recognised() {
        assert!(is_kana_reading("トウキョウ ダイガク"));
        assert!(is_kana_reading("とうきょう"));
        assert!(!is_kana_reading("東京大学"));
        assert!(!is_kana_reading("Tokyo"));
    }
}
