//! The public catalogue (OPAC) at `/`: search with facets, paging and
//! sorting; an advanced form; record pages with the live state of every
//! copy and the MARC view; a patron's login and "My Library" (loans with
//! renewal, holds and requests, fines, the privacy setting). Server-rendered,
//! usable without JavaScript; every form carries the session's CSRF token and
//! an idempotency key, so a form sent twice acts once.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use shoko_app::App;
use shoko_app::auth::LoginKind;
use shoko_app::circulation::CircError;
use shoko_domain::{Actor, CampusCode};
use shoko_search::{Facet, SearchRequest, Sort};

use crate::Web;
use crate::auth::{PageForm, Who};
use crate::pages::{LoginFields, PageCtx, login_page, login_with_form, safe_next, word};

/// Results per page.
const PAGE: usize = 20;

fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A search URL for these parameters on the page at `base` (`/` or
/// `/staff/catalogue`).
fn search_url(base: &str, q: &str, sort: &str, filters: &[String], offset: usize) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("q", q);
    if !sort.is_empty() && sort != "relevance" {
        s.append_pair("sort", sort);
    }
    for f in filters {
        s.append_pair("filter", f);
    }
    if offset > 0 {
        s.append_pair("offset", &offset.to_string());
    }
    format!("{base}?{}", s.finish())
}

fn campus_name(app: &App, ja: bool, code: &str) -> String {
    app.settings
        .campuses
        .iter()
        .find(|c| c.code.as_str() == code)
        .map_or_else(
            || code.to_owned(),
            |c| {
                if ja {
                    c.name_ja.clone()
                } else {
                    c.name_en.clone()
                }
            },
        )
}

fn location_name(app: &App, ja: bool, campus: &str, location: Option<&str>) -> String {
    let Some(code) = location else {
        return String::new();
    };
    app.settings
        .campuses
        .iter()
        .find(|c| c.code.as_str() == campus)
        .and_then(|c| c.locations.iter().find(|l| l.code.as_str() == code))
        .map_or_else(
            || code.to_owned(),
            |l| {
                if ja {
                    l.name_ja.clone()
                } else {
                    l.name_en.clone()
                }
            },
        )
}

/// A facet value as a reader would say it.
fn facet_label(app: &App, ja: bool, facet: &str, value: &str) -> String {
    let pick = |j: &str, e: &str| if ja { j.to_owned() } else { e.to_owned() };
    match facet {
        "campus" => campus_name(app, ja, value),
        "availability" => match value {
            "available" => pick("貸出可能な資料あり", "On the shelf"),
            _ => pick("すべて貸出中など", "Not on the shelf"),
        },
        "language" => match value {
            "jpn" => pick("日本語", "Japanese"),
            "eng" => pick("英語", "English"),
            "chi" => pick("中国語", "Chinese"),
            "kor" => pick("韓国語", "Korean"),
            "ger" => pick("ドイツ語", "German"),
            "fre" => pick("フランス語", "French"),
            "spa" => pick("スペイン語", "Spanish"),
            "rus" => pick("ロシア語", "Russian"),
            other => other.to_owned(),
        },
        "format" => match value {
            "book" => pick("図書", "Book"),
            "serial" => pick("雑誌・逐次刊行物", "Serial"),
            "score" => pick("楽譜", "Score"),
            "sound_recording" => pick("録音資料", "Sound recording"),
            "video" => pick("映像資料", "Video"),
            "map" => pick("地図", "Map"),
            "electronic" => pick("電子資料", "Electronic"),
            other => other.to_owned(),
        },
        "year" => {
            let start = value.split('-').next().unwrap_or(value);
            if ja {
                format!("{start}年代")
            } else {
                format!("{start}s")
            }
        }
        _ => value.to_owned(),
    }
}

fn facet_title(ja: bool, facet: &str) -> &'static str {
    word(
        ja,
        match facet {
            "campus" => "campus",
            "language" => "language_of",
            "format" => "format",
            "year" => "decade",
            _ => "availability",
        },
    )
}

