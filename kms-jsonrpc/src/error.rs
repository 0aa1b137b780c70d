//! Errors of the crate.
//!
//! [`RpcError`] is the wire error of spec §8: what a request fails with, as
//! the client sees it. [`Error`] is the one error enum of the crate's own
//! API (binding listeners, loading TLS material); it wraps [`RpcError`] for
//! callers that want a single type.

use std::path::PathBuf;

use jsonrpsee_types::ErrorObjectOwned;
use serde_json::{Value, json};

/// Error codes of spec §8, one constant per table row.
pub mod codes {
    use jsonrpsee_types::error as j;

    /// `Parse error.` (§1.2).
    pub const PARSE_ERROR: i64 = j::PARSE_ERROR_CODE as i64;
    /// `Invalid JSON-RPC request.` (bad envelope, batch, oversize message).
    pub const INVALID_REQUEST: i64 = j::INVALID_REQUEST_CODE as i64;
    /// `Method not found.`
    pub const METHOD_NOT_FOUND: i64 = j::METHOD_NOT_FOUND_CODE as i64;
    /// `'params' is required`, with `data.type = "INVALID_PARAMS"`.
    pub const INVALID_PARAMS: i64 = j::INVALID_PARAMS_CODE as i64;
    /// `Unexpected error while processing method[: <what>]`.
    pub const INTERNAL_ERROR: i64 = j::INTERNAL_ERROR_CODE as i64;
    /// Missing or mistyped top-level param (§5: `'object' parameter is required`).
    pub const SERVER_ERROR: i64 = j::CALL_EXECUTION_FAILED_CODE as i64;

    pub const MARSHALL_ERROR: i64 = 40001;
    pub const UNEXPECTED_ERROR: i64 = 40003;
    pub const CONNECT_ERROR: i64 = 40004;
    pub const UNSUPPORTED_MEDIA_TYPE: i64 = 40005;
    pub const NOT_IMPLEMENTED: i64 = 40006;
    pub const INVALID_SESSION: i64 = 40007;
    pub const MALFORMED_TRANSACTION: i64 = 40008;
    pub const NOT_ENOUGH_RESOURCES: i64 = 40009;
    pub const MEDIA_OBJECT_TYPE_NOT_FOUND: i64 = 40100;
    pub const MEDIA_OBJECT_NOT_FOUND: i64 = 40101;
    pub const MEDIA_OBJECT_CONSTRUCTOR_NOT_FOUND: i64 = 40104;
    pub const MEDIA_OBJECT_METHOD_NOT_FOUND: i64 = 40105;
    pub const MEDIA_OBJECT_EVENT_NOT_SUPPORTED: i64 = 40106;
    pub const MEDIA_OBJECT_ILLEGAL_PARAM_ERROR: i64 = 40107;
    pub const MEDIA_OBJECT_NOT_AVAILABLE: i64 = 40108;
    pub const MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT: i64 = 40109;
    pub const MEDIA_OBJECT_TAG_KEY_NOT_FOUND: i64 = 40110;
    pub const MEDIA_OBJECT_OPERATION_NOT_SUPPORTED: i64 = 40111;
    pub const SDP_CREATE_ERROR: i64 = 40200;
    pub const SDP_PARSE_ERROR: i64 = 40201;
    pub const SDP_END_POINT_NO_LOCAL_SDP_ERROR: i64 = 40202;
    pub const SDP_END_POINT_NO_REMOTE_SDP_ERROR: i64 = 40203;
    pub const SDP_END_POINT_GENERATE_OFFER_ERROR: i64 = 40204;
    pub const SDP_END_POINT_PROCESS_OFFER_ERROR: i64 = 40205;
    pub const SDP_END_POINT_PROCESS_ANSWER_ERROR: i64 = 40206;
    pub const SDP_CONFIGURATION_ERROR: i64 = 40207;
    pub const SDP_END_POINT_ALREADY_NEGOTIATED: i64 = 40208;
    pub const SDP_END_POINT_NOT_OFFER_GENERATED: i64 = 40209;
    /// Upstream spelling kept (§8).
    pub const SDP_END_POINT_ANSWER_ALREADY_PROCCESED: i64 = 40210;
    /// Upstream spelling kept (§8).
    pub const SDP_END_POINT_CANNOT_CREATE_SESSON: i64 = 40211;
    pub const HTTP_END_POINT_REGISTRATION_ERROR: i64 = 40300;
    pub const ICE_GATHER_CANDIDATES_ERROR: i64 = 40400;
    pub const ICE_ADD_CANDIDATE_ERROR: i64 = 40401;
    /// `getKmd` of an unknown module; upstream maps no name to it, so its
    /// `data.type` is `UNDEFINED` (§8 quirk, harmless to copy).
    pub const SERVER_MANAGER_ERROR_KMD_NOT_FOUND: i64 = 40500;
    pub const URI_PATH_FILE_NOT_FOUND: i64 = 40600;
    pub const PLAYER_SEEK_FAIL: i64 = 40700;

