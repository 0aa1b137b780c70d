//! The JSON-RPC 2.0 envelope of the Kurento Protocol (spec §1.2, §2):
//! decoding one text frame into a [`Request`] or the error to answer, and
//! encoding responses and `onEvent` notifications.
//!
//! Nothing here knows about sessions or methods.

use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use crate::error::RpcError;

/// A request id: number or string, echoed verbatim (§2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(serde_json::Number),
    String(String),
}

impl RequestId {
    /// The id as it goes back on the wire.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(n) => Value::Number(n.clone()),
            RequestId::String(s) => Value::String(s.clone()),
        }
    }

    /// Key for the duplicate-request cache: `1` and `"1"` stay distinct.
    pub fn cache_key(&self) -> String {
        self.to_value().to_string()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// A decoded request. `id: None` is a notification (§1.2): executed, never
/// answered. `params: None` covers both absent and `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<RequestId>,
    pub method: String,
    pub params: Option<Value>,
}

/// Serde view of the envelope; unknown members are skipped without being
/// materialised.
#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Value>,
}

/// Decodes one text frame.
///
/// Errors are answered with `id: null` (§2): -32600 when the frame exceeds
/// `max_bytes` (checked before parsing, so the limit bounds the work),
/// -32700 for invalid JSON, -32600 for a batch or a bad envelope.
pub fn decode(text: &str, max_bytes: usize) -> Result<Request, RpcError> {
    if text.len() > max_bytes {
        return Err(RpcError::invalid_request_because(format!(
            "message of {} bytes exceeds the limit of {max_bytes} bytes",
            text.len()
        )));
    }
    let first = text.trim_start().as_bytes().first().copied();
    if first == Some(b'[') {
        // §1.2: batches are not supported, but invalid JSON is still -32700.
        return match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => Err(RpcError::invalid_request()),
            Err(_) => Err(RpcError::parse_error()),
        };
    }
    let env: Envelope = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            // Valid JSON of the wrong shape (a number, a duplicate key…).
            RpcError::invalid_request()
        } else {
            RpcError::parse_error()
        }
    })?;
    let version_ok = matches!(&env.jsonrpc, Some(Value::String(v)) if v == "2.0");
    if !version_ok {
        return Err(RpcError::invalid_request());
    }
    let Some(Value::String(method)) = env.method else {
        return Err(RpcError::invalid_request());
    };
    let id = match env.id {
        None => None,
        Some(Value::Number(n)) => Some(RequestId::Number(n)),
        Some(Value::String(s)) => Some(RequestId::String(s)),
        // §2: array/object (and bool) ids are invalid.
        Some(_) => return Err(RpcError::invalid_request()),
    };
    Ok(Request { id, method, params: env.params })
}

/// Checks an already-parsed value as an envelope (used for the operations
/// of a `transaction`, §5.9, which are full request objects).
pub fn decode_value(op: Map<String, Value>) -> Result<Request, RpcError> {
    let mut op = op;
    let version_ok = matches!(op.get("jsonrpc"), Some(Value::String(v)) if v == "2.0");
    let method = match op.remove("method") {
        Some(Value::String(m)) if version_ok => m,
        _ => return Err(RpcError::invalid_request()),
    };
    let id = match op.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(RequestId::Number(n)),
        Some(Value::String(s)) => Some(RequestId::String(s)),
        Some(_) => return Err(RpcError::invalid_request()),
    };
    let params = match op.remove("params") {
        None | Some(Value::Null) => None,
        Some(p) => Some(p),
    };
    Ok(Request { id, method, params })
}

/// A response object (`{"jsonrpc","id","result"|"error"}`) as a value.
pub fn response_value(id: Value, result: &Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({ "jsonrpc": "2.0", "id": id, "result": r }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    }
}

/// Encodes a response; `id: None` gives `"id": null` (envelope errors).
pub fn encode_response(id: Option<&RequestId>, result: &Result<Value, RpcError>) -> String {
    let id = id.map_or(Value::Null, RequestId::to_value);
    response_value(id, result).to_string()
}

/// Encodes an error response with `"id": null`.
pub fn encode_error(error: &RpcError) -> String {
    encode_response(None, &Err(error.clone()))
}

