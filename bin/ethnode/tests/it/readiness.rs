//! The mainnet profile's readiness checks against real HTTP endpoints: the execution side is a real anvil
//! (started by a `reth` wrapper that maps Reth's flags onto anvil's), the consensus side a small beacon-API
//! stand-in (no Lighthouse can run here) whose `/eth/v1/node/syncing` answer the test controls.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::Duration;

const BEACON: &str = r#"
import json, sys, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
def flag(name):
    for i, a in enumerate(sys.argv):
        if a == name:
            return sys.argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
# Lighthouse's, Nimbus's, Lodestar's and Teku's spelling of the beacon API port.
port = int(next(v for v in map(flag, ["--http-port", "--rest-port", "--rest.port", "--rest-api-port"]) if v))
state, el = sys.argv[-2], sys.argv[-1]
# Slot = block = one second here (anvil --block-time 1). "follow": the consensus head is the execution
# client's head, and the clock moves on when it stops (missed slots). "advance": the chain goes on without
# the execution client (it stalled): the head grows a block a second from where it was.
last = {"block": 0, "changed": time.time(), "frozen": None}
def el_head():
    req = urllib.request.Request(el, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode(), {"Content-Type": "application/json"})
    return int(json.loads(urllib.request.urlopen(req, timeout=2).read())["result"], 16)
def head(st):
    now = time.time()
    if "block" in st:
        return st["block"], 0
    if st["mode"] == "advance":
        if last["frozen"] is None:
            last["frozen"] = (last["block"], now)
        b0, t0 = last["frozen"]
        return b0 + int(now - t0), 0
    last["frozen"] = None
    b = el_head()
    if b != last["block"]:
        last["block"], last["changed"] = b, now
    return b, int(now - last["changed"])
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        st = json.load(open(state))
        try:
            block, distance = head(st)
        except Exception:
            self.send_response(503); self.end_headers(); return
        if self.path == "/eth/v1/node/syncing":
            body = {"data": {"head_slot": str(1000 + block), "sync_distance": str(st.get("distance", distance)),
                             "is_syncing": st["syncing"], "is_optimistic": st["optimistic"], "el_offline": st["el_offline"]}}
        elif self.path == "/eth/v1/node/peer_count":
            body = {"data": {"disconnected": "3", "connecting": "0", "connected": str(st["peers"]), "disconnecting": "0"}}
        elif self.path == "/eth/v1/beacon/blinded_blocks/head":
            body = {"version": "electra", "execution_optimistic": st["optimistic"], "finalized": False,
                    "data": {"message": {"slot": str(1000 + block), "proposer_index": "1",
                                         "body": {"execution_payload_header": {"block_number": str(block), "block_hash": "0x" + "ab" * 32}}}}}
        elif self.path == "/eth/v1/node/version":
            body = {"data": {"version": "Lighthouse/v8.0.1-fake"}}
        else:
            self.send_response(404); self.end_headers(); return
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(data)
HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// The beacon stand-in's state: what its next answers say.
fn beacon(d: &std::path::Path, state: Value) {
    let base = json!({"mode": "follow", "syncing": false, "optimistic": false, "el_offline": false, "peers": 50});
    let mut merged = base.as_object().unwrap().clone();
    merged.extend(state.as_object().unwrap().clone());
    // Write then rename, so that the stand-in never reads half a file.
    let tmp = d.join("beacon-state.tmp");
    std::fs::write(&tmp, Value::Object(merged).to_string()).unwrap();
    std::fs::rename(tmp, d.join("beacon-state")).unwrap();
}

fn failing(status: &Value) -> Vec<String> {
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == json!(false))
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// `reth` for the tests: Reth's `--http.port P` becomes a proxy on P in front of a real anvil that also
/// answers `net_peerCount` (which anvil lacks) with 3, so that the peers check can pass.
const RETH_WITH_PEERS: &str = r#"
import json, subprocess, sys, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
port, inner, anvil = int(sys.argv[sys.argv.index("--http.port") + 1]), int(sys.argv[1]), sys.argv[2]
subprocess.Popen([anvil, "--port", str(inner), "--host", "127.0.0.1", "--block-time", "1"], stdout=subprocess.DEVNULL)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = json.loads(body)
        if isinstance(req, dict) and req.get("method") == "net_peerCount":
            data = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": "0x3"}).encode()
        else:
            try:
                r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{inner}/", body, {"Content-Type": "application/json"}), timeout=5)
                data = r.read()
            except Exception:
                self.send_response(502); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(data)
HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// `reth` for the sync-progress test: a real anvil behind a proxy that answers `eth_syncing` the way Reth
/// does during backfill (current == highest, stages alphabetical, the current block standing still), and
/// Reth's Prometheus sync gauges on `--metrics`: the Execution stage processing 50,000 gas-entities a
/// second out of 10^9, after Headers, Bodies and SenderRecovery reached the tip.
const RETH_SYNCING: &str = r##"
import json, subprocess, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
port = int(sys.argv[sys.argv.index("--http.port") + 1])
metrics = int(sys.argv[sys.argv.index("--metrics") + 1].rsplit(":", 1)[1])
inner, anvil = int(sys.argv[1]), sys.argv[2]
subprocess.Popen([anvil, "--port", str(inner), "--host", "127.0.0.1", "--block-time", "1"], stdout=subprocess.DEVNULL)
start = time.time()
TIP = 21000000
STAGES = {"AccountHashing": 0, "Bodies": TIP, "Execution": 9000000, "Finish": 0, "Headers": TIP,
          "IndexAccountHistory": 0, "IndexStorageHistory": 0, "MerkleExecute": 0, "MerkleUnwind": 0,
          "Prune": 0, "PruneSenderRecovery": 0, "SenderRecovery": TIP, "StorageHashing": 0, "TransactionLookup": 0}
