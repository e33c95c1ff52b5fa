//! Circulation workflows through the real router, in process, with a fake
//! clock, on SQLite and on PostgreSQL: checkout, renewal, fines, transits,
//! holds, recalls, blocks, calendars, anonymisation, idempotency and who may
//! see and do what.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::TimeZone;
use serde_json::{Value, json};
use shoko_app::import::{InputFormat, Silent};
use shoko_app::settings::{CampusSetting, NamedCode};
use shoko_app::{
    App, CatalogueSettings, CirculationSettings, IndexOptions, ManualClock, StoreOptions,
};
use shoko_domain::circulation::Calendar;
use shoko_domain::{CampusCode, LocationCode, Role, Username};
use shoko_testkit::{TestDb, each_engine, fixtures};
use shoko_web::{Admission, Limits, LoginLimits};
use tower::ServiceExt;

const DAY: Duration = Duration::from_secs(86_400);

fn tokyo(y: i32, m: u32, d: u32, h: u32) -> i64 {
    chrono_tz::Asia::Tokyo
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid time")
        .timestamp_millis()
}

/// The last millisecond of a Tokyo date.
fn end_of(y: i32, m: u32, d: u32) -> i64 {
    tokyo(y, m, d, 0) + 86_400_000 - 1
}

fn campus(code: &str, ja: &str, en: &str) -> CampusSetting {
    CampusSetting {
        code: CampusCode::parse(code).expect("code"),
        name_ja: ja.into(),
        name_en: en.into(),
        locations: vec![NamedCode {
            code: LocationCode::parse("OPEN").expect("code"),
            name_ja: "開架".into(),
            name_en: "Open shelves".into(),
        }],
    }
}

/// A library of three campuses with the 300 Japanese fixture records, staff
/// accounts for each role, and the router in front of it.
struct Library {
    router: Router,
    app: App,
    clock: Arc<ManualClock>,
    admin: String,
    desk: String,
    cataloguer: String,
    /// Records with items: (record id, [item barcodes]).
    titles: Vec<(i64, Vec<String>)>,
}

impl Library {
    async fn open(db: &TestDb, circulation: CirculationSettings) -> Library {
        Library::open_with(db, circulation, Default::default()).await
    }

