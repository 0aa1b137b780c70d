//! The seam between the protocol layer and the media object model.
//!
//! `kms-jsonrpc` knows sessions, connections, envelopes and error shapes but
//! nothing about media objects; `kms-core` implements [`MediaBackend`] on top
//! of its object registry. Keeping this a trait lets the dispatch core be
//! unit-tested with a fake backend and a fake clock (no sockets, no GStreamer).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::session::SessionId;
use crate::tenant::Caller;

/// What `describe` returns for an object (spec §5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Short class name, e.g. `WebRtcEndpoint`.
    pub type_name: String,
    /// `<moduleNs>.<Class>`, e.g. `kurento.WebRtcEndpoint`.
    pub qualified_type: String,
    /// Qualified ancestors, nearest first, excluding the class itself.
    pub hierarchy: Vec<String>,
}

/// The second half of an operation whose first half only started a
/// measurement (`getUsedCpu(interval)`): the transport waits `wait` without
/// holding a thread, then runs `finish`. Dropping it (connection gone)
/// abandons the operation.
pub struct Deferred {
    pub wait: Duration,
    /// Must not block: it runs on an async worker.
    pub finish: Box<dyn FnOnce() -> Result<Value, RpcError> + Send>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("wait", &self.wait).finish_non_exhaustive()
    }
}

/// Result of [`MediaBackend::invoke_deferred`].
#[derive(Debug)]
pub enum Invoked {
    Value(Value),
    Later(Deferred),
}

/// Operations the protocol layer forwards to the object model.
///
/// Every method runs on a blocking-capable thread (never on a tokio worker),
/// so implementations may block for a bounded time (GStreamer state changes,
/// webrtcbin promises). Calls that wait are reported by [`is_slow`] so the
/// transport can keep them from occupying every thread.
/// Object ids arrive exactly as the client sent them, after `newref:`
/// substitution inside transactions; an id still of the form `newref:<n>`
/// must be answered with 40109 by the backend.
///
/// The caller carries the tenant: objects of another tenant must look like
/// unknown objects (40101), also when passed as parameters.
///
/// [`is_slow`]: MediaBackend::is_slow
pub trait MediaBackend: Send + Sync + 'static {
    /// spec §5.3. Returns the new object's id.
    fn create(
        &self,
        caller: &dyn Caller,
        type_name: &str,
        constructor_params: Option<&Value>,
    ) -> Result<String, RpcError>;

    /// [`MediaBackend::create`] with the request's `properties` (§5.3),
    /// which KMS ignores; a cluster reads its placement hint there (the JS
    /// client sends every non-constructor param of `create` as a property).
    fn create_with_properties(
        &self,
        caller: &dyn Caller,
        type_name: &str,
        constructor_params: Option<&Value>,
        _properties: Option<&Value>,
    ) -> Result<String, RpcError> {
        self.create(caller, type_name, constructor_params)
    }

    /// Called with a transaction's operations (§5.9) before the first one
    /// runs; an error refuses the whole transaction. A cluster refuses one
    /// whose objects live on two nodes, since it could not keep its
    /// in-order, stop-at-first-failure semantics across them.
    fn check_transaction(&self, _caller: &dyn Caller, _operations: &[Value]) -> Result<(), RpcError> {
        Ok(())
    }

    /// Whether `connect` with a session id this server does not know
    /// should ask [`MediaBackend::adopt_session`] before answering 40007.
    /// Read once, when the server is built.
    fn adopts_sessions(&self) -> bool {
        false
    }

    /// `connect {sessionId}` for a session this server does not know
    /// (§3.3): `true` takes it over (a cluster node adopting a session
    /// another node created), `false` answers 40007 as KMS does.
    fn adopt_session(&self, _caller: &dyn Caller) -> bool {
        false
    }

    /// spec §5.4. Refs the object in the caller's session.
    fn describe(&self, caller: &dyn Caller, object: &str) -> Result<Description, RpcError>;

    /// spec §5.5. `params` is `None` when `operationParams` is absent or not an
    /// object. Returns the value for `result.value` (`Value::Null` for void).
    /// Blocks for operations that wait.
    fn invoke(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value, RpcError>;

    /// Like [`MediaBackend::invoke`], but an operation that only waits for
    /// time to pass may return its second half instead of sleeping.
    fn invoke_deferred(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Invoked, RpcError> {
        self.invoke(caller, object, operation, params).map(Invoked::Value)
    }

    /// Whether `invoke` of `operation` may hold its thread waiting (on a
    /// promise, a timer, another thread). Such calls share a smaller
    /// budget of threads, so quick calls always find one.
    fn is_slow(&self, _object: &str, _operation: &str) -> bool {
        false
    }

    /// spec §5.6. Returns a new subscription id.
    fn subscribe(&self, caller: &dyn Caller, object: &str, event_type: &str) -> Result<String, RpcError>;

    /// spec §5.7. Unknown ids are not errors.
    fn unsubscribe(&self, caller: &dyn Caller, object: &str, subscription: &str) -> Result<(), RpcError>;

    /// spec §5.8: release for every session; unknown ids succeed.
    fn release(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError>;

    /// spec §5.10 `ref`: unknown object → 40101.
    fn ref_object(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError>;

    /// spec §5.10 `unref`: unknown object → success.
    fn unref_object(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError>;

    /// Session collected by the GC, or `closeSession{release:false}` (§4.4).
    fn unref_session(&self, session: &SessionId);

    /// `closeSession{release:true}` (§4.4).
    fn release_session(&self, session: &SessionId);
}
