//! RtpEndpoint (spec §10.5, §10.6, §10.8): plain RTP or SDES-SRTP over UDP,
//! offer/answer in either role, no ICE and no DTLS.
//!
//! ```text
//!            ┌──────────────────────── RtpEndpoint bin ─────────────────────────┐
//! pipeline → │ kmsrtpinput(audio|video) → rtpbin (+srtpenc/dec) ⇄ udpsink/udpsrc │
//!            │                            rtpbin → agnosticbin(audio|video)      │ → pipeline
//!            └───────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * `sdp`: offers, answers and what they leave us with (pure);
//! * `negotiation`: the §10.5 state machine (pure);
//! * `crypto`: SDES keys and `a=crypto` lines (pure);
//! * `ports`: RTP/RTCP socket pairs in the BaseRtpEndpoint port range;
//! * `transport`: rtpbin, udpsrc/udpsink, srtpenc/srtpdec.
//!
//! The pads toward the pipeline are the WebRtcEndpoint's (`webrtc::io`):
//! `kmsrtpinput` rewrites whatever is connected into one continuous stream
//! of the negotiated payload type, and received RTP feeds agnosticbins.

pub mod crypto;
pub mod negotiation;
pub mod ports;
pub mod sdp;
mod stats;
mod transport;

use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gst::prelude::*;
use kms_core::agnosticbin::codecs::Kind;
use kms_core::api::core::events::{ConnectionStateChanged, MediaSessionStarted, MediaStateChanged};
use kms_core::api::core::{
    BaseRtpEndpoint, ConnectionState, Endpoint, MediaState, MediaType, OfferOptions, RembParams, SdpEndpoint,
    SessionEndpoint,
};
use kms_core::config::CoreConfig;
use kms_core::element::{ElementCore, ElementObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};

use crate::api::elements::events::OnKeySoftLimit;
use crate::api::elements::{RtpEndpoint, RtpEndpointConstructor, RtpEndpointFactory};
use crate::webrtc::io::{Slots, WebRtcIo};
use crate::webrtc::rtp_input::SendFormat;
use crate::webrtc::sdp::{CodecSet, err};
use crypto::MasterKey;
use negotiation::Negotiation;
use sdp::{AnswerSection, LocalMedia, LocalSession, Negotiated, Offered};

/// Settings from the module configuration (spec §11.3) and the properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub min_port: u16,
    pub max_port: u16,
    pub mtu: i32,
    /// Address announced in `c=` (config `externalIPv4`/`externalIPv6`).
    pub external_ipv4: String,
    pub external_ipv6: String,
    pub max_audio_recv_bandwidth: i32,
    pub max_video_recv_bandwidth: i32,
    pub min_video_send_bandwidth: i32,
    pub max_video_send_bandwidth: i32,
}

