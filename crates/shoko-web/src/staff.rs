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
    let desk_words: serde_json::Map<String, serde_json::Value> = [
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
    ]
    .iter()
    .map(|(k, j, e)| ((*k).to_owned(), (if ja { *j } else { *e }).into()))
    .collect();
    let mut desk_words = serde_json::Value::Object(desk_words);
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
