//! Graceful scale-in: Auto Scaling holds a terminating instance in `Terminating:Wait` (the stack's
//! termination lifecycle hook) and says so in instance metadata (`autoscaling/target-lifecycle-state` =
//! `Terminated`). The agent notices, stops the node the way it does on SIGTERM (DNS record first, then the
//! consensus client, then the execution client) and completes the lifecycle action so the group proceeds.
//! Without this, scale-in and instance replacement would kill the task with no regard for the clients.

use ethnode_aws::AutoScaling;
use ethnode_config::Config;
use std::time::Duration;

/// What the agent needs to let the group proceed once the node is stopped.
pub(crate) struct Termination {
    group: String,
    hook: String,
    instance: String,
    region: Option<String>,
}

impl Termination {
    /// Completes the lifecycle action (CONTINUE), retrying a few times; the hook's heartbeat timeout and
    /// default result (CONTINUE) cover an agent that cannot.
    pub(crate) async fn complete(self) {
        let sdk = ethnode_aws::sdk_config(self.region.as_deref()).await;
        let asg = AutoScaling::new(&sdk);
        for attempt in 1..=5u32 {
            match asg
                .complete_lifecycle_action(&self.group, &self.hook, &self.instance)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        group = self.group,
                        hook = self.hook,
                        "lifecycle action completed: the instance may go"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "completing the lifecycle action failed");
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
            }
        }
        tracing::error!(
            "could not complete the lifecycle action; the group proceeds after the hook's heartbeat timeout"
        );
    }
}

/// Starts watching instance metadata when `agent.lifecycle_hook` and `agent.autoscaling_group` are set
/// and the instance id is known; the receiver fires once, on `Terminated`.
pub(crate) fn watch(
    config: &Config,
    instance: Option<String>,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Option<tokio::sync::oneshot::Receiver<Termination>> {
    let (Some(hook), Some(group), Some(instance)) = (
        config.agent.lifecycle_hook.clone(),
        config.agent.autoscaling_group.clone(),
        instance,
    ) else {
        return None;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let poll = Duration::from_secs(config.agent.lifecycle_poll_secs.max(1));
    let timeout = Duration::from_millis(config.agent.imds_timeout_ms);
    let region = config.aws.region.clone();
    background.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match ethnode_aws::target_lifecycle_state(timeout).await {
                Ok(Some(state)) if state == "Terminated" => {
                    let _ = tx.send(Termination {
                        group,
                        hook,
                        instance,
                        region,
                    });
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "lifecycle state not readable"),
            }
        }
    }));
    Some(rx)
}