impl Settings {
    /// `BaseRtpEndpoint.{minPort,maxPort,mtu,externalIPv4,externalIPv6}`
    /// (env `KMS_MIN_PORT`, `KMS_MAX_PORT`, `KMS_MTU` land there too); the
    /// external addresses fall back to the WebRtcEndpoint's.
    pub fn from_config(cfg: &CoreConfig) -> Settings {
        let port =
            |k: &str, d: i64| cfg.module_i64("kurento", "BaseRtpEndpoint", k).unwrap_or(d).clamp(1, 65535) as u16;
        let ext = |k: &str| {
            cfg.module_str("kurento", "BaseRtpEndpoint", k)
                .or_else(|| cfg.module_str("kurento", "RtpEndpoint", k))
                .or_else(|| cfg.module_str("kurento", "WebRtcEndpoint", k))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Settings {
            min_port: port("minPort", 1024),
            max_port: port("maxPort", 65535),
            mtu: cfg.module_i64("kurento", "BaseRtpEndpoint", "mtu").unwrap_or(1200).clamp(200, 65000) as i32,
            external_ipv4: ext("externalIPv4"),
            external_ipv6: ext("externalIPv6"),
            max_audio_recv_bandwidth: 0,
            max_video_recv_bandwidth: 0,
            min_video_send_bandwidth: 100,
            max_video_send_bandwidth: 500,
        }
    }
}

/// The address of our SDP and the one sockets bind to: the configured
/// external address, else the address of the default route, else loopback
/// (as KMS: first local address of the family). Sockets bind to it when it
/// is local, else to the unspecified address (NAT: external ≠ local).
pub fn addresses(s: &Settings, ipv6: bool) -> (IpAddr, IpAddr) {
    let configured = if ipv6 { &s.external_ipv6 } else { &s.external_ipv4 };
    let announced = configured
        .parse::<IpAddr>()
        .ok()
        .filter(|ip| ip.is_ipv6() == ipv6)
        .or_else(|| default_route_ip(ipv6))
        .unwrap_or(if ipv6 { IpAddr::V6(Ipv6Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) });
    let local = std::net::UdpSocket::bind((announced, 0)).is_ok();
    let bind = if local {
        announced
    } else if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    (announced, bind)
}

/// The local address the kernel would route to a documentation address
/// from (a UDP connect sends nothing).
fn default_route_ip(ipv6: bool) -> Option<IpAddr> {
    let (bind, probe) = if ipv6 { ("[::]:0", "[2001:db8::1]:9") } else { ("0.0.0.0:0", "192.0.2.1:9") };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(probe).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

struct LinkStates {
    media: MediaState,
    connection: ConnectionState,
}

pub struct RtpEndpointImpl {
    core: ElementCore,
    slots: Arc<Slots>,
    rtpbin: gst::Element,
    shared: Arc<transport::Shared>,
    codecs: CodecSet,
    key: Option<MasterKey>,
    ipv6: bool,
    settings: Mutex<Settings>,
    /// `mtu`, as answered to upstream payloaders' `kms-mtu` queries.
    mtu: Arc<AtomicU32>,
    /// Held for a whole negotiation call; never taken by callbacks.
    neg: Mutex<Negotiation>,
    /// Sockets of our offer, bound at generateOffer, used at processAnswer.
    offered_ports: Mutex<Vec<Option<ports::PortPair>>>,
    states: Arc<Mutex<LinkStates>>,
    session_id: u64,
}

impl RtpEndpointImpl {
    fn base(&self) -> &ObjectBase {
        self.core.base()
    }

    fn sending_ssrc(&self, kind: Kind) -> u32 {
        // Fixed per endpoint and kind, announced in `a=ssrc` before the
        // input is configured with it.
        let t = media_type(kind);
        self.slots.existing_input(t).map(|i| i.ssrc()).filter(|s| *s != 0).unwrap_or_else(|| {
            let s = random_ssrc();
            if let Some(i) = self.slots.rtp_input(self.core.bin(), t) {
                i.set_formats(vec![], s);
            }
            s
        })
    }

    fn bind(&self) -> Result<ports::PortPair> {
        let (min, max, (_, bind)) = {
            let s = self.settings.lock();
            (s.min_port, s.max_port, addresses(&s, self.ipv6))
        };
        ports::bind_pair(bind, min, max)
            .map_err(|e| Error::NotEnoughResources(format!("No free RTP port pair in [{min}, {max}]: {e}")))
    }

    fn announced(&self) -> IpAddr {
        addresses(&self.settings.lock(), self.ipv6).0
    }

    fn bandwidth(&self, kind: Kind) -> i32 {
        let s = self.settings.lock();
        match kind {
            Kind::Audio => s.max_audio_recv_bandwidth,
            Kind::Video => s.max_video_recv_bandwidth,
        }
    }

    fn local_media(&self, kind: Kind, pair: &ports::PortPair, payloads: Vec<sdp::Payload>, proto: &str) -> LocalMedia {
        let ssrc = self.sending_ssrc(kind);
        LocalMedia {
            kind,
            port: pair.rtp_port(),
            rtcp_port: pair.rtcp_port(),
            proto: proto.to_string(),
            payloads,
            direction: "sendrecv",
            crypto: sdp::crypto_value(self.key.as_ref(), sdp::KEY_TAG),
            ssrc: Some((ssrc, format!("kms-{}", self.base().id()))),
            bandwidth_kbps: self.bandwidth(kind),
            rejected_formats: vec![],
            media_name: kind_name(kind).into(),
        }
    }

    fn do_generate_offer(&self, options: Option<OfferOptions>) -> Result<String> {
        let mut neg = self.neg.lock();
        neg.check_can_start()?;
        let (audio, video) = options.map_or((true, true), |o| (o.offer_to_receive_audio, o.offer_to_receive_video));
        let medias = sdp::offer_medias(&self.codecs, audio, video);
        if medias.is_empty() {
            return Err(err(sdp::SDP_END_POINT_GENERATE_OFFER_ERROR, "Cannot generate offer: nothing to offer"));
        }
        let mut locals = vec![];
        let mut pairs = vec![];
        let mut offered = vec![];
        for (kind, payloads) in medias {
            let pair = self.bind()?;
            locals.push(self.local_media(kind, &pair, payloads.clone(), sdp::offer_proto(self.key.is_some())));
            pairs.push(Some(pair));
            offered.push(Offered { kind, payloads });
        }
        let text = sdp::render(&LocalSession { addr: self.announced(), session_id: self.session_id, medias: locals });
        *self.offered_ports.lock() = pairs;
        neg.offer_generated(text.clone(), offered);
        Ok(text)
    }

    fn do_process_offer(&self, offer: String) -> Result<String> {
        let mut neg = self.neg.lock();
        neg.check_can_start()?;
        let msg = sdp::parse(&offer, "offer")?;
        if msg.medias_len() == 0 {
            return Err(err(sdp::SDP_END_POINT_PROCESS_OFFER_ERROR, "Offer has no media"));
        }
        let plan = sdp::plan_answer(&msg, &self.codecs, self.key.as_ref(), self.ipv6);
        let mut locals = vec![];
        let mut started = vec![];
        for section in plan {
            match section {
                AnswerSection::Accepted { negotiated, proto, direction, crypto_tag } => {
                    let pair = self.bind()?;
                    let mut m = self.local_media(negotiated.kind, &pair, negotiated.recv.clone(), &proto);
                    m.direction = direction;
                    m.crypto = crypto_tag.and_then(|t| sdp::crypto_value(self.key.as_ref(), t));
                    locals.push(m);
                    started.push((negotiated, pair));
                }
                AnswerSection::Rejected { media_name, proto, formats } => locals.push(LocalMedia {
                    kind: Kind::Audio,
                    port: 0,
                    rtcp_port: 0,
                    proto,
                    payloads: vec![],
                    direction: "inactive",
                    crypto: None,
                    ssrc: None,
                    bandwidth_kbps: 0,
                    rejected_formats: formats,
                    media_name,
                }),
            }
        }
        let text = sdp::render(&LocalSession { addr: self.announced(), session_id: self.session_id, medias: locals });
        for (n, pair) in started {
            self.start_media(&n, pair, sdp::SDP_END_POINT_PROCESS_OFFER_ERROR)?;
        }
        neg.offer_answered(offer, text.clone());
        drop(neg);
        self.started();
        Ok(text)
    }

    fn do_process_answer(&self, answer: String) -> Result<String> {
        let mut neg = self.neg.lock();
        neg.check_can_answer()?;
        let msg = sdp::parse(&answer, "answer")?;
        let result = sdp::apply_answer(&msg, &neg.offered, self.key.as_ref(), self.ipv6)?;
        let mut pairs = std::mem::take(&mut *self.offered_ports.lock());
        for (i, n) in result.into_iter().enumerate() {
            let pair = pairs.get_mut(i).and_then(Option::take);
            if let (Some(n), Some(pair)) = (n, pair) {
                self.start_media(&n, pair, sdp::SDP_END_POINT_PROCESS_ANSWER_ERROR)?;
            }
        }
        neg.answer_processed(answer);
        let local = neg.local_sdp()?;
        drop(neg);
        self.started();
        Ok(local)
    }

    /// Sockets and rtpbin session of one negotiated media; its send input
    /// gets the formats the peer takes.
    fn start_media(&self, n: &Negotiated, pair: ports::PortPair, code: i64) -> Result<()> {
        let t = media_type(n.kind);
        let input = if n.we_send {
            let input = self.slots.rtp_input(self.core.bin(), t);
            if let Some(i) = &input {
                let formats = n
                    .send
                    .iter()
                    .map(|p| SendFormat {
                        caps: crate::webrtc::sdp::send_caps(p.codec),
                        pt: p.pt,
                        clock_rate: p.codec.clock_rate() as u32,
                    })
                    .collect();
                i.set_formats(formats, self.sending_ssrc(n.kind));
                answer_mtu(i.upcast_ref(), self.mtu.clone());
                forward_keyframe_requests(i);
            }
            input
        } else {
            None
        };
        transport::add_media(
            self.core.bin(),
            &self.rtpbin,
            &self.shared,
            n,
            pair,
            self.key.as_ref(),
            input.as_ref().map(|i| i.upcast_ref()),
        )
        .map_err(|e| {
            tracing::warn!(id = %self.base().id(), "RTP transport: {e}");
            err(code, format!("Cannot set up the RTP transport: {e}"))
        })?;
        if let Some(i) = &input {
            i.set_open(true);
            if n.kind == Kind::Video {
                self.update_send_bitrate();
            }
        }
        tracing::debug!(id = %self.base().id(), media = %t, remote = %n.remote_rtp, "RTP media started");
        Ok(())
    }

    fn started(&self) {
        self.set_connection_state(ConnectionState::Connected);
        self.base().raise(&MediaSessionStarted {});
    }

    fn set_connection_state(&self, new: ConnectionState) {
        let old = std::mem::replace(&mut self.states.lock().connection, new);
        if old != new {
            self.base().raise(&ConnectionStateChanged { old_state: old, new_state: new });
        }
    }

    /// What the remote receiver of our video may get: without REMB, the
    /// top of `[minVideoSendBandwidth, maxVideoSendBandwidth]` (the floor
    /// wins when set above the top; 0 = no top).
    fn update_send_bitrate(&self) {
        let (min, max) = {
            let s = self.settings.lock();
            (s.min_video_send_bandwidth.max(0) as u32, s.max_video_send_bandwidth.max(0) as u32)
        };
        let kbps = if max == 0 { min } else { max.max(min) };
        if kbps == 0 {
            return;
        }
        if let Some(i) = self.slots.existing_input(MediaType::Video) {
            i.push_bitrate(kbps * 1000);
        }
    }
}

fn media_type(kind: Kind) -> MediaType {
    match kind {
        Kind::Audio => MediaType::Audio,
        Kind::Video => MediaType::Video,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    }
}

/// Upstream payloaders (transcoding branches feeding this input) learn
/// our MTU from the `kms-mtu` query, answered at the input's sink pad.
fn answer_mtu(input: &gst::Element, mtu: Arc<AtomicU32>) {
    let Some(pad) = input.static_pad("sink") else { return };
    pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Query(q)) = &mut info.data
            && let gst::QueryViewMut::Custom(c) = q.view_mut()
            && c.structure().is_some_and(|s| s.name() == kms_core::agnosticbin::MTU_QUERY)
        {
            c.structure_mut().set("mtu", mtu.load(Ordering::Relaxed));
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });
}

