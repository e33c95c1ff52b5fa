//! The index follows the catalogue through the outbox, on both engines.

use std::sync::Arc;

use shoko_app::import::{InputFormat, Silent};
use shoko_app::settings::{CampusSetting, NamedCode};
use shoko_app::{App, CatalogueSettings, IndexOptions, StoreOptions, SystemClock};
use shoko_domain::{Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode};
use shoko_search::{Facet, SearchRequest};
use shoko_testkit::{each_engine, fixtures};

fn settings() -> CatalogueSettings {
    let mut s = CatalogueSettings::default();
    s.campuses.push(CampusSetting {
        code: CampusCode::parse("KOMABA").expect("code"),
        name_ja: "駒場".into(),
        name_en: "Komaba".into(),
        locations: vec![NamedCode {
            code: LocationCode::parse("OPEN").expect("code"),
            name_ja: "開架".into(),
            name_en: "Open shelves".into(),
        }],
    });
    s
}

/// An app on this database with these index options.
async fn app_on(db: &shoko_testkit::TestDb, index: &IndexOptions) -> App {
    App::open(
        db.url(),
        &StoreOptions::default(),
        index,
        shoko_app::Settings {
            catalogue: settings(),
            ..Default::default()
        },
        Arc::new(SystemClock),
    )
    .await
    .expect("app")
}

/// An app on this database with the 300 Japanese fixture records imported
/// (the index not yet caught up).
async fn app_with_jpn300(db: &shoko_testkit::TestDb) -> App {
    app_with_jpn300_on(db, &IndexOptions::default()).await
}

async fn app_with_jpn300_on(db: &shoko_testkit::TestDb, index: &IndexOptions) -> App {
    let app = app_on(db, index).await;
    let file = fixtures().join("marc/loc/loc_books2016_jpn300.mrc");
    app.import_files(&[file], InputFormat::Auto, Arc::new(Silent))
        .await
        .expect("import");
    app
}