    /// `data.type` of a Kurento code (§8); `None` for JSON-RPC codes.
    /// Unknown Kurento-range codes (and 40500) are `UNDEFINED`.
    pub fn type_name(code: i64) -> Option<&'static str> {
        Some(match code {
            INVALID_PARAMS => "INVALID_PARAMS",
            PARSE_ERROR | INVALID_REQUEST | METHOD_NOT_FOUND | INTERNAL_ERROR | SERVER_ERROR => {
                return None;
            }
            MARSHALL_ERROR => "MARSHALL_ERROR",
            UNEXPECTED_ERROR => "UNEXPECTED_ERROR",
            CONNECT_ERROR => "CONNECT_ERROR",
            UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            INVALID_SESSION => "INVALID_SESSION",
            MALFORMED_TRANSACTION => "MALFORMED_TRANSACTION",
            NOT_ENOUGH_RESOURCES => "NOT_ENOUGH_RESOURCES",
            MEDIA_OBJECT_TYPE_NOT_FOUND => "MEDIA_OBJECT_TYPE_NOT_FOUND",
            MEDIA_OBJECT_NOT_FOUND => "MEDIA_OBJECT_NOT_FOUND",
            MEDIA_OBJECT_CONSTRUCTOR_NOT_FOUND => "MEDIA_OBJECT_CONSTRUCTOR_NOT_FOUND",
            MEDIA_OBJECT_METHOD_NOT_FOUND => "MEDIA_OBJECT_METHOD_NOT_FOUND",
            MEDIA_OBJECT_EVENT_NOT_SUPPORTED => "MEDIA_OBJECT_EVENT_NOT_SUPPORTED",
            MEDIA_OBJECT_ILLEGAL_PARAM_ERROR => "MEDIA_OBJECT_ILLEGAL_PARAM_ERROR",
            MEDIA_OBJECT_NOT_AVAILABLE => "MEDIA_OBJECT_NOT_AVAILABLE",
            MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT => "MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT",
            MEDIA_OBJECT_TAG_KEY_NOT_FOUND => "MEDIA_OBJECT_TAG_KEY_NOT_FOUND",
            MEDIA_OBJECT_OPERATION_NOT_SUPPORTED => "MEDIA_OBJECT_OPERATION_NOT_SUPPORTED",
            SDP_CREATE_ERROR => "SDP_CREATE_ERROR",
            SDP_PARSE_ERROR => "SDP_PARSE_ERROR",
            SDP_END_POINT_NO_LOCAL_SDP_ERROR => "SDP_END_POINT_NO_LOCAL_SDP_ERROR",
            SDP_END_POINT_NO_REMOTE_SDP_ERROR => "SDP_END_POINT_NO_REMOTE_SDP_ERROR",
            SDP_END_POINT_GENERATE_OFFER_ERROR => "SDP_END_POINT_GENERATE_OFFER_ERROR",
            SDP_END_POINT_PROCESS_OFFER_ERROR => "SDP_END_POINT_PROCESS_OFFER_ERROR",
            SDP_END_POINT_PROCESS_ANSWER_ERROR => "SDP_END_POINT_PROCESS_ANSWER_ERROR",
            SDP_CONFIGURATION_ERROR => "SDP_CONFIGURATION_ERROR",
            SDP_END_POINT_ALREADY_NEGOTIATED => "SDP_END_POINT_ALREADY_NEGOTIATED",
            SDP_END_POINT_NOT_OFFER_GENERATED => "SDP_END_POINT_NOT_OFFER_GENERATED",
            SDP_END_POINT_ANSWER_ALREADY_PROCCESED => "SDP_END_POINT_ANSWER_ALREADY_PROCCESED",
            SDP_END_POINT_CANNOT_CREATE_SESSON => "SDP_END_POINT_CANNOT_CREATE_SESSON",
            HTTP_END_POINT_REGISTRATION_ERROR => "HTTP_END_POINT_REGISTRATION_ERROR",
            ICE_GATHER_CANDIDATES_ERROR => "ICE_GATHER_CANDIDATES_ERROR",
            ICE_ADD_CANDIDATE_ERROR => "ICE_ADD_CANDIDATE_ERROR",
            URI_PATH_FILE_NOT_FOUND => "URI_PATH_FILE_NOT_FOUND",
            PLAYER_SEEK_FAIL => "PLAYER_SEEK_FAIL",
            _ => "UNDEFINED",
        })
    }
}

