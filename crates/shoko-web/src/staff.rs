//! The staff client's pages under `/staff`: the circulation desk (a page
//! whose script queues every scan, see `static/desk.js`), patron search and
//! edit (with a draft kept as it is typed), and the catalogue search. The
//! operations page and the staff login are in `pages.rs`.

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use shoko_app::App;
use shoko_app::patrons::PatronInput;
use shoko_domain::Actor;

use crate::auth::{PageForm, Who};
use crate::opac::campuses;
use crate::pages::{PageCtx, word};

fn staff_only(caller: &shoko_app::circulation::Caller, back: &str) -> Option<Response> {
    (!matches!(caller.actor, Actor::Staff { .. }))
        .then(|| Redirect::to(&format!("/staff/login?next={back}")).into_response())
}

/// `/staff` goes to the desk.
pub async fn index() -> Redirect {
    Redirect::to("/staff/desk")
}

/// The circulation desk.
pub async fn desk(State(app): State<App>, ctx: PageCtx, Who(caller): Who) -> Response {
    if let Some(r) = staff_only(&caller, "/staff/desk") {
        return r;
    }
    let ja = ctx.ja;
    let mut desk_words = crate::pages::word_map(
        ja,
        &[
            ("checkout", "貸出", "Check out"),
            ("checkin", "返却", "Check in"),
            ("waiting", "送信待ち", "waiting"),
            ("refused", "できません", "refused"),
            ("due", "返却期限", "due"),
            ("shelve", "配架へ", "Back to the shelf"),
            (
                "hold_for",
                "予約棚へ: {patron} さん（{campus}）",
                "Hold shelf: for {patron} at {campus}",
            ),
            ("transit_to", "{campus} へ輸送", "Transit to {campus}"),
            ("fine", "延滞料", "fine"),
            ("loans", "貸出中", "loans"),
            ("no_patron", "利用者が見つかりません", "no such patron"),
            (
                "login_again",
                "ログインし直してください（読み取り分は保存されています）",
                "Log in again (scans are kept)",
            ),
        ],
    );
    desk_words["offline"] = word(ja, "offline").into();
    let campus_list = campuses(&app, ja);
    ctx.page(
        "desk.html",
        "staff",
        serde_json::json!({
            "campuses": campus_list,
            "campuses_json": serde_json::Value::from(campus_list.clone()).to_string(),
            "desk_words": desk_words.to_string(),
        }),
    )
}

/// `?q=` on the patron search.
#[derive(Debug, Deserialize)]
pub struct PatronQuery {
    q: Option<String>,
}

/// Patron search by name, reading or barcode.
pub async fn patrons(
    State(app): State<App>,
    ctx: PageCtx,
    Who(caller): Who,
    Query(q): Query<PatronQuery>,
) -> Response {
    if let Some(r) = staff_only(&caller, "/staff/patrons") {
        return r;
    }
    let q = q.q.unwrap_or_default();
    let found = if q.trim().is_empty() {
        Vec::new()
    } else {
        match app.find_patrons(&caller, &q).await {
            Ok(p) => p,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        }
    };
    ctx.page(
        "patrons.html",
        "staff",
        serde_json::json!({"q": q, "patrons": found}),
    )
}

/// `?saved=1` after an edit.
#[derive(Debug, Deserialize, Default)]
pub struct Saved {
    saved: Option<String>,
    error: Option<String>,
}

