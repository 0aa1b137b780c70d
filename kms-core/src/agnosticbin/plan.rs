//! What feeds each consumer, as pure functions of the input caps, what the
//! consumer accepts and the element's forced output format (spec §10.3).
//! Nothing here touches the graph: the reconciler (`graph.rs`) turns these
//! answers into chains and links, and the caps probe uses [`ValveRule`] to
//! decide which wirings the new input invalidates.

use std::collections::BTreeSet;

use super::Source;
use super::codecs::{self, Codec, Format, Kind};

/// What `setVideoFormat`/`setAudioFormat` force onto every output of one
/// media type of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormat {
    pub target: Target,
    /// Frames per second (numerator, denominator), video only: adds a rate
    /// limiter to the encode chain, so the output is always re-encoded.
    pub framerate: Option<(i32, i32)>,
    /// Encoder bitrate (bps), audio only; 0/None = the encoder's default.
    /// Applies whenever an encoder of the format runs; by itself it does not
    /// force re-encoding.
    pub bitrate: Option<u32>,
}

/// The codec an element's output is forced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Decoded media (`video/x-raw`, `audio/x-raw`).
    Raw,
    Codec(Codec),
}

impl OutputFormat {
    /// Every format a consumer may receive (elementary or RTP for a codec).
    pub fn allowed(&self, kind: Kind) -> gst::Caps {
        match self.target {
            Target::Raw => codecs::raw_caps(kind),
            Target::Codec(c) => {
                let mut caps = c.es_caps();
                caps.merge(c.rtp_caps());
                caps
            }
        }
    }

    /// Whether the input can reach consumers without re-encoding.
    fn matches_input(&self, input: &gst::CapsRef) -> bool {
        if self.framerate.is_some() {
            return false;
        }
        match self.target {
            Target::Raw => codecs::raw_kind(input).is_some(),
            Target::Codec(c) => Format::from_caps(input).map(Format::codec) == Some(c),
        }
    }
}

/// What a consumer accepting `want` should be fed from, given input `input`
/// and the element's forced format, if any. `None`: nothing this bin can
/// produce is acceptable (the consumer gets no data, as KMS's
/// not-negotiated branch).
pub fn plan(input: Option<&gst::Caps>, want: &gst::Caps, forced: Option<&OutputFormat>) -> Option<Source> {
    let Some(f) = forced else { return plan_free(input, want) };
    let input = input?;
    let kind = codecs::raw_kind(input).or_else(|| Format::from_caps(input).map(|f| f.codec().kind()))?;
    let want = want.intersect(&f.allowed(kind));
    if want.is_empty() {
        return None;
    }
    if f.matches_input(input) {
        return plan_free(Some(input), &want);
    }
    if !decodable(input) {
        return None;
    }
    match f.target {
        Target::Raw => Some(Source::Raw),
        Target::Codec(c) if c.kind() != kind || !c.can_encode() => None,
        Target::Codec(c) if c.es_caps().can_intersect(&want) => Some(Source::Enc(c)),
        Target::Codec(c) if codecs::exists(c.payloader()) && c.rtp_caps().can_intersect(&want) => Some(Source::Pay(c)),
        Target::Codec(_) => None,
    }
}

/// [`plan`] without a forced format: the cheapest stage producing something
/// the consumer accepts.
fn plan_free(input: Option<&gst::Caps>, want: &gst::Caps) -> Option<Source> {
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
    if !decodable(input) {
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

/// Whether this installation can turn the input into raw media.
fn decodable(input: &gst::CapsRef) -> bool {
    codecs::raw_kind(input).is_some()
        || Format::from_caps(input).is_some_and(|f| {
            f.codec().can_decode() && (matches!(f, Format::Es(_)) || codecs::exists(f.codec().depayloader()))
        })
}

/// Where the payloader of a `Pay(c)` chain takes its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayFeed {
    /// The input's own elementary stream (re-packetized, not re-encoded).
    Es,
    /// The encoder of `c`.
    Enc,
}

pub fn pay_feed(input: &gst::CapsRef, c: Codec, forced: Option<&OutputFormat>) -> PayFeed {
    let same_codec = Format::from_caps(input).map(Format::codec) == Some(c);
    if same_codec && forced.is_none_or(|f| f.framerate.is_none()) { PayFeed::Es } else { PayFeed::Enc }
}

/// The shared conversion stages a set of branches needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Depayloader (RTP input only; an elementary input *is* the stream).
    pub es: bool,
    /// Decoder (not for raw input).
    pub raw: bool,
    pub enc: BTreeSet<Codec>,
    pub pay: BTreeSet<Codec>,
}

impl Needs {
    /// Whether the bin re-encodes anything.
    pub fn transcodes(&self) -> bool {
        !self.enc.is_empty()
    }
}

