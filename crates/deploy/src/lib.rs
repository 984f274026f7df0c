//! The AWS stack as data: the CloudFormation template shipped in the repo (embedded here), its parameters
//! derived from ethnode's config and validated before any AWS call, the readable summary of a change set,
//! and the monthly cost model. The AWS calls themselves live in `ethnode-aws`; the CLI drives both.

mod cost;
mod params;
mod summary;

pub use cost::{CostLine, CostReport, PriceTable, estimate};
pub use params::{ParamError, StackParams};
pub use summary::{Severity, summarize};

/// The CloudFormation template (`deploy/cloudformation/ethnode.yml`).
pub const TEMPLATE: &str = include_str!("../../../deploy/cloudformation/ethnode.yml");

/// The node image's Dockerfile (`deploy/docker/Dockerfile`).
pub const DOCKERFILE: &str = include_str!("../../../deploy/docker/Dockerfile");

/// The price table `ethnode cost` uses (`deploy/prices.toml`).
pub const PRICES: &str = include_str!("../../../deploy/prices.toml");

/// Port of the agent API in the deployed stack (the template's security group admits it).
pub const AGENT_PORT: u16 = 8555;

/// The stack name for a config: `aws.stack_name`, else `ethnode-<network>`.
pub fn stack_name(config: &ethnode_config::Config) -> String {
    config
        .aws
        .stack_name
        .clone()
        .unwrap_or_else(|| format!("ethnode-{}", config.node.network.as_str()))
}
