//! The typed configuration. Every section has defaults, so an empty file is a valid mainnet config.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// The whole `ethnode.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which chain, where its data lives, this host's addresses.
    pub node: NodeSection,
    /// The execution client (Reth, or anvil on dev).
    pub execution: ExecutionSection,
    /// The consensus client (Lighthouse, or none on dev).
    pub consensus: ConsensusSection,
    /// Every port the node and the agent listen on.
    pub ports: PortsSection,
    /// The DNS record the agent keeps pointing at this host.
    pub dns: DnsSection,
    /// AWS region and stack.
    pub aws: AwsSection,
    /// What "ready" means.
    pub readiness: ReadinessSection,
    /// The agent's own behaviour: API address, restarts, shutdown.
    pub agent: AgentSection,
    /// The dev chain (anvil).
    pub dev: DevSection,
    /// The AWS stack `ethnode deploy` creates.
    pub deploy: DeploySection,
    /// Snapshots of the chain volume: on request, automatic, and pre-warming a restored volume.
    pub snapshot: SnapshotSection,
    /// The lag monitor: our nodes against reference providers.
    pub monitor: MonitorSection,
    /// The JSON-RPC gateway in front of the nodes.
    pub gateway: GatewaySection,
}

/// The chain to follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Ethereum mainnet.
    #[default]
    Mainnet,
    /// The Sepolia testnet.
    Sepolia,
    /// The Hoodi testnet.
    Hoodi,
    /// A local anvil chain: no consensus client, no peers.
    Dev,
}

impl Network {
    /// The name the clients use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Sepolia => "sepolia",
            Network::Hoodi => "hoodi",
            Network::Dev => "dev",
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Chain to follow.
    pub network: Network,
    /// Root of all chain data; each client gets a subdirectory unless its own `data_dir` is set.
    pub data_dir: PathBuf,
    /// Engine API JWT secret; created (32 random bytes, hex, mode 0600) when missing.
    /// Empty: `<data_dir>/jwt.hex`.
    pub jwt_secret: Option<PathBuf>,
    /// Interface the JSON-RPC HTTP and WS servers bind to.
    pub rpc_addr: IpAddr,
    /// This host's public IP; when unset the agent asks the instance metadata service.
    pub public_ip: Option<IpAddr>,
    /// This host's private IP (registered in DNS); when unset the agent asks the metadata service.
    pub private_ip: Option<IpAddr>,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            network: Network::Mainnet,
            data_dir: PathBuf::from("/data"),
            jwt_secret: None,
            rpc_addr: IpAddr::from([127, 0, 0, 1]),
            public_ip: None,
            private_ip: None,
        }
    }
}

/// Execution client kinds ethnode has a profile for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionClient {
    /// paradigmxyz/reth.
    Reth,
    /// ethereum/go-ethereum.
    Geth,
    /// NethermindEth/nethermind.
    Nethermind,
    /// foundry's anvil: a real local chain for the dev network.
    Anvil,
}

impl ExecutionClient {
    /// The client's name (also its default binary and data subdirectory).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionClient::Reth => "reth",
            ExecutionClient::Geth => "geth",
            ExecutionClient::Nethermind => "nethermind",
            ExecutionClient::Anvil => "anvil",
        }
    }
}

/// Consensus client kinds ethnode has a profile for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusClient {
    /// sigp/lighthouse (`lighthouse bn`).
    Lighthouse,
    /// Consensys/teku.
    Teku,
    /// status-im/nimbus-eth2 (`nimbus_beacon_node`).
    Nimbus,
    /// ChainSafe/lodestar (`lodestar beacon`).
    Lodestar,
    /// No consensus client (dev network only).
    None,
}

impl ConsensusClient {
    /// The client's name (also its data subdirectory).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusClient::Lighthouse => "lighthouse",
            ConsensusClient::Teku => "teku",
            ConsensusClient::Nimbus => "nimbus",
            ConsensusClient::Lodestar => "lodestar",
            ConsensusClient::None => "none",
        }
    }
}

