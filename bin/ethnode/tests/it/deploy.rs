//! `ethnode deploy|status|destroy` against a moto server, checked through the service APIs (EC2,
//! CloudFormation exports) with the aws CLI, not through moto's view of the stack.
//!
//! Alarms are switched off (`deploy.enable_alarms = false`): moto has no AWS::CloudWatch::Alarm. moto also
//! drops the template's IPv6 (`::/0`) ingress rules, so IPv6 is checked on the template itself in
//! `template_opens_p2p_to_ipv4_and_ipv6_and_nothing_else` (ethnode-deploy).

use crate::harness::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const STACK: &str = "ethnode-it";

fn write_config(dir: &Path, vpc: &str, subnet: &str) -> std::path::PathBuf {
    let path = dir.join("ethnode.toml");
    std::fs::write(&path, stack_config(STACK, vpc, subnet)).unwrap();
    path
}

/// `ethnode ARGS` against moto, with `extra` environment.
async fn ethnode_with(
    dir: &Path,
    moto: &Moto,
    args: &[&str],
    extra: &[(&str, String)],
) -> (i32, String, String) {
    let mut env = moto.env();
    env.extend(extra.iter().cloned());
    run_ethnode(dir, args, &env).await
}

fn physical_id(moto: &Moto, logical: &str) -> String {
    // describe-stack-resources (plural): moto's singular call fails on stacks with condition-false resources.
    moto.aws_text(&[
        "cloudformation",
        "describe-stack-resources",
        "--stack-name",
        STACK,
        "--query",
        &format!("StackResources[?LogicalResourceId=='{logical}'].PhysicalResourceId"),
    ])
}

/// (protocol, port, source) for every ingress rule of a security group.
fn ingress(moto: &Moto, group: &str) -> BTreeSet<(String, i64, String)> {
    let out = moto.aws(&["ec2", "describe-security-groups", "--group-ids", group]);
    let mut rules = BTreeSet::new();
    for p in out["SecurityGroups"][0]["IpPermissions"]
        .as_array()
        .unwrap()
    {
        let proto = p["IpProtocol"].as_str().unwrap().to_string();
        let from = p["FromPort"].as_i64().unwrap();
        assert_eq!(
            Some(from),
            p["ToPort"].as_i64(),
            "port ranges are single ports: {p}"
        );
        for r in p["IpRanges"].as_array().unwrap() {
            rules.insert((
                proto.clone(),
                from,
                r["CidrIp"].as_str().unwrap().to_string(),
            ));
        }
        for r in p["Ipv6Ranges"].as_array().unwrap() {
            rules.insert((
                proto.clone(),
                from,
                r["CidrIpv6"].as_str().unwrap().to_string(),
            ));
        }
        for g in p["UserIdGroupPairs"].as_array().unwrap() {
            rules.insert((
                proto.clone(),
                from,
                g["GroupId"].as_str().unwrap().to_string(),
            ));
        }
    }
    rules
}

