//! The `core` module as the server registers it.

use crate::api::core as generated;
use crate::hub::HubPortImpl;
use crate::passthrough::PassThroughImpl;
use crate::pipeline::MediaPipelineImpl;
use crate::rt::ModuleDescriptor;
use crate::server_manager::ServerManagerImpl;

/// Initializes GStreamer and registers our in-process elements. Idempotent.
pub fn init() -> Result<(), gst::glib::Error> {
    gst::init()?;
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        if let Err(e) = crate::agnosticbin::register() {
            tracing::error!("cannot register kmsagnosticbin: {e}");
        }
    });
    Ok(())
}

/// Descriptor of the `core` module with its implemented classes.
pub fn descriptor() -> ModuleDescriptor {
    generated::module_descriptor(vec![
        generated::media_pipeline_class::<MediaPipelineImpl>(),
        generated::pass_through_class::<PassThroughImpl>(),
        generated::hub_port_class::<HubPortImpl>(),
        generated::server_manager_class::<ServerManagerImpl>(),
    ])
}
