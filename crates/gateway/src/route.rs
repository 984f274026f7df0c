//! What a request needs from an upstream, decided before it is sent: the block it reads (so that it goes
//! only to an upstream that has it), `latest` pinned to the served tip (so that every upstream answers
//! at the same height, whichever is chosen), and how its answer is judged (a `null` by-hash lookup may
//! only mean "not here yet"; `eth_blockNumber` never goes backwards; a raw transaction may be broadcast).

use crate::rpc::{self, Call};
use serde_json::value::RawValue;

/// How an answer is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Returned as it comes.
    Plain,
    /// A lookup (by hash, or of a block past the served tip): `null` from one upstream may only mean
    /// "not here yet", so the others are asked.
    Lookup,
    /// `eth_blockNumber`: never lower than what this caller was told before.
    BlockNumber,
    /// `eth_sendRawTransaction`: "already known" is success; may be broadcast.
    SendRaw,
    /// Filter calls: the filter lives in one node, so they stay on one.
    Filter,
    /// `eth_getTransactionCount(address, "pending")`: at least what the address sent through the gateway.
    PendingNonce,
}

/// A request, ready to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Its params as they go upstream when they were rewritten; `None`: as sent.
    pub params: Option<String>,
    /// The block it reads: only an upstream whose head is at least this has it.
    pub need: Option<u64>,
    /// How its answer is handled.
    pub kind: Kind,
    /// The one block whose content or state it reads, when it names one by number (`latest` pinned to the
    /// tip included; not `pending`): what the cache keys it by.
    pub at: Option<u64>,
    /// A block past the served tip (heads are a poll old) that the upstream must show it has before it
    /// is asked: for `eth_getLogs`, whose empty answer from an upstream short of the range looks like
    /// "no logs".
    pub confirm: Option<u64>,
}

/// Where the block parameter is, for the methods that take one.
fn block_param(method: &str) -> Option<(usize, bool)> {
    // (position, defaults to `latest` when omitted)
    Some(match method {
        "eth_getBlockByNumber"
        | "eth_getBlockTransactionCountByNumber"
        | "eth_getUncleCountByBlockNumber"
        | "eth_getTransactionByBlockNumberAndIndex"
        | "eth_getUncleByBlockNumberAndIndex"
        | "eth_getBlockReceipts" => (0, false),
        "eth_getBalance" | "eth_getCode" | "eth_getTransactionCount" | "eth_feeHistory" => {
            (1, false)
        }
        "eth_call" | "eth_estimateGas" | "eth_createAccessList" | "eth_simulateV1" => (1, true),
        "eth_getStorageAt" | "eth_getProof" => (2, false),
        _ => return None,
    })
}

/// Methods that read a block's state and take the block as an EIP-1898 object (`{"blockHash": …}`), as
/// geth, reth, nethermind and anvil do.
const STATE_READS: &[&str] = &[
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_getBalance",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getTransactionCount",
    "eth_getProof",
];

