//! Staff pages, server-rendered from minijinja templates compiled into the
//! binary (`templates/`), in Japanese or English (`?lang=`, else
//! `Accept-Language`, else Japanese): the staff login and the operations
//! page (readiness, storage charts and forecast, doctor, jobs, tables).
//! They work without JavaScript.

use std::sync::LazyLock;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use shoko_app::App;
use shoko_app::auth::LoginKind;
use shoko_domain::Actor;
use shoko_store::Point;

use crate::Web;
use crate::auth::{SESSION_COOKIE, Who};

static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("../templates/layout.html")),
        ("login.html", include_str!("../templates/login.html")),
        (
            "operations.html",
            include_str!("../templates/operations.html"),
        ),
        ("search.html", include_str!("../templates/search.html")),
        ("advanced.html", include_str!("../templates/advanced.html")),
        ("record.html", include_str!("../templates/record.html")),
        ("marc.html", include_str!("../templates/marc.html")),
        ("my.html", include_str!("../templates/my.html")),
        ("desk.html", include_str!("../templates/desk.html")),
        ("patrons.html", include_str!("../templates/patrons.html")),
        (
            "patron_edit.html",
            include_str!("../templates/patron_edit.html"),
        ),
        (
            "record_edit.html",
            include_str!("../templates/record_edit.html"),
        ),
        (
            "acquisitions.html",
            include_str!("../templates/acquisitions.html"),
        ),
    ] {
        env.add_template(name, source)
            .expect("the built-in templates parse (a test renders each)");
    }
    env
});

