//! Normalisation: one canonical form of a text for matching.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::kanji::new_form;

fn is_kana_or_han(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0x20000..=0x2FFFF)
}

/// Whether a character separates words: whitespace, and punctuation of any
/// script (、。「」・ …), but not the marks that belong inside words.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || (c.is_ascii_punctuation() && c != '\'')
        || matches!(c as u32, 0x2010..=0x206F | 0x3000..=0x3004 | 0x3008..=0x3020 | 0x30FB | 0xFF01..=0xFF0F)
}

/// The canonical form of a text for matching:
///
/// 1. NFKC: full-width Latin and digits become ASCII, half-width katakana
///    become full-width, compatibility ideographs become unified ones.
/// 2. Lower case.
/// 3. Latin diacritics removed (é → e), Japanese voicing marks kept (が stays が).
/// 4. Katakana become hiragana (トウキョウ → とうきょう).
/// 5. Old kanji forms become new ones (圖書館 → 図書館).
/// 6. Iteration marks are spelt out (時々 → 時時, こゝろ → こころ).
/// 7. A long-vowel mark ending a word is dropped (コンピューター → こんぴゅーた),
///    the JIS Z 8301 spelling variation.
/// 8. Punctuation becomes a single space; spaces are collapsed and trimmed.
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        normalize_ascii(text)
    } else {
        normalize_any(text)
    }
}

/// One ASCII character as [`normalize`] leaves it inside a text: lower
/// case, or a space for a separator.
pub(crate) fn fold_ascii(c: char) -> char {
    if is_separator(c) {
        ' '
    } else {
        c.to_ascii_lowercase()
    }
}

/// [`normalize`] for ASCII text (most Latin catalogue data), where only
/// case and punctuation have anything to fold.
fn normalize_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if is_separator(c) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(fold_ascii(c));
    }
    out
}

fn normalize_any(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    // NFKD separates Latin marks from their letters; drop them, keep the
    // kana voicing marks, and recompose (が) with NFC.
    let stripped: String = text
        .nfkd()
        .filter(|&c| !is_combining_mark(c) || matches!(c, '\u{3099}' | '\u{309A}'))
        .collect();
    let mut prev: Option<char> = None;
    for c in stripped.nfc() {
        if is_separator(c) {
            pending_space = !out.is_empty();
            prev = None;
            continue;
        }
        let mut folded: String = c.to_lowercase().collect();
        if folded.chars().count() == 1 {
            let f = folded.chars().next().unwrap_or(c);
            let f = match f as u32 {
                // Katakana ァ..ヶ → hiragana ぁ..ゖ.
                0x30A1..=0x30F6 => char::from_u32(f as u32 - 0x60).unwrap_or(f),
                // Katakana iteration marks ヽヾ → ゝゞ.
                0x30FD | 0x30FE => char::from_u32(f as u32 - 0x60).unwrap_or(f),
                _ => new_form(f),
            };
            folded = f.to_string();
        }
        for f in folded.chars() {
            let f = match (f, prev) {
                ('々', Some(p)) if is_kana_or_han(p) => p,
                ('ゝ', Some(p)) => p,
                ('ゞ', Some(p)) => voiced(p),
                _ => f,
            };
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(f);
            prev = Some(f);
        }
    }
    drop_final_long_vowels(&out)
}

/// The voiced form of a kana (か → が), for the iteration mark ゞ.
fn voiced(c: char) -> char {
    let s: String = [c, '\u{3099}'].iter().collect::<String>().nfc().collect();
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(v), None) => v,
        _ => c,
    }
}

fn drop_final_long_vowels(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let word_end = chars.get(i + 1).is_none_or(|n| *n == ' ');
        let after_kana = i > 0 && matches!(chars[i - 1] as u32, 0x3041..=0x309F);
        if c == 'ー' && word_end && after_kana {
            continue;
        }
        out.push(c);
    }
    out
}

/// A key that sorts titles by reading: the normalised text, so that
/// katakana and hiragana readings interleave in gojūon order and Latin
/// titles sort alphabetically without case or accents.
pub fn sort_key(reading: &str) -> String {
    normalize(reading)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_ascii_shortcut_gives_what_the_full_path_gives(text in "[ -~\t\n\x0b\x0c\r\x01]{0,40}") {
            proptest::prop_assert_eq!(normalize_ascii(&text), normalize_any(&text));
        }
    }

    #[test]
    fn width_case_and_diacritics_fold() {
        assert_eq!(normalize("ＡＢＣ　１２３"), "abc 123");
        assert_eq!(normalize("Café Déjà-vu"), "cafe deja vu");
        assert_eq!(normalize("Dento\u{304} wagei"), "dento wagei");
    }

    #[test]
    fn katakana_and_half_width_katakana_become_hiragana_with_voicing_kept() {
        assert_eq!(normalize("トウキョウ"), "とうきょう");
        assert_eq!(normalize("ﾄｳｷｮｳ"), "とうきょう");
        assert_eq!(normalize("ガッコウ"), "がっこう");
        assert_eq!(normalize("ﾊﾟﾝ"), "ぱん");
    }

    #[test]
    fn old_kanji_forms_become_new_ones() {
        assert_eq!(normalize("圖書館"), "図書館");
        assert_eq!(normalize("國學院大學"), "国学院大学");
    }

    #[test]
    fn iteration_marks_are_spelt_out() {
        assert_eq!(normalize("時々"), "時時");
        assert_eq!(normalize("こゝろ"), "こころ");
        assert_eq!(normalize("いすゞ"), "いすず");
    }

    #[test]
    fn a_final_long_vowel_mark_is_dropped() {
        assert_eq!(normalize("コンピューター"), normalize("コンピュータ"));
        assert_eq!(normalize("ラーメン"), "らーめん");
    }

    #[test]
    fn punctuation_separates_words() {
        assert_eq!(normalize("伝統話芸・講談のすべて"), "伝統話芸 講談のすべて");
        assert_eq!(
            normalize("「経済政策」はこれでよいか："),
            "経済政策 はこれでよいか"
        );
    }

    #[test]
    fn the_table_has_no_identity_pairs_and_no_chains() {
        for &(old, new) in crate::kanji::OLD_TO_NEW {
            assert_ne!(old, new, "{old}");
            assert_eq!(new_form(new), new, "{old} → {new} → {}", new_form(new));
        }
    }
}
