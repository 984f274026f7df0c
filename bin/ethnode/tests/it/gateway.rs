//! `ethnode gateway` against real nodes (anvil) and real clients (cast, web3.py): keys, JSON-RPC 2.0
//! parsing, method policy and limits; a lagging node gets no traffic; a node killed under load loses no
//! request.

use crate::harness::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A process killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An anvil on a free port with `extra` flags, answering: its process, port and URL.
pub async fn node(extra: &[&str]) -> (Proc, u16, String) {
    let port = free_port();
    let proc = Proc(
        Command::new(tool("anvil"))
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("start anvil"),
    );
    let url = format!("http://127.0.0.1:{port}/");
    wait_for("node answers", Duration::from_secs(20), || async {
        rpc(&url, "eth_blockNumber", json!([])).await
    })
    .await;
    (proc, port, url)
}

/// `ethnode gateway` on a free port in front of `upstreams`, answering; returns it and its URL.
pub async fn gateway(
    dir: &std::path::Path,
    upstreams: &[String],
    extra: &[&str],
) -> (Ethnode, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "gateway",
        "--listen",
        &listen,
        "--poll-ms",
        "200",
        "--debug-header",
    ];
    for u in upstreams {
        args.extend(["--upstream", u.as_str()]);
    }
    args.extend(extra);
    let g = Ethnode::spawn(dir, &args, &[]);
    let url = format!("http://{listen}/");
    (g, url)
}

pub async fn post(
    url: &str,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, String, Option<String>) {
    let mut r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(5))
        .body(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let Ok(r) = r.send().await else {
        return (0, String::new(), None);
    };
    let upstream = r
        .headers()
        .get("x-ethnode-upstream")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (r.status().as_u16(), r.text().await.unwrap(), upstream)
}

/// Waits until the gateway at `url` answers `call` with a result (its first head poll found a node).
pub async fn serving(url: &str, key: Option<&str>, call: &str) {
    wait_for("gateway serves", Duration::from_secs(20), || async {
        let (code, body, _) = post(url, key, call.to_owned()).await;
        (code == 200 && body.contains("result")).then_some(())
    })
    .await;
}

const WEB3: &str = r#"
import json, sys
from web3 import Web3
w3 = Web3(Web3.HTTPProvider(sys.argv[1], request_kwargs={"headers": {"Authorization": "Bearer " + sys.argv[2]}}))
block = w3.eth.get_block("latest")
with w3.batch_requests() as batch:
    batch.add(w3.eth.get_block(1))
    batch.add(w3.eth.get_balance("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"))
    one, balance = batch.execute()
print(json.dumps({"latest": block["number"], "one": one["number"], "balance": balance, "chain": w3.eth.chain_id}))
"#;

