//! The `pointerdetector` Kurento module (spec §12.6): `PointerDetectorFilter`
//! tracks a coloured pointer and raises `WindowIn`/`WindowOut` when it
//! enters or leaves the windows a client placed on the picture.
//!
//! Built as a third-party module author would (`kurento-module-creator new
//! pointerdetector`, upstream's split descriptors in `kmd/`, generated into
//! `api` by `build.rs`) on `OpenCVFilter`'s frame API of `kms-filters`.
//!
//! * `track` (pure): colour learning, centroid, window crossings;
//! * here: the class (parameter checks, window images loaded on the RPC
//!   thread) and its [`FrameProcessor`]: sample every second pixel of
//!   every second row, the pointer is the centroid of the tracked colour,
//!   then events and drawing (calibration region, windows, their images).

pub mod api;
pub mod track;

use std::sync::Arc;

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use kms_core::api::core::Filter;
use kms_core::rt::{Ctx, Error, ModuleDescriptor, Result};
use kms_filters::image_overlay::loader::{self, Image};
use kms_filters::opencv::{EventSink, FrameProcessor, OpenCvFilterCore};
use parking_lot::Mutex;

use crate::api::pointerdetector::events::{WindowIn, WindowOut};
use crate::api::pointerdetector::{
    PointerDetectorFilter, PointerDetectorFilterConstructor, PointerDetectorFilterFactory,
    PointerDetectorWindowMediaParam, WindowParam,
};
use crate::track::{Centroid, Colour, Crossing, Rect, Windows};

/// The module with its implemented classes, linked into
/// `kurento-media-server`'s built-in module list.
pub fn descriptor() -> ModuleDescriptor {
    api::pointerdetector::module_descriptor(vec![api::pointerdetector::pointer_detector_filter_class::<
        PointerDetectorFilterImpl,
    >()])
}

/// Sampled pixels of the tracked colour a pointer needs (every 2nd pixel
/// of every 2nd row: 40 samples ≈ a 13×13-pixel blob).
const MIN_SAMPLES: u64 = 40;

/// A window's pictures, scaled to its size (tightly packed BGRA).
#[derive(Clone, Default)]
struct Pictures {
    image: Option<Arc<Vec<u8>>>,
    active: Option<Arc<Vec<u8>>>,
    /// 0 = opaque image, 1 = invisible.
    transparency: f32,
}

/// What RPC threads and the processor share, locked briefly on both sides.
#[derive(Default)]
struct Shared {
    windows: Windows,
    pictures: std::collections::BTreeMap<String, Pictures>,
    /// `trackColorFromCalibrationRegion` asked: learn on the next frame.
    calibrate: bool,
}

pub struct PointerDetectorFilterImpl {
    filter: OpenCvFilterCore,
    shared: Arc<Mutex<Shared>>,
}

kms_filters::impl_filter_object!(PointerDetectorFilterImpl, filter);

impl Filter for PointerDetectorFilterImpl {}
impl kms_filters::api::filters::OpenCVFilter for PointerDetectorFilterImpl {}

fn region(w: &WindowParam) -> Result<Rect> {
    Rect::checked([
        ("topRightCornerX", w.top_right_corner_x),
        ("topRightCornerY", w.top_right_corner_y),
        ("width", w.width),
        ("height", w.height),
    ])
    .map_err(|e| Error::marshall(format!("Invalid calibrationRegion: {e}")))
}

/// Checks a window and loads its images (on the calling thread).
fn window(ctx: &Ctx, w: &PointerDetectorWindowMediaParam) -> Result<(Rect, Pictures)> {
    let rect = Rect::checked([
        ("upperRightX", w.upper_right_x),
        ("upperRightY", w.upper_right_y),
        ("width", w.width),
        ("height", w.height),
    ])
    .map_err(|e| Error::marshall(format!("Invalid window '{}': {e}", w.id)))?;
    if w.id.is_empty() {
        return Err(Error::marshall("Invalid window: empty 'id'"));
    }
    let transparency = w.image_transparency.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&transparency) {
        return Err(Error::marshall(format!("Invalid window '{}': 'imageTransparency' must be in 0..1", w.id)));
    }
    let load = |uri: &Option<String>| -> Result<Option<Arc<Vec<u8>>>> {
        match uri.as_deref() {
            None | Some("") => Ok(None),
            Some(u) => {
                let img = loader::load(ctx.config(), u)?;
                Ok(scale(&img, rect.width, rect.height).map(Arc::new))
            }
        }
    };
    Ok((rect, Pictures { image: load(&w.image)?, active: load(&w.active_image)?, transparency }))
}

