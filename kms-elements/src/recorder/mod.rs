//! RecorderEndpoint (spec §10.9): media connected to it is muxed into the
//! container of its `MediaProfileSpecType` and written to a file or
//! uploaded over HTTP while it is recorded.
//!
//! ```text
//!            ┌──────────────────── RecorderEndpoint bin ─────────────────────┐
//! source ──▶ │ entry(audio) = capsfilter ─┐                                  │
//!            │ entry(video) = capsfilter ─┴─▶ session bin (record → stop):   │
//!            │                               queues, converters, mux, sink  │
//!            │ (DATA, or media the profile does not record: fakesink)       │
//!            └───────────────────────────────────────────────────────────────┘
//! ```
//!
//! * [`profile`] (pure): profile → container, the caps each entry accepts
//!   (the source's agnosticbin delivers them, re-encoding only when the
//!   incoming codec is not the profile's), converters, muxer settings.
//! * [`timeline`] (pure): which buffers are kept and their timestamps in
//!   the file (starts at 0, pauses cut out, `gapsFix`).
//! * `session`: the GStreamer side of one recording, and its finalization.
//!
//! Entries live as long as the endpoint; a probe on each applies the
//! timeline and forwards kept buffers to the current session, so nothing
//! upstream ever sees the muxer's flow errors (a recorder that stopped or
//! failed never stops its source's branch). Finalization runs on its own
//! thread: `stop()` answers at once, `stopAndWait()` and every teardown
//! (`release`, the pipeline's release, session garbage collection, the
//! server's SIGTERM path, which releases every pipeline) wait for it.

pub mod profile;
mod session;
pub mod timeline;

use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::api::core::events::UriEndpointStateChanged;
use kms_core::api::core::{Endpoint, MediaType, UriEndpoint, UriEndpointState};
use kms_core::element::{ElementCore, ElementObject, MediaIo};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};

use crate::api::elements::events::{Paused, Recording, Stopped};
use crate::api::elements::{GapsFixMethod, RecorderEndpoint, RecorderEndpointConstructor, RecorderEndpointFactory};
use crate::uri::{CheckedUri, Scheme, UriCommand, UriStateMachine};
use profile::{Muxer, Plan, Track, TrackKind};
use session::{Session, Target};
use timeline::{GapsFix, Timeline, Verdict};

/// How long `stopAndWait` and teardown wait for a recording to be
/// finalized (the muxer's last writes, an upload's last chunk).
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the custom downstream event a source sends through its outputs
/// when its media ends (a PlayerEndpoint at the end of the file): a real
/// EOS would end every consumer for good, this one only tells recorders
/// with `stopOnEndOfStream` to stop.
pub const END_OF_STREAM_EVENT: &str = "kms-end-of-stream";

/// The [`END_OF_STREAM_EVENT`] event.
pub fn end_of_stream_event() -> gst::Event {
    gst::event::CustomDownstream::new(gst::Structure::new_empty(END_OF_STREAM_EVENT))
}

/// At most one keyframe request per this interval while video waits for one.
const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// `RecorderEndpoint.conf` `gapsFix` (spec §10.9), default NONE.
fn gaps_fix(ctx: &Ctx) -> Result<GapsFix> {
    let Some(v) = ctx.config().module_str("kurento", "RecorderEndpoint", "gapsFix") else {
        return Ok(GapsFix::None);
    };
    let parsed = match v.trim().to_ascii_uppercase().as_str() {
        "NONE" | "" => GapsFixMethod::None,
        "GENPTS" => GapsFixMethod::Genpts,
        "FILL_IF_TRANSCODING" => GapsFixMethod::FillIfTranscoding,
        other => return Err(Error::IllegalParam(format!("Invalid gapsFix '{other}' in RecorderEndpoint config"))),
    };
    match parsed {
        GapsFixMethod::None => Ok(GapsFix::None),
        GapsFixMethod::Genpts => Ok(GapsFix::Genpts),
        // The kmd itself documents it as "NOT IMPLEMENTED YET".
        GapsFixMethod::FillIfTranscoding => {
            Err(Error::NotImplemented("gapsFix FILL_IF_TRANSCODING is not implemented (as in KMS)".into()))
        }
    }
}

