//! The RtpEndpoint's transport: one `rtpbin`, and per negotiated media
//! (session 0 = audio, 1 = video) a `udpsrc`/`udpsink` pair for RTP and one
//! for RTCP on the sockets bound by [`super::ports`]. Under SDES,
//! `srtpenc`/`srtpdec` sit inside rtpbin (its `request-rtp-encoder` /
//! `request-rtp-decoder` signals), keyed per session.
//!
//! ```text
//! kmsrtpinput(audio|video) → rtpbin.send_rtp_sink_N ─[srtpenc]→ udpsink(RTP)
//!                            rtpbin.send_rtcp_src_N ─[srtpenc]→ udpsink(RTCP)
//! udpsrc(RTP)  → rtpbin.recv_rtp_sink_N  ─[srtpdec]→ session → ptdemux → agnosticbin(audio|video)
//! udpsrc(RTCP) → rtpbin.recv_rtcp_sink_N ─[srtpdec]→ session (SR/RR, PLI/FIR → GstForceKeyUnit upstream)
//! ```
//!
//! rtpbin's signals run on streaming threads: they only read the small
//! `Shared` tables, which RPC threads fill before the pads that trigger the
//! signals are requested.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use gst::prelude::*;
use kms_core::agnosticbin::codecs::{Codec, Kind};

use super::crypto::{self, MasterKey};
use super::ports::PortPair;
use super::sdp::Negotiated;

/// Session id of a media kind inside rtpbin.
pub fn session_id(kind: Kind) -> u32 {
    match kind {
        Kind::Audio => 0,
        Kind::Video => 1,
    }
}

pub fn kind_of_session(id: u32) -> Option<Kind> {
    match id {
        0 => Some(Kind::Audio),
        1 => Some(Kind::Video),
        _ => None,
    }
}

/// What rtpbin's signal handlers look up.
#[derive(Default)]
pub struct Shared {
    /// (session, payload type) → caps for `request-pt-map`.
    pub pt_map: Mutex<HashMap<(u32, u8), gst::Caps>>,
    /// session → (our key, the remote key).
    pub keys: Mutex<HashMap<u32, (MasterKey, MasterKey)>>,
    /// session → its srtpenc / srtpdec (one each for RTP and RTCP).
    encoders: Mutex<HashMap<u32, gst::Element>>,
    decoders: Mutex<HashMap<u32, gst::Element>>,
    /// session → feedback received from the peer: (FIR, PLI, NACK).
    /// rtpsession's own counters miss FIRs (their media SSRC is 0).
    pub feedback: Mutex<HashMap<u32, (i64, i64, i64)>>,
}

/// RTP caps of one receivable payload type (for `request-pt-map`), with
/// the feedback rtpsession may send for it (PLI/FIR on AVPF video).
pub fn pt_caps(pt: u8, codec: Codec, fmtp: Option<&str>, avpf: bool) -> gst::Caps {
    let mut caps = codec.rtp_caps();
    {
        let s = caps.make_mut().structure_mut(0).expect("one structure");
        s.set("payload", pt as i32);
        if codec == Codec::Opus {
            s.set("encoding-params", "2");
        }
        for kv in fmtp.unwrap_or_default().split(';') {
            if let Some((k, v)) = kv.split_once('=') {
                let k = k.trim();
                if !k.is_empty() && !s.has_field(k) {
                    s.set(k, v.trim());
                }
            }
        }
        if avpf && codec.kind() == Kind::Video {
            s.set("rtcp-fb-nack-pli", true);
            s.set("rtcp-fb-ccm-fir", true);
        }
    }
    caps
}

fn srtp_key_caps(key: &MasterKey) -> gst::Caps {
    let (cipher, auth, rtcp_auth) = crypto::srtp_params(key.suite);
    gst::Caps::builder("application/x-srtp")
        .field("srtp-key", gst::Buffer::from_slice(key.bytes.clone()))
        .field("srtp-cipher", cipher)
        .field("srtp-auth", auth)
        .field("srtcp-cipher", cipher)
        .field("srtcp-auth", rtcp_auth)
        .build()
}

