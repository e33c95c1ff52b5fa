//! The search index over real Library of Congress records: Japanese recall
//! against a brute-force scan, variants, Latin folding, ISBNs, facets.

use std::collections::BTreeSet;
use std::io::BufReader;
use std::sync::Arc;

use shoko_domain::catalogue::summarise;
use shoko_search::{Facet, IndexDoc, SearchIndex, SearchRequest, Shelf, Sort};
use shoko_testkit::fixtures;
use shoko_text::normalize;

fn docs(file: &str, first_id: u64) -> Vec<IndexDoc> {
    let f = std::fs::File::open(fixtures().join("marc/loc").join(file)).expect("fixture");
    shoko_marc::iso2709::Reader::new(BufReader::new(f))
        .enumerate()
        .map(|(i, r)| {
            let r = r.expect("io").expect("valid").record;
            let s = summarise(&r);
            IndexDoc {
                id: first_id + i as u64,
                title: s.title,
                title_reading: s.title_reading,
                authors: s.authors,
                subjects: s.subjects,
                isbns: s.isbns,
                issns: s.issns,
                publisher: s.publisher,
                year: s.year,
                language: s.language,
                format: s.format.code().into(),
                campuses: vec![["HONGO", "KOMABA", "KASHIWA"][i % 3].into()],
                call_numbers: Vec::new(),
                available: i % 4 != 0,
                display: None,
            }
        })
        .collect()
}

fn index_of(docs: &[IndexDoc]) -> SearchIndex {
    let index = SearchIndex::in_memory().expect("index");
    index
        .apply(
            docs.iter().map(|d| (d.id, Some(d.clone()))).collect(),
            Vec::new(),
            42,
        )
        .expect("apply");
    index
}

fn ids(index: &SearchIndex, query: &str) -> BTreeSet<u64> {
    let r = index
        .search(&SearchRequest {
            query: query.into(),
            limit: 1000,
            ..Default::default()
        })
        .expect("search");
    assert!(r.total <= 1000, "{query}: too many to check");
    r.hits.into_iter().map(|h| h.id).collect()
}

fn is_cjk(c: char) -> bool {
    shoko_text::tokenize(&c.to_string())
        .first()
        .is_some_and(|t| t.kind == shoko_text::TokenKind::Unigram)
}

#[test]
fn every_japanese_title_substring_of_1_to_8_characters_finds_exactly_the_titles_containing_it() {
    let docs = docs("loc_books2016_jpn300.mrc", 1);
    let index = index_of(&docs);
    assert_eq!(index.applied_outbox_id(), 42);
    let titles: Vec<(u64, String, String)> = docs
        .iter()
        .map(|d| (d.id, normalize(&d.title), normalize(&d.title_reading)))
        .collect();
    let mut queries = BTreeSet::new();
    for (_, t, _) in &titles {
        let chars: Vec<char> = t.chars().collect();
        for len in 1..=8 {
            for start in (0..chars.len().saturating_sub(len)).step_by(5) {
                let q: String = chars[start..start + len].iter().collect();
                if q.chars().all(is_cjk) {
                    queries.insert(q);
                }
            }
        }
    }
    assert!(queries.len() > 500, "only {} queries", queries.len());
    for q in &queries {
        // The query is normalised as a whole (a final ー drops), like the title.
        let nq = normalize(q);
        let expected: BTreeSet<u64> = titles
            .iter()
            .filter(|(_, t, r)| t.contains(nq.as_str()) || r.contains(nq.as_str()))
            .map(|(id, _, _)| *id)
            .collect();
        assert_eq!(ids(&index, &format!("title:{q}")), expected, "title:{q}");
        let every: BTreeSet<u64> = index
            .matching_ids(&format!("title:{q}"))
            .expect("ids")
            .into_iter()
            .collect();
        assert_eq!(every, expected, "matching_ids title:{q}");
    }
}

