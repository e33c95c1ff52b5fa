//! `/api/v1/vendors`, `/funds`, `/orders`, `/invoices`, `/fiscal-years`:
//! acquisitions, for the acquisitions role. Money is in integer minor
//! units (yen for funds; the vendor's currency for prices and invoices).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use shoko_app::App;
use shoko_app::acquisitions::{
    FundInput, InvoiceInput, OrderInput, Received, VendorInput, YearClosed,
};
use shoko_store::{FundRow, InvoiceRow, OrderLineRow, VendorRow};

use crate::auth::{Call, Who};
use crate::error::{ApiError, ErrorBody};

/// Lists vendors.
#[utoipa::path(get, path = "/api/v1/vendors", tag = "acquisitions",
    responses((status = 200, description = "OK", body = [VendorRow]), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn vendors(
    State(app): State<App>,
    Who(caller): Who,
) -> Result<Json<Vec<VendorRow>>, ApiError> {
    Ok(Json(app.vendors(&caller).await?))
}

/// Adds a vendor.
#[utoipa::path(post, path = "/api/v1/vendors", tag = "acquisitions", request_body = VendorInput,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = VendorRow), (status = 409, description = "Code in use", body = ErrorBody), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn create_vendor(
    State(app): State<App>,
    Call(caller, body): Call<VendorInput>,
) -> Result<(StatusCode, Json<VendorRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_vendor(&caller, body).await?),
    ))
}

/// `?year=` on the fund list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct YearQuery {
    /// The year the fiscal year starts in.
    year: i64,
}

/// Lists a fiscal year's funds with their balances.
#[utoipa::path(get, path = "/api/v1/funds", tag = "acquisitions", params(YearQuery),
    responses((status = 200, description = "OK", body = [FundRow]), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn funds(
    State(app): State<App>,
    Who(caller): Who,
    Query(q): Query<YearQuery>,
) -> Result<Json<Vec<FundRow>>, ApiError> {
    Ok(Json(app.funds(&caller, q.year).await?))
}

/// Adds a fund to a fiscal year.
#[utoipa::path(post, path = "/api/v1/funds", tag = "acquisitions", request_body = FundInput,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = FundRow), (status = 409, description = "Code in use", body = ErrorBody)))]
pub async fn create_fund(
    State(app): State<App>,
    Call(caller, body): Call<FundInput>,
) -> Result<(StatusCode, Json<FundRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_fund(&caller, body).await?),
    ))
}

/// Body of an allocation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Amount {
    /// Yen; negative takes money back.
    amount: i64,
}

/// Allocates money to a fund.
#[utoipa::path(post, path = "/api/v1/funds/{id}/allocations", tag = "acquisitions", request_body = Amount,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = FundRow), (status = 409, description = "Would overspend", body = ErrorBody)))]
pub async fn allocate(
    State(app): State<App>,
    Path(id): Path<i64>,
    Call(caller, body): Call<Amount>,
) -> Result<Json<FundRow>, ApiError> {
    Ok(Json(app.allocate(&caller, id, body.amount).await?))
}

/// Body of a transfer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Transfer {
    /// From this fund.
    from: i64,
    /// To this one (same year).
    to: i64,
    /// Yen.
    amount: i64,
}

/// Moves money between two funds of a year.
#[utoipa::path(post, path = "/api/v1/funds/transfers", tag = "acquisitions", request_body = Transfer,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Both funds after", body = [FundRow]), (status = 409, description = "Would overspend", body = ErrorBody)))]
pub async fn transfer(
    State(app): State<App>,
    Call(caller, body): Call<Transfer>,
) -> Result<Json<Vec<FundRow>>, ApiError> {
    Ok(Json(
        app.transfer(&caller, body.from, body.to, body.amount)
            .await?,
    ))
}

/// `?status=` on the order list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatusQuery {
    /// `draft`, `sent`, `partly_received`, `received`, `closed`, `cancelled`.
    status: Option<String>,
}

/// Lists order lines, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "acquisitions", params(StatusQuery),
    responses((status = 200, description = "OK", body = [OrderLineRow])))]
pub async fn orders(
    State(app): State<App>,
    Who(caller): Who,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Vec<OrderLineRow>>, ApiError> {
    Ok(Json(app.order_lines(&caller, q.status.as_deref()).await?))
}

/// Adds an order line (a draft).
#[utoipa::path(post, path = "/api/v1/orders", tag = "acquisitions", request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = OrderLineRow), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn create_order(
    State(app): State<App>,
    Call(caller, body): Call<OrderInput>,
) -> Result<(StatusCode, Json<OrderLineRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_order(&caller, body).await?),
    ))
}