/// A JSON-RPC error object as sent on the wire (spec §2, §8).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// `{"type": <name>}` for Kurento codes and -32602; absent otherwise.
    pub data: Option<Value>,
}

impl RpcError {
    /// Builds an error with the `data` spec §8 prescribes for `code`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: codes::type_name(code).map(|t| json!({ "type": t })) }
    }

    /// Replaces `data` (e.g. for a custom module's extra payload).
    pub fn with_data(mut self, data: Option<Value>) -> Self {
        self.data = data;
        self
    }

    /// The `error` member of a response: `{"code","message","data"?}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        v
    }

    /// `data.type` if present.
    pub fn type_name(&self) -> Option<&str> {
        self.data.as_ref()?.get("type")?.as_str()
    }

    // --- JSON-RPC level (§8 first table) ---

    /// -32700, §1.2 (we answer instead of upstream's silence).
    pub fn parse_error() -> Self {
        Self::new(codes::PARSE_ERROR, "Parse error.")
    }

    /// -32600 `Invalid JSON-RPC request.` (§2).
    pub fn invalid_request() -> Self {
        Self::new(codes::INVALID_REQUEST, "Invalid JSON-RPC request.")
    }

    /// -32600 with a reason appended, for limits (oversize message).
    pub fn invalid_request_because(reason: impl std::fmt::Display) -> Self {
        Self::new(codes::INVALID_REQUEST, format!("Invalid JSON-RPC request: {reason}"))
    }

    /// -32601 `Method not found.`
    pub fn method_not_found() -> Self {
        Self::new(codes::METHOD_NOT_FOUND, "Method not found.")
    }

    /// -32602 `'params' is required` (data INVALID_PARAMS).
    pub fn params_required() -> Self {
        Self::new(codes::INVALID_PARAMS, "'params' is required")
    }

    /// -32602 for `params` that is neither an object nor null.
    pub fn params_not_object() -> Self {
        Self::new(codes::INVALID_PARAMS, "'params' should be an object")
    }

    /// -32603 `Unexpected error while processing method[: <what>]`.
    pub fn internal(what: Option<&str>) -> Self {
        let message = match what {
            Some(w) => format!("Unexpected error while processing method: {w}"),
            None => "Unexpected error while processing method".to_owned(),
        };
        Self::new(codes::INTERNAL_ERROR, message)
    }

    /// -32000 `'<name>' parameter is required` (§5 preamble).
    pub fn param_required(name: &str) -> Self {
        Self::new(codes::SERVER_ERROR, format!("'{name}' parameter is required"))
    }

    /// -32000 `'<name>' parameter should be <kind>`, `kind` with its
    /// article: `"a string"`, `"an array"`, …
    pub fn param_type(name: &str, kind: &str) -> Self {
        Self::new(codes::SERVER_ERROR, format!("'{name}' parameter should be {kind}"))
    }

    // --- Kurento codes (§8 second table) ---

    /// 40001.
    pub fn marshall(message: impl Into<String>) -> Self {
        Self::new(codes::MARSHALL_ERROR, message)
    }

    /// 40003.
    pub fn unexpected(message: impl Into<String>) -> Self {
        Self::new(codes::UNEXPECTED_ERROR, message)
    }

    /// 40004.
    pub fn connect_error(message: impl Into<String>) -> Self {
        Self::new(codes::CONNECT_ERROR, message)
    }

    /// 40006.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_IMPLEMENTED, message)
    }

    /// 40007 `Invalid session` (connect/keepAlive of an unknown session, §5.2).
    pub fn invalid_session() -> Self {
        Self::new(codes::INVALID_SESSION, "Invalid session")
    }

    /// 40007 for a sessionId over the configured length limit.
    pub fn session_id_too_long(max: usize) -> Self {
        Self::new(codes::INVALID_SESSION, format!("Invalid session: sessionId longer than {max} bytes"))
    }

    /// 40008.
    pub fn malformed_transaction(message: impl Into<String>) -> Self {
        Self::new(codes::MALFORMED_TRANSACTION, message)
    }

    /// 40008 `Method '<op>' with <n> parameters not found` (§5.5: unknown
    /// invoke operation is 40008, not 40105).
    pub fn method_not_found_invoke(operation: &str, n_params: usize) -> Self {
        Self::malformed_transaction(format!("Method '{operation}' with {n_params} parameters not found"))
    }

    /// 40009.
    pub fn not_enough_resources(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_ENOUGH_RESOURCES, message)
    }

    /// 40101 `Object '<id>' not found` (§4.3).
    pub fn object_not_found(id: &str) -> Self {
        Self::new(codes::MEDIA_OBJECT_NOT_FOUND, format!("Object '{id}' not found"))
    }

    /// 40106 `Event '<type>' not supported` (§5.6).
    pub fn event_not_supported(event_type: &str) -> Self {
        Self::new(codes::MEDIA_OBJECT_EVENT_NOT_SUPPORTED, format!("Event '{event_type}' not supported"))
    }

    /// 40107.
    pub fn illegal_param(message: impl Into<String>) -> Self {
        Self::new(codes::MEDIA_OBJECT_ILLEGAL_PARAM_ERROR, message)
    }

    /// 40108 `Factory '<type>' not found` (§5.3: not 40100).
    pub fn factory_not_found(type_name: &str) -> Self {
        Self::new(codes::MEDIA_OBJECT_NOT_AVAILABLE, format!("Factory '{type_name}' not found"))
    }

    /// 40109: a `newref:<n>` id used outside a transaction (§4.3).
    pub fn newref_outside_transaction(id: &str) -> Self {
        Self::new(
            codes::MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT,
            format!("Object '{id}' not found: 'newref:' ids are only valid inside a transaction"),
        )
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let code = i32::try_from(e.code).unwrap_or(jsonrpsee_types::error::INTERNAL_ERROR_CODE);
        ErrorObjectOwned::owned(code, e.message, e.data)
    }
}

