//! Subscriptions, served from the gateway's own: one upstream `newHeads` subscription (and one
//! `newPendingTransactions` while somebody wants it) for the whole gateway, however many clients, fanned
//! out to each client under the client's own subscription id.
//!
//! - **Every head once, in order.** Heads pass through a chain of the last [`KEEP`] canonical heads. A head
//!   whose parent is not the last one emitted is connected by walking parent hashes (`eth_getBlockByHash`,
//!   from the serving upstream, else any other): after a gap (a failover, a missed notification) the missing
//!   heads are emitted first; after a reorg the new branch's heads are emitted from the fork point on, as a
//!   node emits them. A head already emitted is not emitted again.
//! - **Failover.** When the serving upstream's socket ends, when it stops being eligible, or when it stalls
//!   while the others move on, the feed subscribes on another upstream and fetches that upstream's latest
//!   head at once, so that the gap is filled without waiting for the next block.
//! - **Logs** are not an upstream subscription: for each canonical head, the block's logs are fetched once
//!   (`eth_getLogs` by block hash with the block itself, from any upstream that has it) by a task of their
//!   own, and each client's filter is applied here. So every log of every block is delivered once,
//!   whichever upstream serves; logs never move past a block whose logs no upstream gave (it is asked
//!   again, and later blocks wait behind it), while heads go on; the logs of blocks a reorg removed are
//!   delivered again with `removed: true`, oldest block first (as geth does), to the subscriptions that
//!   got them.
//! - **Slow clients** get the connection's bounded buffer and then a close with a reason (see `ws.rs`);
//!   nothing is skipped silently.
//! - **Pending transactions** (hashes only) are passed on as the serving upstream sends them: a mempool
//!   has no order to repair, so a failover may miss the transactions announced while it happens.
//!
//! The chain of canonical hashes is also what the cache checks its answers against ([`Canon`]).

use crate::pool::Upstream;
use crate::server::{self, Worker};
use crate::ws::Out;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// Canonical heads kept: how deep a reorg or a gap can be repaired (and checked by the cache).
pub const KEEP: usize = 256;

/// The delivered logs of this many recent heads are kept, to be sent again as removed if a reorg takes
/// their block: deeper than any reorg of a finalizing chain (finality comes within 64-95 blocks), and
/// bounded on mainnet (~500 logs a block) when a client subscribes to every log.
pub const KEEP_LOGS: usize = 64;

/// A client subscription's id (the gateway's own; random per connection).
pub(crate) type SubId = u128;

type UpStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The subscription kinds the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `newHeads`.
    Heads,
    /// `logs`, with its filter.
    Logs(Arc<Filter>),
    /// `newPendingTransactions` (hashes).
    Pending,
}

impl Kind {
    /// Reads `eth_subscribe`'s params; `Err` says what is wrong and what is served.
    pub(crate) fn parse(params: &RawValue) -> Result<Self, String> {
        let p: Vec<&RawValue> = serde_json::from_str(params.get())
            .map_err(|_| "eth_subscribe takes a list: [\"newHeads\"], [\"logs\", {filter}] or [\"newPendingTransactions\"]".to_string())?;
        let kind: &str = p
            .first()
            .and_then(|k| serde_json::from_str(k.get()).ok())
            .unwrap_or("");
        match kind {
            "newHeads" => Ok(Self::Heads),
            "logs" => Ok(Self::Logs(Arc::new(Filter::parse(p.get(1).copied())?))),
            "newPendingTransactions" => {
                if p.get(1).map(|r| r.get().trim()) == Some("true") {
                    // The full transactions are the mempool itself: refused like `txpool_*`.
                    return Err("newPendingTransactions with full transactions is the mempool, which the gateway does not serve: subscribe to hashes only".into());
                }
                Ok(Self::Pending)
            }
            other => Err(format!(
                "subscription kind {other:?} is not served: the gateway serves newHeads, logs and newPendingTransactions"
            )),
        }
    }
}

/// A `logs` filter: addresses (any of them; none: every address) and topics by position (each `None`
/// matches anything, otherwise any of the listed topics).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filter {
    addresses: Vec<String>,
    topics: Vec<Option<Vec<String>>>,
}

/// One or many, the way filters write addresses and topics.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn lowercase(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.to_ascii_lowercase()],
            Self::Many(v) => v.into_iter().map(|s| s.to_ascii_lowercase()).collect(),
        }
    }
}