/// A patron's edit form.
pub async fn patron(
    State(app): State<App>,
    ctx: PageCtx,
    Who(caller): Who,
    Path(id): Path<i64>,
    Query(s): Query<Saved>,
) -> Response {
    if let Some(r) = staff_only(&caller, &format!("/staff/patrons/{id}")) {
        return r;
    }
    let view = match app.patron_view(&caller, id).await {
        Ok(v) => v,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let categories: Vec<String> = app
        .circulation
        .patron_categories
        .iter()
        .map(|c| c.code.as_str().to_owned())
        .collect();
    ctx.page(
        "patron_edit.html",
        "staff",
        serde_json::json!({
            "p": view.patron,
            "categories": categories,
            "campuses": campuses(&app, ctx.ja),
            "saved": s.saved.is_some(),
            "error": s.error,
        }),
    )
}

/// The patron form's fields.
#[derive(Debug, Deserialize)]
pub struct PatronFields {
    version: String,
    barcode: String,
    name: String,
    name_reading: Option<String>,
    category: String,
    home_campus: String,
    email: Option<String>,
    phone: Option<String>,
    language: Option<String>,
    expires_on: Option<String>,
    manual_block: Option<String>,
}

fn some(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Saves a patron's edit at the version the form was drawn from.
pub async fn save_patron(
    State(app): State<App>,
    ctx: PageCtx,
    Path(id): Path<i64>,
    PageForm(caller, f): PageForm<PatronFields>,
) -> Response {
    let keep_history = app
        .store
        .patron(id)
        .await
        .ok()
        .flatten()
        .is_some_and(|p| p.keep_history);
    let input = PatronInput {
        barcode: f.barcode.trim().to_owned(),
        name: f.name.trim().to_owned(),
        name_reading: some(f.name_reading),
        category: f.category,
        home_campus: f.home_campus,
        email: some(f.email),
        phone: some(f.phone),
        language: some(f.language),
        expires_on: some(f.expires_on),
        manual_block: some(f.manual_block),
        keep_history,
    };
    let version = f.version.parse().unwrap_or(-1);
    match app.update_patron(&caller, id, version, input).await {
        Ok(_) => Redirect::to(&format!("/staff/patrons/{id}?saved=1")).into_response(),
        Err(e) => {
            let api = crate::error::ApiError::from(e);
            let text = if ctx.ja {
                api.ja_message()
            } else {
                api.en_message()
            };
            let mut s = form_urlencoded::Serializer::new(String::new());
            s.append_pair("error", text);
            Redirect::to(&format!("/staff/patrons/{id}?{}", s.finish())).into_response()
        }
    }
}

/// The catalogue search in the staff client's frame.
pub async fn catalogue(
    State(app): State<App>,
    ctx: PageCtx,
    Who(caller): Who,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Some(r) = staff_only(&caller, "/staff/catalogue") {
        return r;
    }
    crate::opac::search_page(&app, &ctx, raw.as_deref(), "staff", "/staff/catalogue").await
}

/// The record editor: the MARC record as rows (edited in the page's
/// script and saved through the API), and the record's items with their
/// status and a form to add one.
pub async fn record(
    State(app): State<App>,
    ctx: PageCtx,
    Who(caller): Who,
    Path(id): Path<i64>,
    Query(flash): Query<Saved>,
) -> Response {
    if let Some(r) = staff_only(&caller, &format!("/staff/records/{id}")) {
        return r;
    }
    let ja = ctx.ja;
    let view = match app.record(id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return crate::error::ApiError::not_found(format!("record {id}")).into_response();
        }
        Err(e) => return crate::error::ApiError::unexpected(e).into_response(),
    };
    let fields = crate::opac::marc_fields(&view.marc);
    let editor_words = crate::pages::word_map(
        ja,
        &[
            ("field", "フィールド", "Field"),
            ("tag", "タグ", "tag"),
            ("value", "値", "value"),
            ("ind1", "第1指示子", "first indicator"),
            ("ind2", "第2指示子", "second indicator"),
            ("code", "サブフィールド識別子", "subfield code"),
            ("add_subfield", "サブフィールドを追加", "add a subfield"),
            ("remove_field", "フィールドを削除", "remove the field"),
            (
                "remove_subfield",
                "サブフィールドを削除",
                "remove the subfield",
            ),
            (
                "bad_tag",
                "タグは英数字3文字です",
                "a tag is 3 letters or digits",
            ),
            (
                "bad_ind",
                "指示子は数字・英小文字・空白の1文字です",
                "an indicator is one digit, lower-case letter or blank",
            ),
            (
                "bad_code",
                "識別子は英小文字か数字の1文字です",
                "a subfield code is one lower-case letter or digit",
            ),
            ("empty", "空です", "is empty"),
            (
                "no_subfields",
                "サブフィールドがありません",
                "has no subfields",
            ),
            (
                "need_title",
                "245 $a（書名）が必要です",
                "a title (245 $a) is needed",
            ),
            ("saving", "保存しています…", "Saving…"),
            ("saved", "保存しました", "Saved"),
            (
                "conflict",
                "他の人が先に変更しました。再読み込みして確認してください（入力内容は下書きに残っています）",
                "Someone changed it meanwhile: reload to see their change (your edit is kept as a draft)",
            ),
            (
                "offline",
                "サーバーに接続できません。入力内容は下書きに残っています",
                "The server cannot be reached; your edit is kept as a draft",
            ),
        ],
    );
    let campus_of = |code: &str| {
        app.settings
            .campuses
            .iter()
            .find(|c| c.code.as_str() == code)
            .map_or(code.to_owned(), |c| {
                if ja {
                    c.name_ja.clone()
                } else {
                    c.name_en.clone()
                }
            })
    };
    let items: Vec<serde_json::Value> = view
        .items
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.id, "barcode": i.barcode, "campus": campus_of(&i.campus),
                "location": i.location, "call_number": i.call_number, "status": i.status,
            })
        })
        .collect();
    let locations: Vec<serde_json::Value> = app
        .settings
        .campuses
        .iter()
        .flat_map(|c| {
            c.locations.iter().map(move |l| {
                serde_json::json!({
                    "code": l.code.as_str(),
                    "name": format!("{} {}", if ja { &c.name_ja } else { &c.name_en }, if ja { &l.name_ja } else { &l.name_en }),
                })
            })
        })
        .collect();
    let item_types: Vec<serde_json::Value> = app
        .settings
        .item_types
        .iter()
        .map(|t| serde_json::json!({"code": t.code.as_str(), "name": if ja { &t.name_ja } else { &t.name_en }}))
        .collect();
    let statuses: Vec<(&str, &str)> = [
        ("available", "貸出可", "Available"),
        ("on_loan", "貸出中", "On loan"),
        ("in_transit", "輸送中", "In transit"),
        ("on_hold_shelf", "予約棚", "On the hold shelf"),
        ("in_processing", "整理中", "In processing"),
        ("missing", "所在不明", "Missing"),
        ("lost", "紛失", "Lost"),
        ("withdrawn", "除籍", "Withdrawn"),
    ]
    .iter()
    .map(|(c, j, e)| (*c, if ja { *j } else { *e }))
    .collect();
    ctx.page(
        "record_edit.html",
        "staff",
        serde_json::json!({
            "id": id,
            "title": view.record.title,
            "version": view.record.version,
            "leader": String::from_utf8_lossy(&view.marc.leader).into_owned(),
            "fields_json": serde_json::Value::from(fields).to_string(),
            "editor_words": editor_words.to_string(),
            "items": items,
            "campuses": campuses(&app, ja),
            "locations": locations,
            "item_types": item_types,
            "statuses": statuses,
            "message": flash.saved.map(|_| word(ja, "saved")),
            "error": flash.error,
        }),
    )
}

