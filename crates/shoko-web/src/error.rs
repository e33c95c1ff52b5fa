//! The one place where errors become HTTP: a status code and one JSON shape,
//! `{"error": {"code": "...", "message": "..."}}`, with a stable machine code
//! and the message in the caller's language (Japanese or English, from
//! `Accept-Language`; English when the header names neither).

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shoko_app::catalogue::{AddItemError, RecordChangeError};
use shoko_app::circulation::CircError;
use shoko_domain::Denied;
use shoko_domain::circulation::BlockReason;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    en: String,
    ja: String,
}

/// The error JSON schema, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// The error.
    error: ErrorDetail,
}

/// The error's code and message.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `patron_blocked`.
    code: String,
    /// Message in the caller's language.
    message: String,
}

impl ApiError {
    /// A client error with a stable code and an English message (used for
    /// both languages until a Japanese one is given with [`ApiError::ja`]).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        let en = message.into();
        ApiError {
            status,
            code,
            ja: en.clone(),
            en,
        }
    }

    /// The Japanese message.
    pub fn ja(mut self, message: impl Into<String>) -> ApiError {
        self.ja = message.into();
        self
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        let en = message.into();
        let ja = format!("見つかりません: {en}");
        ApiError::new(StatusCode::NOT_FOUND, "not_found", en).ja(ja)
    }

    /// 500: logged in full, shown to the client without internals.
    pub fn unexpected(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "unexpected error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an unexpected error happened; it has been logged",
        )
        .ja("予期しないエラーが発生しました。記録されています")
    }

    /// A storage error: 503 `storage_full` (with `Retry-After: 30`) when the disk or tablespace is full, so a desk
    /// knows to retry and nothing is lost; else a 500.
    pub fn store(err: &shoko_app::StoreError) -> ApiError {
        match err {
            shoko_app::StoreError::StorageFull(detail) => {
                tracing::error!(%detail, "a write was refused: storage is full");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_full",
                    "storage is full: this change was not saved (nothing saved before is lost); try again once the systems team has freed space",
                )
                .ja("保存領域が一杯のため、この変更は保存されませんでした（保存済みのデータは失われていません）。システム担当が空きを作った後にもう一度操作してください")
            }
            other => ApiError::unexpected(other),
        }
    }

    /// The message in English.
    pub fn en_message(&self) -> &str {
        &self.en
    }

    /// The message in Japanese.
    pub fn ja_message(&self) -> &str {
        &self.ja
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn body(&self, japanese: bool) -> Json<serde_json::Value> {
        let message = if japanese { &self.ja } else { &self.en };
        Json(serde_json::json!({
            "error": { "code": self.code, "message": message }
        }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body(false)).into_response();
        if self.code == "storage_full" {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Whether the caller prefers Japanese to English (`Accept-Language`, by
/// quality, first listed on a tie).
pub fn prefers_japanese(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut best: Option<(f32, bool)> = None;
    for part in value.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let japanese = if tag == "ja" || tag.starts_with("ja-") {
            true
        } else if tag == "en" || tag.starts_with("en-") {
            false
        } else {
            continue;
        };
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, japanese));
        }
    }
    best.is_some_and(|(_, ja)| ja)
}

/// Middleware: rewrites an error body in Japanese for callers who prefer it.
pub async fn localize(request: Request, next: Next) -> Response {
    let japanese = prefers_japanese(request.headers());
    let mut response = next.run(request).await;
    if japanese && let Some(err) = response.extensions_mut().remove::<ApiError>() {
        let headers = response.headers().clone();
        let mut localized = (err.status, err.body(true)).into_response();
        for (name, value) in &headers {
            if name != header::CONTENT_LENGTH {
                localized.headers_mut().insert(name, value.clone());
            }
        }
        return localized;
    }
    response
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::NotLoggedIn => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "not_logged_in",
                "log in first (a session cookie or a bearer token)",
            )
            .ja("ログインしてください"),
            Denied::Forbidden(p) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this account may not do that (needs {p:?})"),
            )
            .ja("このアカウントにはその操作の権限がありません"),
        }
    }
}

