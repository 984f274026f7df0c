//! WebSocket on the same port as HTTP. Calls are answered exactly as over HTTP (routed per request, with
//! failover, the same limits and metrics). Subscriptions go over one upstream WebSocket per client
//! connection, to an eligible upstream; the client sees the gateway's own subscription ids, so that when
//! that upstream closes or stops being eligible the gateway subscribes again elsewhere and the client
//! keeps its ids and its connection. (Filling the gap across such a move, and one upstream subscription
//! shared by many clients, are the subscriptions issue's work.)
//!
//! Nothing a client does can hold the session: answers and notifications go through a bounded buffer
//! that is never waited on (full: the client is too slow and is closed with a reason), each connection
//! runs at most [`IN_FLIGHT`] calls at once, and every upstream step has the request timeout.

use crate::access::Caller;
use crate::pool::Upstream;
use crate::rpc::{self, Answer, Call, Incoming};
use crate::server::{Worker, batch_answer, limited, one_answer};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// Messages buffered for a client before it is closed as too slow.
const BUFFER: usize = 4096;

/// Calls one connection may have in flight; the next frame is read when one finishes.
const IN_FLIGHT: usize = 64;

/// Close code for a client that fell too far behind (4000–4999: application codes, RFC 6455 §7.4.2).
const TOO_SLOW: u16 = 4008;

type UpStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One client subscription.
struct Sub {
    /// `eth_subscribe`'s params, to subscribe again elsewhere.
    params: Box<RawValue>,
    /// The upstream's id for it, once subscribed.
    upstream_id: Option<String>,
}

/// The connection's upstream WebSocket.
struct Link {
    upstream: Arc<Upstream>,
    ws: UpStream,
}

/// A subscribe request in flight upstream: the client's request id (none when the gateway subscribes
/// again by itself) and our subscription id.
type Pending = HashMap<u64, (Option<Box<RawValue>>, String)>;

/// A socket counted against its key; the count goes down however the connection ends.
pub(crate) struct Counted(Arc<Caller>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts one more socket for `caller`, or says why not.
pub(crate) fn admit(caller: &Arc<Caller>, max: usize) -> Result<Counted, String> {
    if caller.sockets.fetch_add(1, Ordering::Relaxed) >= max {
        caller.sockets.fetch_sub(1, Ordering::Relaxed);
        return Err(format!(
            "this key has {max} WebSocket connections open, the limit: close one, or share one connection"
        ));
    }
    Ok(Counted(caller.clone()))
}

/// Where messages to the client go: a bounded buffer never waited on, and a way to close at once.
#[derive(Clone)]
struct Out {
    tx: mpsc::Sender<Message>,
    close: Arc<std::sync::Mutex<Option<oneshot::Sender<Message>>>>,
}

impl Out {
    /// Queues `text`; false (and the client is closed as too slow) when the buffer is full.
    fn send(&self, text: String) -> bool {
        if self.tx.try_send(Message::Text(text.into())).is_ok() {
            return true;
        }
        self.close(
            TOO_SLOW,
            "too slow: answers and notifications were not read; reconnect and read faster",
        );
        false
    }

    /// Closes the connection with `code` and `reason`, ahead of anything buffered.
    fn close(&self, code: u16, reason: &str) {
        let taken = self
            .close
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(tx) = taken {
            let _ = tx.send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.to_owned().into(),
            })));
        }
    }

    fn closed(&self) -> bool {
        self.close
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }
}