/// Real clients use the gateway unchanged; every bad input gets its standard answer and the gateway goes
/// on serving.
#[tokio::test]
async fn real_clients_through_the_gateway_and_every_bad_input_answered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_anvil, _, node) = node(&[]).await;
    rpc(&node, "anvil_mine", json!(["0x5"])).await.unwrap();
    let (_g, url) = gateway(
        d,
        &[node],
        &[
            "--key",
            "s3cret",
            "--max-batch",
            "10",
            "--max-body-bytes",
            "4096",
        ],
    )
    .await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    serving(&url, Some("s3cret"), call).await;

    // cast, with the key in the path.
    let out = Command::new(tool("cast"))
        .args(["block-number", "--rpc-url", &format!("{url}v1/s3cret")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(n >= 5);
    // web3.py, with the key as a bearer token: a call and a batch.
    std::fs::write(d.join("w3.py"), WEB3).unwrap();
    let out = Command::new(tool("python"))
        .args([d.join("w3.py").to_str().unwrap(), &url, "s3cret"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w3: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        w3["latest"].as_u64().unwrap() >= 5 && w3["one"] == json!(1) && w3["chain"] == json!(31337),
        "{w3}"
    );
    assert!(w3["balance"].as_f64().unwrap() > 0.0, "{w3}");

    // Keys.
    assert_eq!(post(&url, None, call).await.0, 401);
    let (code, body, _) = post(&url, Some("wrong"), call).await;
    assert!(
        code == 401 && body.contains("Authorization: Bearer KEY"),
        "{body}"
    );
    // JSON-RPC 2.0: parse error, invalid requests, notifications.
    let k = Some("s3cret");
    let parse = |b: &str| serde_json::from_str::<Value>(b).unwrap();
    let (_, body, _) = post(&url, k, "{not json").await;
    assert_eq!(parse(&body)["error"]["code"], json!(-32700));
    let (_, body, _) = post(&url, k, "[1,2,3]").await;
    let errors = parse(&body);
    assert_eq!(errors.as_array().unwrap().len(), 3);
    assert!(
        errors
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["error"]["code"] == json!(-32600))
    );
    let (_, body, _) = post(&url, k, "[]").await;
    assert_eq!(parse(&body)["error"]["code"], json!(-32600));
    let (code, body, _) = post(&url, k, r#"{"jsonrpc":"2.0","method":"eth_blockNumber"}"#).await;
    assert_eq!(
        (code, body.as_str()),
        (204, ""),
        "a notification gets no answer"
    );
    // Policy and limits.
    let (_, body, _) = post(
        &url,
        k,
        r#"{"jsonrpc":"2.0","id":9,"method":"debug_traceTransaction","params":["0x00"]}"#,
    )
    .await;
    let e = parse(&body);
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!(9), json!(-32601)),
        "{e}"
    );
    let (_, body, _) = post(
        &url,
        k,
        r#"{"jsonrpc":"2.0","id":3,"method":"eth_sendTransaction","params":[{}]}"#,
    )
    .await;
    assert_eq!(
        parse(&body)["error"]["code"],
        json!(-32601),
        "node-signing is refused"
    );
    // A member a case-insensitive upstream decoder would take for `method`.
    let (_, body, _) = post(
        &url,
        k,
        r#"{"jsonrpc":"2.0","id":4,"method":"eth_chainId","METHOD":"debug_traceTransaction"}"#,
    )
    .await;
    assert_eq!(parse(&body)["error"]["code"], json!(-32600));
    // The auth scheme is case-insensitive.
    let lower = reqwest::Client::new()
        .post(&url)
        .header("authorization", "bearer s3cret")
        .header("content-type", "application/json")
        .body(call)
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    let mixed = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"admin_peers"},7]"#;
    let (_, body, _) = post(&url, k, mixed).await;
    let answers = parse(&body);
    let by_id = |id: Value| {
        answers
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(json!(1))["result"], json!("0x7a69"));
    assert_eq!(by_id(json!(2))["error"]["code"], json!(-32601));
    assert_eq!(answers.as_array().unwrap().len(), 3);
    // Repeated ids, and an id a node would rewrite: each answer under its request's own id, in order.
    let (_, body, _) = post(
        &url,
        k,
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":1,"method":"net_version"},{"jsonrpc":"2.0","id":1.0,"method":"eth_chainId"}]"#,
    )
    .await;
    assert!(
        body.starts_with(r#"[{"jsonrpc":"2.0","id":1,"result":"0x7a69"},{"jsonrpc":"2.0","id":1,"result":"31337"},{"jsonrpc":"2.0","id":1.0,"result":"0x7a69"}]"#),
        "{body}"
    );
    let long = format!("[{}]", [call; 11].join(","));
    let (_, body, _) = post(&url, k, long).await;
    assert_eq!(parse(&body)["error"]["code"], json!(-32005));
    assert_eq!(post(&url, k, vec![b' '; 5000]).await.0, 413);
    // Still serving.
    let (code, body, _) = post(&url, k, call).await;
    assert!(code == 200 && parse(&body)["result"].is_string(), "{body}");
}

