//! Japanese-aware text for search and sorting: normalisation (width, case,
//! Latin diacritics, katakana/hiragana, old/new kanji, iteration and
//! long-vowel marks, punctuation) and tokenising (Latin words; CJK runs as
//! unigrams and position-correct overlapping bigrams), and highlighting
//! where a query matched. Pure: no IO.
//!
//! Index and query go through the same functions, so whatever one folds the
//! other folds the same way.

mod highlight;
pub mod kanji;
mod normalize;
mod tokenize;

pub use highlight::highlight;
pub use normalize::{normalize, sort_key};
pub use tokenize::{Token, TokenKind, is_cjk, tokenize};
