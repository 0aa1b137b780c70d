//! FaceOverlayFilter (spec §10.11): faces found by OpenCV's Haar cascade
//! (`facedetect` of Debian `gstreamer1.0-opencv`, cascades from
//! `opencv-data`) get the image of `setOverlayedImage` drawn over them,
//! scaled to each face ([`placement`]); `unsetOverlayedImage` stops.
//!
//! The image is fetched and decoded off every RPC and streaming thread, by
//! one loader thread per filter at most ([`Loader`]): `setOverlayedImage`
//! answers once the URI passed the media policy, the previous image stays
//! until the new one is ready, and a picture that cannot be loaded
//! becomes an `Error` event (and no overlay) while the video keeps flowing.

pub mod pipeline;
pub mod placement;

use std::sync::Arc;

use kms_core::api::core::events::Error as ErrorEvent;
use kms_core::object::ObjectBase;
use kms_core::rt::Ctx;
use kms_core::{Error, Result};
use parking_lot::Mutex;

use crate::api::filters::{FaceOverlayFilter, FaceOverlayFilterConstructor, FaceOverlayFilterFactory};
use crate::base::{FilterCore, Processing};
use crate::overlay_image::{self, ImageSource};
use pipeline::{DEFAULT_DETECTIONS_PER_SECOND, FACE_CASCADE, Overlay, OverlayState};
use placement::Placement;

pub struct FaceOverlayFilterImpl {
    filter: FilterCore,
    state: Arc<OverlayState>,
    loader: Arc<Loader>,
}

crate::impl_filter_object!(FaceOverlayFilterImpl, filter);

impl kms_core::api::core::Filter for FaceOverlayFilterImpl {}

impl FaceOverlayFilter for FaceOverlayFilterImpl {
    fn unset_overlayed_image(&self, _ctx: &Ctx) -> Result<()> {
        self.loader.cancel();
        self.state.set(None);
        Ok(())
    }

    fn set_overlayed_image(
        &self,
        ctx: &Ctx,
        uri: String,
        offset_x_percent: f32,
        offset_y_percent: f32,
        width_percent: f32,
        height_percent: f32,
    ) -> Result<()> {
        let placement = Placement::new(offset_x_percent, offset_y_percent, width_percent, height_percent)
            .map_err(|e| Error::marshall(e.to_string()))?;
        let source = ImageSource::check(ctx.config(), &uri).map_err(|e| Error::IllegalParam(e.to_string()))?;
        Loader::request(&self.loader, Request { source, placement }, &self.state, self.filter.base());
        Ok(())
    }
}

impl FaceOverlayFilterFactory for FaceOverlayFilterImpl {
    fn construct(ctx: &Ctx, params: FaceOverlayFilterConstructor) -> Result<Arc<Self>> {
        if gst::ElementFactory::find("facedetect").is_none() {
            return Err(Error::Code {
                code: 40101,
                message: "GStreamer element 'facedetect' is not available (Debian package gstreamer1.0-opencv)".into(),
            });
        }
        if !std::path::Path::new(FACE_CASCADE).exists() {
            return Err(Error::Code {
                code: 40101,
                message: format!("Face cascade {FACE_CASCADE} is missing (Debian package opencv-data)"),
            });
        }
        let state = OverlayState::new();
        let rate = crate::analysis::rate_from_config(
            ctx.config(),
            "FaceOverlayFilter",
            "detectionsPerSecond",
            DEFAULT_DETECTIONS_PER_SECOND,
        );
        let bin =
            pipeline::build(&state, rate).map_err(|e| Error::NotAvailable(format!("Cannot build the filter: {e}")))?;
        let filter = FilterCore::new(ctx, &params.media_pipeline, Processing::video(bin))?;
        Ok(Arc::new(FaceOverlayFilterImpl { filter, state, loader: Arc::new(Loader::default()) }))
    }
}

/// One image to load and where to draw it.
struct Request {
    source: ImageSource,
    placement: Placement,
}

/// At most one loading thread per filter. A request made while one loads
/// waits in `next` (replacing any older waiting one); every request and
/// `unsetOverlayedImage` bumps the generation, and a load whose generation
/// is no longer current is discarded.
#[derive(Default)]
struct Loader {
    inner: Mutex<LoaderState>,
}

#[derive(Default)]
struct LoaderState {
    generation: u64,
    next: Option<(u64, Request)>,
    running: bool,
}

impl Loader {
    fn cancel(&self) {
        let mut s = self.inner.lock();
        s.generation += 1;
        s.next = None;
    }

    fn request(this: &Arc<Loader>, req: Request, state: &Arc<OverlayState>, owner: &ObjectBase) {
        let mut s = this.inner.lock();
        s.generation += 1;
        s.next = Some((s.generation, req));
        if s.running {
            return;
        }
        s.running = true;
        drop(s);
        let (this, state, owner) = (this.clone(), state.clone(), owner.clone());
        let spawned = std::thread::Builder::new().name("overlay-image".into()).spawn({
            let this = this.clone();
            move || this.run(&state, &owner)
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the overlay image loader");
            this.inner.lock().running = false;
        }
    }

    fn run(&self, state: &OverlayState, owner: &ObjectBase) {
        loop {
            let (generation, req) = {
                let mut s = self.inner.lock();
                match s.next.take() {
                    Some(n) => n,
                    None => {
                        s.running = false;
                        return;
                    }
                }
            };
            let result = overlay_image::load(&req.source);
            // Applied under the loader lock, so a later request or unset
            // cannot slip in between the check and the swap.
            let s = self.inner.lock();
            if s.generation != generation {
                continue;
            }
            match result {
                Ok(image) => {
                    tracing::debug!(object = %owner.id(), uri = %req.source.given, w = image.width, h = image.height, "overlay image loaded");
                    state.set(Some(Overlay { image, placement: req.placement }));
                }
                Err(e) => {
                    tracing::warn!(object = %owner.id(), error = %e, "overlay image not loaded");
                    state.set(None);
                    drop(s);
                    owner.raise(&ErrorEvent {
                        description: e.to_string(),
                        error_code: e.code(),
                        r#type: e.kind().into(),
                    });
                }
            }
        }
    }
}
