//! AlphaBlending (spec §10.10): the master port's picture fills the output
//! (and sets its size); other ports are drawn over it where
//! `setPortProperties` puts them. Audio is the same N−1 mix as Composite's.

use std::sync::Arc;

use kms_core::api::core::{HubPort, MediaPipeline};
use kms_core::hub::{HubCore, HubObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};

use super::layout::Placement;
use super::mix::{Blend, Layout, Mix, VideoSettings};
use super::{HubError, own_port};
use crate::api::elements::{AlphaBlending, AlphaBlendingConstructor, AlphaBlendingFactory};

/// Output before a master's picture size is known (the kmd has no
/// constructor settings for AlphaBlending).
const DEFAULT_VIDEO: VideoSettings = VideoSettings { width: 640, height: 480, framerate: 15 };

pub struct AlphaBlendingImpl {
    core: HubCore,
    mix: Arc<Mix>,
}

impl RemoteObject for AlphaBlendingImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn hub(&self) -> Option<&HubCore> {
        Some(&self.core)
    }

    fn release(&self) {
        self.core.release();
    }
}

impl HubObject for AlphaBlendingImpl {
    fn hub_core(&self) -> &HubCore {
        &self.core
    }
}

impl AlphaBlending for AlphaBlendingImpl {
    fn set_master(&self, _ctx: &Ctx, source: Arc<dyn HubPort>, z_order: i32) -> Result<()> {
        let port = own_port(self.core.base().id(), source.object())?;
        self.mix.set_master(&port, z_order);
        Ok(())
    }

    fn set_port_properties(
        &self,
        _ctx: &Ctx,
        relative_x: f32,
        relative_y: f32,
        z_order: i32,
        relative_width: f32,
        relative_height: f32,
        port: Arc<dyn HubPort>,
    ) -> Result<()> {
        let id = own_port(self.core.base().id(), port.object())?;
        let p = Placement { relative_x, relative_y, relative_width, relative_height, z_order };
        p.validate().map_err(HubError::BadValue)?;
        self.mix.set_placement(&id, p);
        Ok(())
    }
}

impl AlphaBlendingFactory for AlphaBlendingImpl {
    fn construct(ctx: &Ctx, params: AlphaBlendingConstructor) -> Result<Arc<Self>> {
        let pipeline: &Arc<dyn MediaPipeline> = &params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let mut mix = None;
        let core = HubCore::build(base, shared, |bin| {
            let m = Mix::new(bin, DEFAULT_VIDEO, Layout::Blend(Blend::default()), None)?;
            let logic = m.logic();
            mix = Some(m);
            Ok(logic)
        })?;
        let mix = mix.expect("built with the core");
        Ok(Arc::new(AlphaBlendingImpl { core, mix }))
    }
}