/// Connects rtpbin's signals: payload type maps, SRTP encoders/decoders
/// and, through `on_soft_limit`, the keys' soft limits.
pub fn hook(rtpbin: &gst::Element, shared: &Arc<Shared>, on_soft_limit: Arc<dyn Fn(Kind) + Send + Sync>) {
    let s = shared.clone();
    rtpbin.connect("request-pt-map", false, move |args| {
        let session = args.get(1)?.get::<u32>().ok()?;
        let pt = args.get(2)?.get::<u32>().ok()? as u8;
        let caps = s.pt_map.lock().get(&(session, pt)).cloned();
        if caps.is_none() {
            tracing::debug!(session, pt, "RTP with a payload type not negotiated");
        }
        Some(caps.to_value())
    });
    // Forwarding needs no reordering delay (as the WebRtcEndpoint).
    rtpbin.connect("request-jitterbuffer", false, |_| {
        Some(crate::webrtc::nojitter::RtpNoJitter::new().upcast::<gst::Element>().to_value())
    });
    for (signal, encoder) in [
        ("request-rtp-encoder", true),
        ("request-rtcp-encoder", true),
        ("request-rtp-decoder", false),
        ("request-rtcp-decoder", false),
    ] {
        let s = shared.clone();
        let soft = on_soft_limit.clone();
        rtpbin.connect(signal, false, move |args| {
            let session = args.get(1)?.get::<u32>().ok()?;
            let el = if encoder { s.encoder(session, &soft) } else { s.decoder(session, &soft) };
            Some(el.to_value())
        });
    }
}

impl Shared {
    fn feedback_counter(self: &Arc<Self>) -> std::sync::Weak<Shared> {
        Arc::downgrade(self)
    }

    /// The session's srtpenc with our key (one element serves RTP and RTCP).
    fn encoder(&self, session: u32, soft: &Arc<dyn Fn(Kind) + Send + Sync>) -> Option<gst::Element> {
        let (local, _) = self.keys.lock().get(&session).cloned()?;
        let mut encs = self.encoders.lock();
        if let Some(e) = encs.get(&session) {
            return Some(e.clone());
        }
        let (cipher, auth, rtcp_auth) = crypto::srtp_params(local.suite);
        let enc = gst::ElementFactory::make("srtpenc")
            .name(format!("srtpenc_{session}"))
            .property("key", gst::Buffer::from_slice(local.bytes.clone()))
            .property_from_str("rtp-cipher", cipher)
            .property_from_str("rtcp-cipher", cipher)
            .property_from_str("rtp-auth", auth)
            .property_from_str("rtcp-auth", rtcp_auth)
            .build()
            .map_err(|e| tracing::warn!("srtpenc: {e}"))
            .ok()?;
        // rtpbin looks the session's pads up as static pads.
        for pad in [format!("rtp_sink_{session}"), format!("rtcp_sink_{session}")] {
            enc.request_pad_simple(&pad)?;
        }
        if let Some(kind) = kind_of_session(session) {
            let soft = soft.clone();
            enc.connect("soft-limit", false, move |_| {
                soft(kind);
                None
            });
        }
        encs.insert(session, enc.clone());
        Some(enc)
    }

