//! The CLI's user-facing paths: `up --dev` end to end, config errors, a port in use, missing clients.

use crate::harness::*;
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn up_dev_serves_a_real_chain_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (http, agent_port) = (free_port(), free_port());
    let mut up = Ethnode::spawn(
        dir.path(),
        &["up", "--dev"],
        &[
            ("ETHNODE_PORTS_HTTP", http.to_string()),
            ("ETHNODE_PORTS_AGENT", agent_port.to_string()),
            (
                "ETHNODE_EXECUTION_BINARY",
                tool("anvil").display().to_string(),
            ),
            ("ETHNODE_READINESS_CHECK_INTERVAL_SECS", "1".into()),
        ],
    );
    let out = wait_for("printed URLs", Duration::from_secs(20), || async {
        let out = up.stdout_text();
        out.contains("Ctrl-C to stop").then_some(out)
    })
    .await;
    let rpc_url = format!("http://127.0.0.1:{http}/");
    assert!(out.contains(&format!("RPC      {rpc_url}")), "{out}");
    assert!(
        out.contains(&format!("WS       ws://127.0.0.1:{http}/")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "health   http://127.0.0.1:{agent_port}/health/ready"
        )),
        "{out}"
    );

    // A real client, cast, reads the chain through the printed endpoint.
    let blocks = wait_for("cast block-number ≥ 1", Duration::from_secs(20), || async {
        let o = std::process::Command::new(tool("cast"))
            .args(["block-number", "--rpc-url", &rpc_url])
            .output()
            .ok()?;
        let n: u64 = String::from_utf8_lossy(&o.stdout).trim().parse().ok()?;
        (n >= 1).then_some(n)
    })
    .await;
    assert!(blocks >= 1);
    let ready = format!("http://127.0.0.1:{agent_port}/health/ready");
    let (_, body) = wait_for("ready", Duration::from_secs(20), || async {
        get_json(&ready).await.filter(|(c, _)| *c == 200)
    })
    .await;
    assert_eq!(body["ready"], json!(true));
    assert!(dir.path().join(".ethnode-dev/anvil").is_dir());

    up.signal(Signal::SIGINT);
    let exit = up.wait(Duration::from_secs(20)).await;
    assert!(exit.success(), "{}", up.stderr_text());
    assert!(up.stdout_text().contains("stopped."));
    assert!(
        dir.path().join(".ethnode-dev/anvil/state.json").is_file(),
        "anvil state not dumped"
    );
}

#[tokio::test]
async fn port_in_use_names_the_port_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut up = Ethnode::spawn(
        dir.path(),
        &["up", "--dev"],
        &[
            ("ETHNODE_PORTS_HTTP", port.to_string()),
            ("ETHNODE_PORTS_AGENT", free_port().to_string()),
            (
                "ETHNODE_EXECUTION_BINARY",
                tool("anvil").display().to_string(),
            ),
        ],
    );
    let exit = up.wait(Duration::from_secs(15)).await;
    let err = up.stderr_text();
    assert!(!exit.success());
    assert!(
        err.contains(&format!(
            "port {port}/tcp on 127.0.0.1 is already in use (ports.http)"
        )),
        "{err}"
    );
    assert!(err.contains("ETHNODE_PORTS_HTTP"), "{err}");
}

#[tokio::test]
async fn up_without_clients_says_what_is_missing_and_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Ethnode::spawn(
        dir.path(),
        &[
            "up",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ],
        &[("PATH", "/nonexistent".into())],
    );
    let exit = up.wait(Duration::from_secs(15)).await;
    let err = up.stderr_text();
    assert!(!exit.success());
    assert!(err.contains("missing client binaries"), "{err}");
    assert!(
        err.contains("reth (`reth`)") && err.contains("github.com/paradigmxyz/reth/releases"),
        "{err}"
    );
    assert!(
        err.contains("lighthouse (`lighthouse`)")
            && err.contains("github.com/sigp/lighthouse/releases"),
        "{err}"
    );
}

#[tokio::test]
async fn config_check_prints_resolved_config_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[node]\nnetwork = \"sepolia\"\n").unwrap();
    let mut ok = Ethnode::spawn(
        dir.path(),
        &["config", "check", "--config", good.to_str().unwrap()],
        &[("ETHNODE_PORTS_HTTP", "18545".into())],
    );
    assert!(
        ok.wait(Duration::from_secs(10)).await.success(),
        "{}",
        ok.stderr_text()
    );
    let out = ok.stdout_text();
    assert!(out.contains("network = \"sepolia\""), "{out}");
    assert!(out.contains("http = 18545"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[node]\nnetwork = \"sepolia\"\n\n[ports]\nhtpp = 1\n").unwrap();
    let mut err = Ethnode::spawn(
        dir.path(),
        &["config", "check", "--config", bad.to_str().unwrap()],
        &[],
    );
    let exit = err.wait(Duration::from_secs(10)).await;
    assert_eq!(exit.code(), Some(2));
    let text = err.stderr_text();
    assert!(
        text.contains("line 5") && text.contains("unknown field `htpp`"),
        "{text}"
    );
    assert!(text.contains("ethnode.example.toml"), "{text}");

    let mut clash = Ethnode::spawn(
        dir.path(),
        &["config", "check", "--config", good.to_str().unwrap()],
        &[("ETHNODE_PORTS_AGENT", "8545".into())],
    );
    assert_eq!(clash.wait(Duration::from_secs(10)).await.code(), Some(2));
    let text = clash.stderr_text();
    assert!(
        text.contains("ports.agent") && text.contains("also used by"),
        "{text}"
    );
}

