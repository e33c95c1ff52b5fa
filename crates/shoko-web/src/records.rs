//! `/api/v1/records`: bibliographic records and their items.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use shoko_app::App;
use shoko_app::catalogue::{MarcFormat, RecordView};
use shoko_domain::{Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode};
use shoko_store::StoredItem;

use crate::ApiError;
use crate::auth::{Call, RawCall, Who};
use crate::error::ErrorBody;
use crate::marc_json::to_json;

fn view_json(v: &RecordView) -> Value {
    let mut value = serde_json::to_value(v).expect("a record view always serialises");
    value["marc"] = to_json(&v.marc);
    value
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("id {id:?} is not a number"),
        )
    })
}

/// A record as JSON with its version as the ETag, for `If-Match` on change.
fn with_etag(view: &RecordView) -> Response {
    let mut response = Json(view_json(view)).into_response();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", view.record.version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// One record with its items and its MARC record (MARC-in-JSON); its version is the ETag.
#[utoipa::path(get, operation_id = "get_record", path = "/api/v1/records/{id}", tag = "catalogue",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = RecordView), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let view = app
        .record(id)
        .await
        .map_err(ApiError::unexpected)?
        .ok_or_else(|| ApiError::not_found(format!("record {id} does not exist")))?;
    Ok(with_etag(&view))
}

/// The version an edit starts from: `If-Match: "N"`, required so that no
/// edit silently overwrites another.
fn expected_version(headers: &HeaderMap) -> Result<i64, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if_match_required",
            "send If-Match with the record's ETag (its version) from GET",
        )
    };
    let value = headers
        .get(header::IF_MATCH)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_if_match",
                format!("If-Match {value:?} is not a record version"),
            )
        })
}

/// Replaces the MARC record, sent as MARCXML (`application/marcxml+xml`) or
/// ISO 2709 (`application/marc`), with `If-Match` (cataloguers).
#[utoipa::path(put, operation_id = "replace_record", path = "/api/v1/records/{id}", tag = "catalogue",
    params(("id" = i64, Path), ("If-Match" = String, Header), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = String, content_type = "application/marcxml+xml"),
    responses((status = 200, description = "OK", body = RecordView), (status = 412, description = "Changed since read", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn replace(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawCall(caller, body): RawCall,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let expected = expected_version(&headers)?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = if kind.starts_with("application/marc") && !kind.contains("xml") {
        MarcFormat::Iso2709
    } else if kind.contains("xml") {
        MarcFormat::MarcXml
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the record as application/marcxml+xml or application/marc",
        )
        .ja("レコードは application/marcxml+xml か application/marc で送ってください"));
    };
    let view = app
        .replace_record_from(&caller, id, expected, format, &body)
        .await?;
    Ok(with_etag(&view))
}

/// Deletes a record without items, with `If-Match` (cataloguers).
#[utoipa::path(delete, operation_id = "delete_record", path = "/api/v1/records/{id}", tag = "catalogue",
    params(("id" = i64, Path), ("If-Match" = String, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 204, description = "No content"), (status = 409, description = "Conflict with the current state", body = ErrorBody), (status = 412, description = "Changed since read", body = ErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    Who(caller): Who,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let expected = expected_version(&headers)?;
    app.delete_record(&caller, id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PATCH /api/v1/items/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemChange {
    status: String,
}

/// Sets an item's status (cataloguers).
#[utoipa::path(patch, operation_id = "change_item", path = "/api/v1/items/{id}", tag = "catalogue",
    request_body = ItemChange,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = StoredItem), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn change_item(
    State(app): State<App>,
    Path(id): Path<String>,
    Call(caller, body): Call<ItemChange>,
) -> Result<Json<StoredItem>, ApiError> {
    let id = parse_id(&id)?;
    let status = ItemStatus::from_code(&body.status)
        .ok_or_else(|| bad("status", format!("unknown status {:?}", body.status)))?;
    let item = app
        .set_item_status(&caller, id, status)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("item {id} does not exist"))
                .ja(format!("資料 {id} は見つかりません"))
        })?;
    Ok(Json(item))
}

/// Query of `GET /api/v1/records`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct FindQuery {
    control_number: Option<String>,
}

/// The records with this control number (001).
#[utoipa::path(get, operation_id = "find_records", path = "/api/v1/records", tag = "catalogue",
    params(FindQuery),
    responses((status = 200, description = "OK", body = inline(Object)), (status = 400, description = "Bad request", body = ErrorBody)))]
pub async fn find(
    State(app): State<App>,
    Query(q): Query<FindQuery>,
) -> Result<Json<Value>, ApiError> {
    let number = q
        .control_number
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_parameter",
                "give control_number (the record's 001)",
            )
        })?;
    let views = app
        .records_by_control_number(number.trim())
        .await
        .map_err(ApiError::unexpected)?;
    let records: Vec<Value> = views.iter().map(view_json).collect();
    Ok(Json(serde_json::json!({ "records": records })))
}

/// Body of `POST /api/v1/records/{id}/items`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    barcode: String,
    campus: String,
    location: Option<String>,
    call_number: Option<String>,
    item_type: String,
    status: Option<String>,
}

fn bad(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        format!("{field}: {e}"),
    )
}

/// Adds an item to a record (cataloguers).
#[utoipa::path(post, operation_id = "add_item", path = "/api/v1/records/{id}/items", tag = "catalogue",
    request_body = NewItem,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = StoredItem), (status = 409, description = "Conflict with the current state", body = ErrorBody)))]
pub async fn add_item(
    State(app): State<App>,
    Path(id): Path<String>,
    Call(caller, body): Call<NewItem>,
) -> Result<(StatusCode, Json<StoredItem>), ApiError> {
    let id = parse_id(&id)?;
    let item = ItemSpec {
        barcode: Barcode::parse(&body.barcode).map_err(|e| bad("barcode", e))?,
        campus: CampusCode::parse(&body.campus).map_err(|e| bad("campus", e))?,
        location: body
            .location
            .as_deref()
            .map(LocationCode::parse)
            .transpose()
            .map_err(|e| bad("location", e))?,
        call_number: body.call_number.filter(|c| !c.trim().is_empty()),
        item_type: ItemTypeCode::parse(&body.item_type).map_err(|e| bad("item_type", e))?,
        status: match body.status.as_deref() {
            None => ItemStatus::Available,
            Some(s) => ItemStatus::from_code(s)
                .ok_or_else(|| bad("status", format!("unknown status {s:?}")))?,
        },
    };
    let stored = app.add_item(&caller, id, item).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}
