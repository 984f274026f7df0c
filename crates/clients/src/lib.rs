//! Client profiles: turn ethnode's config plus what the host knows about itself into the exact command
//! line of each client process — an execution client (Reth, Geth, Nethermind) and a consensus client
//! (Lighthouse, Teku, Nimbus, Lodestar), or anvil alone on dev.
//!
//! Flags follow each client's own CLI reference, cited above each profile; the unit tests pin the full
//! argument vectors so a change is a visible diff. Every profile follows the same rules: stdout is the
//! log (no log files, no colour codes), RPC on the configured namespaces only, no IPC socket, the Engine
//! API on loopback with the JWT, metrics on loopback, p2p ports and the advertised address set together.
//! `extra_args` can replace any flag a profile sets: clients refuse a flag given twice.

use ethnode_config::{Config, ConsensusClient, ExecutionClient, Network};
use std::net::IpAddr;
use std::path::PathBuf;

/// What the agent learned at start (from config, instance metadata and the network).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Address peers reach us at; becomes `--nat extip:` / `--enr-address`.
    pub public_ip: Option<IpAddr>,
    /// Address inside the VPC.
    pub private_ip: Option<IpAddr>,
    /// The checkpoint sync endpoint that answered (see [`checkpoint_urls`]); unset: the first listed.
    pub checkpoint_sync_url: Option<String>,
}

/// Which half of the node a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Execution client (also anvil).
    Execution,
    /// Consensus client.
    Consensus,
}

impl Role {
    /// Lowercase name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Execution => "execution",
            Role::Consensus => "consensus",
        }
    }
}

/// One client process to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// Execution or consensus.
    pub role: Role,
    /// Client name: `reth`, `lighthouse`, `anvil`.
    pub name: &'static str,
    /// Binary path or name to look up on `PATH`.
    pub program: PathBuf,
    /// Arguments, without the program.
    pub args: Vec<String>,
    /// Data directory the client owns (created before start).
    pub data_dir: PathBuf,
    /// Where to get the binary when it is missing.
    pub install_hint: &'static str,
    /// A one-shot run of the same program before the client, while its result is not on disk.
    pub prelude: Option<Prelude>,
    /// Files the client reads, written (overwritten) before it starts: path and content.
    pub files: Vec<(PathBuf, String)>,
    /// Flags of the profile that `extra_args` replaced (the agent warns: it relies on the profile's
    /// ports, data directory and JWT).
    pub replaced: Vec<String>,
}

/// A one-shot step a client needs before its first start (Nimbus's checkpoint sync is a separate command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prelude {
    /// Its arguments.
    pub args: Vec<String>,
    /// Written by the agent after the step exits 0; the step is skipped while it exists. The agent's own
    /// record, not the client's files: a step that failed half-way may have left those behind.
    pub done_marker: PathBuf,
    /// Removed before each attempt: what a failed attempt may have left half-written.
    pub clean: Vec<PathBuf>,
}

/// The node's processes in start order (execution first); stop them in reverse.
pub fn plan(config: &Config, host: &HostFacts) -> Vec<ClientSpec> {
    let mut specs = profiles(config, host);
    // The same plan without extra_args says which of the profiles' flags they replace.
    let mut pure = config.clone();
    pure.execution.extra_args.clear();
    pure.consensus.extra_args.clear();
    for (spec, plain) in specs.iter_mut().zip(profiles(&pure, host)) {
        let extra = match spec.role {
            Role::Execution => &config.execution.extra_args,
            Role::Consensus => &config.consensus.extra_args,
        };
        let profile: Vec<&str> = plain
            .args
            .iter()
            .filter_map(|a| args::flag_name(a))
            .collect();
        spec.replaced = extra
            .iter()
            .filter_map(|a| args::flag_name(a))
            .filter(|f| profile.contains(f))
            .map(String::from)
            .collect();
    }
    specs
}