    async fn open_with(
        db: &TestDb,
        circulation: CirculationSettings,
        operations: shoko_app::OperationsSettings,
    ) -> Library {
        let settings = CatalogueSettings {
            campuses: vec![
                campus("MAIN", "本館", "Main Library"),
                campus("KOMABA", "駒場", "Komaba"),
                campus("KASHIWA", "柏", "Kashiwa"),
            ],
            ..CatalogueSettings::default()
        };
        let clock = Arc::new(ManualClock::new(tokyo(2026, 11, 25, 10)));
        let app = App::open(
            db.url(),
            &StoreOptions::default(),
            &IndexOptions::default(),
            shoko_app::Settings {
                catalogue: settings,
                circulation,
                operations,
                ..Default::default()
            },
            clock.clone(),
        )
        .await
        .expect("app");
        let file = fixtures().join("marc/loc/loc_books2016_jpn300.mrc");
        app.import_files(&[file], InputFormat::Auto, Arc::new(Silent))
            .await
            .expect("import");
        let system = App::system();
        for (name, role) in [
            ("admin", Role::Admin),
            ("desk", Role::Circulation),
            ("cataloguer", Role::Cataloguer),
        ] {
            app.add_staff(
                &system,
                &Username::parse(name).expect("name"),
                name,
                role,
                "a long enough password",
            )
            .await
            .expect("staff");
        }
        let router = shoko_web::router(
            app.clone(),
            Arc::new(Admission::new(Limits::for_cores(2))),
            Arc::new(LoginLimits::new(true)),
        );
        let mut lib = Library {
            router,
            app,
            clock,
            admin: String::new(),
            desk: String::new(),
            cataloguer: String::new(),
            titles: Vec::new(),
        };
        lib.admin = lib.login("staff", "admin", "a long enough password").await;
        lib.desk = lib.login("staff", "desk", "a long enough password").await;
        lib.cataloguer = lib
            .login("staff", "cataloguer", "a long enough password")
            .await;
        // Two titles with a copy at MAIN and one at KOMABA, one with a single copy at MAIN.
        let ids = lib.app.store.record_ids_after(0, 3).await.expect("ids");
        let copies: [&[&str]; 3] = [&["MAIN", "KOMABA"], &["MAIN"], &["KASHIWA"]];
        for (n, (id, campuses)) in ids.iter().zip(copies).enumerate() {
            let mut barcodes = Vec::new();
            for (k, c) in campuses.iter().enumerate() {
                let barcode = format!("30{n}{k}");
                let (status, body) = lib
                    .call(
                        Method::POST,
                        &format!("/api/v1/records/{id}/items"),
                        Some(&lib.cataloguer),
                        Some(json!({"barcode": barcode, "campus": c, "item_type": "BOOK"})),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                barcodes.push(barcode);
            }
            lib.titles.push((*id, barcodes));
        }
        lib
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    fn request(
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Request<Body> {
        let mut r = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        match body {
            Some(b) => r
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => r.body(Body::empty()),
        }
        .expect("request")
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send(Self::request(method, path, token, body, &[]))
            .await
    }

    async fn login(&self, kind: &str, name: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"kind": kind, "name": name, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {name}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Registers a patron (by the desk) with a password, and logs them in.
    async fn patron(&self, barcode: &str, name: &str, extra: Value) -> (i64, String) {
        let mut body = json!({
            "barcode": barcode,
            "name": name,
            "category": "UNDERGRAD",
            "home_campus": "MAIN",
            "email": format!("{barcode}@example.ac.jp"),
            "expires_on": "2030-03-31",
            "password": "patron password 1",
        });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, p) = self
            .call(
                Method::POST,
                "/api/v1/patrons",
                Some(&self.desk),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        let token = self.login("patron", barcode, "patron password 1").await;
        (p["id"].as_i64().expect("id"), token)
    }

    async fn checkout(&self, patron: &str, item: &str, campus: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/loans",
            Some(&self.desk),
            Some(json!({"patron_barcode": patron, "item_barcode": item, "campus": campus})),
        )
        .await
    }

    async fn checkin(&self, item: &str, campus: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/checkins",
                Some(&self.desk),
                Some(json!({"item_barcode": item, "campus": campus})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn stored_patron(&self, id: i64) -> shoko_store::PatronRow {
        self.app
            .store
            .patron(id)
            .await
            .expect("read")
            .expect("patron")
    }

    async fn item_status(&self, barcode: &str) -> String {
        self.app
            .store
            .item_by_barcode(barcode)
            .await
            .expect("read")
            .expect("item")
            .status
    }

    async fn consistent(&self) {
        let problems = self.app.store.circulation_problems().await.expect("check");
        assert!(problems.is_empty(), "{problems:?}");
    }
}

#[tokio::test]
async fn checkout_renew_overdue_return_fine_and_payment() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (p1, _) = lib.patron("P0001", "山田 花子", json!({})).await;
        let (status, out) = lib.checkout("P0001", "3000", "MAIN").await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
        let loan_id = out["loan"]["id"].as_i64().expect("loan id");
        assert_eq!(out["loan"]["due_at"], json!(end_of(2026, 12, 9)));
        assert_eq!(lib.item_status("3000").await, "on_loan");

        // Sessions last 12 hours: the patron logs in again days later.
        lib.clock.advance(5 * DAY);
        let p1_token = lib.login("patron", "P0001", "patron password 1").await;
        let (status, renewed) = lib
            .call(
                Method::POST,
                &format!("/api/v1/loans/{loan_id}/renew"),
                Some(&p1_token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{renewed}");
        assert_eq!(renewed["renewals"], json!(1));
        assert_eq!(renewed["due_at"], json!(end_of(2026, 12, 14)));

        // Returned three days late: 3 days × 10 yen.
        lib.clock.set(tokyo(2026, 12, 17, 11));
        let desk = lib.login("staff", "desk", "a long enough password").await;
        let p1_token = lib.login("patron", "P0001", "patron password 1").await;
        let lib = Library { desk, ..lib };
        let back = lib.checkin("3000", "MAIN").await;
        assert_eq!(back["routing"]["action"], "shelve");
        assert_eq!(back["fine"]["amount"], json!(30));
        assert_eq!(lib.item_status("3000").await, "available");
        let fine_id = back["fine"]["id"].as_i64().expect("fine");

        let (_, me) = lib
            .call(
                Method::GET,
                &format!("/api/v1/patrons/{p1}"),
                Some(&p1_token),
                None,
            )
            .await;
        assert_eq!(me["fines_owed"], json!(30));
        assert_eq!(me["open_loans"], json!(0));
        let (status, paid) = lib
            .call(
                Method::POST,
                &format!("/api/v1/fines/{fine_id}/payments"),
                Some(&lib.desk),
                Some(json!({"amount": 30})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{paid}");
        assert_eq!(paid["paid"], json!(30));
        let (_, me) = lib
            .call(
                Method::GET,
                &format!("/api/v1/patrons/{p1}"),
                Some(&p1_token),
                None,
            )
            .await;
        assert_eq!(me["fines_owed"], json!(0));
        // Paying more than is owed is refused.
        let (status, over) = lib
            .call(
                Method::POST,
                &format!("/api/v1/fines/{fine_id}/payments"),
                Some(&lib.desk),
                Some(json!({"amount": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(over["error"]["code"], "bad_amount");
        lib.consistent().await;
        // The audit log names the desk and the loan before and after.
        let admin = lib.login("staff", "admin", "a long enough password").await;
        let (_, audit) = lib
            .call(
                Method::GET,
                &format!("/api/v1/audit?entity=loan&id={loan_id}"),
                Some(&admin),
                None,
            )
            .await;
        let actions: Vec<&str> = audit
            .as_array()
            .expect("list")
            .iter()
            .map(|a| a["action"].as_str().expect("action"))
            .collect();
        assert_eq!(actions, ["checkin", "renew", "checkout"], "{audit}");
        assert_eq!(audit[0]["actor"], "staff:desk");
        assert_eq!(audit[1]["actor"], format!("patron:{p1}"));
    })
    .await;
}

#[tokio::test]
async fn a_returned_loan_is_anonymised_unless_the_patron_keeps_history() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (private, private_token) = lib.patron("P0001", "匿名 希望", json!({})).await;
        let (keeper, keeper_token) = lib
            .patron("P0002", "履歴 保存", json!({"keep_history": true}))
            .await;
        let (_, a) = lib.checkout("P0001", "3000", "MAIN").await;
        let (_, b) = lib.checkout("P0002", "3010", "MAIN").await;
        lib.checkin("3000", "MAIN").await;
        lib.checkin("3010", "MAIN").await;
        let loan = |v: &Value| v["loan"]["id"].as_i64().expect("id");
        let (_, gone) = lib
            .call(
                Method::GET,
                &format!("/api/v1/loans/{}", loan(&a)),
                Some(&lib.desk),
                None,
            )
            .await;
        assert_eq!(gone["patron_id"], Value::Null);
        let (_, kept) = lib
            .call(
                Method::GET,
                &format!("/api/v1/loans/{}", loan(&b)),
                Some(&lib.desk),
                None,
            )
            .await;
        assert_eq!(kept["patron_id"], json!(keeper));
        let (_, h1) = lib
            .call(
                Method::GET,
                &format!("/api/v1/patrons/{private}/history"),
                Some(&private_token),
                None,
            )
            .await;
        assert_eq!(h1, json!([]));
        let (_, h2) = lib
            .call(
                Method::GET,
                &format!("/api/v1/patrons/{keeper}/history"),
                Some(&keeper_token),
                None,
            )
            .await;
        assert_eq!(h2.as_array().map(Vec::len), Some(1));
        // Turning the opt-in on is the patron's own choice.
        let (status, p) = lib
            .call(
                Method::PATCH,
                &format!("/api/v1/patrons/{private}/preferences"),
                Some(&private_token),
                Some(json!({"keep_history": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["keep_history"], json!(true));
    })
    .await;
}

#[tokio::test]
async fn an_item_checked_in_at_another_campus_travels_home() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        lib.patron("P0001", "佐藤 一郎", json!({})).await;
        lib.checkout("P0001", "3000", "MAIN").await;
        let back = lib.checkin("3000", "KOMABA").await;
        assert_eq!(
            back["routing"],
            json!({"action": "transit", "to": "MAIN", "reason": "home", "hold_id": null})
        );
        assert_eq!(lib.item_status("3000").await, "in_transit");
        let (_, transits) = lib
            .call(
                Method::GET,
                "/api/v1/transits?campus=MAIN",
                Some(&lib.desk),
                None,
            )
            .await;
        assert_eq!(transits.as_array().map(Vec::len), Some(1), "{transits}");
        assert_eq!(transits[0]["from_campus"], "KOMABA");
        let arrived = lib.checkin("3000", "MAIN").await;
        assert_eq!(arrived["arrived"], json!(true));
        assert_eq!(arrived["routing"]["action"], "shelve");
        assert_eq!(lib.item_status("3000").await, "available");
        let (_, transits) = lib
            .call(Method::GET, "/api/v1/transits", Some(&lib.desk), None)
            .await;
        assert_eq!(transits, json!([]));
        lib.consistent().await;
    })
    .await;
}

#[tokio::test]
async fn a_hold_on_a_title_on_loan_recalls_it_and_is_filled_at_the_pickup_campus() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (_, borrower_token) = lib.patron("P0001", "貸出 太郎", json!({})).await;
        let (waiter, waiter_token) = lib
            .patron("P0002", "予約 花子", json!({"home_campus": "KOMABA"}))
            .await;
        let (record, items) = lib.titles[1].clone();
        let (_, out) = lib.checkout("P0001", &items[0], "MAIN").await;
        let loan_id = out["loan"]["id"].as_i64().expect("loan");

        // The only copy is out: the hold recalls it (due in 7 days, not 14).
        let (status, placed) = lib
            .call(
                Method::POST,
                "/api/v1/holds",
                Some(&waiter_token),
                Some(json!({"patron_id": waiter, "record_id": record, "pickup_campus": "KOMABA"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        assert_eq!(placed["recalled"]["id"], json!(loan_id));
        assert_eq!(placed["recalled"]["due_at"], json!(end_of(2026, 12, 2)));
        let hold_id = placed["hold"]["id"].as_i64().expect("hold");

        // A recalled loan with a hold waiting cannot be renewed.
        let (status, refused) = lib
            .call(
                Method::POST,
                &format!("/api/v1/loans/{loan_id}/renew"),
                Some(&borrower_token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(refused["error"]["code"], "renewal_recalled");

        // Returned at MAIN: it travels to KOMABA for the hold.
        let back = lib.checkin(&items[0], "MAIN").await;
        assert_eq!(back["routing"]["action"], "transit");
        assert_eq!(back["routing"]["to"], "KOMABA");
        assert_eq!(back["routing"]["hold_id"], json!(hold_id));
        // Arrives at KOMABA: onto the hold shelf for the patron, for 7 days.
        let arrived = lib.checkin(&items[0], "KOMABA").await;
        assert_eq!(arrived["arrived"], json!(true));
        assert_eq!(arrived["routing"]["action"], "hold_shelf");
        assert_eq!(arrived["routing"]["patron_barcode"], "P0002");
        assert_eq!(arrived["routing"]["patron_name"], "予約 花子");
        assert_eq!(arrived["routing"]["expires_at"], json!(end_of(2026, 12, 2)));
        assert_eq!(lib.item_status(&items[0]).await, "on_hold_shelf");
        let (_, hold) = lib
            .call(
                Method::GET,
                &format!("/api/v1/holds/{hold_id}"),
                Some(&waiter_token),
                None,
            )
            .await;
        assert_eq!(hold["status"], "on_shelf");

        // Nobody else can take it; the patron collects it.
        let (status, other) = lib.checkout("P0001", &items[0], "KOMABA").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(other["error"]["code"], "held_for_another");
        let (status, picked) = lib.checkout("P0002", &items[0], "KOMABA").await;
        assert_eq!(status, StatusCode::CREATED, "{picked}");
        assert_eq!(picked["fulfilled_hold"], json!(hold_id));
        let (_, hold) = lib
            .call(
                Method::GET,
                &format!("/api/v1/holds/{hold_id}"),
                Some(&waiter_token),
                None,
            )
            .await;
        assert_eq!(hold["status"], "fulfilled");
        lib.consistent().await;
    })
    .await;
}

#[tokio::test]
async fn a_request_brings_a_copy_from_another_campus() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (p, token) = lib.patron("P0001", "取寄 次郎", json!({})).await;
        let (status, placed) = lib
            .call(
                Method::POST,
                "/api/v1/requests",
                Some(&token),
                Some(json!({"patron_id": p, "item_barcode": "3020", "pickup_campus": "MAIN"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        let id = placed["hold"]["id"].as_i64().expect("id");
        // KASHIWA pulls it: scanned there, it goes in transit to MAIN.
        let pulled = lib.checkin("3020", "KASHIWA").await;
        assert_eq!(pulled["routing"]["reason"], "request");
        let (_, r) = lib
            .call(
                Method::GET,
                &format!("/api/v1/requests/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r["status"], "in_transit");
        let arrived = lib.checkin("3020", "MAIN").await;
        assert_eq!(arrived["routing"]["action"], "hold_shelf");
        let (status, _) = lib.checkout("P0001", "3020", "MAIN").await;
        assert_eq!(status, StatusCode::CREATED);
        lib.consistent().await;
    })
    .await;
}

#[tokio::test]
async fn a_blocked_patron_is_refused_with_the_reason_in_their_language() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        lib.patron(
            "P0001",
            "停止 中",
            json!({"manual_block": "図書未返却の督促中"}),
        )
        .await;
        lib.patron("P0002", "期限 切れ", json!({"expires_on": "2026-03-31"}))
            .await;
        let request = |patron: &str| {
            Library::request(
                Method::POST,
                "/api/v1/loans",
                Some(&lib.desk),
                Some(json!({"patron_barcode": patron, "item_barcode": "3000", "campus": "MAIN"})),
                &[("accept-language", "ja,en;q=0.5")],
            )
        };
        let (status, body) = lib.send(request("P0001")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "patron_blocked");
        assert_eq!(
            body["error"]["message"],
            "利用停止中です: 図書未返却の督促中"
        );
        let (_, body) = lib.send(request("P0002")).await;
        assert_eq!(body["error"]["code"], "patron_blocked");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("有効期限"),
            "{body}"
        );
        let (_, english) = lib.checkout("P0002", "3000", "MAIN").await;
        assert_eq!(
            english["error"]["message"],
            "the patron's registration expired on 2026-03-31"
        );
        assert_eq!(lib.item_status("3000").await, "available");
    })
    .await;
}

#[tokio::test]
async fn a_due_date_on_a_closed_day_moves_to_the_next_open_day() {
    each_engine(|db| async move {
        let mut circulation = CirculationSettings::default();
        // 2026-11-25 + 14 days is Wednesday 2026-12-09; MAIN is closed on
        // Wednesdays and on the 10th.
        circulation.calendars.insert(
            CampusCode::parse("MAIN").expect("code"),
            Calendar {
                closed_weekdays: vec![chrono::Weekday::Wed],
                closed_dates: ["2026-12-10".parse().expect("date")].into(),
            },
        );
        let lib = Library::open(&db, circulation).await;
        lib.patron("P0001", "閉館 日", json!({})).await;
        let (_, at_main) = lib.checkout("P0001", "3000", "MAIN").await;
        assert_eq!(at_main["loan"]["due_at"], json!(end_of(2026, 12, 11)));
        let (_, at_komaba) = lib.checkout("P0001", "3001", "KOMABA").await;
        assert_eq!(at_komaba["loan"]["due_at"], json!(end_of(2026, 12, 9)));
    })
    .await;
}

#[tokio::test]
async fn a_checkout_repeated_with_its_idempotency_key_lends_once() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (p, _) = lib.patron("P0001", "二重 防止", json!({})).await;
        let send = |item: &str| {
            Library::request(
                Method::POST,
                "/api/v1/loans",
                Some(&lib.desk),
                Some(json!({"patron_barcode": "P0001", "item_barcode": item, "campus": "MAIN"})),
                &[("idempotency-key", "desk-1-scan-42")],
            )
        };
        let (s1, first) = lib.send(send("3000")).await;
        let (s2, again) = lib.send(send("3000")).await;
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(first, again);
        let patron = lib.stored_patron(p).await;
        assert_eq!(patron.open_loans, 1);
        // The same key with another request is refused, not replayed.
        let (s3, reused) = lib.send(send("3010")).await;
        assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reused["error"]["code"], "idempotency_key_reused");
        assert_eq!(lib.item_status("3010").await, "available");
        lib.consistent().await;
        // Keys are kept for a week, then forgotten.
        assert_eq!(lib.app.housekeeping().await.expect("prune").0, 0);
        lib.clock.advance(8 * DAY);
        let (keys, sessions) = lib.app.housekeeping().await.expect("prune");
        assert!(
            keys >= 1 && sessions >= 4,
            "{keys} keys, {sessions} sessions"
        );
    })
    .await;
}

#[tokio::test]
async fn a_checkin_repeated_with_its_idempotency_key_returns_once_and_charges_once() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (p, _) = lib.patron("P0001", "返却 二重", json!({})).await;
        lib.checkout("P0001", "3000", "MAIN").await;
        lib.checkout("P0001", "3010", "MAIN").await;
        // Late, so that the return charges a fine; sessions last 12 hours.
        lib.clock.advance(40 * DAY);
        let desk = lib.login("staff", "desk", "a long enough password").await;
        let lib = Library { desk, ..lib };
        let send = |item: &str| {
            Library::request(
                Method::POST,
                "/api/v1/checkins",
                Some(&lib.desk),
                Some(json!({"item_barcode": item, "campus": "MAIN"})),
                &[("idempotency-key", "desk-1-return-7")],
            )
        };
        let (s1, first) = lib.send(send("3000")).await;
        let (s2, again) = lib.send(send("3000")).await;
        assert_eq!(
            (s1, s2),
            (StatusCode::OK, StatusCode::OK),
            "{first} {again}"
        );
        assert_eq!(first, again);
        assert!(first["fine"]["amount"].as_i64().unwrap_or(0) > 0, "{first}");
        let patron = lib.stored_patron(p).await;
        assert_eq!(patron.open_loans, 1);
        assert_eq!(
            patron.fines_owed,
            first["fine"]["amount"].as_i64().expect("amount"),
            "charged once"
        );
        // The same key for another item is refused and returns nothing.
        let (s3, reused) = lib.send(send("3010")).await;
        assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reused["error"]["code"], "idempotency_key_reused");
        assert_eq!(lib.item_status("3010").await, "on_loan");
        lib.consistent().await;
    })
    .await;
}

#[tokio::test]
async fn a_patron_cannot_read_or_change_another_patrons_data() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (me, me_token) = lib.patron("P0001", "自分", json!({})).await;
        let (other, other_token) = lib.patron("P0002", "他人", json!({})).await;
        let (_, out) = lib.checkout("P0002", "3000", "MAIN").await;
        let loan = out["loan"]["id"].as_i64().expect("loan");
        let (record, _) = lib.titles[2].clone();
        let (_, placed) = lib
            .call(
                Method::POST,
                "/api/v1/holds",
                Some(&other_token),
                Some(json!({"patron_id": other, "record_id": record, "pickup_campus": "MAIN"})),
            )
            .await;
        let hold = placed["hold"]["id"].as_i64().expect("hold");
        let (_, fine) = lib
            .call(
                Method::POST,
                "/api/v1/fines",
                Some(&lib.desk),
                Some(json!({"patron_id": other, "amount": 500, "note": "破損"})),
            )
            .await;
        let fine = fine["id"].as_i64().expect("fine");
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/api/v1/patrons/{other}"), None),
            (Method::GET, format!("/api/v1/patrons/{other}/loans"), None),
            (
                Method::GET,
                format!("/api/v1/patrons/{other}/history"),
                None,
            ),
            (Method::GET, format!("/api/v1/patrons/{other}/holds"), None),
            (Method::GET, format!("/api/v1/patrons/{other}/fines"), None),
            (
                Method::PATCH,
                format!("/api/v1/patrons/{other}/preferences"),
                Some(json!({"keep_history": true})),
            ),
            (
                Method::PUT,
                format!("/api/v1/patrons/{other}/password"),
                Some(json!({"password": "taken over!!"})),
            ),
            (Method::GET, format!("/api/v1/loans/{loan}"), None),
            (Method::POST, format!("/api/v1/loans/{loan}/renew"), None),
            (Method::GET, format!("/api/v1/holds/{hold}"), None),
            (Method::DELETE, format!("/api/v1/holds/{hold}"), None),
            (Method::GET, format!("/api/v1/requests/{hold}"), None),
            (Method::GET, format!("/api/v1/fines/{fine}"), None),
            (
                Method::POST,
                "/api/v1/holds".into(),
                Some(json!({"patron_id": other, "record_id": record, "pickup_campus": "MAIN"})),
            ),
            (
                Method::POST,
                "/api/v1/requests".into(),
                Some(json!({"patron_id": other, "item_barcode": "3001", "pickup_campus": "MAIN"})),
            ),
            (Method::GET, "/api/v1/patrons?q=P".into(), None),
            (
                Method::POST,
                "/api/v1/loans".into(),
                Some(json!({"patron_barcode": "P0001", "item_barcode": "3001", "campus": "MAIN"})),
            ),
            (
                Method::POST,
                format!("/api/v1/fines/{fine}/payments"),
                Some(json!({"amount": 500})),
            ),
        ];
        for (method, path, body) in attempts {
            let (status, answer) = lib.call(method.clone(), &path, Some(&me_token), body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} by patron {me}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "forbidden");
        }
        // Their own data they can read.
        let (status, _) = lib
            .call(
                Method::GET,
                &format!("/api/v1/patrons/{me}/loans"),
                Some(&me_token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // Nothing changed for the other patron.
        let (_, hold_now) = lib
            .call(
                Method::GET,
                &format!("/api/v1/holds/{hold}"),
                Some(&other_token),
                None,
            )
            .await;
        assert_eq!(hold_now["status"], "waiting");
        let (_, loan_now) = lib
            .call(
                Method::GET,
                &format!("/api/v1/loans/{loan}"),
                Some(&other_token),
                None,
            )
            .await;
        assert_eq!(loan_now["renewals"], json!(0));
    })
    .await;
}

