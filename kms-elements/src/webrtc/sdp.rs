//! SDP handling of the WebRtcEndpoint (spec §10.5, §10.7), independent of
//! GStreamer state: parsing with the spec's errors, which codecs an offer's
//! sections are answered with, the offer as handed to webrtcbin (only what
//! we answer with), and the answer/offer touch-ups.

use std::collections::HashMap;

use kms_core::Error;
use kms_core::agnosticbin::codecs::{self, Codec, Kind};
use kms_core::config::CoreConfig;

pub const SESSION_NAME: &str = "Kurento Media Server";

/// spec §8: SDP_PARSE_ERROR.
pub const SDP_PARSE_ERROR: i64 = 40201;
pub const SDP_END_POINT_NO_LOCAL_SDP_ERROR: i64 = 40202;
pub const SDP_END_POINT_NO_REMOTE_SDP_ERROR: i64 = 40203;
pub const SDP_END_POINT_GENERATE_OFFER_ERROR: i64 = 40204;
pub const SDP_END_POINT_PROCESS_OFFER_ERROR: i64 = 40205;
pub const SDP_END_POINT_PROCESS_ANSWER_ERROR: i64 = 40206;
pub const SDP_END_POINT_ALREADY_NEGOTIATED: i64 = 40208;
pub const SDP_END_POINT_NOT_OFFER_GENERATED: i64 = 40209;
pub const SDP_END_POINT_ANSWER_ALREADY_PROCCESED: i64 = 40210;

pub fn err(code: i64, message: impl Into<String>) -> Error {
    Error::Code { code, message: message.into() }
}

/// Parses an SDP with the errors of spec §10.5. `what` is "offer" or
/// "answer".
pub fn parse(text: &str, what: &str) -> Result<gst_sdp::SDPMessage, Error> {
    if text.trim().is_empty() {
        return Err(err(SDP_PARSE_ERROR, format!("Empty {what} not valid")));
    }
    if !text.trim_start().starts_with("v=") {
        return Err(err(SDP_PARSE_ERROR, "Invalid SDP"));
    }
    let msg =
        gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).map_err(|_| err(SDP_PARSE_ERROR, "Error parsing SDP"))?;
    // GStreamer's parser is lenient: require what every SDP has.
    if msg.version().is_none() || msg.origin().is_none() {
        return Err(err(SDP_PARSE_ERROR, "Error parsing SDP"));
    }
    for m in msg.medias() {
        if m.media().is_none() || m.proto().is_none() {
            return Err(err(SDP_PARSE_ERROR, "Error parsing SDP"));
        }
    }
    Ok(msg)
}

/// Codecs a WebRtcEndpoint negotiates, in configuration order (spec §11.3:
/// `SdpEndpoint.audioCodecs` / `videoCodecs`, restricted to what WebRTC and
/// this GStreamer installation support).
#[derive(Debug, Clone, PartialEq)]
pub struct CodecSet {
    pub audio: Vec<Codec>,
    pub video: Vec<Codec>,
}

impl CodecSet {
    pub fn from_config(cfg: &CoreConfig) -> Result<CodecSet, Error> {
        let read = |key: &str, default: &[&str]| -> Result<Vec<Codec>, Error> {
            let names: Vec<String> = match cfg.module_value("kurento", "SdpEndpoint", key) {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| match i {
                        serde_json::Value::Object(o) => o.get("name").and_then(|n| n.as_str()).map(str::to_string),
                        serde_json::Value::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => default.iter().map(|s| s.to_string()).collect(),
            };
            let mut out = vec![];
            for n in names {
                let mut parts = n.split('/');
                let enc = parts.next().unwrap_or_default();
                let clock = parts.next().and_then(|c| c.trim().parse::<u32>().ok());
                if enc.is_empty() || clock.is_none() {
                    return Err(err(SDP_PARSE_ERROR, format!("Invalid codec name '{n}' in configuration")));
                }
                if let Some(c) = Codec::from_encoding_name(enc)
                    && webrtc_usable(c)
                    && !out.contains(&c)
                {
                    out.push(c);
                }
            }
            Ok(out)
        };
        Ok(CodecSet {
            audio: read("audioCodecs", &["opus/48000/2", "PCMU/8000", "PCMA/8000", "AMR/8000"])?,
            video: read("videoCodecs", &["H265/90000", "AV1/90000", "VP9/90000", "VP8/90000", "H264/90000"])?,
        })
    }

    pub fn for_kind(&self, kind: Kind) -> &[Codec] {
        match kind {
            Kind::Audio => &self.audio,
            Kind::Video => &self.video,
        }
    }
}

/// spec §10.5: VP8, VP9, H.264 (when an H.264 encoder is installed), Opus,
/// PCMU, PCMA — each needing its RTP (de)payloader.
fn webrtc_usable(c: Codec) -> bool {
    c.can_forward() && (c != Codec::H264 || c.can_encode())
}

/// One `m=` section of an offer and how it is answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub index: usize,
    pub mid: Option<String>,
    pub kind: SectionKind,
    /// Accepted payload types with their codec, in offer order.
    pub payloads: Vec<(u8, Codec)>,
    /// Retransmission (`rtx`) payload types of accepted payloads: kept in
    /// the offer webrtcbin sees, which answers them when the transceiver
    /// does NACK (see `negotiation`).
    pub rtx: Vec<u8>,
    pub accepted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Media(Kind),
    Data,
    Other,
}

