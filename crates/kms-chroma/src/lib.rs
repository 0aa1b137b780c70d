//! The `chroma` Kurento module (spec §12.6): `ChromaFilter`, a chroma key.
//!
//! Built as a third-party module author would: created with
//! `kurento-module-creator new chroma`, its descriptor is upstream's split
//! `kmd/chroma*.kmd.json` (generated into `api` by `build.rs`), and the
//! class extends `OpenCVFilter`'s frame API of `kms-filters`.
//!
//! * `key` (pure): learning the key colour from the calibration window and
//!   matching pixels against it;
//! * here: the class (constructor checks, `setBackground`,
//!   `unsetBackground`) and its [`FrameProcessor`], which calibrates over
//!   the first frames (drawing the window), then paints matching pixels
//!   from the background image scaled to the frame.

pub mod api;
pub mod key;

use std::sync::Arc;

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use kms_core::api::core::Filter;
use kms_core::rt::{Ctx, Error, ModuleDescriptor, Result};
use kms_filters::image_overlay::loader::{self, Image};
use kms_filters::opencv::{EventSink, FrameProcessor, OpenCvFilterCore};
use parking_lot::Mutex;

use crate::api::chroma::{ChromaFilter, ChromaFilterConstructor, ChromaFilterFactory, WindowParam};
use crate::key::{Calibration, Calibrator, KeyTable};

/// The `chroma` module with its implemented classes, linked into
/// `kurento-media-server`'s built-in module list.
pub fn descriptor() -> ModuleDescriptor {
    api::chroma::module_descriptor(vec![api::chroma::chroma_filter_class::<ChromaFilterImpl>()])
}

/// The background image, shared by the RPC side (which loads it) and the
/// processor; `version` tells the processor to rescale.
#[derive(Default)]
struct Background {
    image: Option<Image>,
    version: u64,
}

pub struct ChromaFilterImpl {
    filter: OpenCvFilterCore,
    background: Arc<Mutex<Background>>,
}

kms_filters::impl_filter_object!(ChromaFilterImpl, filter);

impl Filter for ChromaFilterImpl {}
impl kms_filters::api::filters::OpenCVFilter for ChromaFilterImpl {}

/// The calibration window in pixels (`topRightCornerX/Y` is, despite its
/// name, the top-left corner, as upstream uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

impl Window {
    /// Refuses negative corners and empty sizes (40001, as a bad parameter
    /// value).
    fn new(w: &WindowParam) -> Result<Window> {
        let fields = [
            ("topRightCornerX", w.top_right_corner_x, 0),
            ("topRightCornerY", w.top_right_corner_y, 0),
            ("width", w.width, 1),
            ("height", w.height, 1),
        ];
        for (name, value, min) in fields {
            if value < min {
                return Err(Error::marshall(format!("Invalid window: '{name}' must be at least {min}, got {value}")));
            }
        }
        Ok(Window {
            x: w.top_right_corner_x as u32,
            y: w.top_right_corner_y as u32,
            width: w.width as u32,
            height: w.height as u32,
        })
    }

    /// The part inside a `width`×`height` frame: (x0, y0, x1, y1), or None.
    fn clip(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let x1 = self.x.saturating_add(self.width).min(width);
        let y1 = self.y.saturating_add(self.height).min(height);
        (self.x < x1 && self.y < y1).then_some((self.x, self.y, x1, y1))
    }
}

struct ChromaProcessor {
    window: Window,
    background: Arc<Mutex<Background>>,
    calibrator: Calibrator,
    key: Option<KeyTable>,
    /// The background scaled to the frame: (version, width, height, BGRx).
    scaled: Option<(u64, u32, u32, Vec<u8>)>,
    /// The window lies outside the frame: said once.
    reported_outside: bool,
}

/// The current background scaled (nearest neighbour) to `width`×`height`,
/// kept in `scaled` and rebuilt only when the image or the frame size
/// changes.
fn scaled_background<'a>(
    background: &Mutex<Background>,
    scaled: &'a mut Option<(u64, u32, u32, Vec<u8>)>,
    width: u32,
    height: u32,
) -> Option<&'a [u8]> {
    let bg = background.lock();
    let image = bg.image.as_ref()?;
    let fresh = matches!(scaled, Some((v, w, h, _)) if *v == bg.version && *w == width && *h == height);
    if !fresh {
        *scaled = Some((bg.version, width, height, scale(image, width, height)?));
    }
    scaled.as_ref().map(|(_, _, _, px)| px.as_slice())
}

/// Nearest-neighbour scaling of a BGRA image to a tightly packed
/// `width`×`height` BGRx buffer.
fn scale(image: &Image, width: u32, height: u32) -> Option<Vec<u8>> {
    let stride = image.buffer.meta::<gst_video::VideoMeta>().map(|m| m.stride()[0] as usize)?;
    let map = image.buffer.map_readable().ok()?;
    let src = map.as_slice();
    let mut out = vec![0u8; width as usize * height as usize * 4];
    for y in 0..height as usize {
        let sy = y * image.height as usize / height as usize;
        for x in 0..width as usize {
            let sx = x * image.width as usize / width as usize;
            let s = sy * stride + sx * 4;
            let d = (y * width as usize + x) * 4;
            out[d..d + 4].copy_from_slice(src.get(s..s + 4)?);
        }
    }
    Some(out)
}