impl Filter {
    /// Reads a `logs` subscription's filter (`None`: every log).
    pub fn parse(raw: Option<&RawValue>) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct F {
            #[serde(default)]
            address: Option<OneOrMany>,
            #[serde(default)]
            topics: Option<Vec<Option<OneOrMany>>>,
        }
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        let f: F = serde_json::from_str(raw.get()).map_err(|e| {
            format!("invalid logs filter ({e}): give {{\"address\": ..., \"topics\": [...]}}")
        })?;
        let topics: Vec<Option<Vec<String>>> = f
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.map(OneOrMany::lowercase))
            .collect();
        if topics.len() > 4 {
            return Err("invalid logs filter: a log has at most 4 topics".into());
        }
        Ok(Self {
            addresses: f.address.map(OneOrMany::lowercase).unwrap_or_default(),
            topics,
        })
    }

    /// Whether a log with this address and these topics passes.
    pub fn matches(&self, address: &str, topics: &[String]) -> bool {
        (self.addresses.is_empty() || self.addresses.iter().any(|a| a == address))
            && self.topics.iter().enumerate().all(|(i, want)| match want {
                None => true,
                Some(any) => topics.get(i).is_some_and(|t| any.contains(t)),
            })
    }
}

/// One log as delivered: what filters read, and its JSON text.
#[derive(Debug, Clone)]
struct Log {
    address: String,
    topics: Vec<String>,
    json: Arc<str>,
}

impl Log {
    fn read(raw: &RawValue) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct L {
            address: String,
            #[serde(default)]
            topics: Vec<String>,
        }
        let l: L = serde_json::from_str(raw.get()).ok()?;
        Some(Self {
            address: l.address.to_ascii_lowercase(),
            topics: l
                .topics
                .into_iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            json: Arc::from(raw.get()),
        })
    }

    /// The same log from a block a reorg removed.
    fn removed(&self) -> Arc<str> {
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&self.json) {
            Ok(mut m) => {
                m.insert("removed".into(), serde_json::Value::Bool(true));
                Arc::from(serde_json::Value::Object(m).to_string())
            }
            Err(_) => self.json.clone(),
        }
    }
}

/// A canonical head.
#[derive(Debug)]
struct Head {
    number: u64,
    hash: String,
    parent: String,
    /// As emitted.
    json: Arc<str>,
}

/// The canonical hashes of recent blocks as the feed knows them: what the cache checks against.
#[derive(Debug, Default, Clone)]
pub struct Canon {
    /// The number of `hashes[0]`.
    first: u64,
    hashes: VecDeque<String>,
    /// The upstreams' finalized block, when known.
    pub finalized: Option<u64>,
    /// The feed follows an upstream now (otherwise what it knows may be old).
    pub live: bool,
}

impl Canon {
    /// Blocks `first..` with these hashes.
    pub fn new(first: u64, hashes: VecDeque<String>, finalized: Option<u64>, live: bool) -> Self {
        Self {
            first,
            hashes,
            finalized,
            live,
        }
    }

    /// Block `n`'s canonical hash, when `n` is among the recent blocks.
    pub fn hash(&self, n: u64) -> Option<&str> {
        let i = usize::try_from(n.checked_sub(self.first)?).ok()?;
        self.hashes.get(i).map(String::as_str)
    }

    /// Block `n` has hash `hash` on the chain, and the feed follows an upstream now.
    pub fn follows(&self, n: u64, hash: &str) -> bool {
        self.live && self.hash(n) == Some(hash)
    }

    /// The last canonical head.
    pub fn head(&self) -> Option<u64> {
        (!self.hashes.is_empty()).then(|| self.first + self.hashes.len() as u64 - 1)
    }

    /// Whether the block `(number, hash)` is canonical: among the recent blocks with that hash, or older
    /// than them and final. `None`: not known (newer than what the feed has seen).
    pub fn holds(&self, number: u64, hash: &str) -> Option<bool> {
        if let Some(h) = self.hash(number) {
            return Some(h.eq_ignore_ascii_case(hash));
        }
        if number < self.first && self.finalized.is_some_and(|f| number <= f) {
            return Some(true);
        }
        None
    }
}

#[derive(Default)]
struct Registry {
    heads: HashMap<SubId, Out>,
    logs: HashMap<SubId, (Out, Arc<Filter>)>,
    pending: HashMap<SubId, Out>,
}

