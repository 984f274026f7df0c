//! One module per subcommand, each an `Args` struct (its doc comments are the help) with `run`.

mod agent;
mod config;
mod cost;
mod deploy;
mod destroy;
mod doctor;
mod gateway;
mod image;
mod monitor;
mod prewarm;
mod snapshot;
mod stack;
mod status;
mod template;
mod up;

use clap::{Parser, Subcommand};
use ethnode_config::{Config, ConfigError};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for a configuration that cannot be used.
pub(crate) const EXIT_CONFIG: u8 = 2;
/// Exit code when a client crashed too often and the agent gave up.
pub(crate) const EXIT_GAVE_UP: u8 = 3;

/// Your own Ethereum node: a config file in, a supervised, honest node out.
#[derive(Debug, Parser)]
#[command(name = "ethnode", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Config file (default: $ETHNODE_CONFIG, else ./ethnode.toml if present, else built-in defaults).
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Log filter, e.g. `info` or `ethnode=debug,ethnode::client=warn` (default: $ETHNODE_LOG or info).
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node in the foreground: `--dev` for a local anvil chain, else the configured clients.
    Up(up::UpArgs),
    /// Run the node agent (the service entry point on an instance or in a container).
    Agent(agent::AgentArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Create or update the AWS stack through a change set, then follow it live.
    Deploy(deploy::DeployArgs),
    /// Check the account against the configured stack before any change: VPC DNS, subnets, instance
    /// type, image architectures, snapshot; each failure with its fix.
    Doctor(doctor::DoctorArgs),
    /// Update the existing AWS stack (like deploy, but never creates one).
    Update(deploy::DeployArgs),
    /// Stack state, outputs, instances and each node's readiness.
    Status(status::StatusArgs),
    /// Snapshot the chain volumes, then delete the stack.
    Destroy(destroy::DestroyArgs),
    /// Print the CloudFormation template (or, with --parameters, its parameters file).
    Template(template::TemplateArgs),
    /// Build or push the node image.
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// Monthly cost of the configured stack, next to a hosted RPC plan.
    Cost(cost::CostArgs),
    /// Chain-volume snapshots: create (consistent, via the agent), list, promote, prune.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Read every block of a file, device or directory once (pre-warm a restored volume) and report MB/s.
    Prewarm(prewarm::PrewarmArgs),
    /// How many blocks our nodes lag behind reference providers: daemon, --once, report, lambda.
    Monitor(monitor::MonitorArgs),
    /// The private JSON-RPC endpoint in front of the nodes: keys, method policy, head-aware routing.
    Gateway(gateway::GatewayArgs),
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        let globals = Globals {
            config: self.config,
            log: self.log,
        };
        match self.command {
            Command::Up(args) => args.run(&globals).await,
            Command::Agent(args) => args.run(&globals).await,
            Command::Config(cmd) => cmd.run(&globals),
            Command::Deploy(args) => args.run(&globals, false).await,
            Command::Update(args) => args.run(&globals, true).await,
            Command::Doctor(args) => args.run(&globals).await,
            Command::Status(args) => args.run(&globals).await,
            Command::Destroy(args) => args.run(&globals).await,
            Command::Template(args) => args.run(&globals),
            Command::Image(cmd) => cmd.run(&globals).await,
            Command::Cost(args) => args.run(&globals),
            Command::Snapshot(cmd) => cmd.run(&globals).await,
            Command::Prewarm(args) => args.run(&globals),
            Command::Monitor(args) => args.run(&globals).await,
            Command::Gateway(args) => args.run(&globals).await,
        }
    }
}

/// Options every subcommand sees.
#[derive(Debug)]
pub(crate) struct Globals {
    config: Option<PathBuf>,
    log: Option<String>,
}

impl Globals {
    /// Loads, overrides from the environment and validates the config.
    pub(crate) fn load_config(&self) -> Result<(Config, ethnode_config::Source), ConfigError> {
        Config::load(self.config.as_deref(), std::env::vars())
    }

    /// Installs the log subscriber: `--log`, else `$ETHNODE_LOG`, else `default`.
    pub(crate) fn init_logs(&self, default: &str) {
        let filter = self
            .log
            .clone()
            .or_else(|| std::env::var("ETHNODE_LOG").ok())
            .unwrap_or_else(|| default.to_owned());
        let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
            eprintln!("warning: bad log filter `{filter}` ({e}); using `{default}`");
            tracing_subscriber::EnvFilter::new(default)
        });
        // ETHNODE_LOG_FORMAT=json (set by the stack): one JSON object a line with the event's fields at the
        // top level, so CloudWatch Logs metric filters can select them ($.event, $.stack).
        if std::env::var("ETHNODE_LOG_FORMAT").is_ok_and(|f| f == "json") {
            let _ = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        } else {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
        }
    }
}

/// Prints a config error and gives its exit code.
pub(crate) fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// SIGTERM and SIGINT, caught from the moment this is made: make it before anything is started, so that
/// a signal that arrives while the clients start is not lost (and, as PID 1 in a container, not ignored).
pub(crate) struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// The next SIGTERM or SIGINT.
    pub(crate) async fn next(&mut self) {
        match (&mut self.term, &mut self.int) {
            (Some(term), Some(int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without signal handlers Ctrl-C still works through tokio's portable handler.
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }

    /// Runs `agent` until the first signal; a second one while it stops kills the clients at once.
    pub(crate) async fn run_agent(
        mut self,
        agent: ethnode_agent::AgentHandle,
    ) -> ethnode_agent::Exit {
        let force = agent.force_stop();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            self.next().await;
            let _ = first_tx.send(());
            self.next().await;
            eprintln!("second signal: killing the clients now");
            force.force();
        });
        agent
            .run_until(async {
                let _ = first_rx.await;
            })
            .await
    }
}

/// Maps how the agent ended to the process exit code.
pub(crate) fn exit_code(exit: &ethnode_agent::Exit) -> ExitCode {
    match exit {
        ethnode_agent::Exit::Stopped => ExitCode::SUCCESS,
        ethnode_agent::Exit::GaveUp {
            client,
            crashes,
            window_secs,
            last,
        } => {
            eprintln!(
                "error: {client} crashed {crashes} times within {window_secs}s (last: {last}); gave up. Check its log lines above."
            );
            ExitCode::from(EXIT_GAVE_UP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn empty_up_parses_to_defaults() {
        let cli = Cli::try_parse_from(["ethnode", "up"]).unwrap();
        match cli.command {
            Command::Up(a) => {
                assert!(!a.dev);
                assert_eq!(a.data_dir, None);
            }
            other => panic!("parsed to {other:?}"),
        }
    }
}