/// Serves one client WebSocket.
pub(crate) async fn session(
    w: Arc<Worker>,
    caller: Arc<Caller>,
    socket: WebSocket,
    _counted: Counted,
) {
    let (mut to_client, mut from_client) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(BUFFER);
    let (close_tx, mut close_rx) = oneshot::channel::<Message>();
    let out = Out {
        tx,
        close: Arc::new(std::sync::Mutex::new(Some(close_tx))),
    };
    let timeout = w.shared.policy.timeout;
    let mut writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                close = &mut close_rx => {
                    if let Ok(m) = close {
                        let _ = tokio::time::timeout(timeout, to_client.send(m)).await;
                    }
                    return;
                }
                m = rx.recv() => {
                    let Some(m) = m else { return };
                    match tokio::time::timeout(timeout, to_client.send(m)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut subs: HashMap<String, Sub> = HashMap::new();
    let mut pending: Pending = HashMap::new();
    let mut link: Option<Link> = None;
    let mut next_id: u64 = 1;
    let mut salt = [0u8; 8];
    // Subscription ids are not guessable across connections.
    let _ = getrandom::fill(&mut salt);
    let salt = u64::from_le_bytes(salt);
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        if out.closed() {
            break;
        }
        tokio::select! {
            m = from_client.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => break,
                };
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let started = Instant::now();
                let incoming = match rpc::parse(text.as_bytes(), w.shared.policy.max_batch) {
                    Err(e) => {
                        out.send(e);
                        continue;
                    }
                    Ok(i) => i,
                };
                let n = match &incoming {
                    Incoming::Single(_) => 1,
                    Incoming::Batch(items) => items.len(),
                };
                if let Err(why) = caller.take(n) {
                    if let Some(e) = limited(&w, &caller, &incoming, why, started) {
                        out.send(e);
                    }
                    continue;
                }
                let call = match incoming {
                    Incoming::Batch(items) => {
                        let (w, caller, out) = (w.clone(), caller.clone(), out.clone());
                        tokio::spawn(async move {
                            if let Some(text) = batch_answer(&w, &caller, items).await {
                                out.send(text);
                            }
                            drop(permit);
                        });
                        continue;
                    }
                    Incoming::Single(call) => call,
                };
                match call.method.as_str() {
                    "eth_subscribe" if caller.may_call("eth_subscribe") => {
                        let answer = subscribe(&w, &call, &mut subs, &mut pending, &mut link, &mut next_id, salt).await;
                        w.shared.metrics.request(
                            crate::metrics::RequestLabels {
                                method: "eth_subscribe",
                                key: caller.name,
                                upstream: link.as_ref().map_or("none", |l| l.upstream.label),
                                outcome: if answer.is_some() { "refused" } else { "ok" },
                            },
                            started.elapsed().as_secs_f64(),
                        );
                        if let Some(a) = answer {
                            out.send(a);
                        }
                    }
                    "eth_unsubscribe" if caller.may_call("eth_unsubscribe") => {
                        let a = unsubscribe(&w, &call, &mut subs, &mut link, &mut next_id).await;
                        out.send(a);
                    }
                    _ => {
                        let (w, caller, out) = (w.clone(), caller.clone(), out.clone());
                        tokio::spawn(async move {
                            if let Some(text) = one_answer(&w, &caller, &call).await {
                                out.send(text);
                            }
                            drop(permit);
                        });
                    }
                }
            }
            m = async { link.as_mut().map(|l| l.ws.next()) .unwrap().await }, if link.is_some() => {
                let text = match m {
                    Some(Ok(UpMessage::Text(t))) => t.as_str().to_owned(),
                    Some(Ok(UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_))) => continue,
                    Some(Ok(UpMessage::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    _ => {
                        // The upstream went away: subscribe again elsewhere, same ids for the client.
                        let gone = link.take().map(|l| l.upstream);
                        if let Some(u) = &gone {
                            tracing::warn!(upstream = u.label, "subscription upstream closed; moving");
                            w.shared.metrics.failover(u.label);
                        }
                        if !resubscribe(&w, &mut subs, &mut pending, &mut link, &mut next_id, gone.as_ref()).await {
                            out.close(1011, "no upstream can serve subscriptions; reconnect shortly");
                            break;
                        }
                        continue;
                    }
                };
                match from_upstream(&text, &mut subs, &mut pending) {
                    Upward::Nothing => {}
                    Upward::Tell(m) => {
                        if !out.send(m) {
                            break;
                        }
                    }
                    Upward::TellAndDrop(m, upstream_id) => {
                        // Unsubscribed before the upstream confirmed: free it there too.
                        out.send(m);
                        if let Some(l) = link.as_mut() {
                            let internal = next_id;
                            next_id += 1;
                            let _ = send_up(&w, l, unsubscribe_request(internal, &upstream_id)).await;
                        }
                    }
                }
            }
            _ = check.tick() => {
                // The subscription upstream fell out of eligibility: move before it serves stale heads.
                let s = w.shared.pool.snapshot();
                if let Some(l) = &link
                    && !s.eligible.iter().any(|&i| Arc::ptr_eq(&s.upstreams[i], &l.upstream))
                    && !s.eligible.is_empty()
                {
                    let gone = l.upstream.clone();
                    tracing::warn!(upstream = gone.label, "subscription upstream no longer at head; moving");
                    w.shared.metrics.failover(gone.label);
                    if let Some(mut l) = link.take() {
                        let _ = tokio::time::timeout(timeout, l.ws.close(None)).await;
                    }
                    if !resubscribe(&w, &mut subs, &mut pending, &mut link, &mut next_id, Some(&gone)).await {
                        out.close(1011, "no upstream can serve subscriptions; reconnect shortly");
                        break;
                    }
                }
            }
        }
    }
    // Closing the upstream socket frees every subscription this client caused.
    if let Some(mut l) = link.take() {
        let _ = tokio::time::timeout(timeout, l.ws.close(None)).await;
    }
    drop(out);
    // The writer ends when the buffer is drained (or it gave up on a client that does not read).
    if tokio::time::timeout(timeout, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Sends to the upstream with the request timeout.
async fn send_up(w: &Worker, l: &mut Link, text: String) -> bool {
    matches!(
        tokio::time::timeout(
            w.shared.policy.timeout,
            l.ws.send(UpMessage::Text(text.into()))
        )
        .await,
        Ok(Ok(()))
    )
}

/// Opens a WebSocket to an eligible upstream other than `not`.
async fn connect(w: &Worker, not: Option<&Arc<Upstream>>) -> Option<Link> {
    let s = w.shared.pool.snapshot();
    for i in w.shared.pool.candidates(&s, None, false) {
        let u = &s.upstreams[i];
        if not.is_some_and(|n| Arc::ptr_eq(n, u)) && s.eligible.len() > 1 {
            continue;
        }
        let attempt = tokio::time::timeout(
            w.shared.policy.timeout,
            tokio_tungstenite::connect_async(u.ws.as_str()),
        );
        match attempt.await {
            Ok(Ok((ws, _))) => {
                return Some(Link {
                    upstream: u.clone(),
                    ws,
                });
            }
            Ok(Err(e)) => tracing::warn!(
                upstream = u.label,
                error = %ethnode_config::redact_urls_in(&e.to_string()),
                "cannot open a WebSocket"
            ),
            Err(_) => tracing::warn!(upstream = u.label, "WebSocket open timed out"),
        }
    }
    None
}

fn subscribe_request(internal: u64, params: &RawValue) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{internal},"method":"eth_subscribe","params":{}}}"#,
        params.get()
    )
}

