//! `/api/v1/records`: bibliographic records and their items.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use shoko_app::App;
use shoko_app::catalogue::{AddItemError, RecordView};
use shoko_domain::{Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode};

use crate::ApiError;
use crate::marc_json::to_json;

fn view_json(v: &RecordView) -> Value {
    let mut value = serde_json::to_value(v).expect("a record view always serialises");
    value["marc"] = to_json(&v.marc);
    value
}

/// `GET /api/v1/records/{id}`.
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("record id {id:?} is not a number"),
        )
    })?;
    let view = app
        .record(id)
        .await
        .map_err(ApiError::unexpected)?
        .ok_or_else(|| ApiError::not_found(format!("record {id} does not exist")))?;
    Ok(Json(view_json(&view)))
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
