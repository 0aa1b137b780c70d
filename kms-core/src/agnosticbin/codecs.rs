//! The formats agnosticbin converts between (spec §10.3): for each codec its
//! elementary-stream caps, its RTP encoding, and the GStreamer elements that
//! depayload, payload, decode and encode it.

use gst::prelude::*;

/// A codec agnosticbin knows how to adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    Vp8,
    Vp9,
    H264,
    Opus,
    Pcmu,
    Pcma,
}

/// Audio or video: which raw caps and converters a codec goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

/// A concrete stream format: a codec, elementary or RTP-packetized, or raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Es(Codec),
    Rtp(Codec),
}

pub const ALL_CODECS: &[Codec] = &[Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus, Codec::Pcmu, Codec::Pcma];

/// Default RTP MTU of payloaders (spec §11.3 `mtu`).
pub const DEFAULT_MTU: u32 = 1200;

impl Codec {
    pub fn kind(self) -> Kind {
        match self {
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => Kind::Video,
            Codec::Opus | Codec::Pcmu | Codec::Pcma => Kind::Audio,
        }
    }

    /// The RTP `encoding-name` (upper case, as GStreamer's SDP helpers write it).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::H264 => "H264",
            Codec::Opus => "OPUS",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn clock_rate(self) -> i32 {
        match self {
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => 90000,
            Codec::Opus => 48000,
            Codec::Pcmu | Codec::Pcma => 8000,
        }
    }

    /// Static payload type, for codecs that have one.
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            _ => None,
        }
    }

    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        ALL_CODECS.iter().copied().find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }

    /// Elementary-stream caps as produced by depayloaders and encoders.
    pub fn es_caps(self) -> gst::Caps {
        match self {
            Codec::Vp8 => gst::Caps::builder("video/x-vp8").build(),
            Codec::Vp9 => gst::Caps::builder("video/x-vp9").build(),
            Codec::H264 => gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
            Codec::Opus => gst::Caps::builder("audio/x-opus").build(),
            Codec::Pcmu => gst::Caps::builder("audio/x-mulaw").field("rate", 8000).field("channels", 1).build(),
            Codec::Pcma => gst::Caps::builder("audio/x-alaw").field("rate", 8000).field("channels", 1).build(),
        }
    }

    /// Minimal RTP caps identifying this codec (no payload type, no ssrc).
    pub fn rtp_caps(self) -> gst::Caps {
        let media = match self.kind() {
            Kind::Audio => "audio",
            Kind::Video => "video",
        };
        gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", self.encoding_name())
            .field("clock-rate", self.clock_rate())
            .build()
    }

    fn es_structure_name(self) -> &'static str {
        match self {
            Codec::Vp8 => "video/x-vp8",
            Codec::Vp9 => "video/x-vp9",
            Codec::H264 => "video/x-h264",
            Codec::Opus => "audio/x-opus",
            Codec::Pcmu => "audio/x-mulaw",
            Codec::Pcma => "audio/x-alaw",
        }
    }

    pub fn depayloader(self) -> &'static str {
        match self {
            Codec::Vp8 => "rtpvp8depay",
            Codec::Vp9 => "rtpvp9depay",
            Codec::H264 => "rtph264depay",
            Codec::Opus => "rtpopusdepay",
            Codec::Pcmu => "rtppcmudepay",
            Codec::Pcma => "rtppcmadepay",
        }
    }

    pub fn payloader(self) -> &'static str {
        match self {
            Codec::Vp8 => "rtpvp8pay",
            Codec::Vp9 => "rtpvp9pay",
            Codec::H264 => "rtph264pay",
            Codec::Opus => "rtpopuspay",
            Codec::Pcmu => "rtppcmupay",
            Codec::Pcma => "rtppcmapay",
        }
    }

    /// Decoder candidates, best first.
    pub fn decoders(self) -> &'static [&'static str] {
        match self {
            Codec::Vp8 => &["vp8dec"],
            Codec::Vp9 => &["vp9dec"],
            Codec::H264 => &["avdec_h264", "openh264dec"],
            Codec::Opus => &["opusdec"],
            Codec::Pcmu => &["mulawdec"],
            Codec::Pcma => &["alawdec"],
        }
    }

    /// Encoder candidates, best first.
    pub fn encoders(self) -> &'static [&'static str] {
        match self {
            Codec::Vp8 => &["vp8enc"],
            Codec::Vp9 => &["vp9enc"],
            Codec::H264 => &["x264enc", "openh264enc"],
            Codec::Opus => &["opusenc"],
            Codec::Pcmu => &["mulawenc"],
            Codec::Pcma => &["alawenc"],
        }
    }

    /// Whether this GStreamer installation can depayload and payload it.
    pub fn can_forward(self) -> bool {
        exists(self.depayloader()) && exists(self.payloader())
    }

    /// Whether this GStreamer installation can decode it.
    pub fn can_decode(self) -> bool {
        self.decoders().iter().any(|d| exists(d))
    }

    /// Whether this GStreamer installation can encode it.
    pub fn can_encode(self) -> bool {
        self.encoders().iter().any(|d| exists(d))
    }
}