/// Body of sending an order.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
pub struct Send {
    /// For a foreign currency: yen per major unit × 10⁶ to encumber at.
    #[serde(default)]
    rate_micros: Option<i64>,
}

/// Sends a draft to the vendor and encumbers its cost.
#[utoipa::path(post, path = "/api/v1/orders/{id}/send", tag = "acquisitions", request_body = Send,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = OrderLineRow), (status = 409, description = "Would overspend, or not a draft", body = ErrorBody)))]
pub async fn send(
    State(app): State<App>,
    Path(id): Path<i64>,
    Call(caller, body): Call<Send>,
) -> Result<Json<OrderLineRow>, ApiError> {
    Ok(Json(app.send_order(&caller, id, body.rate_micros).await?))
}

/// Body of a receipt.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Receive {
    /// One barcode per copy received.
    barcodes: Vec<String>,
}

/// Receives copies: one item per barcode.
#[utoipa::path(post, path = "/api/v1/orders/{id}/receive", tag = "acquisitions", request_body = Receive,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = Received), (status = 409, description = "Not receivable, or a barcode in use", body = ErrorBody)))]
pub async fn receive(
    State(app): State<App>,
    Path(id): Path<i64>,
    Call(caller, body): Call<Receive>,
) -> Result<Json<Received>, ApiError> {
    Ok(Json(app.receive(&caller, id, &body.barcodes).await?))
}

/// Cancels a draft or sent line.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "acquisitions",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = OrderLineRow), (status = 409, description = "Copies received", body = ErrorBody)))]
pub async fn cancel(
    State(app): State<App>,
    Path(id): Path<i64>,
    Who(caller): Who,
) -> Result<Json<OrderLineRow>, ApiError> {
    Ok(Json(app.cancel_order(&caller, id).await?))
}

/// Lists invoices, newest first.
#[utoipa::path(get, path = "/api/v1/invoices", tag = "acquisitions",
    responses((status = 200, description = "OK", body = [InvoiceRow])))]
pub async fn invoices(
    State(app): State<App>,
    Who(caller): Who,
) -> Result<Json<Vec<InvoiceRow>>, ApiError> {
    Ok(Json(app.invoices(&caller).await?))
}

/// Records an invoice.
#[utoipa::path(post, path = "/api/v1/invoices", tag = "acquisitions", request_body = InvoiceInput,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = InvoiceRow), (status = 409, description = "Number in use", body = ErrorBody), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn create_invoice(
    State(app): State<App>,
    Call(caller, body): Call<InvoiceInput>,
) -> Result<(StatusCode, Json<InvoiceRow>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_invoice(&caller, body).await?),
    ))
}

/// Approves an invoice for payment.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/approve", tag = "acquisitions",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Approved", body = InvoiceRow), (status = 422, description = "Not open", body = ErrorBody)))]
pub async fn approve(
    State(app): State<App>,
    Path(id): Path<i64>,
    Who(caller): Who,
) -> Result<Json<InvoiceRow>, ApiError> {
    Ok(Json(app.approve_invoice(&caller, id).await?))
}

/// Pays an approved invoice from its lines' funds.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/pay", tag = "acquisitions",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Paid", body = InvoiceRow), (status = 409, description = "A fund has not got the money", body = ErrorBody)))]
pub async fn pay(
    State(app): State<App>,
    Path(id): Path<i64>,
    Who(caller): Who,
) -> Result<Json<InvoiceRow>, ApiError> {
    Ok(Json(app.pay_invoice(&caller, id).await?))
}

/// Body of a year end.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
pub struct Close {
    /// Codes of the funds whose available balance is carried (the rest lapse).
    #[serde(default)]
    carry_balance: Vec<String>,
}

/// Closes a fiscal year, carrying encumbrances (and chosen balances) into the next.
#[utoipa::path(post, path = "/api/v1/fiscal-years/{id}/close", tag = "acquisitions", request_body = Close,
    params(("id" = i64, Path, description = "the year the fiscal year starts in"), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "Closed", body = YearClosed), (status = 404, description = "No funds that year", body = ErrorBody)))]
pub async fn close_year(
    State(app): State<App>,
    Path(id): Path<i64>,
    Call(caller, body): Call<Close>,
) -> Result<Json<YearClosed>, ApiError> {
    Ok(Json(
        app.close_year(&caller, id, &body.carry_balance).await?,
    ))
}
