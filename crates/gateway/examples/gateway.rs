//! The gateway library behind the same defaults as `ethnode gateway`, without the rest of ethnode (its AWS
//! and client crates make a release build of the whole binary three times longer): for the benchmark,
//! `cargo run --release --example gateway -- LISTEN_PORT UPSTREAM_URL...`.

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: gateway PORT UPSTREAM...");
    let upstreams: Vec<String> = args.collect();
    let options = ethnode_gateway::Options {
        upstreams,
        fallbacks: Vec::new(),
        poll: Duration::from_millis(1000),
        fallback_poll: Duration::from_secs(12),
        rules: ethnode_gateway::Rules {
            max_lag_blocks: 2,
            max_missed_polls: 3,
            max_head_age: Duration::from_secs(60),
        },
        policy: ethnode_gateway::Policy {
            max_body_bytes: 1 << 20,
            max_batch: 100,
            timeout: Duration::from_secs(10),
            denied_prefixes: ethnode_gateway::DENIED_BY_DEFAULT
                .iter()
                .map(|s| s.to_string())
                .collect(),
            debug_header: false,
            broadcast: false,
            trusted_proxies: Vec::new(),
            // The fan-out benchmark's thousand clients share the one key.
            max_sockets_per_key: 100_000,
            max_subscriptions: 100,
            // CACHE_MB=0 measures forwarding alone.
            cache_bytes: std::env::var("CACHE_MB")
                .ok()
                .and_then(|m| m.parse::<u64>().ok())
                .unwrap_or(64)
                << 20,
        },
        keys: vec![ethnode_gateway::KeyRules {
            name: "bench".into(),
            hash: ethnode_gateway::key_hash("bench"),
            rate: None,
            methods: None,
        }],
        default_rate: None,
        upstreams_later: false,
    };
    let shared = ethnode_gateway::start(&options).expect("gateway");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    ethnode_gateway::serve(shared, listen, workers, rx)
        .await
        .expect("serve");
}
