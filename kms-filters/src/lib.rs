//! kms-filters: GStreamerFilter, ZBarFilter, FaceOverlayFilter,
//! ImageOverlayFilter.
//!
//! Registered with the classes implemented so far (none yet: they land with
//! their own issue); `getInfo` still lists the module, as clients require.

extern crate self as kms_filters;

pub mod api;
pub mod base;
pub mod gstreamer_filter;
pub mod image_overlay;
pub mod opencv;

/// Descriptor of the `filters` module with its implemented classes.
pub fn descriptor() -> kms_core::rt::ModuleDescriptor {
    api::filters::module_descriptor(vec![
        api::filters::g_streamer_filter_class::<gstreamer_filter::GStreamerFilterImpl>(),
        api::filters::image_overlay_filter_class::<image_overlay::ImageOverlayFilterImpl>(),
    ])
}