#[tokio::test]
async fn staff_roles_and_anonymous_callers_are_held_to_their_permissions() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let (record, _) = lib.titles[0].clone();
        let (_, view) = lib
            .call(Method::GET, &format!("/api/v1/records/{record}"), None, None)
            .await;
        let item_id = view["items"][0]["id"].as_i64().expect("item");
        // Circulation staff cannot edit records or items.
        let marc = format!("/api/v1/records/{record}");
        let put = Request::builder()
            .method(Method::PUT)
            .uri(&marc)
            .header("authorization", format!("Bearer {}", lib.desk))
            .header("if-match", "\"1\"")
            .header("content-type", "application/marcxml+xml")
            .body(Body::from("<record/>"))
            .expect("request");
        let (status, body) = lib.send(put).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        for (method, path, body) in [
            (Method::POST, format!("/api/v1/records/{record}/items"), Some(json!({"barcode": "9999", "campus": "MAIN", "item_type": "BOOK"}))),
            (Method::PATCH, format!("/api/v1/items/{item_id}"), Some(json!({"status": "missing"}))),
            (Method::DELETE, marc.clone(), None),
            (Method::GET, "/api/v1/staff".into(), None),
        ] {
            let r = Library::request(method.clone(), &path, Some(&lib.desk), body, &[("if-match", "\"1\"")]);
            let (status, answer) = lib.send(r).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        }
        // Nobody logged in may write anything.
        for (method, path, body) in [
            (Method::POST, "/api/v1/loans".to_owned(), Some(json!({"patron_barcode": "P", "item_barcode": "3000", "campus": "MAIN"}))),
            (Method::POST, "/api/v1/checkins".to_owned(), Some(json!({"item_barcode": "3000", "campus": "MAIN"}))),
            (Method::POST, "/api/v1/patrons".to_owned(), Some(json!({"barcode": "X1", "name": "x", "category": "UNDERGRAD", "home_campus": "MAIN"}))),
            (Method::POST, format!("/api/v1/records/{record}/items"), Some(json!({"barcode": "9999", "campus": "MAIN", "item_type": "BOOK"}))),
            (Method::PATCH, format!("/api/v1/items/{item_id}"), Some(json!({"status": "missing"}))),
            (Method::POST, "/api/v1/staff".to_owned(), Some(json!({"username": "x", "display_name": "x", "role": "admin", "password": "0123456789"}))),
        ] {
            let (status, answer) = lib.call(method.clone(), &path, None, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "not_logged_in");
        }
        // A token that is not valid is refused, not taken for nobody.
        let (status, answer) = lib
            .call(Method::GET, "/api/v1/auth/me", Some("not-a-token"), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer["error"]["code"], "bad_token");
        assert_eq!(lib.item_status("3000").await, "available");
        // An admin may manage staff; a deactivated account's token stops working.
        let (status, _) = lib
            .call(
                Method::PATCH,
                "/api/v1/staff/desk",
                Some(&lib.admin),
                Some(json!({"active": false})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = lib
            .call(Method::GET, "/api/v1/auth/me", Some(&lib.desk), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn a_session_cookie_write_needs_the_csrf_token() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let login = Library::request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"kind": "staff", "name": "desk", "password": "a long enough password"})),
            &[],
        );
        let response = lib.router.clone().oneshot(login).await.expect("login");
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("cookie")
            .to_owned();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax")
                && cookie.contains("Secure"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().expect("pair").to_owned();
        let body: Value = serde_json::from_slice(
            &axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body"),
        )
        .expect("json");
        let csrf = body["csrf"].as_str().expect("csrf").to_owned();
        lib.patron("P0001", "クッキー", json!({})).await;
        let checkout = |csrf: Option<&str>| {
            let mut headers = vec![("cookie", pair.as_str())];
            if let Some(c) = csrf {
                headers.push(("x-csrf-token", c));
            }
            Library::request(
                Method::POST,
                "/api/v1/loans",
                None,
                Some(json!({"patron_barcode": "P0001", "item_barcode": "3000", "campus": "MAIN"})),
                &headers,
            )
        };
        let (status, refused) = lib.send(checkout(None)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(refused["error"]["code"], "csrf");
        assert_eq!(lib.item_status("3000").await, "available");
        let (status, _) = lib.send(checkout(Some(&csrf))).await;
        assert_eq!(status, StatusCode::CREATED);
    })
    .await;
}

