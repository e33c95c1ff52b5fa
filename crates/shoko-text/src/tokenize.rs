//! Tokenising normalised text. Latin and digit runs become words. Runs of
//! CJK characters (kanji, kana, hangul) become single characters and
//! overlapping bigrams, each with its true position, so that a query of one
//! character matches a unigram and a longer query matches as a phrase of
//! consecutive bigrams: 大学 finds 東京大学, and 学大 does not.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A run of letters and digits (Latin, Cyrillic, …).
    Word,
    /// One CJK character.
    Unigram,
    /// Two consecutive CJK characters.
    Bigram,
}

/// A token with its position. Words and unigrams count positions one per
/// token; a bigram has the position of its first character, so consecutive
/// bigrams of one run have consecutive positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token text.
    pub text: String,
    /// Position in the token stream of its kind.
    pub position: usize,
    /// Word, unigram or bigram.
    pub kind: TokenKind,
    /// Byte offsets in the input, for highlighting.
    pub from: usize,
    /// End byte offset.
    pub to: usize,
}

/// Whether a character belongs to a CJK run.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3041..=0x309F | 0x30A0..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F
        | 0x20000..=0x2FFFF)
}

/// Tokenises text that is already normalised (see [`crate::normalize`]).
/// Positions leave a gap of one between runs, so no phrase crosses a space
/// or a change of script.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if is_cjk(c) {
            let mut j = i;
            while j < chars.len() && is_cjk(chars[j].1) {
                j += 1;
            }
            for k in i..j {
                let (from, ch) = chars[k];
                let to = from + ch.len_utf8();
                out.push(Token {
                    text: ch.to_string(),
                    position: pos + (k - i),
                    kind: TokenKind::Unigram,
                    from,
                    to,
                });
                if k + 1 < j {
                    let (_, next) = chars[k + 1];
                    out.push(Token {
                        text: [ch, next].iter().collect(),
                        position: pos + (k - i),
                        kind: TokenKind::Bigram,
                        from,
                        to: to + next.len_utf8(),
                    });
                }
            }
            pos += j - i + 1;
            i = j;
        } else if c.is_alphanumeric() {
            let mut j = i;
            while j < chars.len() && chars[j].1.is_alphanumeric() && !is_cjk(chars[j].1) {
                j += 1;
            }
            let to = chars.get(j).map_or(text.len(), |&(b, _)| b);
            out.push(Token {
                text: text[start..to].to_owned(),
                position: pos,
                kind: TokenKind::Word,
                from: start,
                to,
            });
            pos += 1;
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(kind: TokenKind, text: &str) -> Vec<(String, usize)> {
        tokenize(text)
            .into_iter()
            .filter(|t| t.kind == kind)
            .map(|t| (t.text, t.position))
            .collect()
    }

    #[test]
    fn a_cjk_run_gives_unigrams_and_bigrams_at_their_positions() {
        assert_eq!(
            of(TokenKind::Bigram, "東京大学"),
            vec![("東京".into(), 0), ("京大".into(), 1), ("大学".into(), 2)]
        );
        assert_eq!(of(TokenKind::Unigram, "東京大学").len(), 4);
    }

    #[test]
    fn latin_words_and_cjk_runs_mix() {
        let t = tokenize("java入門 2nd");
        let words: Vec<_> = t
            .iter()
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(words, ["java", "2nd"]);
        assert_eq!(
            of(TokenKind::Bigram, "java入門 2nd"),
            vec![("入門".into(), 1)]
        );
    }

    #[test]
    fn runs_are_separated_by_a_position_gap() {
        let b = of(TokenKind::Bigram, "東京 大学");
        assert_eq!(b, vec![("東京".into(), 0), ("大学".into(), 3)]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The bigrams of `text` as (text, position).
    fn bigrams(text: &str) -> Vec<(String, usize)> {
        tokenize(text)
            .into_iter()
            .filter(|t| t.kind == TokenKind::Bigram)
            .map(|t| (t.text, t.position))
            .collect()
    }

    /// Whether the query's bigrams occur in `text` at consecutive positions:
    /// what a phrase query over the bigram field matches.
    fn phrase_matches(text: &str, query: &str) -> bool {
        let t = bigrams(text);
        let q: Vec<String> = bigrams(query).into_iter().map(|b| b.0).collect();
        t.iter().any(|(first, start)| {
            first == &q[0]
                && q.iter()
                    .enumerate()
                    .all(|(k, b)| t.iter().any(|(x, p)| x == b && *p == start + k))
        })
    }

    proptest! {
        #[test]
        fn a_phrase_of_bigrams_matches_exactly_the_substrings(
            text in "[東京大学図書館本日のあいう ]{1,14}",
            query in "[東京大学図書館本日のあいう]{2,4}",
        ) {
            prop_assert_eq!(phrase_matches(&text, &query), text.contains(&query));
        }
    }
}