/// `gst::ElementFactory::find` (not gst-inspect, which can lie about
/// plugins whose dependencies are missing at load time).
pub fn exists(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

impl Format {
    pub fn codec(self) -> Codec {
        match self {
            Format::Es(c) | Format::Rtp(c) => c,
        }
    }

    pub fn caps(self) -> gst::Caps {
        match self {
            Format::Es(c) => c.es_caps(),
            Format::Rtp(c) => c.rtp_caps(),
        }
    }

    /// The format of one caps structure, if agnosticbin knows it.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Format> {
        if s.name() == "application/x-rtp" {
            let name = s.get::<&str>("encoding-name").ok()?;
            return Codec::from_encoding_name(name).map(Format::Rtp);
        }
        ALL_CODECS.iter().copied().find(|c| c.es_structure_name() == s.name()).map(Format::Es)
    }

    pub fn from_caps(caps: &gst::CapsRef) -> Option<Format> {
        caps.structure(0).and_then(Format::from_structure)
    }
}

/// Raw caps of a kind.
pub fn raw_caps(kind: Kind) -> gst::Caps {
    match kind {
        Kind::Audio => gst::Caps::builder("audio/x-raw").build(),
        Kind::Video => gst::Caps::builder("video/x-raw").build(),
    }
}

/// Whether the caps are raw audio or video (the kind, if so).
pub fn raw_kind(caps: &gst::CapsRef) -> Option<Kind> {
    match caps.structure(0)?.name().as_str() {
        "audio/x-raw" => Some(Kind::Audio),
        "video/x-raw" => Some(Kind::Video),
        _ => None,
    }
}

/// Audio or video of arbitrary caps (RTP `media`, or the structure name).
pub fn kind_of(caps: &gst::CapsRef) -> Option<Kind> {
    let s = caps.structure(0)?;
    if s.name() == "application/x-rtp" {
        return match s.get::<&str>("media").ok()? {
            "audio" => Some(Kind::Audio),
            "video" => Some(Kind::Video),
            _ => None,
        };
    }
    if s.name().starts_with("audio/") {
        Some(Kind::Audio)
    } else if s.name().starts_with("video/") {
        Some(Kind::Video)
    } else {
        None
    }
}

/// Highest bitrate an encoder is ever asked for (bps).
pub const MAX_ENCODER_BITRATE: u32 = 20_000_000;

/// Encoder bitrate settings (spec §10.3: the element's `encoderBitrate`,
/// `minEncoderBitrate`, `maxEncoderBitrate`, in bps; 0 max = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitrate {
    pub target: u32,
    pub min: u32,
    pub max: u32,
}

impl Default for Bitrate {
    fn default() -> Self {
        Bitrate { target: 300_000, min: 0, max: 0 }
    }
}

impl Bitrate {
    /// The bitrate to apply given the lowest bitrate requested by consumers
    /// (REMB), clamped to `[min, max]`.
    pub fn effective(&self, requested: Option<u32>) -> u32 {
        let mut b = requested.unwrap_or(self.target);
        if self.max > 0 {
            b = b.min(self.max);
        }
        // Encoders take their bitrate in (k)bps as 32-bit values: keep it
        // sane whatever a consumer asks for.
        b.max(self.min).clamp(1000, MAX_ENCODER_BITRATE)
    }
}