/// Who is subscribed to what, and the chain the feed follows.
#[derive(Default)]
pub struct Feeds {
    reg: Mutex<Registry>,
    changed: Notify,
    canon: RwLock<Canon>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Feeds {
    /// Adds a client subscription.
    pub(crate) fn add(&self, id: SubId, kind: Kind, out: Out) {
        let mut r = lock(&self.reg);
        match kind {
            Kind::Heads => {
                r.heads.insert(id, out);
            }
            Kind::Logs(f) => {
                r.logs.insert(id, (out, f));
            }
            Kind::Pending => {
                r.pending.insert(id, out);
            }
        }
        drop(r);
        self.changed.notify_one();
    }

    /// Removes a client subscription; whether it existed.
    pub(crate) fn remove(&self, id: SubId) -> bool {
        let mut r = lock(&self.reg);
        let had = r.heads.remove(&id).is_some()
            || r.logs.remove(&id).is_some()
            || r.pending.remove(&id).is_some();
        drop(r);
        if had {
            self.changed.notify_one();
        }
        had
    }

    /// The `newHeads` subscriptions now (copied: sending happens outside the lock).
    fn head_subscribers(&self) -> Vec<(SubId, Out)> {
        let r = lock(&self.reg);
        r.heads.iter().map(|(i, o)| (*i, o.clone())).collect()
    }

    /// The `newPendingTransactions` subscriptions now.
    fn pending_subscribers(&self) -> Vec<(SubId, Out)> {
        let r = lock(&self.reg);
        r.pending.iter().map(|(i, o)| (*i, o.clone())).collect()
    }

    /// The `logs` subscriptions now.
    fn log_subscribers(&self) -> Vec<(SubId, Out, Arc<Filter>)> {
        let r = lock(&self.reg);
        r.logs
            .iter()
            .map(|(i, (o, f))| (*i, o.clone(), f.clone()))
            .collect()
    }

    /// Client subscriptions by kind: (newHeads, logs, newPendingTransactions).
    pub fn counts(&self) -> (usize, usize, usize) {
        let r = lock(&self.reg);
        (r.heads.len(), r.logs.len(), r.pending.len())
    }

    /// Reads the canonical chain without copying it.
    pub fn with_canon<T>(&self, f: impl FnOnce(&Canon) -> T) -> T {
        f(&self
            .canon
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn set_live(&self, live: bool) {
        self.canon
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .live = live;
    }
}

fn note(id: SubId, result: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0x{id:032x}","result":{result}}}}}"#
    )
}

/// The feed's socket to the serving upstream.
struct Link {
    upstream: Arc<Upstream>,
    ws: UpStream,
    next_id: u64,
    heads: Option<String>,
    pending: Option<String>,
    /// Requests sent and not answered: id → what they subscribe to (`None`: an unsubscribe).
    asked: HashMap<u64, Option<Want>>,
    /// Subscribing to pending transactions was asked (or refused): not asked again on this link.
    pending_asked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Heads,
    Pending,
}

impl Link {
    async fn request(&mut self, timeout: Duration, method: &str, params: &str) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let text =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        matches!(
            tokio::time::timeout(timeout, self.ws.send(UpMessage::Text(text.into()))).await,
            Ok(Ok(()))
        )
        .then_some(id)
    }
}

/// Why the feed left an upstream.
enum Leave {
    Closed,
    NotEligible,
    Stalled,
}

/// The feed: follows the serving upstream's heads and fans them out, with the logs of each canonical
/// block fetched and delivered by a task of their own (`run_logs`), so that a block whose logs will not
/// come never holds the heads back. Runs for the process's life.
pub(crate) async fn run(w: Worker, logs: Worker) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(run_logs(Logs {
        w: logs,
        rx,
        due: VecDeque::new(),
        kept: VecDeque::new(),
    }));
    let mut hub = Hub {
        w,
        chain: VecDeque::new(),
        logs: tx,
        bodies: true,
        live: false,
        finalized_at: None,
        behind_since: None,
    };
    let mut not: Option<Arc<Upstream>> = None;
    // Between attempts when no upstream takes a socket: 250 ms, doubling to 5 s (an upstream without a
    // WebSocket would otherwise be asked four times a second for good).
    let mut wait = Duration::from_millis(250);
    loop {
        let Some(mut link) = hub.connect(not.as_ref()).await else {
            hub.feeds().set_live(false);
            // A first subscriber may make a fallback usable: it does not wait out the backoff.
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = hub.feeds().changed.notified() => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
            continue;
        };
        wait = Duration::from_millis(250);
        hub.w
            .shared
            .metrics
            .feed_upstream(Some(link.upstream.label));
        // The gap since the last head: filled now, not at the next block. The cache trusts the chain
        // again only once a head from this upstream is applied (a reorg during the outage is then
        // known): here, or at the first head that follows.
        hub.catch_up(&link.upstream).await;
        let leave = hub.follow(&mut link).await;
        hub.feeds().set_live(false);
        hub.live = false;
        hub.w.shared.metrics.feed_upstream(None);
        let why = match leave {
            Leave::Closed => "its socket closed",
            Leave::NotEligible => "it is no longer at head",
            Leave::Stalled => "it sends no heads while the others move on",
        };
        tracing::warn!(
            upstream = link.upstream.label,
            why,
            "subscriptions move to another upstream"
        );
        hub.w.shared.metrics.failover(link.upstream.label);
        let _ = tokio::time::timeout(hub.w.shared.policy.timeout, link.ws.close(None)).await;
        not = Some(link.upstream);
    }
}

