//! `/api/v1/patrons`, `/api/v1/staff`, `/api/v1/audit`: patrons (with their
//! loans, holds and fines), staff accounts and the audit log.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use shoko_app::App;
use shoko_app::circulation::PatronView;
use shoko_app::patrons::{PatronInput, PatronPreferences};
use shoko_domain::{Role, Username};
use shoko_store::{AuditRow, FineRow, HoldRow, LoanRow, PatronRow, StaffRow};

use crate::ApiError;
use crate::auth::{Call, Who};
use crate::circulation::PathId;
use crate::error::ErrorBody;

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        format!("{field}: {message}"),
    )
}

/// Query of the patron search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PatronQuery {
    /// Start of a barcode, name or reading.
    q: Option<String>,
    /// An exact card barcode (what the desk scans).
    barcode: Option<String>,
}

/// Finds patrons (staff).
#[utoipa::path(get, operation_id = "find_patrons", path = "/api/v1/patrons", tag = "patrons",
    params(PatronQuery),
    responses((status = 200, description = "OK", body = Vec<PatronRow>), (status = 401, description = "Not logged in", body = ErrorBody)))]
pub async fn find(
    State(app): State<App>,
    Who(caller): Who,
    Query(q): Query<PatronQuery>,
) -> Result<Json<Vec<PatronRow>>, ApiError> {
    if let Some(b) = q.barcode {
        let found = app.find_patrons(&caller, &b).await?;
        return Ok(Json(
            found
                .into_iter()
                .filter(|p| p.barcode == b.trim())
                .collect(),
        ));
    }
    Ok(Json(
        app.find_patrons(&caller, q.q.as_deref().unwrap_or(""))
            .await?,
    ))
}

/// Body of a new patron: the patron's fields and an optional first password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewPatron {
    /// The fields.
    #[serde(flatten)]
    patron: PatronInput,
    /// A first password for OPAC login.
    #[serde(default)]
    password: Option<String>,
}

/// Registers a patron.
#[utoipa::path(post, operation_id = "create_patron", path = "/api/v1/patrons", tag = "patrons",
    request_body = NewPatron,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = PatronRow), (status = 409, description = "Conflict with the current state", body = ErrorBody), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn create(
    State(app): State<App>,
    Call(caller, body): Call<NewPatron>,
) -> Result<(StatusCode, Json<PatronRow>), ApiError> {
    let p = app
        .create_patron(&caller, body.patron, body.password.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// One patron, with why they are blocked (staff, or the patron).
#[utoipa::path(get, operation_id = "get_patron", path = "/api/v1/patrons/{id}", tag = "patrons",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = PatronView), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<PatronView>, ApiError> {
    Ok(Json(app.patron_view(&caller, id).await?))
}

fn version_of(headers: &HeaderMap) -> Result<i64, ApiError> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "if_match_required",
                "send If-Match with the patron's version",
            )
            .ja("If-Match に利用者の版番号を付けてください")
        })
}

/// Replaces a patron's fields (staff), with `If-Match: "version"`.
#[utoipa::path(put, operation_id = "update_patron", path = "/api/v1/patrons/{id}", tag = "patrons",
    request_body = PatronInput,
    params(("id" = i64, Path), ("If-Match" = String, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = PatronRow), (status = 422, description = "Invalid input", body = ErrorBody)))]
pub async fn update(
    State(app): State<App>,
    PathId(id): PathId,
    headers: HeaderMap,
    Call(caller, body): Call<PatronInput>,
) -> Result<Json<PatronRow>, ApiError> {
    let version = version_of(&headers)?;
    Ok(Json(app.update_patron(&caller, id, version, body).await?))
}

/// Changes the patron's own settings: loan-history opt-in, e-mail, language.
#[utoipa::path(patch, operation_id = "set_patron_preferences", path = "/api/v1/patrons/{id}/preferences", tag = "patrons",
    request_body = PatronPreferences,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = PatronRow), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn preferences(
    State(app): State<App>,
    PathId(id): PathId,
    Call(caller, body): Call<PatronPreferences>,
) -> Result<Json<PatronRow>, ApiError> {
    Ok(Json(app.set_preferences(&caller, id, body).await?))
}

/// Body of a password change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The new password.
    password: String,
}

