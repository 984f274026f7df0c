//! The node agent: turns a config into a running, supervised, honest node.
//!
//! [`start`] learns the host's addresses (config, else IMDSv2), creates the JWT secret, checks that
//! binaries and ports are there, binds the API and starts the clients; [`AgentHandle::run_until`] keeps
//! them running until shutdown (or until a client crashes too often) and then stops them in order:
//! DNS record removed, consensus client, then execution client, each with SIGTERM and a grace period.

mod api;
mod cloudwatch;
mod dns;
mod health;
mod jwt;
mod lifecycle;
mod metrics;
mod prepare;
mod prewarm;
mod progress;
mod snapshot;
mod supervisor;

pub use cloudwatch::CLOUDWATCH_METRICS;
pub use health::{Check, ConsensusState, Disk, DnsState, Head, HostInfo, Status, SyncProgress};
pub use metrics::Metrics;
pub use prewarm::{Prewarm, PrewarmProgress, ReadAt, prewarm_dir, prewarm_source};
pub use snapshot::SnapshotTaken;
pub use supervisor::ClientState;

use ethnode_clients::{ClientSpec, HostFacts};
use ethnode_config::{Config, Network, Proto};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use supervisor::{Ended, Policy, Supervision};

/// Why the agent could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Client binaries are not installed.
    #[error("missing client binaries:\n{}", .0.iter().map(|m| format!("  - {} (`{}`): {}", m.name, m.program.display(), m.hint)).collect::<Vec<_>>().join("\n"))]
    MissingBinaries(Vec<Missing>),
    /// A port the node needs is taken.
    #[error(
        "port {port}/{proto} on {addr} is already in use ({key}); stop whatever holds it, or set {key} in ethnode.toml (or {env}) to a free port"
    )]
    PortInUse {
        /// Port number.
        port: u16,
        /// TCP or UDP.
        proto: Proto,
        /// Bind address tried.
        addr: IpAddr,
        /// Config key that sets it.
        key: &'static str,
        /// The matching environment variable.
        env: String,
    },
    /// A file or directory could not be prepared.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The health checker could not be built (a bad URL).
    #[error("health checks: {0}")]
    Health(String),
    /// The execution data directory was created in another storage mode.
    #[error(transparent)]
    StorageMode(#[from] prepare::ModeError),
}

/// A client binary that was not found.
#[derive(Debug)]
pub struct Missing {
    /// Client name.
    pub name: &'static str,
    /// What was looked for.
    pub program: PathBuf,
    /// Where to get it.
    pub hint: &'static str,
}

/// How the agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request; exit 0.
    Stopped,
    /// A client crashed `crashes` times within the window; exit non-zero so the orchestrator acts.
    GaveUp {
        /// Client name.
        client: &'static str,
        /// Crashes counted.
        crashes: u32,
        /// Window in seconds.
        window_secs: u64,
        /// Last exit.
        last: String,
    },
}

/// URLs the node and the agent answer on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Endpoints {
    /// JSON-RPC over HTTP.
    pub rpc: String,
    /// JSON-RPC over WebSocket.
    pub ws: String,
    /// The agent's API base.
    pub agent: String,
}

/// State shared by the API, the health loop and the supervisors.
pub(crate) struct Shared {
    health: RwLock<Status>,
    clients: Vec<Arc<Mutex<ClientState>>>,
    supervision: tokio::sync::Mutex<Supervision>,
    /// Why the clients are deliberately stopped (a snapshot), if they are.
    paused: Mutex<Option<String>>,
    /// Since when every readiness check has passed without a break.
    ready_since: Mutex<Option<Instant>>,
    prewarm: Mutex<Option<PrewarmProgress>>,
    host: HostInfo,
    dns: Mutex<DnsState>,
    metrics: Arc<Metrics>,
    stopping: AtomicBool,
    /// Wakes a snapshot in progress when the agent is asked to stop.
    stop_requested: tokio::sync::Notify,
    snapshots: snapshot::Snapshots,
    config: Config,
}

impl Shared {
    /// Every client process runs.
    pub(crate) fn clients_running(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.lock().unwrap_or_else(|p| p.into_inner()).running)
    }

    /// When each client process started: a change means another process than the one last checked.
    pub(crate) fn client_starts(&self) -> Vec<Option<Instant>> {
        self.clients
            .iter()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).started)
            .collect()
    }

    /// The latest health check combined with the live client, host and DNS state.
    pub(crate) fn status(&self) -> Status {
        let mut s = self
            .health
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        s.clients = self
            .clients
            .iter()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).snapshot())
            .collect();
        s.live = !self.stopping.load(Ordering::Relaxed) && s.clients.iter().all(|c| c.running);
        // A client restarted since the last check: that check said nothing about the new process (which
        // may not even answer yet).
        s.ready = s.ready && s.live && s.covered == self.client_starts();
        if let Some(why) = self
            .paused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            s.sync.stage = format!("paused: {why}");
        }
        s.prewarm = self
            .prewarm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        s.host = self.host.clone();
        s.dns = self.dns.lock().unwrap_or_else(|p| p.into_inner()).clone();
        s
    }
}