#[tokio::test]
async fn a_catalogue_change_reaches_search_after_catch_up_and_health_shows_the_lag() {
    each_engine(|db| async move {
        let app = app_with_jpn300(&db).await;
        let status = app.index_status().await.expect("status");
        assert_eq!(
            (status.lag_rows, status.documents),
            (300, 0),
            "{}",
            db.engine()
        );
        app.index_catch_up().await.expect("catch up");
        let status = app.index_status().await.expect("status");
        assert_eq!(
            (status.lag_rows, status.documents),
            (0, 300),
            "{}",
            db.engine()
        );

        let komaba = |app: App| async move {
            app.search(&SearchRequest {
                query: "title:講談".into(),
                limit: 10,
                facets: vec![Facet::Campus],
                filters: vec![(Facet::Campus, "KOMABA".into())],
                ..Default::default()
            })
            .await
            .expect("search")
        };
        assert_eq!(komaba(app.clone()).await.total, 0);
        let id = app
            .search(&SearchRequest {
                query: "title:講談".into(),
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("search")
            .hits[0]
            .id;
        app.add_item(
            &App::system(),
            id,
            ItemSpec {
                barcode: Barcode::parse("KMB001").expect("barcode"),
                campus: CampusCode::parse("KOMABA").expect("campus"),
                location: Some(LocationCode::parse("OPEN").expect("location")),
                call_number: Some("779.12/A12".into()),
                item_type: ItemTypeCode::parse("BOOK").expect("type"),
                status: ItemStatus::Available,
            },
        )
        .await
        .expect("add item");
        assert_eq!(app.index_status().await.expect("status").lag_rows, 1);
        assert_eq!(app.index_catch_up().await.expect("catch up"), 1);
        let page = komaba(app.clone()).await;
        assert_eq!(page.total, 1, "{}", db.engine());
        assert_eq!(page.hits[0].availability[0].campus, "KOMABA");
        assert_eq!(page.facets["campus"][0].value, "KOMABA");
    })
    .await;
}

/// Adds an available copy at Komaba to `record`.
async fn add_komaba_copy(app: &App, record: i64, barcode: &str) -> shoko_store::StoredItem {
    app.add_item(
        &App::system(),
        record,
        ItemSpec {
            barcode: Barcode::parse(barcode).expect("barcode"),
            campus: CampusCode::parse("KOMABA").expect("campus"),
            location: None,
            call_number: None,
            item_type: ItemTypeCode::parse("BOOK").expect("type"),
            status: ItemStatus::Available,
        },
    )
    .await
    .expect("add item")
}

/// Sets the first 245 $a of a record and drops its vernacular 880 twin.
fn retitle(record: &mut shoko_marc::Record, title: &str) {
    record.fields.retain(|f| match f {
        shoko_marc::Field::Data { tag, subfields, .. } => {
            tag.as_str() != "880"
                || !subfields
                    .iter()
                    .any(|s| s.code == '6' && s.value.starts_with("245"))
        }
        _ => true,
    });
    for field in &mut record.fields {
        if let shoko_marc::Field::Data { tag, subfields, .. } = field
            && tag.as_str() == "245"
        {
            subfields.retain(|s| s.code != 'a');
            subfields.insert(
                0,
                shoko_marc::Subfield {
                    code: 'a',
                    value: title.into(),
                },
            );
            return;
        }
    }
    panic!("the record has no 245");
}

#[tokio::test]
async fn edits_deletes_and_status_changes_are_searchable_within_the_bound_while_searches_run() {
    each_engine(|db| async move {
        let app = app_with_jpn300(&db).await;
        app.index_catch_up().await.expect("catch up");

        // The indexer as `serve` runs it, and searchers that never stop meanwhile.
        let refresh = std::time::Duration::from_millis(100);
        let bound = std::time::Duration::from_secs(10);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let indexer = tokio::spawn({
            let app = app.clone();
            let stopped = stopped.clone();
            async move { app.index_forever(refresh, stopped).await }
        });
        let searchers: Vec<_> = ["title:日本", "講談", "year:2000-2016", "東京"]
            .into_iter()
            .map(|q| {
                let app = app.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut n = 0u32;
                    while !*stopped.borrow() {
                        let request = SearchRequest {
                            query: q.into(),
                            limit: 20,
                            facets: vec![Facet::Campus, Facet::Availability],
                            ..Default::default()
                        };
                        app.search(&request).await.expect("a search during changes");
                        n += 1;
                        tokio::task::yield_now().await;
                    }
                    n
                })
            })
            .collect();

        let ids: Vec<i64> = app
            .store
            .records_after(0, 20)
            .await
            .expect("records")
            .iter()
            .map(|r| r.id)
            .collect();
        let titled = |app: App, q: String| async move {
            let request = SearchRequest {
                query: q,
                limit: 50,
                ..Default::default()
            };
            app.search(&request).await.expect("search")
        };
        let indexed = |app: App| async move {
            let (head, _) = app.store.outbox_head().await.expect("head").expect("rows");
            assert!(
                app.wait_until_indexed(head, bound).await,
                "outbox row {head} not searchable within {bound:?}"
            );
        };
        let numerals = ["一", "二", "三", "四", "五", "六", "七", "八"];
        for (k, numeral) in numerals.iter().enumerate() {
            // Edit one record: its new title is found, and its old one no longer is.
            let id = ids[k];
            let view = app.record(id).await.expect("read").expect("there");
            let old_title = view.record.title.clone();
            let mut marc = view.marc.clone();
            let new_title = format!("整合性試験第{numeral}巻");
            retitle(&mut marc, &new_title);
            app.replace_record(&App::system(), id, view.record.version, &marc)
                .await
                .expect("edit");
            // Delete another.
            let gone = ids[10 + k];
            let gone_view = app.record(gone).await.expect("read").expect("there");
            app.delete_record(&App::system(), gone, gone_view.record.version)
                .await
                .expect("delete");
            indexed(app.clone()).await;

            let found = titled(app.clone(), format!("title:\"{new_title}\"")).await;
            assert_eq!(
                found.hits.iter().map(|h| h.id).collect::<Vec<_>>(),
                vec![id],
                "{}: the edited title",
                db.engine()
            );
            let before = titled(app.clone(), format!("title:\"{old_title}\"")).await;
            assert!(
                before.hits.iter().all(|h| h.id != id),
                "{}: the old title still finds record {id}",
                db.engine()
            );
            let deleted =
                titled(app.clone(), format!("title:\"{}\"", gone_view.record.title)).await;
            assert!(
                deleted.hits.iter().all(|h| h.id != gone),
                "{}: deleted record {gone} is still found",
                db.engine()
            );
        }
        assert_eq!(
            titled(app.clone(), "整合性試験".into()).await.total,
            numerals.len()
        );

        // An item's status: on the shelf, then missing.
        let shelf = |app: App| async move {
            let request = SearchRequest {
                query: "title:\"整合性試験第一巻\"".into(),
                limit: 1,
                filters: vec![(Facet::Availability, "available".into())],
                ..Default::default()
            };
            app.search(&request).await.expect("search").total
        };
        let item = add_komaba_copy(&app, ids[0], "KMB900").await;
        indexed(app.clone()).await;
        assert_eq!(shelf(app.clone()).await, 1, "{}", db.engine());
        app.set_item_status(&App::system(), item.id, ItemStatus::Missing)
            .await
            .expect("status")
            .expect("item");
        indexed(app.clone()).await;
        assert_eq!(shelf(app.clone()).await, 0, "{}", db.engine());

        stop.send_replace(true);
        indexer.await.expect("indexer");
        for s in searchers {
            assert!(s.await.expect("searcher") > 0);
        }
        let status = app.index_status().await.expect("status");
        assert_eq!(
            (status.lag_rows, status.documents, status.last_error),
            (0, 300 - numerals.len() as u64, None),
            "{}",
            db.engine()
        );
    })
    .await;
}