/// What history the execution client keeps. Pruning is destructive: a data directory keeps the mode it
/// was created with (the agent refuses to start it in another one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageMode {
    /// Every historical state: `eth_call`/`eth_getBalance` at any block. Reth: ≥ 3 TB.
    Archive,
    /// A full node that keeps every receipt since the Merge, so `eth_getLogs` works over any post-Merge
    /// range (what event listeners and settlement jobs need); pre-Merge receipts and old states pruned.
    #[default]
    PostMerge,
    /// A full node with the client's default pruning: Reth keeps receipts for the last 10,064 blocks only
    /// (~1.4 days of `eth_getLogs`).
    Full,
    /// Reth's `--minimal`: receipts for the last 64 blocks, transaction lookup and sender recovery fully
    /// pruned, ~10,064 blocks of history and bodies (reth `minimal_prune_modes`; its `--help` text says
    /// receipts are pruned fully). A head-only node.
    Minimal,
}

impl StorageMode {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageMode::Archive => "archive",
            StorageMode::PostMerge => "post-merge",
            StorageMode::Full => "full",
            StorageMode::Minimal => "minimal",
        }
    }
}

/// `[execution]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionSection {
    /// `reth`, `geth`, `nethermind` or `anvil`; unset: anvil on dev, reth elsewhere.
    pub client: Option<ExecutionClient>,
    /// Release the image pins (informational on bare hosts).
    pub version: Option<String>,
    /// Container image (used by `ethnode image`).
    pub image: Option<String>,
    /// Path or name of the binary; unset: the client's own name, looked up on `PATH`.
    pub binary: Option<PathBuf>,
    /// Data directory; unset: `<node.data_dir>/<client>`.
    pub data_dir: Option<PathBuf>,
    /// `archive`, `post-merge` (default: every post-Merge receipt), `full` or `minimal`.
    pub mode: StorageMode,
    /// JSON-RPC namespaces served over HTTP. `admin`, `debug` and `txpool` let any RPC user reshape the
    /// node or read its mempool: add them knowingly.
    pub http_api: Vec<String>,
    /// JSON-RPC namespaces served over WebSocket.
    pub ws_api: Vec<String>,
    /// Extra arguments for the client's command line; a flag given here replaces the profile's own
    /// setting of the same flag (clients refuse a flag given twice).
    pub extra_args: Vec<String>,
    /// Replaced by `mode`; read only to say so.
    #[serde(skip_serializing)]
    pub full: Option<bool>,
}

impl Default for ExecutionSection {
    fn default() -> Self {
        let apis = vec!["eth".to_string(), "net".into(), "web3".into()];
        Self {
            client: None,
            version: None,
            image: None,
            binary: None,
            data_dir: None,
            mode: StorageMode::PostMerge,
            http_api: apis.clone(),
            ws_api: apis,
            extra_args: Vec::new(),
            full: None,
        }
    }
}

impl ExecutionSection {
    /// The client, with the network's default when unset.
    pub fn client_for(&self, network: Network) -> ExecutionClient {
        self.client.unwrap_or(match network {
            Network::Dev => ExecutionClient::Anvil,
            _ => ExecutionClient::Reth,
        })
    }
}

/// `[consensus]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSection {
    /// `lighthouse`, `teku`, `nimbus`, `lodestar` or `none`; unset: none on dev, lighthouse elsewhere.
    pub client: Option<ConsensusClient>,
    /// Release the image pins.
    pub version: Option<String>,
    /// Container image.
    pub image: Option<String>,
    /// Path or name of the binary; unset: the client's usual binary name on `PATH`.
    pub binary: Option<PathBuf>,
    /// Data directory; unset: `<node.data_dir>/<client>`.
    pub data_dir: Option<PathBuf>,
    /// Checkpoint sync endpoints, tried in order at start until one answers; empty: the network's list of
    /// well-known public endpoints.
    pub checkpoint_sync_urls: Vec<String>,
    /// A consensus database last written longer ago than this (hours) is dropped at start, so that the
    /// client checkpoint-syncs in minutes instead of catching up from a snapshot's old head; 0: never.
    pub max_db_age_hours: u64,
    /// Extra arguments; a flag given here replaces the profile's own setting of the same flag.
    pub extra_args: Vec<String>,
    /// Replaced by `checkpoint_sync_urls`; read only to say so.
    #[serde(skip_serializing)]
    pub checkpoint_sync_url: Option<String>,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        Self {
            client: None,
            version: None,
            image: None,
            binary: None,
            data_dir: None,
            checkpoint_sync_urls: Vec::new(),
            max_db_age_hours: 6,
            extra_args: Vec::new(),
            checkpoint_sync_url: None,
        }
    }
}