#[test]
fn variants_of_a_query_find_the_same_records() {
    let mut d = IndexDoc {
        id: 1,
        title: "圖書館學の基礎".into(),
        title_reading: "トショカンガク ノ キソ".into(),
        format: "book".into(),
        ..Default::default()
    };
    let mut other = d.clone();
    other.id = 2;
    other.title = "学大図書".into();
    other.title_reading = String::new();
    d.authors = vec!["Café, René".into()];
    let index = index_of(&[d, other]);
    for q in [
        "図書館学",
        "圖書館學",
        "図書館",
        "とshoかん",
        "トショカン",
        "ﾄｼｮｶﾝ",
        "としょかん",
        "館",
    ] {
        let want: BTreeSet<u64> = if q == "とshoかん" {
            BTreeSet::new()
        } else {
            [1].into()
        };
        assert_eq!(ids(&index, q), want, "{q}");
    }
    // Same bigrams out of order: 大学 and 図書 are in record 2, 学大 is, 図書館学 is not.
    assert_eq!(ids(&index, "大学図書"), BTreeSet::new());
    assert_eq!(ids(&index, "学大"), [2].into());
    assert_eq!(ids(&index, "author:rene"), [1].into());
    assert_eq!(ids(&index, "author:René"), [1].into());
}

#[test]
fn an_isbn_in_any_form_finds_its_record_and_latin_words_fold() {
    let docs = docs("loc_books2016_first1000.mrc", 1);
    let index = index_of(&docs);
    let with_isbn = docs
        .iter()
        .find(|d| d.isbns.iter().any(|i| i.starts_with("978")))
        .expect("a record with an ISBN");
    let isbn13 = &with_isbn.isbns[0];
    let body = &isbn13[3..12];
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| (10 - i as u32) * u32::from(b - b'0'))
        .sum();
    let check = (11 - sum % 11) % 11;
    let isbn10 = format!(
        "{body}{}",
        if check == 10 {
            'X'
        } else {
            char::from(b'0' + check as u8)
        }
    );
    let hyphenated = format!("{}-{}-{}", &isbn10[..1], &isbn10[1..5], &isbn10[5..]);
    for q in [
        isbn13.clone(),
        isbn10.clone(),
        hyphenated.clone(),
        format!("isbn:{hyphenated}"),
    ] {
        assert!(ids(&index, &q).contains(&with_isbn.id), "{q}");
    }
    let author = with_isbn.authors.first().expect("an author");
    let surname = author.split([',', ' ']).next().expect("a word");
    assert!(ids(&index, &format!("author:{surname}")).contains(&with_isbn.id));
}

#[test]
fn facets_count_the_matching_records_and_filters_narrow_them() {
    let docs = docs("loc_books2016_jpn300.mrc", 1);
    let index = index_of(&docs);
    let all = index
        .search(&SearchRequest {
            query: String::new(),
            limit: 10,
            facets: vec![Facet::Campus, Facet::Language, Facet::Availability],
            ..Default::default()
        })
        .expect("search");
    assert_eq!(all.total, 300);
    let campus = &all.facets["campus"];
    assert_eq!(campus.iter().map(|(_, n)| n).sum::<u64>(), 300);
    assert!(campus.contains(&("HONGO".into(), 100)), "{campus:?}");
    assert_eq!(all.facets["language"], vec![("jpn".to_owned(), 300)]);
    let hongo = index
        .search(&SearchRequest {
            query: String::new(),
            limit: 10,
            filters: vec![(Facet::Campus, "HONGO".into())],
            ..Default::default()
        })
        .expect("search");
    assert_eq!(hongo.total, 100);
}

/// Ids on the shelf by the availability filter, the facet's counts, and
/// the display shown for `shown`.
fn availability_view(
    index: &SearchIndex,
    sort: Sort,
    shown: u64,
) -> (BTreeSet<u64>, Vec<(String, u64)>, Option<String>) {
    let on_shelf = index
        .search(&SearchRequest {
            query: String::new(),
            sort,
            limit: 1000,
            filters: vec![(Facet::Availability, "available".into())],
            ..Default::default()
        })
        .expect("search");
    let all = index
        .search(&SearchRequest {
            query: String::new(),
            limit: 1000,
            facets: vec![Facet::Availability],
            ..Default::default()
        })
        .expect("search");
    let display = all
        .hits
        .iter()
        .find(|h| h.id == shown)
        .and_then(|h| h.display.clone());
    (
        on_shelf.hits.iter().map(|h| h.id).collect(),
        all.facets["availability"].clone(),
        display,
    )
}

