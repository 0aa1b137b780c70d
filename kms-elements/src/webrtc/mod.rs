//! WebRtcEndpoint (spec §10.5–10.7) on GStreamer's `webrtcbin`.
//!
//! ```text
//!            ┌────────────────────── WebRtcEndpoint bin ──────────────────────┐
//! pipeline → │ kmsrtpinput(audio|video) → webrtcbin → agnosticbin(audio|video)│ → pipeline
//!            │ appsink(data)  ──▶ data channels ──▶ data pad → agnosticbin(data)│
//!            └─────────────────────────────────────────────────────────────────┘
//! ```
//!
//! webrtcbin fires its signals and promises on its own threads; RPC calls
//! wait for promises with a timeout, callbacks never take the negotiation
//! lock (only the small state locks), so neither side can block the other.

mod cert;
mod data;
mod ice;
pub mod io;
pub mod loss;
pub mod native;
mod negotiation;
pub mod nojitter;
mod remb;
pub mod rtp_input;
pub mod sdp;
pub mod settings;
mod stats;

use parking_lot::Mutex;
use std::sync::Arc;

use gst::prelude::*;
use kms_core::api::core::events::MediaStateChanged;
use kms_core::api::core::{
    BaseRtpEndpoint, ConnectionState, Endpoint, MediaState, MediaType, OfferOptions, RembParams, SdpEndpoint,
    SessionEndpoint,
};
use kms_core::element::{ElementCore, ElementObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::{Ctx, Polymorphic};
use kms_core::{Error, Result};

use crate::api::elements::{
    DtlsConnection, IceCandidate, IceCandidatePair, IceConnection, WebRtcEndpoint, WebRtcEndpointConstructor,
    WebRtcEndpointFactory,
};
use io::{Slots, WebRtcIo};
use settings::Settings;

/// How long an RPC call waits for a webrtcbin promise.
const PROMISE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Constructor choices (spec §10.7).
#[derive(Debug, Clone)]
struct Ctor {
    recvonly: bool,
    sendonly: bool,
    use_data_channels: bool,
}

/// The endpoint. Its mutable state is split by who changes it, one lock
/// each. `neg` is held by an RPC for a whole negotiation (webrtcbin
/// promises included) and is never taken by callbacks; the others are
/// taken briefly, one at a time, and never across a webrtcbin signal
/// emission or an event (webrtcbin calls back on its own threads, which
/// take the same small locks):
///
/// | Lock | Guards | Taken by |
/// | --- | --- | --- |
/// | `neg` | SDP state machine, local/remote descriptions | RPC calls, for a whole negotiation; never callbacks |
/// | `settings` | properties and module configuration | RPC setters, readers anywhere |
/// | `ice` | ICE, DTLS and link (media/connection) state | webrtcbin/libnice callbacks, RPC getters |
/// | `data` | data channels and their counters | data channel callbacks, RPC calls |
/// | `remb` | REMB estimate (`remb.rs`) | RTCP callbacks, settings changes |
///
/// `slots` (the send/receive pads) has its own lock inside `io.rs`.
pub struct WebRtcEndpointImpl {
    core: ElementCore,
    webrtcbin: gst::Element,
    slots: Arc<Slots>,
    ctor: Ctor,
    codecs: sdp::CodecSet,
    settings: Mutex<Settings>,
    /// Held for a whole negotiation call; never taken by callbacks.
    neg: Mutex<negotiation::Negotiation>,
    /// ICE/DTLS/link state shared with webrtcbin callbacks.
    ice: Mutex<ice::IceState>,
    data: Mutex<data::DataState>,
    remb: Mutex<remb::RembState>,
    /// Itself, for callbacks connected after construction.
    me: std::sync::OnceLock<std::sync::Weak<WebRtcEndpointImpl>>,
    /// Fingerprint of a certificate of our own (configured or ECDSA), which
    /// our local descriptions must carry instead of webrtcbin's (see `cert`).
    dtls_fingerprint: Option<String>,
    /// `mediaServer.resources.limits`: queued remote candidates, data
    /// channels.
    limits: kms_core::config::ObjectLimits,
}

/// `getMediaState` / `getConnectionState` (kept in [`ice::IceState`]).
pub(crate) struct LinkStates {
    media: MediaState,
    connection: ConnectionState,
}

impl Default for LinkStates {
    fn default() -> Self {
        LinkStates { media: MediaState::Disconnected, connection: ConnectionState::Disconnected }
    }
}

impl WebRtcEndpointImpl {
    fn base(&self) -> &ObjectBase {
        self.core.base()
    }

    fn self_arc(&self) -> Option<Arc<WebRtcEndpointImpl>> {
        self.me.get().and_then(|w| w.upgrade())
    }

    fn set_media_state(&self, new: MediaState) {
        let old = {
            let mut ice = self.ice.lock();
            std::mem::replace(&mut ice.link.media, new)
        };
        if old != new {
            self.base().raise(&MediaStateChanged { old_state: old, new_state: new });
        }
    }

    fn set_connection_state(&self, new: ConnectionState) {
        let old = {
            let mut ice = self.ice.lock();
            std::mem::replace(&mut ice.link.connection, new)
        };
        if old != new {
            self.base().raise(&kms_core::api::core::events::ConnectionStateChanged { old_state: old, new_state: new });
        }
    }

    /// The rtpbin inside webrtcbin (RTCP signals, sessions).
    fn rtpbin(&self) -> Option<gst::Element> {
        self.webrtcbin.downcast_ref::<gst::Bin>()?.by_name("rtpbin")
    }
}

impl RemoteObject for WebRtcEndpointImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        self.core.release();
    }

    /// `/metrics`: endpoints by ICE component and DTLS state (protocol
    /// names; `NONE` before the transport exists).
    fn metric_states(&self) -> Vec<kms_core::metrics::MetricState> {
        let ice = self.ice.lock();
        let name = |s: Option<String>| s.map_or_else(|| "NONE".to_owned(), |s| s.to_uppercase());
        vec![
            ("ice", name(ice.component_state.map(|s| format!("{s:?}")))),
            ("dtls", name(ice.dtls_state.map(|s| format!("{s:?}")))),
        ]
    }
}