#[tokio::test]
async fn deploy_creates_a_locked_down_stack_updates_it_and_destroy_keeps_the_chain() {
    let moto = Moto::start().await;
    let (vpc, subnet) = moto.network();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &vpc, &subnet);
    let cfg = config.to_str().unwrap();

    // Create.
    let (code, out, err) = ethnode_with(
        dir.path(),
        &moto,
        &["deploy", "--yes", "--poll-secs", "1", "--config", cfg],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("Creating stack {STACK}")), "{out}");
    assert!(out.contains("add         NodeSecurityGroup"), "{out}");
    assert!(out.contains("CREATE_COMPLETE"), "{out}");

    // Security groups, through the EC2 API.
    let access = physical_id(&moto, "AccessSecurityGroup");
    let node = physical_id(&moto, "NodeSecurityGroup");
    let gateway_lb = physical_id(&moto, "GatewayLoadBalancerSecurityGroup");
    assert!(access.starts_with("sg-") && node.starts_with("sg-") && gateway_lb.starts_with("sg-"));
    let world = "0.0.0.0/0".to_string();
    let expected: BTreeSet<(String, i64, String)> = [
        ("tcp", 30303, world.clone()),
        ("udp", 30303, world.clone()),
        ("udp", 9200, world.clone()),
        ("tcp", 9000, world.clone()),
        ("udp", 9000, world.clone()),
        ("udp", 9001, world.clone()),
        ("tcp", 8545, access.clone()),
        ("tcp", 8546, access.clone()),
        ("tcp", 8555, access.clone()),
        // The gateway port only from its load balancer (the gateways beside the nodes reach every node's
        // RPC because the nodes are in the access group themselves).
        ("tcp", 8547, gateway_lb.clone()),
    ]
    .into_iter()
    .map(|(p, n, s)| (p.to_string(), n, s))
    .collect();
    let actual = ingress(&moto, &node);
    assert_eq!(actual, expected);
    for (_, port, source) in &actual {
        if [8545, 8546, 8551, 8555].contains(port) {
            assert!(
                source != "0.0.0.0/0" && source != "::/0",
                "port {port} open to {source}"
            );
        }
    }
    assert!(
        ingress(&moto, &access).is_empty(),
        "the access group admits nothing itself"
    );
    assert_eq!(
        ingress(&moto, &gateway_lb),
        [("tcp".to_string(), 8547, access.clone())]
            .into_iter()
            .collect(),
        "the gateway's load balancer admits the access group, on 8547 only"
    );
    // The gateway beside the node: not essential (it never stops the node), restarted in place.
    let task = moto.aws(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        &format!("{STACK}-node"),
    ]);
    let gateway = task["taskDefinition"]["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gateway")
        .cloned()
        .expect("a gateway container");
    assert_eq!(
        (gateway["essential"].clone(), gateway["command"].clone()),
        (serde_json::json!(false), serde_json::json!(["gateway"])),
        "{gateway}"
    );
    // One name for callers: gateway.<DNSName>, an alias of the internal load balancer.
    let zone = physical_id(&moto, "HostedZone");
    let records = moto.aws(&[
        "route53",
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone,
    ]);
    let lb_dns = moto.aws(&["elbv2", "describe-load-balancers"])["LoadBalancers"][0].clone();
    assert_eq!(lb_dns["Scheme"], "internal", "{lb_dns}");
    assert!(
        records["ResourceRecordSets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| {
                r["Name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("gateway."))
                    && r["AliasTarget"]["DNSName"].as_str().is_some_and(|d| {
                        d.trim_end_matches('.')
                            == lb_dns["DNSName"].as_str().unwrap().trim_end_matches('.')
                    })
            }),
        "{records}"
    );

    // Launch template: IMDSv2 required, every volume encrypted.
    let lt = physical_id(&moto, "LaunchTemplate");
    let data = moto.aws(&[
        "ec2",
        "describe-launch-template-versions",
        "--launch-template-id",
        &lt,
        "--versions",
        "$Latest",
    ]);
    let data = &data["LaunchTemplateVersions"][0]["LaunchTemplateData"];
    assert_eq!(data["MetadataOptions"]["HttpTokens"], json!("required"));
    // Nodes sit in the node group and, as callers of each other's agents, in the access group.
    let groups = &data["NetworkInterfaces"][0]["Groups"];
    assert_eq!(groups, &json!([node.clone(), access.clone()]), "{data}");
    assert_eq!(data["MetadataOptions"]["HttpPutResponseHopLimit"], json!(2));
    // Only the root volume: the chain volume is made at boot from the stack's current snapshot
    // (`user_data_makes_the_chain_volume_from_the_current_snapshot`).
    let disks = data["BlockDeviceMappings"].as_array().unwrap();
    assert_eq!(disks.len(), 1, "{disks:?}");
    assert_eq!(disks[0]["Ebs"]["Encrypted"], json!(true));
    assert_eq!(moto.current_snapshot(STACK), "none");

    // Outputs exported under the stack name.
    let exports = moto.aws(&["cloudformation", "list-exports"]);
    let names: BTreeSet<&str> = exports["Exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].as_str().unwrap())
        .collect();
    for key in [
        "AccessSecurityGroup",
        "NameServers",
        "RpcEndpoint",
        "Cluster",
        "LogGroup",
    ] {
        assert!(
            names.contains(format!("{STACK}-{key}").as_str()),
            "missing export {key}: {names:?}"
        );
    }
    let access_export = exports["Exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Name"] == json!(format!("{STACK}-AccessSecurityGroup")))
        .unwrap();
    assert_eq!(access_export["Value"], json!(access));

    // Status: stack, outputs, instances (no probe: moto's instance addresses lead nowhere).
    let (code, out, err) = ethnode_with(
        dir.path(),
        &moto,
        &["status", "--json", "--no-probe", "--config", cfg],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["stack"]["status"], json!("CREATE_COMPLETE"));
    assert_eq!(status["nodes"].as_array().unwrap().len(), 1, "{status}");

    // Deploy again with a snapshot: an update that new instances start from.
    let volume = moto.volume();
    let snapshot = moto.aws_text(&[
        "ec2",
        "create-snapshot",
        "--volume-id",
        &volume,
        "--query",
        "SnapshotId",
    ]);
    let (code, out, err) = ethnode_with(
        dir.path(),
        &moto,
        &["deploy", "--yes", "--poll-secs", "1", "--config", cfg],
        &[("ETHNODE_DEPLOY_CHAIN_SNAPSHOT_ID", snapshot.clone())],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("Updating stack {STACK}"))
            && out.contains(&format!("from {snapshot}")),
        "{out}"
    );
    assert!(out.contains("UPDATE_COMPLETE"), "{out}");
    assert_eq!(moto.stack_parameter(STACK, "ChainSnapshotId"), snapshot);
    // New instances read the stack's current snapshot from its SSM parameter.
    assert_eq!(moto.current_snapshot(STACK), snapshot);

    // A deploy without the variable keeps the stack's snapshot (a promoted snapshot is not undone).
    let (code, out, err) = ethnode_with(
        dir.path(),
        &moto,
        &["deploy", "--yes", "--poll-secs", "1", "--config", cfg],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("No changes") || out.contains(&format!("from {snapshot}")),
        "{out}"
    );

    // Destroy: the chain volume (attached as /dev/sdh, tagged with the stack) is snapshotted first.
    let instance = status["nodes"][0]["instance"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let chain_volume = moto.aws_text(&[
        "ec2",
        "create-volume",
        "--size",
        "20",
        "--availability-zone",
        "us-east-1a",
        "--tag-specifications",
        &format!("ResourceType=volume,Tags=[{{Key=ethnode:stack,Value={STACK}}}]"),
        "--query",
        "VolumeId",
    ]);
    moto.aws(&[
        "ec2",
        "attach-volume",
        "--volume-id",
        &chain_volume,
        "--instance-id",
        &instance,
        "--device",
        "/dev/sdh",
    ]);
    // A node that died without a graceful stop left its record: the zone must still go.
    let zone = physical_id(&moto, "HostedZone");
    let batch = json!({"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": "mainnet.eth.internal.", "Type": "A", "SetIdentifier": "i-0deaddeaddeaddead",
        "MultiValueAnswer": true, "TTL": 60, "ResourceRecords": [{"Value": "10.0.1.9"}]}}]});
    moto.aws(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone,
        "--change-batch",
        &batch.to_string(),
    ]);
    let (code, out, err) = ethnode_with(
        dir.path(),
        &moto,
        &["destroy", "--yes", "--poll-secs", "1", "--config", cfg],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("deleted"), "{out}");
    let finals = moto.aws(&[
        "ec2",
        "describe-snapshots",
        "--filters",
        "Name=tag:ethnode:reason,Values=final",
    ]);
    let finals = finals["Snapshots"].as_array().unwrap();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(finals[0]["VolumeId"], json!(chain_volume));
    assert!(
        out.contains(finals[0]["SnapshotId"].as_str().unwrap()),
        "{out}"
    );
    let gone = std::process::Command::new(tool("aws"))
        .args(["cloudformation", "describe-stacks", "--stack-name", STACK])
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(
        !gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("does not exist")
    );
    assert!(out.contains("removed 1 record(s)"), "{out}");
    // Emptied to its NS and SOA before the stack went, as Route53 requires to delete a zone
    // (HostedZoneNotEmpty otherwise). moto's CloudFormation does not delete hosted zones at all, so the
    // zone's deletion itself is for a real AWS run to show.
    let left = moto.aws(&[
        "route53",
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone,
    ]);
    let mut types: Vec<&str> = left["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, vec!["NS", "SOA"], "{left}");
}

