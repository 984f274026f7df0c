//! The HTTP front: key, body limit, parse, rate and method policy, then a plan per request (route.rs) and
//! the answer from an upstream that has what it asks: retried once elsewhere on transport failure or
//! timeout, and on every other upstream that has the block when one answers "not found".

use crate::access::{Caller, Limited};
use crate::cache::{self, Found, Key};
use crate::metrics::{self, Metrics, RequestLabels};
use crate::pool::{Pool, Snapshot, Upstream};
use crate::route::{self, Kind, Plan};
use crate::rpc::{self, Answer, Call, Incoming, Reply};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Limits and policy.
#[derive(Debug, Clone)]
pub struct Policy {
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
    /// Send raw transactions to every eligible upstream, not only the chosen one.
    pub broadcast: bool,
    /// Proxies whose `X-Forwarded-For` names the caller (otherwise the socket's peer does).
    pub trusted_proxies: Vec<IpAddr>,
    /// Open WebSocket connections per key.
    pub max_sockets_per_key: usize,
    /// Subscriptions per WebSocket connection.
    pub max_subscriptions: usize,
    /// Memory for cached answers, bytes; 0: no cache.
    pub cache_bytes: u64,
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

/// What every worker shares.
#[derive(Debug)]
pub struct Shared {
    /// The upstreams.
    pub pool: Pool,
    /// Limits and policy.
    pub policy: Policy,
    /// Keys.
    pub access: crate::access::Access,
    /// Metrics.
    pub metrics: Metrics,
    /// Stopping: `/health` fails so that load balancers stop sending, while requests are still served.
    pub draining: std::sync::atomic::AtomicBool,
    /// Subscriptions and the canonical chain they follow.
    pub feeds: crate::feed::Feeds,
    /// Answers that cannot change.
    pub cache: crate::cache::Cache,
    /// Transactions sent through the gateway, for reading them back.
    pub writes: crate::writes::Writes,
}

type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One worker's view: the shared state and its own upstream connections (a worker's requests and its
/// connections live on one thread).
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    http: Http,
}

impl Worker {
    /// A view with its own upstream connections.
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Self, std::io::Error> {
        Ok(Self {
            shared,
            http: http_client()?,
        })
    }
}

fn http_client() -> Result<Http, std::io::Error> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(tls))
}

/// The gateway's router for one worker (with its own upstream connections).
pub fn router(shared: Arc<Shared>) -> Result<axum::Router, std::io::Error> {
    let limit = shared.policy.max_body_bytes;
    let w = Arc::new(Worker::new(shared)?);
    Ok(axum::Router::new()
        .route("/", post(root).get(ws_root))
        .route("/v1/{key}", post(with_path_key).get(ws_with_path_key))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(w))
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({"error": message}).to_string())
}

async fn health(State(w): State<Arc<Worker>>) -> Response {
    let s = w.shared.pool.snapshot();
    if w.shared.draining.load(Ordering::Relaxed) {
        refuse(StatusCode::SERVICE_UNAVAILABLE, "draining: stopping soon")
    } else if s.eligible.is_empty() {
        refuse(StatusCode::SERVICE_UNAVAILABLE, "no upstream is at head")
    } else {
        json(
            StatusCode::OK,
            serde_json::json!({"tip": s.tip, "eligible": s.eligible.len()}).to_string(),
        )
    }
}

async fn metrics_text(State(w): State<Arc<Worker>>, headers: HeaderMap) -> Response {
    // Key names and upstream hosts: for key holders only, when there are keys.
    if w.shared.access.needs_key() && w.shared.access.caller(bearer(&headers)).is_none() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "metrics need an API key: send `Authorization: Bearer KEY`",
        );
    }
    let s = w.shared.pool.snapshot();
    w.shared.metrics.upstreams(&s);
    w.shared.metrics.subscriptions(w.shared.feeds.counts());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        w.shared.metrics.render(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
}

/// The caller's address: the socket's peer, or what a trusted proxy says it forwarded for.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer.ip()) {
        return peer.ip();
    }
    // The last hop the trusted proxy added; earlier entries are the caller's own word.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .next_back()
        .unwrap_or(peer.ip())
}

async fn root(
    State(w): State<Arc<Worker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&w, bearer(&headers), peer, &headers, body).await
}

