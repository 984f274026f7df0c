//! A JSON-RPC upstream that answers instantly with a fixed result (echoing the request's id), for the
//! gateway benchmark: `cargo run --release --example fixed_upstream -- PORT`. `eth_getBlockByNumber`
//! gets a block whose timestamp is an hour ahead, so the gateway's head tracker keeps it eligible for the
//! whole run; anything else gets `"0x1"`.

use axum::body::Bytes;
use axum::routing::post;
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
    let answer = move |r: &Req| {
        let id = r.id.map_or("null", |i| i.get());
        let result = if r.method == "eth_getBlockByNumber" {
            block
        } else {
            "\"0x1\""
        };
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
    };
    let app = axum::Router::new().route(
        "/",
        post(move |body: Bytes| async move {
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
