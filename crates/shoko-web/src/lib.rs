//! Shoko's HTTP layer: the REST API and health. Thin: every handler parses its
//! input into domain types, calls one use case in `shoko-app`, and turns the
//! outcome into JSON. This is the only crate that knows HTTP.

pub mod admission;
mod error;
mod marc_json;
mod records;
mod search;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, patch, post};
use shoko_app::App;

pub use admission::{Admission, Limits};
pub use error::ApiError;

/// What every handler shares: the application and the search gate.
#[derive(Clone)]
pub struct Web {
    app: App,
    admission: Arc<Admission>,
}

impl axum::extract::FromRef<Web> for App {
    fn from_ref(web: &Web) -> App {
        web.app.clone()
    }
}

/// The whole router: health and the REST API; public search behind the
/// admission gate.
pub fn router(app: App, admission: Arc<Admission>) -> Router {
    let public_search = Router::new()
        .route("/api/v1/search", get(search::search))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&admission),
            admission::gate,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(public_search)
        .route("/api/v1/records", get(records::find))
        .route(
            "/api/v1/records/{id}",
            get(records::get)
                .put(records::replace)
                .delete(records::delete),
        )
        .route("/api/v1/items/{id}", patch(records::change_item))
        .route("/api/v1/records/{id}/items", post(records::add_item))
        .with_state(Web { app, admission })
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    app: App,
    limits: Limits,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admission = Arc::new(Admission::new(limits));
    let sweeper = tokio::spawn({
        let admission = Arc::clone(&admission);
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                admission.forget_quiet_clients();
            }
        }
    });
    let service =
        router(app, admission).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let outcome = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    outcome
}

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
