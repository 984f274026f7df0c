//! `ethnode status`: the stack's state and outputs, its instances, and each node's readiness.

use super::Globals;
use super::stack::StackArgs;
use clap::Args;
use ethnode_aws::{Cfn, Ec2};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,

    /// Do not ask each node's agent for its readiness (e.g. from outside the VPC).
    #[arg(long)]
    no_probe: bool,

    #[command(flatten)]
    stack: StackArgs,
}

/// A node's readiness as its agent reports it, or why it could not be asked.
async fn readiness(http: &reqwest::Client, ip: &str) -> serde_json::Value {
    let url = format!("http://{ip}:{}/health/ready", ethnode_deploy::AGENT_PORT);
    match http.get(&url).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if body.get("checks").is_none() {
                return serde_json::json!({
                    "reachable": false,
                    "ready": null,
                    "why": format!("{url} answered HTTP {code}, not as an ethnode agent"),
                });
            }
            let failing: Vec<String> = body["checks"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c["ok"] == false)
                        .map(|c| {
                            format!(
                                "{}: {}",
                                c["name"].as_str().unwrap_or("?"),
                                c["detail"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({"reachable": true, "ready": code == 200, "failing": failing})
        }
        Err(e) => serde_json::json!({
            "reachable": false,
            "ready": null,
            "why": format!("{url} unreachable ({}): run from inside the VPC with the AccessSecurityGroup attached", e.without_url()),
        }),
    }
}

impl StatusArgs {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        let ctx = self.stack.ctx(g).await?;
        let cfn = Cfn::new(&ctx.sdk);
        let Some(stack) = cfn.describe(&ctx.stack).await? else {
            eprintln!(
                "No stack {} in this region; `ethnode deploy` creates it.",
                ctx.stack
            );
            return Ok(ExitCode::FAILURE);
        };
        let instances = Ec2::new(&ctx.sdk)
            .instances_by_tag("ethnode:stack", &ctx.stack)
            .await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let mut nodes = Vec::new();
        for i in &instances {
            let ready = match &i.private_ip {
                _ if self.no_probe => {
                    serde_json::json!({"reachable": null, "ready": null, "why": "not asked (--no-probe)"})
                }
                Some(ip) if i.state == "running" => readiness(&http, ip).await,
                _ => {
                    serde_json::json!({"reachable": false, "ready": null, "why": format!("instance {}", i.state)})
                }
            };
            nodes.push((i, ready));
        }
        // With a monitor configured: one round, the lag line per node.
        let lag = if ctx.config.monitor.references.is_empty() {
            None
        } else {
            let mut urls = ctx.config.monitor.nodes.clone();
            if urls.is_empty() && !self.no_probe {
                urls = instances
                    .iter()
                    .filter_map(|i| i.private_ip.as_ref())
                    .map(|ip| format!("http://{ip}:{}/", ctx.config.ports.http))
                    .collect();
            }
            let refs = ethnode_fleet::expand_secrets(
                &ctx.config.monitor.references,
                Some(
                    ctx.config
                        .aws
                        .secrets_prefix
                        .clone()
                        .unwrap_or_else(|| ethnode_fleet::secrets_prefix(&ctx.stack))
                        .as_str(),
                ),
                ctx.config.aws.region.as_deref(),
            )
            .await;
            match refs
                .map(|refs| ethnode_monitor::Monitor::new(ctx.config.monitor.clone(), &urls, &refs))
            {
                Ok(Ok(mut m)) if !urls.is_empty() => Some(m.round().await),
                Err(e) => {
                    eprintln!("warning: no lag line: {e}");
                    None
                }
                _ => None,
            }
        };
        if self.json {
            let out = serde_json::json!({
                "stack": stack,
                "nodes": nodes.iter().map(|(i, r)| serde_json::json!({"instance": i, "readiness": r})).collect::<Vec<_>>(),
                "lag": lag,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("Stack {}: {}", stack.name, stack.status);
        if let Some(r) = &stack.reason {
            println!("  reason: {r}");
        }
        for key in [
            "Network",
            "NodeCount",
            "InstanceType",
            "ChainSnapshotId",
            "DNSName",
        ] {
            if let Some(v) = stack.parameter(key) {
                println!("  {key:<18} {}", if v.is_empty() { "-" } else { v });
            }
        }
        println!("Outputs:");
        for o in &stack.outputs {
            println!(
                "  {:<20} {}{}",
                o.key,
                o.value,
                o.export
                    .as_ref()
                    .map(|e| format!("  (export {e})"))
                    .unwrap_or_default()
            );
        }
        println!("Nodes ({}):", nodes.len());
        for (i, r) in &nodes {
            let verdict = match (r["reachable"].as_bool(), r["ready"].as_bool()) {
                (Some(true), Some(true)) => "ready".to_string(),
                (Some(true), _) => format!(
                    "NOT READY: {}",
                    r["failing"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join("; "))
                        .unwrap_or_default()
                ),
                _ => r["why"].as_str().unwrap_or("unknown").to_string(),
            };
            println!(
                "  {} {:<8} {:<12} private {:<15} public {:<15} {verdict}",
                i.id,
                i.state,
                i.zone.as_deref().unwrap_or("-"),
                i.private_ip.as_deref().unwrap_or("-"),
                i.public_ip.as_deref().unwrap_or("-"),
            );
        }
        if let Some(round) = &lag {
            println!(
                "Lag (references' median head {}):",
                round.reference_head.map_or("-".into(), |h| h.to_string())
            );
            for n in &round.nodes {
                println!(
                    "  {:<32} head {:>10}  {:>4} blocks behind  {:?}",
                    n.url,
                    n.head.map_or("-".into(), |h| h.to_string()),
                    n.lag.map_or("-".into(), |l| l.to_string()),
                    n.verdict
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
