//! The blanket implementation of the generated `MediaElement` trait (spec
//! §10.3) for every [`ElementObject`], on top of its [`ElementCore`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gst::prelude::*;

use super::ElementCore;
use super::connection::{connect, connection_data, disconnect};
use super::dot::{dot_details, dump_dot};
use crate::api::core::{
    AudioCaps, ElementConnectionData, ElementStats, GstreamerDotDetails, MediaElement, MediaType, StatsType, VideoCaps,
};
use crate::error::{Error, Result};
use crate::object::RemoteObject;
use crate::rt::{Ctx, Polymorphic};

/// Elements: anything giving access to an [`ElementCore`].
pub trait ElementObject: RemoteObject {
    fn core(&self) -> &ElementCore;

    /// Stats beyond the element's own record (endpoints add RTP, transport,
    /// candidate-pair ... stats), keyed by stat id.
    fn extra_stats(&self, _media_type: Option<MediaType>) -> Vec<(String, Polymorphic)> {
        vec![]
    }

    /// The element's own stats record: `ElementStats` unless overridden
    /// (endpoints report `EndpointStats`).
    fn element_stats(&self, timestamp_millis: i64) -> Polymorphic {
        Polymorphic::of(&ElementStats {
            id: self.core().base.id().to_string(),
            r#type: StatsType::Element,
            timestamp_millis,
            input_latency: self.core().input_latency(),
        })
    }
}

fn element_of(o: &Arc<dyn MediaElement>) -> Result<&ElementCore> {
    o.element().ok_or_else(|| Error::Connect("sink is not a media element".into()))
}

impl<T: ElementObject> MediaElement for T {
    fn get_source_connections(
        &self,
        _ctx: &Ctx,
        media_type: Option<MediaType>,
        description: Option<String>,
    ) -> Result<Vec<ElementConnectionData>> {
        let core = self.core();
        let links = core.shared.links.lock();
        Ok(links
            .iter()
            .filter(|l| &l.sink == core.base.id())
            .filter(|l| media_type.is_none_or(|t| t == l.media_type))
            .filter(|l| description.as_ref().is_none_or(|d| *d == l.sink_description))
            .map(connection_data)
            .collect())
    }

    fn get_sink_connections(
        &self,
        _ctx: &Ctx,
        media_type: Option<MediaType>,
        description: Option<String>,
    ) -> Result<Vec<ElementConnectionData>> {
        let core = self.core();
        let links = core.shared.links.lock();
        Ok(links
            .iter()
            .filter(|l| &l.source == core.base.id())
            .filter(|l| media_type.is_none_or(|t| t == l.media_type))
            .filter(|l| description.as_ref().is_none_or(|d| *d == l.source_description))
            .map(connection_data)
            .collect())
    }

    fn connect(
        &self,
        _ctx: &Ctx,
        sink: Arc<dyn MediaElement>,
        media_type: Option<MediaType>,
        source_media_description: Option<String>,
        sink_media_description: Option<String>,
    ) -> Result<()> {
        let sink_core = element_of(&sink)?;
        connect(
            self.core(),
            sink_core,
            media_type,
            source_media_description.as_deref().unwrap_or("default"),
            sink_media_description.as_deref().unwrap_or("default"),
        )
    }

    fn disconnect(
        &self,
        _ctx: &Ctx,
        sink: Arc<dyn MediaElement>,
        media_type: Option<MediaType>,
        source_media_description: Option<String>,
        sink_media_description: Option<String>,
    ) -> Result<()> {
        let sink_core = element_of(&sink)?;
        disconnect(
            self.core(),
            sink_core,
            media_type,
            source_media_description.as_deref().unwrap_or("default"),
            sink_media_description.as_deref().unwrap_or("default"),
        );
        Ok(())
    }

    fn set_audio_format(&self, _ctx: &Ctx, caps: AudioCaps) -> Result<()> {
        self.core().set_audio_format(&caps)
    }

    fn set_video_format(&self, _ctx: &Ctx, caps: VideoCaps) -> Result<()> {
        self.core().set_video_format(&caps)
    }

    fn dump_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<()> {
        dump_dot(&self.core().bin, self.core().base.id(), details);
        Ok(())
    }

    fn get_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<String> {
        Ok(self.core().bin.debug_to_dot_data(dot_details(details)).to_string())
    }

    fn get_stats(&self, _ctx: &Ctx, media_type: Option<MediaType>) -> Result<BTreeMap<String, Polymorphic>> {
        let core = self.core();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut m = BTreeMap::new();
        m.insert(core.base.id().to_string(), self.element_stats(ts));
        m.extend(self.extra_stats(media_type));
        Ok(m)
    }

    fn is_media_flowing_in(&self, _ctx: &Ctx, media_type: MediaType, sink_media_description: String) -> Result<bool> {
        if media_type == MediaType::Data {
            return Err(Error::IllegalParam("DATA is not supported by isMediaFlowingIn".into()));
        }
        Ok(self.core().is_flowing_in(media_type, &sink_media_description))
    }

    fn is_media_flowing_out(
        &self,
        _ctx: &Ctx,
        media_type: MediaType,
        source_media_description: String,
    ) -> Result<bool> {
        if media_type == MediaType::Data {
            return Err(Error::IllegalParam("DATA is not supported by isMediaFlowingOut".into()));
        }
        Ok(self.core().is_flowing_out(media_type, &source_media_description))
    }

    fn is_media_transcoding(&self, _ctx: &Ctx, media_type: MediaType, bin_name: String) -> Result<bool> {
        if media_type == MediaType::Data {
            return Err(Error::IllegalParam("DATA is not supported by isMediaTranscoding".into()));
        }
        Ok(self.core().is_transcoding(media_type, &bin_name))
    }

    fn get_encoder_bitrate(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.core().encoder_bitrate.load(Ordering::Relaxed))
    }

    fn set_encoder_bitrate(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.core().encoder_bitrate.store(value, Ordering::Relaxed);
        self.core().apply_bitrate();
        Ok(())
    }

    fn get_min_encoder_bitrate(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.core().min_encoder_bitrate.load(Ordering::Relaxed))
    }

    fn set_min_encoder_bitrate(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.core().min_encoder_bitrate.store(value, Ordering::Relaxed);
        self.core().apply_bitrate();
        Ok(())
    }

    fn get_max_encoder_bitrate(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.core().max_encoder_bitrate.load(Ordering::Relaxed))
    }

    fn set_max_encoder_bitrate(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.core().max_encoder_bitrate.store(value, Ordering::Relaxed);
        self.core().apply_bitrate();
        Ok(())
    }
}
