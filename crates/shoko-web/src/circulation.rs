//! `/api/v1/loans`, `/checkins`, `/holds`, `/requests`, `/transits`, `/fines`:
//! the circulation desk's API. Every write accepts `Idempotency-Key`.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use shoko_app::App;
use shoko_app::circulation::{Checkin, Checkout, HoldPlaced};
use shoko_domain::{Barcode, CampusCode};
use shoko_store::{FineRow, HoldRow, LoanRow, TransitRow};

use crate::ApiError;
use crate::auth::{Call, Who};
use crate::error::ErrorBody;

/// A numeric id from the path, refused with a JSON error when it is not one.
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathId, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_id", e.body_text()))?;
        raw.parse().map(PathId).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_id",
                format!("id {raw:?} is not a number"),
            )
            .ja(format!("ID {raw:?} は数値ではありません"))
        })
    }
}

fn field<T, E: std::fmt::Display>(name: &'static str, parsed: Result<T, E>) -> Result<T, ApiError> {
    parsed.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{name}: {e}"),
        )
        .ja(format!("{name}: 値が正しくありません（{e}）"))
    })
}

/// Body of a checkout.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The patron's card barcode.
    patron_barcode: String,
    /// The item's barcode.
    item_barcode: String,
    /// The desk's campus.
    campus: String,
}

/// Lends an item.
#[utoipa::path(post, path = "/api/v1/loans", tag = "circulation",
    request_body = CheckoutBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a repeat with the same key returns the first result")),
    responses((status = 201, description = "Created", body = Checkout), (status = 409, description = "Conflict with the current state", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn checkout(
    State(app): State<App>,
    Call(caller, body): Call<CheckoutBody>,
) -> Result<(StatusCode, Json<Checkout>), ApiError> {
    let item = field("item_barcode", Barcode::parse(&body.item_barcode))?;
    let campus = field("campus", CampusCode::parse(&body.campus))?;
    let done = app
        .checkout(&caller, body.patron_barcode.trim(), &item, &campus)
        .await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// Body of a check-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinBody {
    /// The item's barcode.
    item_barcode: String,
    /// The desk's campus.
    campus: String,
}

/// Takes an item back and says where it goes.
#[utoipa::path(post, path = "/api/v1/checkins", tag = "circulation",
    request_body = CheckinBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a repeat with the same key returns the first result")),
    responses((status = 200, description = "OK", body = Checkin), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn checkin(
    State(app): State<App>,
    Call(caller, body): Call<CheckinBody>,
) -> Result<Json<Checkin>, ApiError> {
    let item = field("item_barcode", Barcode::parse(&body.item_barcode))?;
    let campus = field("campus", CampusCode::parse(&body.campus))?;
    Ok(Json(app.checkin(&caller, &item, &campus).await?))
}

/// One loan.
#[utoipa::path(get, path = "/api/v1/loans/{id}", tag = "circulation",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = LoanRow), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn loan(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<LoanRow>, ApiError> {
    Ok(Json(app.loan(&caller, id).await?))
}

/// Renews a loan.
#[utoipa::path(post, path = "/api/v1/loans/{id}/renew", tag = "circulation",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = LoanRow), (status = 409, description = "Conflict with the current state", body = ErrorBody)))]
pub async fn renew(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<LoanRow>, ApiError> {
    Ok(Json(app.renew(&caller, id).await?))
}

/// Body of a hold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Who holds.
    patron_id: i64,
    /// The title.
    record_id: i64,
    /// One copy, or any when omitted.
    #[serde(default)]
    item_id: Option<i64>,
    /// Where to collect it.
    pickup_campus: String,
}

/// Places a hold on a title or a copy.
#[utoipa::path(post, path = "/api/v1/holds", tag = "circulation",
    request_body = HoldBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = HoldPlaced), (status = 409, description = "Conflict with the current state", body = ErrorBody)))]
