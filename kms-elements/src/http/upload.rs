//! The upload thread of an HttpPostEndpoint: feeds POST bodies into a
//! decoding chain, one stream at a time, and applies
//! `disconnectionTimeout`.
//!
//! One thread per stream session, never a streaming thread: it blocks on
//! the body (the route's bounded queue) and sleeps while `appsrc` holds
//! [`MAX_QUEUED_BYTES`], checking for release and for a chain that failed
//! (whose `appsrc` would never drain). RPC threads only flip flags under
//! the state lock and never wait for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::{Condvar, Mutex};

use kms_core::api::core::MediaType;
use kms_core::api::core::events::{MediaSessionStarted, MediaSessionTerminated};
use kms_core::object::ObjectBase;
use kms_jsonrpc::{BodyEvent, BodyReader, HttpRefusal};

use super::Outputs;
use super::mp4::{Layout, Mp4Sniffer};
use crate::api::elements::events::EndOfStream;

/// Bytes `appsrc` may hold before the upload thread waits: with the
/// route's queue, all an upload can make the server buffer.
const MAX_QUEUED_BYTES: u64 = 1024 * 1024;
/// How often a waiting upload thread looks at release and failure.
const POLL: Duration = Duration::from_millis(20);
/// Streams start this far in the future of the pipeline clock, so their
/// first buffers are not late.
const START_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(200);
/// After the end of a body in which no audio or video was found, how long
/// to wait for the demuxer before calling the body "not media".
const NO_STREAMS_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No thread: the next POST starts one.
    Idle,
    /// A body is being read.
    Streaming,
    /// Waiting `disconnectionTimeout` for the next POST.
    Lingering,
}

struct State {
    phase: Phase,
    closing: bool,
    /// A POST that arrived while lingering.
    next: Option<BodyReader>,
    /// The chain of the last stream, torn down when the next one starts.
    chain: Option<Arc<Chain>>,
    chains_built: u32,
}

pub(crate) struct Uploads {
    bin: gst::Bin,
    outputs: Arc<Outputs>,
    use_encoded: bool,
    timeout: Duration,
    state: Mutex<State>,
    cond: Condvar,
    events: OnceLock<ObjectBase>,
}

/// How feeding a body ended.
enum Fed {
    Complete,
    Aborted(String),
    Failed(String),
    Closing,
}

impl Uploads {
    pub(crate) fn new(bin: gst::Bin, outputs: Arc<Outputs>, use_encoded: bool, timeout: Duration) -> Arc<Uploads> {
        Arc::new(Uploads {
            bin,
            outputs,
            use_encoded,
            timeout,
            state: Mutex::new(State { phase: Phase::Idle, closing: false, next: None, chain: None, chains_built: 0 }),
            cond: Condvar::new(),
            events: OnceLock::new(),
        })
    }

    pub(crate) fn set_events(&self, base: ObjectBase) {
        let _ = self.events.set(base);
    }

    fn raise<E: kms_core::rt::Event>(&self, e: &E) {
        if let Some(b) = self.events.get() {
            b.raise(e);
        }
    }