/// Nearest-neighbour scaling of a BGRA image to a packed `w`×`h` BGRA
/// buffer (windows are bounded by the 4096-pixel image limit).
fn scale(image: &Image, w: u32, h: u32) -> Option<Vec<u8>> {
    if w > 4096 || h > 4096 {
        return None;
    }
    let stride = image.buffer.meta::<gst_video::VideoMeta>().map(|m| m.stride()[0] as usize)?;
    let map = image.buffer.map_readable().ok()?;
    let src = map.as_slice();
    let mut out = vec![0u8; w as usize * h as usize * 4];
    for y in 0..h as usize {
        let sy = y * image.height as usize / h as usize;
        for x in 0..w as usize {
            let sx = x * image.width as usize / w as usize;
            let s = sy * stride + sx * 4;
            let d = (y * w as usize + x) * 4;
            out[d..d + 4].copy_from_slice(src.get(s..s + 4)?);
        }
    }
    Some(out)
}

struct PointerProcessor {
    calibration: Rect,
    shared: Arc<Mutex<Shared>>,
    colour: Option<Colour>,
}

impl FrameProcessor for PointerProcessor {
    fn formats(&self) -> Vec<VideoFormat> {
        vec![VideoFormat::Bgrx, VideoFormat::Bgra]
    }

    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink) {
        let (width, height) = (frame.width(), frame.height());
        let stride = frame.plane_stride()[0] as usize;
        let Ok(data) = frame.plane_data_mut(0) else { return };
        let px = |data: &[u8], x: u32, y: u32| {
            let i = y as usize * stride + x as usize * 4;
            (data[i + 2], data[i + 1], data[i])
        };
        let calibrate = std::mem::take(&mut self.shared.lock().calibrate);
        let region = self.calibration.clip(width, height);
        if calibrate {
            match region {
                Some((x0, y0, x1, y1)) => {
                    let pixels = (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).map(|(x, y)| px(data, x, y));
                    match Colour::learn(pixels) {
                        Some(c) => {
                            tracing::info!(hue = c.hue, "PointerDetectorFilter tracks a new colour");
                            self.colour = Some(c);
                        }
                        None => events.error(
                            "INVALID_MEDIA",
                            "PointerDetectorFilter: the calibration region shows no colour to track",
                        ),
                    }
                }
                None => events.error(
                    "INVALID_MEDIA",
                    format!("PointerDetectorFilter: calibration region outside the {width}x{height} picture"),
                ),
            }
        }
        let point = self.colour.as_ref().and_then(|c| {
            let mut centroid = Centroid::default();
            for y in (0..height).step_by(2) {
                for x in (0..width).step_by(2) {
                    let (r, g, b) = px(data, x, y);
                    if c.matches(r, g, b) {
                        centroid.add(x, y);
                    }
                }
            }
            centroid.point(MIN_SAMPLES)
        });
        let (crossings, drawn) = {
            let mut shared = self.shared.lock();
            let crossings = shared.windows.update(point);
            let drawn: Vec<(Rect, bool, Pictures)> = shared
                .windows
                .windows
                .iter()
                .map(|(id, (rect, inside))| (*rect, *inside, shared.pictures.get(id).cloned().unwrap_or_default()))
                .collect();
            (crossings, drawn)
        };
        for c in crossings {
            match c {
                Crossing::In(window_id) => events.raise(&WindowIn { window_id }),
                Crossing::Out(window_id) => events.raise(&WindowOut { window_id }),
            }
        }
        for (rect, inside, pictures) in drawn {
            let picture =
                if inside { pictures.active.as_ref().or(pictures.image.as_ref()) } else { pictures.image.as_ref() };
            if let (Some(p), Some(clip)) = (picture, rect.clip(width, height)) {
                blend(data, stride, rect, clip, p, pictures.transparency);
            }
            // Active windows in green, the others in white (upstream draws
            // them too).
            let colour = if inside { [0, 255, 0] } else { [255, 255, 255] };
            outline(data, stride, rect.clip(width, height), colour);
        }
        outline(data, stride, region, [255, 255, 255]);
        if let Some((x, y)) = point {
            // The pointer: a small red cross.
            let cross = Rect { x: x.saturating_sub(4), y: y.saturating_sub(4), width: 9, height: 9 };
            outline(data, stride, cross.clip(width, height), [0, 0, 255]);
        }
    }
}