impl ElementObject for WebRtcEndpointImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }

    fn extra_stats(&self, media_type: Option<MediaType>) -> Vec<(String, Polymorphic)> {
        stats::collect(self, media_type)
    }

    fn element_stats(&self, timestamp_millis: i64) -> Polymorphic {
        self.core.endpoint_stats(timestamp_millis)
    }
}

impl Endpoint for WebRtcEndpointImpl {}
impl SessionEndpoint for WebRtcEndpointImpl {}

impl SdpEndpoint for WebRtcEndpointImpl {
    fn get_max_audio_recv_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().max_audio_recv_bandwidth)
    }

    fn set_max_audio_recv_bandwidth(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().max_audio_recv_bandwidth = value.max(0);
        Ok(())
    }

    fn get_max_video_recv_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().max_video_recv_bandwidth)
    }

    fn set_max_video_recv_bandwidth(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().max_video_recv_bandwidth = value.max(0);
        self.update_remb();
        Ok(())
    }

    fn generate_offer(&self, _ctx: &Ctx, options: Option<OfferOptions>) -> Result<String> {
        self.do_generate_offer(options)
    }

    fn process_offer(&self, _ctx: &Ctx, offer: String) -> Result<String> {
        self.do_process_offer(offer)
    }

    fn process_answer(&self, _ctx: &Ctx, answer: String) -> Result<String> {
        self.do_process_answer(answer)
    }

    fn get_local_session_descriptor(&self, _ctx: &Ctx) -> Result<String> {
        self.local_sdp_with_candidates().ok_or_else(|| sdp::err(sdp::SDP_END_POINT_NO_LOCAL_SDP_ERROR, "No local SDP"))
    }

    fn get_remote_session_descriptor(&self, _ctx: &Ctx) -> Result<String> {
        self.neg.lock().remote.clone().ok_or_else(|| sdp::err(sdp::SDP_END_POINT_NO_REMOTE_SDP_ERROR, "No remote SDP"))
    }
}

