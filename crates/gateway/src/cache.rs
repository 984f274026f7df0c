//! A cache for answers that cannot change, keyed so that a reorg can never make one wrong:
//!
//! - `eth_chainId`, `net_version`: forever.
//! - Lookups by block hash (`eth_getBlockByHash`, …): a block's hash fixes its content.
//! - Transactions and receipts by hash: they name their block, and a hit is served only while that block
//!   is canonical (among the feed's recent heads with that hash, or older than them and final); otherwise
//!   it is counted `stale`, dropped and asked again.
//! - Anything that reads one block by number (`latest` included, once pinned to the served tip), or a
//!   `eth_getLogs` range: keyed by the hash that number has on the canonical chain now (or by the number
//!   itself once final). After a reorg the number resolves to another hash, so the old answer is simply
//!   never found again.
//!
//! Only results are kept (no errors, no `null`: "not found" may mean "not yet"). Memory is bounded by
//! bytes (keys and answers), evicted by quick_cache's S3-FIFO; a crate rather than hand-written LRU because
//! it is sharded for the workers' threads and weighs entries by size.

use crate::feed::Canon;
use crate::route::Plan;
use crate::rpc::Call;
use axum::body::Bytes;
use serde_json::value::RawValue;

/// Which block a transaction or receipt came from: served only while that block is canonical.
#[derive(Debug, Clone)]
struct Anchor {
    number: u64,
    hash: String,
}

#[derive(Debug, Clone)]
struct Entry {
    result: Bytes,
    anchor: Option<Anchor>,
}

#[derive(Debug, Clone)]
struct Weigh;

impl quick_cache::Weighter<String, Entry> for Weigh {
    fn weight(&self, key: &String, e: &Entry) -> u64 {
        // What the entry holds, and roughly what the map spends on it.
        (key.len() + e.result.len() + e.anchor.as_ref().map_or(0, |a| a.hash.len()) + 96) as u64
    }
}

/// How a request may be cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub text: String,
    /// Its answer names a block (a transaction, a receipt): checked on every hit.
    pub anchored: bool,
    /// The block (number, canonical hash) the key names by hash: still canonical when the answer is
    /// kept, and the answer must be that block's.
    pub block: Option<(u64, String)>,
    /// Params to send instead, naming the block by hash (state reads, EIP-1898), so that the answer is
    /// that block's whichever node gives it.
    pub send: Option<String>,
    /// The answer says which block it is from (a block, a transaction in it, its receipts): kept only when
    /// that is `block`.
    pub names_block: bool,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// The result, as JSON text.
    Hit(Bytes),
    /// Not there.
    Miss,
    /// There, but from a block no longer canonical (dropped).
    Stale,
}

/// The answers cache; `None` inside when turned off.
#[derive(Debug)]
pub struct Cache {
    inner: Option<quick_cache::sync::Cache<String, Entry, Weigh>>,
}

impl Cache {
    /// A cache of at most `bytes` (0: off).
    pub fn new(bytes: u64) -> Self {
        // quick_cache sizes its tables from an item count: assume answers of about a kilobyte.
        let items = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).max(16);
        Self {
            inner: (bytes > 0)
                .then(|| quick_cache::sync::Cache::with_weighter(items, bytes, Weigh)),
        }
    }

    /// Whether it is on.
    pub fn on(&self) -> bool {
        self.inner.is_some()
    }

    /// Looks `key` up; an anchored entry is checked against `canon`.
    pub fn get(&self, key: &Key, canon: &Canon) -> Found {
        let Some(c) = &self.inner else {
            return Found::Miss;
        };
        let Some(e) = c.get(&key.text) else {
            return Found::Miss;
        };
        match &e.anchor {
            None => Found::Hit(e.result),
            Some(a) => match holds(canon, a) {
                Some(true) => Found::Hit(e.result),
                Some(false) => {
                    c.remove(&key.text);
                    Found::Stale
                }
                // The block is newer than the feed has seen: not served, kept.
                None => Found::Miss,
            },
        }
    }

    /// Keeps `result` (JSON text) under `key` when it is one to keep: not `null`; for an anchored key one
    /// that names its block; for a key by block hash, one that names that block where the answer names
    /// one, and that block still canonical (`canonical(number, hash)`, asked last: it takes the chain's
    /// lock, and the answer is read before).
    pub fn put(&self, key: &Key, result: &RawValue, canonical: impl FnOnce(u64, &str) -> bool) {
        let Some(c) = &self.inner else { return };
        let text = result.get();
        if text == "null" {
            return;
        }
        if let Some((n, hash)) = &key.block {
            if key.names_block && !from_block(text).is_some_and(|h| h.eq_ignore_ascii_case(hash)) {
                return;
            }
            // The chain may have moved while the request was out.
            if !canonical(*n, hash) {
                return;
            }
        }
        let anchor = if key.anchored {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct A {
                block_hash: Option<String>,
                block_number: Option<alloy::primitives::U64>,
            }
            // A pending transaction (no block yet) changes when mined: not kept.
            match serde_json::from_str::<A>(text) {
                Ok(A {
                    block_hash: Some(hash),
                    block_number: Some(n),
                }) => Some(Anchor {
                    number: n.to(),
                    hash,
                }),
                _ => return,
            }
        } else {
            None
        };
        c.insert(
            key.text.clone(),
            Entry {
                result: Bytes::copy_from_slice(text.as_bytes()),
                anchor,
            },
        );
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, quick_cache::sync::Cache::weight)
    }
}