async fn with_path_key(
    State(w): State<Arc<Worker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&w, Some(&key), peer, &headers, body).await
}

async fn ws_root(
    State(w): State<Arc<Worker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let key = bearer(&headers).map(str::to_owned);
    ws(w, key.as_deref(), peer, &headers, upgrade)
}

async fn ws_with_path_key(
    State(w): State<Arc<Worker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    ws(w, Some(&key), peer, &headers, upgrade)
}

fn ws(
    w: Arc<Worker>,
    key: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let s = &w.shared;
    let Some(caller) = s.access.caller(key) else {
        let addr = client_addr(peer, headers, &s.policy.trusted_proxies);
        tracing::info!(%addr, "refused a WebSocket: missing or unknown API key");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or unknown API key: send `Authorization: Bearer KEY` or connect to /v1/KEY",
        );
    };
    let counted = match crate::ws::admit(&caller, s.policy.max_sockets_per_key) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::TOO_MANY_REQUESTS, &why),
    };
    upgrade
        .max_message_size(s.policy.max_body_bytes)
        // tungstenite reads into 128 KiB per connection by default: most of a subscriber's memory. A
        // small buffer grows for the rare large request.
        .read_buffer_size(4096)
        .on_upgrade(move |socket| crate::ws::session(w, caller, socket, counted))
}

/// One request's answer as text, for a WebSocket (`None` for a notification).
pub(crate) async fn one_answer(w: &Worker, caller: &Caller, call: &Call) -> Option<String> {
    let a = one(w, caller, call, None, Instant::now()).await;
    a.text.map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The answer to requests refused by the rate limit: an error for each, under its id (none for
/// notifications); each counted as `limited`.
pub(crate) fn limited(
    w: &Worker,
    caller: &Caller,
    incoming: &Incoming,
    why: Limited,
    started: Instant,
) -> Option<String> {
    let refused = Answered {
        text: None,
        upstream: None,
        outcome: "limited",
    };
    let message = why.message();
    let one = |c: &Call| {
        count(w, caller, &c.method, &refused, started);
        (!c.is_notification()).then(|| rpc::error(c.id.as_deref(), rpc::LIMIT_EXCEEDED, &message))
    };
    match incoming {
        Incoming::Single(c) => one(c),
        Incoming::Batch(items) => {
            let each: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Ok(c) => one(c),
                    Err(e) => Some(e.clone()),
                })
                .collect();
            (!each.is_empty()).then(|| format!("[{}]", each.join(",")))
        }
    }
}

/// A batch's answer as text, for a WebSocket (`None` when all were notifications).
pub(crate) async fn batch_answer(
    w: &Worker,
    caller: &Caller,
    items: Vec<Result<Call, String>>,
) -> Option<String> {
    if let Err(why) = caller.take(items.len()) {
        return limited(w, caller, &Incoming::Batch(items), why, Instant::now());
    }
    let (answers, _) = batch(w, caller, items, Instant::now()).await;
    if answers.is_empty() {
        return None;
    }
    let parts: Vec<std::borrow::Cow<'_, str>> =
        answers.iter().map(|a| String::from_utf8_lossy(a)).collect();
    Some(format!("[{}]", parts.join(",")))
}

/// One answer: its text (none for a notification), the upstream that gave it, the outcome label.
struct Answered {
    text: Option<Bytes>,
    upstream: Option<&'static str>,
    outcome: &'static str,
}

