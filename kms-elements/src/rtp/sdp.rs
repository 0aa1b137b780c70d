//! SDP of the RtpEndpoint (spec §10.5, §10.8), apart from sockets and
//! GStreamer: the offers we generate (RTP/AVPF with `rtcp-fb`, or
//! RTP/SAVPF with `a=crypto` under SDES, as KMS offers them), how each
//! section of a remote offer is answered (classic RTP/AVP accepted, static
//! payload types without `rtpmap` understood), and what a remote answer
//! leaves us with. Unit-tested below.

use std::net::{IpAddr, SocketAddr};

use kms_core::Error;
use kms_core::agnosticbin::codecs::{Codec, Kind};

use super::crypto::{self, MasterKey};
use crate::webrtc::sdp::{CodecSet, SESSION_NAME, attr_for_pt, direction, err};

pub use crate::webrtc::sdp::{
    SDP_END_POINT_GENERATE_OFFER_ERROR, SDP_END_POINT_PROCESS_ANSWER_ERROR, SDP_END_POINT_PROCESS_OFFER_ERROR, parse,
};

/// SDES key tag of our offers (KMS uses 1).
pub const KEY_TAG: u32 = 1;

/// One payload type of a section: number, codec, and the `fmtp` it goes with.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub pt: u8,
    pub codec: Codec,
    pub fmtp: Option<String>,
}

/// A section of a local description.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalMedia {
    pub kind: Kind,
    /// RTP port; 0 = rejected.
    pub port: u16,
    pub rtcp_port: u16,
    pub proto: String,
    pub payloads: Vec<Payload>,
    pub direction: &'static str,
    /// `a=crypto` value (SDES).
    pub crypto: Option<String>,
    /// Our sending SSRC and CNAME (`a=ssrc`).
    pub ssrc: Option<(u32, String)>,
    /// `b=AS` (kbps, 0 = none).
    pub bandwidth_kbps: i32,
    /// For a rejected section: the offer's media line rest (formats).
    pub rejected_formats: Vec<String>,
    pub media_name: String,
}

/// A whole local description.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSession {
    pub addr: IpAddr,
    pub session_id: u64,
    pub medias: Vec<LocalMedia>,
}

fn ip_kind(addr: &IpAddr) -> &'static str {
    if addr.is_ipv6() { "IP6" } else { "IP4" }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    }
}

/// The rtpmap value of a codec (`opus/48000/2`, `VP8/90000`).
pub fn rtpmap(codec: Codec) -> String {
    match codec {
        Codec::Opus => "opus/48000/2".into(),
        c => format!("{}/{}", c.encoding_name(), c.clock_rate()),
    }
}

/// The `fmtp` we offer for a codec.
fn default_fmtp(codec: Codec) -> Option<String> {
    match codec {
        Codec::Opus => Some("minptime=10;useinbandfec=1".into()),
        Codec::H264 => Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into()),
        _ => None,
    }
}

/// Renders a local description.
pub fn render(s: &LocalSession) -> String {
    let ip = ip_kind(&s.addr);
    let mut out = format!(
        "v=0\r\no=- {id} {id} IN {ip} {addr}\r\ns={SESSION_NAME}\r\nc=IN {ip} {addr}\r\nt=0 0\r\n",
        id = s.session_id,
        addr = s.addr
    );
    for m in &s.medias {
        if m.port == 0 {
            let fmts = if m.rejected_formats.is_empty() { vec!["0".to_string()] } else { m.rejected_formats.clone() };
            out.push_str(&format!("m={} 0 {} {}\r\n", m.media_name, m.proto, fmts.join(" ")));
            continue;
        }
        let pts: Vec<String> = m.payloads.iter().map(|p| p.pt.to_string()).collect();
        out.push_str(&format!("m={} {} {} {}\r\n", m.media_name, m.port, m.proto, pts.join(" ")));
        if m.bandwidth_kbps > 0 {
            out.push_str(&format!("b=AS:{}\r\n", m.bandwidth_kbps));
        }
        out.push_str(&format!("a=rtcp:{}\r\n", m.rtcp_port));
        for p in &m.payloads {
            out.push_str(&format!("a=rtpmap:{} {}\r\n", p.pt, rtpmap(p.codec)));
            if let Some(f) = &p.fmtp {
                out.push_str(&format!("a=fmtp:{} {f}\r\n", p.pt));
            }
            if m.kind == Kind::Video && m.proto.ends_with("AVPF") {
                for fb in ["nack", "nack pli", "ccm fir"] {
                    out.push_str(&format!("a=rtcp-fb:{} {fb}\r\n", p.pt));
                }
            }
        }
        if let Some(c) = &m.crypto {
            out.push_str(&format!("a=crypto:{c}\r\n"));
        }
        out.push_str(&format!("a={}\r\n", m.direction));
        if let Some((ssrc, cname)) = &m.ssrc {
            out.push_str(&format!("a=ssrc:{ssrc} cname:{cname}\r\n"));
        }
    }
    out
}

