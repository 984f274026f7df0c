//! Instance metadata through IMDSv2: a session token first, then each path with that token.
//!
//! aws-config's IMDS client does the token dance, honours `AWS_EC2_METADATA_SERVICE_ENDPOINT`, and never
//! falls back to token-less IMDSv1; we only bound its timeouts so that a host off EC2 finds out fast.

use aws_config::imds::client::{Client, error::ImdsError};
use std::net::IpAddr;
use std::time::Duration;

/// What the metadata service says about this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFacts {
    /// `i-…`
    pub instance_id: Option<String>,
    /// Region the instance runs in.
    pub region: Option<String>,
    /// Public IPv4, when the instance has one.
    pub public_ip: Option<IpAddr>,
    /// Private IPv4 in the VPC.
    pub private_ip: Option<IpAddr>,
}

/// Why the metadata service could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `AWS_EC2_METADATA_DISABLED=true`.
    #[error("instance metadata disabled by AWS_EC2_METADATA_DISABLED")]
    Disabled,
    /// Not reachable or refused a token: most likely not on EC2.
    #[error(
        "instance metadata service not reachable ({0}): the host is off EC2, or the IMDS hop limit is too low for a container"
    )]
    Unreachable(String),
    /// A value came back that is not what the path promises.
    #[error("instance metadata returned an invalid {path}: {value:?}")]
    Invalid {
        /// Metadata path.
        path: &'static str,
        /// What came back.
        value: String,
    },
}

/// Asks IMDSv2 for the instance id, region and addresses, each request bounded by `timeout`.
pub async fn instance_facts(timeout: Duration) -> Result<InstanceFacts, MetadataError> {
    if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(MetadataError::Disabled);
    }
    let client = client(timeout);
    // The instance id is always there on EC2: if it fails, nothing else will work.
    let instance_id = get(&client, "/latest/meta-data/instance-id")
        .await?
        .ok_or_else(|| MetadataError::Unreachable("no instance-id".into()))?;
    let region = get(&client, "/latest/meta-data/placement/region").await?;
    let private_ip = ip(&client, "/latest/meta-data/local-ipv4").await?;
    // 404 when the instance has no public address (private subnet behind NAT).
    let public_ip = ip(&client, "/latest/meta-data/public-ipv4").await?;
    Ok(InstanceFacts {
        instance_id: Some(instance_id),
        region,
        public_ip,
        private_ip,
    })
}

/// The Auto Scaling target lifecycle state (`InService`, `Terminated`, …) from instance metadata, or
/// `None` when the instance is not in a group ("Retrieve the target lifecycle state through instance
/// metadata", EC2 Auto Scaling user guide: Auto Scaling updates it when it decides to terminate).
pub async fn target_lifecycle_state(timeout: Duration) -> Result<Option<String>, MetadataError> {
    get(
        &client(timeout),
        "/latest/meta-data/autoscaling/target-lifecycle-state",
    )
    .await
}

/// An IMDS client whose every request is bounded by `timeout`: a host off EC2 finds out fast.
fn client(timeout: Duration) -> Client {
    Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .operation_timeout(timeout * 3)
        .max_attempts(2)
        .build()
}

async fn get(client: &Client, path: &'static str) -> Result<Option<String>, MetadataError> {
    match client.get(path).await {
        Ok(v) => Ok(Some(v.as_ref().trim().to_owned())),
        Err(ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => Ok(None),
        Err(e) => Err(MetadataError::Unreachable(
            aws_config::imds::client::error::ImdsError::to_string(&e),
        )),
    }
}

async fn ip(client: &Client, path: &'static str) -> Result<Option<IpAddr>, MetadataError> {
    match get(client, path).await? {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| MetadataError::Invalid { path, value: v }),
    }
}
