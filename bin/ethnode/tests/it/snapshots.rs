//! Snapshot lifecycle with the real CLI, a real agent on anvil, and moto as EC2 and CloudFormation:
//! create (through the agent) → list → promote → prune; refusal when not ready; automatic mode.

use crate::harness::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Deploys `stack` on moto from a config file in `dir`.
async fn deploy(moto: &Moto, dir: &Path, stack: &str) {
    let (vpc, subnet) = moto.network();
    let path = dir.join("stack.toml");
    // A reference whose key is a ${VAR}: the stack parameter holds the template, never the key.
    std::fs::write(
        &path,
        stack_config(stack, &vpc, &subnet)
            + "[monitor]\nreferences = [\"https://ref.example/v3/${REF_KEY}\"]\n",
    )
    .unwrap();
    let mut env = moto.env();
    env.push(("REF_KEY", "k3y".into()));
    let (code, out, err) = run_ethnode(
        dir,
        &[
            "deploy",
            "--yes",
            "--poll-secs",
            "1",
            "--config",
            path.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
}

fn snapshot_tags(moto: &Moto, id: &str) -> Value {
    let out = moto.aws(&["ec2", "describe-snapshots", "--snapshot-ids", id]);
    let mut tags = serde_json::Map::new();
    for t in out["Snapshots"][0]["Tags"].as_array().unwrap() {
        tags.insert(t["Key"].as_str().unwrap().into(), t["Value"].clone());
    }
    Value::Object(tags)
}

#[tokio::test]
async fn create_list_promote_prune_end_to_end() {
    const STACK: &str = "ethnode-snap";
    let moto = Moto::start().await;
    let work = tempfile::tempdir().unwrap();
    deploy(&moto, work.path(), STACK).await;
    let volume = moto.volume();
    let node = DevNode::new(&format!(
        "[aws]\nstack_name = \"{STACK}\"\n[snapshot]\nvolume_id = \"{volume}\"\n"
    ));
    let _agent = node.agent(&moto.env());
    let before = node.wait_ready(Duration::from_secs(30)).await;
    let pid_before = before["clients"][0]["pid"].as_u64().unwrap();
    let cfg = node.config.to_str().unwrap().to_string();
    let agent_url = node.api("");

    // create: the agent stops anvil, snapshots, restarts it; the CLI follows the snapshot to completed.
    let (code, out, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot", "create", "--agent", &agent_url, "--json", "--config", &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let first: Value = serde_json::from_str(&out).unwrap();
    let first_id = first["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(first["state"], json!("completed"));
    assert_eq!(first["volume_id"], json!(volume));
    let downtime = first["downtime_secs"].as_f64().unwrap();
    assert!(downtime > 0.0);
    eprintln!("snapshot downtime on anvil: {downtime:.3}s");
    let block = first["block"].as_u64().unwrap();

    // Tags: stack, network, client and version, block number and hash, reason.
    let tags = snapshot_tags(&moto, &first_id);
    assert_eq!(tags["ethnode:stack"], json!(STACK));
    assert_eq!(tags["ethnode:network"], json!("dev"));
    assert_eq!(tags["ethnode:reason"], json!("manual"));
    assert_eq!(tags["ethnode:block"], json!(block.to_string()));
    assert!(
        tags["ethnode:execution"]
            .as_str()
            .unwrap()
            .starts_with("anvil"),
        "{tags}"
    );
    let chain_block = rpc(
        &node.rpc(),
        "eth_getBlockByNumber",
        json!([format!("{block:#x}"), false]),
    )
    .await
    .unwrap();
    assert_eq!(tags["ethnode:block-hash"], chain_block["hash"]);

    // The clients came back: a new anvil, not counted as a crash, the chain where it was.
    let after = node.wait_ready(Duration::from_secs(30)).await;
    assert_ne!(after["clients"][0]["pid"].as_u64().unwrap(), pid_before);
    assert_eq!(after["clients"][0]["restarts"], json!(0));
    assert!(after["head"]["number"].as_u64().unwrap() >= block);
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    assert!(
        metrics.contains("ethnode_snapshots_total{reason=\"manual\",result=\"ok\"} 1"),
        "{metrics}"
    );

    let (code, out, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot", "create", "--agent", &agent_url, "--json", "--config", &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let second_id = serde_json::from_str::<Value>(&out).unwrap()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    // list
    let (code, out, _) = run_ethnode(
        node.dir.path(),
        &["snapshot", "list", "--json", "--config", &cfg],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{rows:?}");
    assert!(ids.contains(&first_id.as_str()) && ids.contains(&second_id.as_str()));
    assert!(
        rows.iter()
            .all(|r| r["promoted"] == json!(false) && r["state"] == json!("completed"))
    );
    assert!(rows.iter().any(|r| r["block"] == json!(block)));

    // promote --latest: the stack's chain-snapshot parameter; the stack itself is not updated, so nothing
    // else about it can change (a change set that passed parameters back once wrote NoEcho's "****" into
    // MonitorReferences).
    let references_before = moto.stack_parameter(STACK, "MonitorReferences");
    let (code, out, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot",
            "promote",
            "--latest",
            "--yes",
            "--poll-secs",
            "1",
            "--config",
            &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        moto.current_snapshot(STACK),
        second_id,
        "--latest promotes the newest"
    );
    let stack = moto.aws(&["cloudformation", "describe-stacks", "--stack-name", STACK]);
    assert_eq!(stack["Stacks"][0]["StackStatus"], json!("CREATE_COMPLETE"));
    assert_eq!(
        moto.stack_parameter(STACK, "MonitorReferences"),
        references_before
    );
    assert!(
        references_before.contains("${REF_KEY}"),
        "{references_before}"
    );
    assert_eq!(moto.stack_parameter(STACK, "VolumeSize"), "2048");
    // A pending or unknown snapshot is refused, and the current one stays.
    let (code, _, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot",
            "promote",
            "snap-0123456789abcdef0",
            "--yes",
            "--config",
            &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(moto.current_snapshot(STACK), second_id);

    // prune --keep 0: only the promoted one survives.
    let (code, out, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot", "prune", "--keep", "0", "--yes", "--json", "--config", &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let pruned: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pruned["deleted"], json!([first_id]));
    let left = moto.aws(&[
        "ec2",
        "describe-snapshots",
        "--filters",
        &format!("Name=tag:ethnode:stack,Values={STACK}"),
    ]);
    let left: Vec<&str> = left["Snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["SnapshotId"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec![second_id.as_str()]);
}

#[tokio::test]
async fn create_is_refused_when_not_ready_and_force_overrides() {
    let moto = Moto::start().await;
    let volume = moto.volume();
    // A reference chain 100 blocks ahead: our node is "behind", so not ready.
    let ref_port = free_port();
    let mut reference = std::process::Command::new(tool("anvil"))
        .args(["--port", &ref_port.to_string(), "--host", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ref_url = format!("http://127.0.0.1:{ref_port}");
    wait_for("reference anvil", Duration::from_secs(20), || async {
        rpc(&ref_url, "anvil_mine", json!(["0x64"]))
            .await
            .map(|_| ())
    })
    .await;
    let node = DevNode::new(&format!(
        "[aws]\nstack_name = \"lonely\"\n[snapshot]\nvolume_id = \"{volume}\"\n"
    ));
    // DevNode has its own [readiness] table: the reference comes from the environment.
    let mut env = moto.env();
    env.push(("ETHNODE_READINESS_REFERENCE_RPC", ref_url.clone()));
    let _agent = node.agent(&env);
    let status = wait_for(
        "agent answering, not ready",
        Duration::from_secs(30),
        || async {
            let (_, s) = get_json(&node.api("/status")).await?;
            s["checks"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == json!("reference_lag") && c["ok"] == json!(false))?;
            Some(s)
        },
    )
    .await;
    assert_eq!(status["ready"], json!(false));
    let cfg = node.config.to_str().unwrap().to_string();
    let agent_url = node.api("");

    let (code, _, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot", "create", "--agent", &agent_url, "--config", &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("node not ready") && err.contains("reference_lag") && err.contains("--force"),
        "{err}"
    );
    let none = moto.aws(&[
        "ec2",
        "describe-snapshots",
        "--filters",
        "Name=tag:ethnode:stack,Values=lonely",
    ]);
    assert_eq!(none["Snapshots"], json!([]));

    let (code, out, err) = run_ethnode(
        node.dir.path(),
        &[
            "snapshot", "create", "--force", "--json", "--agent", &agent_url, "--config", &cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let taken: Value = serde_json::from_str(&out).unwrap();
    assert!(taken["snapshot_id"].as_str().unwrap().starts_with("snap-"));
    let _ = reference.kill();
    let _ = reference.wait();
}

#[tokio::test]
async fn automatic_mode_snapshots_after_readiness_promotes_and_prunes() {
    const STACK: &str = "ethnode-auto";
    let moto = Moto::start().await;
    let work = tempfile::tempdir().unwrap();
    deploy(&moto, work.path(), STACK).await;
    // Two snapshots taken two days ago (by their ethnode:taken tag, epoch ms): due for a new one, and prunable.
    let old_volume = moto.volume();
    let two_days_ago = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 2 * 86_400_000)
        .to_string();
    let mut old = Vec::new();
    for _ in 0..2 {
        old.push(moto.aws_text(&[
            "ec2", "create-snapshot", "--volume-id", &old_volume,
            "--tag-specifications",
            &format!("ResourceType=snapshot,Tags=[{{Key=ethnode:stack,Value={STACK}}},{{Key=ethnode:taken,Value={two_days_ago}}}]"),
            "--query", "SnapshotId",
        ]));
    }
    let volume = moto.volume();
    let node = DevNode::new(&format!(
        "[aws]\nstack_name = \"{STACK}\"\n[snapshot]\nvolume_id = \"{volume}\"\nauto = true\nready_for_secs = 1\ncheck_secs = 1\ninterval_secs = 3600\nkeep = 1\nallow_last_ready_node = true\n"
    ));
    let _agent = node.agent(&moto.env());

    let promoted = wait_for(
        "an automatic snapshot promoted",
        Duration::from_secs(60),
        || async {
            let id = moto.current_snapshot(STACK);
            (id != "none").then_some(id)
        },
    )
    .await;
    let tags = snapshot_tags(&moto, &promoted);
    assert_eq!(tags["ethnode:reason"], json!("auto"));
    assert_eq!(tags["ethnode:volume"], json!(volume));
    // Pruned: the two old ones are gone; only the new, promoted one is left.
    let remaining = wait_for("old snapshots pruned", Duration::from_secs(30), || async {
        let out = moto.aws(&[
            "ec2",
            "describe-snapshots",
            "--filters",
            &format!("Name=tag:ethnode:stack,Values={STACK}"),
        ]);
        let ids: Vec<String> = out["Snapshots"]
            .as_array()?
            .iter()
            .map(|s| s["SnapshotId"].as_str().unwrap().to_string())
            .collect();
        (ids.len() == 1).then_some(ids)
    })
    .await;
    assert_eq!(remaining, vec![promoted.clone()]);
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    for line in [
        "ethnode_snapshot_auto_steps_total{step=\"taken\"} 1",
        "ethnode_snapshot_auto_steps_total{step=\"promoted\"} 1",
        "ethnode_snapshot_auto_steps_total{step=\"pruned\"} 2",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    // Not due again for an hour: a few more rounds take nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    assert!(
        metrics.contains("ethnode_snapshot_auto_steps_total{step=\"taken\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn automatic_mode_spares_the_last_ready_node() {
    let moto = Moto::start().await;
    let volume = moto.volume();
    // No other instance of this stack exists: this node is the last ready one.
    let node = DevNode::new(&format!(
        "[aws]\nstack_name = \"lonely-auto\"\n[snapshot]\nvolume_id = \"{volume}\"\nauto = true\nready_for_secs = 1\ncheck_secs = 1\n"
    ));
    let _agent = node.agent(&moto.env());
    wait_for("a skipped round", Duration::from_secs(30), || async {
        let m = get_text(&node.api("/metrics")).await?;
        m.contains("ethnode_snapshot_auto_steps_total{step=\"skipped-last-ready-node\"}")
            .then_some(())
    })
    .await;
    let none = moto.aws(&[
        "ec2",
        "describe-snapshots",
        "--filters",
        "Name=tag:ethnode:stack,Values=lonely-auto",
    ]);
    assert_eq!(none["Snapshots"], json!([]));
}

#[tokio::test]
async fn prewarm_command_reads_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.img");
    std::fs::write(&file, vec![7u8; 3 * 1024 * 1024 + 5]).unwrap();
    let (code, out, err) = run_ethnode(
        dir.path(),
        &[
            "prewarm",
            file.to_str().unwrap(),
            "--parallelism",
            "4",
            "--block-kib",
            "64",
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["bytes"], json!(3 * 1024 * 1024 + 5));
    assert_eq!(r["errors"], json!(0));
}

#[tokio::test]
async fn agent_prewarms_its_data_dir_and_reports_progress_in_status() {
    let node = DevNode::new(
        "[snapshot]\nprewarm = true\nprewarm_parallelism = 2\nprewarm_block_kib = 64\n",
    );
    // Chain data that was "restored": a few MB in nested directories.
    std::fs::create_dir_all(node.dir.path().join("data/anvil/old")).unwrap();
    std::fs::write(
        node.dir.path().join("data/anvil/old/blob"),
        vec![3u8; 4 * 1024 * 1024],
    )
    .unwrap();
    let _agent = node.agent(&[]);
    let prewarm = wait_for("pre-warm done", Duration::from_secs(30), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        (s["prewarm"]["done"] == json!(true)).then(|| s["prewarm"].clone())
    })
    .await;
    assert!(
        prewarm["bytes_total"].as_u64().unwrap() >= 4 * 1024 * 1024,
        "{prewarm}"
    );
    assert_eq!(prewarm["bytes_done"], prewarm["bytes_total"]);
    assert_eq!(prewarm["errors"], json!(0));
    assert!(prewarm["mb_per_sec"].as_f64().unwrap() > 0.0);

    // Once per volume: the marker is written, and the next start reads nothing.
    let marker = node.dir.path().join("data/.ethnode-prewarmed");
    wait_for("the pre-warm marker", Duration::from_secs(10), || async {
        marker.exists().then_some(())
    })
    .await;
    drop(_agent);
    let again = node.agent(&[]);
    let status = node.wait_ready(Duration::from_secs(30)).await;
    assert!(status["prewarm"].is_null(), "{status}");
    assert!(
        again.stderr_text().contains("already pre-warmed"),
        "{}",
        again.stderr_text()
    );
}

/// An "AWS endpoint" that accepts connections and never answers: every AWS call hangs.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

fn clients_running(status: &Value) -> bool {
    status["clients"]
        .as_array()
        .is_some_and(|c| c.iter().all(|c| c["running"] == json!(true)))
}

/// While the clients are down for a snapshot, a hung AWS call cannot keep them down past the deadline, a
/// caller that goes away does not leave them down, and a stop request is honoured at once.
#[tokio::test]
async fn a_snapshot_never_leaves_the_node_stopped() {
    let aws = black_hole().await;
    let node = DevNode::new(
        "[aws]\nstack_name = \"hang\"\n[snapshot]\nvolume_id = \"vol-0123456789abcdef0\"\nresume_timeout_secs = 3\n",
    );
    let env = vec![("AWS_ENDPOINT_URL", aws.clone())];
    let mut agent = node.agent(&env);
    let before = node.wait_ready(Duration::from_secs(30)).await;
    let pid = before["clients"][0]["pid"].as_u64().unwrap();
    let cfg = node.config.to_str().unwrap().to_string();
    let agent_url = node.api("");

    // The caller disconnects (killed) while the clients are down; the deadline brings them back anyway.
    let mut cli = Ethnode::spawn(
        node.dir.path(),
        &[
            "snapshot", "create", "--force", "--agent", &agent_url, "--config", &cfg,
        ],
        &env,
    );
    wait_for(
        "clients stopped for the snapshot",
        Duration::from_secs(20),
        || async {
            agent
                .stderr_text()
                .contains("snapshot: stopping clients")
                .then_some(())
        },
    )
    .await;
    cli.signal(nix::sys::signal::Signal::SIGKILL);
    cli.wait(Duration::from_secs(10)).await;
    let after = wait_for(
        "clients back after the deadline",
        Duration::from_secs(30),
        || async {
            let (_, s) = get_json(&node.api("/status")).await?;
            (clients_running(&s) && s["clients"][0]["pid"].as_u64() != Some(pid)).then_some(s)
        },
    )
    .await;
    assert_eq!(after["clients"][0]["restarts"], json!(0), "{after}");
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    assert!(
        metrics.contains("ethnode_snapshots_total{reason=\"manual\",result=\"failed\"} 1"),
        "{metrics}"
    );

    // Again, and now the agent is told to stop while it waits on AWS: it does not wait for the deadline.
    let mut cli = Ethnode::spawn(
        node.dir.path(),
        &[
            "snapshot", "create", "--force", "--agent", &agent_url, "--config", &cfg,
        ],
        &env,
    );
    let stopped = wait_for("clients stopped again", Duration::from_secs(20), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        (!clients_running(&s)).then_some(s)
    })
    .await;
    assert!(
        stopped["sync"]["stage"]
            .as_str()
            .unwrap_or_default()
            .contains("paused"),
        "{stopped}"
    );
    let anvil = after["clients"][0]["pid"].as_u64().unwrap() as u32;
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = agent.wait(Duration::from_secs(10)).await;
    assert!(exit.success(), "{}", agent.stderr_text());
    assert!(
        agent.stderr_text().contains("snapshot abandoned"),
        "{}",
        agent.stderr_text()
    );
    assert!(!alive(anvil));
    cli.wait(Duration::from_secs(10)).await;
}

/// Two agents of one stack, due at the same moment: the stack-wide claim lets one take the snapshot;
/// the other, once the claim is free, finds a fresh snapshot and takes none.
#[tokio::test]
async fn two_agents_due_at_once_take_one_snapshot() {
    const STACK: &str = "ethnode-pair";
    let moto = Moto::start().await;
    let work = tempfile::tempdir().unwrap();
    deploy(&moto, work.path(), STACK).await;
    let auto = "auto = true\nready_for_secs = 1\ncheck_secs = 1\ninterval_secs = 3600\nallow_last_ready_node = true\n";
    let a = DevNode::new(&format!(
        "[aws]\nstack_name = \"{STACK}\"\n[snapshot]\nvolume_id = \"{}\"\n{auto}",
        moto.volume()
    ));
    let b = DevNode::new(&format!(
        "[aws]\nstack_name = \"{STACK}\"\n[snapshot]\nvolume_id = \"{}\"\n{auto}",
        moto.volume()
    ));
    let _a = a.agent(&moto.env());
    let _b = b.agent(&moto.env());
    let promoted = wait_for("a snapshot promoted", Duration::from_secs(60), || async {
        let id = moto.current_snapshot(STACK);
        (id != "none").then_some(id)
    })
    .await;
    let checked = |m: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with("ethnode_snapshot_auto_steps_total{step=\"checked\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    // Both agents go on checking for a few more rounds after the promotion.
    let (ma, mb) = (
        get_text(&a.api("/metrics")).await.unwrap(),
        get_text(&b.api("/metrics")).await.unwrap(),
    );
    let (ca, cb) = (checked(&ma), checked(&mb));
    wait_for(
        "three more rounds on each",
        Duration::from_secs(30),
        || async {
            let ma = get_text(&a.api("/metrics")).await?;
            let mb = get_text(&b.api("/metrics")).await?;
            (checked(&ma) >= ca + 3 && checked(&mb) >= cb + 3).then_some(())
        },
    )
    .await;
    let snaps = moto.aws(&[
        "ec2",
        "describe-snapshots",
        "--filters",
        &format!("Name=tag:ethnode:stack,Values={STACK}"),
    ]);
    let ids: Vec<&str> = snaps["Snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["SnapshotId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![promoted.as_str()],
        "exactly one snapshot for the pair"
    );
    let taken = |m: &str| m.contains("ethnode_snapshot_auto_steps_total{step=\"taken\"} 1");
    let (ma, mb) = (
        get_text(&a.api("/metrics")).await.unwrap(),
        get_text(&b.api("/metrics")).await.unwrap(),
    );
    assert!(taken(&ma) ^ taken(&mb), "one agent took it:\n{ma}\n{mb}");
    // The claim was given back.
    let claim = std::process::Command::new(tool("aws"))
        .args([
            "ssm",
            "get-parameter",
            "--name",
            &format!("/ethnode/{STACK}/snapshot-claim"),
        ])
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(!claim.status.success(), "the claim is still held");
}

/// With another node of the stack ready (an agent on 127.0.0.2, which moto's instance of the stack has
/// as its private IP), automatic mode does take its snapshot: it is not the last ready node.
#[tokio::test]
async fn automatic_mode_proceeds_when_another_node_is_ready() {
    const STACK: &str = "ethnode-two";
    let moto = Moto::start().await;
    let text = |args: &[&str]| moto.aws_text(args);
    let vpc = text(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "127.0.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    let subnet = text(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "127.0.0.0/24",
        "--query",
        "Subnet.SubnetId",
    ]);
    moto.run_instance(Some(&subnet), Some("127.0.0.2"), Some(STACK));
    // The stack's snapshot parameter, as the stack would have made it.
    moto.aws(&[
        "ssm",
        "put-parameter",
        "--type",
        "String",
        "--value",
        "none",
        "--name",
        &format!("/ethnode/{STACK}/chain-snapshot-id"),
    ]);
    let node = DevNode::new(&format!(
        "[aws]\nstack_name = \"{STACK}\"\n[snapshot]\nvolume_id = \"{}\"\nauto = true\nready_for_secs = 1\ncheck_secs = 1\n",
        moto.volume()
    ));
    // The other node: its agent on 127.0.0.2, on the port every node's agent uses.
    let other = DevNode::new("");
    let _other = other.agent(&[
        ("ETHNODE_AGENT_LISTEN_ADDR", "127.0.0.2".into()),
        ("ETHNODE_PORTS_AGENT", node.agent.to_string()),
    ]);
    wait_for("the other node ready", Duration::from_secs(30), || async {
        let (code, _) = get_json(&format!("http://127.0.0.2:{}/health/ready", node.agent)).await?;
        (code == 200).then_some(())
    })
    .await;
    let _agent = node.agent(&moto.env());
    let promoted = wait_for(
        "a snapshot taken and promoted",
        Duration::from_secs(60),
        || async {
            let id = moto.current_snapshot(STACK);
            (id != "none").then_some(id)
        },
    )
    .await;
    assert!(promoted.starts_with("snap-"));
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    assert!(
        !metrics.contains("step=\"skipped-last-ready-node\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("ethnode_snapshot_auto_steps_total{step=\"taken\"} 1"),
        "{metrics}"
    );
}