/// A PLI/FIR from the remote receiver arrives as rtpsession's upstream
/// `GstForceKeyUnit`, which names *our* SSRC; passed on as is, the RTP
/// session of whoever feeds us (a WebRtcEndpoint's) would look that SSRC up
/// among its own sources and drop the request. Upstream gets a fresh one.
fn forward_keyframe_requests(input: &crate::webrtc::rtp_input::RtpInput) {
    let Some(pad) = input.static_pad("src") else { return };
    let weak = input.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
        if !kms_core::agnosticbin::codecs::is_force_key_unit(ev) {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(input) = weak.upgrade() {
            input.request_keyframe();
        }
        gst::PadProbeReturn::Drop
    });
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

fn set_media_state(base: &ObjectBase, states: &Mutex<LinkStates>, new: MediaState) {
    let old = std::mem::replace(&mut states.lock().media, new);
    if old != new {
        base.raise(&MediaStateChanged { old_state: old, new_state: new });
    }
}

impl RemoteObject for RtpEndpointImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        // The bin goes to NULL: udpsrc/udpsink close their sockets.
        self.offered_ports.lock().clear();
        self.core.release();
    }
}

impl ElementObject for RtpEndpointImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }

    fn extra_stats(&self, media_type: Option<MediaType>) -> Vec<(String, kms_core::rt::Polymorphic)> {
        stats::collect(&self.rtpbin, &self.shared, media_type)
    }

    fn element_stats(&self, timestamp_millis: i64) -> kms_core::rt::Polymorphic {
        self.core.endpoint_stats(timestamp_millis)
    }
}

