//! The GStreamer side of the routing hubs: per port input a *fan*
//! (an agnosticbin, so each route is a branch that starts at a keyframe and
//! asks upstream for one, and a mix gets decoded audio), per port output a
//! `funnel` whose sink pads are the *routes* feeding it.
//!
//! ```text
//! port A ─ hub_src ─► [in ghost] ─ fan(A) ─┬─ branch ───────────────► funnel(C) ─ [out ghost] ─► port C
//!                                          └─ branch ─► audiomixer ─► funnel(D) ─ [out ghost] ─► port D
//! ```
//!
//! **Switching** is encoded-level: when an output's source changes, a new
//! route (a fresh fan branch, gated to a keyframe, which the fan requests
//! upstream at once) is linked next to the old one. Each route's funnel pad
//! has a probe that passes data only for the output's *current* route; the
//! first buffer of the *wanted* route makes it current (the hand-over, a
//! keyframe for video), and from then on the old route's data is dropped
//! and the old route is removed on GStreamer's async-call pool. The
//! receiving endpoint's `kmsrtpinput` re-stamps SSRC, sequence numbers and
//! timestamps, so the switch looks like one continuous stream.
//!
//! **Threads.** Probes only read and swap atomics; they hand clean-up to
//! the async-call pool. The state lock is taken by RPC threads and the
//! async pool, never by a streaming thread, and it is never held while
//! waiting for one: releasing funnel and mixer pads, setting elements to
//! NULL and removing ghost pads happen after it is dropped (`dispose`).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::agnosticbin::codecs::{self, Format, Kind};
use kms_core::agnosticbin::keyframe::rtp_payload_starts_keyframe;
use kms_core::api::core::MediaType;
use kms_core::element::media_type_name;
use kms_core::object::ObjectId;

use super::select::{Selection, Want};

type Key = (ObjectId, MediaType);

/// How often a route waiting at its guard for a keyframe asks again.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Which route of one output passes data.
#[derive(Default)]
struct Switch {
    /// The route whose data goes out (0: none yet).
    current: AtomicU64,
    /// The route that takes over at its first buffer (0: none).
    wanted: AtomicU64,
}

struct InputTap {
    ghost: gst::GhostPad,
    fan: AgnosticBin,
}

enum Feed {
    /// A fan branch of one source, as it is.
    Direct { source: ObjectId, fan: AgnosticBin, branch: gst::Pad },
    /// An audiomixer fed by decoded branches of several sources.
    Mix { mixer: gst::Element, inputs: HashMap<ObjectId, MixInput> },
}

struct MixInput {
    fan: AgnosticBin,
    branch: gst::Pad,
    pad: gst::Pad,
}

struct Route {
    id: u64,
    feed: Feed,
    /// The funnel's request pad this route feeds.
    sinkpad: gst::Pad,
}

struct OutputTap {
    ghost: gst::GhostPad,
    funnel: gst::Element,
    switch: Arc<Switch>,
    routes: Vec<Route>,
}

/// GStreamer objects to take down once the state lock is released.
enum Garbage {
    RequestPad(gst::Element, gst::Pad),
    Element(gst::Element),
    Ghost(gst::GhostPad),
}

struct State {
    selection: Selection,
    inputs: HashMap<Key, InputTap>,
    outputs: HashMap<Key, OutputTap>,
    next_id: u64,
}

pub struct Router {
    state: Mutex<State>,
    me: Weak<Router>,
}

impl Router {
    pub fn new(selection: Selection) -> Arc<Router> {
        Arc::new_cyclic(|me| Router {
            state: Mutex::new(State { selection, inputs: HashMap::new(), outputs: HashMap::new(), next_id: 1 }),
            me: me.clone(),
        })
    }

