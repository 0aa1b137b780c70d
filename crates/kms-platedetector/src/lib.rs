//! The `platedetector` Kurento module: `PlateDetectorFilter` finds a licence
//! plate in the video, reads it with Tesseract and raises `PlateDetected
//! {plate}`.
//!
//! Built as a third-party module would be (`kurento-module-creator new`):
//! upstream's split descriptors in `kmd/` generate `api` at build time; the
//! class rests on kms-filters' OpenCVFilter frame API. The video passes
//! unchanged.
//!
//! * `locate` (pure): the plate-shaped bright box near the expected width;
//! * `ocr`: the `tesseract` command;
//! * here: the class; its [`FrameProcessor`] hands a copy of the luma plane
//!   to an OCR thread whenever that thread is idle (frames meanwhile pass
//!   untouched: OCR takes ~100 ms), and the thread raises the events.

pub mod api;
pub mod locate;
pub mod ocr;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use kms_core::api::core::Filter;
use kms_core::rt::{Ctx, Error, ModuleDescriptor, Result};
use kms_filters::opencv::{EventSink, FrameProcessor, OpenCvFilterCore};

use crate::api::platedetector::events::PlateDetected;
use crate::api::platedetector::{PlateDetectorFilter, PlateDetectorFilterConstructor, PlateDetectorFilterFactory};

/// Upstream's default plate width: 30 % of the picture.
pub const DEFAULT_PLATE_WIDTH: f32 = 0.3;
/// The same plate is raised again only after this long without reading it.
const REPEAT_AFTER: Duration = Duration::from_secs(3);
/// A failing tesseract raises `Error` at most this often.
const ERROR_EVERY: Duration = Duration::from_secs(5);
/// Shorter reads are noise, not plates.
const MIN_CHARS: usize = 4;

/// The `platedetector` module with its implemented class.
pub fn descriptor() -> ModuleDescriptor {
    api::platedetector::module_descriptor(vec![api::platedetector::plate_detector_filter_class::<
        PlateDetectorFilterImpl,
    >()])
}

pub struct PlateDetectorFilterImpl {
    filter: OpenCvFilterCore,
    /// `f32` bits, shared with the OCR thread.
    plate_width: Arc<AtomicU32>,
}

kms_filters::impl_filter_object!(PlateDetectorFilterImpl, filter);

impl Filter for PlateDetectorFilterImpl {}

/// A luma picture for the OCR thread.
struct Picture {
    luma: Vec<u8>,
    width: usize,
    height: usize,
}

struct PlateProcessor {
    /// To the OCR thread; dropping it (with the filter) ends the thread.
    to_ocr: SyncSender<(Picture, EventSink)>,
    /// Set here when a picture is sent, cleared by the OCR thread when it
    /// is done: frames meanwhile are not even copied.
    busy: Arc<AtomicBool>,
}

impl FrameProcessor for PlateProcessor {
    fn formats(&self) -> Vec<VideoFormat> {
        vec![VideoFormat::I420, VideoFormat::Nv12, VideoFormat::Yv12, VideoFormat::Gray8]
    }

    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink) {
        if self.busy.load(Ordering::Acquire) {
            return;
        }
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let Ok(src) = frame.plane_data(0) else { return };
        let mut luma = Vec::with_capacity(w * h);
        for y in 0..h {
            luma.extend_from_slice(&src[y * stride..y * stride + w]);
        }
        self.busy.store(true, Ordering::Release);
        // Never blocks: the thread took the previous picture before it
        // cleared `busy`.
        if self.to_ocr.try_send((Picture { luma, width: w, height: h }, events.clone())).is_err() {
            self.busy.store(false, Ordering::Release);
        }
    }
}

/// The OCR thread: locate, read, debounce, raise.
fn ocr_loop(rx: Receiver<(Picture, EventSink)>, bin: PathBuf, plate_width: Arc<AtomicU32>, busy: Arc<AtomicBool>) {
    let mut memory = Memory::default();
    while let Ok((pic, events)) = rx.recv() {
        read_plate(&pic, &events, &bin, &plate_width, &mut memory);
        busy.store(false, Ordering::Release);
    }
}

/// What the OCR thread remembers between pictures.
#[derive(Default)]
struct Memory {
    /// The last plate read and when.
    last: Option<(String, Instant)>,
    /// When the last `Error` event was raised.
    last_error: Option<Instant>,
}

fn read_plate(pic: &Picture, events: &EventSink, bin: &Path, plate_width: &AtomicU32, memory: &mut Memory) {
    let expected = f32::from_bits(plate_width.load(Ordering::Relaxed));
    let Some(rect) = locate::find_plate(&pic.luma, pic.width, pic.height, expected) else { return };
    let text = match ocr::read_line(bin, &locate::crop_pgm(&pic.luma, pic.width, rect)) {
        Ok(t) => locate::normalize(&t),
        Err(e) => {
            tracing::warn!("PlateDetectorFilter: {e}");
            if memory.last_error.is_none_or(|t| t.elapsed() >= ERROR_EVERY) {
                memory.last_error = Some(Instant::now());
                events.error("UNEXPECTED_ERROR", format!("PlateDetectorFilter: {e}"));
            }
            return;
        }
    };
    if text.len() < MIN_CHARS {
        return;
    }
    let now = Instant::now();
    let repeat = memory.last.as_ref().is_some_and(|(p, t)| *p == text && now.duration_since(*t) < REPEAT_AFTER);
    memory.last = Some((text.clone(), now));
    if !repeat {
        tracing::debug!(plate = %text, "plate detected");
        events.raise(&PlateDetected { plate: text });
    }
}

impl PlateDetectorFilterFactory for PlateDetectorFilterImpl {
    fn construct(ctx: &Ctx, params: PlateDetectorFilterConstructor) -> Result<Arc<Self>> {
        let bin = ocr::tesseract().map_err(|e| Error::NotAvailable(e.to_string()))?;
        let plate_width = Arc::new(AtomicU32::new(DEFAULT_PLATE_WIDTH.to_bits()));
        let (to_ocr, rx) = sync_channel(1);
        let busy = Arc::new(AtomicBool::new(false));
        let (shared, thread_busy) = (plate_width.clone(), busy.clone());
        std::thread::Builder::new()
            .name("plate-ocr".into())
            .spawn(move || ocr_loop(rx, bin, shared, thread_busy))
            .map_err(|e| Error::NotEnoughResources(format!("cannot start the OCR thread: {e}")))?;
        let filter = OpenCvFilterCore::new(ctx, &params.media_pipeline, PlateProcessor { to_ocr, busy })?;
        Ok(Arc::new(PlateDetectorFilterImpl { filter, plate_width }))
    }
}

impl PlateDetectorFilter for PlateDetectorFilterImpl {
    fn set_plate_width_percentage(&self, _ctx: &Ctx, plate_width_percentage: f32) -> Result<()> {
        // kmd: a fraction of the picture width, [0..1].
        if !(plate_width_percentage > 0.0 && plate_width_percentage <= 1.0) {
            return Err(Error::marshall(format!(
                "plateWidthPercentage must be in (0, 1], got {plate_width_percentage}"
            )));
        }
        self.plate_width.store(plate_width_percentage.to_bits(), Ordering::Relaxed);
        Ok(())
    }
}