impl ConsensusSection {
    /// The client, with the network's default when unset.
    pub fn client_for(&self, network: Network) -> ConsensusClient {
        self.client.unwrap_or(match network {
            Network::Dev => ConsensusClient::None,
            _ => ConsensusClient::Lighthouse,
        })
    }
}

/// `[ports]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortsSection {
    /// Execution p2p, TCP and UDP (discovery).
    pub p2p: u16,
    /// JSON-RPC over HTTP (on dev also WebSocket: anvil serves both on one port).
    pub http: u16,
    /// JSON-RPC over WebSocket.
    pub ws: u16,
    /// Engine API (execution ↔ consensus), loopback only.
    pub authrpc: u16,
    /// Execution client Prometheus metrics.
    pub execution_metrics: u16,
    /// Execution discovery v5, UDP (Reth runs discv5 beside discv4; its own default is 9200).
    pub discv5: u16,
    /// Consensus p2p, TCP and UDP.
    pub consensus_p2p: u16,
    /// Consensus QUIC, UDP.
    pub consensus_quic: u16,
    /// Consensus beacon HTTP API.
    pub consensus_http: u16,
    /// Consensus Prometheus metrics.
    pub consensus_metrics: u16,
    /// The agent's health, status and metrics API.
    pub agent: u16,
}

impl Default for PortsSection {
    fn default() -> Self {
        Self {
            p2p: 30303,
            http: 8545,
            ws: 8546,
            authrpc: 8551,
            // Reth's book uses 9001 for metrics, which is Lighthouse's QUIC port; 6060 is geth's.
            execution_metrics: 6060,
            discv5: 9200,
            consensus_p2p: 9000,
            consensus_quic: 9001,
            consensus_http: 5052,
            consensus_metrics: 5054,
            agent: 8555,
        }
    }
}

/// How the DNS record is shared between nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    /// One A record per name: the last node to start owns it.
    Simple,
    /// A multivalue-answer record per node, keyed by instance id: every healthy node answers.
    #[default]
    Multivalue,
}

/// `[dns]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSection {
    /// Name to register, e.g. `mainnet.eth.internal`; unset: no registration.
    pub name: Option<String>,
    /// Route53 hosted zone id (`Z…`); needed with `name`.
    pub hosted_zone_id: Option<String>,
    /// `multivalue` (one record per node) or `simple`.
    pub mode: DnsMode,
    /// Record TTL in seconds.
    pub ttl: u32,
    /// Publish the record only while the node is ready (withdrawn after `unready_grace_secs` not ready,
    /// unless it is the name's last record: an empty answer helps nobody).
    pub publish_when_ready: bool,
    /// Seconds a published node may be not ready before its record is withdrawn.
    pub unready_grace_secs: u64,
    /// Seconds between sweeps that delete the records of the stack's instances that no longer run (nodes
    /// that died without a graceful stop); 0: never.
    pub sweep_secs: u64,
}

impl Default for DnsSection {
    fn default() -> Self {
        Self {
            name: None,
            hosted_zone_id: None,
            mode: DnsMode::Multivalue,
            ttl: 60,
            publish_when_ready: true,
            unready_grace_secs: 60,
            sweep_secs: 60,
        }
    }
}

/// `[aws]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSection {
    /// Region; unset: the SDK's own resolution (`AWS_REGION`, profile, instance metadata).
    pub region: Option<String>,
    /// CloudFormation stack name.
    pub stack_name: Option<String>,
    /// SSM path holding `${VAR}` values as SecureStrings (`<prefix>/VAR`), read when VAR is not in the
    /// environment; the stack sets `/ethnode/<stack>/secrets` for its agents and its Lambda.
    pub secrets_prefix: Option<String>,
}