    /// A port's media of type `t` arrives on `src` (the port bin's pad).
    pub fn port_input(&self, bin: &gst::Bin, port: &ObjectId, t: MediaType, src: &gst::Pad) {
        let mut garbage = vec![];
        {
            let mut st = self.state.lock();
            let n = st.next_id;
            st.next_id += 1;
            let fan = AgnosticBin::new(&format!("in{n}_{}", media_type_name(t)));
            let built = (|| {
                bin.add(&fan).ok()?;
                fan.sync_state_with_parent().ok()?;
                let ghost = gst::GhostPad::builder_with_target(&fan.static_pad("sink")?)
                    .ok()?
                    .name(format!("in{n}_{}", media_type_name(t)))
                    .build();
                let _ = ghost.set_active(true);
                bin.add_pad(&ghost).ok()?;
                if let Err(e) = src.link(&ghost) {
                    tracing::warn!(port = %port, "hub input link failed: {e:?}");
                }
                Some(ghost)
            })();
            match built {
                Some(ghost) => {
                    if let Some(old) = st.inputs.insert((port.clone(), t), InputTap { ghost, fan }) {
                        garbage.push(Garbage::Ghost(old.ghost));
                        garbage.push(Garbage::Element(old.fan.upcast()));
                    }
                }
                None => {
                    tracing::warn!(port = %port, "hub input for {t} could not be built");
                    garbage.push(Garbage::Element(fan.upcast()));
                }
            }
            garbage.extend(self.reconcile(&mut st));
        }
        dispose(bin, garbage);
    }

    /// A port wants the hub's media of type `t` on `sink` (the port bin's pad).
    pub fn port_output(&self, bin: &gst::Bin, port: &ObjectId, t: MediaType, sink: &gst::Pad) {
        let mut garbage = vec![];
        {
            let mut st = self.state.lock();
            let n = st.next_id;
            st.next_id += 1;
            let Ok(funnel) = gst::ElementFactory::make("funnel").name(format!("out{n}_{}", media_type_name(t))).build()
            else {
                tracing::warn!("funnel (coreelements) is missing");
                return;
            };
            let built = (|| {
                bin.add(&funnel).ok()?;
                funnel.sync_state_with_parent().ok()?;
                let ghost = gst::GhostPad::builder_with_target(&funnel.static_pad("src")?)
                    .ok()?
                    .name(format!("out{n}_{}", media_type_name(t)))
                    .build();
                let _ = ghost.set_active(true);
                bin.add_pad(&ghost).ok()?;
                if let Err(e) = ghost.link(sink) {
                    tracing::warn!(port = %port, "hub output link failed: {e:?}");
                }
                Some(ghost)
            })();
            match built {
                Some(ghost) => {
                    let tap = OutputTap { ghost, funnel, switch: Arc::default(), routes: vec![] };
                    if let Some(old) = st.outputs.insert((port.clone(), t), tap) {
                        garbage.extend(take_down_output(old));
                    }
                }
                None => garbage.push(Garbage::Element(funnel)),
            }
            garbage.extend(self.reconcile(&mut st));
        }
        dispose(bin, garbage);
    }

    /// The port is going away: its routes, taps and selections go.
    pub fn port_removed(&self, bin: &gst::Bin, port: &ObjectId) {
        let mut garbage = vec![];
        {
            let mut st = self.state.lock();
            st.selection.forget(port);
            // Whatever comes from the port stops now, even a route still
            // current while another waits for its keyframe.
            for out in st.outputs.values_mut() {
                let (gone, keep): (Vec<Route>, Vec<Route>) = out
                    .routes
                    .drain(..)
                    .partition(|r| matches!(&r.feed, Feed::Direct { source, .. } if source == port));
                out.routes = keep;
                for r in gone {
                    if out.switch.current.load(Ordering::SeqCst) == r.id {
                        out.switch.current.store(0, Ordering::SeqCst);
                    }
                    garbage.extend(take_down_route(&out.funnel, r));
                }
                for r in &mut out.routes {
                    if let Feed::Mix { mixer, inputs } = &mut r.feed
                        && let Some(mi) = inputs.remove(port)
                    {
                        mi.fan.release_request_pad(&mi.branch);
                        garbage.push(Garbage::RequestPad(mixer.clone(), mi.pad));
                    }
                }
            }
            let keys: Vec<Key> = st.outputs.keys().filter(|(p, _)| p == port).cloned().collect();
            for k in keys {
                if let Some(o) = st.outputs.remove(&k) {
                    garbage.extend(take_down_output(o));
                }
            }
            // Routes from the port into other outputs go with the reconcile
            // below (the selection forgot the port); its fans go after.
            garbage.extend(self.reconcile(&mut st));
            let keys: Vec<Key> = st.inputs.keys().filter(|(p, _)| p == port).cloned().collect();
            for k in keys {
                if let Some(i) = st.inputs.remove(&k) {
                    garbage.push(Garbage::Ghost(i.ghost));
                    garbage.push(Garbage::Element(i.fan.upcast()));
                }
            }
        }
        dispose(bin, garbage);
    }