/// The agent after start: clients running, API serving.
pub struct AgentHandle {
    shared: Arc<Shared>,
    endpoints: Endpoints,
    gave_up: tokio::sync::mpsc::Receiver<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
    dns: Option<dns::Registration>,
    /// Fires when the Auto Scaling group is terminating this instance.
    terminating: Option<tokio::sync::oneshot::Receiver<lifecycle::Termination>>,
    force: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Cuts a graceful stop short: the clients get SIGKILL instead of the rest of their grace period.
#[derive(Clone)]
pub struct ForceStop(Arc<tokio::sync::watch::Sender<bool>>);

impl ForceStop {
    /// Kill the clients now (a second SIGTERM/SIGINT while stopping).
    pub fn force(&self) {
        self.0.send_replace(true);
    }
}

/// Host facts plus the instance id, learned from config and (where needed) IMDSv2.
pub async fn resolve_host(config: &Config) -> (HostFacts, HostInfo) {
    let mut facts = HostFacts {
        public_ip: config.node.public_ip,
        private_ip: config.node.private_ip,
        checkpoint_sync_url: None,
    };
    let mut instance_id = None;
    // Ask the metadata service only for what is missing. A DNS registration also wants the instance id
    // (its multivalue key). On dev the public IP does not matter: a laptop asks nothing.
    let dns = config.dns.name.is_some();
    let wants_imds = match config.node.network {
        Network::Dev => dns,
        _ => dns || facts.public_ip.is_none() || facts.private_ip.is_none(),
    };
    if wants_imds {
        let timeout = Duration::from_millis(config.agent.imds_timeout_ms);
        match ethnode_aws::instance_facts(timeout).await {
            Ok(m) => {
                tracing::info!(instance_id = ?m.instance_id, public_ip = ?m.public_ip, private_ip = ?m.private_ip, "instance metadata (IMDSv2)");
                facts.public_ip = facts.public_ip.or(m.public_ip);
                facts.private_ip = facts.private_ip.or(m.private_ip);
                instance_id = m.instance_id;
            }
            Err(e) => tracing::info!(
                "not on EC2 ({e}); going on with the configured addresses: public {:?}, private {:?}",
                facts.public_ip,
                facts.private_ip
            ),
        }
    }
    let info = HostInfo {
        public_ip: facts.public_ip.map(|i| i.to_string()),
        private_ip: facts.private_ip.map(|i| i.to_string()),
        instance_id,
    };
    (facts, info)
}

/// The URLs for this config.
pub fn endpoints(config: &Config) -> Endpoints {
    let agent_host = if config.agent.listen_addr.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        config.agent.listen_addr
    };
    Endpoints {
        rpc: ethnode_clients::execution_rpc_url(config),
        ws: ethnode_clients::execution_ws_url(config),
        agent: format!("http://{}", SocketAddr::new(agent_host, config.ports.agent)),
    }
}

/// Finds each client's binary: a path as given, a bare name on `PATH`.
pub fn resolve_binaries(specs: &[ClientSpec]) -> Result<Vec<PathBuf>, AgentError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for spec in specs {
        let is_path = spec.program.components().count() > 1;
        let resolved = if is_path {
            spec.program.is_file().then(|| spec.program.clone())
        } else {
            which::which(&spec.program).ok()
        };
        match resolved {
            Some(p) => found.push(p),
            None => missing.push(Missing {
                name: spec.name,
                program: spec.program.clone(),
                hint: spec.install_hint,
            }),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(AgentError::MissingBinaries(missing))
    }
}

/// Fails with the port and the key that changes it when any port this config needs is taken.
pub fn check_ports(config: &Config) -> Result<(), AgentError> {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let any = IpAddr::from([0, 0, 0, 0]);
    for (key, port, proto) in config.listening_ports() {
        let addr = match key {
            "ports.http" | "ports.ws" => config.node.rpc_addr,
            "ports.agent" => config.agent.listen_addr,
            "ports.p2p" | "ports.consensus_p2p" | "ports.consensus_quic" => any,
            _ => loopback,
        };
        let sa = SocketAddr::new(addr, port);
        let taken = match proto {
            Proto::Tcp => std::net::TcpListener::bind(sa).is_err(),
            Proto::Udp => std::net::UdpSocket::bind(sa).is_err(),
        };
        if taken {
            return Err(AgentError::PortInUse {
                port,
                proto,
                addr,
                key,
                env: format!("ETHNODE_{}", key.replace('.', "_").to_ascii_uppercase()),
            });
        }
    }
    Ok(())
}