/// `[readiness]`: ready means at the chain's head as the consensus client sees it, not "head younger than
/// N seconds" — missed slots (a few a month, many in an incident) stall every node at once, and a check that
/// takes them all out together causes the outage it should prevent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessSection {
    /// At most this many blocks behind the reference RPC.
    pub max_lag_blocks: u64,
    /// The execution head may differ from the consensus head's execution payload by at most this many
    /// blocks (the consensus client imports a block just before the execution client makes it its head).
    pub max_head_distance_blocks: u64,
    /// A loose guard only: the head block may be at most this old (seconds; 10 mainnet slots).
    pub max_head_age_secs: u64,
    /// At least this many peers on each client (ignored on dev).
    pub min_peers: u64,
    /// A loose guard only: the consensus head at most this many slots behind the wall clock.
    pub max_sync_distance: u64,
    /// Optional reference JSON-RPC URL to compare heads with.
    pub reference_rpc: Option<String>,
    /// Seconds between health checks.
    pub check_interval_secs: u64,
    /// A ready node becomes not ready after this many failing checks in a row (an execution client that
    /// does not answer at all drops it at once).
    pub fail_after: u32,
    /// A node that is not ready becomes ready after this many passing checks in a row.
    pub pass_after: u32,
}

impl Default for ReadinessSection {
    fn default() -> Self {
        Self {
            max_lag_blocks: 2,
            max_head_distance_blocks: 1,
            max_head_age_secs: 120,
            min_peers: 1,
            max_sync_distance: 10,
            reference_rpc: None,
            check_interval_secs: 2,
            fail_after: 3,
            pass_after: 3,
        }
    }
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// Interface of the health/status/metrics API.
    pub listen_addr: IpAddr,
    /// Seconds a client gets after SIGTERM before SIGKILL.
    pub stop_grace_secs: u64,
    /// First restart delay (milliseconds); doubles per crash, with jitter.
    pub restart_initial_ms: u64,
    /// Longest restart delay (milliseconds).
    pub restart_max_ms: u64,
    /// Give up (exit non-zero) after this many crashes of one client …
    pub crash_limit: u32,
    /// … within this many seconds.
    pub crash_window_secs: u64,
    /// Per-request timeout for the instance metadata service (milliseconds).
    pub imds_timeout_ms: u64,
    /// Bearer token for the agent's control endpoints (`POST /snapshot`) from other hosts; without it
    /// they answer loopback callers only.
    pub admin_token: Option<String>,
    /// Auto Scaling lifecycle hook to complete after a graceful stop when the group terminates this
    /// instance (seen in instance metadata); unset: no lifecycle handling.
    pub lifecycle_hook: Option<String>,
    /// The Auto Scaling group of this instance (for `lifecycle_hook`).
    pub autoscaling_group: Option<String>,
    /// Seconds between instance-metadata checks of the lifecycle state.
    pub lifecycle_poll_secs: u64,
    /// Seconds between pushes of the node's health to CloudWatch (namespace `Ethnode`, dimensions Stack
    /// and Instance: Ready, Peers, HeadAgeSeconds, DaysUntilFull, ClientRestarts); 0: off.
    pub cloudwatch_secs: u64,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            listen_addr: IpAddr::from([127, 0, 0, 1]),
            stop_grace_secs: 300,
            restart_initial_ms: 1000,
            restart_max_ms: 60_000,
            crash_limit: 5,
            crash_window_secs: 600,
            imds_timeout_ms: 1000,
            admin_token: None,
            lifecycle_hook: None,
            autoscaling_group: None,
            lifecycle_poll_secs: 5,
            cloudwatch_secs: 0,
        }
    }
}

/// `[dev]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevSection {
    /// Seconds between blocks, so that head age means something.
    pub block_time_secs: u64,
    /// Chain id of the dev chain.
    pub chain_id: u64,
    /// Seconds between state dumps, so that a killed anvil loses at most this much.
    pub state_interval_secs: u64,
}

impl Default for DevSection {
    fn default() -> Self {
        Self {
            block_time_secs: 2,
            chain_id: 31337,
            state_interval_secs: 1,
        }
    }
}

impl Config {
    /// The defaults for `ethnode up --dev`: anvil, no consensus client, data in `data_dir`.
    pub fn dev(data_dir: PathBuf) -> Self {
        let mut c = Config::default();
        c.node.network = Network::Dev;
        c.node.data_dir = data_dir;
        c
    }

