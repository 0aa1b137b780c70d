//! The shared base of every filter (spec §10.4): one media type goes
//! through a processing element as raw media, everything else passes
//! through untouched.
//!
//! ```text
//!            ┌──────────────────── filter bin ─────────────────────────┐
//! video in ──► kmsfilterstage (raw in → processing → raw out) ─► agnosticbin ─► video out
//! audio in ──► agnosticbin ─────────────────────────────────────────────────► audio out
//! data  in ──► agnosticbin ─────────────────────────────────────────────────► data out
//!            └──────────────────────────────────────────────────────────┘
//! ```
//!
//! The upstream element's agnosticbin decodes for the stage (its input
//! accepts only raw caps) and the output agnosticbin re-encodes per
//! consumer, so a filter only ever sees raw frames or samples.
//!
//! A filter class is a struct holding a [`FilterCore`], plus
//! [`impl_filter_object!`](crate::impl_filter_object) for the object
//! plumbing:
//!
//! ```ignore
//! pub struct MyFilterImpl { filter: FilterCore }
//! kms_filters::impl_filter_object!(MyFilterImpl, filter);
//! impl kms_core::api::core::Filter for MyFilterImpl {}
//!
//! impl MyFilterFactory for MyFilterImpl {
//!     fn construct(ctx: &Ctx, p: MyFilterConstructor) -> Result<Arc<Self>> {
//!         let flip = gst::ElementFactory::make("videoflip").build()
//!             .map_err(|e| Error::NotAvailable(e.to_string()))?;
//!         let filter = FilterCore::new(ctx, &p.media_pipeline, Processing::video(flip))?;
//!         Ok(Arc::new(MyFilterImpl { filter }))
//!     }
//! }
//! ```
//!
//! Only the `"default"` media description of the processed type goes
//! through the stage; other descriptions of that type are refused (40004
//! at `connect`), other types and DATA pass through on every description.

mod stage;

use std::sync::Arc;

use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::{MediaPipeline, MediaType};
use kms_core::element::{ElementCore, MediaIo, media_type_name};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};
use parking_lot::Mutex;

pub use stage::{FilterStage, MessageHook, StageKind};

/// The media description a filter processes.
pub const PROCESSED_DESCRIPTION: &str = "default";

/// What a filter does to its media: the processing element and the media
/// type it works on.
pub struct Processing {
    kind: StageKind,
    element: gst::Element,
    hook: Option<MessageHook>,
}

impl Processing {
    /// `element` gets raw video (any `video/x-raw` format it accepts;
    /// `videoconvert` adapts on both sides). It may be a bin with ghost
    /// `sink` and `src` pads.
    pub fn video(element: impl IsA<gst::Element>) -> Processing {
        Processing { kind: StageKind::Video, element: element.upcast(), hook: None }
    }

    /// `element` gets raw audio (`audioconvert ! audioresample` on both
    /// sides).
    pub fn audio(element: impl IsA<gst::Element>) -> Processing {
        Processing { kind: StageKind::Audio, element: element.upcast(), hook: None }
    }

    /// Calls `hook` with every `ELEMENT` message the processing element
    /// (or anything inside it) posts, on the posting thread, before the
    /// message reaches the pipeline's bus: zbar's `barcode`, facedetect's
    /// `facedetect`. The hook must not block; raising an event is fine.
    pub fn on_element_message(mut self, hook: impl Fn(&gst::Message) + Send + Sync + 'static) -> Processing {
        self.hook = Some(Box::new(hook));
        self
    }

    /// The media type this processing works on.
    pub fn media_type(&self) -> MediaType {
        match self.kind {
            StageKind::Audio => MediaType::Audio,
            StageKind::Video => MediaType::Video,
        }
    }
}

/// The element core of a filter: its [`ElementCore`] (connections, flow
/// events, formats, release) and the processing element inside it.
pub struct FilterCore {
    core: ElementCore,
    element: gst::Element,
    media_type: MediaType,
}

