//! The gateway's subscriptions, cache and read-your-writes against real anvils: heads and logs across the
//! loss of each upstream in turn (every head once, in order, parent-linked; every log once), a thousand
//! clients that leave no upstream subscription behind (counted by a WebSocket proxy in front of the node),
//! a real reorg seen by subscribers and by the cache, and a send followed at once by its reads.

use crate::gateway::{Proc, forwarder, gateway, node, post, serving};
use crate::harness::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// anvil's first two accounts (unlocked: `eth_sendTransaction` signs with them).
const ALICE: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
const BOB: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

/// Init code of a contract whose every call logs one event with the caller as its only topic:
/// runtime `CALLER PUSH1 0 PUSH1 0 LOG1 STOP`, returned by `PUSH7 runtime PUSH1 0 MSTORE PUSH1 7
/// PUSH1 25 RETURN`.
const EMITTER: &str = "0x663360006000a10060005260076019f3";

/// An address as a 32-byte topic.
fn topic(address: &str) -> String {
    format!("0x{:0>64}", address.trim_start_matches("0x"))
}

/// Deploys the contract with init code `code` on `node` (mining a block if the node does not mine on its
/// own); its address.
async fn deploy(node: &str, code: &str) -> String {
    let tx = rpc(
        node,
        "eth_sendTransaction",
        json!([{"from": ALICE, "data": code}]),
    )
    .await
    .expect("deploy the emitter");
    let receipt = wait_for("the contract is mined", Duration::from_secs(20), || async {
        rpc(node, "eth_getTransactionReceipt", json!([tx.clone()]))
            .await
            .filter(|r| !r.is_null())
    })
    .await;
    receipt["contractAddress"].as_str().unwrap().to_owned()
}

async fn ws(url: &str) -> Ws {
    let url = url.replacen("http", "ws", 1);
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("WebSocket open timed out")
    .expect("WebSocket open")
    .0
}

/// Sends `eth_subscribe(params)` and returns the subscription id from its answer.
async fn subscribe(ws: &mut Ws, params: Value) -> String {
    let req = json!({"jsonrpc":"2.0","id":7,"method":"eth_subscribe","params":params});
    ws.send(Message::Text(req.to_string().into()))
        .await
        .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no answer to eth_subscribe")
            .expect("socket closed")
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == json!(7) {
                return v["result"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{v}"))
                    .to_owned();
            }
        }
    }
}

/// What a subscriber heard: every notification's subscription id and result, and whether its socket ended.
#[derive(Default)]
struct Heard {
    notes: Vec<(String, Value)>,
    closed: bool,
}

/// A subscriber read in the background; dropping it drops its connection.
struct Listener {
    heard: Arc<Mutex<Heard>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::ops::Deref for Listener {
    type Target = Mutex<Heard>;
    fn deref(&self) -> &Mutex<Heard> {
        &self.heard
    }
}

/// Reads `ws` in the background.
fn listen(mut ws: Ws) -> Listener {
    let heard = Arc::new(Mutex::new(Heard::default()));
    let h = heard.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                && v["method"] == json!("eth_subscription")
            {
                let sub = v["params"]["subscription"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                h.lock()
                    .unwrap()
                    .notes
                    .push((sub, v["params"]["result"].clone()));
            }
        }
        h.lock().unwrap().closed = true;
    });
    Listener { heard, task }
}

