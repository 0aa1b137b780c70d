//! The media machinery of the mixing hubs (Composite, AlphaBlending): one
//! `compositor` for video, one `audiomixer` per port for audio (N−1: each
//! port hears every other port, never itself), all inside the hub's bin.
//!
//! ```text
//! port A video ─ compositor.sink_a ┐
//! port B video ─ compositor.sink_b ┼ compositor ─ caps ─ tee ─┬ queue ─ port A output
//! black, live ── compositor.sink_0 ┘                          └ queue ─ port B output
//!
//! port A audio ─ convert ─ resample ─ caps ─ tee_a ─┐ (to every mixer but A's)
//! port B audio ─ convert ─ resample ─ caps ─ tee_b ─┼──────────────┐
//! silence, live ──────────────────────────── tee_s ─┼───────┐      │
//!                                                   ▼       ▼      ▼
//!                                  mixer_B (tee_a, tee_s)   mixer_A (tee_b, tee_s)
//! ```
//!
//! The ports' inputs ask for raw media: a compositor or audioconvert pad
//! accepts only `*/x-raw`, so the source's agnosticbin decodes for them;
//! each port's own agnosticbin re-encodes what it sends on.
//!
//! The live black and silent sources keep the aggregators producing with no
//! port at all, and make them run on the clock (`force-live`): a port
//! whose source stalls is left out (`ignore-inactive-pads`) rather than
//! stalling the mix.
//!
//! Threading: hub methods run on RPC threads and only add, link, unlink and
//! set properties, none of which waits for a streaming thread. Removing a
//! port's branches (which does wait: pads deactivate, elements stop) runs on
//! GStreamer's async-call pool. The state lock is never held across either;
//! the one streaming-thread callback (AlphaBlending's master caps) only
//! records the size and defers the relayout to the same pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use gst::prelude::*;
use kms_core::api::core::MediaType;
use kms_core::hub::{HubCore, HubLogic};
use kms_core::object::ObjectId;
use kms_core::sync::Mutex;

use super::HubError;
use super::layout::{self, Placement, Rect};

/// How much later than its timestamp a port's media may reach the mixers
/// and still be mixed: WebRTC input leaves its jitterbuffer (200 ms) and a
/// decoder before it gets here. Aggregators take the larger of this and what
/// upstream reports.
const MIN_UPSTREAM_LATENCY_NS: u64 = 350_000_000;
/// Queues between the tees and each consumer: live media, so old data is
/// dropped rather than stalling the mix for everybody.
const BRANCH_QUEUE_NS: u64 = 500_000_000;
/// A port's video counts as stopped after this long without a frame (its
/// source was disconnected or stalled): its grid tile goes until frames
/// come again.
const STALE_NS: u64 = 2_000_000_000;
/// How often the compositor's output thread looks for stopped inputs.
const STALE_CHECK_NS: u64 = 250_000_000;
/// Format every port's audio is mixed in.
const AUDIO_CAPS: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2";

/// Output geometry and rate of the video mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSettings {
    pub width: i32,
    pub height: i32,
    pub framerate: i32,
}

/// How ports' pictures are placed.
pub enum Layout {
    /// Composite: a grid of the ports with video, in the order they joined.
    Grid,
    /// AlphaBlending: the master fills the frame (and gives it its size);
    /// others go where `setPortProperties` put them, hidden until then.
    Blend(Blend),
}

#[derive(Default)]
pub struct Blend {
    master: Option<(ObjectId, i32)>,
    placements: HashMap<ObjectId, Placement>,
}

/// A tee branch: tee pad → queue → `sink` (a mixer pad or a ghost pad of
/// the hub's bin linked to a port).
struct Branch {
    tee: gst::Element,
    tee_pad: gst::Pad,
    queue: gst::Element,
    /// A request pad of an audiomixer, released with the branch.
    mixer_pad: Option<(gst::Element, gst::Pad)>,
    ghost: Option<gst::GhostPad>,
}

struct VideoIn {
    ghost: gst::GhostPad,
    pad: gst::Pad,
    activity: Arc<Activity>,
}