/// The recording target of a checked `uri`.
fn target_of(uri: &CheckedUri) -> Result<Target> {
    match &uri.location.scheme {
        Scheme::File => {
            let path = uri.path.clone().ok_or_else(|| Error::IllegalParam(format!("Invalid URI '{}'", uri.given())))?;
            Ok(Target::File(path))
        }
        Scheme::Http | Scheme::Https => Ok(http_target(&uri.location.resolved)),
        _ => {
            let u = uri.location.resolved.clone();
            if gst::Element::make_from_uri(gst::URIType::Sink, &u, None).is_err() {
                return Err(Error::IllegalParam(format!("No GStreamer sink handles '{}'", uri.given())));
            }
            Ok(Target::Uri(u))
        }
    }
}

/// `http(s)://user:password@host/path`: credentials (URL-encoded, spec
/// §10.9) go to basic auth, not into the request line.
fn http_target(resolved: &str) -> Target {
    let (scheme, rest) = resolved.split_once("://").unwrap_or(("http", resolved));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().to_string();
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (decode(u), Some(decode(p))),
                None => (decode(userinfo), None),
            };
            Target::Http { url: format!("{scheme}://{host}{path}"), user: Some(u), password: p }
        }
        None => Target::Http { url: resolved.to_string(), user: None, password: None },
    }
}

/// One input of the recorder (a profile track): a capsfilter answering the
/// source's caps query with what the track takes.
struct Entry {
    track: Track,
    filter: gst::Element,
    /// The source's segment, to turn timestamps into running time.
    segment: Mutex<gst::FormattedSegment<gst::ClockTime>>,
    /// Linked to a new session whose muxer has no caps from us yet.
    fresh: AtomicBool,
    /// EOS from the source since the last `record()` (stopOnEndOfStream).
    eos: AtomicBool,
}

impl Entry {
    fn src(&self) -> gst::Pad {
        self.filter.static_pad("src").expect("capsfilter src")
    }
}

/// A finalization in progress.
#[derive(Default)]
struct Finish {
    done: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Finish {
    /// Whether the recording was finalized within `timeout`.
    fn wait(&self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        let mut d = self.done.lock();
        while d.is_none() {
            if self.cv.wait_until(&mut d, deadline).timed_out() {
                break;
            }
        }
        *d
    }
}

/// What RPC threads change; streaming threads never take this lock.
struct Control {
    session: Option<Session>,
    uri: UriStateMachine,
    /// Sessions created so far (bin names).
    count: u32,
}

/// Shared with the entries' probes (which hold it weakly).
struct Shared {
    base: ObjectBase,
    bin: gst::Bin,
    plan: Plan,
    muxer: Option<Muxer>,
    target: Target,
    stop_on_eos: bool,
    /// Taken by streaming threads: short sections only.
    timeline: Mutex<Timeline>,
    entries: Mutex<HashMap<TrackKind, Arc<Entry>>>,
    control: Mutex<Control>,
    finishing: Mutex<Option<Arc<Finish>>>,
    last_keyframe_request: Mutex<Option<Instant>>,
}

pub struct RecorderEndpointImpl {
    core: ElementCore,
    shared: Arc<Shared>,
    uri: CheckedUri,
}

fn track_kind(t: MediaType) -> Option<TrackKind> {
    match t {
        MediaType::Audio => Some(TrackKind::Audio),
        MediaType::Video => Some(TrackKind::Video),
        MediaType::Data => None,
    }
}

impl Shared {
    fn mux_pad(&self, kind: TrackKind) -> Option<&'static str> {
        self.muxer.as_ref().and_then(|m| match kind {
            TrackKind::Audio => m.audio_pad,
            TrackKind::Video => m.video_pad,
        })
    }

    fn set_uri_state(&self, c: &mut Control, cmd: UriCommand) -> Option<UriEndpointState> {
        c.uri.apply(cmd).map(|t| t.to)
    }

    fn announce(&self, state: Option<UriEndpointState>) {
        if let Some(state) = state {
            self.base.raise(&UriEndpointStateChanged { state });
        }
    }

