//! Top-level param checks of spec §5: a missing or mistyped key is
//! `-32000 "'<name>' parameter is required" / "... should be a string"`.

use serde_json::{Map, Value};

use crate::error::RpcError;

/// A required string param.
pub(crate) fn required_str(params: &Map<String, Value>, key: &str) -> Result<String, RpcError> {
    match params.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(RpcError::param_required(key)),
        Some(_) => Err(RpcError::param_type(key, "a string")),
    }
}

/// A required array param, taken out of `params` (no copy).
pub(crate) fn take_required_array(params: &mut Map<String, Value>, key: &str) -> Result<Vec<Value>, RpcError> {
    match params.remove(key) {
        Some(Value::Array(a)) => Ok(a),
        None | Some(Value::Null) => Err(RpcError::param_required(key)),
        Some(other) => {
            params.insert(key.to_owned(), other);
            Err(RpcError::param_type(key, "an array"))
        }
    }
}

/// An optional boolean; a mistyped value counts as absent (upstream
/// `closeSession` ignores it, §5.10).
pub(crate) fn optional_bool(params: &Map<String, Value>, key: &str) -> Option<bool> {
    params.get(key).and_then(Value::as_bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;
    use serde_json::json;

    #[test]
    fn missing_and_mistyped_params_are_server_errors_without_data() {
        let p = json!({"object": 3, "nul": null}).as_object().unwrap().clone();
        let e = required_str(&p, "type").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (codes::SERVER_ERROR, "'type' parameter is required"));
        assert!(e.data.is_none());
        let e = required_str(&p, "object").unwrap_err();
        assert_eq!(e.message, "'object' parameter should be a string");
        assert_eq!(required_str(&p, "nul").unwrap_err().message, "'nul' parameter is required");
        let mut p = json!({"operations": {}}).as_object().unwrap().clone();
        let e = take_required_array(&mut p, "operations").unwrap_err();
        assert_eq!(e.message, "'operations' parameter should be an array");
        assert!(p.contains_key("operations"));
    }
}
