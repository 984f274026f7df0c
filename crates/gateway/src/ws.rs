//! WebSocket on the same port as HTTP. Calls are answered exactly as over HTTP (routed per request, with
//! failover). Subscriptions go over one upstream WebSocket per client connection, to an eligible upstream;
//! the client sees the gateway's own subscription ids, so that when that upstream closes or stops being
//! eligible the gateway subscribes again elsewhere and the client keeps its ids and its connection.
//! (Filling the gap across such a move, and one upstream subscription shared by many clients, are the
//! subscriptions issue's work.) A client that does not read gets a bounded buffer, then a clear close.

use crate::access::Caller;
use crate::rpc::{self, Answer, Call, Incoming};
use crate::server::{Worker, batch_answer, one_answer};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// Messages buffered for a client before it is closed as too slow.
const BUFFER: usize = 4096;

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
    upstream: usize,
    ws: UpStream,
}

/// Frees the caller's socket count however the session ends.
struct Counted(Arc<Caller>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits one more socket for `caller`, or says why not.
pub(crate) fn admit(caller: &Arc<Caller>, max: usize) -> Result<(), String> {
    if caller.sockets.fetch_add(1, Ordering::Relaxed) >= max {
        caller.sockets.fetch_sub(1, Ordering::Relaxed);
        return Err(format!(
            "this key has {max} WebSocket connections open, the limit: close one, or share one connection"
        ));
    }
    Ok(())
}

/// Serves one client WebSocket (its socket was counted by [`admit`]).
pub(crate) async fn session(w: Arc<Worker>, caller: Arc<Caller>, socket: WebSocket) {
    let _counted = Counted(caller.clone());
    let (mut to_client, mut from_client) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(BUFFER);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if to_client.send(m).await.is_err() || close {
                break;
            }
        }
    });
    let mut subs: HashMap<String, Sub> = HashMap::new();
    // Our subscribe requests in flight upstream: internal id → (the client's request id, our sub id).
    let mut pending: HashMap<u64, (Option<Box<RawValue>>, String)> = HashMap::new();
    let mut link: Option<Link> = None;
    let mut next_id: u64 = 1;
    let salt: u64 = Instant::now().elapsed().subsec_nanos().into();
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            m = from_client.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => break,
                };
                let parsed = rpc::parse(text.as_bytes(), w.shared.policy.max_batch);
                let call = match parsed {
                    Err(e) => {
                        if out.send(Message::Text(e.into())).await.is_err() { break; }
                        continue;
                    }
                    Ok(Incoming::Batch(items)) => {
                        let (w, caller, out) = (w.clone(), caller.clone(), out.clone());
                        tokio::spawn(async move {
                            if let Some(text) = batch_answer(&w, &caller, items).await {
                                let _ = out.send(Message::Text(text.into())).await;
                            }
                        });
                        continue;
                    }
                    Ok(Incoming::Single(call)) => call,
                };
                if let Err(wait) = caller.take(1) {
                    let e = rpc::error(call.id.as_deref(), rpc::LIMIT_EXCEEDED,
                        &format!("rate limit of this key reached: retry after {:.0} s", wait.ceil()));
                    if out.send(Message::Text(e.into())).await.is_err() { break; }
                    continue;
                }
                match call.method.as_str() {
                    "eth_subscribe" if caller.may_call("eth_subscribe") => {
                        let answer = subscribe(&w, &call, &mut subs, &mut pending, &mut link, &mut next_id, salt).await;
                        if let Some(a) = answer
                            && out.send(Message::Text(a.into())).await.is_err() { break; }
                    }
                    "eth_unsubscribe" if caller.may_call("eth_unsubscribe") => {
                        let a = unsubscribe(&call, &mut subs, &mut link, &mut next_id).await;
                        if out.send(Message::Text(a.into())).await.is_err() { break; }
                    }
                    _ => {
                        let (w, caller, out) = (w.clone(), caller.clone(), out.clone());
                        tokio::spawn(async move {
                            if let Some(text) = one_answer(&w, &caller, &call).await {
                                let _ = out.send(Message::Text(text.into())).await;
                            }
                        });
                    }
                }
            }
            m = async { link.as_mut().unwrap().ws.next().await }, if link.is_some() => {
                let text = match m {
                    Some(Ok(UpMessage::Text(t))) => t.as_str().to_owned(),
                    Some(Ok(UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_))) => continue,
                    Some(Ok(UpMessage::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    _ => {
                        // The upstream went away: subscribe again elsewhere, same ids for the client.
                        let gone = link.take().map(|l| l.upstream);
                        if let Some(i) = gone {
                            tracing::warn!(upstream = w.shared.names[i], "subscription upstream closed; moving");
                            w.shared.metrics.failover(w.shared.names[i]);
                        }
                        if !resubscribe(&w, &mut subs, &mut pending, &mut link, &mut next_id, gone).await {
                            let _ = out.send(close(1011, "no upstream can serve subscriptions; reconnect shortly")).await;
                            break;
                        }
                        continue;
                    }
                };
                if !from_upstream(&text, &mut subs, &mut pending, &out) {
                    let _ = out.try_send(close(TOO_SLOW, "too slow: notifications were not read; reconnect and read faster"));
                    break;
                }
            }
            _ = check.tick() => {
                // The subscription upstream fell out of eligibility: move before it serves stale heads.
                let s = w.shared.pool.snapshot();
                if let Some(l) = &link && !s.eligible.contains(&l.upstream) && !s.eligible.is_empty() {
                    let gone = l.upstream;
                    tracing::warn!(upstream = w.shared.names[gone], "subscription upstream no longer at head; moving");
                    w.shared.metrics.failover(w.shared.names[gone]);
                    if let Some(mut l) = link.take() { let _ = l.ws.close(None).await; }
                    if !resubscribe(&w, &mut subs, &mut pending, &mut link, &mut next_id, Some(gone)).await {
                        let _ = out.send(close(1011, "no upstream can serve subscriptions; reconnect shortly")).await;
                        break;
                    }
                }
            }
        }
    }
    // Closing the upstream socket frees every subscription this client caused.
    if let Some(mut l) = link.take() {
        let _ = l.ws.close(None).await;
    }
    drop(out);
    let _ = writer.await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Opens a WebSocket to an eligible upstream other than `not`.
