//! `getStats` of the RtpEndpoint (spec §10.3): per SSRC, rtpbin's session
//! statistics as `RTCInboundRTPStreamStats` (what the peer sends us) and
//! `RTCOutboundRTPStreamStats` (what we send, with the peer's receiver
//! reports).

use std::time::{SystemTime, UNIX_EPOCH};

use gst::prelude::*;
use kms_core::agnosticbin::codecs::Kind;
use kms_core::api::core::{MediaType, RTCInboundRTPStreamStats, RTCOutboundRTPStreamStats, StatsType};
use kms_core::rt::Polymorphic;

use super::transport::{Shared, session_id};

fn int(s: &gst::StructureRef, f: &str) -> i64 {
    if let Ok(v) = s.get::<u64>(f) {
        return v as i64;
    }
    if let Ok(v) = s.get::<i64>(f) {
        return v;
    }
    if let Ok(v) = s.get::<u32>(f) {
        return v as i64;
    }
    s.get::<i32>(f).map(i64::from).unwrap_or(0)
}

fn flag(s: &gst::StructureRef, f: &str) -> bool {
    s.get::<bool>(f).unwrap_or(false)
}

/// The `source-stats` of rtpbin's session for `kind` (none before
/// negotiation).
fn sources(rtpbin: &gst::Element, kind: Kind) -> Vec<gst::Structure> {
    let Some(session) = rtpbin.emit_by_name::<Option<gst::glib::Object>>("get-internal-session", &[&session_id(kind)])
    else {
        return vec![];
    };
    let Ok(stats) = session.property_value("stats").get::<gst::Structure>() else { return vec![] };
    let Ok(arr) = stats.get::<gst::glib::ValueArray>("source-stats") else { return vec![] };
    arr.iter().filter_map(|v| v.get::<gst::Structure>().ok()).collect()
}

pub fn collect(rtpbin: &gst::Element, shared: &Shared, media_type: Option<MediaType>) -> Vec<(String, Polymorphic)> {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let mut out = vec![];
    for (kind, t) in [(Kind::Audio, MediaType::Audio), (Kind::Video, MediaType::Video)] {
        if media_type.is_some_and(|m| m != t) {
            continue;
        }
        let all = sources(rtpbin, kind);
        // rtpsession counts feedback and receiver reports on the source
        // that sent them: the peer's.
        let remote: Vec<&gst::Structure> = all.iter().filter(|s| !flag(s, "internal")).collect();
        let (fir, pli, nack) = shared.feedback.lock().get(&session_id(kind)).copied().unwrap_or_default();
        let report = remote.iter().find(|s| flag(s, "have-rb"));
        for s in &all {
            if !flag(s, "is-sender") {
                continue;
            }
            let ssrc = int(s, "ssrc");
            if flag(s, "internal") {
                let rb = |f: &str| report.map(|r| int(r, f)).unwrap_or(0);
                let id = format!("outbound_rtp_{ssrc}");
                out.push((
                    id.clone(),
                    Polymorphic::of(&RTCOutboundRTPStreamStats {
                        id,
                        r#type: StatsType::Outboundrtp,
                        timestamp_millis: ts,
                        ssrc: ssrc.to_string(),
                        associate_stats_id: String::new(),
                        is_remote: false,
                        media_track_id: String::new(),
                        transport_id: String::new(),
                        codec_id: String::new(),
                        fir_count: fir,
                        pli_count: pli,
                        nack_count: nack,
                        sli_count: 0,
                        remb: 0,
                        packets_lost: rb("rb-packetslost"),
                        fraction_lost: rb("rb-fractionlost") as f64 / 256.0,
                        packets_sent: int(s, "packets-sent"),
                        bytes_sent: int(s, "octets-sent"),
                        target_bitrate: int(s, "bitrate") as f64,
                        // rb-round-trip: 1/65536 s units.
                        round_trip_time: rb("rb-round-trip") as f64 / 65536.0,
                    }),
                ));
            } else {
                let id = format!("inbound_rtp_{ssrc}");
                out.push((
                    id.clone(),
                    Polymorphic::of(&RTCInboundRTPStreamStats {
                        id,
                        r#type: StatsType::Inboundrtp,
                        timestamp_millis: ts,
                        ssrc: ssrc.to_string(),
                        associate_stats_id: String::new(),
                        is_remote: false,
                        media_track_id: String::new(),
                        transport_id: String::new(),
                        codec_id: String::new(),
                        fir_count: int(s, "sent-fir-count"),
                        pli_count: int(s, "sent-pli-count"),
                        nack_count: int(s, "sent-nack-count"),
                        sli_count: 0,
                        remb: 0,
                        packets_lost: int(s, "packets-lost"),
                        fraction_lost: 0.0,
                        packets_received: int(s, "packets-received"),
                        bytes_received: int(s, "octets-received"),
                        jitter: int(s, "jitter") as f64,
                    }),
                ));
            }
        }
    }
    out
}
