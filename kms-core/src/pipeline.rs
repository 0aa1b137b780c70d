//! MediaPipeline (spec §10.2): one real `gst::Pipeline`, PLAYING from
//! creation, owning every element created in it.

use std::sync::Arc;

use gst::prelude::*;

use crate::api::core::events::Error as ErrorEvent;
use crate::api::core::{GstreamerDotDetails, MediaPipeline, MediaPipelineConstructor, MediaPipelineFactory};
use crate::element::{dot_details, dump_dot};
use crate::error::Result;
use crate::object::{ObjectBase, RemoteObject};
use crate::pipeline_shared::PipelineShared;
use crate::rt::Ctx;

pub struct MediaPipelineImpl {
    base: ObjectBase,
    shared: Arc<PipelineShared>,
}

impl MediaPipelineImpl {
    pub fn shared(&self) -> &Arc<PipelineShared> {
        &self.shared
    }
}

impl RemoteObject for MediaPipelineImpl {
    fn object(&self) -> &ObjectBase {
        &self.base
    }

    fn pipeline(&self) -> Option<&Arc<PipelineShared>> {
        Some(&self.shared)
    }

    fn release(&self) {
        let _ = self.shared.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for MediaPipelineImpl {
    fn drop(&mut self) {
        let _ = self.shared.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.shared.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}

impl MediaPipelineFactory for MediaPipelineImpl {
    fn construct(ctx: &Ctx, _params: MediaPipelineConstructor) -> Result<Arc<Self>> {
        let base = ctx.new_object_base(None);
        let name = base.id().as_str().split('_').next().unwrap_or("pipeline").to_string();
        let pipeline = gst::Pipeline::builder().name(name).build();
        // spec §10.2: the system clock, so endpoints of one pipeline agree.
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let bus = pipeline.bus().expect("pipelines have a bus");
        let events = base.clone();
        // Messages are handled where they are posted and then dropped: no
        // main loop is needed and nothing accumulates on the bus.
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    tracing::warn!(object = %events.id(), error = %e.error(), debug = ?e.debug(), "pipeline error");
                    events.raise(&ErrorEvent {
                        description: format!(
                            "{} ({})",
                            e.error(),
                            msg.src().map(|s| s.path_string().to_string()).unwrap_or_default()
                        ),
                        error_code: e.error().code(),
                        r#type: "UNEXPECTED_ELEMENT_ERROR".into(),
                    });
                }
                gst::MessageView::Warning(w) => {
                    tracing::debug!(object = %events.id(), warning = %w.error(), "pipeline warning");
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        pipeline.set_state(gst::State::Playing)?;
        let shared = Arc::new(PipelineShared::new(base.id().clone(), pipeline));
        Ok(Arc::new(MediaPipelineImpl { base, shared }))
    }
}

impl MediaPipeline for MediaPipelineImpl {
    fn get_latency_stats(&self, _ctx: &Ctx) -> Result<bool> {
        Ok(self.shared.latency.is_enabled())
    }

    fn set_latency_stats(&self, _ctx: &Ctx, value: bool) -> Result<()> {
        self.shared.latency.set(value);
        Ok(())
    }

    fn get_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<String> {
        Ok(self.shared.pipeline.debug_to_dot_data(dot_details(details)).to_string())
    }

    fn dump_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<()> {
        dump_dot(self.shared.pipeline.upcast_ref(), self.base.id(), details);
        Ok(())
    }
}
