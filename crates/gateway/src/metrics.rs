//! The gateway's Prometheus metrics (text format at `GET /metrics`). Labels are `&'static str` (methods
//! from a fixed list, key names and upstream names fixed at start) so that counting a request allocates
//! nothing and a caller cannot grow the series by inventing method names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A request's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The method, or `other`.
    pub method: &'static str,
    /// The key's name (never the key).
    pub key: &'static str,
    /// The upstream that answered, or `none`.
    pub upstream: &'static str,
    /// ok, error (a JSON-RPC error from the node), refused, limited, unavailable.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabel, Histogram>,
    failovers: Family<UpstreamLabel, Counter>,
    head: Family<UpstreamLabel, Gauge>,
    eligible: Family<UpstreamLabel, Gauge>,
    tip: Gauge,
    feed_upstream: Family<UpstreamLabel, Gauge>,
    feed_heads: Counter,
    feed_filled: Counter,
    feed_reorgs: Counter,
    feed_logs_retries: Counter,
    subscriptions: Family<KindLabel, Gauge>,
    cache: Family<CacheLabels, Counter>,
    slow_clients: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    method: &'static str,
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Methods counted by name; anything else is `other`.
const KNOWN: &[&str] = &[
    "eth_blockNumber",
    "eth_call",
    "eth_chainId",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_getBalance",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getCode",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_getLogs",
    "eth_getProof",
    "eth_getStorageAt",
    "eth_getTransactionByHash",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_maxPriorityFeePerGas",
    "eth_newBlockFilter",
    "eth_newFilter",
    "eth_sendRawTransaction",
    "eth_subscribe",
    "eth_syncing",
    "eth_uninstallFilter",
    "eth_unsubscribe",
    "net_version",
    "web3_clientVersion",
];

/// The method's label.
pub fn method_label(m: &str) -> &'static str {
    KNOWN.iter().find(|k| **k == m).copied().unwrap_or("other")
}

impl Metrics {
    /// Registers every metric under the `ethnode_gateway_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ethnode_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "JSON-RPC requests by method, key, upstream and outcome",
            requests.clone(),
        );
        let latency = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            // 50 µs … ~1.6 s
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_05, 2.0, 16,
            ))
        });
        registry.register(
            "request_seconds",
            "Time from a request's arrival to its answer",
            latency.clone(),
        );
        let failovers = Family::<UpstreamLabel, Counter>::default();
        registry.register(
            "failovers",
            "Requests moved off an upstream that failed them",
            failovers.clone(),
        );
        let head = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "upstream_head",
            "Each upstream's last fresh head (0: unknown or stale)",
            head.clone(),
        );
        let eligible = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "upstream_eligible",
            "1 when the upstream may serve",
            eligible.clone(),
        );
        let tip = Gauge::default();
        registry.register("tip", "The served tip: what latest means", tip.clone());
        let feed_upstream = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "feed_upstream",
            "1 for the upstream the subscriptions are served from",
            feed_upstream.clone(),
        );
        let feed_heads = Counter::default();
        registry.register(
            "feed_heads",
            "Heads sent to newHeads subscriptions",
            feed_heads.clone(),
        );
        let feed_filled = Counter::default();
        registry.register(
            "feed_filled_heads",
            "Heads fetched by parent hash to fill a gap or a reorg's branch",
            feed_filled.clone(),
        );
        let feed_reorgs = Counter::default();
        registry.register(
            "feed_reorgs",
            "Reorgs seen by the subscription feed",
            feed_reorgs.clone(),
        );
        let feed_logs_retries = Counter::default();
        registry.register(
            "feed_logs_retries",
            "Times no upstream gave a block's logs (logs subscriptions wait for it)",
            feed_logs_retries.clone(),
        );
        let subscriptions = Family::<KindLabel, Gauge>::default();
        registry.register(
            "subscriptions",
            "Client subscriptions by kind",
            subscriptions.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache",
            "Cache lookups by method and outcome (hit, miss, stale: found but from a block no longer canonical)",
            cache.clone(),
        );
        let slow_clients = Counter::default();
        registry.register(
            "slow_clients",
            "WebSocket clients closed (4008) because they did not read what they were sent",
            slow_clients.clone(),
        );
        Self {
            slow_clients,
            registry,
            requests,
            latency,
            failovers,
            head,
            eligible,
            tip,
            feed_upstream,
            feed_heads,
            feed_filled,
            feed_reorgs,
            feed_logs_retries,
            subscriptions,
            cache,
        }
    }

    /// The upstream the subscriptions are served from (`None`: none now).
    pub fn feed_upstream(&self, upstream: Option<&'static str>) {
        self.feed_upstream.clear();
        if let Some(upstream) = upstream {
            self.feed_upstream
                .get_or_create(&UpstreamLabel { upstream })
                .set(1);
        }
    }

    /// Counts heads sent.
    pub fn feed_heads(&self, n: u64) {
        self.feed_heads.inc_by(n);
    }

    /// Counts heads fetched to fill a gap.
    pub fn feed_filled(&self, n: u64) {
        self.feed_filled.inc_by(n);
    }

    /// Counts a reorg.
    pub fn feed_reorg(&self) {
        self.feed_reorgs.inc();
    }

    /// Counts a block whose logs no upstream gave.
    pub fn feed_logs_retry(&self) {
        self.feed_logs_retries.inc();
    }

    /// Sets the subscription gauges.
    pub fn subscriptions(&self, (heads, logs, pending): (usize, usize, usize)) {
        for (kind, n) in [
            ("newHeads", heads),
            ("logs", logs),
            ("newPendingTransactions", pending),
        ] {
            self.subscriptions
                .get_or_create(&KindLabel { kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts a client closed as too slow.
    pub fn slow_client(&self) {
        self.slow_clients.inc();
    }

    /// Counts a cache lookup.
    pub fn cache(&self, method: &str, outcome: &'static str) {
        self.cache
            .get_or_create(&CacheLabels {
                method: method_label(method),
                outcome,
            })
            .inc();
    }

    /// Counts one request.
    pub fn request(&self, labels: RequestLabels, seconds: f64) {
        let method = labels.method;
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&MethodLabel { method })
            .observe(seconds);
    }

    /// Counts a request moved off `upstream`.
    pub fn failover(&self, upstream: &'static str) {
        self.failovers
            .get_or_create(&UpstreamLabel { upstream })
            .inc();
    }

    /// Sets the upstream gauges from a snapshot.
    pub fn upstreams(&self, s: &crate::pool::Snapshot) {
        for (i, u) in s.upstreams.iter().enumerate() {
            let l = UpstreamLabel { upstream: u.label };
            let head = s.heads.get(i).copied().flatten().unwrap_or(0);
            self.head
                .get_or_create(&l)
                .set(i64::try_from(head).unwrap_or(i64::MAX));
            self.eligible
                .get_or_create(&l)
                .set(i64::from(s.eligible.contains(&i)));
        }
        self.tip
            .set(s.tip.and_then(|t| i64::try_from(t).ok()).unwrap_or(0));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