impl FrameProcessor for ChromaProcessor {
    fn formats(&self) -> Vec<VideoFormat> {
        // cv::Mat's BGR layout; the alpha byte is left alone.
        vec![VideoFormat::Bgrx, VideoFormat::Bgra]
    }

    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink) {
        let (width, height) = (frame.width(), frame.height());
        let stride = frame.plane_stride()[0] as usize;
        let Some((x0, y0, x1, y1)) = self.window.clip(width, height) else {
            if !self.reported_outside {
                self.reported_outside = true;
                events.error(
                    "INVALID_MEDIA",
                    format!(
                        "ChromaFilter: calibration window {:?} lies outside the {width}x{height} picture",
                        self.window
                    ),
                );
            }
            return;
        };
        if self.key.is_none() {
            let Ok(data) = frame.plane_data_mut(0) else { return };
            let pixels = (y0..y1).flat_map(|y| {
                let row = &data[y as usize * stride..];
                (x0..x1).map(move |x| {
                    let p = &row[x as usize * 4..];
                    (p[2], p[1], p[0])
                })
            });
            match self.calibrator.add_frame(pixels) {
                Calibration::Pending => {}
                Calibration::Done(key) => {
                    tracing::info!(hue = key.hue, half_range = key.half_range, "ChromaFilter calibrated");
                    self.key = Some(key.table());
                }
                Calibration::NoColour => {
                    // A dark or grey window (camera starting up): learn again.
                    tracing::warn!("ChromaFilter: the calibration window shows no colour; calibrating again");
                    self.calibrator = Calibrator::default();
                }
            }
            draw_rect(data, stride, (x0, y0, x1, y1));
            return;
        }
        let Some(key) = self.key.as_ref() else { return };
        let Some(bg) = scaled_background(&self.background, &mut self.scaled, width, height) else { return };
        let Ok(data) = frame.plane_data_mut(0) else { return };
        let row_bytes = width as usize * 4;
        for y in 0..height as usize {
            let row = &mut data[y * stride..y * stride + row_bytes];
            let bg_row = &bg[y * row_bytes..(y + 1) * row_bytes];
            for (px, b) in row.chunks_exact_mut(4).zip(bg_row.chunks_exact(4)) {
                if key.matches(px[2], px[1], px[0]) {
                    px[..3].copy_from_slice(&b[..3]);
                }
            }
        }
    }
}

/// A 2-pixel white outline of the calibration window, as upstream shows
/// it while it learns.
fn draw_rect(data: &mut [u8], stride: usize, (x0, y0, x1, y1): (u32, u32, u32, u32)) {
    let mut put = |x: u32, y: u32| {
        let i = y as usize * stride + x as usize * 4;
        if let Some(p) = data.get_mut(i..i + 3) {
            p.fill(255);
        }
    };
    for y in y0..y1 {
        for x in x0..x1 {
            if x < x0 + 2 || x + 2 >= x1 || y < y0 + 2 || y + 2 >= y1 {
                put(x, y);
            }
        }
    }
}

impl ChromaFilterImpl {
    /// Loads `uri` on the calling RPC thread (bounded by the loader's
    /// timeout): missing or unreachable → 40600, refused by the media
    /// access policy → 40107; the filter keeps its previous image then.
    fn load(ctx: &Ctx, uri: &str) -> Result<Image> {
        Ok(loader::load(ctx.config(), uri)?)
    }
}

impl ChromaFilterFactory for ChromaFilterImpl {
    fn construct(ctx: &Ctx, params: ChromaFilterConstructor) -> Result<Arc<Self>> {
        let window = Window::new(&params.window)?;
        let image = match params.background_image.as_str() {
            "" => None,
            uri => Some(Self::load(ctx, uri)?),
        };
        let background = Arc::new(Mutex::new(Background { image, version: 0 }));
        let processor = ChromaProcessor {
            window,
            background: background.clone(),
            calibrator: Calibrator::default(),
            key: None,
            scaled: None,
            reported_outside: false,
        };
        let filter = OpenCvFilterCore::new(ctx, &params.media_pipeline, processor)?;
        Ok(Arc::new(ChromaFilterImpl { filter, background }))
    }
}

impl ChromaFilter for ChromaFilterImpl {
    fn set_background(&self, ctx: &Ctx, uri: String) -> Result<()> {
        // Loaded before the lock: a slow download blocks only this call.
        let image = Self::load(ctx, &uri)?;
        let mut bg = self.background.lock();
        bg.image = Some(image);
        bg.version += 1;
        Ok(())
    }

    fn unset_background(&self, _ctx: &Ctx) -> Result<()> {
        let mut bg = self.background.lock();
        bg.image = None;
        bg.version += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(x: i32, y: i32, w: i32, h: i32) -> WindowParam {
        WindowParam { top_right_corner_x: x, top_right_corner_y: y, width: w, height: h }
    }

    #[test]
    fn windows_are_checked_and_clipped() {
        let w = Window::new(&param(10, 20, 100, 50)).unwrap();
        assert_eq!(w.clip(640, 480), Some((10, 20, 110, 70)));
        assert_eq!(w.clip(50, 480), Some((10, 20, 50, 70)));
        assert_eq!(w.clip(10, 480), None);
        for bad in [param(-1, 0, 10, 10), param(0, -5, 10, 10), param(0, 0, 0, 10), param(0, 0, 10, -3)] {
            assert!(matches!(Window::new(&bad), Err(Error::Marshall(_))), "{bad:?}");
        }
    }
}
