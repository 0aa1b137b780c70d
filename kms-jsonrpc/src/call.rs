//! Backend-bound methods (spec §5.3–§5.10): their params, checked in the
//! dispatcher, and their execution against a [`MediaBackend`], which runs on
//! a blocking-capable thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::backend::{Deferred, Invoked, MediaBackend};
use crate::error::RpcError;
use crate::params::{optional_bool, required_str, take_required_array};
use crate::tenant::Caller;
use crate::transaction;

pub(crate) const SESSION_ID: &str = "sessionId";

/// One backend operation with its params already validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    Create {
        type_name: String,
        constructor_params: Option<Value>,
        /// `properties` (§5.3): ignored by a single server, read by a
        /// cluster backend (placement hints).
        /// Boxed: rarely present, and it would double the size of every
        /// pending call.
        properties: Option<Box<Value>>,
    },
    Describe {
        object: String,
    },
    Invoke {
        object: String,
        operation: String,
        operation_params: Option<Map<String, Value>>,
    },
    Subscribe {
        object: String,
        event_type: String,
    },
    Unsubscribe {
        object: String,
        subscription: String,
    },
    Release {
        object: String,
    },
    Ref {
        object: String,
    },
    Unref {
        object: String,
    },
    CloseSession {
        release: bool,
    },
    /// `connect` with an unknown session id, when the backend adopts
    /// sessions ([`MediaBackend::adopt_session`]).
    Adopt,
    /// `max_wait`: the most its operations may wait in total (deferred
    /// waits such as `getUsedCpu`, which inside a transaction hold the
    /// thread); set by the dispatcher from `maxTransactionWaitMs`.
    Transaction {
        operations: Vec<Value>,
        max_wait: Duration,
    },
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
                properties: params.remove("properties").filter(|v| !v.is_null()).map(Box::new),
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
            "transaction" => {
                Call::Transaction { operations: take_required_array(params, "operations")?, max_wait: Duration::ZERO }
            }
            _ => return Err(RpcError::method_not_found()),
        })
    }

    /// Whether executing this call may hold its thread waiting
    /// ([`MediaBackend::is_slow`]); a transaction is slow if any of its
    /// operations is.
    pub fn is_slow(&self, backend: &dyn MediaBackend) -> bool {
        match self {
            Call::Invoke { object, operation, .. } => backend.is_slow(object, operation),
            Call::Transaction { operations, .. } => operations.iter().any(|op| {
                let p = op.get("params");
                let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str).unwrap_or("");
                op.get("method").and_then(Value::as_str) == Some("invoke")
                    && backend.is_slow(field("object"), field("operation"))
            }),
            _ => false,
        }
    }

    /// Runs the call, except the wait of an operation that only waits for
    /// time to pass ([`MediaBackend::invoke_deferred`]), which is returned.
    /// A panicking backend becomes -32603 instead of taking the connection
    /// down.
    pub fn start(self, caller: &dyn Caller, backend: &dyn MediaBackend, server_id: &str) -> Started {
        guarded(caller, || self.start_inner(caller, backend, server_id))
            .unwrap_or_else(|e| Started::Done(Outcome::of(Err(e))))
    }

    fn start_inner(self, caller: &dyn Caller, backend: &dyn MediaBackend, server_id: &str) -> Started {
        let session = caller.session();
        let sid = || Value::String(session.as_str().to_owned());
        let only_session = |r: Result<(), RpcError>| r.map(|()| json!({ SESSION_ID: sid() }));
        let result = match self {
            Call::Create { type_name, constructor_params, properties } => backend
                .create_with_properties(caller, &type_name, constructor_params.as_ref(), properties.as_deref())
                .map(|id| json!({ "value": id, SESSION_ID: sid() })),
            Call::Describe { object } => backend.describe(caller, &object).map(|d| {
                json!({
                    SESSION_ID: sid(),
                    "type": d.type_name,
                    "qualifiedType": d.qualified_type,
                    "hierarchy": d.hierarchy,
                })
            }),
            Call::Invoke { object, operation, operation_params } => {
                match backend.invoke_deferred(caller, &object, &operation, operation_params.as_ref()) {
                    // §5.5: `value` is present even when null.
                    Ok(Invoked::Value(v)) => Ok(json!({ SESSION_ID: sid(), "value": v })),
                    Ok(Invoked::Later(deferred)) => {
                        return Started::Later(Later { deferred, session: session.as_str().to_owned() });
                    }
                    Err(e) => Err(e),
                }
            }
            Call::Subscribe { object, event_type } => {
                backend.subscribe(caller, &object, &event_type).map(|sub| json!({ SESSION_ID: sid(), "value": sub }))
            }
            Call::Unsubscribe { object, subscription } => {
                only_session(backend.unsubscribe(caller, &object, &subscription))
            }
            Call::Release { object } => only_session(backend.release(caller, &object)),
            Call::Ref { object } => only_session(backend.ref_object(caller, &object)),
            Call::Unref { object } => only_session(backend.unref_object(caller, &object)),
            Call::Adopt => {
                if backend.adopt_session(caller) {
                    return Started::Done(Outcome::of(Ok(json!({ SESSION_ID: sid(), "serverId": server_id }))));
                }
                // The session created to run this call goes again.
                return Started::Done(Outcome { result: Err(RpcError::invalid_session()), forget_session: true });
            }
            Call::CloseSession { release } => {
                if release {
                    backend.release_session(session);
                } else {
                    backend.unref_session(session);
                }
                return Started::Done(Outcome { result: Ok(Value::Null), forget_session: true });
            }
            Call::Transaction { operations, max_wait } => {
                if let Err(e) = backend.check_transaction(caller, &operations) {
                    return Started::Done(Outcome::of(Err(e)));
                }
                return Started::Done(transaction::execute(operations, caller, backend, server_id, max_wait));
            }
        };
        Started::Done(Outcome::of(result))
    }
}

/// Result of [`Call::start`].
#[derive(Debug)]
pub enum Started {
    Done(Outcome),
    /// Wait [`Later::wait`], then [`Later::finish`].
    Later(Later),
}

/// An `invoke` whose result comes after a wait that holds no thread.
#[derive(Debug)]
pub struct Later {
    deferred: Deferred,
    session: String,
}

impl Later {
    pub fn wait(&self) -> std::time::Duration {
        self.deferred.wait
    }

    /// The second half; quick, never blocks.
    pub fn finish(self) -> Outcome {
        let Later { deferred, session } = self;
        let finished = catch_unwind(AssertUnwindSafe(deferred.finish)).unwrap_or_else(|panic| {
            let what = panic_message(panic.as_ref());
            tracing::error!(%session, "backend panicked: {what}");
            Err(RpcError::internal(Some(&what)))
        });
        Outcome::of(finished.map(|v| json!({ SESSION_ID: session, "value": v })))
    }

    pub(crate) fn finish_here(self) -> Outcome {
        std::thread::sleep(self.deferred.wait);
        self.finish()
    }
}

/// Runs `f`, turning a panic into -32603 (logged with the caller).
fn guarded<T>(caller: &dyn Caller, f: impl FnOnce() -> T) -> Result<T, RpcError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic_message(panic.as_ref());
        tracing::error!(caller = %caller, "backend panicked: {what}");
        RpcError::internal(Some(&what))
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "backend panicked".to_owned())
}