class Rpc(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = json.loads(body)
        result = None
        if isinstance(req, dict) and req.get("method") == "net_peerCount":
            result = "0x3"
        elif isinstance(req, dict) and req.get("method") == "eth_syncing":
            result = {"startingBlock": "0x0", "currentBlock": "0x0", "highestBlock": "0x0",
                      "stages": [{"name": n, "block": hex(b)} for n, b in sorted(STAGES.items())]}
        if result is not None:
            data = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": result}).encode()
        else:
            try:
                data = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{inner}/", body, {"Content-Type": "application/json"}), timeout=5).read()
            except Exception:
                self.send_response(502); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(data)
class Metrics(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        processed = 1000000000 + int((time.time() - start) * 50000)
        lines = ["# TYPE reth_sync_checkpoint gauge"]
        lines += [f'reth_sync_checkpoint{{stage="{n}"}} {b}' for n, b in STAGES.items()]
        lines += ["# TYPE reth_sync_entities_processed gauge",
                  f'reth_sync_entities_processed{{stage="Execution"}} {processed}',
                  "# TYPE reth_sync_entities_total gauge",
                  'reth_sync_entities_total{stage="Execution"} 2000000000',
                  "reth_network_connected_peers 3"]
        data = ("\n".join(lines) + "\n").encode()
        self.send_response(200); self.send_header("Content-Type", "text/plain; version=0.0.4"); self.end_headers()
        self.wfile.write(data)
threading.Thread(target=ThreadingHTTPServer(("127.0.0.1", metrics), Metrics).serve_forever, daemon=True).start()
HTTPServer(("127.0.0.1", port), Rpc).serve_forever()
"##;

/// A mainnet-profile node in `d`: `reth` (anvil, optionally behind the peers proxy), the beacon stand-in
/// reading `d/beacon-state`, and the config. Returns the config path and the agent's port.
fn mainnet_node(
    d: &std::path::Path,
    min_peers: u64,
    with_peers: bool,
) -> (std::path::PathBuf, u16) {
    mainnet_node_with(d, min_peers, with_peers.then_some(RETH_WITH_PEERS))
}

/// As [`mainnet_node`], with `reth` the given Python stand-in (called with an inner port and anvil's path
/// before Reth's own flags), or a bare anvil when none.
fn mainnet_node_with(
    d: &std::path::Path,
    min_peers: u64,
    reth: Option<&str>,
) -> (std::path::PathBuf, u16) {
    let state = d.join("beacon-state");
    beacon(d, json!({}));
    std::fs::write(d.join("beacon.py"), BEACON).unwrap();
    let (http, consensus_http, agent) = (free_port(), free_port(), free_port());
    if let Some(reth) = reth {
        std::fs::write(d.join("reth.py"), reth).unwrap();
        script(
            &d.join("reth"),
            &format!(
                "exec {} {} {} {} \"$@\"",
                tool("python").display(),
                d.join("reth.py").display(),
                free_port(),
                tool("anvil").display()
            ),
        );
    } else {
        // `reth node … --http.port P …` → anvil on P with a block a second.
        script(
            &d.join("reth"),
            &format!(
                "while [ \"$1\" != --http.port ]; do shift; done\nexec {} --port \"$2\" --host 127.0.0.1 --block-time 1",
                tool("anvil").display()
            ),
        );
    }
    script(
        &d.join("lighthouse"),
        &format!(
            "exec {} {} \"$@\" {} http://127.0.0.1:{http}/",
            tool("python").display(),
            d.join("beacon.py").display(),
            state.display()
        ),
    );
    let config = d.join("ethnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{dir}/data\"\n[execution]\nbinary = \"{dir}/reth\"\n\
             [consensus]\nbinary = \"{dir}/lighthouse\"\ncheckpoint_sync_urls = [\"http://127.0.0.1:9/\"]\n{ports}\
             [readiness]\ncheck_interval_secs = 1\nmax_head_age_secs = 10\nmin_peers = {min_peers}\n\
             fail_after = 2\npass_after = 2\n",
            ports = mainnet_ports(http, consensus_http, agent),
            dir = d.display()
        ),
    )
    .unwrap();
    (config, agent)
}

/// A mainnet-profile node (Reth and Lighthouse stand-ins over real HTTP) reaches ready == true: every
/// check passes, `/health/ready` answers 200, and it falls out of ready when its consensus head is only
/// optimistic.
#[tokio::test]
async fn a_mainnet_profile_node_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, agent) = mainnet_node(d, 1, true);
    let _agent = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let ready = format!("http://127.0.0.1:{agent}/health/ready");
    let status = wait_for("ready", Duration::from_secs(40), || async {
        let (code, s) = get_json(&ready).await?;
        (code == 200).then_some(s)
    })
    .await;
    assert!(failing(&status).is_empty(), "{status}");
    let (_, status) = get_json(&format!("http://127.0.0.1:{agent}/status"))
        .await
        .unwrap();
    assert_eq!(status["ready"], json!(true), "{status}");
    assert_eq!(status["peers"], json!(3), "{status}");
    assert_eq!(status["consensus"]["peers"], json!(50), "{status}");
    beacon(d, json!({"optimistic": true}));
    let status = wait_for(
        "not ready when the consensus head is optimistic",
        Duration::from_secs(15),
        || async {
            let (code, s) = get_json(&ready).await?;
            (code == 503).then_some(s)
        },
    )
    .await;
    assert_eq!(failing(&status), vec!["consensus_synced"], "{status}");
}

#[tokio::test]
async fn mainnet_readiness_reads_the_beacon_api_and_the_execution_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, agent) = mainnet_node(d, 0, false);
    let _agent = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let status_url = format!("http://127.0.0.1:{agent}/status");

    // Execution synced and at the consensus head: every check passes but `peers`, because anvil has no
    // net_peerCount (Reth has).
    let status = wait_for("checks settled", Duration::from_secs(30), || async {
        let (_, s) = get_json(&status_url).await?;
        (failing(&s) == vec!["peers".to_string()]).then_some(s)
    })
    .await;
    assert_eq!(status["network"], json!("mainnet"));
    assert_eq!(status["clients"].as_array().unwrap().len(), 2);
    assert!(status["head"]["age_secs"].as_u64().unwrap() <= 10);
    let c = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!("execution_head"))
        .unwrap();
    assert!(c["value"].as_i64().unwrap().abs() <= 1, "{c}");

    // The beacon node says it is syncing: not ready, and the stage says which side is behind.
    beacon(d, json!({"syncing": true, "distance": 64}));
    let status = wait_for("consensus syncing", Duration::from_secs(15), || async {
        let (_, s) = get_json(&status_url).await?;
        (s["consensus_sync_distance"] == json!(64)).then_some(s)
    })
    .await;
    let f = failing(&status);
    assert!(f.contains(&"consensus_synced".to_string()), "{f:?}");
    assert!(f.contains(&"consensus_sync_distance".to_string()), "{f:?}");
    assert_eq!(status["sync"]["stage"], json!("consensus-syncing"));

    // Caught up, but its execution client is offline: still not ready.
    beacon(d, json!({"el_offline": true}));
    let status = wait_for("el offline", Duration::from_secs(15), || async {
        let (_, s) = get_json(&status_url).await?;
        let c = s["checks"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == json!("consensus_synced"))?
            .clone();
        (c["detail"].as_str()?.contains("offline")).then_some(s)
    })
    .await;
    assert!(failing(&status).contains(&"consensus_synced".to_string()));
}