async fn handle(
    w: &Worker,
    key: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let s = &w.shared;
    let Some(caller) = s.access.caller(key) else {
        let addr = client_addr(peer, headers, &s.policy.trusted_proxies);
        tracing::info!(%addr, "refused: missing or unknown API key");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or unknown API key: send `Authorization: Bearer KEY` or POST to /v1/KEY",
        );
    };
    let incoming = match rpc::parse(&body, s.policy.max_batch) {
        Ok(i) => i,
        Err(e) => return json(StatusCode::OK, e),
    };
    let n = match &incoming {
        Incoming::Single(_) => 1,
        Incoming::Batch(items) => items.len(),
    };
    if let Err(why) = caller.take(n) {
        let addr = client_addr(peer, headers, &s.policy.trusted_proxies);
        tracing::info!(key = caller.name, %addr, "refused: rate limit");
        let text = limited(w, &caller, &incoming, why, started).unwrap_or_default();
        let mut r = json(StatusCode::TOO_MANY_REQUESTS, text);
        if let Limited::Wait(secs) = why {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(secs.ceil().max(1.0) as u64),
            );
        }
        return r;
    }
    match incoming {
        Incoming::Single(call) => {
            let a = one(w, &caller, &call, Some(body), started).await;
            let Some(text) = a.text else {
                // No answer for a notification, not even an error (JSON-RPC 2.0 §4.1).
                return StatusCode::NO_CONTENT.into_response();
            };
            let status = if a.outcome == "unavailable" {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            with_upstream(w, json(status, text), a.upstream)
        }
        Incoming::Batch(items) => {
            let (answers, upstream) = batch(w, &caller, items, started).await;
            if answers.is_empty() {
                return StatusCode::NO_CONTENT.into_response();
            }
            let mut out =
                Vec::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 2);
            out.push(b'[');
            for (i, a) in answers.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(a);
            }
            out.push(b']');
            with_upstream(w, json(StatusCode::OK, out), upstream)
        }
    }
}

fn with_upstream(w: &Worker, mut r: Response, upstream: Option<&'static str>) -> Response {
    if w.shared.policy.debug_header
        && let Some(name) = upstream
        && let Ok(v) = HeaderValue::from_str(name)
    {
        r.headers_mut().insert("x-ethnode-upstream", v);
    }
    r
}

/// The refusal for a method the policy or the key's allowlist denies.
fn refused(s: &Shared, caller: &Caller, call: &Call) -> Option<String> {
    let m = call.method.as_str();
    let why = if s
        .policy
        .denied_prefixes
        .iter()
        .any(|d| m.starts_with(d.as_str()))
    {
        format!(
            "method {m} is not served through the gateway (admin, debug, personal, miner, engine, txpool and node-signing methods are refused; sign locally and use eth_sendRawTransaction)"
        )
    } else if !caller.may_call(m) {
        format!(
            "method {m} is not allowed for this API key: ask for it to be added to the key's methods"
        )
    } else if matches!(m, "eth_subscribe" | "eth_unsubscribe") {
        format!(
            "{m} is served over a WebSocket (ws:// to the same address), each on its own, not in a batch"
        )
    } else {
        return None;
    };
    Some(rpc::error(call.id.as_deref(), rpc::METHOD_NOT_FOUND, &why))
}

fn count(w: &Worker, caller: &Caller, method: &str, a: &Answered, started: Instant) {
    w.shared.metrics.request(
        RequestLabels {
            method: metrics::method_label(method),
            key: caller.name,
            upstream: a.upstream.unwrap_or("none"),
            outcome: a.outcome,
        },
        started.elapsed().as_secs_f64(),
    );
}

/// One request, start to answer. `body` is the request as sent, when it is the whole body.
async fn one(
    w: &Worker,
    caller: &Caller,
    call: &Call,
    body: Option<Bytes>,
    started: Instant,
) -> Answered {
    let mut a = answer(w, caller, call, body).await;
    count(w, caller, &call.method, &a, started);
    if call.is_notification() {
        a.text = None;
    }
    a
}

