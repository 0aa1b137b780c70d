//! The Rust code module-creator generates for the fixture descriptors,
//! compiled (see `build.rs`), plus one implementation per plugin class so the
//! generated class and module descriptors are also instantiated.

#![allow(dead_code)]

/// All seven upstream modules generated against each other.
pub mod upstream {
    include!(concat!(env!("OUT_DIR"), "/upstream/core.rs"));
    include!(concat!(env!("OUT_DIR"), "/upstream/elements.rs"));
    include!(concat!(env!("OUT_DIR"), "/upstream/filters.rs"));
    include!(concat!(env!("OUT_DIR"), "/upstream/chroma.rs"));
    include!(concat!(env!("OUT_DIR"), "/upstream/crowddetector.rs"));
    include!(concat!(env!("OUT_DIR"), "/upstream/platedetector.rs"));
    include!(concat!(env!("OUT_DIR"), "/upstream/pointerdetector.rs"));
}

/// The four plugins generated against our built-in modules.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins/chroma.rs"));
    include!(concat!(env!("OUT_DIR"), "/plugins/crowddetector.rs"));
    include!(concat!(env!("OUT_DIR"), "/plugins/platedetector.rs"));
    include!(concat!(env!("OUT_DIR"), "/plugins/pointerdetector.rs"));
}

/// The golden test descriptors.
pub mod golden {
    include!(concat!(env!("OUT_DIR"), "/golden/names.rs"));
    include!(concat!(env!("OUT_DIR"), "/golden/split.rs"));
    include!(concat!(env!("OUT_DIR"), "/golden/tiny.rs"));
}

// The golden test descriptors again, in the layout that is checked in
// (`--rust-auto`), as a third-party crate would check them in: written into
// `trees/` by `tests/fixtures_compile.rs` before it builds this crate.
#[path = "trees/names/mod.rs"]
pub mod names_tree;
#[path = "trees/split/mod.rs"]
pub mod split_tree;
#[path = "trees/tiny/mod.rs"]
pub mod tiny_tree;

use std::sync::Arc;

use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::MediaType;
use kms_core::element::{ElementCore, ElementObject, MediaIo};
use kms_core::error::{Error, Result};
use kms_core::object::RemoteObject;
use kms_core::rt::{Ctx, ModuleDescriptor};

/// An element with no media inputs or outputs: enough to instantiate the
/// generated descriptors.
struct NoIo;

impl MediaIo for NoIo {
    fn input(&self, _bin: &gst::Bin, _t: MediaType, _desc: &str) -> Option<gst::Pad> {
        None
    }

    fn output(&self, _bin: &gst::Bin, _t: MediaType, _desc: &str) -> Option<AgnosticBin> {
        None
    }
}

fn element(ctx: &Ctx, pipeline: &dyn RemoteObject) -> Result<ElementCore> {
    let shared = pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
    let base = ctx.new_object_base(Some(pipeline));
    ElementCore::new(ctx, base, shared, Box::new(NoIo))
}

/// `RemoteObject`, `ElementObject` and `Filter` for an element struct with a
/// `core: ElementCore` field.
macro_rules! element_impl {
    ($t:ident) => {
        pub struct $t {
            core: ElementCore,
        }
        impl RemoteObject for $t {
            fn object(&self) -> &kms_core::object::ObjectBase {
                self.core.base()
            }
            fn element(&self) -> Option<&ElementCore> {
                Some(&self.core)
            }
            fn release(&self) {
                self.core.release();
            }
        }
        impl ElementObject for $t {
            fn core(&self) -> &ElementCore {
                &self.core
            }
        }
        impl kms_core::api::core::Filter for $t {}
    };
}

element_impl!(ChromaImpl);
element_impl!(CrowdImpl);
element_impl!(PlateImpl);
element_impl!(PointerImpl);

mod chroma_impl {
    use super::*;
    use crate::plugins::chroma::*;

    impl ChromaFilter for ChromaImpl {
        fn set_background(&self, _ctx: &Ctx, _uri: String) -> Result<()> {
            Ok(())
        }
        fn unset_background(&self, _ctx: &Ctx) -> Result<()> {
            Ok(())
        }
    }

