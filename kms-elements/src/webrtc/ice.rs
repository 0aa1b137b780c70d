//! ICE and DTLS of the WebRtcEndpoint (spec §10.7, §7.2): explicit
//! gathering, trickle in both directions, component/DTLS state events,
//! network settings.

use std::sync::Arc;

use gst::prelude::*;
use gst_webrtc::prelude::*;
use kms_core::{Error, Result};

use super::sdp::{self, err};
use super::{WebRtcEndpointImpl, stats};
use crate::api::elements::events::{
    DtlsConnectionStateChange, IceCandidateFound, IceComponentStateChanged, IceGatheringDone, NewCandidatePairSelected,
};
use crate::api::elements::{
    DtlsConnection, DtlsConnectionState, IceCandidate, IceCandidatePair, IceComponentState, IceConnection,
};

const ICE_ADD_CANDIDATE_ERROR: i64 = 40401;

/// Stream and component ids reported before the transport exists (the
/// `GATHERING` event of `gatherCandidates`): libnice numbers an agent's
/// streams from 1, and the bundled, rtcp-muxed transport is its only one.
const STREAM_ID: i32 = 1;
const COMPONENT_ID: i32 = 1;

/// The ids of the bundled transport as libnice and the DTLS element know
/// them: what every ICE/DTLS event and getter reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportIds {
    /// libnice stream id (`GstWebRTCICEStream:stream-id`).
    pub stream_id: u32,
    /// ICE component (1 = RTP, also carrying RTCP: rtcp-mux).
    pub component_id: i32,
    /// The `connection-id` of the transport's `dtlssrtpdec`.
    pub connection_id: String,
}

impl Default for TransportIds {
    fn default() -> Self {
        TransportIds { stream_id: STREAM_ID as u32, component_id: COMPONENT_ID, connection_id: String::new() }
    }
}

/// What the ICE agent knows about the bundled transport at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceFacts {
    pub state: gst_webrtc::WebRTCICEConnectionState,
    /// libnice has selected a pair (`nice_agent_get_selected_pair`).
    pub selected: bool,
}

#[derive(Default)]
pub struct IceState {
    /// mid of each local m-line.
    mids: Vec<Option<String>>,
    /// Local m-lines that were rejected (port 0).
    rejected: Vec<bool>,
    /// The m-line whose transport carries the bundle.
    bundle_mline: u32,
    gather_requested: bool,
    /// Gathered before `gatherCandidates`: reported when it is called.
    pending: Vec<IceCandidate>,
    /// Every local candidate, for the local SDP.
    pub local: Vec<IceCandidate>,
    pub gathering_complete: bool,
    done_sent: bool,
    /// Remote candidates received before both descriptions existed.
    remote_queue: Vec<(u32, String)>,
    descriptions_ready: bool,
    transports_hooked: bool,
    pub component_state: Option<IceComponentState>,
    pub dtls_state: Option<DtlsConnectionState>,
    pub selected_pair: Option<IceCandidatePair>,
    /// Known once the transports are hooked.
    pub ids: Option<TransportIds>,
    /// Media and connection state (`MediaStateChanged`,
    /// `ConnectionStateChanged`).
    pub link: super::LinkStates,
    /// Bitrate the remote receiver reported (REMB), bps.
    pub remote_remb: Option<u32>,
}

/// Addresses of the named interfaces (all when `names` is empty), for
/// libnice's explicit local address list.
fn interface_addresses(names: &[&str], loopback: bool) -> Vec<String> {
    let mut out = vec![];
    // SAFETY: getifaddrs fills a linked list we free with freeifaddrs; each
    // entry's name and address pointers are valid until then.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as u32 == 0 {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().to_string();
            let is_lo = ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0;
            if !names.is_empty() && !names.contains(&name.as_str()) {
                continue;
            }
            if names.is_empty() && is_lo && !loopback {
                continue;
            }
            let family = (*ifa.ifa_addr).sa_family as i32;
            let addr = if family == libc::AF_INET {
                let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)))
            } else if family == libc::AF_INET6 {
                let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr);
                if (ip.segments()[0] & 0xffc0) == 0xfe80 {
                    continue; // link-local needs a scope id ICE can't carry
                }
                std::net::IpAddr::V6(ip)
            } else {
                continue;
            };
            out.push(addr.to_string());
        }
        libc::freeifaddrs(ifap);
    }
    out.sort();
    out.dedup();
    out
}