/// The `onEvent` notification of spec §7.1.
pub fn encode_event(object: &str, event_type: &str, data: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "onEvent",
        "params": { "value": { "data": data, "object": object, "type": event_type } }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    const MAX: usize = 1024;

    fn err(text: &str) -> RpcError {
        decode(text, MAX).expect_err(text)
    }

    #[test]
    fn decodes_numeric_and_string_ids_verbatim() {
        let r = decode(r#"{"jsonrpc":"2.0","id":12,"method":"ping","params":{"interval":5000}}"#, MAX).unwrap();
        assert_eq!(r.id, Some(RequestId::Number(12.into())));
        assert_eq!(r.method, "ping");
        assert_eq!(r.params, Some(json!({"interval":5000})));
        let r = decode(r#"{"jsonrpc":"2.0","id":"a1f","method":"x"}"#, MAX).unwrap();
        assert_eq!(r.id, Some(RequestId::String("a1f".into())));
        assert_eq!(r.params, None);
        let r = decode(r#"{"jsonrpc":"2.0","id":-1.5,"method":"x"}"#, MAX).unwrap();
        assert_eq!(encode_response(r.id.as_ref(), &Ok(Value::Null)), r#"{"jsonrpc":"2.0","id":-1.5,"result":null}"#);
    }

    #[test]
    fn absent_or_null_id_is_a_notification_and_null_params_are_absent() {
        let r = decode(r#"{"jsonrpc":"2.0","method":"ping","params":null}"#, MAX).unwrap();
        assert_eq!(r.id, None);
        assert_eq!(r.params, None);
        let r = decode(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, MAX).unwrap();
        assert_eq!(r.id, None);
    }

    #[test]
    fn unparsable_json_is_parse_error() {
        for t in ["{", "not json", "", "{\"jsonrpc\":\"2.0\",}", "[1,"] {
            let e = err(t);
            assert_eq!(e.code, codes::PARSE_ERROR, "{t}");
            assert_eq!(e.message, "Parse error.");
            assert!(e.data.is_none());
        }
    }

    #[test]
    fn batch_is_invalid_request() {
        let e = err(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(e.code, codes::INVALID_REQUEST);
        assert_eq!(e.message, "Invalid JSON-RPC request.");
        assert!(e.data.is_none());
    }

    #[test]
    fn bad_envelopes_are_invalid_request() {
        for t in [
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            "42",
            "\"str\"",
        ] {
            assert_eq!(err(t).code, codes::INVALID_REQUEST, "{t}");
        }
    }

    #[test]
    fn oversize_frame_is_rejected_before_parsing() {
        let big = format!("{{\"x\":\"{}\"", "a".repeat(MAX)); // not even valid JSON
        let e = err(&big);
        assert_eq!(e.code, codes::INVALID_REQUEST);
        assert!(e.message.contains(&MAX.to_string()), "{}", e.message);
        assert!(e.data.is_none());
    }

    #[test]
    fn error_responses_have_null_id_and_no_data_for_jsonrpc_codes() {
        assert_eq!(
            encode_error(&RpcError::parse_error()),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error."}}"#
        );
        let v: Value = serde_json::from_str(&encode_response(
            Some(&RequestId::Number(5.into())),
            &Err(RpcError::object_not_found("123")),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":5,"error":{"code":40101,"message":"Object '123' not found","data":{"type":"MEDIA_OBJECT_NOT_FOUND"}}})
        );
    }

    #[test]
    fn event_notification_shape() {
        let v: Value = serde_json::from_str(&encode_event("P/W", "EndOfStream", json!({"a":1}))).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","method":"onEvent","params":{"value":{"data":{"a":1},"object":"P/W","type":"EndOfStream"}}})
        );
        assert!(v.get("id").is_none());
    }

    #[test]
    fn decode_value_checks_inner_envelopes() {
        let ok = json!({"jsonrpc":"2.0","id":0,"method":"create","params":{"type":"X"}});
        let r = decode_value(ok.as_object().unwrap().clone()).unwrap();
        assert_eq!(r.method, "create");
        let bad = json!({"id":0,"method":"create"});
        assert_eq!(decode_value(bad.as_object().unwrap().clone()).unwrap_err().code, codes::INVALID_REQUEST);
    }
}
