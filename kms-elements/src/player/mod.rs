//! PlayerEndpoint (spec §10.9): plays a `file://`, `http(s)://` or
//! `rtsp://` URI into the pipeline.
//!
//! ```text
//!  playback pipeline (own clock state, pausable, seekable)      media pipeline
//! ┌──────────────────────────────────────────────┐   ┌── PlayerEndpoint bin ──┐
//! │ uridecodebin ─┬─ appsink(video, sync) ──push─┼──▶│ pad → agnosticbin(video)│ →
//! │               └─ appsink(audio, sync) ──push─┼──▶│ pad → agnosticbin(audio)│ →
//! └──────────────────────────────────────────────┘   └────────────────────────┘
//! ```
//!
//! The URI is parsed and checked against the file access policy at
//! `create` (`crate::uri`). Every `play` after a STOP builds a fresh
//! playback pipeline (`playback`); `stop`, the end of the media and errors
//! drop it, so the endpoint can always be played again or released.

mod feed;
mod playback;

use parking_lot::Mutex;
use std::sync::{Arc, Weak};

use kms_core::api::core::events::{Error as ErrorEvent, UriEndpointStateChanged};
use kms_core::api::core::{Endpoint, GstreamerDotDetails, MediaType, UriEndpoint, UriEndpointState};
use kms_core::element::{ElementCore, ElementObject, dot_details};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};

use crate::api::elements::events::EndOfStream;
use crate::api::elements::{PlayerEndpoint, PlayerEndpointConstructor, PlayerEndpointFactory, VideoInfo};
use crate::uri::{CheckedUri, Transition, UriCommand, UriStateMachine};
use feed::{Feeds, PlayerIo};
use playback::{Happening, Options, Playback};

/// Spec §8 PLAYER_SEEK_FAIL: `setPosition` failed.
const PLAYER_SEEK_FAIL: i64 = 40700;

/// What RPC calls change, under one lock. Streaming threads never take it.
struct Control {
    machine: UriStateMachine,
    playback: Option<Playback>,
    /// Generation of the next playback; events of older ones are ignored.
    next_generation: u64,
}

pub struct PlayerEndpointImpl {
    core: ElementCore,
    uri: CheckedUri,
    opts: Options,
    feeds: Arc<Feeds>,
    media_pipeline: gst::Pipeline,
    ctl: Mutex<Control>,
    me: Weak<PlayerEndpointImpl>,
}

impl PlayerEndpointImpl {
    fn base(&self) -> &ObjectBase {
        self.core.base()
    }

    /// Raised with the `ctl` lock held, so the events leave in the order
    /// the transitions were applied: `play` (an RPC thread) and an error of
    /// the playback it starts (GStreamer's async-call pool) race, and
    /// announcing after the unlock let STOP overtake START (the client then
    /// saw START last). Raising only queues the event for the sessions; it
    /// takes no lock a streaming thread holds.
    fn announce(&self, t: Option<Transition>) {
        if let Some(t) = t {
            self.base().raise(&UriEndpointStateChanged { state: t.to });
        }
    }

    /// A playback in `target` state, built if there is none.
    fn run(&self, ctl: &mut Control, target: gst::State) -> Result<()> {
        if ctl.playback.is_none() {
            let generation = ctl.next_generation;
            ctl.next_generation += 1;
            let me = self.me.clone();
            let notify = Arc::new(move |generation: u64, h: Happening| {
                if let Some(ep) = me.upgrade() {
                    ep.on_happening(generation, h);
                }
            });
            let name = format!("player-{}", self.base().id().as_str().rsplit('/').next().unwrap_or("x"));
            let pb = Playback::new(&name, generation, &self.opts, self.feeds.clone(), &self.media_pipeline, notify)
                .map_err(|e| Error::NotAvailable(format!("GStreamer element cannot be created: {e}")))?;
            self.feeds.reset();
            ctl.playback = Some(pb);
        }
        let r = match (&ctl.playback, target) {
            (Some(pb), gst::State::Playing) => pb.play(),
            (Some(pb), _) => pb.pause(),
            (None, _) => Ok(()),
        };
        if let Err(e) = r {
            // The bus has the reason; it arrives as an `Error` event and
            // ends this playback (`on_happening`).
            tracing::debug!(id = %self.base().id(), error = %e, "player: state change failed");
        }
        Ok(())
    }

    /// EOS or an error of playback `generation` (on GStreamer's async-call
    /// pool): reported once, and the playback is dropped (STOP).
    fn on_happening(&self, generation: u64, h: Happening) {
        let mut ctl = self.ctl.lock();
        if ctl.playback.as_ref().map(|p| p.generation) != Some(generation) {
            return;
        }
        match h {
            Happening::EndOfStream => {
                self.feeds.end_of_stream();
                self.base().raise(&EndOfStream {})
            }
            Happening::Error { description, code, kind } => {
                self.base().raise(&ErrorEvent { description, error_code: code, r#type: kind })
            }
        }
        ctl.playback = None;
        let t = ctl.machine.apply(UriCommand::Stop);
        self.announce(t);
        drop(ctl);
    }
}

impl RemoteObject for PlayerEndpointImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        let pb = self.ctl.lock().playback.take();
        drop(pb);
        self.core.release();
    }
}

impl ElementObject for PlayerEndpointImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl Endpoint for PlayerEndpointImpl {}

