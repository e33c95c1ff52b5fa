//! Every MARC fixture read, counted against MANIFEST.md, and written back: the
//! reader's contract on real files, good and broken.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use shoko_marc::{Field, Format, ReadRecord, Record, RecordError, Subfield, Tag, iso2709, marcxml};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/marc")
}

struct Outcome {
    good: Vec<ReadRecord>,
    bad: Vec<RecordError>,
}

fn read(path: &Path) -> Outcome {
    let mut input = BufReader::new(std::fs::File::open(path).expect("fixture opens"));
    let format = Format::sniff(input.fill_buf().expect("fixture reads"));
    let mut out = Outcome {
        good: Vec::new(),
        bad: Vec::new(),
    };
    for item in shoko_marc::reader(format, input) {
        match item.expect("no IO error on a local file") {
            Ok(r) => out.good.push(r),
            Err(e) => out.bad.push(e),
        }
    }
    out
}

/// One row of MANIFEST.md for a MARC file.
struct Row {
    path: String,
    yaz: usize,
    broken: bool,
}

/// Reads MANIFEST.md. A file counts as well-formed when yaz-marcdump read it
/// without warnings, pymarc without failures, and neither the encoding column
/// nor the notes call it bad, broken, invalid or truncated.
fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("MANIFEST.md")).expect("manifest");
    let mut dir = String::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("## ").and_then(|l| l.split('/').next()) {
            dir = d.to_owned();
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() < 9 || !matches!(cells[2], "iso2709" | "marcxml") {
            continue;
        }
        let pymarc_failed = cells[4].split('/').nth(1).is_some_and(|f| f != "0");
        let words = format!("{} {}", cells[5], cells[8]).to_lowercase();
        let called_bad = ["bad", "broken", "invalid", "truncat", "error", "messed"]
            .iter()
            .any(|w| words.contains(w));
        rows.push(Row {
            path: format!("{dir}/{}", cells[0]),
            yaz: cells[3].parse().expect("yaz count"),
            broken: !cells[7].is_empty() || pymarc_failed || called_bad,
        });
    }
    rows
}

#[test]
fn well_formed_fixtures_give_the_record_counts_of_the_manifest() {
    let rows = manifest();
    assert!(rows.len() > 100, "manifest parsed: {} rows", rows.len());
    let mut checked = 0;
    for row in rows.iter().filter(|r| !r.broken) {
        let out = read(&fixtures().join(&row.path));
        assert!(out.bad.is_empty(), "{}: {:?}", row.path, out.bad);
        assert_eq!(out.good.len(), row.yaz, "{}", row.path);
        checked += 1;
    }
    assert!(checked >= 75, "only {checked} well-formed files");
}

/// What each broken file gives: (path, records read, records rejected).
/// Fewer good records would mean a reader that gives up too soon; more
/// rejections, one that is too strict.
const BROKEN: &[(&str, usize, usize)] = &[
    ("pymarc/bad_eacc_encoding.dat", 1, 0),
    ("pymarc/bad_indicator.dat", 0, 1),
    ("pymarc/bad_marc8_escape.dat", 1, 0),
    ("pymarc/bad_records.mrc", 3, 5),
    ("pymarc/bad_subfield_code.dat", 0, 1),
    ("pymarc/bad_tag.xml", 1, 0),
    ("pymarc/testunimarc.dat", 1, 0),
    ("pymarc/utf8_errors.dat", 1, 0),
    ("pymarc/utf8_invalid.mrc", 1, 0),
    ("ruby-marc/bad_eacc_encoding.marc8.marc", 1, 0),
    ("ruby-marc/cp866_multirecord.marc", 0, 2),
    ("ruby-marc/cp866_unimarc.marc", 0, 1),
    ("ruby-marc/marc8_accented_chars.marc", 0, 1),
    ("ruby-marc/marc_with_bad_utf8.utf8.marc", 0, 1),
    ("ruby-marc/messed_up_leader.xml", 1, 0),
    ("ruby-marc/three-records-second-bad.xml", 2, 1),
    ("ruby-marc/utf8_with_bad_bytes.marc", 0, 1),
    ("marc-perl/marc-record/baddir.usmarc", 0, 1),
    ("marc-perl/marc-record/badind.usmarc", 1, 0),
    ("marc-perl/marc-record/badldr.usmarc", 6, 2),
    ("marc-perl/marc-record/cameleof.usmarc", 10, 0),
    ("marc-perl/marc-record/sample1eof.usmarc", 1, 0),
    ("marc-perl/marc-record/title_proper.usmarc", 5, 0),
    ("marc-perl/marc-record/filler.usmarc", 3, 0),
    ("marc-perl/marc-charset/farsi.marc", 0, 1),
    ("yaz/marc0.marc", 0, 1),
    ("yaz/marc1.marc", 1, 0),
    ("yaz/marc2.marc", 1, 0),
    ("yaz/marc3.marc", 1, 0),
    ("yaz/marc4.marc", 0, 1),
    ("yaz/marc5.marc", 1, 0),
    ("idzebra-examples/sample-marc.mrc", 24, 2),
];

