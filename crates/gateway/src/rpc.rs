//! JSON-RPC 2.0 requests as the specification (https://www.jsonrpc.org/specification) defines them, parsed
//! before anything is forwarded: invalid JSON is a parse error (-32700), a well-formed value that is not a
//! request is an invalid request (-32600), every element of a batch is judged on its own (`[1,2,3]` is three
//! errors), an empty batch is one error, and notifications (no `id`) get no answer.
//!
//! Requests are read into a typed struct that borrows what it can (the hot path: one pass, no tree of
//! values); only a body that fails it is read again as a `Value`, to say exactly what is wrong.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Parse error: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a JSON-RPC 2.0 request object.
pub const INVALID_REQUEST: i64 = -32600;
/// Method not allowed through the gateway (or not found).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error (no upstream could answer).
pub const INTERNAL_ERROR: i64 = -32603;
/// A limit was exceeded (the Ethereum JSON-RPC convention, EIP-1474).
pub const LIMIT_EXCEEDED: i64 = -32005;

/// One request.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its id, as sent (`null` included); none for a notification.
    pub id: Option<Box<RawValue>>,
    /// The method.
    pub method: String,
    /// Its params, as sent.
    pub params: Option<Box<RawValue>>,
}

impl Call {
    /// No id: a notification, which gets no answer.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// The id as JSON text (`null` for a notification).
    pub fn id_json(&self) -> &str {
        self.id.as_deref().map_or("null", RawValue::get)
    }

    /// The request as JSON text, with `params` replaced when given.
    pub fn to_json(&self, params: Option<&str>) -> String {
        self.to_json_as(self.id.as_deref().map(RawValue::get), params)
    }

    /// The request as JSON text under another id (`None`: a notification), `params` replaced when given.
    pub fn to_json_as(&self, id: Option<&str>, params: Option<&str>) -> String {
        let params = params.or(self.params.as_deref().map(RawValue::get));
        let mut s = String::with_capacity(64 + self.method.len() + params.map_or(0, str::len));
        s.push_str(r#"{"jsonrpc":"2.0","#);
        if let Some(id) = id {
            s.push_str(r#""id":"#);
            s.push_str(id);
            s.push(',');
        }
        s.push_str(r#""method":"#);
        // Method names are plain words; anything else is written with JSON's escapes.
        if self
            .method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            s.push('"');
            s.push_str(&self.method);
            s.push('"');
        } else {
            s.push_str(&Value::String(self.method.clone()).to_string());
        }
        if let Some(p) = params {
            s.push_str(r#","params":"#);
            s.push_str(p);
        }
        s.push('}');
        s
    }

    /// Positional params (an absent list is empty); `None` when they are named.
    pub fn positional(&self) -> Option<Vec<&RawValue>> {
        match &self.params {
            None => Some(Vec::new()),
            Some(p) => serde_json::from_str(p.get()).ok(),
        }
    }
}

/// What a body held.
#[derive(Debug)]
pub enum Incoming {
    /// One request object.
    Single(Call),
    /// A batch: each element a request, or the error answer for an element that is not one.
    Batch(Vec<Result<Call, String>>),
}

/// An error answer, as JSON text.
pub fn error(id: Option<&RawValue>, code: i64, message: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{}}}}}"#,
        id.map_or("null", RawValue::get),
        Value::String(message.to_owned())
    )
}

/// A result answer, as JSON text.
pub fn result(id: Option<&RawValue>, result: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
        id.map_or("null", RawValue::get)
    )
}

/// A present member, `null` included (serde reads a `null` `Option` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Req<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Box<RawValue>>,
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

fn valid_id(raw: &RawValue) -> bool {
    matches!(first_byte(raw), b'"' | b'-' | b'0'..=b'9' | b'n')
}

fn call(raw: &RawValue) -> Result<Call, String> {
    if let Ok(r) = serde_json::from_str::<Req>(raw.get())
        && r.jsonrpc == "2.0"
        && r.id.as_deref().is_none_or(valid_id)
        && r.params
            .as_deref()
            .is_none_or(|p| matches!(first_byte(p), b'[' | b'{'))
    {
        return Ok(Call {
            id: r.id,
            method: r.method.into_owned(),
            params: r.params,
        });
    }
    Err(why_invalid(raw))
}

/// The error answer for an element that the typed read refused, saying what is wrong.
fn why_invalid(raw: &RawValue) -> String {
    let invalid = |id: Option<&Value>, what: &str| {
        let id = id.map(|v| RawValue::from_string(v.to_string()).ok());
        error(
            id.flatten().as_deref(),
            INVALID_REQUEST,
            &format!("invalid request: {what}"),
        )
    };
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(raw.get()) else {
        return invalid(None, "expected a JSON-RPC 2.0 request object");
    };
    let id = match obj.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id),
        _ => None,
    };
    invalid(id, &what_is_wrong(&obj, raw))
}

fn what_is_wrong(obj: &Map<String, Value>, raw: &RawValue) -> String {
    // Only the specification's members: the request is what goes upstream, and a server that matches
    // member names case-insensitively (Go's encoding/json, under geth) would read a `METHOD` the policy
    // never saw.
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "jsonrpc" | "id" | "method" | "params"))
    {
        return format!(
            "unknown member \"{other}\" (a request has jsonrpc, id, method and params)"
        );
    }
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return "\"jsonrpc\" must be \"2.0\"".into();
    }
    if !matches!(obj.get("method"), Some(Value::String(_))) {
        return "\"method\" must be a string".into();
    }
    if obj
        .get("id")
        .is_some_and(|id| !matches!(id, Value::String(_) | Value::Number(_) | Value::Null))
    {
        return "\"id\" must be a string, a number or null".into();
    }
    if obj
        .get("params")
        .is_some_and(|p| !matches!(p, Value::Array(_) | Value::Object(_)))
    {
        return "\"params\" must be an array or an object".into();
    }
    // What the typed read saw and a map does not: a member given twice.
    match serde_json::from_str::<Req>(raw.get()) {
        Err(e) => format!("{e}"),
        Ok(_) => "not a JSON-RPC 2.0 request".into(),
    }
}

