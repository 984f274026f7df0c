//! The agent supervising a real anvil: ready, restart after kill -9, graceful stop, chain kept.

use crate::harness::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn supervises_anvil_restarts_it_and_keeps_the_chain_across_restarts() {
    let node = DevNode::new("");
    let mut agent = node.agent(&[]);

    let status = node.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(status["ready"], json!(true));
    assert_eq!(status["network"], json!("dev"));
    assert_eq!(status["sync"]["stage"], json!("synced"));
    let first_pid = status["clients"][0]["pid"].as_u64().expect("anvil pid") as u32;
    assert_eq!(status["clients"][0]["name"], json!("anvil"));
    assert_eq!(status["clients"][0]["restarts"], json!(0));
    assert!(alive(first_pid));

    // kill -9 the client: the agent must notice, count it, and bring it back.
    kill(Pid::from_raw(first_pid as i32), Signal::SIGKILL).unwrap();
    let status = wait_for("restarted anvil", Duration::from_secs(20), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        let c = &s["clients"][0];
        (c["restarts"] == json!(1)
            && c["running"] == json!(true)
            && c["pid"].as_u64()? as u32 != first_pid)
            .then_some(s)
    })
    .await;
    assert!(
        status["clients"][0]["last_exit"]
            .as_str()
            .unwrap()
            .contains("signal: 9"),
        "{status}"
    );
    let second_pid = status["clients"][0]["pid"].as_u64().unwrap() as u32;
    node.wait_ready(Duration::from_secs(20)).await;
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    assert!(
        metrics.contains("ethnode_client_restarts_total{client=\"anvil\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ethnode_ready 1"), "{metrics}");

    // Let a few blocks land, then remember where we are.
    let url = node.rpc();
    let height = wait_for("a few blocks", Duration::from_secs(15), || async {
        let n = quantity(&rpc(&url, "eth_blockNumber", json!([])).await?);
        (n >= 3).then_some(n)
    })
    .await;
    let block = rpc(
        &url,
        "eth_getBlockByNumber",
        json!([format!("{height:#x}"), false]),
    )
    .await
    .unwrap();

    // SIGTERM: anvil stops (it dumps its state), the agent exits 0.
    agent.signal(Signal::SIGTERM);
    let exit = agent.wait(Duration::from_secs(20)).await;
    assert!(
        exit.success(),
        "agent exit {exit:?}\n{}",
        agent.stderr_text()
    );
    assert!(!alive(second_pid), "anvil {second_pid} survived the agent");
    assert!(agent.stderr_text().contains("client stopped"));

    // Start again: same chain, at least as high, same block at that height.
    let _agent = node.agent(&[]);
    node.wait_ready(Duration::from_secs(30)).await;
    let again = quantity(&rpc(&url, "eth_blockNumber", json!([])).await.unwrap());
    assert!(again >= height, "chain went back from {height} to {again}");
    let same = rpc(
        &url,
        "eth_getBlockByNumber",
        json!([format!("{height:#x}"), false]),
    )
    .await
    .unwrap();
    assert_eq!(
        same["hash"], block["hash"],
        "block {height} changed across the restart"
    );
}

#[tokio::test]
async fn gives_up_with_nonzero_exit_after_repeated_crashes() {
    let node = DevNode::new("");
    let crasher = node.dir.path().join("crash.sh");
    script(&crasher, "echo 'boom' >&2\nexit 7");
    let mut agent = node.agent(&[
        ("ETHNODE_EXECUTION_BINARY", crasher.display().to_string()),
        ("ETHNODE_AGENT_CRASH_LIMIT", "3".into()),
        ("ETHNODE_AGENT_RESTART_INITIAL_MS", "50".into()),
        ("ETHNODE_AGENT_RESTART_MAX_MS", "100".into()),
    ]);
    let exit = agent.wait(Duration::from_secs(20)).await;
    let err = agent.stderr_text();
    assert_eq!(exit.code(), Some(3), "{err}");
    assert!(err.contains("anvil crashed 3 times"), "{err}");
    assert!(err.contains("exit status: 7"), "{err}");
    // The client's own output reaches the agent's log, tagged by client.
    assert!(
        err.contains("boom") && err.contains("client=\"anvil\""),
        "{err}"
    );
}