/// Stops anvil's block production (its interval mining), as a stalled execution client or a run of missed
/// slots both look from the execution side.
async fn pause_mining(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let http: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("http = "))
        .unwrap()
        .parse()
        .unwrap();
    rpc(
        &format!("http://127.0.0.1:{http}/"),
        "evm_setIntervalMining",
        json!([0]),
    )
    .await
    .expect("anvil pauses mining");
}

/// Missed slots: no block for 4 slots (the test chain's slot is one second), the consensus head stuck
/// with the execution head and falling behind the clock. Every node in the world sees this at once; the
/// node must stay ready through it (the old rule, head age at most 3 slots, took it out).
#[tokio::test]
async fn missed_slots_keep_the_node_ready() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, agent) = mainnet_node(d, 1, true);
    let _agent = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let ready = format!("http://127.0.0.1:{agent}/health/ready");
    let status_url = format!("http://127.0.0.1:{agent}/status");
    wait_for("ready", Duration::from_secs(40), || async {
        let (code, _) = get_json(&ready).await?;
        (code == 200).then_some(())
    })
    .await;
    pause_mining(&config).await;
    // Watch every readiness answer until the head is 4 slots old: each one must be 200.
    let mut answers = 0;
    let status = wait_for("four missed slots", Duration::from_secs(20), || {
        answers += 1;
        async {
            let (code, _) = get_json(&ready).await?;
            assert_eq!(
                code, 200,
                "a node at the chain's head went unready during missed slots"
            );
            let (_, s) = get_json(&status_url).await?;
            (s["head"]["age_secs"].as_u64()? >= 4 && s["consensus_sync_distance"].as_u64()? >= 3)
                .then_some(s)
        }
    })
    .await;
    assert!(answers > 3, "watched {answers} answers");
    assert_eq!(status["ready"], json!(true), "{status}");
}

/// The execution client stalls while the chain goes on: the node is taken out within a bounded time
/// (the one-block import tolerance plus `fail_after` checks), and the check says why.
#[tokio::test]
async fn a_stalled_execution_client_goes_unready_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, agent) = mainnet_node(d, 1, true);
    let _agent = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let ready = format!("http://127.0.0.1:{agent}/health/ready");
    wait_for("ready", Duration::from_secs(40), || async {
        let (code, _) = get_json(&ready).await?;
        (code == 200).then_some(())
    })
    .await;
    pause_mining(&config).await;
    beacon(d, json!({"mode": "advance"}));
    let stalled = std::time::Instant::now();
    let status = wait_for("unready", Duration::from_secs(30), || async {
        let (code, s) = get_json(&ready).await?;
        (code == 503).then_some(s)
    })
    .await;
    let took = stalled.elapsed();
    // Two blocks to exceed the tolerance, two checks a second apart, a check interval of slack.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(failing(&status), vec!["execution_head"], "{status}");
}

