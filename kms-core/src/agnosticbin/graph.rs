//! The reconciler: builds and removes conversion chains and points each
//! branch at the tee that feeds it, so the graph matches what
//! [`super::plan`] says for the current input, consumers and forced format.
//!
//! It runs only on GStreamer's async-call pool (see `imp::schedule`), with
//! the rewire lock ([`Graph`]) held and the state lock released: it may
//! wait for streaming threads (setting removed elements to NULL,
//! deactivating pads) because no streaming thread ever waits for the rewire
//! lock. It takes the state lock only for short reads and commits.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::Source;
use super::bitrate::{query_bitrate, query_mtu};
use super::codecs::{self, Codec, Format, Kind};
use super::imp::{AgnosticBin, BranchId, CAT, Valve};
use super::keyframe::gate_pad;
use super::plan::{self, OutputFormat, PayFeed, Target, ValveRule};

/// Queue bound in front of decoders and encoders: enough to absorb
/// scheduling jitter, small enough that a stuck consumer drops old data
/// instead of growing memory.
const DEFAULT_QUEUE_MAX_TIME: u64 = 500_000_000;

/// A conversion stage shared by every branch that needs its output.
pub(super) struct Chain {
    /// Request pad on the upstream tee feeding this chain.
    feed: gst::Pad,
    feed_tee: gst::Element,
    elements: Vec<gst::Element>,
    tee: gst::Element,
    /// The encoder, for encode chains (bitrate updates).
    encoder: Option<gst::Element>,
    /// The payloader, for pay chains (MTU updates).
    payloader: Option<gst::Element>,
    /// Set when fed from the input tee.
    valve: Option<Arc<AtomicBool>>,
    /// Encode chains: counted in `/metrics` while they exist.
    counted: Option<crate::metrics::TranscodingGuard>,
}

/// How one branch is fed.
pub(super) struct Wiring {
    source: Source,
    tee: gst::Element,
    /// Request pad on `tee`.
    pad: gst::Pad,
    /// Per-branch raw converters (raw consumers only).
    converters: Vec<gst::Element>,
    valve: Option<Arc<AtomicBool>>,
}

impl Wiring {
    fn is_valid(&self) -> bool {
        self.valve.as_ref().is_none_or(|v| v.load(Ordering::Acquire))
    }
}

/// What the reconciler built. Guarded by the rewire lock.
#[derive(Default)]
pub(super) struct Graph {
    es: Option<Chain>,
    raw: Option<Chain>,
    enc: BTreeMap<Codec, Chain>,
    pay: BTreeMap<Codec, Chain>,
    wired: HashMap<BranchId, Wiring>,
    /// The forced format the chains were built for.
    forced: Option<OutputFormat>,
    counter: u32,
}

impl Graph {
    fn chains(&self) -> impl Iterator<Item = &Chain> {
        self.es.iter().chain(self.raw.iter()).chain(self.enc.values()).chain(self.pay.values())
    }

    /// Chains built for an input format or forced format that no longer
    /// holds.
    fn chains_stale(&self, forced: Option<&OutputFormat>) -> bool {
        self.forced.as_ref() != forced
            || self.chains().any(|c| c.valve.as_ref().is_some_and(|v| !v.load(Ordering::Acquire)))
    }
}

struct BranchSnap {
    id: BranchId,
    ghost: gst::GhostPad,
    link: Arc<Mutex<bool>>,
    dirty: bool,
}

/// What one pass plans against.
struct Snapshot {
    caps: Option<gst::Caps>,
    epoch: u64,
    forced: Option<OutputFormat>,
    branches: Vec<BranchSnap>,
}

#[derive(Debug)]
enum WireError {
    /// The input changed since the pass started: plan again.
    Stale,
    /// The branch was released meanwhile.
    Released,
    /// GStreamer could not build or link it.
    Failed,
}

/// What a pass learned about a branch's consumer.
struct Learned {
    id: BranchId,
    mtu: Option<u32>,
    /// Only asked when (re)wired.
    bitrate: Option<Option<u32>>,
}