/// The sections of an offer we generate: one per media type asked for that
/// has codecs, every configured codec of that type (static payload types
/// where they exist, dynamic from 96 on).
pub fn offer_medias(codecs: &CodecSet, audio: bool, video: bool) -> Vec<(Kind, Vec<Payload>)> {
    let mut next = 96u8;
    let mut out = vec![];
    for (kind, wanted) in [(Kind::Audio, audio), (Kind::Video, video)] {
        let list = codecs.for_kind(kind);
        if !wanted || list.is_empty() {
            continue;
        }
        let payloads = list
            .iter()
            .map(|c| {
                let pt = c.static_pt().unwrap_or_else(|| {
                    let p = next;
                    next += 1;
                    p
                });
                Payload { pt, codec: *c, fmtp: default_fmtp(*c) }
            })
            .collect();
        out.push((kind, payloads));
    }
    out
}

/// The transport profile of our sections.
pub fn offer_proto(srtp: bool) -> &'static str {
    if srtp { "RTP/SAVPF" } else { "RTP/AVPF" }
}

/// Payload types of a remote section we can use, in its order. Static
/// payload types may come without `rtpmap` (RFC 3551); H.264 only in
/// packetization mode 1.
pub fn usable_payloads(m: &gst_sdp::SDPMediaRef, allowed: &[Codec]) -> Vec<Payload> {
    let mut out = vec![];
    for f in m.formats() {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let codec = match attr_for_pt(m, "rtpmap", pt) {
            Some(map) => Codec::from_encoding_name(map.split('/').next().unwrap_or_default()),
            None => [Codec::Pcmu, Codec::Pcma].into_iter().find(|c| c.static_pt() == Some(pt)),
        };
        let Some(codec) = codec.filter(|c| allowed.contains(c)) else { continue };
        let fmtp = attr_for_pt(m, "fmtp", pt);
        if codec == Codec::H264 && !fmtp.as_deref().unwrap_or_default().contains("packetization-mode=1") {
            continue;
        }
        out.push(Payload { pt, codec, fmtp });
    }
    out
}

/// Where a remote section sends from / wants media: its `c=` (or the
/// session's), its port, and `a=rtcp` (or port + 1).
pub fn remote_addrs(msg: &gst_sdp::SDPMessage, m: &gst_sdp::SDPMediaRef) -> Option<(SocketAddr, SocketAddr)> {
    let addr =
        m.connections().next().and_then(|c| c.address()).or_else(|| msg.connection().and_then(|c| c.address()))?;
    let ip: IpAddr = addr.split('/').next()?.parse().ok()?;
    let port = m.port() as u16;
    let rtcp = m
        .attribute_val("rtcp")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(port.wrapping_add(1));
    Some((SocketAddr::new(ip, port), SocketAddr::new(ip, rtcp)))
}

/// What one section of a negotiation leaves the transport with.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    pub index: usize,
    pub kind: Kind,
    /// Payload types we may receive, with their codec.
    pub recv: Vec<Payload>,
    /// Payload types we send with, preferred first.
    pub send: Vec<Payload>,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub we_send: bool,
    pub we_recv: bool,
    /// The key the remote side encrypts with (SDES).
    pub remote_key: Option<MasterKey>,
    pub avpf: bool,
    /// `a=ssrc` of the remote sender, if announced.
    pub remote_ssrc: Option<u32>,
}

/// How an offer's section is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerSection {
    Accepted { negotiated: Negotiated, proto: String, direction: &'static str, crypto_tag: Option<u32> },
    Rejected { media_name: String, proto: String, formats: Vec<String> },
}

fn is_rtp_proto(proto: &str, srtp: bool) -> bool {
    let want: &[&str] = if srtp { &["RTP/SAVP", "RTP/SAVPF"] } else { &["RTP/AVP", "RTP/AVPF"] };
    want.contains(&proto)
}

