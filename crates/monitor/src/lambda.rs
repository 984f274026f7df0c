//! The monitor as an AWS Lambda function: each EventBridge scheduled event runs one round and sends it
//! to CloudWatch, where the stack's alarms (lag > N for M periods, missing data) watch it. The runtime
//! glue (`lambda_runtime`) is in the binary; this is the handler it calls.

use crate::{Monitor, RoundResult, Sinks};
use tokio::sync::Mutex;

/// Handles one invocation. The monitor lives across warm invocations, so the hash memory and the
/// alarm hysteresis carry over; a cold start begins afresh (CloudWatch's M-of-N alarm does not care).
pub async fn handle_scheduled_event(
    monitor: &Mutex<Monitor>,
    sinks: &Sinks,
    event: &serde_json::Value,
) -> Result<RoundResult, String> {
    // EventBridge schedules send {"source": "aws.events", "detail-type": "Scheduled Event", …}; a manual
    // test invocation may send anything. Only a malformed "source" is refused.
    if let Some(source) = event.get("source")
        && !source.is_string()
    {
        return Err(format!("unexpected event: source is {source}"));
    }
    let round = monitor.lock().await.round().await;
    sinks.observe(&round);
    sinks
        .send_cloudwatch(&round)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        reference_head = ?round.reference_head,
        nodes = round.nodes.len(),
        "monitor round (lambda)"
    );
    Ok(round)
}