pub async fn place_hold(
    State(app): State<App>,
    Call(caller, body): Call<HoldBody>,
) -> Result<(StatusCode, Json<HoldPlaced>), ApiError> {
    let pickup = field("pickup_campus", CampusCode::parse(&body.pickup_campus))?;
    let done = app
        .place_hold(
            &caller,
            body.patron_id,
            body.record_id,
            body.item_id,
            &pickup,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// One hold.
#[utoipa::path(get, path = "/api/v1/holds/{id}", tag = "circulation",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = HoldRow), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn hold(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<HoldRow>, ApiError> {
    Ok(Json(app.hold(&caller, id).await?))
}

/// Cancels a hold or request.
#[utoipa::path(delete, path = "/api/v1/holds/{id}", tag = "circulation",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = HoldRow), (status = 409, description = "Conflict with the current state", body = ErrorBody)))]
pub async fn cancel_hold(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<HoldRow>, ApiError> {
    Ok(Json(app.cancel_hold(&caller, id).await?))
}

/// Body of a request for delivery.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// Who asks.
    patron_id: i64,
    /// The copy on the shelf at another campus.
    item_barcode: String,
    /// Where to deliver it.
    pickup_campus: String,
}

/// Asks for a copy from another campus.
#[utoipa::path(post, path = "/api/v1/requests", tag = "circulation",
    request_body = RequestBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = HoldPlaced), (status = 409, description = "Conflict with the current state", body = ErrorBody)))]
pub async fn place_request(
    State(app): State<App>,
    Call(caller, body): Call<RequestBody>,
) -> Result<(StatusCode, Json<HoldPlaced>), ApiError> {
    let item = field("item_barcode", Barcode::parse(&body.item_barcode))?;
    let pickup = field("pickup_campus", CampusCode::parse(&body.pickup_campus))?;
    let done = app
        .place_request(&caller, body.patron_id, &item, &pickup)
        .await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// One request (a hold of kind `request`).
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "circulation",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = HoldRow), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn request(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<HoldRow>, ApiError> {
    let hold = app.hold(&caller, id).await?;
    if hold.kind != "request" {
        return Err(ApiError::not_found(format!("request {id} does not exist"))
            .ja(format!("取り寄せ依頼 {id} は見つかりません")));
    }
    Ok(Json(hold))
}

/// Query of the transit list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TransitQuery {
    /// Only transits to or from this campus.
    campus: Option<String>,
}

/// Items in transit.
#[utoipa::path(get, path = "/api/v1/transits", tag = "circulation",
    params(TransitQuery),
    responses((status = 200, description = "OK", body = Vec<TransitRow>)))]
pub async fn transits(
    State(app): State<App>,
    Who(caller): Who,
    Query(q): Query<TransitQuery>,
) -> Result<Json<Vec<TransitRow>>, ApiError> {
    let campus = q
        .campus
        .as_deref()
        .map(|c| field("campus", CampusCode::parse(c)))
        .transpose()?;
    Ok(Json(app.transits(&caller, campus.as_ref()).await?))
}

/// Body of a manual fine.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FineBody {
    /// Who owes it.
    patron_id: i64,
    /// Yen.
    amount: i64,
    /// Why.
    note: String,
}

/// Charges a fine by hand.
#[utoipa::path(post, path = "/api/v1/fines", tag = "fines",
    request_body = FineBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = FineRow)))]
pub async fn charge_fine(
    State(app): State<App>,
    Call(caller, body): Call<FineBody>,
) -> Result<(StatusCode, Json<FineRow>), ApiError> {
    let fine = app
        .charge_fine(&caller, body.patron_id, body.amount, &body.note)
        .await?;
    Ok((StatusCode::CREATED, Json(fine)))
}

/// One fine.
#[utoipa::path(get, path = "/api/v1/fines/{id}", tag = "fines",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = FineRow), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn fine(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<FineRow>, ApiError> {
    Ok(Json(app.fine(&caller, id).await?))
}

/// Body of a payment or waiver.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountBody {
    /// Yen.
    amount: i64,
}

/// Takes a payment against a fine.
#[utoipa::path(post, path = "/api/v1/fines/{id}/payments", tag = "fines",
    request_body = AmountBody,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = FineRow), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn pay_fine(
    State(app): State<App>,
    PathId(id): PathId,
    Call(caller, body): Call<AmountBody>,
) -> Result<Json<FineRow>, ApiError> {
    Ok(Json(
        app.settle_fine(&caller, id, body.amount, false).await?,
    ))
}

/// Waives part or all of a fine.
#[utoipa::path(post, path = "/api/v1/fines/{id}/waivers", tag = "fines",
    request_body = AmountBody,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = FineRow), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn waive_fine(
    State(app): State<App>,
    PathId(id): PathId,
    Call(caller, body): Call<AmountBody>,
) -> Result<Json<FineRow>, ApiError> {
    Ok(Json(app.settle_fine(&caller, id, body.amount, true).await?))
}
