use parking_lot::Mutex;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{Continuity, SendFormat, rewrite_header, strip_extension};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("kmsrtpinput", gst::DebugColorFlags::empty(), Some("WebRTC send input")));

#[derive(Default)]
struct Settings {
    formats: Vec<SendFormat>,
}

#[derive(Default)]
struct State {
    /// The format of the incoming stream (from its caps).
    current: Option<SendFormat>,
    continuity: Continuity,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Caps already pushed ahead of any data (at negotiation).
    announced: Option<gst::Caps>,
}

pub struct RtpInput {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    ssrc: AtomicU32,
    /// Bitrate the receiver can take (bps, 0 = not known).
    bitrate: AtomicU32,
    /// Largest RTP packet this stream may send (the endpoint's MTU, 0 =
    /// not set): the `kms-mtu` answer to whoever payloads for us.
    mtu: AtomicU32,
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Whether the transport is up (DTLS connected). webrtcbin blocks its
    /// send path until then with a pad probe, which would park the
    /// upstream streaming thread (another element's) indefinitely if the
    /// peer never connects, and with it every unlink or release that needs
    /// that thread's stream lock. Until then packets are held here instead
    /// (the last [`HELD_PACKETS`]) and sent, in order, by the streaming
    /// thread once the gate is open: in a loopback the first keyframe
    /// often arrives a moment before our side of the handshake is done.
    open: AtomicBool,
    held: Mutex<Held>,
    /// Packets wait in `held`: the open path only takes that lock then.
    any_held: AtomicBool,
}

/// Packets kept while the gate is closed: a keyframe of 640x480 VP8 is
/// 10–40 packets; older ones are dropped first.
const HELD_PACKETS: usize = 128;