/// Chains needed to feed branches taking `sources` from `input`.
pub fn needs(input: &gst::CapsRef, sources: impl IntoIterator<Item = Source>, forced: Option<&OutputFormat>) -> Needs {
    let rtp_in = matches!(Format::from_caps(input), Some(Format::Rtp(_)));
    let raw_in = codecs::raw_kind(input).is_some();
    let mut n = Needs::default();
    let decode = |n: &mut Needs| {
        if !raw_in {
            n.raw = true;
            n.es |= rtp_in;
        }
    };
    for s in sources {
        match s {
            Source::In => {}
            Source::Es => n.es |= rtp_in,
            Source::Raw => decode(&mut n),
            Source::Enc(c) => {
                n.enc.insert(c);
                decode(&mut n);
            }
            Source::Pay(c) => {
                n.pay.insert(c);
                match pay_feed(input, c, forced) {
                    PayFeed::Es => n.es |= rtp_in,
                    PayFeed::Enc => {
                        n.enc.insert(c);
                        decode(&mut n);
                    }
                }
            }
        }
    }
    n
}

/// A stream format's identity for deciding whether the stages built for it
/// still fit: same codec and packetization (or raw of the same kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatKey {
    Known(Format),
    Raw(Kind),
    Other(String),
}

pub fn format_key(caps: &gst::CapsRef) -> FormatKey {
    if let Some(k) = codecs::raw_kind(caps) {
        return FormatKey::Raw(k);
    }
    if let Some(f) = Format::from_caps(caps) {
        return FormatKey::Known(f);
    }
    FormatKey::Other(caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default())
}

/// When data on one of the input tee's pads may keep flowing after the
/// input caps change. Checked by the caps probe (streaming thread), which
/// closes the pad's valve instead of rewiring.
#[derive(Debug, Clone)]
pub enum ValveRule {
    /// A pass-through branch: while its consumer accepts the input.
    Accepts(gst::Caps),
    /// A conversion chain (or a branch fed as is by a raw/elementary input):
    /// while the input keeps its format.
    Format(FormatKey),
}

impl ValveRule {
    pub fn holds(&self, caps: &gst::CapsRef) -> bool {
        match self {
            ValveRule::Accepts(want) => want.can_intersect(caps),
            ValveRule::Format(k) => *k == format_key(caps),
        }
    }
}

/// A branch as the bitrate and MTU rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchWish {
    pub source: Option<Source>,
    /// What its consumer can take (REMB), bps.
    pub bitrate: Option<u32>,
    /// Largest RTP packet its consumer wants (`kms-mtu`).
    pub mtu: Option<u32>,
}

/// Whether a branch's data is the producer's own encoding (no encoder of
/// ours in between): its bitrate wish goes upstream.
pub fn is_passthrough(input: Option<&gst::CapsRef>, source: Source, forced: Option<&OutputFormat>) -> bool {
    match source {
        Source::In | Source::Es => true,
        Source::Pay(c) => input.is_some_and(|i| pay_feed(i, c, forced) == PayFeed::Es),
        Source::Raw | Source::Enc(_) => false,
    }
}

/// Whether a branch is fed by the encoder of `c`.
pub fn uses_encoder(input: Option<&gst::CapsRef>, source: Source, c: Codec, forced: Option<&OutputFormat>) -> bool {
    match source {
        Source::Enc(x) => x == c,
        Source::Pay(x) => x == c && input.is_some_and(|i| pay_feed(i, c, forced) == PayFeed::Enc),
        _ => false,
    }
}

/// The lowest bitrate the consumers of the encoder of `c` asked for.
pub fn encoder_wish(
    input: Option<&gst::CapsRef>,
    branches: &[BranchWish],
    c: Codec,
    forced: Option<&OutputFormat>,
) -> Option<u32> {
    branches
        .iter()
        .filter(|b| b.source.is_some_and(|s| uses_encoder(input, s, c, forced)))
        .filter_map(|b| b.bitrate)
        .min()
}

/// The lowest bitrate wanted by consumers fed without re-encoding.
pub fn upstream_wish(
    input: Option<&gst::CapsRef>,
    branches: &[BranchWish],
    forced: Option<&OutputFormat>,
) -> Option<u32> {
    branches
        .iter()
        .filter(|b| b.source.is_some_and(|s| is_passthrough(input, s, forced)))
        .filter_map(|b| b.bitrate)
        .min()
}

