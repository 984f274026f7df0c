//! Snapshots of the chain volume, coordinated with the clients.
//!
//! AWS's guidance for a consistent EBS snapshot is: stop writes, start the snapshot, resume as soon as it
//! is `pending` (the point in time is fixed when CreateSnapshot returns; the copy continues in the
//! background). So the agent stops both clients gracefully (consensus first), flushes the filesystem,
//! starts the snapshot, waits until EBS lists it, and starts the clients again: minutes of downtime,
//! and a snapshot that needs no database recovery. `POST /snapshot` does it on request (the CLI's
//! `ethnode snapshot create`); automatic mode does it on a schedule, waits until the snapshot is
//! completed, promotes it (the stack's SSM parameter, see `ethnode-fleet`) and prunes.

use crate::Shared;
use ethnode_aws::{Ec2, Ssm};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// What a snapshot request produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotTaken {
    /// `snap-…`
    pub snapshot_id: String,
    /// The chain volume.
    pub volume_id: String,
    /// Head block when the clients were stopped.
    pub block: Option<u64>,
    /// Its hash.
    pub block_hash: Option<String>,
    /// `manual` or `auto`.
    pub reason: String,
    /// Seconds the clients were down.
    pub downtime_secs: f64,
    /// The tags put on the snapshot.
    pub tags: Vec<(String, String)>,
}

/// Why a snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// The node is not ready and `force` was not given.
    #[error("node not ready ({0}); snapshot a synced node, or pass --force")]
    NotReady(String),
    /// No chain volume known.
    #[error("no chain volume: {0}")]
    NoVolume(String),
    /// Another snapshot is being taken.
    #[error("a snapshot is already being taken")]
    Busy,
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] ethnode_aws::AwsError),
    /// EBS did not list the snapshot in time (or an AWS call hung past the deadline).
    #[error("snapshot {0} did not start within {1}s; the clients were restarted")]
    NotStarted(String, u64),
    /// The agent is stopping; the clients stay down for the stop.
    #[error("the agent is stopping; snapshot abandoned")]
    Stopping,
}

/// Lazily built AWS clients (an agent without snapshots never loads credentials) and the one-at-a-time lock.
pub(crate) struct Snapshots {
    region: Option<String>,
    aws: OnceCell<(Ec2, Ssm)>,
    lock: tokio::sync::Mutex<()>,
}

