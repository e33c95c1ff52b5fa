//! Shoko's HTTP layer: the REST API with its OpenAPI document, and health.
//! Thin: every handler parses its input into domain types, calls one use
//! case in `shoko-app` (which checks permissions), and turns the outcome into
//! JSON. This is the only crate that knows HTTP.

mod acquisitions;
pub mod admission;
pub mod auth;
mod circulation;
mod error;
pub mod listener;
mod marc_json;
mod opac;
pub mod ops;
mod pages;
mod patrons;
mod records;
mod search;
mod staff;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use shoko_app::App;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use admission::{Admission, Limits};
pub use auth::LoginLimits;
pub use error::{ApiError, prefers_japanese};

/// What every handler shares: the application, the search gate and the
/// login throttles. Cloned per request and layer, so one reference count.
#[derive(Clone)]
pub struct Web(Arc<WebParts>);

/// What a [`Web`] holds.
pub struct WebParts {
    app: App,
    admission: Arc<Admission>,
    logins: Arc<LoginLimits>,
}

impl std::ops::Deref for Web {
    type Target = WebParts;

    fn deref(&self) -> &WebParts {
        &self.0
    }
}

impl axum::extract::FromRef<Web> for App {
    fn from_ref(web: &Web) -> App {
        web.app.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shoko",
        description = "The REST API of Shoko, an integrated library system. Writes accept \
            `Idempotency-Key`: a repeat with the same key returns the first result and does not \
            act again. Errors have one shape, `{\"error\": {\"code\", \"message\"}}`, with the \
            message in Japanese or English after `Accept-Language`. Authenticate with \
            `Authorization: Bearer <token>` from `/api/v1/auth/login`, or with the session \
            cookie plus `X-CSRF-Token` on writes."
    ),
    tags(
        (name = "catalogue", description = "Records, items and search"),
        (name = "circulation", description = "Loans, check-ins, holds, requests, transits"),
        (name = "fines", description = "Fines, payments and waivers"),
        (name = "patrons", description = "Patrons and their own data"),
        (name = "staff", description = "Staff accounts and the audit log"),
        (name = "auth", description = "Login and sessions"),
        (name = "acquisitions", description = "Vendors, funds, orders, receiving, invoices and payments"),
        (name = "health", description = "Health"),
    )
)]
struct ApiDoc;

/// Every API route with its OpenAPI description: one list, so a route
/// cannot exist without its documentation.
fn api(admission: &Arc<Admission>) -> OpenApiRouter<Web> {
    let public_search = OpenApiRouter::new()
        .routes(routes!(search::search))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(admission),
            admission::gate,
        ));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(ops::live))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics_page))
        .merge(public_search)
        .routes(routes!(records::find))
        .routes(routes!(records::get, records::replace, records::delete))
        .routes(routes!(records::add_item))
        .routes(routes!(records::change_item))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(patrons::find, patrons::create))
        .routes(routes!(patrons::get, patrons::update))
        .routes(routes!(patrons::preferences))
        .routes(routes!(patrons::password))
        .routes(routes!(patrons::loans))
        .routes(routes!(patrons::history))
        .routes(routes!(patrons::holds))
        .routes(routes!(patrons::fines))
        .routes(routes!(circulation::checkout))
        .routes(routes!(circulation::loan))
        .routes(routes!(circulation::renew))
        .routes(routes!(circulation::checkin))
        .routes(routes!(circulation::place_hold))
        .routes(routes!(circulation::hold, circulation::cancel_hold))
        .routes(routes!(circulation::place_request))
        .routes(routes!(circulation::request))
        .routes(routes!(circulation::transits))
        .routes(routes!(circulation::charge_fine))
        .routes(routes!(circulation::fine))
        .routes(routes!(circulation::pay_fine))
        .routes(routes!(circulation::waive_fine))
        .routes(routes!(patrons::staff_list, patrons::staff_create))
        .routes(routes!(patrons::staff_update))
        .routes(routes!(patrons::audit))
        .routes(routes!(acquisitions::vendors, acquisitions::create_vendor))
        .routes(routes!(acquisitions::funds, acquisitions::create_fund))
        .routes(routes!(acquisitions::allocate))
        .routes(routes!(acquisitions::transfer))
        .routes(routes!(acquisitions::orders, acquisitions::create_order))
        .routes(routes!(acquisitions::send))
        .routes(routes!(acquisitions::receive))
        .routes(routes!(acquisitions::cancel))
        .routes(routes!(
            acquisitions::invoices,
            acquisitions::create_invoice
        ))
        .routes(routes!(acquisitions::approve))
        .routes(routes!(acquisitions::pay))
        .routes(routes!(acquisitions::close_year))
}

