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
    },
}

impl ConfigCmd {
    pub(crate) fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let ConfigCmd::Check { json } = self;
        let (config, source) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
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
