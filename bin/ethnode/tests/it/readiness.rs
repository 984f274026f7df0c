//! The mainnet profile's readiness checks against real HTTP endpoints: the execution side is a real anvil
//! (started by a `reth` wrapper that maps Reth's flags onto anvil's), the consensus side a small beacon-API
//! stand-in (no Lighthouse can run here) whose `/eth/v1/node/syncing` answer the test controls.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::Duration;

const BEACON: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, state = int(sys.argv[sys.argv.index("--http-port") + 1]), sys.argv[-1]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/eth/v1/node/syncing":
            distance, offline = open(state).read().split()
            body = {"data": {"head_slot": "100", "sync_distance": distance, "is_syncing": distance != "0",
                             "is_optimistic": False, "el_offline": offline == "1"}}
        elif self.path == "/eth/v1/node/version":
            body = {"data": {"version": "Lighthouse/v8.0.1-fake"}}
        else:
            self.send_response(404); self.end_headers(); return
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(data)
HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

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

/// A mainnet-profile node in `d`: `reth` (anvil, optionally behind the peers proxy), the beacon stand-in
/// reading `d/beacon-state`, and the config. Returns the config path and the agent's port.
fn mainnet_node(
    d: &std::path::Path,
    min_peers: u64,
    with_peers: bool,
) -> (std::path::PathBuf, u16) {
    let state = d.join("beacon-state");
    std::fs::write(&state, "0 0").unwrap();
    std::fs::write(d.join("beacon.py"), BEACON).unwrap();
    if with_peers {
        std::fs::write(d.join("reth.py"), RETH_WITH_PEERS).unwrap();
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
            "exec {} {} \"$@\" {}",
            tool("python").display(),
            d.join("beacon.py").display(),
            state.display()
        ),
    );
    let (http, consensus_http, agent) = (free_port(), free_port(), free_port());
    let config = d.join("ethnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{dir}/data\"\n[execution]\nbinary = \"{dir}/reth\"\n\
             [consensus]\nbinary = \"{dir}/lighthouse\"\n{ports}\
             [readiness]\ncheck_interval_secs = 1\nmax_head_age_secs = 10\nmin_peers = {min_peers}\n",
            ports = mainnet_ports(http, consensus_http, agent),
            dir = d.display()
        ),
    )
    .unwrap();
    (config, agent)
}

/// A mainnet-profile node (Reth and Lighthouse stand-ins over real HTTP) reaches ready == true: every
/// check passes, `/health/ready` answers 200, and it falls out of ready when the consensus side lags.
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
    std::fs::write(d.join("beacon-state"), "64 0").unwrap();
    wait_for(
        "not ready when consensus lags",
        Duration::from_secs(15),
        || async {
            let (code, _) = get_json(&ready).await?;
            (code == 503).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn mainnet_readiness_reads_the_beacon_api_and_the_execution_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = d.join("beacon-state");
    let (config, agent) = mainnet_node(d, 0, false);
    let _agent = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let status_url = format!("http://127.0.0.1:{agent}/status");

    // Execution synced with a fresh head, consensus at distance 0: every check passes but `peers`,
    // because anvil has no net_peerCount (Reth has).
    let status = wait_for("checks settled", Duration::from_secs(30), || async {
        let (_, s) = get_json(&status_url).await?;
        (failing(&s) == vec!["peers".to_string()] && s["consensus_sync_distance"] == json!(0))
            .then_some(s)
    })
    .await;
    assert_eq!(status["network"], json!("mainnet"));
    assert_eq!(status["clients"].as_array().unwrap().len(), 2);
    assert!(status["head"]["age_secs"].as_u64().unwrap() <= 10);

    // The beacon node falls behind: the consensus check fails and says by how much.
    std::fs::write(&state, "64 0").unwrap();
    let status = wait_for("consensus behind", Duration::from_secs(15), || async {
        let (_, s) = get_json(&status_url).await?;
        (s["consensus_sync_distance"] == json!(64)).then_some(s)
    })
    .await;
    assert!(failing(&status).contains(&"consensus_sync_distance".to_string()));
    assert_eq!(status["sync"]["stage"], json!("consensus-syncing"));

    // Caught up, but its execution client is offline: still not ready.
    std::fs::write(&state, "0 1").unwrap();
    let status = wait_for("el offline", Duration::from_secs(15), || async {
        let (_, s) = get_json(&status_url).await?;
        let c = s["checks"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == json!("consensus_sync_distance"))?
            .clone();
        (c["detail"].as_str()?.contains("offline")).then_some(s)
    })
    .await;
    assert!(failing(&status).contains(&"consensus_sync_distance".to_string()));
}
