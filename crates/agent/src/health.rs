//! Readiness: a node is ready only when it is at the chain's head as its own consensus client sees it.
//!
//! Ready means ALL of: the execution client answers and is not syncing; its head is the consensus head's
//! execution payload (± `max_head_distance_blocks`); the beacon API says not syncing, not optimistic and the
//! execution client online; both clients have peers (not on dev); with a reference RPC, at most
//! `max_lag_blocks` behind it. Absolute bounds (head age, sync distance) are loose guards only: missed slots
//! stall every node at once, and a check that takes them all out together causes the outage it should
//! prevent. Hysteresis both ways: `fail_after` failing checks in a row take a ready node out, `pass_after`
//! passing ones bring it in; an execution client that does not answer at all takes it out at once.
//! `/status` shows every check's value and verdict, and why the verdict differs from the checks.

use crate::progress::{self, Rate};
use crate::supervisor::ClientState;
use alloy::primitives::U64;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::SyncStatus;
use ethnode_config::{Config, Network};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One readiness check with its measured value and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Check name: `execution_synced`, `execution_head`, `head_age`, `peers`, `consensus_synced`,
    /// `consensus_peers`, `consensus_sync_distance`, `reference_lag`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// What was measured (null when it could not be).
    pub value: serde_json::Value,
    /// The bound it is held to.
    pub limit: serde_json::Value,
    /// Human-readable explanation.
    pub detail: String,
}

/// The latest block.
#[derive(Debug, Clone, Serialize)]
pub struct Head {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: String,
    /// Block timestamp (unix seconds).
    pub timestamp: u64,
    /// Seconds since `timestamp`.
    pub age_secs: u64,
}

/// Sync progress and its forecast.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncProgress {
    /// `starting`, `syncing`, `syncing:<Reth stage>`, `consensus-syncing`, `synced`, or `stalled`.
    pub stage: String,
    /// Position of the running Reth stage in its pipeline (1-based) …
    pub stage_index: Option<usize>,
    /// … of this many stages.
    pub stages: Option<usize>,
    /// Entities the running stage has processed …
    pub stage_processed: Option<u64>,
    /// … of this many.
    pub stage_total: Option<u64>,
    /// Block the execution client has fully processed.
    pub current_block: Option<u64>,
    /// Block it is syncing to (the consensus client's head when there is one).
    pub highest_block: Option<u64>,
    /// Recent rate of what `eta_of` counts (blocks, or the running stage's entities), per second.
    pub blocks_per_sec: Option<f64>,
    /// Seconds until `eta_of` is done at that rate; absent when not known (never a made-up 0).
    pub eta_secs: Option<f64>,
    /// What `eta_secs` is the end of: `sync`, or `stage <name>` (Reth does not say how long its later
    /// stages will take).
    pub eta_of: Option<String>,
}

/// Data volume usage and its forecast.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// Directory measured (the node's data dir).
    pub path: PathBuf,
    /// Size of its filesystem.
    pub total_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
    /// Bytes available to the clients.
    pub free_bytes: u64,
    /// Growth over the observed window, per day.
    pub growth_bytes_per_day: Option<f64>,
    /// `free / growth`, when growing.
    pub days_until_full: Option<f64>,
}

/// This host, as the agent learned it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostInfo {
    /// Public IP (config or IMDS).
    pub public_ip: Option<String>,
    /// Private IP (config or IMDS).
    pub private_ip: Option<String>,
    /// EC2 instance id.
    pub instance_id: Option<String>,
}

/// The DNS registration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsState {
    /// Name registered (or to register).
    pub name: Option<String>,
    /// Whether our record is in place.
    pub registered: bool,
    /// Address registered.
    pub ip: Option<String>,
    /// Last error, if registration is failing.
    pub error: Option<String>,
    /// Why the record is not (or still) published, when that is not simply "ready".
    pub note: Option<String>,
    /// Records of dead instances this agent has deleted.
    pub swept: u64,
}

/// What the consensus client's beacon API says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConsensusState {
    /// Its head slot.
    pub head_slot: u64,
    /// Slots between its head and the wall clock.
    pub sync_distance: u64,
    /// `is_syncing`.
    pub is_syncing: bool,
    /// `is_optimistic`: the head is not verified by the execution client yet.
    pub is_optimistic: bool,
    /// `el_offline`.
    pub el_offline: bool,
    /// Connected peers (`/eth/v1/node/peer_count`), when it answered.
    pub peers: Option<u64>,
    /// Block number of the head block's execution payload (none before the Merge or when unknown).
    pub head_block: Option<u64>,
}

