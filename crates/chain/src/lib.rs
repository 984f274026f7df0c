//! An endpoint's head, the way every part of ethnode asks for it (the agent's readiness, the lag
//! monitor, the gateway): one `eth_getBlockByNumber` for the latest block's number, hash and timestamp,
//! with its latency, and errors that never carry the secret part of a URL; and [`track`], the same
//! question asked on a schedule (with [`track_heads`], also a `newHeads` subscription), for whoever
//! routes by head.

pub use alloy::eips::BlockNumberOrTag;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::RpcClient;
use alloy::transports::http::Http;
use ethnode_config::redact_urls_in;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A block's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHead {
    /// Number.
    pub number: u64,
    /// Hash, 0x-hex.
    pub hash: String,
    /// Timestamp, unix seconds.
    pub timestamp: u64,
    /// Its parent's hash, 0x-hex (empty where it was not asked: records written before it was kept).
    #[serde(default)]
    pub parent_hash: String,
}

/// What one endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its head, or why not.
    pub head: Result<BlockHead, String>,
    /// Round-trip time.
    pub latency: Duration,
}

pub use alloy::providers::RootProvider as Client;

/// A read-only JSON-RPC client with a request timeout.
pub fn client(url: &str, timeout: Duration) -> Result<RootProvider, String> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    client_with(&http, url)
}

/// A read-only JSON-RPC client on a shared HTTP client (its timeouts apply).
pub fn client_with(http: &reqwest::Client, url: &str) -> Result<RootProvider, String> {
    let parsed = url
        .parse()
        .map_err(|_| format!("{} is not a URL", ethnode_config::redact_url(url)))?;
    Ok(RootProvider::new(RpcClient::new(
        Http::with_client(http.clone(), parsed),
        false,
    )))
}

/// Asks for the latest block; errors carry no URL (it may hold an API key).
pub async fn latest(provider: &RootProvider) -> Answer {
    block(provider, BlockNumberOrTag::Latest).await
}

/// Asks for one block by number.
pub async fn block(provider: &RootProvider, which: BlockNumberOrTag) -> Answer {
    let start = Instant::now();
    let head = match provider.get_block_by_number(which).await {
        Ok(Some(b)) => Ok(BlockHead {
            number: b.header.number,
            hash: b.header.hash.to_string(),
            timestamp: b.header.timestamp,
            parent_hash: b.header.parent_hash.to_string(),
        }),
        Ok(None) => Err("no such block".to_string()),
        Err(e) => Err(ethnode_config::redact_urls_in(&e.to_string())),
    };
    Answer {
        head,
        latency: start.elapsed(),
    }
}

/// What is known of an endpoint over time.
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// The last head it answered with.
    pub head: Option<BlockHead>,
    /// When that answer came.
    pub seen_at: Option<Instant>,
    /// The last question was answered.
    pub healthy: bool,
    /// Why the last question was not answered.
    pub last_error: Option<String>,
    /// Round-trip time of the last answer.
    pub latency: Option<Duration>,
    /// Questions not answered, in all.
    pub errors: u64,
}

/// Asks `provider` for its head every `every` until the receiver is dropped; the answers go to the
/// returned receiver. A head never observed stays `None` (never "block 0").
pub fn track(
    provider: RootProvider,
    every: Duration,
) -> (
    tokio::sync::watch::Receiver<Tracked>,
    tokio::task::JoinHandle<()>,
) {
    track_heads(provider, None, every)
}

/// [`track`], and when `ws` is given also a `newHeads` subscription there: a new head is known the moment
/// the node has it, not a poll later. The polls go on: they say the node answers (a subscription says
/// nothing between blocks) and stand in while the socket is down (it is opened again every five polls).
pub fn track_heads(
    provider: RootProvider,
    ws: Option<String>,
    every: Duration,
) -> (
    tokio::sync::watch::Receiver<Tracked>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(Tracked::default());
    let subscribed = std::sync::atomic::AtomicBool::new(false);
    let task = tokio::spawn(async move {
        let poll = async {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let answer = latest(&provider).await;
                let live = subscribed.load(std::sync::atomic::Ordering::Relaxed);
                tx.send_modify(|t| match answer.head {
                    Ok(h) => {
                        // A poll that started before the subscription's newest head is older news.
                        if !live || t.head.as_ref().is_none_or(|cur| h.number >= cur.number) {
                            t.head = Some(h);
                        }
                        t.seen_at = Some(Instant::now());
                        t.healthy = true;
                        t.last_error = None;
                        t.latency = Some(answer.latency);
                    }
                    Err(e) => {
                        t.healthy = false;
                        t.last_error = Some(e);
                        t.errors += 1;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        };
        let subscribe = async {
            let Some(url) = ws else {
                return std::future::pending().await;
            };
            loop {
                if let Err(e) = new_heads(&url, &tx, &subscribed).await {
                    tracing::debug!(error = %redact_urls_in(&e), "newHeads subscription ended; polling alone");
                }
                subscribed.store(false, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(every * 5).await;
            }
        };
        tokio::select! {
            () = poll => {}
            () = subscribe => {}
        }
    });
    (rx, task)
}

/// Follows `newHeads` on `url` into `tx` until the socket ends.
async fn new_heads(
    url: &str,
    tx: &tokio::sync::watch::Sender<Tracked>,
    subscribed: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    #[derive(Deserialize)]
    struct Note {
        params: NoteParams,
    }
    #[derive(Deserialize)]
    struct NoteParams {
        result: Header,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header {
        number: alloy::primitives::U64,
        hash: String,
        parent_hash: String,
        timestamp: alloy::primitives::U64,
    }
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| "WebSocket open timed out".to_string())?
    .map_err(|e| e.to_string())?;
    ws.send(Message::Text(
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#.into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    while let Some(m) = ws.next().await {
        let text = match m.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(n) = serde_json::from_str::<Note>(text.as_str()) else {
            // The subscription's confirmation, or an error answer.
            if text.as_str().contains("\"error\"") {
                return Err(format!("eth_subscribe refused: {}", text.as_str()));
            }
            subscribed.store(true, std::sync::atomic::Ordering::Relaxed);
            continue;
        };
        let h = n.params.result;
        tx.send_modify(|t| {
            t.head = Some(BlockHead {
                number: h.number.to(),
                hash: h.hash,
                timestamp: h.timestamp.to(),
                parent_hash: h.parent_hash,
            });
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_lose_the_secret_part_of_urls() {
        let m = ethnode_config::redact_urls_in(
            "error sending request for url (https://mainnet.infura.io/v3/SECRET)",
        );
        assert!(!m.contains("SECRET"), "{m}");
        assert!(m.contains("https://mainnet.infura.io/…"), "{m}");
    }
}