struct Hub {
    w: Worker,
    chain: VecDeque<Head>,
    /// To the logs task.
    logs: tokio::sync::mpsc::UnboundedSender<LogsMsg>,
    /// The serving upstream's heads carry block bodies' fields (anvil's do; reth's and geth's do not):
    /// heads fetched to fill a gap are written the same way.
    bodies: bool,
    /// A head from the serving upstream was applied since it was chosen.
    live: bool,
    finalized_at: Option<Instant>,
    behind_since: Option<Instant>,
}

impl Hub {
    fn feeds(&self) -> &Feeds {
        &self.w.shared.feeds
    }

    /// A socket to an eligible upstream other than `not` (unless it is the only one), subscribed to heads.
    async fn connect(&self, not: Option<&Arc<Upstream>>) -> Option<Link> {
        let s = self.w.shared.pool.snapshot();
        let timeout = self.w.shared.policy.timeout;
        let mut order = self.w.shared.pool.candidates(&s, None, true);
        // A fallback (a paid provider) bills each notification: followed only while a client subscribes,
        // not just for the cache.
        let (heads, logs, pending) = self.feeds().counts();
        if heads + logs + pending == 0 {
            order.retain(|&i| !s.upstreams[i].fallback);
        }
        // Elsewhere first.
        order.sort_by_key(|&i| not.is_some_and(|n| Arc::ptr_eq(n, &s.upstreams[i])));
        for i in order {
            let u = &s.upstreams[i];
            let ws = match tokio::time::timeout(
                timeout,
                tokio_tungstenite::connect_async(u.ws.as_str()),
            )
            .await
            {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => {
                    tracing::warn!(upstream = u.label, error = %ethnode_config::redact_urls_in(&e.to_string()), "feed: cannot open a WebSocket");
                    continue;
                }
                Err(_) => continue,
            };
            let mut link = Link {
                upstream: u.clone(),
                ws,
                next_id: 1,
                heads: None,
                pending: None,
                asked: HashMap::new(),
                pending_asked: false,
            };
            if let Some(id) = link
                .request(timeout, "eth_subscribe", r#"["newHeads"]"#)
                .await
            {
                link.asked.insert(id, Some(Want::Heads));
                return Some(link);
            }
        }
        None
    }

    /// Follows `link` until it must be left.
    async fn follow(&mut self, link: &mut Link) -> Leave {
        let timeout = self.w.shared.policy.timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Pending transactions: subscribed while somebody wants them.
            let want_pending = self.feeds().counts().2 > 0;
            if want_pending && link.pending.is_none() && !link.pending_asked {
                link.pending_asked = true;
                if let Some(id) = link
                    .request(timeout, "eth_subscribe", r#"["newPendingTransactions"]"#)
                    .await
                {
                    link.asked.insert(id, Some(Want::Pending));
                }
            } else if !want_pending && let Some(up) = link.pending.take() {
                link.pending_asked = false;
                let params = format!("[{}]", serde_json::Value::String(up));
                if let Some(id) = link.request(timeout, "eth_unsubscribe", &params).await {
                    link.asked.insert(id, None);
                }
            }
            tokio::select! {
                m = link.ws.next() => {
                    let text = match m {
                        Some(Ok(UpMessage::Text(t))) => t,
                        Some(Ok(UpMessage::Binary(b))) => match String::from_utf8(b.to_vec()) {
                            Ok(s) => s.into(),
                            Err(_) => continue,
                        },
                        Some(Ok(_)) => continue,
                        _ => return Leave::Closed,
                    };
                    if !self.take_message(link, text.as_str()).await {
                        return Leave::Closed;
                    }
                }
                () = self.feeds().changed.notified() => {}
                _ = tick.tick() => {
                    if let Some(leave) = self.check(link) {
                        return leave;
                    }
                    self.finalized(&link.upstream).await;
                }
            }
        }
    }

    /// Whether to leave the serving upstream: not eligible while another is, or silent while the tip
    /// moves on.
    fn check(&mut self, link: &Link) -> Option<Leave> {
        let s = self.w.shared.pool.snapshot();
        let mine = s
            .eligible
            .iter()
            .any(|&i| Arc::ptr_eq(&s.upstreams[i], &link.upstream));
        if !mine && !s.eligible.is_empty() {
            return Some(Leave::NotEligible);
        }
        let (heads, logs, pending) = self.feeds().counts();
        if link.upstream.fallback && heads + logs + pending == 0 {
            return Some(Leave::NotEligible);
        }
        let last = self.chain.back().map(|h| h.number);
        let behind = matches!((s.tip, last), (Some(t), Some(l)) if t > l + 1);
        if !behind {
            self.behind_since = None;
            return None;
        }
        let since = *self.behind_since.get_or_insert_with(Instant::now);
        (since.elapsed() > Duration::from_secs(3)).then(|| {
            self.behind_since = None;
            Leave::Stalled
        })
    }

    /// Handles one message from the serving upstream; false when it refused the heads subscription.
    async fn take_message(&mut self, link: &mut Link, text: &str) -> bool {
        #[derive(serde::Deserialize)]
        struct Note<'a> {
            #[serde(borrow)]
            params: NoteParams<'a>,
        }
        #[derive(serde::Deserialize)]
        struct NoteParams<'a> {
            #[serde(borrow)]
            subscription: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            result: &'a RawValue,
        }
        if let Ok(n) = serde_json::from_str::<Note>(text) {
            let sub = n.params.subscription.as_ref();
            if link.heads.as_deref() == Some(sub) {
                self.on_head(n.params.result, &link.upstream).await;
            } else if link.pending.as_deref() == Some(sub) {
                for (id, out) in self.feeds().pending_subscribers() {
                    out.send(note(id, n.params.result.get()));
                }
            }
            return true;
        }
        let Ok(a) = serde_json::from_str::<crate::rpc::Answer>(text) else {
            return true;
        };
        let Some(id) = a.id.and_then(|i| i.get().parse::<u64>().ok()) else {
            return true;
        };
        let Some(Some(want)) = link.asked.remove(&id) else {
            return true;
        };
        let up = a
            .result
            .and_then(|r| serde_json::from_str::<String>(r.get()).ok());
        match (want, up) {
            (Want::Heads, Some(up)) => link.heads = Some(up),
            (Want::Heads, None) => {
                tracing::warn!(
                    upstream = link.upstream.label,
                    "feed: the upstream refused newHeads"
                );
                return false;
            }
            (Want::Pending, Some(up)) => link.pending = Some(up),
            (Want::Pending, None) => tracing::info!(
                upstream = link.upstream.label,
                "feed: the upstream does not offer newPendingTransactions"
            ),
        }
        true
    }

    /// Fetches `upstream`'s latest head and takes it in (filling the gap behind it).
    async fn catch_up(&mut self, upstream: &Arc<Upstream>) {
        let q =
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["latest",false]}"#;
        let Ok(bytes) = server::send(
            &self.w,
            upstream,
            axum::body::Bytes::from_static(q.as_bytes()),
        )
        .await
        else {
            return;
        };
        let Ok(a) = serde_json::from_slice::<crate::rpc::Answer>(&bytes) else {
            return;
        };
        if let Some(r) = a.result {
            let head = self.as_head(r.get());
            let _ = self.on_head(&head, upstream).await;
        }
    }

    /// A block as a head notification writes it: without the body's fields when the upstream's heads
    /// have none.
    fn as_head(&self, block: &str) -> Box<RawValue> {
        let fallback = || RawValue::from_string(block.to_owned()).ok();
        let out = if self.bodies {
            fallback()
        } else {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(block)
                .ok()
                .and_then(|mut m| {
                    for k in [
                        "transactions",
                        "uncles",
                        "withdrawals",
                        "size",
                        "totalDifficulty",
                    ] {
                        m.remove(k);
                    }
                    RawValue::from_string(serde_json::Value::Object(m).to_string()).ok()
                })
                .or_else(fallback)
        };
        out.unwrap_or_else(|| RawValue::from_string("null".into()).unwrap_or_default())
    }

    /// A block by hash, from `first` and then any other upstream that has it.
    async fn block_by_hash(&self, hash: &str, first: &Arc<Upstream>) -> Option<String> {
        let q = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByHash","params":["{hash}",false]}}"#
        );
        for u in order(&self.w, Some(first)) {
            let Ok(bytes) = server::send(&self.w, &u, axum::body::Bytes::from(q.clone())).await
            else {
                continue;
            };
            if let Ok(a) = serde_json::from_slice::<crate::rpc::Answer>(&bytes)
                && a.error.is_none()
                && let Some(r) = a.result
            {
                return Some(r.get().to_owned());
            }
        }
        None
    }

    /// Takes in a head from the serving upstream: emits it, or the heads that connect it first.
    async fn on_head(&mut self, raw: &RawValue, from: &Arc<Upstream>) -> bool {
        let applied = self.apply(raw, from).await;
        if applied && !self.live {
            self.live = true;
            self.feeds().set_live(true);
        }
        applied
    }

    /// [`Self::on_head`]'s work; false when the head could not be connected (not applied).
    async fn apply(&mut self, raw: &RawValue, from: &Arc<Upstream>) -> bool {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct H {
            number: alloy::primitives::U64,
            hash: String,
            parent_hash: String,
        }
        let Ok(h) = serde_json::from_str::<H>(raw.get()) else {
            return false;
        };
        if raw.get().contains(r#""transactions":"#) != self.bodies {
            self.bodies = !self.bodies;
        }
        let first = Head {
            number: h.number.to(),
            hash: h.hash.to_ascii_lowercase(),
            parent: h.parent_hash.to_ascii_lowercase(),
            json: Arc::from(raw.get()),
        };
        if self.position(&first.hash).is_some()
            || self.chain.front().is_some_and(|f| first.number < f.number)
        {
            // Sent already, or older than everything kept (a lagging upstream): nothing new.
            return true;
        }
        let mut branch = vec![first];
        // Walk back until the branch meets the chain (or the chain is empty, or too far).
        loop {
            let tip = &branch[branch.len() - 1];
            if self.chain.is_empty()
                || self.position(&tip.parent).is_some()
                || branch.len() >= KEEP
                || tip.number == 0
                || self.chain.front().is_some_and(|f| tip.number <= f.number)
            {
                break;
            }
            let parent = tip.parent.clone();
            let Some(block) = self.block_by_hash(&parent, from).await else {
                // Not applied: a gap emitted unfilled would skip heads. The next head (or the catch-up
                // after a move) walks again.
                tracing::warn!(
                    "feed: no upstream gave block {parent}; this head waits for the next one"
                );
                return false;
            };
            let head = self.as_head(&block);
            let Ok(p) = serde_json::from_str::<H>(head.get()) else {
                return false;
            };
            branch.push(Head {
                number: p.number.to(),
                hash: p.hash.to_ascii_lowercase(),
                parent: p.parent_hash.to_ascii_lowercase(),
                json: Arc::from(head.get()),
            });
        }
        branch.reverse();
        let filled = branch.len() - 1;
        // Where the branch joins: everything after it is off the chain now.
        let removed: Vec<Head> = match self.position(&branch[0].parent) {
            Some(at) => self.chain.drain(at + 1..).collect(),
            None => {
                // It does not join what is kept (a gap or a reorg deeper than that): the kept heads at
                // its numbers and above are replaced; those below are no ancestor it can show, and go
                // without being called removed.
                if !self.chain.is_empty() {
                    tracing::warn!(
                        "feed: the new heads do not join the last {} kept (a gap or reorg deeper than that); starting over",
                        self.chain.len()
                    );
                }
                let from_number = branch[0].number;
                let cut = self
                    .chain
                    .iter()
                    .position(|h| h.number >= from_number)
                    .unwrap_or(self.chain.len());
                let replaced = self.chain.drain(cut..).collect();
                self.chain.clear();
                replaced
            }
        };
        let m = &self.w.shared.metrics;
        if filled > 0 {
            m.feed_filled(filled as u64);
        }
        if !removed.is_empty() {
            m.feed_reorg();
            tracing::info!(
                depth = removed.len(),
                "feed: reorg; the new branch is emitted and removed logs are sent again"
            );
        }
        let notes: Vec<Arc<str>> = branch.iter().map(|h| h.json.clone()).collect();
        let added: Vec<(u64, String)> = branch.iter().map(|h| (h.number, h.hash.clone())).collect();
        self.chain.extend(branch);
        while self.chain.len() > KEEP {
            self.chain.pop_front();
        }
        // The cache sees the new chain before any subscriber hears of it: a client that reads after a
        // head it was told of never gets an answer from the branch that head replaced.
        self.publish();
        if !removed.is_empty() {
            let hashes = removed.into_iter().map(|h| h.hash).collect();
            let _ = self.logs.send(LogsMsg::Removed(hashes));
        }
        let subs = self.feeds().head_subscribers();
        for json in &notes {
            for (id, out) in &subs {
                out.send(note(*id, json));
            }
        }
        m.feed_heads(notes.len() as u64);
        let _ = self.logs.send(LogsMsg::Add(added));
        true
    }

    fn position(&self, hash: &str) -> Option<usize> {
        // Recent heads are the likely ones: search from the back.
        self.chain.iter().rposition(|h| h.hash == hash)
    }

    fn publish(&self) {
        let mut c = self
            .feeds()
            .canon
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.first = self.chain.front().map_or(0, |h| h.number);
        c.hashes = self.chain.iter().map(|h| h.hash.clone()).collect();
    }

    /// Asks for the finalized block now and then (the cache trusts numbers at or below it).
    async fn finalized(&mut self, upstream: &Arc<Upstream>) {
        if self
            .finalized_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(6))
        {
            return;
        }
        self.finalized_at = Some(Instant::now());
        let q = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["finalized",false]}"#;
        let n = match server::send(
            &self.w,
            upstream,
            axum::body::Bytes::from_static(q.as_bytes()),
        )
        .await
        {
            Ok(b) => serde_json::from_slice::<crate::rpc::Answer>(&b)
                .ok()
                .and_then(|a| a.result.map(|r| r.get().to_owned()))
                .and_then(|r| {
                    #[derive(serde::Deserialize)]
                    struct N {
                        number: alloy::primitives::U64,
                    }
                    serde_json::from_str::<N>(&r).ok()
                })
                .map(|n| n.number.to::<u64>()),
            Err(_) => None,
        };
        if let Some(n) = n {
            self.feeds()
                .canon
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .finalized = Some(n);
        }
    }
}

