//! EC2: the stack's instances and chain volumes, and snapshots of them.

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

const SERVICE: &str = "ec2";

/// An instance of the stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// `i-…`
    pub id: String,
    /// `running`, `pending`, …
    pub state: String,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub zone: Option<String>,
    /// Private IPv4.
    pub private_ip: Option<String>,
    /// Public IPv4.
    pub public_ip: Option<String>,
    /// Launch time (RFC 3339).
    pub launched: Option<String>,
}

/// An EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    /// `vol-…`
    pub id: String,
    /// Size in GiB.
    pub size_gib: i32,
    /// `in-use`, `available`, …
    pub state: String,
    /// Instance it is attached to.
    pub instance: Option<String>,
    /// Device name of that attachment.
    pub device: Option<String>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

/// EC2 client wrapper.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

impl Ec2 {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// Instances (not terminated) carrying tag `key=value`.
    pub async fn instances_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<Instance>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(tag_filter(key, value))
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(SERVICE, "DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    out.push(Instance {
                        id: i.instance_id().unwrap_or_default().to_owned(),
                        state: i
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_owned())
                            .unwrap_or_default(),
                        instance_type: i
                            .instance_type()
                            .map(|t| t.as_str().to_owned())
                            .unwrap_or_default(),
                        zone: i
                            .placement()
                            .and_then(|p| p.availability_zone())
                            .map(str::to_owned),
                        private_ip: i.private_ip_address().map(str::to_owned),
                        public_ip: i.public_ip_address().map(str::to_owned),
                        launched: i.launch_time().map(|t| t.to_string()),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Volumes carrying tag `key=value`.
    pub async fn volumes_by_tag(&self, key: &str, value: &str) -> Result<Vec<Volume>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_volumes()
            .filters(tag_filter(key, value))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(SERVICE, "DescribeVolumes", e))?;
            for v in page.volumes() {
                let attachment = v.attachments().first();
                out.push(Volume {
                    id: v.volume_id().unwrap_or_default().to_owned(),
                    size_gib: v.size().unwrap_or_default(),
                    state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    instance: attachment.and_then(|a| a.instance_id()).map(str::to_owned),
                    device: attachment.and_then(|a| a.device()).map(str::to_owned),
                    tags: v
                        .tags()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or_default().to_owned(),
                                t.value().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// Starts a snapshot of `volume` with tags applied at creation; returns the snapshot id.
    pub async fn create_snapshot(
        &self,
        volume: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let out = self
            .client
            .create_snapshot()
            .volume_id(volume)
            .description(description)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "CreateSnapshot", e))?;
        out.snapshot_id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::malformed(SERVICE, "CreateSnapshot", "a snapshot id"))
    }
}