async fn answer(w: &Worker, caller: &Caller, call: &Call, body: Option<Bytes>) -> Answered {
    let s = &w.shared;
    let done = |text: String, outcome| Answered {
        text: Some(Bytes::from(text)),
        upstream: None,
        outcome,
    };
    if let Some(r) = refused(s, caller, call) {
        return done(r, "refused");
    }
    let snapshot = s.pool.snapshot();
    let plan = match route::plan(call, snapshot.tip) {
        Ok(p) => p,
        Err(e) => return done(e, "refused"),
    };
    let key = match cached(s, call, &plan) {
        Ok(hit) => return hit,
        Err(key) => key,
    };
    // A transaction sent through the gateway: first where it went.
    let prefer = match call.method.as_str() {
        "eth_getTransactionByHash" | "eth_getTransactionReceipt" => first_string(call)
            .as_deref()
            .and_then(|h| s.writes.holder(h)),
        _ => None,
    };
    let send = key
        .as_ref()
        .and_then(|k| k.send.as_deref())
        .or(plan.params.as_deref());
    let body = match (send, body) {
        (Some(p), _) => Bytes::from(call.to_json(Some(p))),
        (None, Some(b)) => b,
        (None, None) => Bytes::from(call.to_json(None)),
    };
    let (bytes, u) = match exchange(w, &snapshot, &plan, body, prefer).await {
        Ok(got) => got,
        Err(Miss::NotYet(n)) => {
            let tip = snapshot.tip.unwrap_or(0);
            let message = format!(
                "{}: the range reaches block {n}, past the chain head {tip} (an upstream would answer an empty list): ask up to {tip}, or again when block {n} is out",
                call.method
            );
            return done(
                rpc::error(call.id.as_deref(), rpc::INVALID_PARAMS, &message),
                "refused",
            );
        }
        Err(Miss::Unanswered) => {
            let message = if snapshot.eligible.is_empty() {
                "no upstream is at head; retry shortly"
            } else {
                "the upstreams at head did not answer; retry shortly"
            };
            return done(
                rpc::error(call.id.as_deref(), rpc::INTERNAL_ERROR, message),
                "unavailable",
            );
        }
    };
    // Sent by hash for the cache, and every node asked says it lacks that block (the feed's node followed
    // one the others never got): asked again as the caller asked, and not kept.
    let (bytes, u, key) = if key.as_ref().is_some_and(|k| k.send.is_some()) && lacks_block(&bytes) {
        let body = Bytes::from(call.to_json(plan.params.as_deref()));
        match exchange(w, &snapshot, &plan, body, None).await {
            Ok((b, again)) => (b, again, None),
            Err(_) => (bytes, u, None),
        }
    } else {
        (bytes, u, key)
    };
    let (bytes, outcome) = finish(w, caller, call, &plan, bytes, &u, &snapshot).await;
    if let Some(k) = &key
        && outcome == "ok"
        && let Ok(a) = serde_json::from_slice::<Reply>(&bytes)
        && let Some(r) = a.result
    {
        s.cache.put(k, r, |n, h| canonical(s, n, h));
    }
    Answered {
        text: Some(bytes),
        upstream: Some(u.label),
        outcome,
    }
}

/// Block `n` has hash `h` on the feed's chain now, which it follows.
fn canonical(s: &Shared, n: u64, h: &str) -> bool {
    s.feeds.with_canon(|c| c.follows(n, h))
}

/// The first param when it is a string (a hash, an address).
fn first_string(call: &Call) -> Option<String> {
    let p = call.positional()?;
    serde_json::from_str(p.first()?.get()).ok()
}

/// The cached answer to `call` (`Ok`), or how to keep the answer it gets (`Err`: its key, if any).
fn cached(s: &Shared, call: &Call, plan: &Plan) -> Result<Answered, Option<Key>> {
    if !s.cache.on() {
        return Err(None);
    }
    // One look at the chain for both: the key and the hit are judged against the same heads.
    let Some((key, found)) = s.feeds.with_canon(|c| {
        let key = cache::key(call, plan, c)?;
        let found = s.cache.get(&key, c);
        Some((key, found))
    }) else {
        return Err(None);
    };
    let m = call.method.as_str();
    match found {
        Found::Hit(result) => {
            s.metrics.cache(m, "hit");
            let text = rpc::result(
                call.id.as_deref(),
                std::str::from_utf8(&result).unwrap_or("null"),
            );
            Ok(Answered {
                text: Some(Bytes::from(text)),
                upstream: Some("cache"),
                outcome: "cached",
            })
        }
        Found::Miss => {
            s.metrics.cache(m, "miss");
            Err(Some(key))
        }
        Found::Stale => {
            s.metrics.cache(m, "stale");
            Err(Some(key))
        }
    }
}

/// An answer that is a "not here" error.
fn lacks_block(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Reply>(bytes)
        .ok()
        .and_then(|r| r.error_message())
        .is_some_and(|m| not_here(&m))
}

/// Answers that say "this upstream does not have that block (yet)": another one may.
fn not_here(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "header not found",
        "unknown block",
        "missing trie node",
        "block not found",
        "could not be found",
        "blockoutofrange",
        "block out of range",
        // A block named by hash (EIP-1898) that the node does not have: geth "header for hash not found",
        // anvil "BlockNotFound".
        "for hash not found",
        "blocknotfound",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// What an answer says, read only as far as routing needs.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Final.
    Keep,
    /// Another upstream may have it: ask one.
    AskAnother,
}