/// A parent anvil that mines only when told (three blocks in), a fork of it frozen at that head
/// (`anvil --fork-url PARENT --no-mining`), and a gateway over both with `--max-lag-blocks 2`: the nodes,
/// the gateway (without a cache unless `cache`), the parent's URL, both ports and the gateway's URL.
pub async fn parent_and_fork(
    dir: &std::path::Path,
    cache: bool,
) -> ([Proc; 2], Ethnode, String, (u16, u16), String) {
    let (parent_proc, p, parent) = node(&["--no-mining"]).await;
    rpc(&parent, "anvil_mine", json!(["0x3"])).await.unwrap();
    let (fork_proc, f, fork) = node(&["--no-mining", "--fork-url", &parent]).await;
    let mut extra = vec!["--max-lag-blocks", "2"];
    if !cache {
        // Every answer from a node: what these tests check is which one.
        extra.extend(["--cache-mb", "0"]);
    }
    let (g, url) = gateway(dir, &[parent.clone(), fork], &extra).await;
    ([parent_proc, fork_proc], g, parent, (p, f), url)
}

/// Two nodes on one chain both serve; when the chain moves more than `--max-lag-blocks` past one of them
/// (a fork frozen with `anvil --fork-url PARENT --no-mining`), it gets no more traffic.
#[tokio::test]
async fn a_lagging_node_gets_no_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, _g, parent, (p, f), url) = parent_and_fork(dir.path(), false).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    let (pp, fp) = (format!(":{p}"), format!(":{f}"));
    // At the same head, both answer.
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    wait_for("both nodes serve", Duration::from_secs(20), || async {
        if let (200, _, Some(u)) = post(&url, None, call).await {
            let who = if u.contains(&pp) {
                "parent"
            } else if u.contains(&fp) {
                "fork"
            } else {
                "?"
            };
            seen.lock().unwrap().insert(who);
        }
        let s = seen.lock().unwrap();
        (s.contains("parent") && s.contains("fork")).then_some(())
    })
    .await;
    // The chain moves three blocks past the fork.
    rpc(&parent, "anvil_mine", json!(["0x3"])).await.unwrap();
    wait_for(
        "the lagging node is out",
        Duration::from_secs(5),
        || async {
            let mut only_parent = true;
            for _ in 0..4 {
                only_parent &= post(&url, None, call)
                    .await
                    .2
                    .is_some_and(|u| u.contains(&pp));
            }
            only_parent.then_some(())
        },
    )
    .await;
    for _ in 0..30 {
        let (code, _, upstream) = post(&url, None, call).await;
        assert_eq!(code, 200);
        assert!(
            upstream.as_deref().is_some_and(|u| u.contains(&pp)),
            "{upstream:?} answered"
        );
    }
}

