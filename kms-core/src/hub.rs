//! Hub and HubPort base (spec §10.10). A hub owns a bin in the pipeline; each
//! HubPort is an element whose input feeds the hub and whose output carries
//! what the hub produces for that port. Concrete hubs (Composite, Dispatcher,
//! ...) supply a [`HubLogic`] deciding how port media is combined.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;

use crate::agnosticbin::AgnosticBin;
use crate::api::core::{GstreamerDotDetails, Hub, HubPort, HubPortConstructor, HubPortFactory, MediaType};
use crate::element::{ElementCore, ElementObject, MediaIo, dot_details, dump_dot, media_type_name};
use crate::error::{Error, Result};
use crate::object::{ObjectBase, ObjectId, RemoteObject};
use crate::pipeline_shared::PipelineShared;
use crate::rt::Ctx;

/// What a concrete hub does with its ports' media.
pub trait HubLogic: Send + Sync + 'static {
    /// A port produced media of type `t` on `src` (a pad of the port's bin,
    /// in the hub's pipeline) for the hub to consume.
    fn port_input(&self, hub: &HubCore, port: &ObjectId, t: MediaType, src: &gst::Pad);
    /// A port wants the hub's output of type `t` on `sink` (a pad of the
    /// port's bin).
    fn port_output(&self, hub: &HubCore, port: &ObjectId, t: MediaType, sink: &gst::Pad);
    /// The port is going away: unlink whatever involves it.
    fn port_removed(&self, hub: &HubCore, port: &ObjectId);
    /// The `encoderBitrate` (bps) a new port starts with, when the hub
    /// re-encodes what it sends to ports and has its own default (the
    /// Composite's module config); `None` keeps the MediaElement default.
    fn port_encoder_bitrate(&self) -> Option<i32> {
        None
    }
}

/// What every hub owns. Its bin joins the pipeline in [`HubCore::new`] and
/// leaves it in [`HubCore::release`], which `Drop` runs if nobody did: a
/// hub constructor that fails halfway leaves the pipeline unchanged.
pub struct HubCore {
    base: ObjectBase,
    bin: gst::Bin,
    shared: Arc<PipelineShared>,
    logic: Box<dyn HubLogic>,
    released: AtomicBool,
}

impl HubCore {
    pub fn new(base: ObjectBase, shared: Arc<PipelineShared>, logic: Box<dyn HubLogic>) -> Result<HubCore> {
        HubCore::build(base, shared, |_| Ok(logic))
    }

    /// Like [`HubCore::new`], for a logic that owns elements of the hub's
    /// bin: `make_logic` gets the bin before it joins the pipeline, adds
    /// what the hub always has (a mixer, a background source ...), and
    /// everything starts together. If it fails, nothing was added to the
    /// pipeline.
    pub fn build(
        base: ObjectBase,
        shared: Arc<PipelineShared>,
        make_logic: impl FnOnce(&gst::Bin) -> Result<Box<dyn HubLogic>>,
    ) -> Result<HubCore> {
        let name = base.id().as_str().rsplit('/').next().unwrap_or("hub").to_string();
        let bin = gst::Bin::builder().name(name).build();
        let logic = make_logic(&bin)?;
        let core = HubCore { base, bin, shared, logic, released: AtomicBool::new(false) };
        // From here on an early return drops `core`, which removes the bin.
        core.shared.pipeline.add(&core.bin)?;
        core.bin.sync_state_with_parent()?;
        Ok(core)
    }

    pub fn base(&self) -> &ObjectBase {
        &self.base
    }

    pub fn bin(&self) -> &gst::Bin {
        &self.bin
    }

    pub fn shared(&self) -> &Arc<PipelineShared> {
        &self.shared
    }

    /// Takes the hub's bin out of the pipeline. Idempotent.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.bin.set_state(gst::State::Null);
        let _ = self.shared.pipeline.remove(&self.bin);
    }
}

impl Drop for HubCore {
    fn drop(&mut self) {
        self.release();
    }
}

/// Hubs: anything giving access to a [`HubCore`].
pub trait HubObject: RemoteObject {
    fn hub_core(&self) -> &HubCore;
}

impl<T: HubObject> Hub for T {
    fn get_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<String> {
        Ok(self.hub_core().bin.debug_to_dot_data(dot_details(details)).to_string())
    }

    fn dump_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<()> {
        dump_dot(&self.hub_core().bin, self.hub_core().base.id(), details);
        Ok(())
    }
}

/// Port media: input goes through a queue whose output the hub consumes;
/// output is an agnosticbin the hub feeds.
struct PortIo {
    hub: Arc<dyn Hub>,
    port: ObjectId,
}

impl MediaIo for PortIo {
    fn input(&self, bin: &gst::Bin, t: MediaType, _desc: &str) -> Option<gst::Pad> {
        let hub = self.hub.hub()?;
        let queue = gst::ElementFactory::make("queue").name(format!("hub_in_{}", media_type_name(t))).build().ok()?;
        bin.add(&queue).ok()?;
        queue.sync_state_with_parent().ok()?;
        let ghost = gst::GhostPad::builder_with_target(&queue.static_pad("src")?)
            .ok()?
            .name(format!("hub_src_{}", media_type_name(t)))
            .build();
        let _ = ghost.set_active(true);
        bin.add_pad(&ghost).ok()?;
        hub.logic.port_input(hub, &self.port, t, ghost.upcast_ref());
        queue.static_pad("sink")
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, _desc: &str) -> Option<AgnosticBin> {
        let hub = self.hub.hub()?;
        let a = AgnosticBin::new(&format!("hub_out_{}", media_type_name(t)));
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        let ghost = gst::GhostPad::builder_with_target(&a.static_pad("sink")?)
            .ok()?
            .name(format!("hub_sink_{}", media_type_name(t)))
            .build();
        let _ = ghost.set_active(true);
        bin.add_pad(&ghost).ok()?;
        hub.logic.port_output(hub, &self.port, t, ghost.upcast_ref());
        Some(a)
    }
}

pub struct HubPortImpl {
    core: ElementCore,
    hub: Arc<dyn Hub>,
}

impl RemoteObject for HubPortImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        if let Some(h) = self.hub.hub() {
            h.logic.port_removed(h, self.core.base().id());
        }
        self.core.release();
    }
}

impl ElementObject for HubPortImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl HubPort for HubPortImpl {}

impl HubPortFactory for HubPortImpl {
    fn construct(ctx: &Ctx, params: HubPortConstructor) -> Result<Arc<Self>> {
        let hub = params.hub;
        let core_hub = hub.hub().ok_or_else(|| Error::marshall("'hub' parameter should be a Hub"))?;
        let shared = core_hub.shared.clone();
        let bitrate = core_hub.logic.port_encoder_bitrate();
        let parent: &dyn RemoteObject = hub.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let io = PortIo { hub: hub.clone(), port: base.id().clone() };
        let core = ElementCore::new(ctx, base, shared, Box::new(io))?;
        let port = Arc::new(HubPortImpl { core, hub });
        if let Some(bps) = bitrate {
            crate::api::core::MediaElement::set_encoder_bitrate(port.as_ref(), ctx, bps)?;
        }
        Ok(port)
    }
}
