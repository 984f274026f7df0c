//! `ethnode doctor`: a preflight of the account against the configured stack, before any change. Each
//! finding says what is wrong and how to fix it. The judgements are plain functions of what the AWS APIs
//! returned, so that they are tested without an account.

use crate::params::is_arm64;
use ethnode_aws::{AwsError, Ec2, Ecr, Quotas, Snapshot, Subnet};
use ethnode_config::{Config, ZoneType};
use serde::Serialize;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked, e.g. `vpc.dns`.
    pub check: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (failures only).
    pub fix: Option<String>,
}

fn pass(check: &'static str, detail: String) -> Finding {
    Finding {
        check,
        ok: true,
        detail,
        fix: None,
    }
}

fn fail(check: &'static str, detail: String, fix: String) -> Finding {
    Finding {
        check,
        ok: false,
        detail,
        fix: Some(fix),
    }
}

/// The Service Quotas name of the EBS storage quota of a volume type (service code `ebs`).
fn storage_quota_name(volume_type: &str) -> String {
    match volume_type {
        "io2" => "Storage for Provisioned IOPS SSD (io2) volumes, in TiB".into(),
        t => format!("Storage for General Purpose SSD ({t}) volumes, in TiB"),
    }
}

/// Runs every check against the account `ec2`, `ecr` and `quotas` point at. `current_snapshot` is the
/// stack's current snapshot when the stack exists; `stack` names it.
pub async fn doctor(
    config: &Config,
    stack: &str,
    ec2: &Ec2,
    ecr: &Ecr,
    quotas: &Quotas,
    current_snapshot: Option<String>,
) -> Result<Vec<Finding>, AwsError> {
    let d = &config.deploy;
    let mut out = Vec::new();
    let vpc = d.vpc_id.clone().unwrap_or_default();
    out.push(judge_vpc(&vpc, ec2.vpc_dns(&vpc).await?, d.zone_type));

    let subnets = ec2.subnets(&d.subnet_ids).await?;
    out.extend(judge_node_subnets(
        &vpc,
        &d.subnet_ids,
        &subnets,
        d.assign_public_ip,
    ));
    if d.monitor_code_bucket.is_some() {
        let monitor = ec2.subnets(&d.monitor_subnet_ids).await?;
        out.extend(judge_monitor_subnets(&vpc, &d.monitor_subnet_ids, &monitor));
    }

    if d.gateway {
        out.push(judge_gateway_subnets(&subnets));
    }
    let mut zones: Vec<String> = subnets.iter().map(|s| s.zone.clone()).collect();
    zones.sort();
    zones.dedup();
    if !zones.is_empty() {
        let offered = ec2.offered_in(&d.instance_type, &zones).await?;
        out.push(judge_offering(&d.instance_type, &zones, &offered));
    }

    if let Some(image) = &d.image {
        out.push(match ecr_reference(image) {
            Some((repo, reference)) => judge_image(
                image,
                &d.instance_type,
                ecr.image_manifest(&repo, &reference).await?,
            ),
            None => pass(
                "image",
                format!("{image} is not in ECR; its architecture is not checked"),
            ),
        });
    }

    let volume_type = d.volume_type.as_str();
    let quota_name = storage_quota_name(volume_type);
    let quota = quotas.value("ebs", &quota_name).await?;
    let (used, ours) = ec2.volume_gib(volume_type, stack).await?;
    // The stack's own volumes are replaced, not added to, by what it will run.
    let wanted = u64::from(d.node_count) * u64::from(config.chain_volume_gib());
    out.push(judge_quota(
        &quota_name,
        quota,
        used - ours.min(used),
        wanted,
    ));

    let snapshot_id = d.chain_snapshot_id.clone().or(current_snapshot);
    if let Some(id) = snapshot_id {
        out.push(judge_snapshot(
            &id,
            ec2.snapshot(&id).await?,
            config.chain_volume_gib(),
        ));
    }
    Ok(out)
}

fn judge_vpc(vpc: &str, dns: Option<(bool, bool)>, zone: ZoneType) -> Finding {
    match dns {
        None => fail(
            "vpc",
            format!("{vpc} does not exist in this account and region"),
            "set deploy.vpc_id to one of `aws ec2 describe-vpcs`, or check AWS_REGION / aws.region"
                .into(),
        ),
        Some((support, hostnames)) if zone == ZoneType::Private && !(support && hostnames) => fail(
            "vpc.dns",
            format!(
                "{vpc}: enableDnsSupport {support}, enableDnsHostnames {hostnames}; a private hosted zone needs both"
            ),
            format!(
                "aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-support; aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames"
            ),
        ),
        Some(_) => pass("vpc.dns", format!("{vpc}: DNS support and hostnames on")),
    }
}

