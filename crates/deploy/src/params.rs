//! Stack parameters from the config, validated with messages that name the config key and the fix.

use ethnode_config::{Config, Network, VolumeType};
use std::fmt;

/// One parameter problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The template parameter.
    pub parameter: &'static str,
    /// The config key that sets it.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.parameter, self.key, self.message)
    }
}

/// The template's parameters, as ethnode will pass them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackParams {
    /// Name/value pairs in template order.
    pub values: Vec<(&'static str, String)>,
}

impl StackParams {
    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// As `(String, String)` pairs for the SDK.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// The parameters file the aws CLI takes (`--parameters file://params.json`).
    pub fn to_cli_json(&self) -> String {
        let list: Vec<_> = self
            .values
            .iter()
            .map(|(k, v)| serde_json::json!({"ParameterKey": k, "ParameterValue": v}))
            .collect();
        serde_json::to_string_pretty(&list).unwrap_or_default()
    }

    /// Builds and validates the parameters. `current_snapshot` is the deployed stack's ChainSnapshotId:
    /// kept when the config does not set one, so a deploy never undoes a promoted snapshot.
    pub fn from_config(
        config: &Config,
        current_snapshot: Option<&str>,
    ) -> Result<Self, Vec<ParamError>> {
        let d = &config.deploy;
        let mut errors = Vec::new();
        let mut err = |parameter, key, message: String| {
            errors.push(ParamError {
                parameter,
                key,
                message,
            })
        };

        if config.node.network == Network::Dev {
            err(
                "Network",
                "node.network",
                "the dev network runs on your machine (`ethnode up --dev`); deploy mainnet, sepolia or hoodi".into(),
            );
        }
        let vpc = d.vpc_id.clone().unwrap_or_default();
        if vpc.is_empty() {
            err(
                "VpcId",
                "deploy.vpc_id",
                "missing: set deploy.vpc_id = \"vpc-…\" (aws ec2 describe-vpcs lists yours)".into(),
            );
        } else if !aws_id(&vpc, "vpc-") {
            err(
                "VpcId",
                "deploy.vpc_id",
                format!("`{vpc}` is not a VPC id: expected vpc- and 8 or 17 hex digits"),
            );
        }
        if d.subnet_ids.is_empty() {
            err(
                "SubnetIds",
                "deploy.subnet_ids",
                "missing: list at least one subnet of the VPC, e.g. [\"subnet-…\"]".into(),
            );
        }
        for s in &d.subnet_ids {
            if !aws_id(s, "subnet-") {
                err(
                    "SubnetIds",
                    "deploy.subnet_ids",
                    format!("`{s}` is not a subnet id: expected subnet- and 8 or 17 hex digits"),
                );
            }
        }
        check_instance_type(&d.instance_type, config.node.network, &mut err);
        let dns = config.dns.name.clone().unwrap_or_default();
        if dns.is_empty() {
            err("DNSName", "dns.name", "missing: the name the nodes register under, e.g. dns.name = \"mainnet.eth.internal\"".into());
        } else if !dns.contains('.') {
            err(
                "DNSName",
                "dns.name",
                format!("`{dns}` needs a domain part, e.g. \"{dns}.eth.internal\""),
            );
        }
        let snapshot = d
            .chain_snapshot_id
            .clone()
            .or_else(|| current_snapshot.map(str::to_owned))
            .unwrap_or_default();
        if !snapshot.is_empty() && !aws_id(&snapshot, "snap-") {
            err(
                "ChainSnapshotId",
                "deploy.chain_snapshot_id",
                format!(
                    "`{snapshot}` is not a snapshot id: expected snap- and 8 or 17 hex digits, or remove the key for a fresh volume"
                ),
            );
        }
        check_volume(config, &mut err);
        let rate = d.volume_initialization_rate;
        if rate != 0 && !(100..=300).contains(&rate) {
            err(
                "VolumeInitializationRate",
                "deploy.volume_initialization_rate",
                format!("{rate} MiB/s: EBS takes 100..=300, or 0 for lazy loading"),
            );
        }
        if !(1..=10).contains(&d.node_count) {
            err(
                "NodeCount",
                "deploy.node_count",
                format!("{} is outside 1..=10", d.node_count),
            );
        }
        let image = d.image.clone().unwrap_or_default();
        if image.is_empty() {
            err("ImageUri", "deploy.image", "missing: push the node image with `ethnode image push` and set deploy.image to the URI it prints".into());
        } else if image.contains(char::is_whitespace)
            || image.starts_with(|c: char| !c.is_ascii_alphanumeric())
        {
            err(
                "ImageUri",
                "deploy.image",
                format!("`{image}` is not an image reference"),
            );
        }
        let monitor_subnets = &d.monitor_subnet_ids;
        for s in monitor_subnets {
            if !aws_id(s, "subnet-") {
                err(
                    "MonitorSubnetIds",
                    "deploy.monitor_subnet_ids",
                    format!("`{s}` is not a subnet id: expected subnet- and 8 or 17 hex digits"),
                );
            }
        }
        if d.monitor_code_bucket.is_some() && monitor_subnets.is_empty() {
            err(
                "MonitorSubnetIds",
                "deploy.monitor_subnet_ids",
                "the monitor Lambda needs private subnets with a NAT route (a function in a VPC never gets a public IP, so the nodes' public subnets give it no way out): list them, or unset deploy.monitor_code_bucket".into(),
            );
        }
        for (key, url) in config
            .monitor
            .references
            .iter()
            .map(|u| ("monitor.references", u))
            .chain(
                config
                    .readiness
                    .reference_rpc
                    .iter()
                    .map(|u| ("readiness.reference_rpc", u)),
            )
        {
            if let Some(token) = literal_key(url) {
                err(
                    "MonitorReferences",
                    key,
                    format!(
                        "{} seems to carry an API key in plain text ({}…); write it as ${{VAR}} (e.g. ${{INFURA_KEY}}) and export VAR: ethnode deploy stores it as an SSM SecureString",
                        ethnode_config::redact_url(url),
                        &token[..4]
                    ),
                );
            }
        }
        const RETENTION: [u32; 15] = [
            1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
        ];
        if !RETENTION.contains(&d.log_retention_days) {
            err(
                "LogRetentionDays",
                "deploy.log_retention_days",
                format!(
                    "{} is not a CloudWatch Logs retention; use one of {RETENTION:?}",
                    d.log_retention_days
                ),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let values = vec![
            ("Network", config.node.network.as_str().to_owned()),
            ("ImageUri", image),
            ("NodeCount", d.node_count.to_string()),
            ("InstanceType", d.instance_type.clone()),
            ("AmiParameter", ami_parameter(&d.instance_type).to_owned()),
            (
                "RollingMinimumHealthyPercent",
                rolling_minimum_healthy_percent(d.node_count).to_string(),
            ),
            ("VpcId", vpc),
            ("SubnetIds", d.subnet_ids.join(",")),
            ("AssignPublicIp", d.assign_public_ip.to_string()),
            ("DNSName", dns),
            ("ZoneType", d.zone_type.as_str().to_owned()),
            ("ChainSnapshotId", snapshot),
            ("VolumeType", d.volume_type.as_str().to_owned()),
            ("VolumeSize", config.chain_volume_gib().to_string()),
            ("VolumeIops", d.volume_iops.to_string()),
            ("VolumeThroughput", d.volume_throughput.to_string()),
            (
                "VolumeInitializationRate",
                d.volume_initialization_rate.to_string(),
            ),
            ("AutoSnapshots", config.snapshot.auto.to_string()),
            ("KeyName", d.key_name.clone().unwrap_or_default()),
            ("LogRetentionDays", d.log_retention_days.to_string()),
            ("EnableAlarms", d.enable_alarms.to_string()),
            ("EnableGateway", d.gateway.to_string()),
            (
                "GatewayKeyHashes",
                config
                    .gateway
                    .keys
                    .iter()
                    .map(|k| k.sha256.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "MonitorCodeBucket",
                d.monitor_code_bucket.clone().unwrap_or_default(),
            ),
            ("MonitorCodeKey", d.monitor_code_key.clone()),
            ("MonitorSubnetIds", monitor_subnets.join(",")),
            ("MonitorReferences", toml_array(&config.monitor.references)),
            (
                "MonitorLagAlarmBlocks",
                config.monitor.alarm_lag_blocks.max(1).to_string(),
            ),
            (
                "MonitorLagAlarmPeriods",
                config.monitor.alarm_rounds.max(1).to_string(),
            ),
        ];
        Ok(Self { values })
    }
}

/// Whether an instance type runs on Graviton (arm64): the letters after the generation digit carry a
/// `g` (m7g, c7gn, r8gd, t4g, im4gn, g5g), or it is the first Graviton family, a1.
pub fn is_arm64(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or_default();
    if family == "a1" {
        return true;
    }
    family
        .find(|c: char| c.is_ascii_digit())
        .map(|i| &family[i..])
        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
        .is_some_and(|suffix| suffix.split('-').next().unwrap_or_default().contains('g'))
}

/// The public SSM parameter of the ECS-optimized Amazon Linux 2023 AMI for the instance type's
/// architecture ("Retrieving Amazon ECS-optimized Linux AMI metadata", ECS developer guide).
pub fn ami_parameter(instance_type: &str) -> &'static str {
    if is_arm64(instance_type) {
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
    } else {
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
    }
}

/// The daemon service's minimumHealthyPercent that lets ECS stop one node's task at a time. ECS rounds
/// the minimum healthy count up (ceil(n * p / 100)), so floor(100 * (n - 1) / n) leaves exactly one
/// stoppable; with one node only 0 lets a deployment proceed.
pub fn rolling_minimum_healthy_percent(nodes: u32) -> u32 {
    if nodes <= 1 {
        0
    } else {
        100 * (nodes - 1) / nodes
    }
}

/// A run of 20 or more key-like characters ([A-Za-z0-9_-]) in a URL's path or query once `${VAR}`s are
/// taken out: what Infura (32 hex), Alchemy (32) and QuickNode (40) keys look like.
fn literal_key(url: &str) -> Option<String> {
    let mut text = String::new();
    let mut rest = url.split_once("://").map_or(url, |(_, r)| r);
    // The host is not a key.
    rest = rest.find('/').map_or("", |i| &rest[i..]);
    while let Some(start) = rest.find("${") {
        text.push_str(&rest[..start]);
        text.push(' ');
        rest = rest[start..]
            .find('}')
            .map_or("", |end| &rest[start + end + 1..]);
    }
    text.push_str(rest);
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .find(|run| run.len() >= 20)
        .map(str::to_owned)
}

/// A TOML array of strings, as the Lambda's ETHNODE_MONITOR_REFERENCES takes it.
fn toml_array(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// `vpc-`/`subnet-`/`snap-` followed by 8 (old) or 17 (current) lowercase hex digits.
fn aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn check_instance_type(
    t: &str,
    network: Network,
    err: &mut impl FnMut(&'static str, &'static str, String),
) {
    let Some((family, size)) = t.split_once('.') else {
        err(
            "InstanceType",
            "deploy.instance_type",
            format!("`{t}` is not an instance type: expected FAMILY.SIZE, e.g. m7i.2xlarge"),
        );
        return;
    };
    let family_ok = family
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let size_ok = !size.is_empty()
        && size
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !family_ok || !size_ok {
        err(
            "InstanceType",
            "deploy.instance_type",
            format!("`{t}` is not an instance type: expected FAMILY.SIZE, e.g. m7i.2xlarge"),
        );
        return;
    }
    // Reth + Lighthouse on mainnet need >= 16 GiB; below xlarge no general-purpose family has it.
    if network == Network::Mainnet && ["nano", "micro", "small", "medium", "large"].contains(&size)
    {
        err(
            "InstanceType",
            "deploy.instance_type",
            format!(
                "`{t}` is too small for a mainnet node (Reth + Lighthouse want >= 16 GiB of memory); use e.g. m7i.2xlarge or r7i.xlarge"
            ),
        );
    }
}

fn check_volume(config: &Config, err: &mut impl FnMut(&'static str, &'static str, String)) {
    let d = &config.deploy;
    let size = config.chain_volume_gib();
    if !(500..=16384).contains(&size) {
        err(
            "VolumeSize",
            "deploy.volume_size_gib",
            format!("{size} GiB is outside 500..=16384 (a mainnet full node alone is ~1.5 TB)"),
        );
    }
    match d.volume_type {
        VolumeType::Gp3 => {
            // (The IOPS-per-GiB ratios, 500 for gp3 and 1000 for io2, cannot bind at 500 GiB and up.)
            if !(3000..=16000).contains(&d.volume_iops) {
                err(
                    "VolumeIops",
                    "deploy.volume_iops",
                    format!("{} is outside gp3's 3000..=16000", d.volume_iops),
                );
            }
            if !(125..=1000).contains(&d.volume_throughput) {
                err(
                    "VolumeThroughput",
                    "deploy.volume_throughput",
                    format!("{} MiB/s is outside gp3's 125..=1000", d.volume_throughput),
                );
            } else if f64::from(d.volume_throughput) > 0.25 * f64::from(d.volume_iops) {
                err(
                    "VolumeThroughput",
                    "deploy.volume_throughput",
                    format!(
                        "gp3 allows at most 0.25 MiB/s per IOPS: {} MiB/s needs >= {} IOPS",
                        d.volume_throughput,
                        d.volume_throughput * 4
                    ),
                );
            }
        }
        VolumeType::Io2 => {
            if !(100..=64000).contains(&d.volume_iops) {
                err(
                    "VolumeIops",
                    "deploy.volume_iops",
                    format!("{} is outside io2's 100..=64000", d.volume_iops),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Config {
        let mut c = Config::default();
        c.deploy.vpc_id = Some("vpc-0123456789abcdef0".into());
        c.deploy.subnet_ids = vec!["subnet-0123456789abcdef0".into(), "subnet-01234567".into()];
        c.deploy.image =
            Some("123456789012.dkr.ecr.eu-central-1.amazonaws.com/ethnode:0.1.0".into());
        c.dns.name = Some("mainnet.eth.internal".into());
        c
    }

    #[test]
    fn defaults_make_the_documented_stack() {
        let p = StackParams::from_config(&good(), None).unwrap();
        assert_eq!(p.get("VolumeSize"), Some("2048"));
        assert_eq!(p.get("VolumeIops"), Some("6000"));
        assert_eq!(p.get("VolumeThroughput"), Some("500"));
        assert_eq!(p.get("VolumeType"), Some("gp3"));
        assert_eq!(
            p.get("SubnetIds"),
            Some("subnet-0123456789abcdef0,subnet-01234567")
        );
        assert_eq!(p.get("ChainSnapshotId"), Some(""));
        assert_eq!(p.get("ZoneType"), Some("private"));
        let json: serde_json::Value = serde_json::from_str(&p.to_cli_json()).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({"ParameterKey": "Network", "ParameterValue": "mainnet"})
        );
    }

    #[test]
    fn every_template_parameter_is_passed_and_nothing_else() {
        let p = StackParams::from_config(&good(), None).unwrap();
        let template_params: Vec<&str> = crate::TEMPLATE
            .split("\nParameters:\n")
            .nth(1)
            .unwrap()
            .split("\nConditions:")
            .next()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':'))
            .collect();
        let mut ours: Vec<&str> = p.values.iter().map(|(k, _)| *k).collect();
        let mut theirs = template_params.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn current_snapshot_is_kept_unless_the_config_sets_one() {
        let p = StackParams::from_config(&good(), Some("snap-0123456789abcdef0")).unwrap();
        assert_eq!(p.get("ChainSnapshotId"), Some("snap-0123456789abcdef0"));
        let mut c = good();
        c.deploy.chain_snapshot_id = Some("snap-0fedcba9876543210".into());
        let p = StackParams::from_config(&c, Some("snap-0123456789abcdef0")).unwrap();
        assert_eq!(p.get("ChainSnapshotId"), Some("snap-0fedcba9876543210"));
    }

    #[test]
    fn bad_parameters_are_refused_with_key_and_fix() {
        type Case = (fn(&mut Config), &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (
                |c| c.deploy.vpc_id = None,
                "VpcId (deploy.vpc_id): missing",
                "describe-vpcs",
            ),
            (
                |c| c.deploy.vpc_id = Some("vpc-xyz".into()),
                "VpcId (deploy.vpc_id): `vpc-xyz` is not a VPC id",
                "hex",
            ),
            (
                |c| c.deploy.vpc_id = Some("subnet-0123456789abcdef0".into()),
                "is not a VPC id",
                "vpc-",
            ),
            (
                |c| c.deploy.subnet_ids.clear(),
                "SubnetIds (deploy.subnet_ids): missing",
                "subnet-",
            ),
            (
                |c| c.deploy.subnet_ids.push("sg-01234567".into()),
                "`sg-01234567` is not a subnet id",
                "subnet-",
            ),
            (
                |c| c.deploy.chain_snapshot_id = Some("snap-123".into()),
                "ChainSnapshotId (deploy.chain_snapshot_id): `snap-123` is not a snapshot id",
                "remove the key",
            ),
            (
                |c| c.deploy.chain_snapshot_id = Some("vol-0123456789abcdef0".into()),
                "is not a snapshot id",
                "snap-",
            ),
            (
                |c| c.deploy.instance_type = "m7i".into(),
                "InstanceType (deploy.instance_type): `m7i` is not an instance type",
                "FAMILY.SIZE",
            ),
            (
                |c| c.deploy.instance_type = "M7I.2XLARGE".into(),
                "is not an instance type",
                "m7i.2xlarge",
            ),
            (
                |c| c.deploy.instance_type = "t3.micro".into(),
                "`t3.micro` is too small for a mainnet node",
                "16 GiB",
            ),
            (
                |c| c.dns.name = None,
                "DNSName (dns.name): missing",
                "mainnet.eth.internal",
            ),
            (
                |c| c.dns.name = Some("node".into()),
                "DNSName (dns.name): `node` needs a domain part",
                "node.eth.internal",
            ),
            (
                |c| c.deploy.image = None,
                "ImageUri (deploy.image): missing",
                "ethnode image push",
            ),
            (
                |c| c.deploy.volume_iops = 20000,
                "VolumeIops (deploy.volume_iops): 20000 is outside gp3",
                "16000",
            ),
            (
                |c| c.deploy.volume_throughput = 2000,
                "VolumeThroughput",
                "125..=1000",
            ),
            (
                |c| {
                    c.deploy.volume_iops = 3000;
                    c.deploy.volume_throughput = 1000
                },
                "0.25 MiB/s per IOPS",
                "4000 IOPS",
            ),
            (
                |c| c.deploy.volume_size_gib = Some(100),
                "VolumeSize (deploy.volume_size_gib): 100 GiB is outside",
                "1.5 TB",
            ),
            (
                |c| c.deploy.node_count = 0,
                "NodeCount (deploy.node_count): 0",
                "1..=10",
            ),
            (
                |c| c.deploy.log_retention_days = 10,
                "LogRetentionDays",
                "retention",
            ),
            (
                |c| c.node.network = Network::Dev,
                "Network (node.network)",
                "ethnode up --dev",
            ),
        ];
        for (mutate, fragment, fix) in cases {
            let mut c = good();
            mutate(&mut c);
            let errors = StackParams::from_config(&c, None).expect_err(fragment);
            let text = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n");
            assert!(text.contains(fragment), "expected {fragment:?} in:\n{text}");
            assert!(text.contains(fix), "expected fix {fix:?} in:\n{text}");
        }
    }

    #[test]
    fn graviton_types_get_the_arm64_ami_and_others_x86() {
        for t in [
            "m7g.2xlarge",
            "c7gn.4xlarge",
            "r8gd.xlarge",
            "t4g.xlarge",
            "im4gn.2xlarge",
            "is4gen.xlarge",
            "g5g.xlarge",
            "a1.2xlarge",
        ] {
            assert!(is_arm64(t), "{t}");
            assert!(ami_parameter(t).contains("/arm64/"), "{t}");
        }
        for t in [
            "m7i.2xlarge",
            "m7i-flex.2xlarge",
            "g5.xlarge",
            "r7iz.xlarge",
            "c6a.4xlarge",
        ] {
            assert!(!is_arm64(t), "{t}");
            assert!(!ami_parameter(t).contains("arm64"), "{t}");
        }
        let mut c = good();
        c.deploy.instance_type = "m7g.2xlarge".into();
        let p = StackParams::from_config(&c, None).unwrap();
        assert_eq!(
            p.get("AmiParameter"),
            Some("/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id")
        );
    }

    #[test]
    fn rolling_deployments_stop_one_node_at_a_time() {
        // ECS rounds the minimum healthy count up: stoppable = n - ceil(n * p / 100).
        for n in 1..=10u32 {
            let p = rolling_minimum_healthy_percent(n);
            let healthy = (n * p).div_ceil(100);
            assert_eq!(n - healthy, 1, "n={n} p={p}");
        }
        let mut c = good();
        c.deploy.node_count = 3;
        let p = StackParams::from_config(&c, None).unwrap();
        assert_eq!(p.get("RollingMinimumHealthyPercent"), Some("66"));
    }

    #[test]
    fn the_monitor_needs_private_subnets_and_keys_as_variables() {
        let mut c = good();
        c.deploy.monitor_code_bucket = Some("artifacts".into());
        let e = StackParams::from_config(&c, None).unwrap_err();
        assert!(
            e.iter().any(|e| e.key == "deploy.monitor_subnet_ids"
                && e.message.contains("never gets a public IP")),
            "{e:?}"
        );
        c.deploy.monitor_subnet_ids = vec!["subnet-0aaaaaaaaaaaaaaaa".into()];
        c.monitor.references = vec![
            "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef".into(),
            "https://eth-mainnet.g.alchemy.com/v2/${ALCHEMY_KEY}".into(),
            "https://ethereum-rpc.publicnode.com".into(),
        ];
        let e = StackParams::from_config(&c, None).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, "monitor.references");
        assert!(e[0].message.contains("${VAR}"), "{e:?}");
        // The key itself is never repeated in the error.
        assert!(!e[0].message.contains("0123456789abcdef0123"), "{e:?}");
        c.monitor.references.remove(0);
        let p = StackParams::from_config(&c, None).unwrap();
        assert_eq!(p.get("MonitorSubnetIds"), Some("subnet-0aaaaaaaaaaaaaaaa"));
        assert!(
            p.get("MonitorReferences")
                .unwrap()
                .contains("${ALCHEMY_KEY}")
        );
    }

    #[test]
    fn io2_limits_differ_from_gp3() {
        let mut c = good();
        c.deploy.volume_type = VolumeType::Io2;
        c.deploy.volume_iops = 32000;
        let p = StackParams::from_config(&c, None).unwrap();
        assert_eq!(p.get("VolumeType"), Some("io2"));
        // 20,000 IOPS is fine on io2 though not on gp3; 100,000 is too much for either.
        c.deploy.volume_iops = 100_000;
        let e = StackParams::from_config(&c, None).unwrap_err();
        assert!(e[0].message.contains("outside io2's 100..=64000"), "{e:?}");
    }
}

#[cfg(test)]
mod toml_array_tests {
    #[test]
    fn references_reach_the_lambda_as_a_toml_array_it_parses() {
        let refs = vec![
            "https://a/v3/KEY".to_string(),
            "https://b/?q=\"x\"\\y".to_string(),
        ];
        let text = super::toml_array(&refs);
        let parsed: toml::Table = toml::from_str(&format!("v = {text}")).unwrap();
        let back: Vec<String> = parsed["v"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(back, refs);
    }
}
