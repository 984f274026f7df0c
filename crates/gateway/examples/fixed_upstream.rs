//! A JSON-RPC upstream that answers instantly with a fixed result (echoing the request's id), for the
//! gateway benchmark: `cargo run --release --example fixed_upstream -- PORT`. `eth_getBlockByNumber` and
//! `eth_getBlockByHash` get a block whose timestamp is an hour ahead, so the gateway's head tracker keeps
//! it eligible for the whole run; `bench_requests` gets how many requests (batch items counted) it has
//! answered, so that the benchmark can tell a cache from a forwarder; anything else gets `"0x1"`. Its
//! WebSocket confirms subscriptions and sends nothing.

use axum::body::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Req<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: &'a str,
}

fn block() -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let z32 = format!("0x{}", "00".repeat(32));
    serde_json::json!({
        "hash": format!("0x{}", "11".repeat(32)), "parentHash": z32, "sha3Uncles": z32,
        "miner": format!("0x{}", "00".repeat(20)), "stateRoot": z32, "transactionsRoot": z32,
        "receiptsRoot": z32, "logsBloom": format!("0x{}", "00".repeat(256)), "difficulty": "0x0",
        "number": "0x64", "gasLimit": "0x1c9c380", "gasUsed": "0x0", "timestamp": format!("0x{ts:x}"),
        "extraData": "0x", "mixHash": z32, "nonce": "0x0000000000000000", "baseFeePerGas": "0x7",
        "uncles": [], "transactions": [], "size": "0x200"
    })
    .to_string()
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: fixed_upstream PORT");
    let block: &'static str = Box::leak(block().into_boxed_str());
    static ANSWERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let answer = move |r: &Req| {
        let id = r.id.map_or("null", |i| i.get());
        let n = ANSWERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if r.method == "bench_requests" {
            return format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{n}}}"#);
        }
        // By hash too: the cached row asks for a block by hash (a realistic answer's size).
        let result = if matches!(r.method, "eth_getBlockByNumber" | "eth_getBlockByHash") {
            block
        } else {
            "\"0x1\""
        };
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
    };
    // A WebSocket that confirms subscriptions and never notifies (the head never moves): the gateway's
    // feed follows it, so that its cache knows the head and the finalized block (this same block).
    let subscriptions = axum::routing::get(|ws: axum::extract::ws::WebSocketUpgrade| async move {
        ws.on_upgrade(|mut socket| async move {
            use axum::extract::ws::Message;
            while let Some(Ok(Message::Text(t))) = socket.recv().await {
                let Ok(r) = serde_json::from_str::<Req>(t.as_str()) else {
                    continue;
                };
                let id = r.id.map_or("null", |i| i.get());
                let a = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"0x1"}}"#);
                if socket.send(Message::Text(a.into())).await.is_err() {
                    return;
                }
            }
        })
    });
    let app = axum::Router::new().route(
        "/",
        subscriptions.post(move |body: Bytes| async move {
            // A batch gets an array of answers, as a node gives.
            let text = if let Ok(batch) = serde_json::from_slice::<Vec<Req>>(&body) {
                format!(
                    "[{}]",
                    batch.iter().map(answer).collect::<Vec<_>>().join(",")
                )
            } else if let Ok(r) = serde_json::from_slice::<Req>(&body) {
                answer(&r)
            } else {
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
                    .to_string()
            };
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                text,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
