//! `ethnode monitor` against real anvils on loopback: exact lags, the median with a lagging reference
//! excluded, a reference stopped mid-run, forks; Prometheus, CloudWatch (moto), JSONL; the report; the
//! Lambda entry point driven through a stand-in of the Lambda Runtime API (no Lambda can run here).

use crate::harness::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An anvil on its own port; killed on drop.
struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    async fn start(args: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(tool("anvil"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil");
        let url = format!("http://127.0.0.1:{port}/");
        let a = Self { child, url };
        wait_for("anvil", Duration::from_secs(20), || async {
            rpc(&a.url, "eth_blockNumber", json!([])).await.map(|_| ())
        })
        .await;
        a
    }

    /// A fork of `parent` at its current head that mines nothing: same chain, frozen.
    async fn fork(parent: &Anvil) -> Self {
        Self::start(&["--fork-url", &parent.url, "--no-mining"]).await
    }

    async fn mine(&self, n: u64) {
        rpc(&self.url, "anvil_mine", json!([format!("{n:#x}")]))
            .await
            .expect("anvil_mine");
    }

    async fn height(&self) -> u64 {
        quantity(&rpc(&self.url, "eth_blockNumber", json!([])).await.unwrap())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The redacted form the monitor labels endpoints with.
fn label(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// Parent at 108; nodes A (100), B (105), D (108, same chain), C (108, another chain); references
/// P (108), R2 (108), R3 (100: far behind).
struct Chains {
    p: Anvil,
    a: Anvil,
    b: Anvil,
    c: Anvil,
    d: Anvil,
    r2: Anvil,
    r3: Anvil,
}

async fn chains() -> Chains {
    let p = Anvil::start(&["--no-mining"]).await;
    p.mine(100).await;
    let a = Anvil::fork(&p).await;
    let r3 = Anvil::fork(&p).await;
    p.mine(5).await;
    let b = Anvil::fork(&p).await;
    p.mine(3).await;
    let d = Anvil::fork(&p).await;
    let r2 = Anvil::fork(&p).await;
    let c = Anvil::start(&["--no-mining", "--chain-id", "31338"]).await;
    c.mine(108).await;
    for (x, h) in [
        (&a, 100),
        (&b, 105),
        (&d, 108),
        (&r2, 108),
        (&r3, 100),
        (&c, 108),
        (&p, 108),
    ] {
        assert_eq!(x.height().await, h);
    }
    Chains {
        p,
        a,
        b,
        c,
        d,
        r2,
        r3,
    }
}

fn args(ch: &Chains) -> Vec<String> {
    let mut v = vec![];
    for n in [&ch.a, &ch.b, &ch.c, &ch.d] {
        v.extend(["--node".to_string(), n.url.clone()]);
    }
    for r in [&ch.p, &ch.r2, &ch.r3] {
        v.extend(["--reference".to_string(), r.url.clone()]);
    }
    v
}

fn node<'a>(round: &'a Value, url: &str) -> &'a Value {
    round["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["url"] == json!(label(url)))
        .unwrap()
}

fn reference<'a>(round: &'a Value, url: &str) -> &'a Value {
    round["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["url"] == json!(label(url)))
        .unwrap()
}

async fn once(dir: &std::path::Path, ch: &Chains, env: &[(&str, String)]) -> Value {
    let mut a = vec!["monitor".to_string(), "--once".into(), "--json".into()];
    a.extend(args(ch));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, out, err) = run_ethnode(dir, &a, env).await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn exact_lags_median_exclusion_and_a_reference_stopped_mid_run() {
    let mut ch = chains().await;
    let dir = tempfile::tempdir().unwrap();
    let r = once(dir.path(), &ch, &[]).await;
    assert_eq!(r["reference_head"], json!(108));
    assert_eq!(node(&r, &ch.a.url)["lag"], json!(8));
    assert_eq!(node(&r, &ch.a.url)["verdict"], json!("behind"));
    assert_eq!(node(&r, &ch.b.url)["lag"], json!(3));
    assert_eq!(node(&r, &ch.d.url)["lag"], json!(0));
    assert_eq!(node(&r, &ch.d.url)["verdict"], json!("at-head"));
    assert_eq!(node(&r, &ch.d.url)["hash_agrees"], json!(true));
    // Same height, another chain: not "at head" but forked.
    assert_eq!(node(&r, &ch.c.url)["lag"], json!(0));
    assert_eq!(node(&r, &ch.c.url)["hash_agrees"], json!(false));
    assert_eq!(node(&r, &ch.c.url)["verdict"], json!("forked"));
    // The reference 8 blocks behind the others is excluded and says why.
    let r3 = reference(&r, &ch.r3.url);
    assert_eq!(r3["ok"], json!(false));
    assert!(
        r3["excluded"].as_str().unwrap().contains("8 blocks behind"),
        "{r3}"
    );
    assert_eq!(reference(&r, &ch.p.url)["ok"], json!(true));

    // A reference stops mid-run: reported as failing, and our lags do not move.
    ch.r2.stop();
    let r = once(dir.path(), &ch, &[]).await;
    let r2 = reference(&r, &ch.r2.url);
    assert_eq!(r2["ok"], json!(false));
    assert!(r2["error"].as_str().is_some(), "{r2}");
    assert_eq!(r["reference_head"], json!(108));
    assert_eq!(node(&r, &ch.a.url)["lag"], json!(8));
    assert_eq!(node(&r, &ch.b.url)["lag"], json!(3));
    assert!(reference(&r, &ch.r3.url)["excluded"].is_string());
}

/// Parses the Prometheus text format: (series with labels, value) for every sample line.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (series.to_string(), value)
        })
        .collect()
}