impl Endpoint for RtpEndpointImpl {}
impl SessionEndpoint for RtpEndpointImpl {}

impl SdpEndpoint for RtpEndpointImpl {
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
        self.neg.lock().local_sdp()
    }

    fn get_remote_session_descriptor(&self, _ctx: &Ctx) -> Result<String> {
        self.neg.lock().remote_sdp()
    }
}

/// REMB (`rembParams`, `minVideoRecvBandwidth`) is WebRTC's; the
/// RtpEndpoint neither offers `goog-remb` nor estimates bandwidth.
fn no_remb() -> Error {
    Error::NotImplemented("REMB is not implemented for RtpEndpoint".into())
}

impl BaseRtpEndpoint for RtpEndpointImpl {
    fn get_min_video_recv_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Err(no_remb())
    }

    fn set_min_video_recv_bandwidth(&self, _ctx: &Ctx, _value: i32) -> Result<()> {
        Err(no_remb())
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
        Ok(self.states.lock().media)
    }

    fn get_connection_state(&self, _ctx: &Ctx) -> Result<ConnectionState> {
        Ok(self.states.lock().connection)
    }

    fn get_mtu(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().mtu)
    }

    fn set_mtu(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        if !(200..=65000).contains(&value) {
            return Err(Error::IllegalParam(format!("Invalid MTU {value}")));
        }
        self.settings.lock().mtu = value;
        self.mtu.store(value as u32, Ordering::Relaxed);
        // Upstream payloaders ask again.
        for t in [MediaType::Audio, MediaType::Video] {
            if let Some(pad) = self.slots.existing_input(t).and_then(|i| i.static_pad("sink")) {
                let _ = pad.push_event(gst::event::Reconfigure::new());
            }
        }
        Ok(())
    }

    fn get_remb_params(&self, _ctx: &Ctx) -> Result<RembParams> {
        Err(no_remb())
    }

    fn set_remb_params(&self, _ctx: &Ctx, _value: RembParams) -> Result<()> {
        Err(no_remb())
    }

    fn request_keyframe(&self, _ctx: &Ctx) -> Result<()> {
        // Toward the remote sender: an upstream GstForceKeyUnit on the
        // received video becomes a PLI (FIR) in rtpbin's session.
        let pads: Vec<gst::Pad> =
            self.rtpbin.src_pads().into_iter().filter(|p| p.name().starts_with("recv_rtp_src_1_")).collect();
        for p in pads {
            let _ = p.send_event(kms_core::agnosticbin::codecs::force_key_unit_event());
        }
        Ok(())
    }
}