#[tokio::test]
async fn a_record_that_cannot_be_indexed_is_named_in_health_and_holds_the_index_until_repaired() {
    each_engine(|db| async move {
        let app = app_with_jpn300(&db).await;
        app.index_round().await;
        let id = app.store.records_after(0, 1).await.expect("records")[0].id;
        let view = app.record(id).await.expect("read").expect("there");
        let mut marc = view.marc.clone();
        retitle(&mut marc, "修復試験");
        app.replace_record(&App::system(), id, view.record.version, &marc)
            .await
            .expect("edit");
        // Damage the stored row behind Shoko's back, as a manual edit would.
        db.execute_sql(&format!(
            "UPDATE records SET authors = 'not a list' WHERE id = {id}"
        ))
        .await;

        app.index_round().await;
        let status = app.index_status().await.expect("status");
        let error = status.last_error.clone().unwrap_or_default();
        assert!(
            error.contains(&format!("record {id}")) && error.contains("authors"),
            "{}: health must name the record and the field: {status:?}",
            db.engine()
        );
        assert_eq!(
            status.lag_rows,
            1,
            "{}: the change is not skipped",
            db.engine()
        );

        // Saving the record again rewrites its derived fields from its MARC record.
        assert!(
            app.store.record(id).await.is_err(),
            "the damaged row fails to read"
        );
        app.replace_record(&App::system(), id, view.record.version + 1, &marc)
            .await
            .expect("repair");
        app.index_round().await;
        let status = app.index_status().await.expect("status");
        assert_eq!(
            (status.lag_rows, status.last_error),
            (0, None),
            "{}",
            db.engine()
        );
        let found = app
            .search(&SearchRequest {
                query: "title:修復試験".into(),
                limit: 5,
                ..Default::default()
            })
            .await
            .expect("search");
        assert_eq!(
            found.hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![id]
        );
    })
    .await;
}