/// The OpenAPI 3 document of the REST API (served at `/api/v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let admission = Arc::new(Admission::new(Limits::for_cores(1)));
    api(&admission).split_for_parts().1
}

/// The whole router: health, the REST API, its OpenAPI document and viewer
/// (`/api/v1/docs`, assets compiled into the binary); public search behind
/// the admission gate; every request identified by its session.
pub fn router(app: App, admission: Arc<Admission>, logins: Arc<LoginLimits>) -> Router {
    ops::prometheus();
    let (routes, doc) = api(&admission).split_for_parts();
    let web = Web(Arc::new(WebParts {
        app,
        admission,
        logins,
    }));
    routes
        .merge(SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", doc))
        .merge(pages_router(&web.admission))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            auth::identify,
        ))
        .layer(axum::middleware::from_fn(error::localize))
        .route_layer(axum::middleware::from_fn(ops::record))
        .with_state(web)
}

/// The pages: the public catalogue at `/` (its searches behind the same
/// admission gate as the search API), the staff client under `/staff`, and
/// the stylesheet and scripts under `/static`.
fn pages_router(admission: &Arc<Admission>) -> axum::Router<Web> {
    use axum::routing::{get, post};
    let searches = axum::Router::new()
        .route("/", get(opac::home))
        .route("/staff/catalogue", get(staff::catalogue))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(admission),
            admission::gate,
        ));
    axum::Router::new()
        .merge(searches)
        .route("/advanced", get(opac::advanced))
        .route("/records/{id}", get(opac::record))
        .route("/records/{id}/marc", get(opac::marc))
        .route("/login", get(opac::login_form).post(opac::login_submit))
        .route("/logout", post(opac::logout))
        .route("/my", get(opac::my_library))
        .route("/my/loans/{id}/renew", post(opac::renew))
        .route("/my/holds", post(opac::place_hold))
        .route("/my/holds/{id}/cancel", post(opac::cancel_hold))
        .route("/my/requests", post(opac::place_request))
        .route("/my/preferences", post(opac::preferences))
        .route("/staff", get(staff::index))
        .route("/staff/", get(staff::index))
        .route(
            "/staff/login",
            get(pages::login_form).post(pages::login_submit),
        )
        .route("/staff/operations", get(pages::operations))
        .route("/staff/desk", get(staff::desk))
        .route("/staff/patrons", get(staff::patrons))
        .route(
            "/staff/patrons/{id}",
            get(staff::patron).post(staff::save_patron),
        )
        .route("/staff/acquisitions", get(staff::acquisitions))
        .route(
            "/staff/acquisitions/{action}",
            post(staff::acquisitions_post),
        )
        .route(
            "/staff/acquisitions/{kind}/{id}/{action}",
            post(staff::acquisitions_row),
        )
        .route("/staff/records/{id}", get(staff::record))
        .route("/staff/records/{id}/items", post(staff::add_item))
        .route("/staff/items/{id}/status", post(staff::item_status))
        .route("/static/{name}", get(pages::static_file))
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
/// `secure_cookies` marks the session cookie `Secure` (HTTPS in front);
/// above `connections.max_open` open at once a new connection is refused
/// at accept, and an idle one is closed after `connections.keep_alive` (see
/// [`listener`]).
pub async fn serve(
    app: App,
    limits: Limits,
    secure_cookies: bool,
    connections: listener::Connections,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admission = Arc::new(Admission::new(limits));
    let logins = Arc::new(LoginLimits::new(secure_cookies));
    let sweeper = tokio::spawn({
        let admission = Arc::clone(&admission);
        let logins = Arc::clone(&logins);
        let app = app.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                admission.forget_quiet_clients();
                logins.forget_quiet();
                if let Err(e) = app.housekeeping().await {
                    tracing::warn!(error = %e, "cannot prune idempotency keys and sessions");
                }
            }
        }
    });
    let service =
        router(app, admission, logins).into_make_service_with_connect_info::<listener::Peer>();
    let listener = listener::BoundedListener::new(listener, connections)?;
    let outcome = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    outcome
}

/// Health: the database answers, the index's position and lag, the search
/// gate's counters.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "OK", body = inline(Object)), (status = 500, description = "Unexpected error", body = error::ErrorBody)))]
async fn health(State(web): State<Web>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let app = &web.app;
    app.store.ping().await.map_err(ApiError::unexpected)?;
    let index = app.index_status().await.map_err(ApiError::unexpected)?;
    Ok(axum::Json(serde_json::json!({
        "status": "ok",
        "database": app.store.engine().name(),
        "index": index,
        "search_admission": web.admission.stats(),
    })))
}