/// Payload types of `m` that we can use, with their codec (H.264 only in
/// packetization mode 1, constrained baseline first).
pub fn usable_payloads(m: &gst_sdp::SDPMediaRef, allowed: &[Codec]) -> Vec<(u8, Codec)> {
    let mut out: Vec<(u8, Codec, u8)> = vec![];
    for f in m.formats() {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let Some(rtpmap) = attr_for_pt(m, "rtpmap", pt) else { continue };
        let enc = rtpmap.split('/').next().unwrap_or_default();
        let Some(codec) = Codec::from_encoding_name(enc) else { continue };
        if !allowed.contains(&codec) {
            continue;
        }
        let mut rank = 0;
        if codec == Codec::H264 {
            let fmtp = attr_for_pt(m, "fmtp", pt).unwrap_or_default().to_ascii_lowercase();
            if !fmtp.contains("packetization-mode=1") {
                continue;
            }
            rank = if fmtp.contains("profile-level-id=42e0") {
                0
            } else if fmtp.contains("profile-level-id=4200") {
                1
            } else {
                2
            };
        }
        out.push((pt, codec, rank));
    }
    // Stable: offer order within the same rank and codec.
    let first_of = |c: Codec, v: &[(u8, Codec, u8)]| v.iter().position(|x| x.1 == c).unwrap_or(0);
    let snapshot = out.clone();
    out.sort_by_key(|x| (first_of(x.1, &snapshot), x.2));
    out.into_iter().map(|(pt, c, _)| (pt, c)).collect()
}

/// The value of `a=<key>:<pt> <value>` for a payload type.
pub fn attr_for_pt(m: &gst_sdp::SDPMediaRef, key: &str, pt: u8) -> Option<String> {
    let prefix = format!("{pt} ");
    m.attributes()
        .filter(|a| a.key() == key)
        .filter_map(|a| a.value())
        .find(|v| v.starts_with(&prefix))
        .map(|v| v[prefix.len()..].trim().to_string())
}

/// The `rtx` payload types of `m` whose `apt` is one of `payloads`.
pub fn rtx_payloads(m: &gst_sdp::SDPMediaRef, payloads: &[(u8, Codec)]) -> Vec<u8> {
    m.formats()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|pt| {
            attr_for_pt(m, "rtpmap", *pt).is_some_and(|r| r.to_ascii_lowercase().starts_with("rtx/"))
                && attr_for_pt(m, "fmtp", *pt)
                    .and_then(|f| f.split(';').find_map(|p| p.trim().strip_prefix("apt=")?.parse::<u8>().ok()))
                    .is_some_and(|apt| payloads.iter().any(|(p, _)| *p == apt))
        })
        .collect()
}