/// A query from the advanced form's fields, in the search box's syntax.
fn advanced_query(fields: &[(String, String)]) -> Option<(String, Vec<String>)> {
    let mut parts = Vec::new();
    let mut filters = Vec::new();
    let mut any = false;
    for (k, v) in fields {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let field = match k.as_str() {
            "title" | "author" | "subject" | "isbn" | "publisher" => k.as_str(),
            "campus" => {
                any = true;
                filters.push(format!("campus:{v}"));
                continue;
            }
            _ => continue,
        };
        any = true;
        let clean = v.replace('"', " ");
        if clean.split_whitespace().count() > 1 {
            parts.push(format!("{field}:\"{}\"", clean.trim()));
        } else {
            parts.push(format!("{field}:{}", clean.trim()));
        }
    }
    let year = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
    };
    match (year("year_from"), year("year_to")) {
        (None, None) => {}
        (from, to) => {
            any = true;
            parts.push(format!(
                "year:{}-{}",
                from.unwrap_or_default(),
                to.unwrap_or_default()
            ));
        }
    }
    any.then(|| (parts.join(" "), filters))
}

/// The search page: the box alone, or results with facets.
pub async fn home(State(app): State<App>, ctx: PageCtx, RawQuery(raw): RawQuery) -> Response {
    search_page(&app, &ctx, raw.as_deref(), "opac", "/").await
}

/// The search page in the public catalogue (`/`) or the staff client
/// (`/staff/catalogue`), which differ only in their frame.
pub(crate) async fn search_page(
    app: &App,
    ctx: &PageCtx,
    raw: Option<&str>,
    area: &str,
    base: &str,
) -> Response {
    let app = app.clone();
    let ja = ctx.ja;
    let params = pairs(raw);
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
    if get("q").is_none()
        && let Some((q, filters)) = advanced_query(&params)
    {
        return Redirect::to(&search_url(base, &q, "", &filters, 0)).into_response();
    }
    let q = get("q").unwrap_or_default();
    let sort = get("sort").unwrap_or_else(|| "relevance".into());
    let offset: usize = get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
        .min(10_000);
    let filters: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.clone())
        .collect();
    let mut extra = serde_json::json!({
        "q": q,
        "base": base,
        "record_base": if area == "staff" { "/staff/records/" } else { "/records/" },
        "lang_query": if q.is_empty() { String::new() } else {
            search_url(base, &q, &sort, &filters, offset).split_once('?').map_or(String::new(), |(_, q)| q.to_owned()) + "&"
        },
    });
    if q.trim().is_empty() {
        return ctx.page("search.html", area, extra);
    }
    let mut req = SearchRequest {
        query: q.clone(),
        offset,
        limit: PAGE,
        sort: Sort::parse(&sort).unwrap_or_default(),
        facets: vec![
            Facet::Availability,
            Facet::Campus,
            Facet::Language,
            Facet::Format,
            Facet::Year,
        ],
        ..Default::default()
    };
    for f in &filters {
        if let Some((name, value)) = f.split_once(':')
            && let Some(facet) = Facet::parse(name)
        {
            req.filters.push((facet, value.to_owned()));
        }
    }
    let result = match app.search(&req).await {
        Ok(r) => r,
        Err(shoko_app::search::IndexError::Search(shoko_search::SearchError::Query(m))) => {
            extra["error"] = m.into();
            return ctx.page("search.html", area, extra);
        }
        Err(e) => return crate::error::ApiError::unexpected(e).into_response(),
    };
    let active: Vec<serde_json::Value> = filters
        .iter()
        .map(|f| {
            let (name, value) = f.split_once(':').unwrap_or((f, ""));
            let rest: Vec<String> = filters.iter().filter(|g| *g != f).cloned().collect();
            serde_json::json!({
                "value": f,
                "label": format!("{}: {}", facet_title(ja, name), facet_label(&app, ja, name, value)),
                "remove": search_url(base, &q, &sort, &rest, 0),
            })
        })
        .collect();
    let facets: Vec<serde_json::Value> = ["availability", "campus", "language", "format", "year"]
        .iter()
        .filter_map(|name| {
            let values = result.facets.get(*name)?;
            let shown: Vec<serde_json::Value> = values
                .iter()
                .filter(|v| !filters.contains(&format!("{name}:{}", v.value)))
                .take(12)
                .map(|v| {
                    let mut with = filters.clone();
                    with.push(format!("{name}:{}", v.value));
                    serde_json::json!({
                        "label": facet_label(&app, ja, name, &v.value),
                        "count": v.count,
                        "href": search_url(base, &q, &sort, &with, 0),
                    })
                })
                .collect();
            (!shown.is_empty())
                .then(|| serde_json::json!({"title": facet_title(ja, name), "values": shown}))
        })
        .collect();
    let hits: Vec<serde_json::Value> = result
        .hits
        .iter()
        .map(|h| {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&quot;")
            };
            let title = h.highlights.get("title").cloned().unwrap_or_else(|| esc(&h.title));
            let authors = h
                .highlights
                .get("authors")
                .cloned()
                .unwrap_or_else(|| esc(&h.authors.join("; ")));
            let availability: Vec<serde_json::Value> = h
                .availability
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "campus": campus_name(&app, ja, &a.campus),
                        "available": a.available > 0,
                        "text": if ja {
                            format!("{}冊中{}冊可", a.total, a.available)
                        } else {
                            format!("{} of {} on shelf", a.available, a.total)
                        },
                    })
                })
                .collect();
            serde_json::json!({
                "id": h.id,
                "title": title,
                "reading": if h.title_reading != h.title { h.title_reading.clone() } else { String::new() },
                "authors": authors,
                "year": h.year,
                "availability": availability,
            })
        })
        .collect();
    let sorts: Vec<serde_json::Value> = [
        ("relevance", "適合度順", "Relevance"),
        ("title", "書名のよみ順", "Title (reading)"),
        ("year", "出版年（新しい順）", "Year, newest first"),
        ("year_asc", "出版年（古い順）", "Year, oldest first"),
    ]
    .iter()
    .map(|(v, j, e)| serde_json::json!({"value": v, "label": if ja { j } else { e }, "selected": *v == sort}))
    .collect();
    let last = (offset + hits.len()).min(result.total);
    let e = extra.as_object_mut().expect("an object");
    e.insert(
        "total_text".into(),
        (if ja {
            format!("{}件", result.total)
        } else {
            format!("{} found", result.total)
        })
        .into(),
    );
    e.insert(
        "page_text".into(),
        (if result.total == 0 {
            String::new()
        } else {
            format!("{}–{} / {}", offset + 1, last, result.total)
        })
        .into(),
    );
    e.insert("hits".into(), hits.into());
    e.insert("facets".into(), facets.into());
    e.insert("active".into(), active.into());
    e.insert("sorts".into(), sorts.into());
    e.insert(
        "prev".into(),
        (offset > 0)
            .then(|| search_url(base, &q, &sort, &filters, offset.saturating_sub(PAGE)))
            .into(),
    );
    e.insert(
        "next".into(),
        (last < result.total)
            .then(|| search_url(base, &q, &sort, &filters, offset + PAGE))
            .into(),
    );
    ctx.page("search.html", area, extra)
}