/// Builds the encoder for `codec`, configured for real time.
pub fn make_encoder(codec: Codec, bitrate: u32) -> Option<gst::Element> {
    let name = codec.encoders().iter().find(|e| exists(e))?;
    let enc = gst::ElementFactory::make(name).build().ok()?;
    match *name {
        "vp8enc" | "vp9enc" => {
            enc.set_property("target-bitrate", bitrate as i32);
            // Real time at libvpx's fastest setting, as KMS configures it
            // (cpu-used 16): half the CPU of cpu-used 8 for 640x480.
            enc.set_property("deadline", 1i64);
            enc.set_property("cpu-used", 16i32);
            enc.set_property("lag-in-frames", 0i32);
            enc.set_property_from_str("end-usage", "cbr");
            enc.set_property("keyframe-max-dist", 300i32);
            enc.set_property("resize-allowed", true);
            enc.set_property("threads", 1i32);
            enc.set_property("buffer-size", 1000i32);
            enc.set_property("buffer-initial-size", 500i32);
            enc.set_property("buffer-optimal-size", 600i32);
            enc.set_property_from_str("error-resilient", "default");
        }
        "openh264enc" => {
            enc.set_property("bitrate", bitrate);
            enc.set_property_from_str("complexity", "low");
            enc.set_property_from_str("rate-control", "bitrate");
            enc.set_property("gop-size", 300u32);
        }
        "x264enc" => {
            enc.set_property("bitrate", (bitrate / 1000).max(1));
            enc.set_property_from_str("tune", "zerolatency");
            enc.set_property_from_str("speed-preset", "ultrafast");
            enc.set_property("key-int-max", 300u32);
            enc.set_property("threads", 1u32);
        }
        "opusenc" => {
            enc.set_property("bitrate", 32000i32.max((bitrate as i32).min(64000)));
        }
        _ => {}
    }
    Some(enc)
}

/// Applies a new bitrate to a running encoder.
pub fn set_encoder_bitrate(enc: &gst::Element, bitrate: u32) {
    let name = enc.factory().map(|f| f.name().to_string()).unwrap_or_default();
    match name.as_str() {
        "vp8enc" | "vp9enc" => enc.set_property("target-bitrate", bitrate as i32),
        "openh264enc" => enc.set_property("bitrate", bitrate),
        "x264enc" => enc.set_property("bitrate", (bitrate / 1000).max(1)),
        _ => {}
    }
}

pub fn make_decoder(codec: Codec) -> Option<gst::Element> {
    let name = codec.decoders().iter().find(|e| exists(e))?;
    let dec = gst::ElementFactory::make(name).build().ok()?;
    if dec.has_property("max-threads") {
        dec.set_property("max-threads", 1i32);
    }
    // libav keeps references to the frames it decodes into, so with direct
    // rendering every output frame is not writable and the base decoder
    // copies it into freshly malloc'd memory (an mmap, page faults and a
    // munmap per frame at our fixed mmap threshold). Without it libav
    // decodes into its own buffers and the frame is copied once into a
    // pooled buffer.
    if dec.has_property("direct-rendering") {
        dec.set_property("direct-rendering", false);
    }
    if *name == "vp8dec" || *name == "vp9dec" {
        dec.set_property("threads", 1u32);
    }
    Some(dec)
}

pub fn make_payloader(codec: Codec, mtu: u32) -> Option<gst::Element> {
    let pay = gst::ElementFactory::make(codec.payloader()).property("mtu", mtu).build().ok()?;
    match codec {
        Codec::Vp8 | Codec::Vp9 => pay.set_property_from_str("picture-id-mode", "15-bit"),
        Codec::H264 => {
            pay.set_property("config-interval", -1i32);
            pay.set_property_from_str("aggregate-mode", "zero-latency");
        }
        _ => {}
    }
    Some(pay)
}

/// How long the jitter buffer in front of a depayloader waits for a
/// missing packet (its retransmission, after a NACK) before giving up on
/// it. 150 ms covers a NACK round trip on the networks WebRTC is used on
/// (the browser's own NACK window is ~100–200 ms) while adding little
/// delay: in-order packets leave at once, only a gap waits.
pub const JITTER_LATENCY_MS: u32 = 150;

