//! kms-core: the media object model of Kurento — registry, MediaPipeline,
//! MediaElement with agnosticbin, Hub/HubPort, PassThrough, ServerManager —
//! and the runtime that module-creator's generated code targets.

extern crate self as kms_core;

pub mod agnosticbin;
pub mod api;
pub mod config;
pub mod element;
pub mod error;
pub mod flow;
pub mod hub;
pub mod loop_guard;
mod media_object;
pub mod metrics;
pub mod module;
pub mod object;
pub mod passthrough;
pub mod pipeline;
pub mod pipeline_shared;
pub mod registry;
pub mod rt;
pub mod server_manager;

/// Locks that do not poison: a panic caught in one call must not turn
/// every later call on the same object into an internal error. Modules use
/// these too (the scaffold does).
pub mod sync {
    pub use parking_lot::{Mutex, MutexGuard};
}

pub use config::CoreConfig;
pub use error::{Error, Result};
pub use registry::Registry;