fn verdict(plan: &Plan, bytes: &[u8]) -> Verdict {
    if !might_lack(plan) {
        return Verdict::Keep;
    }
    match serde_json::from_slice::<Reply>(bytes) {
        Ok(r) => verdict_of(plan, &r),
        Err(_) => Verdict::Keep,
    }
}

fn might_lack(plan: &Plan) -> bool {
    plan.kind == Kind::Lookup || plan.need.is_some()
}

fn verdict_of(plan: &Plan, r: &Reply) -> Verdict {
    if !might_lack(plan) {
        return Verdict::Keep;
    }
    match (r.error, r.result) {
        (Some(_), _) if r.error_message().is_some_and(|m| not_here(&m)) => Verdict::AskAnother,
        // `null` by hash: not mined yet, or not here yet.
        (None, None) if plan.kind == Kind::Lookup => Verdict::AskAnother,
        _ => Verdict::Keep,
    }
}

/// Why no upstream answered.
enum Miss {
    /// None could be reached, or none answered in time.
    Unanswered,
    /// The block to confirm is on no upstream yet.
    NotYet(u64),
}

/// `eth_getBlockByNumber(n)` on `u` found a block.
async fn has_block(w: &Worker, u: &Upstream, n: u64) -> bool {
    found(
        w,
        u,
        &format!(r#"["0x{n:x}",false]"#),
        "eth_getBlockByNumber",
    )
    .await
}

/// `method(params)` on `u` answered something other than `null`.
async fn found(w: &Worker, u: &Upstream, params: &str, method: &str) -> bool {
    let q = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    send(w, u, Bytes::from(q))
        .await
        .ok()
        .and_then(|b| {
            serde_json::from_slice::<Answer>(&b)
                .ok()
                .map(|a| a.result.is_some())
        })
        .unwrap_or(false)
}

/// Sends to the candidates in turn: on transport failure or timeout once more elsewhere; on a "not here"
/// answer on to every other candidate that has the block. The last answer if none was better.
async fn exchange(
    w: &Worker,
    snapshot: &Snapshot,
    plan: &Plan,
    body: Bytes,
    prefer: Option<Arc<Upstream>>,
) -> Result<(Bytes, Arc<Upstream>), Miss> {
    let s = &w.shared;
    let sticky = plan.kind == Kind::Filter;
    let mut candidates = s.pool.candidates(snapshot, plan.need, sticky);
    if candidates.is_empty() && plan.need.is_some() {
        // A block past every head we know of (our heads are a poll old): the node answers for itself.
        candidates = s.pool.candidates(snapshot, None, sticky);
    }
    if let Some(p) = prefer
        && let Some(at) = snapshot.upstreams.iter().position(|u| Arc::ptr_eq(u, &p))
    {
        candidates.retain(|&i| i != at);
        candidates.insert(0, at);
    }
    let mut failures = 0;
    let mut last: Option<(Bytes, Arc<Upstream>)> = None;
    let mut unconfirmed = false;
    for (n, &i) in candidates.iter().enumerate() {
        let u = &snapshot.upstreams[i];
        if let Some(block) = plan.confirm
            && !has_block(w, u, block).await
        {
            unconfirmed = true;
            continue;
        }
        match send(w, u, body.clone()).await {
            Ok(bytes) => {
                let more = n + 1 < candidates.len();
                if more && verdict(plan, &bytes) == Verdict::AskAnother {
                    last = Some((bytes, u.clone()));
                    continue;
                }
                u.served.fetch_add(1, Ordering::Relaxed);
                return Ok((bytes, u.clone()));
            }
            Err(e) => {
                if matches!(e, SendError::Transport(_)) {
                    u.mark_unreachable();
                }
                tracing::warn!(upstream = u.label, error = %e, "upstream failed; trying another");
                s.metrics.failover(u.label);
                failures += 1;
                if failures >= 2 {
                    break;
                }
            }
        }
    }
    match (last, plan.confirm) {
        (Some(l), _) => Ok(l),
        (None, Some(block)) if unconfirmed => Err(Miss::NotYet(block)),
        _ => Err(Miss::Unanswered),
    }
}

/// Why an upstream gave no answer (no URL in it: it may hold a key).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("timed out")]
    Timeout,
    #[error("HTTP {0}")]
    Status(StatusCode),
    #[error("transport: {0}")]
    Transport(String),
}

