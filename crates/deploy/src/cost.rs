//! `ethnode cost`: what the configured stack costs per month, from the price table in the repo, next to a
//! hosted RPC plan at the same request volume. Plain arithmetic, no network call.

use ethnode_config::{Config, ConsensusClient, ExecutionClient, StorageMode, VolumeType};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The price table (`deploy/prices.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// When the prices were read.
    pub date: String,
    /// Region they are for.
    pub region: String,
    /// Where they come from.
    pub source: String,
    /// Hours in a billing month.
    pub hours_per_month: f64,
    /// On-demand USD per hour by instance type.
    pub instance_hourly: BTreeMap<String, f64>,
    /// EBS prices.
    pub ebs: EbsPrices,
    /// Everything else.
    pub other: OtherPrices,
    /// Usage assumptions.
    pub assumptions: Assumptions,
    /// The hosted alternative.
    pub hosted_rpc: HostedRpc,
}

/// EBS prices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EbsPrices {
    pub gp3_gb_month: f64,
    pub gp3_free_iops: u32,
    pub gp3_iops_month: f64,
    pub gp3_free_mibps: u32,
    pub gp3_mibps_month: f64,
    pub io2_gb_month: f64,
    pub io2_iops_month: f64,
    pub root_volume_gib: u32,
    pub snapshot_gb_month: f64,
}

/// Other prices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OtherPrices {
    pub internet_egress_gb: f64,
    pub log_ingest_gb: f64,
    pub hosted_zone_month: f64,
    pub alarm_month: f64,
    /// Network Load Balancer, per hour (the gateway's; default: us-east-1's list price).
    #[serde(default = "nlb_hour")]
    pub nlb_hour: f64,
    /// Network Load Balancer capacity unit (NLCU), per hour.
    #[serde(default = "nlb_lcu_hour")]
    pub nlb_lcu_hour: f64,
}

fn nlb_hour() -> f64 {
    0.0225
}

fn nlb_lcu_hour() -> f64 {
    0.006
}

/// Usage assumptions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Assumptions {
    pub p2p_egress_gb_month: f64,
    pub chain_used_gb: f64,
    pub snapshots_kept: u32,
    pub snapshot_increment_gb: f64,
    pub log_gb_month: f64,
    pub alarms: u32,
}

/// Hosted RPC comparison.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct HostedRpc {
    pub usd_per_million_requests: f64,
    pub requests_per_second: f64,
}

impl PriceTable {
    /// Parses a price table.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("price table: {e}"))
    }
}

/// One line of the bill.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostLine {
    /// What.
    pub item: String,
    /// How it is computed.
    pub detail: String,
    /// USD per month.
    pub usd_month: f64,
}

/// The estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostReport {
    /// The lines.
    pub lines: Vec<CostLine>,
    /// Their sum.
    pub total_usd_month: f64,
    /// A hosted RPC plan at the assumed request volume.
    pub hosted_usd_month: f64,
    /// The requests per month compared at.
    pub hosted_requests_month: f64,
    /// Price table date and region.
    pub prices: String,
    /// What the client pair needs.
    pub needs: Needs,
}

/// What a client pair needs on one host, from each client's own documentation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Needs {
    /// The pair, e.g. `reth + lighthouse (post-merge)`.
    pub pair: String,
    /// Memory, GiB: the larger of the execution client's own figure and the consensus client's figure
    /// for a host that also runs an execution client.
    pub memory_gib: u32,
    /// The chain volume the config gets (`deploy.volume_size_gib`, or the mode's default).
    pub volume_gib: u32,
    /// Where the figures come from.
    pub sources: Vec<&'static str>,
}

/// The pair's needs. Execution: reth.rs/run/system-requirements (full 8 GB+, archive 16 GB+),
/// geth.ethereum.org/docs/getting-started/hardware-requirements (16 GB), docs.nethermind.io/get-started/system-requirements
/// (16 GB, archive 128 GB). Consensus with an execution client on the host: docs.teku.consensys.io
/// system requirements (16 GB), nimbus.guide/hardware.html (16 GB), chainsafe.github.io/lodestar (32 GB);
/// Lighthouse's book states no figure, so ethnode's 16 GiB (what it has run Reth + Lighthouse with).
pub fn needs(config: &Config) -> Needs {
    let net = config.node.network;
    let el = config.execution.client_for(net);
    let cl = config.consensus.client_for(net);
    let mode = config.execution.mode;
    let (el_mem, el_src) = match (el, mode) {
        (ExecutionClient::Reth, StorageMode::Archive) => {
            (16, "https://reth.rs/run/system-requirements")
        }
        (ExecutionClient::Reth, _) => (8, "https://reth.rs/run/system-requirements"),
        (ExecutionClient::Geth, _) => (
            16,
            "https://geth.ethereum.org/docs/getting-started/hardware-requirements",
        ),
        (ExecutionClient::Nethermind, StorageMode::Archive) => (
            128,
            "https://docs.nethermind.io/get-started/system-requirements",
        ),
        (ExecutionClient::Nethermind, _) => (
            16,
            "https://docs.nethermind.io/get-started/system-requirements",
        ),
        (ExecutionClient::Anvil, _) => (1, "anvil: a dev chain"),
    };
    let (cl_mem, cl_src) = match cl {
        ConsensusClient::Lighthouse => (
            16,
            "Lighthouse: no figure in its book; ethnode runs Reth + Lighthouse in 16 GiB",
        ),
        ConsensusClient::Teku => (
            16,
            "https://docs.teku.consensys.io/get-started/system-requirements",
        ),
        ConsensusClient::Nimbus => (16, "https://nimbus.guide/hardware.html"),
        ConsensusClient::Lodestar => (32, "https://chainsafe.github.io/lodestar"),
        ConsensusClient::None => (0, "no consensus client"),
    };
    Needs {
        pair: format!("{} + {} ({})", el.as_str(), cl.as_str(), mode.as_str()),
        memory_gib: el_mem.max(cl_mem),
        volume_gib: config.chain_volume_gib(),
        sources: vec![el_src, cl_src],
    }
}

/// Estimates the monthly cost of the stack `config` describes; `requests_per_second` overrides the
/// table's comparison volume.
pub fn estimate(
    config: &Config,
    table: &PriceTable,
    requests_per_second: Option<f64>,
) -> Result<CostReport, String> {
    let d = &config.deploy;
    let nodes = f64::from(d.node_count);
    let hourly = *table.instance_hourly.get(&d.instance_type).ok_or_else(|| {
        format!(
            "no price for instance type {} in the price table ({}); add it under [instance_hourly] or pick one of: {}",
            d.instance_type,
            table.region,
            table.instance_hourly.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let e = &table.ebs;
    let o = &table.other;
    let a = &table.assumptions;
    let mut lines = Vec::new();
    let mut line = |item: &str, detail: String, usd: f64| {
        lines.push(CostLine {
            item: item.into(),
            detail,
            usd_month: usd,
        })
    };
    line(
        "instances",
        format!(
            "{nodes} × {} at ${hourly}/h × {} h",
            d.instance_type, table.hours_per_month
        ),
        nodes * hourly * table.hours_per_month,
    );
    line(
        "root volumes",
        format!("{nodes} × {} GiB gp3", e.root_volume_gib),
        nodes * f64::from(e.root_volume_gib) * e.gp3_gb_month,
    );
    let size = f64::from(config.chain_volume_gib());
    match d.volume_type {
        VolumeType::Gp3 => {
            line(
                "chain volume storage",
                format!("{nodes} × {size} GiB gp3 at ${}/GB", e.gp3_gb_month),
                nodes * size * e.gp3_gb_month,
            );
            let iops = d.volume_iops.saturating_sub(e.gp3_free_iops);
            line(
                "chain volume IOPS",
                format!("{nodes} × {iops} IOPS above the free {}", e.gp3_free_iops),
                nodes * f64::from(iops) * e.gp3_iops_month,
            );
            let mibps = d.volume_throughput.saturating_sub(e.gp3_free_mibps);
            line(
                "chain volume throughput",
                format!(
                    "{nodes} × {mibps} MiB/s above the free {}",
                    e.gp3_free_mibps
                ),
                nodes * f64::from(mibps) * e.gp3_mibps_month,
            );
        }
        VolumeType::Io2 => {
            line(
                "chain volume storage",
                format!("{nodes} × {size} GiB io2 at ${}/GB", e.io2_gb_month),
                nodes * size * e.io2_gb_month,
            );
            line(
                "chain volume IOPS",
                format!("{nodes} × {} provisioned IOPS", d.volume_iops),
                nodes * f64::from(d.volume_iops) * e.io2_iops_month,
            );
        }
    }
    let snap_gb =
        a.chain_used_gb + f64::from(a.snapshots_kept.saturating_sub(1)) * a.snapshot_increment_gb;
    line(
        "snapshots",
        format!(
            "{} kept: {} GB used data + {} GB per later snapshot",
            a.snapshots_kept, a.chain_used_gb, a.snapshot_increment_gb
        ),
        if a.snapshots_kept == 0 {
            0.0
        } else {
            snap_gb * e.snapshot_gb_month
        },
    );
    line(
        "p2p data transfer out",
        format!(
            "{nodes} × {} GB at ${}/GB (assumed)",
            a.p2p_egress_gb_month, o.internet_egress_gb
        ),
        nodes * a.p2p_egress_gb_month * o.internet_egress_gb,
    );
    line(
        "logs",
        format!("{} GB ingested", a.log_gb_month),
        a.log_gb_month * o.log_ingest_gb,
    );
    line("DNS zone", "1 hosted zone".into(), o.hosted_zone_month);
    if d.gateway {
        // One NLCU (25 new connections/s, 3,000 active, or 1 GB an hour) covers a team's keepalive clients.
        line(
            "gateway load balancer",
            format!(
                "internal NLB at ${}/h + 1 NLCU at ${}/h × {} h (the gateways run beside the nodes: no extra compute)",
                o.nlb_hour, o.nlb_lcu_hour, table.hours_per_month
            ),
            (o.nlb_hour + o.nlb_lcu_hour) * table.hours_per_month,
        );
    }
    if d.enable_alarms {
        line(
            "alarms",
            format!("{} alarms", a.alarms),
            f64::from(a.alarms) * o.alarm_month,
        );
    }
    let total = lines.iter().map(|l| l.usd_month).sum();
    let rps = requests_per_second.unwrap_or(table.hosted_rpc.requests_per_second);
    let requests = rps * table.hours_per_month * 3600.0;
    Ok(CostReport {
        lines,
        total_usd_month: total,
        hosted_usd_month: requests / 1e6 * table.hosted_rpc.usd_per_million_requests,
        hosted_requests_month: requests,
        prices: format!(
            "{} prices of {} ({})",
            table.region, table.date, table.source
        ),
        needs: needs(config),
    })
}

#[cfg(test)]
mod needs_tests {
    use super::*;

    #[test]
    fn each_pair_needs_what_its_clients_documentation_says() {
        let with = |el, cl, mode| {
            let mut c = Config::default();
            c.execution.client = Some(el);
            c.consensus.client = Some(cl);
            c.execution.mode = mode;
            needs(&c)
        };
        let n = with(
            ExecutionClient::Reth,
            ConsensusClient::Lighthouse,
            StorageMode::PostMerge,
        );
        assert_eq!(
            (n.pair.as_str(), n.memory_gib, n.volume_gib),
            ("reth + lighthouse (post-merge)", 16, 2048)
        );
        assert_eq!(
            with(
                ExecutionClient::Reth,
                ConsensusClient::Lodestar,
                StorageMode::Full
            )
            .memory_gib,
            32
        );
        let n = with(
            ExecutionClient::Nethermind,
            ConsensusClient::Teku,
            StorageMode::Archive,
        );
        assert_eq!((n.memory_gib, n.volume_gib), (128, 6144));
        assert_eq!(
            with(
                ExecutionClient::Geth,
                ConsensusClient::Nimbus,
                StorageMode::PostMerge
            )
            .memory_gib,
            16
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::parse(crate::PRICES).unwrap()
    }

    #[test]
    fn default_stack_costs_what_the_table_says() {
        let r = estimate(&Config::default(), &table(), None).unwrap();
        let get = |item: &str| r.lines.iter().find(|l| l.item == item).unwrap().usd_month;
        // 0.4032 $/h × 730 h
        assert!((get("instances") - 294.336).abs() < 1e-9);
        // 2048 GiB × $0.08
        assert!((get("chain volume storage") - 163.84).abs() < 1e-9);
        // (6000 − 3000) IOPS × $0.005
        assert!((get("chain volume IOPS") - 15.0).abs() < 1e-9);
        // (500 − 125) MiB/s × $0.04
        assert!((get("chain volume throughput") - 15.0).abs() < 1e-9);
        // (1500 + 2 × 150) GB × $0.05
        assert!((get("snapshots") - 90.0).abs() < 1e-9);
        // 1200 GB × $0.09
        assert!((get("p2p data transfer out") - 108.0).abs() < 1e-9);
        let sum: f64 = r.lines.iter().map(|l| l.usd_month).sum();
        assert!((r.total_usd_month - sum).abs() < 1e-9);
        // 50 req/s × 730 h × 3600 s = 131.4 M requests × $10/M
        assert!((r.hosted_usd_month - 1314.0).abs() < 1e-6);
    }

    #[test]
    fn more_nodes_and_io2_scale_the_right_lines() {
        let mut c = Config::default();
        c.deploy.node_count = 2;
        c.deploy.volume_type = VolumeType::Io2;
        c.deploy.volume_iops = 10_000;
        let r = estimate(&c, &table(), Some(10.0)).unwrap();
        let get = |item: &str| r.lines.iter().find(|l| l.item == item).unwrap().usd_month;
        assert!((get("instances") - 2.0 * 294.336).abs() < 1e-9);
        assert!((get("chain volume storage") - 2.0 * 2048.0 * 0.125).abs() < 1e-9);
        assert!((get("chain volume IOPS") - 2.0 * 10_000.0 * 0.065).abs() < 1e-9);
        assert!(!r.lines.iter().any(|l| l.item == "chain volume throughput"));
        assert!((r.hosted_usd_month - 262.8).abs() < 1e-6);
    }

    #[test]
    fn unknown_instance_type_says_which_are_priced() {
        let mut c = Config::default();
        c.deploy.instance_type = "x9.huge".into();
        let e = estimate(&c, &table(), None).unwrap_err();
        assert!(
            e.contains("no price for instance type x9.huge") && e.contains("m7i.2xlarge"),
            "{e}"
        );
    }
}
