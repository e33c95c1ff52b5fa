//! Health and metrics for operators: `/health/live` (the process answers),
//! `/health/ready` (database, index lag, disk space, jobs — each named, 503
//! when one fails) and Prometheus metrics at `/metrics` (requests by route
//! and status with latency histograms, the pool, outbox lag, job outcomes,
//! database, index and free disk sizes).

use std::sync::OnceLock;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use shoko_app::App;

/// The process-wide Prometheus recorder (installed once; every router in
/// the process records into it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first (a test binary
        // running several servers): then that one records.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Middleware: counts every request by route template, method and status,
/// and records its latency.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("shoko_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("shoko_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The process answers.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "OK", body = inline(Object))))]
pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "live"}))
}

/// Ready to serve: every check passed (200), or which did not (503).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "OK", body = inline(Object)),
              (status = 503, description = "Busy", body = inline(Object))))]
pub async fn ready(State(app): State<App>) -> Response {
    let r = app.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "status": if r.ready { "ready" } else { "not_ready" },
            "checks": r.checks,
        })),
    )
        .into_response()
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OK", body = String, content_type = "text/plain")))]
pub async fn metrics_page(State(app): State<App>) -> Response {
    let g = app.gauges().await;
    metrics::gauge!("shoko_outbox_lag_rows").set(g.outbox_lag_rows as f64);
    metrics::gauge!("shoko_outbox_lag_seconds").set(g.outbox_lag_seconds);
    metrics::gauge!("shoko_index_documents").set(g.index_documents as f64);
    metrics::gauge!("shoko_index_shelved").set(g.index_shelved as f64);
    metrics::gauge!("shoko_index_bytes").set(g.index_bytes as f64);
    metrics::gauge!("shoko_database_bytes").set(g.database_bytes as f64);
    if let Some(free) = g.disk_free_bytes {
        metrics::gauge!("shoko_disk_free_bytes").set(free as f64);
    }
    metrics::gauge!("shoko_db_pool_connections", "state" => "open").set(f64::from(g.pool.0));
    metrics::gauge!("shoko_db_pool_connections", "state" => "idle").set(f64::from(g.pool.1));
    for (job, status, n) in g.job_runs {
        metrics::gauge!("shoko_job_runs", "job" => job, "status" => status).set(n as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
        .into_response()
}