impl RtpEndpoint for RtpEndpointImpl {}

impl RtpEndpointFactory for RtpEndpointImpl {
    fn construct(ctx: &Ctx, params: RtpEndpointConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared_pipeline =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let key = crypto::master_key(&params.crypto)?;
        let srtp: &[&str] = if key.is_some() { &["srtpenc", "srtpdec"] } else { &[] };
        for f in ["rtpbin", "udpsrc", "udpsink"].iter().chain(srtp) {
            if gst::ElementFactory::find(f).is_none() {
                return Err(Error::NotAvailable(format!("GStreamer element cannot be created: {f}")));
            }
        }
        let codecs = CodecSet::from_config(ctx.config())?;
        let settings = Settings::from_config(ctx.config());
        crate::webrtc::io::register_meta();
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let slots = Slots::new(settings.mtu as u32);
        let core = ElementCore::new(ctx, base, shared_pipeline, Box::new(WebRtcIo(slots.clone())))?;
        // AVPF timing (immediate PLI/FIR) also serves classic AVP peers.
        let profile = if key.is_some() { "savpf" } else { "avpf" };
        let rtpbin = gst::ElementFactory::make("rtpbin")
            .name("rtpbin")
            .property_from_str("rtp-profile", profile)
            .build()
            .map_err(|e| Error::NotAvailable(format!("GStreamer element cannot be created: {e}")))?;
        let shared = Arc::new(transport::Shared::default());
        let states = Arc::new(Mutex::new(LinkStates {
            media: MediaState::Disconnected,
            connection: ConnectionState::Disconnected,
        }));
        let ev_base = core.base().clone();
        transport::hook(
            &rtpbin,
            &shared,
            Arc::new(move |kind| {
                tracing::info!(id = %ev_base.id(), media = ?kind, "SRTP key soft limit");
                ev_base.raise(&OnKeySoftLimit { media_type: media_type(kind) });
            }),
        );
        core.bin().add(&rtpbin)?;
        rtpbin.sync_state_with_parent()?;
        let ep = Arc::new(RtpEndpointImpl {
            core,
            slots,
            rtpbin,
            shared,
            codecs,
            key,
            ipv6: params.use_ipv6,
            mtu: Arc::new(AtomicU32::new(settings.mtu as u32)),
            settings: Mutex::new(settings),
            neg: Mutex::new(Negotiation::default()),
            offered_ports: Mutex::new(vec![]),
            states,
            session_id: gst::glib::random_int() as u64,
        });
        ep.connect_signals();
        for t in [MediaType::Audio, MediaType::Video, MediaType::Data] {
            let _ = ep.core.output(t, "default");
        }
        Ok(ep)
    }
}

