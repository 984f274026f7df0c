//! The agent's Prometheus metrics, in the text exposition format served at `/metrics`.

use crate::health::Status;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Label = [(&'static str, String); 1];
type FGauge = Gauge<f64, AtomicU64>;

/// Every metric the agent exports; cheap to update, read only when scraped.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ready: Gauge,
    live: Gauge,
    check_ok: Family<Label, Gauge>,
    head_block: FGauge,
    head_age: FGauge,
    peers: FGauge,
    sync_distance: FGauge,
    reference_lag: FGauge,
    highest_block: FGauge,
    sync_eta: FGauge,
    blocks_per_sec: FGauge,
    disk_used: FGauge,
    disk_free: FGauge,
    days_until_full: FGauge,
    client_up: Family<Label, Gauge>,
    client_restarts: Family<Label, Counter>,
    client_start_time: Family<Label, Gauge>,
    dns_registered: Gauge,
    snapshots: Family<[(&'static str, String); 2], Counter>,
    snapshot_downtime: FGauge,
    snapshot_auto_steps: Family<Label, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `ethnode_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ethnode");
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let m = $metric;
                registry.register($name, $help, m.clone());
                m
            }};
        }
        let m = Self {
            ready: reg!(
                "ready",
                "1 when every readiness check passes",
                Gauge::default()
            ),
            live: reg!(
                "live",
                "1 when the agent and all clients run",
                Gauge::default()
            ),
            check_ok: reg!(
                "check_ok",
                "1 when this readiness check passes",
                Family::default()
            ),
            head_block: reg!(
                "head_block",
                "Execution client's latest block number",
                FGauge::default()
            ),
            head_age: reg!(
                "head_age_seconds",
                "Age of the latest block",
                FGauge::default()
            ),
            peers: reg!("peers", "Execution client's peer count", FGauge::default()),
            sync_distance: reg!(
                "consensus_sync_distance_slots",
                "Consensus client's sync distance",
                FGauge::default()
            ),
            reference_lag: reg!(
                "reference_lag_blocks",
                "Blocks behind the reference RPC",
                FGauge::default()
            ),
            highest_block: reg!(
                "sync_highest_block",
                "Highest block the execution client knows of",
                FGauge::default()
            ),
            sync_eta: reg!(
                "sync_eta_seconds",
                "Estimated seconds until synced (0 when synced, NaN when unknown)",
                FGauge::default()
            ),
            blocks_per_sec: reg!(
                "sync_blocks_per_second",
                "Blocks processed per second, recent average",
                FGauge::default()
            ),
            disk_used: reg!(
                "disk_used_bytes",
                "Bytes used on the data volume",
                FGauge::default()
            ),
            disk_free: reg!(
                "disk_free_bytes",
                "Bytes free on the data volume",
                FGauge::default()
            ),
            days_until_full: reg!(
                "disk_days_until_full",
                "Days until the data volume is full at the recent growth rate",
                FGauge::default()
            ),
            client_up: reg!(
                "client_up",
                "1 while the client process runs",
                Family::default()
            ),
            client_restarts: reg!(
                "client_restarts",
                "Restarts after a crash",
                Family::default()
            ),
            client_start_time: reg!(
                "client_start_time_seconds",
                "Unix time the client process last started",
                Family::default()
            ),
            dns_registered: reg!(
                "dns_registered",
                "1 while this node's DNS record is registered",
                Gauge::default()
            ),
            snapshots: reg!(
                "snapshots",
                "Snapshots attempted, by reason and result",
                Family::default()
            ),
            snapshot_downtime: reg!(
                "snapshot_downtime_seconds",
                "Seconds the clients were stopped for the last snapshot",
                FGauge::default()
            ),
            snapshot_auto_steps: reg!(
                "snapshot_auto_steps",
                "Automatic-mode steps: checked, taken, promoted, pruned, skipped-last-ready-node, claimed-elsewhere, error",
                Family::default()
            ),
            registry,
        };
        for reason in ["manual", "auto"] {
            for result in ["ok", "failed"] {
                let _ = m
                    .snapshots
                    .get_or_create(&[("reason", reason.to_owned()), ("result", result.to_owned())]);
            }
        }
        m
    }

    pub(crate) fn client_up(&self, client: &'static str, up: bool) {
        self.client_up
            .get_or_create(&[("client", client.into())])
            .set(i64::from(up));
    }

    pub(crate) fn client_restarted(&self, client: &'static str) {
        self.client_restarts
            .get_or_create(&[("client", client.into())])
            .inc();
    }

    pub(crate) fn client_started(&self, client: &'static str, unix: u64) {
        self.client_start_time
            .get_or_create(&[("client", client.into())])
            .set(unix as i64);
        // Counters exist at 0 from the start, so that rate() and increase() see the first restart.
        let _ = self
            .client_restarts
            .get_or_create(&[("client", client.into())]);
    }

    pub(crate) fn dns_registered(&self, yes: bool) {
        self.dns_registered.set(i64::from(yes));
    }

    pub(crate) fn snapshot_result(&self, reason: &str, ok: bool, downtime_secs: f64) {
        let result = if ok { "ok" } else { "failed" };
        self.snapshots
            .get_or_create(&[("reason", reason.to_owned()), ("result", result.to_owned())])
            .inc();
        self.snapshot_downtime.set(downtime_secs);
    }

    pub(crate) fn snapshot_auto_step(&self, step: &str) {
        self.snapshot_auto_steps
            .get_or_create(&[("step", step.to_owned())])
            .inc();
    }

    /// Copies a health snapshot into the gauges.
    pub(crate) fn observe(&self, s: &Status) {
        // A value the agent does not know now is NaN, never the last one it knew: a dead execution client
        // must not keep reporting a 3-second-old head.
        let known = |v: Option<f64>| v.unwrap_or(f64::NAN);
        self.ready.set(i64::from(s.ready));
        self.live.set(i64::from(s.live));
        for c in &s.checks {
            self.check_ok
                .get_or_create(&[("check", c.name.into())])
                .set(i64::from(c.ok));
        }
        self.head_block
            .set(known(s.head.as_ref().map(|h| h.number as f64)));
        self.head_age
            .set(known(s.head.as_ref().map(|h| h.age_secs as f64)));
        self.peers.set(known(s.peers.map(|p| p as f64)));
        self.sync_distance
            .set(known(s.consensus_sync_distance.map(|d| d as f64)));
        self.reference_lag
            .set(known(s.reference_lag.map(|l| l as f64)));
        self.highest_block
            .set(known(s.sync.highest_block.map(|h| h as f64)));
        self.sync_eta.set(known(s.sync.eta_secs));
        self.blocks_per_sec.set(known(s.sync.blocks_per_sec));
        let disk = s.disk.as_ref();
        self.disk_used.set(known(disk.map(|d| d.used_bytes as f64)));
        self.disk_free.set(known(disk.map(|d| d.free_bytes as f64)));
        // Known growth that is not positive: never full (+Inf); growth not known yet: NaN.
        self.days_until_full.set(known(disk.and_then(|d| {
            d.days_until_full
                .or(d.growth_bytes_per_day.map(|_| f64::INFINITY))
        })));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
