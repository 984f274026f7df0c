//! JSON-RPC 2.0 requests as the specification (https://www.jsonrpc.org/specification) defines them, parsed
//! before anything is forwarded: invalid JSON is a parse error (-32700), a well-formed value that is not a
//! request is an invalid request (-32600), every element of a batch is judged on its own (`[1,2,3]` is three
//! errors), an empty batch is one error, and notifications (no `id`) get no answer.

use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Parse error: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a JSON-RPC 2.0 request object.
pub const INVALID_REQUEST: i64 = -32600;
/// Method not allowed through the gateway (or not found).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Internal error (no upstream could answer).
pub const INTERNAL_ERROR: i64 = -32603;
/// A limit was exceeded (the Ethereum JSON-RPC convention, EIP-1474).
pub const LIMIT_EXCEEDED: i64 = -32005;

/// One request of a call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its id, as sent; none for a notification.
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// The request object, as sent.
    pub raw: Box<RawValue>,
}

/// What a body held.
#[derive(Debug)]
pub enum Incoming {
    /// One request object.
    Single(Call),
    /// A batch: each element a request, or the error answer for an element that is not one.
    Batch(Vec<Result<Call, Value>>),
}

/// An error answer.
pub fn error(id: Option<&Value>, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": {"code": code, "message": message}})
}

/// The id of an object that may not be a valid request: kept when it has a valid id type.
fn usable_id(v: &Value) -> Option<Value> {
    match v.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id.clone()),
        _ => None,
    }
}

fn call(raw: &RawValue) -> Result<Call, Value> {
    let v: Value = serde_json::from_str(raw.get()).map_err(|_| {
        error(
            None,
            INVALID_REQUEST,
            "invalid request: not a JSON-RPC object",
        )
    })?;
    let Value::Object(obj) = &v else {
        return Err(error(
            None,
            INVALID_REQUEST,
            "invalid request: expected a JSON-RPC 2.0 request object",
        ));
    };
    let id = usable_id(&v);
    // Only the specification's members: the raw request is what goes upstream, and a server that matches
    // member names case-insensitively (Go's encoding/json, under geth) would read a `METHOD` the policy
    // never saw.
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "jsonrpc" | "id" | "method" | "params"))
    {
        return Err(error(
            id.as_ref(),
            INVALID_REQUEST,
            &format!(
                "invalid request: unknown member \"{other}\" (a request has jsonrpc, id, method and params)"
            ),
        ));
    }
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(error(
            id.as_ref(),
            INVALID_REQUEST,
            "invalid request: \"jsonrpc\" must be \"2.0\"",
        ));
    }
    let Some(Value::String(method)) = obj.get("method") else {
        return Err(error(
            id.as_ref(),
            INVALID_REQUEST,
            "invalid request: \"method\" must be a string",
        ));
    };
    if let Some(id) = obj.get("id")
        && !matches!(id, Value::String(_) | Value::Number(_) | Value::Null)
    {
        return Err(error(
            None,
            INVALID_REQUEST,
            "invalid request: \"id\" must be a string, a number or null",
        ));
    }
    if let Some(p) = obj.get("params")
        && !matches!(p, Value::Array(_) | Value::Object(_))
    {
        return Err(error(
            id.as_ref(),
            INVALID_REQUEST,
            "invalid request: \"params\" must be an array or an object",
        ));
    }
    Ok(Call {
        id: obj.get("id").cloned(),
        method: method.clone(),
        raw: raw.to_owned(),
    })
}