impl RtpEndpointImpl {
    fn connect_signals(self: &Arc<Self>) {
        // Received streams feed the output of their media type; further
        // streams of a type already fed are discarded.
        let weak = Arc::downgrade(self);
        self.rtpbin.connect_pad_added(move |_, pad| {
            let Some(ep) = weak.upgrade() else { return };
            let name = pad.name();
            let Some(rest) = name.strip_prefix("recv_rtp_src_") else { return };
            let Some(kind) = rest.split('_').next().and_then(|s| s.parse().ok()).and_then(transport::kind_of_session)
            else {
                return;
            };
            ep.on_received(pad, media_type(kind));
        });
        let base = self.base().clone();
        let states = self.states.clone();
        self.rtpbin.connect("on-ssrc-active", false, move |_| {
            set_media_state(&base, &states, MediaState::Connected);
            None
        });
        let slots = self.slots.clone();
        for sig in ["on-bye-ssrc", "on-timeout"] {
            let base = self.base().clone();
            let states = self.states.clone();
            let slots = slots.clone();
            self.rtpbin.connect(sig, false, move |args| {
                let ssrc = args.get(2).and_then(|v| v.get::<u32>().ok());
                let local = [MediaType::Audio, MediaType::Video]
                    .iter()
                    .any(|t| slots.existing_input(*t).is_some_and(|i| Some(i.ssrc()) == ssrc));
                if !local {
                    set_media_state(&base, &states, MediaState::Disconnected);
                }
                None
            });
        }
    }

    fn on_received(&self, pad: &gst::Pad, t: MediaType) {
        if let Some(agnostic) = self.core.output(t, "default")
            && let Some(sink) = agnostic.static_pad("sink")
            && !sink.is_linked()
            && pad.link(&sink).is_ok()
        {
            tracing::debug!(id = %self.base().id(), media = %t, pad = %pad.name(), "receiving");
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
