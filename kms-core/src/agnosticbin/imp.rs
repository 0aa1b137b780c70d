use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::codecs::{self, Bitrate, Codec, Format, Kind};
use super::keyframe;
use super::{BITRATE_EVENT, Source};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("agnosticbin", gst::DebugColorFlags::empty(), Some("Kurento agnosticbin"))
});

/// Queue bound in front of decoders and encoders: enough to absorb
/// scheduling jitter, small enough that a stuck consumer drops old data
/// instead of growing memory.
const DEFAULT_QUEUE_MAX_TIME: u64 = 500_000_000;

/// How often a branch still waiting for a keyframe asks again.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// A conversion stage shared by every branch that needs its output.
struct Chain {
    /// Request pad on the upstream tee feeding this chain.
    feed: gst::Pad,
    feed_tee: gst::Element,
    elements: Vec<gst::Element>,
    tee: gst::Element,
    /// The encoder, for encode chains (bitrate updates).
    encoder: Option<gst::Element>,
}

struct Branch {
    ghost: gst::GhostPad,
    source: Option<Source>,
    /// Request pad on the tee the branch takes its data from.
    tee_pad: Option<(gst::Element, gst::Pad)>,
    /// Per-branch raw converters (raw consumers only).
    converters: Vec<gst::Element>,
    /// Bitrate the consumer asked for (REMB), bps.
    bitrate: Option<u32>,
}

#[derive(Default)]
struct State {
    caps: Option<gst::Caps>,
    branches: Vec<Branch>,
    es: Option<Chain>,
    raw: Option<Chain>,
    enc: BTreeMap<Codec, Chain>,
    pay: BTreeMap<Codec, Chain>,
    /// Last aggregated bitrate sent upstream for pass-through branches.
    upstream_bitrate: Option<u32>,
    counter: u32,
}

type TranscodingCallback = Arc<dyn Fn(bool) + Send + Sync>;

struct Settings {
    bitrate: Bitrate,
    mtu: u32,
    on_transcoding: Option<TranscodingCallback>,
}

pub struct AgnosticBin {
    tee: gst::Element,
    state: Mutex<State>,
    settings: Mutex<Settings>,
    next_pad: AtomicU32,
    transcoding: AtomicBool,
}

#[glib::object_subclass]
impl ObjectSubclass for AgnosticBin {
    const NAME: &'static str = "KmsAgnosticBin";
    type Type = super::AgnosticBin;
    type ParentType = gst::Bin;

    fn with_class(_klass: &Self::Class) -> Self {
        let tee = gst::ElementFactory::make("tee")
            .name("tee_in")
            .property("allow-not-linked", true)
            .build()
            .expect("tee from coreelements is always present");
        AgnosticBin {
            tee,
            state: Mutex::new(State::default()),
            settings: Mutex::new(Settings {
                bitrate: Bitrate::default(),
                mtu: codecs::DEFAULT_MTU,
                on_transcoding: None,
            }),
            next_pad: AtomicU32::new(0),
            transcoding: AtomicBool::new(false),
        }
    }
}

impl ObjectImpl for AgnosticBin {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add(&self.tee).expect("fresh bin");
        let target = self.tee.static_pad("sink").expect("tee sink");
        let templ = obj.pad_template("sink").expect("template");
        let ghost = gst::GhostPad::builder_from_template_with_target(&templ, &target)
            .expect("ghost")
            .name("sink")
            // Anything is accepted: conversions happen per branch.
            .query_function(|pad, parent, query| match query.view_mut() {
                gst::QueryViewMut::Caps(q) => {
                    let caps = q.filter().map(|f| f.to_owned()).unwrap_or_else(gst::Caps::new_any);
                    q.set_result(&caps);
                    true
                }
                gst::QueryViewMut::AcceptCaps(q) => {
                    q.set_result(true);
                    true
                }
                _ => gst::Pad::query_default(pad, parent, query),
            })
            .build();
        let weak = obj.downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && let gst::EventView::Caps(c) = ev.view()
                && let Some(obj) = weak.upgrade()
            {
                obj.imp().input_caps(c.caps_owned());
            }
            gst::PadProbeReturn::Ok
        });
        obj.add_pad(&ghost).expect("unique pad");
    }
}

