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

#[tokio::test]
async fn a_catalogue_change_reaches_search_after_catch_up_and_health_shows_the_lag() {
    each_engine(|db| async move {
        let index = IndexOptions {
            dir: None,
            writer_memory: 15_000_000,
            read_only: false,
        };
        let app = App::open(
            db.url(),
            &StoreOptions::default(),
            &index,
            settings(),
            Arc::new(SystemClock),
        )
        .await
        .expect("app");
        let file = fixtures().join("marc/loc/loc_books2016_jpn300.mrc");
        app.import_files(&[file], InputFormat::Auto, Arc::new(Silent))
            .await
            .expect("import");
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