/// Decides how each section of an offer is answered.
pub fn plan_offer(offer: &gst_sdp::SDPMessage, codecs: &CodecSet, data_channels: bool) -> Vec<Section> {
    offer
        .medias()
        .enumerate()
        .map(|(index, m)| {
            let mid = m.attribute_val("mid").map(str::to_string);
            let media = m.media().unwrap_or_default();
            let proto = m.proto().unwrap_or_default();
            let rejected = m.port() == 0 && m.attribute_val("bundle-only").is_none();
            let kind = match media {
                "audio" => SectionKind::Media(Kind::Audio),
                "video" => SectionKind::Media(Kind::Video),
                "application" if proto.contains("SCTP") => SectionKind::Data,
                _ => SectionKind::Other,
            };
            let (payloads, accepted) = match kind {
                SectionKind::Media(k) => {
                    let p = usable_payloads(m, codecs.for_kind(k));
                    let ok = !p.is_empty() && !rejected && proto.contains("SAVPF");
                    (p, ok)
                }
                SectionKind::Data => (vec![], data_channels && !rejected),
                SectionKind::Other => (vec![], false),
            };
            let rtx = rtx_payloads(m, &payloads);
            Section { index, mid, kind, payloads, rtx, accepted }
        })
        .collect()
}

/// The offer as given to webrtcbin: rejected sections get port 0 and leave
/// the BUNDLE group, accepted ones keep only our payload types; header
/// extensions, retransmission/FEC groups and simulcast are dropped, and
/// `bundle-only` sections (port 0, as webrtcbin itself offers them) become
/// ordinary bundled sections.
pub fn filter_offer(text: &str, sections: &[Section]) -> String {
    let rejected_mids: Vec<&str> = sections.iter().filter(|s| !s.accepted).filter_map(|s| s.mid.as_deref()).collect();
    let mut out = String::with_capacity(text.len());
    let mut current: Option<&Section> = None;
    let mut idx = 0usize;
    // webrtcbin wants ICE credentials and DTLS attributes on rejected
    // sections too.
    let borrowed = borrowed_transport(text, sections);
    let mut missing = [false; TRANSPORT_KEYS.len()];
    let flush = |out: &mut String, missing: &[bool; TRANSPORT_KEYS.len()]| {
        for (line, _) in borrowed.iter().zip(missing).filter(|(_, m)| **m) {
            if let Some(line) = line {
                push_line(out, line);
            }
        }
    };
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("m=") {
            flush(&mut out, &missing);
            current = sections.get(idx);
            missing = [current.is_some_and(|s| !s.accepted); TRANSPORT_KEYS.len()];
            idx += 1;
            let mut parts = rest.split(' ');
            let media = parts.next().unwrap_or_default();
            let port = parts.next().unwrap_or("9");
            let proto = parts.next().unwrap_or_default();
            let fmts: Vec<&str> = parts.collect();
            match current {
                Some(s) if s.accepted => {
                    let port = if port.split('/').next() == Some("0") { "9" } else { port };
                    let fmts: Vec<String> = match s.kind {
                        SectionKind::Media(_) => s
                            .payloads
                            .iter()
                            .map(|(pt, _)| *pt)
                            .chain(s.rtx.iter().copied())
                            .map(|pt| pt.to_string())
                            .collect(),
                        _ => fmts.iter().map(|s| s.to_string()).collect(),
                    };
                    push_line(&mut out, &format!("m={media} {port} {proto} {}", fmts.join(" ")));
                }
                _ => push_line(&mut out, &format!("m={media} 0 {proto} {}", fmts.join(" "))),
            }
            continue;
        }
        if let Some(group) = line.strip_prefix("a=group:BUNDLE") {
            let kept: Vec<&str> = group.split_whitespace().filter(|m| !rejected_mids.contains(m)).collect();
            if !kept.is_empty() {
                push_line(&mut out, &format!("a=group:BUNDLE {}", kept.join(" ")));
            }
            continue;
        }
        let Some(s) = current else {
            push_line(&mut out, line);
            continue;
        };
        if !s.accepted {
            // Port 0 says it all; webrtcbin still validates the section's
            // ICE and DTLS attributes, so they stay.
            if !line.starts_with("a=extmap") && !line.starts_with("a=ssrc") {
                for (k, key) in TRANSPORT_KEYS.iter().enumerate() {
                    missing[k] &= !line.starts_with(key);
                }
                push_line(&mut out, line);
            }
            continue;
        }
        if line.starts_with("a=extmap")
            || line.starts_with("a=ssrc-group:")
            || line.starts_with("a=rid:")
            || line.starts_with("a=simulcast:")
            || line == "a=bundle-only"
        {
            continue;
        }
        if let SectionKind::Media(_) = s.kind
            && let Some(pt) = pt_of_attribute(line)
            && !s.payloads.iter().any(|(p, _)| *p == pt)
            && !s.rtx.contains(&pt)
        {
            continue;
        }
        push_line(&mut out, line);
    }
    flush(&mut out, &missing);
    out
}

