//! `maxDataChannels` also bounds the channels the *peer* opens: past the
//! limit the endpoint closes them again. The peer is a GStreamer webrtcbin
//! in this test (kurento-client can only create channels on our side; that
//! path is in tests/conformance/webrtc.test.js).

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
    let modules = json!({"kurento": {"WebRtcEndpoint": {"iceLoopback": true, "transport": transport}}});
    let mut config = CoreConfig { modules, ..CoreConfig::default() };
    config.limits.max_data_channels = 2;
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

fn create_channel(w: &gst::Element, label: &str) -> gst_webrtc::WebRTCDataChannel {
    w.emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>("create-data-channel", &[&label, &None::<gst::Structure>])
        .expect("a channel")
}

#[test]
fn channels_the_peer_opens_past_the_limit_are_closed_on_webrtcbin() {
    channels_the_peer_opens_past_the_limit_are_closed("webrtcbin");
}

#[test]
fn channels_the_peer_opens_past_the_limit_are_closed_on_native() {
    channels_the_peer_opens_past_the_limit_are_closed("native");
}

fn channels_the_peer_opens_past_the_limit_are_closed(transport: &str) {
    let r = registry(transport);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let ep = r.create(&s, "WebRtcEndpoint", Some(&json!({"mediaPipeline": p, "useDataChannels": true}))).unwrap();

    let peer = gst::Pipeline::new();
    let w = gst::ElementFactory::make("webrtcbin").property_from_str("bundle-policy", "max-bundle").build().unwrap();
    peer.add(&w).unwrap();
    if let Some(agent) = w.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent") {
        use gst_webrtc::prelude::WebRTCICEExt as _;
        agent.emit_add_local_ip_address("127.0.0.1");
    }
    let (cand_tx, cand_rx) = mpsc::channel::<(u32, String)>();
    w.connect("on-ice-candidate", false, move |args| {
        let _ = cand_tx.send((args[1].get::<u32>().unwrap(), args[2].get::<String>().unwrap()));
        None
    });
    peer.set_state(gst::State::Playing).unwrap();
    let first = create_channel(&w, "c0");

    let offer = promise_reply(&w, "create-offer", &None::<gst::Structure>).unwrap();
    let offer = offer.get::<gst_webrtc::WebRTCSessionDescription>("offer").unwrap();
    promise_reply(&w, "set-local-description", &offer);
    let answer = invoke(&r, &s, &ep, "processOffer", json!({"offer": offer.sdp().as_text().unwrap()}));
    let answer = gst_sdp::SDPMessage::parse_buffer(answer.as_str().unwrap().as_bytes()).unwrap();
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
    promise_reply(&w, "set-remote-description", &answer);
    invoke(&r, &s, &ep, "gatherCandidates", json!({}));

    let mut given: Vec<String> = vec![];
    let mut trickle = || {
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
    };
    let wait = |what: &str, trickle: &mut dyn FnMut(), done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timeout waiting for {what}");
            trickle();
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let open = gst_webrtc::WebRTCDataChannelState::Open;
    wait("the first channel to open", &mut trickle, &|| first.ready_state() == open);
    let second = create_channel(&w, "c1");
    wait("the second channel to open", &mut trickle, &|| second.ready_state() == open);
    // One past the limit (2): the endpoint closes it.
    let third = create_channel(&w, "c2");
    wait("the third channel to be closed", &mut trickle, &|| {
        third.ready_state() == gst_webrtc::WebRTCDataChannelState::Closed
    });
    assert_eq!((first.ready_state(), second.ready_state()), (open, open), "the others stay open");
    let stats = invoke(&r, &s, &ep, "getStats", json!({"mediaType": "DATA"}));
    let channels: Vec<&Value> = stats.as_object().unwrap().values().filter(|v| v["type"] == "datachannel").collect();
    assert_eq!(channels.iter().filter(|c| c["state"] == "open").count(), 2, "{stats}");
    // Our side is at the limit too.
    let e = r.invoke(&s, &ep, "createDataChannel", json!({"label": "ours"}).as_object()).unwrap_err();
    assert_eq!(e.code, 40009, "{}", e.message);
    peer.set_state(gst::State::Null).unwrap();
    r.release(&s, &p).unwrap();
}
