//! `ethnode up`: a node in the foreground with its URLs and a live status line; Ctrl-C stops it cleanly.

use super::{Globals, Signals, config_failure, exit_code};
use clap::Args;
use ethnode_config::{ConsensusClient, ExecutionClient, Network};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Where the dev chain lives unless `--data-dir` says otherwise.
const DEV_DATA_DIR: &str = ".ethnode-dev";

/// Where scripts/dev.sh installs anvil when it is not on PATH.
const LOCAL_ANVIL: &str = ".tools/node_modules/.bin/anvil";

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Run the dev profile: anvil, a real local chain, with a block every few seconds.
    #[arg(long)]
    pub(crate) dev: bool,

    /// Data directory (default with --dev: ./.ethnode-dev; else node.data_dir).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

impl UpArgs {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let signals = Signals::install();
        // Client chatter stays out of the way of the status line; --log / ETHNODE_LOG bring it back.
        g.init_logs("warn,ethnode=info,ethnode::client=warn");
        let (mut config, _) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
        if self.dev {
            let was_dev = config.node.network == Network::Dev;
            config.node.network = Network::Dev;
            config.execution.client = Some(ExecutionClient::Anvil);
            config.consensus.client = Some(ConsensusClient::None);
            config.node.data_dir = match self.data_dir {
                Some(d) => d,
                None if was_dev => config.node.data_dir,
                None => PathBuf::from(DEV_DATA_DIR),
            };
            if config.execution.binary.is_none()
                && which::which("anvil").is_err()
                && Path::new(LOCAL_ANVIL).is_file()
            {
                config.execution.binary = Some(PathBuf::from(LOCAL_ANVIL));
            }
            if let Err(e) = config.validate() {
                return Ok(config_failure(&e));
            }
        } else if let Some(d) = self.data_dir {
            config.node.data_dir = d;
        }

        let agent = ethnode_agent::start(config.clone()).await?;
        let ep = agent.endpoints().clone();
        let what = match config.node.network {
            Network::Dev => format!(
                "dev chain (anvil, chain id {}, a block every {}s)",
                config.dev.chain_id, config.dev.block_time_secs
            ),
            n => format!("{} node", n.as_str()),
        };
        println!("ethnode: {what}");
        println!("  data     {}", config.node.data_dir.display());
        println!("  RPC      {}", ep.rpc);
        println!("  WS       {}", ep.ws);
        println!("  health   {}/health/ready", ep.agent);
        println!("  status   {}/status", ep.agent);
        println!("  metrics  {}/metrics", ep.agent);
        println!("Ctrl-C to stop.");

        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        let status_line = {
            let bar = bar.clone();
            let shared = agent_status_source(&agent);
            tokio::spawn(async move {
                loop {
                    bar.set_message(shared());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let exit = signals.run_agent(agent).await;
        status_line.abort();
        bar.finish_and_clear();
        println!("stopped.");
        Ok(exit_code(&exit))
    }
}

/// A closure that renders the one-line status from the agent's current state.
fn agent_status_source(agent: &ethnode_agent::AgentHandle) -> impl Fn() -> String + Send + 'static {
    let agent = agent.status_source();
    move || render(&agent())
}

/// `ready · block 42 (1s old) · anvil pid 123 up 30s, 0 restarts`
pub(crate) fn render(s: &ethnode_agent::Status) -> String {
    let verdict = if s.ready {
        "ready".to_string()
    } else {
        let failing: Vec<&str> = s.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        if failing.is_empty() {
            "starting".into()
        } else {
            format!("not ready ({})", failing.join(", "))
        }
    };
    let head = s.head.as_ref().map_or("no head yet".into(), |h| {
        format!("block {} ({}s old)", h.number, h.age_secs)
    });
    let clients: Vec<String> = s
        .clients
        .iter()
        .map(|c| match (c.pid, c.uptime_secs) {
            (Some(pid), Some(up)) => {
                format!("{} pid {pid} up {up}s, {} restarts", c.name, c.restarts)
            }
            _ => format!("{} down, {} restarts", c.name, c.restarts),
        })
        .collect();
    format!(
        "{verdict} · {head} · {} · {}",
        s.sync.stage,
        clients.join(" · ")
    )
}