    impl ChromaFilterFactory for ChromaImpl {
        fn construct(ctx: &Ctx, p: ChromaFilterConstructor) -> Result<Arc<Self>> {
            let WindowParam { top_right_corner_x: _, top_right_corner_y: _, width: _, height: _ } = p.window;
            let _background: String = p.background_image;
            Ok(Arc::new(ChromaImpl { core: element(ctx, p.media_pipeline.as_ref())? }))
        }
    }
}

mod crowd_impl {
    use super::*;
    use crate::plugins::crowddetector::*;

    impl CrowdDetectorFilter for CrowdImpl {
        fn get_processing_width(&self, _ctx: &Ctx) -> Result<i32> {
            Ok(320)
        }
        fn set_processing_width(&self, _ctx: &Ctx, _value: i32) -> Result<()> {
            Ok(())
        }
    }

    impl CrowdDetectorFilterFactory for CrowdImpl {
        fn construct(ctx: &Ctx, p: CrowdDetectorFilterConstructor) -> Result<Arc<Self>> {
            let rois: Vec<RegionOfInterest> = p.rois;
            for r in &rois {
                let _: &Vec<RelativePoint> = &r.points;
                let _: &RegionOfInterestConfig = &r.region_of_interest_config;
            }
            let core = element(ctx, p.media_pipeline.as_ref())?;
            core.base().raise(&events::CrowdDetectorDirection { direction_angle: 0.0, roi_id: String::new() });
            Ok(Arc::new(CrowdImpl { core }))
        }
    }
}

mod plate_impl {
    use super::*;
    use crate::plugins::platedetector::*;

    impl PlateDetectorFilter for PlateImpl {
        fn set_plate_width_percentage(&self, _ctx: &Ctx, _plate_width_percentage: f32) -> Result<()> {
            Ok(())
        }
    }

    impl PlateDetectorFilterFactory for PlateImpl {
        fn construct(ctx: &Ctx, p: PlateDetectorFilterConstructor) -> Result<Arc<Self>> {
            let core = element(ctx, p.media_pipeline.as_ref())?;
            core.base().raise(&events::PlateDetected { plate: String::new() });
            Ok(Arc::new(PlateImpl { core }))
        }
    }
}

mod pointer_impl {
    use super::*;
    use crate::plugins::pointerdetector::*;

    impl PointerDetectorFilter for PointerImpl {
        fn add_window(&self, _ctx: &Ctx, _window: PointerDetectorWindowMediaParam) -> Result<()> {
            Ok(())
        }
        fn clear_windows(&self, _ctx: &Ctx) -> Result<()> {
            Ok(())
        }
        fn track_color_from_calibration_region(&self, _ctx: &Ctx) -> Result<()> {
            Ok(())
        }
        fn remove_window(&self, _ctx: &Ctx, _window_id: String) -> Result<()> {
            Ok(())
        }
    }

    impl PointerDetectorFilterFactory for PointerImpl {
        fn construct(ctx: &Ctx, p: PointerDetectorFilterConstructor) -> Result<Arc<Self>> {
            let _: WindowParam = p.calibration_region;
            let _: Vec<PointerDetectorWindowMediaParam> = p.windows;
            let core = element(ctx, p.media_pipeline.as_ref())?;
            core.base().raise(&events::WindowIn { window_id: String::new() });
            Ok(Arc::new(PointerImpl { core }))
        }
    }
}

/// The four plugin modules with their class, as a server registers them.
pub fn descriptors() -> Vec<ModuleDescriptor> {
    use plugins::{chroma, crowddetector as crowd, platedetector as plate, pointerdetector as pointer};
    vec![
        chroma::module_descriptor(vec![chroma::chroma_filter_class::<ChromaImpl>()]),
        crowd::module_descriptor(vec![crowd::crowd_detector_filter_class::<CrowdImpl>()]),
        plate::module_descriptor(vec![plate::plate_detector_filter_class::<PlateImpl>()]),
        pointer::module_descriptor(vec![pointer::pointer_detector_filter_class::<PointerImpl>()]),
    ]
}
