//! Backend-bound methods (spec §5.3–§5.10): their params, checked in the
//! dispatcher, and their execution against a [`MediaBackend`], which runs on
//! a blocking-capable thread.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Map, Value, json};

use crate::backend::MediaBackend;
use crate::error::RpcError;
use crate::params::{optional_bool, required_str, take_required_array};
use crate::session::SessionId;
use crate::transaction;

pub(crate) const SESSION_ID: &str = "sessionId";

/// One backend operation with its params already validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    Create { type_name: String, constructor_params: Option<Value> },
    Describe { object: String },
    Invoke { object: String, operation: String, operation_params: Option<Map<String, Value>> },
    Subscribe { object: String, event_type: String },
    Unsubscribe { object: String, subscription: String },
    Release { object: String },
    Ref { object: String },
    Unref { object: String },
    CloseSession { release: bool },
    Transaction { operations: Vec<Value> },
}

/// What executing a [`Call`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub result: Result<Value, RpcError>,
    /// `closeSession` ran: the session must be forgotten (§5.10).
    pub forget_session: bool,
}

impl Outcome {
    pub(crate) fn of(result: Result<Value, RpcError>) -> Self {
        Outcome { result, forget_session: false }
    }
}

impl Call {
    /// Methods executed by the backend.
    pub fn is_backend_method(method: &str) -> bool {
        matches!(
            method,
            "create"
                | "describe"
                | "invoke"
                | "subscribe"
                | "unsubscribe"
                | "release"
                | "ref"
                | "unref"
                | "closeSession"
                | "transaction"
        )
    }

    /// Methods whose `sessionId` is required rather than issued (§3.1,
    /// §5.7, §5.10).
    pub fn requires_session(method: &str) -> bool {
        matches!(method, "unsubscribe" | "ref" | "unref" | "closeSession")
    }

    /// Checks the params of `method` (a backend method) in upstream order,
    /// moving large members out of `params`.
    pub fn parse(method: &str, params: &mut Map<String, Value>) -> Result<Call, RpcError> {
        Ok(match method {
            "create" => Call::Create {
                type_name: required_str(params, "type")?,
                constructor_params: params.remove("constructorParams").filter(|v| !v.is_null()),
            },
            "describe" => Call::Describe { object: required_str(params, "object")? },
            "invoke" => {
                let operation = required_str(params, "operation")?;
                let object = required_str(params, "object")?;
                // §5.5: a non-object operationParams is treated as absent.
                let operation_params = match params.remove("operationParams") {
                    Some(Value::Object(m)) => Some(m),
                    _ => None,
                };
                Call::Invoke { object, operation, operation_params }
            }
            "subscribe" => {
                let event_type = required_str(params, "type")?;
                Call::Subscribe { object: required_str(params, "object")?, event_type }
            }
            "unsubscribe" => Call::Unsubscribe {
                object: required_str(params, "object")?,
                subscription: required_str(params, "subscription")?,
            },
            "release" => Call::Release { object: required_str(params, "object")? },
            "ref" => Call::Ref { object: required_str(params, "object")? },
            "unref" => Call::Unref { object: required_str(params, "object")? },
            "closeSession" => Call::CloseSession { release: optional_bool(params, "release").unwrap_or(false) },
            "transaction" => Call::Transaction { operations: take_required_array(params, "operations")? },
            _ => return Err(RpcError::method_not_found()),
        })
    }

    /// Runs the call; a panicking backend becomes -32603 instead of taking
    /// the connection down.
    pub fn execute(self, session: &SessionId, backend: &dyn MediaBackend, server_id: &str) -> Outcome {
        match catch_unwind(AssertUnwindSafe(|| self.execute_inner(session, backend, server_id))) {
            Ok(o) => o,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "backend panicked".to_owned());
                tracing::error!(%session, "backend panicked: {what}");
                Outcome::of(Err(RpcError::internal(Some(&what))))
            }
        }
    }

    fn execute_inner(self, session: &SessionId, backend: &dyn MediaBackend, server_id: &str) -> Outcome {
        let sid = || Value::String(session.as_str().to_owned());
        let only_session = |r: Result<(), RpcError>| r.map(|()| json!({ SESSION_ID: sid() }));
        let result = match self {
            Call::Create { type_name, constructor_params } => backend
                .create(session, &type_name, constructor_params.as_ref())
                .map(|id| json!({ "value": id, SESSION_ID: sid() })),
            Call::Describe { object } => backend.describe(session, &object).map(|d| {
                json!({
                    SESSION_ID: sid(),
                    "type": d.type_name,
                    "qualifiedType": d.qualified_type,
                    "hierarchy": d.hierarchy,
                })
            }),
            Call::Invoke { object, operation, operation_params } => backend
                .invoke(session, &object, &operation, operation_params.as_ref())
                // §5.5: `value` is present even when null.
                .map(|v| json!({ SESSION_ID: sid(), "value": v })),
            Call::Subscribe { object, event_type } => {
                backend.subscribe(session, &object, &event_type).map(|sub| json!({ SESSION_ID: sid(), "value": sub }))
            }
            Call::Unsubscribe { object, subscription } => {
                only_session(backend.unsubscribe(session, &object, &subscription))
            }
            Call::Release { object } => only_session(backend.release(session, &object)),
            Call::Ref { object } => only_session(backend.ref_object(session, &object)),
            Call::Unref { object } => only_session(backend.unref_object(session, &object)),
            Call::CloseSession { release } => {
                if release {
                    backend.release_session(session);
                } else {
                    backend.unref_session(session);
                }
                return Outcome { result: Ok(Value::Null), forget_session: true };
            }
            Call::Transaction { operations } => {
                return transaction::execute(operations, session, backend, server_id);
            }
        };
        Outcome::of(result)
    }
}