#[test]
fn shelved_availability_is_searched_at_once_without_a_commit_and_folds_into_the_documents() {
    let docs = docs("loc_books2016_jpn300.mrc", 1);
    let index = index_of(&docs);
    // The availability facet: (on the shelf, not).
    let split = |available: u64, not: u64| {
        vec![
            ("available".to_owned(), available),
            ("unavailable".to_owned(), not),
        ]
    };
    let (before, facet, _) = availability_view(&index, Sort::Relevance, 1);
    assert_eq!(before.len(), 225, "three in four are on the shelf");
    assert_eq!(facet, split(225, 75));
    // Record 1 (unavailable) is returned, records 2 and 3 lent out.
    let shelf = |available: bool, text: &str| Shelf {
        available,
        display: Some(Arc::from(text)),
    };
    index
        .apply(
            Vec::new(),
            vec![
                (1, shelf(true, "{\"returned\":1}")),
                (2, shelf(false, "{\"lent\":2}")),
                (3, shelf(false, "{\"lent\":3}")),
            ],
            43,
        )
        .expect("shelve");
    assert_eq!(index.applied_outbox_id(), 43);
    assert_eq!(
        index.committed_outbox_id(),
        42,
        "shelves alone commit nothing: a restart reads them again"
    );
    assert_eq!(index.shelved().0, 3);
    let mut expected = before.clone();
    expected.insert(1);
    expected.remove(&2);
    expected.remove(&3);
    for sort in [Sort::Relevance, Sort::Title, Sort::YearDesc] {
        let (shelved, facet, display) = availability_view(&index, sort, 1);
        assert_eq!(shelved, expected, "{sort:?}");
        assert_eq!(facet, split(224, 76));
        assert_eq!(display.as_deref(), Some("{\"returned\":1}"));
    }
    let none = index
        .search(&SearchRequest {
            query: String::new(),
            limit: 10,
            filters: vec![(Facet::Availability, "lost".into())],
            ..Default::default()
        })
        .expect("search");
    assert_eq!(none.total, 0, "a value no record has matches nothing");

    // A document written for record 2 replaces its shelf; the others stay,
    // so the documents are still only current up to before the shelves.
    let mut two = docs[1].clone();
    two.available = false;
    index
        .apply(vec![(2, Some(two))], Vec::new(), 44)
        .expect("apply");
    assert_eq!(index.shelved().0, 2);
    assert_eq!(index.committed_outbox_id(), 42);
    assert_eq!(availability_view(&index, Sort::Relevance, 1).0, expected);

    // Folding: the shelved records as documents.
    let mut one = docs[0].clone();
    one.available = true;
    one.display = Some(Arc::from("{\"returned\":1}"));
    let mut three = docs[2].clone();
    three.available = false;
    index
        .apply(vec![(1, Some(one)), (3, Some(three))], Vec::new(), 45)
        .expect("fold");
    assert_eq!(index.shelved(), (0, None));
    assert_eq!(index.committed_outbox_id(), 45);
    let (folded, facet, display) = availability_view(&index, Sort::Relevance, 1);
    assert_eq!(folded, expected);
    assert_eq!(facet, split(224, 76));
    assert_eq!(display.as_deref(), Some("{\"returned\":1}"));
}

#[test]
fn replacing_and_deleting_a_record_is_visible_after_apply() {
    let docs = docs("loc_books2016_kor100.mrc", 1);
    let index = index_of(&docs);
    let mut changed = docs[0].clone();
    changed.title = "서울대학교 도서관".into();
    index
        .apply(
            vec![(changed.id, Some(changed.clone())), (docs[1].id, None)],
            Vec::new(),
            43,
        )
        .expect("apply");
    assert_eq!(index.num_docs(), 99);
    assert_eq!(
        ids(&index, "도서관"),
        [changed.id]
            .into_iter()
            .chain(
                docs.iter()
                    .skip(2)
                    .filter(|d| normalize(&d.title).contains("도서관"))
                    .map(|d| d.id)
            )
            .collect()
    );
    assert_eq!(index.applied_outbox_id(), 43);
}