impl AgnosticBin {
    /// One pass: make the graph match the plan.
    pub(super) fn reconcile(&self, g: &mut Graph) {
        let snap = {
            let mut st = self.state.lock();
            if st.stopping {
                return;
            }
            // Closed valves belong to pads this pass replaces.
            st.valves.retain(|v| v.open.load(Ordering::Acquire));
            Snapshot {
                caps: st.caps.clone(),
                epoch: st.epoch,
                forced: st.forced,
                branches: st
                    .branches
                    .iter_mut()
                    .map(|b| BranchSnap {
                        id: b.id,
                        ghost: b.ghost.clone(),
                        link: b.link.clone(),
                        dirty: std::mem::take(&mut b.dirty),
                    })
                    .collect(),
            }
        };
        let by_id: HashMap<BranchId, &BranchSnap> = snap.branches.iter().map(|b| (b.id, b)).collect();

        // Released branches: their ghosts are already detached.
        let live: HashSet<BranchId> = by_id.keys().copied().collect();
        let gone: Vec<BranchId> = g.wired.keys().filter(|id| !live.contains(id)).copied().collect();
        for id in gone {
            if let Some(w) = g.wired.remove(&id) {
                self.unwire(None, w);
            }
        }

        // Stages built for another input or forced format: everything fed
        // from them goes too, and is rebuilt below.
        if g.chains_stale(snap.forced.as_ref()) {
            let fed: Vec<BranchId> = g.wired.iter().filter(|(_, w)| w.tee != self.tee).map(|(id, _)| *id).collect();
            for id in fed {
                if let Some(w) = g.wired.remove(&id) {
                    self.unwire(by_id.get(&id).copied(), w);
                }
            }
            self.drop_all_chains(g);
        }
        g.forced = snap.forced;

        let mut learned = vec![];
        let mut retry = false;
        for b in &snap.branches {
            let valid = g.wired.get(&b.id).is_some_and(Wiring::is_valid);
            if valid && !b.dirty {
                continue;
            }
            let want = if b.ghost.peer().is_some() { b.ghost.peer_query_caps(None) } else { gst::Caps::new_empty() };
            let mtu = query_mtu(&b.ghost);
            let desired =
                plan::fit_mtu(plan::plan(snap.caps.as_ref(), &want, snap.forced.as_ref()), snap.caps.as_ref(), mtu);
            let current = g.wired.get(&b.id).map(|w| w.source);
            if valid && current == desired {
                learned.push(Learned { id: b.id, mtu, bitrate: None });
                continue;
            }
            gst::debug!(CAT, imp = self, "branch {}: {current:?} -> {desired:?} (wants {want})", b.ghost.name());
            if let Some(w) = g.wired.remove(&b.id) {
                self.unwire(Some(b), w);
            }
            let Some(src) = desired else {
                learned.push(Learned { id: b.id, mtu, bitrate: Some(None) });
                continue;
            };
            match self.wire(g, &snap, b, src, &want) {
                Ok(w) => {
                    g.wired.insert(b.id, w);
                    learned.push(Learned { id: b.id, mtu, bitrate: Some(query_bitrate(&b.ghost)) });
                }
                Err(WireError::Stale) => retry = true,
                Err(WireError::Released) => {}
                Err(WireError::Failed) => {
                    gst::warning!(CAT, imp = self, "branch {}: cannot build {src:?}", b.ghost.name());
                }
            }
        }

        self.collect_chains(g, &snap);
        self.commit(g, learned);
        if retry {
            self.schedule();
        }
    }

    /// Records the outcome for probes and RPC calls, then applies rates.
    fn commit(&self, g: &Graph, learned: Vec<Learned>) {
        {
            let mut st = self.state.lock();
            for b in st.branches.iter_mut() {
                b.source = g.wired.get(&b.id).map(|w| w.source);
                if let Some(l) = learned.iter().find(|l| l.id == b.id) {
                    b.mtu = l.mtu;
                    if let Some(bitrate) = l.bitrate {
                        b.bitrate = bitrate;
                    }
                }
            }
            st.encoders = g.enc.iter().filter_map(|(c, ch)| ch.encoder.clone().map(|e| (*c, e))).collect();
            st.payloaders = g.pay.iter().filter_map(|(c, ch)| ch.payloader.clone().map(|p| (*c, p))).collect();
        }
        self.refresh_rates();
        self.set_transcoding(!g.enc.is_empty());
    }