/// The words of the pages: (key, Japanese, English).
const WORDS: &[(&str, &str, &str)] = &[
    ("skip", "本文へ移動", "Skip to content"),
    ("menu", "メニュー", "Menu"),
    ("staff", "職員用", "Staff"),
    ("opac", "蔵書検索", "Library catalogue"),
    ("language", "表示言語", "Language"),
    ("login", "職員ログイン", "Staff login"),
    ("login_patron", "ログイン", "Log in"),
    ("logout", "ログアウト", "Log out"),
    ("patron_login", "利用者ログイン", "Patron login"),
    ("card", "利用者番号", "Card number"),
    ("username", "ユーザー名", "User name"),
    ("password", "パスワード", "Password"),
    ("operations", "運用状況", "Operations"),
    ("readiness", "稼働状態", "Readiness"),
    ("ready", "稼働中（正常）", "Ready"),
    ("not_ready", "要対応", "Not ready"),
    ("check", "項目", "Check"),
    ("state", "状態", "State"),
    ("detail", "詳細", "Detail"),
    ("forecast", "容量の予測", "Capacity forecast"),
    ("disk_free", "ディスク空き容量", "Free disk"),
    ("database", "データベース", "Database"),
    ("index", "検索索引", "Search index"),
    ("growth", "1日あたりの増加", "Growth per day"),
    ("sampled", "最終計測", "Last sample"),
    ("usage", "容量の推移", "Storage over time"),
    (
        "doctor",
        "点検結果（shoko doctor）",
        "Findings (shoko doctor)",
    ),
    ("area", "対象", "Area"),
    ("jobs", "バッチジョブ", "Batch jobs"),
    ("job", "ジョブ", "Job"),
    ("schedule", "予定", "Schedule"),
    ("last_run", "前回の実行", "Last run"),
    ("tables", "大きいテーブル", "Largest tables"),
    ("table", "テーブル", "Table"),
    ("size", "サイズ", "Size"),
    ("search_catalogue", "蔵書を探す", "Search the catalogue"),
    ("search_words", "検索語", "Search words"),
    ("search", "検索", "Search"),
    (
        "placeholder",
        "書名・著者名・件名・ISBN など",
        "Title, author, subject, ISBN…",
    ),
    (
        "hint",
        "「図書館」「としょかん」「圖書館」のどれでも見つかります",
        "Japanese works in kanji, kana or old forms alike",
    ),
    ("advanced", "詳細検索", "Advanced search"),
    ("results", "検索結果", "Search results"),
    ("refine", "絞り込み", "Refine"),
    ("filters", "絞り込み中", "Filters"),
    ("remove", "解除", "Remove"),
    ("sort_by", "並び順", "Sort by"),
    ("apply", "適用", "Apply"),
    ("no_hits", "該当する資料はありません。", "Nothing found."),
    ("pages", "ページ", "Pages"),
    ("prev", "前へ", "Previous"),
    ("next", "次へ", "Next"),
    ("title", "書名", "Title"),
    ("author", "著者", "Author"),
    ("subject", "件名", "Subject"),
    ("isbn", "ISBN/ISSN", "ISBN/ISSN"),
    ("publisher", "出版者", "Publisher"),
    ("year", "出版年", "Year"),
    ("year_from", "出版年（から）", "Year from"),
    ("year_to", "出版年（まで）", "Year to"),
    ("campus", "キャンパス", "Campus"),
    ("any", "すべて", "Any"),
    ("language_of", "言語", "Language"),
    ("format", "資料種別", "Format"),
    ("availability", "所蔵と貸出状況", "Copies and availability"),
    ("decade", "出版年代", "Decade"),
    ("views", "表示", "Views"),
    ("details", "詳細", "Details"),
    ("marc_view", "MARC表示", "MARC view"),
    ("description", "書誌事項", "Description"),
    ("location", "配置場所", "Location"),
    ("call_number", "請求記号", "Call number"),
    ("status", "状態", "Status"),
    ("actions", "操作", "Actions"),
    ("no_copies", "所蔵はありません", "No copies"),
    ("pickup_campus", "受取キャンパス", "Pickup campus"),
    ("place_hold", "予約する", "Place a hold"),
    ("request_to", "取り寄せ:", "Deliver to"),
    (
        "login_to_hold",
        "ログインすると予約・取り寄せができます",
        "Log in to place a hold or a request",
    ),
    ("tag", "タグ", "Tag"),
    ("indicators", "指示子", "Indicators"),
    ("content", "内容", "Content"),
    ("my_library", "マイライブラリ", "My Library"),
    ("loans", "貸出中の資料", "Loans"),
    ("due", "返却期限", "Due"),
    ("renewals", "延長回数", "Renewals"),
    ("renew", "延長", "Renew"),
    ("recalled", "返却要請あり", "recalled"),
    ("no_loans", "貸出中の資料はありません", "No loans"),
    ("holds", "予約・取り寄せ", "Holds and requests"),
    ("kind", "種類", "Kind"),
    ("cancel", "取消", "Cancel"),
    ("no_holds", "予約はありません", "No holds"),
    ("fines", "延滞料など", "Fines"),
    ("owed", "未納額", "Owed"),
    ("no_fines", "未納の料金はありません", "Nothing owed"),
    ("privacy", "プライバシー", "Privacy"),
    ("keep_history", "貸出履歴を残す", "Keep my loan history"),
    (
        "privacy_note",
        "残さない場合、返却した資料の記録から利用者情報が消去されます。",
        "If not, returned loans are anonymised.",
    ),
    ("save", "保存", "Save"),
    ("desk", "カウンター", "Circulation desk"),
    ("patrons", "利用者", "Patrons"),
    ("catalogue", "蔵書", "Catalogue"),
    ("checkout", "貸出", "Check out"),
    ("checkin", "返却", "Check in"),
    ("patron_barcode", "利用者番号", "Patron barcode"),
    ("item_barcode", "資料バーコード", "Item barcode"),
    (
        "scan_patron",
        "利用者カードを読み取ってください",
        "Scan the patron's card",
    ),
    (
        "scan_items",
        "資料を続けて読み取ってください",
        "Scan items one after another",
    ),
    ("queue", "処理状況", "Scanned"),
    (
        "offline",
        "サーバーに接続できません。読み取った内容は保存され、接続が戻ると自動で送信されます。",
        "The server cannot be reached. What you scanned is kept and sent when the connection returns.",
    ),
    ("desk_campus", "カウンターのキャンパス", "Desk campus"),
    ("find_patron", "利用者を探す", "Find a patron"),
    ("name", "氏名", "Name"),
    ("name_reading", "氏名のよみ", "Name reading"),
    ("category", "区分", "Category"),
    ("home_campus", "所属キャンパス", "Home campus"),
    ("email", "メール", "E-mail"),
    ("phone", "電話", "Phone"),
    ("expires_on", "有効期限", "Expires on"),
    ("manual_block", "利用停止（理由）", "Block (reason)"),
    ("open_loans", "貸出数", "Loans"),
    ("edit", "編集", "Edit"),
    (
        "draft_restored",
        "保存されていない入力を復元しました",
        "Unsaved input restored",
    ),
    ("saved", "保存しました", "Saved"),
    ("title_reading", "書名のよみ", "Title reading"),
    ("marc_editor", "MARC編集", "MARC editor"),
    ("acquisitions", "受入・支払", "Acquisitions"),
    ("funds", "予算", "Funds"),
    ("fund", "予算", "Fund"),
    ("code", "コード", "Code"),
    ("allocated", "配分額", "Allocated"),
    ("encumbered", "発注済額", "Encumbered"),
    ("expended", "支出額", "Expended"),
    ("available", "残額", "Available"),
    ("closed", "締め済", "closed"),
    ("new_fund", "予算を追加", "Add a fund"),
    ("add", "追加", "Add"),
    ("allocate", "配分", "Allocate"),
    ("amount_yen", "金額（円）", "Amount (yen)"),
    ("orders", "発注", "Orders"),
    ("vendor", "業者", "Vendor"),
    ("vendors", "業者", "Vendors"),
    ("quantity", "冊数", "Copies"),
    ("send", "発注する", "Send"),
    (
        "rate",
        "為替レート（1単位あたり円）",
        "Exchange rate (yen per unit)",
    ),
    (
        "barcodes",
        "受入資料のバーコード",
        "Barcodes of the copies received",
    ),
    ("receive", "受入", "Receive"),
    ("new_order", "発注を追加", "New order"),
    ("record_id", "書誌ID", "Record id"),
    (
        "unit_price",
        "単価（業者の通貨）",
        "Unit price (vendor currency)",
    ),
    ("invoices", "請求書", "Invoices"),
    ("number", "請求書番号", "Invoice number"),
    ("total", "合計", "Total"),
    ("pay", "支払", "Pay"),
    ("approve", "承認", "Approve"),
    ("transfer", "予算の振替", "Transfer"),
    ("from_fund", "振替元", "From fund"),
    ("to_fund", "振替先", "To fund"),
    ("year_end", "年度締め", "Close the year"),
    (
        "year_end_note",
        "発注残は翌年度の同じコードの予算へ移ります。",
        "Open orders and their encumbrances move to next year's fund of the same code.",
    ),
    (
        "carry_balance",
        "残額を繰り越す予算",
        "Carry the balance of",
    ),
    ("new_invoice", "請求書を登録", "New invoice"),
    ("order_line", "発注明細", "Order line"),
    ("gross", "金額（税抜・値引前）", "Amount before tax"),
    ("tax_rate", "消費税率", "Tax rate"),
    ("shipping", "送料", "Shipping"),
    ("currency", "通貨", "Currency"),
    ("version", "版", "version"),
    ("add_field", "フィールドを追加", "Add a field"),
    ("items", "所蔵資料", "Items"),
    ("add_item", "資料を追加", "Add an item"),
    ("item_type", "資料区分", "Item type"),
    ("on_shelf_now", "貸出可", "On the shelf"),
    ("on_loan", "貸出中", "On loan"),
    ("in_transit", "輸送中", "In transit"),
    ("on_hold_shelf", "予約棚", "On the hold shelf"),
    ("missing", "所在不明", "Missing"),
    ("hold_kind", "予約", "Hold"),
    ("request_kind", "取り寄せ", "Delivery request"),
    (
        "hold_placed",
        "予約しました。用意ができたらお知らせします",
        "Hold placed; you will be told when it is ready",
    ),
    (
        "request_placed",
        "取り寄せを申し込みました",
        "Delivery requested",
    ),
    ("hold_cancelled", "予約を取り消しました", "Hold cancelled"),
    (
        "too_many",
        "ログインの試行が多すぎます。1分ほど待ってください",
        "Too many login attempts; wait a minute",
    ),
    (
        "wrong_login",
        "番号（名前）またはパスワードが違います",
        "The name or the password is wrong",
    ),
];

