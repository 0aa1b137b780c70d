//! The one error type of the client: the server's JSON-RPC errors keep
//! their code, message and `data.type` (spec §8) so callers can match on
//! them; transport failures are kept apart from them because they say
//! nothing about whether the server executed the request.

use std::time::Duration;

use serde_json::Value;

/// A JSON-RPC error answered by the server (spec §2, §8).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    /// `error.code`: a JSON-RPC code (`-32601`) or a Kurento one (`40101`).
    pub code: i64,
    /// `error.message`, e.g. `Object '…' not found`.
    pub message: String,
    /// `error.data.type`, the symbolic name (`MEDIA_OBJECT_NOT_FOUND`); absent
    /// for the plain JSON-RPC codes.
    pub error_type: Option<String>,
    /// The whole `error.data`, for fields beyond `type`.
    pub data: Option<Value>,
}

impl ServerError {
    /// Reads `{"code", "message", "data"}`; malformed parts become defaults
    /// rather than hiding the error.
    pub(crate) fn from_json(v: &Value) -> ServerError {
        let data = v.get("data").filter(|d| !d.is_null()).cloned();
        ServerError {
            code: v.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: v.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            error_type: data.as_ref().and_then(|d| d.get("type")).and_then(Value::as_str).map(str::to_string),
            data,
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error_type {
            Some(t) => write!(f, "{} ({}, {t})", self.message, self.code),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a JSON-RPC error (boxed: it is the
    /// largest variant and most results never carry it).
    #[error("server error: {0}")]
    Server(Box<ServerError>),
    /// The WebSocket could not be opened (initial connection only;
    /// later losses are handled by reconnection, spec §3.3).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// No response within the request timeout; the server may or may not
    /// have executed the request.
    #[error("no response to '{method}' within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    /// The client was closed (or every handle dropped) before the answer.
    #[error("the client is closed")]
    Closed,
    /// The request was pending when the client reconnected to a server
    /// that no longer knew the session (40007, spec §3.3): its objects are
    /// gone, so the request is not replayed.
    #[error("the session was lost (the server restarted) while '{method}' was pending")]
    SessionLost { method: String },
    /// A value did not have the shape the descriptor promises.
    #[error("unexpected value: {0}")]
    Decode(#[from] serde_json::Error),
    /// The server's answer broke the protocol (e.g. `create` without an id).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// `cast` to a class the object is not an instance of.
    #[error("object '{id}' is a {actual}, not a {wanted}")]
    WrongType { id: String, actual: String, wanted: &'static str },
}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Self {
        Error::Server(Box::new(e))
    }
}

impl Error {
    /// The server's error, if this is one.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(&**e),
            _ => None,
        }
    }

    /// The server's error code (`40101`, …), if this is a server error.
    pub fn code(&self) -> Option<i64> {
        self.server().map(|e| e.code)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_error_keeps_code_message_and_type() {
        let e = ServerError::from_json(&json!({
            "code": 40101, "message": "Object 'x' not found", "data": {"type": "MEDIA_OBJECT_NOT_FOUND"}
        }));
        assert_eq!(e.code, 40101);
        assert_eq!(e.message, "Object 'x' not found");
        assert_eq!(e.error_type.as_deref(), Some("MEDIA_OBJECT_NOT_FOUND"));
        assert_eq!(Error::Server(Box::new(e)).code(), Some(40101));
    }

    #[test]
    fn plain_jsonrpc_error_has_no_type() {
        let e = ServerError::from_json(&json!({"code": -32601, "message": "Method not found."}));
        assert_eq!(e.error_type, None);
        assert_eq!(e.data, None);
        assert_eq!(e.to_string(), "Method not found. (-32601)");
    }
}
