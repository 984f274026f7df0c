//! Any body: parsing never panics, every error answer is JSON-RPC, and every request it accepts rebuilds
//! (as it goes upstream, with `latest` pinned, and as the cache sends it, its block named by hash) into a
//! request that parses back to the same method (and id).
//! The parser and planner are compiled in from the gateway's own sources: the gateway crate's network
//! stack is not needed to fuzz them, and would make the instrumented build ten times longer.
#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/gateway/src/rpc.rs"]
mod rpc;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/gateway/src/route.rs"]
mod route;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn is_error_answer(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v["error"]["code"].is_i64())
}

fuzz_target!(|data: &[u8]| {
    let calls = match rpc::parse(data, 100) {
        Err(e) => {
            assert!(is_error_answer(&e), "not an error answer: {e}");
            return;
        }
        Ok(rpc::Incoming::Single(c)) => vec![Ok(c)],
        Ok(rpc::Incoming::Batch(items)) => items,
    };
    for item in calls {
        let c = match item {
            Err(e) => {
                assert!(is_error_answer(&e), "not an error answer: {e}");
                continue;
            }
            Ok(c) => c,
        };
        for tip in [None, Some(0), Some(u64::MAX)] {
            let params = match route::plan(&c, tip) {
                Err(e) => {
                    assert!(is_error_answer(&e), "not an error answer: {e}");
                    continue;
                }
                Ok(p) => {
                    // What the cache sends instead: the same request, its block named by hash.
                    let hash = format!("0x{}", "ab".repeat(32));
                    if let Some(by_hash) = route::at_hash(&c, &p, &hash) {
                        let text = c.to_json(Some(&by_hash));
                        let Ok(rpc::Incoming::Single(again)) = rpc::parse(text.as_bytes(), 100)
                        else {
                            panic!("a request sent by hash does not parse: {text}");
                        };
                        assert_eq!(again.method, c.method);
                        assert!(text.contains(&hash), "{text}");
                    }
                    p.params
                }
            };
            let text = c.to_json(params.as_deref());
            let Ok(rpc::Incoming::Single(again)) = rpc::parse(text.as_bytes(), 100) else {
                panic!("a forwarded request does not parse: {text}");
            };
            assert_eq!(again.method, c.method);
            assert_eq!(again.id_json(), c.id_json());
        }
    }
});