/// Attributes webrtcbin checks on every section of a remote description.
const TRANSPORT_KEYS: [&str; 4] = ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:"];

/// For each of [`TRANSPORT_KEYS`], the line a rejected section lacking it
/// borrows: the session's, else the first accepted section's. A plain
/// RTP/AVP section has none of them; with them it is merely rejected.
fn borrowed_transport<'a>(text: &'a str, sections: &[Section]) -> [Option<&'a str>; TRANSPORT_KEYS.len()] {
    let mut session = [None; TRANSPORT_KEYS.len()];
    let mut accepted = [None; TRANSPORT_KEYS.len()];
    let first_accepted = sections.iter().position(|s| s.accepted);
    let mut idx: Option<usize> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with("m=") {
            idx = Some(idx.map_or(0, |i| i + 1));
            continue;
        }
        let slot = match idx {
            None => &mut session,
            Some(i) if Some(i) == first_accepted => &mut accepted,
            Some(_) => continue,
        };
        for (k, key) in TRANSPORT_KEYS.iter().enumerate() {
            if line.starts_with(key) && slot[k].is_none() {
                slot[k] = Some(line);
            }
        }
    }
    std::array::from_fn(|k| session[k].or(accepted[k]))
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

/// The payload type an `a=rtpmap|fmtp|rtcp-fb:<pt> ...` line is about.
fn pt_of_attribute(line: &str) -> Option<u8> {
    for key in ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"] {
        if let Some(rest) = line.strip_prefix(key) {
            return rest.split(' ').next()?.parse().ok();
        }
    }
    None
}

/// Marks the sections we rejected as rejected in webrtcbin's answer (port
/// 0, out of the BUNDLE group): webrtcbin answers an offered data section
/// even when its port is 0. This is the local description webrtcbin is
/// given; the peer gets [`present_rejected`] of it.
pub fn reject_in_answer(text: &str, sections: &[Section]) -> String {
    let rejected_mids: Vec<&str> = sections.iter().filter(|s| !s.accepted).filter_map(|s| s.mid.as_deref()).collect();
    let mut out = String::with_capacity(text.len());
    let mut idx = 0usize;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("m=") {
            let rejected = sections.get(idx).is_some_and(|s| !s.accepted);
            idx += 1;
            if rejected {
                let mut parts: Vec<&str> = rest.split(' ').collect();
                if parts.len() > 1 {
                    parts[1] = "0";
                }
                push_line(&mut out, &format!("m={}", parts.join(" ")));
                continue;
            }
        }
        if let Some(group) = line.strip_prefix("a=group:BUNDLE") {
            let kept: Vec<&str> = group.split_whitespace().filter(|m| !rejected_mids.contains(m)).collect();
            if !kept.is_empty() {
                push_line(&mut out, &format!("a=group:BUNDLE {}", kept.join(" ")));
            }
            continue;
        }
        push_line(&mut out, line);
    }
    out
}

/// The answer as the peer gets it: each rejected section as KMS writes it
/// ([`push_rejected`]) instead of webrtcbin's (which keeps the transport
/// attributes it was given only to accept the offer, and the offer's
/// direction).
pub fn present_rejected(text: &str, offer: &gst_sdp::SDPMessage, sections: &[Section]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut idx = 0usize;
    let mut skipping = false;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            skipping = sections.get(idx).is_some_and(|s| !s.accepted);
            if skipping && let Some(m) = offer.media(idx as u32) {
                push_rejected(&mut out, m);
            }
            idx += 1;
        }
        if !skipping {
            push_line(&mut out, line);
        }
    }
    // An answer has exactly the offer's m-lines (RFC 3264 §6).
    for i in idx..offer.medias_len() as usize {
        if let Some(m) = offer.media(i as u32) {
            push_rejected(&mut out, m);
        }
    }
    out
}