/// Whether a port's video is flowing: written by streaming threads
/// (atomics only), read by the relayout.
#[derive(Default)]
struct Activity {
    last_ns: AtomicU64,
    active: AtomicBool,
}

/// Monotonic nanoseconds since the first call.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

struct AudioIn {
    ghost: gst::GhostPad,
    elements: Vec<gst::Element>,
    tee: gst::Element,
}

struct AudioOut {
    mixer: gst::Element,
    elements: Vec<gst::Element>,
    ghost: gst::GhostPad,
    silence: Branch,
}

struct PortMedia {
    /// Short name of the port inside the hub's bin.
    tag: String,
    video_in: Option<VideoIn>,
    video_out: Option<Branch>,
    audio_in: Option<AudioIn>,
    audio_out: Option<AudioOut>,
}

struct State {
    next_tag: u32,
    /// Ports in the order they first took part (grid order).
    order: Vec<ObjectId>,
    ports: HashMap<ObjectId, PortMedia>,
    /// Audio of port `.0` into the mixer of port `.1`.
    routes: HashMap<(ObjectId, ObjectId), Branch>,
    layout: Layout,
    /// Output size now (AlphaBlending follows its master).
    size: (i32, i32),
    /// Picture sizes of the ports' video, from their caps.
    sizes: HashMap<ObjectId, (i32, i32)>,
}

/// Everything a port leaves behind, removed off the RPC thread.
#[derive(Default)]
struct Garbage {
    branches: Vec<Branch>,
    compositor_pads: Vec<gst::Pad>,
    ghosts: Vec<gst::GhostPad>,
    elements: Vec<gst::Element>,
}

impl Garbage {
    fn is_empty(&self) -> bool {
        self.branches.is_empty()
            && self.compositor_pads.is_empty()
            && self.ghosts.is_empty()
            && self.elements.is_empty()
    }

    /// Waits for streaming threads: call on the async-call pool only.
    fn dispose(self, bin: &gst::Bin, compositor: &gst::Element) {
        for b in self.branches {
            b.tee.release_request_pad(&b.tee_pad);
            let _ = b.queue.set_state(gst::State::Null);
            let _ = bin.remove(&b.queue);
            if let Some((mixer, pad)) = b.mixer_pad {
                mixer.release_request_pad(&pad);
            }
            if let Some(g) = b.ghost {
                let _ = g.set_active(false);
                let _ = bin.remove_pad(&g);
            }
        }
        for p in self.compositor_pads {
            compositor.release_request_pad(&p);
        }
        for g in self.ghosts {
            let _ = g.set_active(false);
            let _ = bin.remove_pad(&g);
        }
        for e in self.elements {
            let _ = e.set_state(gst::State::Null);
            let _ = bin.remove(&e);
        }
    }
}

/// The mixing machinery of one hub; shared by the hub object (for
/// `setMaster`/`setPortProperties`) and its [`HubLogic`].
pub struct Mix {
    bin: gst::Bin,
    video: VideoSettings,
    compositor: gst::Element,
    out_caps: gst::Element,
    video_tee: gst::Element,
    silence_tee: gst::Element,
    encoder_bitrate: Option<i32>,
    state: Mutex<State>,
    /// Video inputs the output thread checks for staleness; its own lock,
    /// never held while calling GStreamer.
    watched: Mutex<Vec<Weak<Activity>>>,
    last_check: AtomicU64,
    this: Weak<Mix>,
}

fn make(factory: &str, name: &str) -> Result<gst::Element, HubError> {
    gst::ElementFactory::make(factory).name(name).build().map_err(|_| HubError::MissingElement(factory.to_string()))
}

fn video_caps(v: &VideoSettings, size: (i32, i32)) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", size.0)
        .field("height", size.1)
        .field("framerate", gst::Fraction::new(v.framerate, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

fn audio_caps() -> gst::Caps {
    AUDIO_CAPS.parse().expect("valid caps")
}

fn live_aggregator(factory: &str, name: &str) -> Result<gst::Element, HubError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .property("force-live", true)
        .property_from_str("start-time-selection", "first")
        .property("min-upstream-latency", MIN_UPSTREAM_LATENCY_NS)
        .build()
        .map_err(|_| HubError::MissingElement(factory.to_string()))
}

fn leaky_queue(name: &str) -> Result<gst::Element, HubError> {
    let q = make("queue", name)?;
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", BRANCH_QUEUE_NS);
    q.set_property_from_str("leaky", "downstream");
    Ok(q)
}

fn link_err(what: &str) -> impl Fn(gst::PadLinkError) -> HubError + '_ {
    move |e| HubError::Link(format!("{what}: {e:?}"))
}