#[test]
fn broken_fixtures_give_per_record_errors_and_keep_their_good_records() {
    let listed: Vec<&str> = BROKEN.iter().map(|b| b.0).collect();
    for row in manifest().iter().filter(|r| r.broken) {
        assert!(
            listed.contains(&row.path.as_str()),
            "{} is broken but not in BROKEN",
            row.path
        );
    }
    for &(path, good, bad) in BROKEN {
        let out = read(&fixtures().join(path));
        assert_eq!(
            (out.good.len(), out.bad.len()),
            (good, bad),
            "{path}: {:?}",
            out.bad
        );
        for e in &out.bad {
            assert!(e.number >= 1 && !e.reason.is_empty(), "{path}: {e}");
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("record {} at byte {}: ", e.number, e.offset)));
        }
    }
}

#[test]
fn a_broken_record_names_its_number_offset_and_fault() {
    let out = read(&fixtures().join("pymarc/bad_records.mrc"));
    let first = &out.bad[0];
    assert_eq!((first.number, first.offset), (2, 127));
    assert!(first.reason.contains("leader/12-16"), "{}", first.reason);
    // Resynchronised: a good record after the bad ones.
    assert!(out.good.iter().any(|r| r.number > 2));
}

fn all_marc_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("fixture dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("mrc" | "dat" | "marc" | "usmarc" | "xml")
            ) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&fixtures(), &mut out);
    out.sort();
    out
}

#[test]
fn every_utf8_record_without_warnings_writes_back_byte_for_byte() {
    let mut exact = 0;
    for path in all_marc_files() {
        let bytes = std::fs::read(&path).expect("read");
        if Format::sniff(&bytes) != Format::Iso2709 {
            continue;
        }
        for r in read(&path).good {
            let original = &bytes[r.offset as usize..];
            let declared: usize = std::str::from_utf8(&original[..5])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if !r.warnings.is_empty() || original[9] != b'a' || declared > original.len() {
                continue;
            }
            let original = &original[..declared];
            let mut written = Vec::new();
            iso2709::encode(&r.record, &mut written).expect("encodes");
            // Writers normalise leader/20-23 to "4500"; compare the rest exactly.
            let mut expected = original.to_vec();
            expected[20..24].copy_from_slice(b"4500");
            if written != expected {
                // Only a record whose fields are not laid out in directory order may differ.
                let (reread, _) = iso2709::parse(&written).expect("reparses");
                assert_eq!(
                    normalised(reread),
                    normalised(r.record.clone()),
                    "{} record {}",
                    path.display(),
                    r.number
                );
                continue;
            }
            exact += 1;
        }
    }
    assert!(exact > 1500, "only {exact} byte-exact round trips");
}

#[test]
fn every_good_record_survives_iso2709_and_marcxml_round_trips() {
    for path in all_marc_files() {
        for r in read(&path).good {
            let mut bin = Vec::new();
            match iso2709::encode(&r.record, &mut bin) {
                Ok(()) => {
                    let (back, _) = iso2709::parse(&bin).expect("reparses");
                    assert_eq!(
                        normalised(back),
                        normalised(r.record.clone()),
                        "{} record {}",
                        path.display(),
                        r.number
                    );
                }
                Err(shoko_marc::WriteError::NotRepresentable { .. }) => {
                    assert!(
                        !r.warnings.is_empty(),
                        "{}: refused without a warning",
                        path.display()
                    );
                }
                Err(e) => panic!("{} record {}: {e}", path.display(), r.number),
            }
            let mut w = marcxml::Writer::new(Vec::new());
            w.write(&r.record).expect("xml");
            let xml = w.finish().expect("xml finish");
            let back: Vec<_> = marcxml::Reader::new(&xml[..]).collect();
            assert_eq!(back.len(), 1);
            let back = back
                .into_iter()
                .next()
                .expect("one")
                .expect("io")
                .expect("parses");
            assert_eq!(
                back.record,
                r.record,
                "{} record {} (MARCXML)",
                path.display(),
                r.number
            );
        }
    }
}

