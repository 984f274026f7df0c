//! Readiness: a node is ready only when it is demonstrably at the head, not merely "not syncing".
//!
//! The classic failure is a node that reports `eth_syncing = false` with peers while its head is hours
//! old. So ready means ALL of: execution client not syncing; head no older than `max_head_age_secs`;
//! enough peers (not on dev); the consensus client's sync distance small; and, with a reference RPC,
//! at most `max_lag_blocks` behind it. `/status` shows every check's value and verdict.

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
    /// Check name: `execution_synced`, `head_age`, `peers`, `consensus_sync_distance`, `reference_lag`.
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
    /// `starting`, `syncing`, `syncing:<reth stage>`, `consensus-syncing`, `synced`, or `stalled`.
    pub stage: String,
    /// Block the execution client has processed.
    pub current_block: Option<u64>,
    /// Highest block it knows of.
    pub highest_block: Option<u64>,
    /// Recent processing rate.
    pub blocks_per_sec: Option<f64>,
    /// Seconds until `current_block` reaches `highest_block` at that rate.
    pub eta_secs: Option<f64>,
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

/// Everything `/status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// All readiness checks pass.
    pub ready: bool,
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
}

/// Beacon API `/eth/v1/node/syncing` (numbers are decimal strings).
#[derive(Debug, Deserialize)]
struct BeaconSyncing {
    data: BeaconSyncingData,
}

#[derive(Debug, Deserialize)]
struct BeaconSyncingData {
    sync_distance: String,
    #[serde(default)]
    el_offline: bool,
}

/// `eth_syncing`: `None` when synced, else current block, highest block and Reth's running stage.
pub(crate) type Syncing = Option<(u64, u64, Option<String>)>;

/// What one round of probing measured.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub(crate) syncing: Option<Result<Syncing, String>>,
    pub(crate) head: Option<Result<Head, String>>,
    pub(crate) peers: Option<Result<u64, String>>,
    pub(crate) consensus: Option<Result<(u64, bool), String>>,
    pub(crate) reference_head: Option<Result<u64, String>>,
}

