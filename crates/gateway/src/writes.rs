//! Read-your-writes. Behind a balancer, the read right after a send may go to a node that has not seen the
//! transaction yet: the pending nonce comes back one short (and the caller reuses it), the transaction
//! looks unknown. For [`TTL`] after a transaction is sent through the gateway:
//!
//! - `eth_getTransactionCount(sender, "pending")` is at least its nonce + 1, whichever node answers;
//! - `eth_getTransactionByHash` and `eth_getTransactionReceipt` for it go first to the node that took it
//!   (and, as any lookup by hash, to the others when that one answers `null`).
//!
//! The sender is recovered from the signature (alloy's k256), the same recovery a node does on receipt.

use crate::pool::Upstream;
use alloy::consensus::Transaction as _;
use alloy::consensus::transaction::SignerRecoverable as _;
use alloy::eips::Decodable2718 as _;
use alloy::primitives::Address;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a send is remembered: longer than a node takes to see a transaction another one took.
pub const TTL: Duration = Duration::from_secs(120);

/// At most this many sends remembered (the oldest go first).
const MAX: usize = 100_000;

/// What the gateway remembers of the transactions sent through it.
#[derive(Debug, Default)]
pub struct Writes {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Sender → the next nonce after its last send, and until when.
    senders: HashMap<Address, (u64, Instant)>,
    /// Transaction hash → the upstream that took it, and until when.
    txs: HashMap<String, (Arc<Upstream>, Instant)>,
    /// Sends in order, for expiry.
    order: VecDeque<(Instant, Address, String)>,
}

/// A raw transaction's sender and nonce; `None` when it cannot be read (the node has refused it anyway).
pub fn sender_and_nonce(raw_hex: &str) -> Option<(Address, u64)> {
    let bytes = alloy::primitives::hex::decode(raw_hex).ok()?;
    let tx = alloy::consensus::TxEnvelope::decode_2718(&mut bytes.as_slice()).ok()?;
    let from = tx.recover_signer().ok()?;
    Some((from, tx.nonce()))
}

impl Writes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a transaction `upstream` took.
    pub fn record(&self, from: Address, nonce: u64, hash: &str, upstream: Arc<Upstream>) {
        let now = Instant::now();
        let until = now + TTL;
        let mut i = self.lock();
        // Expired, or too many: the oldest go.
        while let Some((at, a, h)) = i.order.front().cloned() {
            if now.duration_since(at) < TTL && i.order.len() < MAX {
                break;
            }
            i.order.pop_front();
            if i.senders.get(&a).is_some_and(|(_, u)| *u <= at + TTL) {
                i.senders.remove(&a);
            }
            if i.txs.get(&h).is_some_and(|(_, u)| *u <= at + TTL) {
                i.txs.remove(&h);
            }
        }
        let next = nonce.saturating_add(1);
        let e = i.senders.entry(from).or_insert((next, until));
        *e = (e.0.max(next), until);
        let hash = hash.to_ascii_lowercase();
        i.txs.insert(hash.clone(), (upstream, until));
        i.order.push_back((now, from, hash));
    }

    /// The pending nonce `address` has at least, after what it sent through the gateway.
    pub fn next_nonce(&self, address: &str) -> Option<u64> {
        let a: Address = address.parse().ok()?;
        let i = self.lock();
        let (n, until) = i.senders.get(&a)?;
        (Instant::now() < *until).then_some(*n)
    }

    /// The upstream that took transaction `hash`, while remembered.
    pub fn holder(&self, hash: &str) -> Option<Arc<Upstream>> {
        let i = self.lock();
        let (u, until) = i.txs.get(&hash.to_ascii_lowercase())?;
        (Instant::now() < *until).then(|| u.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_and_nonce_are_read_from_signed_transactions() {
        // Made by `cast mktx` with anvil's first two keys: a legacy EIP-155 transaction (nonce 7) from
        // 0xf39f…2266 and an EIP-1559 one (nonce 3) from 0x7099…79c8.
        let legacy = "0xf86507843b9aca008252089470997970c51812dc3a010c7d01b50e0d17dc79c8808082f4f5a008a2e5c8eaed960075695b8eaf3a65589f20b258371343745b38ac74b7da2c58a03c97fbde5fa21941f828a95a3b11a42da4d3d24d1f05dcab0ccbc62efe017457";
        let eip1559 = "0x02f868827a690301847735940082520894f39fd6e51aad88f6f4ce6ab8827279cfffb922660180c080a09bea07e20138e5e92ed2c5b2f9f68da8e15fe3a3ef7e8a12ddfe7bceb2c5f011a063b5333b4be8042feb30dbee4036fdb7c1a79b0623809751176d05a5ac144137";
        let alice: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap();
        let bob: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap();
        assert_eq!(sender_and_nonce(legacy), Some((alice, 7)));
        assert_eq!(sender_and_nonce(eip1559), Some((bob, 3)));
        assert!(sender_and_nonce("0x1234").is_none());
        assert!(sender_and_nonce("not hex").is_none());
    }
}