impl BaseRtpEndpoint for WebRtcEndpointImpl {
    fn get_min_video_recv_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().min_video_recv_bandwidth)
    }

    fn set_min_video_recv_bandwidth(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().min_video_recv_bandwidth = value.max(0);
        self.update_remb();
        Ok(())
    }

    fn get_min_video_send_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().min_video_send_bandwidth)
    }

    fn set_min_video_send_bandwidth(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().min_video_send_bandwidth = value.max(0);
        self.update_send_bitrate();
        Ok(())
    }

    fn get_max_video_send_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().max_video_send_bandwidth)
    }

    fn set_max_video_send_bandwidth(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().max_video_send_bandwidth = value.max(0);
        self.update_send_bitrate();
        Ok(())
    }

    fn get_media_state(&self, _ctx: &Ctx) -> Result<MediaState> {
        Ok(self.ice.lock().link.media)
    }

    fn get_connection_state(&self, _ctx: &Ctx) -> Result<ConnectionState> {
        Ok(self.ice.lock().link.connection)
    }

    fn get_mtu(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().mtu)
    }

    fn set_mtu(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        if !(200..=65000).contains(&value) {
            return Err(Error::IllegalParam(format!("Invalid MTU {value}")));
        }
        self.settings.lock().mtu = value;
        self.slots.set_mtu(value as u32);
        Ok(())
    }

    fn get_remb_params(&self, _ctx: &Ctx) -> Result<RembParams> {
        Ok(self.settings.lock().remb.clone())
    }

    fn set_remb_params(&self, _ctx: &Ctx, value: RembParams) -> Result<()> {
        self.settings.lock().remb = value;
        self.update_remb();
        Ok(())
    }

    fn request_keyframe(&self, _ctx: &Ctx) -> Result<()> {
        // Toward the remote sender: an upstream GstForceKeyUnit on the
        // received video becomes a PLI in webrtcbin's RTP session.
        for (t, _, agnostic) in self.core.outputs() {
            if t == MediaType::Video {
                agnostic.request_keyframe();
            }
        }
        if let Some(pad) = self.webrtcbin.src_pads().into_iter().find(|p| pad_kind(p) == Some(MediaType::Video)) {
            let _ = pad.send_event(kms_core::agnosticbin::codecs::force_key_unit_event());
        }
        Ok(())
    }
}

impl WebRtcEndpoint for WebRtcEndpointImpl {
    fn get_network_interfaces(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.settings.lock().network_interfaces.clone())
    }

    fn set_network_interfaces(&self, _ctx: &Ctx, value: String) -> Result<()> {
        self.settings.lock().network_interfaces = value;
        Ok(())
    }

    fn get_ice_tcp(&self, _ctx: &Ctx) -> Result<bool> {
        Ok(self.settings.lock().ice_tcp)
    }

    fn set_ice_tcp(&self, _ctx: &Ctx, value: bool) -> Result<()> {
        self.settings.lock().ice_tcp = value;
        Ok(())
    }

    fn get_stun_server_address(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.settings.lock().stun_server_address.clone())
    }

    fn set_stun_server_address(&self, _ctx: &Ctx, value: String) -> Result<()> {
        self.settings.lock().stun_server_address = value;
        Ok(())
    }

    fn get_stun_server_port(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().stun_server_port)
    }

    fn set_stun_server_port(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().stun_server_port = value;
        Ok(())
    }

    fn get_turn_url(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.settings.lock().turn_url.clone())
    }

    fn set_turn_url(&self, _ctx: &Ctx, value: String) -> Result<()> {
        self.settings.lock().turn_url = value;
        Ok(())
    }

    fn get_external_i_pv4(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.settings.lock().external_ipv4.clone())
    }

    fn set_external_i_pv4(&self, _ctx: &Ctx, value: String) -> Result<()> {
        self.settings.lock().external_ipv4 = value;
        Ok(())
    }

    fn get_external_i_pv6(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.settings.lock().external_ipv6.clone())
    }

    fn set_external_i_pv6(&self, _ctx: &Ctx, value: String) -> Result<()> {
        self.settings.lock().external_ipv6 = value;
        Ok(())
    }

    fn get_ice_candidate_pairs(&self, _ctx: &Ctx) -> Result<Vec<IceCandidatePair>> {
        Ok(self.ice.lock().selected_pair.iter().cloned().collect())
    }

    fn get_ice_connection_state(&self, _ctx: &Ctx) -> Result<Vec<IceConnection>> {
        Ok(self.ice_connections())
    }

    fn get_dtls_connection_state(&self, _ctx: &Ctx) -> Result<Vec<DtlsConnection>> {
        Ok(self.dtls_connections())
    }

    fn gather_candidates(&self, _ctx: &Ctx) -> Result<()> {
        self.do_gather_candidates()
    }

    fn add_ice_candidate(&self, _ctx: &Ctx, candidate: IceCandidate) -> Result<()> {
        self.do_add_ice_candidate(candidate)
    }

    fn create_data_channel(
        &self,
        _ctx: &Ctx,
        label: String,
        ordered: bool,
        max_packet_life_time: i32,
        max_retransmits: i32,
        protocol: String,
    ) -> Result<()> {
        self.do_create_data_channel(label, ordered, max_packet_life_time, max_retransmits, protocol)
    }

    fn close_data_channel(&self, _ctx: &Ctx, channel_id: i32) -> Result<()> {
        self.do_close_data_channel(channel_id)
    }
}

