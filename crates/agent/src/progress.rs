//! Sync progress from Reth's own Prometheus metrics: `eth_syncing` cannot give it (Reth reports
//! `highestBlock == currentBlock` and lists its stage checkpoints alphabetically, and during backfill the
//! current block does not move), so the agent reads the per-stage gauges Reth exports
//! (`reth_sync_checkpoint`, `reth_sync_entities_processed`, `reth_sync_entities_total`, label `stage`;
//! reth `crates/stages/api/src/metrics/sync_metrics.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Reth's default pipeline in the order it runs (reth `crates/stages/stages/src/sets.rs`, `DefaultStages`;
/// names from `StageId::as_str` in `crates/stages/types/src/id.rs`).
pub(crate) const RETH_STAGES: &[&str] = &[
    "Era",
    "Headers",
    "Bodies",
    "SenderRecovery",
    "Execution",
    "PruneSenderRecovery",
    "MerkleUnwind",
    "AccountHashing",
    "StorageHashing",
    "MerkleExecute",
    "TransactionLookup",
    "IndexStorageHistory",
    "IndexAccountHistory",
    "Prune",
    "Finish",
];

/// One stage's gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StageGauges {
    pub(crate) checkpoint: Option<u64>,
    pub(crate) processed: Option<u64>,
    pub(crate) total: Option<u64>,
}

/// Reads the three sync series out of a Prometheus text exposition. Hand-written rather than a parser
/// crate: three known series with one label need a dozen lines, and the crates pull in regex and chrono.
pub(crate) fn parse_reth_metrics(text: &str) -> BTreeMap<String, StageGauges> {
    let mut out: BTreeMap<String, StageGauges> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("reth_sync_") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Some(stage) = labels.split(',').find_map(|l| {
            l.trim()
                .strip_prefix("stage=\"")
                .and_then(|v| v.strip_suffix('"'))
        }) else {
            continue;
        };
        // A sample may carry a timestamp after the value; gauges are floats in the exposition.
        let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
        else {
            continue;
        };
        let g = out.entry(stage.to_owned()).or_default();
        let v = Some(v as u64);
        match name {
            "checkpoint" => g.checkpoint = v,
            "entities_processed" => g.processed = v,
            "entities_total" => g.total = v,
            _ => {}
        }
    }
    out
}

/// The stage that runs now: the first in pipeline order whose checkpoint is behind the target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Running {
    /// Stage name.
    pub(crate) name: &'static str,
    /// 1-based position among the stages Reth reports …
    pub(crate) index: usize,
    /// … of this many.
    pub(crate) of: usize,
    /// Its gauges.
    pub(crate) gauges: StageGauges,
}

/// The running stage for `target`, among the stages Reth reports (a stage it does not export, e.g. `Era`
/// when no ERA files are configured, is not part of this pipeline).
pub(crate) fn running_stage(
    stages: &BTreeMap<String, StageGauges>,
    target: u64,
) -> Option<Running> {
    let present: Vec<&'static str> = RETH_STAGES
        .iter()
        .copied()
        .filter(|n| stages.contains_key(*n))
        .collect();
    present.iter().enumerate().find_map(|(i, name)| {
        let g = stages[*name];
        (g.checkpoint.unwrap_or(0) < target).then_some(Running {
            name,
            index: i + 1,
            of: present.len(),
            gauges: g,
        })
    })
}

/// The block sync is heading for, when the consensus client does not say: the highest checkpoint (Headers
/// runs first and downloads down from the tip).
pub(crate) fn highest_checkpoint(stages: &BTreeMap<String, StageGauges>) -> Option<u64> {
    stages.values().filter_map(|g| g.checkpoint).max()
}

/// Rate of one counter over the last five minutes of samples, reset when what it counts changes (a new
/// stage starts from zero).
#[derive(Debug, Default)]
pub(crate) struct Rate {
    key: String,
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Adds a sample of `key`'s counter and returns units per second (None until two samples).
    pub(crate) fn sample(&mut self, key: &str, now: Instant, value: u64) -> Option<f64> {
        if self.key != key || self.samples.back().is_some_and(|(_, v)| *v > value) {
            self.key = key.to_owned();
            self.samples.clear();
        }
        self.samples.push_back((now, value));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(300))
        {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, v0)), Some((t1, v1))) if t1 > t0 => {
                Some((v1 - v0) as f64 / t1.duration_since(*t0).as_secs_f64())
            }
            _ => None,
        }
    }

    /// Forgets every sample (the node is synced).
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }
}