/// Probes the node and keeps the history needed for rates and forecasts.
pub(crate) struct Checker {
    network: Network,
    el: RootProvider,
    reference: Option<RootProvider>,
    consensus_url: Option<String>,
    http: reqwest::Client,
    data_dir: PathBuf,
    max_lag: u64,
    max_head_age: u64,
    min_peers: u64,
    max_sync_distance: u64,
    progress: VecDeque<(Instant, u64)>,
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
            http,
            data_dir: config.node.data_dir.clone(),
            max_lag: r.max_lag_blocks,
            max_head_age: r.max_head_age_secs,
            min_peers: r.min_peers,
            max_sync_distance: r.max_sync_distance,
            progress: VecDeque::new(),
            disk_samples: VecDeque::new(),
        })
    }

    /// Asks every source once, concurrently.
    pub(crate) async fn probe(&self) -> Probe {
        let syncing = async {
            self.el
                .syncing()
                .await
                .map_err(|e| e.to_string())
                .map(|s| match s {
                    SyncStatus::None => None,
                    SyncStatus::Info(info) => {
                        let current = info.current_block.saturating_to::<u64>();
                        let highest = info.highest_block.saturating_to::<u64>();
                        // Reth reports its pipeline stages; the first one behind the target is running.
                        let stage = info.stages.as_ref().and_then(|stages| {
                            stages
                                .iter()
                                .find(|s| s.block < highest)
                                .map(|s| s.name.clone())
                        });
                        Some((current, highest, stage))
                    }
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
                    .raw_request::<_, U64>("net_peerCount".into(), ())
                    .await
                    .map(|p| p.to::<u64>())
                    .map_err(|e| e.to_string()),
            )
        };
        let consensus = async {
            let base = self.consensus_url.as_ref()?;
            let res = async {
                let r: BeaconSyncing = self
                    .http
                    .get(format!("{base}/eth/v1/node/syncing"))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let d = r
                    .data
                    .sync_distance
                    .parse::<u64>()
                    .map_err(|e| format!("bad sync_distance: {e}"))?;
                Ok((d, r.data.el_offline))
            };
            Some(res.await)
        };
        let reference = async {
            let r = self.reference.as_ref()?;
            // The same head query as the monitor's, with URLs out of its errors (they may carry a key).
            Some(ethnode_chain::latest(r).await.head.map(|h| h.number))
        };
        let (syncing, head, peers, consensus, reference_head) =
            tokio::join!(syncing, head, peers, consensus, reference);
        Probe {
            syncing: Some(syncing),
            head: Some(head),
            peers,
            consensus,
            reference_head,
        }
    }

    /// Turns a probe into a status (clients, host and DNS are filled in by the caller).
    pub(crate) fn evaluate(&mut self, p: Probe, now: Instant) -> Status {
        let mut checks = Vec::new();
        let mut status = Status {
            network: self.network.as_str(),
            checked_at: unix_now(),
            ..Status::default()
        };
        let head = p.head.and_then(Result::ok);

        // Execution client not syncing.
        let syncing = p.syncing.unwrap_or(Err("not probed".into()));
        checks.push(match &syncing {
            Ok(None) => Check {
                name: "execution_synced",
                ok: true,
                value: false.into(),
                limit: false.into(),
                detail: "eth_syncing is false".into(),
            },
            Ok(Some((cur, high, _))) => Check {
                name: "execution_synced",
                ok: false,
                value: true.into(),
                limit: false.into(),
                detail: format!("syncing: block {cur} of {high}"),
            },
            Err(e) => Check {
                name: "execution_synced",
                ok: false,
                value: serde_json::Value::Null,
                limit: false.into(),
                detail: format!("execution client not answering: {e}"),
            },
        });

        // Head age.
        checks.push(match &head {
            Some(h) => Check {
                name: "head_age",
                ok: h.age_secs <= self.max_head_age,
                value: h.age_secs.into(),
                limit: self.max_head_age.into(),
                detail: format!("block {} is {}s old", h.number, h.age_secs),
            },
            None => Check {
                name: "head_age",
                ok: false,
                value: serde_json::Value::Null,
                limit: self.max_head_age.into(),
                detail: "no head block".into(),
            },
        });

        // Peers.
        match p.peers {
            None => checks.push(Check {
                name: "peers",
                ok: true,
                value: serde_json::Value::Null,
                limit: serde_json::Value::Null,
                detail: "not applicable on dev".into(),
            }),
            Some(Ok(n)) => {
                status.peers = Some(n);
                checks.push(Check {
                    name: "peers",
                    ok: n >= self.min_peers,
                    value: n.into(),
                    limit: self.min_peers.into(),
                    detail: format!("{n} peers (need {})", self.min_peers),
                });
            }
            Some(Err(e)) => checks.push(Check {
                name: "peers",
                ok: false,
                value: serde_json::Value::Null,
                limit: self.min_peers.into(),
                detail: format!("net_peerCount failed: {e}"),
            }),
        }

        // Consensus sync distance.
        match &p.consensus {
            None => checks.push(Check {
                name: "consensus_sync_distance",
                ok: true,
                value: serde_json::Value::Null,
                limit: serde_json::Value::Null,
                detail: "no consensus client on this network".into(),
            }),
            Some(Ok((d, el_offline))) => {
                status.consensus_sync_distance = Some(*d);
                checks.push(Check {
                    name: "consensus_sync_distance",
                    ok: *d <= self.max_sync_distance && !el_offline,
                    value: (*d).into(),
                    limit: self.max_sync_distance.into(),
                    detail: if *el_offline {
                        "consensus client reports the execution client offline".into()
                    } else {
                        format!("{d} slots behind")
                    },
                });
            }
            Some(Err(e)) => checks.push(Check {
                name: "consensus_sync_distance",
                ok: false,
                value: serde_json::Value::Null,
                limit: self.max_sync_distance.into(),
                detail: format!("beacon API not answering: {e}"),
            }),
        }

        // Reference lag.
        match (&p.reference_head, &head) {
            (None, _) => checks.push(Check {
                name: "reference_lag",
                ok: true,
                value: serde_json::Value::Null,
                limit: serde_json::Value::Null,
                detail: "no reference RPC configured".into(),
            }),
            (Some(Ok(r)), Some(h)) => {
                let lag = *r as i64 - h.number as i64;
                status.reference_lag = Some(lag);
                checks.push(Check {
                    name: "reference_lag",
                    ok: lag <= self.max_lag as i64,
                    value: lag.into(),
                    limit: self.max_lag.into(),
                    detail: format!("reference at {r}, we are at {}", h.number),
                });
            }
            (Some(Ok(_)), None) => checks.push(Check {
                name: "reference_lag",
                ok: false,
                value: serde_json::Value::Null,
                limit: self.max_lag.into(),
                detail: "our head is unknown".into(),
            }),
            // A failing reference says nothing about us: do not hold readiness hostage to a third party.
            (Some(Err(e)), _) => checks.push(Check {
                name: "reference_lag",
                ok: true,
                value: serde_json::Value::Null,
                limit: self.max_lag.into(),
                detail: format!("reference RPC failing, check skipped: {e}"),
            }),
        }

        // Sync progress: rate from the last five minutes of samples.
        let (current, highest, reth_stage) = match &syncing {
            Ok(Some((c, h, s))) => (Some(*c), Some(*h), s.clone()),
            _ => (
                head.as_ref().map(|h| h.number),
                head.as_ref().map(|h| h.number),
                None,
            ),
        };
        if let Some(c) = current {
            self.progress.push_back((now, c));
            while self
                .progress
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(300))
            {
                self.progress.pop_front();
            }
        }
        let rate = match (self.progress.front(), self.progress.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                Some(b1.saturating_sub(*b0) as f64 / t1.duration_since(*t0).as_secs_f64())
            }
            _ => None,
        };
        let remaining = match (current, highest) {
            (Some(c), Some(h)) => h.saturating_sub(c),
            _ => 0,
        };
        let head_fresh = checks.iter().any(|c| c.name == "head_age" && c.ok);
        let cl_ok = checks
            .iter()
            .any(|c| c.name == "consensus_sync_distance" && c.ok);
        let stage = match (&syncing, reth_stage) {
            (Err(_), _) => "starting".to_string(),
            (Ok(Some(_)), Some(s)) => format!("syncing:{s}"),
            (Ok(Some(_)), None) => "syncing".to_string(),
            (Ok(None), _) if !cl_ok => "consensus-syncing".to_string(),
            (Ok(None), _) if !head_fresh => "stalled".to_string(),
            (Ok(None), _) => "synced".to_string(),
        };
        status.sync = SyncProgress {
            stage,
            current_block: current,
            highest_block: highest,
            blocks_per_sec: rate,
            eta_secs: match rate {
                _ if remaining == 0 => Some(0.0),
                Some(r) if r > 0.0 => Some(remaining as f64 / r),
                _ => None,
            },
        };

        status.disk = self.disk(now);
        status.ready = checks.iter().all(|c| c.ok);
        status.checks = checks;
        status.head = head;
        status
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

    fn checker(network: Network) -> Checker {
        let mut c = Config::default();
        c.node.network = network;
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

    fn healthy() -> Probe {
        Probe {
            syncing: Some(Ok(None)),
            head: Some(Ok(head(100, 5))),
            peers: Some(Ok(8)),
            consensus: Some(Ok((0, false))),
            reference_head: Some(Ok(101)),
        }
    }

    #[test]
    fn all_checks_pass_when_at_head() {
        let s = checker(Network::Mainnet).evaluate(healthy(), Instant::now());
        assert!(s.ready, "{:?}", s.checks);
        assert_eq!(s.sync.stage, "synced");
        assert_eq!(s.reference_lag, Some(1));
    }

    #[test]
    fn not_syncing_with_peers_but_old_head_is_not_ready() {
        let mut p = healthy();
        p.head = Some(Ok(head(100, 3 * 3600)));
        let s = checker(Network::Mainnet).evaluate(p, Instant::now());
        assert!(!s.ready);
        assert_eq!(s.sync.stage, "stalled");
        let c = s.checks.iter().find(|c| c.name == "head_age").unwrap();
        assert!(!c.ok && c.value == serde_json::json!(10800));
    }

    #[test]
    fn each_failing_check_alone_blocks_readiness() {
        type Mutation = Box<dyn Fn(&mut Probe)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "execution_synced",
                Box::new(|p| p.syncing = Some(Ok(Some((10, 20, None))))),
            ),
            (
                "execution_synced",
                Box::new(|p| p.syncing = Some(Err("refused".into()))),
            ),
            ("peers", Box::new(|p| p.peers = Some(Ok(0)))),
            (
                "consensus_sync_distance",
                Box::new(|p| p.consensus = Some(Ok((40, false)))),
            ),
            (
                "consensus_sync_distance",
                Box::new(|p| p.consensus = Some(Ok((0, true)))),
            ),
            (
                "reference_lag",
                Box::new(|p| p.reference_head = Some(Ok(110))),
            ),
        ];
        for (name, mutate) in cases {
            let mut p = healthy();
            mutate(&mut p);
            let s = checker(Network::Mainnet).evaluate(p, Instant::now());
            assert!(!s.ready, "{name} should block readiness");
            let failing: Vec<_> = s.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
            assert_eq!(failing, vec![name]);
        }
    }

    #[test]
    fn failing_reference_does_not_block_readiness() {
        let mut p = healthy();
        p.reference_head = Some(Err("timeout".into()));
        assert!(checker(Network::Mainnet).evaluate(p, Instant::now()).ready);
    }

    #[test]
    fn sync_rate_and_eta_from_samples() {
        let mut c = checker(Network::Mainnet);
        let t0 = Instant::now();
        let mut p = healthy();
        p.syncing = Some(Ok(Some((1_000, 11_000, Some("Execution".into())))));
        c.evaluate(p, t0);
        let mut p = healthy();
        p.syncing = Some(Ok(Some((1_500, 11_000, Some("Execution".into())))));
        let s = c.evaluate(p, t0 + Duration::from_secs(10));
        assert_eq!(s.sync.stage, "syncing:Execution");
        assert_eq!(s.sync.blocks_per_sec, Some(50.0));
        assert_eq!(s.sync.eta_secs, Some(190.0));
    }
}