fn unsubscribe_request(internal: u64, upstream_id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{internal},"method":"eth_unsubscribe","params":[{}]}}"#,
        serde_json::Value::String(upstream_id.to_owned())
    )
}

/// `newPendingTransactions` with full bodies is the mempool itself: refused like `txpool_*`.
fn refused_kind(params: &RawValue) -> bool {
    let p: Vec<serde_json::Value> = serde_json::from_str(params.get()).unwrap_or_default();
    p.first().and_then(|k| k.as_str()) == Some("newPendingTransactions")
        && p.get(1).and_then(serde_json::Value::as_bool) == Some(true)
}

async fn subscribe(
    w: &Worker,
    call: &Call,
    subs: &mut HashMap<String, Sub>,
    pending: &mut Pending,
    link: &mut Option<Link>,
    next_id: &mut u64,
    salt: u64,
) -> Option<String> {
    let id = call.id.as_deref();
    if subs.len() >= w.shared.policy.max_subscriptions {
        return Some(rpc::error(
            id,
            rpc::LIMIT_EXCEEDED,
            &format!(
                "this connection has {} subscriptions, the limit: unsubscribe from one first",
                subs.len()
            ),
        ));
    }
    let Some(params) = call.params.clone() else {
        return Some(rpc::error(
            id,
            rpc::INVALID_PARAMS,
            "eth_subscribe needs params, e.g. [\"newHeads\"]",
        ));
    };
    if refused_kind(&params) {
        return Some(rpc::error(
            id,
            rpc::METHOD_NOT_FOUND,
            "newPendingTransactions with full transactions is the mempool, which the gateway does not serve: subscribe to hashes only",
        ));
    }
    if link.is_none() {
        *link = connect(w, None).await;
    }
    let Some(l) = link.as_mut() else {
        return Some(rpc::error(
            id,
            rpc::INTERNAL_ERROR,
            "no upstream at head takes subscriptions; retry shortly",
        ));
    };
    let internal = *next_id;
    *next_id += 1;
    let ours = format!("0x{:032x}", (u128::from(salt) << 64) | u128::from(internal));
    if !send_up(w, l, subscribe_request(internal, &params)).await {
        return Some(rpc::error(
            id,
            rpc::INTERNAL_ERROR,
            "the upstream did not take the subscription; retry shortly",
        ));
    }
    subs.insert(
        ours.clone(),
        Sub {
            params,
            upstream_id: None,
        },
    );
    pending.insert(internal, (call.id.clone(), ours));
    // Answered when the upstream answers.
    None
}