    /// Changes the selection (an RPC) and rewires accordingly.
    pub fn update<R>(&self, bin: &gst::Bin, f: impl FnOnce(&mut Selection) -> R) -> R {
        let (r, garbage) = {
            let mut st = self.state.lock();
            let r = f(&mut st.selection);
            (r, self.reconcile(&mut st))
        };
        dispose(bin, garbage);
        r
    }

    /// Brings every output in line with the selection. Returns what to take
    /// down once the lock is released.
    fn reconcile(&self, st: &mut State) -> Vec<Garbage> {
        let mut garbage = vec![];
        let keys: Vec<Key> = st.outputs.keys().cloned().collect();
        for key in keys {
            let want = match st.selection.want(&key.0, key.1) {
                Want::One(s) if st.inputs.contains_key(&(s.clone(), key.1)) => Want::One(s),
                Want::Mix(set) => {
                    let set: std::collections::BTreeSet<ObjectId> =
                        set.into_iter().filter(|s| st.inputs.contains_key(&(s.clone(), key.1))).collect();
                    if set.is_empty() { Want::Nothing } else { Want::Mix(set) }
                }
                _ => Want::Nothing,
            };
            let next_id = &mut st.next_id;
            let inputs = &st.inputs;
            let Some(out) = st.outputs.get_mut(&key) else { continue };
            match want {
                Want::Nothing => {
                    out.switch.wanted.store(0, Ordering::SeqCst);
                    out.switch.current.store(0, Ordering::SeqCst);
                    for r in out.routes.drain(..) {
                        garbage.extend(take_down_route(&out.funnel, r));
                    }
                }
                Want::One(src) => {
                    let from_src = |r: &Route| matches!(&r.feed, Feed::Direct { source, .. } if *source == src);
                    let current = out.switch.current.load(Ordering::SeqCst);
                    let wanted = out.switch.wanted.load(Ordering::SeqCst);
                    if out.routes.iter().any(|r| r.id == current && from_src(r)) {
                        // Switched back before the hand-over: keep what flows.
                        out.switch.wanted.store(current, Ordering::SeqCst);
                    } else if !out.routes.iter().any(|r| r.id == wanted && from_src(r)) {
                        let fan = &inputs[&(src.clone(), key.1)].fan;
                        let id = *next_id;
                        *next_id += 1;
                        match self.direct_route(out, id, &key, &src, fan) {
                            Some(r) => {
                                out.routes.push(r);
                                out.switch.wanted.store(id, Ordering::SeqCst);
                            }
                            None => tracing::warn!(sink = %key.0, source = %src, "route could not be linked"),
                        }
                    }
                    garbage.extend(prune(out));
                }
                Want::Mix(set) => {
                    let wanted = out.switch.wanted.load(Ordering::SeqCst);
                    if !out.routes.iter().any(|r| r.id == wanted && matches!(r.feed, Feed::Mix { .. })) {
                        let id = *next_id;
                        *next_id += 1;
                        match self.mix_route(out, id, &key) {
                            Some(r) => {
                                out.routes.push(r);
                                out.switch.wanted.store(id, Ordering::SeqCst);
                            }
                            None => tracing::warn!(sink = %key.0, "audio mix could not be built"),
                        }
                    }
                    garbage.extend(prune(out));
                    let wanted = out.switch.wanted.load(Ordering::SeqCst);
                    if let Some(Route { feed: Feed::Mix { mixer, inputs: mix_inputs }, .. }) =
                        out.routes.iter_mut().find(|r| r.id == wanted)
                    {
                        let gone: Vec<ObjectId> = mix_inputs.keys().filter(|s| !set.contains(*s)).cloned().collect();
                        for s in gone {
                            if let Some(mi) = mix_inputs.remove(&s) {
                                mi.fan.release_request_pad(&mi.branch);
                                garbage.push(Garbage::RequestPad(mixer.clone(), mi.pad));
                            }
                        }
                        for s in set {
                            if mix_inputs.contains_key(&s) {
                                continue;
                            }
                            let fan = inputs[&(s.clone(), key.1)].fan.clone();
                            if let Some(mi) = mix_input(mixer, fan) {
                                mix_inputs.insert(s, mi);
                            }
                        }
                    }
                }
            }
        }
        garbage
    }