#[test]
fn marc8_japanese_reads_the_same_as_its_utf8_original() {
    let utf8 = read(&fixtures().join("loc/loc_books2016_jpn300.mrc")).good;
    let marc8 = read(&fixtures().join("loc/loc_books2016_jpn300.marc8.mrc")).good;
    assert_eq!(utf8.len(), 300);
    let same = utf8
        .iter()
        .zip(&marc8)
        .filter(|(a, b)| nfc_text(&a.record) == nfc_text(&b.record))
        .count();

    // One record holds U+3013 (geta), which EACC cannot carry.
    assert!(same >= 299, "{same} of 300 identical");
    let title = utf8[0].record.fields_with("880").find_map(|f| {
        f.first('a')
            .filter(|_| f.first('6').is_some_and(|s| s.starts_with("245")))
    });
    assert!(title.is_some_and(|t| {
        t.chars().any(|c| {
            ('\u{3040}'..='\u{30FF}').contains(&c) || ('\u{4E00}'..='\u{9FFF}').contains(&c)
        })
    }));
}

/// Every value of a record, NFC-normalised: the LoC tables map some EACC
/// characters to unified ideographs where the UTF-8 original has another form.
fn nfc_text(r: &Record) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    r.fields
        .iter()
        .flat_map(|f| match f {
            Field::Control { value, .. } => vec![value.nfc().collect()],
            Field::Data { subfields, .. } => {
                subfields.iter().map(|s| s.value.nfc().collect()).collect()
            }
        })
        .collect()
}

fn arb_text() -> impl Strategy<Value = String> {
    // Latin, kana, kanji, hangul and punctuation; no MARC separators.
    proptest::string::string_regex("[a-zA-Z0-9 .,:;/()\\-ぁ-んァ-ン一-龥가-힣é]{0,40}")
        .expect("valid regex")
}

fn arb_field() -> impl Strategy<Value = Field> {
    let control = ("00[1-9]", arb_text()).prop_map(|(t, v)| Field::Control {
        tag: t.parse::<Tag>().expect("tag"),
        value: v,
    });
    let data = (
        "[1-9][0-9][0-9]",
        "[ 0-9a-z]",
        "[ 0-9a-z]",
        proptest::collection::vec(("[a-z0-9]", arb_text()), 1..6),
    )
        .prop_map(|(t, i1, i2, subs)| Field::Data {
            tag: t.parse::<Tag>().expect("tag"),
            ind1: i1.chars().next().expect("one char"),
            ind2: i2.chars().next().expect("one char"),
            subfields: subs
                .into_iter()
                .map(|(c, v)| Subfield {
                    code: c.chars().next().expect("one char"),
                    value: v,
                })
                .collect(),
        });
    prop_oneof![control, data]
}

fn arb_record() -> impl Strategy<Value = Record> {
    proptest::collection::vec(arb_field(), 0..30).prop_map(|fields| Record {
        leader: *b"00000nam a2200000 i 4500",
        fields,
    })
}

fn normalised(mut r: Record) -> Record {
    r.leader[0..5].copy_from_slice(b"00000");
    r.leader[12..17].copy_from_slice(b"00000");
    r.leader[10..12].copy_from_slice(b"22");
    r.leader[20..24].copy_from_slice(b"4500");
    r
}

proptest! {
    #[test]
    fn iso2709_write_then_read_gives_the_same_record(record in arb_record()) {
        let mut bin = Vec::new();
        iso2709::encode(&record, &mut bin).expect("encodes");
        let (back, warnings) = iso2709::parse(&bin).expect("parses");
        prop_assert!(warnings.is_empty(), "{:?}", warnings);
        prop_assert_eq!(normalised(back), record);
    }

    #[test]
    fn marcxml_write_then_read_gives_the_same_record(record in arb_record()) {
        let mut w = marcxml::Writer::new(Vec::new());
        w.write(&record).expect("writes");
        let xml = w.finish().expect("finishes");
        let back: Vec<_> = marcxml::Reader::new(&xml[..]).collect();
        prop_assert_eq!(back.len(), 1);
        let back = back.into_iter().next().expect("one").expect("io").expect("parses");
        prop_assert_eq!(back.record, record);
    }

    #[test]
    fn the_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for item in iso2709::Reader::new(&bytes[..]) {
            let _ = item.expect("no IO error");
        }
        for item in marcxml::Reader::new(&bytes[..]) {
            let _ = item.expect("no IO error");
        }
    }
}