impl From<ErrorObjectOwned> for RpcError {
    fn from(e: ErrorObjectOwned) -> Self {
        let data = e.data().and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
        RpcError { code: i64::from(e.code()), message: e.message().to_owned(), data }
    }
}

/// The crate's error for everything that is not a request failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No ws:// nor wss:// listener could be opened (spec §1.1: fatal).
    #[error("no WebSocket listener could be opened ({0})")]
    NoListener(String),
    /// A listener could not be bound.
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The wss:// certificate/key could not be used.
    #[error("TLS certificate '{path}': {reason}")]
    Tls { path: PathBuf, reason: String },
    /// Any other I/O failure of the transport.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A protocol-level failure surfaced through the crate API.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kurento_codes_carry_their_type_name() {
        let e = RpcError::object_not_found("123");
        assert_eq!(
            e.to_json(),
            json!({"code":40101,"message":"Object '123' not found","data":{"type":"MEDIA_OBJECT_NOT_FOUND"}})
        );
        assert_eq!(
            RpcError::method_not_found_invoke("play", 2).to_json(),
            json!({"code":40008,"message":"Method 'play' with 2 parameters not found","data":{"type":"MALFORMED_TRANSACTION"}})
        );
        assert_eq!(RpcError::factory_not_found("Foo").type_name(), Some("MEDIA_OBJECT_NOT_AVAILABLE"));
        assert_eq!(
            RpcError::new(codes::SDP_END_POINT_ANSWER_ALREADY_PROCCESED, "x").type_name(),
            Some("SDP_END_POINT_ANSWER_ALREADY_PROCCESED")
        );
    }

    #[test]
    fn unknown_and_40500_codes_are_undefined() {
        assert_eq!(RpcError::new(49123, "custom").type_name(), Some("UNDEFINED"));
        assert_eq!(RpcError::new(codes::SERVER_MANAGER_ERROR_KMD_NOT_FOUND, "x").type_name(), Some("UNDEFINED"));
    }

    #[test]
    fn jsonrpc_codes_have_no_data_except_invalid_params() {
        for e in [
            RpcError::parse_error(),
            RpcError::invalid_request(),
            RpcError::method_not_found(),
            RpcError::internal(None),
            RpcError::param_required("object"),
        ] {
            assert!(e.data.is_none(), "{e:?}");
            assert!(e.to_json().get("data").is_none());
        }
        assert_eq!(
            RpcError::params_required().to_json(),
            json!({"code":-32602,"message":"'params' is required","data":{"type":"INVALID_PARAMS"}})
        );
        assert_eq!(RpcError::param_type("object", "a string").message, "'object' parameter should be a string");
    }

    #[test]
    fn converts_to_and_from_jsonrpsee_error_objects() {
        let e = RpcError::invalid_session();
        let o: ErrorObjectOwned = e.clone().into();
        assert_eq!(o.code(), 40007);
        assert_eq!(RpcError::from(o), e);
    }
}
