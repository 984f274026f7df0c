//! `ethnode cost`: the configured stack's monthly cost from the price table in the repo.

use super::{Globals, config_failure};
use clap::Args;
use ethnode_deploy::{PRICES, PriceTable, estimate};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct CostArgs {
    /// Price table to use instead of the built-in one (same format as deploy/prices.toml).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,

    /// Request volume to price the hosted RPC alternative at (default: the table's).
    #[arg(long, value_name = "N")]
    requests_per_second: Option<f64>,

    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl CostArgs {
    pub(crate) fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let (config, _) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
        let text = match &self.prices {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read price table {}: {e}", p.display()))?,
            None => PRICES.to_owned(),
        };
        let table = PriceTable::parse(&text).map_err(anyhow::Error::msg)?;
        let report =
            estimate(&config, &table, self.requests_per_second).map_err(anyhow::Error::msg)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "Monthly cost of stack {} ({}):",
            ethnode_deploy::stack_name(&config),
            report.prices
        );
        for l in &report.lines {
            println!("  {:<24} {:>10.2} USD   {}", l.item, l.usd_month, l.detail);
        }
        println!("  {:<24} {:>10.2} USD", "TOTAL", report.total_usd_month);
        let n = &report.needs;
        println!(
            "\n{} needs >= {} GiB of memory (deploy.instance_type {}) and gets a {} GiB chain volume.",
            n.pair, n.memory_gib, config.deploy.instance_type, n.volume_gib
        );
        println!(
            "\nHosted RPC at the same volume ({:.1} M requests/month): {:.2} USD/month.",
            report.hosted_requests_month / 1e6,
            report.hosted_usd_month
        );
        println!(
            "The own node's cost does not grow with requests; the hosted plan's does, and it is not under your control."
        );
        Ok(ExitCode::SUCCESS)
    }
}