pub(crate) async fn send(w: &Worker, u: &Upstream, body: Bytes) -> Result<Bytes, SendError> {
    let req = hyper::Request::post(u.uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| SendError::Transport(e.to_string()))?;
    let exchange = async {
        let r =
            w.http.request(req).await.map_err(|e| {
                SendError::Transport(ethnode_config::redact_urls_in(&e.to_string()))
            })?;
        if !r.status().is_success() {
            return Err(SendError::Status(r.status()));
        }
        r.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| SendError::Transport(e.to_string()))
    };
    tokio::time::timeout(w.shared.policy.timeout, exchange)
        .await
        .map_err(|_| SendError::Timeout)?
}

/// Applies what the plan's kind asks of an answer; returns it and its outcome label.
async fn finish(
    w: &Worker,
    caller: &Caller,
    call: &Call,
    plan: &Plan,
    bytes: Bytes,
    upstream: &Arc<Upstream>,
    snapshot: &Snapshot,
) -> (Bytes, &'static str) {
    let Ok(a) = serde_json::from_slice::<Answer>(&bytes) else {
        return (bytes, "ok");
    };
    let outcome = if a.error.is_some() { "error" } else { "ok" };
    match plan.kind {
        Kind::BlockNumber => {
            let Some(answered) = a
                .result
                .and_then(|r| serde_json::from_str::<&str>(r.get()).ok())
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            else {
                return (bytes, outcome);
            };
            // Never past the served tip (an upstream ahead of the others, or one that is wrong, would
            // otherwise set what this caller is told for good; `latest` means the tip everywhere else),
            // never below what it was told before.
            let told = caller.block_number(snapshot.tip.map_or(answered, |t| answered.min(t)));
            if told == answered {
                (bytes, outcome)
            } else {
                let r = rpc::result(call.id.as_deref(), &format!("\"0x{told:x}\""));
                (Bytes::from(r), outcome)
            }
        }
        Kind::SendRaw => send_raw(w, call, a, bytes.clone(), upstream, snapshot).await,
        Kind::PendingNonce => {
            // What this sender sent through the gateway counts, whichever node answers.
            let answered = a
                .result
                .and_then(|r| serde_json::from_str::<&str>(r.get()).ok())
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok());
            match (
                answered,
                first_string(call).and_then(|from| w.shared.writes.next_nonce(&from)),
            ) {
                (Some(got), Some(at_least)) if got < at_least => {
                    let r = rpc::result(call.id.as_deref(), &format!("\"0x{at_least:x}\""));
                    (Bytes::from(r), outcome)
                }
                _ => (bytes, outcome),
            }
        }
        _ => (bytes, outcome),
    }
}

/// The hash of a raw transaction (its keccak-256), 0x-hex; `None` if the param is not hex.
fn tx_hash(call: &Call) -> Option<String> {
    let p = call.positional()?;
    let raw: &str = serde_json::from_str(p.first()?.get()).ok()?;
    let bytes = alloy::primitives::hex::decode(raw).ok()?;
    // A blob transaction travels with its blobs, which its hash does not cover: not worked out here, so
    // its "already known" answers are passed on as they are.
    if bytes.first() == Some(&0x03) {
        return None;
    }
    Some(alloy::primitives::keccak256(bytes).to_string())
}

