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

#[tokio::test]
async fn mainnet_readiness_reads_the_beacon_api_and_the_execution_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = d.join("beacon-state");
    std::fs::write(&state, "0 0").unwrap();
    std::fs::write(d.join("beacon.py"), BEACON).unwrap();
    // `reth node … --http.port P …` → anvil on P with a block a second.
    script(
        &d.join("reth"),
        &format!(
            "while [ \"$1\" != --http.port ]; do shift; done\nexec {} --port \"$2\" --host 127.0.0.1 --block-time 1",
            tool("anvil").display()
        ),
    );
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
             [readiness]\ncheck_interval_secs = 1\nmax_head_age_secs = 10\nmin_peers = 0\n",
            ports = mainnet_ports(http, consensus_http, agent),
            dir = d.display()
        ),
    )
    .unwrap();
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
