//! `${VAR}` in reference URLs: `ethnode deploy` stores each value as an SSM SecureString (moto) and passes
//! only the template to the stack; the monitor and the agent read the value back at run time when the
//! environment lacks it; a value found nowhere is a clear error.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::Duration;

const STACK: &str = "ethnode-keys";

#[tokio::test]
async fn keys_go_to_securestrings_and_come_back_at_run_time_only() {
    let moto = Moto::start().await;
    let (vpc, subnet) = moto.network();
    // A real anvil: the node and the reference at once.
    let port = free_port();
    let mut chain = start_anvil(port, 0).await;
    let secret = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ethnode.toml");
    std::fs::write(
        &config,
        stack_config(STACK, &vpc, &subnet) + "[monitor]\nreferences = [\"http://${REF_HOST}/\"]\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let deploy = ["deploy", "--yes", "--poll-secs", "1", "--config", cfg];

    // Not in the environment and not stored yet: refused before any stack change, naming the variable.
    let (code, out, err) = run_ethnode(dir.path(), &deploy, &moto.env()).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("${REF_HOST}") && err.contains("export REF_HOST"),
        "{err}"
    );
    assert!(
        moto.aws(&["cloudformation", "list-stacks"])["StackSummaries"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let mut env = moto.env();
    env.push(("REF_HOST", secret.clone()));
    let (code, out, err) = run_ethnode(dir.path(), &deploy, &env).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let name = format!("/ethnode/{STACK}/secrets/REF_HOST");
    assert!(out.contains(&format!("Stored {name}")), "{out}");
    let param =
        &moto.aws(&["ssm", "get-parameter", "--name", &name, "--with-decryption"])["Parameter"];
    assert_eq!(param["Type"], json!("SecureString"));
    assert_eq!(param["Value"], json!(secret));
    // The stack holds the template only.
    let stack = moto.aws(&["cloudformation", "describe-stacks", "--stack-name", STACK]);
    assert!(!stack.to_string().contains(&secret), "{stack}");
    assert_eq!(
        moto.stack_parameter(STACK, "MonitorReferences"),
        "[\"http://${REF_HOST}/\"]"
    );

    // The monitor, as in the Lambda: no REF_HOST in its environment, the stack's secrets prefix set.
    let node = format!("http://127.0.0.1:{port}/");
    let mut run_env = moto.env();
    run_env.push((
        "ETHNODE_AWS_SECRETS_PREFIX",
        format!("/ethnode/{STACK}/secrets"),
    ));
    let (code, out, err) = run_ethnode(
        dir.path(),
        &[
            "monitor", "--once", "--json", "--node", &node, "--config", cfg,
        ],
        &run_env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let round: Value = serde_json::from_str(out.trim()).unwrap();
    let reference = &round["references"][0];
    assert!(
        reference["head"].is_u64(),
        "the reference answered: {round}"
    );
    assert_eq!(round["nodes"][0]["lag"], json!(0), "{round}");

    // Without the prefix and the variable: a clear error, not a URL with an empty host.
    let (code, _, err) = run_ethnode(
        dir.path(),
        &[
            "monitor", "--once", "--json", "--node", &node, "--config", cfg,
        ],
        &moto.env(),
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("${REF_HOST} is not set"), "{err}");

    // The agent's readiness reference the same way: resolved from SSM, the check sees the chain.
    let dev = DevNode::new("");
    let mut agent_env = run_env.clone();
    agent_env.push((
        "ETHNODE_READINESS_REFERENCE_RPC",
        "http://${REF_HOST}/".into(),
    ));
    let _agent = dev.agent(&agent_env);
    wait_for("the reference check", Duration::from_secs(30), || async {
        let (_, s) = get_json(&dev.api("/status")).await?;
        s["checks"].as_array()?.iter().find(|c| {
            c["name"] == json!("reference_lag")
                && c["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("reference at"))
        })?;
        Some(())
    })
    .await;
    let _ = chain.kill();
    let _ = chain.wait();
}