#[tokio::test]
async fn deploy_refuses_bad_parameters_before_any_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vpc-123", "subnet-0123456789abcdef0");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("[dns]\nname = \"mainnet.eth.internal\"\n", ""),
    )
    .unwrap();
    // Nothing listens here: an AWS call would fail with a connection error, not a parameter error.
    let mut run = Ethnode::spawn(
        dir.path(),
        &["deploy", "--yes", "--config", config.to_str().unwrap()],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into())],
    );
    let code = run.wait(Duration::from_secs(30)).await.code();
    let err = run.stderr_text();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("VpcId (deploy.vpc_id): `vpc-123` is not a VPC id"),
        "{err}"
    );
    assert!(err.contains("DNSName (dns.name): missing"), "{err}");
    assert!(
        !err.contains("dispatch failure") && !err.contains("Connection refused"),
        "{err}"
    );
}

#[tokio::test]
async fn image_push_creates_the_repository_and_says_plainly_when_docker_is_missing() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = moto.env();
    // No Docker engine runs here; make sure the test does not depend on one by pointing at a dead socket.
    env.push(("DOCKER_HOST", "unix:///nonexistent/docker.sock".into()));
    let mut run = Ethnode::spawn(dir.path(), &["image", "push", "--tag", "it"], &env);
    let code = run.wait(Duration::from_secs(60)).await.code();
    let (out, err) = (run.stdout_text(), run.stderr_text());
    assert_ne!(code, Some(0));
    assert!(err.contains("no Docker engine reachable"), "{err}");
    assert!(
        out.contains("ECR repository") && out.contains("created"),
        "{out}"
    );
    let repos = moto.aws(&[
        "ecr",
        "describe-repositories",
        "--repository-names",
        "ethnode",
    ]);
    assert_eq!(
        repos["repositories"][0]["imageTagMutability"],
        json!("IMMUTABLE")
    );
    assert_eq!(
        repos["repositories"][0]["imageScanningConfiguration"]["scanOnPush"],
        json!(true)
    );
}

