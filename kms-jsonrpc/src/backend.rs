//! The seam between the protocol layer and the media object model.
//!
//! `kms-jsonrpc` knows sessions, connections, envelopes and error shapes but
//! nothing about media objects; `kms-core` implements [`MediaBackend`] on top
//! of its object registry. Keeping this a trait lets the dispatch core be
//! unit-tested with a fake backend and a fake clock (no sockets, no GStreamer).

use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::session::SessionId;

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

/// Operations the protocol layer forwards to the object model.
///
/// Every method runs on a blocking-capable thread (never on a tokio worker),
/// so implementations may block for a bounded time (GStreamer state changes,
/// `getUsedCpu(interval)`). Object ids arrive exactly as the client sent them,
/// after `newref:` substitution inside transactions; an id still of the form
/// `newref:<n>` must be answered with 40109 by the backend.
pub trait MediaBackend: Send + Sync + 'static {
    /// spec §5.3. Returns the new object's id.
    fn create(
        &self,
        session: &SessionId,
        type_name: &str,
        constructor_params: Option<&Value>,
    ) -> Result<String, RpcError>;

    /// spec §5.4. Refs the object in `session`.
    fn describe(&self, session: &SessionId, object: &str) -> Result<Description, RpcError>;

    /// spec §5.5. `params` is `None` when `operationParams` is absent or not an
    /// object. Returns the value for `result.value` (`Value::Null` for void).
    fn invoke(
        &self,
        session: &SessionId,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value, RpcError>;

    /// spec §5.6. Returns a new subscription id.
    fn subscribe(&self, session: &SessionId, object: &str, event_type: &str) -> Result<String, RpcError>;

    /// spec §5.7. Unknown ids are not errors.
    fn unsubscribe(&self, session: &SessionId, object: &str, subscription: &str) -> Result<(), RpcError>;

    /// spec §5.8: release for every session; unknown ids succeed.
    fn release(&self, session: &SessionId, object: &str) -> Result<(), RpcError>;

    /// spec §5.10 `ref`: unknown object → 40101.
    fn ref_object(&self, session: &SessionId, object: &str) -> Result<(), RpcError>;

    /// spec §5.10 `unref`: unknown object → success.
    fn unref_object(&self, session: &SessionId, object: &str) -> Result<(), RpcError>;

    /// Session collected by the GC, or `closeSession{release:false}` (§4.4).
    fn unref_session(&self, session: &SessionId);

    /// `closeSession{release:true}` (§4.4).
    fn release_session(&self, session: &SessionId);
}