#[tokio::test]
async fn logins_are_rate_limited_per_name() {
    let db = TestDb::sqlite();
    let lib = Library::open(&db, CirculationSettings::default()).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = lib
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"kind": "staff", "name": "admin", "password": "wrong password"})),
            )
            .await;
        statuses.push(status);
    }
    // Three logins in `open` plus these: the fifth attempt at one name in a
    // minute is the last allowed.
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn patrons_load_from_csv_with_bad_rows_named_by_line() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let csv = "barcode,name,name_reading,category,home_campus,email,phone,language,expires_on\n\
                   P1001,東京 太郎,トウキョウ タロウ,UNDERGRAD,MAIN,taro@example.ac.jp,,ja,2028-03-31\n\
                   P1002,Jane Smith,,FACULTY,KOMABA,jane@example.ac.jp,,en,\n\
                   P1003,不正 区分,,ALUMNI,MAIN,,,ja,\n\
                   P1004,日付 不正,,GRAD,MAIN,,,ja,2028/03/31\n";
        let load = lib
            .app
            .load_patrons(&App::system(), csv.as_bytes())
            .await
            .expect("load");
        assert_eq!((load.created, load.updated), (2, 0));
        let lines: Vec<u64> = load.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5]);
        assert!(load.rejected[0].reason.contains("category"), "{:?}", load.rejected);
        assert!(load.rejected[1].reason.contains("expires_on"), "{:?}", load.rejected);
        let (_, found) = lib
            .call(Method::GET, "/api/v1/patrons?barcode=P1001", Some(&lib.desk), None)
            .await;
        assert_eq!(found[0]["name_reading"], "トウキョウ タロウ");
        // Loading again updates instead of duplicating.
        let again = lib
            .app
            .load_patrons(&App::system(), csv.as_bytes())
            .await
            .expect("load");
        assert_eq!((again.created, again.updated), (0, 2));
    })
    .await;
}