fn heads_of(h: &Listener) -> Vec<(u64, String, String)> {
    h.lock()
        .unwrap()
        .notes
        .iter()
        .map(|(_, r)| {
            (
                quantity(&r["number"]),
                r["hash"].as_str().unwrap().to_owned(),
                r["parentHash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The upstream the gateway serves subscriptions from, by its metrics.
async fn feed_upstream(url: &str) -> Option<String> {
    let text = get_text(&format!("{url}metrics")).await?;
    text.lines()
        .find(|l| l.starts_with("ethnode_gateway_feed_upstream{") && l.ends_with(" 1"))
        .and_then(|l| l.split('"').nth(1))
        .map(str::to_owned)
}

/// A gateway over `upstreams` (see `gateway`) that serves and whose subscription feed follows a node.
async fn followed(
    dir: &std::path::Path,
    upstreams: &[String],
    extra: &[&str],
) -> (Ethnode, String) {
    let (g, url) = gateway(dir, upstreams, extra).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    serving(&url, None, call).await;
    wait_for(
        "the feed follows a node",
        Duration::from_secs(20),
        || async { feed_upstream(&url).await },
    )
    .await;
    (g, url)
}

/// Waits until every subscriber in `subs` has heard `n` more heads than it had.
async fn more_heads(subs: &[Listener], n: usize) {
    let base: Vec<usize> = subs.iter().map(|s| s.lock().unwrap().notes.len()).collect();
    wait_for("more heads", Duration::from_secs(30), || async {
        subs.iter()
            .zip(&base)
            .all(|(s, b)| s.lock().unwrap().notes.len() >= b + n)
            .then_some(())
    })
    .await;
}

/// Heads and logs subscribers over two upstreams on one chain (two forwarders in front of one anvil
/// mining every second, with transactions that log in most blocks): the upstream serving the
/// subscriptions is killed, it comes back, then the other is killed. Every subscriber keeps its
/// connection and its id, hears every head once, in order and parent-linked, and every log of every block
/// once.
#[tokio::test]
async fn subscriptions_lose_nothing_when_each_upstream_dies_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_anvil, a, direct) = node(&["--block-time", "1"]).await;
    let emitter = deploy(&direct, EMITTER).await;
    let (p1, p2) = (free_port(), free_port());
    let mut fwd: HashMap<u16, Proc> = [(p1, forwarder(d, p1, a)), (p2, forwarder(d, p2, a))].into();
    let ups = [
        format!("http://127.0.0.1:{p1}/"),
        format!("http://127.0.0.1:{p2}/"),
    ];
    let (_g, url) = gateway(d, &ups, &[]).await;
    let both = || async {
        let (_, h) = get_json(&format!("{url}health")).await?;
        (h["eligible"] == json!(2)).then_some(())
    };
    wait_for("both upstreams eligible", Duration::from_secs(20), both).await;
    // Transactions from two senders all along: logs in most blocks.
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let (sending, direct, emitter) = (sending.clone(), direct.clone(), emitter.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while sending.load(Ordering::Relaxed) {
                let from = if n.is_multiple_of(2) { ALICE } else { BOB };
                rpc(
                    &direct,
                    "eth_sendTransaction",
                    json!([{"from": from, "to": emitter}]),
                )
                .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let mut logs = Vec::new();
    let mut log_ids = Vec::new();
    for filter in [
        json!({"address": emitter}),
        json!({"address": [emitter], "topics": [topic(BOB)]}),
    ] {
        let mut s = ws(&url).await;
        log_ids.push(subscribe(&mut s, json!(["logs", filter])).await);
        logs.push(listen(s));
    }
    let mut heads = Vec::new();
    let mut head_ids = Vec::new();
    for _ in 0..3 {
        let mut s = ws(&url).await;
        head_ids.push(subscribe(&mut s, json!(["newHeads"])).await);
        heads.push(listen(s));
    }
    more_heads(&heads, 3).await;
    let mut killed = Vec::new();
    for round in 0..2 {
        let serving_from = wait_for("a feed upstream", Duration::from_secs(20), || async {
            feed_upstream(&url).await
        })
        .await;
        let port = [p1, p2]
            .into_iter()
            .find(|p| serving_from.contains(&format!(":{p}")))
            .unwrap_or_else(|| panic!("{serving_from} is neither upstream"));
        fwd.remove(&port);
        killed.push(port);
        more_heads(&heads, 4).await;
        let now = feed_upstream(&url).await.unwrap_or_default();
        assert!(
            !now.contains(&format!(":{port}")),
            "still serving from the dead upstream {now}"
        );
        if round == 0 {
            fwd.insert(port, forwarder(d, port, a));
            wait_for("the upstream is back", Duration::from_secs(20), both).await;
        }
    }
    assert_ne!(killed[0], killed[1], "each upstream died once");
    sending.store(false, Ordering::Relaxed);
    sender.await.unwrap();
    more_heads(&heads, 3).await;
    let mut first = 0;
    let mut last = u64::MAX;
    for (h, id) in heads.iter().zip(&head_ids) {
        let got = h.lock().unwrap();
        assert!(!got.closed, "a subscriber's connection ended");
        assert!(got.notes.iter().all(|(s, _)| s == id), "another id");
        drop(got);
        let list = heads_of(h);
        for w in list.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "not every head once, in order: {w:?}");
            assert_eq!(w[1].2, w[0].1, "not parent-linked: {w:?}");
        }
        first = first.max(list[0].0);
        last = last.min(list[list.len() - 1].0);
    }
    // Every log of blocks first+1..=last, as the node has them, once each.
    let want_all = rpc(
        &direct,
        "eth_getLogs",
        json!([{"fromBlock": format!("0x{:x}", first + 1), "toBlock": format!("0x{last:x}"), "address": emitter}]),
    )
    .await
    .unwrap();
    let key = |l: &Value| {
        (
            quantity(&l["blockNumber"]),
            quantity(&l["logIndex"]),
            l["transactionHash"].as_str().unwrap().to_owned(),
        )
    };
    let want_all: Vec<(u64, u64, String)> = want_all.as_array().unwrap().iter().map(key).collect();
    let bob = topic(BOB);
    let want_bob: Vec<(u64, u64, String)> = rpc(
        &direct,
        "eth_getLogs",
        json!([{"fromBlock": format!("0x{:x}", first + 1), "toBlock": format!("0x{last:x}"), "address": emitter, "topics": [bob]}]),
    )
    .await
    .unwrap()
    .as_array()
    .unwrap()
    .iter()
    .map(key)
    .collect();
    assert!(
        want_all.len() > want_bob.len() && !want_bob.is_empty(),
        "the test sends too few transactions"
    );
    for ((l, id), want) in logs.iter().zip(&log_ids).zip([&want_all, &want_bob]) {
        let got = l.lock().unwrap();
        assert!(!got.closed);
        assert!(got.notes.iter().all(|(s, _)| s == id), "another id");
        let seen: Vec<(u64, u64, String)> = got
            .notes
            .iter()
            .map(|(_, r)| key(r))
            .filter(|k| k.0 > first && k.0 <= last)
            .collect();
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "a log delivered twice");
        assert_eq!(&seen, want, "not every log once, in order");
    }
}

/// A WebSocket proxy in front of `target` that counts the subscriptions live through it: confirmed
/// `eth_subscribe`s, less confirmed `eth_unsubscribe`s and those of sockets that closed. What the node
/// holds, seen from outside the gateway.
async fn counting_proxy(target: u16) -> (u16, Arc<AtomicI64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let live = Arc::new(AtomicI64::new(0));
    let count = live.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let live = count.clone();
            tokio::spawn(async move {
                let Ok(mut client) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let Ok((mut node, _)) =
                    tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{target}/")).await
                else {
                    return;
                };
                let mut asked: HashMap<String, Option<String>> = HashMap::new();
                let mut mine: HashSet<String> = HashSet::new();
                loop {
                    tokio::select! {
                        m = client.next() => {
                            let Some(Ok(m)) = m else { break };
                            if let Message::Text(t) = &m
                                && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                            {
                                let id = v["id"].to_string();
                                match v["method"].as_str() {
                                    Some("eth_subscribe") => { asked.insert(id, None); }
                                    Some("eth_unsubscribe") => {
                                        asked.insert(id, v["params"][0].as_str().map(str::to_owned));
                                    }
                                    _ => {}
                                }
                            }
                            if node.send(m).await.is_err() { break }
                        }
                        m = node.next() => {
                            let Some(Ok(m)) = m else { break };
                            if let Message::Text(t) = &m
                                && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                                && let Some(what) = asked.remove(&v["id"].to_string())
                            {
                                match (what, &v["result"]) {
                                    (None, Value::String(s)) => {
                                        mine.insert(s.clone());
                                        live.fetch_add(1, Ordering::SeqCst);
                                    }
                                    (Some(s), Value::Bool(true)) if mine.remove(&s) => {
                                        live.fetch_sub(1, Ordering::SeqCst);
                                    }
                                    _ => {}
                                }
                            }
                            if client.send(m).await.is_err() { break }
                        }
                    }
                }
                live.fetch_sub(mine.len() as i64, Ordering::SeqCst);
            });
        }
    });
    (port, live)
}

