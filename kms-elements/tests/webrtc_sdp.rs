//! WebRtcEndpoint negotiation against real offers (spec §10.5, §10.7),
//! without a browser: Firefox's offer, GStreamer webrtcbin's offer (audio
//! with port 0 and `a=bundle-only`), data channel sections, OfferOptions,
//! and the state machine's errors. Media itself is proven in
//! `tests/browser`.

use std::time::Duration;

use gst::prelude::*;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::{Value, json};

const FIREFOX_OFFER: &str = "v=0\r
o=mozilla...THIS_IS_SDPARTA-99.0 1739463485462066744 0 IN IP4 0.0.0.0\r
s=-\r
t=0 0\r
a=sendrecv\r
a=fingerprint:sha-256 5A:D1:1C:5C:1B:0D:4A:3E:3B:E1:9D:4D:54:52:F9:71:2C:21:70:5E:D6:A7:A3:15:6C:F0:63:8C:9E:41:42:B6\r
a=group:BUNDLE 0 1 2\r
a=ice-options:trickle\r
a=msid-semantic:WMS *\r
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r
c=IN IP4 0.0.0.0\r
a=sendrecv\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level\r
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r
a=fmtp:101 0-15\r
a=ice-pwd:2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e\r
a=ice-ufrag:1a2b3c4d\r
a=mid:0\r
a=msid:{5e5ea2d6-a6b7-4b0a-9e86-4c7c2b6d8f0e} {b1f3c8c1-3b0c-4f6e-8b1b-2d0a6c7e9f10}\r
a=rtcp-mux\r
a=rtpmap:109 opus/48000/2\r
a=rtpmap:9 G722/8000/1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000/1\r
a=setup:actpass\r
a=ssrc:2655508255 cname:{0f2b7a3c-5d6e-4f70-8a9b-1c2d3e4f5a6b}\r
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98 123 122 119\r
c=IN IP4 0.0.0.0\r
a=sendrecv\r
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:5 urn:ietf:params:rtp-hdrext:toffset\r
a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r
a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r
a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1\r
a=fmtp:120 max-fs=12288;max-fr=60\r
a=fmtp:124 apt=120\r
a=fmtp:121 max-fs=12288;max-fr=60\r
a=fmtp:125 apt=121\r
a=fmtp:127 apt=126\r
a=fmtp:98 apt=97\r
a=fmtp:119 apt=122\r
a=ice-pwd:2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e\r
a=ice-ufrag:1a2b3c4d\r
a=mid:1\r
a=msid:{5e5ea2d6-a6b7-4b0a-9e86-4c7c2b6d8f0e} {c2e4d9d2-4c1d-407f-9c2c-3e1b7d8f0a21}\r
a=rtcp-fb:120 nack\r
a=rtcp-fb:120 nack pli\r
a=rtcp-fb:120 ccm fir\r
a=rtcp-fb:120 goog-remb\r
a=rtcp-fb:120 transport-cc\r
a=rtcp-fb:121 nack\r
a=rtcp-fb:121 nack pli\r
a=rtcp-fb:121 ccm fir\r
a=rtcp-fb:126 nack\r
a=rtcp-fb:126 nack pli\r
a=rtcp-fb:126 ccm fir\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:120 VP8/90000\r
a=rtpmap:124 rtx/90000\r
a=rtpmap:121 VP9/90000\r
a=rtpmap:125 rtx/90000\r
a=rtpmap:126 H264/90000\r
a=rtpmap:127 rtx/90000\r
a=rtpmap:97 H264/90000\r
a=rtpmap:98 rtx/90000\r
a=rtpmap:123 ulpfec/90000\r
a=rtpmap:122 red/90000\r
a=rtpmap:119 rtx/90000\r
a=setup:actpass\r
a=ssrc:3344520812 cname:{0f2b7a3c-5d6e-4f70-8a9b-1c2d3e4f5a6b}\r
a=ssrc-group:FID 3344520812 1229856497\r
a=ssrc:1229856497 cname:{0f2b7a3c-5d6e-4f70-8a9b-1c2d3e4f5a6b}\r
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r
c=IN IP4 0.0.0.0\r
a=sendrecv\r
a=ice-pwd:2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e\r
a=ice-ufrag:1a2b3c4d\r
a=mid:2\r
a=setup:actpass\r
a=sctp-port:5000\r
a=max-message-size:1073741823\r
";