/// Turns libnice's UPnP IGD port mapping off for the ICE agent of a
/// transport's `nicesrc`/`nicesink` (among `elements`, a bin webrtcbin just
/// added, before gathering starts). With it on (libnice's default) each
/// agent starts a thread of its own at gathering time and multicasts SSDP
/// discovery on the LAN; a media server has its addresses configured
/// (externalIPv4/6, STUN, TURN).
pub(super) fn disable_upnp(elements: &[gst::Element]) {
    for e in elements {
        let is_nice = e.factory().is_some_and(|f| matches!(f.name().as_str(), "nicesrc" | "nicesink"));
        if !is_nice || !e.has_property("agent") {
            continue;
        }
        if let Some(agent) = e.property::<Option<gst::glib::Object>>("agent")
            && agent.has_property("upnp")
        {
            agent.set_property("upnp", false);
        }
    }
}

fn ice_state(s: gst_webrtc::WebRTCICEConnectionState) -> Option<IceComponentState> {
    use gst_webrtc::WebRTCICEConnectionState as S;
    Some(match s {
        S::Checking => IceComponentState::Connecting,
        S::Connected => IceComponentState::Connected,
        S::Completed => IceComponentState::Ready,
        S::Failed => IceComponentState::Failed,
        S::Disconnected | S::Closed => IceComponentState::Disconnected,
        _ => return None,
    })
}

fn dtls_state(s: gst_webrtc::WebRTCDTLSTransportState) -> Option<DtlsConnectionState> {
    use gst_webrtc::WebRTCDTLSTransportState as S;
    Some(match s {
        S::New => DtlsConnectionState::New,
        S::Closed => DtlsConnectionState::Closed,
        S::Failed => DtlsConnectionState::Failed,
        S::Connecting => DtlsConnectionState::Connecting,
        S::Connected => DtlsConnectionState::Connected,
        _ => return None,
    })
}

impl WebRtcEndpointImpl {
    /// Applies the ICE settings to webrtcbin's agent before gathering
    /// starts (spec §10.7: changes affect gathering started afterwards).
    pub(super) fn apply_ice_settings(&self) {
        let s = self.settings.lock().clone();
        if let Some(stun) = s.stun_uri() {
            self.webrtcbin.set_property("stun-server", stun);
        }
        if let Some(turn) = s.turn_uri() {
            self.webrtcbin.set_property("turn-server", turn);
        }
        let Some(agent) = self.webrtcbin.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent") else { return };
        if s.min_port > 0 && s.max_port >= s.min_port {
            agent.set_min_rtp_port(s.min_port);
            agent.set_max_rtp_port(s.max_port);
        }
        if agent.has_property("ice-tcp") {
            agent.set_property("ice-tcp", s.ice_tcp);
        }
        let names = super::settings::interface_names(&s.network_interfaces);
        if !names.is_empty() || s.ice_loopback {
            // An explicit address list replaces libnice's own discovery.
            for a in interface_addresses(&names, s.ice_loopback) {
                agent.emit_add_local_ip_address(&a);
            }
        }
    }

    /// Records the local description's m-lines before webrtcbin starts
    /// gathering on it.
    pub(super) fn prepare_ice(&self, local: &gst_sdp::SDPMessage) {
        let mut ice = self.ice.lock();
        ice.mids = local.medias().map(|m| m.attribute_val("mid").map(str::to_string)).collect();
        ice.rejected = local.medias().map(|m| m.port() == 0 && m.attribute_val("bundle-only").is_none()).collect();
        let bundle_first = local
            .attributes()
            .find(|a| a.key() == "group")
            .and_then(|a| a.value())
            .and_then(|v| v.strip_prefix("BUNDLE "))
            .and_then(|v| v.split_whitespace().next().map(str::to_string));
        ice.bundle_mline = bundle_first
            .and_then(|mid| ice.mids.iter().position(|m| m.as_deref() == Some(mid.as_str())))
            .unwrap_or(0) as u32;
    }

    /// Both descriptions are set: queued remote candidates go to webrtcbin
    /// and the transports' state signals are hooked.
    pub(super) fn descriptions_ready(&self, data_negotiated: bool) {
        let queued = {
            let mut ice = self.ice.lock();
            ice.descriptions_ready = true;
            std::mem::take(&mut ice.remote_queue)
        };
        for (mline, c) in queued {
            self.webrtcbin.emit_by_name::<()>("add-ice-candidate", &[&mline, &c]);
        }
        self.data.lock().negotiated = data_negotiated;
        self.hook_transports();
        if let Some(me) = self.self_arc() {
            me.hook_rtp_sessions();
        }
    }