/// The remote `a=ssrc` SSRC of a section, if any.
fn announced_ssrc(m: &gst_sdp::SDPMediaRef) -> Option<u32> {
    m.attributes().filter(|a| a.key() == "ssrc").filter_map(|a| a.value()?.split(' ').next()?.parse().ok()).next()
}

/// Decides how each section of `offer` is answered: the first audio and
/// the first video section with a usable codec, our profile (plain or SRTP
/// with a crypto line of our suite), our address family and a port; every
/// other section gets port 0.
pub fn plan_answer(
    offer: &gst_sdp::SDPMessage,
    codecs: &CodecSet,
    key: Option<&MasterKey>,
    ipv6: bool,
) -> Vec<AnswerSection> {
    let mut taken: Vec<Kind> = vec![];
    offer
        .medias()
        .enumerate()
        .map(|(index, m)| {
            let media_name = m.media().unwrap_or_default().to_string();
            let proto = m.proto().unwrap_or_default().to_string();
            let rejected = || AnswerSection::Rejected {
                media_name: media_name.clone(),
                proto: proto.clone(),
                formats: m.formats().map(str::to_string).collect(),
            };
            let kind = match media_name.as_str() {
                "audio" => Kind::Audio,
                "video" => Kind::Video,
                _ => return rejected(),
            };
            if m.port() == 0 || taken.contains(&kind) || !is_rtp_proto(&proto, key.is_some()) {
                return rejected();
            }
            let payloads = usable_payloads(m, codecs.for_kind(kind));
            let Some((remote_rtp, remote_rtcp)) = remote_addrs(offer, m) else { return rejected() };
            if payloads.is_empty() || remote_rtp.is_ipv6() != ipv6 {
                return rejected();
            }
            let (remote_key, crypto_tag) = match key {
                Some(k) => {
                    let found = m
                        .attributes()
                        .filter(|a| a.key() == "crypto")
                        .filter_map(|a| crypto::parse_attribute(a.value()?))
                        .find(|o| o.key.suite == k.suite);
                    match found {
                        Some(o) => (Some(o.key), Some(o.tag)),
                        None => return rejected(),
                    }
                }
                None => (None, None),
            };
            taken.push(kind);
            let remote_dir = direction(m);
            // `c=0.0.0.0` (RFC 2543 hold): nowhere to send to.
            let hold = remote_rtp.ip().is_unspecified();
            let (we_send, we_recv, dir) = match remote_dir {
                "sendonly" => (false, true, "recvonly"),
                "recvonly" if hold => (false, false, "inactive"),
                "recvonly" => (true, false, "sendonly"),
                "inactive" => (false, false, "inactive"),
                _ if hold => (false, true, "recvonly"),
                _ => (true, true, "sendrecv"),
            };
            let negotiated = Negotiated {
                index,
                kind,
                recv: payloads.clone(),
                send: payloads,
                remote_rtp,
                remote_rtcp,
                we_send,
                we_recv,
                remote_key,
                avpf: proto.ends_with('F'),
                remote_ssrc: announced_ssrc(m),
            };
            AnswerSection::Accepted { negotiated, proto, direction: dir, crypto_tag }
        })
        .collect()
}

/// One section of an offer we generated, as the answer is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub kind: Kind,
    pub payloads: Vec<Payload>,
}

