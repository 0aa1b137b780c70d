//! ImageOverlayFilter (spec §10.11): images drawn over the video at
//! fractions of the frame, added and removed by id while media flows.
//!
//! * `layout` (pure): fractions → pixel rectangles;
//! * `loader`: fetch and decode an image (media-root and host policy of
//!   the URI endpoints) on the RPC thread;
//! * here: the class and its [`FrameProcessor`], which blends a
//!   `GstVideoOverlayComposition` into each frame. The composition is
//!   rebuilt only when the set of images or the frame size changes.

pub mod layout;
pub mod loader;

use std::collections::BTreeMap;
use std::sync::Arc;

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef, VideoOverlayComposition, VideoOverlayRectangle};
use kms_core::api::core::Filter;
use kms_core::rt::Ctx;
use kms_core::{Error, Result};
use parking_lot::Mutex;

use crate::api::filters::{ImageOverlayFilter, ImageOverlayFilterConstructor, ImageOverlayFilterFactory};
use crate::opencv::{EventSink, FrameProcessor, OpenCvFilterCore};
use layout::Placement;
use loader::Image;

/// The images to draw, shared by the RPC side and the processor.
#[derive(Default)]
struct Overlays {
    images: BTreeMap<String, (Image, Placement)>,
    /// Bumped on every change, so the processor rebuilds its composition.
    version: u64,
}

pub struct ImageOverlayFilterImpl {
    filter: OpenCvFilterCore,
    overlays: Arc<Mutex<Overlays>>,
}

crate::impl_filter_object!(ImageOverlayFilterImpl, filter);

impl Filter for ImageOverlayFilterImpl {}

struct OverlayProcessor {
    overlays: Arc<Mutex<Overlays>>,
    /// (version, width, height) the composition was built for.
    built: Option<(u64, u32, u32)>,
    composition: Option<VideoOverlayComposition>,
}

impl OverlayProcessor {
    fn composition_for(&mut self, width: u32, height: u32) -> Option<&VideoOverlayComposition> {
        let overlays = self.overlays.lock();
        let key = (overlays.version, width, height);
        if self.built != Some(key) {
            let rects: Vec<VideoOverlayRectangle> = overlays
                .images
                .values()
                .filter_map(|(img, place)| {
                    let (x, y, w, h) = place.rect(width, height, img.width, img.height)?;
                    Some(VideoOverlayRectangle::new_raw(
                        &img.buffer,
                        x,
                        y,
                        w,
                        h,
                        gst_video::VideoOverlayFormatFlags::empty(),
                    ))
                })
                .collect();
            drop(overlays);
            self.composition = if rects.is_empty() { None } else { VideoOverlayComposition::new(rects.iter()).ok() };
            self.built = Some(key);
        }
        self.composition.as_ref()
    }
}

impl FrameProcessor for OverlayProcessor {
    fn formats(&self) -> Vec<VideoFormat> {
        // I420 first: what the decoders hand out, so usually no conversion.
        vec![VideoFormat::I420, VideoFormat::Nv12, VideoFormat::Bgra, VideoFormat::Rgba, VideoFormat::Bgrx]
    }

    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink) {
        let (w, h) = (frame.width(), frame.height());
        if let Some(c) = self.composition_for(w, h)
            && let Err(e) = c.blend(frame)
        {
            events.error("UNEXPECTED_ERROR", format!("ImageOverlayFilter: {e}"));
        }
    }
}

impl ImageOverlayFilterFactory for ImageOverlayFilterImpl {
    fn construct(ctx: &Ctx, params: ImageOverlayFilterConstructor) -> Result<Arc<Self>> {
        let overlays = Arc::new(Mutex::new(Overlays::default()));
        let processor = OverlayProcessor { overlays: overlays.clone(), built: None, composition: None };
        let filter = OpenCvFilterCore::new(ctx, &params.media_pipeline, processor)?;
        Ok(Arc::new(ImageOverlayFilterImpl { filter, overlays }))
    }
}

impl ImageOverlayFilter for ImageOverlayFilterImpl {
    fn remove_image(&self, _ctx: &Ctx, id: String) -> Result<()> {
        // KMS ignores unknown ids; so do we.
        let mut o = self.overlays.lock();
        if o.images.remove(&id).is_some() {
            o.version += 1;
        }
        Ok(())
    }

    fn add_image(
        &self,
        ctx: &Ctx,
        id: String,
        uri: String,
        offset_x_percent: f32,
        offset_y_percent: f32,
        width_percent: f32,
        height_percent: f32,
        keep_aspect_ratio: bool,
        center: bool,
    ) -> Result<()> {
        let placement = Placement {
            offset_x: offset_x_percent,
            offset_y: offset_y_percent,
            width: width_percent,
            height: height_percent,
            keep_aspect_ratio,
            center,
        };
        placement.validate().map_err(|e| Error::IllegalParam(e.to_string()))?;
        // Loaded before the lock: a slow download blocks only this call.
        let image = loader::load(ctx.config(), &uri)?;
        let mut o = self.overlays.lock();
        // spec §10.11: re-adding an id replaces it.
        o.images.insert(id, (image, placement));
        o.version += 1;
        Ok(())
    }
}