/// Everything `/status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The node serves: checks passing (with hysteresis) and every client running.
    pub ready: bool,
    /// Every check passes right now (`ready` follows it after `pass_after`/`fail_after` rounds).
    pub checks_pass: bool,
    /// Why `ready` differs from `checks_pass`, when it does.
    pub readiness_note: Option<String>,
    /// The agent and every client process run.
    pub live: bool,
    /// `mainnet`, `dev`, …
    pub network: &'static str,
    /// Each readiness check.
    pub checks: Vec<Check>,
    /// Each client process.
    pub clients: Vec<ClientState>,
    /// Sync stage, rate and ETA.
    pub sync: SyncProgress,
    /// Latest block.
    pub head: Option<Head>,
    /// Execution peers (None on dev or when unknown).
    pub peers: Option<u64>,
    /// Consensus sync distance in slots.
    pub consensus_sync_distance: Option<u64>,
    /// The beacon API's view, when there is a consensus client and it answered.
    pub consensus: Option<ConsensusState>,
    /// Reference head minus our head, in blocks.
    pub reference_lag: Option<i64>,
    /// Data volume.
    pub disk: Option<Disk>,
    /// This host.
    pub host: HostInfo,
    /// DNS registration.
    pub dns: DnsState,
    /// Pre-warm of a restored volume, when one runs or ran.
    pub prewarm: Option<crate::PrewarmProgress>,
    /// Unix time of the last check.
    pub checked_at: u64,
    /// The client processes the last check saw (their start times): a verdict is about those processes,
    /// not about ones started since.
    #[serde(skip)]
    pub(crate) covered: Vec<Option<Instant>>,
}

/// The beacon API's `{"data": …}` envelope.
#[derive(Debug, Deserialize)]
struct Data<T> {
    data: T,
}

/// `/eth/v1/node/syncing` (numbers are decimal strings). Every flag is required: a client that does not
/// say whether its head is optimistic cannot be called ready.
#[derive(Debug, Deserialize)]
struct BeaconSyncing {
    head_slot: String,
    sync_distance: String,
    is_syncing: bool,
    is_optimistic: bool,
    el_offline: bool,
}

/// `/eth/v1/node/peer_count`.
#[derive(Debug, Deserialize)]
struct PeerCount {
    connected: String,
}

/// `/eth/v1/beacon/blinded_blocks/head`: the head block without its transactions, so that reading the
/// payload's block number every few seconds costs a few KiB, not megabytes.
#[derive(Debug, Deserialize)]
struct BlindedBlock {
    message: BlindedMessage,
}

#[derive(Debug, Deserialize)]
struct BlindedMessage {
    slot: String,
    body: BlindedBody,
}

#[derive(Debug, Deserialize)]
struct BlindedBody {
    /// Absent before the Merge.
    execution_payload_header: Option<PayloadHeader>,
}

#[derive(Debug, Deserialize)]
struct PayloadHeader {
    block_number: String,
}

fn number(field: &str, v: &str) -> Result<u64, String> {
    v.parse().map_err(|e| format!("bad {field} `{v}`: {e}"))
}

/// `eth_syncing`: `None` when synced, else the current and highest block.
pub(crate) type Syncing = Option<(u64, u64)>;

/// What one round of probing measured.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub(crate) syncing: Option<Result<Syncing, String>>,
    pub(crate) head: Option<Result<Head, String>>,
    pub(crate) peers: Option<Result<u64, String>>,
    pub(crate) consensus: Option<Result<ConsensusState, String>>,
    pub(crate) reference_head: Option<Result<u64, String>>,
    /// Reth's per-stage sync gauges, read while it syncs.
    pub(crate) reth_stages:
        Option<Result<std::collections::BTreeMap<String, progress::StageGauges>, String>>,
    /// A client process is not running (set by the caller, which supervises them).
    pub(crate) clients_down: bool,
}

/// Probes the node and keeps the history needed for hysteresis, rates and forecasts.
pub(crate) struct Checker {
    network: Network,
    el: RootProvider,
    reference: Option<RootProvider>,
    consensus_url: Option<String>,
    reth_metrics_url: Option<String>,
    http: reqwest::Client,
    data_dir: PathBuf,
    max_lag: u64,
    max_head_distance: u64,
    max_head_age: u64,
    min_peers: u64,
    max_sync_distance: u64,
    fail_after: u32,
    pass_after: u32,
    /// The verdict with hysteresis, and how many checks in a row have disagreed with it.
    ready: bool,
    streak: u32,
    /// The consensus head's slot and payload block number, fetched again only when the slot moves.
    cl_head: std::sync::Mutex<Option<(u64, Option<u64>)>>,
    progress: VecDeque<(Instant, u64)>,
    stage_rate: Rate,
    disk_samples: VecDeque<(Instant, u64)>,
}

