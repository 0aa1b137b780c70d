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
        let shared = Arc::new(PipelineShared::new(base.id().clone(), pipeline.clone()));
        let weak = Arc::downgrade(&shared);
        let own = base.clone();
        // Messages are handled where they are posted and then dropped: no
        // main loop is needed and nothing accumulates on the bus.
        bus.set_sync_handler(move |_, msg| {
            if let Some(shared) = weak.upgrade() {
                bus_message(&shared, &own, msg);
            }
            gst::BusSyncReply::Drop
        });
        pipeline.set_state(gst::State::Playing)?;
        Ok(Arc::new(MediaPipelineImpl { base, shared }))
    }
}

/// Errors become an `Error` event on the object whose bin holds the
/// GStreamer element that failed (the pipeline if none does); warnings are
/// logged with that object's id. Runs on the posting (streaming) thread:
/// only short locks, nothing that waits.
fn bus_message(shared: &PipelineShared, pipeline: &ObjectBase, msg: &gst::MessageRef) {
    let (err, dbg, is_error) = match msg.view() {
        gst::MessageView::Error(e) => (e.error(), e.debug(), true),
        gst::MessageView::Warning(w) => (w.error(), w.debug(), false),
        _ => return,
    };
    let owner = msg.src().and_then(|s| shared.owner_of(s)).unwrap_or_else(|| pipeline.clone());
    let source = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
    let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
    if !is_error {
        tracing::warn!(object = %owner.id(), source, warning = %err, debug = ?dbg, "GStreamer warning");
        return;
    }
    let kind = error_type(&err);
    tracing::warn!(object = %owner.id(), source, error = %err, debug = ?dbg, kind, "GStreamer error");
    owner.raise(&ErrorEvent {
        description: format!("Error code {}: {}, source: {source}, element: {element}", err.code(), err.message()),
        error_code: err.code(),
        r#type: kind.into(),
    });
}

/// The `Error` event `type` for a GStreamer error (spec §7.2): the GError
/// domain and code, named as KMS names them (`RESOURCE_ERROR_OPEN` for
/// any open failure, ...); errors of other domains are
/// `UNEXPECTED_ELEMENT_ERROR`.
pub fn error_type(err: &gst::glib::Error) -> &'static str {
    use gst::{CoreError, LibraryError, ResourceError, StreamError};
    if let Some(e) = err.kind::<ResourceError>() {
        return match e {
            ResourceError::OpenRead | ResourceError::OpenWrite | ResourceError::OpenReadWrite => "RESOURCE_ERROR_OPEN",
            ResourceError::Write => "RESOURCE_ERROR_WRITE",
            ResourceError::NoSpaceLeft => "RESOURCE_ERROR_NO_SPACE_LEFT",
            ResourceError::NotFound => "RESOURCE_ERROR_NOT_FOUND",
            ResourceError::Busy => "RESOURCE_ERROR_BUSY",
            ResourceError::Close => "RESOURCE_ERROR_CLOSE",
            ResourceError::Read => "RESOURCE_ERROR_READ",
            ResourceError::Seek => "RESOURCE_ERROR_SEEK",
            ResourceError::Sync => "RESOURCE_ERROR_SYNC",
            ResourceError::Settings => "RESOURCE_ERROR_SETTINGS",
            ResourceError::NotAuthorized => "RESOURCE_ERROR_NOT_AUTHORIZED",
            _ => "RESOURCE_ERROR_FAILED",
        };
    }
    if let Some(e) = err.kind::<StreamError>() {
        return match e {
            StreamError::Decode => "STREAM_ERROR_DECODE",
            StreamError::Encode => "STREAM_ERROR_ENCODE",
            StreamError::Format => "STREAM_ERROR_FORMAT",
            StreamError::CodecNotFound => "STREAM_ERROR_CODEC_NOT_FOUND",
            StreamError::WrongType => "STREAM_ERROR_WRONG_TYPE",
            StreamError::TypeNotFound => "STREAM_ERROR_TYPE_NOT_FOUND",
            StreamError::Demux => "STREAM_ERROR_DEMUX",
            StreamError::Mux => "STREAM_ERROR_MUX",
            StreamError::Decrypt | StreamError::DecryptNokey => "STREAM_ERROR_DECRYPT",
            StreamError::NotImplemented => "STREAM_ERROR_NOT_IMPLEMENTED",
            _ => "STREAM_ERROR_FAILED",
        };
    }
    if err.kind::<CoreError>().is_some() {
        return "CORE_ERROR";
    }
    if err.kind::<LibraryError>().is_some() {
        return "LIBRARY_ERROR";
    }
    "UNEXPECTED_ELEMENT_ERROR"
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
