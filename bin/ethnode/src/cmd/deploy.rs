//! `ethnode deploy` / `ethnode update`: a change set, its summary, a confirmation, then the stack's
//! events live until it is done.

use super::stack::{StackArgs, confirm, follow, print_failures, seen_events};
use super::{EXIT_CONFIG, Globals};
use clap::Args;
use ethnode_aws::Cfn;
use ethnode_deploy::{Severity, StackParams, TEMPLATE, summarize};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Apply without asking.
    #[arg(long, short = 'y')]
    yes: bool,

    /// Only check the account against the stack (`ethnode doctor`); change nothing.
    #[arg(long)]
    check: bool,

    #[command(flatten)]
    stack: StackArgs,
}

impl DeployArgs {
    /// `update_only`: refuse to create a stack that does not exist (`ethnode update`).
    pub(crate) async fn run(self, g: &Globals, update_only: bool) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        let ctx = self.stack.ctx(g).await?;
        // Every parameter is checked before the first AWS call.
        if let Err(errors) = StackParams::from_config(&ctx.config, None) {
            eprintln!("error: the stack parameters are not valid:");
            for e in &errors {
                eprintln!("  - {e}");
            }
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        if self.check {
            return super::doctor::run(&ctx, false).await;
        }
        let cfn = Cfn::new(&ctx.sdk);
        let stack = &ctx.stack;
        let existing = cfn.describe(stack).await?;
        match &existing {
            None if update_only => {
                anyhow::bail!("stack {stack} does not exist; `ethnode deploy` creates it")
            }
            Some(s) if s.status.ends_with("_IN_PROGRESS") => anyhow::bail!(
                "stack {stack} is busy ({}); wait for it (`ethnode status`) and run again",
                s.status
            ),
            Some(s) if s.status == "ROLLBACK_COMPLETE" => anyhow::bail!(
                "stack {stack} failed to create and was rolled back; it cannot be updated: `ethnode destroy` it, then deploy again"
            ),
            _ => {}
        }
        // Keys of reference providers: SecureStrings the Lambda reads at run time, never stack parameters.
        let prefix = ethnode_fleet::secrets_prefix(stack);
        let stored = ethnode_fleet::store_secrets(
            &ethnode_aws::Ssm::new(&ctx.sdk),
            &prefix,
            &ctx.config.monitor.references,
        )
        .await?;
        for name in &stored {
            println!("Stored {name} (SecureString) from your environment.");
        }
        let current_snapshot = existing
            .as_ref()
            .and_then(|s| s.parameter("ChainSnapshotId"));
        let params = StackParams::from_config(&ctx.config, current_snapshot)
            .map_err(|e| anyhow::anyhow!("{}", e[0]))?;
        let create = existing.is_none();
        println!(
            "{} stack {stack} ({} nodes of {}, {} chain volume {} GiB{})",
            if create { "Creating" } else { "Updating" },
            params.get("NodeCount").unwrap_or("?"),
            params.get("InstanceType").unwrap_or("?"),
            params.get("VolumeType").unwrap_or("?"),
            params.get("VolumeSize").unwrap_or("?"),
            match params.get("ChainSnapshotId") {
                Some("") | None => ", fresh: full sync".to_string(),
                Some(s) => format!(" from {s}"),
            }
        );

        let name = format!(
            "ethnode-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        let id = cfn
            .create_change_set(stack, &name, Some(TEMPLATE), &params.pairs(), create)
            .await?;
        let info = cfn
            .wait_change_set(
                &id,
                Duration::from_secs(self.stack.poll_secs.max(1)),
                Duration::from_secs(600),
            )
            .await?;
        if info.status == "FAILED" {
            let reason = info.reason.clone().unwrap_or_default();
            if reason.contains("didn't contain changes") || reason.contains("No updates") {
                let _ = cfn.delete_change_set(&id).await;
                println!("No changes: stack {stack} is up to date.");
                return Ok(ExitCode::SUCCESS);
            }
            anyhow::bail!("CloudFormation refused the change set: {reason}");
        }

        let lines = summarize(&info.changes);
        println!("Changes ({}):", lines.len());
        for (severity, line) in &lines {
            let mark = match severity {
                Severity::Danger => "!!",
                Severity::Warn => " !",
                Severity::Info => "  ",
            };
            println!("{mark} {line}");
        }
        if lines.iter().any(|(s, _)| *s == Severity::Danger) {
            println!(
                "\n!! This change REPLACES resources that hold chain data or serve every node (marked !!)."
            );
        }
        if !confirm(
            &format!("Apply {} changes to {stack}?", lines.len()),
            self.yes,
        )? {
            let _ = cfn.delete_change_set(&id).await;
            println!("Not applied; the change set was deleted.");
            return Ok(ExitCode::SUCCESS);
        }

        let seen = seen_events(&cfn, stack).await;
        cfn.execute_change_set(&id).await?;
        let outcome = follow(&cfn, stack, info.changes.len(), seen, &self.stack).await?;
        if !outcome.succeeded() {
            print_failures(&outcome);
            return Ok(ExitCode::FAILURE);
        }
        println!("Stack {stack}: {}", outcome.status);
        if let Some(s) = cfn.describe(stack).await? {
            for o in &s.outputs {
                println!("  {:<20} {}", o.key, o.value);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
