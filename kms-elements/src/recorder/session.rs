//! One recording in GStreamer: a bin inside the recorder's bin holding, per
//! track, a queue and the plan's conversion chain, the muxer and the sink.
//! Created by `record()` (from STOP), finished by [`Session::finish`],
//! which sends EOS into every track and waits until the sink has it: by
//! then the muxer has written its indexes and duration (a file) or the
//! last bytes (an upload), and setting the bin to NULL closes the file or
//! ends the upload.
//!
//! ```text
//!  entry(audio) ─▶ ghost ─ queue ─ [audioconvert ─ audioresample ─ aacenc] ─┐
//!  entry(video) ─▶ ghost ─ queue ─ [h264parse] ────────────────────────────┴ mux ─ sink
//! ```
//!
//! The queues are leaky (bounded memory when a muxer waits for a track
//! that never delivers) and decouple the entries' streaming threads from
//! the muxer. The ghost pads answer latency queries as not live: the
//! aggregator muxers then interleave by timestamp, waiting for every
//! track, instead of timing out against the clock (the timestamps they get
//! start at 0, far behind the pipeline's running time).

use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;

use super::profile::{Destination, Plan, Track, TrackKind};

/// Where a recording goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(std::path::PathBuf),
    /// HTTP(S) upload: one POST, chunked, streamed while recording.
    Http {
        url: String,
        user: Option<String>,
        password: Option<String>,
    },
    /// Any other URI with a GStreamer sink handler (rtmp://, srt://, ...).
    Uri(String),
}

impl Target {
    pub fn destination(&self) -> Destination {
        match self {
            Target::File(_) => Destination::File,
            _ => Destination::Stream,
        }
    }
}

/// Why a recording cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("GStreamer element cannot be created: {0}")]
    Element(String),
    #[error("Cannot create the directory of '{path}': {reason}")]
    Directory { path: String, reason: String },
    #[error("Cannot start recording to '{0}'")]
    Start(String),
    #[error("No GStreamer sink handles '{0}'")]
    NoSink(String),
}

impl From<SessionError> for kms_core::Error {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Element(_) => kms_core::Error::NotAvailable(e.to_string()),
            SessionError::NoSink(_) => kms_core::Error::IllegalParam(e.to_string()),
            // KMS reports these as an Error event; the RPC says it too.
            _ => kms_core::Error::Unexpected(e.to_string()),
        }
    }
}

/// Signalled when EOS reached the sink.
#[derive(Default)]
struct Done {
    eos: Mutex<bool>,
    cv: Condvar,
}

/// How much a track's queue holds while the muxer waits for another
/// track; older data is dropped beyond it.
const QUEUE_NS: u64 = 5_000_000_000;

pub struct Session {
    bin: gst::Bin,
    mux: Option<gst::Element>,
    sink: gst::Element,
    pads: HashMap<TrackKind, gst::GhostPad>,
    done: Arc<Done>,
    target: Target,
}

fn make(factory: &str) -> Result<gst::Element, SessionError> {
    gst::ElementFactory::make(factory).build().map_err(|_| SessionError::Element(factory.to_string()))
}

fn make_first(group: &[&str]) -> Result<gst::Element, SessionError> {
    group
        .iter()
        .find(|f| gst::ElementFactory::find(f).is_some())
        .ok_or_else(|| SessionError::Element(group.join(" | ")))
        .and_then(|f| make(f))
}

fn make_sink(target: &Target, mime: &str) -> Result<gst::Element, SessionError> {
    let sink = match target {
        Target::File(path) => {
            if let Some(dir) = path.parent() {
                // spec §10.9: parent directories are created.
                std::fs::create_dir_all(dir)
                    .map_err(|e| SessionError::Directory { path: path.display().to_string(), reason: e.to_string() })?;
            }
            let s = make("filesink")?;
            s.set_property("location", path.to_string_lossy().to_string());
            // Every buffer is written at once (no 64 KiB user-space buffer
            // that a killed server would lose).
            s.set_property_from_str("buffer-mode", "unbuffered");
            s
        }
        Target::Http { url, user, password } => {
            let s = make("curlhttpsink")?;
            s.set_property("location", url);
            if let Some(u) = user {
                s.set_property("user", u);
            }
            if let Some(p) = password {
                s.set_property("passwd", p);
            }
            s.set_property("content-type", mime);
            // Transfer-Encoding: chunked (spec §10.9): the upload starts
            // with the recording and never buffers it whole.
            s.set_property("use-content-length", false);
            s
        }
        Target::Uri(uri) => {
            gst::Element::make_from_uri(gst::URIType::Sink, uri, None).map_err(|_| SessionError::NoSink(uri.clone()))?
        }
    };
    if sink.has_property("sync") {
        sink.set_property("sync", false);
    }
    if sink.has_property("async") {
        sink.set_property("async", false);
    }
    Ok(sink)
}

/// How long an HTTP upload gets after its EOS before the sink stops.
const HTTP_FINISH_GRACE: Duration = Duration::from_millis(750);