#[test]
fn the_openapi_document_describes_every_route_the_api_has() {
    let doc = shoko_web::openapi();
    let json: Value = serde_json::to_value(&doc).expect("json");
    let expected = [
        ("get", "/health"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/metrics"),
        ("get", "/api/v1/search"),
        ("get", "/api/v1/records"),
        ("get", "/api/v1/records/{id}"),
        ("put", "/api/v1/records/{id}"),
        ("delete", "/api/v1/records/{id}"),
        ("post", "/api/v1/records/{id}/items"),
        ("patch", "/api/v1/items/{id}"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("get", "/api/v1/patrons"),
        ("post", "/api/v1/patrons"),
        ("get", "/api/v1/patrons/{id}"),
        ("put", "/api/v1/patrons/{id}"),
        ("patch", "/api/v1/patrons/{id}/preferences"),
        ("put", "/api/v1/patrons/{id}/password"),
        ("get", "/api/v1/patrons/{id}/loans"),
        ("get", "/api/v1/patrons/{id}/history"),
        ("get", "/api/v1/patrons/{id}/holds"),
        ("get", "/api/v1/patrons/{id}/fines"),
        ("post", "/api/v1/loans"),
        ("get", "/api/v1/loans/{id}"),
        ("post", "/api/v1/loans/{id}/renew"),
        ("post", "/api/v1/checkins"),
        ("post", "/api/v1/holds"),
        ("get", "/api/v1/holds/{id}"),
        ("delete", "/api/v1/holds/{id}"),
        ("post", "/api/v1/requests"),
        ("get", "/api/v1/requests/{id}"),
        ("get", "/api/v1/transits"),
        ("post", "/api/v1/fines"),
        ("get", "/api/v1/fines/{id}"),
        ("post", "/api/v1/fines/{id}/payments"),
        ("post", "/api/v1/fines/{id}/waivers"),
        ("get", "/api/v1/staff"),
        ("post", "/api/v1/staff"),
        ("patch", "/api/v1/staff/{username}"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/vendors"),
        ("post", "/api/v1/vendors"),
        ("get", "/api/v1/funds"),
        ("post", "/api/v1/funds"),
        ("post", "/api/v1/funds/{id}/allocations"),
        ("post", "/api/v1/funds/transfers"),
        ("get", "/api/v1/orders"),
        ("post", "/api/v1/orders"),
        ("post", "/api/v1/orders/{id}/send"),
        ("post", "/api/v1/orders/{id}/receive"),
        ("post", "/api/v1/orders/{id}/cancel"),
        ("get", "/api/v1/invoices"),
        ("post", "/api/v1/invoices"),
        ("post", "/api/v1/invoices/{id}/approve"),
        ("post", "/api/v1/invoices/{id}/pay"),
        ("post", "/api/v1/fiscal-years/{id}/close"),
    ];
    let mut documented = Vec::new();
    for (path, item) in json["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for (method, path) in expected {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    assert_eq!(
        documented.len(),
        expected.len(),
        "undocumented expectations: {documented:?}"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let db = TestDb::sqlite();
    let lib = Library::open(&db, CirculationSettings::default()).await;
    let doc: Value = serde_json::to_value(shoko_web::openapi()).expect("json");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let concrete = path.replace("{id}", "1").replace("{username}", "admin");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = lib
                .call(method.clone(), &concrete, Some(&lib.admin), None)
                .await;
            // Unknown routes answer 404 or 405 with an empty body; every
            // documented one answers with the JSON error shape or a result.
            assert!(
                !(status == StatusCode::METHOD_NOT_ALLOWED
                    || (status == StatusCode::NOT_FOUND && body["error"].is_null())),
                "{method} {concrete} is documented but not served: {status} {body}"
            );
        }
    }
    let (status, body) = lib
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["openapi"], "3.1.0");
    let (status, page) = lib.call(Method::GET, "/api/v1/docs/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.as_str().is_some_and(|p| p.contains("swagger")),
        "{page}"
    );
}

#[tokio::test]
async fn health_says_live_and_ready_check_by_check_and_metrics_count_requests() {
    each_engine(|db| async move {
        let data = tempfile::tempdir().expect("tempdir");
        let lib = Library::open_with(
            &db,
            CirculationSettings::default(),
            shoko_app::OperationsSettings {
                data_dir: Some(data.path().to_owned()),
                ..Default::default()
            },
        )
        .await;
        let (status, live) = lib.call(Method::GET, "/health/live", None, None).await;
        assert_eq!(
            (status, live["status"].as_str()),
            (StatusCode::OK, Some("live"))
        );
        lib.app.index_catch_up().await.expect("catch up");
        let (status, ready) = lib.call(Method::GET, "/health/ready", None, None).await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        for check in ["database", "index", "disk", "jobs"] {
            assert_eq!(ready["checks"][check]["ok"], true, "{check}: {ready}");
        }
        lib.patron("P0001", "計測", json!({})).await;
        let (status, _) = lib.checkout("P0001", "3000", "MAIN").await;
        assert_eq!(status, StatusCode::CREATED);
        let response = lib
            .router
            .clone()
            .oneshot(Library::request(Method::GET, "/metrics", None, None, &[]))
            .await
            .expect("metrics");
        let text = String::from_utf8(
            axum::body::to_bytes(response.into_body(), 1 << 22)
                .await
                .expect("body")
                .to_vec(),
        )
        .expect("utf-8");
        assert!(
            text.lines()
                .any(|l| l.starts_with("shoko_http_requests_total{")
                    && l.contains("route=\"/api/v1/loans\"")
                    && l.contains("status=\"201\"")),
            "{text}"
        );
        assert!(
            text.contains("shoko_http_request_duration_seconds_bucket{"),
            "{text}"
        );
        for gauge in [
            "shoko_outbox_lag_rows",
            "shoko_index_documents",
            "shoko_index_shelved",
            "shoko_database_bytes",
            "shoko_disk_free_bytes",
            "shoko_db_pool_connections",
        ] {
            assert!(text.contains(gauge), "{gauge} missing");
        }
    })
    .await;
}

#[tokio::test]
async fn a_disk_below_its_threshold_makes_shoko_not_ready_and_says_so() {
    let db = TestDb::sqlite();
    let data = tempfile::tempdir().expect("tempdir");
    let lib = Library::open_with(
        &db,
        CirculationSettings::default(),
        shoko_app::OperationsSettings {
            data_dir: Some(data.path().to_owned()),
            min_free_disk_mb: u64::MAX / (1024 * 1024 * 2),
            ..Default::default()
        },
    )
    .await;
    lib.app.index_catch_up().await.expect("catch up");
    let (status, ready) = lib.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["checks"]["disk"]["ok"], false, "{ready}");
    assert!(
        ready["checks"]["disk"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("MiB free"))
    );
    assert_eq!(ready["checks"]["database"]["ok"], true);
}

