//! `ethnode config check`: the resolved configuration, or every problem with its key and fix.

use super::{Globals, config_failure};
use clap::Subcommand;
use ethnode_config::Source;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Load ethnode.toml and ETHNODE_* overrides, validate, and print the result with every default.
    Check {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
        /// Print agent.admin_token and the URLs' paths and queries (API keys) as they are.
        #[arg(long)]
        show_secrets: bool,
    },
}

impl ConfigCmd {
    pub(crate) fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let ConfigCmd::Check { json, show_secrets } = self;
        let (mut config, source) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
        if !show_secrets {
            redact(&mut config);
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&config)?);
        } else {
            match source {
                Source::Defaults => {
                    println!("# no config file: built-in defaults plus ETHNODE_* overrides")
                }
                Source::File(p) => println!("# {} plus ETHNODE_* overrides", p.display()),
            }
            print!("{}", config.to_toml());
        }
        eprintln!("config ok");
        Ok(ExitCode::SUCCESS)
    }
}

/// The config as it may be shown: the admin token hidden, URLs cut to scheme://host (their paths and
/// queries are where providers put API keys). `${VAR}` templates are shown as written: they hold no key.
fn redact(c: &mut ethnode_config::Config) {
    let url = |u: &str| {
        if u.contains("${") {
            u.to_owned()
        } else {
            ethnode_config::redact_url(u)
        }
    };
    if c.agent.admin_token.is_some() {
        c.agent.admin_token = Some("<hidden: --show-secrets shows it>".into());
    }
    c.readiness.reference_rpc = c.readiness.reference_rpc.as_deref().map(url);
    for list in [
        &mut c.monitor.references,
        &mut c.monitor.nodes,
        &mut c.consensus.checkpoint_sync_urls,
    ] {
        for u in list.iter_mut() {
            *u = url(u);
        }
    }
}