    /// Creates the entry of `kind` (an input of the element).
    fn entry(self: &Arc<Self>, kind: TrackKind) -> Option<gst::Pad> {
        let track = self.plan.track(kind)?.clone();
        let caps: gst::Caps = track.accept.parse().ok()?;
        let name = match kind {
            TrackKind::Audio => "entry_audio",
            TrackKind::Video => "entry_video",
        };
        let filter = gst::ElementFactory::make("capsfilter").name(name).property("caps", &caps).build().ok()?;
        self.bin.add(&filter).ok()?;
        filter.sync_state_with_parent().ok()?;
        let entry = Arc::new(Entry {
            track,
            filter,
            segment: Mutex::new(gst::FormattedSegment::new()),
            fresh: AtomicBool::new(false),
            eos: AtomicBool::new(false),
        });
        self.install_probes(&entry);
        // A recording whose muxer has not written anything yet takes the
        // new track; once it has, the track waits for the next recording.
        {
            let mut c = self.control.lock();
            let started = self.timeline.lock().started();
            if let Some(s) = c.session.as_mut()
                && !started
            {
                match s.add_track(&entry.track, self.mux_pad(kind)) {
                    Ok(pad) => {
                        entry.fresh.store(true, Ordering::Release);
                        let _ = entry.src().link(&pad);
                    }
                    Err(e) => tracing::warn!(id = %self.base.id(), "recorder: cannot add {kind:?} track: {e}"),
                }
            }
        }
        let sink = entry.filter.static_pad("sink");
        self.entries.lock().insert(kind, entry);
        sink
    }

    fn install_probes(self: &Arc<Self>, entry: &Arc<Entry>) {
        let src = entry.src();
        let weak = Arc::downgrade(self);
        let e = Arc::downgrade(entry);
        src.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |pad, info| {
            let (Some(shared), Some(entry)) = (weak.upgrade(), e.upgrade()) else {
                return consume(info);
            };
            let buffers: Vec<gst::Buffer> = match info.data.take() {
                Some(gst::PadProbeData::Buffer(b)) => vec![b],
                Some(gst::PadProbeData::BufferList(l)) => l.iter_owned().collect(),
                other => {
                    info.data = other;
                    return gst::PadProbeReturn::Ok;
                }
            };
            let peer = pad.peer();
            for b in buffers {
                if let Some(b) = shared.admit(&entry, b)
                    && let Some(peer) = &peer
                {
                    // Errors of the recording (a failed sink, EOS during
                    // finalization) stay here: the source's branch flows on.
                    if let Err(err) = peer.chain(b) {
                        tracing::trace!(id = %shared.base.id(), "recorder track: {err:?}");
                    }
                }
            }
            info.flow_res = Ok(gst::FlowSuccess::Ok);
            gst::PadProbeReturn::Handled
        });
        let weak = Arc::downgrade(self);
        let e = Arc::downgrade(entry);
        src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let (Some(shared), Some(entry)) = (weak.upgrade(), e.upgrade()) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
            match ev.view() {
                gst::EventView::Segment(s) => {
                    if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                        *entry.segment.lock() = seg;
                    }
                    // The file's timeline starts at 0 (timestamps rewritten
                    // by `admit`).
                    let ours = gst::FormattedSegment::<gst::ClockTime>::new();
                    info.data = Some(gst::PadProbeData::Event(gst::event::Segment::new(&ours)));
                    gst::PadProbeReturn::Ok
                }
                gst::EventView::Eos(_) => {
                    entry.eos.store(true, Ordering::Release);
                    if shared.stop_on_eos {
                        shared.eos_seen();
                    }
                    // The source ending does not end the file: only stop()
                    // (or stopOnEndOfStream) does.
                    consume(info)
                }
                gst::EventView::CustomDownstream(c)
                    if c.structure().is_some_and(|st| st.name() == END_OF_STREAM_EVENT) =>
                {
                    entry.eos.store(true, Ordering::Release);
                    if shared.stop_on_eos {
                        shared.eos_seen();
                    }
                    consume(info)
                }
                gst::EventView::FlushStart(_) | gst::EventView::FlushStop(_) => consume(info),
                gst::EventView::Caps(_) => {
                    // Muxers fix a track's format at its first caps; streams
                    // stored as they come (VP8, Opus) describe size changes
                    // in the bitstream, so later caps are not forwarded.
                    if entry.fresh.swap(false, Ordering::AcqRel) || !entry.track.chain.is_empty() {
                        gst::PadProbeReturn::Ok
                    } else {
                        consume(info)
                    }
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
    }