#[derive(Default)]
struct Held {
    packets: std::collections::VecDeque<gst::Buffer>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtpInput {
    const NAME: &'static str = "KmsRtpInput";
    type Type = super::RtpInput;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").expect("template"))
            .chain_function(|pad, parent, buffer| {
                RtpInput::catch_panic_pad_function(parent, || Err(gst::FlowError::Error), |s| s.chain(pad, buffer))
            })
            .event_function(|pad, parent, event| {
                RtpInput::catch_panic_pad_function(parent, || false, |s| s.sink_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                RtpInput::catch_panic_pad_function(parent, || false, |s| s.sink_query(pad, query))
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").expect("template"))
            .event_function(|pad, parent, event| {
                RtpInput::catch_panic_pad_function(parent, || false, |s| s.src_event(pad, event))
            })
            .build();
        RtpInput {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
            ssrc: AtomicU32::new(0),
            bitrate: AtomicU32::new(0),
            mtu: AtomicU32::new(0),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            open: AtomicBool::new(false),
            held: Mutex::new(Held::default()),
            any_held: AtomicBool::new(false),
        }
    }
}

impl ObjectImpl for RtpInput {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("unique");
        obj.add_pad(&self.srcpad).expect("unique");
    }
}

impl GstObjectImpl for RtpInput {}

impl ElementImpl for RtpInput {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "WebRTC send input",
                "Filter/Network/RTP",
                "Maps any RTP stream onto one negotiated send stream",
                "kurento-rs",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("application/x-rtp").build();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                    .expect("template"),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps)
                    .expect("template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl RtpInput {
    pub(super) fn set_formats(&self, formats: Vec<SendFormat>, ssrc: u32) {
        gst::debug!(CAT, imp = self, "formats {:?}, ssrc {ssrc}", formats.iter().map(|f| f.pt).collect::<Vec<_>>());
        self.ssrc.store(ssrc, Ordering::Release);
        let first = formats.first().cloned();
        self.settings.lock().formats = formats;
        // Announce the stream to webrtcbin now: its caps handling can wait
        // on webrtcbin's own lock, which must not delay the first packet.
        if let Some(f) = first
            && self.srcpad.is_linked()
        {
            let caps = self.output_caps(&f, &gst::Caps::new_empty());
            let _ = self.srcpad.push_event(gst::event::StreamStart::new(&format!("kms-rtp-input-{ssrc}")));
            let _ = self.srcpad.push_event(gst::event::Caps::new(&caps));
            let _ = self.srcpad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
            self.state.lock().announced = Some(caps);
        }
    }

    /// Returns whether it changed.
    pub(super) fn set_mtu(&self, mtu: u32) -> bool {
        self.mtu.swap(mtu, Ordering::AcqRel) != mtu
    }

    /// Returns whether it changed.
    pub(super) fn set_bitrate(&self, bps: u32) -> bool {
        self.bitrate.swap(bps, Ordering::AcqRel) != bps
    }

    /// Returns whether the gate just opened, when a keyframe is asked for
    /// anyway: held packets may have started mid-frame or been dropped.
    /// Closing discards what is held.
    pub(super) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(super) fn set_open(&self, open: bool) -> bool {
        let mut held = self.held.lock();
        let was_open = self.open.swap(open, Ordering::AcqRel);
        if !open {
            held.packets.clear();
            return false;
        }
        !was_open
    }

    pub(super) fn ssrc(&self) -> u32 {
        self.ssrc.load(Ordering::Acquire)
    }

    pub(super) fn counters(&self) -> (u64, u64) {
        (self.packets.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    fn accepted(&self) -> gst::Caps {
        let settings = self.settings.lock();
        let mut caps = gst::Caps::new_empty();
        for f in &settings.formats {
            caps.merge(f.caps.clone());
        }
        caps
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let caps = self.accepted();
                let caps = match q.filter() {
                    Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            gst::QueryViewMut::AcceptCaps(q) => {
                let ok = self.accepted().can_intersect(q.caps());
                q.set_result(ok);
                true
            }
            gst::QueryViewMut::Custom(q)
                if q.structure().is_some_and(|s| s.name() == kms_core::agnosticbin::MTU_QUERY) =>
            {
                let mtu = self.mtu.load(Ordering::Acquire);
                if mtu == 0 {
                    return false;
                }
                q.structure_mut().set("mtu", mtu);
                true
            }
            gst::QueryViewMut::Custom(q)
                if q.structure().is_some_and(|s| s.name() == kms_core::agnosticbin::BITRATE_EVENT) =>
            {
                let b = self.bitrate.load(Ordering::Acquire);
                if b == 0 {
                    return false;
                }
                q.structure_mut().set("bitrate", b);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let caps = c.caps();
                let format = {
                    let settings = self.settings.lock();
                    settings.formats.iter().find(|f| f.caps.can_intersect(caps)).cloned()
                };
                let Some(format) = format else {
                    gst::warning!(CAT, imp = self, "caps not negotiated for this stream: {caps}");
                    return false;
                };
                let out = self.output_caps(&format, caps);
                let announced = {
                    let mut st = self.state.lock();
                    st.current = Some(format);
                    st.announced.take()
                };
                if announced.as_ref() == Some(&out) {
                    return true;
                }
                self.srcpad.push_event(gst::event::Caps::new(&out))
            }
            gst::EventView::Segment(s) => {
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    self.state.lock().segment = Some(seg);
                }
                self.srcpad.push_event(event)
            }
            // One stream toward webrtcbin, whatever upstream changes.
            gst::EventView::StreamStart(_) if self.srcpad.sticky_event::<gst::event::StreamStart>(0).is_some() => true,
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// The negotiated caps with this stream's payload type and SSRC, plus
    /// codec parameters the incoming stream carries (H.264 sprop, ...).
    fn output_caps(&self, format: &SendFormat, incoming: &gst::CapsRef) -> gst::Caps {
        let mut out = format.caps.clone();
        {
            let out = out.make_mut();
            if let Some(s) = out.structure_mut(0) {
                s.set("payload", format.pt as i32);
                s.set("ssrc", self.ssrc());
                if let Some(inc) = incoming.structure(0) {
                    for field in ["sprop-parameter-sets", "profile-level-id", "encoding-params", "sprop-stereo"] {
                        if !s.has_field(field)
                            && let Ok(v) = inc.value(field)
                        {
                            s.set_value(field, v.clone());
                        }
                    }
                }
            }
        }
        out.truncate();
        out
    }

    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        // A NACK webrtcbin's `rtprtxsend` did not answer: its sequence
        // number is ours, meaningless to whoever feeds us.
        if crate::webrtc::loss::is_retransmission_request(&event) {
            return true;
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    fn chain(&self, _pad: &gst::Pad, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if !self.open.load(Ordering::Acquire) {
            let mut held = self.held.lock();
            // Re-checked under the lock `set_open` takes: no packet is held
            // after the gate opened.
            if !self.open.load(Ordering::Acquire) {
                if held.packets.len() == HELD_PACKETS {
                    held.packets.pop_front();
                }
                held.packets.push_back(buffer);
                self.any_held.store(true, Ordering::Release);
                return Ok(gst::FlowSuccess::Ok);
            }
        }
        if self.any_held.swap(false, Ordering::AcqRel) {
            let earlier: Vec<gst::Buffer> = self.held.lock().packets.drain(..).collect();
            for b in earlier {
                self.forward(b)?;
            }
        }
        self.forward(buffer)
    }

    /// Rewrites one packet into this stream and sends it.
    fn forward(&self, mut buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let ssrc_out = self.ssrc();
        let (pt, clock_rate) = {
            let st = self.state.lock();
            match &st.current {
                Some(f) => (f.pt, f.clock_rate),
                None => return Ok(gst::FlowSuccess::Ok),
            }
        };
        if let Some(stripped) = {
            let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
            strip_extension(&map)
        } {
            let mut nb = gst::Buffer::from_mut_slice(stripped);
            {
                let nbm = nb.get_mut().expect("fresh buffer");
                let _ = buffer.copy_into(nbm, gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::FLAGS, ..);
            }
            buffer = nb;
        }
        let now = {
            let st = self.state.lock();
            let pts = buffer.pts();
            st.segment.as_ref().and_then(|s| s.to_running_time(pts)).or(pts).map(|t| t.nseconds()).unwrap_or(0)
        };
        {
            let b = buffer.make_mut();
            let mut map = b.map_writable().map_err(|_| gst::FlowError::Error)?;
            if map.len() < 12 || map[0] >> 6 != 2 {
                return Ok(gst::FlowSuccess::Ok);
            }
            let ssrc_in = u32::from_be_bytes([map[8], map[9], map[10], map[11]]);
            let seq = u16::from_be_bytes([map[2], map[3]]);
            let ts = u32::from_be_bytes([map[4], map[5], map[6], map[7]]);
            let (oseq, ots) = self.state.lock().continuity.map(ssrc_in, seq, ts, now, clock_rate);
            rewrite_header(&mut map, pt, oseq, ots, ssrc_out);
            if self.packets.fetch_add(1, Ordering::Relaxed) == 0 {
                gst::debug!(CAT, imp = self, "first packet out: ssrc {ssrc_out}, pt {pt}, seq {oseq}");
            }
            self.bytes.fetch_add(map.len() as u64, Ordering::Relaxed);
            kms_core::metrics::RTP.sent(map.len());
        }
        self.srcpad.push(buffer)
    }
}