/// A registry whose WebRtcEndpoints use `transport` (`KMS_WEBRTC_TRANSPORT`
/// still wins, as for the server).
fn registry(transport: &str) -> Registry {
    kms_core::module::init().unwrap();
    let hub = SessionHub::new(&ServerConfig::default());
    let modules = json!({"kurento": {"WebRtcEndpoint": {"transport": transport}}});
    Registry::new(
        vec![kms_core::module::descriptor(), kms_elements::descriptor()],
        hub.notifier(),
        CoreConfig { modules, ..CoreConfig::default() },
    )
}

/// Each negotiation test, once per WebRTC transport: the contract is the
/// same on both.
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn webrtcbin() {
                super::$name("webrtcbin")
            }
            #[test]
            fn native() {
                super::$name("native")
            }
        })*
    };
}

on_both_transports!(
    firefox_offer_is_answered_with_our_codecs_and_data_channels,
    data_sections_are_rejected_without_data_channels,
    webrtcbin_offer_with_bundle_only_audio_is_accepted,
    generate_offer_honours_offer_options_and_the_state_machine,
    candidates_before_negotiation_are_queued_and_bad_ones_rejected,
    plain_rtp_offer_is_answered_with_every_section_rejected,
    mixed_offer_rejects_only_the_plain_rtp_section,
    mixed_offer_with_the_plain_section_first_keeps_the_order,
);

fn invoke(r: &Registry, s: &SessionId, obj: &str, op: &str, params: Value) -> Result<Value, (i64, String)> {
    r.invoke(s, obj, op, params.as_object()).map_err(|e| (e.code, e.message.clone()))
}

fn sections(sdp: &str) -> Vec<String> {
    sdp.lines().filter(|l| l.starts_with("m=")).map(str::to_string).collect()
}

