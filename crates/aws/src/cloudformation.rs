//! CloudFormation: stacks, change sets, events.

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};
use std::time::Duration;

const SERVICE: &str = "cloudformation";

/// A stack as DescribeStacks shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackInfo {
    /// Stack name.
    pub name: String,
    /// Stack id (ARN).
    pub id: String,
    /// `CREATE_COMPLETE`, `UPDATE_IN_PROGRESS`, …
    pub status: String,
    /// Why it is in that state, when CloudFormation says.
    pub reason: Option<String>,
    /// Parameter values.
    pub parameters: Vec<(String, String)>,
    /// Outputs: key, value, export name.
    pub outputs: Vec<StackOutput>,
}

impl StackInfo {
    /// A parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An output's value.
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.value.as_str())
    }
}

/// One stack output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackOutput {
    /// Output key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Export name, when exported.
    pub export: Option<String>,
}

/// One resource change in a change set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove`, …
    pub action: String,
    /// Logical id in the template.
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// `True`, `False`, `Conditional` (Modify only).
    pub replacement: Option<String>,
    /// What drives the change: `Properties`, `Tags`, …
    pub scope: Vec<String>,
}

/// A change set after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetInfo {
    /// Its id.
    pub id: String,
    /// `CREATE_COMPLETE` or `FAILED`.
    pub status: String,
    /// Why it failed (e.g. "didn't contain changes").
    pub reason: Option<String>,
    /// The changes.
    pub changes: Vec<ResourceChange>,
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    /// Unique id, for de-duplication while polling.
    pub id: String,
    /// RFC 3339 time.
    pub time: String,
    /// Logical id (the stack's own name for stack-level events).
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// Status.
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
}

/// CloudFormation client wrapper.
#[derive(Debug, Clone)]
pub struct Cfn {
    client: Client,
}

impl Cfn {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// The stack, or `None` when it does not exist.
    pub async fn describe(&self, stack: &str) -> Result<Option<StackInfo>, AwsError> {
        let out = match self.client.describe_stacks().stack_name(stack).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "DescribeStacks", e);
                if err.message.contains("does not exist") {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        let Some(s) = out.stacks().first() else {
            return Ok(None);
        };
        let status = s
            .stack_status()
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default();
        if status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        Ok(Some(StackInfo {
            name: s.stack_name().unwrap_or(stack).to_owned(),
            id: s.stack_id().unwrap_or_default().to_owned(),
            status,
            reason: s.stack_status_reason().map(str::to_owned),
            parameters: s
                .parameters()
                .iter()
                .map(|p| {
                    (
                        p.parameter_key().unwrap_or_default().to_owned(),
                        p.parameter_value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            outputs: s
                .outputs()
                .iter()
                .map(|o| StackOutput {
                    key: o.output_key().unwrap_or_default().to_owned(),
                    value: o.output_value().unwrap_or_default().to_owned(),
                    export: o.export_name().map(str::to_owned),
                })
                .collect(),
        }))
    }

    /// Creates a change set (`create` for a new stack) and returns its id; `template: None` keeps the
    /// stack's current template.
    pub async fn create_change_set(
        &self,
        stack: &str,
        name: &str,
        template: Option<&str>,
        parameters: &[(String, String)],
        create: bool,
    ) -> Result<String, AwsError> {
        let params = parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect();
        let out = self
            .client
            .create_change_set()
            .stack_name(stack)
            .change_set_name(name)
            .change_set_type(if create {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .set_template_body(template.map(str::to_owned))
            .set_use_previous_template(template.is_none().then_some(true))
            .set_parameters(Some(params))
            .capabilities(Capability::CapabilityIam)
            .tags(
                aws_sdk_cloudformation::types::Tag::builder()
                    .key("ethnode:stack")
                    .value(stack)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "CreateChangeSet", e))?;
        out.id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::malformed(SERVICE, "CreateChangeSet", "an id"))
    }

    /// Polls the change set until it is created or failed, at most `max_wait`.
    pub async fn wait_change_set(
        &self,
        id: &str,
        poll: Duration,
        max_wait: Duration,
    ) -> Result<ChangeSetInfo, AwsError> {
        let start = std::time::Instant::now();
        loop {
            let out = self
                .client
                .describe_change_set()
                .change_set_name(id)
                .send()
                .await
                .map_err(|e| AwsError::sdk(SERVICE, "DescribeChangeSet", e))?;
            let status = out
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            if status == "CREATE_COMPLETE" || status == "FAILED" {
                let changes = out
                    .changes()
                    .iter()
                    .filter_map(|c| c.resource_change())
                    .map(|r| ResourceChange {
                        action: r
                            .action()
                            .map(|a| a.as_str().to_owned())
                            .unwrap_or_default(),
                        logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
                        resource_type: r.resource_type().unwrap_or_default().to_owned(),
                        replacement: r.replacement().map(|x| x.as_str().to_owned()),
                        scope: r.scope().iter().map(|s| s.as_str().to_owned()).collect(),
                    })
                    .collect();
                return Ok(ChangeSetInfo {
                    id: id.to_owned(),
                    status,
                    reason: out.status_reason().map(str::to_owned),
                    changes,
                });
            }
            if start.elapsed() > max_wait {
                return Err(AwsError {
                    service: SERVICE,
                    operation: "DescribeChangeSet",
                    code: None,
                    message: format!(
                        "change set still {status} after {}s; look at it in the console or run again",
                        max_wait.as_secs()
                    ),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Starts applying a change set.
    pub async fn execute_change_set(&self, id: &str) -> Result<(), AwsError> {
        self.client
            .execute_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "ExecuteChangeSet", e))?;
        Ok(())
    }

    /// Deletes a change set that will not be executed.
    pub async fn delete_change_set(&self, id: &str) -> Result<(), AwsError> {
        self.client
            .delete_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DeleteChangeSet", e))?;
        Ok(())
    }

    /// The stack's events, newest first (first page: enough for polling every few seconds).
    pub async fn events(&self, stack: &str) -> Result<Vec<StackEvent>, AwsError> {
        let out = self
            .client
            .describe_stack_events()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DescribeStackEvents", e))?;
        Ok(out
            .stack_events()
            .iter()
            .map(|e| StackEvent {
                id: e.event_id().unwrap_or_default().to_owned(),
                time: e.timestamp().map(|t| t.to_string()).unwrap_or_default(),
                logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                resource_type: e.resource_type().unwrap_or_default().to_owned(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().map(str::to_owned),
            })
            .collect())
    }

    /// Starts deleting the stack.
    pub async fn delete_stack(&self, stack: &str) -> Result<(), AwsError> {
        self.client
            .delete_stack()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DeleteStack", e))?;
        Ok(())
    }
}