/// The offer without the sections we reject, for a stack that cannot
/// reject them itself (the native transport's str0m); the answer gets them
/// back with [`with_rejected`].
pub fn without_rejected(text: &str, sections: &[Section]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut idx = 0usize;
    let mut skipping = false;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            skipping = sections.get(idx).is_some_and(|s| !s.accepted);
            idx += 1;
        }
        if !skipping {
            push_line(&mut out, line);
        }
    }
    out
}

/// An answer whose media lines list their payload types in the order the
/// offer gave them, section by section (matched by `a=mid`).
///
/// str0m answers in its own configured order, which would make a Firefox
/// offer (VP8 first) come back with VP9 first, and the offerer sends what
/// the answer puts first. webrtcbin and KMS keep the offerer's order, so
/// the native transport does too. Types the offer does not name keep
/// their places after the ones it does.
pub fn formats_in_offer_order(answer: &str, offer: &gst_sdp::SDPMessage) -> String {
    let offered: HashMap<String, Vec<String>> = offer
        .medias()
        .filter_map(|m| {
            let mid = m.attribute_val("mid")?.to_owned();
            Some((mid, m.formats().map(str::to_owned).collect()))
        })
        .collect();
    let mut sections: Vec<Vec<String>> = vec![vec![]];
    for line in answer.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(vec![]);
        }
        sections.last_mut().expect("one at least").push(line.to_owned());
    }
    let mut out = String::with_capacity(answer.len());
    for section in &mut sections {
        let order = section.iter().find_map(|l| l.strip_prefix("a=mid:")).and_then(|mid| offered.get(mid.trim()));
        if let (Some(order), Some(mline)) = (order, section.first_mut().filter(|l| l.starts_with("m="))) {
            let mut parts: Vec<&str> = mline.split(' ').collect();
            if parts.len() > 3 {
                let rank = |f: &str| order.iter().position(|o| o == f).unwrap_or(usize::MAX);
                parts[3..].sort_by_key(|f| rank(f));
                *mline = parts.join(" ");
            }
        }
        for line in section.iter() {
            push_line(&mut out, line);
        }
    }
    out
}

/// An offer as a one-way endpoint sees it (the native transport's
/// `recvonly`/`sendonly` constructors): each audio/video section's
/// direction (the peer's) narrowed to what we take, so the stack answers
/// `recvonly`, `sendonly` or `inactive` as KMS does. A section without a
/// direction attribute is `sendrecv` (RFC 3264 §5.1).
pub fn narrow_offer_directions(text: &str, we_receive: bool, we_send: bool) -> String {
    fn narrowed(peer: &str, we_receive: bool, we_send: bool) -> &'static str {
        let peer_sends = matches!(peer, "sendrecv" | "sendonly") && we_receive;
        let peer_receives = matches!(peer, "sendrecv" | "recvonly") && we_send;
        match (peer_sends, peer_receives) {
            (true, true) => "sendrecv",
            (true, false) => "sendonly",
            (false, true) => "recvonly",
            (false, false) => "inactive",
        }
    }
    let mut sections: Vec<Vec<String>> = vec![vec![]];
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            sections.push(vec![]);
        }
        sections.last_mut().expect("one").push(line.to_owned());
    }
    let mut out = String::with_capacity(text.len() + 32);
    for (i, sec) in sections.iter().enumerate() {
        let media = i > 0 && (sec[0].starts_with("m=audio") || sec[0].starts_with("m=video"));
        let mut seen = false;
        for line in sec {
            let dir = line.strip_prefix("a=").filter(|d| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(d));
            match dir {
                Some(d) if media => {
                    seen = true;
                    push_line(&mut out, &format!("a={}", narrowed(d, we_receive, we_send)));
                }
                _ => push_line(&mut out, line),
            }
        }
        if media && !seen {
            push_line(&mut out, &format!("a={}", narrowed("sendrecv", we_receive, we_send)));
        }
    }
    out
}