#[tokio::test]
async fn template_prints_the_template_and_a_parameters_file_the_aws_cli_takes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "vpc-0123456789abcdef0",
        "subnet-0123456789abcdef0",
    );
    let mut t = Ethnode::spawn(dir.path(), &["template"], &[]);
    assert!(t.wait(Duration::from_secs(10)).await.success());
    assert!(t.stdout_text().starts_with("AWSTemplateFormatVersion"));
    let mut p = Ethnode::spawn(
        dir.path(),
        &[
            "template",
            "--parameters",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        p.wait(Duration::from_secs(10)).await.success(),
        "{}",
        p.stderr_text()
    );
    let params: Value = serde_json::from_str(&p.stdout_text()).unwrap();
    assert!(
        params
            .as_array()
            .unwrap()
            .contains(&json!({"ParameterKey": "VpcId", "ParameterValue": "vpc-0123456789abcdef0"}))
    );
}

#[test]
fn cfn_lint_passes_with_informational_checks() {
    let out = std::process::Command::new(tool("cfn-lint"))
        .arg(root().join("deploy/cloudformation/ethnode.yml"))
        .args(["--include-checks", "I"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The launch template's user data, run as EC2 would run it at first boot (up to the attached volume:
/// `ETHNODE_BOOT_ATTACH_ONLY`; mkfs and mount need a real block device) with the real aws CLI against
/// moto and a fake IMDSv2 for the instance's id and zone.
async fn boot(moto: &Moto, dir: &Path, instance: &str) -> (i32, String, String) {
    let lt = physical_id(moto, "LaunchTemplate");
    let data = moto.aws(&[
        "ec2",
        "describe-launch-template-versions",
        "--launch-template-id",
        &lt,
        "--versions",
        "$Latest",
    ]);
    let encoded = data["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let script = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let path = dir.join("user-data.sh");
    std::fs::write(&path, script).unwrap();
    let zone = moto.aws_text(&[
        "ec2",
        "describe-instances",
        "--instance-ids",
        instance,
        "--query",
        "Reservations[0].Instances[0].Placement.AvailabilityZone",
    ]);
    let imds = FakeImds::start(&[
        ("instance-id", instance),
        ("placement/availability-zone", &zone),
    ])
    .await;
    let bin = tool("aws").parent().unwrap().to_path_buf();
    let out = tokio::process::Command::new("bash")
        .arg(&path)
        .envs(moto.env())
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("ETHNODE_BOOT_IMDS", imds.url.trim_end_matches('/'))
        .env("ETHNODE_BOOT_ATTACH_ONLY", "1")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("user data finished within 2 minutes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn user_data_makes_the_chain_volume_from_the_current_snapshot() {
    let moto = Moto::start().await;
    let (vpc, subnet) = moto.network();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &vpc, &subnet);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap() + "volume_initialization_rate = 200\n",
    )
    .unwrap();
    let (code, out, err) = ethnode_with(
        dir.path(),
        &moto,
        &[
            "deploy",
            "--yes",
            "--poll-secs",
            "1",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let instance = moto.aws_text(&[
        "ec2",
        "describe-instances",
        "--filters",
        &format!("Name=tag:ethnode:stack,Values={STACK}"),
        "--query",
        "Reservations[0].Instances[0].InstanceId",
    ]);
    assert!(instance.starts_with("i-"), "{instance}");

    // The stack was promoted to a snapshot after it was made (what `ethnode snapshot promote` does).
    let source = moto.volume();
    let snapshot = moto.aws_text(&[
        "ec2",
        "create-snapshot",
        "--volume-id",
        &source,
        "--query",
        "SnapshotId",
    ]);
    moto.aws(&[
        "ssm",
        "put-parameter",
        "--overwrite",
        "--name",
        &format!("/ethnode/{STACK}/chain-snapshot-id"),
        "--value",
        &snapshot,
    ]);

    let (code, out, err) = boot(&moto, dir.path(), &instance).await;
    assert_eq!(code, 0, "user data failed:\n{out}\n{err}");
    let volume = out.lines().last().unwrap().trim().to_string();
    assert!(volume.starts_with("vol-"), "{out}");
    let v = &moto.aws(&["ec2", "describe-volumes", "--volume-ids", &volume])["Volumes"][0];
    assert_eq!(v["SnapshotId"], json!(snapshot), "{v}");
    assert_eq!(v["Size"], json!(2048));
    assert_eq!(v["VolumeType"], json!("gp3"));
    assert_eq!(v["Iops"], json!(6000));
    assert_eq!(v["Throughput"], json!(500));
    assert_eq!(v["Encrypted"], json!(true));
    assert_eq!(v["Attachments"][0]["InstanceId"], json!(instance));
    assert_eq!(v["Attachments"][0]["Device"], json!("/dev/sdh"));
    let tags: BTreeSet<(String, String)> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_string(),
                t["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (k, val) in [
        ("ethnode:stack", STACK),
        ("ethnode:instance", instance.as_str()),
        ("ethnode:network", "mainnet"),
    ] {
        assert!(tags.contains(&(k.into(), val.into())), "{tags:?}");
    }
    // It goes with the instance.
    let mappings = moto.aws(&["ec2", "describe-instances", "--instance-ids", &instance]);
    let sdh = mappings["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["DeviceName"] == json!("/dev/sdh"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(sdh["Ebs"]["DeleteOnTermination"], json!(true), "{mappings}");

    // A second boot (cloud-init retried) finds the same volume and makes no other.
    let (code, out, err) = boot(&moto, dir.path(), &instance).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.lines().last().unwrap().trim(), volume);
    let count = moto.aws(&[
        "ec2",
        "describe-volumes",
        "--filters",
        &format!("Name=tag:ethnode:instance,Values={instance}"),
    ])["Volumes"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count, 1);
}

/// parliament on every IAM policy of the template (split statements checked for coverage, not silenced)
/// and checkov on the whole template: `scripts/audit_template.py` exits 0 only when both pass.
#[test]
fn template_passes_parliament_and_checkov() {
    let out = std::process::Command::new(root().join(".venv-judges/bin/python"))
        .arg(root().join("scripts/audit_template.py"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("PASS"), "{text}");
}

/// The audit catches the kind of defect that shipped before: a volume ARN without the account id (which
/// matches no volume), an unknown action, an unknown condition key.
#[test]
fn template_audit_fails_on_policies_aws_would_not_match() {
    let template =
        std::fs::read_to_string(root().join("deploy/cloudformation/ethnode.yml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (what, from, to) in [
        (
            "volume ARN without account",
            r#"Action: ec2:CreateSnapshot
                Resource: !Sub "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*""#,
            r#"Action: ec2:CreateSnapshot
                Resource: !Sub "arn:${AWS::Partition}:ec2:${AWS::Region}::volume/*""#,
        ),
        (
            "unknown action",
            "Action: ec2:DeleteSnapshot",
            "Action: ec2:DeleteSnapshots",
        ),
        (
            "unknown condition key",
            r#""cloudwatch:namespace": Ethnode"#,
            r#""cloudwatch:namespaces": Ethnode"#,
        ),
    ] {
        assert!(template.contains(from), "{what}: the template changed");
        let path = dir.path().join("t.yml");
        std::fs::write(&path, template.replacen(from, to, 1)).unwrap();
        let out = std::process::Command::new(root().join(".venv-judges/bin/python"))
            .arg(root().join("scripts/audit_template.py"))
            .arg(&path)
            .arg("--no-checkov")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what} passed the audit:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `ethnode doctor` on a moto account set up to have each misconfiguration, then with each fixed.
#[tokio::test]
async fn doctor_reports_each_misconfiguration_then_passes_once_fixed() {
    let moto = Moto::start().await;
    let text = |args: &[&str]| moto.aws_text(args);
    let vpc = text(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.1.0.0/16",
        "--query",
        "Vpc.VpcId",
    ]);
    let subnet = |cidr: &str| {
        text(&[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            cidr,
            "--availability-zone",
            "us-east-1a",
            "--query",
            "Subnet.SubnetId",
        ])
    };
    let (public, private, isolated) = (
        subnet("10.1.1.0/24"),
        subnet("10.1.2.0/24"),
        subnet("10.1.3.0/24"),
    );
    let igw = text(&[
        "ec2",
        "create-internet-gateway",
        "--query",
        "InternetGateway.InternetGatewayId",
    ]);
    moto.aws(&[
        "ec2",
        "attach-internet-gateway",
        "--internet-gateway-id",
        &igw,
        "--vpc-id",
        &vpc,
    ]);
    let table = |target: &[&str], subnet: &str| {
        let rt = text(&[
            "ec2",
            "create-route-table",
            "--vpc-id",
            &vpc,
            "--query",
            "RouteTable.RouteTableId",
        ]);
        let mut route = vec![
            "ec2",
            "create-route",
            "--route-table-id",
            &rt,
            "--destination-cidr-block",
            "0.0.0.0/0",
        ];
        route.extend_from_slice(target);
        moto.aws(&route);
        moto.aws(&[
            "ec2",
            "associate-route-table",
            "--route-table-id",
            &rt,
            "--subnet-id",
            subnet,
        ]);
    };
    table(&["--gateway-id", &igw], &public);
    let eip = text(&[
        "ec2",
        "allocate-address",
        "--domain",
        "vpc",
        "--query",
        "AllocationId",
    ]);
    let nat = text(&[
        "ec2",
        "create-nat-gateway",
        "--subnet-id",
        &public,
        "--allocation-id",
        &eip,
        "--query",
        "NatGateway.NatGatewayId",
    ]);
    table(&["--nat-gateway-id", &nat], &private);
    moto.aws(&["ecr", "create-repository", "--repository-name", "ethnode"]);
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1000,
            "digest": format!("sha256:{}", "a".repeat(64)),
            "platform": {"architecture": "amd64", "os": "linux"}}]});
    moto.aws(&[
        "ecr",
        "put-image",
        "--repository-name",
        "ethnode",
        "--image-tag",
        "0.1.0",
        "--image-manifest",
        &index.to_string(),
        "--image-manifest-media-type",
        "application/vnd.oci.image.index.v1+json",
    ]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ethnode.toml");
    let write =
        |subnets: &str, monitor: &str, instance: &str, snapshot: &str, nodes: u32, gib: u32| {
            std::fs::write(
                &config,
                format!(
                    r#"[dns]
name = "mainnet.eth.internal"
[aws]
stack_name = "doc"
[deploy]
vpc_id = "{vpc}"
subnet_ids = ["{subnets}"]
instance_type = "{instance}"
image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ethnode:0.1.0"
chain_snapshot_id = "{snapshot}"
volume_size_gib = {gib}
node_count = {nodes}
monitor_code_bucket = "artifacts"
monitor_subnet_ids = ["{monitor}"]
"#
                ),
            )
            .unwrap();
        };
    let doctor = async || {
        let (code, out, err) = run_ethnode(
            dir.path(),
            &["doctor", "--json", "--config", config.to_str().unwrap()],
            &moto.env(),
        )
        .await;
        let findings: Vec<Value> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        (code, findings)
    };

    // 10 nodes of 16 TiB: 160 TiB of gp3 against the default quota of 50 TiB.
    write(
        &isolated,
        &public,
        "m7g.2xlarge",
        "snap-0123456789abcdef0",
        10,
        16384,
    );
    let (code, findings) = doctor().await;
    assert_eq!(code, 1, "{findings:?}");
    let failed = |check: &str, text: &str| {
        findings.iter().any(|f| {
            f["check"] == json!(check)
                && f["ok"] == json!(false)
                && f["detail"].as_str().unwrap().contains(text)
                && f["fix"].is_string()
        })
    };
    assert!(
        failed("vpc.dns", "enableDnsHostnames false"),
        "{findings:#?}"
    );
    assert!(failed("subnet.p2p", "default route none"), "{findings:#?}");
    assert!(
        failed("monitor.subnet", "never gets a public IP"),
        "{findings:#?}"
    );
    assert!(failed("image", "no arm64"), "{findings:#?}");
    assert!(failed("snapshot", "does not exist"), "{findings:#?}");
    assert!(failed("quota.ebs", "exceed"), "{findings:#?}");

    // Fixed: DNS hostnames on, public subnets for the nodes, a NAT'd one for the Lambda, an x86 type, a
    // completed snapshot.
    moto.aws(&[
        "ec2",
        "modify-vpc-attribute",
        "--vpc-id",
        &vpc,
        "--enable-dns-hostnames",
        "{\"Value\": true}",
    ]);
    let volume = moto.volume();
    let snapshot = text(&[
        "ec2",
        "create-snapshot",
        "--volume-id",
        &volume,
        "--query",
        "SnapshotId",
    ]);
    write(&public, &private, "m7i.2xlarge", &snapshot, 1, 500);
    let (code, findings) = doctor().await;
    assert_eq!(code, 0, "{findings:#?}");
    assert!(findings.iter().all(|f| f["ok"] == json!(true)));
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == json!("instance_type"))
    );
    // `deploy --check` is the same preflight and changes nothing.
    let (code, out, _) = run_ethnode(
        dir.path(),
        &["deploy", "--check", "--config", config.to_str().unwrap()],
        &moto.env(),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checks pass"), "{out}");
    assert!(
        moto.aws(&["cloudformation", "list-stacks"])["StackSummaries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The real-AWS smoke script cannot run here; what can be checked is that it refuses to spend money
/// without the explicit flag, and says what it needs before touching anything.
#[test]
fn aws_smoke_script_refuses_without_consent_and_names_what_it_needs() {
    let script = root().join("scripts/aws-smoke.sh");
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .env_remove("ETHNODE_SMOKE_VPC")
            // Nothing may reach AWS from here even if the script went wrong.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--i-understand-this-costs-money"), "{err}");
    let (code, err) = run(&["--i-understand-this-costs-money"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("set ETHNODE_SMOKE_VPC"), "{err}");
}

/// Every metric a dashboard names is one ethnode exports: the CloudWatch dashboard in the template
/// against what the agent and the monitor send (and the log metric filter's ClientGaveUp); the Grafana
/// dashboard against the Prometheus text of a running agent and of the monitor.
#[tokio::test]
async fn dashboards_name_only_exported_metrics() {
    let template =
        std::fs::read_to_string(root().join("deploy/cloudformation/ethnode.yml")).unwrap();
    let body = template
        .split("DashboardBody: !Sub |\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::StackName}", "s");
    let dashboard: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    let mut named = BTreeSet::new();
    for w in dashboard["widgets"].as_array().unwrap() {
        for m in w["properties"]["metrics"].as_array().unwrap() {
            let m = m.as_array().unwrap();
            if let Some(expr) = m[0]["expression"].as_str() {
                let name = expr
                    .split("MetricName=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                named.insert(name.to_string());
            } else {
                assert_eq!(m[0], json!("Ethnode"));
                named.insert(m[1].as_str().unwrap().to_string());
            }
        }
    }
    let mut sent: BTreeSet<String> = ethnode_agent::CLOUDWATCH_METRICS
        .iter()
        .chain(ethnode_monitor::CLOUDWATCH_METRICS.iter())
        .map(|s| s.to_string())
        .collect();
    sent.insert("ClientGaveUp".into());
    let unknown: Vec<_> = named.difference(&sent).collect();
    assert!(
        unknown.is_empty(),
        "the CloudWatch dashboard names {unknown:?}"
    );
    assert!(named.len() >= 8, "{named:?}");

    // Prometheus: a running agent's /metrics, and the monitor's after a round.
    let node = DevNode::new("");
    let _agent = node.agent(&[]);
    node.wait_ready(Duration::from_secs(30)).await;
    let mut exported = get_text(&node.api("/metrics")).await.unwrap();
    let sinks = ethnode_monitor::Sinks::new(None, None);
    sinks.observe(&ethnode_monitor::RoundResult {
        ts: 1,
        reference_head: Some(10),
        references: vec![ethnode_monitor::ReferenceResult {
            url: "https://r".into(),
            ok: true,
            head: Some(10),
            latency_ms: 1.0,
            excluded: None,
            error: None,
        }],
        nodes: vec![ethnode_monitor::NodeResult {
            url: "http://n".into(),
            head: Some(9),
            lag: Some(1),
            head_age_secs: Some(3),
            hash_agrees: Some(true),
            verdict: ethnode_monitor::Verdict::Behind,
            alarm: false,
            latency_ms: 1.0,
            error: None,
        }],
        duration_ms: 1.0,
    });
    exported.push_str(&sinks.render());
    // Declared families count too (a counter with no sample yet is still exported): `# TYPE name counter`
    // stands for `name_total`.
    let mut names: BTreeSet<String> = exported
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    for l in exported.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = l.split(' ');
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        names.insert(if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        });
    }
    let grafana =
        std::fs::read_to_string(root().join("deploy/dashboards/grafana-ethnode.json")).unwrap();
    let grafana: Value = serde_json::from_str(&grafana).unwrap();
    let mut used = BTreeSet::new();
    for p in grafana["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("ethnode_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
        }
    }
    let missing: Vec<_> = used.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "Grafana names {missing:?}; exported: {names:?}"
    );
    assert!(used.len() >= 10, "{used:?}");
}

/// Every `ETHNODE_*` variable the template hands the agent (task definition) and the monitor (Lambda) is
/// a setting ethnode accepts: an unknown one would stop the agent at start, on AWS only.
#[tokio::test]
async fn the_templates_environment_is_a_config_ethnode_accepts() {
    let template =
        std::fs::read_to_string(root().join("deploy/cloudformation/ethnode.yml")).unwrap();
    let value_of = |raw: &str| -> String {
        // Intrinsics become a plausible value of the right kind.
        let raw = raw.trim().trim_matches('"');
        if raw.starts_with('!') {
            if raw.contains("Network") {
                "mainnet".into()
            } else if raw.contains("AutoSnapshots") {
                "true".into()
            } else if raw.contains("MonitorReferences") {
                "[\"https://ref.example/v3/${KEY}\"]".into()
            } else {
                "x-value".into()
            }
        } else {
            raw.to_string()
        }
    };
    let mut agent = Vec::new();
    for line in template.lines().filter(|l| l.contains("{ Name: ETHNODE_")) {
        let name = line
            .split("Name: ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let raw = line
            .split("Value: ")
            .nth(1)
            .unwrap()
            .trim_end()
            .trim_end_matches('}');
        agent.push((name.to_string(), value_of(raw)));
    }
    let lambda: Vec<(String, String)> = template
        .split("Variables:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("          "))
        .filter(|l| l.trim_start().starts_with("ETHNODE_"))
        .map(|l| {
            let (k, v) = l.trim().split_once(": ").unwrap();
            (k.to_string(), value_of(v))
        })
        .collect();
    assert!(
        agent.len() >= 15 && lambda.len() >= 5,
        "{agent:?} {lambda:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    for (who, vars) in [("task definition", &agent), ("Lambda", &lambda)] {
        let env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let (code, _, err) = run_ethnode(dir.path(), &["config", "check"], &env).await;
        assert_eq!(
            code, 0,
            "the {who}'s environment is refused: {err}\n{vars:?}"
        );
    }
}