    /// The session's srtpdec, answering `request-key` with the remote key.
    fn decoder(&self, session: u32, soft: &Arc<dyn Fn(Kind) + Send + Sync>) -> Option<gst::Element> {
        let (_, remote) = self.keys.lock().get(&session).cloned()?;
        let mut decs = self.decoders.lock();
        if let Some(d) = decs.get(&session) {
            return Some(d.clone());
        }
        let dec = gst::ElementFactory::make("srtpdec")
            .name(format!("srtpdec_{session}"))
            .build()
            .map_err(|e| tracing::warn!("srtpdec: {e}"))
            .ok()?;
        let caps = srtp_key_caps(&remote);
        dec.connect("request-key", false, move |_| Some(caps.to_value()));
        if let Some(kind) = kind_of_session(session) {
            let soft = soft.clone();
            // Keep the key (no new one to offer without renegotiation).
            dec.connect("soft-limit", false, move |_| {
                soft(kind);
                Some(None::<gst::Caps>.to_value())
            });
        }
        decs.insert(session, dec.clone());
        Some(dec)
    }
}

fn gio_socket(sock: std::net::UdpSocket) -> Result<gio::Socket, String> {
    let fd: OwnedFd = sock.into();
    gio::Socket::from_fd(fd).map_err(|e| format!("socket: {e}"))
}

fn udpsrc(socket: &gio::Socket, caps: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make("udpsrc")
        .property("socket", socket)
        .property("close-socket", true)
        .property("caps", gst::Caps::builder(caps).build())
        .build()
        .map_err(|e| format!("udpsrc: {e}"))
}

fn udpsink(socket: &gio::Socket, to: SocketAddr) -> Result<gst::Element, String> {
    gst::ElementFactory::make("udpsink")
        .property("socket", socket)
        .property("close-socket", true)
        .property("host", to.ip().to_string())
        .property("port", to.port() as i32)
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| format!("udpsink: {e}"))
}

