//! The SdpEndpoint state machine (spec §10.5) driving webrtcbin.

use std::time::Duration;

use gst::prelude::*;
use kms_core::Result;
use kms_core::agnosticbin::codecs::{Codec, Kind};
use kms_core::api::core::events::MediaSessionStarted;
use kms_core::api::core::{MediaType, OfferOptions};

use super::rtp_input::SendFormat;
use super::sdp::{self, err};
use super::{PROMISE_TIMEOUT, WebRtcEndpointImpl, random_ssrc};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Idle,
    OfferGenerated,
    /// processOffer done.
    Answered,
    /// generateOffer + processAnswer done.
    AnswerProcessed,
}

#[derive(Default)]
pub struct Negotiation {
    pub phase: Phase,
    pub local: Option<String>,
    pub remote: Option<String>,
    /// (m-line, SSRC) of the streams our offer announced.
    pub send_ssrcs: Vec<(u32, u32)>,
}

/// Runs a webrtcbin action taking a promise and waits for its reply.
fn call_with_promise(
    webrtcbin: &gst::Element,
    signal: &str,
    first: &dyn ToValue,
    timeout: Duration,
) -> std::result::Result<Option<gst::Structure>, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let r = match reply {
            Ok(Some(s)) => Ok(Some(s.to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("{e:?}")),
        };
        let _ = tx.send(r);
    });
    webrtcbin.emit_by_name::<()>(signal, &[first, &promise]);
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(s))) => {
            if let Ok(e) = s.get::<gst::glib::Error>("error") {
                return Err(e.to_string());
            }
            Ok(Some(s))
        }
        Ok(r) => r,
        Err(_) => {
            promise.interrupt();
            Err(format!("{signal}: no answer from webrtcbin"))
        }
    }
}

fn set_description(
    webrtcbin: &gst::Element,
    remote: bool,
    kind: gst_webrtc::WebRTCSDPType,
    msg: gst_sdp::SDPMessage,
) -> std::result::Result<(), String> {
    let desc = gst_webrtc::WebRTCSessionDescription::new(kind, msg);
    let signal = if remote { "set-remote-description" } else { "set-local-description" };
    call_with_promise(webrtcbin, signal, &desc, PROMISE_TIMEOUT).map(|_| ())
}

fn create_description(
    webrtcbin: &gst::Element,
    offer: bool,
) -> std::result::Result<gst_webrtc::WebRTCSessionDescription, String> {
    let signal = if offer { "create-offer" } else { "create-answer" };
    let reply = call_with_promise(webrtcbin, signal, &None::<gst::Structure>, PROMISE_TIMEOUT)?
        .ok_or_else(|| format!("{signal}: empty reply"))?;
    reply
        .get::<gst_webrtc::WebRTCSessionDescription>(if offer { "offer" } else { "answer" })
        .map_err(|e| format!("{signal}: {e}"))
}

fn media_type(kind: Kind) -> MediaType {
    match kind {
        Kind::Audio => MediaType::Audio,
        Kind::Video => MediaType::Video,
    }
}

