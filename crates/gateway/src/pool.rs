//! The upstreams and which of them may answer now. Each one's head is tracked by ethnode-chain's tracker
//! (the same head question the agent and the monitor ask); a task turns those heads into a [`Snapshot`]
//! every 100 ms, so that a request reads one shared value instead of judging every upstream itself.
//!
//! - Fresh = answering, head seen within `max_missed_polls` of its own polls, block not older than
//!   `max_head_age`. A head never observed is not "0 behind".
//! - The served tip is the highest head that a majority of the fresh primaries are within `max_lag_blocks`
//!   of (with one or two primaries, the highest head): one upstream claiming an impossible head cannot
//!   evict an honest majority, and a node one block ahead or one block reorged is no fault.
//! - Nodes at the tip agree on its hash (see [`agreed`]).
//! - Eligible = fresh and at most `max_lag_blocks` behind the tip. Fallbacks (paid providers, asked once a
//!   slot) are judged among themselves and used only when no primary is eligible.

use ethnode_chain::Tracked;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One upstream node.
#[derive(Debug)]
pub struct Upstream {
    /// Its URL without path or query (they may hold a key): for logs, metrics and the debug header.
    pub name: String,
    /// The same, fixed for the process: a metrics label that costs no allocation. Upstreams are few and
    /// change only when nodes are replaced, so what this leaks stays small.
    pub label: &'static str,
    /// The URL as configured (it may hold a key: never logged), to tell upstreams apart.
    url: String,
    /// Where requests go.
    pub uri: hyper::Uri,
    /// Its WebSocket URL (subscriptions).
    pub ws: String,
    /// Used only when no primary is eligible.
    pub fallback: bool,
    /// How often its head is asked for.
    pub poll: Duration,
    tracked: watch::Receiver<Tracked>,
    /// Requests it answered.
    pub served: AtomicU64,
    /// When a request last found it unreachable.
    failed_at: std::sync::Mutex<Option<Instant>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self._task.abort();
    }
}

/// An upstream URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("upstream {name} is not a usable http(s) URL: {why}")]
pub struct BadUrl {
    /// The URL, redacted.
    pub name: String,
    /// What is wrong.
    pub why: String,
}

impl Upstream {
    /// Starts tracking `url`'s head every `every`. `url` may name the WebSocket URL after a comma
    /// (`http://h:8545,ws://h:8546`); otherwise it is the same address with ws:// (wss://).
    pub fn new(
        url: &str,
        fallback: bool,
        every: Duration,
        timeout: Duration,
    ) -> Result<Self, BadUrl> {
        let (url, ws) = match url.split_once(',') {
            Some((http, ws)) => (http.trim(), ws.trim().to_owned()),
            None => (url, url.replacen("http", "ws", 1)),
        };
        let name = ethnode_config::redact_url(url);
        let bad = |why: String| BadUrl {
            name: name.clone(),
            why,
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad("give an http:// or https:// URL".into()));
        }
        if !(ws.starts_with("ws://") || ws.starts_with("wss://")) {
            return Err(bad(
                "its WebSocket URL (after the comma) must start with ws:// or wss://".into(),
            ));
        }
        let client = ethnode_chain::client(url, timeout).map_err(bad)?;
        // Heads by subscription as well as by poll: the served tip moves when a block arrives. Not for a
        // fallback: a paid provider bills each notification, and an idle one gets a poll a slot only.
        let subscribe = (!fallback).then(|| ws.clone());
        let (tracked, task) = ethnode_chain::track_heads(client, subscribe, every);
        Ok(Self {
            label: Box::leak(name.clone().into_boxed_str()),
            name,
            url: url.to_owned(),
            uri,
            ws,
            fallback,
            poll: every,
            tracked,
            served: AtomicU64::new(0),
            failed_at: std::sync::Mutex::new(None),
            _task: task,
        })
    }

    /// What is known of it now: a request that found it unreachable since its last answered head poll
    /// makes it unhealthy at once, not a poll later (a dead node must stop getting first attempts within
    /// the 100 ms of a snapshot refresh); its next answered poll makes it healthy again.
    pub fn tracked(&self) -> Tracked {
        let mut t = self.tracked.borrow().clone();
        let failed = *self
            .failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = failed
            && t.seen_at.is_none_or(|seen| seen < f)
        {
            t.healthy = false;
        }
        t
    }

    /// A request could not reach it (connection refused or reset; not a slow answer).
    pub fn mark_unreachable(&self) {
        *self
            .failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }
}

