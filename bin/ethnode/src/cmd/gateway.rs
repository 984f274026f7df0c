//! `ethnode gateway`: the private JSON-RPC front door, from flags alone or from `[gateway]` in
//! ethnode.toml (flags win).

use super::Globals;
use anyhow::Context;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Address to serve JSON-RPC on [config: gateway.listen; default 127.0.0.1:8547].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A node's JSON-RPC URL (repeat for each node) [config: gateway.upstreams; else every address
    /// dns.name resolves to].
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// A provider used only when no node is at head (repeatable; asked for its head once a slot).
    #[arg(long = "fallback")]
    fallbacks: Vec<String>,
    /// An API key callers must send (`Authorization: Bearer KEY` or `/v1/KEY`); repeatable. Prefer
    /// ETHNODE_GATEWAY_KEYS (comma-separated): a flag's value is visible in the process list; or store
    /// hashes in [[gateway.keys]]. None at all: no key needed (the security group is then the only gate).
    #[arg(
        long = "key",
        env = "ETHNODE_GATEWAY_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    keys: Vec<String>,
    /// An API key's SHA-256 (64 hex digits; `printf %s KEY | sha256sum`), for where the plain key should
    /// not be stored (the stack's parameters); repeatable, or ETHNODE_GATEWAY_KEY_HASHES comma-separated.
    #[arg(
        long = "key-sha256",
        env = "ETHNODE_GATEWAY_KEY_HASHES",
        value_delimiter = ','
    )]
    key_hashes: Vec<String>,
    /// Requests per second per key, with an optional burst: `50` or `50:200` [config:
    /// gateway.rate_per_sec, gateway.burst; default unlimited].
    #[arg(long, value_parser = parse_rate)]
    rate_limit: Option<(f64, Option<u32>)>,
    /// An upstream more than this many blocks behind the served tip gets no traffic [default 2].
    #[arg(long)]
    max_lag_blocks: Option<u64>,
    /// Milliseconds between head polls of each node [default 1000].
    #[arg(long)]
    poll_ms: Option<u64>,
    /// Per-attempt timeout, milliseconds [default 10000].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Largest request body, bytes [default 1 MiB].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Longest batch [default 100].
    #[arg(long)]
    max_batch: Option<usize>,
    /// Send raw transactions to every node at head, not only the chosen one.
    #[arg(long)]
    broadcast: bool,
    /// A load balancer whose X-Forwarded-For names the caller (repeatable).
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<IpAddr>,
    /// Open WebSocket connections per key [config: gateway.max_sockets_per_key; default 100].
    #[arg(long)]
    max_sockets_per_key: Option<usize>,
    /// Subscriptions per WebSocket connection [config: gateway.max_subscriptions; default 100].
    #[arg(long)]
    max_subscriptions: Option<usize>,
    /// Memory for cached answers, MiB; 0: no cache [config: gateway.cache_mb; default 64].
    #[arg(long)]
    cache_mb: Option<u64>,
    /// On SIGTERM, fail /health and keep serving this long before stopping, so that a load balancer
    /// stops sending first [config: gateway.drain_secs; default 0].
    #[arg(long)]
    drain_secs: Option<u64>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Name the node that answered in an `x-ethnode-upstream` header (debugging).
    #[arg(long)]
    debug_header: bool,
}