    /// Applies the timeline to one buffer: `Some` (retimed) if recorded.
    fn admit(&self, entry: &Entry, mut buf: gst::Buffer) -> Option<gst::Buffer> {
        let kind = entry.track.kind;
        let (pts_rt, dts_rt) = {
            let seg = entry.segment.lock();
            let rt = |t: Option<gst::ClockTime>| t.and_then(|t| seg.to_running_time(t));
            (rt(buf.pts()), rt(buf.dts()))
        };
        let rt = pts_rt.or(dts_rt)?;
        let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let verdict = self.timeline.lock().on_buffer(kind, rt.nseconds(), keyframe);
        match verdict {
            Verdict::Drop { want_keyframe } => {
                if want_keyframe {
                    self.request_keyframe(entry);
                }
                None
            }
            Verdict::Keep { out, first } => {
                let shift = rt.nseconds() as i128 - out as i128;
                let map = |t: Option<gst::ClockTime>| {
                    t.map(|t| gst::ClockTime::from_nseconds((t.nseconds() as i128 - shift).max(0) as u64))
                };
                {
                    let b = buf.make_mut();
                    b.set_pts(map(pts_rt));
                    b.set_dts(map(dts_rt));
                }
                if first {
                    self.base.raise(&Recording {});
                }
                Some(buf)
            }
        }
    }