/// The line the stack's `ClientGaveUp` metric filter counts: with the stack's log format (JSON, one object a
/// line), a JSON object whose fields match the template's pattern and dimension selectors.
#[tokio::test]
async fn giving_up_logs_the_json_line_the_stacks_metric_filter_selects() {
    let node = DevNode::new("");
    let crasher = node.dir.path().join("crash.sh");
    script(&crasher, "exit 7");
    let mut agent = node.agent(&[
        ("ETHNODE_EXECUTION_BINARY", crasher.display().to_string()),
        ("ETHNODE_AGENT_CRASH_LIMIT", "2".into()),
        ("ETHNODE_AGENT_RESTART_INITIAL_MS", "50".into()),
        ("ETHNODE_AWS_STACK_NAME", "ethnode-json".into()),
        ("ETHNODE_LOG_FORMAT", "json".into()),
    ]);
    let exit = agent.wait(Duration::from_secs(20)).await;
    let err = agent.stderr_text();
    assert_eq!(exit.code(), Some(3), "{err}");
    // Every log line is JSON; the binary's last word (its error chain on exit 3) is plain text.
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // The template's filter: { $.event = "client_gave_up" }, dimension Stack = $.stack.
    let template =
        std::fs::read_to_string(root().join("deploy/cloudformation/ethnode.yml")).unwrap();
    assert!(template.contains(r#"FilterPattern: '{ $.event = "client_gave_up" }'"#));
    assert!(template.contains("- { Key: Stack, Value: $.stack }"));
    let hits: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "client_gave_up")
        .collect();
    assert_eq!(hits.len(), 1, "{err}");
    assert_eq!(hits[0]["stack"], "ethnode-json");
    assert_eq!(hits[0]["level"], "ERROR");
}

/// Scale-in: the group marks the instance Terminated in instance metadata (fake IMDSv2) and waits on its
/// lifecycle hook (moto); the agent stops the node gracefully, completes the action, and stays up idle
/// (so ECS does not restart the clients) until it gets SIGTERM.
#[tokio::test]
async fn scale_in_stops_the_node_gracefully_then_completes_the_lifecycle_action() {
    let moto = Moto::start().await;
    moto.aws(&[
        "ec2",
        "create-launch-template",
        "--launch-template-name",
        "nodes-lt",
        "--launch-template-data",
        r#"{"ImageId":"ami-12c6146b","InstanceType":"t3.micro"}"#,
    ]);
    moto.aws(&[
        "autoscaling",
        "create-auto-scaling-group",
        "--auto-scaling-group-name",
        "nodes",
        "--launch-template",
        "LaunchTemplateName=nodes-lt",
        "--min-size",
        "1",
        "--max-size",
        "1",
        "--availability-zones",
        "us-east-1a",
    ]);
    moto.aws(&[
        "autoscaling",
        "put-lifecycle-hook",
        "--auto-scaling-group-name",
        "nodes",
        "--lifecycle-hook-name",
        "ethnode-graceful-stop",
        "--lifecycle-transition",
        "autoscaling:EC2_INSTANCE_TERMINATING",
        "--heartbeat-timeout",
        "600",
    ]);
    let instance = moto.aws_text(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        "nodes",
        "--query",
        "AutoScalingGroups[0].Instances[0].InstanceId",
    ]);
    let lifecycle_state = || {
        moto.aws_text(&[
            "autoscaling",
            "describe-auto-scaling-instances",
            "--instance-ids",
            &instance,
            "--query",
            "AutoScalingInstances[0].LifecycleState",
        ])
    };
    assert_eq!(lifecycle_state(), "InService");
    let imds = FakeImds::start(&[("instance-id", &instance), ("local-ipv4", "127.0.0.1")]).await;

    let node = DevNode::new("");
    let mut env = moto.env();
    env.extend([
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
        (
            "ETHNODE_AGENT_LIFECYCLE_HOOK",
            "ethnode-graceful-stop".into(),
        ),
        ("ETHNODE_AGENT_AUTOSCALING_GROUP", "nodes".into()),
        ("ETHNODE_AGENT_LIFECYCLE_POLL_SECS", "1".into()),
        // The IMDS question at start (instance id) is only asked for a DNS name.
        ("ETHNODE_DNS_NAME", "node.eth.internal".into()),
    ]);
    let mut agent = node.agent(&env);
    let status = node.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(
        status["host"]["instance_id"],
        serde_json::json!(instance),
        "{status}"
    );
    let anvil = status["clients"][0]["pid"].as_u64().unwrap() as u32;

    imds.set("autoscaling/target-lifecycle-state", "Terminated");
    wait_for(
        "the lifecycle action completed",
        Duration::from_secs(30),
        || async { (lifecycle_state() == "Terminating:Proceed").then_some(()) },
    )
    .await;
    // By then the client was stopped gracefully, and the agent is still there (idle, not ready).
    assert!(!alive(anvil), "anvil still runs after the lifecycle action");
    let log = agent.stderr_text();
    assert!(log.contains("terminating this instance"), "{log}");
    let (code, _) = get_json(&node.api("/health/ready"))
        .await
        .unwrap_or((0, serde_json::Value::Null));
    assert_ne!(code, 200);
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = agent.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code(), Some(0), "{}", agent.stderr_text());
}