/// The add-item form's fields.
#[derive(Debug, Deserialize)]
pub struct ItemFields {
    barcode: String,
    campus: String,
    location: Option<String>,
    item_type: String,
    call_number: Option<String>,
}

fn back_with_error(path: &str, ja: bool, api: crate::error::ApiError) -> Response {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair(
        "error",
        if ja {
            api.ja_message()
        } else {
            api.en_message()
        },
    );
    Redirect::to(&format!("{path}?{}", s.finish())).into_response()
}

/// Adds an item to a record.
pub async fn add_item(
    State(app): State<App>,
    ctx: PageCtx,
    Path(id): Path<i64>,
    PageForm(caller, f): PageForm<ItemFields>,
) -> Response {
    let back = format!("/staff/records/{id}");
    let invalid = |field: &str, e: shoko_domain::CodeError| {
        crate::error::ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {e}"),
        )
        .ja(format!("{field}: {e}"))
    };
    let spec = (|| {
        Ok::<_, crate::error::ApiError>(shoko_domain::ItemSpec {
            barcode: shoko_domain::Barcode::parse(&f.barcode).map_err(|e| invalid("barcode", e))?,
            campus: shoko_domain::CampusCode::parse(&f.campus).map_err(|e| invalid("campus", e))?,
            location: match some(f.location.clone()) {
                Some(l) => Some(
                    shoko_domain::LocationCode::parse(&l).map_err(|e| invalid("location", e))?,
                ),
                None => None,
            },
            call_number: some(f.call_number.clone()),
            item_type: shoko_domain::ItemTypeCode::parse(&f.item_type)
                .map_err(|e| invalid("item_type", e))?,
            status: shoko_domain::ItemStatus::Available,
        })
    })();
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return back_with_error(&back, ctx.ja, e),
    };
    match app.add_item(&caller, id, spec).await {
        Ok(_) => Redirect::to(&format!("{back}?saved=1")).into_response(),
        Err(e) => back_with_error(&back, ctx.ja, e.into()),
    }
}