impl FilterCore {
    /// Creates the filter's bin in `pipeline` around `processing`. The
    /// stage is built and added when the first connection needs it; the
    /// processing element exists (and takes property changes) from now on.
    pub fn new(ctx: &Ctx, pipeline: &Arc<dyn MediaPipeline>, processing: Processing) -> Result<FilterCore> {
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let media_type = processing.media_type();
        let element = processing.element.clone();
        let stage = FilterStage::new(processing.kind, &processing.element)
            .map_err(|e| Error::NotAvailable(format!("Cannot build the filter: {e}")))?;
        if let Some(hook) = processing.hook {
            stage.set_message_hook(hook);
        }
        let io = FilterIo { media_type, stage, linked: Mutex::new(false) };
        let core = ElementCore::new(ctx, base, shared, Box::new(io))?;
        Ok(FilterCore { core, element, media_type })
    }

    pub fn core(&self) -> &ElementCore {
        &self.core
    }

    pub fn base(&self) -> &ObjectBase {
        self.core.base()
    }

    /// The processing element given to [`FilterCore::new`] (to set
    /// properties on it).
    pub fn element(&self) -> &gst::Element {
        &self.element
    }

    /// The media type that goes through the processing element.
    pub fn media_type(&self) -> MediaType {
        self.media_type
    }
}

/// Implements `RemoteObject` and `ElementObject` for a filter struct whose
/// field `$field` is a [`FilterCore`]. The struct still implements
/// `kms_core::api::core::Filter` and its own generated class trait.
#[macro_export]
macro_rules! impl_filter_object {
    ($ty:ty, $field:ident) => {
        impl ::kms_core::object::RemoteObject for $ty {
            fn object(&self) -> &::kms_core::object::ObjectBase {
                self.$field.base()
            }
            fn element(&self) -> Option<&::kms_core::element::ElementCore> {
                Some(self.$field.core())
            }
            fn release(&self) {
                self.$field.core().release();
            }
        }
        impl ::kms_core::element::ElementObject for $ty {
            fn core(&self) -> &::kms_core::element::ElementCore {
                self.$field.core()
            }
        }
    };
}

/// The filter's pads: the stage for the processed (type, "default"),
/// agnosticbins (as PassThrough) for the rest.
struct FilterIo {
    media_type: MediaType,
    stage: FilterStage,
    /// Whether the stage is in the bin and linked to its output.
    linked: Mutex<bool>,
}

impl FilterIo {
    fn agnostic(bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        let name = format!("agnostic_{}_{}", media_type_name(t), desc);
        if let Some(e) = bin.by_name(&name) {
            return e.downcast::<AgnosticBin>().ok();
        }
        let a = AgnosticBin::new(&name);
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        Some(a)
    }

    fn processed(&self, t: MediaType, desc: &str) -> bool {
        t == self.media_type && desc == PROCESSED_DESCRIPTION
    }

    /// Adds the stage and links it to the processed output, once.
    fn ensure_stage(&self, bin: &gst::Bin) -> Option<AgnosticBin> {
        let out = Self::agnostic(bin, self.media_type, PROCESSED_DESCRIPTION)?;
        let mut linked = self.linked.lock();
        if !*linked {
            bin.add(&self.stage).ok()?;
            let sink = out.static_pad("sink")?;
            // A loopback (the filter connected to itself) must not send
            // caps queries around the cycle forever.
            kms_core::loop_guard::install(&sink);
            self.stage.static_pad("src")?.link(&sink).ok()?;
            self.stage.sync_state_with_parent().ok()?;
            *linked = true;
        }
        Some(out)
    }
}

impl MediaIo for FilterIo {
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad> {
        if self.processed(t, desc) {
            self.ensure_stage(bin)?;
            return self.stage.static_pad("sink");
        }
        if t == self.media_type {
            return None;
        }
        let pad = Self::agnostic(bin, t, desc)?.static_pad("sink")?;
        kms_core::loop_guard::install(&pad);
        Some(pad)
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        if self.processed(t, desc) {
            return self.ensure_stage(bin);
        }
        if t == self.media_type {
            return None;
        }
        Self::agnostic(bin, t, desc)
    }

    fn egress(&self, _input: &gst::Pad) -> Option<gst::Pad> {
        None
    }
}
