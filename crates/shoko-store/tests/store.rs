//! The storage contract, on SQLite and on PostgreSQL alike.

use shoko_domain::catalogue::summarise;
use shoko_domain::{Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode};
use shoko_marc::{Field, Record, Subfield, Tag, iso2709};
use shoko_store::{ImportRecord, RecordWrite, Store};
use shoko_testkit::each_engine;

/// A write by the test at time `now`, without an idempotency key.
fn ctx(now: i64) -> shoko_store::WriteCtx {
    shoko_store::WriteCtx {
        actor: "system".into(),
        now,
        idempotency: None,
    }
}

fn record(control: &str, title: &str, barcodes: &[&str]) -> ImportRecord {
    record_with(Some(control), None, title, barcodes)
}

fn data(tag: &str, code: char, value: &str) -> Field {
    Field::Data {
        tag: tag.parse::<Tag>().expect("tag"),
        ind1: '1',
        ind2: '0',
        subfields: vec![Subfield {
            code,
            value: value.into(),
        }],
    }
}

/// A record with an optional 001 (and 003 JTNDL), an optional 035 and items at HONGO.
fn record_with(
    control: Option<&str>,
    system: Option<&str>,
    title: &str,
    barcodes: &[&str],
) -> ImportRecord {
    let mut r = Record::new();
    if let Some(c) = control {
        r.fields.push(Field::Control {
            tag: "001".parse::<Tag>().expect("tag"),
            value: c.into(),
        });
        r.fields.push(Field::Control {
            tag: "003".parse::<Tag>().expect("tag"),
            value: "JTNDL".into(),
        });
    }
    if let Some(s) = system {
        r.fields.push(data("035", 'a', s));
    }
    r.fields.push(data("245", 'a', title));
    let mut marc = Vec::new();
    iso2709::encode(&r, &mut marc).expect("encodes");
    let items = barcodes
        .iter()
        .map(|b| ItemSpec {
            barcode: Barcode::parse(b).expect("barcode"),
            campus: CampusCode::parse("HONGO").expect("campus"),
            location: Some(LocationCode::parse("STACKS").expect("location")),
            call_number: Some("913.6/N38".into()),
            item_type: ItemTypeCode::parse("BOOK").expect("type"),
            status: ItemStatus::Available,
        })
        .collect();
    ImportRecord::new(1, summarise(&r), marc, items)
}

async fn run(store: &Store) -> i64 {
    store
        .begin_import_run(&["test.mrc".into()], 1)
        .await
        .expect("run")
}

#[tokio::test]
async fn a_batch_stores_records_items_and_one_outbox_row_per_record() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        let batch = vec![
            record("001", "吾輩は猫である", &["B001", "B002"]),
            record("002", "坊っちゃん", &["B003"]),
        ];
        let out = store
            .write_import_batch(run, batch, 10)
            .await
            .expect("batch");
        assert_eq!(
            (out.imported, out.updated, out.items_created),
            (2, 0, 3),
            "{}",
            db.engine()
        );
        let c = store.counts().await.expect("counts");
        assert_eq!((c.records, c.items, c.outbox), (2, 3, 2), "{}", db.engine());
        let found = store.records_by_control_number("001").await.expect("find");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].title, "吾輩は猫である");
        let items = store.items_of(found[0].id).await.expect("items");
        assert_eq!(
            items.iter().map(|i| i.barcode.as_str()).collect::<Vec<_>>(),
            ["B001", "B002"]
        );
        assert_eq!(
            store.import_run_committed(run).await.expect("run"),
            Some(("running".into(), 2))
        );
    })
    .await;
}

#[tokio::test]
async fn reimporting_a_record_updates_it_instead_of_duplicating() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(run, vec![record("001", "吾輩は猫である", &["B001"])], 10)
            .await
            .expect("first");
        let out = store
            .write_import_batch(
                run,
                vec![record("001", "吾輩ハ猫デアル", &["B001", "B009"])],
                20,
            )
            .await
            .expect("second");
        assert_eq!((out.imported, out.updated), (0, 1), "{}", db.engine());
        assert_eq!((out.items_created, out.items_updated), (1, 1));
        let found = store.records_by_control_number("001").await.expect("find");
        assert_eq!(found.len(), 1, "{}", db.engine());
        assert_eq!(found[0].title, "吾輩ハ猫デアル");
        assert_eq!(
            (found[0].version, found[0].created_at, found[0].updated_at),
            (2, 10, 20)
        );
        assert_eq!(store.counts().await.expect("counts").items, 2);
    })
    .await;
}

#[tokio::test]
async fn the_same_record_twice_in_one_batch_is_stored_once_with_the_later_version() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        let out = store
            .write_import_batch(
                run,
                vec![record("007", "first", &[]), record("007", "second", &[])],
                1,
            )
            .await
            .expect("batch");
        assert_eq!((out.imported, out.updated), (1, 1), "{}", db.engine());
        let found = store.records_by_control_number("007").await.expect("find");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].title, "second");
    })
    .await;
}

