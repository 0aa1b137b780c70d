//! Mixing hubs (spec §10.10): [`CompositeImpl`] (grid video, N−1 audio)
//! and [`AlphaBlendingImpl`] (pictures layered over a master, N−1 audio).
//! Both are a [`mix::Mix`] inside a `kms_core::hub::HubCore`; they differ
//! only in where pictures go ([`layout`]).

use kms_core::object::{ObjectBase, ObjectId};

mod alpha_blending;
mod composite;
pub mod layout;
pub mod mix;

pub use alpha_blending::AlphaBlendingImpl;
pub use composite::CompositeImpl;

/// What can go wrong in a mixing hub.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The GStreamer plugin providing an element is not installed.
    #[error("GStreamer element '{0}' is not available")]
    MissingElement(String),
    /// Building or linking the hub's branches failed.
    #[error("cannot link hub media: {0}")]
    Link(String),
    /// A constructor or method value out of range.
    #[error("{0}")]
    BadValue(String),
    /// A HubPort of another hub passed to this hub's method.
    #[error("HubPort '{port}' does not belong to hub '{hub}'")]
    ForeignPort { port: ObjectId, hub: ObjectId },
}

impl From<HubError> for kms_core::Error {
    fn from(e: HubError) -> Self {
        match e {
            HubError::MissingElement(_) => kms_core::Error::NotAvailable(e.to_string()),
            HubError::Link(_) => kms_core::Error::Unexpected(e.to_string()),
            HubError::BadValue(_) => kms_core::Error::Marshall(e.to_string()),
            // 40107: an object the call cannot use here.
            HubError::ForeignPort { .. } => kms_core::Error::IllegalParam(e.to_string()),
        }
    }
}

/// `port` must be a child of the hub `hub` (ports of another hub, even of
/// the same pipeline, are refused).
pub(crate) fn own_port(hub: &ObjectId, port: &ObjectBase) -> Result<ObjectId, HubError> {
    let id = port.id().clone();
    if port.parent() == Some(hub) { Ok(id) } else { Err(HubError::ForeignPort { port: id, hub: hub.clone() }) }
}