/// The item status form.
#[derive(Debug, Deserialize)]
pub struct StatusFields {
    record_id: String,
    status: String,
}

/// Sets an item's status (missing, withdrawn, …).
pub async fn item_status(
    State(app): State<App>,
    ctx: PageCtx,
    Path(item): Path<i64>,
    PageForm(caller, f): PageForm<StatusFields>,
) -> Response {
    let back = format!("/staff/records/{}", f.record_id.parse::<i64>().unwrap_or(0));
    let Some(status) = shoko_domain::ItemStatus::from_code(&f.status) else {
        return back_with_error(&back, ctx.ja, crate::error::ApiError::not_found(f.status));
    };
    match app.set_item_status(&caller, item, status).await {
        Ok(_) => Redirect::to(&format!("{back}?saved=1")).into_response(),
        Err(e) => back_with_error(&back, ctx.ja, e.into()),
    }
}

/// `?year=` and the flash on the acquisitions page.
#[derive(Debug, Deserialize, Default)]
pub struct AcqQuery {
    year: Option<String>,
    draft: Option<String>,
    message: Option<String>,
    error: Option<String>,
}

fn yen_text(ja: bool, n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if n < 0 { "-" } else { "" };
    if ja {
        format!("{sign}{grouped}円")
    } else {
        format!("¥{sign}{grouped}")
    }
}

/// The acquisitions page: a fiscal year's funds with their balances,
/// order lines with send and receive, invoices with pay, vendors, and the
/// forms to add each.
pub async fn acquisitions(
    State(app): State<App>,
    ctx: PageCtx,
    Who(caller): Who,
    Query(q): Query<AcqQuery>,
) -> Response {
    if let Some(r) = staff_only(&caller, "/staff/acquisitions") {
        return r;
    }
    let ja = ctx.ja;
    let today = chrono::DateTime::from_timestamp_millis(app.clock.now_ms())
        .unwrap_or_default()
        .with_timezone(&app.circulation.time_zone)
        .date_naive();
    let year = q
        .year
        .as_deref()
        .and_then(|y| y.parse().ok())
        .unwrap_or_else(|| {
            i64::from(shoko_domain::circulation::fiscal_year(
                today,
                app.circulation.fiscal_year_start_month,
            ))
        });
    let (vendors, funds, orders, invoices) = match async {
        Ok::<_, shoko_app::acquisitions::AcqError>((
            app.vendors(&caller).await?,
            app.funds(&caller, year).await?,
            app.order_lines(&caller, None).await?,
            app.invoices(&caller).await?,
        ))
    }
    .await
    {
        Ok(all) => all,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let vendor_name = |id: i64| {
        vendors
            .iter()
            .find(|v| v.id == id)
            .map_or_else(String::new, |v| v.name.clone())
    };
    let record_ids: Vec<i64> = orders.iter().map(|o| o.record_id).collect();
    let titles: std::collections::HashMap<i64, String> = app
        .store
        .record_summaries(&record_ids)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.id, r.title))
        .collect();
    let all_funds: std::collections::HashMap<i64, String> =
        funds.iter().map(|f| (f.id, f.code.clone())).collect();
    let status_label = |s: &str| -> String {
        let (j, e) = match s {
            "draft" => ("下書き", "Draft"),
            "sent" => ("発注済", "Sent"),
            "partly_received" => ("一部受入", "Partly received"),
            "received" => ("受入済", "Received"),
            "closed" => ("完了", "Closed"),
            "cancelled" => ("取消", "Cancelled"),
            "open" => ("未承認", "Open"),
            "approved" => ("承認済・未払", "Approved"),
            "paid" => ("支払済", "Paid"),
            other => (other, other),
        };
        (if ja { j } else { e }).to_owned()
    };
    let orders_json: Vec<serde_json::Value> = orders
        .iter()
        .map(|o| {
            serde_json::json!({
                "id": o.id, "title": titles.get(&o.record_id).cloned().unwrap_or_default(),
                "vendor": vendor_name(o.vendor_id),
                "fund": all_funds.get(&o.fund_id).cloned().unwrap_or_else(|| format!("#{}", o.fund_id)),
                "quantity": o.quantity, "received": o.received, "status": o.status,
                "status_label": status_label(&o.status), "foreign": o.currency != "JPY",
            })
        })
        .collect();
    let funds_json: Vec<serde_json::Value> = funds
        .iter()
        .map(|f| {
            serde_json::json!({
                "id": f.id, "code": f.code, "name": f.name, "closed": f.closed,
                "allocated": yen_text(ja, f.allocated), "encumbered": yen_text(ja, f.encumbered),
                "expended": yen_text(ja, f.expended), "available": yen_text(ja, f.available),
            })
        })
        .collect();
    let invoices_json: Vec<serde_json::Value> = invoices
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.id, "number": i.number, "vendor": vendor_name(i.vendor_id),
                "total": format!("{} {}", i.total, i.currency), "total_yen": yen_text(ja, i.total_yen),
                "status": i.status, "status_label": status_label(&i.status),
            })
        })
        .collect();
    ctx.page(
        "acquisitions.html",
        "staff",
        serde_json::json!({
            "year": year,
            "year_label": if ja { format!("{year}年度") } else { format!("fiscal year {year}–{}", (year + 1) % 100) },
            "funds": funds_json, "orders": orders_json, "invoices": invoices_json, "vendors": vendors,
            "campuses": campuses(&app, ja),
            "message": q.message, "error": q.error,
            "saved_draft": q.draft,
        }),
    )
}