/// Media type of a webrtcbin pad, from its transceiver.
fn pad_kind(pad: &gst::Pad) -> Option<MediaType> {
    if !pad.has_property("transceiver") {
        return None;
    }
    let t = pad.property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")?;
    match t.kind() {
        gst_webrtc::WebRTCKind::Audio => Some(MediaType::Audio),
        gst_webrtc::WebRTCKind::Video => Some(MediaType::Video),
        _ => None,
    }
}

impl WebRtcEndpointFactory for WebRtcEndpointImpl {
    fn construct(ctx: &Ctx, params: WebRtcEndpointConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        if gst::ElementFactory::find("webrtcbin").is_none() || gst::ElementFactory::find("nicesrc").is_none() {
            return Err(Error::NotAvailable(
                "GStreamer element cannot be created: webrtcbin (gst-plugins-bad) and nice (gstreamer1.0-nice) are required"
                    .into(),
            ));
        }
        let codecs = sdp::CodecSet::from_config(ctx.config())?;
        let mut settings = Settings::from_config(ctx.config());
        settings.qos_dscp = settings::resolve_dscp(params.qos_dscp.as_str(), settings.qos_dscp);
        io::register_meta();
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let slots = Slots::new(settings.mtu as u32);
        let core = ElementCore::new(ctx, base, shared, Box::new(WebRtcIo(slots.clone())))?;
        let webrtcbin = gst::ElementFactory::make("webrtcbin")
            .name("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", 0u32)
            .build()
            .map_err(|e| Error::NotAvailable(format!("GStreamer element cannot be created: {e}")))?;
        // Read here, after the bin joined the pipeline: an unusable
        // certificate fails the constructor, and dropping `core` takes the
        // bin out again (tests/webrtc_ctor_cleanup.rs).
        let pem = cert::pem_for(ctx.config(), params.certificate_key_type).map_err(|why| {
            tracing::warn!("WebRtcEndpoint not created: {why}");
            Error::NotAvailable(format!("WebRtcEndpoint cannot be created: {why}"))
        })?;
        let dtls_fingerprint = pem.as_deref().and_then(cert::fingerprint);
        let rekey = pem.filter(|_| dtls_fingerprint.is_some()).map(cert::Rekey::new);
        // Each transport's bins, as webrtcbin adds them (still in NULL): the
        // one moment to set up their ICE agent and DTLS certificate.
        if let Some(bin) = webrtcbin.downcast_ref::<gst::Bin>() {
            bin.connect_element_added(move |_, added| {
                let Some(child) = added.downcast_ref::<gst::Bin>() else { return };
                let elements: Vec<gst::Element> = child.iterate_recurse().into_iter().flatten().collect();
                ice::disable_upnp(&elements);
                if let Some(r) = &rekey {
                    r.apply(&elements);
                }
            });
        }
        if !settings.jitter_buffer {
            nojitter::install(&webrtcbin);
        }
        core.bin().add(&webrtcbin)?;
        webrtcbin.sync_state_with_parent()?;
        let ep = Arc::new(WebRtcEndpointImpl {
            core,
            webrtcbin,
            slots,
            ctor: Ctor {
                recvonly: params.recvonly,
                sendonly: params.sendonly,
                use_data_channels: params.use_data_channels,
            },
            codecs,
            settings: Mutex::new(settings),
            neg: Mutex::new(negotiation::Negotiation::default()),
            ice: Mutex::new(ice::IceState::default()),
            data: Mutex::new(data::DataState::default()),
            remb: Mutex::new(remb::RembState::default()),
            me: std::sync::OnceLock::new(),
            dtls_fingerprint,
            limits: ctx.config().limits.clone(),
        });
        let _ = ep.me.set(Arc::downgrade(&ep));
        ep.connect_signals();
        // Outputs exist from the start so flow events fire even before
        // anything is connected.
        for t in [MediaType::Audio, MediaType::Video, MediaType::Data] {
            let _ = ep.core.output(t, "default");
        }
        Ok(ep)
    }
}

