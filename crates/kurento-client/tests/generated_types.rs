//! The generated complex types and events against the wire shapes of spec
//! §6 and §7, without a server.

use kurento_client::events::{ElementConnected, IceCandidateFound, ObjectCreated};
use kurento_client::{
    ComplexType, ElementStats, IceCandidate, MediaFlowState, MediaType, OfferOptions, Polymorphic,
    RTCInboundRTPStreamStats, RembParams, Stats, StatsType, Tag,
};
use serde_json::{Value, json};

#[test]
fn complex_types_are_written_with_module_and_type() {
    let c = IceCandidate {
        candidate: "candidate:1 1 UDP 1 10.0.0.5 5000 typ host".into(),
        sdp_mid: "0".into(),
        sdp_m_line_index: 0,
    };
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"__module__":"kurento","__type__":"IceCandidate","candidate":"candidate:1 1 UDP 1 10.0.0.5 5000 typ host","sdpMid":"0","sdpMLineIndex":0})
    );
    assert_eq!((IceCandidate::MODULE, IceCandidate::TYPE), ("kurento", "IceCandidate"));
}

#[test]
fn complex_types_are_read_with_or_without_module_and_type() {
    // A browser's RTCIceCandidate: no __module__/__type__, an extra field.
    let raw = json!({"candidate":"c","sdpMid":"1","sdpMLineIndex":1,"usernameFragment":"u"});
    let c: IceCandidate = serde_json::from_value(raw).unwrap();
    assert_eq!((c.sdp_mid.as_str(), c.sdp_m_line_index), ("1", 1));
    let t: Tag =
        serde_json::from_value(json!({"__module__":"kurento","__type__":"Tag","key":"k","value":"v"})).unwrap();
    assert_eq!((t.key.as_str(), t.value.as_str()), ("k", "v"));
}

#[test]
fn unset_optional_fields_are_left_to_server_defaults() {
    let o = OfferOptions { offer_to_receive_video: Some(false), ..Default::default() };
    assert_eq!(
        serde_json::to_value(&o).unwrap(),
        json!({"__module__":"kurento","__type__":"OfferOptions","offerToReceiveVideo":false})
    );
    let r: RembParams = serde_json::from_value(json!({"upLosses": 12})).unwrap();
    assert_eq!((r.up_losses, r.remb_on_connect), (Some(12), None));
}

#[test]
fn enums_use_wire_names() {
    assert_eq!(serde_json::to_value(MediaFlowState::NotFlowing).unwrap(), json!("NOT_FLOWING"));
    assert_eq!(serde_json::from_value::<MediaType>(json!("VIDEO")).unwrap(), MediaType::Video);
    assert_eq!(serde_json::from_value::<StatsType>(json!("inboundrtp")).unwrap(), StatsType::Inboundrtp);
    assert!(serde_json::from_value::<MediaType>(json!("video")).is_err(), "wire names are case-sensitive");
    assert_eq!(MediaType::Data.as_str(), "DATA");
    assert_eq!(MediaType::ALL.len(), 3);
}

#[test]
fn events_decode_from_on_event_data() {
    // Spec §7.2 examples.
    let ev: IceCandidateFound = serde_json::from_value(json!({
        "candidate":{"__module__":"kurento","__type__":"IceCandidate","candidate":"candidate:1 1 UDP 2015363327 192.168.1.19 29321 typ host","sdpMLineIndex":0,"sdpMid":"0"},
        "source":"P_kurento.MediaPipeline/W_kurento.WebRtcEndpoint","tags":[],"timestampMillis":"1700000000123","type":"IceCandidateFound"
    }))
    .unwrap();
    assert_eq!(ev.candidate.sdp_mid, "0");
    assert_eq!(ev.source, "P_kurento.MediaPipeline/W_kurento.WebRtcEndpoint");
    assert_eq!(ev.timestamp_millis, "1700000000123");

    let ev: ObjectCreated = serde_json::from_value(json!({
        "object":"P_kurento.MediaPipeline/W_kurento.WebRtcEndpoint","source":"manager_ServerManager","tags":[],"timestampMillis":"1700000000001"
    }))
    .unwrap();
    assert_eq!(ev.object, "P_kurento.MediaPipeline/W_kurento.WebRtcEndpoint");

    let ev: ElementConnected = serde_json::from_value(json!({
        "sink":"P/B","mediaType":"AUDIO","sourceMediaDescription":"","sinkMediaDescription":"",
        "source":"P/A","tags":[{"__module__":"kurento","__type__":"Tag","key":"k","value":"v"}],"timestampMillis":"1","type":"ElementConnected"
    }))
    .unwrap();
    assert_eq!((ev.media_type, ev.tags[0].key.as_str()), (MediaType::Audio, "k"));
}

#[test]
fn polymorphic_values_keep_their_concrete_type() {
    let raw = json!({
        "__module__":"kurento","__type__":"RTCInboundRTPStreamStats","id":"s1","type":"inboundrtp","timestampMillis":5,
        "ssrc":"1","associateStatsId":"","isRemote":false,"mediaTrackId":"","transportId":"","codecId":"",
        "firCount":0,"pliCount":1,"nackCount":0,"sliCount":0,"remb":0,"packetsLost":0,"fractionLost":0.0,
        "packetsReceived":10,"bytesReceived":1000,"jitter":0.5
    });
    let stats: std::collections::BTreeMap<String, Polymorphic<Stats>> =
        serde_json::from_value(json!({"s1": raw.clone()})).unwrap();
    let s = &stats["s1"];
    assert_eq!((s.id.as_str(), s.r#type, s.timestamp_millis), ("s1", StatsType::Inboundrtp, 5));
    assert!(s.is::<RTCInboundRTPStreamStats>());
    assert!(!s.is::<ElementStats>());
    assert!(s.downcast::<ElementStats>().is_none());
    let inbound = s.downcast::<RTCInboundRTPStreamStats>().expect("concrete type");
    assert_eq!((inbound.packets_received, inbound.pli_count), (10, 1));
    assert_eq!(serde_json::to_value(s).unwrap(), raw, "re-serialized as received");
    let _: &Value = s.raw();
}
