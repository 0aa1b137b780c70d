//! `getStats` of the WebRtcEndpoint (spec §10.3): webrtcbin's W3C-style
//! stats mapped onto the kmd's RTC* types.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gst::prelude::*;
use kms_core::api::core::{
    MediaType, RTCCodec, RTCDataChannelState, RTCDataChannelStats, RTCIceCandidateAttributes, RTCIceCandidatePairStats,
    RTCInboundRTPStreamStats, RTCOutboundRTPStreamStats, RTCPeerConnectionStats, RTCStatsIceCandidatePairState,
    RTCStatsIceCandidateType, RTCTransportStats, StatsType,
};
use kms_core::rt::Polymorphic;

use super::WebRtcEndpointImpl;
use super::data::ChannelStats;
use super::ice::{IceFacts, TransportIds};
use crate::api::elements::IceCandidatePair;

/// One data channel's `datachannel` record (both transports).
pub(super) fn datachannel_record(ts: i64, c: ChannelStats) -> (String, Polymorphic) {
    let (cid, label, protocol, open, ms, bs, mr, br) = c;
    let id = format!("datachannel_{cid}");
    let record = Polymorphic::of(&RTCDataChannelStats {
        id: id.clone(),
        r#type: StatsType::Datachannel,
        timestamp_millis: ts,
        label,
        protocol,
        datachannelid: cid as i64,
        state: if open { RTCDataChannelState::Open } else { RTCDataChannelState::Closed },
        messages_sent: ms as i64,
        bytes_sent: bs as i64,
        messages_received: mr as i64,
        bytes_received: br as i64,
    });
    (id, record)
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Numeric field of any integer or float type, as i64.
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
    if let Ok(v) = s.get::<i32>(f) {
        return v as i64;
    }
    if let Ok(v) = s.get::<f64>(f) {
        return v as i64;
    }
    0
}

fn float(s: &gst::StructureRef, f: &str) -> f64 {
    if let Ok(v) = s.get::<f64>(f) {
        return v;
    }
    int(s, f) as f64
}

fn string(s: &gst::StructureRef, f: &str) -> String {
    if let Ok(v) = s.get::<String>(f) {
        return v;
    }
    s.value(f).ok().and_then(|v| v.serialize().ok()).map(|g| g.to_string()).unwrap_or_default()
}

fn stat_type(s: &gst::StructureRef) -> Option<gst_webrtc::WebRTCStatsType> {
    s.get::<gst_webrtc::WebRTCStatsType>("type").ok()
}

/// Every stat structure in a webrtcbin stats reply.
fn entries(reply: &gst::StructureRef) -> Vec<(String, gst::Structure)> {
    reply.iter().filter_map(|(name, v)| v.get::<gst::Structure>().ok().map(|s| (name.to_string(), s))).collect()
}

fn candidate_text(c: &gst::StructureRef) -> String {
    let typ = string(c, "candidate-type");
    let proto = string(c, "protocol").to_ascii_uppercase();
    format!(
        "candidate:1 1 {} {} {} {} typ {}",
        if proto.is_empty() { "UDP".into() } else { proto },
        int(c, "priority"),
        string(c, "address"),
        int(c, "port"),
        if typ.is_empty() { "host".into() } else { typ }
    )
}

/// The candidate pair ICE selected, from a stats reply (webrtcbin names a
/// pair's candidates only once libnice selected it).
pub fn selected_pair(reply: &gst::StructureRef, ids: &TransportIds) -> Option<IceCandidatePair> {
    let all = entries(reply);
    let find = |id: &str| all.iter().find(|(n, s)| n == id || string(s, "id") == id).map(|(_, s)| s.clone());
    let transport_pair = all
        .iter()
        .filter(|(_, s)| stat_type(s) == Some(gst_webrtc::WebRTCStatsType::Transport))
        .map(|(_, s)| string(s, "selected-candidate-pair-id"))
        .find(|id| !id.is_empty());
    let pair = match transport_pair {
        Some(id) => find(&id),
        None => all
            .iter()
            .find(|(_, s)| stat_type(s) == Some(gst_webrtc::WebRTCStatsType::CandidatePair))
            .map(|(_, s)| s.clone()),
    }?;
    let local = find(&string(&pair, "local-candidate-id"))?;
    let remote = find(&string(&pair, "remote-candidate-id"))?;
    Some(IceCandidatePair {
        stream_id: ids.stream_id.to_string(),
        component_id: ids.component_id,
        local_candidate: candidate_text(&local),
        remote_candidate: candidate_text(&remote),
    })
}

