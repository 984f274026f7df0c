//! Where rounds go: Prometheus gauges, CloudWatch values, a JSONL time series.

use crate::round::{RoundResult, Verdict};
use ethnode_aws::{CloudWatch, Datum};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

type Label = [(&'static str, String); 1];
type FGauge = Gauge<f64, AtomicU64>;

/// The configured sinks.
pub struct Sinks {
    registry: Registry,
    lag: Family<Label, Gauge>,
    head: Family<Label, Gauge>,
    head_age: Family<Label, Gauge>,
    agrees: Family<Label, Gauge>,
    alarm: Family<Label, Gauge>,
    latency: Family<Label, FGauge>,
    errors: Family<Label, Counter>,
    excluded: Family<Label, Gauge>,
    reference_head: FGauge,
    jsonl: Option<PathBuf>,
    cloudwatch: Option<(CloudWatch, String)>,
}

impl Sinks {
    /// Prometheus always (rendered on demand); JSONL to `jsonl`; CloudWatch with `Stack=stack`.
    pub fn new(jsonl: Option<PathBuf>, cloudwatch: Option<(CloudWatch, String)>) -> Self {
        let mut registry = Registry::with_prefix("ethnode_monitor");
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                registry.register($name, $help, m.clone());
                m
            }};
        }
        Self {
            lag: reg!(
                "lag_blocks",
                "Reference head minus node head",
                Family::default()
            ),
            head: reg!(
                "head_block",
                "Latest block of each endpoint",
                Family::default()
            ),
            head_age: reg!(
                "head_age_seconds",
                "Age of each node's head block",
                Family::default()
            ),
            agrees: reg!(
                "hash_agrees",
                "1 when node and references have the same block at a common height, 0 when not",
                Family::default()
            ),
            alarm: reg!(
                "alarm",
                "1 while the node's lag alarm is on",
                Family::default()
            ),
            latency: reg!(
                "latency_seconds",
                "Round-trip time of the last request per endpoint",
                Family::default()
            ),
            errors: reg!("errors", "Failed requests per endpoint", Family::default()),
            excluded: reg!(
                "reference_excluded",
                "1 when a reference was left out of the median",
                Family::default()
            ),
            reference_head: reg!(
                "reference_head_block",
                "The references' median head",
                FGauge::default()
            ),
            registry,
            jsonl,
            cloudwatch,
        }
    }

    /// Updates the gauges. What this round did not learn is absent (series removed) or NaN, never the
    /// value of an earlier round: an unreachable node has no lag, not its last one.
    pub fn observe(&self, r: &RoundResult) {
        self.reference_head
            .set(r.reference_head.map_or(f64::NAN, |h| h as f64));
        fn set_or_remove<T: Copy>(
            family: &Family<Label, Gauge>,
            l: &Label,
            v: Option<T>,
            f: impl Fn(T) -> i64,
        ) {
            match v {
                Some(v) => {
                    family.get_or_create(l).set(f(v));
                }
                None => {
                    family.remove(l);
                }
            }
        }
        for n in &r.nodes {
            let l = [("endpoint", n.url.clone())];
            set_or_remove(&self.lag, &l, n.lag, |v| v);
            set_or_remove(&self.head, &l, n.head, |v| v as i64);
            set_or_remove(&self.head_age, &l, n.head_age_secs, |v| v as i64);
            set_or_remove(&self.agrees, &l, n.hash_agrees, i64::from);
            self.alarm.get_or_create(&l).set(i64::from(n.alarm));
            self.latency.get_or_create(&l).set(n.latency_ms / 1e3);
            if n.verdict == Verdict::Unreachable {
                self.errors.get_or_create(&l).inc();
            }
        }
        for x in &r.references {
            let l = [("endpoint", x.url.clone())];
            set_or_remove(&self.head, &l, x.head, |v| v as i64);
            self.latency.get_or_create(&l).set(x.latency_ms / 1e3);
            self.excluded
                .get_or_create(&l)
                .set(i64::from(x.excluded.is_some()));
            if x.error.is_some() {
                self.errors.get_or_create(&l).inc();
            }
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        prometheus_text(&self.registry)
    }

    /// Appends the round to the JSONL file, if one is configured.
    pub fn append_jsonl(&self, r: &RoundResult) -> std::io::Result<()> {
        let Some(path) = &self.jsonl else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")
    }

    /// Sends the round to CloudWatch, if configured: one call per round.
    pub async fn send_cloudwatch(&self, r: &RoundResult) -> Result<(), ethnode_aws::AwsError> {
        match &self.cloudwatch {
            Some((cw, stack)) => cw.put("Ethnode", &cloudwatch_data(r, stack)).await,
            None => Ok(()),
        }
    }

    /// Everything a round goes to, errors logged (a sink failing must not stop the monitor).
    pub async fn record(&self, r: &RoundResult) {
        self.observe(r);
        if let Err(e) = self.append_jsonl(r) {
            tracing::error!(error = %e, "cannot append to the JSONL series");
        }
        if let Err(e) = self.send_cloudwatch(r).await {
            tracing::error!(error = %e, "cannot send metrics to CloudWatch");
        }
    }
}