async fn connect(w: &Worker, not: Option<usize>) -> Option<Link> {
    let s = w.shared.pool.snapshot();
    for i in w.shared.pool.candidates(&s, None, false) {
        if Some(i) == not && s.eligible.len() > 1 {
            continue;
        }
        let url = &w.shared.pool.upstreams()[i].ws;
        let attempt = tokio::time::timeout(
            w.shared.policy.timeout,
            tokio_tungstenite::connect_async(url.as_str()),
        );
        match attempt.await {
            Ok(Ok((ws, _))) => return Some(Link { upstream: i, ws }),
            Ok(Err(e)) => {
                tracing::warn!(upstream = w.shared.names[i], error = %ethnode_config::redact_urls_in(&e.to_string()), "cannot open a WebSocket")
            }
            Err(_) => tracing::warn!(upstream = w.shared.names[i], "WebSocket open timed out"),
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

async fn subscribe(
    w: &Worker,
    call: &Call,
    subs: &mut HashMap<String, Sub>,
    pending: &mut HashMap<u64, (Option<Box<RawValue>>, String)>,
    link: &mut Option<Link>,
    next_id: &mut u64,
    salt: u64,
) -> Option<String> {
    if subs.len() >= w.shared.policy.max_subscriptions {
        return Some(rpc::error(
            call.id.as_deref(),
            rpc::LIMIT_EXCEEDED,
            &format!(
                "this connection has {} subscriptions, the limit: unsubscribe from one first",
                subs.len()
            ),
        ));
    }
    let Some(params) = call.params.clone() else {
        return Some(rpc::error(
            call.id.as_deref(),
            rpc::INVALID_PARAMS,
            "eth_subscribe needs params, e.g. [\"newHeads\"]",
        ));
    };
    if link.is_none() {
        *link = connect(w, None).await;
    }
    let Some(l) = link.as_mut() else {
        return Some(rpc::error(
            call.id.as_deref(),
            rpc::INTERNAL_ERROR,
            "no upstream at head takes subscriptions; retry shortly",
        ));
    };
    let internal = *next_id;
    *next_id += 1;
    let ours = format!("0x{:032x}", (u128::from(salt) << 64) | u128::from(internal));
    if l.ws
        .send(UpMessage::Text(subscribe_request(internal, &params).into()))
        .await
        .is_err()
    {
        return Some(rpc::error(
            call.id.as_deref(),
            rpc::INTERNAL_ERROR,
            "the upstream closed; retry shortly",
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
    if let (Some(up), Some(l)) = (sub.upstream_id, link.as_mut()) {
        let internal = *next_id;
        *next_id += 1;
        let m = format!(
            r#"{{"jsonrpc":"2.0","id":{internal},"method":"eth_unsubscribe","params":["{up}"]}}"#
        );
        let _ = l.ws.send(UpMessage::Text(m.into())).await;
    }
    rpc::result(call.id.as_deref(), "true")
}

/// Subscribes every subscription again on another upstream; false when none can take them.
async fn resubscribe(
    w: &Worker,
    subs: &mut HashMap<String, Sub>,
    pending: &mut HashMap<u64, (Option<Box<RawValue>>, String)>,
    link: &mut Option<Link>,
    next_id: &mut u64,
    not: Option<usize>,
) -> bool {
    pending.retain(|_, (client, _)| client.is_some());
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
                ok &=
                    l.ws.send(UpMessage::Text(
                        subscribe_request(internal, &sub.params).into(),
                    ))
                    .await
                    .is_ok();
                // No client waits for this answer.
                pending.insert(internal, (None, ours.clone()));
            }
            if ok {
                *link = Some(l);
                return true;
            }
        }
        tokio::time::sleep(w.shared.pool.upstreams()[0].poll).await;
    }
    false
}

/// Handles one upstream message; false when the client is too slow to take it.
fn from_upstream(
    text: &str,
    subs: &mut HashMap<String, Sub>,
    pending: &mut HashMap<u64, (Option<Box<RawValue>>, String)>,
    out: &mpsc::Sender<Message>,
) -> bool {
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
            return true;
        };
        let m = format!(
            r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"{ours}","result":{}}}}}"#,
            n.params.result.get()
        );
        return out.try_send(Message::Text(m.into())).is_ok();
    }
    let Ok(a) = serde_json::from_str::<Answer>(text) else {
        return true;
    };
    let Some(internal) = a.id.and_then(|i| i.get().parse::<u64>().ok()) else {
        return true;
    };
    let Some((client, ours)) = pending.remove(&internal) else {
        return true;
    };
    let answer = match (
        a.result
            .and_then(|r| serde_json::from_str::<String>(r.get()).ok()),
        &a.error,
    ) {
        (Some(up), _) => {
            if let Some(s) = subs.get_mut(&ours) {
                s.upstream_id = Some(up);
            }
            rpc::result(client.as_deref(), &format!("\"{ours}\""))
        }
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
    match client {
        Some(_) => out.try_send(Message::Text(answer.into())).is_ok(),
        None => true,
    }
}