#[test]
fn hits_sort_by_reading_in_gojuon_order_and_by_year() {
    let index = index_of(&[
        doc(1, "山の本", "ヤマ ノ ホン", 1990),
        doc(2, "雨の本", "あめ の ほん", 2005),
        doc(3, "風の本", "カゼ ノ ホン", 1970),
    ]);
    let order = |sort| {
        index
            .search(&SearchRequest {
                query: "本".into(),
                limit: 10,
                sort,
                ..Default::default()
            })
            .expect("search")
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect::<Vec<_>>()
    };
    let years = |q: &str| ids(&index, q);
    assert_eq!(years("本 year:1980-2005"), [1, 2].into());
    assert_eq!(years("year:-1980"), [3].into());
    assert_eq!(years("year:1990"), [1].into());
    assert!(
        index
            .search(&SearchRequest {
                query: "year:199x".into(),
                limit: 1,
                ..Default::default()
            })
            .is_err()
    );
    assert_eq!(years("山 OR 雨"), [1, 2].into());
    assert_eq!(years("本 NOT 山"), [2, 3].into());
    assert_eq!(years("本 -山 -風"), [2].into());
    assert_eq!(years("-山"), [2, 3].into());
    assert_eq!(years("山 OR 雨 year:2000-"), [2].into());
    // あめ < かぜ < やま, whatever the script of the reading.
    assert_eq!(order(shoko_search::Sort::Title), vec![2, 3, 1]);
    assert_eq!(order(shoko_search::Sort::YearDesc), vec![2, 1, 3]);
    assert_eq!(order(shoko_search::Sort::YearAsc), vec![3, 1, 2]);
}

#[test]
fn call_numbers_and_words_match_by_prefix() {
    let index = index_of(&[
        IndexDoc {
            id: 1,
            title: "Computers in libraries".into(),
            call_numbers: vec!["Z678.9 .C65 1999".into()],
            format: "book".into(),
            ..Default::default()
        },
        IndexDoc {
            id: 2,
            title: "Compost".into(),
            call_numbers: vec!["S661 .C6".into()],
            format: "book".into(),
            ..Default::default()
        },
    ]);
    assert_eq!(ids(&index, "callno:Z678"), [1].into());
    assert_eq!(ids(&index, "callno:z678.9.c65"), [1].into());
    assert_eq!(ids(&index, "callno:S661*"), [2].into());
    assert_eq!(ids(&index, "compu*"), [1].into());
    assert_eq!(ids(&index, "comp*"), [1, 2].into());
    assert_eq!(ids(&index, "callno:Q"), BTreeSet::new());
}

fn doc(id: u64, title: &str, reading: &str, year: i32) -> IndexDoc {
    IndexDoc {
        id,
        title: title.into(),
        title_reading: reading.into(),
        year: Some(year),
        format: "book".into(),
        ..Default::default()
    }
}

fn ranked(index: &SearchIndex, query: &str) -> Vec<u64> {
    index
        .search(&SearchRequest {
            query: query.into(),
            limit: 10,
            ..Default::default()
        })
        .expect("search")
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect()
}

#[test]
fn the_exact_title_ranks_first_for_a_known_item_search() {
    // Many titles that contain the words, and the one whose title they are.
    let mut docs: Vec<IndexDoc> = (1..=30)
        .map(|i| {
            doc(
                i,
                &format!("こころ と 夏目漱石 こころ 研究 第{i}集 : こころの読み方"),
                "",
                2000,
            )
        })
        .collect();
    docs.push(doc(99, "こころ / 夏目漱石 著", "ココロ", 1914));
    docs.push(doc(
        98,
        "Pride and prejudice : a novel",
        "Pride and prejudice",
        1813,
    ));
    docs.push(doc(97, "Prejudice and pride in Victorian novels", "", 1990));
    let index = index_of(&docs);
    assert_eq!(ranked(&index, "こころ")[0], 99, "the title proper, exactly");
    assert_eq!(ranked(&index, "ｺｺﾛ")[0], 99, "in half-width katakana");
    assert_eq!(ranked(&index, "pride and prejudice")[0], 98);
    assert_eq!(ranked(&index, "Pride and Prejudice : a novel")[0], 98);
    // Fielded searches are not known-item searches, but still match.
    assert!(ranked(&index, "title:こころ").contains(&99));
}

