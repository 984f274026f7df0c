//! Stack changes without a person in the loop: the parameter update that promotes a snapshot, and waiting
//! for a stack to settle. The CLI adds the summary, the confirmation and the live display on top.

use ethnode_aws::{AwsError, Cfn, ResourceChange};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a stack change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The stack does not exist.
    #[error("stack {0} does not exist; `ethnode deploy` creates it")]
    NoStack(String),
    /// The stack is in the middle of another change.
    #[error("stack {stack} is busy ({status}); wait for it and try again")]
    Busy {
        /// Stack.
        stack: String,
        /// Its status.
        status: String,
    },
    /// CloudFormation refused the change.
    #[error("CloudFormation refused the change set: {0}")]
    Refused(String),
    /// The stack ended in a state other than success.
    #[error("stack {stack} ended {status}")]
    Failed {
        /// Stack.
        stack: String,
        /// Final status.
        status: String,
    },
    /// Still going after the maximum wait.
    #[error("stack {stack} still {status} after {secs}s")]
    Timeout {
        /// Stack.
        stack: String,
        /// Status then.
        status: String,
        /// Seconds waited.
        secs: u64,
    },
}

/// A change set ready to execute, or the news that there is nothing to change.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Change set id.
    pub id: String,
    /// Its resource changes.
    pub changes: Vec<ResourceChange>,
    /// True when CloudFormation found nothing to change (the change set is already deleted).
    pub no_changes: bool,
}

/// A unique change-set name.
pub fn change_set_name(purpose: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("ethnode-{purpose}-{nanos}")
}

/// Prepares an update of one parameter, keeping the template and every other parameter as deployed.
/// All values are passed explicitly (not `UsePreviousValue`), which every CloudFormation implementation
/// takes the same way.
pub async fn prepare_parameter_update(
    cfn: &Cfn,
    stack: &str,
    key: &str,
    value: &str,
    poll: Duration,
) -> Result<Prepared, StackError> {
    let info = cfn
        .describe(stack)
        .await?
        .ok_or_else(|| StackError::NoStack(stack.to_owned()))?;
    if info.status.ends_with("_IN_PROGRESS") {
        return Err(StackError::Busy {
            stack: stack.to_owned(),
            status: info.status,
        });
    }
    let params: Vec<(String, String)> = info
        .parameters
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == key {
                    value.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let id = cfn
        .create_change_set(stack, &change_set_name(key), None, &params, false)
        .await?;
    let cs = cfn
        .wait_change_set(&id, poll, Duration::from_secs(600))
        .await?;
    if cs.status == "FAILED" {
        let reason = cs.reason.unwrap_or_default();
        if reason.contains("didn't contain changes") || reason.contains("No updates") {
            let _ = cfn.delete_change_set(&id).await;
            return Ok(Prepared {
                id,
                changes: Vec::new(),
                no_changes: true,
            });
        }
        return Err(StackError::Refused(reason));
    }
    Ok(Prepared {
        id,
        changes: cs.changes,
        no_changes: false,
    })
}

/// Waits until the stack is no longer in progress; errors unless it ends in success.
pub async fn wait_settled(
    cfn: &Cfn,
    stack: &str,
    poll: Duration,
    max: Duration,
) -> Result<String, StackError> {
    let start = Instant::now();
    loop {
        let status = cfn
            .describe(stack)
            .await?
            .map_or("DELETE_COMPLETE".to_string(), |i| i.status);
        if !status.ends_with("_IN_PROGRESS") {
            return if status.ends_with("_COMPLETE") && !status.contains("ROLLBACK") {
                Ok(status)
            } else {
                Err(StackError::Failed {
                    stack: stack.to_owned(),
                    status,
                })
            };
        }
        if start.elapsed() > max {
            return Err(StackError::Timeout {
                stack: stack.to_owned(),
                status,
                secs: max.as_secs(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}