    pub(super) fn connect_ice_signals(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.webrtcbin.connect("on-ice-candidate", false, move |args| {
            let mline = args.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
            let cand = args.get(2).and_then(|v| v.get::<String>().ok()).unwrap_or_default();
            if let Some(ep) = weak.upgrade() {
                ep.on_local_candidate(mline, &cand);
            }
            None
        });
        let weak = Arc::downgrade(self);
        self.webrtcbin.connect_notify(Some("ice-gathering-state"), move |w, _| {
            let s = w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
            if s != gst_webrtc::WebRTCICEGatheringState::Complete {
                return;
            }
            let Some(ep) = weak.upgrade() else { return };
            let send = {
                let mut ice = ep.ice.lock();
                ice.gathering_complete = true;
                let send = ice.gather_requested && !ice.done_sent;
                ice.done_sent |= send;
                send
            };
            if send {
                ep.base().raise(&IceGatheringDone {});
            }
        });
        // The transports exist once a description is set; hook them when
        // webrtcbin reports ICE progress, whichever comes first.
        let weak = Arc::downgrade(self);
        self.webrtcbin.connect_notify(Some("ice-connection-state"), move |_, _| {
            if let Some(ep) = weak.upgrade() {
                ep.hook_transports();
            }
        });
    }

    fn on_local_candidate(&self, mline: u32, cand: &str) {
        let cand = cand.strip_prefix("a=").unwrap_or(cand);
        let cand = self.rewrite_external(cand);
        let emit = {
            let mut ice = self.ice.lock();
            let mid = ice.mids.get(mline as usize).cloned().flatten().unwrap_or_else(|| mline.to_string());
            let c = IceCandidate { candidate: cand, sdp_mid: mid, sdp_m_line_index: mline as i32 };
            ice.local.push(c.clone());
            if ice.gather_requested {
                Some(c)
            } else {
                ice.pending.push(c);
                None
            }
        };
        if let Some(c) = emit {
            self.base().raise(&IceCandidateFound { candidate: c });
        }
    }

    /// spec §10.7: externalIPv4/IPv6 replace host candidates' address.
    fn rewrite_external(&self, cand: &str) -> String {
        let s = self.settings.lock();
        super::settings::external_candidate(cand, &s.external_ipv4, &s.external_ipv6)
    }

    pub(super) fn do_gather_candidates(&self) -> Result<()> {
        let (pending, done) = {
            let mut ice = self.ice.lock();
            if ice.gather_requested {
                return Ok(());
            }
            ice.gather_requested = true;
            let done = ice.gathering_complete && !ice.done_sent;
            ice.done_sent |= done;
            (std::mem::take(&mut ice.pending), done)
        };
        self.base().raise(&IceComponentStateChanged {
            stream_id: STREAM_ID,
            component_id: COMPONENT_ID,
            state: IceComponentState::Gathering,
        });
        for c in pending {
            self.base().raise(&IceCandidateFound { candidate: c });
        }
        if done {
            self.base().raise(&IceGatheringDone {});
        }
        Ok(())
    }

    pub(super) fn do_add_ice_candidate(&self, c: IceCandidate) -> Result<()> {
        let text = c.candidate.trim();
        // spec §10.7: the empty candidate marks the end of candidates.
        if text.is_empty() {
            return Ok(());
        }
        if !sdp::candidate_is_valid(text) {
            return Err(err(ICE_ADD_CANDIDATE_ERROR, "Error adding candidate"));
        }
        let text = text.strip_prefix("a=").unwrap_or(text).to_string();
        let mline = {
            let mut ice = self.ice.lock();
            let by_mid =
                ice.mids.iter().position(|m| m.as_deref() == Some(c.sdp_mid.as_str()) && !c.sdp_mid.is_empty());
            let mut idx = match by_mid {
                Some(i) => i as i64,
                None => c.sdp_m_line_index as i64,
            };
            if idx < 0 {
                return Err(err(ICE_ADD_CANDIDATE_ERROR, "Error adding candidate"));
            }
            if !ice.mids.is_empty() {
                if idx as usize >= ice.mids.len() {
                    return Err(err(ICE_ADD_CANDIDATE_ERROR, "Error adding candidate"));
                }
                if ice.rejected.get(idx as usize).copied().unwrap_or(false) {
                    return Ok(());
                }
                // Bundled: every section shares the first one's transport.
                idx = ice.bundle_mline as i64;
            }
            if !ice.descriptions_ready {
                let max = self.limits.max_queued_ice_candidates;
                if max > 0 && ice.remote_queue.len() >= max {
                    return Err(Error::NotEnoughResources(format!(
                        "Reached queued-ICE-candidates limit: {max} (maxQueuedIceCandidates); remote candidates are \
                         kept until the remote description is set"
                    )));
                }
                ice.remote_queue.push((idx as u32, text));
                return Ok(());
            }
            idx as u32
        };
        self.webrtcbin.emit_by_name::<()>("add-ice-candidate", &[&mline, &text]);
        Ok(())
    }

