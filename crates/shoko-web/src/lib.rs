//! Shoko's HTTP layer: the REST API and health. Thin: every handler parses its
//! input into domain types, calls one use case in `shoko-app`, and turns the
//! outcome into JSON. This is the only crate that knows HTTP.

mod error;
mod marc_json;
mod records;
mod search;

use axum::Router;
use axum::routing::{get, patch, post};
use shoko_app::App;

pub use error::ApiError;

/// The whole router: health and the REST API.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/search", get(search::search))
        .route("/api/v1/records", get(records::find))
        .route(
            "/api/v1/records/{id}",
            get(records::get)
                .put(records::replace)
                .delete(records::delete),
        )
        .route("/api/v1/items/{id}", patch(records::change_item))
        .route("/api/v1/records/{id}/items", post(records::add_item))
        .with_state(app)
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn health(
    axum::extract::State(app): axum::extract::State<App>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    app.store.ping().await.map_err(ApiError::unexpected)?;
    let index = app.index_status().await.map_err(ApiError::unexpected)?;
    Ok(axum::Json(serde_json::json!({
        "status": "ok",
        "database": app.store.engine().name(),
        "index": index,
    })))
}
