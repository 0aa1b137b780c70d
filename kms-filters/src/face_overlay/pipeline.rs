//! The FaceOverlayFilter's processing bin (an [`analysis`](crate::analysis)
//! bin): detection on a scaled-down copy of some frames, the overlay drawn
//! on every frame.
//!
//! ```text
//! sink ─ tee ─┬─[gate]─ queue ─ videoscale ≤320 wide ─ videoconvert ─ facedetect ─ fakesink ─[faces probe]
//!             └─ overlaycomposition (draw: image × latest faces) ─ src
//! ```
//!
//! * The gate sends detection at most `detectionsPerSecond` frames a
//!   second (module config, default [`DEFAULT_DETECTIONS_PER_SECOND`]),
//!   none while no image is set: an idle filter costs a tee.
//! * `facedetect` (Debian `gstreamer1.0-opencv`, the Haar cascade of
//!   `opencv-data`) attaches one `GstVideoRegionOfInterestMeta` per face;
//!   a probe after it stores them with the size they were found at.
//! * `overlaycomposition` asks for a composition on every frame: one
//!   rectangle per face, the image scaled to [`Placement::overlay`]; it
//!   blends them into the frame (our consumers never take composition
//!   metas).
//!
//! Threads: the RPC thread swaps the image, the detection thread the
//! faces, the streaming thread reads both; each under its own short lock,
//! none held while waiting for anything.

use std::sync::Arc;

use gst::prelude::*;
use parking_lot::Mutex;

use super::placement::{Placement, Rect, rescale};
use crate::analysis::{self, FrameGate};
use crate::overlay_image::OverlayImage;

/// Face detections per second by default (`detectionsPerSecond`).
pub const DEFAULT_DETECTIONS_PER_SECOND: u32 = 10;
/// Widest frame detection runs on (640×480 input is scanned at 320×240).
pub const DETECTION_MAX_WIDTH: i32 = 320;
/// Most faces drawn per frame.
pub const MAX_FACES: usize = 16;
/// The Haar cascade used, from Debian's `opencv-data`.
pub const FACE_CASCADE: &str = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";

/// The picture to draw and where, relative to each face.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub image: OverlayImage,
    pub placement: Placement,
}

/// Faces found in the last detected frame, in that frame's coordinates.
#[derive(Debug, Clone, Default)]
struct Detected {
    frame: (u32, u32),
    faces: Vec<Rect>,
}

/// State shared by the RPC thread, the detection branch and the drawing.
#[derive(Debug)]
pub struct OverlayState {
    overlay: Mutex<Option<Arc<Overlay>>>,
    detected: Mutex<Detected>,
}

impl OverlayState {
    pub fn new() -> Arc<OverlayState> {
        Arc::new(OverlayState { overlay: Mutex::new(None), detected: Mutex::new(Detected::default()) })
    }

    /// Replaces (or with `None` removes) the overlay. Faces of the previous
    /// one are forgotten, so a new image never shows at stale positions.
    pub fn set(&self, overlay: Option<Overlay>) {
        *self.overlay.lock() = overlay.map(Arc::new);
        *self.detected.lock() = Detected::default();
    }

    fn active(&self) -> Option<Arc<Overlay>> {
        self.overlay.lock().clone()
    }

    /// Rectangles to draw on a `width` × `height` frame.
    fn rectangles(&self, width: u32, height: u32) -> Vec<Rect> {
        let Some(o) = self.active() else { return vec![] };
        let d = self.detected.lock().clone();
        d.faces
            .iter()
            .take(MAX_FACES)
            .filter_map(|f| o.placement.overlay(rescale(*f, d.frame, (width, height)), width, height))
            .collect()
    }
}

/// Builds the bin (ghost `sink` and `src`), detecting at most
/// `detections_per_second` times a second. Fails when an element is
/// missing (`facedetect`: Debian `gstreamer1.0-opencv`).
pub fn build(state: &Arc<OverlayState>, detections_per_second: u32) -> Result<gst::Bin, gst::glib::BoolError> {
    let scale = gst::ElementFactory::make("videoscale").build()?;
    let small = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", gst::IntRange::new(16, DETECTION_MAX_WIDTH))
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        )
        .build()?;
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let detect = gst::ElementFactory::make("facedetect")
        .property("display", false)
        .property("profile", FACE_CASCADE)
        .property_from_str("updates", "none")
        .build()?;
    let draw = gst::ElementFactory::make("overlaycomposition").build()?;
    let s = state.clone();
    let built = analysis::build(
        "faceoverlay",
        Some(&draw),
        &[scale, small, convert, detect],
        FrameGate::new(detections_per_second),
        move || s.active().is_some(),
    )?;

    let s = state.clone();
    built.sink.static_pad("sink").expect("fakesink has a sink pad").add_probe(
        gst::PadProbeType::BUFFER,
        move |pad, info| {
            let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
            let Some(frame) = pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok()) else {
                return gst::PadProbeReturn::Ok;
            };
            let faces = buffer
                .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                .filter(|m| m.roi_type() == "face")
                .map(|m| {
                    let (x, y, width, height) = m.rect();
                    Rect { x: x as i32, y: y as i32, width, height }
                })
                .take(MAX_FACES)
                .collect();
            *s.detected.lock() = Detected { frame: (frame.width(), frame.height()), faces };
            gst::PadProbeReturn::Ok
        },
    );

    let s = state.clone();
    draw.connect("draw", false, move |args| {
        let none = || Some(None::<gst_video::VideoOverlayComposition>.to_value());
        let Some(overlay) = s.active() else { return none() };
        let Ok(sample) = args[1].get::<gst::Sample>() else { return none() };
        let Some(info) = sample.caps().and_then(|c| gst_video::VideoInfo::from_caps(c).ok()) else {
            return none();
        };
        let rects: Vec<_> = s
            .rectangles(info.width(), info.height())
            .into_iter()
            .map(|r| {
                gst_video::VideoOverlayRectangle::new_raw(
                    &overlay.image.buffer,
                    r.x,
                    r.y,
                    r.width,
                    r.height,
                    gst_video::VideoOverlayFormatFlags::empty(),
                )
            })
            .collect();
        if rects.is_empty() {
            return none();
        }
        match gst_video::VideoOverlayComposition::new(&rects) {
            Ok(c) => Some(Some(c).to_value()),
            Err(_) => none(),
        }
    });
    Ok(built.bin)
}