pub(crate) fn block_message(reason: &BlockReason) -> (String, String) {
    match reason {
        BlockReason::Manual { note } => (
            format!("the patron is blocked: {note}"),
            format!("利用停止中です: {note}"),
        ),
        BlockReason::Expired { on } => (
            format!("the patron's registration expired on {on}"),
            format!("利用者登録の有効期限（{on}）が切れています"),
        ),
        BlockReason::Overdue { .. } => (
            "the patron has an overdue loan".into(),
            "延滞中の資料があります".into(),
        ),
        BlockReason::Fines { owed, limit } => (
            format!("the patron owes {owed} yen in fines (limit {limit})"),
            format!("未納の延滞料が{owed}円あります（上限{limit}円）"),
        ),
    }
}

impl From<CircError> for ApiError {
    fn from(e: CircError) -> ApiError {
        use CircError::*;
        let en = e.to_string();
        let (status, code, ja) = match &e {
            Denied(d) => return d.clone().into(),
            NoPatron(p) => (
                StatusCode::NOT_FOUND,
                "no_patron",
                format!("利用者 {p} は見つかりません"),
            ),
            NoItem(i) => (
                StatusCode::NOT_FOUND,
                "no_item",
                format!("資料 {i} は見つかりません"),
            ),
            NoRecord(r) => (
                StatusCode::NOT_FOUND,
                "no_record",
                format!("書誌 {r} は見つかりません"),
            ),
            NoLoan(l) => (
                StatusCode::NOT_FOUND,
                "no_loan",
                format!("貸出 {l} は見つかりません"),
            ),
            NoHold(h) => (
                StatusCode::NOT_FOUND,
                "no_hold",
                format!("予約 {h} は見つかりません"),
            ),
            NoFine(f) => (
                StatusCode::NOT_FOUND,
                "no_fine",
                format!("延滞料 {f} は見つかりません"),
            ),
            PatronBlocked(reason) => {
                let (en, ja) = block_message(reason);
                return ApiError::new(StatusCode::CONFLICT, "patron_blocked", en).ja(ja);
            }
            ItemUnavailable { barcode, status } => (
                StatusCode::CONFLICT,
                "item_unavailable",
                format!("資料 {barcode} は貸出できない状態です（{status}）"),
            ),
            HeldForAnother(b) => (
                StatusCode::CONFLICT,
                "held_for_another",
                format!("資料 {b} は他の利用者の予約取置中です"),
            ),
            NotForLoan(b) => (
                StatusCode::CONFLICT,
                "not_for_loan",
                format!("資料 {b} はこの利用者には貸出できません"),
            ),
            LoanLimit { max } => (
                StatusCode::CONFLICT,
                "loan_limit",
                format!("貸出上限（{max}冊）に達しています"),
            ),
            RenewalLimit { allowed } => (
                StatusCode::CONFLICT,
                "renewal_limit",
                format!("延長回数の上限（{allowed}回）に達しています"),
            ),
            RenewalHasHolds => (
                StatusCode::CONFLICT,
                "renewal_has_holds",
                "他の利用者の予約があるため延長できません".into(),
            ),
            RenewalRecalled => (
                StatusCode::CONFLICT,
                "renewal_recalled",
                "返却請求（リコール）中のため延長できません".into(),
            ),
            LoanClosed(l) => (
                StatusCode::CONFLICT,
                "loan_closed",
                format!("貸出 {l} はすでに返却されています"),
            ),
            NotHoldable => (
                StatusCode::CONFLICT,
                "not_holdable",
                "この資料は予約できません".into(),
            ),
            AlreadyHeld => (
                StatusCode::CONFLICT,
                "already_held",
                "この資料はすでに予約済みです".into(),
            ),
            HoldClosed { id, status } => (
                StatusCode::CONFLICT,
                "hold_closed",
                format!("予約 {id} は変更できない状態です（{status}）"),
            ),
            AlreadyThere(b) => (
                StatusCode::CONFLICT,
                "already_there",
                format!("資料 {b} はすでに受取キャンパスにあります"),
            ),
            BadAmount {
                amount,
                outstanding,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_amount",
                format!("金額 {amount}円 は1円から未納額 {outstanding}円 の間で指定してください"),
            ),
            Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{field}: {message}"),
            ),
            Taken(what) => (
                StatusCode::CONFLICT,
                "taken",
                format!("{what} はすでに使われています"),
            ),
            KeyReused(k) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!("Idempotency-Key {k:?} は別のリクエストで使われています"),
            ),
            Unexpected(err) => return ApiError::store(err),
        };
        ApiError::new(status, code, en).ja(ja)
    }
}