/// Packets lost of a received stream: the jitterbuffer's count when
/// webrtcbin attached it (`packets-lost`, from `kmsrtpnojitter` or
/// `rtpjitterbuffer`), else the RTP session's own (RFC 3550 cumulative
/// loss of the source). webrtcbin 1.22 attaches the jitterbuffer's only
/// for streams it can map to one (e.g. announced with `a=ssrc`).
fn inbound_lost(s: &gst::StructureRef) -> i64 {
    if s.has_field("packets-lost") {
        return int(s, "packets-lost");
    }
    s.get::<gst::Structure>("gst-rtpsource-stats").map(|src| int(&src, "packets-lost")).unwrap_or(0)
}

/// The fraction lost our last receiver report gave the sender (0..1).
fn inbound_fraction_lost(s: &gst::StructureRef) -> Option<f64> {
    let src = s.get::<gst::Structure>("gst-rtpsource-stats").ok()?;
    src.get::<bool>("sent-rb").ok().filter(|b| *b)?;
    Some(int(&src, "sent-rb-fractionlost") as f64 / 256.0)
}

/// How long `getStats` waits for webrtcbin's stats.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// Why webrtcbin's stats are missing from a `getStats` answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("webrtcbin gave no stats within {0:?}")]
    Timeout(Duration),
    #[error("webrtcbin stats failed: {0}")]
    Failed(String),
}

/// Asks `webrtcbin` (anything with its `get-stats` action signal) for its
/// stats, waiting at most `timeout`; a promise not answered by then is
/// interrupted.
pub fn fetch(webrtcbin: &gst::Element, timeout: Duration) -> Result<gst::Structure, StatsError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|s| s.map(|s| s.to_owned())).map_err(|e| format!("{e:?}")));
    });
    webrtcbin.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(s))) => Ok(s),
        Ok(Ok(None)) => Err(StatsError::Failed("empty reply".into())),
        Ok(Err(e)) => Err(StatsError::Failed(e)),
        Err(_) => {
            promise.interrupt();
            Err(StatsError::Timeout(timeout))
        }
    }
}

/// A candidate pair's ICE state as the kmd's stats report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairFacts {
    pub state: RTCStatsIceCandidatePairState,
    pub nominated: bool,
    pub writable: bool,
    pub readable: bool,
}

/// Maps what libnice knows about the transport onto the pair's stats.
/// libnice has no per-pair query: it reports the component's state (which
/// reaches CONNECTED once a check succeeded both ways, i.e. a valid pair we
/// can send on and were checked on) and the pair it selected (the
/// nominated one). So a pair is `succeeded`, nominated, writable and
/// readable exactly while libnice has selected it and the component is
/// connected; before that it is in progress (checking) or frozen (no
/// checks yet), after a failure failed.
pub fn pair_facts(ice: Option<IceFacts>) -> PairFacts {
    use gst_webrtc::WebRTCICEConnectionState as S;
    let none = |state| PairFacts { state, nominated: false, writable: false, readable: false };
    let Some(f) = ice else { return none(RTCStatsIceCandidatePairState::Frozen) };
    match f.state {
        S::Connected | S::Completed if f.selected => PairFacts {
            state: RTCStatsIceCandidatePairState::Succeeded,
            nominated: true,
            writable: true,
            readable: true,
        },
        S::Connected | S::Completed | S::Checking => none(RTCStatsIceCandidatePairState::Inprogress),
        S::Failed | S::Disconnected | S::Closed => {
            PairFacts { nominated: f.selected, ..none(RTCStatsIceCandidatePairState::Failed) }
        }
        _ => none(RTCStatsIceCandidatePairState::Frozen),
    }
}

/// Media type of each SSRC we send or receive (webrtcbin's RTP stats do
/// not say).
fn ssrc_kinds(ep: &WebRtcEndpointImpl) -> HashMap<u32, MediaType> {
    let mut m = HashMap::new();
    for t in [MediaType::Audio, MediaType::Video] {
        if let Some(i) = ep.slots.existing_input(t) {
            m.insert(i.ssrc(), t);
        }
    }
    for pad in ep.webrtcbin.src_pads() {
        let (Some(t), Some(caps)) = (super::pad_kind(&pad), pad.current_caps()) else { continue };
        if let Some(ssrc) = caps.structure(0).and_then(|s| s.get::<u32>("ssrc").ok()) {
            m.insert(ssrc, t);
        }
    }
    m
}

fn kind_matches(s: &gst::StructureRef, kinds: &HashMap<u32, MediaType>, media_type: Option<MediaType>) -> bool {
    let Some(t) = media_type else { return true };
    kinds.get(&(int(s, "ssrc") as u32)) == Some(&t)
}

