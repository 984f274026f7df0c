//! Route53 registration: UPSERT this node's record, DELETE it on stop, and list the records at a name (to
//! remove those of nodes that died without a graceful stop).

use aws_config::SdkConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::error::DisplayErrorContext;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use std::net::IpAddr;

/// One A record this node owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Hosted zone id (`Z…`, with or without the `/hostedzone/` prefix).
    pub zone_id: String,
    /// Fully qualified name.
    pub name: String,
    /// The address it points at.
    pub ip: IpAddr,
    /// TTL in seconds.
    pub ttl: u32,
    /// Multivalue-answer set identifier (the instance id); `None` for a simple record.
    pub set_identifier: Option<String>,
}

/// A Route53 call failed.
#[derive(Debug, thiserror::Error)]
#[error("route53 {action} of {name} in zone {zone}: {message}")]
pub struct DnsError {
    /// UPSERT or DELETE.
    pub action: &'static str,
    /// Record name.
    pub name: String,
    /// Zone id.
    pub zone: String,
    /// The SDK's error with its context.
    pub message: String,
}

/// Route53 client wrapper.
#[derive(Debug, Clone)]
pub struct Dns {
    client: Client,
}

impl Dns {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// Creates or replaces the record.
    pub async fn upsert(&self, record: &DnsRecord) -> Result<(), DnsError> {
        self.change(ChangeAction::Upsert, record).await
    }

    /// The A/AAAA records at `name` in `zone`, one per set identifier (multivalue) or one simple record.
    pub async fn records_at(&self, zone: &str, name: &str) -> Result<Vec<DnsRecord>, DnsError> {
        let fail = |message: String| DnsError {
            action: "LIST",
            name: name.to_owned(),
            zone: zone.to_owned(),
            message,
        };
        let zone_id = zone.trim_start_matches("/hostedzone/");
        let wanted = format!("{}.", name.trim_end_matches('.'));
        let mut out = Vec::new();
        let mut start: Option<(String, RrType, Option<String>)> =
            Some((wanted.clone(), RrType::A, None));
        while let Some((start_name, start_type, start_id)) = start.take() {
            let page = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .start_record_name(start_name)
                .start_record_type(start_type)
                .set_start_record_identifier(start_id)
                .send()
                .await
                .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
            let mut past = false;
            for set in page.resource_record_sets() {
                if !set.name().eq_ignore_ascii_case(&wanted) {
                    past = true;
                    break;
                }
                if !matches!(set.r#type(), RrType::A | RrType::Aaaa) {
                    continue;
                }
                for value in set.resource_records() {
                    if let Ok(ip) = value.value().parse() {
                        out.push(DnsRecord {
                            zone_id: zone.to_owned(),
                            name: name.to_owned(),
                            ip,
                            ttl: set.ttl().unwrap_or(60) as u32,
                            set_identifier: set.set_identifier().map(str::to_owned),
                        });
                    }
                }
            }
            if !past && page.is_truncated() {
                start = page.next_record_name().map(|n| {
                    (
                        n.to_owned(),
                        page.next_record_type().cloned().unwrap_or(RrType::A),
                        page.next_record_identifier().map(str::to_owned),
                    )
                });
            }
        }
        Ok(out)
    }

    /// Deletes every record set of the zone but its own NS and SOA and the stack's alias records, so that the zone can be deleted
    /// (Route53 refuses to delete a zone with other records: HostedZoneNotEmpty). Returns how many.
    pub async fn purge_zone(&self, zone: &str) -> Result<usize, DnsError> {
        let fail = |message: String| DnsError {
            action: "PURGE",
            name: String::new(),
            zone: zone.to_owned(),
            message,
        };
        let zone_id = zone.trim_start_matches("/hostedzone/");
        let apex = self
            .client
            .get_hosted_zone()
            .id(zone_id)
            .send()
            .await
            .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?
            .hosted_zone()
            .map(|z| z.name().to_owned())
            .unwrap_or_default();
        let mut doomed = Vec::new();
        let mut start: Option<(String, RrType, Option<String>)> = None;
        loop {
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id);
            if let Some((name, rtype, id)) = start.take() {
                req = req
                    .start_record_name(name)
                    .start_record_type(rtype)
                    .set_start_record_identifier(id);
            }
            let page = req
                .send()
                .await
                .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
            for set in page.resource_record_sets() {
                let apex_ns_soa = set
                    .name()
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(apex.trim_end_matches('.'))
                    && matches!(set.r#type(), RrType::Ns | RrType::Soa);
                // Alias records are the stack's own (the gateway's name): CloudFormation deletes them
                // with the stack, before the zone. The nodes register plain A records only.
                if !apex_ns_soa && set.alias_target().is_none() {
                    doomed.push(set.clone());
                }
            }
            match (page.is_truncated(), page.next_record_name()) {
                (true, Some(name)) => {
                    start = Some((
                        name.to_owned(),
                        page.next_record_type().cloned().unwrap_or(RrType::A),
                        page.next_record_identifier().map(str::to_owned),
                    ))
                }
                _ => break,
            }
        }
        let count = doomed.len();
        // At most 1,000 changes per batch (Route53 quotas); far more than a stack ever has.
        for chunk in doomed.chunks(500) {
            let changes = chunk
                .iter()
                .map(|set| {
                    Change::builder()
                        .action(ChangeAction::Delete)
                        .resource_record_set(set.clone())
                        .build()
                        .map_err(|e| fail(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .change_resource_record_sets()
                .hosted_zone_id(zone_id)
                .change_batch(
                    ChangeBatch::builder()
                        .comment("ethnode destroy: empty the zone")
                        .set_changes(Some(changes))
                        .build()
                        .map_err(|e| fail(e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
        }
        Ok(count)
    }

    /// Deletes the record; one that is already gone counts as deleted.
    pub async fn delete(&self, record: &DnsRecord) -> Result<(), DnsError> {
        match self.change(ChangeAction::Delete, record).await {
            // Route53 answers InvalidChangeBatch "…it was not found" for a record already deleted.
            Err(e) if e.message.contains("not found") => Ok(()),
            other => other,
        }
    }

    async fn change(&self, action: ChangeAction, r: &DnsRecord) -> Result<(), DnsError> {
        let fail = |message: String| DnsError {
            action: if action == ChangeAction::Upsert {
                "UPSERT"
            } else {
                "DELETE"
            },
            name: r.name.clone(),
            zone: r.zone_id.clone(),
            message,
        };
        let rtype = if r.ip.is_ipv4() {
            RrType::A
        } else {
            RrType::Aaaa
        };
        let mut set = ResourceRecordSet::builder()
            .name(&r.name)
            .r#type(rtype)
            .ttl(i64::from(r.ttl))
            .resource_records(
                ResourceRecord::builder()
                    .value(r.ip.to_string())
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            );
        if let Some(id) = &r.set_identifier {
            set = set.set_identifier(id).multi_value_answer(true);
        }
        let change = Change::builder()
            .action(action.clone())
            .resource_record_set(set.build().map_err(|e| fail(e.to_string()))?)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let zone = r.zone_id.trim_start_matches("/hostedzone/");
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(
                ChangeBatch::builder()
                    .comment("ethnode agent")
                    .changes(change)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
