//! PassThrough (spec §10.4): every input goes unchanged to the output of the
//! same media type and description.

use std::sync::Arc;

use gst::prelude::*;

use crate::agnosticbin::AgnosticBin;
use crate::api::core::{MediaType, PassThrough, PassThroughConstructor, PassThroughFactory};
use crate::element::{ElementCore, ElementObject, MediaIo, media_type_name};
use crate::error::{Error, Result};
use crate::object::{ObjectBase, RemoteObject};
use crate::rt::Ctx;

pub struct PassThroughImpl {
    core: ElementCore,
}

/// Input and output of one (type, description) are the same agnosticbin.
struct PassIo;

impl PassIo {
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
}

impl MediaIo for PassIo {
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad> {
        let pad = PassIo::agnostic(bin, t, desc)?.static_pad("sink")?;
        crate::loop_guard::install(&pad);
        Some(pad)
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        PassIo::agnostic(bin, t, desc)
    }
}

impl RemoteObject for PassThroughImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        self.core.release();
    }
}

impl ElementObject for PassThroughImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl PassThrough for PassThroughImpl {}

impl PassThroughFactory for PassThroughImpl {
    fn construct(ctx: &Ctx, params: PassThroughConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let core = ElementCore::new(ctx, base, shared, Box::new(PassIo))?;
        Ok(Arc::new(PassThroughImpl { core }))
    }
}