fn acq_back(
    year: &str,
    ja: bool,
    outcome: Result<&str, shoko_app::acquisitions::AcqError>,
    draft: Option<&str>,
) -> Response {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("year", year);
    match outcome {
        Ok(key) => {
            if let Some(d) = draft {
                s.append_pair("draft", d);
            }
            s.append_pair("message", word(ja, key))
        }
        Err(e) => {
            let api = crate::error::ApiError::from(e);
            s.append_pair(
                "error",
                if ja {
                    api.ja_message()
                } else {
                    api.en_message()
                },
            )
        }
    };
    Redirect::to(&format!("/staff/acquisitions?{}", s.finish())).into_response()
}

fn number(field: &'static str, v: &str) -> Result<i64, shoko_app::acquisitions::AcqError> {
    v.trim().replace([',', '_'], "").parse().map_err(|_| {
        shoko_app::acquisitions::AcqError::Invalid {
            field,
            message: format!("{v:?} is not a number"),
        }
    })
}

/// A rate typed as yen per unit ("188.50") in millionths.
fn rate_micros(v: &str) -> Result<Option<i64>, shoko_app::acquisitions::AcqError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let frac = format!("{frac:0<6}");
    match (
        whole.parse::<i64>(),
        frac.get(..6).and_then(|f| f.parse::<i64>().ok()),
    ) {
        (Ok(w), Some(f)) if frac.len() <= 6 || frac[6..].chars().all(|c| c == '0') => {
            Ok(Some(w * 1_000_000 + f))
        }
        _ => Err(shoko_app::acquisitions::AcqError::Invalid {
            field: "rate",
            message: format!("{v:?} is not a rate such as 150.25"),
        }),
    }
}

/// The acquisitions forms' fields (each form sends some of them).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct AcqFields {
    year: String,
    fiscal_year: String,
    code: String,
    name: String,
    currency: String,
    fund_id: String,
    amount: String,
    vendor_id: String,
    record_id: String,
    quantity: String,
    unit_price: String,
    campus: String,
    rate: String,
    barcodes: String,
    number: String,
    order_line_id: String,
    gross: String,
    tax_bp: String,
    shipping: String,
    to_fund_id: String,
    carry: String,
}