impl Mix {
    /// Builds the mix inside a hub's `bin` (before it joins the pipeline:
    /// see `HubCore::build`): the compositor with its live black background,
    /// the output tee, the live silence every audio mixer gets.
    pub fn new(
        bin: &gst::Bin,
        video: VideoSettings,
        layout: Layout,
        encoder_bitrate: Option<i32>,
    ) -> Result<Arc<Mix>, HubError> {
        let bin = bin.clone();
        let compositor = live_aggregator("compositor", "compositor")?;
        compositor.set_property_from_str("background", "black");
        compositor.set_property("ignore-inactive-pads", true);
        let out_caps = make("capsfilter", "video_out_caps")?;
        out_caps.set_property("caps", video_caps(&video, (video.width, video.height)));
        let video_tee = make("tee", "video_tee")?;
        video_tee.set_property("allow-not-linked", true);
        let black = make("videotestsrc", "black")?;
        black.set_property("is-live", true);
        black.set_property_from_str("pattern", "black");
        let black_caps = make("capsfilter", "black_caps")?;
        black_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", 16)
                .field("height", 16)
                .field("framerate", gst::Fraction::new(video.framerate, 1))
                .build(),
        );
        let silence = make("audiotestsrc", "silence")?;
        silence.set_property("is-live", true);
        silence.set_property_from_str("wave", "silence");
        let silence_caps = make("capsfilter", "silence_caps")?;
        silence_caps.set_property("caps", audio_caps());
        let silence_tee = make("tee", "silence_tee")?;
        silence_tee.set_property("allow-not-linked", true);
        let all = [&compositor, &out_caps, &video_tee, &black, &black_caps, &silence, &silence_caps, &silence_tee];
        bin.add_many(all).map_err(|e| HubError::Link(e.to_string()))?;
        gst::Element::link_many([&compositor, &out_caps, &video_tee]).map_err(|e| HubError::Link(e.to_string()))?;
        gst::Element::link_many([&silence, &silence_caps, &silence_tee]).map_err(|e| HubError::Link(e.to_string()))?;
        black.link(&black_caps).map_err(|e| HubError::Link(e.to_string()))?;
        // Only the timing of the black source matters: drawn fully
        // transparent over the black background.
        let bg = compositor.request_pad_simple("sink_%u").ok_or_else(|| HubError::Link("compositor pad".into()))?;
        bg.set_property("zorder", 0u32);
        bg.set_property("alpha", 0.0f64);
        black_caps.static_pad("src").expect("capsfilter src").link(&bg).map_err(link_err("background"))?;
        for e in all {
            e.sync_state_with_parent().map_err(|e| HubError::Link(e.to_string()))?;
        }
        let size = (video.width, video.height);
        let mix = Arc::new_cyclic(|this| Mix {
            bin,
            video,
            compositor,
            out_caps,
            video_tee,
            silence_tee,
            encoder_bitrate,
            state: Mutex::new(State {
                next_tag: 0,
                order: Vec::new(),
                ports: HashMap::new(),
                routes: HashMap::new(),
                layout,
                size,
                sizes: HashMap::new(),
            }),
            watched: Mutex::new(Vec::new()),
            last_check: AtomicU64::new(0),
            this: this.clone(),
        });
        let weak = Arc::downgrade(&mix);
        if let Some(src) = mix.compositor.static_pad("src") {
            src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if let Some(mix) = weak.upgrade() {
                    mix.check_stale();
                }
                gst::PadProbeReturn::Ok
            });
        }
        Ok(mix)
    }

    /// On the compositor's output thread: inputs without a frame for
    /// [`STALE_NS`] leave the grid (atomics and the `watched` lock only).
    fn check_stale(&self) {
        let now = now_ns();
        if now.saturating_sub(self.last_check.load(Ordering::Relaxed)) < STALE_CHECK_NS {
            return;
        }
        self.last_check.store(now, Ordering::Relaxed);
        let mut changed = false;
        self.watched.lock().retain(|w| {
            let Some(a) = w.upgrade() else { return false };
            if a.active.load(Ordering::Acquire) && now.saturating_sub(a.last_ns.load(Ordering::Relaxed)) > STALE_NS {
                a.active.store(false, Ordering::Release);
                changed = true;
            }
            true
        });
        if changed {
            self.relayout_later();
        }
    }

    /// Re-lays out on the async-call pool (from streaming threads).
    fn relayout_later(&self) {
        let Some(mix) = self.this.upgrade() else { return };
        self.compositor.call_async(move |_| {
            let mut st = mix.state.lock();
            mix.relayout(&mut st);
        });
    }

    /// The [`HubLogic`] to give the hub's core.
    pub fn logic(self: &Arc<Mix>) -> Box<dyn HubLogic> {
        Box::new(MixLogic(self.clone()))
    }

    fn port<'a>(st: &'a mut State, port: &ObjectId) -> &'a mut PortMedia {
        if !st.ports.contains_key(port) {
            st.next_tag += 1;
            let tag = format!("p{}", st.next_tag);
            st.order.push(port.clone());
            st.ports.insert(
                port.clone(),
                PortMedia { tag, video_in: None, video_out: None, audio_in: None, audio_out: None },
            );
        }
        st.ports.get_mut(port).expect("inserted above")
    }

    /// A ghost pad of the hub's bin for `target`, active and added.
    fn ghost(&self, target: &gst::Pad, name: &str) -> Result<gst::GhostPad, HubError> {
        let g =
            gst::GhostPad::builder_with_target(target).map_err(|e| HubError::Link(e.to_string()))?.name(name).build();
        let _ = g.set_active(true);
        self.bin.add_pad(&g).map_err(|e| HubError::Link(e.to_string()))?;
        Ok(g)
    }

    /// tee → queue → `to` (a mixer's request pad or a new ghost pad).
    fn branch(&self, tee: &gst::Element, name: &str, to: BranchEnd<'_>) -> Result<Branch, HubError> {
        let queue = leaky_queue(name)?;
        self.bin.add(&queue).map_err(|e| HubError::Link(e.to_string()))?;
        let _ = queue.sync_state_with_parent();
        let qsrc = queue.static_pad("src").expect("queue src");
        let (mixer_pad, ghost) = match to {
            BranchEnd::Mixer(m) => {
                let p = m.request_pad_simple("sink_%u").ok_or_else(|| HubError::Link("mixer pad".into()))?;
                qsrc.link(&p).map_err(link_err(name))?;
                (Some((m.clone(), p)), None)
            }
            BranchEnd::Port(peer) => {
                let g = self.ghost(&qsrc, name)?;
                g.link(peer).map_err(link_err(name))?;
                (None, Some(g))
            }
        };
        let tee_pad = tee.request_pad_simple("src_%u").ok_or_else(|| HubError::Link("tee pad".into()))?;
        tee_pad.link(&queue.static_pad("sink").expect("queue sink")).map_err(link_err(name))?;
        Ok(Branch { tee: tee.clone(), tee_pad, queue, mixer_pad, ghost })
    }

    fn video_input(&self, port: &ObjectId, src: &gst::Pad) -> Result<(), HubError> {
        let mut st = self.state.lock();
        let tag = Mix::port(&mut st, port).tag.clone();
        let pad =
            self.compositor.request_pad_simple("sink_%u").ok_or_else(|| HubError::Link("compositor pad".into()))?;
        // Hidden until the layout places it.
        pad.set_property("alpha", 0.0f64);
        let ghost = self.ghost(&pad, &format!("{tag}_video_in"))?;
        if let Err(e) = src.link(&ghost) {
            let _ = self.bin.remove_pad(&ghost);
            self.compositor.release_request_pad(&pad);
            return Err(HubError::Link(format!("video input: {e:?}")));
        }
        self.watch_size(port, &pad);
        let activity = self.watch_activity(&pad);
        Mix::port(&mut st, port).video_in = Some(VideoIn { ghost, pad, activity });
        self.relayout(&mut st);
        Ok(())
    }

    /// Records the picture size of `port` from its caps, which also says
    /// its video has started (streaming thread: only a short lock, the
    /// relayout goes to the async-call pool).
    fn watch_size(&self, port: &ObjectId, pad: &gst::Pad) {
        let this = self.this.clone();
        let port = port.clone();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && let gst::EventView::Caps(c) = ev.view()
                && let Some(s) = c.caps().structure(0)
                && let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height"))
                && let Some(mix) = this.upgrade()
            {
                if mix.state.lock().sizes.insert(port.clone(), (w, h)) == Some((w, h)) {
                    return gst::PadProbeReturn::Ok;
                }
                mix.relayout_later();
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Marks the input active on every frame; its first frame after a stop
    /// (or ever) re-lays out.
    fn watch_activity(&self, pad: &gst::Pad) -> Arc<Activity> {
        let activity = Arc::new(Activity::default());
        self.watched.lock().push(Arc::downgrade(&activity));
        let a = activity.clone();
        let this = self.this.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            a.last_ns.store(now_ns(), Ordering::Relaxed);
            if !a.active.swap(true, Ordering::AcqRel)
                && let Some(mix) = this.upgrade()
            {
                mix.relayout_later();
            }
            gst::PadProbeReturn::Ok
        });
        activity
    }

    fn video_output(&self, port: &ObjectId, sink: &gst::Pad) -> Result<(), HubError> {
        let mut st = self.state.lock();
        let tag = Mix::port(&mut st, port).tag.clone();
        let b = self.branch(&self.video_tee, &format!("{tag}_video_out"), BranchEnd::Port(sink))?;
        Mix::port(&mut st, port).video_out = Some(b);
        Ok(())
    }

    fn audio_input(&self, port: &ObjectId, src: &gst::Pad) -> Result<(), HubError> {
        let mut st = self.state.lock();
        let tag = Mix::port(&mut st, port).tag.clone();
        let conv = make("audioconvert", &format!("{tag}_aconv"))?;
        let res = make("audioresample", &format!("{tag}_ares"))?;
        let caps = make("capsfilter", &format!("{tag}_acaps"))?;
        caps.set_property("caps", audio_caps());
        let tee = make("tee", &format!("{tag}_atee"))?;
        tee.set_property("allow-not-linked", true);
        let elements = vec![conv.clone(), res.clone(), caps.clone(), tee.clone()];
        self.bin.add_many(&elements).map_err(|e| HubError::Link(e.to_string()))?;
        gst::Element::link_many(&elements).map_err(|e| HubError::Link(e.to_string()))?;
        for e in &elements {
            let _ = e.sync_state_with_parent();
        }
        let ghost = self.ghost(&conv.static_pad("sink").expect("audioconvert sink"), &format!("{tag}_audio_in"))?;
        src.link(&ghost).map_err(link_err("audio input"))?;
        Mix::port(&mut st, port).audio_in = Some(AudioIn { ghost, elements, tee: tee.clone() });
        // Into every other port's mixer.
        let mixers: Vec<(ObjectId, gst::Element, String)> = st
            .ports
            .iter()
            .filter(|(id, _)| *id != port)
            .filter_map(|(id, p)| p.audio_out.as_ref().map(|o| (id.clone(), o.mixer.clone(), p.tag.clone())))
            .collect();
        for (to, mixer, to_tag) in mixers {
            let b = self.branch(&tee, &format!("{tag}_to_{to_tag}"), BranchEnd::Mixer(&mixer))?;
            st.routes.insert((port.clone(), to), b);
        }
        Ok(())
    }

    fn audio_output(&self, port: &ObjectId, sink: &gst::Pad) -> Result<(), HubError> {
        let mut st = self.state.lock();
        let tag = Mix::port(&mut st, port).tag.clone();
        let mixer = live_aggregator("audiomixer", &format!("{tag}_amix"))?;
        let caps = make("capsfilter", &format!("{tag}_amix_caps"))?;
        caps.set_property("caps", audio_caps());
        self.bin.add_many([&mixer, &caps]).map_err(|e| HubError::Link(e.to_string()))?;
        mixer.link(&caps).map_err(|e| HubError::Link(e.to_string()))?;
        let _ = mixer.sync_state_with_parent();
        let _ = caps.sync_state_with_parent();
        let ghost = self.ghost(&caps.static_pad("src").expect("capsfilter src"), &format!("{tag}_audio_out"))?;
        ghost.link(sink).map_err(link_err("audio output"))?;
        let silence = self.branch(&self.silence_tee, &format!("{tag}_silence"), BranchEnd::Mixer(&mixer))?;
        // Every other port's audio, never this port's own.
        let sources: Vec<(ObjectId, gst::Element, String)> = st
            .ports
            .iter()
            .filter(|(id, _)| *id != port)
            .filter_map(|(id, p)| p.audio_in.as_ref().map(|i| (id.clone(), i.tee.clone(), p.tag.clone())))
            .collect();
        for (from, tee, from_tag) in sources {
            let b = self.branch(&tee, &format!("{from_tag}_to_{tag}"), BranchEnd::Mixer(&mixer))?;
            st.routes.insert((from, port.clone()), b);
        }
        Mix::port(&mut st, port).audio_out =
            Some(AudioOut { mixer: mixer.clone(), elements: vec![mixer, caps], ghost, silence });
        Ok(())
    }

    /// Detaches everything of `port` now (unlinks only) and removes it on
    /// the async-call pool.
    fn remove_port(&self, port: &ObjectId) {
        let mut g = Garbage::default();
        {
            let mut st = self.state.lock();
            st.order.retain(|p| p != port);
            st.sizes.remove(port);
            if let Layout::Blend(b) = &mut st.layout {
                b.placements.remove(port);
                if b.master.as_ref().is_some_and(|(m, _)| m == port) {
                    b.master = None;
                }
            }
            let keys: Vec<_> = st.routes.keys().filter(|(a, b)| a == port || b == port).cloned().collect();
            for k in keys {
                if let Some(b) = st.routes.remove(&k) {
                    let _ = b.tee_pad.unlink(&b.queue.static_pad("sink").expect("queue sink"));
                    g.branches.push(b);
                }
            }
            if let Some(p) = st.ports.remove(port) {
                if let Some(v) = p.video_in {
                    // Gone from the picture at once, released later.
                    v.pad.set_property("alpha", 0.0f64);
                    unlink_peer(v.ghost.upcast_ref());
                    g.compositor_pads.push(v.pad);
                    g.ghosts.push(v.ghost);
                }
                if let Some(b) = p.video_out {
                    if let Some(gh) = &b.ghost {
                        unlink_peer(gh.upcast_ref());
                    }
                    g.branches.push(b);
                }
                if let Some(a) = p.audio_in {
                    unlink_peer(a.ghost.upcast_ref());
                    g.ghosts.push(a.ghost);
                    g.elements.extend(a.elements);
                }
                if let Some(a) = p.audio_out {
                    unlink_peer(a.ghost.upcast_ref());
                    g.branches.push(a.silence);
                    g.ghosts.push(a.ghost);
                    g.elements.extend(a.elements);
                }
            }
            self.relayout(&mut st);
        }
        if !g.is_empty() {
            let bin = self.bin.clone();
            let compositor = self.compositor.clone();
            self.compositor.call_async(move |_| g.dispose(&bin, &compositor));
        }
    }

    /// AlphaBlending `setMaster`.
    pub fn set_master(&self, port: &ObjectId, z_order: i32) {
        let mut st = self.state.lock();
        Mix::port(&mut st, port);
        if let Layout::Blend(b) = &mut st.layout {
            b.master = Some((port.clone(), z_order));
        }
        self.relayout(&mut st);
    }

    /// AlphaBlending `setPortProperties`.
    pub fn set_placement(&self, port: &ObjectId, p: Placement) {
        let mut st = self.state.lock();
        Mix::port(&mut st, port);
        if let Layout::Blend(b) = &mut st.layout {
            b.placements.insert(port.clone(), p);
        }
        self.relayout(&mut st);
    }

    /// Puts every port's picture where the layout says (pad properties
    /// only; the compositor applies them on its next frame).
    fn relayout(&self, st: &mut State) {
        let inputs: Vec<(ObjectId, &VideoIn)> =
            st.order.iter().filter_map(|id| st.ports.get(id)?.video_in.as_ref().map(|v| (id.clone(), v))).collect();
        match &st.layout {
            Layout::Grid => {
                // Only ports whose video flows get a tile: a port fed by a
                // source without video, or whose source was disconnected,
                // leaves no empty or frozen tile.
                let (shown, hidden): (Vec<_>, Vec<_>) =
                    inputs.iter().partition(|(_, v)| v.activity.active.load(Ordering::Acquire));
                let cells = layout::grid(shown.len(), self.video.width, self.video.height);
                for ((_, v), cell) in shown.iter().zip(cells) {
                    place(&v.pad, cell, 1, 1.0);
                    v.pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
                }
                for (_, v) in hidden {
                    v.pad.set_property("alpha", 0.0f64);
                }
            }
            Layout::Blend(b) => {
                let master = b.master.as_ref().filter(|(m, _)| st.ports.get(m).is_some_and(|p| p.video_in.is_some()));
                let size = master
                    .and_then(|(m, _)| st.sizes.get(m).copied())
                    .map(|(w, h)| (w & !1, h & !1))
                    .unwrap_or((self.video.width, self.video.height));
                if size != st.size {
                    st.size = size;
                    self.out_caps.set_property("caps", video_caps(&self.video, size));
                }
                let (w, h) = size;
                for (id, v) in inputs.iter().filter(|(id, _)| st.sizes.contains_key(id)) {
                    let pad = &v.pad;
                    match (master, b.placements.get(id)) {
                        (Some((m, z)), _) if m == id => {
                            place(pad, Rect { x: 0, y: 0, width: w, height: h }, z_order(*z), 1.0)
                        }
                        (_, Some(p)) => place(pad, p.rect(w, h), z_order(p.z_order), 1.0),
                        // Not placed yet: hidden.
                        _ => pad.set_property("alpha", 0.0f64),
                    }
                }
            }
        }
    }
}

