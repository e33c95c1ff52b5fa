//! ISBN and ISSN: parsed from the untidy text of 020 and 022 fields, checked, normalised.

use std::fmt;

/// A valid ISBN, held as ISBN-13 (a 10-digit ISBN is converted).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Isbn(String);

impl Isbn {
    /// Finds an ISBN at the start of a subfield such as `4-00-000000-2 (pbk.) :`.
    /// Hyphens and spaces between digits are ignored; the check digit must be right.
    pub fn parse(raw: &str) -> Option<Isbn> {
        let mut digits = String::with_capacity(13);
        for c in raw.trim_start().chars() {
            match c {
                '0'..='9' => digits.push(c),
                'x' | 'X' if digits.len() == 9 => digits.push('X'),
                '-' | ' ' | '‐' | '－' => {
                    if digits.len() >= 10 && c == ' ' {
                        break;
                    }
                }
                _ => {
                    // Full-width digits as Japanese data sometimes has.
                    if let Some(d) = ('０'..='９').position(|f| f == c) {
                        digits.push(char::from(b'0' + d as u8));
                    } else {
                        break;
                    }
                }
            }
            if digits.len() == 13 {
                break;
            }
        }
        match digits.len() {
            10 if isbn10_ok(&digits) => Some(Isbn(to_13(&digits))),
            13 if isbn13_ok(&digits) => Some(Isbn(digits)),
            _ => None,
        }
    }

    /// The ISBN-13 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISBN-10 form, for ISBNs in the 978 range.
    pub fn to_isbn10(&self) -> Option<String> {
        let core = self.0.strip_prefix("978")?;
        let body = &core[..9];
        let sum: u32 = body
            .bytes()
            .enumerate()
            .map(|(i, b)| (10 - i as u32) * u32::from(b - b'0'))
            .sum();
        let check = (11 - sum % 11) % 11;
        Some(format!(
            "{body}{}",
            if check == 10 {
                'X'
            } else {
                char::from(b'0' + check as u8)
            }
        ))
    }
}

impl fmt::Display for Isbn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Isbn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Isbn({})", self.0)
    }
}

fn isbn10_ok(d: &str) -> bool {
    let sum: u32 = d
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let v = if b == b'X' { 10 } else { u32::from(b - b'0') };
            (10 - i as u32) * v
        })
        .sum();
    !d[..9].contains('X') && sum.is_multiple_of(11)
}

fn isbn13_ok(d: &str) -> bool {
    let sum: u32 = d
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    sum.is_multiple_of(10)
}

fn to_13(isbn10: &str) -> String {
    let body = format!("978{}", &isbn10[..9]);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A valid ISSN, held as `NNNN-NNNC`.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Issn(String);

impl Issn {
    /// Finds an ISSN at the start of a subfield; the check digit must be right.
    pub fn parse(raw: &str) -> Option<Issn> {
        let d: String = raw
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-' || *c == 'X' || *c == 'x')
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if d.len() != 8 || d[..7].contains('X') {
            return None;
        }
        let sum: u32 = d
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                let v = if b == b'X' { 10 } else { u32::from(b - b'0') };
                (8 - i as u32) * v
            })
            .sum();
        (sum.is_multiple_of(11)).then(|| Issn(format!("{}-{}", &d[..4], &d[4..])))
    }

    /// The ISSN as `NNNN-NNNC`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Issn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Issn({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isbn10_with_hyphens_and_a_qualifier_becomes_isbn13() {
        let i = Isbn::parse("4-7710-1234-2 (pbk.) :");
        assert_eq!(i.as_ref().map(Isbn::as_str), Some("9784771012349"));
        assert_eq!(i.and_then(|i| i.to_isbn10()), Some("4771012342".into()));
        let x = Isbn::parse("406205566x");
        assert_eq!(x.as_ref().map(Isbn::as_str), Some("9784062055666"));
        assert_eq!(x.and_then(|i| i.to_isbn10()), Some("406205566X".into()));
        assert_eq!(Isbn::parse("4-7710-1234-3"), None);
    }

    #[test]
    fn an_isbn13_is_checked() {
        assert!(Isbn::parse("9784003101018").is_some());
        assert!(Isbn::parse("9784003101019").is_none());
    }

    #[test]
    fn full_width_digits_are_read() {
        assert_eq!(
            Isbn::parse("９７８４００３１０１０１８").map(|i| i.0),
            Some("9784003101018".into())
        );
    }

    #[test]
    fn issn_is_checked_and_hyphenated() {
        assert_eq!(
            Issn::parse("0028-0836").map(|i| i.0),
            Some("0028-0836".into())
        );
        assert_eq!(
            Issn::parse("00280836").map(|i| i.0),
            Some("0028-0836".into())
        );
        assert!(Issn::parse("0028-0837").is_none());
    }
}