fn judge_node_subnets(
    vpc: &str,
    wanted: &[String],
    found: &[Subnet],
    assign_public_ip: bool,
) -> Vec<Finding> {
    wanted
        .iter()
        .map(|id| match found.iter().find(|s| &s.id == id) {
            None => fail(
                "subnet",
                format!("{id} does not exist"),
                "list subnets of the VPC in deploy.subnet_ids (aws ec2 describe-subnets)".into(),
            ),
            Some(s) if s.vpc_id != vpc => fail(
                "subnet",
                format!("{id} is in {}, not {vpc}", s.vpc_id),
                "use subnets of deploy.vpc_id".into(),
            ),
            Some(s) if !s.default_route.as_deref().is_some_and(|r| r.starts_with("igw-")) => fail(
                "subnet.p2p",
                format!(
                    "{id}: default route {}; peers cannot dial in and the clients sync slowly without an internet gateway",
                    s.default_route.as_deref().unwrap_or("none")
                ),
                format!("use public subnets (a 0.0.0.0/0 route to an igw-) for the nodes, or add one to {id}'s route table"),
            ),
            Some(_) if !assign_public_ip => fail(
                "subnet.p2p",
                format!("{id}: deploy.assign_public_ip = false; nodes get no public IPv4 for inbound p2p"),
                "set deploy.assign_public_ip = true".into(),
            ),
            Some(s) => pass(
                "subnet.p2p",
                format!("{id} ({}): public, via {}", s.zone, s.default_route.as_deref().unwrap_or("")),
            ),
        })
        .collect()
}

fn judge_monitor_subnets(vpc: &str, wanted: &[String], found: &[Subnet]) -> Vec<Finding> {
    if wanted.is_empty() {
        return vec![fail(
            "monitor.subnet",
            "deploy.monitor_code_bucket is set but deploy.monitor_subnet_ids is empty".into(),
            "list private subnets with a NAT route in deploy.monitor_subnet_ids".into(),
        )];
    }
    wanted
        .iter()
        .map(|id| match found.iter().find(|s| &s.id == id) {
            None => fail(
                "monitor.subnet",
                format!("{id} does not exist"),
                "list existing private subnets in deploy.monitor_subnet_ids".into(),
            ),
            Some(s) if s.vpc_id != vpc => fail(
                "monitor.subnet",
                format!("{id} is in {}, not {vpc}", s.vpc_id),
                "use subnets of deploy.vpc_id".into(),
            ),
            Some(s) => match s.default_route.as_deref() {
                Some(r) if r.starts_with("nat-") || r.starts_with("eni-") || r.starts_with("i-") => {
                    pass("monitor.subnet", format!("{id}: out through {r}"))
                }
                Some(r) if r.starts_with("igw-") => fail(
                    "monitor.subnet",
                    format!("{id} is public (default route {r}): a Lambda in a VPC never gets a public IP, so it reaches neither the references nor CloudWatch"),
                    "use private subnets whose default route goes to a NAT gateway".into(),
                ),
                other => fail(
                    "monitor.subnet",
                    format!("{id}: default route {}: the Lambda has no way out", other.unwrap_or("none")),
                    "add a 0.0.0.0/0 route to a NAT gateway in its route table".into(),
                ),
            },
        })
        .collect()
}

/// A Network Load Balancer takes one subnet per Availability Zone (CreateLoadBalancer: "You can specify
/// only one subnet per Availability Zone"); the gateway's is made in the nodes' subnets.
fn judge_gateway_subnets(subnets: &[Subnet]) -> Finding {
    let mut seen: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for s in subnets {
        if let Some(other) = seen.insert(s.zone.as_str(), s.id.as_str()) {
            return fail(
                "deploy.gateway",
                format!(
                    "{other} and {} are both in {}: the gateway's load balancer takes one subnet per zone",
                    s.id, s.zone
                ),
                "list one subnet per Availability Zone in deploy.subnet_ids, or set deploy.gateway = false".into(),
            );
        }
    }
    pass(
        "deploy.gateway",
        format!(
            "one subnet per zone ({}): the gateway's load balancer can use them",
            seen.len()
        ),
    )
}