    /// Feeds branch `b` from the tee of `src`, building the chains it needs.
    fn wire(
        &self,
        g: &mut Graph,
        snap: &Snapshot,
        b: &BranchSnap,
        src: Source,
        want: &gst::Caps,
    ) -> Result<Wiring, WireError> {
        // No caps yet: only a consumer taking anything is wired (as is).
        let caps = snap.caps.clone();
        let tee = self.tee_for(g, snap, src)?;
        let pad = tee.request_pad_simple("src_%u").ok_or(WireError::Failed)?;
        let valve = if tee == self.tee {
            let rule = match &caps {
                Some(caps) if src != Source::In => ValveRule::Format(plan::format_key(caps)),
                _ => ValveRule::Accepts(want.clone()),
            };
            match self.open_valve(&pad, rule, snap.epoch) {
                Ok(v) => Some(v),
                Err(e) => {
                    tee.release_request_pad(&pad);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let mut w = Wiring { source: src, tee: tee.clone(), pad: pad.clone(), converters: vec![], valve };
        let target = if src == Source::Raw {
            match caps.as_ref().and_then(|c| self.raw_converters(c, snap.forced.as_ref())) {
                Some(conv) => {
                    w.converters = conv;
                    let first = w.converters[0].static_pad("sink");
                    if codecs::add_chain(self.obj().upcast_ref(), &w.converters).is_err()
                        || first.is_none_or(|s| link(&pad, &s).is_err())
                    {
                        self.unwire(None, w);
                        return Err(WireError::Failed);
                    }
                    w.converters.last().and_then(|c| c.static_pad("src"))
                }
                None => None,
            }
        } else {
            Some(pad.clone())
        };
        let Some(target) = target else {
            self.unwire(None, w);
            return Err(WireError::Failed);
        };
        if let Some(caps) = &caps {
            self.gate(g, caps, &tee, &pad, src);
        }
        let linked = {
            let released = b.link.lock();
            if *released {
                Err(WireError::Released)
            } else {
                b.ghost.set_target(Some(&target)).map_err(|_| WireError::Failed)
            }
        };
        if let Err(e) = linked {
            self.unwire(None, w);
            return Err(e);
        }
        Ok(w)
    }

    /// Undoes a wiring; `b`: the branch, when its ghost still points there.
    fn unwire(&self, b: Option<&BranchSnap>, w: Wiring) {
        if let Some(b) = b {
            let released = b.link.lock();
            if !*released {
                let _ = b.ghost.set_target(None::<&gst::Pad>);
            }
        }
        if let Some(v) = &w.valve {
            v.store(false, Ordering::Release);
        }
        if let Some(peer) = w.pad.peer() {
            let _ = w.pad.unlink(&peer);
        }
        w.tee.release_request_pad(&w.pad);
        let obj = self.obj();
        for e in &w.converters {
            let _ = e.set_state(gst::State::Null);
            let _ = obj.remove(e);
        }
    }

    /// A closed valve on `pad`, registered for the caps probe and opened if
    /// the input is still the one this pass planned for.
    fn open_valve(&self, pad: &gst::Pad, rule: ValveRule, epoch: u64) -> Result<Arc<AtomicBool>, WireError> {
        let open = Arc::new(AtomicBool::new(false));
        let o = open.clone();
        pad.add_probe(gst::PadProbeType::DATA_DOWNSTREAM, move |_, info| {
            if o.load(Ordering::Acquire) {
                gst::PadProbeReturn::Ok
            } else if matches!(info.data, Some(gst::PadProbeData::Event(_))) {
                // Consumed here: `Drop` on an event double-unrefs it in
                // GStreamer 1.22.
                gst::PadProbeReturn::Handled
            } else {
                gst::PadProbeReturn::Drop
            }
        });
        let mut st = self.state.lock();
        if st.epoch != epoch || st.caps.as_ref().is_some_and(|c| !rule.holds(c)) {
            return Err(WireError::Stale);
        }
        open.store(true, Ordering::Release);
        st.valves.push(Valve { open: open.clone(), rule });
        Ok(open)
    }

    /// Converters in front of a raw consumer.
    fn raw_converters(&self, caps: &gst::Caps, forced: Option<&OutputFormat>) -> Option<Vec<gst::Element>> {
        let mk = |f: &str| gst::ElementFactory::make(f).build().ok();
        Some(match codecs::kind_of(caps)? {
            Kind::Video => {
                let mut v = vec![];
                if let Some(OutputFormat { target: Target::Raw, framerate: Some(fr), .. }) = forced {
                    v.extend(codecs::make_rate_limiter(*fr)?);
                }
                v.push(mk("videoconvert")?);
                v
            }
            Kind::Audio => vec![mk("audioconvert")?, mk("audioresample")?],
        })
    }

    /// Makes a video branch start at a keyframe, asking for one.
    fn gate(&self, g: &Graph, caps: &gst::Caps, tee: &gst::Element, pad: &gst::Pad, src: Source) {
        if codecs::kind_of(caps) != Some(Kind::Video) || src == Source::Raw {
            return;
        }
        let encoder_src = |c: &Codec| g.enc.get(c).and_then(|ch| ch.encoder.as_ref()).and_then(|e| e.static_pad("src"));
        // Whoever produces this tee's data makes the keyframe.
        let producer: Option<gst::Pad> = match src {
            Source::In | Source::Es => self.obj().static_pad("sink"),
            Source::Enc(c) => encoder_src(&c),
            Source::Pay(c) => encoder_src(&c).or_else(|| self.obj().static_pad("sink")),
            Source::Raw => None,
        };
        let rtp_codec = match src {
            Source::In => Format::from_caps(caps).and_then(|f| match f {
                Format::Rtp(c) => Some(c),
                Format::Es(_) => None,
            }),
            Source::Pay(c) => Some(c),
            _ => None,
        };
        let tee_is_rtp = tee == &self.tee && is_rtp(caps) || matches!(src, Source::Pay(_));
        gate_pad(pad, if tee_is_rtp { rtp_codec } else { None }, tee_is_rtp, producer);
    }

    /// The tee carrying `src`, building the chains on the way.
    fn tee_for(&self, g: &mut Graph, snap: &Snapshot, src: Source) -> Result<gst::Element, WireError> {
        if src == Source::In {
            return Ok(self.tee.clone());
        }
        let caps = snap.caps.clone().ok_or(WireError::Failed)?;
        let in_fmt = Format::from_caps(&caps);
        let failed = || WireError::Failed;
        match src {
            Source::In => Ok(self.tee.clone()),
            Source::Es => match in_fmt.ok_or_else(failed)? {
                Format::Es(_) => Ok(self.tee.clone()),
                Format::Rtp(c) => {
                    if g.es.is_none() {
                        // Decoding and recording need packets in order:
                        // reorder and recover losses before depayloading.
                        let mut els = vec![codecs::make_jitterbuffer().ok_or_else(failed)?];
                        els.extend(codecs::make_depayloader(c).ok_or_else(failed)?);
                        let tee_in = self.tee.clone();
                        let ch = self.build_chain(g, snap, &tee_in, els, None, None, false)?;
                        g.es = Some(ch);
                    }
                    g.es.as_ref().map(|ch| ch.tee.clone()).ok_or_else(failed)
                }
            },
            Source::Raw => {
                if codecs::raw_kind(&caps).is_some() {
                    return Ok(self.tee.clone());
                }
                if g.raw.is_none() {
                    let codec = in_fmt.ok_or_else(failed)?.codec();
                    let feed = self.tee_for(g, snap, Source::Es)?;
                    let dec = codecs::make_decoder(codec).ok_or_else(failed)?;
                    let ch = self.build_chain(g, snap, &feed, vec![dec], None, None, true)?;
                    g.raw = Some(ch);
                }
                g.raw.as_ref().map(|ch| ch.tee.clone()).ok_or_else(failed)
            }
            Source::Enc(c) => {
                if !g.enc.contains_key(&c) {
                    let feed = self.tee_for(g, snap, Source::Raw)?;
                    let bitrate = self.settings.lock().bitrate.effective(None);
                    let mut els = vec![];
                    if c.kind() == Kind::Video
                        && let Some(fr) = snap.forced.and_then(|f| f.framerate)
                    {
                        els.extend(codecs::make_rate_limiter(fr).ok_or_else(failed)?);
                    }
                    els.extend(codecs::make_preconvert(c).ok_or_else(failed)?);
                    let enc = codecs::make_encoder(c, bitrate).ok_or_else(failed)?;
                    if c.kind() == Kind::Audio
                        && let Some(b) = snap.forced.and_then(|f| f.bitrate)
                    {
                        codecs::set_audio_encoder_bitrate(&enc, b);
                    }
                    els.push(enc.clone());
                    els.extend(codecs::make_postencode(c).ok_or_else(failed)?);
                    let mut ch = self.build_chain(g, snap, &feed, els, Some(enc), None, true)?;
                    // Raw input (a mixer, a filter) counts as `raw → c`.
                    ch.counted = Some(crate::metrics::TRANSCODING.branch(in_fmt.map(Format::codec), Some(c)));
                    g.enc.insert(c, ch);
                }
                g.enc.get(&c).map(|ch| ch.tee.clone()).ok_or_else(failed)
            }
            Source::Pay(c) => {
                if !g.pay.contains_key(&c) {
                    let feed = match plan::pay_feed(&caps, c, snap.forced.as_ref()) {
                        PayFeed::Es => self.tee_for(g, snap, Source::Es)?,
                        PayFeed::Enc => self.tee_for(g, snap, Source::Enc(c))?,
                    };
                    let mtu = self.settings.lock().mtu;
                    let pay = codecs::make_payloader(c, mtu).ok_or_else(failed)?;
                    let ch = self.build_chain(g, snap, &feed, vec![pay.clone()], None, Some(pay), false)?;
                    g.pay.insert(c, ch);
                }
                g.pay.get(&c).map(|ch| ch.tee.clone()).ok_or_else(failed)
            }
        }
    }

    /// `feed_tee ! [queue !] elements... ! tee`.
    #[allow(clippy::too_many_arguments)]
    fn build_chain(
        &self,
        g: &mut Graph,
        snap: &Snapshot,
        feed_tee: &gst::Element,
        mut elements: Vec<gst::Element>,
        encoder: Option<gst::Element>,
        payloader: Option<gst::Element>,
        threaded: bool,
    ) -> Result<Chain, WireError> {
        let obj = self.obj();
        let caps = snap.caps.clone().ok_or(WireError::Failed)?;
        g.counter += 1;
        if threaded {
            let q = gst::ElementFactory::make("queue")
                .property("max-size-buffers", 0u32)
                .property("max-size-bytes", 0u32)
                .property("max-size-time", DEFAULT_QUEUE_MAX_TIME)
                .property_from_str("leaky", "downstream")
                .build()
                .map_err(|_| WireError::Failed)?;
            elements.insert(0, q);
        }
        let tee = gst::ElementFactory::make("tee")
            .name(format!("tee_{}", g.counter))
            .property("allow-not-linked", true)
            .build()
            .map_err(|_| WireError::Failed)?;
        elements.push(tee.clone());
        let discard = |elements: &[gst::Element]| {
            for e in elements {
                let _ = e.set_state(gst::State::Null);
                let _ = obj.remove(e);
            }
        };
        if let Err(e) = codecs::add_chain(obj.upcast_ref(), &elements) {
            gst::warning!(CAT, imp = self, "cannot build chain: {e}");
            discard(&elements);
            return Err(WireError::Failed);
        }
        let Some(feed) = feed_tee.request_pad_simple("src_%u") else {
            discard(&elements);
            return Err(WireError::Failed);
        };
        let valve = if feed_tee == &self.tee {
            match self.open_valve(&feed, ValveRule::Format(plan::format_key(&caps)), snap.epoch) {
                Ok(v) => Some(v),
                Err(e) => {
                    feed_tee.release_request_pad(&feed);
                    discard(&elements);
                    return Err(e);
                }
            }
        } else {
            None
        };
        // The chain's first buffer must be decodable.
        if codecs::kind_of(&caps) == Some(Kind::Video) {
            let rtp = feed_tee == &self.tee && is_rtp(&caps);
            let codec = Format::from_caps(&caps).map(Format::codec);
            gate_pad(&feed, if rtp { codec } else { None }, rtp, self.obj().static_pad("sink"));
        }
        let linked = elements[0].static_pad("sink").is_some_and(|first| link(&feed, &first).is_ok());
        if !linked {
            if let Some(v) = &valve {
                v.store(false, Ordering::Release);
            }
            feed_tee.release_request_pad(&feed);
            discard(&elements);
            return Err(WireError::Failed);
        }
        Ok(Chain { feed, feed_tee: feed_tee.clone(), elements, tee, encoder, payloader, valve, counted: None })
    }

    fn remove_chain(&self, ch: Chain) {
        let obj = self.obj();
        if let Some(v) = &ch.valve {
            v.store(false, Ordering::Release);
        }
        if let Some(peer) = ch.feed.peer() {
            let _ = ch.feed.unlink(&peer);
        }
        ch.feed_tee.release_request_pad(&ch.feed);
        for e in &ch.elements {
            let _ = e.set_state(gst::State::Null);
            let _ = obj.remove(e);
        }
    }

    /// Removes every chain, downstream ones first.
    fn drop_all_chains(&self, g: &mut Graph) {
        let pays: Vec<Chain> = std::mem::take(&mut g.pay).into_values().collect();
        let encs: Vec<Chain> = std::mem::take(&mut g.enc).into_values().collect();
        for ch in pays.into_iter().chain(encs).chain(g.raw.take()).chain(g.es.take()) {
            self.remove_chain(ch);
        }
    }

    /// Removes chains no branch needs any more (so transcoding stops when
    /// its last consumer leaves).
    fn collect_chains(&self, g: &mut Graph, snap: &Snapshot) {
        let needs = match &snap.caps {
            Some(caps) => plan::needs(caps, g.wired.values().map(|w| w.source), snap.forced.as_ref()),
            None => plan::Needs::default(),
        };
        let pay: Vec<Codec> = g.pay.keys().copied().filter(|c| !needs.pay.contains(c)).collect();
        for c in pay {
            if let Some(ch) = g.pay.remove(&c) {
                self.remove_chain(ch);
            }
        }
        let enc: Vec<Codec> = g.enc.keys().copied().filter(|c| !needs.enc.contains(c)).collect();
        for c in enc {
            if let Some(ch) = g.enc.remove(&c) {
                self.remove_chain(ch);
            }
        }
        if !needs.raw
            && let Some(ch) = g.raw.take()
        {
            self.remove_chain(ch);
        }
        if !needs.es
            && let Some(ch) = g.es.take()
        {
            self.remove_chain(ch);
        }
    }
}

/// Links a tee pad to a new stage without a caps check: the check queries
/// caps upstream, which around a connection cycle (A→B→A) never ends.
/// Formats are agreed by [`plan`] anyway.
fn link(src: &gst::Pad, sink: &gst::Pad) -> Result<gst::PadLinkSuccess, gst::PadLinkError> {
    src.link_full(sink, gst::PadLinkCheck::HIERARCHY)
}

fn is_rtp(caps: &gst::CapsRef) -> bool {
    caps.structure(0).is_some_and(|s| s.name() == "application/x-rtp")
}