/// Records with a copy on the shelf, by the availability filter, and what
/// the hit for `record` shows of its copies: (on the shelf, held).
async fn on_shelf(app: &App, record: i64) -> (usize, Option<(u32, u32)>) {
    let page = app
        .search(&SearchRequest {
            query: String::new(),
            limit: 1000,
            facets: vec![Facet::Availability],
            ..Default::default()
        })
        .await
        .expect("search");
    let filtered = app
        .search(&SearchRequest {
            query: String::new(),
            limit: 10,
            filters: vec![(Facet::Availability, "available".into())],
            ..Default::default()
        })
        .await
        .expect("search");
    let counted = page.facets["availability"]
        .iter()
        .find(|v| v.value == "available")
        .map_or(0, |v| v.count as usize);
    assert_eq!(counted, filtered.total, "the facet and the filter agree");
    let shown = page
        .hits
        .iter()
        .find(|h| h.id == record)
        .and_then(|h| h.availability.first())
        .map(|a| (a.available, a.total));
    (filtered.total, shown)
}

/// Asserts `on_the_shelf` records by the filter and facet, and `record`
/// shown with its one copy away.
async fn expect_on_shelf(app: &App, db: &shoko_testkit::TestDb, record: i64, on_the_shelf: usize) {
    assert_eq!(
        on_shelf(app, record).await,
        (on_the_shelf, Some((0, 1))),
        "{}",
        db.engine()
    );
}

#[tokio::test]
async fn a_status_change_is_searched_from_memory_read_again_after_a_restart_and_folded_in() {
    each_engine(|db| async move {
        let dir = tempfile::tempdir().expect("dir");
        let options = IndexOptions {
            dir: Some(dir.path().join("index")),
            fold_records: 3,
            ..Default::default()
        };
        let app = app_with_jpn300_on(&db, &options).await;
        app.index_catch_up().await.expect("catch up");
        let ids: Vec<i64> = app
            .store
            .records_after(0, 4)
            .await
            .expect("records")
            .iter()
            .map(|r| r.id)
            .collect();
        let mut items = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            items.push(add_komaba_copy(&app, *id, &format!("KMB10{k}")).await.id);
        }
        app.index_catch_up().await.expect("catch up");
        assert_eq!(
            on_shelf(&app, ids[0]).await,
            (4, Some((1, 1))),
            "{}",
            db.engine()
        );
        let missing = |app: App, item: i64| async move {
            app.set_item_status(&App::system(), item, ItemStatus::Missing)
                .await
                .expect("status")
                .expect("item");
        };

        // A status change is searchable from memory: the documents stay.
        missing(app.clone(), items[0]).await;
        assert_eq!(app.index_catch_up().await.expect("catch up"), 1);
        let status = app.index_status().await.expect("status");
        assert_eq!((status.lag_rows, status.shelved), (0, 1), "{}", db.engine());
        expect_on_shelf(&app, &db, ids[0], 3).await;

        // A restart reads it again from the outbox.
        drop(app);
        let app = app_on(&db, &options).await;
        let status = app.index_status().await.expect("status");
        assert_eq!(
            (status.lag_rows, status.shelved),
            (1, 0),
            "{}: the row after the documents' position is read again",
            db.engine()
        );
        app.index_catch_up().await.expect("catch up");
        assert_eq!(app.index_status().await.expect("status").shelved, 1);
        expect_on_shelf(&app, &db, ids[0], 3).await;

        // The third shelved record folds them all into the documents.
        missing(app.clone(), items[1]).await;
        missing(app.clone(), items[2]).await;
        app.index_catch_up().await.expect("catch up");
        let status = app.index_status().await.expect("status");
        assert_eq!((status.lag_rows, status.shelved), (0, 0), "{}", db.engine());
        expect_on_shelf(&app, &db, ids[1], 1).await;
        drop(app);
        let app = app_on(&db, &options).await;
        assert_eq!(
            app.index_status().await.expect("status").lag_rows,
            0,
            "{}: folded availability is in the documents on disk",
            db.engine()
        );
        expect_on_shelf(&app, &db, ids[2], 1).await;
    })
    .await;
}
