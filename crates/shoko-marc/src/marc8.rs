//! MARC-8 to Unicode: the escape-sequence character sets of MARC 21, EACC
//! (East Asian Character Code, three bytes a character) included.
//!
//! The mapping lives in `data/marc8.tsv` (the Library of Congress code tables;
//! see `tools/gen-marc8-table.py`) and is parsed once, on first use. Decoding
//! never fails: an unmappable character becomes U+FFFD and a warning that
//! says which bytes and where, so a record can still be imported and fixed.

use std::collections::HashMap;
use std::sync::OnceLock;

const ESC: u8 = 0x1B;
/// Final byte of the escape that selects Basic Latin (ASCII), the default G0.
const BASIC_LATIN: u8 = 0x42;
/// Final byte of the escape that selects ANSEL (Extended Latin), the default G1.
const ANSEL: u8 = 0x45;
/// Final byte of the escape that selects EACC, the one multibyte set.
const EACC: u8 = 0x31;

type Mapping = (char, bool);

struct Tables {
    /// Single-byte sets: final escape byte → 256 slots.
    single: HashMap<u8, Box<[Option<Mapping>; 256]>>,
    /// EACC: three bytes packed big-endian into a u32.
    eacc: HashMap<u32, Mapping>,
    /// Vendor sequences seen in real data (Innovative Interfaces).
    odd: HashMap<u32, char>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Tables {
            single: HashMap::new(),
            eacc: HashMap::new(),
            odd: HashMap::new(),
        };
        for line in include_str!("../data/marc8.tsv").lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(set), Some(code), Some(uni), Some(comb)) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                panic!("marc8.tsv: malformed line {line:?}");
            };
            let code = u32::from_str_radix(code, 16).expect("marc8.tsv: hex code");
            let uni = char::from_u32(u32::from_str_radix(uni, 16).expect("marc8.tsv: hex"))
                .expect("marc8.tsv: a Unicode scalar value");
            let combining = comb == "1";
            if set == "odd" {
                t.odd.insert(code, uni);
                continue;
            }
            let set = u8::from_str_radix(set, 16).expect("marc8.tsv: hex set");
            if set == EACC {
                t.eacc.insert(code, (uni, combining));
            } else {
                let slots = t.single.entry(set).or_insert_with(|| Box::new([None; 256]));
                slots[code as usize & 0xFF] = Some((uni, combining));
            }
        }
        t
    })
}

/// Text decoded from MARC-8, and what could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text. Not normalised: combining marks follow their base letter, as
    /// in the decomposed UTF-8 that MARC 21 records conventionally carry.
    pub text: String,
    /// One line per problem: the bytes and their offset in the input.
    pub warnings: Vec<String>,
}

/// The graphic sets in force while decoding.
struct State {
    g0: u8,
    g0_multibyte: bool,
    g1: u8,
    g1_multibyte: bool,
}

/// Decodes one MARC-8 string (a field's content; subfield delimiters and field
/// terminators pass through unchanged). The character sets start at their
/// defaults, Basic Latin in G0 and ANSEL in G1.
pub fn decode(bytes: &[u8]) -> Decoded {
    let t = tables();
    let mut st = State {
        g0: BASIC_LATIN,
        g0_multibyte: false,
        g1: ANSEL,
        g1_multibyte: false,
    };
    let mut out = String::with_capacity(bytes.len());
    let mut combining: Vec<char> = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    // The byte after a subfield delimiter is the subfield code: ASCII whatever
    // graphic set is in force.
    let mut code_next = false;
    while i < bytes.len() {
        let b = bytes[i];
        if code_next && b.is_ascii_graphic() {
            code_next = false;
            emit(&mut out, &mut combining, b as char, false);
            i += 1;
            continue;
        }
        code_next = false;
        if b == ESC {
            i += escape(bytes, i, &mut st, &mut warnings);
            continue;
        }
        if b < 0x20 {
            // Structural separators pass through; other controls carry no text.
            if b == crate::SUBFIELD_DELIMITER || b == crate::FIELD_TERMINATOR {
                // A mark left waiting for a base letter stays in its own subfield.
                out.extend(combining.drain(..));
                out.push(b as char);
                code_next = b == crate::SUBFIELD_DELIMITER;
            }
            i += 1;
            continue;
        }
        if b == 0x20 {
            emit(&mut out, &mut combining, ' ', false);
            i += 1;
            continue;
        }
        let multibyte = if b < 0x80 {
            st.g0_multibyte
        } else {
            st.g1_multibyte
        };
        if multibyte {
            let Some(three) = bytes.get(i..i + 3) else {
                warnings.push(format!(
                    "byte {i}: EACC character cut short ({} of 3 bytes)",
                    bytes.len() - i
                ));
                break;
            };
            let code = three
                .iter()
                .fold(0u32, |acc, &x| (acc << 8) | u32::from(x & 0x7F));
            match t.eacc.get(&code) {
                Some(&(c, comb)) => emit(&mut out, &mut combining, c, comb),
                None => match t.odd.get(&code) {
                    Some(&c) => emit(&mut out, &mut combining, c, false),
                    None => {
                        warnings.push(format!("byte {i}: EACC {code:06X} has no Unicode mapping"));
                        emit(&mut out, &mut combining, '\u{FFFD}', false);
                    }
                },
            }
            i += 3;
            continue;
        }
        let set = if b < 0x80 { st.g0 } else { st.g1 };
        match lookup(t, set, b) {
            Some((c, comb)) => emit(&mut out, &mut combining, c, comb),
            None if b < 0x80 && set == BASIC_LATIN => {
                emit(&mut out, &mut combining, b as char, false)
            }
            None if (0x80..0xA0).contains(&b) => {}
            None => {
                let odd = bytes
                    .get(i..i + 3)
                    .map(|s| s.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x)))
                    .and_then(|code| t.odd.get(&code));
                if let Some(&c) = odd {
                    emit(&mut out, &mut combining, c, false);
                    i += 3;
                    continue;
                }
                warnings.push(format!(
                    "byte {i}: 0x{b:02X} has no mapping in character set 0x{set:02X}"
                ));
                emit(&mut out, &mut combining, '\u{FFFD}', false);
            }
        }
        i += 1;
    }
    if !combining.is_empty() {
        warnings.push("combining mark at the end of the field with no base letter".into());
        out.extend(combining.drain(..));
    }
    Decoded {
        text: out,
        warnings,
    }
}