/// Whether the anchor's block is canonical; `None`: not known. What the feed keeps is trusted only while
/// it follows an upstream (otherwise it may not have seen a reorg).
fn holds(canon: &Canon, a: &Anchor) -> Option<bool> {
    if !canon.live && canon.hash(a.number).is_some() {
        return None;
    }
    canon.holds(a.number, &a.hash)
}

/// The block an answer says it is from: a block's `hash`, a transaction's `blockHash`, the first
/// receipt's `blockHash`.
fn from_block(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Named {
        hash: Option<String>,
        block_hash: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum One {
        Object(Named),
        List(Vec<Named>),
    }
    match serde_json::from_str::<One>(text).ok()? {
        One::Object(n) => n.block_hash.or(n.hash),
        One::List(l) => l.into_iter().next()?.block_hash,
    }
}

/// Methods whose answer says which block it is from (so that one from another branch is not kept).
const NAMES_BLOCK: &[&str] = &[
    "eth_getBlockByNumber",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getBlockReceipts",
];

/// How `call`, planned as `plan`, may be cached against the canonical chain now; `None`: not at all.
pub fn key(call: &Call, plan: &Plan, canon: &Canon) -> Option<Key> {
    let m = call.method.as_str();
    let params = plan
        .params
        .as_deref()
        .or(call.params.as_deref().map(RawValue::get))
        .unwrap_or("[]");
    let plain = |anchored| {
        Some(Key {
            text: format!("{m}{params}"),
            anchored,
            block: None,
            send: None,
            names_block: false,
        })
    };
    match m {
        "eth_chainId" | "net_version" => Some(Key {
            text: m.to_owned(),
            anchored: false,
            block: None,
            send: None,
            names_block: false,
        }),
        "eth_getBlockByHash"
        | "eth_getBlockTransactionCountByHash"
        | "eth_getUncleCountByBlockHash"
        | "eth_getTransactionByBlockHashAndIndex"
        | "eth_getUncleByBlockHashAndIndex" => plain(false),
        "eth_getTransactionByHash" | "eth_getTransactionReceipt" => plain(true),
        _ => {
            let n = plan.at?;
            if canon.finalized.is_some_and(|f| n <= f) && canon.hash(n).is_none() {
                // Final and older than the recent heads: no reorg reaches it.
                return Some(Key {
                    text: format!("{m}{params}@final"),
                    anchored: false,
                    block: None,
                    send: None,
                    names_block: false,
                });
            }
            let hash = canon.hash(n).filter(|_| canon.live)?;
            // By number above finality: only what can be pinned to that block's hash (a state read
            // sent by hash) or checked against it (an answer that names its block). A range of logs, fee
            // history and the like are kept once final only.
            let send = crate::route::at_hash(call, plan, hash);
            let names_block = NAMES_BLOCK.contains(&m);
            if send.is_none() && !names_block {
                return None;
            }
            Some(Key {
                text: format!("{m}{params}@{hash}"),
                anchored: false,
                block: Some((n, hash.to_owned())),
                send,
                names_block,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route;
    use crate::rpc::{Incoming, parse};

    fn call(v: &str) -> Call {
        match parse(v.as_bytes(), 10).unwrap() {
            Incoming::Single(c) => c,
            Incoming::Batch(_) => panic!(),
        }
    }

    fn canon(hashes: &[&str], first: u64, finalized: u64) -> Canon {
        Canon::new(
            first,
            hashes.iter().map(|h| (*h).to_owned()).collect(),
            Some(finalized),
            true,
        )
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    /// `put`'s check against `c`, as the server makes it against the feed's chain.
    fn on(c: &Canon) -> impl FnOnce(u64, &str) -> bool + '_ {
        move |n, h| c.follows(n, h)
    }

    #[test]
    fn a_number_is_keyed_by_its_hash_so_a_reorg_never_finds_the_old_answer() {
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab","latest"]}"#,
        );
        let p = route::plan(&c, Some(11)).unwrap();
        let before = canon(&["0xa", "0xb"], 10, 2);
        let after = canon(&["0xa", "0xc"], 10, 2);
        let k1 = key(&c, &p, &before).unwrap();
        let k2 = key(&c, &p, &after).unwrap();
        assert_ne!(k1, k2);
        assert_eq!(
            k1.send.as_deref(),
            Some(r#"["0xab",{"blockHash":"0xb"}]"#),
            "sent by hash: the answer is that block's"
        );
        let cache = Cache::new(1 << 20);
        cache.put(&k1, &raw(r#""0x1""#), on(&before));
        assert!(matches!(cache.get(&k1, &before), Found::Hit(_)));
        assert!(matches!(cache.get(&k2, &after), Found::Miss));
        // Past what the feed has seen, or while it follows nobody: not cached at all.
        assert!(key(&c, &route::plan(&c, Some(12)).unwrap(), &before).is_none());
        let mut stale = before.clone();
        stale.live = false;
        assert!(key(&c, &p, &stale).is_none());
        // Pending is not one block's state.
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionCount","params":["0xab","pending"]}"#,
        );
        assert!(key(&c, &route::plan(&c, Some(11)).unwrap(), &before).is_none());
        // Final and older than the recent heads: by number.
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x1",false]}"#,
        );
        let k = key(&c, &route::plan(&c, Some(11)).unwrap(), &before).unwrap();
        assert!(k.text.ends_with("@final"), "{k:?}");
        // A block by number above finality: kept only when the answer is the canonical block.
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0xb",false]}"#,
        );
        let k = key(&c, &route::plan(&c, Some(11)).unwrap(), &before).unwrap();
        let cache = Cache::new(1 << 20);
        cache.put(
            &k,
            &raw(r#"{"hash":"0xother","number":"0xb"}"#),
            on(&before),
        );
        assert!(
            matches!(cache.get(&k, &before), Found::Miss),
            "another branch's block"
        );
        cache.put(&k, &raw(r#"{"hash":"0xb","number":"0xb"}"#), on(&after));
        assert!(
            matches!(cache.get(&k, &before), Found::Miss),
            "no longer canonical"
        );
        cache.put(&k, &raw(r#"{"hash":"0xb","number":"0xb"}"#), on(&before));
        assert!(matches!(cache.get(&k, &before), Found::Hit(_)));
        // Logs above finality: not by number at all.
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0xa","toBlock":"0xb"}]}"#,
        );
        assert!(key(&c, &route::plan(&c, Some(11)).unwrap(), &before).is_none());
    }

    #[test]
    fn a_receipt_is_served_only_while_its_block_is_canonical_and_nulls_are_not_kept() {
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionReceipt","params":["0x01"]}"#,
        );
        let p = route::plan(&c, Some(11)).unwrap();
        let before = canon(&["0xa", "0xb"], 10, 2);
        let k = key(&c, &p, &before).unwrap();
        assert!(k.anchored);
        let cache = Cache::new(1 << 20);
        cache.put(&k, &raw("null"), on(&before));
        assert!(matches!(cache.get(&k, &before), Found::Miss));
        cache.put(
            &k,
            &raw(r#"{"blockHash":null,"blockNumber":null}"#),
            on(&before),
        );
        assert!(
            matches!(cache.get(&k, &before), Found::Miss),
            "pending: not kept"
        );
        cache.put(
            &k,
            &raw(r#"{"blockHash":"0xb","blockNumber":"0xb"}"#),
            on(&before),
        );
        assert!(matches!(cache.get(&k, &before), Found::Hit(_)));
        let after = canon(&["0xa", "0xc"], 10, 2);
        assert!(matches!(cache.get(&k, &after), Found::Stale));
        assert!(matches!(cache.get(&k, &before), Found::Miss), "dropped");
    }

    #[test]
    fn memory_is_bounded() {
        let cache = Cache::new(64 * 1024);
        let big = raw(&format!("\"{}\"", "f".repeat(1000)));
        for i in 0..1000 {
            let k = Key {
                text: format!("eth_getBlockByHash[\"0x{i:x}\"]"),
                anchored: false,
                block: None,
                send: None,
                names_block: false,
            };
            cache.put(&k, &big, on(&Canon::default()));
        }
        assert!(cache.weight() <= 64 * 1024, "{}", cache.weight());
        assert!(!Cache::new(0).on());
    }
}