    /// The chain volume's size in GiB: `deploy.volume_size_gib`, else what the execution client needs in
    /// `execution.mode` plus ~250 GiB for the consensus client and about a year of growth (~50 GB/month).
    pub fn chain_volume_gib(&self) -> u32 {
        self.deploy.volume_size_gib.unwrap_or_else(|| {
            default_volume_gib(
                self.execution.client_for(self.node.network),
                self.execution.mode,
            )
        })
    }

    /// The JWT secret path, defaulted under the data dir.
    pub fn jwt_path(&self) -> PathBuf {
        self.node
            .jwt_secret
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("jwt.hex"))
    }

    /// The execution client's data directory.
    pub fn execution_data_dir(&self) -> PathBuf {
        self.execution.data_dir.clone().unwrap_or_else(|| {
            self.node
                .data_dir
                .join(self.execution.client_for(self.node.network).as_str())
        })
    }

    /// The consensus client's data directory.
    pub fn consensus_data_dir(&self) -> PathBuf {
        self.consensus.data_dir.clone().unwrap_or_else(|| {
            self.node
                .data_dir
                .join(self.consensus.client_for(self.node.network).as_str())
        })
    }
}

/// EBS volume type for chain data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// General purpose SSD, IOPS and throughput set independently of size.
    #[default]
    Gp3,
    /// Provisioned IOPS SSD, for sustained high IOPS.
    Io2,
}

impl VolumeType {
    /// The EBS name.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp3 => "gp3",
            VolumeType::Io2 => "io2",
        }
    }
}

/// Whether the stack's hosted zone is private to the VPC or public.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneType {
    /// Resolvable only inside the VPC.
    #[default]
    Private,
    /// Delegated from your domain, as in the classic recipe.
    Public,
}

impl ZoneType {
    /// The template's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneType::Private => "private",
            ZoneType::Public => "public",
        }
    }
}

/// `[deploy]`: the CloudFormation parameters. `dns.name` is the DNSName, `node.network` the Network,
/// `aws.stack_name` the stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeploySection {
    /// VPC to run in (`vpc-…`).
    pub vpc_id: Option<String>,
    /// Subnets for the nodes (`subnet-…`).
    pub subnet_ids: Vec<String>,
    /// Give each node a public IPv4 so that peers can dial in.
    pub assign_public_ip: bool,
    /// EC2 instance type.
    pub instance_type: String,
    /// `private` (VPC-only) or `public` hosted zone.
    pub zone_type: ZoneType,
    /// Start chain data from this snapshot; unset on an existing stack: keep the stack's current value.
    pub chain_snapshot_id: Option<String>,
    /// `gp3` or `io2`.
    pub volume_type: VolumeType,
    /// Chain volume size in GiB; unset: what the execution client and `execution.mode` need, with a
    /// year of growth (see [`Config::chain_volume_gib`]).
    pub volume_size_gib: Option<u32>,
    /// Provisioned IOPS.
    pub volume_iops: u32,
    /// Throughput in MiB/s (gp3 only).
    pub volume_throughput: u32,
    /// MiB/s at which EBS initializes a volume restored from a snapshot (100-300); 0: lazy loading.
    pub volume_initialization_rate: u32,
    /// Number of nodes (Auto Scaling group size).
    pub node_count: u32,
    /// Node image URI (ethnode agent + clients); `ethnode image push` prints it.
    pub image: Option<String>,
    /// Optional EC2 key pair; Session Manager is the default way in.
    pub key_name: Option<String>,
    /// Run `ethnode gateway` beside each node behind an internal load balancer (gateway.DNS_NAME:8547).
    pub gateway: bool,
    /// Days to keep logs.
    pub log_retention_days: u32,
    /// CloudWatch alarms and their SNS topic.
    pub enable_alarms: bool,
    /// S3 bucket with the monitor's Lambda zip (`scripts/build-lambda.sh`); unset: no monitor function.
    pub monitor_code_bucket: Option<String>,
    /// Key of that zip.
    pub monitor_code_key: String,
    /// Private subnets (with a NAT route) for the monitor Lambda: a function in a VPC never gets a public
    /// IP, so the nodes' public subnets give it no way out.
    pub monitor_subnet_ids: Vec<String>,
}

