//! The gateway: one private JSON-RPC endpoint in front of the nodes. It checks the caller's key and rate,
//! parses each request per JSON-RPC 2.0 before anything is forwarded, refuses the namespaces that can
//! reshape a node, pins `latest` to a tip the upstreams agree on, and sends each request only to an
//! upstream that has the block it reads — retried elsewhere when one fails or says "not found" — so that
//! a node that restarts, falls behind or dies stops getting traffic within a head-poll interval.
//!
//! Subscriptions are served from one upstream feed for all clients, every head once and in order across
//! failovers and reorgs (`feed`); answers that cannot change are cached under the hash their block has on
//! that feed's canonical chain, so that a reorg never serves a stale one (`cache`); a transaction sent
//! through the gateway is read back at once whichever node answers (`writes`).
//!
//! It serves thread-per-core: each worker thread runs its own single-threaded runtime with its own
//! `SO_REUSEPORT` listener and its own upstream connections, so that a request never crosses threads.

pub mod access;
pub mod cache;
pub mod feed;
pub mod metrics;
pub mod pool;
pub mod route;
pub mod rpc;
pub mod server;
pub mod writes;
mod ws;

pub use access::{Access, KeyRules, Rate, key_hash};
pub use pool::{Pool, Rules, Upstream};
pub use server::{DENIED_BY_DEFAULT, Policy, Shared};

use std::net::SocketAddr;
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
    /// Limits, policy.
    pub policy: Policy,
    /// Keys; none: no key needed.
    pub keys: Vec<KeyRules>,
    /// The rate of a key that names none (and of everybody when there are no keys).
    pub default_rate: Option<Rate>,
    /// The primaries arrive later ([`Pool::set_primaries`], e.g. once a DNS name resolves): start with none.
    pub upstreams_later: bool,
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No primary upstream.
    #[error("no upstream: give at least one --upstream URL")]
    NoUpstream,
    /// An upstream URL is unusable.
    #[error(transparent)]
    BadUrl(#[from] pool::BadUrl),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}; pick a free --listen address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A worker could not start.
    #[error("cannot start a worker: {0}")]
    Worker(std::io::Error),
}

/// Starts tracking the upstreams (on the current runtime) and returns what the workers share.
pub fn start(o: &Options) -> Result<Arc<Shared>, Error> {
    if o.upstreams.is_empty() && !o.upstreams_later {
        return Err(Error::NoUpstream);
    }
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
    let shared = Arc::new(Shared {
        pool: Pool::new(upstreams, o.rules),
        policy: o.policy.clone(),
        access: Access::new(o.keys.clone(), o.default_rate),
        metrics: metrics::Metrics::new(),
        draining: std::sync::atomic::AtomicBool::new(false),
        feeds: feed::Feeds::default(),
        cache: cache::Cache::new(o.policy.cache_bytes),
        writes: writes::Writes::default(),
    });
    tokio::spawn(feed::run(
        server::Worker::new(shared.clone()).map_err(Error::Worker)?,
        server::Worker::new(shared.clone()).map_err(Error::Worker)?,
    ));
    Ok(shared)
}

/// Serves on `listen` with `workers` threads until `stop` turns true; in-flight requests finish.
pub async fn serve(
    shared: Arc<Shared>,
    listen: SocketAddr,
    workers: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), Error> {
    let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // Every worker listens on the same address; the kernel spreads connections across them.
        socket.set_reuseport(true)?;
        socket.set_reuseaddr(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        socket.listen(1024)?.into_std()
    };
    let mut listeners = Vec::new();
    let mut addr = listen;
    for _ in 0..workers.max(1) {
        let l = bind(addr).map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
        // Port 0: the first bind picked one; the others join it.
        addr = l.local_addr().map_err(Error::Worker)?;
        listeners.push(l);
    }
    let mut threads = Vec::new();
    for (n, l) in listeners.into_iter().enumerate() {
        let router = server::router(shared.clone()).map_err(Error::Worker)?;
        let mut stop = stop.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
        std::thread::Builder::new()
            .name(format!("gateway-{n}"))
            .spawn(move || {
                let run = || -> std::io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(l)?;
                        axum::serve(
                            listener,
                            router.into_make_service_with_connect_info::<SocketAddr>(),
                        )
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await
                    })
                };
                let _ = done_tx.send(run());
            })
            .map_err(Error::Worker)?;
        threads.push(done_rx);
    }
    for t in threads {
        if let Ok(Err(e)) = t.await {
            return Err(Error::Worker(e));
        }
    }
    Ok(())
}