#[test]
fn a_phrase_matches_its_words_in_order_only() {
    let index = index_of(&[
        doc(1, "Pride and prejudice", "", 1813),
        doc(2, "Prejudice and pride", "", 1990),
        doc(3, "日本の歴史と文化", "", 2001),
        doc(4, "文化と歴史の日本", "", 2002),
    ]);
    assert_eq!(ids(&index, "\"pride and prejudice\""), BTreeSet::from([1]));
    assert_eq!(ids(&index, "pride prejudice"), BTreeSet::from([1, 2]));
    assert_eq!(ids(&index, "title:\"日本の歴史\""), BTreeSet::from([3]));
    assert_eq!(ids(&index, "\"文化と歴史\""), BTreeSet::from([4]));
    assert_eq!(
        ids(&index, "\"文化 日本\""),
        BTreeSet::new(),
        "order counts"
    );
    assert_eq!(ids(&index, "歴史 文化"), BTreeSet::from([3, 4]));
}

#[test]
fn decades_are_a_facet_and_a_filter_and_the_reading_is_searchable() {
    let index = index_of(&[
        doc(1, "源氏物語", "ゲンジ モノガタリ", 1995),
        doc(2, "源氏物語の世界", "ゲンジ モノガタリ ノ セカイ", 1999),
        doc(
            3,
            "源氏物語と平安京",
            "ゲンジ モノガタリ ト ヘイアンキョウ",
            2011,
        ),
    ]);
    let page = index
        .search(&SearchRequest {
            query: "源氏".into(),
            limit: 10,
            facets: vec![Facet::Year],
            ..Default::default()
        })
        .expect("search");
    assert_eq!(
        page.facets["year"],
        vec![("2010-2019".to_owned(), 1), ("1990-1999".to_owned(), 2)]
    );
    let nineties = index
        .search(&SearchRequest {
            query: "源氏".into(),
            limit: 10,
            filters: vec![(Facet::Year, "1990-1999".into())],
            ..Default::default()
        })
        .expect("search");
    assert_eq!(nineties.total, 2);
    assert_eq!(ids(&index, "reading:へいあんきょう"), BTreeSet::from([3]));
    assert_eq!(ids(&index, "reading:ゲンジ"), BTreeSet::from([1, 2, 3]));
}

#[cfg(target_os = "linux")]
#[test]
fn the_index_writers_threads_run_below_the_servers_own() {
    let dir = tempfile::tempdir().expect("dir");
    let caller = shoko_testkit::my_nice();
    let index = SearchIndex::open(dir.path(), 15_000_000).expect("open");
    // Tantivy starts the writer's threads from the thread that opens or
    // commits it (the indexing ones when it needs them). Each one present
    // must run at the lower priority; the updater and merge threads are
    // always present.
    index
        .apply(
            docs("loc_books2016_jpn300.mrc", 1)
                .into_iter()
                .map(|d| (d.id, Some(d)))
                .collect(),
            Vec::new(),
            1,
        )
        .expect("apply");
    let threads = shoko_testkit::thread_nice_values();
    let writer: Vec<&(String, i32)> = threads
        .iter()
        .filter(|(name, _)| {
            name.starts_with("thrd-tantivy")
                || name.starts_with("merge_thread")
                || name == "segment_updater"
        })
        .collect();
    assert!(
        writer.iter().any(|(name, _)| name == "segment_updater")
            && writer
                .iter()
                .any(|(name, _)| name.starts_with("merge_thread")),
        "the writer's threads are missing from {threads:?}"
    );
    for (name, nice) in &writer {
        assert_eq!(*nice, caller + shoko_search::INDEXING_NICE, "{name}");
    }
    // The calling thread (a server's) keeps its priority.
    assert_eq!(shoko_testkit::my_nice(), caller);
}
