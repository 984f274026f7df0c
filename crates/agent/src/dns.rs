//! Keeps this node's record in Route53 while it runs: registered at start (retried with backoff until it
//! works), removed on graceful stop.

use crate::Shared;
use ethnode_aws::{Dns, DnsRecord};
use ethnode_clients::HostFacts;
use ethnode_config::{Config, DnsMode};
use std::sync::Arc;
use std::time::Duration;

/// A registration in progress or done.
pub(crate) struct Registration {
    dns: Dns,
    record: DnsRecord,
    task: tokio::task::JoinHandle<()>,
}

impl Registration {
    /// Starts registering when `[dns]` is configured and a private address is known.
    pub(crate) async fn start(
        config: &Config,
        facts: &HostFacts,
        shared: &Arc<Shared>,
    ) -> Option<Self> {
        let (name, zone) = match (&config.dns.name, &config.dns.hosted_zone_id) {
            (Some(n), Some(z)) => (n.clone(), z.clone()),
            (Some(n), None) => {
                // Fine on an operator's machine (the stack creates the zone); on a node it is a mistake.
                let msg = "dns.name is set but dns.hosted_zone_id is not; not registering (set it, or ETHNODE_DNS_HOSTED_ZONE_ID)";
                tracing::warn!(name = %n, "{msg}");
                shared.dns.lock().unwrap_or_else(|p| p.into_inner()).error = Some(msg.into());
                return None;
            }
            _ => return None,
        };
        let Some(ip) = facts.private_ip else {
            let msg = "no private IP known (set node.private_ip, or run on EC2); not registering";
            tracing::error!(name, "{msg}");
            shared.dns.lock().unwrap_or_else(|p| p.into_inner()).error = Some(msg.into());
            return None;
        };
        let set_identifier = match config.dns.mode {
            DnsMode::Simple => None,
            // Keyed by instance so that each node owns (and on stop deletes) only its own answer.
            DnsMode::Multivalue => Some(
                shared
                    .host
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| ip.to_string()),
            ),
        };
        let record = DnsRecord {
            zone_id: zone,
            name,
            ip,
            ttl: config.dns.ttl,
            set_identifier,
        };
        let sdk = ethnode_aws::sdk_config(config.aws.region.as_deref()).await;
        let dns = Dns::new(&sdk);
        let task = tokio::spawn(register(dns.clone(), record.clone(), shared.clone()));
        Some(Self { dns, record, task })
    }

    /// Stops retrying and removes the record if it was registered.
    pub(crate) async fn stop(self, shared: &Shared) {
        self.task.abort();
        let registered = shared
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .registered;
        if !registered {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(20), self.dns.delete(&self.record)).await {
            Ok(Ok(())) => {
                tracing::info!(name = %self.record.name, ip = %self.record.ip, "DNS record removed");
                shared
                    .dns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .registered = false;
                shared.metrics.dns_registered(false);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not remove DNS record; it points at a stopped node")
            }
            Err(_) => tracing::error!("timed out removing DNS record; it points at a stopped node"),
        }
    }
}

async fn register(dns: Dns, record: DnsRecord, shared: Arc<Shared>) {
    let mut delay = Duration::from_secs(1);
    loop {
        match dns.upsert(&record).await {
            Ok(()) => {
                tracing::info!(name = %record.name, ip = %record.ip, id = ?record.set_identifier, "DNS record registered");
                let mut s = shared.dns.lock().unwrap_or_else(|p| p.into_inner());
                s.registered = true;
                s.ip = Some(record.ip.to_string());
                s.error = None;
                drop(s);
                shared.metrics.dns_registered(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = delay.as_secs(), "DNS registration failed");
                shared.dns.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e.to_string());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}
