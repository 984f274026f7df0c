//! WebSocket on the same port as HTTP. Calls are answered exactly as over HTTP (routed per request, with
//! failover, the same limits and metrics). Subscriptions are served from the gateway's own (`feed.rs`):
//! a client's `eth_subscribe` costs no upstream subscription, its ids are the gateway's, and a failover
//! upstream changes nothing for it.
//!
//! Nothing a client does can hold the session: answers and notifications go through a buffer bounded in
//! bytes that is never waited on (full: the client is too slow and is closed with a reason), each connection
//! runs at most [`IN_FLIGHT`] calls at once, and every upstream step has the request timeout.

use crate::access::Caller;
use crate::feed::{Kind, SubId};
use crate::rpc::{self, Call, Incoming};
use crate::server::{Worker, batch_answer, limited, one_answer};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Bytes buffered for a client before it is closed as too slow: by bytes, not messages, so that a block
/// with thousands of small logs does not close a client that reads, and a client's memory is bounded.
const BUFFER_BYTES: usize = 16 << 20;

/// Calls one connection may have in flight; the next frame is read when one finishes.
const IN_FLIGHT: usize = 64;

/// Close code for a client that fell too far behind (4000–4999: application codes, RFC 6455 §7.4.2).
const TOO_SLOW: u16 = 4008;

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
pub(crate) struct Out {
    tx: mpsc::UnboundedSender<Message>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    close: Arc<std::sync::Mutex<Option<oneshot::Sender<Message>>>>,
    /// For counting clients closed as too slow.
    shared: Arc<crate::Shared>,
}

impl Out {
    /// Queues `text`; false (and the client is closed as too slow) when the buffer is full.
    pub(crate) fn send(&self, text: String) -> bool {
        let len = text.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        // One answer larger than the buffer still goes to a client that has read everything before it.
        if (before == 0 || before + len <= BUFFER_BYTES)
            && self.tx.send(Message::Text(text.into())).is_ok()
        {
            return true;
        }
        self.queued.fetch_sub(len, Ordering::Relaxed);
        if self.close(
            TOO_SLOW,
            "too slow: answers and notifications were not read; reconnect and read faster",
        ) {
            self.shared.metrics.slow_client();
        }
        false
    }

    /// Closes the connection with `code` and `reason`, ahead of anything buffered; false when it was
    /// closed already.
    fn close(&self, code: u16, reason: &str) -> bool {
        let taken = self
            .close
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(tx) = taken else {
            return false;
        };
        let _ = tx.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })));
        true
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
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let (close_tx, mut close_rx) = oneshot::channel::<Message>();
    let queued = Arc::new(AtomicUsize::new(0));
    let written = queued.clone();
    let out = Out {
        tx,
        queued,
        close: Arc::new(std::sync::Mutex::new(Some(close_tx))),
        shared: w.shared.clone(),
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
                    let len = match &m {
                        Message::Text(t) => t.len(),
                        _ => 0,
                    };
                    match tokio::time::timeout(timeout, to_client.send(m)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                    written.fetch_sub(len, Ordering::Relaxed);
                }
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut subs: HashSet<SubId> = HashSet::new();
    let mut next_id: u64 = 1;
    let mut salt = [0u8; 8];
    // Subscription ids are not guessable across connections.
    let _ = getrandom::fill(&mut salt);
    let salt = u64::from_le_bytes(salt);
    let mut writer_done = false;
    loop {
        if out.closed() {
            break;
        }
        tokio::select! {
            // The writer gave up (closed as too slow, or the client stopped reading).
            _ = &mut writer => {
                writer_done = true;
                break;
            }
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
                        let (answer, added) = subscribe(&w, &call, &mut subs, &mut next_id, salt);
                        let ok = added.is_some();
                        w.shared.metrics.request(
                            crate::metrics::RequestLabels {
                                method: "eth_subscribe",
                                key: caller.name,
                                upstream: "feed",
                                outcome: if ok { "ok" } else { "refused" },
                            },
                            started.elapsed().as_secs_f64(),
                        );
                        out.send(answer);
                        // Only now: a notification must not reach the client before the id it is under.
                        if let Some((id, kind)) = added {
                            w.shared.feeds.add(id, kind, out.clone());
                        }
                    }
                    "eth_unsubscribe" if caller.may_call("eth_unsubscribe") => {
                        out.send(unsubscribe(&w, &call, &mut subs));
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
        }
    }
    // Every subscription this client made ends with it.
    for id in subs {
        w.shared.feeds.remove(id);
    }
    drop(out);
    // The writer ends when the buffer is drained (or it gave up on a client that does not read).
    if !writer_done && tokio::time::timeout(timeout, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// The answer to `eth_subscribe`, and the subscription to add once the client has it.
fn subscribe(
    w: &Worker,
    call: &Call,
    subs: &mut HashSet<SubId>,
    next_id: &mut u64,
    salt: u64,
) -> (String, Option<(SubId, Kind)>) {
    let id = call.id.as_deref();
    if subs.len() >= w.shared.policy.max_subscriptions {
        let why = format!(
            "this connection has {} subscriptions, the limit: unsubscribe from one first",
            subs.len()
        );
        return (rpc::error(id, rpc::LIMIT_EXCEEDED, &why), None);
    }
    let Some(params) = call.params.as_deref() else {
        return (
            rpc::error(
                id,
                rpc::INVALID_PARAMS,
                "eth_subscribe needs params, e.g. [\"newHeads\"]",
            ),
            None,
        );
    };
    let kind = match Kind::parse(params) {
        Ok(k) => k,
        Err(why) => return (rpc::error(id, rpc::INVALID_PARAMS, &why), None),
    };
    let ours: SubId = (u128::from(salt) << 64) | u128::from(*next_id);
    *next_id += 1;
    subs.insert(ours);
    (
        rpc::result(id, &format!("\"0x{ours:032x}\"")),
        Some((ours, kind)),
    )
}

fn unsubscribe(w: &Worker, call: &Call, subs: &mut HashSet<SubId>) -> String {
    let id: Option<String> = call
        .positional()
        .and_then(|p| p.first().and_then(|r| serde_json::from_str(r.get()).ok()));
    let ours = id
        .as_deref()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .filter(|i| subs.remove(i));
    let done = ours.is_some_and(|i| w.shared.feeds.remove(i));
    rpc::result(call.id.as_deref(), if done { "true" } else { "false" })
}