#[tokio::test]
async fn a_barcode_held_by_another_record_is_reported_and_not_moved() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(run, vec![record("001", "a", &["B001"])], 1)
            .await
            .expect("first");
        let out = store
            .write_import_batch(run, vec![record("002", "b", &["B001"])], 1)
            .await
            .expect("second");
        assert_eq!(out.warnings.len(), 1, "{}", db.engine());
        assert!(out.warnings[0].reason.contains("B001"));
        let item = store
            .item_by_barcode("B001")
            .await
            .expect("item")
            .expect("exists");
        let first = &store.records_by_control_number("001").await.expect("find")[0];
        assert_eq!(item.record_id, first.id);
    })
    .await;
}

#[tokio::test]
async fn an_item_added_later_gets_an_outbox_row_and_a_taken_barcode_is_refused() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(run, vec![record("001", "a", &["B001"])], 1)
            .await
            .expect("import");
        let id = store.records_by_control_number("001").await.expect("find")[0].id;
        let mut spec = record("x", "x", &["B002"]).items.remove(0);
        let added = store
            .add_item(id, &spec, &ctx(5))
            .await
            .expect("add")
            .expect("added");
        assert_eq!(
            (added.barcode.as_str(), added.status.as_str()),
            ("B002", "available")
        );
        spec.barcode = Barcode::parse("B001").expect("barcode");
        assert!(
            store
                .add_item(id, &spec, &ctx(6))
                .await
                .expect("add")
                .is_none(),
            "{}",
            db.engine()
        );
        assert_eq!(store.counts().await.expect("counts").outbox, 2);
    })
    .await;
}

#[tokio::test]
async fn paging_by_id_visits_every_record_once() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        let batch: Vec<_> = (0..25)
            .map(|i| record(&format!("{i:03}"), "t", &[]))
            .collect();
        store
            .write_import_batch(run, batch, 1)
            .await
            .expect("batch");
        let (mut after, mut seen) = (0, Vec::new());
        loop {
            let page = store.records_after(after, 7).await.expect("page");
            let Some(last) = page.last() else { break };
            after = last.id;
            seen.extend(page.iter().map(|r| r.control_number.clone().expect("001")));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "{}", db.engine());
    })
    .await;
}

#[tokio::test]
async fn reopening_applies_no_migration_twice_and_keeps_the_data() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(run, vec![record("001", "a", &[])], 1)
            .await
            .expect("import");
        let migrations = store.applied_migrations().await.expect("migrations");
        store.close().await.expect("close");
        let again = db.store().await;
        assert_eq!(
            again.applied_migrations().await.expect("migrations"),
            migrations
        );
        assert_eq!(
            again.counts().await.expect("counts").records,
            1,
            "{}",
            db.engine()
        );
    })
    .await;
}

#[tokio::test]
async fn an_item_with_an_unconfigured_campus_cannot_be_stored() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        let mut r = record("001", "a", &["B001"]);
        r.items[0].campus = CampusCode::parse("MOON").expect("code");
        let err = store.write_import_batch(run, vec![r], 1).await;
        assert!(err.is_err(), "{}: foreign key must refuse it", db.engine());
        // Nothing of the refused batch is stored.
        assert_eq!(store.counts().await.expect("counts").records, 0);
    })
    .await;
}

#[tokio::test]
async fn records_with_different_001s_sharing_an_035_stay_apart_and_a_record_without_001_matches_by_035()
 {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        let with_035 = |control: Option<&str>, title: &str| {
            record_with(control, Some("(OCoLC)12345"), title, &[])
        };
        let out = store
            .write_import_batch(
                run,
                vec![with_035(Some("001"), "a"), with_035(Some("002"), "b")],
                1,
            )
            .await
            .expect("batch");
        assert_eq!((out.imported, out.updated), (2, 0), "{}", db.engine());
        let out = store
            .write_import_batch(run, vec![with_035(None, "c")], 2)
            .await
            .expect("batch");
        assert_eq!((out.imported, out.updated), (0, 1), "{}", db.engine());
        assert_eq!(store.counts().await.expect("counts").records, 2);
    })
    .await;
}

#[tokio::test]
async fn an_edit_replaces_the_record_at_its_version_and_writes_an_outbox_row() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(run, vec![record("001", "吾輩は猫である", &["B001"])], 1)
            .await
            .expect("import");
        let stored = store.records_by_control_number("001").await.expect("find")[0].clone();
        assert_eq!(stored.version, 1);
        let edited = record("001", "吾輩ハ猫デアル", &[]);
        let RecordWrite::Written(now) = store
            .replace_record(stored.id, 1, edited.clone(), &ctx(7))
            .await
            .expect("replace")
        else {
            panic!(
                "{}: the edit at the current version was refused",
                db.engine()
            );
        };
        assert_eq!(
            (
                now.title.as_str(),
                now.version,
                now.updated_at,
                now.created_at
            ),
            ("吾輩ハ猫デアル", 2, 7, 1)
        );
        // An editor still holding version 1 is told, and nothing changes.
        let stale = store
            .replace_record(stored.id, 1, record("001", "上書き", &[]), &ctx(8))
            .await
            .expect("replace");
        assert!(
            matches!(stale, RecordWrite::Stale { current: 2 }),
            "{stale:?}"
        );
        let kept = store.record(stored.id).await.expect("read").expect("there");
        assert_eq!(kept.title, "吾輩ハ猫デアル");
        // The items stay with the record.
        assert_eq!(store.items_of(stored.id).await.expect("items").len(), 1);
        assert!(matches!(
            store
                .replace_record(999, 1, edited, &ctx(9))
                .await
                .expect("replace"),
            RecordWrite::NotFound
        ));
        let outbox = store.outbox_after(0, 10).await.expect("outbox");
        assert_eq!(outbox.len(), 2, "{}: import and one edit", db.engine());
        assert_eq!(outbox[1].record_id, stored.id);
        assert!(!outbox[1].status_only, "an edit changes the record's text");
    })
    .await;
}

