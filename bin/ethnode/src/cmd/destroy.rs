//! `ethnode destroy`: final snapshots of the chain volumes, then the stack is deleted.
//!
//! Chain volumes go with their instances (DeleteOnTermination), so the chain data is kept as a tagged
//! snapshot per volume: cheaper than a retained volume ($0.05 vs $0.08 per GB-month, and only used
//! blocks), and exactly what `deploy.chain_snapshot_id` takes to bring the node back without a re-sync.

use super::Globals;
use super::stack::{StackArgs, confirm, follow, print_failures, seen_events};
use clap::Args;
use ethnode_aws::{Cfn, Ec2};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct DestroyArgs {
    /// Delete without asking.
    #[arg(long, short = 'y')]
    yes: bool,

    /// Do not snapshot the chain volumes first (the chain data is lost).
    #[arg(long)]
    no_final_snapshot: bool,

    #[command(flatten)]
    stack: StackArgs,
}

impl DestroyArgs {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        let ctx = self.stack.ctx(g).await?;
        let cfn = Cfn::new(&ctx.sdk);
        let stack = &ctx.stack;
        let Some(info) = cfn.describe(stack).await? else {
            println!("No stack {stack} in this region: nothing to destroy.");
            return Ok(ExitCode::SUCCESS);
        };
        let ec2 = Ec2::new(&ctx.sdk);
        let volumes: Vec<_> = ec2
            .volumes_by_tag("ethnode:stack", stack)
            .await?
            .into_iter()
            .filter(|v| v.device.as_deref() == Some("/dev/sdh"))
            .collect();
        let keep = if self.no_final_snapshot {
            "the chain data is NOT kept (--no-final-snapshot)".to_string()
        } else {
            format!(
                "each of its {} chain volume(s) is snapshotted first",
                volumes.len()
            )
        };
        println!("Destroying stack {stack} ({}): {keep}.", info.status);
        if !confirm(
            &format!("Delete stack {stack} and all its resources?"),
            self.yes,
        )? {
            println!("Not destroyed.");
            return Ok(ExitCode::SUCCESS);
        }

        if !self.no_final_snapshot {
            let network = info.parameter("Network").unwrap_or("unknown").to_owned();
            for v in &volumes {
                let tags = vec![
                    ("ethnode:stack".to_string(), stack.clone()),
                    ("ethnode:network".to_string(), network.clone()),
                    ("ethnode:reason".to_string(), "final".to_string()),
                    ("ethnode:volume".to_string(), v.id.clone()),
                    ("Name".to_string(), format!("{stack} final")),
                ];
                let snap = ec2
                    .create_snapshot(
                        &v.id,
                        &format!("ethnode {stack}: final snapshot before destroy"),
                        &tags,
                    )
                    .await?;
                println!("  snapshot {snap} of {} ({} GiB) started", v.id, v.size_gib);
            }
            if !volumes.is_empty() {
                println!(
                    "  The snapshots finish in the background (the volume may go away; EBS keeps what it has read).\n  Bring the node back with deploy.chain_snapshot_id = \"<snapshot id>\" and `ethnode deploy`.\n  Taken from running nodes, they are crash-consistent (like a power cut), not quiesced."
                );
            }
        }

        // Records of nodes that died without a graceful stop would make the zone's deletion fail
        // (HostedZoneNotEmpty) and the stack end DELETE_FAILED: empty the zone first, and once more if
        // a node still registered while the stack was going away.
        let dns = ethnode_aws::Dns::new(&ctx.sdk);
        let zone = info.output("HostedZoneId").map(str::to_owned);
        for attempt in 1..=2 {
            if let Some(zone) = &zone {
                let n = dns.purge_zone(zone).await?;
                if n > 0 {
                    println!("  removed {n} record(s) from hosted zone {zone}");
                }
            }
            let seen = seen_events(&cfn, stack).await;
            cfn.delete_stack(stack).await?;
            let outcome = follow(&cfn, stack, 0, seen, &self.stack).await?;
            if outcome.succeeded() {
                break;
            }
            if attempt == 2 || zone.is_none() {
                print_failures(&outcome);
                return Ok(ExitCode::FAILURE);
            }
            println!("  deletion failed; emptying the zone again and retrying once");
        }
        println!("Stack {stack} deleted.");
        Ok(ExitCode::SUCCESS)
    }
}
