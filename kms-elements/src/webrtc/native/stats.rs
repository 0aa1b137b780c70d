//! `getStats` of a native WebRtcEndpoint (spec §10.3): str0m's periodic
//! stats events (once a second, kept as they arrive on the loop) mapped
//! onto the kmd's RTC* types, the same records the webrtcbin transport
//! answers with (`webrtc/stats.rs`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kms_core::api::core::{
    MediaType, RTCIceCandidateAttributes, RTCIceCandidatePairStats, RTCInboundRTPStreamStats,
    RTCOutboundRTPStreamStats, RTCPeerConnectionStats, RTCStatsIceCandidatePairState, RTCStatsIceCandidateType,
    RTCTransportStats, StatsType,
};
use kms_core::rt::Polymorphic;
use str0m::media::Mid;
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::api::elements::{IceCandidatePair, IceComponentState};
use crate::webrtc::data::ChannelStats;
use crate::webrtc::stats::datachannel_record;

/// The latest stats events of one peer.
#[derive(Default)]
pub struct Snapshot {
    pub peer: Option<PeerStats>,
    pub ingress: HashMap<Mid, MediaIngressStats>,
    pub egress: HashMap<Mid, MediaEgressStats>,
}

/// What the endpoint knows beside str0m's numbers.
pub struct Facts<'a> {
    /// Media type of each negotiated mid.
    pub kinds: &'a HashMap<Mid, MediaType>,
    /// SSRC received and sent per media type.
    pub rx_ssrc: &'a HashMap<MediaType, u32>,
    pub tx_ssrc: &'a HashMap<MediaType, u32>,
    /// Received video: (packets expected, received) from the loss meter.
    pub video_totals: (u64, u64),
    /// The REMB we last sent, and the one the remote last sent us.
    pub remb_sent: u32,
    pub remb_received: u32,
    pub pair: Option<&'a IceCandidatePair>,
    /// The ICE component's state (`None` before gathering).
    pub ice: Option<IceComponentState>,
    pub channels_opened: i64,
    pub channels_closed: i64,
    /// The open data channels.
    pub channels: Vec<ChannelStats>,
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn candidate_type(c: &str) -> RTCStatsIceCandidateType {
    match c.split_whitespace().skip_while(|w| *w != "typ").nth(1) {
        Some("srflx") => RTCStatsIceCandidateType::Serverreflexive,
        Some("prflx") => RTCStatsIceCandidateType::Peerreflexive,
        Some("relay") => RTCStatsIceCandidateType::Relayed,
        _ => RTCStatsIceCandidateType::Host,
    }
}

fn secs(d: Option<std::time::Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64())
}