/// A table of (key, Japanese, English) in one language, as a JSON object.
pub(crate) fn word_map(ja: bool, table: &[(&str, &str, &str)]) -> serde_json::Value {
    serde_json::Value::Object(
        table
            .iter()
            .map(|(k, j, e)| ((*k).to_owned(), (if ja { *j } else { *e }).into()))
            .collect(),
    )
}

/// The words of the pages in one language, for the templates' `t`.
fn words(ja: bool) -> serde_json::Value {
    word_map(ja, WORDS)
}

/// One word in one language.
pub(crate) fn word(ja: bool, key: &str) -> &'static str {
    WORDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or("", |(_, j, e)| if ja { j } else { e })
}

/// What every page knows: language, area, the session's CSRF token, whether
/// a patron is logged in.
pub(crate) struct PageCtx {
    pub ja: bool,
    pub csrf: Option<String>,
    pub actor: Actor,
    /// `?lang=` was given: remembered in a cookie.
    pub set_lang: Option<&'static str>,
}

impl PageCtx {
    /// The base of a template's context.
    pub fn base(&self, area: &str) -> serde_json::Value {
        serde_json::json!({
            "lang": if self.ja { "ja" } else { "en" },
            "t": words(self.ja),
            "area": area,
            "csrf": self.csrf,
            "patron": matches!(self.actor, Actor::Patron { .. }),
            "lang_query": "",
            "idem": random_key(),
        })
    }