    /// Video waits for a keyframe: ask the source (throttled).
    fn request_keyframe(&self, entry: &Entry) {
        {
            let mut last = self.last_keyframe_request.lock();
            if last.is_some_and(|t| t.elapsed() < KEYFRAME_RETRY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Some(sink) = entry.filter.static_pad("sink") {
            let _ = sink.push_event(kms_core::agnosticbin::codecs::force_key_unit_event());
        }
    }

    /// stopOnEndOfStream: stop once every recorded track has ended.
    fn eos_seen(self: &Arc<Self>) {
        let all = self.entries.lock().values().all(|e| e.eos.load(Ordering::Acquire));
        if all && self.timeline.lock().is_recording() {
            // Not on the streaming thread: finalization waits for it.
            let me = self.clone();
            std::thread::spawn(move || {
                me.begin_stop();
            });
        }
    }

    /// Waits for a finalization in progress, if any.
    fn wait_finishing(&self) {
        let f = self.finishing.lock().clone();
        if let Some(f) = f {
            f.wait(FINISH_TIMEOUT);
        }
    }

    /// `record()`.
    fn record(self: &Arc<Self>) -> Result<()> {
        self.wait_finishing();
        {
            let mut c = self.control.lock();
            if c.session.is_none() {
                c.count += 1;
                let name = format!("recording{}", c.count);
                let mut s = Session::new(&self.plan, self.target.clone(), &name)?;
                let entries: Vec<Arc<Entry>> = self.entries.lock().values().cloned().collect();
                let mut pads = vec![];
                for e in &entries {
                    pads.push((e.clone(), s.add_track(&e.track, self.mux_pad(e.track.kind))?));
                }
                s.start(&self.bin)?;
                for (e, pad) in pads {
                    e.fresh.store(true, Ordering::Release);
                    if let Err(err) = e.src().link(&pad) {
                        tracing::warn!(id = %self.base.id(), "recorder: cannot link track: {err:?}");
                    }
                }
                for e in &entries {
                    e.eos.store(false, Ordering::Release);
                }
                c.session = Some(s);
            }
            let state = self.set_uri_state(&mut c, UriCommand::Start);
            // START is announced before the timeline records: the first
            // kept buffer raises `Recording` on the streaming thread, which
            // could otherwise overtake it (CI saw Recording, then START).
            self.announce(state);
            // Under the control lock, after the session is linked: a kept
            // buffer always finds its track.
            self.timeline.lock().record();
        };
        *self.last_keyframe_request.lock() = None;
        let video = self.entries.lock().get(&TrackKind::Video).cloned();
        if let Some(v) = video {
            self.request_keyframe(&v);
        }
        Ok(())
    }

    /// `pause()`.
    fn pause(&self) {
        let state = {
            let mut c = self.control.lock();
            self.timeline.lock().pause();
            self.set_uri_state(&mut c, UriCommand::Pause)
        };
        if state.is_some() {
            self.announce(state);
            self.base.raise(&Paused {});
        }
    }

    /// `stop()`: nothing more is recorded; the finalization runs on its own
    /// thread. Returns it, to wait for (`None`: nothing was recording).
    fn begin_stop(self: &Arc<Self>) -> Option<Arc<Finish>> {
        let (session, state, finish) = {
            let mut c = self.control.lock();
            self.timeline.lock().stop();
            let state = self.set_uri_state(&mut c, UriCommand::Stop);
            let session = c.session.take();
            let finish = session.as_ref().map(|_| {
                let f = Arc::new(Finish::default());
                *self.finishing.lock() = Some(f.clone());
                f
            });
            (session, state, finish)
        };
        self.announce(state);
        let session = session?;
        let finish = finish.expect("set with the session");
        let me = self.clone();
        let f = finish.clone();
        let spawned = std::thread::Builder::new().name("recorder-finish".into()).spawn(move || {
            let target = format!("{:?}", session.target());
            let ok = session.finish(&me.bin, FINISH_TIMEOUT);
            if ok {
                tracing::info!(id = %me.base.id(), "recording finalized: {target}");
            } else {
                tracing::warn!(id = %me.base.id(), "recording not finalized within {FINISH_TIMEOUT:?}: {target}");
            }
            me.base.raise(&Stopped {});
            *f.done.lock() = Some(ok);
            f.cv.notify_all();
        });
        if let Err(e) = spawned {
            tracing::error!(id = %self.base.id(), "recorder: cannot spawn the finalization thread: {e}");
            *finish.done.lock() = Some(false);
        }
        Some(finish)
    }
}

/// Drops the probed item by consuming it. Not `PadProbeReturn::Drop`:
/// gstreamer-rs takes the item out of the probe info, so GStreamer would
/// then unref a NULL pointer (a CRITICAL per dropped event).
fn consume(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    drop(info.data.take());
    info.flow_res = Ok(gst::FlowSuccess::Ok);
    gst::PadProbeReturn::Handled
}

/// The recorder's pads: the profile's tracks, and a sink that discards
/// whatever else a `connect` brings (DATA, the other media type of an
/// `_AUDIO_ONLY`/`_VIDEO_ONLY` profile), as KMS leaves those unlinked.
///
/// Bound after construction: the core needs its `MediaIo` before the
/// shared state, which holds the core's bin, exists.
struct RecorderIo(Arc<std::sync::OnceLock<Weak<Shared>>>);

impl MediaIo for RecorderIo {
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad> {
        if desc != "default" {
            return None;
        }
        let shared = self.0.get()?.upgrade()?;
        if let Some(kind) = track_kind(t)
            && shared.plan.track(kind).is_some()
        {
            return shared.entry(kind);
        }
        let fake =
            gst::ElementFactory::make("fakesink").property("async", false).property("sync", false).build().ok()?;
        bin.add(&fake).ok()?;
        fake.sync_state_with_parent().ok()?;
        fake.static_pad("sink")
    }

    fn output(&self, _bin: &gst::Bin, _t: MediaType, _desc: &str) -> Option<kms_core::agnosticbin::AgnosticBin> {
        None
    }

    fn egress(&self, _input: &gst::Pad) -> Option<gst::Pad> {
        None
    }
}

impl RecorderEndpointImpl {
    /// Stops and waits for the file to be complete (teardown paths).
    fn finish_now(&self) -> Option<bool> {
        let f = self.shared.begin_stop();
        match f {
            Some(f) => f.wait(FINISH_TIMEOUT),
            None => {
                self.shared.wait_finishing();
                None
            }
        }
    }
}

impl RemoteObject for RecorderEndpointImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        // Nothing is lost: release (of the recorder, its pipeline, its
        // session by the garbage collector, every pipeline on SIGTERM)
        // finalizes the recording before the bin goes.
        self.finish_now();
        self.core.release();
    }