/// A small tmpfs mounted for one test, unmounted when dropped. The
/// full-disk test needs a filesystem it can fill without filling the
/// machine's (and root, which the test suite runs as, to mount it).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the full-disk test mounts a tmpfs and must run as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The ballast of this disk, to fill and free it from another task.
    fn ballast(&self) -> Ballast {
        Ballast(self.path().to_owned())
    }
}

/// A file that fills a [`SmallDisk`].
struct Ballast(std::path::PathBuf);

impl Ballast {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Writes a ballast file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("ballast")).expect("ballast");
        for chunk in [1 << 20, 4096, 512] {
            let block = vec![0xA5u8; chunk];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
        assert!(
            fs4::available_space(self.path()).expect("statvfs") < 4096,
            "the small disk is full"
        );
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("ballast")).expect("remove ballast");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_storage_full_keeps_reads_and_resumes_when_freed() {
    for engine in ["sqlite", "postgres"] {
        if engine == "postgres" && !shoko_testkit::postgres_wanted() {
            continue;
        }
        let disk = SmallDisk::mount(48);
        let db = if engine == "sqlite" {
            TestDb::sqlite_in(disk.path())
        } else {
            // The database's tablespace on the small disk, as in the story
            // behind Shoko: a tablespace filled up, not the server's disk.
            let space = disk.path().join("pg");
            std::fs::create_dir(&space).expect("tablespace dir");
            let chown = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&space)
                .status()
                .expect("chown");
            assert!(chown.success());
            TestDb::postgres_in_tablespace(&space).await
        };
        // The story runs as a task of its own, so that the database and
        // its tablespace are dropped, with space freed first, even when it
        // fails: a tablespace left on an unmounted disk would break every
        // later test on the shared PostgreSQL server.
        let url = db.url().to_owned();
        let ballast = disk.ballast();
        let story = tokio::spawn(full_disk_story(db, disk.ballast(), engine));
        let outcome = story.await;
        let _ = std::fs::remove_file(ballast.path().join("ballast"));
        if engine == "postgres" {
            shoko_testkit::drop_postgres_database(&url).await;
        }
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Brings a new PostgreSQL database to where a database in service is
/// before its disk fills. Just after `CREATE DATABASE` and the migrations,
/// PostgreSQL still holds pages in memory that it has not written to the
/// database's files (on the full disk, writing them fails, and so does
/// every checkpoint of the server), and autovacuum has the new catalogs'
/// statistics to update, which throws away the catalog cache file that the
/// next new connection writes as it starts: on the full disk that
/// connection is refused ("could not write init file"). So: statistics
/// first, then a checkpoint on a connection opened after them, which writes
/// the cache file again.
async fn settle_postgres(db: &TestDb) {
    db.execute_sql("VACUUM ANALYZE").await;
    db.execute_sql("CHECKPOINT").await;
}

async fn full_disk_story(db: TestDb, disk: Ballast, engine: &'static str) {
    let lib = Library::open(&db, CirculationSettings::default()).await;
    lib.patron("F0001", "満杯 太郎", json!({})).await;
    let (status, out) = lib.checkout("F0001", "3000", "MAIN").await;
    assert_eq!(status, StatusCode::CREATED, "{engine}: {out}");
    let record = lib.titles[0].0;
    if engine == "postgres" {
        settle_postgres(&db).await;
    }

    disk.fill();
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for n in 0..2000 {
        let barcode = format!("FULL{n:04}");
        let (status, body) = lib
            .send(Library::request(
                Method::POST,
                "/api/v1/patrons",
                Some(&lib.desk),
                Some(json!({
                    "barcode": barcode,
                    "name": "容量 試験",
                    "category": "UNDERGRAD",
                    "home_campus": "MAIN",
                    "expires_on": "2030-03-31",
                    "name_reading": "ようりょう しけん ".repeat(40),
                })),
                &[("accept-language", "ja")],
            ))
            .await;
        match status {
            StatusCode::CREATED => acknowledged.push(barcode),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "storage_full", "{engine}: {body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("保存領域が一杯")),
                    "{engine}: {body}"
                );
                refused.push(barcode);
                if refused.len() == 3 {
                    break;
                }
            }
            other => panic!("{engine}: a write on a full disk answered {other}: {body}"),
        }
    }
    // SQLite may find room again in the space a refused write took, so the
    // loop can end with fewer than three; at least one met the full disk.
    assert!(
        !refused.is_empty(),
        "{engine}: writes never hit the full disk"
    );

    // Reads keep working while the disk is full.
    let (status, view) = lib
        .call(
            Method::GET,
            &format!("/api/v1/records/{record}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{engine}: {view}");
    let (status, found) = lib
        .call(
            Method::GET,
            "/api/v1/patrons?barcode=F0001",
            Some(&lib.desk),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{engine}: {found}");
    // A checkout on the full disk is done whole or not at all.
    let (status, body) = lib.checkout("F0001", "3010", "MAIN").await;
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["error"]["code"], "storage_full", "{engine}: {body}");
            assert_eq!(lib.item_status("3010").await, "available");
        }
        StatusCode::CREATED => assert_eq!(lib.item_status("3010").await, "on_loan"),
        other => panic!("{engine}: a checkout on a full disk answered {other}: {body}"),
    }

    // Space freed: writes resume, no restart (a pooled connection that met
    // the full disk may refuse once more before it has room again).
    disk.free();
    let mut lent = false;
    for _ in 0..20 {
        let (status, body) = lib.checkout("F0001", "3001", "MAIN").await;
        match status {
            StatusCode::CREATED => {
                lent = true;
                break;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "storage_full", "{engine}: {body}")
            }
            other => panic!("{engine}: a checkout after space was freed answered {other}: {body}"),
        }
    }
    assert!(lent, "{engine}: writes never resumed after space was freed");
    // Read back through connections of their own, as after a restart: an
    // acknowledged write held back on one pooled connection (SQLite's own
    // rollback on a full disk once did that) would not be there.
    let fresh = db.store().await;
    for barcode in &acknowledged {
        assert!(
            fresh
                .patron_by_barcode(barcode)
                .await
                .expect("read")
                .is_some(),
            "{engine}: acknowledged patron {barcode} lost"
        );
    }
    for barcode in &refused {
        assert!(
            fresh
                .patron_by_barcode(barcode)
                .await
                .expect("read")
                .is_none(),
            "{engine}: refused patron {barcode} was stored"
        );
    }
    lib.consistent().await;
    for barcode in ["3000", "3001"] {
        let item = fresh
            .item_by_barcode(barcode)
            .await
            .expect("read")
            .expect("item");
        assert_eq!(item.status, "on_loan", "{engine}: {barcode}");
    }
}