/// `desired` adjusted to the consumer's MTU (`kms-mtu`): RTP is forwarded
/// as it arrives only to consumers whose MTU takes the packets producers
/// make ([`codecs::DEFAULT_MTU`]: browsers and our payloaders). A consumer
/// with a smaller MTU gets the stream re-payloaded (depayloader →
/// payloader at its MTU, no decoding), since a browser cannot be told to
/// packetize smaller. Packets bigger than the default that arrive later
/// are not looked for.
pub fn fit_mtu(desired: Option<Source>, input: Option<&gst::Caps>, consumer_mtu: Option<u32>) -> Option<Source> {
    let (Some(Source::In), Some(input), Some(mtu)) = (desired, input, consumer_mtu) else { return desired };
    match Format::from_caps(input) {
        Some(Format::Rtp(c)) if mtu < codecs::DEFAULT_MTU && c.can_forward() && codecs::exists(c.payloader()) => {
            Some(Source::Pay(c))
        }
        _ => desired,
    }
}

/// MTU of the payloader of `c`: the smallest any of its consumers asked
/// for, else the bin's setting.
pub fn payloader_mtu(branches: &[BranchWish], c: Codec, default: u32) -> u32 {
    branches.iter().filter(|b| b.source == Some(Source::Pay(c))).filter_map(|b| b.mtu).min().unwrap_or(default)
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

    fn raw() -> gst::Caps {
        gst::Caps::builder("video/x-raw").build()
    }

    #[test]
    fn same_format_passes_through_and_other_formats_are_converted() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        let want_vp8 = Codec::Vp8.rtp_caps();
        assert_eq!(plan(Some(&vp8), &want_vp8, None), Some(Source::In));
        assert_eq!(plan(Some(&vp8), &gst::Caps::new_any(), None), Some(Source::In));
        assert_eq!(plan(Some(&vp8), &Codec::Vp8.es_caps(), None), Some(Source::Es));
        assert_eq!(plan(Some(&vp8), &Codec::H264.rtp_caps(), None), Some(Source::Pay(Codec::H264)));
        assert_eq!(plan(Some(&vp8), &Codec::H264.es_caps(), None), Some(Source::Enc(Codec::H264)));
        assert_eq!(plan(Some(&vp8), &raw(), None), Some(Source::Raw));
        assert_eq!(plan(Some(&Codec::Vp8.es_caps()), &want_vp8, None), Some(Source::Pay(Codec::Vp8)));
        // A consumer not ready yet, or input not known yet.
        assert_eq!(plan(Some(&vp8), &gst::Caps::new_empty(), None), None);
        assert_eq!(plan(None, &want_vp8, None), None);
        assert_eq!(plan(None, &gst::Caps::new_any(), None), Some(Source::In));
        // Audio is never encoded into video.
        assert_eq!(plan(Some(&vp8), &Codec::Opus.rtp_caps(), None), None);
    }

    #[test]
    fn a_forced_codec_is_all_any_consumer_gets() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        let h264 = OutputFormat { target: Target::Codec(Codec::H264), framerate: None, bitrate: None };
        // A consumer taking anything gets H.264, packetized as the input is.
        let mut both = Codec::Vp8.rtp_caps();
        both.merge(Codec::H264.rtp_caps());
        assert_eq!(plan(Some(&vp8), &both, Some(&h264)), Some(Source::Pay(Codec::H264)));
        assert_eq!(plan(Some(&vp8), &Codec::H264.rtp_caps(), Some(&h264)), Some(Source::Pay(Codec::H264)));
        assert_eq!(plan(Some(&vp8), &Codec::H264.es_caps(), Some(&h264)), Some(Source::Enc(Codec::H264)));
        // A VP8-only consumer gets nothing (not negotiated).
        assert_eq!(plan(Some(&vp8), &Codec::Vp8.rtp_caps(), Some(&h264)), None);
        assert_eq!(plan(Some(&vp8), &raw(), Some(&h264)), None);
        // Input already H.264 without a rate: forwarded as usual.
        assert_eq!(plan(Some(&rtp("H264")), &both, Some(&h264)), Some(Source::In));
        // A rate forces re-encoding even in the same codec.
        let h264_15 = OutputFormat { framerate: Some((15, 1)), ..h264 };
        assert_eq!(plan(Some(&rtp("H264")), &both, Some(&h264_15)), Some(Source::Pay(Codec::H264)));
        assert_eq!(pay_feed(&rtp("H264"), Codec::H264, Some(&h264_15)), PayFeed::Enc);
        assert_eq!(pay_feed(&rtp("H264"), Codec::H264, Some(&h264)), PayFeed::Es);
        // RAW: decoded for everyone.
        let rawf = OutputFormat { target: Target::Raw, framerate: None, bitrate: None };
        assert_eq!(plan(Some(&vp8), &gst::Caps::new_any(), Some(&rawf)), Some(Source::Raw));
        assert_eq!(plan(Some(&vp8), &Codec::Vp8.rtp_caps(), Some(&rawf)), None);
        // Nothing known about the input yet: wait.
        assert_eq!(plan(None, &gst::Caps::new_any(), Some(&h264)), None);
        // Video format forced on audio: nothing (kinds never mix).
        let opus = Codec::Opus.rtp_caps();
        assert_eq!(plan(Some(&opus), &gst::Caps::new_any(), Some(&h264)), None);
    }

    #[test]
    fn needs_follow_the_chain_of_stages() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        assert_eq!(needs(&vp8, [Source::In], None), Needs::default());
        let n = needs(&vp8, [Source::Pay(Codec::H264)], None);
        assert!(n.es && n.raw && n.transcodes());
        assert_eq!(n.pay.iter().copied().collect::<Vec<_>>(), vec![Codec::H264]);
        // Same codec re-packetized: depayload, no decode.
        let n = needs(&vp8, [Source::Pay(Codec::Vp8)], None);
        assert!(n.es && !n.raw && !n.transcodes());
        // Raw input is its own decoded stream.
        let n = needs(&raw(), [Source::Raw, Source::Enc(Codec::Vp8)], None);
        assert!(!n.es && !n.raw && n.transcodes());
        // Elementary input: no depayloader.
        let n = needs(&Codec::Vp8.es_caps(), [Source::Enc(Codec::H264)], None);
        assert!(!n.es && n.raw);
    }

    #[test]
    fn valves_close_when_the_input_leaves_what_they_were_built_for() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        let h264 = rtp("H264");
        let pass = ValveRule::Accepts(Codec::Vp8.rtp_caps());
        assert!(pass.holds(&vp8));
        assert!(!pass.holds(&h264));
        let chain = ValveRule::Format(format_key(&vp8));
        let mut vp8_other_ssrc = vp8.clone();
        vp8_other_ssrc.make_mut().structure_mut(0).unwrap().set("ssrc", 99u32);
        assert!(chain.holds(&vp8_other_ssrc));
        assert!(!chain.holds(&h264));
        let raw_rule = ValveRule::Format(format_key(&raw()));
        let small = gst::Caps::builder("video/x-raw").field("width", 160).field("height", 120).build();
        assert!(raw_rule.holds(&small));
        assert!(!raw_rule.holds(&Codec::Vp8.es_caps()));
    }

    #[test]
    fn rtp_for_a_consumer_with_a_small_mtu_is_repayloaded_not_forwarded() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        assert_eq!(fit_mtu(Some(Source::In), Some(&vp8), Some(600)), Some(Source::Pay(Codec::Vp8)));
        assert_eq!(fit_mtu(Some(Source::In), Some(&vp8), Some(1200)), Some(Source::In));
        assert_eq!(fit_mtu(Some(Source::In), Some(&vp8), None), Some(Source::In), "no MTU asked");
        // Only forwarding changes: our own payloaders already obey it.
        assert_eq!(fit_mtu(Some(Source::Pay(Codec::H264)), Some(&vp8), Some(600)), Some(Source::Pay(Codec::H264)));
        let raw = gst::Caps::builder("video/x-raw").build();
        assert_eq!(fit_mtu(Some(Source::In), Some(&raw), Some(600)), Some(Source::In), "not RTP");
    }

    #[test]
    fn bitrate_wishes_go_to_the_encoder_or_upstream_and_mtu_to_the_payloader() {
        gst::init().unwrap();
        let vp8 = rtp("VP8");
        let b = |source, bitrate, mtu| BranchWish { source: Some(source), bitrate, mtu };
        let branches = [
            b(Source::In, Some(500_000), None),
            b(Source::Pay(Codec::Vp8), Some(400_000), Some(1000)),
            b(Source::Pay(Codec::H264), Some(200_000), Some(600)),
            b(Source::Pay(Codec::H264), Some(300_000), Some(900)),
            b(Source::Enc(Codec::H264), None, None),
        ];
        assert_eq!(upstream_wish(Some(&vp8), &branches, None), Some(400_000));
        assert_eq!(encoder_wish(Some(&vp8), &branches, Codec::H264, None), Some(200_000));
        assert_eq!(encoder_wish(Some(&vp8), &branches, Codec::Vp8, None), None);
        assert_eq!(payloader_mtu(&branches, Codec::H264, 1200), 600);
        assert_eq!(payloader_mtu(&branches, Codec::Vp8, 1200), 1000);
        assert_eq!(payloader_mtu(&branches, Codec::Vp9, 1200), 1200);
        // With a forced rate the same-codec payloader is fed by our encoder.
        let fr = OutputFormat { target: Target::Codec(Codec::Vp8), framerate: Some((10, 1)), bitrate: None };
        assert_eq!(upstream_wish(Some(&vp8), &branches, Some(&fr)), Some(500_000));
        assert_eq!(encoder_wish(Some(&vp8), &branches, Codec::Vp8, Some(&fr)), Some(400_000));
    }
}