/// A fallback serves only while no node is at head, and stays usable between its once-a-slot polls.
#[tokio::test]
async fn a_fallback_serves_when_no_node_is_at_head() {
    let dir = tempfile::tempdir().unwrap();
    let (_anvil, a, provider) = node(&[]).await;
    // The node: nothing listens there.
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let (_g, url) = gateway(dir.path(), &[dead], &["--fallback", &provider]).await;
    // Not one the cache keeps: each is the fallback's answer.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_gasPrice","params":[]}"#;
    wait_for("the fallback serves", Duration::from_secs(20), || async {
        (post(&url, None, call).await.0 == 200).then_some(())
    })
    .await;
    // Well past three of the node's polls: the fallback, polled once a slot, is still eligible.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut served = 0;
    while std::time::Instant::now() < until {
        let (code, body, upstream) = post(&url, None, call).await;
        assert_eq!(code, 200, "{body}");
        assert!(upstream.is_some_and(|u| u.contains(&format!(":{a}"))));
        served += 1;
    }
    assert!(served > 10);
    // A notification gets no answer even when it cannot be served.
    let (_g2, lonely) = gateway(
        dir.path(),
        &[format!("http://127.0.0.1:{}/", free_port())],
        &[],
    )
    .await;
    wait_for(
        "the lonely gateway listens",
        Duration::from_secs(20),
        || async { (post(&lonely, None, call).await.0 == 503).then_some(()) },
    )
    .await;
    let (code, body, _) = post(&lonely, None, r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#).await;
    assert_eq!((code, body.as_str()), (204, ""));
}

/// A plain TCP forwarder: two of them in front of one anvil are two upstreams on one chain, and killing
/// one kills that upstream's connections at once, like a node dying.
const FORWARDER: &str = r#"
import asyncio, sys
listen, target = int(sys.argv[1]), int(sys.argv[2])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", target)
    except Exception:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

/// A forwarder from `listen` to `target` on 127.0.0.1, its script written in `dir`.
pub fn forwarder(dir: &std::path::Path, listen: u16, target: u16) -> Proc {
    let script = dir.join("fwd.py");
    std::fs::write(&script, FORWARDER).unwrap();
    Proc(
        Command::new(tool("python"))
            .args([
                script.to_str().unwrap(),
                &listen.to_string(),
                &target.to_string(),
            ])
            .spawn()
            .unwrap(),
    )
}

/// Load running through the gateway over two upstreams; one is killed: no request fails.
#[tokio::test]
async fn killing_a_node_under_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_anvil, a, _) = node(&["--block-time", "1"]).await;
    let forwarder = |port: u16| forwarder(d, port, a);
    let (p1, p2) = (free_port(), free_port());
    let mut first = forwarder(p1);
    let _second = forwarder(p2);
    let ups = [
        format!("http://127.0.0.1:{p1}/"),
        format!("http://127.0.0.1:{p2}/"),
    ];
    for u in &ups {
        wait_for("forwarder answers", Duration::from_secs(20), || async {
            rpc(u, "eth_blockNumber", json!([])).await
        })
        .await;
    }
    let (_g, url) = gateway(d, &ups, &[]).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    serving(&url, None, call).await;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut failed, mut done, mut last, mut backwards) = (0, 0, 0, 0);
                for _ in 0..60 {
                    let (code, body, _) = post(&url, None, call).await;
                    let n = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                        u64::from_str_radix(v["result"].as_str()?.trim_start_matches("0x"), 16).ok()
                    });
                    if code != 200 || n.is_none() {
                        failed += 1;
                    }
                    if let Some(n) = n {
                        backwards += usize::from(n < last);
                        last = last.max(n);
                    }
                    done += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                (failed, done, backwards)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.0.kill().unwrap();
    let mut totals = (0, 0, 0);
    for w in workers {
        let (f, n, b) = w.await.unwrap();
        totals = (totals.0 + f, totals.1 + n, totals.2 + b);
    }
    assert_eq!(totals.1, 8 * 60);
    assert_eq!(totals.0, 0, "failed requests");
    assert_eq!(totals.2, 0, "eth_blockNumber went backwards");
}

pub fn result_number(body: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(body).ok()?;
    let r = &v["result"];
    let hex = r.as_str().or_else(|| r["number"].as_str())?;
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok()
}

