//! Packet loss a WebRtcEndpoint receives is counted and reported: a
//! GStreamer webrtcbin peer (in this test) sends VP8 with every tenth RTP
//! packet dropped before it leaves, and `getStats` of the endpoint (through
//! the registry, as over the wire) reports `packetsLost` in proportion.
//! On the webrtcbin transport the count comes from `kmsrtpnojitter`'s
//! sequence-number accounting (webrtcbin reads it as `packets-lost`); on the
//! native one from the loop's own accounting. Both are run.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::{Value, json};

fn registry(transport: &str) -> Registry {
    kms_core::module::init().unwrap();
    let hub = SessionHub::new(&ServerConfig::default());
    let config = CoreConfig {
        modules: json!({"kurento": {"WebRtcEndpoint": {"iceLoopback": true, "transport": transport}}}),
        ..CoreConfig::default()
    };
    Registry::new(vec![kms_core::module::descriptor(), kms_elements::descriptor()], hub.notifier(), config)
}

fn invoke(r: &Registry, s: &SessionId, obj: &str, op: &str, params: Value) -> Value {
    r.invoke(s, obj, op, params.as_object()).unwrap_or_else(|e| panic!("{op}: {} {}", e.code, e.message))
}

fn promise_reply(w: &gst::Element, signal: &str, arg: &dyn ToValue) -> Option<gst::Structure> {
    let (tx, rx) = mpsc::channel();
    let p = gst::Promise::with_change_func(move |r| {
        let _ = tx.send(r.ok().flatten().map(|s| s.to_owned()));
    });
    w.emit_by_name::<()>(signal, &[arg, &p]);
    rx.recv_timeout(Duration::from_secs(10)).expect("webrtcbin answers")
}

#[test]
fn dropped_packets_show_up_as_packets_lost_in_get_stats_on_webrtcbin() {
    dropped_packets_show_up_as_packets_lost_in_get_stats("webrtcbin");
}

#[test]
fn dropped_packets_show_up_as_packets_lost_in_get_stats_on_native() {
    dropped_packets_show_up_as_packets_lost_in_get_stats("native");
}

fn dropped_packets_show_up_as_packets_lost_in_get_stats(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p}))).unwrap();

    // The peer: live VP8, every tenth packet dropped after the payloader.
    let peer = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=30 ! rtpvp8pay name=pay mtu=1000 \
         ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 \
         ! webrtcbin name=w bundle-policy=max-bundle",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let w = peer.by_name("w").unwrap();
    let pay_src = peer.by_name("pay").unwrap().static_pad("src").unwrap();
    let dropped = |b: &gst::BufferRef| {
        let mut head = [0u8; 4];
        b.copy_to_slice(0, &mut head).is_ok() && u16::from_be_bytes([head[2], head[3]]) % 10 == 3
    };
    // rtpvp8pay pushes buffer lists.
    pay_src.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(b)) if dropped(b) => return gst::PadProbeReturn::Drop,
            Some(gst::PadProbeData::BufferList(l)) => {
                let kept: gst::BufferList = l.iter_owned().filter(|b| !dropped(b)).collect();
                *l = kept;
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    if let Some(agent) = w.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent") {
        use gst_webrtc::prelude::WebRTCICEExt as _;
        agent.emit_add_local_ip_address("127.0.0.1");
    }
    let (cand_tx, cand_rx) = mpsc::channel::<(u32, String)>();
    w.connect("on-ice-candidate", false, move |args| {
        let mline = args[1].get::<u32>().unwrap();
        let c = args[2].get::<String>().unwrap();
        let _ = cand_tx.send((mline, c));
        None
    });
    peer.set_state(gst::State::Playing).unwrap();

    // Offer/answer through the endpoint.
    let offer = promise_reply(&w, "create-offer", &None::<gst::Structure>).unwrap();
    let offer = offer.get::<gst_webrtc::WebRTCSessionDescription>("offer").unwrap();
    promise_reply(&w, "set-local-description", &offer);
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": offer.sdp().as_text().unwrap()}));
    let answer = gst_sdp::SDPMessage::parse_buffer(answer.as_str().unwrap().as_bytes()).unwrap();
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
    promise_reply(&w, "set-remote-description", &answer);
    invoke(&r, &s, &ep, "gatherCandidates", json!({}));

    // Trickle both ways until media arrives.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut given: Vec<String> = vec![];
    let inbound = loop {
        assert!(Instant::now() < deadline, "no media within 30 s");
        while let Ok((mline, c)) = cand_rx.try_recv() {
            let cand = json!({"candidate": {"candidate": c, "sdpMid": "0", "sdpMLineIndex": mline}});
            invoke(&r, &s, &ep, "addIceCandidate", cand);
        }
        let local = invoke(&r, &s, &ep, "getLocalSessionDescriptor", json!({}));
        for line in local.as_str().unwrap().lines().filter(|l| l.starts_with("a=candidate:")) {
            if !given.iter().any(|g| g == line) {
                w.emit_by_name::<()>("add-ice-candidate", &[&0u32, &line.trim_start_matches("a=")]);
                given.push(line.to_string());
            }
        }
        let stats = invoke(&r, &s, &ep, "getStats", json!({"mediaType": "VIDEO"}));
        let inbound = stats.as_object().unwrap().values().find(|v| v["type"] == "inboundrtp").cloned();
        if let Some(i) = inbound.filter(|i| i["packetsReceived"].as_i64().unwrap_or(0) > 300) {
            break i;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // On webrtcbin, the endpoint's kmsrtpnojitter counted the same gaps
    // (the native transport has none: its loop counts them).
    if transport == "webrtcbin" {
        nojitter_counted_the_gaps(&r, &p);
    }
    let received = inbound["packetsReceived"].as_i64().unwrap();
    let lost = inbound["packetsLost"].as_i64().unwrap();
    // One in ten dropped: about received / 9 lost.
    assert!(lost >= received / 20 && lost <= received / 5, "lost {lost} of {received}: {inbound}");
    peer.set_state(gst::State::Null).unwrap();
    r.release(&s, &p).unwrap();
}

fn nojitter_counted_the_gaps(r: &Registry, p: &str) {
    let h = r.get(p).unwrap();
    let gst_pipeline = h.remote.pipeline().unwrap().pipeline.clone();
    let nojitter: Vec<gst::Structure> = gst_pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .filter(|e| e.type_().name() == "KmsRtpNoJitter")
        .map(|e| e.property::<gst::Structure>("stats"))
        .collect();
    let video_jb = nojitter.iter().max_by_key(|st| st.get::<u64>("num-pushed").unwrap_or(0)).expect("a kmsrtpnojitter");
    let (pushed, jb_lost) = (video_jb.get::<u64>("num-pushed").unwrap(), video_jb.get::<u64>("num-lost").unwrap());
    assert!(jb_lost >= pushed / 20 && jb_lost <= pushed / 5, "kmsrtpnojitter: lost {jb_lost} of {pushed}");
    assert!(video_jb.get::<u64>("avg-jitter").unwrap() > 0, "jitter measured: {video_jb}");
}
