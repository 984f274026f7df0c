//! A real execution client under the agent: `@ethereumjs/client` (npm) with its JWT-authenticated Engine
//! API, driven from the consensus side by a small Engine-API driver (`engine_driver.py`) that also serves
//! the beacon API (no consensus client installs here). The agent creates the JWT both sides use, supervises
//! the client, and judges readiness from the real head it reaches through the Engine API.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::Duration;

/// A post-Merge chain from genesis (terminal total difficulty 0, Shanghai at 0), starting now.
fn genesis(now: u64) -> String {
    json!({
        "config": {
            "chainId": 1337, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
            "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0,
            "muirGlacierBlock": 0, "berlinBlock": 0, "londonBlock": 0, "mergeNetsplitBlock": 0,
            "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true, "shanghaiTime": 0
        },
        "nonce": "0x0", "timestamp": format!("0x{now:x}"), "extraData": "0x", "gasLimit": "0x1c9c380",
        "difficulty": "0x0", "mixHash": format!("0x{}", "00".repeat(32)),
        "coinbase": format!("0x{}", "00".repeat(20)), "alloc": {}, "number": "0x0", "gasUsed": "0x0",
        "parentHash": format!("0x{}", "00".repeat(32)), "baseFeePerGas": "0x7"
    })
    .to_string()
}

fn status_url_of(agent: u16) -> String {
    format!("http://127.0.0.1:{agent}/status")
}

/// On a failure, the agent's log and last status say why (the temporary directory is gone after).
struct ShowOnPanic<'a>(&'a Ethnode, String);

impl Drop for ShowOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.stderr_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- agent log (last 40 lines, newest first) ---\n{}",
                tail.join("\n")
            );
            if let Ok(s) = std::process::Command::new("curl")
                .args(["-s", &self.1])
                .output()
            {
                eprintln!("--- status ---\n{}", String::from_utf8_lossy(&s.stdout));
            }
        }
    }
}

fn check<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!(name))
        .unwrap_or_else(|| panic!("no {name} check: {status}"))
}

/// The agent starts ethereumjs (Reth's flags mapped onto it) with the JWT it created, the driver makes
/// real blocks through the Engine API, and the node is ready at the consensus head. Killed with SIGKILL,
/// the client is restarted by the agent, reopens its database and the node is ready again, its chain
/// intact.
#[tokio::test]
async fn a_real_execution_client_with_the_agents_jwt_reaches_ready_and_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(d.join("genesis.json"), genesis(now)).unwrap();
    // `reth node … --datadir D --http.port P --authrpc.port A --authrpc.jwtsecret J …` → ethereumjs.
    script(
        &d.join("reth"),
        &format!(
            "while [ $# -gt 0 ]; do case \"$1\" in\n\
               --datadir) data=$2; shift;; --http.port) http=$2; shift;;\n\
               --authrpc.port) auth=$2; shift;; --authrpc.jwtsecret) jwt=$2; shift;;\n\
             esac; shift; done\n\
             exec {ejs} --gethGenesis {genesis} --dataDir \"$data\" --rpc --rpcAddr 127.0.0.1 --rpcPort \"$http\" \
             --rpcEngine --rpcEngineAddr 127.0.0.1 --rpcEnginePort \"$auth\" --rpcEngineAuth true \
             --jwtSecret \"$jwt\" --isSingleNode --port 0 --maxPeers 0 --logFile false",
            ejs = tool("ethereumjs").display(),
            genesis = d.join("genesis.json").display(),
        ),
    );
    script(
        &d.join("lighthouse"),
        &format!(
            "exec {} {} \"$@\"",
            tool("python").display(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/engine_driver.py"),
        ),
    );
    let (http, consensus_http, agent) = (free_port(), free_port(), free_port());
    let config = d.join("ethnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{dir}/data\"\n[execution]\nbinary = \"{dir}/reth\"\n\
             [consensus]\nbinary = \"{dir}/lighthouse\"\ncheckpoint_sync_urls = [\"http://127.0.0.1:9/\"]\n{ports}\
             [readiness]\ncheck_interval_secs = 1\nmax_head_age_secs = 10\nmin_peers = 0\nfail_after = 2\npass_after = 2\n\
             [agent]\nrestart_initial_ms = 200\n",
            dir = d.display(),
            ports = mainnet_ports(http, consensus_http, agent),
        ),
    )
    .unwrap();
    let node = Ethnode::spawn(d, &["agent", "--config", config.to_str().unwrap()], &[]);
    let _shown = ShowOnPanic(&node, status_url_of(agent));
    let status_url = format!("http://127.0.0.1:{agent}/status");
    let ready_url = format!("http://127.0.0.1:{agent}/health/ready");
    let ready = || async {
        let (code, _) = get_json(&ready_url).await?;
        let (_, s) = get_json(&status_url).await?;
        (code == 200 && s["head"]["number"].as_u64()? >= 3).then_some(s)
    };
    let status = wait_for(
        "ready on a real execution client",
        Duration::from_secs(90),
        ready,
    )
    .await;
    // The JWT is the agent's, 0600, and both sides authenticated with it (blocks were made).
    let jwt = d.join("data/jwt.hex");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&jwt).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let head = check(&status, "execution_head");
    assert_eq!(head["ok"], json!(true), "{status}");
    assert!(head["value"].as_i64().unwrap().abs() <= 1, "{head}");
    assert_eq!(status["sync"]["stage"], json!("synced"), "{status}");
    let before = status["head"]["number"].as_u64().unwrap();
    let rpc_url = format!("http://127.0.0.1:{http}/");
    let hash_at = |n: u64| {
        let url = rpc_url.clone();
        async move {
            let b = rpc(
                &url,
                "eth_getBlockByNumber",
                json!([format!("0x{n:x}"), false]),
            )
            .await?;
            b["hash"].as_str().map(String::from)
        }
    };
    let hash_before = hash_at(before).await.expect("block at the head");
    // The Engine API the blocks came through refuses a caller without the token.
    let authrpc: u16 = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("authrpc = "))
        .unwrap()
        .parse()
        .unwrap();
    let unauthenticated = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{authrpc}/"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "engine_exchangeCapabilities", "params": [[]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);

    // SIGKILL the real client: readiness drops, the agent restarts it, it comes back at head.
    let pid = status["clients"][0]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(
        "not ready after the kill",
        Duration::from_secs(15),
        || async {
            let (code, _) = get_json(&ready_url).await?;
            (code == 503).then_some(())
        },
    )
    .await;
    let status = wait_for("ready again", Duration::from_secs(90), || async {
        let s = ready().await?;
        (s["clients"][0]["restarts"].as_u64()? >= 1).then_some(s)
    })
    .await;
    // It reopened its database where it was: the block it had at that height is the same one (a chain
    // rebuilt from genesis would have other hashes: other timestamps) …
    let after = status["head"]["number"].as_u64().unwrap();
    assert!(
        after >= before,
        "the chain lost blocks: {before} -> {after}"
    );
    assert_eq!(
        hash_at(before).await,
        Some(hash_before),
        "block {before} changed after the restart"
    );
    // … and goes on, driven through the Engine API again.
    let status = wait_for(
        "new blocks after the restart",
        Duration::from_secs(30),
        || async {
            let s = ready().await?;
            (s["head"]["number"].as_u64()? > after).then_some(s)
        },
    )
    .await;
    assert_eq!(
        check(&status, "consensus_synced")["ok"],
        json!(true),
        "{status}"
    );
}