/// The answer to [`without_rejected`]'s offer with the rejected sections
/// put back where the offer had them, as KMS writes them.
pub fn with_rejected(answer: &str, offer: &gst_sdp::SDPMessage, sections: &[Section]) -> String {
    let mut session: Vec<&str> = vec![];
    let mut medias: Vec<Vec<&str>> = vec![];
    for raw in answer.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            medias.push(vec![line]);
        } else if let Some(m) = medias.last_mut() {
            m.push(line);
        } else {
            session.push(line);
        }
    }
    let mut out = String::with_capacity(answer.len() + 128);
    for l in session {
        push_line(&mut out, l);
    }
    let mut accepted = medias.into_iter();
    for (i, s) in sections.iter().enumerate() {
        if s.accepted {
            for l in accepted.next().unwrap_or_default() {
                push_line(&mut out, l);
            }
        } else if let Some(m) = offer.media(i as u32) {
            push_rejected(&mut out, m);
        }
    }
    out
}

/// A rejected section of an answer, as KMS writes it (RFC 3264 §6): the
/// offer's media, protocol and formats with port 0, its mid, `a=inactive`.
fn push_rejected(out: &mut String, m: &gst_sdp::SDPMediaRef) {
    let fmts: Vec<&str> = m.formats().collect();
    let fmts = if fmts.is_empty() { "0".to_string() } else { fmts.join(" ") };
    push_line(out, &format!("m={} 0 {} {fmts}", m.media().unwrap_or("audio"), m.proto().unwrap_or("RTP/AVP")));
    push_line(out, "c=IN IP4 0.0.0.0");
    if let Some(mid) = m.attribute_val("mid") {
        push_line(out, &format!("a=mid:{mid}"));
    }
    push_line(out, "a=inactive");
}

/// The answer to an offer none of whose sections we accept (e.g. plain
/// RTP/AVP, no DTLS): still an answer, every section rejected, as KMS
/// answers it. webrtcbin is not involved: it refuses offers without DTLS
/// fingerprints outright.
pub fn answer_rejecting_all(offer: &gst_sdp::SDPMessage, session_id: u64) -> String {
    let mut out = String::new();
    push_line(&mut out, "v=0");
    push_line(&mut out, &format!("o=- {session_id} 0 IN IP4 0.0.0.0"));
    push_line(&mut out, &format!("s={SESSION_NAME}"));
    push_line(&mut out, "t=0 0");
    for m in offer.medias() {
        push_rejected(&mut out, m);
    }
    out
}

/// Session name and receive bandwidth limits (spec §10.5: `b=AS` from
/// `maxAudioRecvBandwidth` / `maxVideoRecvBandwidth`, kbps, 0 = none).
pub fn finish_local(text: &str, max_audio_kbps: i32, max_video_kbps: i32) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut media: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("s=") {
            push_line(&mut out, &format!("s={SESSION_NAME}"));
            continue;
        }
        if let Some(rest) = line.strip_prefix("m=") {
            media = rest.split(' ').next().map(str::to_string);
        }
        if line.starts_with("b=AS:") && media.is_some() {
            continue;
        }
        push_line(&mut out, line);
        if line.starts_with("c=") {
            let limit = match media.as_deref() {
                Some("audio") => max_audio_kbps,
                Some("video") => max_video_kbps,
                _ => 0,
            };
            if limit > 0 {
                push_line(&mut out, &format!("b=AS:{limit}"));
            }
        }
    }
    out
}

/// Replaces every `a=fingerprint` line with `sha-256 <fingerprint>`: the
/// certificate a transport really uses (see `cert`).
pub fn set_fingerprint(text: &str, fingerprint: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with("a=fingerprint:") {
            push_line(&mut out, &format!("a=fingerprint:sha-256 {fingerprint}"));
        } else if !line.is_empty() {
            push_line(&mut out, line);
        }
    }
    out
}

/// Direction attribute of a section (`sendrecv` if absent).
pub fn direction(m: &gst_sdp::SDPMediaRef) -> &'static str {
    for d in ["sendrecv", "sendonly", "recvonly", "inactive"] {
        if m.attribute_val(d).is_some() || m.attributes().any(|a| a.key() == d) {
            return d;
        }
    }
    "sendrecv"
}

