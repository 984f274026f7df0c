//! Per-stack ("fleet") work that the CLI and every node's agent share: which snapshot new nodes start
//! from, promoting a completed snapshot, and which snapshots pruning may delete.
//!
//! The stack's current snapshot lives in an SSM parameter the stack creates
//! (`/ethnode/<stack>/chain-snapshot-id`); each new instance reads it at first boot to create its chain
//! volume. Promoting is one `PutParameter`: no stack update, so a node needs no rights over CloudFormation,
//! launch templates, Auto Scaling or IAM to promote.
//!
//! The values of `${VAR}` in reference URLs (API keys) are the stack's too: SSM SecureStrings under
//! `/ethnode/<stack>/secrets/`, written by `ethnode deploy`, read at run time where the environment lacks them.

mod claim;
mod secrets;
mod snapshots;

pub use claim::{Claim, claim_parameter};
pub use secrets::{expand_secrets, secrets_prefix, store_secrets};
pub use snapshots::{SnapshotRow, prune_plan, snapshot_rows};

use ethnode_aws::{AwsError, Ec2, Snapshot, Ssm};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The SSM parameter holding the stack's current snapshot id (`none` for an empty volume).
pub fn snapshot_parameter(stack: &str) -> String {
    format!("/ethnode/{stack}/chain-snapshot-id")
}

/// The stack name for a config: `aws.stack_name`, else `ethnode-<network>`.
pub fn stack_name(config: &ethnode_config::Config) -> String {
    config
        .aws
        .stack_name
        .clone()
        .unwrap_or_else(|| format!("ethnode-{}", config.node.network.as_str()))
}

/// Why fleet work could not be done.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The stack's snapshot parameter does not exist.
    #[error("{0} does not exist: is the stack deployed (`ethnode deploy`) with this stack name?")]
    NoParameter(String),
    /// The snapshot does not exist.
    #[error("snapshot {0} does not exist; `ethnode snapshot list` shows the stack's")]
    NoSnapshot(String),
    /// The snapshot is not completed (a volume made from a pending snapshot would wait for it).
    #[error("snapshot {id} is {state}, not completed; wait for it (`ethnode snapshot list`)")]
    NotCompleted {
        /// Snapshot.
        id: String,
        /// Its state.
        state: String,
    },
    /// A `${VAR}` has no value anywhere.
    #[error("{0}")]
    MissingSecret(String),
    /// The snapshot did not complete in time.
    #[error("snapshot {id} still {state} after {secs}s")]
    Timeout {
        /// Snapshot.
        id: String,
        /// Its state then.
        state: String,
        /// Seconds waited.
        secs: u64,
    },
}

/// The stack's current snapshot: `Some(snap-…)`, or `None` when new nodes start with an empty volume.
pub async fn current_snapshot(ssm: &Ssm, stack: &str) -> Result<Option<String>, FleetError> {
    let name = snapshot_parameter(stack);
    let value = ssm.get(&name).await?.ok_or(FleetError::NoParameter(name))?;
    Ok((value != "none" && !value.is_empty()).then_some(value))
}

/// Makes new nodes start from `id`, which must exist and be completed.
pub async fn promote(ec2: &Ec2, ssm: &Ssm, stack: &str, id: &str) -> Result<(), FleetError> {
    let snapshot = ec2
        .snapshot(id)
        .await?
        .ok_or_else(|| FleetError::NoSnapshot(id.to_owned()))?;
    if snapshot.state != "completed" {
        return Err(FleetError::NotCompleted {
            id: id.to_owned(),
            state: snapshot.state,
        });
    }
    let name = snapshot_parameter(stack);
    // Only an existing parameter is overwritten: a typo in the stack name must not create a stray one.
    if ssm.get(&name).await?.is_none() {
        return Err(FleetError::NoParameter(name));
    }
    ssm.overwrite(&name, id).await?;
    Ok(())
}

/// Polls `id` until EBS says `completed` (or `error`), at most `max`.
pub async fn wait_completed(
    ec2: &Ec2,
    id: &str,
    poll: Duration,
    max: Duration,
) -> Result<Snapshot, FleetError> {
    let start = Instant::now();
    loop {
        let s = ec2
            .snapshot(id)
            .await?
            .ok_or_else(|| FleetError::NoSnapshot(id.to_owned()))?;
        match s.state.as_str() {
            "completed" => return Ok(s),
            "pending" if start.elapsed() < max => tokio::time::sleep(poll).await,
            state => {
                return Err(FleetError::Timeout {
                    id: id.to_owned(),
                    state: state.to_owned(),
                    secs: start.elapsed().as_secs(),
                });
            }
        }
    }
}

/// The stack's snapshots (newest first), the current one, and those a volume was made from.
pub async fn inventory(
    ec2: &Ec2,
    ssm: &Ssm,
    stack: &str,
) -> Result<(Vec<Snapshot>, Option<String>, HashSet<String>), FleetError> {
    let snapshots = ec2.snapshots_by_tag("ethnode:stack", stack).await?;
    let current = current_snapshot(ssm, stack).await?;
    let mut in_use = HashSet::new();
    for s in &snapshots {
        if !ec2.volumes_from_snapshot(&s.id).await?.is_empty() {
            in_use.insert(s.id.clone());
        }
    }
    Ok((snapshots, current, in_use))
}