/// Sets a patron's password (staff, or the patron).
#[utoipa::path(put, operation_id = "set_patron_password", path = "/api/v1/patrons/{id}/password", tag = "patrons",
    request_body = PasswordBody,
    params(("id" = i64, Path)),
    responses((status = 204, description = "No content"), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn password(
    State(app): State<App>,
    PathId(id): PathId,
    Call(caller, body): Call<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    app.set_patron_password(&caller, id, &body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Paging of a patron's loans.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// Skip this many.
    offset: Option<u64>,
    /// At most this many (up to 500).
    limit: Option<u64>,
}

/// A patron's open loans, soonest due first.
#[utoipa::path(get, operation_id = "patron_loans", path = "/api/v1/patrons/{id}/loans", tag = "patrons",
    params(("id" = i64, Path), Page),
    responses((status = 200, description = "OK", body = Vec<LoanRow>), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn loans(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
    Query(page): Query<Page>,
) -> Result<Json<Vec<LoanRow>>, ApiError> {
    Ok(Json(
        app.patron_loans(
            &caller,
            id,
            page.offset.unwrap_or(0),
            page.limit.unwrap_or(100),
        )
        .await?,
    ))
}

/// A patron's kept loan history (only with the opt-in).
#[utoipa::path(get, operation_id = "patron_history", path = "/api/v1/patrons/{id}/history", tag = "patrons",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Vec<LoanRow>), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn history(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<Vec<LoanRow>>, ApiError> {
    Ok(Json(app.patron_history(&caller, id).await?))
}

/// A patron's active holds and requests.
#[utoipa::path(get, operation_id = "patron_holds", path = "/api/v1/patrons/{id}/holds", tag = "patrons",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Vec<HoldRow>), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn holds(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<Vec<HoldRow>>, ApiError> {
    Ok(Json(app.patron_holds(&caller, id).await?))
}

/// A patron's fines.
#[utoipa::path(get, operation_id = "patron_fines", path = "/api/v1/patrons/{id}/fines", tag = "patrons",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Vec<FineRow>), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn fines(
    State(app): State<App>,
    Who(caller): Who,
    PathId(id): PathId,
) -> Result<Json<Vec<FineRow>>, ApiError> {
    Ok(Json(app.patron_fines(&caller, id).await?))
}

/// Body of a new staff account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    /// Login name.
    username: String,
    /// Name to show.
    display_name: String,
    /// `admin`, `cataloguer`, `circulation`, `acquisitions` or `read_only`.
    role: String,
    /// At least 10 characters.
    password: String,
}

fn role(code: &str) -> Result<Role, ApiError> {
    Role::from_code(code).ok_or_else(|| {
        invalid(
            "role",
            format!("{code:?} is not admin, cataloguer, circulation, acquisitions or read_only"),
        )
    })
}

/// Staff accounts (admin).
#[utoipa::path(get, path = "/api/v1/staff", tag = "staff",
    responses((status = 200, description = "OK", body = Vec<StaffRow>), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn staff_list(
    State(app): State<App>,
    Who(caller): Who,
) -> Result<Json<Vec<StaffRow>>, ApiError> {
    Ok(Json(app.staff_accounts(&caller).await?))
}

/// Creates a staff account (admin).
#[utoipa::path(post, path = "/api/v1/staff", tag = "staff",
    request_body = NewStaff,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "Created", body = StaffRow), (status = 403, description = "Not allowed", body = ErrorBody), (status = 409, description = "Conflict with the current state", body = ErrorBody)))]
pub async fn staff_create(
    State(app): State<App>,
    Call(caller, body): Call<NewStaff>,
) -> Result<(StatusCode, Json<StaffRow>), ApiError> {
    let username = Username::parse(&body.username).map_err(|e| invalid("username", e))?;
    let s = app
        .add_staff(
            &caller,
            &username,
            &body.display_name,
            role(&body.role)?,
            &body.password,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Changes to a staff account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffChange {
    /// Name to show.
    display_name: Option<String>,
    /// Role code.
    role: Option<String>,
    /// Whether it may log in.
    active: Option<bool>,
    /// A new password.
    password: Option<String>,
}

/// Changes a staff account (admin); a new password or deactivation ends its sessions.
#[utoipa::path(patch, path = "/api/v1/staff/{username}", tag = "staff",
    request_body = StaffChange,
    params(("username" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "OK", body = StaffRow), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn staff_update(
    State(app): State<App>,
    Path(username): Path<String>,
    Call(caller, body): Call<StaffChange>,
) -> Result<Json<StaffRow>, ApiError> {
    let username = Username::parse(&username).map_err(|e| invalid("username", e))?;
    let role = body.role.as_deref().map(role).transpose()?;
    Ok(Json(
        app.update_staff(
            &caller,
            &username,
            body.display_name.as_deref(),
            role,
            body.active,
            body.password.as_deref(),
        )
        .await?,
    ))
}

/// Query of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// `record`, `item`, `patron`, `loan`, `hold`, `fine`, `transit`, `staff`.
    entity: Option<String>,
    /// The entity's id.
    id: Option<String>,
    /// At most this many (up to 1000).
    limit: Option<u64>,
}

/// The audit log, newest first (staff).
#[utoipa::path(get, operation_id = "audit_log", path = "/api/v1/audit", tag = "staff",
    params(AuditQuery),
    responses((status = 200, description = "OK", body = Vec<AuditRow>), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn audit(
    State(app): State<App>,
    Who(caller): Who,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let entity = match (&q.entity, &q.id) {
        (Some(e), Some(i)) => Some((e.as_str(), i.as_str())),
        (None, None) => None,
        _ => return Err(invalid("entity", "give both entity and id, or neither")),
    };
    Ok(Json(
        app.audit_log(&caller, entity, q.limit.unwrap_or(100))
            .await?,
    ))
}