/// A client that ignores SIGTERM and starts a grandchild: the stop reaches its whole process group, and
/// after the grace period SIGKILL takes both.
fn stubborn_client(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("stubborn.sh");
    script(
        &path,
        &format!(
            "trap '' TERM\nsleep 1000 &\necho $! > {dir}/grandchild\necho $$ > {dir}/client\nwhile :; do sleep 0.1; done",
            dir = dir.display()
        ),
    );
    path
}

fn pid_in(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn sigkill_of_the_agent_takes_its_clients_down() {
    let node = DevNode::new("");
    let mut agent = node.agent(&[]);
    let status = node.wait_ready(Duration::from_secs(30)).await;
    let anvil = status["clients"][0]["pid"].as_u64().unwrap() as u32;
    assert!(alive(anvil));
    agent.signal(nix::sys::signal::Signal::SIGKILL);
    agent.wait(Duration::from_secs(10)).await;
    wait_for(
        "anvil gone with its agent",
        Duration::from_secs(10),
        || async { (!alive(anvil)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn stop_reaches_the_clients_process_group_and_kills_after_grace() {
    let node = DevNode::new("");
    let dir = node.dir.path().to_path_buf();
    let client = stubborn_client(&dir);
    let mut agent = node.agent(&[
        ("ETHNODE_EXECUTION_BINARY", client.display().to_string()),
        ("ETHNODE_AGENT_STOP_GRACE_SECS", "1".into()),
    ]);
    let (client_pid, grandchild) = wait_for(
        "the client and its child",
        Duration::from_secs(20),
        || async {
            Some((
                pid_in(&dir.join("client"))?,
                pid_in(&dir.join("grandchild"))?,
            ))
        },
    )
    .await;
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = agent.wait(Duration::from_secs(20)).await;
    let log = agent.stderr_text();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("client ignored SIGTERM; sending SIGKILL"),
        "{log}"
    );
    assert!(!alive(client_pid), "the client survived SIGKILL");
    wait_for(
        "the grandchild gone too",
        Duration::from_secs(5),
        || async { (!alive(grandchild)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_second_signal_cuts_the_grace_period_short() {
    let node = DevNode::new("");
    let dir = node.dir.path().to_path_buf();
    let client = stubborn_client(&dir);
    let mut agent = node.agent(&[
        ("ETHNODE_EXECUTION_BINARY", client.display().to_string()),
        ("ETHNODE_AGENT_STOP_GRACE_SECS", "600".into()),
    ]);
    let client_pid = wait_for("the client", Duration::from_secs(20), || async {
        pid_in(&dir.join("client"))
    })
    .await;
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for(
        "the graceful stop begun",
        Duration::from_secs(10),
        || async {
            agent
                .stderr_text()
                .contains("SIGTERM to its process group")
                .then_some(())
        },
    )
    .await;
    agent.signal(nix::sys::signal::Signal::SIGINT);
    // Far inside the 600 s grace period.
    let exit = agent.wait(Duration::from_secs(20)).await;
    let log = agent.stderr_text();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("stop forced by a second signal") || log.contains("second stop signal"),
        "{log}"
    );
    assert!(!alive(client_pid));
}

#[tokio::test]
async fn client_output_with_invalid_utf8_and_endless_lines_keeps_flowing() {
    let node = DevNode::new("");
    let chatty = node.dir.path().join("chatty.sh");
    script(
        &chatty,
        "printf 'bad \\377\\376 bytes\\n'\nhead -c 100000 /dev/zero | tr '\\0' x\necho\necho AFTER-MARKER\nwhile :; do sleep 0.1; done",
    );
    let agent = node.agent(&[("ETHNODE_EXECUTION_BINARY", chatty.display().to_string())]);
    wait_for(
        "the line after the bad ones",
        Duration::from_secs(20),
        || async { agent.stderr_text().contains("AFTER-MARKER").then_some(()) },
    )
    .await;
    let log = agent.stderr_text();
    assert!(log.contains("bad \u{fffd}\u{fffd} bytes"), "{log}");
    assert!(log.contains("[line cut at 16384 bytes]"));
    assert!(
        !log.contains(&"x".repeat(16385)),
        "a line longer than the bound was passed on"
    );
}

/// A value the agent no longer knows is NaN in /metrics, never its last good value: anvil frozen
/// (SIGSTOP, alive but silent) leaves the head unknown.
#[tokio::test]
async fn unknown_values_are_nan_not_stale() {
    let node = DevNode::new("");
    let _agent = node.agent(&[]);
    let status = node.wait_ready(Duration::from_secs(30)).await;
    let anvil = status["clients"][0]["pid"].as_u64().unwrap() as i32;
    let value = |m: &str, name: &str| -> Option<String> {
        m.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    let m = get_text(&node.api("/metrics")).await.unwrap();
    let age: f64 = value(&m, "ethnode_head_age_seconds")
        .unwrap()
        .parse()
        .unwrap();
    assert!(age.is_finite(), "{m}");
    let pid = nix::unistd::Pid::from_raw(anvil);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let m = wait_for("head unknown", Duration::from_secs(30), || async {
        let m = get_text(&node.api("/metrics")).await?;
        (value(&m, "ethnode_head_age_seconds")?.as_str() == "NaN").then_some(m)
    })
    .await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(
        value(&m, "ethnode_head_block").as_deref(),
        Some("NaN"),
        "{m}"
    );
    assert_eq!(value(&m, "ethnode_ready").as_deref(), Some("0"), "{m}");
    // Known again once anvil answers.
    wait_for("head known again", Duration::from_secs(30), || async {
        let m = get_text(&node.api("/metrics")).await?;
        value(&m, "ethnode_head_age_seconds")?
            .parse::<f64>()
            .ok()?
            .is_finite()
            .then_some(())
    })
    .await;
}

/// The agent's own health reaches CloudWatch (moto) for the stack's dashboard: Ready and friends with
/// dimensions Stack and Instance.
#[tokio::test]
async fn the_agent_pushes_its_health_to_cloudwatch() {
    let moto = Moto::start().await;
    let node = DevNode::new("");
    let mut env = moto.env();
    env.extend([
        ("ETHNODE_AGENT_CLOUDWATCH_SECS", "1".to_string()),
        ("ETHNODE_AWS_STACK_NAME", "cw".to_string()),
    ]);
    let _agent = node.agent(&env);
    node.wait_ready(Duration::from_secs(30)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stat = |metric: &str| {
        moto.aws(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "Ethnode",
            "--metric-name",
            metric,
            "--dimensions",
            "Name=Stack,Value=cw",
            "Name=Instance,Value=local",
            "--start-time",
            &(now - 600).to_string(),
            "--end-time",
            &(now + 600).to_string(),
            "--period",
            "60",
            "--statistics",
            "Maximum",
        ])["Datapoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let ready = wait_for(
        "Ready = 1 in CloudWatch",
        Duration::from_secs(30),
        || async {
            let points = stat("Ready");
            points
                .iter()
                .any(|p| p["Maximum"] == serde_json::json!(1.0))
                .then_some(points)
        },
    )
    .await;
    assert!(!ready.is_empty());
    assert!(!stat("ClientRestarts").is_empty());
    assert!(!stat("HeadAgeSeconds").is_empty());
}
