//! `ethnode template`: the embedded CloudFormation template, or the parameters file ethnode would use,
//! for people who deploy with the aws CLI.

use super::{EXIT_CONFIG, Globals, config_failure};
use clap::Args;
use ethnode_deploy::{StackParams, TEMPLATE};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct TemplateArgs {
    /// Print the parameters file (`aws cloudformation create-stack --parameters file://…`) instead.
    #[arg(long)]
    parameters: bool,
}

impl TemplateArgs {
    pub(crate) fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        if !self.parameters {
            print!("{TEMPLATE}");
            return Ok(ExitCode::SUCCESS);
        }
        let (config, _) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
        match StackParams::from_config(&config, None) {
            Ok(p) => {
                println!("{}", p.to_cli_json());
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("error: the stack parameters are not valid:");
                for e in &errors {
                    eprintln!("  - {e}");
                }
                Ok(ExitCode::from(EXIT_CONFIG))
            }
        }
    }
}