    /// Release: no more uploads; the thread (if any) stops at its next step.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.closing = true;
        st.next = None;
        self.cond.notify_all();
    }

    fn closing(&self) -> bool {
        self.state.lock().closing
    }

    /// A POST arrived (async worker: never blocks).
    pub(crate) fn accept(self: &Arc<Self>, body: BodyReader) -> Result<(), HttpRefusal> {
        {
            let mut st = self.state.lock();
            if st.closing {
                return Err(HttpRefusal::Unavailable("endpoint released".into()));
            }
            match st.phase {
                Phase::Streaming => return Err(HttpRefusal::Busy),
                Phase::Lingering => {
                    st.next = Some(body);
                    st.phase = Phase::Streaming;
                    self.cond.notify_all();
                }
                Phase::Idle => {
                    let me = self.clone();
                    std::thread::Builder::new()
                        .name("kms-httppost".into())
                        .spawn(move || me.run(body))
                        .map_err(|e| HttpRefusal::Unavailable(format!("cannot start the upload: {e}")))?;
                    st.phase = Phase::Streaming;
                }
            }
        }
        self.raise(&MediaSessionStarted {});
        Ok(())
    }

    /// One stream session: bodies until no POST comes within the timeout.
    fn run(self: Arc<Self>, first: BodyReader) {
        let mut next = Some(first);
        'streams: while let Some(reader) = next.take() {
            let chain = match self.new_chain() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("HttpPostEndpoint: cannot build the decoding chain: {e}");
                    reader.finish(Err(format!("cannot build the decoding chain: {e}")));
                    break;
                }
            };
            let mut reader = reader;
            loop {
                match self.feed(&chain, &mut reader) {
                    Fed::Complete => {
                        let _ = chain.appsrc.end_of_stream();
                        let verdict = self.drain(&chain);
                        reader.finish(verdict);
                        // The next POST is a new stream.
                        match self.linger() {
                            Some(r) => {
                                next = Some(r);
                                continue 'streams;
                            }
                            None => break 'streams,
                        }
                    }
                    Fed::Failed(why) => {
                        tracing::info!("HttpPostEndpoint: upload refused: {why}");
                        reader.finish(Err(why));
                        match self.linger() {
                            Some(r) => {
                                next = Some(r);
                                continue 'streams;
                            }
                            None => break 'streams,
                        }
                    }
                    Fed::Aborted(why) => {
                        tracing::info!("HttpPostEndpoint: upload interrupted ({why}); waiting for the client");
                        drop(reader);
                        // A POST within the timeout continues this stream.
                        match self.linger() {
                            Some(r) => reader = r,
                            None => {
                                if !self.closing() {
                                    let _ = chain.appsrc.end_of_stream();
                                }
                                break 'streams;
                            }
                        }
                    }
                    Fed::Closing => return,
                }
            }
        }
        if !self.closing() {
            self.raise(&MediaSessionTerminated {});
        }
    }

    /// Waits `disconnectionTimeout` for another POST. `None`: none came (or
    /// release); the phase is then Idle, so a later POST starts a thread.
    fn linger(&self) -> Option<BodyReader> {
        let deadline = Instant::now() + self.timeout;
        let mut st = self.state.lock();
        st.phase = Phase::Lingering;
        loop {
            if st.closing {
                st.phase = Phase::Idle;
                return None;
            }
            if let Some(r) = st.next.take() {
                st.phase = Phase::Streaming;
                return Some(r);
            }
            if self.cond.wait_until(&mut st, deadline).timed_out() && st.next.is_none() {
                st.phase = Phase::Idle;
                return None;
            }
        }
    }

    /// Copies the body into `appsrc`, at most [`MAX_QUEUED_BYTES`] ahead.
    fn feed(&self, chain: &Chain, reader: &mut BodyReader) -> Fed {
        loop {
            match reader.blocking_next() {
                BodyEvent::Data(bytes) => {
                    if chain.sniffer.lock().feed(&bytes) == Layout::IndexAtEnd {
                        let why = "MP4 with its index (moov) after the media data (mdat) cannot be streamed; \
                                   upload a faststart or fragmented MP4 (e.g. ffmpeg -movflags +faststart)";
                        // Through the bus, so it becomes the endpoint's Error event.
                        gst::element_error!(chain.appsrc, gst::StreamError::Format, ("{}", why));
                        return Fed::Failed(why.into());
                    }
                    loop {
                        if self.closing() {
                            return Fed::Closing;
                        }
                        if let Some(why) = chain.failure() {
                            return Fed::Failed(why);
                        }
                        if chain.appsrc.current_level_bytes() < MAX_QUEUED_BYTES {
                            break;
                        }
                        let mut st = self.state.lock();
                        self.cond.wait_for(&mut st, POLL);
                    }
                    if chain.appsrc.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                        return if self.closing() {
                            Fed::Closing
                        } else {
                            Fed::Failed("the stream was stopped".into())
                        };
                    }
                }
                BodyEvent::End => return Fed::Complete,
                BodyEvent::Aborted(why) => {
                    return if self.closing() { Fed::Closing } else { Fed::Aborted(why) };
                }
            }
        }
    }

    /// After the body's end: waits until EOS left every stream (then
    /// `EndOfStream` was raised), the chain failed, or no stream was found.
    fn drain(&self, chain: &Chain) -> Result<(), String> {
        let ended_at = Instant::now();
        loop {
            if self.closing() {
                return Err("endpoint released".into());
            }
            if let Some(why) = chain.failure() {
                return Err(why);
            }
            if chain.ended.load(Ordering::Acquire) {
                return Ok(());
            }
            if chain.streams.load(Ordering::Acquire) == 0 && ended_at.elapsed() > NO_STREAMS_GRACE {
                return Err("no audio or video found in the body".into());
            }
            let mut st = self.state.lock();
            self.cond.wait_for(&mut st, POLL);
        }
    }

    /// Tears down the previous stream's chain and builds a new one:
    /// `appsrc ! decodebin|parsebin`, streams linked as they appear.
    fn new_chain(self: &Arc<Self>) -> Result<Arc<Chain>, gst::glib::BoolError> {
        let (old, n) = {
            let mut st = self.state.lock();
            st.chains_built += 1;
            (st.chain.take(), st.chains_built)
        };
        if let Some(old) = old {
            old.remove(&self.bin);
        }
        let appsrc = gst_app::AppSrc::builder()
            .name(format!("upload{n}"))
            .format(gst::Format::Bytes)
            .stream_type(gst_app::AppStreamType::Stream)
            .is_live(false)
            .block(false)
            .max_bytes(MAX_QUEUED_BYTES * 2)
            .build();
        let demux = gst::ElementFactory::make(if self.use_encoded { "parsebin" } else { "decodebin" })
            .name(format!("demux{n}"))
            .build()?;
        // decodebin and parsebin change state asynchronously (ASYNC_START
        // until they expose their pads). Propagated, that would make the
        // element's bin, and with it the pipeline, lose PLAYING, forever if
        // the body is not media. The chain's own bin absorbs it, and its
        // elements are set to PLAYING explicitly.
        let bin = gst::Bin::builder().name(format!("upload_chain{n}")).async_handling(true).build();
        let chain = Arc::new(Chain {
            bin,
            appsrc,
            demux,
            offset: OnceLock::new(),
            streams: AtomicUsize::new(0),
            eos: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
            sniffer: Mutex::new(Mp4Sniffer::default()),
        });
        chain.bin.add_many([chain.appsrc.upcast_ref::<gst::Element>(), &chain.demux])?;
        chain.appsrc.link(&chain.demux)?;
        let weak_chain = Arc::downgrade(&chain);
        let weak_self: Weak<Uploads> = Arc::downgrade(self);
        chain.demux.connect_pad_added(move |_, pad| {
            if let (Some(chain), Some(me)) = (weak_chain.upgrade(), weak_self.upgrade()) {
                me.on_stream(&chain, pad);
            }
        });
        self.bin.add(&chain.bin)?;
        chain.bin.set_state(gst::State::Playing).map_err(|e| gst::glib::bool_error!("{e}"))?;
        self.state.lock().chain = Some(chain.clone());
        Ok(chain)
    }

    /// A demuxed stream appeared (streaming thread): paced by a clocksync,
    /// it feeds the output of its media type; others go to a fakesink.
    fn on_stream(self: &Arc<Self>, chain: &Arc<Chain>, pad: &gst::Pad) {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        let kind = if name.starts_with("video/") {
            Some(MediaType::Video)
        } else if name.starts_with("audio/") {
            Some(MediaType::Audio)
        } else {
            None
        };
        let target = kind.and_then(|t| self.outputs.get(&self.bin, t)).and_then(|a| a.static_pad("sink"));
        let Some(target) = target.filter(|p| !p.is_linked()) else {
            tracing::info!(caps = %name, "HttpPostEndpoint: stream ignored");
            chain.discard(pad);
            return;
        };
        let Ok(sync) = gst::ElementFactory::make("clocksync").build() else { return };
        if chain.bin.add(&sync).is_err() {
            return;
        }
        // One offset for every stream of the chain keeps them in sync.
        let offset = *chain.offset.get_or_init(|| {
            let now = self.bin.current_running_time().unwrap_or(gst::ClockTime::ZERO);
            (now + START_MARGIN).nseconds() as i64
        });
        let (Some(sink), Some(src)) = (sync.static_pad("sink"), sync.static_pad("src")) else { return };
        sink.set_offset(offset);
        let _ = sync.set_state(gst::State::Playing);
        let weak_chain = Arc::downgrade(chain);
        let weak_self = Arc::downgrade(self);
        src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && ev.type_() == gst::EventType::Eos
                && let (Some(chain), Some(me)) = (weak_chain.upgrade(), weak_self.upgrade())
            {
                let done = chain.eos.fetch_add(1, Ordering::AcqRel) + 1;
                if done >= chain.streams.load(Ordering::Acquire) && !chain.ended.swap(true, Ordering::AcqRel) {
                    me.raise(&EndOfStream {});
                    me.cond.notify_all();
                }
                // EOS stays inside the endpoint: downstream elements (the
                // WebRtcEndpoint's send path) stay finished after an EOS,
                // and the next upload on the URL must reach them.
                return gst::PadProbeReturn::Drop;
            }
            gst::PadProbeReturn::Ok
        });
        // Named after the demuxer's pad: a ghost pad takes its target's
        // name ("src") by default, so the second stream's ghost (audio after
        // video) would clash with the first and never be added.
        let Ok(ghost) = gst::GhostPad::builder_with_target(&src).map(|b| b.name(format!("out_{}", pad.name())).build())
        else {
            return;
        };
        let _ = ghost.set_active(true);
        if chain.bin.add_pad(&ghost).is_err() || ghost.link(&target).is_err() || pad.link(&sink).is_err() {
            tracing::warn!(caps = %name, "HttpPostEndpoint: cannot link the stream");
            return;
        }
        chain.streams.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(caps = %name, "HttpPostEndpoint: stream linked");
    }
}