fn profiles(config: &Config, host: &HostFacts) -> Vec<ClientSpec> {
    let net = config.node.network;
    let mut out = vec![match config.execution.client_for(net) {
        ExecutionClient::Reth => reth::spec(config, host),
        ExecutionClient::Geth => geth::spec(config, host),
        ExecutionClient::Nethermind => nethermind::spec(config, host),
        ExecutionClient::Anvil => anvil::spec(config),
    }];
    match config.consensus.client_for(net) {
        ConsensusClient::Lighthouse => out.push(lighthouse::spec(config, host)),
        ConsensusClient::Teku => out.push(teku::spec(config, host)),
        ConsensusClient::Nimbus => out.push(nimbus::spec(config, host)),
        ConsensusClient::Lodestar => out.push(lodestar::spec(config, host)),
        ConsensusClient::None => {}
    }
    out
}

/// The execution client's JSON-RPC URL as the agent reaches it.
pub fn execution_rpc_url(config: &Config) -> String {
    format!(
        "http://{}/",
        local_endpoint(config.node.rpc_addr, config.ports.http)
    )
}

/// The execution client's WebSocket URL (anvil serves WS on the HTTP port).
pub fn execution_ws_url(config: &Config) -> String {
    let port = match config.execution.client_for(config.node.network) {
        ExecutionClient::Anvil => config.ports.http,
        _ => config.ports.ws,
    };
    format!("ws://{}/", local_endpoint(config.node.rpc_addr, port))
}

/// The consensus client's beacon API base URL, when there is one (every consensus client serves the
/// standard beacon API, so readiness is the same for all of them).
pub fn consensus_api_url(config: &Config) -> Option<String> {
    (config.consensus.client_for(config.node.network) != ConsensusClient::None)
        .then(|| format!("http://127.0.0.1:{}", config.ports.consensus_http))
}

/// Reth's Prometheus endpoint, where the agent reads sync progress; none for other clients.
pub fn reth_metrics_url(config: &Config) -> Option<String> {
    (config.execution.client_for(config.node.network) == ExecutionClient::Reth)
        .then(|| format!("http://127.0.0.1:{}/", config.ports.execution_metrics))
}

/// Checkpoint sync endpoints in the order to try them: the configured ones, or the network's public ones
/// from the community list (github.com/eth-clients/checkpoint-sync-endpoints, `endpoints/<network>.yaml`),
/// operators first whose endpoints the clients' own docs use.
pub fn checkpoint_urls(config: &Config) -> Vec<String> {
    if !config.consensus.checkpoint_sync_urls.is_empty() {
        return config.consensus.checkpoint_sync_urls.clone();
    }
    let list: &[&str] = match config.node.network {
        Network::Mainnet => &[
            "https://mainnet.checkpoint.sigp.io",
            "https://beaconstate.ethstaker.cc",
            "https://sync-mainnet.beaconcha.in",
            "https://beaconstate.info",
        ],
        Network::Sepolia => &[
            "https://checkpoint-sync.sepolia.ethpandaops.io",
            "https://sepolia.beaconstate.info",
            "https://beaconstate-sepolia.chainsafe.io",
        ],
        Network::Hoodi => &[
            "https://hoodi.checkpoint.sigp.io",
            "https://checkpoint-sync.hoodi.ethpandaops.io",
            "https://hoodi.beaconstate.info",
            "https://hoodi.beaconstate.ethstaker.cc",
        ],
        Network::Dev => &[],
    };
    list.iter().map(|u| u.to_string()).collect()
}

/// The checkpoint URL a consensus profile passes: the one that answered, else the first listed.
fn checkpoint(config: &Config, host: &HostFacts) -> Option<String> {
    host.checkpoint_sync_url
        .clone()
        .or_else(|| checkpoint_urls(config).into_iter().next())
}

/// The configured binary, else the client's usual name on `PATH`.
fn program(configured: &Option<PathBuf>, default: &str) -> PathBuf {
    configured.clone().unwrap_or_else(|| default.into())
}

/// A wildcard bind address is reached through loopback.
fn local_endpoint(addr: IpAddr, port: u16) -> String {
    let host = if addr.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        addr
    };
    std::net::SocketAddr::new(host, port).to_string()
}

fn path_arg(p: &std::path::Path) -> String {
    p.display().to_string()
}

mod anvil;
mod args;
mod geth;
mod lighthouse;
mod lodestar;
mod nethermind;
mod nimbus;
mod reth;
mod teku;

#[cfg(test)]
mod tests;