/// A GStreamer webrtcbin's own offer (bundle policy max-bundle: every
/// section after the first has port 0 and `a=bundle-only`).
fn webrtcbin_offer() -> String {
    let pipeline = gst::Pipeline::new();
    let w = gst::ElementFactory::make("webrtcbin").property_from_str("bundle-policy", "max-bundle").build().unwrap();
    pipeline.add(&w).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for caps in [
        "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
        "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2",
    ] {
        let caps: gst::Caps = caps.parse().unwrap();
        w.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
            "add-transceiver",
            &[&gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv, &caps],
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let promise = gst::Promise::with_change_func(move |r| {
        let offer = r.unwrap().unwrap().get::<gst_webrtc::WebRTCSessionDescription>("offer").unwrap();
        tx.send(offer.sdp().as_text().unwrap()).unwrap();
    });
    w.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    let text = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    text
}

fn firefox_offer_is_answered_with_our_codecs_and_data_channels(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p, "useDataChannels": true}))).unwrap();
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": FIREFOX_OFFER})).unwrap();
    let answer = answer.as_str().unwrap();
    let m = sections(answer);
    assert_eq!(m.len(), 3, "{answer}");
    assert!(m[0].starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 109"), "{}", m[0]);
    assert!(m[1].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 120"), "{}", m[1]);
    assert!(!m[1].contains(" 97 "), "no packetization-mode 0: {}", m[1]);
    // Loss recovery for the codec in use: NACK, and its rtx payload type
    // (124, apt=120) sent on an SSRC of its own.
    let (audio, video) = answer.split_at(answer.find("m=video").unwrap());
    // (webrtcbin answers VP8 alone; native also keeps the other codecs
    // both sides take, after it, in the offer's order.)
    assert!(m[1].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 120 124"), "{}", m[1]);
    assert!(video.contains("a=rtcp-fb:120 nack\r\n"), "{video}");
    assert!(video.contains("a=rtpmap:124 rtx/90000\r\n") && video.contains("a=fmtp:124 apt=120\r\n"), "{video}");
    assert!(video.contains("a=ssrc-group:FID "), "{video}");
    assert!(!audio.contains(" nack"), "no NACK for audio: {audio}");
    assert!(m[2].starts_with("m=application 9"), "{}", m[2]);
    // KMS and webrtcbin answer `actpass` with `active` (the DTLS client);
    // native with `passive`: str0m 0.24's OpenSSL DTLS client never
    // retransmits a lost flight, while as the server it answers the
    // browser's retransmissions (docs/architecture.md).
    let setup = if transport == "webrtcbin" { "a=setup:active" } else { "a=setup:passive" };
    assert!(answer.contains(setup), "{answer}");
    assert!(answer.contains("s=Kurento Media Server"));
    // Header extensions: none on webrtcbin (1.22 answers none); on native
    // only those of the offer it implements.
    let extmaps: Vec<&str> = answer.lines().filter_map(|l| l.strip_prefix("a=extmap:")).collect();
    for ext in &extmaps {
        assert!(["ssrc-audio-level", "sdes:mid", "abs-send-time"].iter().any(|known| ext.ends_with(known)), "{ext}");
    }
    assert_eq!(extmaps.is_empty(), transport == "webrtcbin", "{extmaps:?}");
    // The offer is kept as given.
    assert_eq!(invoke(&r, &s, &ep, "getRemoteSessionDescriptor", json!({})).unwrap(), json!(FIREFOX_OFFER));
    r.release(&s, &p).unwrap();
}

fn data_sections_are_rejected_without_data_channels(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": FIREFOX_OFFER})).unwrap();
    let m = sections(answer.as_str().unwrap());
    assert!(m[2].starts_with("m=application 0 "), "{}", m[2]);
    assert_eq!(
        invoke(&r, &s, &ep, "createDataChannel", json!({})).unwrap_err().0,
        40111,
        "data channels not negotiated"
    );
    r.release(&s, &p).unwrap();
}

fn webrtcbin_offer_with_bundle_only_audio_is_accepted(transport: &str) {
    let r = registry(transport);
    let offer = webrtcbin_offer();
    assert!(offer.contains("a=bundle-only"), "{offer}");
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": offer})).unwrap();
    let m = sections(answer.as_str().unwrap());
    assert_eq!(m.len(), 2);
    assert!(m[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"), "{}", m[0]);
    assert!(m[1].starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 111"), "audio accepted: {}", m[1]);
    r.release(&s, &p).unwrap();
}

fn generate_offer_honours_offer_options_and_the_state_machine(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p, "recvonly": true}))).unwrap();
    assert_eq!(invoke(&r, &s, &ep, "processAnswer", json!({"answer": "v=0"})).unwrap_err().0, 40209);
    let offer = invoke(
        &r,
        &s,
        &ep,
        "generateOffer",
        json!({"options": {"offerToReceiveAudio": false, "offerToReceiveVideo": true}}),
    )
    .unwrap();
    let offer = offer.as_str().unwrap();
    let m = sections(offer);
    assert_eq!(m.len(), 1, "{offer}");
    assert!(m[0].starts_with("m=video"));
    assert!(offer.contains("a=recvonly"));
    assert!(offer.contains("a=setup:actpass"));
    assert!(offer.contains("VP8/90000"));
    assert_eq!(invoke(&r, &s, &ep, "generateOffer", json!({})).unwrap_err().0, 40208);
    assert_eq!(invoke(&r, &s, &ep, "processOffer", json!({"offer": FIREFOX_OFFER})).unwrap_err().0, 40208);
    assert_eq!(
        invoke(&r, &s, &ep, "processAnswer", json!({"answer": ""})).unwrap_err(),
        (40201, "Empty answer not valid".into())
    );
    // The local SDP gains the candidates gathered so far (and, once
    // gathering is complete, which can be this early, end-of-candidates).
    // The native transport gathers its host candidates when negotiation
    // starts, so its offer already carries them.
    let without = |sdp: &str| -> String {
        sdp.split_inclusive("\r\n")
            .filter(|l| !l.starts_with("a=candidate:") && *l != "a=end-of-candidates\r\n")
            .collect()
    };
    let local = invoke(&r, &s, &ep, "getLocalSessionDescriptor", json!({})).unwrap();
    assert_eq!(without(local.as_str().unwrap()), without(offer));
    r.release(&s, &p).unwrap();
}

fn candidates_before_negotiation_are_queued_and_bad_ones_rejected(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();
    let cand = |c: &str, idx: i32| json!({"candidate": {"candidate": c, "sdpMid": "0", "sdpMLineIndex": idx}});
    invoke(&r, &s, &ep, "addIceCandidate", cand("candidate:1 1 UDP 2015363327 127.0.0.1 9999 typ host", 0)).unwrap();
    invoke(&r, &s, &ep, "gatherCandidates", json!({})).unwrap();
    assert_eq!(invoke(&r, &s, &ep, "addIceCandidate", cand("garbage", 0)).unwrap_err().0, 40401);
    invoke(&r, &s, &ep, "processOffer", json!({"offer": FIREFOX_OFFER})).unwrap();
    invoke(&r, &s, &ep, "addIceCandidate", cand("", 0)).unwrap();
    let far = json!({"candidate": {"candidate": "candidate:1 1 UDP 2015363327 127.0.0.1 9 typ host", "sdpMid": "", "sdpMLineIndex": 9}});
    assert_eq!(invoke(&r, &s, &ep, "addIceCandidate", far).unwrap_err().0, 40401);
    r.release(&s, &p).unwrap();
}

/// What kurento-client's own test suite offers: plain RTP/AVP, no ICE, no
/// DTLS.
const PLAIN_RTP_OFFER: &str = "v=0\r
o=- 12345 12345 IN IP4 192.168.1.18\r
s=-\r
c=IN IP4 192.168.1.18\r
t=0 0\r
m=audio 45324 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
a=sendonly\r
m=video 45325 RTP/AVP 96\r
a=rtpmap:96 H264/90000\r
a=sendonly\r
";

/// A DTLS video section first, then a plain RTP/AVP audio one.
const MIXED_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
m=video 9 UDP/TLS/RTP/SAVPF 96\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r
a=setup:actpass\r
a=mid:0\r
a=sendrecv\r
a=rtcp-mux\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack pli\r
m=audio 45324 RTP/AVP 0\r
c=IN IP4 192.168.1.18\r
a=mid:1\r
a=rtpmap:0 PCMU/8000\r
a=sendonly\r
";

/// The lines of the `n`-th section of an SDP.
fn section_lines(sdp: &str, n: usize) -> Vec<String> {
    let mut idx: i64 = -1;
    let mut out = vec![];
    for l in sdp.lines() {
        if l.starts_with("m=") {
            idx += 1;
        }
        if idx == n as i64 {
            out.push(l.to_string());
        }
    }
    out
}

fn plain_rtp_offer_is_answered_with_every_section_rejected(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": PLAIN_RTP_OFFER})).unwrap();
    let answer = answer.as_str().unwrap();
    let parsed = gst_sdp::SDPMessage::parse_buffer(answer.as_bytes()).expect("the answer parses");
    assert_eq!(parsed.medias_len(), 2, "{answer}");
    assert_eq!(sections(answer), vec!["m=audio 0 RTP/AVP 0", "m=video 0 RTP/AVP 96"], "{answer}");
    for i in 0..2 {
        assert!(section_lines(answer, i).contains(&"a=inactive".to_string()), "{answer}");
    }
    assert!(answer.contains("s=Kurento Media Server"));
    assert_eq!(invoke(&r, &s, &ep, "getLocalSessionDescriptor", json!({})).unwrap(), json!(answer));
    assert_eq!(invoke(&r, &s, &ep, "processOffer", json!({"offer": PLAIN_RTP_OFFER})).unwrap_err().0, 40208);
    r.release(&s, &p).unwrap();
}

fn mixed_offer_rejects_only_the_plain_rtp_section(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": MIXED_OFFER})).unwrap();
    let answer = answer.as_str().unwrap();
    let m = sections(answer);
    assert_eq!(m.len(), 2, "{answer}");
    assert!(m[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"), "{answer}");
    assert_eq!(m[1], "m=audio 0 RTP/AVP 0", "{answer}");
    let audio = section_lines(answer, 1);
    assert!(audio.contains(&"a=inactive".to_string()) && audio.contains(&"a=mid:1".to_string()), "{answer}");
    assert!(section_lines(answer, 0).contains(&"a=mid:0".to_string()), "{answer}");
    assert!(answer.contains("a=group:BUNDLE 0\r\n"), "{answer}");
    r.release(&s, &p).unwrap();
}

fn mixed_offer_with_the_plain_section_first_keeps_the_order(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();
    let video_at = MIXED_OFFER.find("m=video").unwrap();
    let audio_at = MIXED_OFFER.find("m=audio").unwrap();
    let offer = format!("{}{}{}", &MIXED_OFFER[..video_at], &MIXED_OFFER[audio_at..], &MIXED_OFFER[video_at..audio_at]);
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": offer})).unwrap();
    let answer = answer.as_str().unwrap();
    let m = sections(answer);
    assert_eq!(m[0], "m=audio 0 RTP/AVP 0", "{answer}");
    assert!(m[1].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"), "{answer}");
    assert!(section_lines(answer, 0).contains(&"a=inactive".to_string()), "{answer}");
    r.release(&s, &p).unwrap();
}