    fn direct_route(&self, out: &OutputTap, id: u64, key: &Key, src: &ObjectId, fan: &AgnosticBin) -> Option<Route> {
        let sinkpad = out.funnel.request_pad_simple("sink_%u")?;
        let branch = fan.request_pad_simple("src_%u")?;
        self.guard(&sinkpad, id, key, out.switch.clone(), key.1 == MediaType::Video);
        // Wanted before linked: the fan's branch passes its first keyframe
        // as soon as the link exists, and a guard that saw it before the
        // route was wanted would drop it and wait for the next one.
        let before = out.switch.wanted.swap(id, Ordering::SeqCst);
        if branch.link(&sinkpad).is_err() {
            let _ = out.switch.wanted.compare_exchange(id, before, Ordering::SeqCst, Ordering::SeqCst);
            fan.release_request_pad(&branch);
            out.funnel.release_request_pad(&sinkpad);
            return None;
        }
        tracing::debug!(sink = %key.0, source = %src, route = id, "route linked");
        Some(Route { id, feed: Feed::Direct { source: src.clone(), fan: fan.clone(), branch }, sinkpad })
    }

    fn mix_route(&self, out: &OutputTap, id: u64, key: &Key) -> Option<Route> {
        let mixer = gst::ElementFactory::make("audiomixer")
            .name(format!("mix{id}"))
            // Output timestamps follow the inputs' running time, not 0: a
            // live aggregator starting at 0 in a pipeline running for
            // minutes would push minutes of silence at once.
            .property_from_str("start-time-selection", "first")
            .build()
            .ok()?;
        let bin = out.funnel.parent()?.downcast::<gst::Bin>().ok()?;
        bin.add(&mixer).ok()?;
        let _ = mixer.sync_state_with_parent();
        let sinkpad = out.funnel.request_pad_simple("sink_%u")?;
        self.guard(&sinkpad, id, key, out.switch.clone(), false);
        if mixer.static_pad("src")?.link(&sinkpad).is_err() {
            out.funnel.release_request_pad(&sinkpad);
            dispose(&bin, vec![Garbage::Element(mixer)]);
            return None;
        }
        Some(Route { id, feed: Feed::Mix { mixer, inputs: HashMap::new() }, sinkpad })
    }

