//! Who may call and how much: API keys (kept as SHA-256 hashes), a per-key method allowlist and a per-key
//! rate limit (a token bucket: requests per second with a burst). The bucket is a few lines under a
//! mutex rather than the `governor` crate: one lock per request is not measurable next to a network
//! round trip, and it keeps five crates out of the build.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A key's SHA-256 (keys are kept and compared as hashes).
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A rate: `per_sec` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second.
    pub per_sec: f64,
    /// Requests at once.
    pub burst: f64,
}

/// Why a caller's requests are refused now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limited {
    /// The bucket is short: this many seconds until it is not.
    Wait(f64),
    /// More requests at once (a batch) than the burst: split it into batches of at most this.
    OverBurst(u64),
}

impl Limited {
    /// What to tell the caller.
    pub fn message(&self) -> String {
        match self {
            Limited::Wait(s) => format!(
                "rate limit of this key reached: retry after {} s, or ask for a higher limit",
                s.ceil().max(1.0)
            ),
            Limited::OverBurst(b) => format!(
                "this batch is larger than this key's burst of {b} requests: split it into batches of at most {b}"
            ),
        }
    }
}

/// What one key may do.
#[derive(Debug, Clone)]
pub struct KeyRules {
    /// Its name in metrics and logs (never the key).
    pub name: String,
    /// Its SHA-256.
    pub hash: [u8; 32],
    /// Its rate limit; none: unlimited.
    pub rate: Option<Rate>,
    /// The methods it may call (`eth_*` for a prefix); none: every method the policy allows.
    pub methods: Option<Vec<String>>,
}

/// A caller's state.
#[derive(Debug)]
pub struct Caller {
    /// Its name, fixed for the process (a metrics label).
    pub name: &'static str,
    rate: Option<Rate>,
    methods: Option<Vec<String>>,
    bucket: Mutex<(f64, Instant)>,
    /// The highest `eth_blockNumber` it was told (it never goes backwards).
    pub last_block: AtomicU64,
    /// Its open WebSocket connections.
    pub sockets: AtomicUsize,
}

impl Caller {
    fn new(name: &str, rate: Option<Rate>, methods: Option<Vec<String>>) -> Self {
        Self {
            // Names are fixed at start and few: leaked once, they label metrics without allocating.
            name: Box::leak(name.to_owned().into_boxed_str()),
            rate,
            methods,
            bucket: Mutex::new((rate.map_or(0.0, |r| r.burst), Instant::now())),
            last_block: AtomicU64::new(0),
            sockets: AtomicUsize::new(0),
        }
    }

    /// Takes `n` tokens, or says why not.
    pub fn take(&self, n: usize) -> Result<(), Limited> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let n = n as f64;
        if n > rate.burst {
            // Never there at once, however long the caller waits.
            return Err(Limited::OverBurst(rate.burst as u64));
        }
        let mut b = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let tokens = (b.0 + now.duration_since(b.1).as_secs_f64() * rate.per_sec).min(rate.burst);
        b.1 = now;
        if tokens >= n {
            b.0 = tokens - n;
            Ok(())
        } else {
            b.0 = tokens;
            Err(Limited::Wait(((n - tokens) / rate.per_sec).max(0.001)))
        }
    }

    /// The key's allowlist admits `method`.
    pub fn may_call(&self, method: &str) -> bool {
        self.methods.as_ref().is_none_or(|allowed| {
            allowed.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => method.starts_with(prefix),
                None => a == method,
            })
        })
    }

    /// Raises the block number this caller was told to at least `n`; returns the one to tell it.
    pub fn block_number(&self, n: u64) -> u64 {
        self.last_block.fetch_max(n, Ordering::Relaxed).max(n)
    }
}

/// The keys.
#[derive(Debug)]
pub struct Access {
    keys: HashMap<[u8; 32], Arc<Caller>>,
    anonymous: Option<Arc<Caller>>,
}

impl Access {
    /// Keys with their rules; with none, every caller is one anonymous caller limited by `default_rate`.
    pub fn new(keys: Vec<KeyRules>, default_rate: Option<Rate>) -> Self {
        let anonymous = keys
            .is_empty()
            .then(|| Arc::new(Caller::new("anonymous", default_rate, None)));
        let keys = keys
            .into_iter()
            .map(|k| {
                let rate = k.rate.or(default_rate);
                (k.hash, Arc::new(Caller::new(&k.name, rate, k.methods)))
            })
            .collect();
        Self { keys, anonymous }
    }

    /// Whether keys are needed.
    pub fn needs_key(&self) -> bool {
        self.anonymous.is_none()
    }

    /// The caller for `key`; `None` when the key is missing or unknown and keys are needed.
    pub fn caller(&self, key: Option<&str>) -> Option<Arc<Caller>> {
        if let Some(a) = &self.anonymous {
            return Some(a.clone());
        }
        self.keys.get(&key_hash(key?)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_burst_then_the_rate_and_says_when() {
        let c = Caller::new(
            "k",
            Some(Rate {
                per_sec: 10.0,
                burst: 3.0,
            }),
            None,
        );
        assert!(c.take(3).is_ok());
        let Err(Limited::Wait(wait)) = c.take(1) else {
            panic!("the burst is spent")
        };
        assert!(wait > 0.0 && wait <= 0.1, "{wait}");
        assert_eq!(
            c.take(100),
            Err(Limited::OverBurst(3)),
            "more than the burst is never there at once"
        );
        assert!(Limited::OverBurst(3).message().contains("at most 3"));
    }

    #[test]
    fn allowlists_take_names_and_prefixes_and_keys_are_matched_by_hash() {
        let a = Access::new(
            vec![KeyRules {
                name: "reader".into(),
                hash: key_hash("s3cret"),
                rate: None,
                methods: Some(vec!["eth_get*".into(), "eth_chainId".into()]),
            }],
            None,
        );
        assert!(a.caller(None).is_none() && a.caller(Some("other")).is_none());
        let c = a.caller(Some("s3cret")).unwrap();
        assert!(c.may_call("eth_getLogs") && c.may_call("eth_chainId"));
        assert!(!c.may_call("eth_sendRawTransaction") && !c.may_call("eth_chainIdX"));
        assert_eq!(
            (c.block_number(5), c.block_number(3)),
            (5, 5),
            "never backwards"
        );
    }
}
