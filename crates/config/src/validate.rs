//! Checks that need more than one value: clashing ports, client/network mismatches, missing partners.

use crate::{Config, ConfigError, ConsensusClient, ExecutionClient, Network, Problem, StorageMode};
use std::collections::BTreeMap;

/// Transport of a listening socket, for clash detection: TCP 9001 and UDP 9001 do not clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl Config {
    /// Every port this config listens on, with its key and protocol.
    pub fn listening_ports(&self) -> Vec<(&'static str, u16, Proto)> {
        let p = &self.ports;
        let net = self.node.network;
        let mut out = vec![("ports.agent", p.agent, Proto::Tcp)];
        let el = self.execution.client_for(net);
        if el == ExecutionClient::Anvil {
            out.push(("ports.http", p.http, Proto::Tcp));
        } else {
            out.extend([
                ("ports.p2p", p.p2p, Proto::Tcp),
                ("ports.p2p", p.p2p, Proto::Udp),
                ("ports.http", p.http, Proto::Tcp),
                ("ports.ws", p.ws, Proto::Tcp),
                ("ports.authrpc", p.authrpc, Proto::Tcp),
                ("ports.execution_metrics", p.execution_metrics, Proto::Tcp),
            ]);
        }
        if el == ExecutionClient::Reth {
            out.push(("ports.discv5", p.discv5, Proto::Udp));
        }
        let cl = self.consensus.client_for(net);
        if cl != ConsensusClient::None {
            out.extend([
                ("ports.consensus_p2p", p.consensus_p2p, Proto::Tcp),
                ("ports.consensus_p2p", p.consensus_p2p, Proto::Udp),
                ("ports.consensus_http", p.consensus_http, Proto::Tcp),
                ("ports.consensus_metrics", p.consensus_metrics, Proto::Tcp),
            ]);
        }
        // Lighthouse and Teku (26.x) speak QUIC; Nimbus and Lodestar do not (in their documented releases).
        if matches!(cl, ConsensusClient::Lighthouse | ConsensusClient::Teku) {
            out.push(("ports.consensus_quic", p.consensus_quic, Proto::Udp));
        }
        out
    }

    /// Checks the whole config; all problems are reported at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut add = |key: &str, message: String, fix: String| {
            problems.push(Problem {
                key: key.to_owned(),
                message,
                fix,
            })
        };
        let net = self.node.network;
        let el = self.execution.client_for(net);
        let cl = self.consensus.client_for(net);

        match (net, el) {
            (Network::Dev, c) if c != ExecutionClient::Anvil => add(
                "execution.client",
                format!("the dev network runs anvil, not {}", c.as_str()),
                "remove execution.client or set it to \"anvil\"".into(),
            ),
            (n, ExecutionClient::Anvil) if n != Network::Dev => add(
                "execution.client",
                format!(
                    "anvil is a local dev chain and cannot follow {}",
                    n.as_str()
                ),
                "set execution.client = \"reth\", or node.network = \"dev\"".into(),
            ),
            _ => {}
        }
        match (net, cl) {
            (Network::Dev, c) if c != ConsensusClient::None => add(
                "consensus.client",
                "the dev network has no consensus layer".into(),
                "remove consensus.client or set it to \"none\"".into(),
            ),
            (n, ConsensusClient::None) if n != Network::Dev => add(
                "consensus.client",
                format!(
                    "since the Merge a {} node needs a consensus client to follow the chain",
                    n.as_str()
                ),
                "set consensus.client = \"lighthouse\"".into(),
            ),
            _ => {}
        }

        let mut seen: BTreeMap<(u16, Proto), &str> = BTreeMap::new();
        for (key, port, proto) in self.listening_ports() {
            if port == 0 {
                add(
                    key,
                    "port 0 is not a fixed port".into(),
                    format!("set {key} to a port between 1 and 65535"),
                );
                continue;
            }
            if let Some(other) = seen.insert((port, proto), key)
                && other != key
            {
                add(
                    key,
                    format!("port {port}/{proto} is also used by {other}"),
                    format!("give {key} or {other} another port"),
                );
            }
        }

        match (&self.dns.name, &self.dns.hosted_zone_id) {
            (Some(name), _) if !is_dns_name(name) => add(
                "dns.name",
                format!("`{name}` is not a DNS name"),
                "use a name like \"mainnet.eth.internal\" (letters, digits, '-' and dots)".into(),
            ),
            (None, Some(_)) => add(
                "dns.name",
                "dns.hosted_zone_id is set but no name to register".into(),
                "set dns.name, or remove dns.hosted_zone_id".into(),
            ),
            _ => {}
        }
        if self.dns.ttl == 0 {
            add(
                "dns.ttl",
                "a TTL of 0 defeats caching".into(),
                "set dns.ttl to 60 or more".into(),
            );
        }

        if let Some(url) = &self.readiness.reference_rpc
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            add(
                "readiness.reference_rpc",
                format!("`{}` is not an http(s) URL", crate::redact_url(url)),
                "use a URL like \"https://mainnet.example.org/v3/KEY\" or remove the key".into(),
            );
        }
        for url in &self.consensus.checkpoint_sync_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                add(
                    "consensus.checkpoint_sync_urls",
                    format!("`{}` is not an http(s) URL", crate::redact_url(url)),
                    "list URLs like \"https://mainnet.checkpoint.sigp.io\", or remove the key"
                        .into(),
                );
            }
        }
        // The agent empties a stale consensus data dir: it must hold nothing else.
        if cl != ConsensusClient::None {
            let cdir = self.consensus_data_dir();
            for (what, path) in [
                ("node.data_dir", self.node.data_dir.clone()),
                ("the execution data dir", self.execution_data_dir()),
                ("the JWT secret", self.jwt_path()),
            ] {
                if path.starts_with(&cdir) {
                    add(
                        "consensus.data_dir",
                        format!(
                            "{} contains {what} ({}); the agent empties a stale consensus database there",
                            cdir.display(),
                            path.display()
                        ),
                        "give the consensus client a directory of its own, e.g. <node.data_dir>/<client>".into(),
                    );
                }
            }
        }
        if let Some(full) = self.execution.full {
            add(
                "execution.full",
                "was replaced by execution.mode".into(),
                if full {
                    "write mode = \"full\" (what full = true ran; an existing data dir keeps it), or \"post-merge\" for a new node that keeps every post-Merge receipt".into()
                } else {
                    "write mode = \"archive\" (what full = false ran)".into()
                },
            );
        }
        if let Some(url) = &self.consensus.checkpoint_sync_url {
            add(
                "consensus.checkpoint_sync_url",
                "was replaced by consensus.checkpoint_sync_urls (a list, tried in order)".into(),
                format!(
                    "write checkpoint_sync_urls = [\"{}\"]",
                    crate::redact_url(url)
                ),
            );
        }
        let e = &self.execution;
        if e.mode == StorageMode::Minimal && el != ExecutionClient::Reth {
            add(
                "execution.mode",
                format!(
                    "`minimal` is Reth's mode; {} has no such preset",
                    el.as_str()
                ),
                "use mode = \"full\" or \"post-merge\", or execution.client = \"reth\"".into(),
            );
        }
        if el == ExecutionClient::Nethermind && e.ws_api != e.http_api {
            add(
                "execution.ws_api",
                "Nethermind serves one module list (JsonRpc.EnabledModules) on HTTP and WebSocket"
                    .into(),
                "make execution.ws_api the same as execution.http_api".into(),
            );
        }
        for (key, list) in [
            ("execution.http_api", &e.http_api),
            ("execution.ws_api", &e.ws_api),
        ] {
            if el == ExecutionClient::Anvil {
                break;
            }
            if list.is_empty() {
                add(
                    key,
                    "no namespace: the endpoint would serve nothing".into(),
                    format!("set {key} = [\"eth\", \"net\", \"web3\"]"),
                );
            }
            for ns in list {
                if ns.is_empty()
                    || !ns
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    add(
                        key,
                        format!("`{ns}` is not a namespace name"),
                        "use lowercase names such as \"eth\", \"net\", \"web3\", \"txpool\", \"debug\", \"trace\"".into(),
                    );
                }
            }
        }
        let r = &self.readiness;
        for (key, value) in [
            ("readiness.max_head_age_secs", r.max_head_age_secs),
            ("readiness.check_interval_secs", r.check_interval_secs),
            ("dev.block_time_secs", self.dev.block_time_secs),
            ("readiness.fail_after", u64::from(r.fail_after)),
            ("readiness.pass_after", u64::from(r.pass_after)),
        ] {
            if value == 0 {
                add(
                    key,
                    "must be at least 1".into(),
                    format!("set {key} to 1 or more"),
                );
            }
        }
        if net == Network::Dev && r.max_head_age_secs <= self.dev.block_time_secs {
            add(
                "readiness.max_head_age_secs",
                format!(
                    "{}s is not longer than one dev block ({}s): the node would flap between ready and not",
                    r.max_head_age_secs, self.dev.block_time_secs
                ),
                "raise readiness.max_head_age_secs above dev.block_time_secs".into(),
            );
        }
        let a = &self.agent;
        if a.crash_limit == 0 {
            add(
                "agent.crash_limit",
                "0 would give up before the first start".into(),
                "set agent.crash_limit to 1 or more".into(),
            );
        }
        if a.restart_initial_ms == 0 || a.restart_initial_ms > a.restart_max_ms {
            add(
                "agent.restart_initial_ms",
                format!(
                    "must be between 1 and agent.restart_max_ms ({})",
                    a.restart_max_ms
                ),
                "lower agent.restart_initial_ms or raise agent.restart_max_ms".into(),
            );
        }
        let sn = &self.snapshot;
        if sn.prewarm_parallelism == 0 || sn.prewarm_parallelism > 256 {
            add(
                "snapshot.prewarm_parallelism",
                format!("{} is outside 1..=256", sn.prewarm_parallelism),
                "set snapshot.prewarm_parallelism to e.g. 16".into(),
            );
        }
        if sn.prewarm_block_kib == 0 || sn.prewarm_block_kib > 16384 {
            add(
                "snapshot.prewarm_block_kib",
                format!("{} is outside 1..=16384", sn.prewarm_block_kib),
                "set snapshot.prewarm_block_kib to e.g. 1024".into(),
            );
        }
        if sn.auto && (sn.interval_secs == 0 || sn.check_secs == 0) {
            add(
                "snapshot.interval_secs",
                "automatic snapshots need a positive interval and check period".into(),
                "set snapshot.interval_secs and snapshot.check_secs to at least 1".into(),
            );
        }
        if sn.auto && self.aws.stack_name.is_none() {
            add(
                "aws.stack_name",
                "automatic snapshots are tagged with, and promoted into, the stack".into(),
                "set aws.stack_name (the template sets ETHNODE_AWS_STACK_NAME on the nodes)".into(),
            );
        }
        let m = &self.monitor;
        let g = &self.gateway;
        for (key, urls) in [
            ("monitor.nodes", &m.nodes),
            ("monitor.references", &m.references),
            ("gateway.upstreams", &g.upstreams),
            ("gateway.fallbacks", &g.fallbacks),
        ] {
            for url in urls.iter() {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    add(
                        key,
                        format!("`{}` is not an http(s) URL", crate::redact_url(url)),
                        format!("list JSON-RPC URLs like \"https://host/path\" in {key}"),
                    );
                }
            }
        }
        if m.interval_secs == 0 || m.timeout_ms == 0 || m.alarm_rounds == 0 || m.clear_rounds == 0 {
            add(
                "monitor.interval_secs",
                "interval, timeout, alarm_rounds and clear_rounds must be positive".into(),
                "set monitor.interval_secs (12 = one slot), timeout_ms, alarm_rounds, clear_rounds"
                    .into(),
            );
        }
        if g.poll_ms == 0 || g.timeout_ms == 0 || g.max_batch == 0 || g.max_body_bytes == 0 {
            add(
                "gateway.poll_ms",
                "poll_ms, timeout_ms, max_batch and max_body_bytes must be positive".into(),
                "set them to at least 1 (or remove them for the defaults)".into(),
            );
        }
        let rates = std::iter::once(g.rate_per_sec).chain(g.keys.iter().map(|k| k.rate_per_sec));
        if rates.flatten().any(|r| !(r.is_finite() && r > 0.0)) {
            add(
                "gateway.rate_per_sec",
                "a rate must be a positive number of requests per second".into(),
                "set rate_per_sec to e.g. 50, or remove it for no limit".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for k in &g.keys {
            if k.name.trim().is_empty() || !names.insert(k.name.as_str()) {
                add(
                    "gateway.keys",
                    format!("key name `{}` is empty or used twice", k.name),
                    "give each [[gateway.keys]] its own name".into(),
                );
            }
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                add(
                    "gateway.keys",
                    format!("key `{}`: sha256 is not 64 hex digits", k.name),
                    "store the key's hash, not the key: printf %s KEY | sha256sum".into(),
                );
            }
        }
        if self.node.data_dir.as_os_str().is_empty() {
            add(
                "node.data_dir",
                "is empty".into(),
                "set node.data_dir to the directory for chain data".into(),
            );
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}