    /// The probes of a route's funnel pad: data passes for the current
    /// route only; the wanted route's first switch point takes over.
    fn guard(&self, pad: &gst::Pad, id: u64, key: &Key, switch: Arc<Switch>, video: bool) {
        let me = self.me.clone();
        let key = key.clone();
        let sw = switch.clone();
        let asked = Mutex::new(None::<Instant>);
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |pad, info| {
            let current = sw.current.load(Ordering::SeqCst);
            if current == id {
                return gst::PadProbeReturn::Ok;
            }
            if sw.wanted.load(Ordering::SeqCst) != id {
                return gst::PadProbeReturn::Drop;
            }
            if video && !starts_picture(pad, info) {
                // The fan's keyframe gate asks once and is gone after the
                // first keyframe; one this guard could not use (it began
                // mid-list, or came before a switch) must not leave the
                // route waiting for the source's next periodic keyframe.
                let mut last = asked.lock();
                if last.is_none_or(|t| t.elapsed() >= KEYFRAME_RETRY) {
                    *last = Some(Instant::now());
                    let _ = pad.push_event(codecs::force_key_unit_event());
                }
                return gst::PadProbeReturn::Drop;
            }
            if sw.current.compare_exchange(current, id, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                return gst::PadProbeReturn::Drop;
            }
            tracing::debug!(sink = %key.0, media = %key.1, route = id, "hand-over");
            // The routes this one replaced go, off the streaming thread.
            let me = me.clone();
            let key = key.clone();
            if let Some(el) = pad.parent_element() {
                el.call_async(move |el| {
                    if let (Some(r), Some(bin)) =
                        (me.upgrade(), el.parent().and_then(|p| p.downcast::<gst::Bin>().ok()))
                    {
                        r.prune_output(&bin, &key);
                    }
                });
            }
            gst::PadProbeReturn::Ok
        });
        // Keyframe requests and bitrate wishes from the output's consumers
        // reach the sources that matter only.
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
            if ev.type_() == gst::EventType::CustomUpstream
                && switch.current.load(Ordering::SeqCst) != id
                && switch.wanted.load(Ordering::SeqCst) != id
            {
                return gst::PadProbeReturn::Drop;
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Removes the routes of one output that were replaced (async pool).
    fn prune_output(&self, bin: &gst::Bin, key: &Key) {
        let garbage = {
            let mut st = self.state.lock();
            match st.outputs.get_mut(key) {
                Some(out) => prune(out),
                None => vec![],
            }
        };
        dispose(bin, garbage);
    }
}

/// Whether the buffer in `info` starts a picture a decoder can start from.
fn starts_picture(pad: &gst::Pad, info: &gst::PadProbeInfo) -> bool {
    let Some(caps) = pad.current_caps() else { return true };
    let is_key = |b: &gst::BufferRef| match Format::from_caps(&caps) {
        Some(Format::Rtp(c)) if c.kind() == Kind::Video => gst_rtp::RTPBuffer::from_buffer_readable(b)
            .ok()
            .and_then(|r| r.payload().ok().map(|p| rtp_payload_starts_keyframe(c, p)))
            .unwrap_or(false),
        Some(Format::Es(_)) => !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
        _ => codecs::raw_kind(&caps).is_some() || !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
    };
    match &info.data {
        Some(gst::PadProbeData::Buffer(b)) => is_key(b),
        Some(gst::PadProbeData::BufferList(l)) => l.iter().next().is_some_and(is_key),
        _ => true,
    }
}

fn mix_input(mixer: &gst::Element, fan: AgnosticBin) -> Option<MixInput> {
    let pad = mixer.request_pad_simple("sink_%u")?;
    let Some(branch) = fan.request_pad_simple("src_%u") else {
        mixer.release_request_pad(&pad);
        return None;
    };
    if branch.link(&pad).is_err() {
        fan.release_request_pad(&branch);
        mixer.release_request_pad(&pad);
        return None;
    }
    Some(MixInput { fan, branch, pad })
}

/// Detaches the routes that are neither current nor wanted.
fn prune(out: &mut OutputTap) -> Vec<Garbage> {
    let current = out.switch.current.load(Ordering::SeqCst);
    let wanted = out.switch.wanted.load(Ordering::SeqCst);
    let (keep, gone): (Vec<Route>, Vec<Route>) = out.routes.drain(..).partition(|r| r.id == current || r.id == wanted);
    out.routes = keep;
    gone.into_iter().flat_map(|r| take_down_route(&out.funnel, r)).collect()
}

/// Stops a route's data at once (agnosticbin branches detach without
/// waiting); what may wait is returned.
fn take_down_route(funnel: &gst::Element, r: Route) -> Vec<Garbage> {
    let mut g = vec![];
    match r.feed {
        Feed::Direct { fan, branch, .. } => fan.release_request_pad(&branch),
        Feed::Mix { mixer, inputs } => {
            for (_, mi) in inputs {
                mi.fan.release_request_pad(&mi.branch);
            }
            g.push(Garbage::Element(mixer));
        }
    }
    g.push(Garbage::RequestPad(funnel.clone(), r.sinkpad));
    g
}

fn take_down_output(o: OutputTap) -> Vec<Garbage> {
    let mut g: Vec<Garbage> = vec![];
    for r in o.routes {
        g.extend(take_down_route(&o.funnel, r));
    }
    g.push(Garbage::Ghost(o.ghost));
    g.push(Garbage::Element(o.funnel));
    g
}

/// Takes down what may wait for streaming threads, on GStreamer's async
/// pool (never on an RPC or streaming thread, never under the state lock).
fn dispose(bin: &gst::Bin, garbage: Vec<Garbage>) {
    if garbage.is_empty() {
        return;
    }
    bin.call_async(move |bin| {
        let bin = bin.downcast_ref::<gst::Bin>().expect("hub bin");
        for g in garbage {
            match g {
                Garbage::RequestPad(el, pad) => {
                    if let Some(peer) = pad.peer() {
                        let _ = peer.unlink(&pad);
                    }
                    el.release_request_pad(&pad);
                }
                Garbage::Element(el) => {
                    for p in el.pads() {
                        if let Some(peer) = p.peer() {
                            let _ =
                                if p.direction() == gst::PadDirection::Src { p.unlink(&peer) } else { peer.unlink(&p) };
                        }
                    }
                    let _ = el.set_state(gst::State::Null);
                    let _ = bin.remove(&el);
                }
                Garbage::Ghost(ghost) => {
                    let _ = ghost.set_active(false);
                    let _ = bin.remove_pad(&ghost);
                }
            }
        }
    });
}
