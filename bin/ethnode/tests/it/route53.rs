//! Route53 registration against a moto server: the record appears at start and is gone after a
//! graceful stop. The private IP and the instance id (the multivalue key) come from IMDSv2.

use crate::harness::*;
use axum::Router;
use axum::routing::{get, put};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::time::Duration;

/// A minimal IMDSv2 (fake: no real one can run here) with a private IP and an instance id.
async fn imds() -> String {
    let app = Router::new()
        .route(
            "/latest/api/token",
            put(|| async { ([("x-aws-ec2-metadata-token-ttl-seconds", "21600")], "tok") }),
        )
        .route(
            "/latest/meta-data/{*path}",
            get(
                |axum::extract::Path(p): axum::extract::Path<String>| async move {
                    match p.as_str() {
                        "instance-id" => Ok("i-0feedbeef0000001"),
                        "local-ipv4" => Ok("10.0.7.42"),
                        "placement/region" => Ok("us-east-1"),
                        _ => Err(axum::http::StatusCode::NOT_FOUND),
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

fn a_records(moto: &Moto, zone: &str, name: &str) -> Vec<Value> {
    let out = moto.aws(&[
        "route53",
        "list-resource-record-sets",
        "--hosted-zone-id",
        zone,
    ]);
    out["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Type"] == json!("A") && r["Name"] == json!(name))
        .cloned()
        .collect()
}

#[tokio::test]
async fn registers_private_ip_at_start_and_removes_it_on_graceful_stop() {
    let moto = Moto::start().await;
    let zone = moto.aws(&[
        "route53",
        "create-hosted-zone",
        "--name",
        "eth.internal",
        "--caller-reference",
        "ethnode-test",
    ]);
    let zone_id = zone["HostedZone"]["Id"].as_str().unwrap().to_string();
    let zone_short = zone_id.trim_start_matches("/hostedzone/").to_string();

    let node = DevNode::new(&format!(
        "[dns]\nname = \"mainnet.eth.internal\"\nhosted_zone_id = \"{zone_short}\"\nttl = 30\n"
    ));
    let mut env = moto.env();
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds().await));
    let mut agent = node.agent(&env);

    let status = wait_for("DNS registration", Duration::from_secs(30), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        (s["dns"]["registered"] == json!(true)).then_some(s)
    })
    .await;
    assert_eq!(status["dns"]["ip"], json!("10.0.7.42"));
    assert_eq!(status["host"]["instance_id"], json!("i-0feedbeef0000001"));

    let records = a_records(&moto, &zone_id, "mainnet.eth.internal.");
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["ResourceRecords"], json!([{"Value": "10.0.7.42"}]));
    assert_eq!(r["TTL"], json!(30));
    assert_eq!(r["SetIdentifier"], json!("i-0feedbeef0000001"));
    assert_eq!(r["MultiValueAnswer"], json!(true));
    let metrics = get_text(&node.api("/metrics")).await.unwrap();
    assert!(metrics.contains("ethnode_dns_registered 1"), "{metrics}");

    agent.signal(Signal::SIGTERM);
    let exit = agent.wait(Duration::from_secs(30)).await;
    assert!(exit.success(), "{}", agent.stderr_text());
    let log = agent.stderr_text();
    // Out of DNS first, so that callers move on before the client goes down.
    let removed = log.find("DNS record removed").expect("record removed");
    let stopping = log.find("stopping client").expect("client stopped");
    assert!(
        removed < stopping,
        "the client stopped before the record went:\n{log}"
    );
    assert_eq!(
        a_records(&moto, &zone_id, "mainnet.eth.internal."),
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn a_name_without_a_zone_is_reported_not_registered() {
    let node = DevNode::new("[dns]\nname = \"mainnet.eth.internal\"\nmode = \"simple\"\n");
    let _agent = node.agent(&[]);
    let status = node.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(status["dns"]["registered"], json!(false));
    let error = status["dns"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("dns.hosted_zone_id is not"), "{status}");
}

/// Puts a multivalue A record for `id` at `name`.
fn plant(moto: &Moto, zone: &str, name: &str, id: &str, ip: &str) {
    let batch = json!({"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": name, "Type": "A", "SetIdentifier": id, "MultiValueAnswer": true, "TTL": 30,
        "ResourceRecords": [{"Value": ip}]}}]});
    moto.aws(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        zone,
        "--change-batch",
        &batch.to_string(),
    ]);
}