/// A 2-pixel outline in BGR `colour`.
fn outline(data: &mut [u8], stride: usize, clip: Option<(u32, u32, u32, u32)>, colour: [u8; 3]) {
    let Some((x0, y0, x1, y1)) = clip else { return };
    for y in y0..y1 {
        for x in x0..x1 {
            if x < x0 + 2 || x + 2 >= x1 || y < y0 + 2 || y + 2 >= y1 {
                let i = y as usize * stride + x as usize * 4;
                if let Some(p) = data.get_mut(i..i + 3) {
                    p.copy_from_slice(&colour);
                }
            }
        }
    }
}

/// Draws the window's picture (packed BGRA of `rect`'s size) over the
/// visible part `clip`, with its own alpha times (1 − transparency).
fn blend(data: &mut [u8], stride: usize, rect: Rect, clip: (u32, u32, u32, u32), pic: &[u8], transparency: f32) {
    let (x0, y0, x1, y1) = clip;
    let opacity = 1.0 - transparency;
    for y in y0..y1 {
        for x in x0..x1 {
            let s = (((y - rect.y) * rect.width + (x - rect.x)) * 4) as usize;
            let d = y as usize * stride + x as usize * 4;
            let (Some(src), Some(dst)) = (pic.get(s..s + 4), data.get_mut(d..d + 3)) else { continue };
            let a = f32::from(src[3]) / 255.0 * opacity;
            for c in 0..3 {
                dst[c] = (f32::from(src[c]) * a + f32::from(dst[c]) * (1.0 - a)) as u8;
            }
        }
    }
}

impl PointerDetectorFilterFactory for PointerDetectorFilterImpl {
    fn construct(ctx: &Ctx, params: PointerDetectorFilterConstructor) -> Result<Arc<Self>> {
        let calibration = region(&params.calibration_region)?;
        let mut shared = Shared::default();
        for w in &params.windows {
            let (rect, pictures) = window(ctx, w)?;
            shared.windows.insert(w.id.clone(), rect);
            shared.pictures.insert(w.id.clone(), pictures);
        }
        let shared = Arc::new(Mutex::new(shared));
        let processor = PointerProcessor { calibration, shared: shared.clone(), colour: None };
        let filter = OpenCvFilterCore::new(ctx, &params.media_pipeline, processor)?;
        Ok(Arc::new(PointerDetectorFilterImpl { filter, shared }))
    }
}

impl PointerDetectorFilter for PointerDetectorFilterImpl {
    fn add_window(&self, ctx: &Ctx, w: PointerDetectorWindowMediaParam) -> Result<()> {
        // Images loaded before the lock: a slow download blocks only this call.
        let (rect, pictures) = window(ctx, &w)?;
        let mut shared = self.shared.lock();
        // Re-adding an id replaces the window (it starts outside again).
        shared.windows.insert(w.id.clone(), rect);
        shared.pictures.insert(w.id, pictures);
        Ok(())
    }

    fn clear_windows(&self, _ctx: &Ctx) -> Result<()> {
        let mut shared = self.shared.lock();
        shared.windows = Windows::default();
        shared.pictures.clear();
        Ok(())
    }

    fn track_color_from_calibration_region(&self, _ctx: &Ctx) -> Result<()> {
        self.shared.lock().calibrate = true;
        Ok(())
    }

    fn remove_window(&self, _ctx: &Ctx, window_id: String) -> Result<()> {
        // An unknown id has nothing to remove: not an error.
        let mut shared = self.shared.lock();
        shared.windows.remove(&window_id);
        shared.pictures.remove(&window_id);
        Ok(())
    }
}