/// Above the background (z 0), in the client's order.
fn z_order(z: i32) -> u32 {
    (z.max(0) as u32).saturating_add(1)
}

fn place(pad: &gst::Pad, r: Rect, z: u32, alpha: f64) {
    pad.set_property("xpos", r.x);
    pad.set_property("ypos", r.y);
    pad.set_property("width", r.width);
    pad.set_property("height", r.height);
    pad.set_property("zorder", z);
    pad.set_property("alpha", alpha);
}

fn unlink_peer(pad: &gst::Pad) {
    if let Some(peer) = pad.peer() {
        if pad.direction() == gst::PadDirection::Src {
            let _ = pad.unlink(&peer);
        } else {
            let _ = peer.unlink(pad);
        }
    }
}

enum BranchEnd<'a> {
    Mixer(&'a gst::Element),
    Port(&'a gst::Pad),
}

/// The hub core's view of a [`Mix`].
struct MixLogic(Arc<Mix>);

impl HubLogic for MixLogic {
    fn port_input(&self, _hub: &HubCore, port: &ObjectId, t: MediaType, src: &gst::Pad) {
        let r = match t {
            MediaType::Video => self.0.video_input(port, src),
            MediaType::Audio => self.0.audio_input(port, src),
            MediaType::Data => return,
        };
        if let Err(e) = r {
            tracing::warn!(%port, "hub input {t}: {e}");
        }
    }

    fn port_output(&self, _hub: &HubCore, port: &ObjectId, t: MediaType, sink: &gst::Pad) {
        let r = match t {
            MediaType::Video => self.0.video_output(port, sink),
            MediaType::Audio => self.0.audio_output(port, sink),
            MediaType::Data => return,
        };
        if let Err(e) = r {
            tracing::warn!(%port, "hub output {t}: {e}");
        }
    }

    fn port_removed(&self, _hub: &HubCore, port: &ObjectId) {
        self.0.remove_port(port);
    }

    fn port_encoder_bitrate(&self) -> Option<i32> {
        self.0.encoder_bitrate
    }
}