    /// `/metrics`: recordings in progress (`record()` called, not stopped
    /// or paused).
    fn metric_states(&self) -> Vec<kms_core::metrics::MetricState> {
        let recording = self.shared.timeline.lock().is_recording();
        vec![("recording", if recording { "RECORDING" } else { "IDLE" }.to_owned())]
    }
}

impl Drop for RecorderEndpointImpl {
    fn drop(&mut self) {
        self.finish_now();
    }
}

impl ElementObject for RecorderEndpointImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl Endpoint for RecorderEndpointImpl {}

impl UriEndpoint for RecorderEndpointImpl {
    fn get_uri(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.uri.given().to_string())
    }

    fn get_state(&self, _ctx: &Ctx) -> Result<UriEndpointState> {
        Ok(self.shared.control.lock().uri.state())
    }

    fn pause(&self, _ctx: &Ctx) -> Result<()> {
        self.shared.pause();
        Ok(())
    }

    fn stop(&self, _ctx: &Ctx) -> Result<()> {
        self.shared.begin_stop();
        Ok(())
    }
}

impl RecorderEndpoint for RecorderEndpointImpl {
    fn record(&self, _ctx: &Ctx) -> Result<()> {
        self.shared.record()
    }

    fn stop_and_wait(&self, _ctx: &Ctx) -> Result<()> {
        let ok = match self.shared.begin_stop() {
            Some(f) => f.wait(FINISH_TIMEOUT),
            None => {
                self.shared.wait_finishing();
                Some(true)
            }
        };
        match ok {
            Some(true) => Ok(()),
            _ => Err(Error::Unexpected(format!("Recording not finalized within {} s", FINISH_TIMEOUT.as_secs()))),
        }
    }
}

impl RecorderEndpointFactory for RecorderEndpointImpl {
    fn construct(ctx: &Ctx, params: RecorderEndpointConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared_pipeline =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let plan = Plan::new(params.media_profile)?;
        let gaps = gaps_fix(ctx)?;
        let uri = CheckedUri::new(ctx.config(), &params.uri)?;
        let target = target_of(&uri)?;
        let muxer = plan.muxer(target.destination());
        if let Some(m) = &muxer
            && gst::ElementFactory::find(m.factory).is_none()
        {
            return Err(Error::NotAvailable(format!("GStreamer element cannot be created: {}", m.factory)));
        }
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let slot: Arc<std::sync::OnceLock<Weak<Shared>>> = Arc::new(std::sync::OnceLock::new());
        let io = RecorderIo(slot.clone());
        let core = ElementCore::new(ctx, base.clone(), shared_pipeline, Box::new(io))?;
        let shared = Arc::new(Shared {
            base,
            bin: core.bin().clone(),
            plan,
            muxer,
            target,
            stop_on_eos: params.stop_on_end_of_stream,
            timeline: Mutex::new(Timeline::new(gaps)),
            entries: Mutex::new(HashMap::new()),
            control: Mutex::new(Control { session: None, uri: UriStateMachine::default(), count: 0 }),
            finishing: Mutex::new(None),
            last_keyframe_request: Mutex::new(None),
        });
        let _ = slot.set(Arc::downgrade(&shared));
        Ok(Arc::new(RecorderEndpointImpl { core, shared, uri }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_credentials_go_to_basic_auth() {
        assert_eq!(
            http_target("http://us%40er:p%3Ass@127.0.0.1:8080/up/x.webm"),
            Target::Http {
                url: "http://127.0.0.1:8080/up/x.webm".into(),
                user: Some("us@er".into()),
                password: Some("p:ss".into())
            }
        );
        assert_eq!(http_target("https://h/x"), Target::Http { url: "https://h/x".into(), user: None, password: None });
    }
}
