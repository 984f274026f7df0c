//! `ethnode doctor` (also `ethnode deploy --check`): the account checked against the configured stack
//! before any change — VPC DNS, subnets' routes for p2p and for the monitor Lambda, the instance type in
//! the subnets' zones, the image and its architectures, the EBS storage quota, the snapshot. Exit 1 when
//! anything fails.

use super::Globals;
use super::stack::StackArgs;
use clap::Args;
use ethnode_aws::{Ec2, Ecr, Quotas, Ssm};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    stack: StackArgs,
}

impl DoctorArgs {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        let ctx = self.stack.ctx(g).await?;
        run(&ctx, self.json).await
    }
}

/// Runs the preflight for `ctx` and prints it; failure when a check failed.
pub(crate) async fn run(ctx: &super::stack::Ctx, json: bool) -> anyhow::Result<ExitCode> {
    // The stack's current snapshot, when the stack exists (a fresh account has no parameter yet).
    let current = ethnode_fleet::current_snapshot(&Ssm::new(&ctx.sdk), &ctx.stack)
        .await
        .ok()
        .flatten();
    let findings = ethnode_deploy::doctor(
        &ctx.config,
        &ctx.stack,
        &Ec2::new(&ctx.sdk),
        &Ecr::new(&ctx.sdk),
        &Quotas::new(&ctx.sdk),
        current,
    )
    .await?;
    let failed = findings.iter().filter(|f| !f.ok).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            println!(
                "{} {:<15} {}",
                if f.ok { "ok  " } else { "FAIL" },
                f.check,
                f.detail
            );
            if let Some(fix) = &f.fix {
                println!("     {:<15} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            if failed == 0 {
                format!(
                    "All {} checks pass for stack {}.",
                    findings.len(),
                    ctx.stack
                )
            } else {
                format!("{failed} of {} checks failed.", findings.len())
            }
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