/// A node one block behind stays eligible for what it has, but `latest` (pinned to the tip), `eth_getLogs`
/// up to the tip and blocks it lacks go only to the node that has them; when it catches up it serves
/// `latest` again.
#[tokio::test]
async fn latest_logs_and_new_blocks_only_from_a_node_that_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, _g, parent, (p, f), url) = parent_and_fork(dir.path(), false).await;
    let fork = format!("http://127.0.0.1:{f}/");
    let (pp, fp) = (format!(":{p}"), format!(":{f}"));
    let latest =
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["latest",false]}"#;
    let old = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x2",false]}"#;
    let logs = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x1"}]}"#;
    let from = |u: &Option<String>, port: &str| u.as_deref().is_some_and(|u| u.contains(port));
    // One block past the fork: within the lag, so the fork still serves what it has.
    rpc(&parent, "anvil_mine", json!(["0x1"])).await.unwrap();
    wait_for(
        "the gateway sees the tip",
        Duration::from_secs(20),
        || async {
            let (_, body, _) = post(&url, None, latest).await;
            (result_number(&body) == Some(4)).then_some(())
        },
    )
    .await;
    let mut fork_served_old = false;
    for _ in 0..20 {
        let (code, body, u) = post(&url, None, latest).await;
        assert_eq!((code, result_number(&body)), (200, Some(4)), "{body}");
        assert!(from(&u, &pp), "latest from {u:?}, which lacks block 4");
        let (code, body, u) = post(&url, None, logs).await;
        assert!(code == 200 && body.contains("result"), "{body}");
        assert!(from(&u, &pp), "eth_getLogs to the tip from {u:?}");
        let (_, body, u) = post(&url, None, old).await;
        assert_eq!(result_number(&body), Some(2));
        fork_served_old |= from(&u, &fp);
    }
    assert!(
        fork_served_old,
        "a node one block behind still serves the blocks it has"
    );
    // A range past the tip is refused, not answered with an empty list.
    let (_, body, _) = post(
        &url,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x1","toBlock":"0x64"}]}"#,
    )
    .await;
    assert!(body.contains("past the chain head"), "{body}");
    // The fork catches up: it serves latest again.
    rpc(&fork, "anvil_mine", json!(["0x1"])).await.unwrap();
    wait_for(
        "the fork serves latest again",
        Duration::from_secs(10),
        || async {
            let (_, _, u) = post(&url, None, latest).await;
            from(&u, &fp).then_some(())
        },
    )
    .await;
}