    /// Renders a page; `extra` adds to (and overrides) the base context.
    pub fn page(&self, name: &str, area: &str, extra: serde_json::Value) -> Response {
        let mut ctx = self.base(area);
        if let (Some(c), serde_json::Value::Object(e)) = (ctx.as_object_mut(), extra) {
            c.extend(e);
        }
        let mut r = render(name, ctx);
        if let Some(lang) = self.set_lang
            && let Ok(v) = HeaderValue::from_str(&format!(
                "{LANG_COOKIE}={lang}; Path=/; SameSite=Lax; Max-Age=31536000"
            ))
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }
}

const LANG_COOKIE: &str = "shoko_lang";

/// A fresh random key for forms (their idempotency key) and desk scans.
pub(crate) fn random_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PageCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<PageCtx, std::convert::Infallible> {
        let query_lang = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .map(|(_, v)| v.into_owned())
        });
        let set_lang = match query_lang.as_deref() {
            Some("ja") => Some("ja"),
            Some("en") => Some("en"),
            _ => None,
        };
        let cookie_lang = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(LANG_COOKIE)?.strip_prefix('='))
            .map(str::to_owned);
        let ja = japanese(set_lang.or(cookie_lang.as_deref()), &parts.headers);
        let identity = parts.extensions.get::<crate::auth::Identity>();
        Ok(PageCtx {
            ja,
            csrf: identity.and_then(|i| i.csrf.clone()),
            actor: identity.map_or(Actor::Anonymous, |i| i.actor.clone()),
            set_lang,
        })
    }
}

/// The stylesheet and scripts, compiled in; cached for a day.
pub async fn static_file(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "shoko.css" => (
            include_str!("../static/shoko.css"),
            "text/css; charset=utf-8",
        ),
        "desk.js" => (
            include_str!("../static/desk.js"),
            "text/javascript; charset=utf-8",
        ),
        "drafts.js" => (
            include_str!("../static/drafts.js"),
            "text/javascript; charset=utf-8",
        ),
        "marc-editor.js" => (
            include_str!("../static/marc-editor.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

fn context(v: &serde_json::Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

fn render(name: &str, ctx: serde_json::Value) -> Response {
    match TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(context(&ctx)))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "page cannot be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "page cannot be rendered").into_response()
        }
    }
}

/// `?next=` on a login page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    next: Option<String>,
}

fn japanese(lang: Option<&str>, headers: &HeaderMap) -> bool {
    match lang {
        Some("en") => false,
        Some("ja") => true,
        // Japanese unless the browser prefers English to Japanese.
        _ => {
            let asked = headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            !asked.trim_start().starts_with("en") || crate::error::prefers_japanese(headers)
        }
    }
}

