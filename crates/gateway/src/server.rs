//! The HTTP front: keys, body limit, parse, method policy, then forward to an upstream at head — retried
//! once on another when the first fails on transport or timeout.

use crate::pool::{Pool, Upstream};
use crate::rpc::{self, Call, Incoming};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Limits and policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// SHA-256 of each accepted key; empty: no key needed.
    pub key_hashes: HashSet<[u8; 32]>,
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Longest batch.
    pub max_batch: usize,
    /// Per upstream attempt.
    pub timeout: Duration,
    /// Method prefixes refused for everybody.
    pub denied_prefixes: Vec<String>,
    /// Name the upstream that answered in `x-ethnode-upstream`.
    pub debug_header: bool,
}

/// Namespaces that let a caller reshape the node, read its mempool or drive its consensus, and the
/// methods that make a node sign with its own keys (a retry after a timeout would sign and send twice).
pub const DENIED_BY_DEFAULT: &[&str] = &[
    "admin_",
    "debug_",
    "personal_",
    "miner_",
    "engine_",
    "txpool_",
    "eth_sign",
    "eth_sendTransaction",
];

/// Filters live in the node that made them: their calls stay on one node.
fn is_filter_call(method: &str) -> bool {
    matches!(
        method,
        "eth_newFilter"
            | "eth_newBlockFilter"
            | "eth_newPendingTransactionFilter"
            | "eth_getFilterChanges"
            | "eth_getFilterLogs"
            | "eth_uninstallFilter"
    )
}

/// A key's SHA-256 (keys are kept and compared as hashes).
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

struct App {
    pool: Pool,
    policy: Policy,
    http: reqwest::Client,
}

/// The gateway's router.
pub fn router(pool: Pool, policy: Policy) -> axum::Router {
    let http = reqwest::Client::builder()
        .timeout(policy.timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let limit = policy.max_body_bytes;
    let app = Arc::new(App { pool, policy, http });
    axum::Router::new()
        .route("/", post(root))
        .route("/v1/{key}", post(with_path_key))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

fn json(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({"error": message}))
}

async fn root(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    handle(&app, key, body).await
}

async fn with_path_key(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    handle(&app, Some(&key), body).await
}

async fn handle(app: &App, key: Option<&str>, body: Bytes) -> Response {
    let p = &app.policy;
    if !p.key_hashes.is_empty() && !key.is_some_and(|k| p.key_hashes.contains(&key_hash(k))) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or unknown API key: send `Authorization: Bearer KEY` or POST to /v1/KEY",
        );
    }
    let incoming = match rpc::parse(&body, p.max_batch) {
        Ok(i) => i,
        Err(e) => return json(StatusCode::OK, &e),
    };
    match incoming {
        Incoming::Single(call) => {
            if let Some(refusal) = refused(p, &call) {
                return answer_one(call.id.as_ref(), refusal);
            }
            let (status, bytes, upstream) = forward(app, body, is_filter_call(&call.method)).await;
            respond(p, status, bytes, upstream.as_deref(), call.id.is_none())
        }
        Incoming::Batch(items) => batch(app, items).await,
    }
}

/// The refusal for a method the policy denies.
fn refused(p: &Policy, call: &Call) -> Option<Value> {
    p.denied_prefixes
        .iter()
        .any(|d| call.method.starts_with(d.as_str()))
        .then(|| {
            rpc::error(
                call.id.as_ref(),
                rpc::METHOD_NOT_FOUND,
                &format!(
                    "method {} is not served through the gateway (admin, debug, personal, miner, engine, txpool and node-signing methods are refused; sign locally and use eth_sendRawTransaction)",
                    call.method
                ),
            )
        })
}

fn answer_one(id: Option<&Value>, v: Value) -> Response {
    if id.is_none() {
        // A notification gets no answer, not even an error.
        return StatusCode::NO_CONTENT.into_response();
    }
    json(StatusCode::OK, &v)
}

fn respond(
    p: &Policy,
    status: StatusCode,
    bytes: Bytes,
    upstream: Option<&Upstream>,
    notification: bool,
) -> Response {
    if notification {
        // No answer for a notification, not even an error (JSON-RPC 2.0 §4.1).
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    if p.debug_header
        && let Some(u) = upstream
        && let Ok(v) = HeaderValue::from_str(&u.name)
    {
        r.headers_mut().insert("x-ethnode-upstream", v);
    }
    r
}

async fn batch(app: &App, items: Vec<Result<Call, Value>>) -> Response {
    let p = &app.policy;
    let mut answers: Vec<Value> = Vec::new();
    let mut forward_raw: Vec<&serde_json::value::RawValue> = Vec::new();
    for item in &items {
        match item {
            Err(e) => answers.push(e.clone()),
            Ok(call) => match refused(p, call) {
                Some(r) if call.id.is_some() => answers.push(r),
                Some(_) => {}
                None => forward_raw.push(&call.raw),
            },
        }
    }
    let mut upstream = None;
    if !forward_raw.is_empty() {
        let body = Bytes::from(serde_json::to_vec(&forward_raw).unwrap_or_default());
        let sticky = items.iter().flatten().any(|c| is_filter_call(&c.method));
        let (status, bytes, u) = forward(app, body, sticky).await;
        upstream = u;
        match serde_json::from_slice::<Value>(&bytes) {
            // Answers may come in any order; callers match them by id.
            Ok(Value::Array(upstream_answers)) if status == StatusCode::OK => {
                answers.extend(upstream_answers)
            }
            Ok(v) if status == StatusCode::OK && v.is_object() => answers.push(v),
            _ => {
                for item in items.iter().flatten() {
                    if item.id.is_some() && refused(p, item).is_none() {
                        answers.push(rpc::error(
                            item.id.as_ref(),
                            rpc::INTERNAL_ERROR,
                            "no upstream at head answered; retry shortly",
                        ));
                    }
                }
            }
        }
    }
    if answers.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    respond(
        p,
        StatusCode::OK,
        Bytes::from(Value::Array(answers).to_string()),
        upstream.as_deref(),
        false,
    )
}

/// Sends `body` to an upstream at head; on a transport failure or timeout, once more to another.
async fn forward(
    app: &App,
    body: Bytes,
    sticky: bool,
) -> (StatusCode, Bytes, Option<Arc<Upstream>>) {
    let candidates = app.pool.candidates(sticky);
    for u in candidates.iter().take(2) {
        let sent = app
            .http
            .post(&u.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() || r.status().is_client_error() => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::OK);
                match r.bytes().await {
                    Ok(b) => {
                        u.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return (status, b, Some(u.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %u.name, error = %e.without_url(), "upstream failed mid-answer; trying another")
                    }
                }
            }
            Ok(r) => {
                tracing::warn!(upstream = %u.name, status = %r.status(), "upstream failed; trying another")
            }
            Err(e) => {
                tracing::warn!(upstream = %u.name, error = %e.without_url(), "upstream unreachable; trying another")
            }
        }
    }
    let message = if candidates.is_empty() {
        "no upstream is at head; retry shortly"
    } else {
        "the upstreams at head did not answer; retry shortly"
    };
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned());
    let e = rpc::error(id.as_ref(), rpc::INTERNAL_ERROR, message);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from(e.to_string()),
        None,
    )
}