fn judge_offering(instance_type: &str, zones: &[String], offered: &[String]) -> Finding {
    let missing: Vec<&String> = zones.iter().filter(|z| !offered.contains(z)).collect();
    if missing.is_empty() {
        pass(
            "instance_type",
            format!("{instance_type} is offered in {}", zones.join(", ")),
        )
    } else {
        fail(
            "instance_type",
            format!(
                "{instance_type} is not offered in {}",
                missing
                    .iter()
                    .map(|z| z.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "pick subnets in zones that offer it (aws ec2 describe-instance-type-offerings --location-type availability-zone), or another type".into(),
        )
    }
}

/// `(repository, tag or digest)` of an ECR image URI.
fn ecr_reference(image: &str) -> Option<(String, String)> {
    let (registry, path) = image.split_once('/')?;
    if !registry.contains(".dkr.ecr.") {
        return None;
    }
    if let Some((repo, digest)) = path.split_once('@') {
        return Some((repo.to_owned(), digest.to_owned()));
    }
    let (repo, tag) = path.rsplit_once(':').unwrap_or((path, "latest"));
    Some((repo.to_owned(), tag.to_owned()))
}

fn judge_image(image: &str, instance_type: &str, manifest: Option<(String, String)>) -> Finding {
    let arch = if is_arm64(instance_type) {
        "arm64"
    } else {
        "amd64"
    };
    let Some((media_type, body)) = manifest else {
        return fail(
            "image",
            format!("{image} is not in its ECR repository"),
            "push it: `ethnode image push` (it prints the URI for deploy.image)".into(),
        );
    };
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match parsed["manifests"].as_array() {
        Some(list) => {
            let archs: Vec<&str> = list
                .iter()
                .filter_map(|m| m["platform"]["architecture"].as_str())
                .collect();
            if archs.contains(&arch) {
                pass("image", format!("{image}: an index with {}", archs.join(", ")))
            } else {
                fail(
                    "image",
                    format!("{image} has no {arch} image ({instance_type} needs it); it has {}", archs.join(", ")),
                    format!("push a multi-architecture image (`ethnode image push` builds linux/amd64 and linux/arm64), or use a {} instance type", if arch == "arm64" { "Graviton-free" } else { "Graviton" }),
                )
            }
        }
        None if arch == "arm64" => fail(
            "image",
            format!("{image} is a single-architecture image ({media_type}); {instance_type} is Graviton (arm64)"),
            "push a multi-architecture image (`ethnode image push` builds linux/amd64 and linux/arm64)".into(),
        ),
        None => pass(
            "image",
            format!("{image}: a single image ({media_type}); assumed amd64"),
        ),
    }
}

fn judge_quota(name: &str, quota_tib: Option<f64>, other_gib: u64, wanted_gib: u64) -> Finding {
    let Some(quota) = quota_tib else {
        return pass(
            "quota.ebs",
            format!("\"{name}\" not listed by Service Quotas; not checked"),
        );
    };
    let need_tib = (other_gib + wanted_gib) as f64 / 1024.0;
    if need_tib <= quota {
        pass(
            "quota.ebs",
            format!("{need_tib:.1} TiB of {quota:.0} TiB (\"{name}\")"),
        )
    } else {
        fail(
            "quota.ebs",
            format!(
                "the stack's {:.1} TiB plus {:.1} TiB already in use exceed \"{name}\" = {quota:.0} TiB",
                wanted_gib as f64 / 1024.0,
                other_gib as f64 / 1024.0
            ),
            "request an increase in the Service Quotas console (Amazon EBS), or lower deploy.node_count / deploy.volume_size_gib".into(),
        )
    }
}

fn judge_snapshot(id: &str, snapshot: Option<Snapshot>, volume_gib: u32) -> Finding {
    match snapshot {
        None => fail(
            "snapshot",
            format!("{id} does not exist in this account and region"),
            "`ethnode snapshot list` shows the stack's; or unset deploy.chain_snapshot_id for a fresh volume".into(),
        ),
        Some(s) if s.state != "completed" => fail(
            "snapshot",
            format!("{id} is {}; a volume made from it would wait for it", s.state),
            "wait until it is completed (`ethnode snapshot list`)".into(),
        ),
        Some(s) if s.volume_size_gib > 0 && s.volume_size_gib as u32 > volume_gib => fail(
            "snapshot",
            format!("{id} is of a {} GiB volume, larger than deploy.volume_size_gib = {volume_gib}", s.volume_size_gib),
            format!("set deploy.volume_size_gib >= {}", s.volume_size_gib),
        ),
        Some(_) => pass("snapshot", format!("{id} is completed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, route: Option<&str>) -> Subnet {
        Subnet {
            id: id.into(),
            vpc_id: "vpc-1".into(),
            zone: "us-east-1a".into(),
            map_public_ip: false,
            default_route: route.map(str::to_owned),
        }
    }

    #[test]
    fn the_gateways_load_balancer_needs_one_subnet_per_zone() {
        let mut b = subnet("subnet-b", Some("igw-1"));
        let ok = judge_gateway_subnets(&[subnet("subnet-a", Some("igw-1")), {
            b.zone = "us-east-1b".into();
            b.clone()
        }]);
        assert!(ok.ok, "{ok:?}");
        let two = judge_gateway_subnets(&[subnet("subnet-a", None), subnet("subnet-c", None)]);
        assert!(
            !two.ok && two.detail.contains("subnet-a and subnet-c"),
            "{two:?}"
        );
    }

    #[test]
    fn vpc_needs_both_dns_settings_for_a_private_zone() {
        assert!(!judge_vpc("vpc-1", Some((true, false)), ZoneType::Private).ok);
        assert!(judge_vpc("vpc-1", Some((true, false)), ZoneType::Public).ok);
        assert!(judge_vpc("vpc-1", Some((true, true)), ZoneType::Private).ok);
        let missing = judge_vpc("vpc-1", None, ZoneType::Private);
        assert!(!missing.ok && missing.detail.contains("does not exist"));
    }

    #[test]
    fn nodes_need_an_internet_gateway_and_the_monitor_a_nat() {
        let wanted = vec!["subnet-a".to_string(), "subnet-b".into(), "subnet-x".into()];
        let found = vec![
            subnet("subnet-a", Some("igw-1")),
            subnet("subnet-b", Some("nat-1")),
        ];
        let nodes = judge_node_subnets("vpc-1", &wanted, &found, true);
        assert_eq!(
            nodes.iter().map(|f| f.ok).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert!(!judge_node_subnets("vpc-1", &wanted[..1], &found, false)[0].ok);
        let monitor = judge_monitor_subnets("vpc-1", &wanted, &found);
        assert_eq!(
            monitor.iter().map(|f| f.ok).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert!(monitor[0].detail.contains("never gets a public IP"));
    }

    #[test]
    fn ebs_quota_counts_what_is_there_and_what_the_stack_adds() {
        let name = storage_quota_name("gp3");
        assert!(judge_quota(&name, Some(50.0), 10 * 1024, 20 * 1024).ok);
        let over = judge_quota(&name, Some(50.0), 40 * 1024, 20 * 1024);
        assert!(
            !over.ok && over.fix.as_deref().unwrap().contains("Service Quotas"),
            "{over:?}"
        );
        assert!(judge_quota(&name, None, 0, 1).ok);
        assert_eq!(
            storage_quota_name("io2"),
            "Storage for Provisioned IOPS SSD (io2) volumes, in TiB"
        );
    }

    #[test]
    fn images_are_judged_by_the_architectures_they_carry() {
        let index = r#"{"manifests":[{"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let m = Some((
            "application/vnd.oci.image.index.v1+json".into(),
            index.into(),
        ));
        assert!(judge_image("x", "m7i.2xlarge", m.clone()).ok);
        let arm = judge_image("x", "m7g.2xlarge", m);
        assert!(!arm.ok && arm.detail.contains("no arm64"), "{arm:?}");
        let single = Some((
            "application/vnd.oci.image.manifest.v1+json".into(),
            "{}".into(),
        ));
        assert!(!judge_image("x", "c7g.xlarge", single).ok);
        assert!(!judge_image("x", "m7i.2xlarge", None).ok);
        assert_eq!(
            ecr_reference("1.dkr.ecr.us-east-1.amazonaws.com/ethnode:0.1.0"),
            Some(("ethnode".into(), "0.1.0".into()))
        );
        assert_eq!(
            ecr_reference("1.dkr.ecr.us-east-1.amazonaws.com/a/b@sha256:ab"),
            Some(("a/b".into(), "sha256:ab".into()))
        );
        assert_eq!(ecr_reference("ghcr.io/x/y:1"), None);
    }
}
