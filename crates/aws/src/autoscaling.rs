//! Auto Scaling: letting a terminating instance go once the agent has stopped the node gracefully.

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_autoscaling::Client;

const SERVICE: &str = "autoscaling";

/// Auto Scaling client wrapper.
#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: Client,
}

impl AutoScaling {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// Completes `hook` for `instance` with CONTINUE: the group may terminate it now.
    pub async fn complete_lifecycle_action(
        &self,
        group: &str,
        hook: &str,
        instance: &str,
    ) -> Result<(), AwsError> {
        self.client
            .complete_lifecycle_action()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .instance_id(instance)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "CompleteLifecycleAction", e))?;
        Ok(())
    }
}