/// Codec-preference caps for an offer section we generate: every codec we
/// support for `kind`, with payload types from `next_pt` on.
pub fn offer_caps(kind: Kind, codecs: &[Codec], next_pt: &mut u8) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    for c in codecs {
        let pt = match c.static_pt() {
            Some(p) => p,
            None => {
                let p = *next_pt;
                *next_pt += 1;
                p
            }
        };
        let media = match kind {
            Kind::Audio => "audio",
            Kind::Video => "video",
        };
        let mut s = gst::Structure::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", c.encoding_name())
            .field("clock-rate", c.clock_rate())
            .field("payload", pt as i32)
            .build();
        match c {
            Codec::Opus => {
                s.set("encoding-params", "2");
                s.set("minptime", "10");
                s.set("useinbandfec", "1");
            }
            Codec::H264 => {
                s.set("packetization-mode", "1");
                s.set("profile-level-id", "42e01f");
                s.set("level-asymmetry-allowed", "1");
            }
            _ => {}
        }
        if kind == Kind::Video {
            s.set("rtcp-fb-nack", true);
            s.set("rtcp-fb-nack-pli", true);
            s.set("rtcp-fb-ccm-fir", true);
            s.set("rtcp-fb-goog-remb", true);
        }
        caps.get_mut().expect("fresh").append_structure(s);
    }
    caps
}

/// Caps identifying `codec` as a send format (what upstream must produce).
pub fn send_caps(codec: Codec) -> gst::Caps {
    let mut caps = codec.rtp_caps();
    if codec == Codec::H264 {
        caps.get_mut().expect("fresh").structure_mut(0).expect("one").set("packetization-mode", "1");
    }
    caps
}

/// Whether ICE can use the candidate (for `addIceCandidate`, spec §10.7:
/// unparsable → 40401).
pub fn candidate_is_valid(c: &str) -> bool {
    let c = c.strip_prefix("a=").unwrap_or(c);
    let Some(rest) = c.strip_prefix("candidate:") else { return false };
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.len() >= 8
        && f[1].parse::<u32>().is_ok()
        && ["udp", "tcp"].contains(&f[2].to_ascii_lowercase().as_str())
        && f[3].parse::<u64>().is_ok()
        && (f[4].parse::<std::net::IpAddr>().is_ok() || f[4].ends_with(".local"))
        && f[5].parse::<u16>().is_ok()
        && f[6] == "typ"
}

/// Kind of media a section carries, for codecs lookup.
pub fn codecs_for_kind(set: &CodecSet, kind: Kind) -> Vec<Codec> {
    set.for_kind(kind).to_vec()
}

