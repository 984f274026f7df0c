//! `ethnode gateway`: the private JSON-RPC front door, run from flags alone.

use super::Globals;
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Address to serve JSON-RPC on.
    #[arg(long, default_value = "127.0.0.1:8547")]
    listen: SocketAddr,
    /// A node's JSON-RPC URL (repeat for each node).
    #[arg(long = "upstream", required = true)]
    upstreams: Vec<String>,
    /// A provider used only when no node is at head (repeatable; asked for its head once a slot).
    #[arg(long = "fallback")]
    fallbacks: Vec<String>,
    /// An API key callers must send (`Authorization: Bearer KEY` or `/v1/KEY`); repeatable. Prefer
    /// ETHNODE_GATEWAY_KEYS (comma-separated): a flag's value is visible in the process list. None: no key
    /// needed (the security group is then the only gate).
    #[arg(
        long = "key",
        env = "ETHNODE_GATEWAY_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    keys: Vec<String>,
    /// An upstream more than this many blocks behind the served tip gets no traffic.
    #[arg(long, default_value_t = 2)]
    max_lag_blocks: u64,
    /// Milliseconds between head polls of each node.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Per-attempt timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Longest batch.
    #[arg(long, default_value_t = 100)]
    max_batch: usize,
    /// Name the node that answered in an `x-ethnode-upstream` header (debugging).
    #[arg(long)]
    debug_header: bool,
}

impl GatewayArgs {
    pub(crate) async fn run(mut self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("info");
        // Keys are kept as hashes only; the plain ones go now.
        let keys = std::mem::take(&mut self.keys);
        if keys.iter().any(|k| k.trim().is_empty()) {
            anyhow::bail!(
                "an empty API key was given (--key \"\" or a stray comma in ETHNODE_GATEWAY_KEYS): remove it"
            );
        }
        let key_hashes: std::collections::HashSet<[u8; 32]> = keys
            .iter()
            .map(|k| ethnode_gateway::key_hash(k.trim()))
            .collect();
        drop(keys);
        let poll = Duration::from_millis(self.poll_ms.max(100));
        let options = ethnode_gateway::Options {
            upstreams: self.upstreams,
            fallbacks: self.fallbacks,
            poll,
            fallback_poll: Duration::from_secs(12),
            rules: ethnode_gateway::Rules {
                max_lag_blocks: self.max_lag_blocks,
                // Three missed polls, or a head a minute old (five missed slots), and the node is out.
                max_missed_polls: 3,
                max_head_age: Duration::from_secs(60),
            },
            policy: ethnode_gateway::Policy {
                key_hashes,
                max_body_bytes: self.max_body_bytes,
                max_batch: self.max_batch,
                timeout: Duration::from_millis(self.timeout_ms),
                denied_prefixes: ethnode_gateway::DENIED_BY_DEFAULT
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                debug_header: self.debug_header,
            },
        };
        if options.policy.key_hashes.is_empty() {
            tracing::warn!("no --key: any caller that reaches the port is served");
        }
        let app = ethnode_gateway::app(&options).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}: {e}; pick a free --listen address",
                    self.listen
                )
            })?;
        tracing::info!(listen = %self.listen, upstreams = options.upstreams.len(), "gateway serving");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // SIGTERM (ECS, systemd) or Ctrl-C: stop accepting, finish what is in flight.
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            })
            .await?;
        Ok(ExitCode::SUCCESS)
    }
}
