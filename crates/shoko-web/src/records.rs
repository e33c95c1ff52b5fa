//! `/api/v1/records`: bibliographic records and their items.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use shoko_app::App;
use shoko_app::catalogue::{AddItemError, RecordChangeError, RecordView};
use shoko_domain::{Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode};

use crate::ApiError;
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

/// `GET /api/v1/records/{id}`.
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

fn change_error(e: RecordChangeError) -> ApiError {
    match e {
        RecordChangeError::NoRecord(_) => ApiError::not_found(e.to_string()),
        RecordChangeError::Stale { .. } => {
            ApiError::new(StatusCode::PRECONDITION_FAILED, "stale", e.to_string())
        }
        RecordChangeError::HasItems { .. } => {
            ApiError::new(StatusCode::CONFLICT, "has_items", e.to_string())
        }
        RecordChangeError::BadRecord(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_record",
            e.to_string(),
        ),
        RecordChangeError::Unexpected(e) => ApiError::unexpected(e),
    }
}

/// `PUT /api/v1/records/{id}`: replaces the MARC record, sent as MARCXML
/// (`application/marcxml+xml`) or ISO 2709 (`application/marc`), with
/// `If-Match`.
pub async fn replace(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let expected = expected_version(&headers)?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = if kind.starts_with("application/marc") && !kind.contains("xml") {
        shoko_marc::iso2709::parse(&body)
    } else if kind.contains("xml") {
        shoko_marc::marcxml::parse(&body)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the record as application/marcxml+xml or application/marc",
        ));
    };
    let (record, _warnings) = parsed.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_record",
            format!("the MARC record cannot be read: {e}"),
        )
    })?;
    let view = app
        .replace_record(id, expected, &record)
        .await
        .map_err(change_error)?;
    Ok(with_etag(&view))
}

/// `DELETE /api/v1/records/{id}` with `If-Match`: deletes a record without items.
pub async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let expected = expected_version(&headers)?;
    app.delete_record(id, expected)
        .await
        .map_err(change_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PATCH /api/v1/items/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemChange {
    status: String,
}

/// `PATCH /api/v1/items/{id}`: sets an item's status.
pub async fn change_item(
    State(app): State<App>,
    Path(id): Path<String>,
    Json(body): Json<ItemChange>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let status = ItemStatus::from_code(&body.status)
        .ok_or_else(|| bad("status", format!("unknown status {:?}", body.status)))?;
    let item = app
        .set_item_status(id, status)
        .await
        .map_err(ApiError::unexpected)?
        .ok_or_else(|| ApiError::not_found(format!("item {id} does not exist")))?;
    Ok(Json(
        serde_json::to_value(item).expect("an item always serialises"),
    ))
}

/// Query of `GET /api/v1/records`.
#[derive(Deserialize)]
pub struct FindQuery {
    control_number: Option<String>,
}

/// `GET /api/v1/records?control_number=…`: the records with this 001.
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
#[derive(Deserialize)]
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

/// `POST /api/v1/records/{id}/items`: adds an item.
pub async fn add_item(
    State(app): State<App>,
    Path(id): Path<i64>,
    Json(body): Json<NewItem>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let stored = app.add_item(id, item).await.map_err(|e| match e {
        AddItemError::NoRecord(_) => ApiError::not_found(e.to_string()),
        AddItemError::BarcodeTaken(_) => {
            ApiError::new(StatusCode::CONFLICT, "barcode_taken", e.to_string())
        }
        AddItemError::UnknownCode(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_code",
            e.to_string(),
        ),
        AddItemError::Unexpected(e) => ApiError::unexpected(e),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(stored).expect("an item always serialises")),
    ))
}
