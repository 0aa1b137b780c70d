//! One playback of a PlayerEndpoint: a GStreamer pipeline of its own
//! (`uridecodebin` → per stream an `appsink`), as KMS's player does, whose
//! appsinks push into the endpoint's outputs in the media pipeline
//! (`feed`). Being a pipeline of its own is what lets it pause, seek and
//! reach the end without touching the media pipeline, which stays PLAYING
//! and never sees this pipeline's flushes or EOS.
//!
//! Threads: the appsinks' callbacks and the bus handler run on streaming
//! threads and take only the feeds' short locks. What must change the
//! endpoint (EOS, errors) is handed to [`Happening`] callbacks on
//! GStreamer's async-call pool, which may take the endpoint's control lock
//! while an RPC thread holding it changes this pipeline's state.

use parking_lot::Mutex;
use std::sync::Arc;

use gst::prelude::*;
use kms_core::agnosticbin::codecs::{ALL_CODECS, Kind, raw_caps};
use kms_core::api::core::MediaType;

use super::feed::{Feeds, offset};

/// What the media looks like to a player.
#[derive(Debug, Clone)]
pub struct Options {
    /// URI handed to `uridecodebin` (already checked by the access policy).
    pub uri: String,
    /// Stop decoding at the codecs agnosticbin can forward.
    pub use_encoded_media: bool,
    /// rtspsrc `latency`, ms.
    pub network_cache_ms: u32,
    /// rtspsrc `port-range` ("min-max"), from `rtspClientPortRange`.
    pub rtsp_port_range: Option<String>,
}

/// What ended a playback, reported once per playback.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    EndOfStream,
    Error { description: String, code: i32, kind: String },
}

type Notify = Arc<dyn Fn(u64, Happening) + Send + Sync>;

/// The playback pipeline. Dropping it stops it.
///
/// It enters PLAYING only from a completed preroll (PAUSED, then PLAYING
/// on ASYNC_DONE), never in one step: GStreamer 1.22's basesink, when it
/// commits a preroll straight to PLAYING, keeps believing it holds a
/// preroll buffer, so the next PLAYING→PAUSED neither blocks the sinks nor
/// stops the clock waits — the pause does not pause, and the seeks after
/// it never resume (the upstream KMS player's symptoms on 1.22).
pub struct Playback {
    pipeline: gst::Pipeline,
    pub generation: u64,
    /// Whether the pipeline should be PLAYING once prerolled. Held while
    /// changing state (RPC threads and the async-call pool only).
    want_playing: Arc<Mutex<bool>>,
}