impl GstObjectImpl for AgnosticBin {}

impl ElementImpl for AgnosticBin {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Agnostic bin",
                "Generic/Bin",
                "Fans one media stream out to any number of consumers, converting per consumer",
                "kurento-rs",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                    .expect("template"),
                gst::PadTemplate::new("src_%u", gst::PadDirection::Src, gst::PadPresence::Request, &caps)
                    .expect("template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let obj = self.obj();
        let name = match name {
            Some(n) => n.to_string(),
            None => format!("src_{}", self.next_pad.fetch_add(1, Ordering::Relaxed)),
        };
        // No target until the consumer says what it accepts: nothing flows
        // into an unlinked or not-yet-negotiated consumer.
        let ghost = gst::GhostPad::builder_from_template(templ).name(name).build();
        let weak = obj.downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |pad, info| {
            let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
            let Some(obj) = weak.upgrade() else { return gst::PadProbeReturn::Ok };
            match ev.view() {
                gst::EventView::Reconfigure(_) => {
                    let pad = pad.clone();
                    // Off the caller's thread: it may be a streaming thread
                    // downstream of one of our own queues.
                    obj.call_async(move |obj| obj.imp().replan_branch(pad.upcast_ref()));
                    gst::PadProbeReturn::Ok
                }
                gst::EventView::CustomUpstream(c) if c.structure().is_some_and(|s| s.name() == BITRATE_EVENT) => {
                    let bitrate = c.structure().and_then(|s| s.get::<u32>("bitrate").ok());
                    obj.imp().branch_bitrate(pad.upcast_ref(), bitrate);
                    // Consumed here (aggregated); `Drop` on an event sent to
                    // this pad trips a NULL unref in GStreamer 1.22.
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
        let _ = ghost.set_active(true);
        obj.add_pad(&ghost).ok()?;
        self.state.lock().branches.push(Branch {
            ghost: ghost.clone(),
            source: None,
            tee_pad: None,
            converters: vec![],
            bitrate: None,
        });
        gst::debug!(CAT, imp = self, "new branch {}", ghost.name());
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let obj = self.obj();
        let removed = {
            let mut st = self.state.lock();
            let pos = st.branches.iter().position(|b| b.ghost.upcast_ref::<gst::Pad>() == pad);
            let b = pos.map(|i| st.branches.remove(i));
            if let Some(b) = &b {
                self.detach(b);
            }
            self.collect_chains(&mut st);
            b.is_some()
        };
        let _ = pad.set_active(false);
        let _ = obj.remove_pad(pad);
        if removed {
            self.after_change();
        }
        gst::debug!(CAT, imp = self, "branch {} released", pad.name());
    }
}

impl BinImpl for AgnosticBin {}

/// What a consumer accepting `want` should be fed from, given input `input`.
fn plan(input: Option<&gst::Caps>, want: &gst::Caps) -> Option<Source> {
    if want.is_empty() {
        return None;
    }
    let Some(input) = input else {
        // Nothing known yet: only a consumer taking anything can be wired.
        return want.is_any().then_some(Source::In);
    };
    if input.can_intersect(want) {
        return Some(Source::In);
    }
    let in_fmt = Format::from_caps(input);
    let raw_in = codecs::raw_kind(input);
    if let Some(Format::Rtp(c)) = in_fmt
        && c.can_forward()
        && c.es_caps().can_intersect(want)
    {
        return Some(Source::Es);
    }
    if let Some(c) = in_fmt.map(Format::codec)
        && codecs::exists(c.payloader())
        && c.rtp_caps().can_intersect(want)
        && (matches!(in_fmt, Some(Format::Es(_))) || c.can_forward())
    {
        return Some(Source::Pay(c));
    }
    let kind = raw_in.or(in_fmt.map(|f| f.codec().kind()))?;
    let decodable = raw_in.is_some()
        || in_fmt.is_some_and(|f| {
            f.codec().can_decode() && (matches!(f, Format::Es(_)) || codecs::exists(f.codec().depayloader()))
        });
    if !decodable {
        return None;
    }
    if codecs::raw_caps(kind).can_intersect(want) {
        return Some(Source::Raw);
    }
    for s in want.iter() {
        let Some(f) = Format::from_structure(s) else { continue };
        let c = f.codec();
        if c.kind() != kind || !c.can_encode() {
            continue;
        }
        match f {
            Format::Es(c) => return Some(Source::Enc(c)),
            Format::Rtp(c) if codecs::exists(c.payloader()) => return Some(Source::Pay(c)),
            Format::Rtp(_) => {}
        }
    }
    None
}

fn is_rtp(caps: &gst::CapsRef) -> bool {
    caps.structure(0).is_some_and(|s| s.name() == "application/x-rtp")
}

impl AgnosticBin {
    pub(super) fn set_bitrate(&self, bitrate: Bitrate) {
        self.settings.lock().bitrate = bitrate;
        let st = self.state.lock();
        self.apply_encoder_bitrates(&st);
    }

    pub(super) fn set_mtu(&self, mtu: u32) {
        self.settings.lock().mtu = mtu;
    }

    pub(super) fn set_transcoding_callback(&self, cb: TranscodingCallback) {
        self.settings.lock().on_transcoding = Some(cb);
    }

    pub(super) fn is_transcoding(&self) -> bool {
        self.transcoding.load(Ordering::Acquire)
    }

    pub(super) fn branch_sources(&self) -> Vec<Option<Source>> {
        self.state.lock().branches.iter().map(|b| b.source).collect()
    }

    /// Asks whoever feeds this bin for a keyframe.
    pub(super) fn request_keyframe_upstream(&self) {
        if let Some(sink) = self.obj().static_pad("sink").filter(|p| p.is_linked()) {
            let _ = sink.push_event(codecs::force_key_unit_event());
        }
    }

    /// Input caps arrived or changed (streaming thread, before the tee
    /// sees them): branches whose plan changes are rewired now, so no
    /// consumer ever gets caps it did not accept.
    fn input_caps(&self, caps: gst::Caps) {
        {
            let mut st = self.state.lock();
            if st.caps.as_ref() == Some(&caps) {
                return;
            }
            let codec_changed = st.caps.as_ref().map(|c| Format::from_caps(c)) != Some(Format::from_caps(&caps));
            gst::debug!(CAT, imp = self, "input caps {caps}");
            st.caps = Some(caps);
            if codec_changed {
                // Conversion chains were built for the old format.
                let sources: Vec<usize> = (0..st.branches.len()).collect();
                for i in &sources {
                    let b = &mut st.branches[*i];
                    let old = std::mem::replace(
                        b,
                        Branch {
                            ghost: b.ghost.clone(),
                            source: None,
                            tee_pad: None,
                            converters: vec![],
                            bitrate: b.bitrate,
                        },
                    );
                    self.detach(&old);
                }
                self.drop_all_chains(&mut st);
            }
            for i in 0..st.branches.len() {
                self.replan_locked(&mut st, i);
            }
            self.collect_chains(&mut st);
        }
        self.after_change();
    }

    fn replan_branch(&self, pad: &gst::Pad) {
        {
            let mut st = self.state.lock();
            let Some(i) = st.branches.iter().position(|b| b.ghost.upcast_ref::<gst::Pad>() == pad) else { return };
            self.replan_locked(&mut st, i);
            self.collect_chains(&mut st);
        }
        self.after_change();
    }

    fn replan_locked(&self, st: &mut State, i: usize) {
        let ghost = st.branches[i].ghost.clone();
        let want = if ghost.peer().is_some() { ghost.peer_query_caps(None) } else { gst::Caps::new_empty() };
        let new = plan(st.caps.as_ref(), &want);
        if new == st.branches[i].source && (new.is_none() || st.branches[i].tee_pad.is_some()) {
            return;
        }
        gst::debug!(
            CAT,
            imp = self,
            "branch {}: {:?} -> {:?} (wants {want})",
            ghost.name(),
            st.branches[i].source,
            new
        );
        let old = std::mem::replace(
            &mut st.branches[i],
            Branch { ghost: ghost.clone(), source: None, tee_pad: None, converters: vec![], bitrate: None },
        );
        st.branches[i].bitrate = old.bitrate;
        self.detach(&old);
        let Some(src) = new else { return };
        // The consumer's standing bitrate wish, if it has one.
        let mut q = gst::query::Custom::new(gst::Structure::new_empty(BITRATE_EVENT));
        if ghost.peer_query(&mut q)
            && let Some(b) = q.structure().and_then(|s| s.get::<u32>("bitrate").ok())
        {
            st.branches[i].bitrate = Some(b);
        }
        match self.attach(st, src, &ghost) {
            Some((tee, pad, converters)) => {
                let b = &mut st.branches[i];
                b.source = Some(src);
                b.tee_pad = Some((tee, pad));
                b.converters = converters;
            }
            None => gst::warning!(CAT, imp = self, "branch {}: cannot build {:?}", ghost.name(), src),
        }
    }

    /// Wires `ghost` to the tee of `src`, building the chains it needs.
    fn attach(
        &self,
        st: &mut State,
        src: Source,
        ghost: &gst::GhostPad,
    ) -> Option<(gst::Element, gst::Pad, Vec<gst::Element>)> {
        let tee = self.tee_for(st, src)?;
        let pad = tee.request_pad_simple("src_%u")?;
        let mut converters = vec![];
        let target = if src == Source::Raw {
            let kind = st.caps.as_ref().and_then(|c| codecs::kind_of(c))?;
            converters = match kind {
                Kind::Video => vec![gst::ElementFactory::make("videoconvert").build().ok()?],
                Kind::Audio => vec![
                    gst::ElementFactory::make("audioconvert").build().ok()?,
                    gst::ElementFactory::make("audioresample").build().ok()?,
                ],
            };
            let obj = self.obj();
            codecs::add_chain(obj.upcast_ref(), &converters).ok()?;
            pad.link(&converters[0].static_pad("sink")?).ok()?;
            converters.last()?.static_pad("src")?
        } else {
            pad.clone()
        };
        if ghost.set_target(Some(&target)).is_err() {
            tee.release_request_pad(&pad);
            return None;
        }
        self.gate(st, &tee, &pad, src);
        Some((tee, pad, converters))
    }

    /// Makes a video branch start at a keyframe, asking for one.
    fn gate(&self, st: &State, tee: &gst::Element, pad: &gst::Pad, src: Source) {
        let Some(caps) = st.caps.as_ref() else { return };
        if codecs::kind_of(caps) != Some(Kind::Video) || src == Source::Raw {
            return;
        }
        // Whoever produces this tee's data makes the keyframe.
        let producer: Option<gst::Pad> = match src {
            Source::In | Source::Es => self.obj().static_pad("sink"),
            Source::Enc(c) => st.enc.get(&c).and_then(|ch| ch.encoder.as_ref()).and_then(|e| e.static_pad("src")),
            Source::Pay(c) => st
                .enc
                .get(&c)
                .and_then(|ch| ch.encoder.as_ref())
                .and_then(|e| e.static_pad("src"))
                .or_else(|| self.obj().static_pad("sink")),
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

    fn detach(&self, b: &Branch) {
        let _ = b.ghost.set_target(None::<&gst::Pad>);
        if let Some((tee, pad)) = &b.tee_pad {
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
            tee.release_request_pad(pad);
        }
        let obj = self.obj();
        for e in &b.converters {
            let _ = e.set_state(gst::State::Null);
            let _ = obj.remove(e);
        }
    }

    fn tee_for(&self, st: &mut State, src: Source) -> Option<gst::Element> {
        let caps = st.caps.clone()?;
        let in_fmt = Format::from_caps(&caps);
        match src {
            Source::In => Some(self.tee.clone()),
            Source::Es => match in_fmt? {
                Format::Es(_) => Some(self.tee.clone()),
                Format::Rtp(c) => {
                    if st.es.is_none() {
                        let els = codecs::make_depayloader(c)?;
                        st.es = Some(self.build_chain(st, &self.tee.clone(), els, None, false)?);
                    }
                    st.es.as_ref().map(|ch| ch.tee.clone())
                }
            },
            Source::Raw => {
                if codecs::raw_kind(&caps).is_some() {
                    return Some(self.tee.clone());
                }
                if st.raw.is_none() {
                    let codec = in_fmt?.codec();
                    let feed = self.tee_for(st, Source::Es)?;
                    let dec = codecs::make_decoder(codec)?;
                    st.raw = Some(self.build_chain(st, &feed, vec![dec], None, true)?);
                }
                st.raw.as_ref().map(|ch| ch.tee.clone())
            }
            Source::Enc(c) => {
                if !st.enc.contains_key(&c) {
                    let feed = self.tee_for(st, Source::Raw)?;
                    let bitrate = self.settings.lock().bitrate.effective(None);
                    let mut els = codecs::make_preconvert(c)?;
                    let enc = codecs::make_encoder(c, bitrate)?;
                    els.push(enc.clone());
                    els.extend(codecs::make_postencode(c)?);
                    let chain = self.build_chain(st, &feed, els, Some(enc), true)?;
                    st.enc.insert(c, chain);
                }
                st.enc.get(&c).map(|ch| ch.tee.clone())
            }
            Source::Pay(c) => {
                if !st.pay.contains_key(&c) {
                    let feed = if in_fmt.map(Format::codec) == Some(c) {
                        self.tee_for(st, Source::Es)?
                    } else {
                        self.tee_for(st, Source::Enc(c))?
                    };
                    let mtu = self.settings.lock().mtu;
                    let pay = codecs::make_payloader(c, mtu)?;
                    let chain = self.build_chain(st, &feed, vec![pay], None, false)?;
                    st.pay.insert(c, chain);
                }
                st.pay.get(&c).map(|ch| ch.tee.clone())
            }
        }
    }

    /// `feed_tee ! [queue !] elements... ! tee`.
    fn build_chain(
        &self,
        st: &mut State,
        feed_tee: &gst::Element,
        mut elements: Vec<gst::Element>,
        encoder: Option<gst::Element>,
        threaded: bool,
    ) -> Option<Chain> {
        let obj = self.obj();
        st.counter += 1;
        if threaded {
            let q = gst::ElementFactory::make("queue")
                .property("max-size-buffers", 0u32)
                .property("max-size-bytes", 0u32)
                .property("max-size-time", DEFAULT_QUEUE_MAX_TIME)
                .property_from_str("leaky", "downstream")
                .build()
                .ok()?;
            elements.insert(0, q);
        }
        let tee = gst::ElementFactory::make("tee")
            .name(format!("tee_{}", st.counter))
            .property("allow-not-linked", true)
            .build()
            .ok()?;
        elements.push(tee.clone());
        if let Err(e) = codecs::add_chain(obj.upcast_ref(), &elements) {
            gst::warning!(CAT, imp = self, "cannot build chain: {e}");
            for e in &elements {
                let _ = e.set_state(gst::State::Null);
                let _ = obj.remove(e);
            }
            return None;
        }
        let feed = feed_tee.request_pad_simple("src_%u")?;
        let first = elements[0].static_pad("sink")?;
        if feed.link(&first).is_err() {
            feed_tee.release_request_pad(&feed);
            return None;
        }
        // The chain's first buffer must be decodable.
        if let Some(caps) = st.caps.clone()
            && codecs::kind_of(&caps) == Some(Kind::Video)
        {
            let rtp = feed_tee == &self.tee && is_rtp(&caps);
            let codec = Format::from_caps(&caps).map(Format::codec);
            gate_pad(&feed, if rtp { codec } else { None }, rtp, self.obj().static_pad("sink"));
        }
        Some(Chain { feed, feed_tee: feed_tee.clone(), elements, tee, encoder })
    }

    fn remove_chain(&self, ch: Chain) {
        let obj = self.obj();
        if let Some(peer) = ch.feed.peer() {
            let _ = ch.feed.unlink(&peer);
        }
        ch.feed_tee.release_request_pad(&ch.feed);
        for e in &ch.elements {
            let _ = e.set_state(gst::State::Null);
            let _ = obj.remove(e);
        }
    }

    fn drop_all_chains(&self, st: &mut State) {
        let pays: Vec<Chain> = std::mem::take(&mut st.pay).into_values().collect();
        let encs: Vec<Chain> = std::mem::take(&mut st.enc).into_values().collect();
        for ch in pays.into_iter().chain(encs) {
            self.remove_chain(ch);
        }
        if let Some(ch) = st.raw.take() {
            self.remove_chain(ch);
        }
        if let Some(ch) = st.es.take() {
            self.remove_chain(ch);
        }
    }

    /// Removes conversion chains nobody uses any more (so transcoding stops
    /// when its last consumer leaves).
    fn collect_chains(&self, st: &mut State) {
        let uses = |st: &State, s: Source| st.branches.iter().any(|b| b.source == Some(s));
        let in_codec = st.caps.as_ref().and_then(|c| Format::from_caps(c)).map(Format::codec);
        let unused_pay: Vec<Codec> = st.pay.keys().copied().filter(|c| !uses(st, Source::Pay(*c))).collect();
        for c in unused_pay {
            if let Some(ch) = st.pay.remove(&c) {
                self.remove_chain(ch);
            }
        }
        let unused_enc: Vec<Codec> = st
            .enc
            .keys()
            .copied()
            .filter(|c| !(uses(st, Source::Enc(*c)) || st.pay.contains_key(c) && in_codec != Some(*c)))
            .collect();
        for c in unused_enc {
            if let Some(ch) = st.enc.remove(&c) {
                self.remove_chain(ch);
            }
        }
        if st.raw.is_some() && !uses(st, Source::Raw) && st.enc.is_empty() {
            let ch = st.raw.take().expect("checked");
            self.remove_chain(ch);
        }
        let pay_from_es = in_codec.is_some_and(|c| st.pay.contains_key(&c));
        if st.es.is_some() && !uses(st, Source::Es) && st.raw.is_none() && !pay_from_es {
            let ch = st.es.take().expect("checked");
            self.remove_chain(ch);
        }
    }

    /// Fires the transcoding callback if the state flipped, and refreshes
    /// bitrates.
    fn after_change(&self) {
        let (transcoding, upstream) = {
            let mut st = self.state.lock();
            self.apply_encoder_bitrates(&st);
            let upstream = self.aggregate_upstream_bitrate(&mut st);
            (!st.enc.is_empty(), upstream)
        };
        if let Some(b) = upstream {
            self.push_bitrate_upstream(b);
        }
        if self.transcoding.swap(transcoding, Ordering::AcqRel) != transcoding {
            gst::info!(CAT, imp = self, "transcoding: {transcoding}");
            let cb = self.settings.lock().on_transcoding.clone();
            if let Some(cb) = cb {
                cb(transcoding);
            }
        }
    }

    fn branch_bitrate(&self, pad: &gst::Pad, bitrate: Option<u32>) {
        let upstream = {
            let mut st = self.state.lock();
            let Some(b) = st.branches.iter_mut().find(|b| b.ghost.upcast_ref::<gst::Pad>() == pad) else { return };
            b.bitrate = bitrate;
            self.apply_encoder_bitrates(&st);
            self.aggregate_upstream_bitrate(&mut st)
        };
        if let Some(b) = upstream {
            self.push_bitrate_upstream(b);
        }
    }

    /// Every encoder runs at the lowest bitrate its consumers asked for,
    /// within the element's `[minEncoderBitrate, maxEncoderBitrate]`.
    fn apply_encoder_bitrates(&self, st: &State) {
        let settings = self.settings.lock().bitrate;
        for (c, ch) in &st.enc {
            let Some(enc) = &ch.encoder else { continue };
            let requested = st
                .branches
                .iter()
                .filter(|b| b.source == Some(Source::Enc(*c)) || b.source == Some(Source::Pay(*c)))
                .filter_map(|b| b.bitrate)
                .min();
            codecs::set_encoder_bitrate(enc, settings.effective(requested));
        }
    }

    /// The lowest bitrate wanted by consumers fed without re-encoding, if it
    /// changed since last sent upstream.
    fn aggregate_upstream_bitrate(&self, st: &mut State) -> Option<u32> {
        let in_codec = st.caps.as_ref().and_then(|c| Format::from_caps(c)).map(Format::codec);
        let min = st
            .branches
            .iter()
            .filter(|b| match b.source {
                Some(Source::In) | Some(Source::Es) => true,
                Some(Source::Pay(c)) => Some(c) == in_codec,
                _ => false,
            })
            .filter_map(|b| b.bitrate)
            .min();
        if min.is_some() && min != st.upstream_bitrate {
            st.upstream_bitrate = min;
            min
        } else {
            None
        }
    }

    fn push_bitrate_upstream(&self, bitrate: u32) {
        if let Some(sink) = self.obj().static_pad("sink").filter(|p| p.is_linked()) {
            let _ = sink.push_event(super::bitrate_event(bitrate));
        }
    }
}

/// Drops data on `pad` until a keyframe starts, asking `producer` for one
/// (again every [`KEYFRAME_RETRY`] while waiting).
fn gate_pad(pad: &gst::Pad, rtp_codec: Option<Codec>, rtp: bool, producer: Option<gst::Pad>) {
    let asked = Mutex::new(None::<Instant>);
    let ask = move || {
        let mut last = asked.lock();
        if last.is_none_or(|t| t.elapsed() >= KEYFRAME_RETRY) {
            *last = Some(Instant::now());
            if let Some(p) = producer.as_ref().filter(|p| p.direction() == gst::PadDirection::Src || p.is_linked()) {
                let ev = codecs::force_key_unit_event();
                if p.direction() == gst::PadDirection::Sink {
                    let _ = p.push_event(ev);
                } else {
                    let _ = p.send_event(ev);
                }
            }
        }
    };
    ask();
    let is_key = move |b: &gst::BufferRef| -> bool {
        if rtp {
            let Some(codec) = rtp_codec else { return true };
            match gst_rtp::RTPBuffer::from_buffer_readable(b) {
                Ok(r) => r.payload().is_ok_and(|p| keyframe::rtp_payload_starts_keyframe(codec, p)),
                Err(_) => false,
            }
        } else {
            !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
        }
    };
    let dropped = std::sync::atomic::AtomicU32::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |pad, info| {
        let key = match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => is_key(b),
            Some(gst::PadProbeData::BufferList(l)) => l.iter().any(&is_key),
            _ => return gst::PadProbeReturn::Ok,
        };
        if key {
            gst::debug!(CAT, obj = pad, "keyframe: branch starts after {} dropped", dropped.load(Ordering::Relaxed));
            gst::PadProbeReturn::Remove
        } else {
            dropped.fetch_add(1, Ordering::Relaxed);
            ask();
            gst::PadProbeReturn::Drop
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(codec: &str) -> gst::Caps {
        gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", codec)
            .field("clock-rate", 90000)
            .field("payload", 96)
            .field("ssrc", 1234u32)
            .build()
    }

    #[test]
    fn same_format_passes_through_and_other_formats_are_converted() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        let want_vp8 = Codec::Vp8.rtp_caps();
        assert_eq!(plan(Some(&vp8), &want_vp8), Some(Source::In));
        assert_eq!(plan(Some(&vp8), &gst::Caps::new_any()), Some(Source::In));
        assert_eq!(plan(Some(&vp8), &Codec::Vp8.es_caps()), Some(Source::Es));
        assert_eq!(plan(Some(&vp8), &Codec::H264.rtp_caps()), Some(Source::Pay(Codec::H264)));
        assert_eq!(plan(Some(&vp8), &Codec::H264.es_caps()), Some(Source::Enc(Codec::H264)));
        assert_eq!(plan(Some(&vp8), &gst::Caps::builder("video/x-raw").build()), Some(Source::Raw));
        assert_eq!(plan(Some(&Codec::Vp8.es_caps()), &want_vp8), Some(Source::Pay(Codec::Vp8)));
        // A consumer not ready yet, or input not known yet.
        assert_eq!(plan(Some(&vp8), &gst::Caps::new_empty()), None);
        assert_eq!(plan(None, &want_vp8), None);
        assert_eq!(plan(None, &gst::Caps::new_any()), Some(Source::In));
        // Audio is never encoded into video.
        assert_eq!(plan(Some(&vp8), &Codec::Opus.rtp_caps()), None);
    }
}