impl WebRtcEndpointImpl {
    pub(super) fn do_process_offer(&self, offer: String) -> Result<String> {
        let mut neg = self.neg.lock();
        if neg.phase != Phase::Idle {
            return Err(err(sdp::SDP_END_POINT_ALREADY_NEGOTIATED, "Endpoint already negotiated"));
        }
        let msg = sdp::parse(&offer, "offer")?;
        if msg.medias_len() == 0 {
            return Err(err(sdp::SDP_END_POINT_PROCESS_OFFER_ERROR, "Offer has no media"));
        }
        let sections = sdp::plan_offer(&msg, &self.codecs, self.ctor.use_data_channels);
        if !sections.iter().any(|s| s.accepted) {
            // Nothing we can take (e.g. plain RTP/AVP, no DTLS): KMS still
            // answers, every section rejected; no transport is started.
            let session_id = (u64::from(gst::glib::random_int()) << 31) | u64::from(gst::glib::random_int() >> 1);
            let text = sdp::answer_rejecting_all(&msg, session_id);
            let answer_msg = sdp::parse(&text, "answer")?;
            self.prepare_ice(&answer_msg);
            tracing::info!(id = %self.base().id(), "processOffer: no section acceptable, all rejected");
            neg.phase = Phase::Answered;
            neg.local = Some(text.clone());
            neg.remote = Some(offer);
            return Ok(text);
        }
        let filtered_text = sdp::filter_offer(&offer, &sections);
        let filtered = sdp::parse(&filtered_text, "offer")?;
        self.apply_ice_settings();
        let fail = |e: String| {
            tracing::warn!(id = %self.base().id(), "processOffer: {e}");
            err(sdp::SDP_END_POINT_PROCESS_OFFER_ERROR, format!("Cannot process offer: {e}"))
        };
        // Transceivers in m-line order, so webrtcbin associates each with
        // its section; codec preferences = what we accepted, with the SSRC
        // we will send with (webrtcbin answers it, and its retransmission
        // SSRC, as `a=ssrc`/`a=ssrc-group:FID`).
        let mut send_ssrcs = vec![];
        for s in sections.iter().filter(|s| s.accepted) {
            if let sdp::SectionKind::Media(kind) = s.kind {
                let m = filtered.media(s.index as u32).ok_or_else(|| fail("section vanished".into()))?;
                let ssrc = random_ssrc();
                let mut caps = gst::Caps::new_empty();
                for (pt, _) in &s.payloads {
                    if let Some(c) = m.caps_from_media(*pt as i32) {
                        let mut c = c.to_owned();
                        if let Some(st) = c.make_mut().structure_mut(0) {
                            st.set_name("application/x-rtp");
                            st.set("ssrc", ssrc);
                        }
                        caps.merge(c);
                    }
                }
                let t = self.webrtcbin.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[&gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv, &caps],
                );
                self.configure_transceiver(&t, media_type(kind));
                send_ssrcs.push((s.index as u32, ssrc));
            }
        }
        set_description(&self.webrtcbin, true, gst_webrtc::WebRTCSDPType::Offer, filtered).map_err(fail)?;
        let answer = create_description(&self.webrtcbin, false).map_err(fail)?;
        let (max_a, max_v) = {
            let s = self.settings.lock();
            (s.max_audio_recv_bandwidth, s.max_video_recv_bandwidth)
        };
        let text = sdp::finish_local(&answer.sdp().as_text().map_err(|e| fail(e.to_string()))?, max_a, max_v);
        let text = sdp::reject_in_answer(&text, &sections);
        let text = super::loss::dedupe_ssrc_lines(&super::remb::advertise_remb(&text, Some(&offer)));
        let text = match &self.dtls_fingerprint {
            Some(fp) => sdp::set_fingerprint(&text, fp),
            None => text,
        };
        let answer_msg = sdp::parse(&text, "answer").map_err(|e| fail(e.to_string()))?;
        self.prepare_ice(&answer_msg);
        set_description(&self.webrtcbin, false, gst_webrtc::WebRTCSDPType::Answer, answer_msg.clone()).map_err(fail)?;
        let text = sdp::present_rejected(&text, &msg, &sections);
        neg.phase = Phase::Answered;
        neg.local = Some(text.clone());
        neg.remote = Some(offer);
        drop(neg);
        self.wire_send_streams(&answer_msg, true, &send_ssrcs);
        self.descriptions_ready(sections.iter().any(|s| s.kind == sdp::SectionKind::Data && s.accepted));
        self.base().raise(&MediaSessionStarted {});
        Ok(text)
    }

    pub(super) fn do_generate_offer(&self, options: Option<OfferOptions>) -> Result<String> {
        let mut neg = self.neg.lock();
        if neg.phase != Phase::Idle {
            return Err(err(sdp::SDP_END_POINT_ALREADY_NEGOTIATED, "Endpoint already negotiated"));
        }
        let fail = |e: String| {
            tracing::warn!(id = %self.base().id(), "generateOffer: {e}");
            err(sdp::SDP_END_POINT_GENERATE_OFFER_ERROR, format!("Cannot generate offer: {e}"))
        };
        let (audio, video) = options.map_or((true, true), |o| (o.offer_to_receive_audio, o.offer_to_receive_video));
        let (n_audio, n_video) = {
            let s = self.settings.lock();
            (if audio { s.num_audio_medias } else { 0 }, if video { s.num_video_medias } else { 0 })
        };
        let direction = if self.ctor.recvonly {
            gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly
        } else if self.ctor.sendonly {
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly
        } else {
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv
        };
        self.apply_ice_settings();
        let mut next_pt = 96u8;
        let mut any = false;
        let mut mline = 0u32;
        for (kind, n) in [(Kind::Audio, n_audio), (Kind::Video, n_video)] {
            let codecs = self.codecs.for_kind(kind);
            if codecs.is_empty() {
                continue;
            }
            for _ in 0..n {
                let mut caps = sdp::offer_caps(kind, codecs, &mut next_pt);
                if !self.ctor.recvonly {
                    let ssrc = random_ssrc();
                    caps.make_mut().iter_mut().for_each(|s| s.set("ssrc", ssrc));
                    neg.send_ssrcs.push((mline, ssrc));
                }
                let t = self
                    .webrtcbin
                    .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>("add-transceiver", &[&direction, &caps]);
                self.configure_transceiver(&t, media_type(kind));
                any = true;
                mline += 1;
            }
        }
        if self.ctor.use_data_channels {
            // webrtcbin offers an SCTP section only once a channel exists; a
            // pre-negotiated one is invisible to the peer.
            let opts = gst::Structure::builder("options").field("negotiated", true).field("id", 1023i32).build();
            let _ = self
                .webrtcbin
                .emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>("create-data-channel", &[&"kurento", &opts]);
            any = true;
        }
        if !any {
            return Err(fail("nothing to offer".into()));
        }
        let offer = create_description(&self.webrtcbin, true).map_err(fail)?;
        let (max_a, max_v) = {
            let s = self.settings.lock();
            (s.max_audio_recv_bandwidth, s.max_video_recv_bandwidth)
        };
        let text = sdp::finish_local(&offer.sdp().as_text().map_err(|e| fail(e.to_string()))?, max_a, max_v);
        let text = super::loss::dedupe_ssrc_lines(&super::remb::advertise_remb(&text, None));
        let text = match &self.dtls_fingerprint {
            Some(fp) => sdp::set_fingerprint(&text, fp),
            None => text,
        };
        let msg = sdp::parse(&text, "offer").map_err(|e| fail(e.to_string()))?;
        self.prepare_ice(&msg);
        set_description(&self.webrtcbin, false, gst_webrtc::WebRTCSDPType::Offer, msg).map_err(fail)?;
        neg.phase = Phase::OfferGenerated;
        neg.local = Some(text.clone());
        Ok(text)
    }

    pub(super) fn do_process_answer(&self, answer: String) -> Result<String> {
        let mut neg = self.neg.lock();
        match neg.phase {
            Phase::OfferGenerated => {}
            Phase::AnswerProcessed => {
                return Err(err(sdp::SDP_END_POINT_ANSWER_ALREADY_PROCCESED, "Answer already processed"));
            }
            Phase::Idle | Phase::Answered => {
                return Err(err(sdp::SDP_END_POINT_NOT_OFFER_GENERATED, "Offer not generated"));
            }
        }
        let msg = sdp::parse(&answer, "answer")?;
        let fail = |e: String| {
            tracing::warn!(id = %self.base().id(), "processAnswer: {e}");
            err(sdp::SDP_END_POINT_PROCESS_ANSWER_ERROR, format!("Cannot process answer: {e}"))
        };
        // Drop header extensions and groups we did not offer.
        let cleaned = strip_answer(&answer);
        let cleaned_msg = sdp::parse(&cleaned, "answer")?;
        set_description(&self.webrtcbin, true, gst_webrtc::WebRTCSDPType::Answer, cleaned_msg).map_err(fail)?;
        neg.phase = Phase::AnswerProcessed;
        neg.remote = Some(answer);
        let local = neg.local.clone().unwrap_or_default();
        let send_ssrcs = neg.send_ssrcs.clone();
        drop(neg);
        self.wire_send_streams(&msg, false, &send_ssrcs);
        let data = msg.medias().any(|m| m.media() == Some("application") && m.port() != 0);
        self.descriptions_ready(data && self.ctor.use_data_channels);
        self.base().raise(&MediaSessionStarted {});
        Ok(local)
    }

    /// After negotiation: the first sent section of each media type gets
    /// its `kmsrtpinput`, linked to webrtcbin and told the negotiated
    /// formats. `sdp_is_local_answer`: `msg` is our answer (directions are
    /// ours) rather than the remote answer (directions are the peer's).
    /// `send_ssrcs`: (m-line, SSRC) announced in our description.
    fn wire_send_streams(&self, msg: &gst_sdp::SDPMessage, sdp_is_local_answer: bool, send_ssrcs: &[(u32, u32)]) {
        let mut done: Vec<MediaType> = vec![];
        for (idx, m) in msg.medias().enumerate() {
            if m.port() == 0 && m.attribute_val("bundle-only").is_none() {
                continue;
            }
            let t = match m.media() {
                Some("audio") => MediaType::Audio,
                Some("video") => MediaType::Video,
                _ => continue,
            };
            if done.contains(&t) {
                continue;
            }
            let dir = sdp::direction(m);
            let we_send = if sdp_is_local_answer {
                dir == "sendrecv" || dir == "sendonly"
            } else {
                (dir == "sendrecv" || dir == "recvonly") && !self.ctor.recvonly
            };
            if !we_send {
                continue;
            }
            let mut formats = vec![];
            for f in m.formats() {
                let Ok(pt) = f.parse::<u8>() else { continue };
                let Some(rtpmap) = sdp::attr_for_pt(m, "rtpmap", pt) else { continue };
                let Some(codec) = Codec::from_encoding_name(rtpmap.split('/').next().unwrap_or_default()) else {
                    continue;
                };
                if media_type(codec.kind()) != t {
                    continue;
                }
                if codec == Codec::H264
                    && !sdp::attr_for_pt(m, "fmtp", pt).unwrap_or_default().contains("packetization-mode=1")
                {
                    continue;
                }
                formats.push(SendFormat { caps: sdp::send_caps(codec), pt, clock_rate: codec.clock_rate() as u32 });
            }
            if formats.is_empty() {
                continue;
            }
            let Some(input) = self.slots.rtp_input(self.core.bin(), t) else { continue };
            let Some(src) = input.static_pad("src") else { continue };
            let linked = src.is_linked() || self.send_pad(idx as u32).is_some_and(|sink| src.link(&sink).is_ok());
            if !linked {
                tracing::warn!(id = %self.base().id(), media = %t, "cannot link send stream");
                continue;
            }
            let ssrc = send_ssrcs.iter().find(|(m, _)| *m == idx as u32).map_or_else(random_ssrc, |(_, s)| *s);
            input.set_formats(formats, ssrc);
            done.push(t);
        }
        self.update_send_bitrate();
    }

    /// webrtcbin's sink pad of the transceiver at m-line `mline`: webrtcbin
    /// creates them itself for transceivers that send; request one
    /// otherwise.
    fn send_pad(&self, mline: u32) -> Option<gst::Pad> {
        let of_mline = |p: &gst::Pad| {
            p.has_property("transceiver")
                && p.property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")
                    .is_some_and(|t| t.mlineindex() == mline)
        };
        if let Some(p) = self.webrtcbin.sink_pads().into_iter().find(|p| of_mline(p) && !p.is_linked()) {
            return Some(p);
        }
        let p = self.webrtcbin.request_pad_simple("sink_%u")?;
        if !of_mline(&p) {
            tracing::warn!(id = %self.base().id(), mline, "webrtcbin bound the send pad to another transceiver");
        }
        Some(p)
    }

    /// The local SDP with the candidates gathered so far (spec §10.5).
    pub(super) fn local_sdp_with_candidates(&self) -> Option<String> {
        let local = self.neg.lock().local.clone()?;
        let (cands, done) = {
            let ice = self.ice.lock();
            (ice.local.clone(), ice.gathering_complete)
        };
        if cands.is_empty() {
            return Some(local);
        }
        let mut out = String::with_capacity(local.len() + cands.len() * 80);
        let mut mline: i64 = -1;
        let flush = |out: &mut String, mline: i64| {
            if mline < 0 {
                return;
            }
            for c in cands.iter().filter(|c| c.sdp_m_line_index as i64 == mline) {
                out.push_str(&format!("a={}\r\n", c.candidate));
            }
            if done {
                out.push_str("a=end-of-candidates\r\n");
            }
        };
        for line in local.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with("m=") {
                flush(&mut out, mline);
                mline += 1;
            }
            if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        flush(&mut out, mline);
        Some(out)
    }

    /// REMB toward our senders: the lowest bitrate our video consumers
    /// can take, within `[minVideoRecvBandwidth, maxVideoRecvBandwidth]`.
    pub(super) fn update_remb(&self) {
        self.remb_changed();
    }

    /// What receivers of our video may be sent: REMB they reported, within
    /// `[minVideoSendBandwidth, maxVideoSendBandwidth]`.
    pub(super) fn update_send_bitrate(&self) {
        let range = self.settings.lock().video_send_range();
        let reported = self.ice.lock().remote_remb;
        let Some(b) = super::remb::send_wish(reported, range) else { return };
        if let Some(input) = self.slots.existing_input(MediaType::Video) {
            input.push_bitrate(b);
        }
    }
}

/// The remote answer as webrtcbin gets it: no header extensions, no
/// retransmission groups (we never offer them).
fn strip_answer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with("a=extmap") || line.starts_with("a=ssrc-group:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}