/// Seconds until `remaining` units are done at `rate`; none when that is not known or nothing remains.
pub(crate) fn eta(remaining: u64, rate: Option<f64>) -> Option<f64> {
    match rate {
        Some(r) if r > 0.0 && remaining > 0 => Some(remaining as f64 / r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Reth's exporter writes (metrics-exporter-prometheus): HELP/TYPE lines, a `stage` label.
    const RETH: &str = r#"# HELP reth_sync_checkpoint The block number of the last commit for a stage.
# TYPE reth_sync_checkpoint gauge
reth_sync_checkpoint{stage="AccountHashing"} 0
reth_sync_checkpoint{stage="Bodies"} 21000000
reth_sync_checkpoint{stage="Execution"} 12000000
reth_sync_checkpoint{stage="Finish"} 0
reth_sync_checkpoint{stage="Headers"} 21000000
reth_sync_checkpoint{stage="SenderRecovery"} 21000000
reth_sync_checkpoint{stage="MerkleExecute"} 0
# TYPE reth_sync_entities_processed gauge
reth_sync_entities_processed{stage="Execution"} 1500000000
reth_sync_entities_total{stage="Execution"} 2500000000
reth_sync_entities_processed{stage="Headers"} 21000000
reth_sync_entities_total{stage="Headers"} 21000000
reth_sync_total_elapsed{stage="Headers"} 1234.5
reth_network_connected_peers 57
"#;

    #[test]
    fn the_running_stage_is_the_first_behind_in_pipeline_order_not_alphabetical() {
        let m = parse_reth_metrics(RETH);
        assert_eq!(m["Execution"].processed, Some(1_500_000_000));
        assert_eq!(m["Execution"].total, Some(2_500_000_000));
        assert_eq!(m["Headers"].checkpoint, Some(21_000_000));
        // Alphabetically AccountHashing (checkpoint 0) would come first; the pipeline runs Execution now.
        let r = running_stage(&m, 21_000_000).unwrap();
        // Reported here: Headers, Bodies, SenderRecovery, Execution, AccountHashing, MerkleExecute, Finish.
        assert_eq!((r.name, r.index, r.of), ("Execution", 4, 7));
        assert_eq!(highest_checkpoint(&m), Some(21_000_000));
        // Headers still downloading towards a newer tip.
        assert_eq!(running_stage(&m, 21_000_100).unwrap().name, "Headers");
        // Every stage at the target: nothing runs.
        let done = parse_reth_metrics(
            "reth_sync_checkpoint{stage=\"Headers\"} 7\nreth_sync_checkpoint{stage=\"Finish\"} 7\n",
        );
        assert_eq!(running_stage(&done, 7), None);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let m = parse_reth_metrics(
            "reth_sync_checkpoint{stage=\"Headers\"} NaN\nreth_sync_checkpoint{stage=\"Bodies\"}\n\
             reth_sync_checkpoint{other=\"x\"} 5\nreth_sync_checkpoint{stage=\"Execution\"} 9 1700000000\n",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m["Execution"].checkpoint, Some(9));
    }

    #[test]
    fn rates_restart_with_a_new_stage_and_eta_is_absent_when_unknown() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.sample("Execution", t0, 1_000), None);
        let rate = r.sample("Execution", t0 + Duration::from_secs(10), 6_000);
        assert_eq!(rate, Some(500.0));
        assert_eq!(eta(10_000, rate), Some(20.0));
        // A new stage counts from zero: no rate from the old stage's samples.
        assert_eq!(
            r.sample("MerkleExecute", t0 + Duration::from_secs(20), 5),
            None
        );
        assert_eq!(eta(10_000, None), None);
        assert_eq!(eta(0, Some(5.0)), None);
        assert_eq!(eta(10, Some(0.0)), None);
    }
}