impl Snapshots {
    pub(crate) fn new(config: &ethnode_config::Config) -> Self {
        Self {
            region: config.aws.region.clone(),
            aws: OnceCell::new(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn clients(&self) -> &(Ec2, Ssm) {
        self.aws
            .get_or_init(|| async {
                let sdk = ethnode_aws::sdk_config(self.region.as_deref()).await;
                (Ec2::new(&sdk), Ssm::new(&sdk))
            })
            .await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The execution and consensus clients' own version strings, for the snapshot's tags.
async fn client_versions(shared: &Shared) -> (Option<String>, Option<String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    let el = async {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion", "params": []});
        let r: serde_json::Value = http
            .post(ethnode_clients::execution_rpc_url(&shared.config))
            .json(&body)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        r["result"].as_str().map(str::to_owned)
    };
    let cl = async {
        let base = ethnode_clients::consensus_api_url(&shared.config)?;
        let r: serde_json::Value = http
            .get(format!("{base}/eth/v1/node/version"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        r["data"]["version"].as_str().map(str::to_owned)
    };
    tokio::join!(el, cl)
}

/// EBS tag values: at most 256 characters.
fn tag_value(v: &str) -> String {
    v.chars().take(256).collect()
}

/// Stops the clients, snapshots the chain volume, starts the clients again.
pub(crate) async fn take(
    shared: &Shared,
    force: bool,
    reason: &str,
) -> Result<SnapshotTaken, SnapshotError> {
    let _one = shared
        .snapshots
        .lock
        .try_lock()
        .map_err(|_| SnapshotError::Busy)?;
    let status = shared.status();
    if !status.ready && !force {
        let failing: Vec<String> = status
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        let why = if failing.is_empty() {
            "clients not all running".to_string()
        } else {
            failing.join("; ")
        };
        return Err(SnapshotError::NotReady(why));
    }
    let cfg = &shared.config;
    let (ec2, _) = shared.snapshots.clients().await;
    let volume = match (&cfg.snapshot.volume_id, &shared.host.instance_id) {
        (Some(v), _) => v.clone(),
        (None, Some(instance)) => ec2
            .volume_attached(instance, &cfg.snapshot.device)
            .await?
            .ok_or_else(|| {
                SnapshotError::NoVolume(format!(
                    "nothing attached to {instance} as {}; set snapshot.device or snapshot.volume_id",
                    cfg.snapshot.device
                ))
            })?,
        (None, None) => {
            return Err(SnapshotError::NoVolume(
                "not on EC2 and snapshot.volume_id is not set".into(),
            ));
        }
    };
    let (el_version, cl_version) = client_versions(shared).await;
    let head = status.head.clone();
    let stack = cfg.aws.stack_name.clone().unwrap_or_else(|| "none".into());
    let mut tags: Vec<(String, String)> = vec![
        ("ethnode:stack".into(), stack.clone()),
        ("ethnode:network".into(), cfg.node.network.as_str().into()),
        ("ethnode:reason".into(), reason.into()),
        ("ethnode:volume".into(), volume.clone()),
        ("ethnode:taken".into(), now_ms().to_string()),
        ("Name".into(), format!("{stack} {reason}")),
    ];
    if let Some(v) = el_version {
        tags.push(("ethnode:execution".into(), tag_value(&v)));
    }
    if let Some(v) = cl_version {
        tags.push(("ethnode:consensus".into(), tag_value(&v)));
    }
    if let Some(h) = &head {
        tags.push(("ethnode:block".into(), h.number.to_string()));
        tags.push(("ethnode:block-hash".into(), h.hash.clone()));
    }

    tracing::info!(volume, reason, block = ?head.as_ref().map(|h| h.number), "snapshot: stopping clients");
    *shared.paused.lock().unwrap_or_else(|p| p.into_inner()) = Some("snapshot".into());
    let stopped = Instant::now();
    let mut supervision = shared.supervision.lock().await;
    supervision.stop().await;
    // Clients flushed on SIGTERM; push the page cache to the volume before the snapshot's point in time.
    let _ = tokio::task::spawn_blocking(nix::unistd::sync).await;

    let limit = Duration::from_secs(cfg.snapshot.resume_timeout_secs);
    let result = {
        let aws = async {
            let id = ec2
                .create_snapshot(
                    &volume,
                    &format!("ethnode {stack}: {reason} snapshot"),
                    &tags,
                )
                .await?;
            tracing::info!(snapshot = %id, "snapshot: started; waiting until EBS lists it");
            loop {
                match ec2.snapshot(&id).await? {
                    Some(s) if s.state == "pending" || s.state == "completed" => return Ok(id),
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        };
        // One deadline over every AWS call made while the clients are down, and a stop request wins over all
        // (registered before the flag is read, so that a request in between is not missed).
        let stop = shared.stop_requested.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if shared.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            Err(SnapshotError::Stopping)
        } else {
            tokio::select! {
                r = tokio::time::timeout(limit, aws) => r.unwrap_or_else(|_| {
                    Err(SnapshotError::NotStarted(format!("of {volume}"), limit.as_secs()))
                }),
                _ = stop => Err(SnapshotError::Stopping),
            }
        }
    };
    if matches!(result, Err(SnapshotError::Stopping)) {
        // The clients stay down: the agent is stopping them anyway, within its own stop budget.
        drop(supervision);
        *shared.paused.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::warn!("snapshot abandoned: the agent is stopping");
        return Err(SnapshotError::Stopping);
    }

    supervision.start();
    drop(supervision);
    *shared.paused.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let downtime = stopped.elapsed().as_secs_f64();
    shared
        .metrics
        .snapshot_result(reason, result.is_ok(), downtime);
    tracing::info!(
        downtime_secs = format!("{downtime:.1}"),
        ok = result.is_ok(),
        "snapshot: clients restarted"
    );
    let snapshot_id = result?;
    Ok(SnapshotTaken {
        snapshot_id,
        volume_id: volume,
        block: head.as_ref().map(|h| h.number),
        block_hash: head.map(|h| h.hash),
        reason: reason.into(),
        downtime_secs: downtime,
        tags,
    })
}

/// Automatic mode: snapshot when due, promote, prune. Every step is logged and counted.
pub(crate) async fn auto(shared: Arc<Shared>) {
    let cfg = shared.config.snapshot.clone();
    // Nodes launched together would otherwise check in lockstep: start at a random point of the period.
    let mut r = [0u8; 2];
    let jitter = getrandom::fill(&mut r).map_or(0.0, |()| {
        f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX)
    });
    tokio::time::sleep(Duration::from_secs(cfg.check_secs).mul_f64(jitter)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.check_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.metrics.snapshot_auto_step("checked");
        match auto_round(&shared).await {
            Ok(Some(step)) => tracing::info!("automatic snapshot: {step}"),
            Ok(None) => {}
            Err(e) => {
                shared.metrics.snapshot_auto_step("error");
                tracing::error!("automatic snapshot failed: {e:#}");
            }
        }
    }
}

/// One round; `Some(what happened)` when it did something.
async fn auto_round(shared: &Shared) -> anyhow_like::Result<Option<String>> {
    let cfg = &shared.config;
    let ready_for = shared
        .ready_since
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|t| t.elapsed());
    if ready_for.is_none_or(|d| d < Duration::from_secs(cfg.snapshot.ready_for_secs)) {
        return Ok(None);
    }
    let stack = cfg.aws.stack_name.clone().unwrap_or_default();
    let (ec2, ssm) = shared.snapshots.clients().await;
    if !due(ec2, &stack, cfg.snapshot.interval_secs).await? {
        return Ok(None);
    }
    if !cfg.snapshot.allow_last_ready_node && other_ready_nodes(shared, ec2, &stack).await == 0 {
        shared.metrics.snapshot_auto_step("skipped-last-ready-node");
        tracing::info!(
            "automatic snapshot due, but this is the stack's last ready node (snapshot.allow_last_ready_node = false)"
        );
        return Ok(None);
    }
    // One node of the stack at a time: the claim is held from before the clients stop until after the
    // prune, and the snapshot is due again only if nobody took one while we waited for it.
    let owner = format!(
        "{}:{}",
        shared.host.instance_id.as_deref().unwrap_or("local"),
        cfg.ports.agent
    );
    let ttl = Duration::from_secs(
        cfg.snapshot.resume_timeout_secs
            + cfg.snapshot.complete_timeout_secs
            + 2 * cfg.agent.stop_grace_secs
            + 600,
    );
    let Some(claim) =
        ethnode_fleet::Claim::take(ssm, &stack, &owner, ttl, Duration::from_secs(1)).await?
    else {
        let holder = ethnode_fleet::Claim::holder(ssm, &stack).await?;
        shared.metrics.snapshot_auto_step("claimed-elsewhere");
        tracing::info!(holder = ?holder, "automatic snapshot due, but another node of the stack is taking one");
        return Ok(None);
    };
    let result = async {
        if !due(ec2, &stack, cfg.snapshot.interval_secs).await? {
            return Ok(None);
        }
        take_promote_prune(shared, ec2, ssm, &stack).await.map(Some)
    }
    .await;
    if let Err(e) = claim.release(ssm).await {
        tracing::warn!(error = %e, "could not release the snapshot claim; it expires on its own");
    }
    result
}

/// Whether the stack's newest snapshot is older than `interval_secs` (or there is none).
async fn due(ec2: &Ec2, stack: &str, interval_secs: u64) -> anyhow_like::Result<bool> {
    let newest = ec2
        .snapshots_by_tag("ethnode:stack", stack)
        .await?
        .iter()
        .filter(|s| s.state != "error")
        .map(ethnode_aws::Snapshot::taken_ms)
        .max();
    Ok(newest.is_none_or(|t| now_ms() - t >= 1000 * interval_secs as i64))
}

/// Takes a snapshot, waits for it, promotes it and prunes; what happened, for the log.
async fn take_promote_prune(
    shared: &Shared,
    ec2: &Ec2,
    ssm: &Ssm,
    stack: &str,
) -> anyhow_like::Result<String> {
    let cfg = &shared.config;
    let taken = take(shared, false, "auto").await?;
    shared.metrics.snapshot_auto_step("taken");
    tracing::info!(snapshot = %taken.snapshot_id, block = ?taken.block, downtime_secs = taken.downtime_secs, "automatic snapshot taken");

    let promoted = if cfg.snapshot.promote {
        // A volume made from a pending snapshot waits for it: promote only a completed one. The clients
        // are running again meanwhile; the first snapshot of a volume can take hours.
        ethnode_fleet::wait_completed(
            ec2,
            &taken.snapshot_id,
            Duration::from_secs(cfg.snapshot.poll_secs.max(1)),
            Duration::from_secs(cfg.snapshot.complete_timeout_secs),
        )
        .await?;
        ethnode_fleet::promote(ec2, ssm, stack, &taken.snapshot_id).await?;
        shared.metrics.snapshot_auto_step("promoted");
        tracing::info!(snapshot = %taken.snapshot_id, stack, "automatic snapshot promoted: new instances start from it");
        Some(taken.snapshot_id.clone())
    } else {
        ethnode_fleet::current_snapshot(ssm, stack).await?
    };

    let (snapshots, _, in_use) = ethnode_fleet::inventory(ec2, ssm, stack).await?;
    let doomed =
        ethnode_fleet::prune_plan(&snapshots, cfg.snapshot.keep, promoted.as_deref(), &in_use);
    for id in &doomed {
        ec2.delete_snapshot(id).await?;
        shared.metrics.snapshot_auto_step("pruned");
        tracing::info!(snapshot = %id, "automatic snapshot: pruned");
    }
    Ok(format!(
        "{} taken, {}, {} pruned",
        taken.snapshot_id,
        if promoted.as_deref() == Some(taken.snapshot_id.as_str()) {
            "promoted"
        } else {
            "not promoted"
        },
        doomed.len()
    ))
}

/// How many other nodes of the stack answer ready. Their agents are reached on their private addresses.
async fn other_ready_nodes(shared: &Shared, ec2: &Ec2, stack: &str) -> usize {
    let Ok(instances) = ec2.instances_by_tag("ethnode:stack", stack).await else {
        return 0;
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    let mut ready = 0;
    for i in instances {
        if Some(&i.id) == shared.host.instance_id.as_ref() || i.state != "running" {
            continue;
        }
        let Some(ip) = i.private_ip else { continue };
        let url = format!("http://{ip}:{}/health/ready", shared.config.ports.agent);
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready += 1;
        }
    }
    ready
}

/// A small boxed error for the automatic mode's chain of AWS steps.
mod anyhow_like {
    pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}