impl Default for DeploySection {
    fn default() -> Self {
        Self {
            vpc_id: None,
            subnet_ids: Vec::new(),
            assign_public_ip: true,
            instance_type: "m7i.2xlarge".into(),
            zone_type: ZoneType::Private,
            chain_snapshot_id: None,
            volume_type: VolumeType::Gp3,
            volume_size_gib: None,
            volume_iops: 6000,
            volume_throughput: 500,
            volume_initialization_rate: 0,
            node_count: 1,
            image: None,
            key_name: None,
            gateway: true,
            log_retention_days: 30,
            enable_alarms: true,
            monitor_code_bucket: None,
            monitor_code_key: "ethnode-monitor.zip".into(),
            monitor_subnet_ids: Vec::new(),
        }
    }
}

/// `[snapshot]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotSection {
    /// The chain volume; unset: the volume attached to this instance as `device`.
    pub volume_id: Option<String>,
    /// Device name the chain volume is attached as.
    pub device: String,
    /// Take, promote and prune snapshots automatically.
    pub auto: bool,
    /// Automatic mode waits until the node has been ready this long.
    pub ready_for_secs: u64,
    /// Automatic mode snapshots when the newest snapshot is older than this many seconds (86400: a day).
    pub interval_secs: u64,
    /// Seconds between automatic-mode checks.
    pub check_secs: u64,
    /// Automatic mode promotes the new snapshot into the stack.
    pub promote: bool,
    /// Snapshots kept by pruning (besides the promoted one and any in use).
    pub keep: usize,
    /// Automatic mode may stop the last ready node of the stack for a snapshot.
    pub allow_last_ready_node: bool,
    /// After stopping the clients, resume them at the latest after this many seconds.
    pub resume_timeout_secs: u64,
    /// Automatic mode promotes only a completed snapshot: it waits at most this long for EBS to finish.
    pub complete_timeout_secs: u64,
    /// Seconds between EBS state checks while waiting.
    pub poll_secs: u64,
    /// Read every file of the data dir once at start, so that a volume restored from a snapshot is
    /// fetched from S3 in the background instead of on the clients' first reads.
    pub prewarm: bool,
    /// Reads in flight while pre-warming.
    pub prewarm_parallelism: usize,
    /// Size of one pre-warm read, KiB.
    pub prewarm_block_kib: usize,
}

impl Default for SnapshotSection {
    fn default() -> Self {
        Self {
            volume_id: None,
            device: "/dev/sdh".into(),
            auto: false,
            ready_for_secs: 3600,
            interval_secs: 86_400,
            check_secs: 300,
            promote: true,
            keep: 3,
            allow_last_ready_node: false,
            resume_timeout_secs: 600,
            // The first snapshot of a 2 TiB volume copies every used block: hours.
            complete_timeout_secs: 6 * 3600,
            poll_secs: 15,
            prewarm: false,
            prewarm_parallelism: 16,
            prewarm_block_kib: 1024,
        }
    }
}

/// `[monitor]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSection {
    /// Our nodes' JSON-RPC URLs. Empty: every address `dns.name` resolves to, port 8545.
    pub nodes: Vec<String>,
    /// Reference JSON-RPC URLs (Infura, Alchemy, public endpoints). `${VAR}` is replaced by the
    /// environment variable, so API keys stay out of the file; URLs are logged without path or query.
    pub references: Vec<String>,
    /// Seconds between rounds (one slot: at most one request per reference per slot).
    pub interval_secs: u64,
    /// Per-request timeout, milliseconds.
    pub timeout_ms: u64,
    /// A reference more than this many blocks behind the references' median is excluded.
    pub reference_max_spread: u64,
    /// Alarm when a node is at least this many blocks behind …
    pub alarm_lag_blocks: u64,
    /// … for this many rounds in a row;
    pub alarm_rounds: u32,
    /// and clear it after this many rounds below.
    pub clear_rounds: u32,
    /// Serve Prometheus metrics here while running as a daemon; unset: no HTTP server.
    pub listen: Option<std::net::SocketAddr>,
    /// Send each round to CloudWatch (namespace `Ethnode`, dimensions Stack and Node).
    pub cloudwatch: bool,
    /// Append each round as a JSON line here (what `ethnode monitor report` reads).
    pub jsonl: Option<PathBuf>,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            references: Vec::new(),
            interval_secs: 12,
            timeout_ms: 3000,
            reference_max_spread: 3,
            alarm_lag_blocks: 3,
            alarm_rounds: 3,
            clear_rounds: 2,
            listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8556))),
            cloudwatch: false,
            jsonl: None,
        }
    }
}