pub fn collect(s: &Snapshot, f: &Facts, media_type: Option<MediaType>) -> Vec<(String, Polymorphic)> {
    let ts = now_millis();
    let mut out: Vec<(String, Polymorphic)> = vec![];
    let wanted = |mid: &Mid| match media_type {
        None => true,
        Some(t) => f.kinds.get(mid) == Some(&t),
    };
    let mut mids: Vec<&Mid> = s.ingress.keys().chain(s.egress.keys()).collect();
    mids.sort_by_key(|m| m.to_string());
    mids.dedup();
    for mid in mids.into_iter().filter(|m| wanted(m)) {
        let kind = f.kinds.get(mid).copied();
        if let Some(i) = s.ingress.get(mid) {
            let id = format!("inbound_rtp_{mid}");
            let lost = match kind {
                Some(MediaType::Video) => f.video_totals.0.saturating_sub(f.video_totals.1) as i64,
                _ => (i.loss.unwrap_or(0.0) as f64 * i.packets as f64) as i64,
            };
            out.push((
                id.clone(),
                Polymorphic::of(&RTCInboundRTPStreamStats {
                    id,
                    r#type: StatsType::Inboundrtp,
                    timestamp_millis: ts,
                    ssrc: kind.and_then(|k| f.rx_ssrc.get(&k)).map(|s| s.to_string()).unwrap_or_default(),
                    associate_stats_id: String::new(),
                    is_remote: false,
                    media_track_id: mid.to_string(),
                    transport_id: "transport".into(),
                    codec_id: String::new(),
                    fir_count: i.firs as i64,
                    pli_count: i.plis as i64,
                    nack_count: i.nacks as i64,
                    sli_count: 0,
                    remb: if kind == Some(MediaType::Video) { f.remb_sent as i64 } else { 0 },
                    packets_lost: lost,
                    fraction_lost: i.loss.unwrap_or(0.0) as f64,
                    packets_received: i.packets as i64,
                    bytes_received: i.bytes as i64,
                    jitter: i.jitter as f64,
                }),
            ));
        }
        if let Some(e) = s.egress.get(mid) {
            let id = format!("outbound_rtp_{mid}");
            let remb = if kind == Some(MediaType::Video) { f.remb_received as i64 } else { 0 };
            out.push((
                id.clone(),
                Polymorphic::of(&RTCOutboundRTPStreamStats {
                    id,
                    r#type: StatsType::Outboundrtp,
                    timestamp_millis: ts,
                    ssrc: kind.and_then(|k| f.tx_ssrc.get(&k)).map(|s| s.to_string()).unwrap_or_default(),
                    associate_stats_id: String::new(),
                    is_remote: false,
                    media_track_id: mid.to_string(),
                    transport_id: "transport".into(),
                    codec_id: String::new(),
                    fir_count: e.firs as i64,
                    pli_count: e.plis as i64,
                    nack_count: e.nacks as i64,
                    sli_count: 0,
                    remb,
                    packets_lost: (e.loss.unwrap_or(0.0) as f64 * e.packets as f64) as i64,
                    fraction_lost: e.loss.unwrap_or(0.0) as f64,
                    packets_sent: e.packets as i64,
                    bytes_sent: e.bytes as i64,
                    target_bitrate: remb as f64,
                    round_trip_time: secs(e.rtt),
                }),
            ));
        }
    }
    if media_type.is_none() || media_type == Some(MediaType::Data) {
        out.extend(f.channels.iter().cloned().map(|c| datachannel_record(ts, c)));
    }
    if media_type.is_some() {
        return out;
    }
    let peer = s.peer.as_ref();
    let selected = peer.and_then(|p| p.selected_candidate_pair.as_ref()).filter(|_| f.pair.is_some());
    let (bytes_tx, bytes_rx) = peer.map_or((0, 0), |p| (p.peer_bytes_tx as i64, p.peer_bytes_rx as i64));
    if peer.is_some() || f.ice.is_some() {
        out.push((
            "transport".into(),
            Polymorphic::of(&RTCTransportStats {
                id: "transport".into(),
                r#type: StatsType::Transport,
                timestamp_millis: ts,
                bytes_sent: bytes_tx,
                bytes_received: bytes_rx,
                rtcp_transport_stats_id: String::new(),
                active_connection: selected.is_some(),
                selected_candidate_pair_id: if selected.is_some() { "candidate_pair".into() } else { String::new() },
                local_certificate_id: String::new(),
                remote_certificate_id: String::new(),
            }),
        ));
    }
    if let (Some(p), Some(c)) = (peer, selected) {
        let local_text = f.pair.map(|p| p.local_candidate.as_str()).unwrap_or_default();
        let remote_text = f.pair.map(|p| p.remote_candidate.as_str()).unwrap_or_default();
        out.push((
            "candidate_pair".into(),
            Polymorphic::of(&RTCIceCandidatePairStats {
                id: "candidate_pair".into(),
                r#type: StatsType::Candidatepair,
                timestamp_millis: ts,
                transport_id: "transport".into(),
                local_candidate_id: "local_candidate".into(),
                remote_candidate_id: "remote_candidate".into(),
                state: RTCStatsIceCandidatePairState::Succeeded,
                priority: 0,
                nominated: true,
                writable: true,
                readable: true,
                bytes_sent: bytes_tx,
                bytes_received: bytes_rx,
                round_trip_time: secs(c.current_round_trip_time.or(p.rtt)),
                available_outgoing_bitrate: p.bwe_tx.map_or(0.0, |b| b.as_f64()),
                available_incoming_bitrate: f.remb_sent as f64,
            }),
        ));
        for (id, typ, addr, text) in [
            ("local_candidate", StatsType::Localcandidate, c.local.addr, local_text),
            ("remote_candidate", StatsType::Remotecandidate, c.remote.addr, remote_text),
        ] {
            out.push((
                id.into(),
                Polymorphic::of(&RTCIceCandidateAttributes {
                    id: id.into(),
                    r#type: typ,
                    timestamp_millis: ts,
                    ip_address: addr.ip().to_string(),
                    port_number: addr.port() as i64,
                    transport: "udp".into(),
                    candidate_type: candidate_type(text),
                    priority: text.split_whitespace().nth(3).and_then(|p| p.parse().ok()).unwrap_or(0),
                    address_source_url: String::new(),
                }),
            ));
        }
    } else if let Some(ice) = f.ice {
        // Not selected yet: the transport's pair as ICE has it, no
        // candidates named.
        let state = match ice {
            IceComponentState::Gathering => RTCStatsIceCandidatePairState::Waiting,
            IceComponentState::Failed | IceComponentState::Disconnected => RTCStatsIceCandidatePairState::Failed,
            _ => RTCStatsIceCandidatePairState::Inprogress,
        };
        out.push((
            "candidate_pair".into(),
            Polymorphic::of(&RTCIceCandidatePairStats {
                id: "candidate_pair".into(),
                r#type: StatsType::Candidatepair,
                timestamp_millis: ts,
                transport_id: "transport".into(),
                local_candidate_id: String::new(),
                remote_candidate_id: String::new(),
                state,
                priority: 0,
                nominated: false,
                writable: false,
                readable: false,
                bytes_sent: bytes_tx,
                bytes_received: bytes_rx,
                round_trip_time: 0.0,
                available_outgoing_bitrate: 0.0,
                available_incoming_bitrate: 0.0,
            }),
        ));
    }
    out.push((
        "peerconnection".into(),
        Polymorphic::of(&RTCPeerConnectionStats {
            id: "peerconnection".into(),
            r#type: StatsType::Session,
            timestamp_millis: ts,
            data_channels_opened: f.channels_opened,
            data_channels_closed: f.channels_closed,
        }),
    ));
    out
}