/// Only a path on this site, so a login cannot send anyone elsewhere;
/// staff logins only under `/staff/`.
pub(crate) fn safe_next(next: Option<&str>, staff: bool) -> String {
    let fallback = if staff { "/staff/desk" } else { "/my" };
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains("://"))
        .filter(|n| !staff || n.starts_with("/staff/"))
        .unwrap_or(fallback)
        .to_owned()
}

/// A login form (staff or patron).
pub(crate) fn login_page(ctx: &PageCtx, staff: bool, next: &str, error: Option<&str>) -> Response {
    ctx.page(
        "login.html",
        if staff { "staff" } else { "opac" },
        serde_json::json!({
            "heading": word(ctx.ja, if staff { "login" } else { "patron_login" }),
            "name_label": word(ctx.ja, if staff { "username" } else { "card" }),
            "action": if staff { "/staff/login" } else { "/login" },
            "next": next,
            "error": error,
        }),
    )
}

/// The staff login form.
pub async fn login_form(ctx: PageCtx, Query(q): Query<PageQuery>) -> Response {
    login_page(&ctx, true, &safe_next(q.next.as_deref(), true), None)
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginFields {
    name: String,
    password: String,
    next: Option<String>,
}

/// Logs in from a form (staff at `/staff/login`, patrons at `/login`): the
/// session cookie, then on to the page they came for. A wrong password
/// shows the form again.
pub(crate) async fn login_with_form(
    web: &Web,
    ctx: &PageCtx,
    kind: LoginKind,
    f: LoginFields,
) -> Response {
    let staff = kind == LoginKind::Staff;
    let next = safe_next(f.next.as_deref(), staff);
    let ctx_err = |key: &str, status: StatusCode| {
        let mut r = login_page(ctx, staff, &next, Some(word(ctx.ja, key)));
        *r.status_mut() = status;
        r
    };
    if web.logins.by_name.check_key(&f.name).is_err() {
        return ctx_err("too_many", StatusCode::TOO_MANY_REQUESTS);
    }
    match web.app.login(kind, &f.name, &f.password).await {
        Ok(Some(session)) => {
            let mut cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
                session.token,
                i64::from(web.app.circulation.session_hours) * 3600
            );
            if web.logins.secure_cookies {
                cookie.push_str("; Secure");
            }
            let mut response = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Ok(None) => ctx_err("wrong_login", StatusCode::UNAUTHORIZED),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// The staff login form sent.
pub async fn login_submit(
    State(web): State<Web>,
    ctx: PageCtx,
    Form(f): Form<LoginFields>,
) -> Response {
    login_with_form(&web, &ctx, LoginKind::Staff, f).await
}

fn human(bytes: f64) -> String {
    let (v, unit) = if bytes.abs() >= 1_073_741_824.0 {
        (bytes / 1_073_741_824.0, "GiB")
    } else if bytes.abs() >= 1_048_576.0 {
        (bytes / 1_048_576.0, "MiB")
    } else {
        (bytes / 1024.0, "KiB")
    };
    format!("{v:.1} {unit}")
}

/// A line chart of one series as inline SVG: the polyline, the lowest and
/// highest value on the left, the first and last day below. Text is drawn
/// by the browser in the page's (Japanese) font.
fn chart(points: &[Point], label: &str, time_zone: chrono_tz::Tz) -> String {
    const W: f64 = 480.0;
    const H: f64 = 160.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 20.0;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg">"#
    );
    svg.push_str(&format!(
        r##"<rect x="{LEFT}" y="4" width="{}" height="{}" fill="#fafbfc" stroke="#d5dbe3"/>"##,
        W - LEFT - 4.0,
        H - BOTTOM - 8.0
    ));
    if points.len() < 2 {
        svg.push_str(&format!(
            r#"<text x="{}" y="{}" text-anchor="middle">—</text></svg>"#,
            (W + LEFT) / 2.0,
            H / 2.0
        ));
        return svg;
    }
    let t0 = points.iter().map(|p| p.at_ms).min().unwrap_or(0);
    let t1 = points
        .iter()
        .map(|p| p.at_ms)
        .max()
        .unwrap_or(1)
        .max(t0 + 1);
    let lo = points.iter().map(|p| p.bytes).min().unwrap_or(0) as f64;
    let hi = (points.iter().map(|p| p.bytes).max().unwrap_or(1) as f64).max(lo + 1.0);
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - 8.0) + 2.0;
    let y = |b: u64| 8.0 + (hi - b as f64) / (hi - lo) * (H - BOTTOM - 16.0);
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at_ms), y(p.bytes)))
        .collect();
    svg.push_str(&format!(
        r##"<polyline fill="none" stroke="#2f6db5" stroke-width="2" points="{}"/>"##,
        line.join(" ")
    ));
    let day = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .map(|d| {
                d.with_timezone(&time_zone)
                    .format("%m/%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    svg.push_str(&format!(
        r#"<text x="{}" y="14" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
        LEFT - 4.0,
        human(hi),
        LEFT - 4.0,
        H - BOTTOM - 4.0,
        human(lo)
    ));
    svg.push_str(&format!(
        r#"<text x="{LEFT}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        H - 4.0,
        day(t0),
        W - 4.0,
        H - 4.0,
        day(t1)
    ));
    svg
}