/// Applies a remote answer to our offer: per offered section, accepted or
/// not (port 0, a profile or codec we did not offer, a missing or foreign
/// crypto line when we use SRTP).
pub fn apply_answer(
    answer: &gst_sdp::SDPMessage,
    offered: &[Offered],
    key: Option<&MasterKey>,
    ipv6: bool,
) -> Result<Vec<Option<Negotiated>>, Error> {
    if answer.medias_len() as usize != offered.len() {
        return Err(err(
            SDP_END_POINT_PROCESS_ANSWER_ERROR,
            format!("Answer has {} media sections, the offer had {}", answer.medias_len(), offered.len()),
        ));
    }
    let mut out = vec![];
    for (index, (m, o)) in answer.medias().zip(offered).enumerate() {
        let kind_ok = m.media() == Some(kind_name(o.kind));
        if !kind_ok || m.port() == 0 || !is_rtp_proto(m.proto().unwrap_or_default(), key.is_some()) {
            out.push(None);
            continue;
        }
        let ours: Vec<Codec> = o.payloads.iter().map(|p| p.codec).collect();
        let send = usable_payloads(m, &ours);
        let Some((remote_rtp, remote_rtcp)) = remote_addrs(answer, m) else {
            out.push(None);
            continue;
        };
        if send.is_empty() || remote_rtp.is_ipv6() != ipv6 {
            out.push(None);
            continue;
        }
        let remote_key = match key {
            Some(k) => {
                let found = m
                    .attributes()
                    .filter(|a| a.key() == "crypto")
                    .filter_map(|a| crypto::parse_attribute(a.value()?))
                    .find(|c| c.key.suite == k.suite && c.tag == KEY_TAG);
                match found {
                    Some(c) => Some(c.key),
                    None => {
                        out.push(None);
                        continue;
                    }
                }
            }
            None => None,
        };
        // We receive what we offered, plus the answer's numbers for the
        // same codecs (RFC 3264 §6.1 lets the answerer renumber).
        let mut recv = o.payloads.clone();
        for p in &send {
            if !recv.iter().any(|r| r.pt == p.pt) {
                recv.push(p.clone());
            }
        }
        let (we_send, we_recv) = match direction(m) {
            "sendonly" => (false, true),
            "recvonly" => (true, false),
            "inactive" => (false, false),
            _ => (true, true),
        };
        // `c=0.0.0.0` (RFC 2543 hold): nowhere to send to.
        let we_send = we_send && !remote_rtp.ip().is_unspecified();
        out.push(Some(Negotiated {
            index,
            kind: o.kind,
            recv,
            send,
            remote_rtp,
            remote_rtcp,
            we_send,
            we_recv,
            remote_key,
            avpf: m.proto().unwrap_or_default().ends_with('F'),
            remote_ssrc: announced_ssrc(m),
        }));
    }
    Ok(out)
}

