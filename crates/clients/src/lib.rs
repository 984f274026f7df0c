//! Client profiles: turn ethnode's config plus what the host knows about itself into the exact command
//! line of each client process (Reth + Lighthouse, or anvil on dev).
//!
//! Flags follow each client's own CLI reference (`reth node --help`, `lighthouse bn --help`,
//! `anvil --help`); the unit tests pin the full argument vectors so a change is a visible diff.

use ethnode_config::{Config, ConsensusClient, ExecutionClient, Network};
use std::net::IpAddr;
use std::path::PathBuf;

/// What the agent learned about the host (from config or instance metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Address peers reach us at; becomes `--nat extip:` / `--enr-address`.
    pub public_ip: Option<IpAddr>,
    /// Address inside the VPC.
    pub private_ip: Option<IpAddr>,
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
}

/// The node's processes in start order (execution first); stop them in reverse.
pub fn plan(config: &Config, host: &HostFacts) -> Vec<ClientSpec> {
    let net = config.node.network;
    let mut out = vec![match config.execution.client_for(net) {
        ExecutionClient::Reth => reth(config, host),
        ExecutionClient::Anvil => anvil(config),
    }];
    if config.consensus.client_for(net) == ConsensusClient::Lighthouse {
        out.push(lighthouse(config, host));
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
        ExecutionClient::Reth => config.ports.ws,
    };
    format!("ws://{}/", local_endpoint(config.node.rpc_addr, port))
}

/// The consensus client's beacon API base URL, when there is one.
pub fn consensus_api_url(config: &Config) -> Option<String> {
    (config.consensus.client_for(config.node.network) == ConsensusClient::Lighthouse)
        .then(|| format!("http://127.0.0.1:{}", config.ports.consensus_http))
}

/// Reth's Prometheus endpoint, where the agent reads sync progress; none for other clients.
pub fn reth_metrics_url(config: &Config) -> Option<String> {
    (config.execution.client_for(config.node.network) == ExecutionClient::Reth)
        .then(|| format!("http://127.0.0.1:{}/", config.ports.execution_metrics))
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

fn reth(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let rpc = config.node.rpc_addr.to_string();
    // eth,net,web3 only: admin/debug/txpool would let any RPC user reshape the node or read its mempool.
    let apis = "eth,net,web3";
    let data_dir = config.execution_data_dir();
    let mut args: Vec<String> = vec![
        "node".into(),
        "--chain".into(),
        config.node.network.as_str().into(),
        "--datadir".into(),
        path_arg(&data_dir),
    ];
    if config.execution.full.unwrap_or(true) {
        args.push("--full".into());
    }
    args.extend(
        [
            "--http",
            "--http.addr",
            &rpc,
            "--http.port",
            &p.http.to_string(),
            "--http.api",
            apis,
            "--ws",
            "--ws.addr",
            &rpc,
            "--ws.port",
            &p.ws.to_string(),
            "--ws.api",
            apis,
            "--authrpc.addr",
            "127.0.0.1",
            "--authrpc.port",
            &p.authrpc.to_string(),
            "--authrpc.jwtsecret",
            &path_arg(&config.jwt_path()),
            "--port",
            &p.p2p.to_string(),
            "--discovery.port",
            &p.p2p.to_string(),
            "--metrics",
            &format!("127.0.0.1:{}", p.execution_metrics),
        ]
        .map(String::from),
    );
    if let Some(ip) = host.public_ip {
        args.extend(["--nat".into(), format!("extip:{ip}")]);
    }
    args.extend(config.execution.extra_args.iter().cloned());
    ClientSpec {
        role: Role::Execution,
        name: "reth",
        program: config
            .execution
            .binary
            .clone()
            .unwrap_or_else(|| "reth".into()),
        args,
        data_dir,
        install_hint: "download a release from https://github.com/paradigmxyz/reth/releases and put `reth` on PATH, or set execution.binary",
    }
}

/// Public checkpoint sync endpoint for a network, run by Lighthouse's authors.
fn default_checkpoint_url(network: Network) -> Option<&'static str> {
    match network {
        Network::Mainnet => Some("https://mainnet.checkpoint.sigp.io"),
        Network::Sepolia => Some("https://sepolia.checkpoint.sigp.io"),
        Network::Hoodi => Some("https://hoodi.checkpoint.sigp.io"),
        Network::Dev => None,
    }
}

fn lighthouse(config: &Config, host: &HostFacts) -> ClientSpec {
    let p = &config.ports;
    let data_dir = config.consensus_data_dir();
    let mut args: Vec<String> = [
        "bn",
        "--network",
        config.node.network.as_str(),
        "--datadir",
        &path_arg(&data_dir),
        "--execution-endpoint",
        &format!("http://127.0.0.1:{}", p.authrpc),
        "--execution-jwt",
        &path_arg(&config.jwt_path()),
        "--http",
        "--http-address",
        "127.0.0.1",
        "--http-port",
        &p.consensus_http.to_string(),
        "--metrics",
        "--metrics-address",
        "127.0.0.1",
        "--metrics-port",
        &p.consensus_metrics.to_string(),
        "--port",
        &p.consensus_p2p.to_string(),
        "--quic-port",
        &p.consensus_quic.to_string(),
        // No UPnP on a cloud host: the security group, not the router, opens the ports.
        "--disable-upnp",
    ]
    .map(String::from)
    .to_vec();
    let checkpoint = config
        .consensus
        .checkpoint_sync_url
        .as_deref()
        .or(default_checkpoint_url(config.node.network));
    if let Some(url) = checkpoint {
        args.extend(["--checkpoint-sync-url".into(), url.into()]);
    }
    if let Some(ip) = host.public_ip {
        args.extend(["--enr-address".into(), ip.to_string()]);
    }
    args.extend(config.consensus.extra_args.iter().cloned());
    ClientSpec {
        role: Role::Consensus,
        name: "lighthouse",
        program: config
            .consensus
            .binary
            .clone()
            .unwrap_or_else(|| "lighthouse".into()),
        args,
        data_dir,
        install_hint: "download a release from https://github.com/sigp/lighthouse/releases and put `lighthouse` on PATH, or set consensus.binary",
    }
}

fn anvil(config: &Config) -> ClientSpec {
    let data_dir = config.execution_data_dir();
    let mut args: Vec<String> = [
        "--host",
        &config.node.rpc_addr.to_string(),
        "--port",
        &config.ports.http.to_string(),
        "--chain-id",
        &config.dev.chain_id.to_string(),
        "--block-time",
        &config.dev.block_time_secs.to_string(),
        // --state loads on start and dumps on graceful exit; the interval bounds what a SIGKILL loses.
        "--state",
        &path_arg(&data_dir.join("state.json")),
        "--state-interval",
        &config.dev.state_interval_secs.to_string(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(config.execution.extra_args.iter().cloned());
    ClientSpec {
        role: Role::Execution,
        name: "anvil",
        program: config
            .execution
            .binary
            .clone()
            .unwrap_or_else(|| "anvil".into()),
        args,
        data_dir,
        install_hint: "run `npm install --prefix .tools @foundry-rs/anvil-linux-amd64` (scripts/dev.sh does it), or set execution.binary",
    }
}

#[cfg(test)]
mod tests;
