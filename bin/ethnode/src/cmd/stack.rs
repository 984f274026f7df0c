//! What the stack commands share: the AWS option group, loading config + SDK, confirmation, and
//! following stack events live.

use super::Globals;
use clap::Args;
use ethnode_aws::{Cfn, StackEvent};
use ethnode_config::Config;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Options every stack command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct StackArgs {
    /// Stack name (default: aws.stack_name, else ethnode-<network>).
    #[arg(long)]
    pub(crate) stack: Option<String>,

    /// Seconds between polls of CloudFormation while following a change.
    #[arg(long, default_value_t = 3, hide = true)]
    pub(crate) poll_secs: u64,

    /// Give up following after this many minutes (the change goes on in AWS).
    #[arg(long, default_value_t = 90)]
    pub(crate) max_wait_mins: u64,
}

/// A loaded config, its stack name and the AWS SDK config.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) stack: String,
    pub(crate) sdk: ethnode_aws::SdkConfig,
}

impl StackArgs {
    /// Loads the config and the SDK config. A config error propagates as [`ethnode_config::ConfigError`],
    /// which `main` reports with exit code 2.
    pub(crate) async fn ctx(&self, g: &Globals) -> Result<Ctx, ethnode_config::ConfigError> {
        let (config, _) = g.load_config()?;
        let stack = self
            .stack
            .clone()
            .unwrap_or_else(|| ethnode_deploy::stack_name(&config));
        let sdk = ethnode_aws::sdk_config(config.aws.region.as_deref()).await;
        Ok(Ctx { config, stack, sdk })
    }
}

/// Asks `question` on the terminal; without one, refuses unless `yes`.
pub(crate) fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} — no terminal to ask; pass --yes to proceed without asking");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// How a followed operation ended.
pub(crate) struct Outcome {
    /// Final stack status (`DELETE_COMPLETE` when the stack is gone).
    pub(crate) status: String,
    /// Events that failed, oldest first.
    pub(crate) failures: Vec<StackEvent>,
}

impl Outcome {
    pub(crate) fn succeeded(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
        )
    }
}

/// Event ids already there, so that following prints only what this operation causes.
pub(crate) async fn seen_events(cfn: &Cfn, stack: &str) -> HashSet<String> {
    cfn.events(stack)
        .await
        .map(|evs| evs.into_iter().map(|e| e.id).collect())
        .unwrap_or_default()
}

/// Prints new stack events as they come, with a progress bar over `expected` resources, until the
/// stack reaches a terminal state (or disappears, for a delete).
pub(crate) async fn follow(
    cfn: &Cfn,
    stack: &str,
    expected: usize,
    mut seen: HashSet<String>,
    args: &StackArgs,
) -> anyhow::Result<Outcome> {
    let bar = ProgressBar::new(expected.max(1) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} resources  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let info = cfn.describe(stack).await?;
        // Events of a deleted stack are no longer listed by name: a missing stack ends a delete.
        if let Ok(mut events) = cfn.events(stack).await {
            events.reverse();
            for e in events.into_iter().filter(|e| seen.insert(e.id.clone())) {
                let line = format!(
                    "{}  {:<28} {:<36} {}",
                    e.time.get(11..19).unwrap_or(&e.time),
                    e.status,
                    e.logical_id,
                    e.reason.as_deref().unwrap_or("")
                );
                bar.println(line.trim_end());
                if e.status.ends_with("_FAILED") {
                    failures.push(e.clone());
                }
                if e.status.ends_with("_COMPLETE") && e.logical_id != stack {
                    done.insert(e.logical_id.clone());
                    bar.set_position(done.len().min(expected) as u64);
                }
            }
        }
        let status = info
            .as_ref()
            .map_or("DELETE_COMPLETE".to_string(), |i| i.status.clone());
        bar.set_message(status.clone());
        if !status.ends_with("_IN_PROGRESS") {
            bar.finish_and_clear();
            return Ok(Outcome { status, failures });
        }
        if start.elapsed() > Duration::from_secs(args.max_wait_mins * 60) {
            bar.finish_and_clear();
            anyhow::bail!(
                "stack {stack} still {status} after {} minutes; it goes on in AWS: `ethnode status` shows where it is",
                args.max_wait_mins
            );
        }
        tokio::time::sleep(Duration::from_secs(args.poll_secs)).await;
    }
}

/// Why an operation failed: the final status, then each failed resource with its reason.
pub(crate) fn failure_report(outcome: &Outcome) -> String {
    let mut out = format!("error: stack ended {}", outcome.status);
    for f in &outcome.failures {
        out.push_str(&format!(
            "\n  {} ({}): {}",
            f.logical_id,
            f.resource_type,
            f.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    out
}

/// Prints [`failure_report`] to stderr.
pub(crate) fn print_failures(outcome: &Outcome) {
    eprintln!("{}", failure_report(outcome));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, status: &str, reason: Option<&str>) -> StackEvent {
        StackEvent {
            id: id.into(),
            time: "2026-11-25T10:00:00Z".into(),
            logical_id: id.into(),
            resource_type: "AWS::EC2::LaunchTemplate".into(),
            status: status.into(),
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn a_failed_stack_names_each_failing_resource_and_its_reason() {
        let outcome = Outcome {
            status: "UPDATE_ROLLBACK_COMPLETE".into(),
            failures: vec![
                event(
                    "LaunchTemplate",
                    "UPDATE_FAILED",
                    Some("snapshot snap-1 does not exist"),
                ),
                event("AutoScalingGroup", "UPDATE_FAILED", None),
            ],
        };
        assert!(!outcome.succeeded());
        let text = failure_report(&outcome);
        assert_eq!(
            text,
            "error: stack ended UPDATE_ROLLBACK_COMPLETE\n  LaunchTemplate (AWS::EC2::LaunchTemplate): snapshot snap-1 does not exist\n  AutoScalingGroup (AWS::EC2::LaunchTemplate): no reason given"
        );
        for ok in ["CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"] {
            assert!(
                Outcome {
                    status: ok.into(),
                    failures: vec![]
                }
                .succeeded()
            );
        }
    }
}