    /// Connects the ICE and DTLS transports' state signals (once).
    pub(super) fn hook_transports(&self) {
        if let Some(dtls) = self.dtls_transport() {
            self.hook_dtls(&dtls);
        }
    }

    /// The bundled DTLS transport: the first transceiver's (every
    /// transceiver shares it), or for data-only sessions the SCTP one's.
    fn dtls_transport(&self) -> Option<gst_webrtc::WebRTCDTLSTransport> {
        let media = self
            .webrtcbin
            .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&0i32])
            .and_then(|t| t.receiver())
            .and_then(|r| r.transport());
        if media.is_some() {
            return media;
        }
        if !self.webrtcbin.has_property("sctp-transport") {
            return None;
        }
        let sctp = self.webrtcbin.property::<Option<gst::glib::Object>>("sctp-transport")?;
        sctp.property_value("transport").get::<gst_webrtc::WebRTCDTLSTransport>().ok()
    }

    /// The libnice stream of an ICE transport.
    fn ice_stream(ice_t: &gst_webrtc::WebRTCICETransport) -> Option<gst_webrtc::WebRTCICEStream> {
        if !ice_t.has_property("stream") {
            return None;
        }
        ice_t.property::<Option<gst_webrtc::WebRTCICEStream>>("stream")
    }

    /// The transport's ids, read from libnice's stream and the DTLS decoder.
    fn transport_ids(&self, ice_t: &gst_webrtc::WebRTCICETransport) -> TransportIds {
        use gst_webrtc::prelude::WebRTCICEStreamExt as _;
        let stream_id = Self::ice_stream(ice_t).map_or(STREAM_ID as u32, |s| s.stream_id());
        let component_id = match ice_t.component() {
            gst_webrtc::WebRTCICEComponent::Rtcp => 2,
            _ => 1,
        };
        // With max-bundle webrtcbin has one transport, so one decoder.
        let connection_id = self
            .webrtcbin
            .downcast_ref::<gst::Bin>()
            .and_then(|b| {
                b.iterate_recurse()
                    .into_iter()
                    .flatten()
                    .find(|e| e.factory().is_some_and(|f| f.name() == "dtlssrtpdec"))
            })
            .and_then(|d| d.property::<Option<String>>("connection-id"))
            .unwrap_or_default();
        TransportIds { stream_id, component_id, connection_id }
    }

    /// ICE state and selection of the bundled transport, asked of libnice
    /// now (for `getStats`); `None` before a description created it.
    pub(super) fn ice_facts(&self) -> Option<IceFacts> {
        use gst_webrtc::prelude::WebRTCICEExt as _;
        let ice_t = self.dtls_transport()?.transport()?;
        let selected =
            match (Self::ice_stream(&ice_t), self.webrtcbin.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent")) {
                (Some(stream), Some(agent)) => agent.selected_pair(&stream).is_some(),
                _ => false,
            };
        Some(IceFacts { state: ice_t.state(), selected })
    }

    /// The ids events and getters report (defaults until hooked).
    fn ids(&self) -> TransportIds {
        self.ice.lock().ids.clone().unwrap_or_default()
    }

    fn hook_dtls(&self, dtls: &gst_webrtc::WebRTCDTLSTransport) {
        let Some(ice_t) = dtls.transport() else { return };
        {
            let mut ice = self.ice.lock();
            if ice.transports_hooked {
                return;
            }
            ice.transports_hooked = true;
        }
        let ids = self.transport_ids(&ice_t);
        tracing::debug!(id = %self.base().id(), ?ids, "transport hooked");
        self.ice.lock().ids = Some(ids);
        self.apply_dscp(&ice_t);
        let Some(ep) = self.self_arc() else { return };
        let weak = Arc::downgrade(&ep);
        ice_t.connect_state_notify(move |t| {
            let Some(ep) = weak.upgrade() else { return };
            let Some(s) = ice_state(t.state()) else { return };
            let changed = {
                let mut ice = ep.ice.lock();
                ice.component_state.replace(s) != Some(s)
            };
            if changed {
                let ids = ep.ids();
                ep.base().raise(&IceComponentStateChanged {
                    stream_id: ids.stream_id as i32,
                    component_id: ids.component_id,
                    state: s,
                });
            }
        });
        let weak = Arc::downgrade(&ep);
        ice_t.connect_on_selected_candidate_pair_change(move |_| {
            if let Some(ep) = weak.upgrade() {
                ep.refresh_selected_pair();
            }
        });
        let weak = Arc::downgrade(&ep);
        dtls.connect_state_notify(move |d| {
            let Some(ep) = weak.upgrade() else { return };
            let Some(s) = dtls_state(d.state()) else { return };
            let changed = {
                let mut ice = ep.ice.lock();
                ice.dtls_state.replace(s) != Some(s)
            };
            ep.slots.set_send_open(s == DtlsConnectionState::Connected);
            if changed {
                let ids = ep.ids();
                ep.base().raise(&DtlsConnectionStateChange {
                    stream_id: ids.stream_id.to_string(),
                    component_id: ids.component_id.to_string(),
                    connection_id: ids.connection_id,
                    state: s,
                });
            }
        });
        // States reached before the hook.
        if let Some(s) = ice_state(ice_t.state()) {
            self.ice.lock().component_state = Some(s);
        }
        if let Some(s) = dtls_state(dtls.state()) {
            self.ice.lock().dtls_state = Some(s);
            self.slots.set_send_open(s == DtlsConnectionState::Connected);
        }
    }

    /// Marks the stream's packets with the `qosDscp` codepoint: libnice sets
    /// the IP TOS (IPv6 traffic class) of the stream's sockets. webrtcbin's
    /// own knob (sender priority) only knows four levels, so the ICE
    /// stream, which its nice transport exposes, is given the value directly.
    fn apply_dscp(&self, ice_t: &gst_webrtc::WebRTCICETransport) {
        let Some(dscp) = self.settings.lock().qos_dscp else { return };
        if !ice_t.has_property("stream") {
            tracing::warn!("qosDscp: this ICE transport does not expose its stream; packets are not marked");
            return;
        }
        let stream = ice_t.property::<Option<gst_webrtc::WebRTCICEStream>>("stream");
        let agent = self.webrtcbin.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent");
        if let (Some(stream), Some(agent)) = (stream, agent) {
            use gst_webrtc::prelude::WebRTCICEExt as _;
            agent.set_tos(&stream, u32::from(dscp) << 2);
            tracing::debug!(dscp, "qosDscp applied");
        }
    }

    /// Reads the selected pair from webrtcbin's stats (asynchronously: this
    /// runs on ICE threads) and reports it.
    fn refresh_selected_pair(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let promise = gst::Promise::with_change_func(move |reply| {
            let Some(ep) = weak.upgrade() else { return };
            let Ok(Some(s)) = reply else { return };
            let Some(pair) = stats::selected_pair(s, &ep.ids()) else { return };
            let changed = {
                let mut ice = ep.ice.lock();
                ice.selected_pair.replace(pair.clone()).as_ref() != Some(&pair)
            };
            if changed {
                ep.base().raise(&NewCandidatePairSelected { candidate_pair: pair });
            }
        });
        self.webrtcbin.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    }

    pub(super) fn ice_connections(&self) -> Vec<IceConnection> {
        let ice = self.ice.lock();
        let ids = ice.ids.clone().unwrap_or_default();
        ice.component_state
            .map(|state| IceConnection { stream_id: ids.stream_id.to_string(), component_id: ids.component_id, state })
            .into_iter()
            .collect()
    }

    pub(super) fn dtls_connections(&self) -> Vec<DtlsConnection> {
        let ice = self.ice.lock();
        let ids = ice.ids.clone().unwrap_or_default();
        ice.dtls_state
            .map(|state| DtlsConnection {
                stream_id: ids.stream_id.to_string(),
                component_id: ids.component_id.to_string(),
                connection_id: ids.connection_id,
                state,
            })
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_only_when_asked() {
        let all = interface_addresses(&[], false);
        assert!(!all.iter().any(|a| a == "127.0.0.1"));
        let with_lo = interface_addresses(&[], true);
        assert!(with_lo.iter().any(|a| a == "127.0.0.1"));
        assert!(interface_addresses(&["lo"], false).contains(&"127.0.0.1".to_string()));
    }
}