impl Playback {
    /// Builds the pipeline (in NULL). `notify` is called on the async-call
    /// pool with this playback's `generation`.
    pub fn new(
        name: &str,
        generation: u64,
        opts: &Options,
        feeds: Arc<Feeds>,
        media_pipeline: &gst::Pipeline,
        notify: Notify,
    ) -> Result<Playback, gst::glib::BoolError> {
        let pipeline = gst::Pipeline::builder().name(name).build();
        // The media pipeline's clock: timestamps move between the two by
        // base time alone (`feed`).
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let dec = gst::ElementFactory::make("uridecodebin").name("decoder").property("uri", &opts.uri).build()?;
        if opts.use_encoded_media {
            dec.set_property("caps", stop_caps());
        }
        let o = opts.clone();
        dec.connect("source-setup", false, move |args| {
            if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                configure_source(&src, &o);
            }
            None
        });
        pipeline.add(&dec)?;
        let taken: Arc<Mutex<Vec<MediaType>>> = Arc::default();
        let weak_pipeline = pipeline.downgrade();
        let media = media_pipeline.downgrade();
        let encoded = opts.use_encoded_media;
        dec.connect_pad_added(move |_, pad| {
            let (Some(p), Some(m)) = (weak_pipeline.upgrade(), media.upgrade()) else { return };
            if let Err(e) = link_stream(&p, &m, pad, &feeds, &taken, encoded) {
                tracing::warn!(error = %e, "player: cannot link a stream");
            }
        });
        let bus = pipeline.bus().expect("a pipeline has a bus");
        // The first EOS or error, in bus order, is the one reported (a
        // source's error is followed by its bins' "state change failed").
        let first: Arc<Mutex<Option<Happening>>> = Arc::default();
        let want_playing: Arc<Mutex<bool>> = Arc::default();
        let want = want_playing.clone();
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::AsyncDone(_) = msg.view()
                && let Some(p) = msg.src().and_then(|s| s.clone().downcast::<gst::Pipeline>().ok())
            {
                let want = want.clone();
                p.call_async(move |p| {
                    let w = want.lock();
                    if *w {
                        let _ = p.set_state(gst::State::Playing);
                    }
                });
            } else if let Some(h) = happening(msg) {
                let mut f = first.lock();
                if f.is_none()
                    && let Some(src) = msg.src().and_then(|s| s.clone().downcast::<gst::Element>().ok())
                {
                    *f = Some(h.clone());
                    drop(f);
                    let notify = notify.clone();
                    // Off the streaming thread: the endpoint tears this
                    // pipeline down from there.
                    src.call_async(move |_| notify(generation, h));
                }
            } else if let gst::MessageView::Warning(w) = msg.view() {
                tracing::warn!(warning = %w.error(), debug = ?w.debug(), "player");
            }
            gst::BusSyncReply::Drop
        });
        Ok(Playback { pipeline, generation, want_playing })
    }

    /// Toward PLAYING: prerolls first (see the type's docs); live sources
    /// (RTSP) do not preroll and go on at once.
    pub fn play(&self) -> Result<(), gst::StateChangeError> {
        let mut w = self.want_playing.lock();
        *w = true;
        match self.pipeline.set_state(gst::State::Paused)? {
            gst::StateChangeSuccess::Async => Ok(()),
            _ => self.pipeline.set_state(gst::State::Playing).map(|_| ()),
        }
    }

    /// To PAUSED: the sinks block on their next buffer and position holds.
    pub fn pause(&self) -> Result<(), gst::StateChangeError> {
        let mut w = self.want_playing.lock();
        *w = false;
        self.pipeline.set_state(gst::State::Paused).map(|_| ())
    }

    /// Playback position, ms.
    pub fn position_ms(&self) -> Option<i64> {
        self.pipeline.query_position::<gst::ClockTime>().map(|p| p.mseconds() as i64)
    }

    pub fn duration_ms(&self) -> Option<i64> {
        self.pipeline.query_duration::<gst::ClockTime>().map(|p| p.mseconds() as i64)
    }

    /// `(seekable, start ms, end ms)`.
    pub fn seeking(&self) -> (bool, i64, i64) {
        let mut q = gst::query::Seeking::new(gst::Format::Time);
        if !self.pipeline.query(&mut q) {
            return (false, 0, 0);
        }
        let (seekable, start, end) = q.result();
        let ms = |v: gst::GenericFormattedValue| match v {
            gst::GenericFormattedValue::Time(Some(t)) => t.mseconds() as i64,
            _ => 0,
        };
        (seekable, ms(start), ms(end))
    }

    /// Waits (bounded) for a pending state change, so a seek is not refused
    /// because the pipeline is still prerolling.
    pub fn settle(&self) {
        let _ = self.pipeline.state(gst::ClockTime::from_seconds(5));
    }

    /// Flushing seek to `ms`. Decoded media seeks accurately; encoded media
    /// to the keyframe before, so consumers never start on a delta frame.
    pub fn seek(&self, ms: i64, accurate: bool) -> bool {
        // Seek in PAUSED; a PLAYING playback returns to PLAYING from the
        // new preroll (ASYNC_DONE), never by the seek's own lost-state
        // commit (see the type's docs).
        {
            let _w = self.want_playing.lock();
            if self.pipeline.set_state(gst::State::Paused).is_err() {
                return false;
            }
        }
        let flags = if accurate {
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE
        } else {
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE
        };
        if self.pipeline.seek_simple(flags, gst::ClockTime::from_mseconds(ms.max(0) as u64)).is_err() {
            return false;
        }
        // The new preroll (bounded): until it lands, a position query
        // answers from the flushed pipeline (0), so a `getPosition` right
        // after `setPosition` — while paused above all — would not show the
        // seek (seen in CI: "paused seek position 0").
        let _ = self.pipeline.state(SEEK_PREROLL_WAIT);
        true
    }

    pub fn dot(&self, details: gst::DebugGraphDetails) -> String {
        self.pipeline.debug_to_dot_data(details).to_string()
    }
}

/// How long `seek` waits for the new preroll before answering.
const SEEK_PREROLL_WAIT: gst::ClockTime = gst::ClockTime::from_seconds(3);

impl Drop for Playback {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}

/// The caps `uridecodebin` stops at with `useEncodedMedia`: raw media and
/// every codec agnosticbin can pass through.
fn stop_caps() -> gst::Caps {
    let mut caps = raw_caps(Kind::Audio);
    caps.merge(raw_caps(Kind::Video));
    for c in ALL_CODECS {
        // Any stream format: H.264 is made byte-stream below.
        let name = c.es_caps().structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        caps.merge(gst::Caps::new_empty_simple(name));
    }
    caps
}

