//! One round: ask everyone for their head, take the references' median, and judge each node.

use alloy::eips::BlockNumberOrTag;
use alloy::providers::RootProvider;
use ethnode_chain::{self as probe, Answer, BlockHead};
use ethnode_config::{MonitorSection, redact_url};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a node is, this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// At (or ahead of) the references' head.
    AtHead,
    /// Behind, on the same chain as far as can be told.
    Behind,
    /// A different block at the same height than the references: a fork or a reorg on one side.
    Forked,
    /// The node did not answer.
    Unreachable,
    /// No usable reference answered: nothing to compare with.
    NoReference,
}

/// A reference's part in the round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceResult {
    /// URL without path or query (they may hold a key).
    pub url: String,
    /// Answered and was counted.
    pub ok: bool,
    /// Its head.
    pub head: Option<u64>,
    /// Round-trip time.
    pub latency_ms: f64,
    /// Why it was not counted although it answered.
    pub excluded: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// A node's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResult {
    /// URL without path or query.
    pub url: String,
    /// Its head.
    pub head: Option<u64>,
    /// Reference head minus node head, in blocks (negative: the node is ahead).
    pub lag: Option<i64>,
    /// Seconds since the node's head block.
    pub head_age_secs: Option<u64>,
    /// Whether the node and the references have the same block at a common height (None: unknown yet).
    pub hash_agrees: Option<bool>,
    /// The verdict.
    pub verdict: Verdict,
    /// Whether this node's alarm is on (after hysteresis).
    pub alarm: bool,
    /// Round-trip time.
    pub latency_ms: f64,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// One round, as printed by `--once --json` and appended to the JSONL series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// Unix seconds.
    pub ts: u64,
    /// The references' median head (after exclusions).
    pub reference_head: Option<u64>,
    /// Each reference.
    pub references: Vec<ReferenceResult>,
    /// Each node.
    pub nodes: Vec<NodeResult>,
    /// How long the round took, milliseconds.
    #[serde(default)]
    pub duration_ms: f64,
}

/// Hysteresis state of one node's alarm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmState {
    bad_rounds: u32,
    good_rounds: u32,
    on: bool,
}

impl AlarmState {
    fn update(&mut self, bad: bool, cfg: &MonitorSection) -> bool {
        if bad {
            self.bad_rounds += 1;
            self.good_rounds = 0;
            if self.bad_rounds >= cfg.alarm_rounds {
                self.on = true;
            }
        } else {
            self.good_rounds += 1;
            self.bad_rounds = 0;
            if self.good_rounds >= cfg.clear_rounds {
                self.on = false;
            }
        }
        self.on
    }
}

