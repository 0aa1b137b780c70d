//! Loss recovery of the WebRtcEndpoint: NACK and RTX (RFC 4585, RFC 4588).
//!
//! Everything on the wire is webrtcbin's; this module only switches it on
//! and keeps the requests on their way:
//!
//! * **Negotiation**: video transceivers get `do-nack`, so webrtcbin
//!   answers/offers `a=rtcp-fb:<pt> nack` and an `rtx` payload type
//!   (`apt=`) for the codec in use; the offer webrtcbin sees keeps the
//!   peer's `rtx` payload types (`sdp::Section::rtx`). The SSRC we send
//!   with is in the transceiver's caps, so the description carries it and
//!   its retransmission SSRC (`a=ssrc-group:FID`).
//! * **Receiving**: RTP that gets depayloaded passes an `rtpjitterbuffer`
//!   in agnosticbin (`kms_core::agnosticbin::codecs::make_jitterbuffer`);
//!   its `GstRTPRetransmissionRequest` events travel upstream through the
//!   agnosticbin, webrtcbin's pass-through jitterbuffer (`nojitter`) and
//!   `rtprtxreceive` (which learns the RTX SSRC from them) to the RTP
//!   session, which sends the NACK. Retransmissions arrive on the RTX SSRC,
//!   `rtprtxreceive` restores the original packet, the jitter buffer fills
//!   its gap. Forwarded streams never wait: no jitter buffer on their path.
//! * **Sending**: webrtcbin's `rtprtxsend` keeps the last 500 packets sent
//!   and answers the receiver's NACKs on the RTX SSRC. The requests end
//!   there; `kmsrtpinput` drops any that gets past it (its sequence numbers
//!   are ours, meaningless upstream).
//!
//! `KMS_NO_RETRANSMISSION=1` (diagnostics and tests only) switches all of
//! it off: no `nack`/`rtx` negotiated, no NACK sent.

use std::sync::LazyLock;

use gst::prelude::*;
use kms_core::api::core::MediaType;

use super::WebRtcEndpointImpl;

/// Name of the upstream event asking for a lost packet (rtpjitterbuffer →
/// rtpsession, rtpsession → rtprtxsend).
pub const RETRANSMISSION_REQUEST: &str = "GstRTPRetransmissionRequest";

/// Whether NACK/RTX is used (`KMS_NO_RETRANSMISSION` unset or 0).
pub fn retransmission_enabled() -> bool {
    static ENABLED: LazyLock<bool> = LazyLock::new(|| {
        !std::env::var("KMS_NO_RETRANSMISSION").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
    });
    *ENABLED
}

/// Whether `event` is a retransmission request.
pub fn is_retransmission_request(event: &gst::EventRef) -> bool {
    event.type_() == gst::EventType::CustomUpstream
        && event.structure().is_some_and(|s| s.name() == RETRANSMISSION_REQUEST)
}

impl WebRtcEndpointImpl {
    /// A transceiver just added: NACK (and with it RTX) for video.
    pub(super) fn configure_transceiver(&self, t: &gst_webrtc::WebRTCRTPTransceiver, kind: MediaType) {
        if kind == MediaType::Video && retransmission_enabled() && t.has_property("do-nack") {
            t.set_property("do-nack", true);
        }
    }
}

/// `text` without repeated identical `a=ssrc:` lines in a section:
/// webrtcbin writes our SSRC's lines once per codec of the transceiver's
/// caps (each carries the SSRC).
pub fn dedupe_ssrc_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut seen: Vec<&str> = vec![];
    for line in text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            seen.clear();
        }
        if line.starts_with("a=ssrc:") {
            if seen.contains(&line) {
                continue;
            }
            seen.push(line);
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// On webrtcbin's received-video pad: with retransmission off, requests of
/// the jitter buffers downstream stop here instead of becoming NACKs.
pub fn block_requests_if_disabled(pad: &gst::Pad) {
    if retransmission_enabled() {
        return;
    }
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, |_, info| match &info.data {
        Some(gst::PadProbeData::Event(ev)) if is_retransmission_request(ev) => gst::PadProbeReturn::Drop,
        _ => gst::PadProbeReturn::Ok,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ssrc_lines_are_written_once_per_section() {
        let sdp = "v=0\r\nm=audio 9 X 0\r\na=ssrc:1 cname:a\r\na=ssrc:1 cname:a\r\n\
                   m=video 9 X 96 97\r\na=ssrc-group:FID 2 3\r\na=ssrc:2 cname:a\r\na=ssrc:2 cname:a\r\n\
                   a=ssrc:3 cname:a\r\na=ssrc:1 cname:a\r\n";
        assert_eq!(
            dedupe_ssrc_lines(sdp),
            "v=0\r\nm=audio 9 X 0\r\na=ssrc:1 cname:a\r\nm=video 9 X 96 97\r\na=ssrc-group:FID 2 3\r\n\
             a=ssrc:2 cname:a\r\na=ssrc:3 cname:a\r\na=ssrc:1 cname:a\r\n"
        );
    }
}