impl UriEndpoint for PlayerEndpointImpl {
    fn get_uri(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.uri.given().to_string())
    }

    fn get_state(&self, _ctx: &Ctx) -> Result<UriEndpointState> {
        Ok(self.ctl.lock().machine.state())
    }

    fn pause(&self, _ctx: &Ctx) -> Result<()> {
        let mut ctl = self.ctl.lock();
        self.run(&mut ctl, gst::State::Paused)?;
        let t = ctl.machine.apply(UriCommand::Pause);
        self.announce(t);
        drop(ctl);
        Ok(())
    }

    fn stop(&self, _ctx: &Ctx) -> Result<()> {
        let mut ctl = self.ctl.lock();
        let pb = ctl.playback.take();
        drop(pb);
        let t = ctl.machine.apply(UriCommand::Stop);
        self.announce(t);
        drop(ctl);
        Ok(())
    }
}

impl PlayerEndpoint for PlayerEndpointImpl {
    fn get_video_info(&self, _ctx: &Ctx) -> Result<VideoInfo> {
        let ctl = self.ctl.lock();
        let Some(pb) = &ctl.playback else {
            return Ok(VideoInfo { is_seekable: false, seekable_init: 0, seekable_end: 0, duration: 0 });
        };
        pb.settle();
        let (is_seekable, seekable_init, seekable_end) = pb.seeking();
        Ok(VideoInfo { is_seekable, seekable_init, seekable_end, duration: pb.duration_ms().unwrap_or(0) })
    }

    fn get_element_gstreamer_dot(&self, _ctx: &Ctx) -> Result<String> {
        let details = dot_details(Some(GstreamerDotDetails::ShowVerbose));
        let ctl = self.ctl.lock();
        Ok(match &ctl.playback {
            Some(pb) => pb.dot(details),
            None => {
                use gst::prelude::*;
                self.core.bin().debug_to_dot_data(details).to_string()
            }
        })
    }

    fn get_position(&self, _ctx: &Ctx) -> Result<i64> {
        let ctl = self.ctl.lock();
        Ok(ctl.playback.as_ref().and_then(|p| p.position_ms()).unwrap_or(0))
    }

    fn set_position(&self, _ctx: &Ctx, value: i64) -> Result<()> {
        let ctl = self.ctl.lock();
        let fail = || Error::Code { code: PLAYER_SEEK_FAIL, message: "Seek fails".into() };
        let Some(pb) = &ctl.playback else { return Err(fail()) };
        if value < 0 {
            return Err(fail());
        }
        pb.settle();
        if !pb.seek(value, !self.opts.use_encoded_media) {
            return Err(fail());
        }
        self.feeds.reset();
        Ok(())
    }

    fn play(&self, _ctx: &Ctx) -> Result<()> {
        let mut ctl = self.ctl.lock();
        self.run(&mut ctl, gst::State::Playing)?;
        let t = ctl.machine.apply(UriCommand::Start);
        self.announce(t);
        drop(ctl);
        Ok(())
    }
}

impl PlayerEndpointFactory for PlayerEndpointImpl {
    fn construct(ctx: &Ctx, params: PlayerEndpointConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        if gst::ElementFactory::find("uridecodebin").is_none() || gst::ElementFactory::find("appsink").is_none() {
            return Err(Error::NotAvailable(
                "GStreamer element cannot be created: uridecodebin and appsink (gst-plugins-base) are required".into(),
            ));
        }
        let uri = CheckedUri::new(ctx.config(), &params.uri)?;
        if params.network_cache < 0 {
            return Err(Error::marshall("'networkCache' must not be negative"));
        }
        let rtsp_port_range = ctx
            .config()
            .module_str("kurento", "PlayerEndpoint", "rtspClientPortRange")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let Some(r) = &rtsp_port_range
            && parse_port_range(r).is_none()
        {
            tracing::warn!(range = %r, "PlayerEndpoint rtspClientPortRange is not 'min-max'; ignored");
        }
        let opts = Options {
            uri: uri.gst_uri(),
            use_encoded_media: params.use_encoded_media,
            network_cache_ms: params.network_cache as u32,
            rtsp_port_range: rtsp_port_range.filter(|r| parse_port_range(r).is_some()),
        };
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let feeds = Arc::new(Feeds::default());
        let media_pipeline = shared.pipeline.clone();
        let core = ElementCore::new(ctx, base, shared, Box::new(PlayerIo(feeds.clone())))?;
        let ep = Arc::new_cyclic(|me| PlayerEndpointImpl {
            core,
            uri,
            opts,
            feeds,
            media_pipeline,
            ctl: Mutex::new(Control { machine: UriStateMachine::default(), playback: None, next_generation: 0 }),
            me: me.clone(),
        });
        // Outputs exist from the start: connections made before `play`
        // link at once, and flow events fire.
        for t in [MediaType::Audio, MediaType::Video, MediaType::Data] {
            let _ = ep.core.output(t, "default");
        }
        Ok(ep)
    }
}

impl Drop for PlayerEndpointImpl {
    fn drop(&mut self) {
        self.ctl.get_mut().playback = None;
    }
}

/// `min-max` with `0 < min <= max`.
fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_ranges_are_min_dash_max() {
        assert_eq!(super::parse_port_range("5000-5100"), Some((5000, 5100)));
        assert_eq!(super::parse_port_range(" 6000 - 6000 "), Some((6000, 6000)));
        assert_eq!(super::parse_port_range("6000-5000"), None);
        assert_eq!(super::parse_port_range("0-10"), None);
        assert_eq!(super::parse_port_range("5000"), None);
    }
}
