//! The query model: what a search asks for, independent of the syntax it was
//! written in. The search box syntax ([`parse`]) produces it today; CQL (SRU)
//! maps onto it one to one:
//!
//! | CQL | query |
//! |---|---|
//! | `cql.serverChoice = "x"`, `cql.anywhere`, bare terms | `Text { field: All }` |
//! | `dc.title`, `dc.creator`, `dc.subject`, `dc.publisher` | `Text` in `Title`, `Author`, `Subject`, `Publisher` |
//! | `bath.isbn`, `bath.issn`, `dc.identifier` with an ISBN | `Text { field: Isbn }` |
//! | `adj`, `=` with a quoted string | `Phrase` |
//! | `x*` (masking) | `Prefix` |
//! | `dc.date >= 1990 and dc.date <= 2000`, `within "1990 2000"` | `Year` |
//! | `bath.lcCallNumber` / `local.callNumber` with `*` | `Prefix { field: CallNumber }` |
//! | `and`, `or`, `not` | `And`, `Or`, `And[…, Not]` |

use crate::SearchError;

/// Which part of a record a query part searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Every text field (keyword).
    All,
    /// Title, as written and as read.
    Title,
    /// Title reading (kana or romanised).
    TitleReading,
    /// Names.
    Author,
    /// Subject headings.
    Subject,
    /// Publisher.
    Publisher,
    /// ISBN (either form) or ISSN.
    Isbn,
    /// Call number of an item.
    CallNumber,
}

impl Field {
    /// The field named by a search box prefix (`title:`) or `None`.
    pub fn from_prefix(name: &str) -> Option<Field> {
        Some(match name {
            "any" | "all" | "keyword" => Field::All,
            "title" | "ti" => Field::Title,
            "reading" | "yomi" => Field::TitleReading,
            "author" | "au" => Field::Author,
            "subject" | "su" => Field::Subject,
            "publisher" | "pb" => Field::Publisher,
            "isbn" | "issn" => Field::Isbn,
            "callno" | "call_number" => Field::CallNumber,
            _ => return None,
        })
    }
}

/// A search, as a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Every record.
    All,
    /// Words that must all occur in the field, in any order; a CJK run
    /// matches as consecutive characters.
    Text {
        /// Where.
        field: Field,
        /// What, as the user wrote it.
        text: String,
    },
    /// Words and characters that must occur in this order.
    Phrase {
        /// Where.
        field: Field,
        /// What, as the user wrote it.
        text: String,
    },
    /// A word (or call number) beginning with this.
    Prefix {
        /// Where.
        field: Field,
        /// The beginning.
        text: String,
    },
    /// Year of publication, inclusive bounds.
    Year {
        /// From (None: no lower bound).
        from: Option<i64>,
        /// To (None: no upper bound).
        to: Option<i64>,
    },
    /// Every part matches; `Not` parts must not.
    And(Vec<Query>),
    /// Any part matches.
    Or(Vec<Query>),
    /// Excluded (only meaningful inside `And`).
    Not(Box<Query>),
}

impl Query {
    /// The plain text of a query made only of keywords (no fields,
    /// operators or phrases): the candidate for a known-item match on the
    /// whole title.
    pub fn known_item_text(&self) -> Option<String> {
        match self {
            Query::Text {
                field: Field::All,
                text,
            } => Some(text.clone()),
            Query::Phrase {
                field: Field::All | Field::Title,
                text,
            } => Some(text.clone()),
            Query::And(parts) => {
                let texts: Option<Vec<String>> = parts.iter().map(Query::known_item_text).collect();
                texts.map(|t| t.join(" "))
            }
            _ => None,
        }
    }

    /// The texts a hit should be highlighted with (not those excluded).
    pub fn highlight_texts(&self, out: &mut Vec<String>) {
        match self {
            Query::Text { text, field } | Query::Phrase { text, field }
                if *field != Field::Isbn && *field != Field::CallNumber =>
            {
                out.push(text.clone())
            }
            Query::Prefix {
                text,
                field: Field::All,
            } => out.push(text.clone()),
            Query::And(parts) | Query::Or(parts) => {
                for p in parts {
                    p.highlight_texts(out);
                }
            }
            _ => {}
        }
    }
}