/// Parses a body. `Err` is the one error answer for the whole body.
pub fn parse(body: &[u8], max_batch: usize) -> Result<Incoming, String> {
    let parse_error = || error(None, PARSE_ERROR, "parse error: the body is not valid JSON");
    let raw: &RawValue = serde_json::from_slice(body).map_err(|_| parse_error())?;
    if first_byte(raw) == b'[' {
        let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| parse_error())?;
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

/// An upstream's answer as its parts, unread: one pass over a batch's answers.
#[derive(Debug, Deserialize)]
pub struct Reply<'a> {
    /// Its id.
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    /// The result (`None` for `null` or absent).
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    /// The error object, as sent.
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl Reply<'_> {
    /// The answer under another id (the caller's), as JSON text.
    pub fn with_id(&self, id: Option<&RawValue>) -> String {
        let id = id.map_or("null", RawValue::get);
        match (self.error, self.result) {
            (Some(e), _) => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{}}}"#, e.get()),
            (None, r) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
                r.map_or("null", RawValue::get)
            ),
        }
    }

    /// The error's message, when there is one.
    pub fn error_message(&self) -> Option<String> {
        let e: ErrorObject = serde_json::from_str(self.error?.get()).ok()?;
        Some(e.message.into_owned())
    }
}

/// An upstream's answer to one request.
#[derive(Debug, Deserialize)]
pub struct Answer<'a> {
    /// Its id.
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    /// The result (`None` for `null` or absent).
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    /// The error.
    #[serde(borrow, default)]
    pub error: Option<ErrorObject<'a>>,
}

/// A JSON-RPC error object.
#[derive(Debug, Deserialize)]
pub struct ErrorObject<'a> {
    /// Its code.
    #[serde(default)]
    pub code: i64,
    /// Its message.
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    fn code(s: &str) -> i64 {
        v(s)["error"]["code"].as_i64().unwrap()
    }

    #[test]
    fn the_specifications_examples() {
        // rpc call with invalid JSON
        let e = parse(
            br#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            100,
        )
        .unwrap_err();
        assert_eq!((code(&e), v(&e)["id"].clone()), (PARSE_ERROR, Value::Null));
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
                .is_err_and(|e| code(e) == INVALID_REQUEST && v(e)["id"].is_null())
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
        assert_eq!((c.id_json(), c.method.as_str()), ("7", "eth_blockNumber"));
        let Incoming::Single(n) =
            parse(br#"{"jsonrpc":"2.0","method":"eth_blockNumber"}"#, 100).unwrap()
        else {
            panic!()
        };
        assert!(n.is_notification(), "a notification has no id");
        let Incoming::Single(null) = parse(
            br#"{"jsonrpc":"2.0","id":null,"method":"eth_blockNumber"}"#,
            100,
        )
        .unwrap() else {
            panic!()
        };
        assert!(!null.is_notification(), "a null id is still a request");
        let Incoming::Batch(items) = parse(
            br#"[{"jsonrpc":"2.0","id":"a","method":"eth_chainId"},{"jsonrpc":"1.0","id":"b","method":"x"},{"jsonrpc":"2.0","id":{},"method":"x"},{"jsonrpc":"2.0","id":1,"method":"x","params":"bar"}]"#,
            100,
        )
        .unwrap() else { panic!() };
        assert!(items[0].is_ok());
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((code(e), v(e)["id"].clone()), (INVALID_REQUEST, json!("b")));
        assert_eq!(v(items[2].as_ref().unwrap_err())["id"], Value::Null);
        assert_eq!(v(items[3].as_ref().unwrap_err())["id"], json!(1));
    }

    #[test]
    fn members_outside_the_specification_or_given_twice_are_refused() {
        // geth's decoder would take `METHOD` for `method`.
        let e = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","METHOD":"debug_traceTransaction"}"#,
            100,
        )
        .unwrap_err();
        assert_eq!((code(&e), v(&e)["id"].clone()), (INVALID_REQUEST, json!(1)));
        assert!(
            v(&e)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("METHOD")
        );
        // Which of the two would a node read? Neither is forwarded.
        let e = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","method":"admin_peers"}"#,
            100,
        )
        .unwrap_err();
        assert_eq!(code(&e), INVALID_REQUEST);
        assert!(
            v(&e)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("duplicate"),
            "{e}"
        );
    }

    #[test]
    fn a_request_is_rebuilt_with_new_params_and_escapes_kept() {
        let Incoming::Single(c) = parse(
            br#"{"jsonrpc":"2.0","id":"x\"y","method":"eth_getBalance","params":["0xab","latest"]}"#,
            100,
        )
        .unwrap() else {
            panic!()
        };
        let p = c.positional().unwrap();
        assert_eq!(p[1].get(), r#""latest""#);
        let rebuilt = v(&c.to_json(Some(r#"["0xab","0x10"]"#)));
        assert_eq!(
            rebuilt,
            json!({"jsonrpc":"2.0","id":"x\"y","method":"eth_getBalance","params":["0xab","0x10"]})
        );
    }

    #[test]
    fn a_batch_over_the_limit_is_one_error_that_says_what_to_do() {
        let body = format!(
            "[{}]",
            [r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#; 5].join(",")
        );
        let e = parse(body.as_bytes(), 4).unwrap_err();
        assert_eq!(code(&e), LIMIT_EXCEEDED);
        assert!(
            v(&e)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("split it")
        );
    }
}
