//! IMDSv2: the agent learns its addresses from a metadata server that refuses token-less requests,
//! and they reach the real client command lines (`--nat extip:`, `--enr-address`).
//!
//! The metadata server is a fake: no real EC2 metadata service can run here. It behaves like IMDSv2
//! in what matters: PUT for a token with a TTL header, GETs only with that token, 404 for absent keys.

use crate::harness::*;
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Starts the fake IMDSv2 server with this test's addresses; returns its base URL and counters.
async fn fake_imds(public_ip: Option<&'static str>) -> (String, Arc<ImdsCounts>) {
    let mut values = vec![
        ("instance-id", "i-0abc1234def567890"),
        ("placement/region", "eu-central-1"),
        ("local-ipv4", "10.0.1.23"),
    ];
    values.extend(public_ip.map(|ip| ("public-ipv4", ip)));
    let imds = FakeImds::start(&values).await;
    (imds.url.clone(), imds.counts.clone())
}

/// A mainnet config whose "reth" and "lighthouse" are scripts that record their arguments and, on
/// SIGTERM, the order in which they were stopped.
fn mainnet_with_recording_clients(dir: &Path) -> std::path::PathBuf {
    for name in ["reth", "lighthouse"] {
        script(
            &dir.join(name),
            &format!(
                "echo \"$@\" > {dir}/{name}.args\ntrap 'echo {name} >> {dir}/stops; exit 0' TERM\nwhile :; do sleep 0.1; done",
                dir = dir.display()
            ),
        );
    }
    let config = dir.join("ethnode.toml");
    let ports = mainnet_ports(free_port(), free_port(), free_port());
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{dir}/data\"\n[execution]\nbinary = \"{dir}/reth\"\n\
             [consensus]\nbinary = \"{dir}/lighthouse\"\ncheckpoint_sync_urls = [\"http://127.0.0.1:9/\"]\n{ports}[agent]\nstop_grace_secs = 10\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    config
}

async fn read_when_written(path: &Path) -> String {
    wait_for(
        &path.display().to_string(),
        Duration::from_secs(15),
        || async {
            std::fs::read_to_string(path)
                .ok()
                .filter(|s| s.ends_with('\n'))
        },
    )
    .await
}

#[tokio::test]
async fn addresses_from_imdsv2_reach_the_client_command_lines() {
    let (imds, counts) = fake_imds(Some("198.51.100.7")).await;
    // The fake refuses what real IMDSv2 refuses: a request without a token.
    let (code, _) = get_json(&format!("{imds}latest/meta-data/local-ipv4"))
        .await
        .unwrap();
    assert_eq!(code, 401);

    let dir = tempfile::tempdir().unwrap();
    let config = mainnet_with_recording_clients(dir.path());
    let mut agent = Ethnode::spawn(
        dir.path(),
        &["agent", "--config", config.to_str().unwrap()],
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.clone())],
    );
    let reth = read_when_written(&dir.path().join("reth.args")).await;
    let lighthouse = read_when_written(&dir.path().join("lighthouse.args")).await;
    assert!(reth.contains("--nat extip:198.51.100.7"), "{reth}");
    assert!(reth.starts_with("node --chain mainnet"), "{reth}");
    assert!(reth.contains(&format!(
        "--authrpc.jwtsecret {}/data/jwt.hex",
        dir.path().display()
    )));
    assert!(
        lighthouse.contains("--enr-address 198.51.100.7"),
        "{lighthouse}"
    );
    assert!(
        lighthouse.starts_with("bn --network mainnet"),
        "{lighthouse}"
    );
    assert_eq!(
        counts.refused.load(Ordering::SeqCst),
        1,
        "the agent sent a token-less request"
    );
    assert!(counts.tokens.load(Ordering::SeqCst) >= 1);
    assert!(counts.authorized.load(Ordering::SeqCst) >= 4);

    // The JWT secret was created, private to its owner, and never logged.
    let jwt = dir.path().join("data/jwt.hex");
    let secret = std::fs::read_to_string(&jwt).unwrap();
    assert_eq!(secret.len(), 64);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&jwt).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Stop order: consensus first, then execution; exit 0.
    agent.signal(Signal::SIGTERM);
    let exit = agent.wait(Duration::from_secs(20)).await;
    assert!(exit.success(), "{}", agent.stderr_text());
    let stops = std::fs::read_to_string(dir.path().join("stops")).unwrap();
    assert_eq!(stops, "lighthouse\nreth\n");
    assert!(
        !agent.stderr_text().contains(secret.trim()),
        "JWT secret leaked into the log"
    );
}

#[tokio::test]
async fn without_public_ip_or_off_ec2_there_is_no_nat_flag() {
    // An instance in a private subnet: IMDS answers 404 for public-ipv4.
    let (imds, _) = fake_imds(None).await;
    let dir = tempfile::tempdir().unwrap();
    let config = mainnet_with_recording_clients(dir.path());
    let agent = Ethnode::spawn(
        dir.path(),
        &["agent", "--config", config.to_str().unwrap()],
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)],
    );
    let reth = read_when_written(&dir.path().join("reth.args")).await;
    assert!(!reth.contains("--nat"), "{reth}");
    drop(agent);

    // Off EC2 (nothing listens at the metadata endpoint): said once, and the agent goes on.
    let dir = tempfile::tempdir().unwrap();
    let config = mainnet_with_recording_clients(dir.path());
    let agent = Ethnode::spawn(
        dir.path(),
        &["agent", "--config", config.to_str().unwrap()],
        &[],
    );
    let reth = read_when_written(&dir.path().join("reth.args")).await;
    assert!(!reth.contains("--nat"), "{reth}");
    let err = agent.stderr_text();
    assert_eq!(err.matches("not on EC2").count(), 1, "{err}");
}

#[tokio::test]
async fn dry_run_prints_the_plan_with_imds_addresses() {
    let (imds, _) = fake_imds(Some("203.0.113.9")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = mainnet_with_recording_clients(dir.path());
    let mut run = Ethnode::spawn(
        dir.path(),
        &["agent", "--dry-run", "--config", config.to_str().unwrap()],
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)],
    );
    assert!(run.wait(Duration::from_secs(15)).await.success());
    let plan: serde_json::Value = serde_json::from_str(&run.stdout_text()).unwrap();
    assert_eq!(plan["host"]["instance_id"], json!("i-0abc1234def567890"));
    assert_eq!(plan["host"]["private_ip"], json!("10.0.1.23"));
    let args: Vec<String> = serde_json::from_value(plan["clients"][0]["args"].clone()).unwrap();
    assert!(
        args.windows(2).any(|w| w == ["--nat", "extip:203.0.113.9"]),
        "{args:?}"
    );
    // Nothing was started.
    assert!(!dir.path().join("reth.args").exists());
}
