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
    assert!(agent.stderr_text().contains("DNS record removed"));
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