/// Appends a character; MARC-8 puts a combining mark before its base letter,
/// Unicode after, so marks wait in `combining` for the next base letter.
fn emit(out: &mut String, combining: &mut Vec<char>, c: char, is_combining: bool) {
    if is_combining {
        combining.push(c);
    } else {
        out.push(c);
        out.extend(combining.drain(..));
    }
}

fn lookup(t: &Tables, set: u8, b: u8) -> Option<Mapping> {
    let slots = t.single.get(&set)?;
    slots[b as usize].or(slots[(b ^ 0x80) as usize])
}

/// Applies the escape sequence at `bytes[i]` and returns how many bytes it took.
fn escape(bytes: &[u8], i: usize, st: &mut State, warnings: &mut Vec<String>) -> usize {
    let at = |k: usize| bytes.get(i + k).copied();
    match at(1) {
        Some(b'(' | b',') => match at(2) {
            Some(f) => {
                st.g0 = f;
                st.g0_multibyte = false;
                3
            }
            None => 2,
        },
        Some(b')' | b'-') => match at(2) {
            Some(f) => {
                st.g1 = f;
                st.g1_multibyte = false;
                3
            }
            None => 2,
        },
        Some(b'$') => match at(2) {
            Some(b',') | Some(b'(') => {
                if let Some(f) = at(3) {
                    st.g0 = f;
                    st.g0_multibyte = f == EACC;
                }
                4
            }
            Some(b')') | Some(b'-') => {
                if let Some(f) = at(3) {
                    st.g1 = f;
                    st.g1_multibyte = f == EACC;
                }
                4
            }
            Some(f) => {
                st.g0 = f;
                st.g0_multibyte = f == EACC;
                3
            }
            None => 2,
        },
        // Technique 1: Greek symbols, subscripts, superscripts; `s` returns to ASCII.
        Some(f @ (b'g' | b'b' | b'p')) => {
            st.g0 = f;
            st.g0_multibyte = false;
            2
        }
        Some(b's') => {
            st.g0 = BASIC_LATIN;
            st.g0_multibyte = false;
            2
        }
        other => {
            warnings.push(format!(
                "byte {i}: unknown escape sequence ESC {}",
                other.map_or("<end>".to_string(), |b| format!("0x{b:02X}"))
            ));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    fn vectors() -> (String, String) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/marc8_vectors");
        (
            std::fs::read_to_string(format!("{dir}/test_marc8.txt")).expect("marc8 vectors"),
            std::fs::read_to_string(format!("{dir}/test_utf8.txt")).expect("utf8 vectors"),
        )
    }

    #[test]
    fn every_loc_test_vector_decodes_exactly() {
        let (marc8, utf8) = vectors();
        let pairs: Vec<_> = marc8.lines().zip(utf8.lines()).collect();
        assert_eq!(pairs.len(), 1515);
        let mut failures = Vec::new();
        for (n, (input, expected)) in pairs.iter().enumerate() {
            // The vectors are NFC; Shoko keeps the decoded order, so compare canonically.
            let got: String = decode(input.as_bytes()).text.nfc().collect();
            let expected: String = expected.nfc().collect();
            if got != expected {
                failures.push(format!("line {}: got {:?} want {:?}", n + 1, got, expected));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn ansel_combining_mark_moves_after_its_base_letter() {
        // ANSEL 0xE2 is the combining acute accent, written before the letter.
        assert_eq!(decode(b"Caf\xE2e").text, "Cafe\u{301}");
    }

    #[test]
    fn eacc_japanese_decodes_and_returns_to_ascii() {
        // 日本 in EACC, then back to ASCII.
        let d = decode(b"\x1B$1\x21\x42\x73\x21\x43\x69\x1B(B ok");
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert_eq!(d.text, "日本 ok");
    }

    #[test]
    fn an_unmapped_eacc_character_is_replaced_and_reported() {
        let d = decode(b"\x1B$1\x7E\x7E\x7E");
        assert_eq!(d.text, "\u{FFFD}");
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("7E7E7E"));
    }
}