/// A planted key and token appear on no surface: `config check`, the agent's log, `/status`,
/// `/health/ready`, `/metrics` — even when the reference that carries the key fails and its transport
/// error quotes the URL.
#[tokio::test]
async fn a_planted_secret_surfaces_nowhere() {
    const KEY: &str = "PLANTEDKEY0123456789abcdef";
    const TOKEN: &str = "PLANTED-ADMIN-TOKEN-42";
    let node = crate::harness::DevNode::new("");
    let dead = crate::harness::free_port();
    let env = vec![
        (
            "ETHNODE_READINESS_REFERENCE_RPC",
            format!("http://127.0.0.1:{dead}/v3/{KEY}"),
        ),
        ("ETHNODE_AGENT_ADMIN_TOKEN", TOKEN.to_string()),
    ];
    let cfg = node.config.to_str().unwrap().to_string();
    let (code, out, err) = crate::harness::run_ethnode(
        node.dir.path(),
        &["config", "check", "--config", &cfg],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(KEY) && !out.contains(TOKEN), "{out}");
    assert!(out.contains("--show-secrets"), "{out}");
    let (_, shown, _) = crate::harness::run_ethnode(
        node.dir.path(),
        &["config", "check", "--show-secrets", "--config", &cfg],
        &env,
    )
    .await;
    assert!(
        shown.contains(KEY) && shown.contains(TOKEN),
        "--show-secrets shows them: {shown}"
    );

    let agent = node.agent(&env);
    // The failing reference is reported (and skipped) in /status.
    let status =
        crate::harness::wait_for("the reference failing", Duration::from_secs(30), || async {
            let (_, s) = crate::harness::get_json(&node.api("/status")).await?;
            s["checks"].as_array()?.iter().find(|c| {
                c["name"] == serde_json::json!("reference_lag")
                    && c["detail"].as_str().is_some_and(|d| d.contains("failing"))
            })?;
            Some(s)
        })
        .await;
    let ready = crate::harness::get_text(&node.api("/health/ready"))
        .await
        .unwrap();
    let metrics = crate::harness::get_text(&node.api("/metrics"))
        .await
        .unwrap();
    for (surface, text) in [
        ("/status", status.to_string()),
        ("/health/ready", ready),
        ("/metrics", metrics),
        ("log", agent.stderr_text()),
    ] {
        assert!(!text.contains(KEY), "{surface} shows the key: {text}");
        assert!(!text.contains(TOKEN), "{surface} shows the token: {text}");
    }
}

/// The default mainnet node keeps every post-Merge receipt (`eth_getLogs` over any post-Merge range), and
/// says so in its dry run.
#[tokio::test]
async fn the_default_mainnet_node_keeps_post_merge_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ethnode.toml");
    std::fs::write(
        &config,
        format!("[node]\ndata_dir = \"{}/data\"\n", dir.path().display()),
    )
    .unwrap();
    let (code, out, err) = crate::harness::run_ethnode(
        dir.path(),
        &["agent", "--dry-run", "--config", config.to_str().unwrap()],
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            "http://127.0.0.1:9".into(),
        )],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["execution_mode"], serde_json::json!("post-merge"));
    let args: Vec<String> = serde_json::from_value(plan["clients"][0]["args"].clone()).unwrap();
    assert!(
        args.contains(&"--full".into()) && args.contains(&"--prune.receipts.pre-merge".into()),
        "{args:?}"
    );
    // Nothing was created by a dry run.
    assert!(!dir.path().join("data").exists());
}

/// A data directory created in one storage mode is not started in another: the agent refuses with the
/// reason and the fix, and leaves the data as it was.
#[tokio::test]
async fn a_storage_mode_change_on_existing_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reth_dir = d.join("data/reth");
    std::fs::create_dir_all(reth_dir.join("mainnet")).unwrap();
    std::fs::write(reth_dir.join(".ethnode-storage-mode"), "full\n").unwrap();
    let config = d.join("ethnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{dir}/data\"\n[execution]\nbinary = \"/bin/true\"\n\
             [consensus]\nbinary = \"/bin/true\"\n{ports}",
            dir = d.display(),
            ports = mainnet_ports(free_port(), free_port(), free_port()),
        ),
    )
    .unwrap();
    let (code, _, err) = crate::harness::run_ethnode(
        d,
        &["agent", "--config", config.to_str().unwrap()],
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            "http://127.0.0.1:9".into(),
        )],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("holds a `full` node, and execution.mode is `post-merge`"),
        "{err}"
    );
    assert!(err.contains("execution.mode = \"full\""), "{err}");
    assert_eq!(
        std::fs::read_to_string(reth_dir.join(".ethnode-storage-mode")).unwrap(),
        "full\n"
    );
    assert!(reth_dir.join("mainnet").exists());
}