/// Upper median: with two references, the higher one (a reference stuck behind must not pull us down).
fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Judges one round. `ahead_hashes[i]` is node i's own block hash at a height the references reached,
/// with that height, asked only when the node is ahead of them (compared at that same height: the
/// references' head after exclusion may differ from the height it was asked at); `seen` holds the references' block hashes by number from this and earlier
/// rounds (updated here), which is how a node behind is compared without asking a paid reference again.
pub fn evaluate(
    nodes: &[(String, Answer)],
    references: &[(String, Answer)],
    ahead_hashes: &[Option<(u64, String)>],
    seen: &mut BTreeMap<u64, String>,
    alarms: &mut HashMap<String, AlarmState>,
    cfg: &MonitorSection,
    now: u64,
) -> RoundResult {
    let answered: Vec<u64> = references
        .iter()
        .filter_map(|(_, a)| a.head.as_ref().ok().map(|h| h.number))
        .collect();
    let first_median = median(answered);
    let mut refs = Vec::new();
    let mut counted: Vec<&BlockHead> = Vec::new();
    for (url, a) in references {
        let mut r = ReferenceResult {
            url: redact_url(url),
            ok: false,
            head: None,
            latency_ms: ms(a.latency),
            excluded: None,
            error: None,
        };
        match &a.head {
            Err(e) => r.error = Some(e.clone()),
            Ok(h) => {
                r.head = Some(h.number);
                let behind = first_median.map_or(0, |m| m.saturating_sub(h.number));
                if behind > cfg.reference_max_spread {
                    r.excluded = Some(format!(
                        "{behind} blocks behind the references' median (more than {})",
                        cfg.reference_max_spread
                    ));
                } else {
                    r.ok = true;
                    counted.push(h);
                }
            }
        }
        refs.push(r);
    }
    let reference_head = median(counted.iter().map(|h| h.number).collect());
    // The references' view of each height: the hash most of them report (the latest round wins).
    let mut votes: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    for h in &counted {
        *votes.entry((h.number, h.hash.as_str())).or_default() += 1;
    }
    let mut best: BTreeMap<u64, (&str, usize)> = BTreeMap::new();
    for ((n, hash), count) in votes {
        if best.get(&n).is_none_or(|(_, c)| count > *c) {
            best.insert(n, (hash, count));
        }
    }
    for (n, (hash, _)) in best {
        seen.insert(n, hash.to_owned());
    }
    // A bounded memory: a day of slots.
    while seen.len() > 7200 {
        seen.pop_first();
    }

    let mut out_nodes = Vec::new();
    for (i, (url, a)) in nodes.iter().enumerate() {
        let key = redact_url(url);
        let mut n = NodeResult {
            url: key.clone(),
            head: None,
            lag: None,
            head_age_secs: None,
            hash_agrees: None,
            verdict: Verdict::Unreachable,
            alarm: false,
            latency_ms: ms(a.latency),
            error: None,
        };
        match &a.head {
            Err(e) => n.error = Some(e.clone()),
            Ok(h) => {
                n.head = Some(h.number);
                n.head_age_secs = Some(now.saturating_sub(h.timestamp));
                n.lag = reference_head.map(|r| r as i64 - h.number as i64);
                n.hash_agrees = match reference_head {
                    Some(r) if h.number > r => ahead_hashes
                        .get(i)
                        .cloned()
                        .flatten()
                        .and_then(|(height, ours)| seen.get(&height).map(|theirs| &ours == theirs)),
                    _ => seen.get(&h.number).map(|theirs| *theirs == h.hash),
                };
                n.verdict = match (reference_head, n.hash_agrees, n.lag) {
                    (None, _, _) => Verdict::NoReference,
                    (_, Some(false), _) => Verdict::Forked,
                    (_, _, Some(lag)) if lag > 0 => Verdict::Behind,
                    _ => Verdict::AtHead,
                };
            }
        }
        let bad = match n.verdict {
            Verdict::Unreachable | Verdict::Forked => Some(true),
            Verdict::Behind => Some(n.lag.unwrap_or(0) >= cfg.alarm_lag_blocks as i64),
            Verdict::AtHead => Some(false),
            // Silent references say nothing about us either way: the alarm holds as it was.
            Verdict::NoReference => None,
        };
        let alarm = alarms.entry(key).or_default();
        n.alarm = match bad {
            Some(bad) => alarm.update(bad, cfg),
            None => alarm.on,
        };
        out_nodes.push(n);
    }
    RoundResult {
        ts: now,
        reference_head,
        references: refs,
        nodes: out_nodes,
        duration_ms: 0.0,
    }
}

/// The monitor: clients for every endpoint, the references' hashes seen so far, the alarms.
pub struct Monitor {
    cfg: MonitorSection,
    nodes: Vec<(String, RootProvider)>,
    references: Vec<(String, RootProvider)>,
    seen: BTreeMap<u64, String>,
    alarms: HashMap<String, AlarmState>,
}