fn provider(http: &reqwest::Client, url: &str) -> Result<RootProvider, String> {
    ethnode_chain::client_with(http, url)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn check(
    name: &'static str,
    ok: bool,
    value: impl Into<serde_json::Value>,
    limit: impl Into<serde_json::Value>,
    detail: String,
) -> Check {
    Check {
        name,
        ok,
        value: value.into(),
        limit: limit.into(),
        detail,
    }
}

const NULL: serde_json::Value = serde_json::Value::Null;

impl Checker {
    pub(crate) fn new(config: &Config) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        let el = provider(&http, &ethnode_clients::execution_rpc_url(config))?;
        let reference = match &config.readiness.reference_rpc {
            Some(url) => Some(provider(&http, url)?),
            None => None,
        };
        let r = &config.readiness;
        Ok(Self {
            network: config.node.network,
            el,
            reference,
            consensus_url: ethnode_clients::consensus_api_url(config),
            reth_metrics_url: ethnode_clients::reth_metrics_url(config),
            http,
            data_dir: config.node.data_dir.clone(),
            max_lag: r.max_lag_blocks,
            max_head_distance: r.max_head_distance_blocks,
            max_head_age: r.max_head_age_secs,
            min_peers: r.min_peers,
            max_sync_distance: r.max_sync_distance,
            fail_after: r.fail_after.max(1),
            pass_after: r.pass_after.max(1),
            ready: false,
            streak: 0,
            cl_head: std::sync::Mutex::new(None),
            progress: VecDeque::new(),
            stage_rate: Rate::default(),
            disk_samples: VecDeque::new(),
        })
    }

    async fn beacon<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
    ) -> Result<T, String> {
        let r: Data<T> = self
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("{path}: {}", e.without_url()))?
            .json()
            .await
            .map_err(|e| format!("{path}: {}", e.without_url()))?;
        Ok(r.data)
    }

    /// The beacon API's view: sync flags, peers, and the head's payload block (cached per head slot).
    async fn consensus(&self, base: &str) -> Result<ConsensusState, String> {
        let (syncing, peers) = tokio::join!(
            self.beacon::<BeaconSyncing>(base, "/eth/v1/node/syncing"),
            self.beacon::<PeerCount>(base, "/eth/v1/node/peer_count"),
        );
        let s = syncing?;
        let head_slot = number("head_slot", &s.head_slot)?;
        let cached = *self.cl_head.lock().unwrap_or_else(|p| p.into_inner());
        let head_block = match cached {
            Some((slot, block)) if slot == head_slot => block,
            _ => {
                let b = self
                    .beacon::<BlindedBlock>(base, "/eth/v1/beacon/blinded_blocks/head")
                    .await?;
                let slot = number("slot", &b.message.slot)?;
                let block = b
                    .message
                    .body
                    .execution_payload_header
                    .map(|h| number("block_number", &h.block_number))
                    .transpose()?;
                *self.cl_head.lock().unwrap_or_else(|p| p.into_inner()) = Some((slot, block));
                block
            }
        };
        Ok(ConsensusState {
            head_slot,
            sync_distance: number("sync_distance", &s.sync_distance)?,
            is_syncing: s.is_syncing,
            is_optimistic: s.is_optimistic,
            el_offline: s.el_offline,
            peers: peers.ok().and_then(|p| p.connected.parse().ok()),
            head_block,
        })
    }

    async fn reth_stages(
        &self,
        url: &str,
    ) -> Result<std::collections::BTreeMap<String, progress::StageGauges>, String> {
        let text = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.without_url().to_string())?
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok(progress::parse_reth_metrics(&text))
    }

    /// Asks every source once, concurrently (Reth's metrics only while it is behind).
    pub(crate) async fn probe(&self) -> Probe {
        let syncing = async {
            self.el
                .syncing()
                .await
                .map_err(|e| e.to_string())
                .map(|s| match s {
                    SyncStatus::None => None,
                    SyncStatus::Info(info) => Some((
                        info.current_block.saturating_to::<u64>(),
                        info.highest_block.saturating_to::<u64>(),
                    )),
                })
        };
        let head = async {
            ethnode_chain::latest(&self.el).await.head.map(|h| Head {
                age_secs: unix_now().saturating_sub(h.timestamp),
                number: h.number,
                hash: h.hash,
                timestamp: h.timestamp,
            })
        };
        let peers = async {
            if self.network == Network::Dev {
                return None;
            }
            Some(
                self.el
                    // `[]`, not `()`: unit params serialize as `"params": null`, which JSON-RPC 2.0 does
                    // not allow and stricter servers (ethereumjs) refuse as an invalid request.
                    .raw_request::<_, U64>("net_peerCount".into(), [(); 0])
                    .await
                    .map(|p| p.to::<u64>())
                    .map_err(|e| e.to_string()),
            )
        };
        let consensus = async {
            let base = self.consensus_url.as_ref()?;
            Some(self.consensus(base).await)
        };
        let reference = async {
            let r = self.reference.as_ref()?;
            // The same head query as the monitor's, with URLs out of its errors (they may carry a key).
            Some(ethnode_chain::latest(r).await.head.map(|h| h.number))
        };
        let (syncing, head, peers, consensus, reference_head) =
            tokio::join!(syncing, head, peers, consensus, reference);
        let behind = match (&syncing, &head, &consensus) {
            (Ok(Some(_)), _, _) => true,
            (_, Ok(h), Some(Ok(c))) => c
                .head_block
                .is_some_and(|b| b > h.number + self.max_head_distance),
            _ => false,
        };
        let reth_stages = match &self.reth_metrics_url {
            Some(url) if behind => Some(self.reth_stages(url).await),
            _ => None,
        };
        Probe {
            syncing: Some(syncing),
            head: Some(head),
            peers,
            consensus,
            reference_head,
            reth_stages,
            clients_down: false,
        }
    }

    /// Every check for one probe.
    fn checks(&self, p: &Probe, head: Option<&Head>) -> Vec<Check> {
        let mut checks = Vec::new();
        let syncing = p.syncing.as_ref();
        checks.push(match syncing {
            Some(Ok(None)) => check(
                "execution_synced",
                true,
                false,
                false,
                "eth_syncing is false".into(),
            ),
            Some(Ok(Some((cur, high)))) => check(
                "execution_synced",
                false,
                true,
                false,
                format!("syncing: block {cur} of {high}"),
            ),
            Some(Err(e)) => check(
                "execution_synced",
                false,
                NULL,
                false,
                format!("execution client not answering: {e}"),
            ),
            None => check("execution_synced", false, NULL, false, "not probed".into()),
        });

        if let Some(cs) = &p.consensus {
            let d = self.max_head_distance;
            checks.push(match (cs, head) {
                (Ok(c), Some(h)) => match c.head_block {
                    Some(b) => {
                        let diff = h.number as i64 - b as i64;
                        check(
                            "execution_head",
                            diff.unsigned_abs() <= d,
                            diff,
                            d,
                            format!(
                                "execution head {} vs the consensus head's payload {b}",
                                h.number
                            ),
                        )
                    }
                    None => check(
                        "execution_head",
                        false,
                        NULL,
                        d,
                        format!(
                            "the consensus head (slot {}) carries no execution payload",
                            c.head_slot
                        ),
                    ),
                },
                (Ok(_), None) => {
                    check("execution_head", false, NULL, d, "no execution head".into())
                }
                (Err(e), _) => check(
                    "execution_head",
                    false,
                    NULL,
                    d,
                    format!("beacon API not answering: {e}"),
                ),
            });
        }

        checks.push(match head {
            Some(h) => check(
                "head_age",
                h.age_secs <= self.max_head_age,
                h.age_secs,
                self.max_head_age,
                format!("block {} is {}s old", h.number, h.age_secs),
            ),
            None => check(
                "head_age",
                false,
                NULL,
                self.max_head_age,
                "no head block".into(),
            ),
        });

        checks.push(match &p.peers {
            None => check("peers", true, NULL, NULL, "not applicable on dev".into()),
            Some(Ok(n)) => check(
                "peers",
                *n >= self.min_peers,
                *n,
                self.min_peers,
                format!("{n} execution peers (need {})", self.min_peers),
            ),
            Some(Err(e)) => check(
                "peers",
                false,
                NULL,
                self.min_peers,
                format!("net_peerCount failed: {e}"),
            ),
        });

        match &p.consensus {
            None => checks.push(check(
                "consensus_synced",
                true,
                NULL,
                NULL,
                "no consensus client on this network".into(),
            )),
            Some(Ok(c)) => {
                let mut why = Vec::new();
                if c.is_syncing {
                    why.push("syncing");
                }
                if c.is_optimistic {
                    why.push("optimistic (head not verified by the execution client)");
                }
                if c.el_offline {
                    why.push("execution client offline");
                }
                checks.push(check(
                    "consensus_synced",
                    why.is_empty(),
                    serde_json::json!({
                        "is_syncing": c.is_syncing,
                        "is_optimistic": c.is_optimistic,
                        "el_offline": c.el_offline,
                    }),
                    "not syncing, not optimistic, execution online",
                    if why.is_empty() {
                        format!("head slot {}", c.head_slot)
                    } else {
                        format!("consensus client {}", why.join(", "))
                    },
                ));
                checks.push(match c.peers {
                    Some(n) => check(
                        "consensus_peers",
                        n >= self.min_peers,
                        n,
                        self.min_peers,
                        format!("{n} consensus peers (need {})", self.min_peers),
                    ),
                    None => check(
                        "consensus_peers",
                        false,
                        NULL,
                        self.min_peers,
                        "/eth/v1/node/peer_count did not answer".into(),
                    ),
                });
                checks.push(check(
                    "consensus_sync_distance",
                    c.sync_distance <= self.max_sync_distance,
                    c.sync_distance,
                    self.max_sync_distance,
                    format!("consensus head {} slots behind the clock", c.sync_distance),
                ));
            }
            Some(Err(e)) => checks.push(check(
                "consensus_synced",
                false,
                NULL,
                NULL,
                format!("beacon API not answering: {e}"),
            )),
        }

        match (&p.reference_head, head) {
            (None, _) => checks.push(check(
                "reference_lag",
                true,
                NULL,
                NULL,
                "no reference RPC configured".into(),
            )),
            (Some(Ok(r)), Some(h)) => {
                let lag = *r as i64 - h.number as i64;
                checks.push(check(
                    "reference_lag",
                    lag <= self.max_lag as i64,
                    lag,
                    self.max_lag,
                    format!("reference at {r}, we are at {}", h.number),
                ));
            }
            (Some(Ok(_)), None) => checks.push(check(
                "reference_lag",
                false,
                NULL,
                self.max_lag,
                "our head is unknown".into(),
            )),
            // A failing reference says nothing about us: do not hold readiness hostage to a third party.
            (Some(Err(e)), _) => checks.push(check(
                "reference_lag",
                true,
                NULL,
                self.max_lag,
                format!("reference RPC failing, check skipped: {e}"),
            )),
        }
        checks
    }

    /// Applies hysteresis to this round's verdict; returns why the verdict differs from it, if it does.
    fn settle(&mut self, pass: bool, unreachable: bool) -> Option<String> {
        if unreachable {
            self.ready = false;
            self.streak = 0;
            return pass.then(|| "a client process is down or not answering".to_string());
        }
        if pass == self.ready {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if pass {
            self.pass_after
        } else {
            self.fail_after
        };
        if self.streak >= needed {
            self.ready = pass;
            self.streak = 0;
            return None;
        }
        Some(if pass {
            format!(
                "checks pass: ready after {} more passing checks",
                needed - self.streak
            )
        } else {
            format!(
                "checks failing {} of {needed} times in a row: still ready",
                self.streak
            )
        })
    }

    /// Turns a probe into a status (clients, host and DNS are filled in by the caller).
    pub(crate) fn evaluate(&mut self, p: Probe, now: Instant) -> Status {
        let head = p.head.as_ref().and_then(|h| h.as_ref().ok()).cloned();
        let checks = self.checks(&p, head.as_ref());
        let pass = checks.iter().all(|c| c.ok);
        // A dead client, or an execution client that answers nothing: out at once, and back in only
        // after `pass_after` passing checks.
        let unreachable = p.clients_down || (matches!(p.syncing, Some(Err(_))) && head.is_none());
        let note = self.settle(pass, unreachable);
        let consensus = p.consensus.as_ref().and_then(|c| c.as_ref().ok()).cloned();
        let syncing = p.syncing.unwrap_or(Err("not probed".into()));
        let cl_block = consensus.as_ref().and_then(|c| c.head_block);

        // Where the execution client is and where it is going.
        let (current, highest) = match &syncing {
            Ok(Some((c, h))) => (Some(*c), Some(cl_block.map_or(*h, |b| b.max(*h)))),
            _ => (
                head.as_ref().map(|h| h.number),
                cl_block.or(head.as_ref().map(|h| h.number)),
            ),
        };
        let stages = p.reth_stages.and_then(Result::ok);
        // Reth runs its whole pipeline towards a target fixed when the run starts (Headers downloads to
        // it first, so it is the highest checkpoint); the chain moves past it meanwhile. The running stage
        // is the first one behind that target; only when every stage has reached it and the chain is
        // further on does a new run (Headers again) begin.
        let running = stages.as_ref().and_then(|m| {
            let run_target = progress::highest_checkpoint(m)?;
            progress::running_stage(m, run_target).or_else(|| {
                highest
                    .filter(|h| *h > run_target)
                    .and_then(|h| progress::running_stage(m, h))
            })
        });
        // Reth's fully processed block is its Finish checkpoint; eth_syncing's current block lags behind
        // it or stands still during backfill.
        let current = stages
            .as_ref()
            .and_then(|m| m.get("Finish")?.checkpoint)
            .or(current);
        let behind = matches!(syncing, Ok(Some(_)))
            || matches!((current, highest), (Some(c), Some(h)) if h > c + self.max_head_distance);
        let rate = match current {
            Some(c) if behind => {
                self.progress.push_back((now, c));
                while self
                    .progress
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(300))
                {
                    self.progress.pop_front();
                }
                match (self.progress.front(), self.progress.back()) {
                    (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                        Some(b1.saturating_sub(*b0) as f64 / t1.duration_since(*t0).as_secs_f64())
                    }
                    _ => None,
                }
            }
            _ => {
                self.progress.clear();
                None
            }
        };
        let mut sync = SyncProgress {
            current_block: current,
            highest_block: highest,
            blocks_per_sec: rate,
            ..SyncProgress::default()
        };
        match &running {
            Some(r) => {
                let (processed, total) = (r.gauges.processed, r.gauges.total);
                let stage_rate = processed.and_then(|v| self.stage_rate.sample(r.name, now, v));
                sync.stage = format!("syncing:{}", r.name);
                sync.stage_index = Some(r.index);
                sync.stages = Some(r.of);
                sync.stage_processed = processed;
                sync.stage_total = total;
                sync.eta_secs = match (processed, total) {
                    (Some(p), Some(t)) => progress::eta(t.saturating_sub(p), stage_rate),
                    _ => None,
                };
                sync.eta_of = sync.eta_secs.map(|_| format!("stage {}", r.name));
            }
            None => {
                self.stage_rate.clear();
                if behind {
                    sync.eta_secs = match (current, highest) {
                        (Some(c), Some(h)) => progress::eta(h.saturating_sub(c), rate),
                        _ => None,
                    };
                    sync.eta_of = sync.eta_secs.map(|_| "sync".to_string());
                }
                let ok = |name: &str| checks.iter().all(|c| c.name != name || c.ok);
                sync.stage = match &syncing {
                    Err(_) => "starting",
                    _ if behind => "syncing",
                    _ if !ok("consensus_synced") || !ok("consensus_sync_distance") => {
                        "consensus-syncing"
                    }
                    _ if !ok("head_age") => "stalled",
                    _ => "synced",
                }
                .to_string();
            }
        }

        Status {
            ready: self.ready,
            checks_pass: pass,
            readiness_note: note,
            network: self.network.as_str(),
            checked_at: unix_now(),
            consensus_sync_distance: consensus.as_ref().map(|c| c.sync_distance),
            consensus,
            peers: p.peers.and_then(Result::ok),
            reference_lag: match (&p.reference_head, &head) {
                (Some(Ok(r)), Some(h)) => Some(*r as i64 - h.number as i64),
                _ => None,
            },
            disk: self.disk(now),
            checks,
            sync,
            head,
            ..Status::default()
        }
    }

    fn disk(&mut self, now: Instant) -> Option<Disk> {
        let st = nix::sys::statvfs::statvfs(&self.data_dir).ok()?;
        let frag = st.fragment_size() as u64;
        let total = st.blocks() as u64 * frag;
        let free = st.blocks_available() as u64 * frag;
        let used = total.saturating_sub(st.blocks_free() as u64 * frag);
        // Keep one sample a minute over a day: enough to see a trend without reacting to compaction.
        if self
            .disk_samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.disk_samples.push_back((now, used));
        }
        while self.disk_samples.len() > 1440 {
            self.disk_samples.pop_front();
        }
        let (growth, days) = forecast(&self.disk_samples, free);
        Some(Disk {
            path: self.data_dir.clone(),
            total_bytes: total,
            used_bytes: used,
            free_bytes: free,
            growth_bytes_per_day: growth,
            days_until_full: days,
        })
    }
}

