//! The lag monitor: every slot, the head of each of our nodes against the median head of reference
//! providers, in blocks; whether they agree on the block hash at our height; alarms with hysteresis; and
//! the sinks (Prometheus, CloudWatch, a JSONL time series) and the chart built from that series.
//!
//! The evaluation ([`evaluate`]) is a pure function of what the endpoints answered, so the rules (median,
//! exclusion of a lagging reference, hash agreement, hysteresis) are tested without a network; [`Monitor`]
//! adds the requests, at most one per reference per round.

mod lambda;
mod report;
mod round;
mod sinks;

pub use ethnode_chain::{Answer, BlockHead};
pub use lambda::handle_scheduled_event;
pub use report::{Summary, render_chart, summarize};
pub use round::{AlarmState, Monitor, NodeResult, ReferenceResult, RoundResult, Verdict, evaluate};
pub use sinks::{CLOUDWATCH_METRICS, Sinks, cloudwatch_data, prometheus_text};