/// Everything usable right now, regardless of configuration (for tests).
pub fn all_usable() -> CodecSet {
    CodecSet {
        audio: codecs::ALL_CODECS.iter().copied().filter(|c| c.kind() == Kind::Audio && webrtc_usable(*c)).collect(),
        video: codecs::ALL_CODECS.iter().copied().filter(|c| c.kind() == Kind::Video && webrtc_usable(*c)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const CHROME_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendrecv\r\na=msid:- a1\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\na=ssrc:1 cname:x\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:1\r\na=extmap:2 urn:ietf:params:rtp-hdrext:toffset\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\na=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\na=ssrc-group:FID 1 2\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n";

    fn codecs() -> CodecSet {
        CodecSet {
            audio: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
            video: vec![Codec::Vp9, Codec::Vp8, Codec::H264],
        }
    }

    #[test]
    fn answers_list_formats_in_the_offers_order() {
        let offer = parse(CHROME_OFFER, "offer").unwrap();
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 111\r\na=mid:0\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 102 96 97 120\r\na=mid:1\r\n\
                      m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let sorted = formats_in_offer_order(answer, &offer);
        assert!(sorted.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\n"), "{sorted}");
        // The offer's VP8 and its rtx first; 120, which the offer does not
        // name, keeps its place after them.
        assert!(sorted.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 120\r\n"), "{sorted}");
        assert!(sorted.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"), "{sorted}");
        assert!(sorted.starts_with("v=0\r\n"));
    }

    #[test]
    fn one_way_endpoints_narrow_the_offer_directions() {
        let recv = narrow_offer_directions(CHROME_OFFER, true, false);
        // Ours receives only: the peer may only send.
        assert_eq!(recv.matches("a=sendonly\r\n").count(), 2);
        assert!(!recv.contains("a=sendrecv"));
        let send = narrow_offer_directions(CHROME_OFFER, false, true);
        assert_eq!(send.matches("a=recvonly\r\n").count(), 2);
        // A peer that only receives, offered to a receive-only endpoint.
        let recvonly_peer = CHROME_OFFER.replace("a=sendrecv", "a=recvonly");
        assert_eq!(narrow_offer_directions(&recvonly_peer, true, false).matches("a=inactive\r\n").count(), 2);
        // No direction attribute: sendrecv, narrowed and written.
        let bare = CHROME_OFFER.replace("a=sendrecv\r\n", "");
        assert_eq!(narrow_offer_directions(&bare, true, false).matches("a=sendonly\r\n").count(), 2);
        // The data section is left alone.
        assert!(recv.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2"));
    }

    #[test]
    fn garbage_empty_and_headless_sdps_are_40201() {
        gst::init().unwrap();
        assert_eq!(parse("", "offer").unwrap_err().to_string(), "Empty offer not valid");
        assert_eq!(parse("hello", "offer").unwrap_err().to_string(), "Invalid SDP");
        assert_eq!(parse("", "offer").unwrap_err().code(), SDP_PARSE_ERROR);
        assert!(parse(CHROME_OFFER, "offer").is_ok());
    }

    #[test]
    fn chrome_offer_keeps_our_codecs_and_rejects_data_without_data_channels() {
        gst::init().unwrap();
        let msg = parse(CHROME_OFFER, "offer").unwrap();
        let plan = plan_offer(&msg, &codecs(), false);
        assert_eq!(plan[0].payloads, vec![(111, Codec::Opus), (0, Codec::Pcmu), (8, Codec::Pcma)]);
        assert_eq!(plan[1].payloads, vec![(96, Codec::Vp8), (102, Codec::H264)]);
        assert!(plan[0].accepted && plan[1].accepted && !plan[2].accepted);
        let filtered = filter_offer(CHROME_OFFER, &plan);
        assert!(filtered.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\n"));
        // VP8's retransmission payload (97, apt=96) stays.
        assert_eq!(plan[1].rtx, vec![97]);
        assert!(filtered.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 102 97\r\n"));
        assert!(filtered.contains("a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"));
        assert!(filtered.contains("a=group:BUNDLE 0 1\r\n"));
        assert!(filtered.contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel"));
        assert!(!filtered.contains("a=extmap:"));
        assert!(!filtered.contains("ssrc-group"));
        assert!(!filtered.contains("a=rtcp-fb:111 transport-cc") || filtered.contains("a=rtpmap:111"));
        assert!(parse(&filtered, "offer").is_ok());
        let with_data = plan_offer(&msg, &codecs(), true);
        assert!(with_data[2].accepted);
    }

    #[test]
    fn bundle_only_sections_are_accepted_and_given_a_port() {
        gst::init().unwrap();
        let offer =
            CHROME_OFFER.replacen("m=video 9 ", "m=video 0 ", 1).replace("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n");
        let msg = parse(&offer, "offer").unwrap();
        let plan = plan_offer(&msg, &codecs(), false);
        assert!(plan[1].accepted);
        let filtered = filter_offer(&offer, &plan);
        assert!(filtered.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 102 97\r\n"));
        assert!(!filtered.contains("bundle-only"));
    }

    #[test]
    fn local_sdp_gets_the_session_name_and_bandwidth_limits() {
        let sdp = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n";
        let out = finish_local(sdp, 0, 500);
        assert!(out.contains("s=Kurento Media Server\r\n"));
        assert!(out.contains("m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:500\r\n"));
        assert!(!out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\nb=AS"));
    }

    #[test]
    fn malformed_candidates_are_detected() {
        assert!(candidate_is_valid("candidate:1 1 UDP 2015363327 192.168.1.19 29321 typ host"));
        assert!(candidate_is_valid("candidate:842163049 1 udp 1677729535 1.2.3.4 5 typ srflx raddr 0.0.0.0 rport 0"));
        assert!(!candidate_is_valid("candidate:garbage"));
        assert!(!candidate_is_valid("hello"));
        assert!(!candidate_is_valid("candidate:1 1 UDP x 1.2.3.4 5 typ host"));
    }
}