/// A thousand clients subscribe (heads, logs and pending transactions) and leave: the node holds one
/// subscription per kind the whole time, every heads client hears a head, and once they are gone the
/// node's subscriptions are back to what they were.
#[tokio::test]
async fn a_thousand_clients_leave_no_upstream_subscription_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_anvil, a, direct) = node(&["--block-time", "1"]).await;
    let (proxy, live) = counting_proxy(a).await;
    let up = format!("{direct},ws://127.0.0.1:{proxy}/");
    let (_g, url) = followed(d, &[up], &["--max-sockets-per-key", "2000"]).await;
    // The head tracker's subscription and the feed's.
    wait_for(
        "two subscriptions at the node",
        Duration::from_secs(20),
        || async { (live.load(Ordering::SeqCst) == 2).then_some(()) },
    )
    .await;
    let start = live.load(Ordering::SeqCst);
    let mut clients = Vec::new();
    let mut heads = Vec::new();
    for wave in 0..10 {
        let opened = futures_util::future::join_all((0..100).map(|i| {
            let url = url.clone();
            async move {
                let mut s = ws(&url).await;
                let params = match i % 4 {
                    0 | 1 => json!(["newHeads"]),
                    2 => json!(["logs", {"topics": [topic(ALICE)]}]),
                    _ => json!(["newPendingTransactions"]),
                };
                subscribe(&mut s, params).await;
                (i % 4 < 2, s)
            }
        }))
        .await;
        for (is_heads, s) in opened {
            if is_heads {
                heads.push(listen(s));
            } else {
                clients.push(s);
            }
        }
        let now = live.load(Ordering::SeqCst);
        assert!(
            now <= start + 1,
            "wave {wave}: {now} subscriptions at the node for {} clients (one more for pending transactions at most)",
            (wave + 1) * 100
        );
    }
    assert_eq!(heads.len(), 500);
    more_heads(&heads, 1).await;
    rpc(
        &direct,
        "eth_sendTransaction",
        json!([{"from": ALICE, "to": BOB}]),
    )
    .await;
    wait_for(
        "pending transactions are followed",
        Duration::from_secs(20),
        || async { (live.load(Ordering::SeqCst) == start + 1).then_some(()) },
    )
    .await;
    let metrics = get_text(&format!("{url}metrics")).await.unwrap();
    assert!(
        metrics.contains(r#"ethnode_gateway_subscriptions{kind="newHeads"} 500"#),
        "{metrics}"
    );
    drop(clients);
    drop(heads);
    wait_for(
        "the node's subscriptions are back where they were",
        Duration::from_secs(30),
        || async { (live.load(Ordering::SeqCst) == start).then_some(()) },
    )
    .await;
    let gone = wait_for(
        "the gateway forgot every client",
        Duration::from_secs(30),
        || async {
            let m = get_text(&format!("{url}metrics")).await?;
            m.contains(r#"ethnode_gateway_subscriptions{kind="newHeads"} 0"#)
                .then_some(m)
        },
    )
    .await;
    assert!(gone.contains(r#"ethnode_gateway_subscriptions{kind="logs"} 0"#));
}

/// `post`'s answer as JSON, and who answered (`cache` for a cached answer).
async fn ask(url: &str, method: &str, params: Value) -> (Value, String) {
    let body = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string();
    let (code, text, upstream) = post(url, None, body).await;
    assert_eq!(code, 200, "{method}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    (v["result"].clone(), upstream.unwrap_or_default())
}

/// A real reorg (`anvil_reorg`: the last two blocks, each with a logged transaction, replaced by empty
/// ones) while subscribers listen and the cache holds answers about those blocks: the subscribers hear
/// the new branch, parent-linked, and the removed blocks' logs again with `removed: true`; every cached
/// answer is the new branch's afterwards, exactly what the node says.
#[tokio::test]
async fn a_reorg_reaches_subscribers_and_no_cached_answer_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_anvil, _, direct) = node(&[]).await;
    let emitter = deploy(&direct, EMITTER).await;
    let (_g, url) = followed(dir.path(), std::slice::from_ref(&direct), &[]).await;
    let mut h = ws(&url).await;
    subscribe(&mut h, json!(["newHeads"])).await;
    let heads = listen(h);
    let mut l = ws(&url).await;
    subscribe(&mut l, json!(["logs", {"address": emitter}])).await;
    let logs = listen(l);
    // Four blocks (anvil mines each transaction at once), each with one log.
    let mut txs = Vec::new();
    for _ in 0..4 {
        let tx = rpc(
            &direct,
            "eth_sendTransaction",
            json!([{"from": ALICE, "to": emitter}]),
        )
        .await
        .unwrap();
        txs.push(tx.as_str().unwrap().to_owned());
    }
    let top = quantity(&rpc(&direct, "eth_blockNumber", json!([])).await.unwrap());
    wait_for("the logs are heard", Duration::from_secs(20), || async {
        (logs.lock().unwrap().notes.len() >= 4 && heads_of(&heads).last().map(|h| h.0) == Some(top))
            .then_some(())
    })
    .await;
    // Warm the cache: each asked twice, the second answer from the cache (a range of logs above
    // finality is not kept: asked to see that it is right afterwards too).
    let n = |k: u64| format!("0x{k:x}");
    let range = json!([{"fromBlock": n(top - 3), "toBlock": n(top), "address": emitter}]);
    let reads: Vec<(&str, Value, bool)> = vec![
        ("eth_getBlockByNumber", json!([n(top), false]), true),
        ("eth_getBlockByNumber", json!([n(top - 1), false]), true),
        ("eth_getTransactionReceipt", json!([txs[3]]), true),
        ("eth_getTransactionByHash", json!([txs[2]]), true),
        ("eth_getLogs", range.clone(), false),
        ("eth_getBalance", json!([ALICE, "latest"]), true),
        ("eth_getBlockByNumber", json!(["latest", false]), true),
    ];
    for (m, p, cached) in &reads {
        let (first, _) = ask(&url, m, p.clone()).await;
        assert!(!first.is_null(), "{m}");
        let (again, who) = ask(&url, m, p.clone()).await;
        assert_eq!(who == "cache", *cached, "{m} {p}: answered by {who}");
        assert_eq!(again, first);
    }
    let old_top = heads_of(&heads).last().unwrap().1.clone();
    rpc(&direct, "anvil_reorg", json!([2, []])).await.unwrap();
    let new_top = rpc(&direct, "eth_getBlockByNumber", json!(["latest", false]))
        .await
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_top, old_top);
    wait_for(
        "the subscriber hears the new branch",
        Duration::from_secs(20),
        || async {
            heads_of(&heads)
                .iter()
                .any(|h| h.1 == new_top)
                .then_some(())
        },
    )
    .await;
    let list = heads_of(&heads);
    let at = list.iter().position(|h| h.1 == old_top).unwrap();
    let branch = &list[at + 1..];
    assert_eq!(
        branch.iter().map(|h| h.0).collect::<Vec<_>>(),
        vec![top - 1, top],
        "the new branch's heads, from the fork point: {list:?}"
    );
    assert_eq!(
        branch[0].2,
        list[at - 2].1,
        "the branch joins at its parent"
    );
    assert_eq!(branch[1].2, branch[0].1);
    wait_for(
        "the removed logs are heard",
        Duration::from_secs(20),
        || async { (logs.lock().unwrap().notes.len() >= 6).then_some(()) },
    )
    .await;
    let notes: Vec<Value> = logs
        .lock()
        .unwrap()
        .notes
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(notes.len(), 6, "{notes:?}");
    let removed: Vec<(u64, &str, bool)> = notes[4..]
        .iter()
        .map(|r| {
            (
                quantity(&r["blockNumber"]),
                r["transactionHash"].as_str().unwrap(),
                r["removed"] == json!(true),
            )
        })
        .collect();
    assert_eq!(
        removed,
        vec![
            (top - 1, txs[2].as_str(), true),
            (top, txs[3].as_str(), true)
        ],
        "the logs of the removed blocks, again, removed, oldest first"
    );
    // Every answer now is the node's, from the new branch.
    for (m, p, _) in &reads {
        let (now, who) = ask(&url, m, p.clone()).await;
        let want = rpc(&direct, m, p.clone()).await.unwrap_or(Value::Null);
        assert_eq!(
            now, want,
            "{m} {p} (answered by {who}) is not the node's answer after the reorg"
        );
    }
    let (block, _) = ask(&url, "eth_getBlockByNumber", json!([n(top), false])).await;
    assert_eq!(block["hash"], json!(new_top));
    let metrics = get_text(&format!("{url}metrics")).await.unwrap();
    assert!(
        metrics.contains("ethnode_gateway_feed_reorgs_total 1"),
        "{metrics}"
    );
}

/// anvil's well-known dev keys 1-6 (from its default mnemonic).
const KEYS: [&str; 6] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
];

