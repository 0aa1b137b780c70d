//! The routing hubs (spec §10.10): Dispatcher, DispatcherOneToMany and
//! Mixer. They share one router: `select` decides which source each port
//! output carries (pure), `router` does it in GStreamer (encoded-level
//! switching, keyframe requests, audio mixing); the class files only
//! check their arguments and change the selection.
//!
//! Semantics (what a client sees):
//!
//! * **Dispatcher** `connect(source, sink)`: every media type of `source`
//!   goes to `sink`; a sink has one source, connecting it again switches.
//!   Any number of sinks per source; a port may be its own sink.
//! * **DispatcherOneToMany** `setSource(port)`: every *other* port receives
//!   that port's media (the source port gets nothing back, as the issue
//!   asks; spec §10.10 says upstream KMS also loops it back);
//!   `removeSource()` or releasing the source stops all outputs.
//! * **Mixer** `connect(VIDEO, source, sink)` routes like the Dispatcher;
//!   `connect(AUDIO, source, sink)` adds `source` to the audio mix `sink`
//!   receives (decoded, mixed by `audiomixer`, re-encoded for each
//!   consumer). `disconnect(VIDEO|AUDIO, source, sink)` undoes either
//!   (upstream KMS answers 40005 for video); disconnecting what is not
//!   connected does nothing, like `MediaElement.disconnect`. DATA → 40005.
//!
//! A switch happens at the new source's first keyframe, requested at once
//! (the old source keeps flowing until then: no grey picture); removing a
//! source stops its media at once.

mod dispatcher;
mod mixer;
mod one_to_many;
mod router;
#[cfg(test)]
mod router_tests;
pub mod select;

use std::sync::Arc;

use kms_core::api::core::{HubPort, MediaType};
use kms_core::error::Error;
use kms_core::hub::{HubCore, HubLogic};
use kms_core::object::ObjectId;

pub use dispatcher::DispatcherImpl;
pub use mixer::MixerImpl;
pub use one_to_many::DispatcherOneToManyImpl;
use router::Router;

/// Why a port cannot be used by a hub; answered as 40004 (`Can not connect
/// ports`, spec §10.10).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("Can not connect ports: {role} port '{port}' belongs to another pipeline ('{pipeline}')")]
    OtherPipeline { role: &'static str, port: ObjectId, pipeline: String },
    #[error("Can not connect ports: {role} port '{port}' belongs to another hub ('{hub}')")]
    OtherHub { role: &'static str, port: ObjectId, hub: String },
}

impl From<PortError> for Error {
    fn from(e: PortError) -> Self {
        Error::Connect(e.to_string())
    }
}

/// The id of `port` if it is one of `hub`'s ports.
fn own_port(hub: &HubCore, port: &Arc<dyn HubPort>, role: &'static str) -> Result<ObjectId, PortError> {
    let base = port.object();
    let id = base.id().clone();
    if base.pipeline() != hub.base().pipeline() {
        let pipeline = base.pipeline().map(|p| p.to_string()).unwrap_or_default();
        return Err(PortError::OtherPipeline { role, port: id, pipeline });
    }
    if base.parent() != Some(hub.base().id()) {
        let hub = base.parent().map(|p| p.to_string()).unwrap_or_default();
        return Err(PortError::OtherHub { role, port: id, hub });
    }
    Ok(id)
}

/// The [`HubLogic`] of every routing hub: ports' pads go to the router.
struct Logic(Arc<Router>);

impl HubLogic for Logic {
    fn port_input(&self, hub: &HubCore, port: &ObjectId, t: MediaType, src: &gst::Pad) {
        self.0.port_input(hub.bin(), port, t, src);
    }

    fn port_output(&self, hub: &HubCore, port: &ObjectId, t: MediaType, sink: &gst::Pad) {
        self.0.port_output(hub.bin(), port, t, sink);
    }

    fn port_removed(&self, hub: &HubCore, port: &ObjectId) {
        self.0.port_removed(hub.bin(), port);
    }
}

/// A hub core whose logic is a router with `selection`.
fn new_hub(
    ctx: &kms_core::rt::Ctx,
    pipeline: &Arc<dyn kms_core::api::core::MediaPipeline>,
    selection: select::Selection,
) -> kms_core::error::Result<(HubCore, Arc<Router>)> {
    let shared = pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
    let parent: &dyn kms_core::object::RemoteObject = pipeline.as_ref();
    let base = ctx.new_object_base(Some(parent));
    let router = Router::new(selection);
    let core = HubCore::new(base, shared, Box::new(Logic(router.clone())))?;
    Ok((core, router))
}
