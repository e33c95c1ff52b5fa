//! Marking where a query matched a text, for hit lists: the text is
//! compared in its normalised form, character by character, and the marks
//! are put on the original characters, so `ｺｺﾛ` marks `こころ` and `圖書` marks
//! `圖書` in a title written with old kanji.

use crate::normalize;
use crate::normalize::fold_ascii;

/// The text, HTML-escaped, with every place a query part matched wrapped in
/// `<mark>…</mark>`; `None` when nothing matched. Parts are split on spaces;
/// each piece is found anywhere (a word piece also inside a longer word, as
/// prefixes do).
pub fn highlight(text: &str, queries: &[String]) -> Option<String> {
    if queries.is_empty() {
        return None;
    }
    // The normalised text, one piece per original character, and where each
    // normalised character came from.
    let mut norm: Vec<char> = Vec::new();
    let mut origin: Vec<usize> = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut buf = [0u8; 4];
    for (k, (_, c)) in chars.iter().enumerate() {
        if c.is_ascii() {
            // What `normalize` does to an ASCII character, without its cost.
            let n = fold_ascii(*c);
            norm.push(n);
            origin.push(k);
            continue;
        }
        let n = normalize(c.encode_utf8(&mut buf));
        if n.is_empty() {
            norm.push(' ');
            origin.push(k);
        }
        for nc in n.chars() {
            norm.push(nc);
            origin.push(k);
        }
    }
    let mut marked = vec![false; chars.len()];
    let mut any = false;
    for q in queries {
        for piece in normalize(q).split(' ').filter(|p| !p.is_empty()) {
            let piece: Vec<char> = piece.chars().collect();
            if piece.len() > norm.len() {
                continue;
            }
            for start in 0..=norm.len() - piece.len() {
                if norm[start..start + piece.len()] == piece[..] {
                    any = true;
                    for o in &origin[start..start + piece.len()] {
                        marked[*o] = true;
                    }
                }
            }
        }
    }
    if !any {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut open = false;
    for (k, (_, c)) in chars.iter().enumerate() {
        if marked[k] != open {
            out.push_str(if marked[k] { "<mark>" } else { "</mark>" });
            open = marked[k];
        }
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(*c),
        }
    }
    if open {
        out.push_str("</mark>");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn marks_the_original_characters_where_the_normalised_forms_match() {
        assert_eq!(
            highlight("伝統話芸・講談のすべて", &q(&["講談"])).as_deref(),
            Some("伝統話芸・<mark>講談</mark>のすべて")
        );
        assert_eq!(
            highlight("こころ / 夏目漱石", &q(&["ｺｺﾛ", "漱石"])).as_deref(),
            Some("<mark>こころ</mark> / 夏目<mark>漱石</mark>")
        );
        assert_eq!(
            highlight("圖書館の歴史", &q(&["図書館"])).as_deref(),
            Some("<mark>圖書館</mark>の歴史")
        );
        assert_eq!(
            highlight("Café <Society> & Computing", &q(&["cafe comput"])).as_deref(),
            Some("<mark>Café</mark> &lt;Society&gt; &amp; <mark>Comput</mark>ing")
        );
        assert_eq!(highlight("源氏物語", &q(&["平家"])), None);
    }
}