impl Monitor {
    /// Clients for `nodes` and `references` (full URLs, keys included; never logged).
    pub fn new(
        cfg: MonitorSection,
        nodes: &[String],
        references: &[String],
    ) -> Result<Self, String> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let make = |urls: &[String]| -> Result<Vec<(String, RootProvider)>, String> {
            urls.iter()
                .map(|u| Ok((u.clone(), probe::client(u, timeout)?)))
                .collect()
        };
        Ok(Self {
            nodes: make(nodes)?,
            references: make(references)?,
            cfg,
            seen: BTreeMap::new(),
            alarms: HashMap::new(),
        })
    }

    /// Replaces the node list (re-resolved each round: replaced nodes come and go). Clients of nodes still
    /// listed are kept; the alarm state of nodes no longer listed is dropped.
    pub fn set_nodes(&mut self, nodes: &[String]) -> Result<(), String> {
        if self.nodes.iter().map(|(u, _)| u).eq(nodes.iter()) {
            return Ok(());
        }
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let mut next = Vec::with_capacity(nodes.len());
        for url in nodes {
            let client = match self.nodes.iter().find(|(u, _)| u == url) {
                Some((_, p)) => p.clone(),
                None => probe::client(url, timeout)?,
            };
            next.push((url.clone(), client));
        }
        let keep: std::collections::HashSet<String> = nodes.iter().map(|u| redact_url(u)).collect();
        self.alarms.retain(|k, _| keep.contains(k));
        self.nodes = next;
        Ok(())
    }

    /// The node URLs watched now.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(|(u, _)| u.clone()).collect()
    }

    /// One round: every endpoint once, in parallel, each bounded by the timeout.
    pub async fn round(&mut self) -> RoundResult {
        let started = std::time::Instant::now();
        let ask = |list: &[(String, RootProvider)]| {
            list.iter()
                .map(|(_, p)| {
                    let p = p.clone();
                    tokio::spawn(async move { probe::latest(&p).await })
                })
                .collect::<Vec<_>>()
        };
        let node_tasks = ask(&self.nodes);
        let ref_tasks = ask(&self.references);
        let mut node_answers = Vec::new();
        for ((url, _), t) in self.nodes.iter().zip(node_tasks) {
            node_answers.push((url.clone(), join(t).await));
        }
        let mut ref_answers = Vec::new();
        for ((url, _), t) in self.references.iter().zip(ref_tasks) {
            ref_answers.push((url.clone(), join(t).await));
        }
        // Nodes ahead of the references: their own block at the references' height (free to ask).
        let numbers: Vec<u64> = ref_answers
            .iter()
            .filter_map(|(_, a)| a.head.as_ref().ok().map(|h| h.number))
            .collect();
        let rough = median(numbers);
        let mut ahead = Vec::new();
        for ((_, p), (_, a)) in self.nodes.iter().zip(&node_answers) {
            let hash = match (rough, &a.head) {
                (Some(r), Ok(h)) if h.number > r => probe::block(p, BlockNumberOrTag::Number(r))
                    .await
                    .head
                    .ok()
                    .map(|b| (r, b.hash)),
                _ => None,
            };
            ahead.push(hash);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut result = evaluate(
            &node_answers,
            &ref_answers,
            &ahead,
            &mut self.seen,
            &mut self.alarms,
            &self.cfg,
            now,
        );
        result.duration_ms = ms(started.elapsed());
        result
    }
}