#[tokio::test]
async fn a_record_is_deleted_only_without_items_and_at_its_version() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(
                run,
                vec![
                    record("001", "蔵書あり", &["B001"]),
                    record("002", "蔵書なし", &[]),
                ],
                1,
            )
            .await
            .expect("import");
        let with_items = store.records_by_control_number("001").await.expect("find")[0].id;
        let without = store.records_by_control_number("002").await.expect("find")[0].id;
        let refused = store
            .delete_record(with_items, 1, &ctx(2))
            .await
            .expect("delete");
        assert!(matches!(refused, RecordWrite::HasItems(1)), "{refused:?}");
        let stale = store
            .delete_record(without, 5, &ctx(2))
            .await
            .expect("delete");
        assert!(
            matches!(stale, RecordWrite::Stale { current: 1 }),
            "{stale:?}"
        );
        assert!(matches!(
            store
                .delete_record(without, 1, &ctx(3))
                .await
                .expect("delete"),
            RecordWrite::Deleted
        ));
        assert!(store.record(without).await.expect("read").is_none());
        assert!(store.record(with_items).await.expect("read").is_some());
        let outbox = store.outbox_after(2, 10).await.expect("outbox");
        assert_eq!(
            outbox.iter().map(|o| o.record_id).collect::<Vec<_>>(),
            vec![without],
            "{}: one outbox row, for the deletion",
            db.engine()
        );
        assert!(matches!(
            store
                .delete_record(without, 1, &ctx(4))
                .await
                .expect("delete"),
            RecordWrite::NotFound
        ));
    })
    .await;
}

#[tokio::test]
async fn an_item_status_change_bumps_its_version_and_writes_its_records_outbox_row() {
    each_engine(|db| async move {
        let store = db.store().await;
        let run = run(&store).await;
        store
            .write_import_batch(run, vec![record("001", "a", &["B001"])], 1)
            .await
            .expect("import");
        let item = store
            .item_by_barcode("B001")
            .await
            .expect("read")
            .expect("there");
        let changed = store
            .set_item_status(item.id, "missing", &ctx(5))
            .await
            .expect("set")
            .expect("found");
        assert_eq!((changed.status.as_str(), changed.version), ("missing", 2));
        assert!(
            store
                .set_item_status(9999, "missing", &ctx(5))
                .await
                .expect("set")
                .is_none()
        );
        let outbox = store.outbox_after(0, 10).await.expect("outbox");
        assert_eq!(outbox.len(), 2, "{}", db.engine());
        assert_eq!(outbox[1].record_id, item.record_id);
        assert!(outbox[1].status_only, "only availability changed");
        assert!(!outbox[0].status_only, "the import added the record");
    })
    .await;
}

#[tokio::test]
async fn a_store_with_its_own_pool_sees_and_makes_the_same_data_through_the_same_writer() {
    each_engine(|db| async move {
        let store = db.store().await;
        let own = store.with_own_pool(db.url(), 2).await.expect("own pool");
        let (first, second) = (run(&store).await, run(&own).await);
        // At once through both: on SQLite both go through the one writer.
        let (a, b) = tokio::join!(
            store.write_import_batch(first, vec![record("001", "図書館情報学", &["B001"])], 1),
            own.write_import_batch(second, vec![record("002", "東京大学", &["B002"])], 1),
        );
        assert_eq!(a.expect("through the store").imported, 1, "{}", db.engine());
        assert_eq!(
            b.expect("through its own pool").imported,
            1,
            "{}",
            db.engine()
        );
        for seen in [&store, &own] {
            let c = seen.counts().await.expect("counts");
            assert_eq!((c.records, c.items, c.outbox), (2, 2, 2), "{}", db.engine());
        }
        let item = own
            .item_by_barcode("B001")
            .await
            .expect("read")
            .expect("there");
        own.set_item_status(item.id, "missing", &ctx(5))
            .await
            .expect("set")
            .expect("found");
        let seen = store
            .item_by_barcode("B001")
            .await
            .expect("read")
            .expect("there");
        assert_eq!(seen.status.as_str(), "missing", "{}", db.engine());
        let outbox = store.outbox_after(0, 10).await.expect("outbox");
        let ids: Vec<i64> = outbox.iter().map(|row| row.id).collect();
        assert_eq!(ids.len(), 3, "{}", db.engine());
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one sequence: {ids:?}");
    })
    .await;
}