/// Every eligible upstream, `first` first (primaries before fallbacks, in the configured order).
fn order(w: &Worker, first: Option<&Arc<Upstream>>) -> Vec<Arc<Upstream>> {
    let s = w.shared.pool.snapshot();
    let mut out: Vec<Arc<Upstream>> = first.into_iter().cloned().collect();
    out.extend(
        w.shared
            .pool
            .candidates(&s, None, true)
            .into_iter()
            .map(|i| s.upstreams[i].clone())
            .filter(|u| first.is_none_or(|f| !Arc::ptr_eq(u, f))),
    );
    out
}

/// What the head feed tells the logs task.
enum LogsMsg {
    /// Canonical blocks (number, hash), oldest first.
    Add(Vec<(u64, String)>),
    /// Blocks a reorg took off the chain (hashes), oldest first.
    Removed(Vec<String>),
}

/// A block's delivered logs, each with the subscriptions it went to.
type Delivered = Vec<(Log, Vec<SubId>)>;

/// The logs task's state.
struct Logs {
    w: Worker,
    rx: tokio::sync::mpsc::UnboundedReceiver<LogsMsg>,
    /// Canonical blocks whose logs are not delivered yet, oldest first.
    due: VecDeque<(u64, String)>,
    /// The last [`KEEP_LOGS`] blocks' delivered logs, each with the subscriptions it went to: what a
    /// reorg sends again, as removed, to them.
    kept: VecDeque<(String, Delivered)>,
}

