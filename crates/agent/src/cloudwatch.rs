//! The node's own health in CloudWatch, for the stack's dashboard: every `agent.cloudwatch_secs`, one
//! PutMetricData in namespace `Ethnode` with dimensions Stack and Instance. A value the agent does not
//! know is left out (CloudWatch then shows a gap), never sent as its last known value.

use crate::Shared;
use crate::health::Status;
use ethnode_aws::{CloudWatch, Datum};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The metric names the agent sends (the dashboard may name only these and the monitor's).
pub const CLOUDWATCH_METRICS: [&str; 5] = [
    "Ready",
    "Peers",
    "HeadAgeSeconds",
    "DaysUntilFull",
    "ClientRestarts",
];

/// The data points for one status.
pub(crate) fn data(s: &Status, stack: &str, instance: &str, ts: i64) -> Vec<Datum> {
    let dims = vec![
        ("Stack".to_string(), stack.to_string()),
        ("Instance".to_string(), instance.to_string()),
    ];
    let restarts: u64 = s.clients.iter().map(|c| c.restarts).sum();
    [
        ("Ready", Some(f64::from(s.ready)), Some("Count")),
        ("Peers", s.peers.map(|p| p as f64), Some("Count")),
        (
            "HeadAgeSeconds",
            s.head.as_ref().map(|h| h.age_secs as f64),
            Some("Seconds"),
        ),
        (
            "DaysUntilFull",
            s.disk.as_ref().and_then(|d| d.days_until_full),
            None,
        ),
        ("ClientRestarts", Some(restarts as f64), Some("Count")),
    ]
    .into_iter()
    .filter_map(|(name, value, unit)| {
        Some(Datum {
            name: name.into(),
            dimensions: dims.clone(),
            value: value?,
            unit,
            timestamp: ts,
        })
    })
    .collect()
}

/// Pushes every `every` until the agent stops; a failed push is logged and the next one tried.
pub(crate) async fn run(shared: Arc<Shared>, every: Duration) {
    let sdk = ethnode_aws::sdk_config(shared.config.aws.region.as_deref()).await;
    let cw = CloudWatch::new(&sdk);
    let stack = shared.config.aws.stack_name.clone().unwrap_or_default();
    let instance = shared
        .host
        .instance_id
        .clone()
        .unwrap_or_else(|| "local".into());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let points = data(&shared.status(), &stack, &instance, ts);
        if let Err(e) = cw.put("Ethnode", &points).await {
            tracing::warn!(error = %e, "CloudWatch push failed; next in {}s", every.as_secs());
        }
    }
}