/// Keys from ethnode.toml (as hashes) with a method allowlist and a rate; flag keys beside them; a
/// raw transaction sent twice is one success; metrics count it all by key and never show a key.
#[tokio::test]
async fn keys_allowlists_rates_raw_transactions_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_anvil, _, node_url) = node(&[]).await;
    let hash = |k: &str| -> String {
        ethnode_gateway::key_hash(k)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    std::fs::write(
        d.join("ethnode.toml"),
        format!(
            r#"
[gateway]
rate_per_sec = 1000
[[gateway.keys]]
name = "reader"
sha256 = "{}"
methods = ["eth_get*", "eth_chainId"]
[[gateway.keys]]
name = "slow"
sha256 = "{}"
rate_per_sec = 1
burst = 3
"#,
            hash("reader-key"),
            hash("slow-key")
        ),
    )
    .unwrap();
    let (_g, url) = gateway(d, &[node_url], &["--key", "flag-key"]).await;
    let chain = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    serving(&url, Some("reader-key"), chain).await;
    // The allowlist.
    let (_, body, _) = post(
        &url,
        Some("reader-key"),
        r#"{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}"#,
    )
    .await;
    assert!(
        body.contains("-32601") && body.contains("not allowed for this API key"),
        "{body}"
    );
    let (code, body, _) = post(
        &url,
        Some("flag-key"),
        r#"{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}"#,
    )
    .await;
    assert!(code == 200 && body.contains("result"), "{body}");
    // The rate: a burst of 3, then 429 with Retry-After; other keys go on.
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(post(&url, Some("slow-key"), chain).await.0);
    }
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    assert!(codes[3..].contains(&429), "{codes:?}");
    let limited = reqwest::Client::new()
        .post(&url)
        .bearer_auth("slow-key")
        .header("content-type", "application/json")
        .body(chain)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    let body = limited.text().await.unwrap();
    assert!(
        body.contains("-32005") && body.contains("retry after"),
        "{body}"
    );
    assert_eq!(post(&url, Some("reader-key"), chain).await.0, 200);
    // A raw transaction sent twice (a retry after a lost answer): both answers are its hash.
    let signed = Command::new(tool("cast"))
        .args([
            "mktx",
            "--rpc-url",
            &format!("{url}v1/flag-key"),
            "--private-key",
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "--value",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let raw = String::from_utf8_lossy(&signed.stdout).trim().to_string();
    let send = json!({"jsonrpc":"2.0","id":5,"method":"eth_sendRawTransaction","params":[raw]})
        .to_string();
    let (_, first, _) = post(&url, Some("flag-key"), send.clone()).await;
    let (_, second, _) = post(&url, Some("flag-key"), send).await;
    let h1 = serde_json::from_str::<Value>(&first).unwrap()["result"].clone();
    assert!(h1.is_string(), "{first}");
    assert_eq!(
        serde_json::from_str::<Value>(&second).unwrap()["result"],
        h1,
        "{second}"
    );
    // A batch larger than the burst can never pass: it says so, per request.
    let big = format!("[{}]", [chain; 4].join(","));
    let (code, body, _) = post(&url, Some("slow-key"), big).await;
    assert_eq!(code, 429);
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(
        answers.len() == 4
            && answers.iter().all(|a| a["error"]["message"]
                .as_str()
                .unwrap()
                .contains("burst of 3")),
        "{body}"
    );
    // Metrics: for key holders, by key name, never the key.
    let metrics = format!("{url}metrics");
    assert_eq!(reqwest::get(&metrics).await.unwrap().status().as_u16(), 401);
    let m = reqwest::Client::new()
        .get(&metrics)
        .bearer_auth("flag-key")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"key="reader""#) && m.contains(r#"key="slow""#) && m.contains(r#"key="key1""#),
        "{m}"
    );
    assert!(
        m.contains(r#"outcome="limited""#) || m.contains(r#"outcome="refused""#),
        "{m}"
    );
    assert!(m.contains("ethnode_gateway_upstream_head"), "{m}");
    for secret in ["reader-key", "slow-key", "flag-key"] {
        assert!(!m.contains(secret));
    }
}

const VIEM: &str = r#"
const { createPublicClient, http, webSocket } = require('viem');
(async () => {
  const h = createPublicClient({ transport: http(process.argv[2], { batch: true }) });
  // Two calls in one tick: one HTTP batch.
  const [n, chain] = await Promise.all([h.getBlockNumber(), h.getChainId()]);
  const ws = createPublicClient({ transport: webSocket(process.argv[3]) });
  const viaWs = await ws.getBlockNumber();
  const heads = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no heads in 20 s')), 20000);
    const stop = ws.watchBlocks({
      onBlock: b => { heads.push(Number(b.number)); if (heads.length >= 3) { clearTimeout(timer); stop(); resolve(); } },
      onError: reject,
    });
  });
  console.log(JSON.stringify({ number: Number(n), chain, viaWs: Number(viaWs), heads }));
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });
"#;

const WEB3_WS: &str = r#"
import asyncio, json, sys
from web3 import AsyncWeb3, WebSocketProvider
async def main():
    async with AsyncWeb3(WebSocketProvider(sys.argv[1])) as w3:
        sub = await w3.eth.subscribe("newHeads")
        heads = []
        async for msg in w3.socket.process_subscriptions():
            heads.append(msg["result"]["number"])
            if len(heads) >= 2:
                break
        gone = await w3.eth.unsubscribe(sub)
        n = await w3.eth.block_number
        print(json.dumps({"sub": sub, "heads": heads, "unsubscribed": gone, "n": n}))
asyncio.run(asyncio.wait_for(main(), 30))
"#;