impl From<RecordChangeError> for ApiError {
    fn from(e: RecordChangeError) -> ApiError {
        let en = e.to_string();
        match e {
            RecordChangeError::NoRecord(id) => {
                ApiError::not_found(en).ja(format!("書誌 {id} は見つかりません"))
            }
            RecordChangeError::Stale { id, current, .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "stale", en).ja(format!(
                    "書誌 {id} は読み込んだ後に変更されています（現在の版 {current}）。読み込み直してから編集してください"
                ))
            }
            RecordChangeError::HasItems { id, items } => {
                ApiError::new(StatusCode::CONFLICT, "has_items", en).ja(format!(
                    "書誌 {id} には所蔵が{items}件あります。先に除籍または移動してください"
                ))
            }
            RecordChangeError::BadRecord(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_record", en.clone())
                    .ja(format!("MARCレコードが正しくありません: {en}"))
            }
            RecordChangeError::Denied(d) => d.into(),
            RecordChangeError::Unexpected(e) => ApiError::store(&e),
        }
    }
}

impl From<AddItemError> for ApiError {
    fn from(e: AddItemError) -> ApiError {
        let en = e.to_string();
        match e {
            AddItemError::NoRecord(id) => {
                ApiError::not_found(en).ja(format!("書誌 {id} は見つかりません"))
            }
            AddItemError::BarcodeTaken(b) => {
                ApiError::new(StatusCode::CONFLICT, "barcode_taken", en)
                    .ja(format!("バーコード {b} はすでに使われています"))
            }
            AddItemError::UnknownCode(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_code", en.clone())
                    .ja(format!("設定にないコードです: {en}"))
            }
            AddItemError::Denied(d) => d.into(),
            AddItemError::Unexpected(e) => ApiError::store(&e),
        }
    }
}

impl From<shoko_app::acquisitions::AcqError> for ApiError {
    fn from(e: shoko_app::acquisitions::AcqError) -> ApiError {
        use shoko_app::acquisitions::AcqError::*;
        let en = e.to_string();
        let (status, code, ja) = match &e {
            Denied(d) => return d.clone().into(),
            Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{field}: {message}"),
            ),
            NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("見つかりません: {what}"),
            ),
            Taken(what) => (
                StatusCode::CONFLICT,
                "taken",
                format!("既に使われています: {what}"),
            ),
            WrongState { id, status, .. } => (
                StatusCode::CONFLICT,
                "wrong_state",
                format!("発注明細 {id} は {status} の状態なので、この操作はできません"),
            ),
            Fund { code, source } => (
                StatusCode::CONFLICT,
                "fund_overspent",
                match source {
                    shoko_domain::acquisitions::FundError::Overspent { available, needed } => {
                        format!(
                            "予算 {code} の残額が足りません（残額 {available}円、必要額 {needed}円）"
                        )
                    }
                    other => format!("予算 {code}: {other}"),
                },
            ),
            KeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "この Idempotency-Key は別の要求に使われています".to_owned(),
            ),
            Unexpected(err) => return ApiError::store(err),
        };
        ApiError::new(status, code, en).ja(ja)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn lang(v: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(v).expect("header"),
        );
        prefers_japanese(&h)
    }

    #[test]
    fn the_preferred_language_follows_accept_language_quality() {
        assert!(lang("ja"));
        assert!(lang("ja-JP,en;q=0.8"));
        assert!(!lang("en-US,ja;q=0.5"));
        assert!(lang("fr, ja;q=0.9, en;q=0.8"));
        assert!(!lang("fr"));
        assert!(!prefers_japanese(&HeaderMap::new()));
    }
}
