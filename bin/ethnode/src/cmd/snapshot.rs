//! `ethnode snapshot create|list|promote|prune`: from a synced node to "every new node starts from a fresh
//! snapshot". `create` asks the node's agent (it stops the clients, snapshots, restarts them); the rest
//! are EC2 and SSM calls through `ethnode-fleet`. Every subcommand takes `--json`.

use super::Globals;
use super::stack::{StackArgs, confirm};
use clap::{Args, Subcommand};
use ethnode_aws::{Ec2, Ssm};
use ethnode_fleet::{inventory, prune_plan, snapshot_rows};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCmd {
    /// Ask the node's agent for a consistent snapshot (clients stopped for minutes), then follow it.
    Create(CreateArgs),
    /// The stack's snapshots: id, block, age, size, state, promoted, in use.
    List(ListArgs),
    /// Make new instances start from a snapshot (the stack's chain-snapshot SSM parameter).
    Promote(PromoteArgs),
    /// Delete old snapshots, never the promoted one nor one a volume was made from.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The agent to ask (default: this host's agent, http://127.0.0.1:<ports.agent>).
    #[arg(long, value_name = "URL")]
    agent: Option<String>,
    /// Snapshot even when the node is not ready (not synced, or behind).
    #[arg(long)]
    force: bool,
    /// Return once the snapshot has started instead of following it to `completed`.
    #[arg(long)]
    no_wait: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    /// Snapshot to promote.
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    id: Option<String>,
    /// Promote the newest completed snapshot of the stack.
    #[arg(long)]
    latest: bool,
    /// Also enable Fast Snapshot Restore in these availability zones (comma-separated). Costs about
    /// $0.75 per hour per zone while enabled (~$540/month).
    #[arg(long, value_delimiter = ',', value_name = "AZS")]
    fast_restore: Vec<String>,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Completed snapshots to keep, newest first (the promoted one and any in use are kept besides).
    #[arg(long)]
    keep: usize,
    /// Only say what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Delete without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stack: StackArgs,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

impl SnapshotCmd {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        match self {
            SnapshotCmd::Create(a) => a.run(g).await,
            SnapshotCmd::List(a) => a.run(g).await,
            SnapshotCmd::Promote(a) => a.run(g).await,
            SnapshotCmd::Prune(a) => a.run(g).await,
        }
    }
}

