//! The crate's one error type; every variant maps onto a Kurento error code
//! of spec §8 when it crosses the wire.

use kms_jsonrpc::RpcError;
use kms_jsonrpc::error::codes;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 40001: bad parameter type or value (spec §6).
    #[error("{0}")]
    Marshall(String),
    /// 40003: e.g. unknown `__module__.__type__`.
    #[error("{0}")]
    Unexpected(String),
    /// 40004: connection between elements impossible.
    #[error("{0}")]
    Connect(String),
    /// 40005
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 40006
    #[error("{0}")]
    NotImplemented(String),
    /// 40008: unknown invoke operation (spec §5.5 — not 40105).
    #[error("Method '{op}' with {count} parameters not found")]
    MethodNotFound { op: String, count: usize },
    /// 40009: a resource limit was reached.
    #[error("{0}")]
    NotEnoughResources(String),
    /// 40101
    #[error("Object '{0}' not found")]
    ObjectNotFound(String),
    /// 40106
    #[error("Event '{0}' not supported")]
    EventNotSupported(String),
    /// 40107
    #[error("{0}")]
    IllegalParam(String),
    /// 40108: unknown factory or missing GStreamer element.
    #[error("{0}")]
    NotAvailable(String),
    /// 40109: `newref:<n>` outside a transaction.
    #[error("Object '{0}' not found: newref used outside a transaction")]
    NewrefOutsideTransaction(String),
    /// 40110
    #[error("Tag key not found")]
    TagKeyNotFound,
    /// 40500: `getKmd` of an unknown module.
    #[error("Requested kmd module doesn't exist")]
    KmdNotFound,
    /// Any other code of spec §8 (SDP, ICE, player ... errors).
    #[error("{message}")]
    Code { code: i64, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which kind of value failed to decode, for spec §6's message wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Param,
    Property,
}

impl Error {
    pub fn marshall(msg: impl Into<String>) -> Self {
        Error::Marshall(msg.into())
    }

    /// spec §6: `'<name>' parameter should be a <kind>`.
    pub fn wrong_type(name: &str, what: What, kind: &str) -> Self {
        let w = match what {
            What::Param => "parameter",
            What::Property => "property",
        };
        Error::Marshall(format!("'{name}' {w} should be a {kind}"))
    }

    pub fn method_not_found(op: &str, count: usize) -> Self {
        Error::MethodNotFound { op: op.to_string(), count }
    }

    pub fn code(&self) -> i64 {
        match self {
            Error::Marshall(_) => codes::MARSHALL_ERROR,
            Error::Unexpected(_) => codes::UNEXPECTED_ERROR,
            Error::Connect(_) => codes::CONNECT_ERROR,
            Error::UnsupportedMediaType(_) => codes::UNSUPPORTED_MEDIA_TYPE,
            Error::NotImplemented(_) => codes::NOT_IMPLEMENTED,
            Error::MethodNotFound { .. } => codes::MALFORMED_TRANSACTION,
            Error::NotEnoughResources(_) => codes::NOT_ENOUGH_RESOURCES,
            Error::ObjectNotFound(_) => codes::MEDIA_OBJECT_NOT_FOUND,
            Error::EventNotSupported(_) => codes::MEDIA_OBJECT_EVENT_NOT_SUPPORTED,
            Error::IllegalParam(_) => codes::MEDIA_OBJECT_ILLEGAL_PARAM_ERROR,
            Error::NotAvailable(_) => codes::MEDIA_OBJECT_NOT_AVAILABLE,
            Error::NewrefOutsideTransaction(_) => codes::MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT,
            Error::TagKeyNotFound => codes::MEDIA_OBJECT_TAG_KEY_NOT_FOUND,
            Error::KmdNotFound => 40500,
            Error::Code { code, .. } => *code,
        }
    }
}

impl From<Error> for RpcError {
    fn from(e: Error) -> Self {
        RpcError::new(e.code(), e.to_string())
    }
}

impl From<gst::glib::BoolError> for Error {
    fn from(e: gst::glib::BoolError) -> Self {
        Error::Unexpected(format!("GStreamer: {e}"))
    }
}

impl From<gst::StateChangeError> for Error {
    fn from(e: gst::StateChangeError) -> Self {
        Error::Unexpected(format!("GStreamer state change failed: {e}"))
    }
}