/// A syncing Reth: `/status` shows the stage running in pipeline order (not the alphabetical first of
/// `eth_syncing`'s list), the target from the consensus head, and an ETA from the rate its metrics show.
#[tokio::test]
async fn a_syncing_reth_shows_its_pipeline_stage_and_an_eta_from_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, agent) = mainnet_node_with(d, 1, Some(RETH_SYNCING));
    // The chain has moved on since this pipeline run began (its Headers target is 21,000,000).
    beacon(d, json!({"block": 21_000_100}));
    let _agent = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let status_url = format!("http://127.0.0.1:{agent}/status");
    let status = wait_for("a stage ETA", Duration::from_secs(30), || async {
        let (_, s) = get_json(&status_url).await?;
        s["sync"]["eta_secs"].as_f64().map(|_| s)
    })
    .await;
    let sync = &status["sync"];
    assert_eq!(sync["stage"], json!("syncing:Execution"), "{sync}");
    // Present here: every stage but Era; Execution is the 4th of 14.
    assert_eq!(
        (sync["stage_index"].clone(), sync["stages"].clone()),
        (json!(4), json!(14)),
        "{sync}"
    );
    assert_eq!(sync["highest_block"], json!(21_000_100), "{sync}");
    assert_eq!(sync["current_block"], json!(0), "{sync}");
    assert_eq!(sync["eta_of"], json!("stage Execution"), "{sync}");
    // ~1e9 entities left at 50,000/s: ~20,000 s (the rate is measured over real, slightly jittery time).
    let eta = sync["eta_secs"].as_f64().unwrap();
    assert!((15_000.0..25_000.0).contains(&eta), "{sync}");
    assert_eq!(status["ready"], json!(false));
    assert!(failing(&status).contains(&"execution_synced".to_string()));
}

/// Nimbus's checkpoint sync is a separate command: the agent runs it before the node until it has once
/// succeeded — a failed attempt that left a half-written database is cleaned up and retried, not mistaken
/// for done — then the node itself (here a beacon-API stand-in), which becomes ready; a second start of the
/// agent does not run it again.
#[tokio::test]
async fn nimbus_checkpoint_sync_runs_before_the_node_until_it_succeeds_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, agent) = mainnet_node(d, 1, true);
    // The stand-in: `trustedNodeSync` records its arguments and whether it found leftovers; the first
    // attempt leaves a partial database and fails, the next makes it and succeeds. Anything else serves
    // the beacon API.
    let db = d.join("data/nimbus/db");
    script(
        &d.join("nimbus"),
        &format!(
            "if [ \"$1\" = trustedNodeSync ]; then\n\
               if [ -e {db}/partial ]; then echo \"leftover $*\" >> {log}; else echo \"clean $*\" >> {log}; fi\n\
               mkdir -p {db}\n\
               if [ ! -e {d}/failed-once ]; then touch {d}/failed-once {db}/partial; exit 1; fi\n\
               exit 0\n\
             fi\n\
             exec {lighthouse} \"$@\"",
            db = db.display(),
            d = d.display(),
            log = d.join("prelude.log").display(),
            lighthouse = d.join("lighthouse").display(),
        ),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[consensus]\n", "[consensus]\nclient = \"nimbus\"\n")
        .replace(
            &format!("{}/lighthouse\"", d.display()),
            &format!("{}/nimbus\"", d.display()),
        )
        + "[agent]\nrestart_initial_ms = 100\n";
    std::fs::write(&config, text).unwrap();
    for round in 1..=2 {
        let mut node = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
        let ready = format!("http://127.0.0.1:{agent}/health/ready");
        wait_for("ready", Duration::from_secs(40), || async {
            let (code, _) = get_json(&ready).await?;
            (code == 200).then_some(())
        })
        .await;
        let log = std::fs::read_to_string(d.join("prelude.log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        // Two attempts, each starting clean (the failed one's leftovers removed), in round 1 only.
        assert_eq!(lines.len(), 2, "round {round}: {log}");
        assert!(lines.iter().all(|l| l.starts_with("clean ")), "{log}");
        assert!(
            log.contains("--trusted-node-url=http://127.0.0.1:9/")
                && log.contains("--backfill=false"),
            "{log}"
        );
        assert!(d.join("data/nimbus/.ethnode-checkpoint-synced").exists());
        node.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(node.wait(Duration::from_secs(30)).await.success());
    }
}