/// Delivers each canonical block's logs, oldest first; a block whose logs no upstream gives is asked
/// again (250 ms, doubling to 5 s) and the blocks after it wait.
async fn run_logs(mut l: Logs) {
    let mut wait = Duration::from_millis(250);
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let woke = match retry_at {
            Some(at) => tokio::select! {
                m = l.rx.recv() => Some(m),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(l.rx.recv().await),
        };
        let front = l.due.front().map(|(_, h)| h.clone());
        match woke {
            // The feed is gone.
            Some(None) => return,
            Some(Some(m)) => l.take(m),
            None => {}
        }
        while let Ok(m) = l.rx.try_recv() {
            l.take(m);
        }
        // The block that failed was taken off by a reorg (or nothing is due): no reason to wait.
        if l.due.front().map(|(_, h)| h) != front.as_ref() {
            retry_at = None;
            wait = Duration::from_millis(250);
        }
        if l.w.shared.feeds.counts().1 == 0 {
            l.due.clear();
            retry_at = None;
            continue;
        }
        if l.due.is_empty() || retry_at.is_some_and(|at| tokio::time::Instant::now() < at) {
            continue;
        }
        if l.deliver().await {
            retry_at = None;
            wait = Duration::from_millis(250);
        } else {
            l.w.shared.metrics.feed_logs_retry();
            retry_at = Some(tokio::time::Instant::now() + wait);
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

impl Logs {
    fn take(&mut self, m: LogsMsg) {
        match m {
            LogsMsg::Add(blocks) => {
                if self.w.shared.feeds.counts().1 > 0 {
                    self.due.extend(blocks);
                }
            }
            LogsMsg::Removed(hashes) => {
                let subs = self.w.shared.feeds.log_subscribers();
                let by_id: HashMap<SubId, &Out> =
                    subs.iter().map(|(id, out, _)| (*id, out)).collect();
                for hash in hashes {
                    // Not delivered yet: never will be.
                    self.due.retain(|(_, h)| *h != hash);
                    let Some(at) = self.kept.iter().position(|(h, _)| *h == hash) else {
                        continue;
                    };
                    let Some((_, logs)) = self.kept.remove(at) else {
                        continue;
                    };
                    for (log, to) in logs {
                        let again = log.removed();
                        for id in to {
                            if let Some(out) = by_id.get(&id) {
                                out.send(note(id, &again));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Delivers the blocks due; false when one's logs could not be had (it stays first).
    async fn deliver(&mut self) -> bool {
        while let Some((number, hash)) = self.due.front().cloned() {
            let Some(logs) = block_logs(&self.w, &hash).await else {
                tracing::warn!(
                    block = number,
                    "feed: no upstream gave this block's logs; logs subscriptions wait for it"
                );
                return false;
            };
            let subs = self.w.shared.feeds.log_subscribers();
            let mut kept = Vec::new();
            for log in logs {
                let mut to = Vec::new();
                for (id, out, f) in &subs {
                    if f.matches(&log.address, &log.topics) {
                        out.send(note(*id, &log.json));
                        to.push(*id);
                    }
                }
                if !to.is_empty() {
                    kept.push((log, to));
                }
            }
            self.due.pop_front();
            self.kept.push_back((hash, kept));
            while self.kept.len() > KEEP_LOGS {
                self.kept.pop_front();
            }
        }
        true
    }
}

/// The logs of block `hash`, from the first upstream that shows it has the block: asked together with
/// the block, because some nodes answer `eth_getLogs` for a block hash they do not know with `[]` (anvil
/// before foundry#14371, reth before reth#7374), which would look like "no logs".
async fn block_logs(w: &Worker, hash: &str) -> Option<Vec<Log>> {
    let q = format!(
        r#"[{{"jsonrpc":"2.0","id":0,"method":"eth_getBlockByHash","params":["{hash}",false]}},{{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{{"blockHash":"{hash}"}}]}}]"#
    );
    for u in order(w, None) {
        let Ok(bytes) = server::send(w, &u, axum::body::Bytes::from(q.clone())).await else {
            continue;
        };
        let Ok(replies) = serde_json::from_slice::<Vec<crate::rpc::Reply>>(&bytes) else {
            continue;
        };
        let part = |id: &str| {
            replies
                .iter()
                .find(|r| r.id.is_some_and(|i| i.get() == id))
                .filter(|r| r.error.is_none())
                .and_then(|r| r.result)
        };
        let (Some(_block), Some(logs)) = (part("0"), part("1")) else {
            continue;
        };
        if let Ok(raw) = serde_json::from_str::<Vec<&RawValue>>(logs.get()) {
            return Some(raw.into_iter().filter_map(Log::read).collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn filters_match_addresses_and_topics_by_position() {
        let f = Filter::parse(Some(&raw(
            r#"{"address":["0xAB","0xcd"],"topics":[null,["0x01","0x02"]]}"#,
        )))
        .unwrap();
        let t = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(f.matches("0xab", &t(&["0xff", "0x02"])));
        assert!(!f.matches("0xab", &t(&["0xff", "0x03"])));
        assert!(!f.matches("0xab", &t(&["0xff"])), "topic 1 is missing");
        assert!(!f.matches("0xee", &t(&["0xff", "0x01"])));
        assert!(Filter::parse(None).unwrap().matches("0xee", &[]));
        assert!(Filter::parse(Some(&raw(r#"{"fromBlock":"0x1"}"#))).is_err());
        assert!(Filter::parse(Some(&raw(r#"{"topics":[null,null,null,null,null]}"#))).is_err());
    }

    #[test]
    fn subscription_kinds_are_read_and_the_mempool_is_refused() {
        assert_eq!(Kind::parse(&raw(r#"["newHeads"]"#)), Ok(Kind::Heads));
        assert_eq!(
            Kind::parse(&raw(r#"["newPendingTransactions"]"#)),
            Ok(Kind::Pending)
        );
        assert!(Kind::parse(&raw(r#"["newPendingTransactions",true]"#)).is_err());
        assert!(Kind::parse(&raw(r#"["syncing"]"#)).is_err());
        assert!(matches!(
            Kind::parse(&raw(r#"["logs",{"address":"0x01"}]"#)),
            Ok(Kind::Logs(_))
        ));
    }

    #[test]
    fn the_canon_knows_recent_hashes_and_trusts_final_blocks() {
        let c = Canon {
            first: 100,
            hashes: ["0xa", "0xb", "0xc"].map(String::from).into(),
            finalized: Some(90),
            live: true,
        };
        assert_eq!(c.head(), Some(102));
        assert_eq!(c.holds(101, "0xB"), Some(true));
        assert_eq!(c.holds(101, "0xc"), Some(false));
        assert_eq!(c.holds(80, "0xanything"), Some(true), "final");
        assert_eq!(c.holds(95, "0xanything"), None, "not final, not kept");
        assert_eq!(c.holds(103, "0xd"), None, "not seen yet");
    }
}
