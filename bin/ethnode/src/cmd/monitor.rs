//! `ethnode monitor`: how far behind our nodes are, every slot, as Prometheus/CloudWatch/JSONL; `--once
//! --json` for scripts; `report` for the chart; `lambda` (or a binary named `bootstrap`) on AWS Lambda.

use super::{Globals, Signals, config_failure};
use clap::{Args, Subcommand};
use ethnode_config::{Config, redact_url};
use ethnode_monitor::{Monitor, RoundResult, Sinks, render_chart, summarize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    #[command(subcommand)]
    cmd: Option<MonitorCmd>,
    /// One round, then exit.
    #[arg(long)]
    once: bool,
    /// Print each round as JSON (one object per line).
    #[arg(long)]
    json: bool,
    /// A node to watch (repeatable; added to monitor.nodes).
    #[arg(long = "node", value_name = "URL")]
    nodes: Vec<String>,
    /// A reference provider (repeatable; added to monitor.references; `${VAR}` expanded).
    #[arg(long = "reference", value_name = "URL")]
    references: Vec<String>,
    /// Stop after this many rounds.
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum MonitorCmd {
    /// Chart of blocks behind per node (PNG or SVG) and a summary table, from the JSONL series.
    Report(ReportArgs),
    /// Run as an AWS Lambda function (provided.al2023): one round per scheduled event, to CloudWatch.
    Lambda,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Period to report, e.g. 24h, 7d, 90m.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Chart file: .png or .svg.
    #[arg(long, default_value = "lag.png")]
    out: PathBuf,
    /// JSONL series (default: monitor.jsonl).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `24h` → seconds.
fn parse_period(s: &str) -> Result<u64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a period like 24h, 7d or 90m"))?;
    match unit {
        "s" => Ok(n),
        "m" => Ok(n * 60),
        "h" | "" => Ok(n * 3600),
        "d" => Ok(n * 86_400),
        _ => Err(format!("`{s}` is not a period like 24h, 7d or 90m")),
    }
}

/// Nodes and references with `${VAR}` expanded; nodes from DNS when none are given.
async fn endpoints(
    config: &Config,
    extra_nodes: &[String],
    extra_refs: &[String],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    // ${VAR}: the environment, else the stack's SecureStrings (aws.secrets_prefix; set in the Lambda).
    let expand = async |v: Vec<String>| {
        ethnode_fleet::expand_secrets(
            &v,
            config.aws.secrets_prefix.as_deref(),
            config.aws.region.as_deref(),
        )
        .await
    };
    let mut nodes = expand([config.monitor.nodes.clone(), extra_nodes.to_vec()].concat()).await?;
    let refs = expand([config.monitor.references.clone(), extra_refs.to_vec()].concat()).await?;
    if nodes.is_empty()
        && let Some(name) = &config.dns.name
    {
        nodes = dns_nodes(name, config.ports.http).await.map_err(|e| {
            anyhow::anyhow!("no nodes given and {e}; set monitor.nodes or pass --node")
        })?;
    }
    anyhow::ensure!(
        !nodes.is_empty(),
        "no nodes to watch: set monitor.nodes (or dns.name), or pass --node URL"
    );
    for u in nodes.iter().chain(&refs) {
        anyhow::ensure!(
            u.starts_with("http://") || u.starts_with("https://"),
            "`{}` is not an http(s) JSON-RPC URL",
            redact_url(u)
        );
    }
    Ok((nodes, refs))
}

/// Every address `name` resolves to, as node URLs (sorted).
pub(crate) async fn dns_nodes(name: &str, port: u16) -> Result<Vec<String>, String> {
    let addrs = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| format!("{name} does not resolve ({e})"))?;
    let mut nodes: Vec<String> = addrs.map(|a| format!("http://{a}/")).collect();
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// Before each round: when the nodes come from `dns.name`, resolve it again, so that a replaced node is
/// watched and a gone one is not counted unreachable for hours. A failed lookup keeps the last list.
async fn refresh_nodes(config: &Config, from_dns: bool, monitor: &mut Monitor) {
    let (true, Some(name)) = (from_dns, &config.dns.name) else {
        return;
    };
    match dns_nodes(name, config.ports.http).await {
        Ok(nodes) if !nodes.is_empty() => {
            if nodes != monitor.nodes() {
                tracing::info!(nodes = ?nodes.iter().map(|u| redact_url(u)).collect::<Vec<_>>(), "node list changed");
            }
            if let Err(e) = monitor.set_nodes(&nodes) {
                tracing::warn!("keeping the node list: {e}");
            }
        }
        Ok(_) => tracing::warn!("{name} resolves to nothing; keeping the last node list"),
        Err(e) => tracing::warn!("{e}; keeping the last node list"),
    }
}

async fn sinks_for(config: &Config) -> Sinks {
    let cloudwatch = if config.monitor.cloudwatch {
        let sdk = ethnode_aws::sdk_config(config.aws.region.as_deref()).await;
        let stack = ethnode_deploy::stack_name(config);
        Some((ethnode_aws::CloudWatch::new(&sdk), stack))
    } else {
        None
    };
    Sinks::new(config.monitor.jsonl.clone(), cloudwatch)
}

fn print_round(r: &RoundResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    let refs: Vec<String> = r
        .references
        .iter()
        .map(|x| match (&x.error, &x.excluded, x.head) {
            (Some(e), _, _) => format!("{} FAILED ({e})", x.url),
            (_, Some(why), _) => format!("{} excluded: {why}", x.url),
            (_, _, Some(h)) => format!("{} {h}", x.url),
            _ => x.url.clone(),
        })
        .collect();
    println!(
        "reference head {} [{}]",
        r.reference_head.map_or("-".into(), |h| h.to_string()),
        refs.join("; ")
    );
    for n in &r.nodes {
        println!(
            "  {:<32} head {:>10}  lag {:>4}  age {:>5}s  {:?}{}",
            n.url,
            n.head.map_or("-".into(), |h| h.to_string()),
            n.lag.map_or("-".into(), |l| l.to_string()),
            n.head_age_secs.map_or("-".into(), |a| a.to_string()),
            n.verdict,
            if n.alarm { "  ALARM" } else { "" }
        );
    }
}

impl MonitorArgs {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn,ethnode=info");
        let (mut config, _) = match g.load_config() {
            Ok(v) => v,
            Err(e) => return Ok(config_failure(&e)),
        };
        match self.cmd {
            Some(MonitorCmd::Report(r)) => return report(&config, r),
            Some(MonitorCmd::Lambda) => {
                config.monitor.cloudwatch = true;
                return lambda(config).await;
            }
            None => {}
        }
        let (nodes, refs) = endpoints(&config, &self.nodes, &self.references).await?;
        let from_dns = config.monitor.nodes.is_empty() && self.nodes.is_empty();
        let mut monitor =
            Monitor::new(config.monitor.clone(), &nodes, &refs).map_err(anyhow::Error::msg)?;
        let sinks = Arc::new(sinks_for(&config).await);
        if self.once {
            let r = monitor.round().await;
            sinks.record(&r).await;
            print_round(&r, self.json);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(addr) = config.monitor.listen {
            let s = sinks.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let s = s.clone();
                    async move { s.render() }
                }),
            );
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot serve metrics on {addr} ({e}); set monitor.listen (or ETHNODE_MONITOR_LISTEN) to a free address")
            })?;
            tracing::info!(%addr, "serving Prometheus metrics at /metrics");
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        tracing::info!(
            nodes = ?nodes.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            references = ?refs.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            interval_secs = config.monitor.interval_secs,
            "monitoring"
        );
        let mut tick = tokio::time::interval(Duration::from_secs(config.monitor.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut signals = Signals::install();
        let shutdown = signals.next();
        tokio::pin!(shutdown);
        let mut done = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut shutdown => break,
            }
            refresh_nodes(&config, from_dns, &mut monitor).await;
            let r = monitor.round().await;
            sinks.record(&r).await;
            print_round(&r, self.json);
            done += 1;
            if self.rounds.is_some_and(|n| done >= n) {
                break;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn report(config: &Config, a: ReportArgs) -> anyhow::Result<ExitCode> {
    let input = a
        .input
        .or_else(|| config.monitor.jsonl.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("no series to read: pass --input FILE or set monitor.jsonl")
        })?;
    let text = std::fs::read_to_string(&input)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", input.display()))?;
    let mut rounds = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: RoundResult = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{} line {}: not a monitor round ({e})",
                input.display(),
                i + 1
            )
        })?;
        rounds.push(r);
    }
    let period = parse_period(&a.since).map_err(anyhow::Error::msg)?;
    let last = rounds.iter().map(|r| r.ts).max().unwrap_or(0);
    let since = last.saturating_sub(period);
    render_chart(&rounds, since, &a.out).map_err(anyhow::Error::msg)?;
    let summary = summarize(&rounds, since);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{:<34} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>14}",
            "node", "rounds", "0", "1", "2-4", ">=5", "max lag", "worst streak"
        );
        for s in &summary {
            println!(
                "{:<34} {:>7} {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}% {:>8} {:>7} rounds ({}s)",
                s.node,
                s.rounds,
                s.at_0 * 100.0,
                s.at_1 * 100.0,
                s.at_2_4 * 100.0,
                s.at_5_plus * 100.0,
                s.max_lag,
                s.worst_streak_rounds,
                s.worst_streak_secs
            );
        }
        println!("chart: {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The Lambda runtime loop: one round per event.
async fn lambda(config: Config) -> anyhow::Result<ExitCode> {
    let (nodes, refs) = endpoints(&config, &[], &[]).await?;
    let from_dns = config.monitor.nodes.is_empty();
    let config = Arc::new(config);
    let monitor = Arc::new(tokio::sync::Mutex::new(
        Monitor::new(config.monitor.clone(), &nodes, &refs).map_err(anyhow::Error::msg)?,
    ));
    let sinks = Arc::new(sinks_for(&config).await);
    let handler = lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (monitor, sinks, config) = (monitor.clone(), sinks.clone(), config.clone());
            async move {
                // A warm Lambda keeps its monitor between invocations: look the nodes up again each time.
                refresh_nodes(&config, from_dns, &mut *monitor.lock().await).await;
                ethnode_monitor::handle_scheduled_event(&monitor, &sinks, &event.payload)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    );
    lambda_runtime::run(handler)
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn periods() {
        assert_eq!(super::parse_period("24h"), Ok(86_400));
        assert_eq!(super::parse_period("7d"), Ok(604_800));
        assert_eq!(super::parse_period("90m"), Ok(5_400));
        assert!(super::parse_period("soon").is_err());
    }
}