/// The SDES attribute we put in a section: our key, under `tag`.
pub fn crypto_value(key: Option<&MasterKey>, tag: u32) -> Option<String> {
    key.map(|k| crypto::attribute(tag, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::elements::CryptoSuite;

    fn codecs() -> CodecSet {
        CodecSet { audio: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma], video: vec![Codec::Vp8, Codec::H264] }
    }

    fn session(addr: &str, srtp: Option<&MasterKey>) -> String {
        let medias = offer_medias(&codecs(), true, true)
            .into_iter()
            .enumerate()
            .map(|(i, (kind, payloads))| LocalMedia {
                kind,
                port: 5000 + 2 * i as u16,
                rtcp_port: 5001 + 2 * i as u16,
                proto: offer_proto(srtp.is_some()).into(),
                payloads,
                direction: "sendrecv",
                crypto: crypto_value(srtp, KEY_TAG),
                ssrc: Some((1234, "x".into())),
                bandwidth_kbps: if kind == Kind::Video { 500 } else { 0 },
                rejected_formats: vec![],
                media_name: kind_name(kind).into(),
            })
            .collect();
        render(&LocalSession { addr: addr.parse().unwrap(), session_id: 42, medias })
    }

    #[test]
    fn our_offer_is_avpf_with_feedback_and_parses() {
        gst::init().unwrap();
        let text = session("10.0.0.1", None);
        assert!(text.contains("s=Kurento Media Server\r\n"));
        assert!(text.contains("c=IN IP4 10.0.0.1\r\n"));
        assert!(text.contains("m=audio 5000 RTP/AVPF 96 0 8\r\n"));
        assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"));
        assert!(text.contains("m=video 5002 RTP/AVPF 97 98\r\nb=AS:500\r\na=rtcp:5003\r\n"));
        assert!(text.contains("a=rtcp-fb:97 nack pli\r\na=rtcp-fb:97 ccm fir\r\n"));
        assert!(text.contains("a=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"));
        assert!(!text.contains("goog-remb"), "no REMB on RtpEndpoint");
        assert!(parse(&text, "offer").is_ok());
        let v6 = session("::1", None);
        assert!(v6.contains("c=IN IP6 ::1\r\n") && v6.contains("o=- 42 42 IN IP6 ::1\r\n"));
    }

    #[test]
    fn an_offer_of_ours_is_answered_by_another_endpoint() {
        gst::init().unwrap();
        let key = crypto::master_key(&crate::api::elements::SDES {
            key: None,
            key_base64: None,
            crypto: Some(CryptoSuite::Aes256CmHmacSha180),
        })
        .unwrap()
        .unwrap();
        let offer = session("127.0.0.1", Some(&key));
        assert!(offer.contains("m=audio 5000 RTP/SAVPF 96 0 8\r\n"));
        assert!(offer.contains("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"));
        let msg = parse(&offer, "offer").unwrap();
        let other = crypto::master_key(&crate::api::elements::SDES {
            key: None,
            key_base64: None,
            crypto: Some(CryptoSuite::Aes256CmHmacSha180),
        })
        .unwrap()
        .unwrap();
        let plan = plan_answer(&msg, &codecs(), Some(&other), false);
        let AnswerSection::Accepted { negotiated, crypto_tag, .. } = &plan[1] else { panic!("video rejected") };
        assert_eq!(negotiated.remote_key.as_ref(), Some(&key), "the offerer's key decrypts what it sends");
        assert_eq!(*crypto_tag, Some(1));
        assert_eq!(negotiated.remote_rtp, "127.0.0.1:5002".parse().unwrap());
        assert_eq!(negotiated.remote_rtcp, "127.0.0.1:5003".parse().unwrap());
        assert_eq!(negotiated.send.iter().map(|p| p.codec).collect::<Vec<_>>(), vec![Codec::Vp8, Codec::H264]);
        // A plain endpoint and an endpoint of another suite cannot answer it.
        assert!(plan_answer(&msg, &codecs(), None, false).iter().all(|s| matches!(s, AnswerSection::Rejected { .. })));
        let k128 = crypto::master_key(&crate::api::elements::SDES {
            key: None,
            key_base64: None,
            crypto: Some(CryptoSuite::Aes128CmHmacSha180),
        })
        .unwrap()
        .unwrap();
        assert!(
            plan_answer(&msg, &codecs(), Some(&k128), false)
                .iter()
                .all(|s| matches!(s, AnswerSection::Rejected { .. }))
        );
        // IPv6 endpoint vs IPv4 offer: not reachable.
        assert!(
            plan_answer(&msg, &codecs(), Some(&other), true)
                .iter()
                .all(|s| matches!(s, AnswerSection::Rejected { .. }))
        );
    }

    #[test]
    fn classic_rtp_avp_offers_with_static_payloads_are_accepted() {
        gst::init().unwrap();
        let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0 8 18\r\na=sendonly\r\n\
            m=video 4002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n\
            m=text 4004 RTP/AVP 98\r\n";
        let msg = parse(offer, "offer").unwrap();
        let plan = plan_answer(&msg, &codecs(), None, false);
        let AnswerSection::Accepted { negotiated: a, direction, .. } = &plan[0] else { panic!() };
        assert_eq!(
            a.recv.iter().map(|p| (p.pt, p.codec)).collect::<Vec<_>>(),
            vec![(0, Codec::Pcmu), (8, Codec::Pcma)]
        );
        assert_eq!((a.we_send, a.we_recv, *direction), (false, true, "recvonly"));
        assert!(!a.avpf);
        assert_eq!(a.remote_rtcp, "192.0.2.5:4001".parse().unwrap());
        assert!(matches!(plan[1], AnswerSection::Accepted { .. }));
        assert!(matches!(plan[2], AnswerSection::Rejected { .. }));
    }

    #[test]
    fn answers_are_checked_against_what_we_offered() {
        gst::init().unwrap();
        let offered: Vec<Offered> = offer_medias(&codecs(), true, true)
            .into_iter()
            .map(|(kind, payloads)| Offered { kind, payloads })
            .collect();
        let answer = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
            m=audio 6000 RTP/AVPF 0\r\na=rtcp:7000\r\n\
            m=video 0 RTP/AVPF 97\r\n";
        let got = apply_answer(&parse(answer, "answer").unwrap(), &offered, None, false).unwrap();
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.send.iter().map(|p| p.codec).collect::<Vec<_>>(), vec![Codec::Pcmu]);
        assert_eq!(a.remote_rtcp, "192.0.2.9:7000".parse().unwrap());
        assert!(got[1].is_none());
        let short = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n";
        let e = apply_answer(&parse(short, "answer").unwrap(), &offered, None, false).unwrap_err();
        assert_eq!(e.code(), SDP_END_POINT_PROCESS_ANSWER_ERROR);
        let v6 = answer.replace("IN IP4 192.0.2.9", "IN IP6 2001:db8::9");
        let got = apply_answer(&parse(&v6, "answer").unwrap(), &offered, None, false).unwrap();
        assert!(got[0].is_none(), "another address family cannot be reached");
        let hold = answer.replace("c=IN IP4 192.0.2.9", "c=IN IP4 0.0.0.0");
        let got = apply_answer(&parse(&hold, "answer").unwrap(), &offered, None, false).unwrap();
        let a = got[0].as_ref().unwrap();
        assert!(!a.we_send && a.we_recv, "on hold: receive only");
    }
}