/// `call`'s params with its block named by `hash` (EIP-1898), for a state read planned at one block: the
/// answer is then that block's whichever node gives it (a node on another branch at that number says it
/// does not have the block, and is not asked again). `None` for any other method.
pub fn at_hash(call: &Call, plan: &Plan, hash: &str) -> Option<String> {
    let m = call.method.as_str();
    if !STATE_READS.contains(&m) {
        return None;
    }
    let (at, _) = block_param(m)?;
    let text = plan
        .params
        .as_deref()
        .or(call.params.as_deref().map(RawValue::get))?;
    let mut params: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let named = RawValue::from_string(format!(r#"{{"blockHash":"{hash}"}}"#)).ok()?;
    *params.get_mut(at)? = &named;
    serde_json::to_string(&params).ok()
}

fn hex(n: u64) -> String {
    format!("\"0x{n:x}\"")
}

fn number(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// A block parameter read: the block it needs, its text rewritten, and whether it names a hash.
#[derive(Debug, Default)]
struct Block {
    need: Option<u64>,
    rewrite: Option<String>,
    by_hash: bool,
    /// `need` is exactly the block read (not `pending`, which builds on it).
    exact: bool,
    /// `pending`.
    pending: bool,
}

fn block(raw: &RawValue, tip: Option<u64>) -> Result<Block, String> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum B<'a> {
        Tag(&'a str),
        Object {
            #[serde(rename = "blockNumber")]
            number: Option<&'a str>,
            #[serde(rename = "blockHash")]
            hash: Option<&'a str>,
        },
    }
    let at_tip = || Block {
        need: tip,
        rewrite: tip.map(hex),
        exact: true,
        ..Block::default()
    };
    Ok(match serde_json::from_str::<B>(raw.get()) {
        Ok(B::Tag("latest")) => at_tip(),
        // Pending builds on the latest block.
        Ok(B::Tag("pending")) => Block {
            need: tip,
            pending: true,
            ..Block::default()
        },
        Ok(B::Tag("earliest" | "safe" | "finalized")) => Block::default(),
        // A block hash given bare (geth and reth take one where a block is asked for).
        Ok(B::Tag(h)) if h.len() == 66 && h.starts_with("0x") => Block {
            by_hash: true,
            ..Block::default()
        },
        Ok(B::Tag(n)) => Block {
            need: Some(number(n).ok_or_else(|| {
                format!("invalid block {n}: give a 0x-hex number, latest, pending, safe, finalized or earliest")
            })?),
            exact: true,
            ..Block::default()
        },
        Ok(B::Object { hash: Some(_), .. }) => Block {
            by_hash: true,
            ..Block::default()
        },
        Ok(B::Object {
            number: Some(n), ..
        }) => Block {
            need: number(n),
            exact: true,
            ..Block::default()
        },
        // Let the node say what is wrong with it.
        _ => Block::default(),
    })
}

fn invalid(call: &Call, why: &str) -> String {
    rpc::error(call.id.as_deref(), rpc::INVALID_PARAMS, why)
}

/// Plans a call against the served tip. `Err` is the error answer.
pub fn plan(call: &Call, tip: Option<u64>) -> Result<Plan, String> {
    let m = call.method.as_str();
    let kind = match m {
        "eth_blockNumber" => Kind::BlockNumber,
        "eth_sendRawTransaction" => Kind::SendRaw,
        "eth_newFilter"
        | "eth_newBlockFilter"
        | "eth_newPendingTransactionFilter"
        | "eth_getFilterChanges"
        | "eth_getFilterLogs"
        | "eth_uninstallFilter" => Kind::Filter,
        "eth_getBlockByHash"
        | "eth_getBlockTransactionCountByHash"
        | "eth_getUncleCountByBlockHash"
        | "eth_getTransactionByHash"
        | "eth_getTransactionReceipt"
        | "eth_getTransactionByBlockHashAndIndex"
        | "eth_getUncleByBlockHashAndIndex" => Kind::Lookup,
        _ => Kind::Plain,
    };
    let plain = Plan {
        params: None,
        need: None,
        kind,
        at: None,
        confirm: None,
    };
    if m == "eth_getLogs" {
        return logs(call, tip);
    }
    let Some((at, defaults_to_latest)) = block_param(m) else {
        return Ok(plain);
    };
    // Named params: the node reads them; nothing to pin.
    let Some(mut params) = call.positional() else {
        return Ok(plain);
    };
    let b = match params.get(at) {
        Some(raw) => block(raw, tip).map_err(|e| invalid(call, &e))?,
        None if defaults_to_latest && params.len() == at => Block {
            need: tip,
            rewrite: tip.map(hex),
            by_hash: false,
            exact: true,
            pending: false,
        },
        None => return Ok(plain),
    };
    // A block past the tip may be out already (the tip is a poll old): `null` from one upstream is asked
    // of the others.
    let past_tip = matches!((b.need, tip), (Some(n), Some(t)) if n > t);
    let kind = if b.by_hash || (past_tip && kind == Kind::Plain) {
        Kind::Lookup
    } else if b.pending && m == "eth_getTransactionCount" {
        Kind::PendingNonce
    } else {
        kind
    };
    let params_text = match &b.rewrite {
        Some(r) => {
            let pinned =
                RawValue::from_string(r.clone()).map_err(|e| invalid(call, &e.to_string()))?;
            if at < params.len() {
                params[at] = &pinned;
            } else {
                params.push(&pinned);
            }
            Some(serde_json::to_string(&params).map_err(|e| invalid(call, &e.to_string()))?)
        }
        None => None,
    };
    Ok(Plan {
        params: params_text,
        need: b.need,
        kind,
        at: if b.exact { b.need } else { None },
        confirm: None,
    })
}

/// `eth_getLogs`: the range's end is the block needed, and `latest` is pinned to the tip, so that an
/// upstream whose head is short of the range never answers it (its empty list would look like "no logs").
fn logs(call: &Call, tip: Option<u64>) -> Result<Plan, String> {
    let plain = Plan {
        params: None,
        need: None,
        kind: Kind::Plain,
        at: None,
        confirm: None,
    };
    let Some(params) = call.positional() else {
        return Ok(plain);
    };
    let Some(filter) = params.first() else {
        return Ok(plain);
    };
    let Ok(mut f) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(filter.get())
    else {
        return Ok(plain);
    };
    if f.contains_key("blockHash") {
        return Ok(Plan {
            kind: Kind::Lookup,
            ..plain
        });
    }
    let mut need: Option<u64> = None;
    let mut exact = true;
    let mut changed = false;
    for key in ["fromBlock", "toBlock"] {
        let text = f
            .get(key)
            .map_or_else(|| "\"latest\"".to_string(), |v| v.to_string());
        let raw = RawValue::from_string(text).map_err(|e| invalid(call, &e.to_string()))?;
        let b = block(&raw, tip).map_err(|e| invalid(call, &format!("{key}: {e}")))?;
        if let Some(r) = b.rewrite {
            f.insert(
                key.to_owned(),
                serde_json::from_str(&r).map_err(|e| invalid(call, &e.to_string()))?,
            );
            changed = true;
        }
        need = need.max(b.need);
        exact &= b.exact;
    }
    let confirm = match (need, tip) {
        (Some(n), Some(t)) if n > t => Some(n),
        _ => None,
    };
    let rewritten = if changed {
        let mut rest: Vec<String> = params[1..].iter().map(|p| p.get().to_owned()).collect();
        rest.insert(0, serde_json::Value::Object(f).to_string());
        Some(format!("[{}]", rest.join(",")))
    } else {
        None
    };
    Ok(Plan {
        params: rewritten,
        need,
        kind: Kind::Plain,
        // The range's last block fixes every block before it.
        at: if exact { need } else { None },
        confirm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Incoming, parse};
    use serde_json::{Value, json};

    fn call(v: Value) -> Call {
        match parse(v.to_string().as_bytes(), 10).unwrap() {
            Incoming::Single(c) => c,
            Incoming::Batch(_) => panic!(),
        }
    }

    fn params(p: &Plan) -> Value {
        serde_json::from_str::<Value>(p.params.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn latest_and_omitted_blocks_are_pinned_to_the_tip() {
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab","latest"]}),
        );
        let p = plan(&c, Some(0x20)).unwrap();
        assert_eq!((params(&p), p.need), (json!(["0xab", "0x20"]), Some(0x20)));
        let c = call(json!({"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to":"0xab"}]}));
        let p = plan(&c, Some(0x20)).unwrap();
        assert_eq!(params(&p), json!([{"to":"0xab"}, "0x20"]));
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x5", false]}),
        );
        let p = plan(&c, Some(0x20)).unwrap();
        assert_eq!((p.params, p.need), (None, Some(5)));
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x21", false]}),
        );
        assert_eq!(
            plan(&c, Some(0x20)).unwrap().kind,
            Kind::Lookup,
            "past the tip: null is asked elsewhere"
        );
        let hash = format!("0x{}", "ab".repeat(32));
        let c =
            call(json!({"jsonrpc":"2.0","id":1,"method":"eth_getBlockReceipts","params":[hash]}));
        assert_eq!(
            plan(&c, Some(0x20)).unwrap().kind,
            Kind::Lookup,
            "a bare block hash"
        );
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab",{"blockHash":"0x01"}]}),
        );
        assert_eq!(plan(&c, Some(0x20)).unwrap().kind, Kind::Lookup);
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab","0xzz"]}),
        );
        let e: Value = serde_json::from_str(&plan(&c, Some(0x20)).unwrap_err()).unwrap();
        assert_eq!(e["error"]["code"], json!(rpc::INVALID_PARAMS));
    }

    #[test]
    fn get_logs_ranges_are_pinned_and_confirmed_past_the_tip() {
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x10","address":"0xab"}]}),
        );
        let p = plan(&c, Some(0x20)).unwrap();
        assert_eq!(
            (params(&p), p.need),
            (
                json!([{"fromBlock":"0x10","toBlock":"0x20","address":"0xab"}]),
                Some(0x20)
            )
        );
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x10","toBlock":"0x30"}]}),
        );
        let p = plan(&c, Some(0x20)).unwrap();
        assert_eq!(
            (p.need, p.confirm),
            (Some(0x30), Some(0x30)),
            "asked only where it is"
        );
        let c = call(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"blockHash":"0x01"}]}),
        );
        assert_eq!(plan(&c, Some(0x20)).unwrap().kind, Kind::Lookup);
    }
}
