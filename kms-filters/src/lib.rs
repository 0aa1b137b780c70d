//! kms-filters: GStreamerFilter, ZBarFilter, FaceOverlayFilter,
//! ImageOverlayFilter.
//!
//! Registered with the classes implemented so far (none yet: they land with
//! their own issue); `getInfo` still lists the module, as clients require.

extern crate self as kms_filters;

pub mod analysis;
pub mod api;
pub mod base;
pub mod face_overlay;
pub mod overlay_image;
pub mod zbar;

/// Descriptor of the `filters` module with its implemented classes.
pub fn descriptor() -> kms_core::rt::ModuleDescriptor {
    api::filters::module_descriptor(vec![
        api::filters::z_bar_filter_class::<zbar::ZBarFilterImpl>(),
        api::filters::face_overlay_filter_class::<face_overlay::FaceOverlayFilterImpl>(),
    ])
}
