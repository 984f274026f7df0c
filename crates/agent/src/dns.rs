//! Keeps this node's record in Route53 while it is worth calling: published once the node is ready,
//! withdrawn when it stays not ready (never the name's last record), deleted on graceful stop; and, on
//! every node, sweeps the records of the stack's instances that died without a graceful stop.

use crate::Shared;
use ethnode_aws::{Dns, DnsRecord, Ec2};
use ethnode_clients::HostFacts;
use ethnode_config::{Config, DnsMode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A registration in progress or done.
pub(crate) struct Registration {
    dns: Dns,
    record: DnsRecord,
    task: tokio::task::JoinHandle<()>,
}

impl Registration {
    /// Starts publishing when `[dns]` is configured and a private address is known.
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
        let task = tokio::spawn(publish(
            dns.clone(),
            Ec2::new(&sdk),
            record.clone(),
            shared.clone(),
        ));
        Some(Self { dns, record, task })
    }

    /// Stops publishing and removes the record if it was registered.
    pub(crate) async fn stop(self, shared: &Shared) {
        self.task.abort();
        if !shared
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .registered
        {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(20), self.dns.delete(&self.record)).await {
            Ok(Ok(())) => {
                tracing::info!(name = %self.record.name, ip = %self.record.ip, "DNS record removed");
                set_registered(shared, false, None);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not remove DNS record; it points at a stopped node")
            }
            Err(_) => tracing::error!("timed out removing DNS record; it points at a stopped node"),
        }
    }
}

fn set_registered(shared: &Shared, registered: bool, note: Option<String>) {
    let mut s = shared.dns.lock().unwrap_or_else(|p| p.into_inner());
    s.registered = registered;
    s.note = note;
    if registered {
        s.error = None;
    }
    drop(s);
    shared.metrics.dns_registered(registered);
}

/// The publishing loop: one decision per readiness check, retries with backoff while Route53 fails.
async fn publish(dns: Dns, ec2: Ec2, record: DnsRecord, shared: Arc<Shared>) {
    let cfg = shared.config.dns.clone();
    let tick = Duration::from_secs(shared.config.readiness.check_interval_secs.max(1));
    let grace = Duration::from_secs(cfg.unready_grace_secs);
    let mut unready_since: Option<Instant> = None;
    let mut backoff = Duration::from_secs(1);
    let mut next_sweep = Instant::now();
    loop {
        let ready = !cfg.publish_when_ready || shared.status().ready;
        let registered = shared
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .registered;
        let outcome: Result<(), Box<dyn std::error::Error + Send + Sync>> = if ready {
            unready_since = None;
            if registered {
                Ok(())
            } else {
                dns.upsert(&record)
                    .await
                    .map(|()| {
                        tracing::info!(name = %record.name, ip = %record.ip, id = ?record.set_identifier, "DNS record published");
                        shared.dns.lock().unwrap_or_else(|p| p.into_inner()).ip =
                            Some(record.ip.to_string());
                        set_registered(&shared, true, None);
                    })
                    .map_err(Into::into)
            }
        } else {
            let since = *unready_since.get_or_insert_with(Instant::now);
            if !registered {
                set_registered(&shared, false, Some("not published: not ready".into()));
                Ok(())
            } else if since.elapsed() < grace {
                Ok(())
            } else {
                withdraw(&dns, &record, &shared).await
            }
        };
        match outcome {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "DNS change failed");
                shared.dns.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        }
        if cfg.sweep_secs > 0 && record.set_identifier.is_some() && Instant::now() >= next_sweep {
            next_sweep = Instant::now() + Duration::from_secs(cfg.sweep_secs);
            if let Err(e) = sweep(&dns, &ec2, &record, &shared).await {
                tracing::warn!(error = %e, "sweeping dead nodes' DNS records failed; next try in {}s", cfg.sweep_secs);
            }
        }
        tokio::time::sleep(tick).await;
    }
}

/// Takes a not-ready node out of DNS, unless its record is the name's last: like Route53's own multivalue
/// answers when every health check fails, an answer that may be behind beats no answer at all.
async fn withdraw(
    dns: &Dns,
    record: &DnsRecord,
    shared: &Shared,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let others = dns
        .records_at(&record.zone_id, &record.name)
        .await?
        .into_iter()
        .filter(|r| r.set_identifier != record.set_identifier)
        .count();
    if others == 0 {
        let note = "kept although not ready: the name's last record";
        if shared
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note
            .as_deref()
            != Some(note)
        {
            tracing::warn!(name = %record.name, "{note}");
        }
        set_registered(shared, true, Some(note.into()));
        return Ok(());
    }
    dns.delete(record).await?;
    tracing::warn!(name = %record.name, ip = %record.ip, "DNS record withdrawn: node not ready");
    set_registered(shared, false, Some("withdrawn: not ready".into()));
    Ok(())
}

/// Deletes the records whose set identifier names an instance that no longer runs. Only ids that look like
/// instance ids are judged; EC2 keeps terminated instances visible for about an hour, and an id it no
/// longer knows at all is as dead.
async fn sweep(
    dns: &Dns,
    ec2: &Ec2,
    own: &DnsRecord,
    shared: &Shared,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let records: Vec<DnsRecord> = dns
        .records_at(&own.zone_id, &own.name)
        .await?
        .into_iter()
        .filter(|r| r.set_identifier != own.set_identifier)
        .filter(|r| {
            r.set_identifier
                .as_deref()
                .is_some_and(|id| id.starts_with("i-"))
        })
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = records
        .iter()
        .filter_map(|r| r.set_identifier.clone())
        .collect();
    let states = ec2.instance_states(&ids).await?;
    for r in records {
        let id = r.set_identifier.clone().unwrap_or_default();
        let state = states.get(&id).map_or("unknown to EC2", String::as_str);
        if matches!(state, "pending" | "running") {
            continue;
        }
        dns.delete(&r).await?;
        tracing::warn!(instance = %id, ip = %r.ip, state, "deleted the DNS record of a node that no longer runs");
        shared.dns.lock().unwrap_or_else(|p| p.into_inner()).swept += 1;
    }
    Ok(())
}
