//! The agent's local HTTP API: `/health/live`, `/health/ready`, `/status`, `/metrics`.

use crate::Shared;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// The router; tests drive it without a socket.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn live(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let st = s.status();
    let body = serde_json::json!({ "live": st.live, "clients": st.clients });
    (code(st.live), Json(body))
}

async fn ready(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let st = s.status();
    let body =
        serde_json::json!({ "ready": st.ready, "checks": st.checks, "checked_at": st.checked_at });
    (code(st.ready), Json(body))
}

async fn status(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    Json(s.status())
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
