//! Who is calling: the session cookie (pages) or bearer token (API) becomes
//! an `Actor` for every request; cookie-authenticated writes must carry the
//! session's CSRF token; logins are rate-limited per address and per name.
//! Whether the actor may act is decided in `shoko-app`, not here.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shoko_app::auth::LoginKind;
use shoko_app::circulation::Caller;
use shoko_domain::Actor;
use shoko_store::IdempotencyKey;

use crate::{ApiError, Web};

/// The cookie that carries a page session.
pub const SESSION_COOKIE: &str = "shoko_session";

/// Who the request comes from, put in the request's extensions by [`identify`].
#[derive(Debug, Clone)]
pub struct Identity {
    /// The actor.
    pub actor: Actor,
    /// The session's CSRF token when the session came by cookie (a page):
    /// page forms must send it back.
    pub csrf: Option<String>,
}

/// Login throttles: per client address and per account name.
pub struct LoginLimits {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    pub(crate) by_name: DefaultKeyedRateLimiter<String>,
    /// Whether the session cookie is marked `Secure` (off only for plain-HTTP
    /// development).
    pub secure_cookies: bool,
}

impl LoginLimits {
    /// 30 attempts a minute from one address, 5 a minute at one name (with
    /// bursts of the same size): enough for a desk with a typo, far too few
    /// to guess a password.
    pub fn new(secure_cookies: bool) -> LoginLimits {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).expect("non-zero"));
        LoginLimits {
            by_address: RateLimiter::keyed(per_minute(30)),
            by_name: RateLimiter::keyed(per_minute(5)),
            secure_cookies,
        }
    }

    /// Drops the state of clients that have been quiet.
    pub fn forget_quiet(&self) {
        self.by_address.retain_recent();
        self.by_name.retain_recent();
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: finds the session and puts the [`Identity`] in the request.
/// A bearer token that is not valid is refused (401); a stale cookie counts
/// as nobody. A write with a session cookie must send the session's CSRF
/// token in `X-CSRF-Token`.
pub async fn identify(State(web): State<Web>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let (token, via_cookie) = match bearer(headers) {
        Some(t) => (Some(t.to_owned()), false),
        None => (cookie(headers, SESSION_COOKIE).map(str::to_owned), true),
    };
    let mut actor = Actor::Anonymous;
    let mut csrf = None;
    if let Some(token) = token {
        match web.app.authenticate(&token).await {
            Ok(Some(found)) => {
                // Page forms (outside /api) carry the token as a form field,
                // which `PageForm` checks; the API wants the header.
                let page = !request.uri().path().starts_with("/api/");
                if via_cookie && !safe(request.method()) && !page {
                    let sent = request
                        .headers()
                        .get("x-csrf-token")
                        .and_then(|v| v.to_str().ok());
                    if sent != Some(found.csrf.as_str()) {
                        return ApiError::new(
                            StatusCode::FORBIDDEN,
                            "csrf",
                            "send the session's CSRF token in X-CSRF-Token",
                        )
                        .ja("X-CSRF-Token にセッションのCSRFトークンを付けてください")
                        .into_response();
                    }
                }
                actor = found.actor;
                csrf = via_cookie.then_some(found.csrf);
            }
            Ok(None) if !via_cookie => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_token",
                    "the bearer token is not valid or has expired; log in again",
                )
                .ja("トークンが無効か期限切れです。もう一度ログインしてください")
                .into_response();
            }
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    request.extensions_mut().insert(Identity { actor, csrf });
    next.run(request).await
}

fn actor_of(parts: &Parts) -> Actor {
    parts
        .extensions
        .get::<Identity>()
        .map_or(Actor::Anonymous, |i| i.actor.clone())
}

fn idempotency(parts: &Parts, body: &[u8]) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = parts.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_idempotency_key",
                "Idempotency-Key must be 1 to 200 visible ASCII characters",
            )
            .ja("Idempotency-Key は1〜200文字のASCII文字列にしてください")
        })?;
    let mut digest = Sha256::new();
    digest.update(parts.method.as_str());
    digest.update(b" ");
    digest.update(parts.uri.path());
    digest.update(b"\n");
    digest.update(body);
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        fingerprint: hex::encode(digest.finalize()),
    }))
}

/// The caller of a request without a body (reads, or writes named by their
/// path such as a renewal), with its idempotency key.
pub struct Who(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, ApiError> {
        Ok(Who(Caller {
            actor: actor_of(parts),
            idempotency: idempotency(parts, b"")?,
        }))
    }
}

/// The caller and JSON body of a write; the idempotency fingerprint covers
/// method, path and body.
pub struct Call<T>(pub Caller, pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Call<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Call<T>, ApiError> {
        let (mut parts, body) = request.into_parts();
        let Who(mut caller) = Who::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
                    .ja("リクエスト本文を読めません")
            })?;
        let value: T = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_json",
                format!("the JSON body is not valid: {e}"),
            )
            .ja(format!("JSON本文が正しくありません: {e}"))
        })?;
        caller.idempotency = idempotency(&parts, &bytes)?;
        Ok(Call(caller, value))
    }
}