async fn join(task: tokio::task::JoinHandle<Answer>) -> Answer {
    task.await.unwrap_or_else(|e| Answer {
        head: Err(format!("probe task failed: {e}")),
        latency: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(number: u64, hash: &str, ts: u64) -> Answer {
        Answer {
            head: Ok(BlockHead {
                number,
                hash: hash.into(),
                timestamp: ts,
                parent_hash: String::new(),
            }),
            latency: Duration::from_millis(5),
        }
    }

    fn down() -> Answer {
        Answer {
            head: Err("connection refused".into()),
            latency: Duration::from_millis(1),
        }
    }

    fn cfg() -> MonitorSection {
        MonitorSection::default()
    }

    #[test]
    fn median_excludes_a_lagging_reference_and_ignores_a_failed_one() {
        let mut seen = BTreeMap::new();
        let mut alarms = HashMap::new();
        let r = evaluate(
            &[
                ("http://n1/".into(), ans(100, "0xa", 990)),
                ("http://n2/".into(), ans(105, "0xb", 995)),
            ],
            &[
                ("https://r1/v3/KEY".into(), ans(108, "0xr", 1000)),
                ("https://r2/".into(), ans(108, "0xr", 1000)),
                ("https://r3/".into(), ans(90, "0xold", 800)),
                ("https://r4/".into(), down()),
            ],
            &[None, None],
            &mut seen,
            &mut alarms,
            &cfg(),
            1000,
        );
        assert_eq!(r.reference_head, Some(108));
        assert_eq!(r.nodes[0].lag, Some(8));
        assert_eq!(r.nodes[1].lag, Some(3));
        assert_eq!(r.nodes[0].head_age_secs, Some(10));
        assert_eq!(r.nodes[0].verdict, Verdict::Behind);
        assert!(
            r.references[2]
                .excluded
                .as_ref()
                .unwrap()
                .contains("18 blocks behind")
        );
        assert!(!r.references[3].ok && r.references[3].error.is_some());
        assert_eq!(
            r.references[0].url, "https://r1/…",
            "keys never leave the process"
        );
    }

    #[test]
    fn hash_agreement_uses_hashes_seen_in_earlier_rounds() {
        let mut seen = BTreeMap::new();
        let mut alarms = HashMap::new();
        let refs = |n, h: &str| vec![("https://r/".to_string(), ans(n, h, 0))];
        // Round 1: the reference is at 100 with 0xaaa.
        evaluate(
            &[],
            &refs(100, "0xaaa"),
            &[],
            &mut seen,
            &mut alarms,
            &cfg(),
            0,
        );
        // Round 2: the reference moved on; our node is at 100 — same block, or not.
        let same = evaluate(
            &[("http://n/".into(), ans(100, "0xaaa", 0))],
            &refs(102, "0xccc"),
            &[None],
            &mut seen,
            &mut alarms,
            &cfg(),
            0,
        );
        assert_eq!(same.nodes[0].hash_agrees, Some(true));
        assert_eq!(same.nodes[0].verdict, Verdict::Behind);
        let fork = evaluate(
            &[("http://n/".into(), ans(100, "0xfff", 0))],
            &refs(102, "0xccc"),
            &[None],
            &mut seen,
            &mut alarms,
            &cfg(),
            0,
        );
        assert_eq!(fork.nodes[0].hash_agrees, Some(false));
        assert_eq!(fork.nodes[0].verdict, Verdict::Forked);
        // A node ahead is compared through its own block at the reference height.
        let ahead = evaluate(
            &[("http://n/".into(), ans(104, "0xddd", 0))],
            &refs(102, "0xccc"),
            &[Some((102, "0xccc".into()))],
            &mut seen,
            &mut alarms,
            &cfg(),
            0,
        );
        assert_eq!(ahead.nodes[0].lag, Some(-2));
        assert_eq!(ahead.nodes[0].verdict, Verdict::AtHead);
        assert_eq!(ahead.nodes[0].hash_agrees, Some(true));
        // The hash was fetched at the height of all references' median (102) while a lagging reference's
        // exclusion moves the head used for lags to 103: the comparison stays at 102, not "forked".
        let refs3 = vec![
            ("https://r1/".to_string(), ans(103, "0xeee", 0)),
            ("https://r2/".to_string(), ans(102, "0xccc", 0)),
            ("https://r3/".to_string(), ans(90, "0xold", 0)),
        ];
        let excluded = evaluate(
            &[("http://n/".into(), ans(104, "0xddd", 0))],
            &refs3,
            &[Some((102, "0xccc".into()))],
            &mut seen,
            &mut alarms,
            &cfg(),
            0,
        );
        assert_eq!(excluded.nodes[0].hash_agrees, Some(true), "{excluded:?}");
        assert_eq!(excluded.nodes[0].verdict, Verdict::AtHead);
    }

    #[test]
    fn alarm_needs_consecutive_bad_rounds_and_clears_with_hysteresis() {
        let mut seen = BTreeMap::new();
        let mut alarms = HashMap::new();
        let c = MonitorSection {
            alarm_lag_blocks: 3,
            alarm_rounds: 3,
            clear_rounds: 2,
            ..cfg()
        };
        let mut round = |node: u64| {
            // Same chain: a block's hash is its number.
            let hash = format!("0x{node}");
            evaluate(
                &[("http://n/".into(), ans(node, &hash, 0))],
                &[("https://r/".into(), ans(100, "0x100", 0))],
                &[None],
                &mut seen,
                &mut alarms,
                &c,
                0,
            )
            .nodes[0]
                .alarm
        };
        // behind 5, 5, (recovers) 100, 5, 5, 5 → on at the third consecutive; off after two good rounds.
        let seq: Vec<bool> = [95, 95, 100, 95, 95, 95, 100, 95, 100, 100]
            .iter()
            .map(|n| round(*n))
            .collect();
        assert_eq!(
            seq,
            vec![
                false, false, false, false, false, true, true, true, true, false
            ]
        );
    }

    #[test]
    fn no_reference_is_not_our_lag() {
        let mut seen = BTreeMap::new();
        let mut alarms = HashMap::new();
        let r = evaluate(
            &[("http://n/".into(), ans(10, "0x1", 0))],
            &[("https://r/".into(), down())],
            &[None],
            &mut seen,
            &mut alarms,
            &cfg(),
            0,
        );
        assert_eq!(r.reference_head, None);
        assert_eq!(r.nodes[0].lag, None);
        assert_eq!(r.nodes[0].verdict, Verdict::NoReference);
        assert!(!r.nodes[0].alarm);
    }

    #[test]
    fn an_alarm_holds_while_the_references_are_silent() {
        let mut seen = BTreeMap::new();
        let mut alarms = HashMap::new();
        let mut round = |node: u64, reference: Option<u64>| {
            let r = match reference {
                Some(h) => ans(h, "0xr", 0),
                None => down(),
            };
            evaluate(
                &[("http://n/".into(), ans(node, "0xr", 0))],
                &[("https://r/".into(), r)],
                &[None],
                &mut seen,
                &mut alarms,
                &cfg(),
                0,
            )
            .nodes[0]
                .alarm
        };
        // Far behind for enough rounds: on.
        let on = (0..5).map(|_| round(10, Some(100))).last().unwrap();
        assert!(on);
        // The references go silent for longer than clear_rounds: the alarm stays on.
        for _ in 0..5 {
            assert!(
                round(10, None),
                "an alarm cleared while no reference answered"
            );
        }
        // They answer again and we are at head: it clears after clear_rounds good rounds.
        let cleared = (0..5).map(|_| round(100, Some(100))).last().unwrap();
        assert!(!cleared);
    }

    #[test]
    fn a_new_node_list_replaces_the_old_and_forgets_gone_nodes_alarms() {
        let old = "http://10.0.1.2:8545/".to_string();
        let new = "http://10.0.1.3:8545/".to_string();
        let mut m = Monitor::new(cfg(), std::slice::from_ref(&old), &[]).unwrap();
        m.alarms.insert(redact_url(&old), AlarmState::default());
        m.set_nodes(&[old.clone(), new.clone()]).unwrap();
        assert_eq!(m.nodes(), vec![old.clone(), new.clone()]);
        assert!(m.alarms.contains_key(&redact_url(&old)));
        m.set_nodes(std::slice::from_ref(&new)).unwrap();
        assert_eq!(m.nodes(), vec![new]);
        assert!(
            m.alarms.is_empty(),
            "the replaced node's alarm state is gone"
        );
    }
}
