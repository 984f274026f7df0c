//! ethnode's AWS edge: one `SdkConfig` from the standard settings and one small wrapper per service —
//! instance metadata (IMDSv2 only), Route53, CloudFormation, EC2, ECR, CloudWatch, SSM, Auto Scaling, Service
//! Quotas — each
//! returning [`AwsError`].
//!
//! Every client honours the SDK's standard endpoint settings (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`), so the same binary runs against
//! AWS and against a local emulator such as moto.

mod autoscaling;
mod cloudformation;
mod cloudwatch;
mod ec2;
mod ecr;
mod error;
mod imds;
mod quotas;
mod route53;
mod ssm;

pub use autoscaling::AutoScaling;
pub use cloudformation::{Cfn, ChangeSetInfo, ResourceChange, StackEvent, StackInfo, StackOutput};
pub use cloudwatch::{CloudWatch, Datum};
pub use ec2::{Ec2, Instance, Snapshot, Subnet, Volume};
pub use ecr::{Ecr, RegistryLogin};
pub use error::AwsError;
pub use imds::{InstanceFacts, MetadataError, instance_facts, target_lifecycle_state};
pub use quotas::Quotas;
pub use route53::{Dns, DnsError, DnsRecord};
pub use ssm::Ssm;

pub use aws_config::SdkConfig;

use aws_config::{BehaviorVersion, Region, retry::RetryConfig};

/// Loads the one shared SDK configuration: credentials, region and endpoints from the standard chain,
/// with `region` (from ethnode.toml) taking precedence when set.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // Standard mode: exponential backoff with jitter on throttling and transient errors.
        .retry_config(RetryConfig::standard().with_max_attempts(5));
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}