/// The set identifiers at `name`, sorted.
fn ids_at(moto: &Moto, zone: &str, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = a_records(moto, zone, name)
        .iter()
        .map(|r| r["SetIdentifier"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

/// Published only while ready; withdrawn when not ready unless it is the name's last record; and the
/// records of instances that no longer run (terminated, or unknown to EC2) are swept by any live node.
#[tokio::test]
async fn publishes_when_ready_withdraws_unless_last_and_sweeps_dead_nodes() {
    const NAME: &str = "mainnet.eth.internal.";
    let moto = Moto::start().await;
    let zone = moto.aws(&[
        "route53",
        "create-hosted-zone",
        "--name",
        "eth.internal",
        "--caller-reference",
        "ethnode-sweep",
    ])["HostedZone"]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let own = moto.run_instance(None, None, None);
    let live = moto.run_instance(None, None, None);
    let dead = moto.run_instance(None, None, None);
    moto.aws(&["ec2", "terminate-instances", "--instance-ids", &dead]);
    let unknown = "i-0000000000000dead".to_string();
    plant(&moto, &zone, NAME, &live, "10.0.0.2");
    plant(&moto, &zone, NAME, &dead, "10.0.0.3");
    plant(&moto, &zone, NAME, &unknown, "10.0.0.4");

    let imds = FakeImds::start(&[("instance-id", &own), ("local-ipv4", "10.0.0.9")]).await;
    let ref_port = free_port();
    let mut behind = start_anvil(ref_port, 100).await;
    let node = DevNode::new(&format!(
        "[dns]\nname = \"mainnet.eth.internal\"\nhosted_zone_id = \"{}\"\nunready_grace_secs = 1\nsweep_secs = 1\n",
        zone.trim_start_matches("/hostedzone/")
    ));
    let mut env = moto.env();
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()));
    env.push((
        "ETHNODE_READINESS_REFERENCE_RPC",
        format!("http://127.0.0.1:{ref_port}"),
    ));
    let _agent = node.agent(&env);

    // Not ready (100 blocks behind): the dead records are swept, ours is not published.
    let status = wait_for("dead records swept", Duration::from_secs(30), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        (s["dns"]["swept"] == json!(2)).then_some(s)
    })
    .await;
    assert_eq!(status["ready"], json!(false));
    assert_eq!(status["dns"]["registered"], json!(false), "{status}");
    assert_eq!(ids_at(&moto, &zone, NAME), vec![live.clone()]);

    // The reference goes away (a failing reference says nothing about us): ready, so published.
    let _ = behind.kill();
    let _ = behind.wait();
    wait_for("published once ready", Duration::from_secs(30), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        (s["dns"]["registered"] == json!(true)).then_some(())
    })
    .await;
    let mut both = vec![live.clone(), own.clone()];
    both.sort();
    assert_eq!(ids_at(&moto, &zone, NAME), both);

    // Not ready again while it is the name's last record: kept (an answer beats none).
    moto.aws(&["ec2", "terminate-instances", "--instance-ids", &live]);
    wait_for("the other node swept", Duration::from_secs(30), || async {
        (ids_at(&moto, &zone, NAME) == vec![own.clone()]).then_some(())
    })
    .await;
    let mut behind = start_anvil(ref_port, 100).await;
    let status = wait_for("kept as last record", Duration::from_secs(30), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        s["dns"]["note"]
            .as_str()?
            .contains("last record")
            .then_some(s)
    })
    .await;
    assert_eq!(status["dns"]["registered"], json!(true));
    assert_eq!(ids_at(&moto, &zone, NAME), vec![own.clone()]);

    // Another node appears: now the not-ready one is withdrawn.
    let other = moto.run_instance(None, None, None);
    plant(&moto, &zone, NAME, &other, "10.0.0.5");
    wait_for("withdrawn", Duration::from_secs(30), || async {
        let (_, s) = get_json(&node.api("/status")).await?;
        (s["dns"]["registered"] == json!(false)).then_some(())
    })
    .await;
    assert_eq!(ids_at(&moto, &zone, NAME), vec![other]);
    let _ = behind.kill();
    let _ = behind.wait();
}