/// An `rtpjitterbuffer` for RTP that gets depayloaded (decoded, recorded,
/// filtered): it reorders, and asks upstream for lost packets with
/// `GstRTPRetransmissionRequest` events, which RTP endpoints turn into
/// NACKs. Pass-through branches never get one (forwarding needs no order).
pub fn make_jitterbuffer() -> Option<gst::Element> {
    let jb = gst::ElementFactory::make("rtpjitterbuffer")
        .property("latency", JITTER_LATENCY_MS)
        .property("do-retransmission", true)
        // Tells the depayloader about gaps it will never see filled.
        .property("do-lost", true)
        .build()
        .ok()?;
    Some(jb)
}

/// Limits raw video to `framerate` (frames, per seconds) by dropping
/// frames that come sooner than one frame interval after the last one kept
/// (by timestamp). Never duplicates, and works on variable-rate input
/// (WebRTC's `framerate=0/1`), on which GStreamer 1.22's `videorate`
/// aborts (`gst_video_rate_push_buffer: GST_BUFFER_DURATION_IS_VALID`) in
/// `max-rate`/`drop-only` mode. An `identity` carries the probe, so the
/// limiter is one element of the chain like the others.
pub fn make_rate_limiter(framerate: (i32, i32)) -> Option<Vec<gst::Element>> {
    let (num, den) = (framerate.0.max(1) as u64, framerate.1.max(1) as u64);
    let interval = gst::ClockTime::SECOND.mul_div_floor(den, num)?;
    // Timestamps jitter: a frame a little early still counts as on time.
    let tolerance = interval / 4;
    let identity = gst::ElementFactory::make("identity").build().ok()?;
    let next = parking_lot::Mutex::new(None::<gst::ClockTime>);
    // On the source pad: `Drop` from a sink-pad probe trips a NULL unref in
    // GStreamer 1.22.
    identity.static_pad("src")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else { return gst::PadProbeReturn::Ok };
        let mut next = next.lock();
        match *next {
            Some(n) if pts + tolerance < n => gst::PadProbeReturn::Drop,
            Some(n) => {
                // Keep the cadence; after a gap, restart from this frame.
                *next = Some(if pts < n + interval { n + interval } else { pts + interval });
                gst::PadProbeReturn::Ok
            }
            None => {
                *next = Some(pts + interval);
                gst::PadProbeReturn::Ok
            }
        }
    });
    Some(vec![identity])
}

/// Applies a forced audio bitrate (`AudioCaps.bitrate`, bps) to an audio
/// encoder; video encoders take theirs through [`set_encoder_bitrate`].
pub fn set_audio_encoder_bitrate(enc: &gst::Element, bitrate: u32) {
    let name = enc.factory().map(|f| f.name().to_string()).unwrap_or_default();
    if name == "opusenc" {
        // opusenc's range.
        enc.set_property("bitrate", (bitrate as i32).clamp(4000, 650_000));
    }
}

/// Depayloader followed by what turns its output into [`Codec::es_caps`].
///
/// H.264 leaves the depayloader as `avc`/`au` and `h264parse` makes the
/// byte stream: asked for `byte-stream` directly, `rtph264depay` emits the
/// SPS/PPS that precede an IDR (a STAP-A, as browsers send them) as a
/// buffer of their own, which decoders count as one more frame — every
/// keyframe became two pictures downstream. `config-interval=-1` puts the
/// parameter sets back in front of every IDR for consumers that start
/// later (recorders, re-payloaders).
pub fn make_depayloader(codec: Codec) -> Option<Vec<gst::Element>> {
    let depay = gst::ElementFactory::make(codec.depayloader()).build().ok()?;
    // After a loss nothing decodable comes until the next keyframe: drop
    // what is in between (no corrupt frames into decoders) and ask for it.
    for prop in ["wait-for-keyframe", "request-keyframe"] {
        if depay.find_property(prop).is_some() {
            depay.set_property(prop, true);
        }
    }
    let mut v = vec![depay];
    if codec == Codec::H264 {
        let avc = gst::Caps::builder("video/x-h264").field("stream-format", "avc").field("alignment", "au").build();
        v.push(gst::ElementFactory::make("capsfilter").property("caps", avc).build().ok()?);
        v.push(gst::ElementFactory::make("h264parse").property("config-interval", -1i32).build().ok()?);
        v.push(gst::ElementFactory::make("capsfilter").property("caps", codec.es_caps()).build().ok()?);
    }
    Some(v)
}