fn cast(args: &[&str]) -> String {
    let out = std::process::Command::new(tool("cast"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cast {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Two nodes at different heights (a parent that mines when told and a fork of it frozen a block
/// behind): each transaction sent through the gateway is read back at once, many times, whichever node
/// each read goes to: the pending nonce counts it, the transaction is found, and once mined its receipt
/// is found, although the other node knows nothing of it.
#[tokio::test]
async fn a_send_is_read_back_at_once_from_nodes_at_different_heights() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _g, parent, (p, f), url) = crate::gateway::parent_and_fork(dir.path(), true).await;
    let _nodes = nodes;
    let fork = format!("http://127.0.0.1:{f}/");
    rpc(&parent, "anvil_mine", json!(["0x1"])).await.unwrap();
    let both = || async {
        let (_, h) = get_json(&format!("{url}health")).await?;
        (h["eligible"] == json!(2) && h["tip"] == json!(4)).then_some(())
    };
    wait_for(
        "both nodes serve, one a block behind",
        Duration::from_secs(20),
        both,
    )
    .await;
    let mut went = HashMap::new();
    let mut shown = 0;
    let mut mined = Vec::new();
    for key in KEYS {
        let from = cast(&["wallet", "address", "--private-key", key]).to_ascii_lowercase();
        let raw = cast(&[
            "mktx",
            "--private-key",
            key,
            "--nonce",
            "0",
            "--chain",
            "31337",
            "--gas-limit",
            "21000",
            "--gas-price",
            "5000000000",
            "--priority-gas-price",
            "1",
            "--value",
            "1",
            ALICE,
        ]);
        let body = json!({"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":[raw]});
        let (code, text, upstream) = post(&url, None, body.to_string()).await;
        assert_eq!(code, 200, "{text}");
        let hash = serde_json::from_str::<Value>(&text).unwrap()["result"]
            .as_str()
            .unwrap_or_else(|| panic!("{text}"))
            .to_owned();
        let upstream = upstream.unwrap();
        let took_parent = upstream.contains(&format!(":{p}"));
        *went.entry(took_parent).or_insert(0) += 1;
        // The node that did not take it says nonce 0: what a balancer alone would answer.
        let other = if took_parent { &fork } else { &parent };
        if quantity(
            &rpc(other, "eth_getTransactionCount", json!([from, "pending"]))
                .await
                .unwrap(),
        ) == 0
        {
            shown += 1;
        }
        for _ in 0..10 {
            let (nonce, _) = ask(&url, "eth_getTransactionCount", json!([from, "pending"])).await;
            assert!(
                quantity(&nonce) >= 1,
                "{from}: pending nonce {nonce} after a send"
            );
            let (tx, _) = ask(&url, "eth_getTransactionByHash", json!([hash])).await;
            assert_eq!(
                tx["hash"],
                json!(hash),
                "the transaction just sent is not found"
            );
        }
        if took_parent {
            mined.push(hash);
        }
    }
    // The parent mines them (now two blocks ahead of the fork, still within its lag).
    rpc(&parent, "anvil_mine", json!(["0x1"])).await.unwrap();
    for hash in &mined {
        for _ in 0..10 {
            let (r, _) = ask(&url, "eth_getTransactionReceipt", json!([hash])).await;
            assert_eq!(
                r["transactionHash"],
                json!(hash),
                "its receipt is not found"
            );
        }
        let r = rpc(&fork, "eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(
            r,
            Some(Value::Null),
            "the fork knows it: the test shows nothing"
        );
    }
    assert_eq!(
        went.len(),
        2,
        "the sends did not go to both nodes: {went:?}"
    );
    assert!(
        shown > 0,
        "no node ever lacked a transaction: the test shows nothing"
    );
}

/// Init code of a contract whose every call logs 20,000 events (`LOG1` with the caller as topic) in a
/// loop: runtime `PUSH2 20000; JUMPDEST; CALLER PUSH1 0 PUSH1 0 LOG1; PUSH1 1 SWAP1 SUB; DUP1 PUSH1 3
/// JUMPI; STOP`, returned by `PUSH19 runtime PUSH1 0 MSTORE PUSH1 19 PUSH1 13 RETURN`.
const FLOOD: &str = "0x72614e205b3360006000a16001900380600357006000526013600df3";

/// A subscriber that stops reading while three blocks bring it 60,000 logs (~30 MB): the gateway closes
/// it with 4008 and a reason once its buffer (16 MiB) is full; what it was sent before is every log in
/// order from the first, nothing skipped; its subscription is freed.
#[tokio::test]
async fn a_subscriber_that_does_not_read_is_closed_with_a_reason_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (_anvil, _, direct) = node(&[]).await;
    let flood = deploy(&direct, FLOOD).await;
    let (_g, url) = followed(dir.path(), std::slice::from_ref(&direct), &[]).await;
    // A small receive buffer: the kernel holds little of what the client does not read.
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
    let (mut client, _) = tokio_tungstenite::client_async(url.replacen("http", "ws", 1), tcp)
        .await
        .unwrap();
    subscribe(&mut client, json!(["logs", {"address": flood}])).await;
    for _ in 0..3 {
        rpc(
            &direct,
            "eth_sendTransaction",
            json!([{"from": ALICE, "to": flood}]),
        )
        .await
        .unwrap();
    }
    wait_for(
        "the gateway gives up on the client",
        Duration::from_secs(30),
        || async {
            let m = get_text(&format!("{url}metrics")).await?;
            m.contains("ethnode_gateway_slow_clients_total 1")
                .then_some(())
        },
    )
    .await;
    let mut indexes = Vec::new();
    let close = loop {
        let m = tokio::time::timeout(Duration::from_secs(20), client.next())
            .await
            .expect("neither logs nor a close")
            .expect("the socket ended without a close frame")
            .unwrap();
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let r = &v["params"]["result"];
                indexes.push((quantity(&r["blockNumber"]), quantity(&r["logIndex"])));
            }
            Message::Close(c) => break c.expect("a close without a code"),
            _ => {}
        }
    };
    assert_eq!(u16::from(close.code), 4008, "{close:?}");
    assert!(close.reason.contains("too slow"), "{close:?}");
    assert!(
        !indexes.is_empty() && indexes.len() < 60_000,
        "{} logs before the close",
        indexes.len()
    );
    assert_eq!(indexes[0].1, 0, "not from the first log");
    assert!(
        indexes
            .windows(2)
            .all(|w| w[1] == (w[0].0, w[0].1 + 1) || w[1] == (w[0].0 + 1, 0)),
        "logs skipped before the close"
    );
    wait_for(
        "the subscription is freed",
        Duration::from_secs(20),
        || async {
            let m = get_text(&format!("{url}metrics")).await?;
            m.contains(r#"ethnode_gateway_subscriptions{kind="logs"} 0"#)
                .then_some(())
        },
    )
    .await;
}