/// The advanced search form.
pub async fn advanced(State(app): State<App>, ctx: PageCtx) -> Response {
    let ja = ctx.ja;
    let fields: Vec<serde_json::Value> = ["title", "author", "subject", "isbn", "publisher"]
        .iter()
        .map(|f| serde_json::json!({"name": f, "label": word(ja, f)}))
        .collect();
    ctx.page(
        "advanced.html",
        "opac",
        serde_json::json!({"fields": fields, "campuses": campuses(&app, ja)}),
    )
}

pub(crate) fn campuses(app: &App, ja: bool) -> Vec<serde_json::Value> {
    app.settings
        .campuses
        .iter()
        .map(|c| {
            serde_json::json!({
                "code": c.code.as_str(),
                "name": if ja { &c.name_ja } else { &c.name_en },
            })
        })
        .collect()
}

pub(crate) fn date(app: &App, ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&app.circulation.time_zone)
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default()
}

/// `?message=` and `?error=` after a form.
#[derive(Debug, Deserialize, Default)]
pub struct Flash {
    message: Option<String>,
    error: Option<String>,
}

/// A record page: description and every copy's state; for a patron, the
/// forms to place a hold and to ask for delivery of a copy at another campus.
pub async fn record(
    State(app): State<App>,
    ctx: PageCtx,
    Path(id): Path<i64>,
    axum::extract::Query(flash): axum::extract::Query<Flash>,
) -> Response {
    let ja = ctx.ja;
    let page = match app.record_page(id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return crate::error::ApiError::not_found(format!("record {id}")).into_response();
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let r = &page.view.record;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, value: String| {
        if !value.is_empty() {
            fields.push((word(ja, key).to_owned(), value));
        }
    };
    if r.title_reading != r.title {
        add("title_reading", r.title_reading.clone());
    }
    add("author", r.authors.join("; "));
    add("publisher", r.publisher.clone().unwrap_or_default());
    add("year", r.year.map(|y| y.to_string()).unwrap_or_default());
    add("subject", r.subjects.join(" / "));
    add(
        "isbn",
        r.isbns
            .iter()
            .chain(&r.issns)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    );
    add(
        "language_of",
        r.language
            .as_deref()
            .map(|l| facet_label(&app, ja, "language", l))
            .unwrap_or_default(),
    );
    add("format", facet_label(&app, ja, "format", &r.format));
    let home_campus = match &ctx.actor {
        Actor::Patron { id } => app
            .store
            .patron(*id)
            .await
            .ok()
            .flatten()
            .map(|p| p.home_campus),
        _ => None,
    };
    let copies: Vec<serde_json::Value> = page
        .copies
        .iter()
        .map(|c| {
            let (state, class) = match c.item.status.as_str() {
                "available" => (word(ja, "on_shelf_now").to_owned(), "ok"),
                "on_loan" => (
                    match c.due_at {
                        Some(d) if ja => format!("貸出中（{}まで）", date(&app, d)),
                        Some(d) => format!("On loan until {}", date(&app, d)),
                        None => word(ja, "on_loan").to_owned(),
                    },
                    "warn",
                ),
                "in_transit" => (
                    match &c.transit_to {
                        Some(to) if ja => format!("輸送中（{}へ）", campus_name(&app, ja, to)),
                        Some(to) => format!("In transit to {}", campus_name(&app, ja, to)),
                        None => word(ja, "in_transit").to_owned(),
                    },
                    "warn",
                ),
                "on_hold_shelf" => (
                    match c.shelf_until {
                        Some(d) if ja => format!("予約棚（{}まで取り置き）", date(&app, d)),
                        Some(d) => format!("On the hold shelf until {}", date(&app, d)),
                        None => word(ja, "on_hold_shelf").to_owned(),
                    },
                    "warn",
                ),
                "missing" => (word(ja, "missing").to_owned(), "fail"),
                other => (other.to_owned(), "warn"),
            };
            let requestable = c.item.status == "available"
                && home_campus.as_deref().is_some_and(|h| h != c.item.campus);
            serde_json::json!({
                "barcode": c.item.barcode,
                "campus": campus_name(&app, ja, &c.item.campus),
                "location": location_name(&app, ja, &c.item.campus, c.item.location.as_deref()),
                "call_number": c.item.call_number.clone().unwrap_or_default(),
                "state": state,
                "class": class,
                "requestable": requestable,
            })
        })
        .collect();
    ctx.page(
        "record.html",
        "opac",
        serde_json::json!({
            "r": {"id": r.id, "title": r.title},
            "fields": fields,
            "copies": copies,
            "campuses": campuses(&app, ja),
            "home_campus": home_campus,
            "home_campus_name": home_campus.as_deref().map(|h| campus_name(&app, ja, h)),
            "message": flash.message,
            "error": flash.error,
        }),
    )
}

/// A MARC record's fields as the templates and the editor take them:
/// `{tag, value}` for a control field, `{tag, ind1, ind2, subfields: [{code,
/// value}]}` for a data field.
pub(crate) fn marc_fields(record: &shoko_marc::Record) -> Vec<serde_json::Value> {
    record
        .fields
        .iter()
        .map(|f| match f {
            shoko_marc::Field::Control { tag, value } => {
                serde_json::json!({"tag": tag.to_string(), "value": value})
            }
            shoko_marc::Field::Data {
                tag,
                ind1,
                ind2,
                subfields,
            } => serde_json::json!({
                "tag": tag.to_string(), "ind1": ind1.to_string(), "ind2": ind2.to_string(),
                "subfields": subfields.iter().map(|s| serde_json::json!({"code": s.code.to_string(), "value": s.value})).collect::<Vec<_>>(),
            }),
        })
        .collect()
}

/// The MARC view of a record.
pub async fn marc(State(app): State<App>, ctx: PageCtx, Path(id): Path<i64>) -> Response {
    let view = match app.record(id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return crate::error::ApiError::not_found(format!("record {id}")).into_response();
        }
        Err(e) => return crate::error::ApiError::unexpected(e).into_response(),
    };
    let fields = marc_fields(&view.marc);
    ctx.page(
        "marc.html",
        "opac",
        serde_json::json!({
            "id": id,
            "title": view.record.title,
            "leader": String::from_utf8_lossy(&view.marc.leader).into_owned(),
            "fields": fields,
        }),
    )
}

