//! Failover under load, for the benchmark: a steady rate of `eth_blockNumber` through the gateway while
//! one upstream is killed; prints how many requests failed and how long until the dead upstream was out
//! of the gateway's rotation (its `ethnode_gateway_upstream_eligible` gauge at 0).
//! `load GATEWAY_URL RATE SECS KILL_PID KILL_AFTER_MS DEAD_UPSTREAM_NAME`

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn get(c: &Client, url: &str, body: Option<&'static str>) -> Option<(u16, String)> {
    let req = match body {
        Some(b) => hyper::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b.as_bytes()))),
        // The metrics are for key holders: the benchmark gateway's key.
        None => hyper::Request::get(url)
            .header("authorization", "Bearer bench")
            .body(Full::new(Bytes::new())),
    }
    .ok()?;
    let r = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .ok()?
        .ok()?;
    let status = r.status().as_u16();
    let b = r.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&b).into_owned()))
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, secs, pid, kill_after, dead] = &a[..] else {
        panic!("usage: load GATEWAY_URL RATE SECS KILL_PID KILL_AFTER_MS DEAD_UPSTREAM_NAME");
    };
    let rate: u64 = rate.parse().unwrap();
    let secs: u64 = secs.parse().unwrap();
    let kill_after = Duration::from_millis(kill_after.parse().unwrap());
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut killed: Option<Instant> = None;
    let mut out_after: Option<Duration> = None;
    let mut tasks = Vec::new();
    let mut n: u64 = 0;
    // scheme://host:port/metrics
    let base: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    let metrics = format!("{base}/metrics");
    let gauge = format!("ethnode_gateway_upstream_eligible{{upstream=\"{dead}\"}} 0");
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let (c, u, s, f) = (client.clone(), url.clone(), sent.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            s.fetch_add(1, Ordering::Relaxed);
            let ok = get(
                &c,
                &u,
                Some(r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#),
            )
            .await
            .is_some_and(|(code, body)| code == 200 && body.contains("\"result\""));
            if !ok {
                f.fetch_add(1, Ordering::Relaxed);
            }
        }));
        if killed.is_none() && start.elapsed() >= kill_after {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid])
                .status();
            killed = Some(Instant::now());
        }
        n += 1;
        if let Some(k) = killed
            && out_after.is_none()
            && n.is_multiple_of(4)
            && get(&client, &metrics, None)
                .await
                .is_some_and(|(_, m)| m.contains(&gauge))
        {
            out_after = Some(k.elapsed());
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "sent {} failed {} out_after_ms {}",
        sent.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        out_after.map_or("never".to_string(), |d| d.as_millis().to_string())
    );
}