/// Eligibility rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// At most this many blocks behind the served tip.
    pub max_lag_blocks: u64,
    /// The head must have been observed within this many of the upstream's own polls …
    pub max_missed_polls: u32,
    /// … and its block be at most this old (a node that answers but stopped following the chain).
    pub max_head_age: Duration,
}

/// Who may serve, as of the last refresh.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The upstreams it judged (indexes below are into this list).
    pub upstreams: Arc<[Arc<Upstream>]>,
    /// The served tip: `latest` means this block.
    pub tip: Option<u64>,
    /// The upstreams that may serve (primaries, or fallbacks when no primary may), by index.
    pub eligible: Vec<usize>,
    /// Each upstream's head when it is fresh (lagging or not); `None` when unknown or stale.
    pub heads: Vec<Option<u64>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.upstreams, &o.upstreams)
            && (self.tip, &self.eligible, &self.heads) == (o.tip, &o.eligible, &o.heads)
    }
}

/// One upstream as routing sees it: fallback or not, its poll interval, what is known of it.
pub type View = (bool, Duration, Tracked);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The highest head that a quorum of `heads` is within `lag` of: a majority from three up, one below.
fn tip(heads: &[u64], lag: u64) -> Option<u64> {
    let quorum = if heads.len() >= 3 {
        heads.len() / 2 + 1
    } else {
        1
    };
    heads
        .iter()
        .copied()
        .filter(|&h| {
            heads
                .iter()
                .filter(|&&o| o.saturating_add(lag) >= h)
                .count()
                >= quorum
        })
        .max()
}

/// The tip the nodes at it agree on by hash, and the nodes that hold another block there. On two blocks
/// at the tip (a reorg in flight, a node on a short fork) with one parent, the tip is that parent and
/// nobody is out (a one-block reorg is no fault). On a deeper split, a strict majority's block is the
/// tip and the others are out until they rejoin; without a majority the tip stays (the nodes' fork
/// choice settles it within a slot or two).
fn agreed(views: &[View], group: &[usize], tip: u64) -> (u64, Vec<usize>) {
    let at_tip: Vec<(usize, &ethnode_chain::BlockHead)> = group
        .iter()
        .filter_map(|&i| Some((i, views[i].2.head.as_ref()?)))
        .filter(|(_, h)| h.number == tip)
        .collect();
    let Some((_, first)) = at_tip.first() else {
        return (tip, Vec::new());
    };
    if at_tip.iter().all(|(_, h)| h.hash == first.hash) {
        return (tip, Vec::new());
    }
    let one_parent = at_tip
        .iter()
        .all(|(_, h)| !h.parent_hash.is_empty() && h.parent_hash == first.parent_hash);
    if one_parent && tip > 0 {
        return (tip - 1, Vec::new());
    }
    let count = |hash: &str| at_tip.iter().filter(|(_, h)| h.hash == hash).count();
    match at_tip
        .iter()
        .find(|(_, h)| 2 * count(&h.hash) > at_tip.len())
    {
        Some((_, winner)) => (
            tip,
            at_tip
                .iter()
                .filter(|(_, h)| h.hash != winner.hash)
                .map(|(i, _)| *i)
                .collect(),
        ),
        None => (tip, Vec::new()),
    }
}

/// Judges the views.
pub fn judge(views: &[View], rules: &Rules, now: Instant, unix: u64) -> Snapshot {
    let heads: Vec<Option<u64>> = views
        .iter()
        .map(|(_, poll, t)| {
            let head = t.head.as_ref()?;
            let seen = t.seen_at?;
            // Seen within its own polls: a fallback asked once a slot is as fresh as a node asked
            // every second.
            (t.healthy
                && now.duration_since(seen) <= *poll * rules.max_missed_polls
                && unix.saturating_sub(head.timestamp) <= rules.max_head_age.as_secs())
            .then_some(head.number)
        })
        .collect();
    for fallback in [false, true] {
        let group: Vec<usize> = (0..views.len())
            .filter(|&i| views[i].0 == fallback && heads[i].is_some())
            .collect();
        let numbers: Vec<u64> = group.iter().filter_map(|&i| heads[i]).collect();
        if let Some(tip) = tip(&numbers, rules.max_lag_blocks) {
            let (tip, forked) = agreed(views, &group, tip);
            let eligible = group
                .into_iter()
                .filter(|&i| {
                    !forked.contains(&i)
                        && heads[i].is_some_and(|h| h.saturating_add(rules.max_lag_blocks) >= tip)
                })
                .collect();
            return Snapshot {
                upstreams: Arc::from(Vec::new()),
                tip: Some(tip),
                eligible,
                heads,
            };
        }
    }
    Snapshot {
        upstreams: Arc::from(Vec::new()),
        tip: None,
        eligible: Vec::new(),
        heads,
    }
}