/// The elements of one stream (one body, or several resumed ones), in a
/// bin of their own.
struct Chain {
    bin: gst::Bin,
    appsrc: gst_app::AppSrc,
    demux: gst::Element,
    /// Pad offset putting the stream's timestamps on the pipeline clock.
    offset: OnceLock<i64>,
    streams: AtomicUsize,
    eos: AtomicUsize,
    ended: AtomicBool,
    /// Refuses MP4s that need seeking (see `mp4`).
    sniffer: Mutex<Mp4Sniffer>,
}

impl Chain {
    /// Why the chain cannot take more data, if it cannot: a fatal flow
    /// return stops `appsrc`'s task (the element error behind it reached
    /// the bus and became an `Error` event).
    fn failure(&self) -> Option<String> {
        let pad = self.appsrc.static_pad("src")?;
        match pad.last_flow_result() {
            Ok(_) | Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => None,
            Err(gst::FlowError::NotLinked) if self.streams.load(Ordering::Acquire) > 0 => None,
            Err(e) => Some(format!("the body is not media the server can read ({e:?})")),
        }
    }

    fn discard(&self, pad: &gst::Pad) {
        let Ok(fake) = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
        else {
            return;
        };
        if self.bin.add(&fake).is_ok() {
            let _ = fake.set_state(gst::State::Playing);
            if let Some(p) = fake.static_pad("sink") {
                let _ = pad.link(&p);
            }
        }
    }

    /// Stops and removes the chain (not from a streaming thread).
    fn remove(&self, parent: &gst::Bin) {
        let _ = self.bin.set_state(gst::State::Null);
        let _ = parent.remove(&self.bin);
    }
}