#[tokio::test]
async fn daemon_serves_prometheus_and_appends_jsonl() {
    let ch = chains().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let jsonl = dir.path().join("lag.jsonl");
    let mut a = vec!["monitor".to_string(), "--rounds".into(), "4".into()];
    a.extend(args(&ch));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut daemon = Ethnode::spawn(
        dir.path(),
        &a,
        &[
            ("ETHNODE_MONITOR_INTERVAL_SECS", "1".into()),
            ("ETHNODE_MONITOR_LISTEN", format!("127.0.0.1:{port}")),
            ("ETHNODE_MONITOR_JSONL", jsonl.display().to_string()),
        ],
    );
    let metrics = wait_for("lag series", Duration::from_secs(20), || async {
        let text = get_text(&format!("http://127.0.0.1:{port}/metrics")).await?;
        text.contains("ethnode_monitor_lag_blocks").then_some(text)
    })
    .await;
    let samples = parse_prometheus(&metrics);
    let get = |series: &str| samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
    assert_eq!(
        get(&format!(
            "ethnode_monitor_lag_blocks{{endpoint=\"{}\"}}",
            label(&ch.a.url)
        )),
        Some(8.0)
    );
    assert_eq!(
        get(&format!(
            "ethnode_monitor_lag_blocks{{endpoint=\"{}\"}}",
            label(&ch.b.url)
        )),
        Some(3.0)
    );
    assert_eq!(
        get(&format!(
            "ethnode_monitor_reference_excluded{{endpoint=\"{}\"}}",
            label(&ch.r3.url)
        )),
        Some(1.0)
    );
    assert_eq!(get("ethnode_monitor_reference_head_block"), Some(108.0));
    assert!(
        get(&format!(
            "ethnode_monitor_latency_seconds{{endpoint=\"{}\"}}",
            label(&ch.p.url)
        ))
        .is_some()
    );
    assert!(
        daemon.wait(Duration::from_secs(30)).await.success(),
        "{}",
        daemon.stderr_text()
    );
    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    // Node A's behind for 4 rounds: after alarm_rounds (3) its alarm is on.
    assert_eq!(node(&lines[3], &ch.a.url)["alarm"], json!(true));
    assert_eq!(node(&lines[1], &ch.a.url)["alarm"], json!(false));
    assert_eq!(node(&lines[3], &ch.d.url)["alarm"], json!(false));
}

