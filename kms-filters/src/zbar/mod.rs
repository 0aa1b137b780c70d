//! ZBarFilter (spec §10.11): the GStreamer `zbar` element (Debian
//! `gstreamer1.0-plugins-bad`) scans frames beside the video (an
//! [`analysis`](crate::analysis) bin: at most `scansPerSecond` frames a
//! second, module config, default [`DEFAULT_SCANS_PER_SECOND`]; the video
//! itself goes on unchanged and never waits for a scan); `CodeFound` is
//! raised once per code appearing ([`tracker`]), not once per frame.
//!
//! zbar posts a `barcode` element message for each code on each frame it
//! reads it in. The filter stage hands the message to our hook on the
//! posting streaming thread, before it reaches the pipeline's bus; the hook
//! takes only the tracker's lock (never held by an RPC thread) and raises
//! the event, which never blocks.

pub mod tracker;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::object::ObjectBase;
use kms_core::rt::Ctx;
use kms_core::{Error, Result};
use parking_lot::Mutex;

use crate::analysis::FrameGate;
use crate::api::filters::events::CodeFound;
use crate::api::filters::{ZBarFilter, ZBarFilterConstructor, ZBarFilterFactory};
use crate::base::{FilterCore, Processing};
use tracker::CodeTracker;

/// Frames scanned per second by default (`scansPerSecond`): zbar costs
/// about 10 ms per busy 640×480 frame here, and a code held up to a camera
/// is in view for far longer than 1/15 s.
pub const DEFAULT_SCANS_PER_SECOND: u32 = 15;

pub struct ZBarFilterImpl {
    filter: FilterCore,
}

crate::impl_filter_object!(ZBarFilterImpl, filter);

impl kms_core::api::core::Filter for ZBarFilterImpl {}
impl ZBarFilter for ZBarFilterImpl {}

/// spec §10.11: a missing zbar plugin is 40101 at `create`.
fn missing(element: &str, package: &str) -> Error {
    Error::Code {
        code: 40101,
        message: format!("GStreamer element '{element}' is not available (Debian package {package})"),
    }
}

impl ZBarFilterFactory for ZBarFilterImpl {
    fn construct(ctx: &Ctx, params: ZBarFilterConstructor) -> Result<Arc<Self>> {
        if gst::ElementFactory::find("zbar").is_none() {
            return Err(missing("zbar", "gstreamer1.0-plugins-bad"));
        }
        let convert =
            gst::ElementFactory::make("videoconvert").build().map_err(|e| Error::NotAvailable(e.to_string()))?;
        let zbar = gst::ElementFactory::make("zbar")
            // Our tracker decides what is new; zbar's own cache would
            // hide codes from it.
            .property("cache", false)
            .property("message", true)
            .build()
            .map_err(|_| missing("zbar", "gstreamer1.0-plugins-bad"))?;
        // The hook exists before the object does; it raises through this
        // slot once construction finished.
        let owner: Arc<OnceLock<ObjectBase>> = Arc::new(OnceLock::new());
        let hook_owner = owner.clone();
        let tracker = Arc::new(Mutex::new(CodeTracker::default()));
        let hook_tracker = tracker.clone();
        let start = Instant::now();
        let rate =
            crate::analysis::rate_from_config(ctx.config(), "ZBarFilter", "scansPerSecond", DEFAULT_SCANS_PER_SECOND);
        let scanner = crate::analysis::build("zbarfilter", None, &[convert, zbar], FrameGate::new(rate), || true)
            .map_err(|e| Error::NotAvailable(format!("Cannot build the filter: {e}")))?;
        // A frame reaching the analysis sink has been scanned: zbar posted
        // its codes (handled above, synchronously, on this thread) before
        // pushing it on.
        let scanned = tracker.clone();
        scanner.sink.static_pad("sink").expect("fakesink has a sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                let now = info
                    .buffer()
                    .and_then(|b| b.pts())
                    .and_then(|pts| {
                        let seg = pad.sticky_event::<gst::event::Segment>(0)?;
                        seg.segment().downcast_ref::<gst::ClockTime>()?.to_running_time(pts)
                    })
                    .map(|t| Duration::from_nanos(t.nseconds()))
                    .unwrap_or_else(|| start.elapsed());
                scanned.lock().scan_done(now);
                gst::PadProbeReturn::Ok
            },
        );
        let processing = Processing::video(scanner.bin).on_element_message(move |msg| {
            let Some(s) = msg.structure() else { return };
            if s.name() != "barcode" {
                return;
            }
            let (Ok(code_type), Ok(value)) = (s.get::<String>("type"), s.get::<String>("symbol")) else {
                return;
            };
            // The frame's running time; elapsed wall time if zbar gave none.
            let now = s
                .get::<u64>("running-time")
                .ok()
                .filter(|t| *t != u64::MAX)
                .map(Duration::from_nanos)
                .unwrap_or_else(|| start.elapsed());
            if !hook_tracker.lock().sighting(&code_type, &value, now) {
                return;
            }
            if let Some(base) = hook_owner.get() {
                tracing::debug!(object = %base.id(), code_type, value, "CodeFound");
                base.raise(&CodeFound { code_type, value });
            }
        });
        let filter = FilterCore::new(ctx, &params.media_pipeline, processing)?;
        let _ = owner.set(filter.base().clone());
        Ok(Arc::new(ZBarFilterImpl { filter }))
    }
}
