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
    ] {
        env.add_template(name, source)
            .expect("the built-in templates parse (a test renders each)");
    }
    env
});

/// The words of the pages, by language.
fn words(ja: bool) -> serde_json::Value {
    let pick = |j: &str, e: &str| if ja { j.to_owned() } else { e.to_owned() };
    serde_json::json!({
        "staff": pick("職員用", "Staff"),
        "language": pick("表示言語", "Language"),
        "login": pick("職員ログイン", "Staff login"),
        "username": pick("ユーザー名", "User name"),
        "password": pick("パスワード", "Password"),
        "operations": pick("運用状況", "Operations"),
        "readiness": pick("稼働状態", "Readiness"),
        "ready": pick("稼働中（正常）", "Ready"),
        "not_ready": pick("要対応", "Not ready"),
        "check": pick("項目", "Check"),
        "state": pick("状態", "State"),
        "detail": pick("詳細", "Detail"),
        "forecast": pick("容量の予測", "Capacity forecast"),
        "disk_free": pick("ディスク空き容量", "Free disk"),
        "database": pick("データベース", "Database"),
        "index": pick("検索索引", "Search index"),
        "growth": pick("1日あたりの増加", "Growth per day"),
        "sampled": pick("最終計測", "Last sample"),
        "usage": pick("容量の推移", "Storage over time"),
        "doctor": pick("点検結果（shoko doctor）", "Findings (shoko doctor)"),
        "area": pick("対象", "Area"),
        "jobs": pick("バッチジョブ", "Batch jobs"),
        "job": pick("ジョブ", "Job"),
        "schedule": pick("予定", "Schedule"),
        "last_run": pick("前回の実行", "Last run"),
        "tables": pick("大きいテーブル", "Largest tables"),
        "table": pick("テーブル", "Table"),
        "size": pick("サイズ", "Size"),
    })
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

/// `?lang=` on a page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    next: Option<String>,
}

fn japanese(lang: Option<&str>, headers: &HeaderMap) -> bool {
    match lang {
        Some("en") => false,
        Some("ja") => true,
        _ => {
            // Japanese unless the browser asks for English and not Japanese.
            let asked = headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            !asked.trim_start().starts_with("en") || crate::error::prefers_japanese(headers)
        }
    }
}

/// Only a path on this site under `/staff`, so the login cannot be used to
/// send someone elsewhere.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/staff/") && !n.starts_with("//") && !n.contains("://"))
        .unwrap_or("/staff/operations")
        .to_owned()
}

/// The login form.
pub async fn login_form(Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let ja = japanese(q.lang.as_deref(), &headers);
    render(
        "login.html",
        serde_json::json!({
            "lang": if ja { "ja" } else { "en" },
            "t": words(ja),
            "next": safe_next(q.next.as_deref()),
            "error": null,
        }),
    )
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginFields {
    name: String,
    password: String,
    next: Option<String>,
    lang: Option<String>,
}

/// Logs a staff member in from the form: the session cookie, then on to
/// the page they came for. A wrong password shows the form again.
pub async fn login_submit(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(f): Form<LoginFields>,
) -> Response {
    let ja = japanese(f.lang.as_deref(), &headers);
    let next = safe_next(f.next.as_deref());
    if web.logins.by_name.check_key(&f.name).is_err() {
        return form_again(
            ja,
            &next,
            if ja {
                "ログインの試行が多すぎます。1分ほど待ってください"
            } else {
                "too many login attempts; wait a minute"
            },
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    match web.app.login(LoginKind::Staff, &f.name, &f.password).await {
        Ok(Some(session)) => {
            let mut cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
                session.token,
                i64::from(web.app.circulation.session_hours) * 3600
            );
            if web.logins.secure_cookies {
                cookie.push_str("; Secure");
            }
            let lang = if ja { "ja" } else { "en" };
            let mut response = Redirect::to(&format!("{next}?lang={lang}")).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Ok(None) => form_again(
            ja,
            &next,
            if ja {
                "ユーザー名またはパスワードが違います"
            } else {
                "the user name or the password is wrong"
            },
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn form_again(ja: bool, next: &str, error: &str, status: StatusCode) -> Response {
    let mut r = render(
        "login.html",
        serde_json::json!({
            "lang": if ja { "ja" } else { "en" },
            "t": words(ja),
            "next": next,
            "error": error,
        }),
    );
    *r.status_mut() = status;
    r
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
pub async fn operations(
    State(app): State<App>,
    Who(caller): Who,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let ja = japanese(q.lang.as_deref(), &headers);
    if caller.actor == Actor::Anonymous {
        let lang = if ja { "ja" } else { "en" };
        return Redirect::to(&format!("/staff/login?next=/staff/operations&lang={lang}"))
            .into_response();
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
    render(
        "operations.html",
        serde_json::json!({
            "lang": if ja { "ja" } else { "en" },
            "t": t,
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
        for ja in [true, false] {
            let base = serde_json::json!({"lang": "ja", "t": words(ja), "next": "/staff/operations", "error": "x"});
            let login = TEMPLATES
                .get_template("login.html")
                .expect("login")
                .render(context(&base));
            assert!(login.expect("renders").contains("name=\"password\""));
            let ops = TEMPLATES.get_template("operations.html").expect("ops").render(context(&serde_json::json!({
                "lang": "ja", "t": words(ja), "ready": true, "checks": [], "alerts": ["満杯"],
                "days_left": "x", "charts": [{"title": "t", "svg": "<svg></svg>"}], "findings": [], "jobs": [], "tables": [],
            })));
            let html = ops.expect("renders");
            assert!(html.contains("<svg></svg>") && html.contains("満杯"));
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
    fn the_login_only_sends_on_to_staff_pages() {
        assert_eq!(
            safe_next(Some("https://evil.example/")),
            "/staff/operations"
        );
        assert_eq!(
            safe_next(Some("//evil.example/staff/")),
            "/staff/operations"
        );
        assert_eq!(safe_next(Some("/staff/desk")), "/staff/desk");
    }
}