/// `?next=` on the patron login.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The patron login form.
pub async fn login_form(
    ctx: PageCtx,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    login_page(&ctx, false, &safe_next(q.next.as_deref(), false), None)
}

/// The patron login form sent.
pub async fn login_submit(
    State(web): State<Web>,
    ctx: PageCtx,
    axum::Form(f): axum::Form<LoginFields>,
) -> Response {
    login_with_form(&web, &ctx, LoginKind::Patron, f).await
}

/// Fields of a form that only carries its token.
#[derive(Debug, Deserialize)]
pub struct Plain {}

/// Ends the session (patron or staff) and goes to the search page.
pub async fn logout(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    PageForm(_, _): PageForm<Plain>,
) -> Response {
    if let Some(token) = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(crate::auth::SESSION_COOKIE)?
                .strip_prefix('=')
        })
    {
        let _ = app.logout(token).await;
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_static(
            "shoko_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    r
}

/// The words of a refusal for the page, in the page's language.
fn refusal(ja: bool, e: CircError) -> String {
    let api = crate::error::ApiError::from(e);
    if ja {
        api.ja_message().to_owned()
    } else {
        api.en_message().to_owned()
    }
}

fn back_to(path: &str, key: &str, text: &str) -> Response {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair(key, text);
    Redirect::to(&format!("{path}?{}", s.finish())).into_response()
}

/// My Library: loans, holds and requests, fines, privacy.
pub async fn my_library(
    State(app): State<App>,
    ctx: PageCtx,
    Who(caller): Who,
    axum::extract::Query(flash): axum::extract::Query<Flash>,
) -> Response {
    let ja = ctx.ja;
    if !matches!(caller.actor, Actor::Patron { .. }) {
        return Redirect::to("/login?next=/my").into_response();
    }
    let my = match app.my_library(&caller).await {
        Ok(m) => m,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let now = app.clock.now_ms();
    let loans: Vec<serde_json::Value> = my
        .loans
        .iter()
        .map(|l| {
            serde_json::json!({
                "id": l.row.id, "record_id": l.row.record_id, "title": l.title,
                "barcode": l.item.as_ref().map(|i| i.barcode.clone()),
                "due": date(&app, l.row.due_at), "overdue": l.row.due_at < now,
                "recalled": l.row.recalled_at.is_some(),
                "renewals": format!("{}/{}", l.row.renewals, l.row.renewals_allowed),
            })
        })
        .collect();
    let holds: Vec<serde_json::Value> = my
        .holds
        .iter()
        .map(|h| {
            let status = match (h.row.status.as_str(), ja) {
                ("waiting", true) => "順番待ち".to_owned(),
                ("waiting", false) => "Waiting".to_owned(),
                ("in_transit", true) => "輸送中".to_owned(),
                ("in_transit", false) => "In transit".to_owned(),
                ("on_shelf", _) => match h.row.shelf_expires_at {
                    Some(d) if ja => format!("受取可（{}まで）", date(&app, d)),
                    Some(d) => format!("Ready until {}", date(&app, d)),
                    None => word(ja, "on_hold_shelf").to_owned(),
                },
                (other, _) => other.to_owned(),
            };
            serde_json::json!({
                "id": h.row.id, "record_id": h.row.record_id, "title": h.title,
                "kind": if h.row.kind == "request" { word(ja, "request_kind") } else { word(ja, "hold_kind") },
                "pickup": campus_name(&app, ja, &h.row.pickup_campus),
                "status": status,
            })
        })
        .collect();
    let fines: Vec<serde_json::Value> = my
        .fines
        .iter()
        .map(|f| {
            serde_json::json!({
                "title": f.title, "kind": f.row.kind,
                "owed": format!("{}{}", f.row.amount - f.row.paid - f.row.waived, if ja { "円" } else { " yen" }),
            })
        })
        .collect();
    let block = my.block.map(|b| {
        let (en, jp) = crate::error::block_message(&b);
        if ja { jp } else { en }
    });
    ctx.page(
        "my.html",
        "opac",
        serde_json::json!({
            "name": my.patron.name,
            "loans": loans, "holds": holds, "fines": fines,
            "keep_history": my.patron.keep_history,
            "block": block,
            "message": flash.message, "error": flash.error,
        }),
    )
}

/// Renews one of the patron's loans.
pub async fn renew(
    State(app): State<App>,
    ctx: PageCtx,
    Path(id): Path<i64>,
    PageForm(caller, _): PageForm<Plain>,
) -> Response {
    match app.renew(&caller, id).await {
        Ok(l) => back_to(
            "/my",
            "message",
            &if ctx.ja {
                format!("延長しました。新しい返却期限は{}です", date(&app, l.due_at))
            } else {
                format!("Renewed: now due {}", date(&app, l.due_at))
            },
        ),
        Err(e) => back_to("/my", "error", &refusal(ctx.ja, e)),
    }
}

/// A hold or request form.
#[derive(Debug, Deserialize)]
pub struct HoldFields {
    record_id: String,
    pickup: String,
    item_barcode: Option<String>,
}

/// Places a hold on a title, for pickup at a campus.
pub async fn place_hold(
    State(app): State<App>,
    ctx: PageCtx,
    PageForm(caller, f): PageForm<HoldFields>,
) -> Response {
    let record_id: i64 = f.record_id.parse().unwrap_or(0);
    let back = format!("/records/{record_id}");
    let Actor::Patron { id } = caller.actor else {
        return Redirect::to(&format!("/login?next={back}")).into_response();
    };
    let Ok(pickup) = CampusCode::parse(&f.pickup) else {
        return back_to(&back, "error", &f.pickup);
    };
    match app.place_hold(&caller, id, record_id, None, &pickup).await {
        Ok(_) => back_to(&back, "message", word(ctx.ja, "hold_placed")),
        Err(e) => back_to(&back, "error", &refusal(ctx.ja, e)),
    }
}

/// Asks for a copy at another campus to be delivered.
pub async fn place_request(
    State(app): State<App>,
    ctx: PageCtx,
    PageForm(caller, f): PageForm<HoldFields>,
) -> Response {
    let back = format!("/records/{}", f.record_id.parse::<i64>().unwrap_or(0));
    let Actor::Patron { id } = caller.actor else {
        return Redirect::to(&format!("/login?next={back}")).into_response();
    };
    let (Ok(pickup), Some(Ok(barcode))) = (
        CampusCode::parse(&f.pickup),
        f.item_barcode.as_deref().map(shoko_domain::Barcode::parse),
    ) else {
        return back_to(&back, "error", &f.pickup);
    };
    match app.place_request(&caller, id, &barcode, &pickup).await {
        Ok(_) => back_to(&back, "message", word(ctx.ja, "request_placed")),
        Err(e) => back_to(&back, "error", &refusal(ctx.ja, e)),
    }
}

/// Cancels one of the patron's holds.
pub async fn cancel_hold(
    State(app): State<App>,
    ctx: PageCtx,
    Path(id): Path<i64>,
    PageForm(caller, _): PageForm<Plain>,
) -> Response {
    match app.cancel_hold(&caller, id).await {
        Ok(_) => back_to("/my", "message", word(ctx.ja, "hold_cancelled")),
        Err(e) => back_to("/my", "error", &refusal(ctx.ja, e)),
    }
}

/// The privacy form.
#[derive(Debug, Deserialize)]
pub struct PrivacyFields {
    keep_history: Option<String>,
}

/// Saves the loan-history opt-in.
pub async fn preferences(
    State(app): State<App>,
    ctx: PageCtx,
    PageForm(caller, f): PageForm<PrivacyFields>,
) -> Response {
    let Actor::Patron { id } = caller.actor else {
        return Redirect::to("/login?next=/my").into_response();
    };
    let prefs = shoko_app::patrons::PatronPreferences {
        keep_history: Some(f.keep_history.as_deref() == Some("on")),
        email: None,
        language: None,
    };
    match app.set_preferences(&caller, id, prefs).await {
        Ok(_) => back_to("/my", "message", word(ctx.ja, "saved")),
        Err(e) => back_to("/my", "error", &refusal(ctx.ja, e)),
    }
}
