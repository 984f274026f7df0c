//! Subscription fan-out, for the benchmark: CLIENTS WebSocket clients subscribe to `newHeads` through the
//! gateway; one more subscribes on the node itself, and its arrival time of each head is "the upstream's
//! notification". The node mines a block every 250 ms (`anvil_mine`, asked on that direct socket) for
//! BLOCKS blocks. Prints, in microseconds, the delivery latency from the node's notification to each
//! client (p50, p99) and to the last client of each block (p50, p99), and the gateway's resident memory
//! per client (VmRSS with the clients subscribed, less before they connected, over CLIENTS).
//! `fanout GATEWAY_WS_URL NODE_WS_URL GATEWAY_PID CLIENTS BLOCKS`
//! Output: `p50 p99 last_p50 last_p99 kib_per_client delivered expected gateway_cpu_us_per_delivery`.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A head's number from a notification, found without parsing the whole of it: a thousand clients in
/// this one process must not add their own parsing to what is measured.
fn number(text: &str) -> Option<u64> {
    let at = text.find(r#""number":"0x"#)? + r#""number":"0x"#.len();
    let end = text[at..].find('"')? + at;
    u64::from_str_radix(&text[at..end], 16).ok()
}

/// The gateway's CPU time so far (user + system), in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // After the command name in parentheses: state is field 3, utime 14, stime 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [gateway, node, pid, clients, blocks] = &a[..] else {
        eprintln!("usage: fanout GATEWAY_WS_URL NODE_WS_URL GATEWAY_PID CLIENTS BLOCKS");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().expect("CLIENTS");
    let blocks: u64 = blocks.parse().expect("BLOCKS");
    let subscribe = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    let before = rss_kib(pid);
    // Arrival times: (client, block) → when.
    let arrivals: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(gateway.as_str())
            .await
            .expect("connect to the gateway");
        ws.send(Message::Text(subscribe.into())).await.unwrap();
        // The subscription's answer.
        let _ = ws.next().await;
        let arrivals = arrivals.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    let at = Instant::now();
                    if let Some(n) = number(t.as_str()) {
                        arrivals.lock().unwrap().push((n, at));
                    }
                }
            }
        }));
    }
    // Let the gateway's allocator settle before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let (mut direct, _) = tokio_tungstenite::connect_async(node.as_str())
        .await
        .expect("connect to the node");
    direct.send(Message::Text(subscribe.into())).await.unwrap();
    let _ = direct.next().await;
    let mut at_node: HashMap<u64, Instant> = HashMap::new();
    let cpu_before = cpu_ticks(pid);
    let mine = r#"{"jsonrpc":"2.0","id":2,"method":"anvil_mine","params":[]}"#;
    for _ in 0..blocks {
        direct.send(Message::Text(mine.into())).await.unwrap();
        let until = Instant::now() + Duration::from_millis(250);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until.into(), direct.next()).await {
            if let Message::Text(t) = m
                && let Some(n) = number(t.as_str())
            {
                at_node.entry(n).or_insert_with(Instant::now);
            }
        }
    }
    // Every client has the last head (or 5 s passed), then their sockets close.
    let last_head = at_node.keys().max().copied().unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until
        && arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| *n == last_head)
            .count()
            < clients
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in &tasks {
        t.abort();
    }
    let cpu = cpu_ticks(pid).saturating_sub(cpu_before);
    let got = arrivals.lock().unwrap().clone();
    let mut each: Vec<u128> = Vec::new();
    let mut last: HashMap<u64, u128> = HashMap::new();
    for (n, at) in &got {
        if let Some(t0) = at_node.get(n) {
            let us = at.saturating_duration_since(*t0).as_micros();
            each.push(us);
            let l = last.entry(*n).or_insert(0);
            *l = (*l).max(us);
        }
    }
    each.sort_unstable();
    let mut last: Vec<u128> = last.into_values().collect();
    last.sort_unstable();
    let per_client = after.saturating_sub(before) as f64 / clients as f64;
    // Ticks are 10 ms: microseconds of gateway CPU per notification delivered.
    let cpu_per = (cpu * 10_000) as f64 / each.len().max(1) as f64;
    println!(
        "{} {} {} {} {:.1} {} {} {:.1}",
        percentile(&each, 0.5),
        percentile(&each, 0.99),
        percentile(&last, 0.5),
        percentile(&last, 0.99),
        per_client,
        each.len(),
        clients as u64 * at_node.len() as u64,
        cpu_per
    );
}