/// The caller and raw body of a write whose body is not JSON (a MARC record).
pub struct RawCall(pub Caller, pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawCall {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<RawCall, ApiError> {
        let (mut parts, body) = request.into_parts();
        let Who(mut caller) = Who::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text()))?;
        caller.idempotency = idempotency(&parts, &bytes)?;
        Ok(RawCall(caller, bytes))
    }
}

/// Body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// `staff` (by user name) or `patron` (by card barcode).
    kind: String,
    /// User name or card barcode.
    name: String,
    /// Password.
    password: String,
}

/// Answer of a successful login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoggedIn {
    /// Bearer token for the API (also set as the session cookie).
    token: String,
    /// CSRF token for cookie-authenticated writes.
    csrf: String,
    /// When the session ends, Unix milliseconds.
    expires_at: i64,
    /// Who logged in.
    actor: Actor,
}

fn too_many() -> Response {
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_rate_limited",
        "too many login attempts; wait a minute",
    )
    .ja("ログインの試行が多すぎます。1分ほど待ってください")
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

/// Logs in and starts a session.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = Login,
    responses((status = 200, description = "OK", body = LoggedIn), (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
              (status = 429, description = "Too many requests", body = crate::error::ErrorBody)))]
pub async fn login(State(web): State<Web>, request: Request) -> Response {
    let client = web.admission.client_of(&request);
    let Ok(Call(_, body)) = Call::<Login>::from_request(request, &()).await else {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_json",
            "send {\"kind\": \"staff\"|\"patron\", \"name\": …, \"password\": …}",
        )
        .into_response();
    };
    let limits: &Arc<LoginLimits> = &web.logins;
    if limits.by_address.check_key(&client).is_err()
        || limits.by_name.check_key(&body.name).is_err()
    {
        return too_many();
    }
    let kind = match body.kind.as_str() {
        "staff" => LoginKind::Staff,
        "patron" => LoginKind::Patron,
        other => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("kind: {other:?} is neither staff nor patron"),
            )
            .into_response();
        }
    };
    match web.app.login(kind, &body.name, &body.password).await {
        Ok(Some(session)) => {
            let mut cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
                session.token,
                i64::from(web.app.circulation.session_hours) * 3600
            );
            if limits.secure_cookies {
                cookie.push_str("; Secure");
            }
            let mut response = Json(LoggedIn {
                token: session.token,
                csrf: session.csrf,
                expires_at: session.expires_at,
                actor: session.actor,
            })
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Ok(None) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "the name or the password is wrong",
        )
        .ja("名前またはパスワードが違います")
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Ends the session of the token or cookie sent.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "No content")))]
pub async fn logout(State(web): State<Web>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = bearer(&headers).or_else(|| cookie(&headers, SESSION_COOKIE));
    if let Some(t) = token {
        web.app.logout(t).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("shoko_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(response)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "OK", body = Actor)))]
pub async fn me(Who(caller): Who) -> Json<Actor> {
    Json(caller.actor)
}

/// The session's CSRF token for a page to put in its forms (`None` without
/// a cookie session).
pub fn page_csrf(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<Identity>()
        .and_then(|i| i.csrf.clone())
}

/// The caller and form fields of a page's POST. With a cookie session the
/// form must carry the session's CSRF token as `csrf`; a hidden `idem` field,
/// made when the page was drawn, is the idempotency key, so a form sent
/// twice (a double click, a resend after a lost answer) acts once.
pub struct PageForm<T>(pub Caller, pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PageForm<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<PageForm<T>, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text()))?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(expected) = page_csrf(&parts)
            && field("csrf") != Some(expected.as_str())
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this form is out of date; reload the page and send it again",
            )
            .ja("フォームの有効期限が切れています。ページを再読み込みしてから送信してください"));
        }
        let value: T = serde_urlencoded_fields(&fields)?;
        let idempotency = field("idem")
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .map(|key| {
                let mut digest = Sha256::new();
                digest.update(parts.method.as_str());
                digest.update(b" ");
                digest.update(parts.uri.path());
                digest.update(b"\n");
                for (k, v) in fields.iter().filter(|(k, _)| k != "csrf") {
                    digest.update(k.as_bytes());
                    digest.update(b"=");
                    digest.update(v.as_bytes());
                    digest.update(b"&");
                }
                IdempotencyKey {
                    key: format!("page:{key}"),
                    fingerprint: hex::encode(digest.finalize()),
                }
            });
        Ok(PageForm(
            Caller {
                actor: actor_of(&parts),
                idempotency,
            },
            value,
        ))
    }
}

/// Form fields into a typed value (through JSON: every field a string).
fn serde_urlencoded_fields<T: DeserializeOwned>(
    fields: &[(String, String)],
) -> Result<T, ApiError> {
    // A name sent more than once (checkboxes) becomes one comma-joined value.
    let mut map = serde_json::Map::new();
    for (k, v) in fields {
        match map.get_mut(k) {
            Some(serde_json::Value::String(first)) => {
                first.push(',');
                first.push_str(v);
            }
            _ => {
                map.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
        }
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_form",
            format!("the form is not valid: {e}"),
        )
        .ja(format!("フォームの内容が正しくありません: {e}"))
    })
}
