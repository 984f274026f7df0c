//! The AWS stack as data: the CloudFormation template shipped in the repo (embedded here), its parameters
//! derived from ethnode's config and validated before any AWS call, the readable summary of a change set,
//! and the monthly cost model. The AWS calls themselves live in `ethnode-aws`; the CLI drives both.

mod cost;
mod doctor;
mod params;
mod summary;

pub use cost::{CostLine, CostReport, Needs, PriceTable, estimate, needs};
pub use doctor::{Finding, doctor};
pub use params::{
    ParamError, StackParams, ami_parameter, is_arm64, rolling_minimum_healthy_percent,
};
pub use summary::{Severity, summarize};

/// The CloudFormation template (`deploy/cloudformation/ethnode.yml`).
pub const TEMPLATE: &str = include_str!("../../../deploy/cloudformation/ethnode.yml");

/// The node image's Dockerfile (`deploy/docker/Dockerfile`).
pub const DOCKERFILE: &str = include_str!("../../../deploy/docker/Dockerfile");

/// The price table `ethnode cost` uses (`deploy/prices.toml`).
pub const PRICES: &str = include_str!("../../../deploy/prices.toml");

/// Port of the agent API in the deployed stack (the template's security group admits it).
pub const AGENT_PORT: u16 = 8555;

pub use ethnode_fleet::stack_name;

#[cfg(test)]
mod tests {
    use super::TEMPLATE;
    use std::collections::BTreeSet;

    /// (protocol, port) of the template's ingress rules whose source contains `source`.
    fn rules_from(source: &str) -> BTreeSet<(String, u16)> {
        TEMPLATE
            .lines()
            .filter(|l| l.contains("IpProtocol:") && l.contains(source))
            .map(|l| {
                let field = |name: &str| {
                    l.split(name)
                        .nth(1)
                        .and_then(|rest| rest.split(',').next())
                        .map(|v| v.trim().to_string())
                        .unwrap()
                };
                (field("IpProtocol:"), field("FromPort:").parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn template_opens_p2p_to_ipv4_and_ipv6_and_nothing_else() {
        let p2p: BTreeSet<(String, u16)> = [
            ("tcp", 30303),
            ("udp", 30303),
            ("udp", 9200),
            ("tcp", 9000),
            ("udp", 9000),
            ("udp", 9001),
        ]
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
        // The same ports the default profile's clients listen on for peers (argv and template agree).
        let profile: BTreeSet<(String, u16)> = ethnode_config::Config::default()
            .listening_ports()
            .into_iter()
            .filter(|(key, ..)| {
                [
                    "ports.p2p",
                    "ports.discv5",
                    "ports.consensus_p2p",
                    "ports.consensus_quic",
                ]
                .contains(key)
            })
            .map(|(_, port, proto)| (proto.to_string(), port))
            .collect();
        assert_eq!(profile, p2p);
        assert_eq!(rules_from("CidrIp: 0.0.0.0/0"), p2p);
        assert_eq!(rules_from("CidrIpv6: \"::/0\""), p2p);
        let from_access = rules_from("SourceSecurityGroupId: !Ref AccessSecurityGroup");
        // The nodes' RPC and agent API, and the gateway's load balancer (its own group).
        let rpc: BTreeSet<(String, u16)> = [8545, 8546, 8555, 8547]
            .into_iter()
            .map(|n| ("tcp".to_string(), n))
            .collect();
        assert_eq!(from_access, rpc);
        // The nodes take the gateway port from the load balancer's group only, which sends nowhere else.
        assert!(TEMPLATE.contains("      FromPort: 8547\n      ToPort: 8547\n      SourceSecurityGroupId: !Ref GatewayLoadBalancerSecurityGroup"));
        assert!(TEMPLATE.contains(
            "FromPort: 8547, ToPort: 8547, DestinationSecurityGroupId: !Ref NodeSecurityGroup"
        ));
        let all_rules = TEMPLATE
            .lines()
            .filter(|l| l.contains("IpProtocol:"))
            .count();
        assert_eq!(
            all_rules,
            2 * p2p.len() + rpc.len() + 2,
            "an ingress rule of another kind crept in"
        );
        // Nodes reach each other's agent (automatic snapshots) by being in the access group themselves.
        assert!(TEMPLATE.contains("Groups: [!Ref NodeSecurityGroup, !Ref AccessSecurityGroup]"));
        assert!(
            !TEMPLATE.contains("8551"),
            "the Engine API port must never be opened"
        );
    }

    #[test]
    fn template_has_no_wildcard_iam_actions() {
        for line in TEMPLATE.lines().filter(|l| l.contains("Action")) {
            assert!(
                !line.contains("Action: \"*\"")
                    && !line.contains("Action: '*'")
                    && !line.contains(":*"),
                "{line}"
            );
        }
    }
}