/// Growth per day from the oldest to the newest (time, used bytes) sample, and the days until `free`
/// runs out at that rate (none while not growing, or with a single sample).
fn forecast(
    samples: &std::collections::VecDeque<(Instant, u64)>,
    free: u64,
) -> (Option<f64>, Option<f64>) {
    let growth = match (samples.front(), samples.back()) {
        (Some((t0, u0)), Some((t1, u1))) if t1 > t0 => {
            Some((*u1 as f64 - *u0 as f64) / t1.duration_since(*t0).as_secs_f64() * 86_400.0)
        }
        _ => None,
    };
    (growth, growth.filter(|g| *g > 0.0).map(|g| free as f64 / g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_until_full_from_the_growth_between_samples() {
        const GB: u64 = 1_000_000_000;
        let t0 = Instant::now();
        let samples: std::collections::VecDeque<_> = [
            (t0, 1_000 * GB),
            (t0 + Duration::from_secs(43_200), 1_005 * GB),
            (t0 + Duration::from_secs(86_400), 1_010 * GB),
        ]
        .into();
        // 10 GB a day, 100 GB free: 10 days.
        let (growth, days) = forecast(&samples, 100 * GB);
        assert!((growth.unwrap() - 10.0 * GB as f64).abs() < 1.0);
        assert!((days.unwrap() - 10.0).abs() < 1e-9);
        // Flat (or shrinking after a compaction): growth known, never full.
        let flat: std::collections::VecDeque<_> =
            [(t0, GB), (t0 + Duration::from_secs(3_600), GB)].into();
        assert_eq!(forecast(&flat, GB), (Some(0.0), None));
        // One sample: nothing known yet.
        let one: std::collections::VecDeque<_> = [(t0, GB)].into();
        assert_eq!(forecast(&one, GB), (None, None));
    }

    /// A mainnet checker with the default readiness settings.
    fn checker() -> Checker {
        let mut c = Config::default();
        c.node.data_dir = std::env::temp_dir();
        c.readiness.reference_rpc = Some("http://127.0.0.1:1".into());
        Checker::new(&c).unwrap()
    }

    fn head(number: u64, age: u64) -> Head {
        Head {
            number,
            hash: "0x00".into(),
            timestamp: unix_now() - age,
            age_secs: age,
        }
    }

    fn consensus(block: u64, distance: u64) -> ConsensusState {
        ConsensusState {
            head_slot: 1_000 + block,
            sync_distance: distance,
            is_syncing: false,
            is_optimistic: false,
            el_offline: false,
            peers: Some(60),
            head_block: Some(block),
        }
    }

    /// A node at block `n` whose last block is `age` seconds old, its consensus client agreeing.
    fn at(n: u64, age: u64) -> Probe {
        Probe {
            syncing: Some(Ok(None)),
            head: Some(Ok(head(n, age))),
            peers: Some(Ok(8)),
            consensus: Some(Ok(consensus(n, age / 12))),
            reference_head: Some(Ok(n)),
            reth_stages: None,
            clients_down: false,
        }
    }

    /// A checker that has been ready for a while.
    fn ready_checker() -> Checker {
        let mut c = checker();
        for i in 0..c.pass_after as u64 {
            c.evaluate(at(100 + i, 5), Instant::now());
        }
        assert!(c.evaluate(at(103, 5), Instant::now()).ready);
        c
    }

    fn failing(s: &Status) -> Vec<&'static str> {
        s.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn ready_only_after_pass_after_passing_checks() {
        let mut c = checker();
        let s = c.evaluate(at(100, 5), Instant::now());
        assert!(s.checks_pass && !s.ready, "{:?}", s.checks);
        assert!(s.readiness_note.unwrap().contains("2 more"));
        c.evaluate(at(101, 5), Instant::now());
        let s = c.evaluate(at(102, 5), Instant::now());
        assert!(s.ready && s.readiness_note.is_none());
        assert_eq!(s.sync.stage, "synced");
        assert_eq!(s.sync.eta_secs, None, "synced: no ETA, not a made-up 0");
    }

    /// Two or three missed slots stall every node at once: the head ages to 48 s and the consensus head
    /// falls 4 slots behind the clock, yet execution and consensus agree, so the node stays ready.
    #[test]
    fn missed_slots_do_not_make_a_node_unready() {
        let mut c = ready_checker();
        for age in [12, 24, 36, 48, 60] {
            let s = c.evaluate(at(110, age), Instant::now());
            assert!(s.checks_pass && s.ready, "{age}s: {:?}", failing(&s));
        }
        // The old rule (36 s, sync distance <= 2) would have failed from 36 s on, on every node together.
        let s = c.evaluate(at(110, 48), Instant::now());
        assert_eq!(s.consensus_sync_distance, Some(4));
    }

    /// The execution client stalls while the chain goes on: not ready after `fail_after` checks.
    #[test]
    fn a_stalled_execution_client_is_unready_within_fail_after_checks() {
        let mut c = ready_checker();
        let mut rounds = 0;
        for cl in 111..130 {
            let mut p = at(110, (cl - 110) * 12);
            p.consensus = Some(Ok(consensus(cl, 0)));
            p.reference_head = Some(Ok(110));
            rounds += 1;
            let s = c.evaluate(p, Instant::now());
            if cl == 111 {
                // One block behind the consensus head is the import race, not a stall.
                assert!(s.checks_pass, "{:?}", failing(&s));
                continue;
            }
            assert_eq!(failing(&s), vec!["execution_head"]);
            if !s.ready {
                break;
            }
            assert!(s.readiness_note.unwrap().contains("still ready"));
        }
        // One round inside the tolerance, then fail_after rounds.
        assert_eq!(rounds, 1 + c.fail_after);
    }

    #[test]
    fn an_optimistic_syncing_or_peerless_consensus_client_is_not_ready() {
        type Mutation = Box<dyn Fn(&mut ConsensusState)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("consensus_synced", Box::new(|c| c.is_optimistic = true)),
            ("consensus_synced", Box::new(|c| c.is_syncing = true)),
            ("consensus_synced", Box::new(|c| c.el_offline = true)),
            ("consensus_peers", Box::new(|c| c.peers = Some(0))),
            ("consensus_peers", Box::new(|c| c.peers = None)),
            ("execution_head", Box::new(|c| c.head_block = None)),
            (
                "consensus_sync_distance",
                Box::new(|c| c.sync_distance = 11),
            ),
        ];
        for (name, mutate) in cases {
            let mut c = ready_checker();
            let mut s = None;
            for _ in 0..c.fail_after {
                let mut p = at(104, 5);
                let mut cs = consensus(104, 0);
                mutate(&mut cs);
                p.consensus = Some(Ok(cs));
                s = Some(c.evaluate(p, Instant::now()));
            }
            let s = s.unwrap();
            assert!(!s.ready, "{name} should take the node out");
            assert_eq!(failing(&s), vec![name]);
        }
    }

    #[test]
    fn each_failing_execution_check_alone_blocks_readiness() {
        type Mutation = Box<dyn Fn(&mut Probe)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "execution_synced",
                Box::new(|p| p.syncing = Some(Ok(Some((10, 20))))),
            ),
            ("peers", Box::new(|p| p.peers = Some(Ok(0)))),
            ("head_age", Box::new(|p| p.head = Some(Ok(head(104, 121))))),
            (
                "reference_lag",
                Box::new(|p| p.reference_head = Some(Ok(110))),
            ),
        ];
        for (name, mutate) in cases {
            let mut c = ready_checker();
            let mut s = None;
            for _ in 0..c.fail_after {
                let mut p = at(104, 5);
                mutate(&mut p);
                s = Some(c.evaluate(p, Instant::now()));
            }
            let s = s.unwrap();
            assert!(!s.ready, "{name} should block readiness");
            assert_eq!(failing(&s), vec![name]);
        }
    }

    #[test]
    fn an_execution_client_that_does_not_answer_drops_readiness_at_once() {
        let mut c = ready_checker();
        let mut p = at(104, 5);
        p.syncing = Some(Err("connection refused".into()));
        p.head = Some(Err("connection refused".into()));
        let s = c.evaluate(p, Instant::now());
        assert!(!s.ready);
        assert_eq!(s.sync.stage, "starting");
    }

    /// A client process that died and came back within `fail_after` checks must still earn readiness
    /// back with `pass_after` passing checks.
    #[test]
    fn a_client_that_was_down_earns_readiness_back() {
        let mut c = ready_checker();
        let mut p = at(104, 5);
        p.clients_down = true;
        assert!(!c.evaluate(p, Instant::now()).ready);
        let s = c.evaluate(at(105, 5), Instant::now());
        assert!(s.checks_pass && !s.ready, "{:?}", s.readiness_note);
        c.evaluate(at(106, 5), Instant::now());
        assert!(c.evaluate(at(107, 5), Instant::now()).ready);
    }

    #[test]
    fn failing_reference_does_not_block_readiness() {
        let mut c = ready_checker();
        let mut p = at(104, 5);
        p.reference_head = Some(Err("timeout".into()));
        assert!(c.evaluate(p, Instant::now()).checks_pass);
    }

    #[test]
    fn sync_rate_and_eta_from_blocks_without_reth_metrics() {
        let mut c = checker();
        let t0 = Instant::now();
        let mut p = at(1_000, 5);
        p.syncing = Some(Ok(Some((1_000, 11_000))));
        p.consensus = Some(Ok(consensus(11_000, 0)));
        let s = c.evaluate(p, t0);
        assert_eq!((s.sync.eta_secs, s.sync.stage.as_str()), (None, "syncing"));
        let mut p = at(1_500, 5);
        p.syncing = Some(Ok(Some((1_500, 11_000))));
        p.consensus = Some(Ok(consensus(11_000, 0)));
        let s = c.evaluate(p, t0 + Duration::from_secs(10));
        assert_eq!(s.sync.blocks_per_sec, Some(50.0));
        assert_eq!(s.sync.eta_secs, Some(190.0));
        assert_eq!(s.sync.eta_of.as_deref(), Some("sync"));
    }

    /// Reth during backfill: eth_syncing's current block stands still and equals its highest; the stage
    /// and ETA come from its metrics, the target from the consensus head.
    #[test]
    fn reth_stage_and_eta_from_its_metrics() {
        let metrics = |processed: u64| {
            progress::parse_reth_metrics(&format!(
                "reth_sync_checkpoint{{stage=\"Headers\"}} 21000000\n\
                 reth_sync_checkpoint{{stage=\"Bodies\"}} 21000000\n\
                 reth_sync_checkpoint{{stage=\"Execution\"}} 9000000\n\
                 reth_sync_checkpoint{{stage=\"AccountHashing\"}} 0\n\
                 reth_sync_checkpoint{{stage=\"Finish\"}} 0\n\
                 reth_sync_entities_processed{{stage=\"Execution\"}} {processed}\n\
                 reth_sync_entities_total{{stage=\"Execution\"}} 3000000000\n"
            ))
        };
        let mut c = checker();
        let t0 = Instant::now();
        let probe = |processed| {
            let mut p = at(0, 3_600 * 24 * 365);
            p.syncing = Some(Ok(Some((0, 0))));
            // The chain has moved on since this pipeline run began at 21,000,000.
            p.consensus = Some(Ok(consensus(21_050_000, 0)));
            p.reth_stages = Some(Ok(metrics(processed)));
            p
        };
        let s = c.evaluate(probe(1_000_000_000), t0);
        assert_eq!(s.sync.stage, "syncing:Execution");
        assert_eq!((s.sync.stage_index, s.sync.stages), (Some(3), Some(5)));
        assert_eq!(s.sync.highest_block, Some(21_050_000));
        assert_eq!(s.sync.eta_secs, None, "one sample: rate unknown");
        let s = c.evaluate(probe(1_001_000_000), t0 + Duration::from_secs(100));
        // 10,000 entities/s, 1.999e9 left.
        assert_eq!(s.sync.eta_secs, Some(199_900.0));
        assert_eq!(s.sync.eta_of.as_deref(), Some("stage Execution"));
        assert_eq!(s.sync.stage_processed, Some(1_001_000_000));
        assert!(!s.ready);

        // Every stage at the run's target, the chain further on: a new run, Headers first.
        let done = progress::parse_reth_metrics(
            "reth_sync_checkpoint{stage=\"Headers\"} 21000000\n\
             reth_sync_checkpoint{stage=\"Execution\"} 21000000\n\
             reth_sync_checkpoint{stage=\"Finish\"} 21000000\n",
        );
        let mut p = probe(0);
        p.reth_stages = Some(Ok(done));
        let s = c.evaluate(p, t0 + Duration::from_secs(200));
        assert_eq!(s.sync.stage, "syncing:Headers");
        assert_eq!(s.sync.current_block, Some(21_000_000));
    }
}
