//! The upstreams and which of them may answer now: each one's head is tracked (ethnode-chain's tracker,
//! the same head question the agent and the monitor ask); eligible = answering, head seen recently, at most
//! `max_lag_blocks` behind the served tip. A head never observed is not "0 behind". Fallbacks (paid
//! providers) are asked once a slot and used only when no primary is eligible.

use ethnode_chain::{BlockHead, Tracked};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One upstream node.
#[derive(Debug)]
pub struct Upstream {
    /// Its URL without path or query (they may hold a key): for logs and the debug header.
    pub name: String,
    /// Where requests go.
    pub url: String,
    /// Used only when no primary is eligible.
    pub fallback: bool,
    /// How often its head is asked for.
    pub poll: Duration,
    tracked: watch::Receiver<Tracked>,
    /// Requests it answered.
    pub served: AtomicU64,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl Upstream {
    /// Starts tracking `url`'s head every `every`.
    pub fn new(
        url: &str,
        fallback: bool,
        every: Duration,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = ethnode_chain::client(url, timeout)?;
        let (tracked, task) = ethnode_chain::track(client, every);
        Ok(Self {
            name: ethnode_config::redact_url(url),
            url: url.to_owned(),
            fallback,
            poll: every,
            tracked,
            served: AtomicU64::new(0),
            _task: task,
        })
    }

    /// What is known of it now.
    pub fn tracked(&self) -> Tracked {
        self.tracked.borrow().clone()
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

/// The upstreams.
#[derive(Debug)]
pub struct Pool {
    upstreams: Vec<Arc<Upstream>>,
    rules: Rules,
    next: AtomicUsize,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One upstream as routing sees it: fallback or not, its poll interval, what is known of it.
pub type View = (bool, Duration, Tracked);

/// Which of the views may serve, given the rules; `tip` is the highest fresh head among them.
pub fn eligible(
    views: &[View],
    rules: &Rules,
    now: Instant,
    unix: u64,
) -> (Option<u64>, Vec<usize>) {
    fn fresh<'a>(v: &'a View, rules: &Rules, now: Instant, unix: u64) -> Option<&'a BlockHead> {
        let (_, poll, t) = v;
        let head = t.head.as_ref()?;
        let seen = t.seen_at?;
        // Seen within its own polls: a fallback asked once a slot is as fresh as a node asked every second.
        (t.healthy
            && now.duration_since(seen) <= *poll * rules.max_missed_polls
            && unix.saturating_sub(head.timestamp) <= rules.max_head_age.as_secs())
        .then_some(head)
    }
    let fresh = |v| fresh(v, rules, now, unix);
    let tip = views.iter().filter_map(fresh).map(|h| h.number).max();
    let ok = |i: usize, fallback: bool| {
        views[i].0 == fallback
            && fresh(&views[i])
                .zip(tip)
                .is_some_and(|(h, tip)| h.number + rules.max_lag_blocks >= tip)
    };
    let primaries: Vec<usize> = (0..views.len()).filter(|&i| ok(i, false)).collect();
    if !primaries.is_empty() {
        return (tip, primaries);
    }
    (tip, (0..views.len()).filter(|&i| ok(i, true)).collect())
}

impl Pool {
    /// A pool over these upstreams.
    pub fn new(upstreams: Vec<Arc<Upstream>>, rules: Rules) -> Self {
        Self {
            upstreams,
            rules,
            next: AtomicUsize::new(0),
        }
    }

    /// Every upstream.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The upstreams that may serve now, rotated so that load spreads (`sticky`: in configured order, so
    /// that filter calls find the node that holds the filter); empty when none is at head.
    pub fn candidates(&self, sticky: bool) -> Vec<Arc<Upstream>> {
        let views: Vec<View> = self
            .upstreams
            .iter()
            .map(|u| (u.fallback, u.poll, u.tracked()))
            .collect();
        let (_, ok) = eligible(&views, &self.rules, Instant::now(), unix_now());
        if ok.is_empty() {
            return Vec::new();
        }
        let start = if sticky {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % ok.len()
        };
        ok.iter()
            .cycle()
            .skip(start)
            .take(ok.len())
            .map(|&i| self.upstreams[i].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(number: u64, healthy: bool, unix: u64, now: Instant) -> Tracked {
        Tracked {
            head: Some(BlockHead {
                number,
                hash: format!("0x{number:x}"),
                timestamp: unix - 2,
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
        let (tip, ok) = eligible(&views, &RULES, now, unix);
        assert_eq!((tip, ok), (Some(100), vec![0, 1]));
    }

    #[test]
    fn fallbacks_only_when_no_primary_is_at_head_and_stale_heads_do_not_count() {
        let now = Instant::now();
        let unix = 1_000_000;
        let mut frozen = at(100, true, unix, now);
        frozen.head.as_mut().unwrap().timestamp = unix - 3600;
        let slot = Duration::from_secs(12);
        let views = vec![(false, SEC, frozen), (true, slot, at(105, true, unix, now))];
        assert_eq!(eligible(&views, &RULES, now, unix).1, vec![1]);
        let views = vec![
            (false, SEC, at(105, true, unix, now)),
            (true, slot, at(105, true, unix, now)),
        ];
        assert_eq!(eligible(&views, &RULES, now, unix).1, vec![0]);
        // Seen 10 s ago: too long for a node polled every second, recent for a fallback polled every slot.
        let mut old = at(105, true, unix, now);
        old.seen_at = Some(now - Duration::from_secs(10));
        assert!(
            eligible(&[(false, SEC, old.clone())], &RULES, now, unix)
                .1
                .is_empty()
        );
        assert_eq!(eligible(&[(true, slot, old)], &RULES, now, unix).1, vec![0]);
    }
}