fn when(app: &App, ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&app.circulation.time_zone)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// The operations page (staff); a visitor who is not logged in is sent to
/// the login form first.
pub async fn operations(State(app): State<App>, Who(caller): Who, ctx: PageCtx) -> Response {
    let ja = ctx.ja;
    if !matches!(caller.actor, Actor::Staff { .. }) {
        return Redirect::to("/staff/login?next=/staff/operations").into_response();
    }
    let o = match app.operations_overview(&caller).await {
        Ok(o) => o,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let t = words(ja);
    let cap = &o.capacity;
    let days_left = match cap.days_until_full() {
        Some(d) if ja => format!("あと約{d:.0}日で一杯"),
        Some(d) => format!("full in about {d:.0} days"),
        None if cap.sampled_at.is_none() => (if ja {
            "計測待ち"
        } else {
            "waiting for samples"
        })
        .to_owned(),
        None => (if ja {
            "増加していません"
        } else {
            "not filling up"
        })
        .to_owned(),
    };
    let tz = app.circulation.time_zone;
    let charts: Vec<serde_json::Value> = o
        .series
        .iter()
        .map(|(name, points)| {
            let title = t[*name].as_str().unwrap_or(name).to_owned();
            serde_json::json!({ "title": title, "svg": chart(points, &title, tz) })
        })
        .collect();
    let checks: Vec<serde_json::Value> = o
        .readiness
        .checks
        .iter()
        .map(|(name, c)| serde_json::json!({"name": name, "ok": c.ok, "detail": c.detail}))
        .collect();
    let findings: Vec<serde_json::Value> = o
        .findings
        .iter()
        .map(|f| serde_json::json!({"level": f.level, "area": f.area, "text": if ja { &f.ja } else { &f.en }}))
        .collect();
    let jobs: Vec<serde_json::Value> = o
        .jobs
        .iter()
        .map(|j| {
            let (class, last) = match &j.last_run {
                None => ("", if ja { "未実行".to_owned() } else { "not run yet".to_owned() }),
                Some(r) => (
                    match r.status.as_str() {
                        "succeeded" => "ok",
                        "failed" => "fail",
                        _ => "warn",
                    },
                    format!("{} {}", when(&app, r.started_at), r.status),
                ),
            };
            serde_json::json!({"name": j.name, "cron": j.schedule.cron, "class": class, "last": last})
        })
        .collect();
    let alerts: Vec<&String> = cap
        .alerts
        .iter()
        .map(|a| if ja { &a.ja } else { &a.en })
        .collect();
    let latest = |s: &str| cap.latest(s).map_or("—".to_owned(), |b| human(b as f64));
    ctx.page(
        "operations.html",
        "staff",
        serde_json::json!({
            "ready": o.readiness.ready,
            "checks": checks,
            "alerts": alerts,
            "days_left": days_left,
            "disk_free": latest("disk_free"),
            "database": latest("database"),
            "index": latest("index"),
            "growth": cap.disk.map_or("—".to_owned(), |f| human(f.used_per_day)),
            "sampled": cap.sampled_at.map_or("—".to_owned(), |t| when(&app, t)),
            "charts": charts,
            "findings": findings,
            "jobs": jobs,
            "tables": o.tables.iter().map(|(n, b)| (n.clone(), human(*b as f64))).collect::<Vec<_>>(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_in_both_languages() {
        let names: Vec<&str> = TEMPLATES.templates().map(|(n, _)| n).collect();
        assert!(names.len() >= 11, "{names:?}");
        for ja in [true, false] {
            let ctx = PageCtx {
                ja,
                csrf: Some("c".into()),
                actor: Actor::Patron { id: 1 },
                set_lang: None,
            };
            let mut base = ctx.base("opac");
            let extra: serde_json::Value = serde_json::from_str(
                r#"{                 "heading": "h", "name_label": "n", "action": "/login", "next": "/my", "error": "エラー",                 "q": "図書館", "hits": [{"id": 1, "title": "<mark>図書館</mark>", "reading": "としょかん",                     "authors": "著者", "year": 2001, "availability": [{"campus": "本郷", "available": true, "text": "1冊中1冊可"}]}],                 "facets": [{"title": "言語", "values": [{"label": "日本語", "count": 3, "href": "/?q=x"}]}],                 "active": [], "sorts": [], "total_text": "1件", "page_text": "1–1 / 1",                 "ready": true, "checks": [], "alerts": ["満杯"], "days_left": "x",                 "charts": [{"title": "t", "svg": "<svg></svg>"}], "findings": [], "jobs": [], "tables": [],                 "fields": [["書名", "図書館"]], "campuses": [{"code": "HONGO", "name": "本郷"}],                 "r": {"id": 1, "title": "図書館"}, "copies": [{"barcode": "1", "campus": "本郷", "location": "", "call_number": "", "state": "貸出可", "class": "ok", "requestable": true}],                 "home_campus": "HONGO", "home_campus_name": "本郷", "id": 1, "title": "図書館", "leader": "00000nam",                 "name": "山田", "loans": [], "holds": [], "fines": [], "keep_history": false,                 "campuses_json": "[]", "desk_words": "{}", "patrons": [],                 "p": {"id": 1, "name": "山田", "barcode": "P1", "version": 1, "category": "UNDERGRAD", "home_campus": "HONGO", "language": "ja"},                 "categories": ["UNDERGRAD"], "saved": true }"#,
            )
            .expect("valid JSON");
            if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
                b.extend(e);
            }
            for name in &names {
                let html = TEMPLATES
                    .get_template(name)
                    .and_then(|t| t.render(context(&base)))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    html.contains(if *name == "layout.html" {
                        "<html"
                    } else {
                        "</main>"
                    }),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn a_chart_draws_its_series_and_labels() {
        let points: Vec<Point> = (0..10)
            .map(|i| Point {
                at_ms: 1_700_000_000_000 + i * 3_600_000,
                bytes: 1_048_576 * (100 - i as u64),
            })
            .collect();
        let svg = chart(&points, "ディスク", chrono_tz::Asia::Tokyo);
        assert!(svg.contains("<polyline") && svg.contains("100.0 MiB") && svg.contains("91.0 MiB"));
        assert_eq!(svg.matches(',').count(), 10);
    }

    #[test]
    fn a_login_only_sends_on_to_pages_of_this_site() {
        assert_eq!(
            safe_next(Some("https://evil.example/"), true),
            "/staff/desk"
        );
        assert_eq!(
            safe_next(Some("//evil.example/staff/"), true),
            "/staff/desk"
        );
        assert_eq!(safe_next(Some("/my"), true), "/staff/desk");
        assert_eq!(
            safe_next(Some("/staff/operations"), true),
            "/staff/operations"
        );
        assert_eq!(safe_next(Some("/records/3"), false), "/records/3");
        assert_eq!(safe_next(Some("//evil.example/"), false), "/my");
    }
}