/// Logs in an acquisitions account made for the test.
async fn acquisitions_token(lib: &Library) -> String {
    lib.app
        .add_staff(
            &App::system(),
            &Username::parse("acq").expect("name"),
            "受入 担当",
            Role::Acquisitions,
            "a long enough password",
        )
        .await
        .expect("staff");
    lib.login("staff", "acq", "a long enough password").await
}

async fn fund_of(lib: &Library, token: &str, year: i64, code: &str) -> Value {
    let (status, funds) = lib
        .call(
            Method::GET,
            &format!("/api/v1/funds?year={year}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{funds}");
    let f = funds
        .as_array()
        .expect("list")
        .iter()
        .find(|f| f["code"] == code)
        .cloned()
        .unwrap_or_else(|| panic!("fund {code} in {year}: {funds}"));
    // The fund identity, on every read.
    assert_eq!(
        f["allocated"].as_i64(),
        Some(
            f["available"].as_i64().expect("n")
                + f["encumbered"].as_i64().expect("n")
                + f["expended"].as_i64().expect("n")
        )
    );
    f
}

#[tokio::test]
async fn acquisitions_from_budget_to_payment_are_exact_to_the_yen_and_the_year_rolls_over() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let acq = acquisitions_token(&lib).await;
        let post = |path: &str, body: Value| {
            let (lib, acq, path) = (&lib, acq.clone(), path.to_owned());
            async move { lib.call(Method::POST, &path, Some(&acq), Some(body)).await }
        };
        // The desk may not spend the library's money.
        let (status, _) = lib
            .call(Method::POST, "/api/v1/vendors", Some(&lib.desk), Some(json!({"code": "X", "name": "X"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (s, maruzen) = post("/api/v1/vendors", json!({"code": "MARUZEN", "name": "丸善雄松堂"})).await;
        assert_eq!(s, StatusCode::CREATED, "{maruzen}");
        let (s, blackwell) = post("/api/v1/vendors", json!({"code": "BLACKWELL", "name": "Blackwell's", "currency": "GBP"})).await;
        assert_eq!(s, StatusCode::CREATED, "{blackwell}");
        let (s, fund) = post("/api/v1/funds", json!({"fiscal_year": 2026, "code": "BOOKS", "name": "図書費"})).await;
        assert_eq!(s, StatusCode::CREATED, "{fund}");
        let fund_id = fund["id"].as_i64().expect("id");
        let (s, _) = post(&format!("/api/v1/funds/{fund_id}/allocations"), json!({"amount": 100_000})).await;
        assert_eq!(s, StatusCode::OK);

        // Three copies at ¥4,000: ¥13,200 with tax encumbered when sent.
        let record = lib.titles[2].0;
        let (s, line) = post("/api/v1/orders", json!({
            "vendor_id": maruzen["id"], "record_id": record, "fund_id": fund_id,
            "quantity": 3, "unit_price": 4000, "campus": "MAIN", "location": "OPEN", "item_type": "BOOK",
        }))
        .await;
        assert_eq!(s, StatusCode::CREATED, "{line}");
        assert_eq!(line["status"], "draft");
        let line_id = line["id"].as_i64().expect("id");
        let (s, sent) = post(&format!("/api/v1/orders/{line_id}/send"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{sent}");
        assert_eq!(sent["encumbered"], 13_200);
        let f = fund_of(&lib, &acq, 2026, "BOOKS").await;
        assert_eq!((f["encumbered"].as_i64(), f["available"].as_i64()), (Some(13_200), Some(86_800)));

        // Two copies arrive: items at MAIN, found by search, lent at the desk.
        let (s, got) = post(&format!("/api/v1/orders/{line_id}/receive"), json!({"barcodes": ["ACQ-0001", "ACQ-0002"]})).await;
        assert_eq!(s, StatusCode::OK, "{got}");
        assert_eq!(got["line"]["status"], "partly_received");
        assert_eq!(got["items"].as_array().map(Vec::len), Some(2));
        let view = lib.app.record(record).await.expect("read").expect("record");
        assert!(view.items.iter().any(|i| i.barcode == "ACQ-0001" && i.campus == "MAIN"));
        lib.app.index_catch_up().await.expect("index");
        let (s, hits) = lib
            .call(Method::GET, &format!("/api/v1/search?q={}", urlencode(&view.record.title)), None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let hit = hits["hits"].as_array().expect("hits").iter().find(|h| h["id"] == record).cloned().expect("the record is found");
        let main = hit["availability"].as_array().expect("availability").iter().find(|a| a["campus"] == "MAIN").cloned().expect("MAIN");
        assert!(main["available"].as_u64() >= Some(2), "the received copies are on the shelf in search: {hit}");
        lib.patron("P0900", "受入 太郎", json!({})).await;
        let (s, loan) = lib.checkout("P0900", "ACQ-0001", "MAIN").await;
        assert_eq!(s, StatusCode::CREATED, "{loan}");
        let (s, again) = post(&format!("/api/v1/orders/{line_id}/receive"), json!({"barcodes": ["ACQ-0002"]})).await;
        assert_eq!(s, StatusCode::CONFLICT, "a barcode in use is refused: {again}");
        let (s, all) = post(&format!("/api/v1/orders/{line_id}/receive"), json!({"barcodes": ["ACQ-0003"]})).await;
        assert_eq!(s, StatusCode::OK, "{all}");
        assert_eq!(all["line"]["status"], "received");

        // The invoice: ¥12,000 + ¥500 shipping, 10 % on both once: ¥13,750.
        let (s, invoice) = post("/api/v1/invoices", json!({
            "vendor_id": maruzen["id"], "number": "MY-2026-0001", "shipping": 500,
            "lines": [{"order_line_id": line_id, "quantity": 3, "gross": 12_000}],
        }))
        .await;
        assert_eq!(s, StatusCode::CREATED, "{invoice}");
        assert_eq!((invoice["net"].as_i64(), invoice["tax"].as_i64(), invoice["total_yen"].as_i64()), (Some(12_000), Some(1_250), Some(13_750)));
        let (s, early) = post(&format!("/api/v1/invoices/{}/pay", invoice["id"]), json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an invoice is approved before it is paid: {early}");
        let (s, approved) = post(&format!("/api/v1/invoices/{}/approve", invoice["id"]), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{approved}");
        assert_eq!(approved["status"], "approved");
        let (s, paid) = post(&format!("/api/v1/invoices/{}/pay", invoice["id"]), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{paid}");
        let f = fund_of(&lib, &acq, 2026, "BOOKS").await;
        assert_eq!(
            (f["allocated"].as_i64(), f["encumbered"].as_i64(), f["expended"].as_i64(), f["available"].as_i64()),
            (Some(100_000), Some(0), Some(13_750), Some(86_250))
        );
        let (s, twice) = post(&format!("/api/v1/invoices/{}/pay", invoice["id"]), json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "paid once: {twice}");

        // In pounds: encumbered at ¥190.123456, invoiced at ¥188.50.
        let (_, gbp) = post("/api/v1/orders", json!({
            "vendor_id": blackwell["id"], "record_id": record, "fund_id": fund_id,
            "quantity": 1, "unit_price": 2500, "campus": "KOMABA", "item_type": "BOOK",
        }))
        .await;
        let gbp_id = gbp["id"].as_i64().expect("id");
        let (s, sent) = post(&format!("/api/v1/orders/{gbp_id}/send"), json!({"rate_micros": 190_123_456})).await;
        assert_eq!(s, StatusCode::OK, "{sent}");
        // £27.50 with tax × 190.123456 = ¥5,228.395 → ¥5,228.
        assert_eq!(sent["encumbered"], 5_228);
        let (s, inv) = post("/api/v1/invoices", json!({
            "vendor_id": blackwell["id"], "number": "BW-77", "rate_micros": 188_500_000,
            "lines": [{"order_line_id": gbp_id, "quantity": 1, "gross": 2500, "tax_bp": 0}],
        }))
        .await;
        assert_eq!(s, StatusCode::CREATED, "{inv}");
        // £25.00 × 188.50 = ¥4,712.5 → ¥4,713.
        assert_eq!(inv["total_yen"], 4_713);
        post(&format!("/api/v1/invoices/{}/approve", inv["id"]), json!({})).await;
        let (s, _) = post(&format!("/api/v1/invoices/{}/pay", inv["id"]), json!({})).await;
        assert_eq!(s, StatusCode::OK);
        let f = fund_of(&lib, &acq, 2026, "BOOKS").await;
        assert_eq!((f["encumbered"].as_i64(), f["expended"].as_i64(), f["available"].as_i64()), (Some(0), Some(18_463), Some(81_537)));

        // Paid before it came: receiving the copy closes the line.
        let (s, came) = post(&format!("/api/v1/orders/{gbp_id}/receive"), json!({"barcodes": ["ACQ-GB-1"]})).await;
        assert_eq!(s, StatusCode::OK, "{came}");
        assert_eq!(came["line"]["status"], "closed");

        // An order still open at the year end moves to 2027 with its money.
        let (_, open) = post("/api/v1/orders", json!({
            "vendor_id": maruzen["id"], "record_id": record, "fund_id": fund_id,
            "quantity": 1, "unit_price": 10_000, "campus": "MAIN", "item_type": "BOOK",
        }))
        .await;
        let open_id = open["id"].as_i64().expect("id");
        let (s, _) = post(&format!("/api/v1/orders/{open_id}/send"), json!({})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, closed) = post("/api/v1/fiscal-years/2026/close", json!({"carry_balance": ["BOOKS"]})).await;
        assert_eq!(s, StatusCode::OK, "{closed}");
        assert_eq!(closed["lines_moved"], 1);
        let old = fund_of(&lib, &acq, 2026, "BOOKS").await;
        let new = fund_of(&lib, &acq, 2027, "BOOKS").await;
        assert_eq!(old["closed"], true);
        assert_eq!((old["available"].as_i64(), old["encumbered"].as_i64(), old["expended"].as_i64()), (Some(0), Some(0), Some(18_463)));
        assert_eq!((new["encumbered"].as_i64(), new["available"].as_i64()), (Some(11_000), Some(70_537)));
        let (_, orders) = lib.call(Method::GET, "/api/v1/orders?status=sent", Some(&acq), None).await;
        assert_eq!(orders[0]["fund_id"], new["id"]);
        let (s, _) = post(&format!("/api/v1/funds/{fund_id}/allocations"), json!({"amount": 1})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a closed year takes no money");
        lib.consistent().await;
        // A fund whose total promise disagrees with its order lines is found
        // by the check and recounted from them, with a ledger row.
        db.execute_sql("UPDATE funds SET encumbered = encumbered + 777 WHERE fiscal_year = 2027").await;
        let problems = lib.app.store.circulation_problems().await.expect("check");
        assert_eq!(problems, ["fund's encumbrance differs from its order lines': BOOKS"], "{problems:?}");
        let ctx = shoko_store::WriteCtx { actor: "system".into(), now: 0, idempotency: None };
        lib.app.store.repair_circulation(&ctx).await.expect("repair");
        lib.consistent().await;
        assert_eq!(fund_of(&lib, &acq, 2027, "BOOKS").await["encumbered"], 11_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_invoices_paid_at_once_against_a_fund_with_room_for_one_pay_exactly_one() {
    each_engine(|db| async move {
        let lib = Library::open(&db, CirculationSettings::default()).await;
        let acq = acquisitions_token(&lib).await;
        let post = |path: String, body: Value| {
            let (lib, acq) = (&lib, acq.clone());
            async move { lib.call(Method::POST, &path, Some(&acq), Some(body)).await }
        };
        let (_, vendor) = post(
            "/api/v1/vendors".into(),
            json!({"code": "KINOKUNIYA", "name": "紀伊國屋書店"}),
        )
        .await;
        let (_, fund) = post(
            "/api/v1/funds".into(),
            json!({"fiscal_year": 2026, "code": "SERIALS", "name": "雑誌費"}),
        )
        .await;
        let fund_id = fund["id"].as_i64().expect("id");
        post(
            format!("/api/v1/funds/{fund_id}/allocations"),
            json!({"amount": 10_000}),
        )
        .await;
        let mut invoices = Vec::new();
        for (n, record) in [lib.titles[0].0, lib.titles[1].0].iter().enumerate() {
            let (_, line) = post(
                "/api/v1/orders".into(),
                json!({
                    "vendor_id": vendor["id"], "record_id": record, "fund_id": fund_id,
                    "quantity": 1, "unit_price": 6000, "campus": "MAIN", "item_type": "BOOK",
                }),
            )
            .await;
            let (s, inv) = post("/api/v1/invoices".into(), json!({
                "vendor_id": vendor["id"], "number": format!("K-{n}"),
                "lines": [{"order_line_id": line["id"], "quantity": 1, "gross": 6000, "tax_bp": 0}],
            }))
            .await;
            assert_eq!(s, StatusCode::CREATED, "{inv}");
            let (s, _) = post(format!("/api/v1/invoices/{}/approve", inv["id"]), json!({})).await;
            assert_eq!(s, StatusCode::OK);
            invoices.push(inv["id"].as_i64().expect("id"));
        }
        let (a, b) = tokio::join!(
            post(format!("/api/v1/invoices/{}/pay", invoices[0]), json!({})),
            post(format!("/api/v1/invoices/{}/pay", invoices[1]), json!({})),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{}: {} / {}",
            db.engine(),
            a.1,
            b.1
        );
        let refused = if a.0 == StatusCode::CONFLICT {
            &a.1
        } else {
            &b.1
        };
        assert_eq!(refused["error"]["code"], "fund_overspent", "{refused}");
        let f = fund_of(&lib, &acq, 2026, "SERIALS").await;
        assert_eq!(
            (f["expended"].as_i64(), f["available"].as_i64()),
            (Some(6_000), Some(4_000))
        );
    })
    .await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_staff_catalogue_keeps_its_searches_and_records_in_the_staff_client() {
    let db = TestDb::sqlite();
    let lib = Library::open(&db, CirculationSettings::default()).await;
    lib.app.index_catch_up().await.expect("index");
    let (status, page) = lib
        .call(
            Method::GET,
            "/staff/catalogue?q=%E6%97%A5%E6%9C%AC",
            Some(&lib.cataloguer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let html = page.as_str().expect("a page");
    assert!(
        html.contains(r#"action="/staff/catalogue""#),
        "the search box stays in the staff client"
    );
    assert!(
        html.contains(r#"href="/staff/records/"#),
        "hits open the record editor"
    );
    assert!(!html.contains(r#"href="/records/"#), "{html}");
    let (_, public) = lib
        .call(Method::GET, "/?q=%E6%97%A5%E6%9C%AC", None, None)
        .await;
    let public = public.as_str().expect("a page");
    assert!(public.contains(r#"action="/""#) && public.contains(r#"href="/records/"#));
}