/// viem (HTTP batch, WebSocket calls and `watchBlocks`) and web3.py (WebSocket `newHeads`, unsubscribe)
/// through the gateway, with the key in the path; a WebSocket without a key is refused.
#[tokio::test]
async fn viem_and_web3_subscribe_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_anvil, _, node_url) = node(&["--block-time", "1"]).await;
    let (_g, url) = gateway(d, &[node_url], &["--key", "k1"]).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    serving(&url, Some("k1"), call).await;
    let http_url = format!("{url}v1/k1");
    let ws_url = http_url.replacen("http", "ws", 1);
    std::fs::write(d.join("viem.cjs"), VIEM).unwrap();
    let out = Command::new("node")
        .arg(d.join("viem.cjs"))
        .args([&http_url, &ws_url])
        .env("NODE_PATH", root().join(".tools/node_modules"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["chain"], json!(31337), "{v}");
    let heads: Vec<u64> = serde_json::from_value(v["heads"].clone()).unwrap();
    assert!(
        heads.windows(2).all(|w| w[1] > w[0]) && heads[0] > v["number"].as_u64().unwrap(),
        "{v}"
    );
    std::fs::write(d.join("ws.py"), WEB3_WS).unwrap();
    let out = Command::new(tool("python"))
        .args([d.join("ws.py").to_str().unwrap(), &ws_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["unsubscribed"], json!(true), "{w}");
    assert_eq!(w["heads"].as_array().unwrap().len(), 2, "{w}");
    // cast over the WebSocket: a subscription (cast, through alloy's pub-sub layer, prints its own local id
    // for it once the gateway confirmed it, and returns).
    let out = Command::new(tool("cast"))
        .args(["rpc", "--rpc-url", &ws_url, "eth_subscribe", "newHeads"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_matches('"')
        .to_string();
    assert!(
        out.status.success() && id.starts_with("0x") && id.len() >= 34,
        "{id} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No key, no socket.
    let refused = tokio_tungstenite_probe(&url.replacen("http", "ws", 1)).await;
    assert_eq!(refused, 401);
}

/// The HTTP status a WebSocket handshake to `url` gets.
async fn tokio_tungstenite_probe(url: &str) -> u16 {
    let r = reqwest::Client::new()
        .get(url.replacen("ws", "http", 1))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

const WS_WATCH: &str = r#"
import json, sys
from websockets.sync.client import connect
with connect(sys.argv[1]) as ws:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
    sub = json.loads(ws.recv(timeout=10))["result"]
    print(json.dumps({"subscribed": sub}), flush=True)
    while True:
        m = json.loads(ws.recv(timeout=15))
        print(json.dumps({"sub": m["params"]["subscription"], "n": int(m["params"]["result"]["number"], 16)}), flush=True)
"#;

/// The gateway as the stack runs it: no flags, only the task definition's variables — upstreams from
/// `dns.name` (here `localhost`, as the nodes' name resolves in the VPC) on `ports.http`/`ports.ws`, keys as
/// hashes.
#[tokio::test]
async fn the_stacks_gateway_finds_its_nodes_by_name_and_takes_hashed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (_anvil, port, _) = node(&["--block-time", "1"]).await;
    // Nodes serve WebSocket on their own port (ports.ws); anvil serves both on one, so a forwarder plays
    // the WebSocket port.
    let ws_port = free_port();
    let _ws = forwarder(dir.path(), ws_port, port);
    let listen = format!("127.0.0.1:{}", free_port());
    let hash: String = ethnode_gateway::key_hash("stack-key")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let _g = Ethnode::spawn(
        dir.path(),
        &["gateway"],
        &[
            ("ETHNODE_GATEWAY_LISTEN", listen.clone()),
            ("ETHNODE_DNS_NAME", "localhost".into()),
            ("ETHNODE_PORTS_HTTP", port.to_string()),
            ("ETHNODE_PORTS_WS", ws_port.to_string()),
            ("ETHNODE_GATEWAY_KEY_HASHES", hash),
            ("ETHNODE_LOG_FORMAT", "json".into()),
        ],
    );
    let url = format!("http://{listen}/");
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    wait_for(
        "the gateway serves by name",
        Duration::from_secs(20),
        || async {
            let (code, body, _) = post(&url, Some("stack-key"), call).await;
            (code == 200 && body.contains("0x7a69")).then_some(())
        },
    )
    .await;
    assert_eq!(post(&url, Some("other"), call).await.0, 401);
    let (_, h) = get_json(&format!("{url}health")).await.unwrap();
    assert!(h["eligible"].as_u64().unwrap() >= 1, "{h}");
    // A subscription through the derived WebSocket URL.
    std::fs::write(dir.path().join("watch.py"), WS_WATCH).unwrap();
    let out = Command::new(tool("python"))
        .args([
            "-c",
            &format!(
                "import subprocess, sys\np = subprocess.Popen([sys.executable, {:?}, {:?}], stdout=subprocess.PIPE, text=True)\nfor _ in range(2): print(p.stdout.readline().strip(), flush=True)\np.kill()",
                dir.path().join("watch.py").to_str().unwrap(),
                format!("ws://{listen}/v1/stack-key")
            ),
        ])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout);
    assert!(
        lines.contains("subscribed") && lines.contains("\"n\""),
        "{lines}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Before its nodes' name resolves (a new stack: nodes publish it once ready) the gateway waits unhealthy
/// instead of exiting; on SIGTERM with a drain it fails /health first while still serving, then exits 0.
#[tokio::test]
async fn the_gateway_waits_for_its_nodes_name_and_drains_before_stopping() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}/");
    let mut lonely = Ethnode::spawn(
        dir.path(),
        &["gateway"],
        &[
            ("ETHNODE_GATEWAY_LISTEN", listen.clone()),
            ("ETHNODE_DNS_NAME", "nodes.ethnode-test.invalid".into()),
        ],
    );
    let health = |url: String| async move {
        reqwest::get(format!("{url}health"))
            .await
            .ok()
            .map(|r| r.status().as_u16())
    };
    let code = wait_for("the gateway listens", Duration::from_secs(20), || {
        health(url.clone())
    })
    .await;
    assert_eq!(code, 503, "no node yet: unhealthy, not gone");
    lonely.signal(Signal::SIGTERM);
    assert!(lonely.wait(Duration::from_secs(10)).await.success());

    let (_anvil, _, node_url) = node(&[]).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}/");
    let mut g = Ethnode::spawn(
        dir.path(),
        &[
            "gateway",
            "--listen",
            &listen,
            "--upstream",
            &node_url,
            "--drain-secs",
            "3",
        ],
        &[],
    );
    wait_for(
        "the gateway is healthy",
        Duration::from_secs(20),
        || async { (health(url.clone()).await == Some(200)).then_some(()) },
    )
    .await;
    g.signal(Signal::SIGTERM);
    wait_for(
        "health fails while draining",
        Duration::from_secs(2),
        || async { (health(url.clone()).await == Some(503)).then_some(()) },
    )
    .await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let (code, body, _) = post(&url, None, call).await;
    assert!(
        code == 200 && body.contains("0x7a69"),
        "still serving while draining: {code} {body}"
    );
    assert!(
        g.wait(Duration::from_secs(15)).await.success(),
        "{}",
        g.stderr_text()
    );
}

/// Heads come by `newHeads` as well as by poll: with polls 5 s apart and a block a second, the served
/// tip (what `eth_blockNumber` and `latest` mean) still moves with every block.
#[tokio::test]
async fn the_tip_follows_new_heads_between_polls() {
    let dir = tempfile::tempdir().unwrap();
    let (_anvil, _, node_url) = node(&["--block-time", "1"]).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _g = Ethnode::spawn(
        dir.path(),
        &[
            "gateway",
            "--listen",
            &listen,
            "--upstream",
            &node_url,
            "--poll-ms",
            "5000",
        ],
        &[],
    );
    let url = format!("http://{listen}/");
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    serving(&url, None, call).await;
    let mut seen = std::collections::BTreeSet::new();
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    while std::time::Instant::now() < until {
        let (_, body, _) = post(&url, None, call).await;
        seen.extend(result_number(&body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.len() >= 3,
        "the tip moved only {} times in 3.5 s with polls 5 s apart: {seen:?}",
        seen.len().saturating_sub(1)
    );
}