/// The text exposition of a registry.
pub fn prometheus_text(registry: &Registry) -> String {
    let mut out = String::new();
    let _ = encode(&mut out, registry);
    out
}

/// The metric names the monitor sends to CloudWatch (the dashboard may name only these and the agent's).
pub const CLOUDWATCH_METRICS: [&str; 5] = [
    "MaxLagBlocks",
    "UnreachableNodes",
    "LagBlocks",
    "HeadAgeSeconds",
    "Unreachable",
];

/// The round as CloudWatch values: per node LagBlocks, HeadAgeSeconds and Unreachable, dimensions Stack
/// and Node (the node's URL without path); and per stack MaxLagBlocks and UnreachableNodes, which the
/// stack's alarms watch (nodes come and go; the stack stays). A round with no lag figure sends no
/// MaxLagBlocks, so the alarm's missing-data rule catches a stopped monitor and unknown lag alike.
pub fn cloudwatch_data(r: &RoundResult, stack: &str) -> Vec<Datum> {
    let mut out = Vec::new();
    let stack_dims = vec![("Stack".to_string(), stack.to_string())];
    if let Some(max) = r.nodes.iter().filter_map(|n| n.lag).max() {
        out.push(Datum {
            name: "MaxLagBlocks".into(),
            dimensions: stack_dims.clone(),
            value: max as f64,
            unit: Some("Count"),
            timestamp: r.ts as i64,
        });
    }
    out.push(Datum {
        name: "UnreachableNodes".into(),
        dimensions: stack_dims,
        value: r
            .nodes
            .iter()
            .filter(|n| n.verdict == Verdict::Unreachable)
            .count() as f64,
        unit: Some("Count"),
        timestamp: r.ts as i64,
    });
    for n in &r.nodes {
        let dims = vec![
            ("Stack".to_string(), stack.to_string()),
            ("Node".to_string(), n.url.clone()),
        ];
        let mut push = |name: &str, value: f64, unit: Option<&'static str>| {
            out.push(Datum {
                name: name.into(),
                dimensions: dims.clone(),
                value,
                unit,
                timestamp: r.ts as i64,
            })
        };
        if let Some(lag) = n.lag {
            push("LagBlocks", lag as f64, Some("Count"));
        }
        if let Some(age) = n.head_age_secs {
            push("HeadAgeSeconds", age as f64, Some("Seconds"));
        }
        push(
            "Unreachable",
            f64::from(n.verdict == Verdict::Unreachable),
            Some("Count"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::{NodeResult, ReferenceResult};

    fn round(lag: Option<i64>, head: Option<u64>, verdict: Verdict) -> RoundResult {
        RoundResult {
            ts: 1,
            reference_head: head.map(|_| 110),
            references: vec![ReferenceResult {
                url: "https://ref.example".into(),
                ok: head.is_some(),
                head: head.map(|_| 110),
                latency_ms: 1.0,
                excluded: None,
                error: None,
            }],
            nodes: vec![NodeResult {
                url: "http://10.0.1.2:8545".into(),
                head,
                lag,
                head_age_secs: head.map(|_| 3),
                hash_agrees: head.map(|_| true),
                verdict,
                alarm: false,
                latency_ms: 1.0,
                error: None,
            }],
            duration_ms: 2.0,
        }
    }

    #[test]
    fn what_a_round_did_not_learn_is_absent_not_stale() {
        let sinks = Sinks::new(None, None);
        sinks.observe(&round(Some(2), Some(108), Verdict::Behind));
        let before = sinks.render();
        assert!(
            before.contains("ethnode_monitor_lag_blocks{endpoint=\"http://10.0.1.2:8545\"} 2"),
            "{before}"
        );
        sinks.observe(&round(None, None, Verdict::Unreachable));
        let after = sinks.render();
        assert!(!after.contains("ethnode_monitor_lag_blocks{"), "{after}");
        assert!(!after.contains("ethnode_monitor_head_block{"), "{after}");
        assert!(
            !after.contains("ethnode_monitor_head_age_seconds{"),
            "{after}"
        );
        assert!(
            after.contains("ethnode_monitor_reference_head_block NaN"),
            "{after}"
        );
    }
}