/// `[gateway]`: `ethnode gateway` reads it; its flags override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySection {
    /// Address to serve JSON-RPC (HTTP and WebSocket) on.
    pub listen: std::net::SocketAddr,
    /// Our nodes' JSON-RPC URLs. Empty: every address `dns.name` resolves to, port `ports.http`.
    pub upstreams: Vec<String>,
    /// Providers used only when no node is at head (asked for their head once a slot). `${VAR}` is
    /// replaced by the environment variable, so API keys stay out of the file.
    pub fallbacks: Vec<String>,
    /// A node more than this many blocks behind the served tip gets no traffic.
    pub max_lag_blocks: u64,
    /// Milliseconds between head polls of each node.
    pub poll_ms: u64,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Longest batch.
    pub max_batch: usize,
    /// Requests per second of a key that sets none (and of everybody when there are no keys); unset:
    /// unlimited.
    pub rate_per_sec: Option<f64>,
    /// Requests at once above that rate; unset: one second's worth.
    pub burst: Option<u32>,
    /// Send raw transactions to every node at head, not only the one chosen.
    pub broadcast: bool,
    /// Load balancers whose `X-Forwarded-For` names the caller.
    pub trusted_proxies: Vec<IpAddr>,
    /// Open WebSocket connections per key.
    pub max_sockets_per_key: usize,
    /// Subscriptions per WebSocket connection.
    pub max_subscriptions: usize,
    /// Memory for answers that cannot change (by block hash, final, or keyed by the hash a number has
    /// now), MiB; 0: no cache.
    pub cache_mb: u64,
    /// On SIGTERM, fail `/health` and keep serving this long before stopping (a load balancer stops
    /// sending first).
    pub drain_secs: u64,
    /// Worker threads; 0: one per core.
    pub workers: usize,
    /// API keys, as SHA-256 hashes (`printf %s KEY | sha256sum`); none: no key needed.
    pub keys: Vec<GatewayKey>,
}

/// `[[gateway.keys]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKey {
    /// Its name in metrics and logs.
    pub name: String,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// Its requests per second; unset: `gateway.rate_per_sec`.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Its burst; unset: one second's worth.
    #[serde(default)]
    pub burst: Option<u32>,
    /// The only methods it may call (`eth_get*` for a prefix); unset: all the gateway serves.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8547)),
            upstreams: Vec::new(),
            fallbacks: Vec::new(),
            max_lag_blocks: 2,
            poll_ms: 1000,
            timeout_ms: 10_000,
            max_body_bytes: 1 << 20,
            max_batch: 100,
            rate_per_sec: None,
            burst: None,
            broadcast: false,
            trusted_proxies: Vec::new(),
            max_sockets_per_key: 100,
            max_subscriptions: 100,
            cache_mb: 64,
            drain_secs: 0,
            workers: 0,
            keys: Vec::new(),
        }
    }
}

/// Default chain volume per execution client and mode, GiB. Reth's sizes are from https://reth.rs/run/storage
/// (mainnet, storage v2, block 24.4M: archive 2.31 TB, full 1.02 TB, minimal 224 GB; the system
/// requirements page asks for at least 2.8 TB archive and 1.2 TB full); post-Merge receipts add roughly
/// 0.3 TB to full. Geth's and Nethermind's from their hardware requirements pages (see the README table).
pub(crate) fn default_volume_gib(client: ExecutionClient, mode: StorageMode) -> u32 {
    use ExecutionClient::*;
    use StorageMode::*;
    match (client, mode) {
        (Reth, Archive) => 4096,
        (Reth, PostMerge) => 2048,
        (Reth, Full) => 1536,
        (Reth, Minimal) => 512,
        (Geth | Nethermind, Archive) => 6144,
        (Geth | Nethermind, PostMerge | Full | Minimal) => 2048,
        (Anvil, _) => 500,
    }
}
