//! OpenCVFilter (abstract, spec §10.11): the base a module's filter extends
//! to process raw video frames in Rust, as KMS's `OpenCVProcess::process(cv::Mat&)`.
//!
//! A module implements [`FrameProcessor`] and builds its class on an
//! [`OpenCvFilterCore`]:
//!
//! ```ignore
//! struct Invert;
//! impl FrameProcessor for Invert {
//!     fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, _events: &EventSink) {
//!         for b in frame.plane_data_mut(0).unwrap() { *b = 255 - *b; }
//!     }
//! }
//!
//! pub struct MyFilterImpl { filter: OpenCvFilterCore }
//! kms_filters::impl_filter_object!(MyFilterImpl, filter);
//! impl kms_core::api::core::Filter for MyFilterImpl {}
//! impl kms_filters::api::filters::OpenCVFilter for MyFilterImpl {}
//! // construct: OpenCvFilterCore::new(ctx, &params.media_pipeline, Invert)
//! ```
//!
//! Frames arrive in one of [`FrameProcessor::formats`] (default BGRA, the
//! layout of KMS's `cv::Mat`), converted from and back to what the
//! pipeline carries; the processor changes them in place. It runs on the
//! streaming thread of the filter's input: a slow processor slows that
//! stream only. Settings changed by RPC reach the processor through state
//! it shares (an `Arc<Mutex<_>>` locked briefly on both sides); it never
//! waits for an RPC thread.
//!
//! Events go through the [`EventSink`] given to every call: `raise` any
//! generated event of the module (`CodeFound`, `PlateDetected`, ...), or
//! [`EventSink::error`] for the standard `Error` event.

mod element;

use std::sync::Arc;

use gst::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use kms_core::api::core::MediaPipeline;
use kms_core::element::ElementCore;
use kms_core::object::ObjectBase;
use kms_core::rt::{Ctx, Event, Map};
use kms_core::{Error, Result};

use crate::base::{FilterCore, Processing};
pub use element::FrameProcessorElement;

/// Per-frame processing of a filter, in place.
pub trait FrameProcessor: Send + 'static {
    /// The raw formats `process` understands, by preference. The frame
    /// comes in one of them.
    fn formats(&self) -> Vec<VideoFormat> {
        vec![VideoFormat::Bgra]
    }

    /// Changes `frame` in place (its size and format stay); events go to
    /// `events`. Called on a streaming thread for every frame.
    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink);
}

type EventFn = dyn Fn(&str, Map) + Send + Sync;

/// Where a [`FrameProcessor`] raises events: the filter object's
/// subscribers (never blocks), or, in tests, a callback.
#[derive(Clone)]
pub struct EventSink {
    target: Target,
}

#[derive(Clone)]
enum Target {
    None,
    Object(ObjectBase),
    Callback(Arc<EventFn>),
}

impl EventSink {
    /// Events of the object `base`.
    pub fn new(base: ObjectBase) -> EventSink {
        EventSink { target: Target::Object(base) }
    }

    /// A sink that drops everything (before the filter object exists).
    pub fn none() -> EventSink {
        EventSink { target: Target::None }
    }

    /// Hands every event to `f` as (event name, fields as sent in
    /// `data.value`, without the object/source/type fields the server
    /// adds): for tests of processors.
    pub fn from_fn(f: impl Fn(&str, Map) + Send + Sync + 'static) -> EventSink {
        EventSink { target: Target::Callback(Arc::new(f)) }
    }

    /// Raises `event` on the filter.
    pub fn raise<E: Event>(&self, event: &E) {
        match &self.target {
            Target::None => {}
            Target::Object(base) => base.raise(event),
            Target::Callback(f) => {
                let mut map = Map::new();
                event.write_fields(&mut map);
                f(E::NAME, map);
            }
        }
    }

    /// Raises the standard `Error` event (`type`, e.g. `"INVALID_MEDIA"`).
    pub fn error(&self, r#type: &str, description: impl Into<String>) {
        self.raise(&kms_core::api::core::events::Error {
            description: description.into(),
            error_code: 0,
            r#type: r#type.to_string(),
        });
    }
}

/// The core of a frame-processing filter: a [`FilterCore`] whose video
/// goes through a [`FrameProcessor`].
pub struct OpenCvFilterCore {
    filter: FilterCore,
}

impl OpenCvFilterCore {
    /// Creates the filter in `pipeline`; its events go to the new object.
    pub fn new(ctx: &Ctx, pipeline: &Arc<dyn MediaPipeline>, processor: impl FrameProcessor) -> Result<Self> {
        let formats = processor.formats();
        if formats.is_empty() {
            return Err(Error::Unexpected("a frame processor must accept at least one format".into()));
        }
        let element = FrameProcessorElement::new(Box::new(processor));
        let caps = gst_video::VideoCapsBuilder::new().format_list(formats).build();
        let bin = processing_bin(&caps, element.upcast_ref())
            .map_err(|e| Error::NotAvailable(format!("Cannot build the frame processor: {e}")))?;
        let filter = FilterCore::new(ctx, pipeline, Processing::video(bin))?;
        element.set_events(EventSink::new(filter.base().clone()));
        Ok(OpenCvFilterCore { filter })
    }

    pub fn filter(&self) -> &FilterCore {
        &self.filter
    }

    pub fn core(&self) -> &ElementCore {
        self.filter.core()
    }

    pub fn base(&self) -> &ObjectBase {
        self.filter.base()
    }
}

/// `capsfilter(formats) ! element` with ghost pads: the stage's converter
/// picks one of the processor's formats.
pub fn processing_bin(caps: &gst::Caps, element: &gst::Element) -> std::result::Result<gst::Bin, gst::glib::BoolError> {
    let bin = gst::Bin::new();
    let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build()?;
    bin.add_many([&filter, element])?;
    filter.link(element)?;
    let sink = filter.static_pad("sink").ok_or_else(|| gst::glib::bool_error!("no sink pad"))?;
    let src = element.static_pad("src").ok_or_else(|| gst::glib::bool_error!("no src pad"))?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&sink)?.name("sink").build())?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&src)?.name("src").build())?;
    Ok(bin)
}
