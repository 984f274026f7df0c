//! `ethnode agent`: the service entry point. Supervises the clients until SIGTERM.

use super::{Globals, Signals, config_failure, exit_code};
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Print what would run (host facts, each client's command line, endpoints) as JSON, and exit.
    #[arg(long)]
    dry_run: bool,
}

impl AgentArgs {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        // Before anything else: a SIGTERM while the clients start must still stop them gracefully.
        let signals = Signals::install();
        g.init_logs("info");
        let (config, _) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
        if self.dry_run {
            let (facts, host) = ethnode_agent::resolve_host(&config).await;
            let plan = ethnode_clients::plan(&config, &facts);
            let clients: Vec<_> = plan
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "name": c.name,
                        "role": c.role.as_str(),
                        "program": c.program,
                        // Checkpoint URLs may carry an API key.
                        "args": c.args.iter().map(|a| ethnode_config::redact_urls_in(a)).collect::<Vec<_>>(),
                        "data_dir": c.data_dir,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "host": host,
                "execution_mode": config.execution.mode.as_str(),
                "checkpoint_sync_urls": ethnode_clients::checkpoint_urls(&config)
                    .iter()
                    .map(|u| ethnode_config::redact_url(u))
                    .collect::<Vec<_>>(),
                "clients": clients,
                "endpoints": ethnode_agent::endpoints(&config),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(ExitCode::SUCCESS);
        }
        let agent = ethnode_agent::start(config).await?;
        let exit = signals.run_agent(agent).await;
        Ok(exit_code(&exit))
    }
}