async fn send_raw(
    w: &Worker,
    call: &Call,
    a: Answer<'_>,
    bytes: Bytes,
    upstream: &Arc<Upstream>,
    snapshot: &Snapshot,
) -> (Bytes, &'static str) {
    let hash = tx_hash(call);
    if w.shared.policy.broadcast && a.error.is_none() {
        let body = Bytes::from(call.to_json(None));
        for &i in &snapshot.eligible {
            let u = snapshot.upstreams[i].clone();
            if Arc::ptr_eq(&u, upstream) {
                continue;
            }
            let (http, shared, body) = (w.http.clone(), w.shared.clone(), body.clone());
            tokio::spawn(async move {
                let w = Worker { shared, http };
                if let Err(e) = send(&w, &u, body).await {
                    tracing::info!(upstream = u.label, error = %e, "broadcast of a raw transaction failed");
                }
            });
        }
    }
    let remember = |hash: &str| {
        if let Some((from, nonce)) = first_string(call)
            .as_deref()
            .and_then(crate::writes::sender_and_nonce)
        {
            w.shared.writes.record(from, nonce, hash, upstream.clone());
        }
    };
    if a.error.is_none() {
        let sent = a
            .result
            .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
            .or(hash.clone());
        if let Some(h) = sent {
            remember(&h);
        }
    }
    let (Some(e), Some(hash)) = (&a.error, hash) else {
        return (bytes, if a.error.is_some() { "error" } else { "ok" });
    };
    let m = e.message.to_ascii_lowercase();
    let known =
        m.contains("already known") || m.contains("already imported") || m.contains("alreadyknown");
    let same_tx_mined = !known && m.contains("nonce too low") && {
        // "nonce too low" is success only if it is this very transaction that took the nonce.
        found(
            w,
            upstream,
            &format!(r#"["{hash}"]"#),
            "eth_getTransactionByHash",
        )
        .await
    };
    if known || same_tx_mined {
        remember(&hash);
        let r = rpc::result(call.id.as_deref(), &format!("\"{hash}\""));
        return (Bytes::from(r), "ok");
    }
    (bytes, "error")
}

/// A batch: the requests that can go together go to one upstream in one batch; what comes back "not
/// here" or not at all is asked again one by one.
async fn batch(
    w: &Worker,
    caller: &Caller,
    items: Vec<Result<Call, String>>,
    started: Instant,
) -> (Vec<Bytes>, Option<&'static str>) {
    let s = &w.shared;
    let snapshot = s.pool.snapshot();
    // Each answer in the order asked: known now (`Ok`, none for a notification), or the index of its
    // request in `go`. Clients tell answers to repeated ids apart by their order.
    let mut slots: Vec<Result<Option<Bytes>, usize>> = Vec::with_capacity(items.len());
    let mut go: Vec<(Call, Plan)> = Vec::new();
    // How each of `go` may be cached.
    let mut keys: Vec<Option<Key>> = Vec::new();
    for item in items {
        let call = match item {
            Err(e) => {
                slots.push(Ok(Some(Bytes::from(e))));
                continue;
            }
            Ok(c) => c,
        };
        let refusal =
            refused(s, caller, &call).map_or_else(|| route::plan(&call, snapshot.tip), Err);
        match refusal {
            Ok(plan) => match cached(s, &call, &plan) {
                Ok(hit) => {
                    count(w, caller, &call.method, &hit, started);
                    slots.push(Ok(hit.text.filter(|_| !call.is_notification())));
                }
                Err(key) => {
                    slots.push(Err(go.len()));
                    keys.push(key);
                    go.push((call, plan));
                }
            },
            Err(e) => {
                let a = Answered {
                    text: Some(Bytes::from(e)),
                    upstream: None,
                    outcome: "refused",
                };
                count(w, caller, &call.method, &a, started);
                slots.push(Ok(a.text.filter(|_| !call.is_notification())));
            }
        }
    }
    let in_order = |mut asked: Vec<Option<Bytes>>| -> Vec<Bytes> {
        slots
            .into_iter()
            .filter_map(|slot| match slot {
                Ok(known) => known,
                Err(i) => asked.get_mut(i).and_then(Option::take),
            })
            .collect()
    };
    if go.is_empty() {
        return (in_order(Vec::new()), None);
    }
    // Together: the highest block any of them needs; sticky if one is a filter call. A request whose
    // block must be confirmed first goes on its own.
    let together: Vec<usize> = (0..go.len())
        .filter(|&i| go[i].1.confirm.is_none())
        .collect();
    let need = together.iter().filter_map(|&i| go[i].1.need).max();
    let plan = Plan {
        params: None,
        need,
        kind: if go.iter().any(|(_, p)| p.kind == Kind::Filter) {
            Kind::Filter
        } else {
            Kind::Plain
        },
        at: None,
        confirm: None,
    };
    // Upstream, each request is asked under its index: the caller's ids may repeat, or be written in
    // ways (`1.0`, escapes) an upstream rewrites in its answer.
    let mut body = Vec::from(&b"["[..]);
    for (n, &i) in together.iter().enumerate() {
        let (c, p) = &go[i];
        if n > 0 {
            body.push(b',');
        }
        let index = i.to_string();
        let id = (!c.is_notification()).then_some(index.as_str());
        let params = keys[i]
            .as_ref()
            .and_then(|k| k.send.as_deref())
            .or(p.params.as_deref());
        body.extend_from_slice(c.to_json_as(id, params).as_bytes());
    }
    body.push(b']');
    let got = if together.is_empty() {
        Err(Miss::Unanswered)
    } else {
        exchange(w, &snapshot, &plan, Bytes::from(body), None).await
    };
    let (bytes, upstream) = match got {
        Ok((b, u)) => (Some(b), Some(u)),
        Err(_) => (None, None),
    };
    // The answers, read once; each found by the index it was asked under.
    let replies: Vec<Reply> = bytes
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let mut by_index: Vec<Option<&Reply>> = vec![None; go.len()];
    for r in &replies {
        if let Some(i) = r.id.and_then(|id| id.get().parse::<usize>().ok())
            && let Some(slot) = by_index.get_mut(i)
        {
            *slot = Some(r);
        }
    }
    // Each answer in the order asked, under the caller's id; those to ask again go out at once, not one
    // after another.
    let mine: Vec<Option<(String, bool)>> = go
        .iter()
        .zip(by_index)
        .zip(&keys)
        .map(|(((call, plan), r), key)| {
            let r = r.filter(|r| verdict_of(plan, r) == Verdict::Keep)?;
            if let (Some(k), None, Some(result)) = (key, r.error, r.result) {
                s.cache.put(k, result, |n, h| canonical(s, n, h));
            }
            Some((r.with_id(call.id.as_deref()), r.error.is_some()))
        })
        .collect();
    let snapshot = &*snapshot;
    let upstream = upstream.as_ref();
    let each = go.iter().zip(mine).map(|((call, plan), mine)| async move {
        let a = match (mine, upstream) {
            (Some((text, error)), Some(u)) => {
                let bytes = Bytes::from(text);
                let (bytes, outcome) = match plan.kind {
                    // Nothing to do to the answer: its outcome is known already.
                    Kind::Plain | Kind::Filter | Kind::Lookup => {
                        (bytes, if error { "error" } else { "ok" })
                    }
                    _ => finish(w, caller, call, plan, bytes, u, snapshot).await,
                };
                Answered {
                    text: Some(bytes),
                    upstream: Some(u.label),
                    outcome,
                }
            }
            // A notification the upstream took.
            _ if call.is_notification() && upstream.is_some() && plan.confirm.is_none() => {
                Answered {
                    text: None,
                    upstream: upstream.map(|u| u.label),
                    outcome: "ok",
                }
            }
            // Missing, "not here", or the batch failed: on its own, everywhere it may be.
            _ => answer(w, caller, call, None).await,
        };
        count(w, caller, &call.method, &a, started);
        if call.is_notification() { None } else { a.text }
    });
    let asked = futures_util::future::join_all(each).await;
    (in_order(asked), upstream.map(|u| u.label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 10.0.0.9"),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer = SocketAddr::new(proxy, 5000);
        assert_eq!(
            client_addr(peer, &h, &[]),
            proxy,
            "untrusted: its header is ignored"
        );
        assert_eq!(
            client_addr(peer, &h, &[proxy]),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn not_here_answers_are_asked_elsewhere_and_the_callers_faults_are_not() {
        let plan = Plan {
            params: None,
            need: Some(5),
            kind: Kind::Plain,
            at: None,
            confirm: None,
        };
        let e = |m: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":-32000,"message":"{m}"}}}}"#)
        };
        assert_eq!(
            verdict(&plan, e("header not found").as_bytes()),
            Verdict::AskAnother
        );
        assert_eq!(
            verdict(&plan, e("missing trie node 0xab (path )").as_bytes()),
            Verdict::AskAnother
        );
        assert_eq!(
            verdict(&plan, e("execution reverted").as_bytes()),
            Verdict::Keep
        );
        let by_hash = Plan {
            kind: Kind::Lookup,
            need: None,
            params: None,
            at: None,
            confirm: None,
        };
        assert_eq!(
            verdict(&by_hash, br#"{"jsonrpc":"2.0","id":1,"result":null}"#),
            Verdict::AskAnother
        );
        assert_eq!(
            verdict(&by_hash, br#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#),
            Verdict::Keep
        );
    }
}
