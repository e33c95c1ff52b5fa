//! Identifier types parsed once at the edge: barcodes and the codes of campuses,
//! locations and item types.

use std::fmt;

/// Why a code or barcode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Nothing but whitespace.
    #[error("{what} is empty")]
    Empty {
        /// Which kind of code.
        what: &'static str,
    },
    /// Longer than the limit.
    #[error("{what} {value:?} is longer than {max} characters")]
    TooLong {
        /// Which kind of code.
        what: &'static str,
        /// The value given.
        value: String,
        /// The limit.
        max: usize,
    },
    /// A character that is not allowed.
    #[error("{what} {value:?} contains {bad:?}; allowed: {allowed}")]
    BadChar {
        /// Which kind of code.
        what: &'static str,
        /// The value given.
        value: String,
        /// The first bad character.
        bad: char,
        /// What is allowed, for a person.
        allowed: &'static str,
    },
}

fn check(
    what: &'static str,
    raw: &str,
    max: usize,
    ok: fn(char) -> bool,
    allowed: &'static str,
) -> Result<String, CodeError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(CodeError::Empty { what });
    }
    if v.chars().count() > max {
        return Err(CodeError::TooLong {
            what,
            value: v.to_owned(),
            max,
        });
    }
    if let Some(bad) = v.chars().find(|&c| !ok(c)) {
        return Err(CodeError::BadChar {
            what,
            value: v.to_owned(),
            bad,
            allowed,
        });
    }
    Ok(v.to_owned())
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $ok:expr, $allowed:literal, $upper:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and normalises a raw value.
            pub fn parse(raw: &str) -> Result<$name, CodeError> {
                let v = check($what, raw, $max, $ok, $allowed)?;
                Ok($name(if $upper { v.to_ascii_uppercase() } else { v }))
            }

            /// The code as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

code_type!(
    /// An item's barcode: printable ASCII without spaces, as scanners produce it.
    Barcode, "barcode", 64, |c: char| c.is_ascii_graphic(), "printable ASCII without spaces", false
);
code_type!(
    /// A campus code such as `HONGO`: letters, digits, `-` and `_`, stored upper-case.
    CampusCode, "campus code", 16, is_code_char, "letters, digits, - and _", true
);
code_type!(
    /// A shelving location code within a campus, such as `STACKS`.
    LocationCode, "location code", 24, is_code_char, "letters, digits, - and _", true
);
code_type!(
    /// An item type code such as `BOOK`, one axis of the loan policy matrix.
    ItemTypeCode, "item type code", 16, is_code_char, "letters, digits, - and _", true
);

code_type!(
    /// A patron category such as `UNDERGRAD`, one axis of the loan policy matrix.
    PatronCategoryCode, "patron category", 16, is_code_char, "letters, digits, - and _", true
);
code_type!(
    /// A staff account's user name: letters, digits, `.`, `-` and `_`, kept as given.
    Username, "user name", 64, |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'), "letters, digits, ., - and _", false
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campus_codes_are_trimmed_and_upper_cased() {
        assert_eq!(
            CampusCode::parse(" hongo ").map(|c| c.0),
            Ok("HONGO".into())
        );
    }

    #[test]
    fn a_barcode_with_a_space_is_refused_with_the_character_named() {
        let err = Barcode::parse("3001 2").expect_err("space");
        assert!(err.to_string().contains("' '"), "{err}");
    }

    #[test]
    fn an_empty_code_is_refused() {
        assert_eq!(
            LocationCode::parse("  "),
            Err(CodeError::Empty {
                what: "location code"
            })
        );
    }
}