async fn unsubscribe(
    w: &Worker,
    call: &Call,
    subs: &mut HashMap<String, Sub>,
    link: &mut Option<Link>,
    next_id: &mut u64,
) -> String {
    let id: Option<String> = call
        .positional()
        .and_then(|p| p.first().and_then(|r| serde_json::from_str(r.get()).ok()));
    let Some(sub) = id.and_then(|id| subs.remove(&id)) else {
        return rpc::result(call.id.as_deref(), "false");
    };
    // Not confirmed yet: the confirmation finds it gone and frees it upstream.
    if let (Some(up), Some(l)) = (sub.upstream_id, link.as_mut()) {
        let internal = *next_id;
        *next_id += 1;
        let _ = send_up(w, l, unsubscribe_request(internal, &up)).await;
    }
    rpc::result(call.id.as_deref(), "true")
}

/// Subscribes every subscription again on another upstream; false when none can take them.
async fn resubscribe(
    w: &Worker,
    subs: &mut HashMap<String, Sub>,
    pending: &mut Pending,
    link: &mut Option<Link>,
    next_id: &mut u64,
    not: Option<&Arc<Upstream>>,
) -> bool {
    // A client still waiting for a subscribe answer gets it from the new upstream.
    let waiting: HashMap<String, Box<RawValue>> = pending
        .drain()
        .filter_map(|(_, (client, ours))| Some((ours, client?)))
        .collect();
    if subs.is_empty() {
        return true;
    }
    for _ in 0..3 {
        if let Some(mut l) = connect(w, not).await {
            let mut ok = true;
            for (ours, sub) in subs.iter_mut() {
                sub.upstream_id = None;
                let internal = *next_id;
                *next_id += 1;
                ok &= send_up(w, &mut l, subscribe_request(internal, &sub.params)).await;
                pending.insert(internal, (waiting.get(ours).cloned(), ours.clone()));
            }
            if ok {
                *link = Some(l);
                return true;
            }
        }
        // No upstream took them: give the head polls a moment to find one.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// What an upstream message asks of the session.
enum Upward {
    Nothing,
    /// Tell the client this.
    Tell(String),
    /// Tell the client this, and unsubscribe this upstream id (the client already unsubscribed).
    TellAndDrop(String, String),
}

fn from_upstream(text: &str, subs: &mut HashMap<String, Sub>, pending: &mut Pending) -> Upward {
    #[derive(serde::Deserialize)]
    struct Note<'a> {
        #[serde(borrow)]
        params: NoteParams<'a>,
    }
    #[derive(serde::Deserialize)]
    struct NoteParams<'a> {
        subscription: String,
        #[serde(borrow)]
        result: &'a RawValue,
    }
    if let Ok(n) = serde_json::from_str::<Note>(text) {
        let Some((ours, _)) = subs
            .iter()
            .find(|(_, s)| s.upstream_id.as_deref() == Some(n.params.subscription.as_str()))
        else {
            return Upward::Nothing;
        };
        return Upward::Tell(format!(
            r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"{ours}","result":{}}}}}"#,
            n.params.result.get()
        ));
    }
    let Ok(a) = serde_json::from_str::<Answer>(text) else {
        return Upward::Nothing;
    };
    let Some(internal) = a.id.and_then(|i| i.get().parse::<u64>().ok()) else {
        return Upward::Nothing;
    };
    let Some((client, ours)) = pending.remove(&internal) else {
        return Upward::Nothing;
    };
    let up = a
        .result
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok());
    let answer = match (&up, &a.error) {
        (Some(_), _) => rpc::result(client.as_deref(), &format!("\"{ours}\"")),
        (None, e) => {
            subs.remove(&ours);
            let message = e
                .as_ref()
                .map_or("the upstream refused the subscription".into(), |e| {
                    e.message.to_string()
                });
            let code = e.as_ref().map_or(rpc::INTERNAL_ERROR, |e| e.code);
            rpc::error(client.as_deref(), code, &message)
        }
    };
    match (up, subs.get_mut(&ours)) {
        (Some(up), Some(s)) => {
            s.upstream_id = Some(up);
            if client.is_some() {
                Upward::Tell(answer)
            } else {
                Upward::Nothing
            }
        }
        (Some(up), None) => Upward::TellAndDrop(answer, up),
        (None, _) if client.is_some() => Upward::Tell(answer),
        (None, _) => Upward::Nothing,
    }
}
