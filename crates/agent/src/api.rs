//! The agent's local HTTP API: `/health/live`, `/health/ready`, `/status`, `/metrics`.

use crate::Shared;
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

/// The router; tests drive it without a socket.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/snapshot", post(snapshot))
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

/// Body of `POST /snapshot`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SnapshotRequest {
    /// Snapshot even when the node is not ready.
    force: bool,
}

fn error(code: StatusCode, message: String) -> axum::response::Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Control endpoints answer loopback callers (e.g. through an SSM port forward) and holders of the
/// admin token; the RPC access group alone must not be able to stop the node.
fn authorized(token: Option<&str>, peer: SocketAddr, headers: &HeaderMap) -> bool {
    if peer.ip().is_loopback() {
        return true;
    }
    let Some(token) = token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare in constant time: the token guards a stop of the node.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn snapshot(
    State(s): State<Arc<crate::Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Option<Json<SnapshotRequest>>,
) -> axum::response::Response {
    if !authorized(s.config.agent.admin_token.as_deref(), peer, &headers) {
        return error(
            StatusCode::FORBIDDEN,
            "POST /snapshot is for loopback callers or holders of agent.admin_token".into(),
        );
    }
    let req = body.map(|Json(b)| b).unwrap_or_default();
    use crate::snapshot::SnapshotError as E;
    // In a task of its own: a caller that goes away (Ctrl-C, a dropped SSM port forward) must not cancel
    // the snapshot between "clients stopped" and "clients started again".
    let shared = s.clone();
    let task =
        tokio::spawn(async move { crate::snapshot::take(&shared, req.force, "manual").await });
    let result = match task.await {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("snapshot task failed: {e}"),
            );
        }
    };
    match result {
        Ok(taken) => Json(taken).into_response(),
        Err(e @ E::Stopping) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e @ (E::NotReady(_) | E::Busy)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ E::NoVolume(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ E::Aws(_)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e @ E::NotStarted(..)) => error(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn control_endpoints_answer_loopback_or_the_token_only() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local6: SocketAddr = "[::1]:40000".parse().unwrap();
        let remote: SocketAddr = "10.0.1.9:40000".parse().unwrap();
        let none = HeaderMap::new();
        assert!(authorized(None, local, &none));
        assert!(authorized(None, local6, &none));
        assert!(
            !authorized(None, remote, &none),
            "no token configured: loopback only"
        );
        assert!(!authorized(None, remote, &bearer("anything")));
        assert!(authorized(
            Some("s3cret-token"),
            remote,
            &bearer("s3cret-token")
        ));
        assert!(!authorized(
            Some("s3cret-token"),
            remote,
            &bearer("s3cret-tokeN")
        ));
        assert!(!authorized(Some("s3cret-token"), remote, &bearer("s3cret")));
        assert!(!authorized(Some("s3cret-token"), remote, &none));
    }
}