/// Parses the search box syntax: words and `"phrases"`, each optionally
/// prefixed by a field (`title:`, `author:`, `subject:`, `publisher:`,
/// `reading:`, `isbn:`, `callno:`), year ranges (`year:1990-2000`, `year:-1950`,
/// `year:2000-`), word prefixes (`comput*`); every part must match, parts
/// joined by `OR` are alternatives, and `NOT part` or `-part` excludes.
pub fn parse(text: &str) -> Result<Query, SearchError> {
    // Groups of alternatives joined by OR; each group must match, or must
    // not when it was written `NOT part` or `-part`.
    let mut groups: Vec<(bool, Vec<Query>)> = Vec::new();
    let (mut or_next, mut not_next) = (false, false);
    for part in split(text) {
        match part.as_str() {
            "OR" | "|" => {
                or_next = !groups.is_empty();
                continue;
            }
            "NOT" => {
                not_next = true;
                continue;
            }
            "AND" | "&" => continue,
            _ => {}
        }
        let (negated, part) = match part.strip_prefix('-') {
            Some(rest) if !rest.is_empty() => (true, rest.to_owned()),
            _ => (not_next, part),
        };
        not_next = false;
        let Some(query) = parse_part(&part)? else {
            continue;
        };
        match groups.last_mut() {
            Some((false, alternatives)) if or_next && !negated => alternatives.push(query),
            _ => groups.push((negated, vec![query])),
        }
        or_next = false;
    }
    let mut parts: Vec<Query> = groups
        .into_iter()
        .map(|(negated, mut alternatives)| {
            let q = if alternatives.len() == 1 {
                alternatives.remove(0)
            } else {
                Query::Or(alternatives)
            };
            if negated { Query::Not(Box::new(q)) } else { q }
        })
        .collect();
    Ok(match parts.len() {
        0 => Query::All,
        1 if !matches!(parts[0], Query::Not(_)) => parts.remove(0),
        _ => Query::And(parts),
    })
}

/// One part: a word, a `"phrase"`, a `field:` part, a year range or a prefix.
fn parse_part(part: &str) -> Result<Option<Query>, SearchError> {
    let (field, body) = match part.split_once(':') {
        Some((name, body)) if !part.starts_with('"') => {
            if name == "year" {
                return year(body).map(Some);
            }
            match Field::from_prefix(name) {
                Some(f) => (f, body),
                // `a:b` that names no field is text (a title with a colon).
                None => (Field::All, part),
            }
        }
        _ => (Field::All, part),
    };
    let quoted = body.len() >= 2 && body.starts_with('"') && body.ends_with('"');
    let body = body.trim_matches('"').trim();
    if body.is_empty() {
        return Ok(None);
    }
    if field == Field::CallNumber {
        // A call number always matches from its start: callno:GR340 finds GR340 .A25 1999.
        return Ok(Some(Query::Prefix {
            field,
            text: body.trim_end_matches('*').to_owned(),
        }));
    }
    if !quoted && let Some(stem) = body.strip_suffix('*') {
        return Ok(Some(Query::Prefix {
            field,
            text: stem.to_owned(),
        }));
    }
    let text = body.to_owned();
    Ok(Some(if quoted {
        Query::Phrase { field, text }
    } else {
        Query::Text { field, text }
    }))
}

/// `1999`, `1990-2000`, `-1950` or `2000-`.
fn year(range: &str) -> Result<Query, SearchError> {
    let number = |s: &str| -> Result<Option<i64>, SearchError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| SearchError::Query(format!("year {s:?} is not a number")))
    };
    let (from, to) = match range.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(range)?, number(range)?),
    };
    Ok(Query::Year { from, to })
}

/// Splits a query into parts on spaces, keeping `"quoted phrases"` (and
/// `field:"quoted phrases"`) whole.
fn split(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: Field, t: &str) -> Query {
        Query::Text {
            field,
            text: t.into(),
        }
    }

    #[test]
    fn the_search_box_syntax_becomes_a_tree() {
        assert_eq!(parse("").expect("parse"), Query::All);
        assert_eq!(
            parse("東京大学").expect("parse"),
            text(Field::All, "東京大学")
        );
        assert_eq!(
            parse("title:講談 author:\"Natsume Soseki\" -漫画 year:1990-").expect("parse"),
            Query::And(vec![
                text(Field::Title, "講談"),
                Query::Phrase {
                    field: Field::Author,
                    text: "Natsume Soseki".into()
                },
                Query::Not(Box::new(text(Field::All, "漫画"))),
                Query::Year {
                    from: Some(1990),
                    to: None
                },
            ])
        );
        assert_eq!(
            parse("猫 OR 犬 NOT 鳥").expect("parse"),
            Query::And(vec![
                Query::Or(vec![text(Field::All, "猫"), text(Field::All, "犬")]),
                Query::Not(Box::new(text(Field::All, "鳥"))),
            ])
        );
        assert_eq!(
            parse("comput* callno:GR340").expect("parse"),
            Query::And(vec![
                Query::Prefix {
                    field: Field::All,
                    text: "comput".into()
                },
                Query::Prefix {
                    field: Field::CallNumber,
                    text: "GR340".into()
                },
            ])
        );
        assert_eq!(
            parse("Re:ゼロ").expect("parse"),
            text(Field::All, "Re:ゼロ"),
            "a colon that names no field is text"
        );
        assert!(matches!(parse("year:abc"), Err(SearchError::Query(_))));
    }

    #[test]
    fn only_plain_keywords_are_a_known_item_candidate() {
        let q = parse("吾輩は 猫である").expect("parse");
        assert_eq!(q.known_item_text().as_deref(), Some("吾輩は 猫である"));
        assert_eq!(
            parse("title:猫 -犬").expect("parse").known_item_text(),
            None
        );
        let mut texts = Vec::new();
        parse("猫 -犬 isbn:4000000000 comput*")
            .expect("parse")
            .highlight_texts(&mut texts);
        assert_eq!(texts, vec!["猫".to_owned(), "comput".to_owned()]);
    }
}