impl CreateArgs {
    async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let ctx = self.stack.ctx(g).await?;
        let agent = self
            .agent
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", ctx.config.ports.agent));
        // Stopping the clients, flushing and restarting them takes up to twice the grace period.
        let budget = Duration::from_secs(
            2 * 2 * ctx.config.agent.stop_grace_secs + ctx.config.snapshot.resume_timeout_secs + 60,
        );
        let http = reqwest::Client::builder().timeout(budget).build()?;
        if !self.json {
            eprintln!(
                "Asking {agent} for a snapshot: the clients stop, the snapshot starts, the clients restart."
            );
        }
        let mut req = http
            .post(format!("{}/snapshot", agent.trim_end_matches('/')))
            .json(&serde_json::json!({"force": self.force}));
        if let Some(token) = &ctx.config.agent.admin_token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the agent at {agent} ({}); run this on the node (e.g. in an SSM session) or pass --agent",
                e.without_url()
            )
        })?;
        let code = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !code.is_success() {
            anyhow::bail!(
                "the agent refused ({code}): {}",
                body["error"].as_str().unwrap_or("no reason given")
            );
        }
        let taken: ethnode_agent::SnapshotTaken = serde_json::from_value(body)?;
        if !self.json {
            println!(
                "Snapshot {} of {} started at block {} ({}); clients were down {:.1}s.",
                taken.snapshot_id,
                taken.volume_id,
                taken.block.map_or("?".into(), |b| b.to_string()),
                taken.block_hash.as_deref().unwrap_or("?"),
                taken.downtime_secs
            );
        }
        let mut state = "pending".to_string();
        if !self.no_wait {
            let ec2 = Ec2::new(&ctx.sdk);
            state = follow_snapshot(&ec2, &taken.snapshot_id, self.json).await?;
        }
        if self.json {
            let mut v = serde_json::to_value(&taken)?;
            v["state"] = state.clone().into();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!(
                "Snapshot {}: {state}. `ethnode snapshot promote {}` makes new nodes start from it.",
                taken.snapshot_id, taken.snapshot_id
            );
        }
        Ok(if state == "error" {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Follows a snapshot to `completed` (or `error`) with a progress bar from EBS's own progress figure.
async fn follow_snapshot(ec2: &Ec2, id: &str, quiet: bool) -> anyhow::Result<String> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(100)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}%  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    loop {
        let Some(s) = ec2.snapshot(id).await? else {
            bar.finish_and_clear();
            anyhow::bail!("snapshot {id} disappeared");
        };
        let pct = s
            .progress
            .as_deref()
            .and_then(|p| p.trim_end_matches('%').parse::<u64>().ok())
            .unwrap_or(0);
        bar.set_position(pct);
        bar.set_message(s.state.clone());
        if s.state == "completed" || s.state == "error" {
            bar.finish_and_clear();
            return Ok(s.state);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

impl ListArgs {
    async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let ctx = self.stack.ctx(g).await?;
        let (ec2, ssm) = (Ec2::new(&ctx.sdk), Ssm::new(&ctx.sdk));
        let (snapshots, promoted, in_use) = inventory(&ec2, &ssm, &ctx.stack).await?;
        let rows = snapshot_rows(&snapshots, promoted.as_deref(), &in_use, now());
        if self.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<24} {:>10} {:>6} {:>8} {:<10} {:<8} {:<6} reason",
            "snapshot", "block", "age", "size", "state", "promoted", "in use"
        );
        for r in &rows {
            println!(
                "{:<24} {:>10} {:>6} {:>6}Gi {:<10} {:<8} {:<6} {}",
                r.id,
                r.block.map_or("-".into(), |b| b.to_string()),
                age(r.age_secs),
                r.size_gib,
                format!(
                    "{}{}",
                    r.state,
                    r.progress
                        .as_deref()
                        .filter(|_| r.state == "pending")
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default()
                ),
                if r.promoted { "yes" } else { "" },
                if r.in_use { "yes" } else { "" },
                r.reason.as_deref().unwrap_or("")
            );
        }
        if rows.is_empty() {
            println!("(no snapshots tagged ethnode:stack={})", ctx.stack);
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl PromoteArgs {
    async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let ctx = self.stack.ctx(g).await?;
        let stack = &ctx.stack;
        let (ec2, ssm) = (Ec2::new(&ctx.sdk), Ssm::new(&ctx.sdk));
        let id = match &self.id {
            Some(id) => id.clone(),
            None => ec2
                .snapshots_by_tag("ethnode:stack", stack)
                .await?
                .into_iter()
                .find(|s| s.state == "completed")
                .map(|s| s.id)
                .ok_or_else(|| anyhow::anyhow!("stack {stack} has no completed snapshot; `ethnode snapshot create` takes one"))?,
        };
        let current = ethnode_fleet::current_snapshot(&ssm, stack).await?;
        if current.as_deref() == Some(id.as_str()) {
            if !self.json {
                println!("{id} is already the current snapshot of {stack}.");
            }
        } else {
            if !self.json {
                println!(
                    "Promoting {id} in stack {stack} (was {}): new instances create their chain volume from it; \
                     running instances are not touched.",
                    current.as_deref().unwrap_or("none")
                );
            }
            if !confirm(&format!("Promote {id}?"), self.yes)? {
                println!("Not promoted.");
                return Ok(ExitCode::SUCCESS);
            }
            ethnode_fleet::promote(&ec2, &ssm, stack, &id).await?;
        }
        if !self.fast_restore.is_empty() {
            println!(
                "Enabling Fast Snapshot Restore for {id} in {}: ~$0.75/hour per zone while enabled (~${:.0}/month), \
                 about 60 minutes per TiB to become active, and volumes created from it draw on a credit bucket.",
                self.fast_restore.join(", "),
                0.75 * 730.0 * self.fast_restore.len() as f64
            );
            ec2.enable_fast_restore(&id, &self.fast_restore).await?;
        }
        if self.json {
            println!(
                "{}",
                serde_json::json!({"stack": stack, "promoted": id, "previous": current})
            );
        } else {
            println!("Stack {stack}: new nodes start from {id}.");
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl PruneArgs {
    async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let ctx = self.stack.ctx(g).await?;
        let (ec2, ssm) = (Ec2::new(&ctx.sdk), Ssm::new(&ctx.sdk));
        let (snapshots, promoted, in_use) = inventory(&ec2, &ssm, &ctx.stack).await?;
        let doomed = prune_plan(&snapshots, self.keep, promoted.as_deref(), &in_use);
        let kept: Vec<&str> = snapshots
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| !doomed.iter().any(|d| d == id))
            .collect();
        if !self.json {
            println!(
                "Keeping {} (newest {}, promoted {}, in use {}); deleting {}.",
                kept.len(),
                self.keep,
                promoted.as_deref().unwrap_or("none"),
                in_use.len(),
                if doomed.is_empty() {
                    "none".to_string()
                } else {
                    doomed.join(", ")
                }
            );
        }
        let mut deleted = Vec::new();
        if !self.dry_run
            && !doomed.is_empty()
            && confirm(&format!("Delete {} snapshots?", doomed.len()), self.yes)?
        {
            for id in &doomed {
                ec2.delete_snapshot(id).await?;
                deleted.push(id.clone());
            }
        }
        if self.json {
            println!(
                "{}",
                serde_json::json!({"kept": kept, "deleted": deleted, "would_delete": doomed})
            );
        } else if !deleted.is_empty() {
            println!("Deleted {}.", deleted.join(", "));
        }
        Ok(ExitCode::SUCCESS)
    }
}
