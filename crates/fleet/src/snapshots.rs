//! Snapshot bookkeeping as plain functions: the rows `ethnode snapshot list` shows and what `prune` may
//! delete. The rules live here once, for the CLI and the agent's automatic mode alike.

use ethnode_aws::Snapshot;
use std::collections::HashSet;

/// One line of `ethnode snapshot list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotRow {
    /// `snap-…`
    pub id: String,
    /// Block number at the time (tag `ethnode:block`).
    pub block: Option<u64>,
    /// Seconds since it started.
    pub age_secs: i64,
    /// Source volume size.
    pub size_gib: i32,
    /// `pending`, `completed`, …
    pub state: String,
    /// `100%`, …
    pub progress: Option<String>,
    /// Whether the stack's ChainSnapshotId is this one.
    pub promoted: bool,
    /// Whether a volume was created from it and still exists.
    pub in_use: bool,
    /// `manual`, `auto`, `final` (tag `ethnode:reason`).
    pub reason: Option<String>,
}

/// Rows for `snapshots` (newest first) as of `now` (epoch seconds).
pub fn snapshot_rows(
    snapshots: &[Snapshot],
    promoted: Option<&str>,
    in_use: &HashSet<String>,
    now: i64,
) -> Vec<SnapshotRow> {
    snapshots
        .iter()
        .map(|s| SnapshotRow {
            id: s.id.clone(),
            block: s.tag("ethnode:block").and_then(|b| b.parse().ok()),
            age_secs: (now - s.taken_ms() / 1000).max(0),
            size_gib: s.volume_size_gib,
            state: s.state.clone(),
            progress: s.progress.clone(),
            promoted: promoted == Some(s.id.as_str()),
            in_use: in_use.contains(&s.id),
            reason: s.tag("ethnode:reason").map(str::to_owned),
        })
        .collect()
}

/// Which snapshots `prune --keep N` deletes: everything but the `keep` newest completed ones, and never
/// the promoted one, one a volume was made from, or one still being taken.
pub fn prune_plan(
    snapshots: &[Snapshot],
    keep: usize,
    promoted: Option<&str>,
    in_use: &HashSet<String>,
) -> Vec<String> {
    let mut newest: Vec<&Snapshot> = snapshots.iter().collect();
    newest.sort_by_key(|s| std::cmp::Reverse(s.taken_ms()));
    newest
        .iter()
        .filter(|s| s.state == "completed")
        .skip(keep)
        .filter(|s| promoted != Some(s.id.as_str()) && !in_use.contains(&s.id))
        .map(|s| s.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, t: i64, state: &str, block: u64) -> Snapshot {
        Snapshot {
            id: id.into(),
            volume_id: Some("vol-1".into()),
            state: state.into(),
            progress: Some("100%".into()),
            started: None,
            started_ms: t * 1000,
            volume_size_gib: 2048,
            tags: vec![
                ("ethnode:block".into(), block.to_string()),
                ("ethnode:reason".into(), "auto".into()),
            ],
        }
    }

    #[test]
    fn prune_keeps_newest_promoted_in_use_and_pending() {
        let snaps = vec![
            snap("snap-a", 100, "completed", 1),
            snap("snap-b", 200, "completed", 2),
            snap("snap-c", 300, "completed", 3),
            snap("snap-d", 400, "completed", 4),
            snap("snap-e", 500, "pending", 5),
            snap("snap-f", 50, "completed", 0),
        ];
        let in_use: HashSet<String> = ["snap-b".to_string()].into();
        // Keep 1 newest completed (d); a is promoted, b in use, e pending: c and f go.
        let mut plan = prune_plan(&snaps, 1, Some("snap-a"), &in_use);
        plan.sort();
        assert_eq!(plan, vec!["snap-c", "snap-f"]);
        assert!(prune_plan(&snaps, 10, None, &HashSet::new()).is_empty());
        let all = prune_plan(&snaps, 0, None, &HashSet::new());
        assert_eq!(
            all.len(),
            5,
            "everything completed, nothing pending: {all:?}"
        );
    }

    #[test]
    fn rows_carry_block_age_and_flags() {
        let snaps = vec![snap("snap-a", 1_000, "completed", 42)];
        let rows = snapshot_rows(&snaps, Some("snap-a"), &HashSet::new(), 4_600);
        assert_eq!(rows[0].block, Some(42));
        assert_eq!(rows[0].age_secs, 3_600);
        assert!(rows[0].promoted && !rows[0].in_use);
        assert_eq!(rows[0].reason.as_deref(), Some("auto"));
    }
}