/// The upstreams.
#[derive(Debug)]
pub struct Pool {
    list: Arc<std::sync::RwLock<Arc<[Arc<Upstream>]>>>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    next: AtomicUsize,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl Pool {
    /// A pool over these upstreams; their snapshot is refreshed every 100 ms.
    pub fn new(upstreams: Vec<Arc<Upstream>>, rules: Rules) -> Self {
        let (tx, snapshot) = watch::channel(Arc::new(Snapshot::default()));
        let list: Arc<std::sync::RwLock<Arc<[Arc<Upstream>]>>> =
            Arc::new(std::sync::RwLock::new(Arc::from(upstreams)));
        let watched = list.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let upstreams = watched
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let views: Vec<View> = upstreams
                    .iter()
                    .map(|u| (u.fallback, u.poll, u.tracked()))
                    .collect();
                let mut s = judge(&views, &rules, Instant::now(), unix_now());
                s.upstreams = upstreams;
                tx.send_if_modified(|old| {
                    let changed = **old != s;
                    if changed {
                        *old = Arc::new(s);
                    }
                    changed
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Self {
            list,
            snapshot,
            next: AtomicUsize::new(0),
            _task: task,
        }
    }

    /// Every upstream now.
    pub fn upstreams(&self) -> Arc<[Arc<Upstream>]> {
        self.list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the primaries with `urls` (nodes replaced behind a DNS name): upstreams still listed
    /// keep their tracker and what it knows; fallbacks stay.
    pub fn set_primaries(
        &self,
        urls: &[String],
        every: Duration,
        timeout: Duration,
    ) -> Result<(), BadUrl> {
        let old = self.upstreams();
        let mut next: Vec<Arc<Upstream>> = Vec::new();
        for url in urls {
            match old.iter().find(|u| !u.fallback && u.url == *url) {
                Some(u) => next.push(u.clone()),
                None => next.push(Arc::new(Upstream::new(url, false, every, timeout)?)),
            }
        }
        next.extend(old.iter().filter(|u| u.fallback).cloned());
        *self
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::from(next);
        Ok(())
    }

    /// The last snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Who may serve a request that needs block `need` (`None`: any block): the eligible upstreams that
    /// have it, rotated so that load spreads, then fresh but lagging primaries that have it; `sticky`
    /// keeps the configured order, so that filter calls find the node that holds the filter. Empty when
    /// nobody may.
    pub fn candidates(&self, s: &Snapshot, need: Option<u64>, sticky: bool) -> Vec<usize> {
        let has = |i: usize| need.is_none_or(|n| s.heads[i].is_some_and(|h| h >= n));
        let ok: Vec<usize> = s.eligible.iter().copied().filter(|&i| has(i)).collect();
        let start = if sticky || ok.is_empty() {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % ok.len()
        };
        let mut out: Vec<usize> = ok
            .iter()
            .cycle()
            .skip(start)
            .take(ok.len())
            .copied()
            .collect();
        if need.is_some() {
            out.extend(
                (0..s.upstreams.len())
                    .filter(|&i| !s.upstreams[i].fallback && !s.eligible.contains(&i) && has(i)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethnode_chain::BlockHead;

    fn at(number: u64, healthy: bool, unix: u64, now: Instant) -> Tracked {
        Tracked {
            head: Some(BlockHead {
                number,
                hash: format!("0x{number:x}"),
                timestamp: unix - 2,
                parent_hash: format!("0x{:x}", number - 1),
            }),
            seen_at: Some(now),
            healthy,
            ..Tracked::default()
        }
    }

    const RULES: Rules = Rules {
        max_lag_blocks: 2,
        max_missed_polls: 3,
        max_head_age: Duration::from_secs(60),
    };
    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn lagging_dead_and_never_seen_upstreams_are_not_eligible() {
        let now = Instant::now();
        let unix = 1_000_000;
        let views = vec![
            (false, SEC, at(100, true, unix, now)),
            (false, SEC, at(99, true, unix, now)),
            (false, SEC, at(90, true, unix, now)),
            (false, SEC, at(100, false, unix, now)),
            (false, SEC, Tracked::default()),
        ];
        let s = judge(&views, &RULES, now, unix);
        assert_eq!((s.tip, s.eligible), (Some(100), vec![0, 1]));
        assert_eq!(s.heads, vec![Some(100), Some(99), Some(90), None, None]);
    }

    #[test]
    fn one_impossible_head_does_not_evict_the_majority_and_one_ahead_is_no_fault() {
        let now = Instant::now();
        let unix = 1_000_000;
        let views = vec![
            (false, SEC, at(100, true, unix, now)),
            (false, SEC, at(101, true, unix, now)),
            (false, SEC, at(100, true, unix, now)),
            (false, SEC, at(9_000_000, true, unix, now)),
        ];
        let s = judge(&views, &RULES, now, unix);
        assert_eq!(s.tip, Some(101), "the majority's head, not the liar's");
        // The liar is "ahead": it has every block up to the tip if it is honest, and requests for
        // `latest` are pinned to the tip's number, so it stays a candidate rather than a judge.
        assert_eq!(s.eligible, vec![0, 1, 2, 3]);
    }

    #[test]
    fn fallbacks_only_when_no_primary_is_at_head_and_stale_heads_do_not_count() {
        let now = Instant::now();
        let unix = 1_000_000;
        let mut frozen = at(100, true, unix, now);
        frozen.head.as_mut().unwrap().timestamp = unix - 3600;
        let slot = Duration::from_secs(12);
        let views = vec![(false, SEC, frozen), (true, slot, at(105, true, unix, now))];
        assert_eq!(judge(&views, &RULES, now, unix).eligible, vec![1]);
        let views = vec![
            (false, SEC, at(105, true, unix, now)),
            (true, slot, at(105, true, unix, now)),
        ];
        assert_eq!(judge(&views, &RULES, now, unix).eligible, vec![0]);
        // Seen 10 s ago: too long for a node polled every second, recent for a fallback polled every slot.
        let mut old = at(105, true, unix, now);
        old.seen_at = Some(now - Duration::from_secs(10));
        assert!(
            judge(&[(false, SEC, old.clone())], &RULES, now, unix)
                .eligible
                .is_empty()
        );
        assert_eq!(
            judge(&[(true, slot, old)], &RULES, now, unix).eligible,
            vec![0]
        );
    }

    #[test]
    fn nodes_at_the_tip_on_two_blocks_serve_their_common_parent() {
        let now = Instant::now();
        let unix = 1_000_000;
        let mut other = at(100, true, unix, now);
        other.head.as_mut().unwrap().hash = "0xother".into();
        let views = vec![
            (false, SEC, at(100, true, unix, now)),
            (false, SEC, other),
            (false, SEC, at(99, true, unix, now)),
        ];
        let s = judge(&views, &RULES, now, unix);
        assert_eq!(s.tip, Some(99), "block 100 is not agreed on; 99 is");
        assert_eq!(s.eligible, vec![0, 1, 2], "a one-block reorg is no fault");
        let views = vec![
            (false, SEC, at(100, true, unix, now)),
            (false, SEC, at(100, true, unix, now)),
        ];
        assert_eq!(judge(&views, &RULES, now, unix).tip, Some(100));
        // A deeper split (different parents too): the majority's block is the tip, the other node is out.
        let mut forked = at(100, true, unix, now);
        let h = forked.head.as_mut().unwrap();
        h.hash = "0xfork".into();
        h.parent_hash = "0xforkparent".into();
        let views = vec![
            (false, SEC, at(100, true, unix, now)),
            (false, SEC, forked),
            (false, SEC, at(100, true, unix, now)),
        ];
        let s = judge(&views, &RULES, now, unix);
        assert_eq!((s.tip, s.eligible), (Some(100), vec![0, 2]));
    }

    #[test]
    fn the_tip_needs_a_quorum_from_three_primaries() {
        assert_eq!(tip(&[110, 105], 2), Some(110), "two: the highest");
        assert_eq!(tip(&[110, 105, 105], 2), Some(105), "three: two agree");
        assert_eq!(tip(&[110, 109, 105], 2), Some(110));
        assert_eq!(tip(&[], 2), None);
    }
}