impl WebRtcEndpointImpl {
    fn connect_signals(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.webrtcbin.connect_pad_added(move |_, pad| {
            if let Some(ep) = weak.upgrade() {
                ep.on_pad_added(pad);
            }
        });
        self.connect_ice_signals();
        self.connect_data_signals();
        let weak = Arc::downgrade(self);
        self.webrtcbin.connect_notify(Some("connection-state"), move |w, _| {
            let Some(ep) = weak.upgrade() else { return };
            let s = w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            match s {
                gst_webrtc::WebRTCPeerConnectionState::Connected => ep.set_connection_state(ConnectionState::Connected),
                gst_webrtc::WebRTCPeerConnectionState::Failed
                | gst_webrtc::WebRTCPeerConnectionState::Disconnected
                | gst_webrtc::WebRTCPeerConnectionState::Closed => {
                    ep.set_connection_state(ConnectionState::Disconnected)
                }
                _ => {}
            }
        });
        if let Some(rtpbin) = self.rtpbin() {
            let weak = Arc::downgrade(self);
            rtpbin.connect("on-ssrc-active", false, move |_| {
                if let Some(ep) = weak.upgrade() {
                    ep.set_media_state(MediaState::Connected);
                }
                None
            });
            for sig in ["on-bye-ssrc", "on-timeout"] {
                let weak = Arc::downgrade(self);
                rtpbin.connect(sig, false, move |args| {
                    let ssrc = args.get(2).and_then(|v| v.get::<u32>().ok());
                    if let Some(ep) = weak.upgrade()
                        && !ep.is_local_ssrc(ssrc)
                    {
                        ep.set_media_state(MediaState::Disconnected);
                    }
                    None
                });
            }
        }
    }

    fn is_local_ssrc(&self, ssrc: Option<u32>) -> bool {
        let Some(ssrc) = ssrc else { return false };
        [MediaType::Audio, MediaType::Video]
            .iter()
            .any(|t| self.slots.existing_input(*t).is_some_and(|i| i.ssrc() == ssrc))
    }

    /// A received stream appeared: it feeds the output of its media type;
    /// extra streams of a type already fed are discarded.
    fn on_pad_added(&self, pad: &gst::Pad) {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        let Some(t) = pad_kind(pad) else { return };
        let Some(agnostic) = self.core.output(t, "default") else { return };
        let Some(sink) = agnostic.static_pad("sink") else { return };
        if !sink.is_linked() && pad.link(&sink).is_ok() {
            tracing::debug!(id = %self.base().id(), media = %t, "receiving");
            if t == MediaType::Video {
                self.watch_received_video(pad);
            }
            return;
        }
        if let Ok(fake) = gst::ElementFactory::make("fakesink").property("async", false).property("sync", false).build()
            && self.core.bin().add(&fake).is_ok()
        {
            let _ = fake.sync_state_with_parent();
            if let Some(p) = fake.static_pad("sink") {
                let _ = pad.link(&p);
            }
        }
    }
}

