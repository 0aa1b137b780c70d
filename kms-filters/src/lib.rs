//! kms-filters: GStreamerFilter, ZBarFilter, FaceOverlayFilter,
//! ImageOverlayFilter, and the OpenCVFilter base for modules.

extern crate self as kms_filters;

pub mod analysis;
pub mod api;
pub mod base;
pub mod face_overlay;
pub mod gstreamer_filter;
pub mod image_overlay;
pub mod opencv;
pub mod overlay_image;
pub mod zbar;

/// Descriptor of the `filters` module with its implemented classes.
pub fn descriptor() -> kms_core::rt::ModuleDescriptor {
    api::filters::module_descriptor(vec![
        api::filters::z_bar_filter_class::<zbar::ZBarFilterImpl>(),
        api::filters::face_overlay_filter_class::<face_overlay::FaceOverlayFilterImpl>(),
        api::filters::g_streamer_filter_class::<gstreamer_filter::GStreamerFilterImpl>(),
        api::filters::image_overlay_filter_class::<image_overlay::ImageOverlayFilterImpl>(),
    ])
}
