//! The `crowddetector` Kurento module: `CrowdDetectorFilter`, which measures
//! occupancy, fluidity and movement direction in regions of interest of the
//! video and raises `CrowdDetectorOccupancy`, `CrowdDetectorFluidity` and
//! `CrowdDetectorDirection` when a level or direction changes.
//!
//! Built as a third-party module would be (`kurento-module-creator new`):
//! upstream's split descriptors in `kmd/` generate `api` at build time, and
//! the class rests on kms-filters' OpenCVFilter frame API. The video passes
//! unchanged (upstream's kmd declares no drawing property).
//!
//! * `roi` (pure): the constructor's regions, checked (40001 otherwise);
//! * `analysis` (pure): background, frame differences, block matching;
//! * here: the class and its [`FrameProcessor`], which scales the luma
//!   plane down to `processingWidth` and feeds the analysis.

pub mod analysis;
pub mod api;
pub mod roi;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use kms_core::api::core::Filter;
use kms_core::rt::{Ctx, Error, ModuleDescriptor, Result};
use kms_filters::opencv::{EventSink, FrameProcessor, OpenCvFilterCore};

use crate::analysis::{Analyzer, Detection};
use crate::api::crowddetector::events::{CrowdDetectorDirection, CrowdDetectorFluidity, CrowdDetectorOccupancy};
use crate::api::crowddetector::{CrowdDetectorFilter, CrowdDetectorFilterConstructor, CrowdDetectorFilterFactory};
use crate::roi::Roi;

/// The kmd's `processingWidth` default.
pub const DEFAULT_PROCESSING_WIDTH: i32 = 320;
/// Wider than any sensible processing picture; bounds the work per frame.
pub const MAX_PROCESSING_WIDTH: i32 = 1920;

/// The `crowddetector` module with its implemented class, for the server's
/// module list.
pub fn descriptor() -> ModuleDescriptor {
    api::crowddetector::module_descriptor(vec![api::crowddetector::crowd_detector_filter_class::<
        CrowdDetectorFilterImpl,
    >()])
}

pub struct CrowdDetectorFilterImpl {
    filter: OpenCvFilterCore,
    /// Shared with the processor, which restarts its analysis when it changes.
    processing_width: Arc<AtomicI32>,
}

kms_filters::impl_filter_object!(CrowdDetectorFilterImpl, filter);

impl Filter for CrowdDetectorFilterImpl {}

struct CrowdProcessor {
    rois: Vec<Roi>,
    processing_width: Arc<AtomicI32>,
    analyzer: Option<Analyzer>,
    small: Vec<u8>,
}

impl CrowdProcessor {
    /// Nearest-neighbour scaling of plane 0 (luma in every accepted
    /// format) to `w`×`h`.
    fn downscale(&mut self, frame: &VideoFrameRef<&mut gst::BufferRef>, w: usize, h: usize) -> bool {
        let (fw, fh) = (frame.width() as usize, frame.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let Ok(src) = frame.plane_data(0) else { return false };
        self.small.resize(w * h, 0);
        for y in 0..h {
            let row = &src[(y * fh / h) * stride..];
            for x in 0..w {
                self.small[y * w + x] = row[x * fw / w];
            }
        }
        true
    }
}

impl FrameProcessor for CrowdProcessor {
    fn formats(&self) -> Vec<VideoFormat> {
        // Plane 0 is the luma: what decoders hand out, so no conversion.
        vec![VideoFormat::I420, VideoFormat::Nv12, VideoFormat::Yv12, VideoFormat::Gray8]
    }

    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink) {
        let (fw, fh) = (frame.width() as usize, frame.height() as usize);
        if fw == 0 || fh == 0 {
            return;
        }
        let w = (self.processing_width.load(Ordering::Relaxed).max(1) as usize).min(fw);
        let h = (fh * w / fw).max(1);
        if self.analyzer.as_ref().map(|a| a.size()) != Some((w, h)) {
            // A new size restarts learning: the background is per pixel.
            self.analyzer = Some(Analyzer::new(&self.rois, w, h));
        }
        if !self.downscale(frame, w, h) {
            return;
        }
        let Some(analyzer) = self.analyzer.as_mut() else { return };
        for d in analyzer.feed(&self.small) {
            match d {
                Detection::Occupancy { roi, percentage, level } => events.raise(&CrowdDetectorOccupancy {
                    occupancy_percentage: percentage,
                    occupancy_level: level,
                    roi_id: roi,
                }),
                Detection::Fluidity { roi, percentage, level } => events.raise(&CrowdDetectorFluidity {
                    fluidity_percentage: percentage,
                    fluidity_level: level,
                    roi_id: roi,
                }),
                Detection::Direction { roi, angle } => {
                    events.raise(&CrowdDetectorDirection { direction_angle: angle, roi_id: roi })
                }
            }
        }
    }
}

impl CrowdDetectorFilterFactory for CrowdDetectorFilterImpl {
    fn construct(ctx: &Ctx, params: CrowdDetectorFilterConstructor) -> Result<Arc<Self>> {
        // spec §6: a bad parameter value is 40001, before anything is built.
        let rois = roi::check(&params.rois).map_err(|e| Error::marshall(e.to_string()))?;
        let processing_width = Arc::new(AtomicI32::new(DEFAULT_PROCESSING_WIDTH));
        let processor =
            CrowdProcessor { rois, processing_width: processing_width.clone(), analyzer: None, small: vec![] };
        let filter = OpenCvFilterCore::new(ctx, &params.media_pipeline, processor)?;
        Ok(Arc::new(CrowdDetectorFilterImpl { filter, processing_width }))
    }
}

impl CrowdDetectorFilter for CrowdDetectorFilterImpl {
    fn get_processing_width(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.processing_width.load(Ordering::Relaxed))
    }

    fn set_processing_width(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        if !(1..=MAX_PROCESSING_WIDTH).contains(&value) {
            return Err(Error::marshall(format!(
                "processingWidth must be between 1 and {MAX_PROCESSING_WIDTH} pixels, got {value}"
            )));
        }
        self.processing_width.store(value, Ordering::Relaxed);
        Ok(())
    }
}
