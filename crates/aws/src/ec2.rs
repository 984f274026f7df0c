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

/// An EBS snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// `snap-…`
    pub id: String,
    /// Volume it was taken from.
    pub volume_id: Option<String>,
    /// `pending`, `completed`, `error`, …
    pub state: String,
    /// Progress as EBS reports it, e.g. `42%`.
    pub progress: Option<String>,
    /// Start time (RFC 3339).
    pub started: Option<String>,
    /// Start time, milliseconds since the epoch: snapshots taken in the same second still sort.
    pub started_ms: i64,
    /// Size of the source volume in GiB.
    pub volume_size_gib: i32,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

impl Snapshot {
    /// When it was taken, epoch milliseconds: ethnode's own `ethnode:taken` tag (written at CreateSnapshot,
    /// millisecond precision), else EBS's start time (which some implementations round to the second).
    pub fn taken_ms(&self) -> i64 {
        self.tag("ethnode:taken")
            .and_then(|t| t.parse().ok())
            .unwrap_or(self.started_ms)
    }

    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn tags_of(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn snapshot_of(s: &aws_sdk_ec2::types::Snapshot) -> Snapshot {
    Snapshot {
        id: s.snapshot_id().unwrap_or_default().to_owned(),
        volume_id: s.volume_id().map(str::to_owned),
        state: s.state().map(|x| x.as_str().to_owned()).unwrap_or_default(),
        progress: s.progress().map(str::to_owned),
        started: s.start_time().map(|t| t.to_string()),
        started_ms: s
            .start_time()
            .map_or(0, |t| (t.as_nanos() / 1_000_000) as i64),
        volume_size_gib: s.volume_size().unwrap_or_default(),
        tags: tags_of(s.tags()),
    }
}

/// A subnet, as the preflight sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subnet {
    /// `subnet-…`
    pub id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Its availability zone.
    pub zone: String,
    /// Instances launched here get a public IPv4 by default.
    pub map_public_ip: bool,
    /// Where its default route (0.0.0.0/0) goes — `igw-…`, `nat-…`, `eni-…`, `i-…` — from its own route
    /// table or, without one, the VPC's main table; `None` when it has no default route.
    pub default_route: Option<String>,
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

    /// The state (`pending`, `running`, `terminated`, …) of each of `ids` that EC2 still knows; an id it
    /// does not know is absent (a filter, not InstanceIds, so an unknown id is no error).
    pub async fn instance_states(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, AwsError> {
        let mut out = std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(SERVICE, "DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    if let (Some(id), Some(state)) =
                        (i.instance_id(), i.state().and_then(|s| s.name()))
                    {
                        out.insert(id.to_owned(), state.as_str().to_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The VPC's `enableDnsSupport` and `enableDnsHostnames`, or `None` when it does not exist.
    pub async fn vpc_dns(&self, vpc: &str) -> Result<Option<(bool, bool)>, AwsError> {
        use aws_sdk_ec2::types::VpcAttributeName;
        let mut values = [false; 2];
        for (i, attribute) in [
            VpcAttributeName::EnableDnsSupport,
            VpcAttributeName::EnableDnsHostnames,
        ]
        .into_iter()
        .enumerate()
        {
            match self
                .client
                .describe_vpc_attribute()
                .vpc_id(vpc)
                .attribute(attribute)
                .send()
                .await
            {
                Ok(out) => {
                    values[i] = out
                        .enable_dns_support()
                        .or(out.enable_dns_hostnames())
                        .and_then(|v| v.value())
                        .unwrap_or(false);
                }
                Err(e) => {
                    let err = AwsError::sdk(SERVICE, "DescribeVpcAttribute", e);
                    if err.code.as_deref() == Some("InvalidVpcID.NotFound") {
                        return Ok(None);
                    }
                    return Err(err);
                }
            }
        }
        Ok(Some((values[0], values[1])))
    }

    /// The subnets among `ids` that exist, with where their default route goes.
    pub async fn subnets(&self, ids: &[String]) -> Result<Vec<Subnet>, AwsError> {
        let out = self
            .client
            .describe_subnets()
            .filters(
                Filter::builder()
                    .name("subnet-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DescribeSubnets", e))?;
        let mut subnets = Vec::new();
        for s in out.subnets() {
            let id = s.subnet_id().unwrap_or_default().to_owned();
            let vpc_id = s.vpc_id().unwrap_or_default().to_owned();
            let default_route = self.default_route(&id, &vpc_id).await?;
            subnets.push(Subnet {
                id,
                vpc_id,
                zone: s.availability_zone().unwrap_or_default().to_owned(),
                map_public_ip: s.map_public_ip_on_launch().unwrap_or(false),
                default_route,
            });
        }
        Ok(subnets)
    }

    /// The target of the default route of `subnet`: its own route table, else the VPC's main one.
    async fn default_route(&self, subnet: &str, vpc: &str) -> Result<Option<String>, AwsError> {
        let mut tables = self
            .client
            .describe_route_tables()
            .filters(
                Filter::builder()
                    .name("association.subnet-id")
                    .values(subnet)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DescribeRouteTables", e))?
            .route_tables()
            .to_vec();
        if tables.is_empty() {
            tables = self
                .client
                .describe_route_tables()
                .filters(Filter::builder().name("vpc-id").values(vpc).build())
                .filters(
                    Filter::builder()
                        .name("association.main")
                        .values("true")
                        .build(),
                )
                .send()
                .await
                .map_err(|e| AwsError::sdk(SERVICE, "DescribeRouteTables", e))?
                .route_tables()
                .to_vec();
        }
        Ok(tables
            .iter()
            .flat_map(|t| t.routes())
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .and_then(|r| {
                r.gateway_id()
                    .filter(|g| *g != "local")
                    .or(r.nat_gateway_id())
                    .or(r.network_interface_id())
                    .or(r.instance_id())
                    .map(str::to_owned)
            }))
    }

    /// The availability zones among `zones` where `instance_type` is offered.
    pub async fn offered_in(
        &self,
        instance_type: &str,
        zones: &[String],
    ) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
            .filters(
                Filter::builder()
                    .name("instance-type")
                    .values(instance_type)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("location")
                    .set_values(Some(zones.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DescribeInstanceTypeOfferings", e))?;
        Ok(out
            .instance_type_offerings()
            .iter()
            .filter_map(|o| o.location().map(str::to_owned))
            .collect())
    }

    /// GiB of every volume of `volume_type` in the region, and of those tagged `ethnode:stack = stack`.
    pub async fn volume_gib(&self, volume_type: &str, stack: &str) -> Result<(u64, u64), AwsError> {
        let (mut all, mut ours) = (0u64, 0u64);
        let mut pages = self
            .client
            .describe_volumes()
            .filters(
                Filter::builder()
                    .name("volume-type")
                    .values(volume_type)
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(SERVICE, "DescribeVolumes", e))?;
            for v in page.volumes() {
                let gib = v.size().unwrap_or_default().max(0) as u64;
                all += gib;
                if v.tags()
                    .iter()
                    .any(|t| t.key() == Some("ethnode:stack") && t.value() == Some(stack))
                {
                    ours += gib;
                }
            }
        }
        Ok((all, ours))
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
                    tags: tags_of(v.tags()),
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

    /// The volume attached to `instance` as `device`, if any.
    pub async fn volume_attached(
        &self,
        instance: &str,
        device: &str,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .client
            .describe_volumes()
            .filters(
                Filter::builder()
                    .name("attachment.instance-id")
                    .values(instance)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("attachment.device")
                    .values(device)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DescribeVolumes", e))?;
        Ok(out
            .volumes()
            .first()
            .and_then(|v| v.volume_id())
            .map(str::to_owned))
    }

    /// Snapshots owned by this account carrying tag `key=value`, newest (by [`Snapshot::taken_ms`]) first.
    pub async fn snapshots_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<Snapshot>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(tag_filter(key, value))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(SERVICE, "DescribeSnapshots", e))?;
            out.extend(page.snapshots().iter().map(snapshot_of));
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.taken_ms()));
        Ok(out)
    }

    /// One snapshot, or `None` when it does not exist (any more).
    pub async fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, AwsError> {
        match self
            .client
            .describe_snapshots()
            .snapshot_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.snapshots().first().map(snapshot_of)),
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "DescribeSnapshots", e);
                if err.code.as_deref() == Some("InvalidSnapshot.NotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Volumes (any state) created from `snapshot`: a snapshot in use must not be pruned.
    pub async fn volumes_from_snapshot(&self, snapshot: &str) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .describe_volumes()
            .filters(
                Filter::builder()
                    .name("snapshot-id")
                    .values(snapshot)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DescribeVolumes", e))?;
        Ok(out
            .volumes()
            .iter()
            .filter_map(|v| v.volume_id().map(str::to_owned))
            .collect())
    }

    /// Deletes a snapshot.
    pub async fn delete_snapshot(&self, id: &str) -> Result<(), AwsError> {
        self.client
            .delete_snapshot()
            .snapshot_id(id)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "DeleteSnapshot", e))?;
        Ok(())
    }

    /// Enables Fast Snapshot Restore for `snapshot` in the given availability zones.
    pub async fn enable_fast_restore(
        &self,
        snapshot: &str,
        zones: &[String],
    ) -> Result<(), AwsError> {
        let out = self
            .client
            .enable_fast_snapshot_restores()
            .source_snapshot_ids(snapshot)
            .set_availability_zones(Some(zones.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "EnableFastSnapshotRestores", e))?;
        if let Some(err) = out.unsuccessful().first() {
            let why = err
                .fast_snapshot_restore_state_errors()
                .iter()
                .filter_map(|e| e.error().and_then(|x| x.message()))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(AwsError {
                service: SERVICE,
                operation: "EnableFastSnapshotRestores",
                code: None,
                message: why,
            });
        }
        Ok(())
    }
}