impl WebRtcEndpointImpl {
    /// Loss accounting for REMB, and our consumers' bitrate wishes, on the
    /// received video.
    fn watch_received_video(&self, pad: &gst::Pad) {
        loss::block_requests_if_disabled(pad);
        let slots = self.slots.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
            let count = |b: &gst::BufferRef| {
                if let Ok(m) = b.map_readable()
                    && m.len() >= 12
                {
                    slots
                        .loss
                        .on_packet(u32::from_be_bytes([m[8], m[9], m[10], m[11]]), u16::from_be_bytes([m[2], m[3]]));
                }
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => count(b),
                Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(count),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
        let weak = self.me.get().cloned();
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
            let Some(s) = ev.structure().filter(|s| s.name() == kms_core::agnosticbin::BITRATE_EVENT) else {
                return gst::PadProbeReturn::Ok;
            };
            if let (Some(ep), Ok(b)) = (weak.as_ref().and_then(|w| w.upgrade()), s.get::<u32>("bitrate")) {
                ep.consumers_bitrate(b);
            }
            gst::PadProbeReturn::Handled
        });
    }
}

/// A random non-zero SSRC.
fn random_ssrc() -> u32 {
    loop {
        let v = gst::glib::random_int();
        if v != 0 {
            return v;
        }
    }
}

/// The `WebRtcEndpoint` class with both transports behind it: `create`
/// builds on the configured one ([`native::transport`]); calls reach
/// whichever type the object is.
pub fn class() -> kms_core::rt::ClassInfo {
    use crate::api::elements::{invoke_web_rtc_endpoint, web_rtc_endpoint_class};
    use kms_core::rt::{downcast_arc, downcast_ref};
    type AnyObject = Arc<dyn std::any::Any + Send + Sync>;
    use native::NativeEndpoint;
    type N = NativeEndpoint;
    type W = WebRtcEndpointImpl;
    fn cast<D: ?Sized + 'static>(
        any: AnyObject,
        n: fn(Arc<N>) -> Arc<D>,
        w: fn(Arc<W>) -> Arc<D>,
    ) -> Box<dyn std::any::Any> {
        if any.is::<N>() { Box::new(n(downcast_arc::<N>(any))) } else { Box::new(w(downcast_arc::<W>(any))) }
    }
    let mut info = web_rtc_endpoint_class::<W>();
    info.factory = Some(|ctx, params| {
        let class = match native::transport(ctx.config())? {
            native::Transport::Native => web_rtc_endpoint_class::<N>(),
            native::Transport::Webrtcbin => web_rtc_endpoint_class::<W>(),
        };
        (class.factory.expect("generated classes have factories"))(ctx, params)
    });
    info.invoke = |any, ctx, op, params| {
        if any.is::<N>() {
            invoke_web_rtc_endpoint(downcast_ref::<N>(any)?, ctx, op, params)
        } else {
            invoke_web_rtc_endpoint(downcast_ref::<W>(any)?, ctx, op, params)
        }
    };
    info.as_remote = |any| {
        if any.is::<N>() {
            let o: Arc<dyn RemoteObject> = downcast_arc::<N>(any);
            o
        } else {
            let o: Arc<dyn RemoteObject> = downcast_arc::<W>(any);
            o
        }
    };
    use kms_core::api::core as c;
    info.casts = vec![
        ("kurento.WebRtcEndpoint", |a| cast::<dyn WebRtcEndpoint>(a, |o| o, |o| o)),
        ("kurento.BaseRtpEndpoint", |a| cast::<dyn c::BaseRtpEndpoint>(a, |o| o, |o| o)),
        ("kurento.SdpEndpoint", |a| cast::<dyn c::SdpEndpoint>(a, |o| o, |o| o)),
        ("kurento.SessionEndpoint", |a| cast::<dyn c::SessionEndpoint>(a, |o| o, |o| o)),
        ("kurento.Endpoint", |a| cast::<dyn c::Endpoint>(a, |o| o, |o| o)),
        ("kurento.MediaElement", |a| cast::<dyn c::MediaElement>(a, |o| o, |o| o)),
        ("kurento.MediaObject", |a| cast::<dyn c::MediaObject>(a, |o| o, |o| o)),
    ];
    info
}