/// Parses a body. `Err` is the one error answer for the whole body.
pub fn parse(body: &[u8], max_batch: usize) -> Result<Incoming, Value> {
    let raw: &RawValue = serde_json::from_slice(body)
        .map_err(|_| error(None, PARSE_ERROR, "parse error: the body is not valid JSON"))?;
    let text = raw.get().trim_start();
    if text.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text)
            .map_err(|_| error(None, PARSE_ERROR, "parse error: the body is not valid JSON"))?;
        if items.is_empty() {
            return Err(error(None, INVALID_REQUEST, "invalid request: empty batch"));
        }
        if items.len() > max_batch {
            return Err(error(
                None,
                LIMIT_EXCEEDED,
                &format!(
                    "batch of {} requests is over the limit of {max_batch}: split it",
                    items.len()
                ),
            ));
        }
        return Ok(Incoming::Batch(items.into_iter().map(call).collect()));
    }
    call(raw).map(Incoming::Single)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(v: &Value) -> i64 {
        v["error"]["code"].as_i64().unwrap()
    }

    #[test]
    fn the_specifications_examples() {
        // rpc call with invalid JSON
        let e = parse(
            br#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            100,
        )
        .unwrap_err();
        assert_eq!((code(&e), e["id"].clone()), (PARSE_ERROR, Value::Null));
        // rpc call with invalid Request object
        let e = parse(br#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#, 100).unwrap_err();
        assert_eq!(code(&e), INVALID_REQUEST);
        // rpc call Batch, invalid JSON
        let e = parse(br#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method""#, 100).unwrap_err();
        assert_eq!(code(&e), PARSE_ERROR);
        // rpc call with an empty Array
        assert_eq!(code(&parse(b"[]", 100).unwrap_err()), INVALID_REQUEST);
        // rpc call with an invalid Batch (but not empty)
        let Incoming::Batch(items) = parse(b"[1]", 100).unwrap() else {
            panic!()
        };
        assert_eq!(items.len(), 1);
        // rpc call with invalid Batch
        let Incoming::Batch(items) = parse(b"[1,2,3]", 100).unwrap() else {
            panic!()
        };
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| {
            i.as_ref()
                .is_err_and(|e| code(e) == INVALID_REQUEST && e["id"].is_null())
        }));
    }

    #[test]
    fn requests_notifications_and_mixed_batches() {
        let Incoming::Single(c) = parse(
            br#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}"#,
            100,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.id, c.method.as_str()),
            (Some(json!(7)), "eth_blockNumber")
        );
        let Incoming::Single(n) =
            parse(br#"{"jsonrpc":"2.0","method":"eth_blockNumber"}"#, 100).unwrap()
        else {
            panic!()
        };
        assert_eq!(n.id, None, "a notification has no id");
        let Incoming::Batch(items) = parse(
            br#"[{"jsonrpc":"2.0","id":"a","method":"eth_chainId"},{"jsonrpc":"1.0","id":"b","method":"x"},{"jsonrpc":"2.0","id":{},"method":"x"},{"jsonrpc":"2.0","id":1,"method":"x","params":"bar"}]"#,
            100,
        )
        .unwrap() else { panic!() };
        assert!(items[0].is_ok());
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((code(e), e["id"].clone()), (INVALID_REQUEST, json!("b")));
        assert_eq!(items[2].as_ref().unwrap_err()["id"], Value::Null);
        assert_eq!(items[3].as_ref().unwrap_err()["id"], json!(1));
    }

    #[test]
    fn members_outside_the_specification_are_refused() {
        // geth's decoder would take `METHOD` for `method`.
        let e = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","METHOD":"debug_traceTransaction"}"#,
            100,
        )
        .unwrap_err();
        assert_eq!((code(&e), e["id"].clone()), (INVALID_REQUEST, json!(1)));
        assert!(e["error"]["message"].as_str().unwrap().contains("METHOD"));
    }

    #[test]
    fn a_batch_over_the_limit_is_one_error_that_says_what_to_do() {
        let body = format!(
            "[{}]",
            [r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#; 5].join(",")
        );
        let e = parse(body.as_bytes(), 4).unwrap_err();
        assert_eq!(code(&e), LIMIT_EXCEEDED);
        assert!(e["error"]["message"].as_str().unwrap().contains("split it"));
    }
}
