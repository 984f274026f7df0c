//! The gateway: one private JSON-RPC endpoint in front of the nodes. It checks the caller's key, parses
//! each request per JSON-RPC 2.0 before anything is forwarded, refuses the namespaces that can reshape a
//! node, and sends the rest to a node at head — retried once on another when the first fails — so that a
//! node that restarts, falls behind or dies stops getting traffic within a head-poll interval.
//!
//! This is the first slice of the gateway issue: HTTP (single and batch); WebSocket, `latest` rewriting,
//! per-block routing, rate limits and metrics are to come.

pub mod pool;
pub mod rpc;
pub mod server;

pub use pool::{Pool, Rules, Upstream};
pub use server::{DENIED_BY_DEFAULT, Policy, key_hash, router};

use std::sync::Arc;
use std::time::Duration;

/// Everything `ethnode gateway` needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Primary upstreams (our nodes).
    pub upstreams: Vec<String>,
    /// Used only when no primary is at head.
    pub fallbacks: Vec<String>,
    /// Head polls of primaries.
    pub poll: Duration,
    /// Head polls of fallbacks (one a slot: an idle paid fallback costs one request per slot).
    pub fallback_poll: Duration,
    /// Eligibility.
    pub rules: Rules,
    /// Keys, limits, policy.
    pub policy: Policy,
}

/// Starts tracking the upstreams and returns the router to serve.
pub fn app(o: &Options) -> Result<axum::Router, String> {
    let mut upstreams = Vec::new();
    for (urls, fallback, every) in [
        (&o.upstreams, false, o.poll),
        (&o.fallbacks, true, o.fallback_poll),
    ] {
        for url in urls {
            upstreams.push(Arc::new(Upstream::new(
                url,
                fallback,
                every,
                o.policy.timeout,
            )?));
        }
    }
    if o.upstreams.is_empty() {
        return Err("no upstream: give at least one --upstream URL".into());
    }
    Ok(router(Pool::new(upstreams, o.rules), o.policy.clone()))
}