impl Session {
    /// Builds the muxer and the sink (nothing opened yet).
    pub fn new(plan: &Plan, target: Target, name: &str) -> Result<Session, SessionError> {
        let bin = gst::Bin::builder().name(name).build();
        let sink = make_sink(&target, plan.mime)?;
        let mux = match plan.muxer(target.destination()) {
            Some(m) => {
                let e = make(m.factory)?;
                for (k, v) in &m.properties {
                    e.set_property_from_str(k, v);
                }
                Some(e)
            }
            None => None,
        };
        bin.add(&sink).map_err(|e| SessionError::Element(e.to_string()))?;
        if let Some(m) = &mux {
            bin.add(m).map_err(|e| SessionError::Element(e.to_string()))?;
            m.link(&sink).map_err(|e| SessionError::Element(e.to_string()))?;
        }
        let done = Arc::new(Done::default());
        if let Some(pad) = sink.static_pad("sink") {
            let d = done.clone();
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(ev)) = &info.data
                    && ev.type_() == gst::EventType::Eos
                {
                    *d.eos.lock() = true;
                    d.cv.notify_all();
                }
                gst::PadProbeReturn::Ok
            });
        }
        Ok(Session { bin, mux, sink, pads: HashMap::new(), done, target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Adds a track (before the session starts, or before any data reached
    /// the muxer); returns the pad the entry links to.
    pub fn add_track(&mut self, track: &Track, mux_pad: Option<&str>) -> Result<gst::Pad, SessionError> {
        if let Some(p) = self.pads.get(&track.kind) {
            return Ok(p.clone().upcast());
        }
        let err = |e: &dyn std::fmt::Display| SessionError::Element(e.to_string());
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", QUEUE_NS)
            .property_from_str("leaky", "downstream")
            .build()
            .map_err(|e| err(&e))?;
        let mut chain = vec![queue];
        for group in &track.chain {
            chain.push(make_first(group)?);
        }
        for e in &chain {
            self.bin.add(e).map_err(|e| err(&e))?;
        }
        gst::Element::link_many(&chain).map_err(|e| err(&e))?;
        let last = chain.last().expect("queue");
        let target = match (&self.mux, mux_pad) {
            (Some(m), Some(tmpl)) => m.request_pad_simple(tmpl).ok_or_else(|| err(&format!("no {tmpl} pad")))?,
            (Some(m), None) => m.static_pad("sink").ok_or_else(|| err(&"no mux sink pad"))?,
            (None, _) => self.sink.static_pad("sink").ok_or_else(|| err(&"no sink pad"))?,
        };
        last.static_pad("src").ok_or_else(|| err(&"no src pad"))?.link(&target).map_err(|e| err(&e))?;
        for e in &chain {
            let _ = e.sync_state_with_parent();
        }
        let inner = chain[0].static_pad("sink").ok_or_else(|| err(&"no queue pad"))?;
        let kind = match track.kind {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        };
        let ghost = gst::GhostPad::builder_with_target(&inner).map_err(|e| err(&e))?.name(kind).build();
        // Not live: see the module docs.
        ghost.add_probe(gst::PadProbeType::QUERY_UPSTREAM, |_, info| {
            if let Some(gst::PadProbeData::Query(q)) = &mut info.data
                && let gst::QueryViewMut::Latency(l) = q.view_mut()
            {
                l.set(false, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                return gst::PadProbeReturn::Handled;
            }
            gst::PadProbeReturn::Ok
        });
        let _ = ghost.set_active(true);
        self.bin.add_pad(&ghost).map_err(|e| err(&e))?;
        self.pads.insert(track.kind, ghost.clone());
        Ok(ghost.upcast())
    }

    /// Joins `parent` and starts (opens the file, connects the upload).
    pub fn start(&self, parent: &gst::Bin) -> Result<(), SessionError> {
        let uri = match &self.target {
            Target::File(p) => p.display().to_string(),
            Target::Http { url, .. } => url.clone(),
            Target::Uri(u) => u.clone(),
        };
        parent.add(&self.bin).map_err(|_| SessionError::Start(uri.clone()))?;
        if self.bin.sync_state_with_parent().is_err() {
            let _ = self.bin.set_state(gst::State::Null);
            let _ = parent.remove(&self.bin);
            return Err(SessionError::Start(uri));
        }
        Ok(())
    }

    /// Ends the recording: EOS into every track, wait (at most `timeout`)
    /// until the sink has it, then close. Returns whether EOS arrived in
    /// time (the file is complete).
    pub fn finish(self, parent: &gst::Bin, timeout: Duration) -> bool {
        for p in self.pads.values() {
            // The track queues never block on a serialized event, so this
            // returns at once even when the muxer waits for another track.
            let _ = p.send_event(gst::event::Eos::new());
        }
        let complete = self.pads.is_empty() || {
            let deadline = std::time::Instant::now() + timeout;
            let mut eos = self.done.eos.lock();
            while !*eos {
                if self.done.cv.wait_until(&mut eos, deadline).timed_out() {
                    break;
                }
            }
            *eos
        };
        // An HTTP upload: curlhttpsink sends the end of the chunked body
        // and reads the response on its own transfer thread after its EOS;
        // NULL right away can cut that (CI saw an upload end "aborted").
        // No signal tells when it is done, so it gets a bounded grace.
        if complete && matches!(self.target, Target::Http { .. }) {
            std::thread::sleep(HTTP_FINISH_GRACE);
        }
        // The sink finishes its EOS (flush) before its pad can deactivate:
        // NULL closes a complete file.
        let _ = self.bin.set_state(gst::State::Null);
        let _ = parent.remove(&self.bin);
        complete
    }
}