/// Builds one media's sockets and links them into rtpbin; `send_input`
/// (the media's `kmsrtpinput`) feeds the RTP session when we send.
pub fn add_media(
    bin: &gst::Bin,
    rtpbin: &gst::Element,
    shared: &Arc<Shared>,
    n: &Negotiated,
    ports: PortPair,
    local_key: Option<&MasterKey>,
    send_input: Option<&gst::Element>,
) -> Result<(), String> {
    let session = session_id(n.kind);
    {
        let mut map = shared.pt_map.lock();
        for p in &n.recv {
            map.insert((session, p.pt), pt_caps(p.pt, p.codec, p.fmtp.as_deref(), n.avpf));
        }
    }
    if let (Some(l), Some(r)) = (local_key, n.remote_key.as_ref()) {
        shared.keys.lock().insert(session, (l.clone(), r.clone()));
    }
    let srtp = local_key.is_some();
    let rtp_sock = gio_socket(ports.rtp)?;
    let rtcp_sock = gio_socket(ports.rtcp)?;
    let rtp_src = udpsrc(&rtp_sock, if srtp { "application/x-srtp" } else { "application/x-rtp" })?;
    let rtcp_src = udpsrc(&rtcp_sock, if srtp { "application/x-srtcp" } else { "application/x-rtcp" })?;
    let rtp_sink = udpsink(&rtp_sock, n.remote_rtp)?;
    // On hold (`c=0.0.0.0`) our RTCP goes nowhere: Linux would deliver a
    // packet to 0.0.0.0 locally.
    let rtcp_sink = if n.remote_rtcp.ip().is_unspecified() {
        gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
            .map_err(|e| format!("fakesink: {e}"))?
    } else {
        udpsink(&rtcp_sock, n.remote_rtcp)?
    };
    let elements = vec![rtp_src.clone(), rtcp_src.clone(), rtp_sink.clone(), rtcp_sink.clone()];
    bin.add_many(&elements).map_err(|e| e.to_string())?;
    let link = |src: &gst::Pad, sink: &gst::Pad| src.link(sink).map(|_| ()).map_err(|e| format!("{e:?}"));
    let req = |name: String| rtpbin.request_pad_simple(&name).ok_or_else(|| format!("rtpbin: no pad {name}"));
    // Receive side: RTP and RTCP from the peer.
    link(&rtp_src.static_pad("src").expect("udpsrc src"), &req(format!("recv_rtp_sink_{session}"))?)?;
    link(&rtcp_src.static_pad("src").expect("udpsrc src"), &req(format!("recv_rtcp_sink_{session}"))?)?;
    // Our RTCP (SR/RR, feedback) toward the peer.
    link(&req(format!("send_rtcp_src_{session}"))?, &rtcp_sink.static_pad("sink").expect("udpsink sink"))?;
    // Send side: the media input through the session.
    if let Some(input) = send_input {
        let sink = req(format!("send_rtp_sink_{session}"))?;
        link(&input.static_pad("src").expect("input src"), &sink)?;
        let src = rtpbin
            .static_pad(&format!("send_rtp_src_{session}"))
            .ok_or_else(|| format!("rtpbin: no send_rtp_src_{session}"))?;
        link(&src, &rtp_sink.static_pad("sink").expect("udpsink sink"))?;
    }
    if let Some(internal) = rtpbin.emit_by_name::<Option<gst::glib::Object>>("get-internal-session", &[&session]) {
        let fb = shared.feedback_counter();
        internal.connect("on-feedback-rtcp", false, move |args| {
            let t = args.get(1).and_then(|v| v.get::<u32>().ok());
            let f = args.get(2).and_then(|v| v.get::<u32>().ok());
            if let (Some(shared), Some(t), Some(f)) = (fb.upgrade(), t, f) {
                let mut map = shared.feedback.lock();
                let c = map.entry(session).or_default();
                match (t, f) {
                    (206, 4) => c.0 += 1,
                    (206, 1) => c.1 += 1,
                    (205, 1) => c.2 += 1,
                    _ => {}
                }
            }
            None
        });
    }
    for e in &elements {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::elements::CryptoSuite;

    /// libsrtp's soft limit needs ~2^48 packets: the signals are emitted by
    /// hand to prove they reach `OnKeySoftLimit`'s callback.
    #[test]
    fn srtp_elements_carry_the_keys_and_report_soft_limits() {
        gst::init().unwrap();
        if gst::ElementFactory::find("srtpenc").is_none() {
            return;
        }
        let shared = Shared::default();
        let ours = MasterKey { suite: CryptoSuite::Aes256CmHmacSha132, bytes: vec![1; 46] };
        let theirs = MasterKey { suite: CryptoSuite::Aes256CmHmacSha132, bytes: vec![2; 46] };
        shared.keys.lock().insert(1, (ours, theirs));
        let hits = Arc::new(Mutex::new(vec![]));
        let h = hits.clone();
        let cb: Arc<dyn Fn(Kind) + Send + Sync> = Arc::new(move |k| h.lock().push(k));
        let enc = shared.encoder(1, &cb).unwrap();
        assert!(enc.static_pad("rtp_sink_1").is_some() && enc.static_pad("rtcp_src_1").is_some());
        assert_eq!(shared.encoder(1, &cb).unwrap(), enc, "one encoder for RTP and RTCP");
        assert_eq!(enc.property::<gst::Buffer>("key").map_readable().unwrap().as_slice(), &[1u8; 46][..]);
        enc.emit_by_name::<()>("soft-limit", &[]);
        let dec = shared.decoder(1, &cb).unwrap();
        let caps = dec.emit_by_name::<Option<gst::Caps>>("request-key", &[&7u32]).unwrap();
        let s = caps.structure(0).unwrap();
        assert_eq!(s.get::<gst::Buffer>("srtp-key").unwrap().map_readable().unwrap().as_slice(), &[2u8; 46][..]);
        assert_eq!(s.get::<&str>("srtp-auth").unwrap(), "hmac-sha1-32");
        assert_eq!(s.get::<&str>("srtcp-auth").unwrap(), "hmac-sha1-80");
        let _ = dec.emit_by_name::<Option<gst::Caps>>("soft-limit", &[&7u32]);
        assert_eq!(*hits.lock(), vec![Kind::Video, Kind::Video]);
        assert!(shared.encoder(0, &cb).is_none(), "no key, no SRTP");
    }
}