/// Prepares the host and starts the clients, the health loop, the API and DNS registration.
pub async fn start(config: Config) -> Result<AgentHandle, AgentError> {
    let (mut facts, host) = resolve_host(&config).await;
    let programs = resolve_binaries(&ethnode_clients::plan(&config, &facts))?;
    check_ports(&config)?;
    prepare::check_storage_mode(&config)?;
    prepare::drop_stale_consensus_db(&config).map_err(|source| AgentError::Io {
        what: format!(
            "drop the stale consensus database in {}",
            config.consensus_data_dir().display()
        ),
        source,
    })?;
    facts.checkpoint_sync_url = prepare::choose_checkpoint(&config, Duration::from_secs(5)).await;
    let specs = ethnode_clients::plan(&config, &facts);
    for spec in specs.iter().filter(|s| !s.replaced.is_empty()) {
        tracing::warn!(
            client = spec.name,
            flags = ?spec.replaced,
            "extra_args replace these flags of the profile; the agent relies on the profile's ports, data directory, JWT and metrics, so keep them consistent"
        );
    }

    let io = |what: String| move |source| AgentError::Io { what, source };
    std::fs::create_dir_all(&config.node.data_dir).map_err(io(format!(
        "create data dir {}",
        config.node.data_dir.display()
    )))?;
    for spec in &specs {
        std::fs::create_dir_all(&spec.data_dir)
            .map_err(io(format!("create data dir {}", spec.data_dir.display())))?;
        for (path, content) in &spec.files {
            std::fs::write(path, content).map_err(io(format!(
                "write {} for {}",
                path.display(),
                spec.name
            )))?;
        }
    }
    if config.node.network != Network::Dev {
        let path = config.jwt_path();
        if jwt::ensure(&path).map_err(io(format!("JWT secret {}", path.display())))? {
            tracing::info!(path = %path.display(), "created JWT secret");
        }
    }

    let endpoints = endpoints(&config);
    let api_addr = SocketAddr::new(config.agent.listen_addr, config.ports.agent);
    let listener =
        tokio::net::TcpListener::bind(api_addr)
            .await
            .map_err(|_| AgentError::PortInUse {
                port: config.ports.agent,
                proto: Proto::Tcp,
                addr: config.agent.listen_addr,
                key: "ports.agent",
                env: "ETHNODE_PORTS_AGENT".into(),
            })?;

    // The checker gets the reference URL with ${VAR} filled in (environment, else the stack's
    // SecureStrings); everything the agent shows keeps the template.
    let mut checker_config = config.clone();
    if let Some(url) = &config.readiness.reference_rpc {
        let expanded = ethnode_fleet::expand_secrets(
            std::slice::from_ref(url),
            config.aws.secrets_prefix.as_deref(),
            config.aws.region.as_deref(),
        )
        .await
        .map_err(|e| AgentError::Health(format!("readiness.reference_rpc: {e}")))?;
        checker_config.readiness.reference_rpc = expanded.into_iter().next();
    }
    let mut checker = health::Checker::new(&checker_config).map_err(AgentError::Health)?;
    let a = &config.agent;
    let (force_tx, force_rx) = tokio::sync::watch::channel(false);
    let policy = Policy {
        initial: Duration::from_millis(a.restart_initial_ms),
        max: Duration::from_millis(a.restart_max_ms),
        crash_limit: a.crash_limit,
        crash_window: Duration::from_secs(a.crash_window_secs),
        grace: Duration::from_secs(a.stop_grace_secs),
        force: force_rx,
    };
    let metrics = Arc::new(Metrics::new());
    let (gave_up_tx, gave_up) = tokio::sync::mpsc::channel(specs.len().max(1));
    let mut supervision = Supervision::new(
        specs.into_iter().zip(programs).collect(),
        policy,
        metrics.clone(),
        gave_up_tx,
    );
    supervision.start();

    let shared = Arc::new(Shared {
        health: RwLock::new(Status {
            network: config.node.network.as_str(),
            ..Status::default()
        }),
        clients: supervision.states(),
        supervision: tokio::sync::Mutex::new(supervision),
        paused: Mutex::new(None),
        ready_since: Mutex::new(None),
        prewarm: Mutex::new(None),
        snapshots: snapshot::Snapshots::new(&config),
        host,
        dns: Mutex::new(DnsState {
            name: config.dns.name.clone(),
            ..DnsState::default()
        }),
        metrics,
        stopping: AtomicBool::new(false),
        stop_requested: tokio::sync::Notify::new(),
        config: config.clone(),
    });

    let mut background = Vec::new();
    let router = api::router(shared.clone());
    background.push(tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "agent API stopped");
        }
    }));
    let interval = Duration::from_secs(config.readiness.check_interval_secs);
    let sh = shared.clone();
    background.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_starts = Vec::new();
        loop {
            tick.tick().await;
            let starts = sh.client_starts();
            let mut probe = checker.probe().await;
            // Down, or restarted since the last round: readiness is earned again from scratch.
            probe.clients_down = !sh.clients_running() || starts != last_starts;
            let mut health = checker.evaluate(probe, Instant::now());
            health.covered = starts.clone();
            last_starts = starts;
            *sh.health.write().unwrap_or_else(|p| p.into_inner()) = health;
            let status = sh.status();
            {
                let mut since = sh.ready_since.lock().unwrap_or_else(|p| p.into_inner());
                match (status.ready, *since) {
                    (true, None) => *since = Some(Instant::now()),
                    (false, Some(_)) => *since = None,
                    _ => {}
                }
            }
            sh.metrics.observe(&status);
        }
    }));

    if config.snapshot.prewarm {
        background.push(tokio::spawn(prewarm::run(shared.clone())));
    }
    if config.agent.cloudwatch_secs > 0 {
        background.push(tokio::spawn(cloudwatch::run(
            shared.clone(),
            Duration::from_secs(config.agent.cloudwatch_secs),
        )));
    }
    if config.snapshot.auto {
        background.push(tokio::spawn(snapshot::auto(shared.clone())));
    }
    let dns = dns::Registration::start(&config, &facts, &shared).await;
    let terminating = lifecycle::watch(&config, shared.host.instance_id.clone(), &mut background);
    tracing::info!(rpc = %endpoints.rpc, ws = %endpoints.ws, agent = %endpoints.agent, "agent started");
    Ok(AgentHandle {
        shared,
        endpoints,
        gave_up,
        background,
        dns,
        terminating,
        force: Arc::new(force_tx),
    })
}