/// What sits between raw media and an encoder of `codec`.
pub fn make_preconvert(codec: Codec) -> Option<Vec<gst::Element>> {
    let mk = |f: &str| gst::ElementFactory::make(f).build().ok();
    Some(match codec.kind() {
        Kind::Video => {
            let mut v = vec![mk("videoconvert")?];
            if codec == Codec::H264 {
                v.push(
                    gst::ElementFactory::make("capsfilter")
                        .property("caps", gst::Caps::builder("video/x-raw").field("format", "I420").build())
                        .build()
                        .ok()?,
                );
            }
            v
        }
        Kind::Audio => {
            let mut v = vec![mk("audioconvert")?, mk("audioresample")?];
            if matches!(codec, Codec::Pcmu | Codec::Pcma) {
                v.push(
                    gst::ElementFactory::make("capsfilter")
                        .property(
                            "caps",
                            gst::Caps::builder("audio/x-raw").field("rate", 8000).field("channels", 1).build(),
                        )
                        .build()
                        .ok()?,
                );
            }
            v
        }
    })
}

/// What follows an encoder of `codec` so its output is [`Codec::es_caps`].
pub fn make_postencode(codec: Codec) -> Option<Vec<gst::Element>> {
    Some(match codec {
        Codec::H264 => vec![
            gst::ElementFactory::make("h264parse").build().ok()?,
            gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    gst::Caps::builder("video/x-h264")
                        .field("stream-format", "byte-stream")
                        .field("alignment", "au")
                        .field("profile", "constrained-baseline")
                        .build(),
                )
                .build()
                .ok()?,
        ],
        _ => vec![],
    })
}

/// Links `elements` in order inside `bin` and brings them to its state.
pub fn add_chain(bin: &gst::Bin, elements: &[gst::Element]) -> Result<(), gst::glib::BoolError> {
    for e in elements {
        bin.add(e)?;
    }
    if elements.len() > 1 {
        gst::Element::link_many(elements)?;
    }
    for e in elements {
        e.sync_state_with_parent()?;
    }
    Ok(())
}

/// The `GstForceKeyUnit` upstream event (what `gst_video` builds): RTP
/// sessions turn it into a PLI toward the sender, encoders into a keyframe.
pub fn force_key_unit_event() -> gst::Event {
    gst::event::CustomUpstream::new(
        gst::Structure::builder("GstForceKeyUnit")
            .field("running-time", u64::MAX)
            .field("all-headers", true)
            .field("count", 0u32)
            .build(),
    )
}

pub fn is_force_key_unit(ev: &gst::EventRef) -> bool {
    ev.type_() == gst::EventType::CustomUpstream && ev.structure().is_some_and(|s| s.name() == "GstForceKeyUnit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_from_rtp_and_elementary_caps() {
        gst::init().unwrap();
        let rtp = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "VP8")
            .field("payload", 96)
            .build();
        assert_eq!(Format::from_caps(&rtp), Some(Format::Rtp(Codec::Vp8)));
        assert_eq!(Format::from_caps(&Codec::H264.es_caps()), Some(Format::Es(Codec::H264)));
        let opus = gst::Caps::builder("application/x-rtp").field("encoding-name", "opus").build();
        assert_eq!(Format::from_caps(&opus), Some(Format::Rtp(Codec::Opus)));
        assert_eq!(kind_of(&rtp), Some(Kind::Video));
    }

    #[test]
    fn bitrate_is_clamped_to_the_configured_range() {
        let b = Bitrate { target: 300_000, min: 100_000, max: 500_000 };
        assert_eq!(b.effective(None), 300_000);
        assert_eq!(b.effective(Some(50_000)), 100_000);
        assert_eq!(b.effective(Some(200_000)), 200_000);
        assert_eq!(b.effective(Some(900_000)), 500_000);
    }
}