fn parse_rate(s: &str) -> Result<(f64, Option<u32>), String> {
    let bad = || {
        format!(
            "`{s}` is not a rate: give requests per second, optionally with a burst, like 50 or 50:200"
        )
    };
    let (rate, burst) = match s.split_once(':') {
        Some((r, b)) => (r, Some(b.parse::<u32>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let rate: f64 = rate.parse().map_err(|_| bad())?;
    if !(rate.is_finite() && rate > 0.0) || burst == Some(0) {
        return Err(bad());
    }
    Ok((rate, burst))
}

fn rate(per_sec: Option<f64>, burst: Option<u32>) -> Option<ethnode_gateway::Rate> {
    per_sec.map(|per_sec| ethnode_gateway::Rate {
        per_sec,
        burst: burst.map_or(per_sec.max(1.0), f64::from),
    })
}

/// Node URLs from DNS with their WebSocket URL: the nodes serve WebSocket on their own port.
fn with_ws(urls: Vec<String>, ws_port: u16) -> Vec<String> {
    urls.into_iter()
        .map(|u| {
            let host = u
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .rsplit_once(':')
                .map_or(String::new(), |(h, _)| h.to_owned());
            format!("{u},ws://{host}:{ws_port}/")
        })
        .collect()
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    (s.len() == 64).then_some(out)
}

impl GatewayArgs {
    pub(crate) async fn run(mut self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("info");
        let (config, _) = match g.load_config() {
            Ok(c) => c,
            Err(e) => return Ok(super::config_failure(&e)),
        };
        let c = config.gateway;
        // Keys are kept as hashes only; the plain ones go now.
        let plain = std::mem::take(&mut self.keys);
        if plain.iter().any(|k| k.trim().is_empty()) {
            anyhow::bail!(
                "an empty API key was given (--key \"\" or a stray comma in ETHNODE_GATEWAY_KEYS): remove it"
            );
        }
        let (rate_per_sec, burst) = match self.rate_limit {
            Some((r, b)) => (Some(r), b),
            None => (c.rate_per_sec, c.burst),
        };
        let mut keys: Vec<ethnode_gateway::KeyRules> = plain
            .iter()
            .enumerate()
            .map(|(i, k)| ethnode_gateway::KeyRules {
                name: format!("key{}", i + 1),
                hash: ethnode_gateway::key_hash(k.trim()),
                rate: None,
                methods: None,
            })
            .collect();
        drop(plain);
        for (i, h) in self
            .key_hashes
            .iter()
            .filter(|h| !h.trim().is_empty())
            .enumerate()
        {
            keys.push(ethnode_gateway::KeyRules {
                name: format!("hashed{}", i + 1),
                hash: hex32(&h.trim().to_ascii_lowercase()).with_context(|| {
                    format!(
                        "--key-sha256 `{h}` is not 64 hex digits: give printf %s KEY | sha256sum"
                    )
                })?,
                rate: None,
                methods: None,
            });
        }
        for k in &c.keys {
            keys.push(ethnode_gateway::KeyRules {
                name: k.name.clone(),
                // Validated as 64 hex digits when the config was loaded.
                hash: hex32(&k.sha256.to_ascii_lowercase())
                    .context("gateway.keys: a sha256 is not 64 hex digits")?,
                rate: rate(k.rate_per_sec, k.burst),
                methods: k.methods.clone(),
            });
        }
        let mut upstreams = if self.upstreams.is_empty() {
            c.upstreams.clone()
        } else {
            self.upstreams
        };
        let from_dns = upstreams
            .is_empty()
            .then(|| config.dns.name.clone())
            .flatten();
        if let Some(name) = &from_dns {
            // The nodes publish their name once ready: on a new stack it may not resolve yet, so the
            // gateway starts without upstreams (unhealthy) and keeps asking.
            match super::monitor::dns_nodes(name, config.ports.http).await {
                Ok(nodes) => upstreams = with_ws(nodes, config.ports.ws),
                Err(e) => {
                    tracing::warn!(error = %e, "dns.name does not resolve yet; asking again every 5 s")
                }
            }
            tracing::info!(%name, nodes = upstreams.len(), "upstreams from dns.name");
        } else if upstreams.is_empty() {
            anyhow::bail!(
                "no upstream: give --upstream URL, list gateway.upstreams, or set dns.name to the nodes' name"
            );
        }
        let env = |v: &str| std::env::var(v).ok();
        let fallbacks = if self.fallbacks.is_empty() {
            c.fallbacks
                .iter()
                .map(|f| ethnode_config::expand_env(f, &env))
                .collect()
        } else {
            self.fallbacks
        };
        let poll = Duration::from_millis(self.poll_ms.unwrap_or(c.poll_ms).max(100));
        let mut trusted = c.trusted_proxies.clone();
        trusted.extend(self.trusted_proxies);
        let options = ethnode_gateway::Options {
            upstreams,
            fallbacks,
            poll,
            fallback_poll: Duration::from_secs(12),
            rules: ethnode_gateway::Rules {
                max_lag_blocks: self.max_lag_blocks.unwrap_or(c.max_lag_blocks),
                // Three missed polls, or a head a minute old (five missed slots), and the node is out.
                max_missed_polls: 3,
                max_head_age: Duration::from_secs(60),
            },
            policy: ethnode_gateway::Policy {
                max_body_bytes: self.max_body_bytes.unwrap_or(c.max_body_bytes),
                max_batch: self.max_batch.unwrap_or(c.max_batch),
                timeout: Duration::from_millis(self.timeout_ms.unwrap_or(c.timeout_ms)),
                denied_prefixes: ethnode_gateway::DENIED_BY_DEFAULT
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                debug_header: self.debug_header,
                broadcast: self.broadcast || c.broadcast,
                trusted_proxies: trusted,
                max_sockets_per_key: self.max_sockets_per_key.unwrap_or(c.max_sockets_per_key),
                max_subscriptions: self.max_subscriptions.unwrap_or(c.max_subscriptions),
                cache_bytes: self.cache_mb.unwrap_or(c.cache_mb).saturating_mul(1 << 20),
            },
            keys,
            default_rate: rate(rate_per_sec, burst),
            upstreams_later: from_dns.is_some(),
        };
        if options.keys.is_empty() {
            tracing::warn!("no API key: any caller that reaches the port is served");
        }
        let listen = self.listen.unwrap_or(c.listen);
        let workers = match self.workers.unwrap_or(c.workers) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shared = ethnode_gateway::start(&options)?;
        if let Some(name) = from_dns {
            // Nodes are replaced behind the name: ask again, so that a new node gets traffic and a gone
            // one stops being polled.
            let (shared, port, ws, timeout) = (
                shared.clone(),
                config.ports.http,
                config.ports.ws,
                options.policy.timeout,
            );
            let mut known = options.upstreams.clone();
            tokio::spawn(async move {
                loop {
                    // Every 5 s while nothing resolved, then every 30 s.
                    let wait = if known.is_empty() { 5 } else { 30 };
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    match super::monitor::dns_nodes(&name, port)
                        .await
                        .map(|u| with_ws(u, ws))
                    {
                        Ok(now) if !now.is_empty() && now != known => {
                            tracing::info!(%name, nodes = now.len(), "upstreams changed behind dns.name");
                            if let Err(e) = shared.pool.set_primaries(&now, poll, timeout) {
                                tracing::warn!(error = %e, "cannot use the new upstreams");
                            } else {
                                known = now;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot resolve dns.name; keeping the upstreams")
                        }
                    }
                }
            });
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let drain = Duration::from_secs(self.drain_secs.unwrap_or(c.drain_secs));
        let draining = shared.clone();
        tokio::spawn(async move {
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
            if !drain.is_zero() {
                // Unhealthy first, so that the load balancer stops sending, then stop.
                draining
                    .draining
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    secs = drain.as_secs(),
                    "draining: /health fails, still serving"
                );
                tokio::time::sleep(drain).await;
            }
            let _ = stop_tx.send(true);
        });
        tracing::info!(%listen, upstreams = options.upstreams.len(), workers, "gateway serving");
        ethnode_gateway::serve(shared, listen, workers, stop).await?;
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_hashes_are_read_or_refused_with_the_fix() {
        assert_eq!(parse_rate("50"), Ok((50.0, None)));
        assert_eq!(parse_rate("2.5:10"), Ok((2.5, Some(10))));
        for bad in ["0", "-1", "x", "5:0", "5:x", "inf"] {
            assert!(
                parse_rate(bad).unwrap_err().contains("like 50 or 50:200"),
                "{bad}"
            );
        }
        let h = ethnode_gateway::key_hash("k");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex32(&hex), Some(h));
        assert_eq!(hex32("abc"), None);
        assert_eq!(
            with_ws(
                vec![
                    "http://10.0.0.5:8545/".into(),
                    "http://[fd00::5]:8545/".into()
                ],
                8546
            ),
            vec![
                "http://10.0.0.5:8545/,ws://10.0.0.5:8546/".to_string(),
                "http://[fd00::5]:8545/,ws://[fd00::5]:8546/".to_string()
            ]
        );
    }
}
