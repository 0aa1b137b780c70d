use std::sync::LazyLock;

use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::BaseTransformMode;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use gst_video::subclass::prelude::*;
use parking_lot::Mutex;

use super::super::{EventSink, FrameProcessor};

/// The formats any processor may ask for (the bin in front narrows them
/// to the processor's).
const FORMATS: &[VideoFormat] = &[
    VideoFormat::Bgra,
    VideoFormat::Rgba,
    VideoFormat::Bgrx,
    VideoFormat::Rgbx,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Bgr,
    VideoFormat::Rgb,
    VideoFormat::I420,
    VideoFormat::Nv12,
    VideoFormat::Gray8,
    VideoFormat::Ayuv,
];

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("kmsframeprocessor", gst::DebugColorFlags::empty(), Some("Kurento frame processor"))
});

pub struct FrameProcessorElement {
    /// Taken only on the streaming thread (and once at construction).
    pub(super) processor: Mutex<Option<Box<dyn FrameProcessor>>>,
    pub(super) events: Mutex<EventSink>,
}

impl Default for FrameProcessorElement {
    fn default() -> Self {
        FrameProcessorElement { processor: Mutex::new(None), events: Mutex::new(EventSink::none()) }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FrameProcessorElement {
    const NAME: &'static str = "KmsFrameProcessor";
    type Type = super::FrameProcessorElement;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for FrameProcessorElement {}
impl GstObjectImpl for FrameProcessorElement {}

impl ElementImpl for FrameProcessorElement {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Kurento frame processor",
                "Filter/Effect/Video",
                "Hands every raw frame to a Rust FrameProcessor",
                "kurento-rs",
            )
        });
        Some(&META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS.iter().copied()).build();
            vec![
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).unwrap(),
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for FrameProcessorElement {
    const MODE: BaseTransformMode = BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;
}

impl VideoFilterImpl for FrameProcessorElement {
    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let events = self.events.lock().clone();
        if let Some(p) = self.processor.lock().as_mut() {
            p.process(frame, &events);
        } else {
            gst::trace!(CAT, imp = self, "no processor");
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