fn configure_source(src: &gst::Element, o: &Options) {
    let factory = src.factory().map(|f| f.name().to_string()).unwrap_or_default();
    tracing::debug!(factory, "player source");
    if factory == "rtspsrc" {
        src.set_property("latency", o.network_cache_ms);
        src.set_property("drop-on-latency", true);
        if let Some(r) = &o.rtsp_port_range {
            src.set_property("port-range", r);
        }
    }
}

/// Media type of a decodebin pad.
fn kind_of(pad: &gst::Pad) -> Option<MediaType> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let name = caps.structure(0)?.name();
    if name.starts_with("video/") {
        Some(MediaType::Video)
    } else if name.starts_with("audio/") {
        Some(MediaType::Audio)
    } else {
        None
    }
}

/// First audio and first video stream each feed their output; anything
/// else is discarded.
fn link_stream(
    pipeline: &gst::Pipeline,
    media: &gst::Pipeline,
    pad: &gst::Pad,
    feeds: &Arc<Feeds>,
    taken: &Mutex<Vec<MediaType>>,
    encoded: bool,
) -> Result<(), gst::glib::BoolError> {
    let t = kind_of(pad).filter(|t| {
        let mut taken = taken.lock();
        let free = !taken.contains(t);
        if free {
            taken.push(*t);
        }
        free
    });
    let Some(t) = t else {
        let fake = gst::ElementFactory::make("fakesink").property("sync", true).build()?;
        pipeline.add(&fake)?;
        fake.sync_state_with_parent()?;
        pad.link(&fake.static_pad("sink").expect("fakesink has a sink"))
            .map_err(|e| gst::glib::bool_error!("link: {e:?}"))?;
        return Ok(());
    };
    let mut chain: Vec<gst::Element> = vec![];
    let is_h264 = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name() == "video/x-h264")).unwrap_or(false);
    if encoded && is_h264 {
        chain.push(gst::ElementFactory::make("h264parse").property("config-interval", -1i32).build()?);
        chain.push(
            gst::ElementFactory::make("capsfilter")
                .property("caps", kms_core::agnosticbin::codecs::Codec::H264.es_caps())
                .build()?,
        );
    }
    let feeds = feeds.clone();
    let media = media.downgrade();
    let sink = gst_app::AppSink::builder()
        .sync(true)
        .enable_last_sample(false)
        .max_buffers(1)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(m) = media.upgrade() else { return Err(gst::FlowError::Flushing) };
                    let latency = s.parent().and_then(|p| p.downcast::<gst::Pipeline>().ok()).map(|p| p.latency());
                    let off = offset(
                        s.base_time().unwrap_or(gst::ClockTime::ZERO),
                        latency.flatten().unwrap_or(gst::ClockTime::ZERO),
                        m.base_time().unwrap_or(gst::ClockTime::ZERO),
                    );
                    feeds.push(t, &sample, off)
                })
                .build(),
        )
        .build();
    chain.push(sink.upcast());
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    for e in &chain {
        e.sync_state_with_parent()?;
    }
    pad.link(&chain[0].static_pad("sink").expect("sink pad")).map_err(|e| gst::glib::bool_error!("link: {e:?}"))?;
    Ok(())
}

/// EOS and errors of the playback pipeline; an RTSP source that stopped
/// receiving is an error too (rtspsrc only posts an element message).
fn happening(msg: &gst::MessageRef) -> Option<Happening> {
    match msg.view() {
        gst::MessageView::Eos(_) => Some(Happening::EndOfStream),
        gst::MessageView::Error(e) => {
            let err = e.error();
            let source = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
            let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            tracing::warn!(source, error = %err, debug = ?e.debug(), "player error");
            Some(Happening::Error {
                description: format!(
                    "Error code {}: {}, source: {source}, element: {element}",
                    err.code(),
                    err.message()
                ),
                code: err.code(),
                kind: error_type(&err, &element).into(),
            })
        }
        gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "GstRTSPSrcTimeout") => {
            Some(Happening::Error {
                description: "RTSP stream timed out: the server stopped sending media".into(),
                code: gst::glib::error::ErrorDomain::code(gst::ResourceError::Read),
                kind: "INVALID_URI".into(),
            })
        }
        _ => None,
    }
}

/// Spec §10.9: a source error is `INVALID_URI`, a decoding error
/// `INVALID_MEDIA`; anything else as the media pipeline classifies it.
fn error_type(err: &gst::glib::Error, element: &str) -> &'static str {
    if err.kind::<gst::ResourceError>().is_some() || (element == "decoder" && err.kind::<gst::StreamError>().is_none())
    {
        "INVALID_URI"
    } else if err.kind::<gst::StreamError>().is_some()
        || err.kind::<gst::CoreError>() == Some(gst::CoreError::MissingPlugin)
    {
        "INVALID_MEDIA"
    } else {
        kms_core::pipeline::error_type(err)
    }
}