fn candidate_type(s: &str) -> RTCStatsIceCandidateType {
    match s {
        "srflx" => RTCStatsIceCandidateType::Serverreflexive,
        "prflx" => RTCStatsIceCandidateType::Peerreflexive,
        "relay" => RTCStatsIceCandidateType::Relayed,
        _ => RTCStatsIceCandidateType::Host,
    }
}

/// Stats of webrtcbin (RTP streams, codecs, transport, candidates,
/// candidate pair, data channels, peer connection).
///
/// If webrtcbin does not answer within [`STATS_TIMEOUT`] the answer is
/// partial (the endpoint's own records: data channels, peer connection,
/// and the element stats the core adds) and a warning is logged: a
/// monitoring client sees the gap in the log instead of an empty map.
pub fn collect(ep: &WebRtcEndpointImpl, media_type: Option<MediaType>) -> Vec<(String, Polymorphic)> {
    let reply = match fetch(&ep.webrtcbin, STATS_TIMEOUT) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(id = %ep.base().id(), "getStats: {e}; answering without RTP, ICE and transport stats");
            None
        }
    };
    assemble(ep, reply.as_deref(), media_type)
}

/// The stats of one answer: webrtcbin's `reply` mapped (when there is
/// one) plus the endpoint's own records.
fn assemble(
    ep: &WebRtcEndpointImpl,
    reply: Option<&gst::StructureRef>,
    media_type: Option<MediaType>,
) -> Vec<(String, Polymorphic)> {
    let ts = now_millis();
    let mut out: Vec<(String, Polymorphic)> = vec![];
    let all = reply.map(entries).unwrap_or_default();
    let kinds = ssrc_kinds(ep);
    let ice = ep.ice_facts();
    let remote_of = |id: &str| all.iter().find(|(n, _)| n == id).map(|(_, s)| s.clone());
    for (id, s) in &all {
        let Some(t) = stat_type(s) else { continue };
        use gst_webrtc::WebRTCStatsType as T;
        match t {
            T::InboundRtp if kind_matches(s, &kinds, media_type) => {
                let remote = remote_of(&string(s, "remote-id"));
                out.push((
                    id.clone(),
                    Polymorphic::of(&RTCInboundRTPStreamStats {
                        id: id.clone(),
                        r#type: StatsType::Inboundrtp,
                        timestamp_millis: ts,
                        ssrc: int(s, "ssrc").to_string(),
                        associate_stats_id: string(s, "remote-id"),
                        is_remote: false,
                        media_track_id: string(s, "track-id"),
                        transport_id: string(s, "transport-id"),
                        codec_id: string(s, "codec-id"),
                        fir_count: int(s, "fir-count"),
                        pli_count: int(s, "pli-count"),
                        nack_count: int(s, "nack-count"),
                        sli_count: 0,
                        remb: ep.last_remb().unwrap_or(0) as i64,
                        packets_lost: inbound_lost(s),
                        fraction_lost: inbound_fraction_lost(s)
                            .unwrap_or_else(|| remote.as_ref().map(|r| float(r, "fraction-lost")).unwrap_or(0.0)),
                        packets_received: int(s, "packets-received"),
                        bytes_received: int(s, "bytes-received"),
                        jitter: float(s, "jitter"),
                    }),
                ));
            }
            T::OutboundRtp if kind_matches(s, &kinds, media_type) => {
                let remote = remote_of(&string(s, "remote-id"));
                let remb = ep.ice.lock().remote_remb.unwrap_or(0) as i64;
                out.push((
                    id.clone(),
                    Polymorphic::of(&RTCOutboundRTPStreamStats {
                        id: id.clone(),
                        r#type: StatsType::Outboundrtp,
                        timestamp_millis: ts,
                        ssrc: int(s, "ssrc").to_string(),
                        associate_stats_id: string(s, "remote-id"),
                        is_remote: false,
                        media_track_id: string(s, "track-id"),
                        transport_id: string(s, "transport-id"),
                        codec_id: string(s, "codec-id"),
                        fir_count: int(s, "fir-count"),
                        pli_count: int(s, "pli-count"),
                        nack_count: int(s, "nack-count"),
                        sli_count: 0,
                        remb,
                        packets_lost: remote.as_ref().map(|r| int(r, "packets-lost")).unwrap_or(0),
                        fraction_lost: remote.as_ref().map(|r| float(r, "fraction-lost")).unwrap_or(0.0),
                        packets_sent: int(s, "packets-sent"),
                        bytes_sent: int(s, "bytes-sent"),
                        target_bitrate: remb as f64,
                        round_trip_time: remote.as_ref().map(|r| float(r, "round-trip-time")).unwrap_or(0.0),
                    }),
                ));
            }
            _ if media_type == Some(MediaType::Data) => {}
            T::Codec => out.push((
                id.clone(),
                Polymorphic::of(&RTCCodec {
                    id: id.clone(),
                    r#type: StatsType::Session,
                    timestamp_millis: ts,
                    payload_type: int(s, "payload-type"),
                    codec: string(s, "mime-type"),
                    clock_rate: int(s, "clock-rate"),
                    channels: int(s, "channels"),
                    parameters: string(s, "sdp-fmtp-line"),
                }),
            )),
            T::Transport => out.push((
                id.clone(),
                Polymorphic::of(&RTCTransportStats {
                    id: id.clone(),
                    r#type: StatsType::Transport,
                    timestamp_millis: ts,
                    bytes_sent: int(s, "bytes-sent"),
                    bytes_received: int(s, "bytes-received"),
                    rtcp_transport_stats_id: string(s, "rtcp-transport-stats-id"),
                    active_connection: !string(s, "selected-candidate-pair-id").is_empty(),
                    selected_candidate_pair_id: string(s, "selected-candidate-pair-id"),
                    local_certificate_id: string(s, "local-certificate-id"),
                    remote_certificate_id: string(s, "remote-certificate-id"),
                }),
            )),
            T::CandidatePair => out.push((
                id.clone(),
                // webrtcbin 1.22 gives no state for a pair; libnice is asked
                // (`ice_facts`), and the pair is the selected one when
                // webrtcbin named its candidates.
                Polymorphic::of(&{
                    let named = !string(s, "local-candidate-id").is_empty();
                    let p = pair_facts(ice.map(|f| IceFacts { selected: f.selected && named, ..f }));
                    RTCIceCandidatePairStats {
                        id: id.clone(),
                        r#type: StatsType::Candidatepair,
                        timestamp_millis: ts,
                        transport_id: string(s, "transport-id"),
                        local_candidate_id: string(s, "local-candidate-id"),
                        remote_candidate_id: string(s, "remote-candidate-id"),
                        state: p.state,
                        priority: int(s, "priority"),
                        nominated: p.nominated,
                        writable: p.writable,
                        readable: p.readable,
                        bytes_sent: int(s, "bytes-sent"),
                        bytes_received: int(s, "bytes-received"),
                        round_trip_time: float(s, "current-round-trip-time"),
                        available_outgoing_bitrate: float(s, "available-outgoing-bitrate"),
                        available_incoming_bitrate: float(s, "available-incoming-bitrate"),
                    }
                }),
            )),
            T::LocalCandidate | T::RemoteCandidate => out.push((
                id.clone(),
                Polymorphic::of(&RTCIceCandidateAttributes {
                    id: id.clone(),
                    r#type: if t == T::LocalCandidate { StatsType::Localcandidate } else { StatsType::Remotecandidate },
                    timestamp_millis: ts,
                    ip_address: string(s, "address"),
                    port_number: int(s, "port"),
                    transport: string(s, "protocol"),
                    candidate_type: candidate_type(&string(s, "candidate-type")),
                    priority: int(s, "priority"),
                    address_source_url: string(s, "url"),
                }),
            )),
            _ => {}
        }
    }
    let d = ep.data.lock();
    if media_type.is_none() || media_type == Some(MediaType::Data) {
        out.extend(d.stats().into_iter().map(|c| datachannel_record(ts, c)));
    }
    out.push((
        "peerconnection".into(),
        Polymorphic::of(&RTCPeerConnectionStats {
            id: "peerconnection".into(),
            r#type: StatsType::Session,
            timestamp_millis: ts,
            data_channels_opened: d.opened_total,
            data_channels_closed: d.closed_total,
        }),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_webrtc::WebRTCICEConnectionState as S;

    /// An element with webrtcbin's `get-stats` action: answers when named
    /// `answering`, never otherwise (a webrtcbin whose operations are stuck).
    mod fake {
        use gst::glib;
        use gst::prelude::*;
        use gst::subclass::prelude::*;
        use std::sync::LazyLock;

        #[derive(Default)]
        pub struct Stats;

        #[glib::object_subclass]
        impl ObjectSubclass for Stats {
            const NAME: &'static str = "KmsTestFakeStats";
            type Type = super::FakeStats;
            type ParentType = gst::Element;
        }

        impl ObjectImpl for Stats {
            fn signals() -> &'static [glib::subclass::Signal] {
                static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
                    vec![
                        glib::subclass::Signal::builder("get-stats")
                            .param_types([gst::Pad::static_type(), gst::Promise::static_type()])
                            .action()
                            .class_handler(|args| {
                                let me = args[0].get::<gst::Element>().unwrap();
                                let promise = args[2].get::<gst::Promise>().unwrap();
                                if me.name() == "answering" {
                                    promise.reply(Some(gst::Structure::new_empty("application/x-webrtc-stats")));
                                } else {
                                    std::mem::forget(promise); // never answered
                                }
                                None
                            })
                            .build(),
                    ]
                });
                SIGNALS.as_ref()
            }
        }

        impl GstObjectImpl for Stats {}
        impl ElementImpl for Stats {}
    }

    gst::glib::wrapper! {
        pub struct FakeStats(ObjectSubclass<fake::Stats>) @extends gst::Element, gst::Object;
    }

    #[test]
    fn without_webrtcbin_stats_the_answer_is_partial_not_empty() {
        use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
        kms_core::module::init().unwrap();
        let hub = SessionHub::new(&kms_jsonrpc::config::ServerConfig::default());
        let r = kms_core::Registry::new(
            vec![kms_core::module::descriptor(), crate::descriptor()],
            hub.notifier(),
            kms_core::CoreConfig {
                modules: serde_json::json!({"kurento": {"WebRtcEndpoint": {"transport": "webrtcbin"}}}),
                ..Default::default()
            },
        );
        let s = SessionId::new_random();
        let p = r.create(&s, "MediaPipeline", None).unwrap();
        let id = r.create(&s, "WebRtcEndpoint", Some(&serde_json::json!({"mediaPipeline": p}))).unwrap();
        let ep = r.get(&id).unwrap().any.clone().downcast::<WebRtcEndpointImpl>().expect("a WebRtcEndpointImpl");
        let partial = assemble(&ep, None, None);
        assert!(
            partial.iter().any(|(id, _)| id == "peerconnection"),
            "{:?}",
            partial.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
        // With webrtcbin's answer the same records are there, and more.
        let full = assemble(&ep, Some(&fetch(&ep.webrtcbin, STATS_TIMEOUT).unwrap()), None);
        assert!(full.len() >= partial.len());
        r.release(&s, &p).unwrap();
    }

    #[test]
    fn a_stats_query_that_is_never_answered_times_out_with_an_error() {
        gst::init().unwrap();
        let silent: gst::Element =
            gst::glib::Object::builder::<FakeStats>().property("name", "silent").build().upcast();
        let t0 = std::time::Instant::now();
        let r = fetch(&silent, Duration::from_millis(200));
        assert_eq!(r.unwrap_err(), StatsError::Timeout(Duration::from_millis(200)));
        assert!(t0.elapsed() >= Duration::from_millis(200) && t0.elapsed() < Duration::from_secs(2));
        let answering: gst::Element =
            gst::glib::Object::builder::<FakeStats>().property("name", "answering").build().upcast();
        assert_eq!(fetch(&answering, Duration::from_secs(2)).unwrap().name(), "application/x-webrtc-stats");
    }

    #[test]
    fn a_pair_succeeds_only_when_libnice_selected_it_on_a_connected_component() {
        let f = |state, selected| pair_facts(Some(IceFacts { state, selected }));
        assert_eq!(pair_facts(None).state, RTCStatsIceCandidatePairState::Frozen);
        assert_eq!(f(S::New, false).state, RTCStatsIceCandidatePairState::Frozen);
        let checking = f(S::Checking, false);
        assert_eq!(checking.state, RTCStatsIceCandidatePairState::Inprogress);
        assert!(!checking.nominated && !checking.writable && !checking.readable);
        assert_eq!(f(S::Connected, false).state, RTCStatsIceCandidatePairState::Inprogress);
        let up = f(S::Connected, true);
        assert_eq!(
            up,
            PairFacts {
                state: RTCStatsIceCandidatePairState::Succeeded,
                nominated: true,
                writable: true,
                readable: true
            }
        );
        assert_eq!(f(S::Completed, true).state, RTCStatsIceCandidatePairState::Succeeded);
        let lost = f(S::Disconnected, true);
        assert_eq!(lost.state, RTCStatsIceCandidatePairState::Failed);
        assert!(lost.nominated && !lost.writable && !lost.readable);
        assert_eq!(f(S::Failed, false).state, RTCStatsIceCandidatePairState::Failed);
    }
}