impl AgentHandle {
    /// Where the node and the agent answer.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The current status, as `/status` shows it.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// A function that reads the current status, for display loops that outlive a borrow.
    pub fn status_source(&self) -> impl Fn() -> Status + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.status()
    }

    /// A handle that cuts the coming graceful stop short.
    pub fn force_stop(&self) -> ForceStop {
        ForceStop(self.force.clone())
    }

    /// Runs until `shutdown` resolves or a client gives up, then stops everything in order.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Exit {
        tokio::pin!(shutdown);
        let terminating = async {
            match self.terminating.take() {
                Some(rx) => rx.await.ok(),
                None => std::future::pending().await,
            }
        };
        let mut termination = None;
        tokio::select! {
            _ = &mut shutdown => tracing::info!("shutdown requested"),
            _ = self.gave_up.recv() => tracing::error!("a client gave up; stopping the node"),
            Some(t) = terminating => {
                tracing::warn!("the Auto Scaling group is terminating this instance: stopping gracefully");
                termination = Some(t);
            }
        }
        self.shared.stopping.store(true, Ordering::Relaxed);
        // A snapshot in progress gives up waiting on EBS and leaves its clients down for the stop below.
        self.shared.stop_requested.notify_waiters();
        // Out of DNS first, so that callers move to another node before the clients go down.
        if let Some(dns) = self.dns.take() {
            dns.stop(&self.shared).await;
        }
        let mut exit = Exit::Stopped;
        // A snapshot in progress holds the lock: its clients come back first, then go down for good.
        if let Some(Ended::GaveUp {
            name,
            crashes,
            window,
            last,
        }) = self.shared.supervision.lock().await.stop().await
        {
            // The one line the stack's ClientGaveUp metric filter selects ({ $.event = "client_gave_up" },
            // dimension Stack = $.stack): keep these field names.
            tracing::error!(
                event = "client_gave_up",
                stack = self.shared.config.aws.stack_name.as_deref().unwrap_or(""),
                client = name,
                crashes,
                "a client kept crashing; the agent exits so that the orchestrator replaces the node"
            );
            exit = Exit::GaveUp {
                client: name,
                crashes,
                window_secs: window.as_secs(),
                last,
            };
        }
        for task in self.background {
            task.abort();
        }
        if let Some(t) = termination {
            // Let the group go on only now that the node is out of DNS and its clients are down; then stay
            // up (idle) until ECS stops the task, so that the daemon scheduler does not start the clients
            // again on an instance that is going away.
            t.complete().await;
            shutdown.await;
        }
        tracing::info!(?exit, "agent stopped");
        exit
    }
}