#[tokio::test]
async fn lag_reaches_cloudwatch_on_moto() {
    let ch = chains().await;
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = moto.env();
    env.push(("ETHNODE_MONITOR_CLOUDWATCH", "true".into()));
    env.push(("ETHNODE_AWS_STACK_NAME", "mon".into()));
    once(dir.path(), &ch, &env).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stats = moto.aws(&[
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        "Ethnode",
        "--metric-name",
        "LagBlocks",
        "--dimensions",
        "Name=Stack,Value=mon",
        &format!("Name=Node,Value={}", label(&ch.a.url)),
        "--start-time",
        &(now - 600).to_string(),
        "--end-time",
        &(now + 600).to_string(),
        "--period",
        "60",
        "--statistics",
        "Maximum",
    ]);
    let points = stats["Datapoints"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{stats}");
    assert_eq!(points[0]["Maximum"], json!(8.0));
}

#[tokio::test]
async fn report_renders_a_png_and_svg_and_a_summary_matching_the_series() {
    let dir = tempfile::tempdir().unwrap();
    // 10 rounds, 12 s apart: lags 0,0,1,3,3,6,0,0,2,0 for one node.
    let lags = [0, 0, 1, 3, 3, 6, 0, 0, 2, 0];
    let mut text = String::new();
    for (i, lag) in lags.iter().enumerate() {
        let r = json!({
            "ts": 1_800_000_000 + 12 * i as u64, "reference_head": 1000,
            "references": [],
            "nodes": [{"url": "http://node-a:8545", "head": 1000 - lag, "lag": lag, "head_age_secs": 5,
                       "hash_agrees": true, "verdict": if *lag > 0 { "behind" } else { "at-head" },
                       "alarm": false, "latency_ms": 1.0, "error": null}]
        });
        text.push_str(&format!("{r}\n"));
    }
    let series = dir.path().join("lag.jsonl");
    std::fs::write(&series, text).unwrap();
    let png = dir.path().join("lag.png");
    let (code, out, err) = run_ethnode(
        dir.path(),
        &[
            "monitor",
            "report",
            "--since",
            "24h",
            "--json",
            "--input",
            series.to_str().unwrap(),
            "--out",
            png.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    let s = &summary[0];
    assert_eq!(s["rounds"], json!(10));
    assert_eq!(s["at_0"], json!(0.5));
    assert_eq!(s["at_1"], json!(0.1));
    assert_eq!(s["at_2_4"], json!(0.3));
    assert_eq!(s["at_5_plus"], json!(0.1));
    assert_eq!(s["worst_streak_rounds"], json!(4));
    assert_eq!(s["worst_streak_secs"], json!(36));
    assert_eq!(s["max_lag"], json!(6));
    let img = image::open(&png).expect("the PNG decodes");
    assert_eq!((img.width(), img.height()), (1200, 600));
    let rgb = img.to_rgb8();
    assert!(
        rgb.pixels().any(|p| p.0 != [255, 255, 255]),
        "the chart is blank"
    );

    let svg = dir.path().join("lag.svg");
    let (code, _, err) = run_ethnode(
        dir.path(),
        &[
            "monitor",
            "report",
            "--input",
            series.to_str().unwrap(),
            "--out",
            svg.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("http://node-a:8545"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

#[tokio::test]
async fn lambda_handler_does_one_round_per_scheduled_event() {
    use axum::routing::{get, post};
    let ch = chains().await;
    let moto = Moto::start().await;
    // A stand-in for the Lambda Runtime API: hands out one scheduled event, collects the response.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(1);
    let served = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(move || {
                let served = served.clone();
                async move {
                    if served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        // One event only: keep the runtime waiting.
                        tokio::time::sleep(Duration::from_secs(300)).await;
                    }
                    let event = json!({"version": "0", "id": "ev-1", "detail-type": "Scheduled Event",
                        "source": "aws.events", "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
                        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ethnode-monitor"], "detail": {}});
                    (
                        [
                            ("lambda-runtime-aws-request-id", "req-1"),
                            ("lambda-runtime-deadline-ms", "99999999999999"),
                            ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:ethnode-monitor"),
                        ],
                        axum::Json(event),
                    )
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            // The runtime posts the handler's JSON without a content type: read the bytes.
            post(move |body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null)).await;
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Shipped as `bootstrap` (provided.al2023), configured by the environment.
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    std::fs::copy(env!("CARGO_BIN_EXE_ethnode"), &bootstrap).unwrap();
    let mut env = moto.env();
    env.extend([
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "ethnode-monitor".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test".to_string()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/ethnode-monitor".to_string(),
        ),
        ("ETHNODE_AWS_STACK_NAME", "mon".to_string()),
        (
            "ETHNODE_MONITOR_NODES",
            format!("[\"{}\", \"{}\"]", ch.a.url, ch.d.url),
        ),
        (
            "ETHNODE_MONITOR_REFERENCES",
            format!("[\"{}\", \"{}\"]", ch.p.url, ch.r2.url),
        ),
    ]);
    let mut child = Command::new(&bootstrap)
        .current_dir(dir.path())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let round = response
        .unwrap_or_else(|_| {
            panic!(
                "no response; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .unwrap();
    assert_eq!(round["reference_head"], json!(108));
    assert_eq!(node(&round, &ch.a.url)["lag"], json!(8));
    assert_eq!(node(&round, &ch.d.url)["lag"], json!(0));
    // …and the round went to CloudWatch.
    let list = moto.aws(&[
        "cloudwatch",
        "list-metrics",
        "--namespace",
        "Ethnode",
        "--metric-name",
        "LagBlocks",
    ]);
    assert_eq!(list["Metrics"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn status_shows_the_lag_line_when_a_monitor_is_configured() {
    let ch = chains().await;
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (vpc, subnet) = moto.network();
    let config = dir.path().join("ethnode.toml");
    std::fs::write(&config, stack_config("mon-status", &vpc, &subnet)).unwrap();
    let cfg = config.to_str().unwrap();
    let (code, _, err) = run_ethnode(
        dir.path(),
        &["deploy", "--yes", "--poll-secs", "1", "--config", cfg],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let mut env = moto.env();
    env.push(("ETHNODE_MONITOR_NODES", format!("[\"{}\"]", ch.b.url)));
    env.push(("ETHNODE_MONITOR_REFERENCES", format!("[\"{}\"]", ch.p.url)));
    let (code, out, err) =
        run_ethnode(dir.path(), &["status", "--no-probe", "--config", cfg], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Lag (references' median head 108)"), "{out}");
    assert!(
        out.contains(&format!(
            "{:<32} head {:>10}  {:>4} blocks behind  Behind",
            label(&ch.b.url),
            105,
            3
        )),
        "{out}"
    );
}

/// A JSON-RPC proxy in front of `upstream` that counts the requests it forwards.
async fn counting_proxy(
    upstream: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: String| {
            let (c, http, upstream) = (c.clone(), http.clone(), upstream.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                let r = http
                    .post(&upstream)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (
                    [("content-type", "application/json")],
                    r.text().await.unwrap(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), count)
}

/// "At most one request per reference per round", counted at the reference: a paid provider sees one
/// call a round even when a node is ahead of it (its hash at the reference's height is asked of the
/// node, which costs nothing).
#[tokio::test]
async fn a_reference_gets_one_request_per_round() {
    let parent = Anvil::start(&["--no-mining"]).await;
    parent.mine(100).await;
    let reference = Anvil::fork(&parent).await;
    parent.mine(3).await;
    let (proxy, count) = counting_proxy(reference.url.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, out, err) = run_ethnode(
        dir.path(),
        &[
            "monitor",
            "--rounds",
            "3",
            "--json",
            "--node",
            &parent.url,
            "--reference",
            &proxy,
        ],
        &[
            ("ETHNODE_MONITOR_INTERVAL_SECS", "1".into()),
            ("ETHNODE_MONITOR_LISTEN", listen),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let rounds: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rounds.len(), 3, "{out}");
    // The node is 3 ahead on the same chain: compared through its own block, at head, not forked.
    for r in &rounds {
        assert_eq!(r["nodes"][0]["lag"], json!(-3), "{r}");
        assert_eq!(r["nodes"][0]["verdict"], json!("at-head"), "{r}");
    }
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one request per round at the reference"
    );
}