/// A form of the acquisitions page sent.
pub async fn acquisitions_post(
    State(app): State<App>,
    ctx: PageCtx,
    Path(action): Path<String>,
    PageForm(caller, f): PageForm<AcqFields>,
) -> Response {
    use shoko_app::acquisitions as acq;
    let ja = ctx.ja;
    let carried: Vec<String> = f
        .carry
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let outcome: Result<&str, acq::AcqError> = async {
        match action.as_str() {
            "vendors" => {
                app.create_vendor(
                    &caller,
                    acq::VendorInput {
                        code: f.code.clone(),
                        name: f.name.clone(),
                        contact: None,
                        email: None,
                        currency: Some(f.currency.clone()).filter(|c| !c.is_empty()),
                        discount_bp: None,
                    },
                )
                .await?;
                Ok("saved")
            }
            "funds" => {
                app.create_fund(
                    &caller,
                    acq::FundInput {
                        fiscal_year: number("fiscal_year", &f.fiscal_year)?,
                        code: f.code.clone(),
                        name: f.name.clone(),
                        parent_id: None,
                        allow_overspend: false,
                    },
                )
                .await?;
                Ok("saved")
            }
            "allocations" => {
                app.allocate(
                    &caller,
                    number("fund_id", &f.fund_id)?,
                    number("amount", &f.amount)?,
                )
                .await?;
                Ok("saved")
            }
            "orders" => {
                app.create_order(
                    &caller,
                    acq::OrderInput {
                        vendor_id: number("vendor_id", &f.vendor_id)?,
                        record_id: number("record_id", &f.record_id)?,
                        fund_id: number("fund_id", &f.fund_id)?,
                        quantity: number("quantity", &f.quantity)?,
                        unit_price: number("unit_price", &f.unit_price)?,
                        campus: f.campus.clone(),
                        location: None,
                        item_type: None,
                        note: None,
                    },
                )
                .await?;
                Ok("saved")
            }
            "transfers" => {
                app.transfer(
                    &caller,
                    number("fund_id", &f.fund_id)?,
                    number("to_fund_id", &f.to_fund_id)?,
                    number("amount", &f.amount)?,
                )
                .await?;
                Ok("saved")
            }
            "close" => {
                app.close_year(&caller, number("year", &f.year)?, &carried)
                    .await?;
                Ok("saved")
            }
            "invoices" => {
                app.create_invoice(
                    &caller,
                    acq::InvoiceInput {
                        vendor_id: number("vendor_id", &f.vendor_id)?,
                        number: f.number.clone(),
                        rate_micros: rate_micros(&f.rate)?,
                        shipping: if f.shipping.trim().is_empty() {
                            0
                        } else {
                            number("shipping", &f.shipping)?
                        },
                        lines: vec![acq::InvoiceLineInput {
                            order_line_id: number("order_line_id", &f.order_line_id)?,
                            quantity: number("quantity", &f.quantity)?,
                            gross: number("gross", &f.gross)?,
                            discount: 0,
                            tax_bp: Some(number("tax_bp", &f.tax_bp)?),
                        }],
                    },
                )
                .await?;
                Ok("saved")
            }
            other => Err(acq::AcqError::NotFound(other.to_owned())),
        }
    }
    .await;
    let year = if f.year.is_empty() {
        &f.fiscal_year
    } else {
        &f.year
    };
    let draft = match action.as_str() {
        "orders" => Some("new-order"),
        "invoices" => Some("new-invoice"),
        _ => None,
    };
    acq_back(year, ja, outcome, draft)
}

/// Sends, receives on, or pays from a row of the acquisitions page.
pub async fn acquisitions_row(
    State(app): State<App>,
    ctx: PageCtx,
    Path((kind, id, action)): Path<(String, i64, String)>,
    PageForm(caller, f): PageForm<AcqFields>,
) -> Response {
    let ja = ctx.ja;
    let outcome = async {
        match (kind.as_str(), action.as_str()) {
            ("orders", "send") => app
                .send_order(&caller, id, rate_micros(&f.rate)?)
                .await
                .map(|_| "saved"),
            ("orders", "receive") => {
                let barcodes: Vec<String> =
                    f.barcodes.split_whitespace().map(str::to_owned).collect();
                app.receive(&caller, id, &barcodes).await.map(|_| "saved")
            }
            ("invoices", "approve") => app.approve_invoice(&caller, id).await.map(|_| "saved"),
            ("invoices", "pay") => app.pay_invoice(&caller, id).await.map(|_| "saved"),
            _ => Err(shoko_app::acquisitions::AcqError::NotFound(format!(
                "{kind}/{action}"
            ))),
        }
    }
    .await;
    acq_back(&f.year, ja, outcome, None)
}
