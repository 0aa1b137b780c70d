//! The Kurento Protocol as seen from a client: encoding requests and
//! classifying what the server sends (spec §2, §7.1). Pure functions, no
//! sockets, so the wire rules are unit-tested on their own.

use serde_json::{Map, Value, json};

use crate::error::ServerError;

/// A frame from the server, classified.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// The answer to request `id`.
    Response { id: u64, result: Result<Value, ServerError> },
    /// `onEvent`: `params.value.{object, type, data}` (spec §7.1).
    Event { object: String, event_type: String, data: Value },
    /// Not for us (unknown notification, unparsable text, foreign id).
    Ignored(String),
}

/// Encodes a request. `sessionId` is attached when known and not given
/// explicitly, as the official clients do after their first answer (spec
/// §3.1); it is added at send time so a request queued across a
/// reconnection carries the session it is replayed in.
pub(crate) fn encode_request(id: u64, method: &str, params: &Map<String, Value>, session: Option<&str>) -> String {
    let mut params = params.clone();
    if let Some(s) = session
        && !params.contains_key("sessionId")
    {
        params.insert("sessionId".into(), Value::String(s.to_string()));
    }
    let msg = if params.is_empty() {
        json!({"jsonrpc": "2.0", "id": id, "method": method})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    };
    msg.to_string()
}

/// Classifies one text frame.
pub(crate) fn parse(text: &str) -> Incoming {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Incoming::Ignored(format!("not JSON: {e}")),
    };
    if let Some(method) = v.get("method").and_then(Value::as_str) {
        if method != "onEvent" {
            return Incoming::Ignored(format!("unexpected server request '{method}'"));
        }
        let value = &v["params"]["value"];
        return match (value["object"].as_str(), value["type"].as_str()) {
            (Some(object), Some(t)) => Incoming::Event {
                object: object.to_string(),
                event_type: t.to_string(),
                data: value.get("data").cloned().unwrap_or(Value::Null),
            },
            _ => Incoming::Ignored("onEvent without value.object/value.type".into()),
        };
    }
    // Ids are ours, hence numbers; a string id would come from someone else.
    let Some(id) = v.get("id").and_then(Value::as_u64) else {
        return Incoming::Ignored(format!("response without a numeric id: {text}"));
    };
    if let Some(err) = v.get("error") {
        return Incoming::Response { id, result: Err(ServerError::from_json(err)) };
    }
    match v.get("result") {
        Some(r) => Incoming::Response { id, result: Ok(r.clone()) },
        None => Incoming::Ignored(format!("response {id} has neither result nor error")),
    }
}

/// `result.sessionId` of a successful answer: the client copies it from
/// every response (spec §3.1).
pub(crate) fn session_of(result: &Value) -> Option<&str> {
    result.get("sessionId").and_then(Value::as_str)
}

/// `result.value`, which is absent for `release`/`subscribe`-style answers
/// and `null` for void methods (spec §5.5).
pub(crate) fn value_of(result: Value) -> Value {
    match result {
        Value::Object(mut o) => o.remove("value").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn session_id_is_attached_once_known() {
        let p = params(json!({"object": "o", "operation": "play"}));
        let first: Value = serde_json::from_str(&encode_request(0, "invoke", &p, None)).unwrap();
        assert!(first["params"].get("sessionId").is_none());
        let later: Value = serde_json::from_str(&encode_request(7, "invoke", &p, Some("S"))).unwrap();
        assert_eq!(
            later,
            json!({"jsonrpc":"2.0","id":7,"method":"invoke","params":{"object":"o","operation":"play","sessionId":"S"}})
        );
    }

    #[test]
    fn explicit_session_id_wins() {
        let p = params(json!({"sessionId": "OLD"}));
        let v: Value = serde_json::from_str(&encode_request(1, "connect", &p, Some("NEW"))).unwrap();
        assert_eq!(v["params"]["sessionId"], "OLD");
    }

    #[test]
    fn no_params_means_no_params_key() {
        let v: Value = serde_json::from_str(&encode_request(3, "connect", &Map::new(), None)).unwrap();
        assert_eq!(v, json!({"jsonrpc":"2.0","id":3,"method":"connect"}));
    }

    #[test]
    fn responses_and_errors_are_matched_by_id() {
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":4,"result":{"sessionId":"S","value":"pong"}}"#),
            Incoming::Response { id: 4, result: Ok(json!({"sessionId":"S","value":"pong"})) }
        );
        let Incoming::Response { id: 5, result: Err(e) } = parse(
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":40007,"message":"Invalid session","data":{"type":"INVALID_SESSION"}}}"#,
        ) else {
            panic!("not an error response")
        };
        assert_eq!((e.code, e.error_type.as_deref()), (40007, Some("INVALID_SESSION")));
    }

    #[test]
    fn events_use_params_value() {
        let text = r#"{"jsonrpc":"2.0","method":"onEvent","params":{"value":{"data":{"source":"A","tags":[],"timestampMillis":"1","type":"ElementConnected"},"object":"A","type":"ElementConnected"}}}"#;
        let Incoming::Event { object, event_type, data } = parse(text) else { panic!("not an event") };
        assert_eq!((object.as_str(), event_type.as_str()), ("A", "ElementConnected"));
        assert_eq!(data["timestampMillis"], "1");
    }

    #[test]
    fn garbage_is_ignored_not_fatal() {
        assert!(matches!(parse("nope"), Incoming::Ignored(_)));
        assert!(matches!(parse(r#"{"jsonrpc":"2.0","id":"x","result":{}}"#), Incoming::Ignored(_)));
        assert!(matches!(parse(r#"{"jsonrpc":"2.0","method":"onEvent","params":{}}"#), Incoming::Ignored(_)));
    }

    #[test]
    fn value_of_handles_absent_and_null() {
        assert_eq!(value_of(json!({"sessionId":"S"})), Value::Null);
        assert_eq!(value_of(json!({"value":null})), Value::Null);
        assert_eq!(value_of(json!({"value":"id"})), json!("id"));
        assert_eq!(value_of(Value::Null), Value::Null);
    }
}
