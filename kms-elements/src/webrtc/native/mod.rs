//! WebRtcEndpoint on the native transport (issue 13, opt-in with
//! `transport=native` in `WebRtcEndpoint.conf.ini` or
//! `KMS_WEBRTC_TRANSPORT=native`): ICE, DTLS and SRTP by `str0m`'s sans-IO
//! state machine, driven by the fixed pool of network loops in [`net`].
//!
//! ```text
//!            ┌──────────────────── WebRtcEndpoint bin ────────────────────┐
//! pipeline → │ kmsrtpinput(audio|video) → appsink ─┐                     │
//!            │                                      ▼ (loop channel)     │
//!            │                          network loop: str0m Rtc ◀─▶ UDP  │
//!            │                                      │ (loop thread)      │
//!            │    src pad (no thread) → agnosticbin(audio|video)         │ → pipeline
//!            └────────────────────────────────────────────────────────────┘
//! ```
//!
//! Received RTP is pushed into the output agnosticbins from the loop
//! thread through a bare source pad (no element, no thread of its own; the
//! agnosticbin's leaky queues take it from there). What the pipeline sends
//! leaves `kmsrtpinput` (the same adapter as the webrtcbin transport: one
//! SSRC, continuous sequence numbers, the negotiated payload type) into an
//! appsink whose callback, on the upstream streaming thread, hands the
//! packet to the loop.
//!
//! It covers processOffer, generateOffer/processAnswer, the
//! `recvonly`/`sendonly` constructors, trickle ICE both ways with host,
//! server-reflexive (STUN) and relay (TURN over UDP, TCP or TLS) candidates,
//! passive ICE-TCP, `networkInterfaces` per endpoint, DTLS-SRTP with the
//! configured certificates, data channels, keyframe requests and REMB both
//! ways, the bandwidth properties, `getStats`, DSCP, the MTU, external
//! addresses and the ICE/DTLS/connection/media events. What it cannot do
//! is refused with an explicit 40006 (see [`not_yet`] and
//! `docs/architecture.md`).

pub mod crypto;
pub mod net;
pub mod relay;
pub mod stats;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use gst::prelude::*;
use gst_rtp::rtp_buffer::RTPBufferExt;
use kms_core::agnosticbin::codecs::{self, Codec};
use kms_core::api::core::events::{ConnectionStateChanged, Error as ErrorEvent, MediaStateChanged};
use kms_core::api::core::{
    BaseRtpEndpoint, ConnectionState, Endpoint, MediaState, MediaType, OfferOptions, RembParams, SdpEndpoint,
    SessionEndpoint,
};
use kms_core::config::CoreConfig;
use kms_core::element::{ElementCore, ElementObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Rtc, RtcConfig};

use super::io::{Slots, WebRtcIo};
use super::rtp_input::SendFormat;
use super::sdp::{self, err};
use super::settings::Settings;
use crate::api::elements::events::{
    DataChannelClosed, DataChannelOpened, DtlsConnectionStateChange, IceCandidateFound, IceComponentStateChanged,
    IceGatheringDone, NewCandidatePairSelected,
};
use crate::api::elements::{
    DtlsConnection, DtlsConnectionState, IceCandidate, IceCandidatePair, IceComponentState, IceConnection,
    WebRtcEndpoint, WebRtcEndpointConstructor, WebRtcEndpointFactory,
};
use net::{LoopHandle, PeerHandler, PeerId};

/// Which transport WebRtcEndpoints are built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Webrtcbin,
    Native,
}

/// `KMS_WEBRTC_TRANSPORT` (wins) or `WebRtcEndpoint.transport`; default
/// native (a constant number of threads and a third of webrtcbin's CPU per
/// session, docs/benchmarks.md), webrtcbin on request. An unknown name is
/// refused at create time.
pub fn transport(cfg: &CoreConfig) -> Result<Transport> {
    let name = std::env::var("KMS_WEBRTC_TRANSPORT")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| cfg.module_str("kurento", "WebRtcEndpoint", "transport"))
        .unwrap_or_else(|| "native".into());
    match name.trim().to_ascii_lowercase().as_str() {
        "webrtcbin" => Ok(Transport::Webrtcbin),
        "native" => Ok(Transport::Native),
        other => {
            Err(Error::NotAvailable(format!("WebRtcEndpoint transport '{other}' is unknown (webrtcbin or native)")))
        }
    }
}

/// ICE stream and component ids reported in events (one bundled stream,
/// rtcp-mux: one component).
const STREAM_ID: &str = "1";
const COMPONENT_ID: i32 = 1;

#[derive(Default)]
struct Neg {
    /// The state machine until it moves onto its loop.
    rtc: Option<Rtc>,
    pending: Option<SdpPendingOffer>,
    local: Option<String>,
    remote: Option<String>,
    /// Whether the peer is on its loop (negotiation done).
    started: bool,
    /// The negotiation has an SCTP (data channel) section.
    sctp: bool,
    /// Released: the peer left its loop and does not come back.
    left: bool,
    /// Remote candidates given before the remote description.
    queued: usize,
    /// The loop place taken at creation was given back.
    unreserved: bool,
}

struct Link {
    media: MediaState,
    connection: ConnectionState,
    ice: Option<IceComponentState>,
    dtls: Option<DtlsConnectionState>,
    pair: Option<IceCandidatePair>,
}

/// What the loop needs to turn received RTP into pipeline buffers.
#[derive(Default)]
struct Rx {
    /// Negotiated payload types: media type and codec.
    pts: HashMap<u8, (MediaType, Codec)>,
    /// Per media type: the source pad and the payload type of its caps.
    pads: HashMap<MediaType, (gst::Pad, Option<u8>)>,
    video_mid: Option<Mid>,
    /// The negotiated media of each type.
    mids: HashMap<MediaType, Mid>,
    /// The SSRC last received per media type (for stats).
    ssrcs: HashMap<MediaType, u32>,
    /// The loss meter's extended sequence number at the first video packet
    /// (what was expected since: `packetsLost`).
    video_first: Option<u64>,
}

/// The endpoint's candidates: host (UDP, then ICE-TCP), added when
/// gathering starts, on the loop's addresses that `networkInterfaces`
/// names; then server-reflexive (STUN) and relay (TURN), learnt on the
/// loop (see [`relay`]).
#[derive(Default)]
struct Gather {
    /// Gathering started (once per endpoint).
    requested: bool,
    /// STUN/TURN answers still to come: `IceGatheringDone` waits for them.
    pending: usize,
    /// The loop's addresses this endpoint gathers on.
    ips: Vec<IpAddr>,
    /// The candidates (SDP).
    candidates: Vec<String>,
    /// `gatherCandidates` was called; `IceGatheringDone` was raised.
    gathering: bool,
    done_sent: bool,
}

/// REMB both ways (spec §10.6), as on webrtcbin (`webrtc/remb.rs`).
#[derive(Default)]
struct Remb {
    estimator: super::remb::Estimator,
    /// What our video's consumers can take (their `kms-bitrate` wishes).
    consumers: Option<u32>,
    /// The REMB last sent to the remote sender.
    last_sent: Option<u32>,
    /// The REMB the remote receiver of our video last sent.
    remote: Option<u32>,
}

/// One data channel: str0m's id, ours (what the API and events show), its
/// label, and whether it is open.
struct Chan {
    id: str0m::channel::ChannelId,
    kms_id: i32,
    label: String,
    open: bool,
    /// Messages and bytes each way (`getStats`' datachannel records),
    /// counted on the loop thread.
    traffic: Arc<Traffic>,
}

#[derive(Default)]
struct Traffic {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl Traffic {
    fn count(messages: &AtomicU64, bytes: &AtomicU64, len: usize) {
        messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Channels {
    list: Vec<Chan>,
    next_id: i32,
    /// `createDataChannel` calls not yet run on the loop.
    reserved: usize,
    /// The channel that carries our offer's SCTP section (see
    /// `do_generate_offer`).
    placeholder: Option<str0m::channel::ChannelId>,
    /// Channels opened and closed so far (stats).
    opened: i64,
    closed: i64,
}

pub struct NativeEndpoint {
    core: ElementCore,
    use_data_channels: bool,
    /// The `recvonly` / `sendonly` constructor flags: the endpoint's media
    /// go one way only, whatever the peer offers.
    recvonly: bool,
    sendonly: bool,
    channels: Mutex<Channels>,
    /// `maxDataChannels` (0: no limit).
    max_channels: usize,
    /// `maxQueuedIceCandidates` (0: no limit).
    max_queued_candidates: usize,
    slots: Arc<Slots>,
    settings: Mutex<Settings>,
    codecs: sdp::CodecSet,
    lp: Arc<LoopHandle>,
    peer: PeerId,
    /// What `addIceCandidate` gave (to name the selected pair's remote).
    remote_candidates: Mutex<Vec<String>>,
    gather: Mutex<Gather>,
    /// Received video accounting, for the REMB estimate.
    loss: super::remb::LossMeter,
    /// Lost video packets already added to the process-wide counter.
    lost_counted: std::sync::atomic::AtomicU64,
    remb: Mutex<Remb>,
    /// str0m's latest stats events (`getStats`).
    snapshot: Mutex<stats::Snapshot>,
    neg: Mutex<Neg>,
    /// The state machine is on its loop (set once, with `neg.started`):
    /// loop-thread callbacks reach it there without the `neg` lock.
    on_loop: std::sync::atomic::AtomicBool,
    link: Mutex<Link>,
    rx: Mutex<Rx>,
    me: OnceLock<Weak<NativeEndpoint>>,
}

impl NativeEndpoint {
    fn base(&self) -> &ObjectBase {
        self.core.base()
    }

    fn set_media_state(&self, new: MediaState) {
        let old = std::mem::replace(&mut self.link.lock().media, new);
        if old != new {
            self.base().raise(&MediaStateChanged { old_state: old, new_state: new });
        }
    }

    fn set_connection_state(&self, new: ConnectionState) {
        let old = std::mem::replace(&mut self.link.lock().connection, new);
        if old != new {
            self.base().raise(&ConnectionStateChanged { old_state: old, new_state: new });
        }
    }

    fn set_ice_state(&self, s: IceComponentState) {
        let changed = self.link.lock().ice.replace(s) != Some(s);
        if changed {
            self.base().raise(&IceComponentStateChanged {
                stream_id: STREAM_ID.parse().unwrap_or(1),
                component_id: COMPONENT_ID,
                state: s,
            });
        }
    }

    fn set_dtls_state(&self, s: DtlsConnectionState) {
        let changed = self.link.lock().dtls.replace(s) != Some(s);
        self.slots.set_send_open(s == DtlsConnectionState::Connected);
        if changed {
            self.base().raise(&DtlsConnectionStateChange {
                stream_id: STREAM_ID.into(),
                component_id: COMPONENT_ID.to_string(),
                connection_id: self.peer_conn_id(),
                state: s,
            });
        }
    }

    fn peer_conn_id(&self) -> String {
        format!("{:?}", self.peer)
    }

    /// After a description was accepted: what each negotiated media
    /// receives and sends, wired into the pipeline.
    fn wire(&self, rtc: &Rtc, mids: &[(Mid, MediaKind, Direction)]) {
        let params = rtc.codec_config().params().to_vec();
        let mut rx = self.rx.lock();
        for (mid, kind, dir) in mids {
            let Some(media) = rtc.media(*mid) else { continue };
            let t = match kind {
                MediaKind::Audio => MediaType::Audio,
                MediaKind::Video => MediaType::Video,
            };
            if t == MediaType::Video {
                rx.video_mid = Some(*mid);
            }
            rx.mids.entry(t).or_insert(*mid);
            let mut send = vec![];
            for pt in media.remote_pts() {
                let Some(p) = params.iter().find(|p| p.pt() == *pt) else { continue };
                let Some(codec) = kms_codec(p.spec().codec) else { continue };
                rx.pts.insert(**pt, (t, codec));
                send.push(SendFormat {
                    caps: super::sdp::send_caps(codec),
                    pt: **pt,
                    clock_rate: codec.clock_rate() as u32,
                });
            }
            tracing::debug!(id = %self.base().id(), %mid, ?kind, ?dir, pts = ?send.iter().map(|f| f.pt).collect::<Vec<_>>(), "native media");
            if matches!(dir, Direction::SendOnly | Direction::SendRecv) && !send.is_empty() {
                self.wire_send(t, *mid, send);
            }
        }
    }

    /// `kmsrtpinput` → appsink → the loop, for media `t` sent on `mid`.
    fn wire_send(&self, t: MediaType, mid: Mid, formats: Vec<SendFormat>) {
        let Some(input) = self.slots.rtp_input(self.core.bin(), t) else { return };
        input.set_formats(formats, super::random_ssrc());
        let (lp, peer) = (self.lp.clone(), self.peer);
        let sink = gst_app::AppSink::builder()
            .name(format!("native_send_{}", kms_core::element::media_type_name(t)))
            .sync(false)
            .async_(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(list) = sample.buffer_list() {
                            for b in list.iter_owned() {
                                lp.rtp(peer, mid, b);
                            }
                        } else if let Some(b) = sample.buffer_owned() {
                            lp.rtp(peer, mid, b);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        if self.core.bin().add(&sink).is_err() {
            return;
        }
        let _ = sink.sync_state_with_parent();
        if let (Some(src), Some(sinkpad)) = (input.static_pad("src"), sink.static_pad("sink"))
            && let Err(e) = src.link(&sinkpad)
        {
            tracing::warn!(id = %self.base().id(), "native send path not linked: {e:?}");
        }
        // A PLI/FIR from the browser reaches kmsrtpinput as an upstream
        // request (see `on_event`), which asks whoever feeds it.
        if t == MediaType::Video {
            // `maxVideoSendBandwidth` caps what feeds us from the start.
            self.update_send_bitrate();
        }
    }

    /// The bare source pad feeding the output agnosticbin of `t`.
    fn rx_pad(&self, rx: &mut Rx, t: MediaType) -> Option<gst::Pad> {
        if let Some((p, _)) = rx.pads.get(&t) {
            return Some(p.clone());
        }
        let agnostic = self.core.output(t, "default")?;
        let sink = agnostic.static_pad("sink")?;
        let weak = self.me.get().cloned();
        let pad = gst::Pad::builder(gst::PadDirection::Src)
            .name(format!("native_recv_{}", kms_core::element::media_type_name(t)))
            .event_function(move |_, _, ev| {
                let Some(ep) = weak.as_ref().and_then(Weak::upgrade) else { return true };
                if codecs::is_force_key_unit(&ev) {
                    ep.ask_remote_keyframe();
                } else if let Some(s) = ev.structure().filter(|s| s.name() == kms_core::agnosticbin::BITRATE_EVENT)
                    && let Ok(b) = s.get::<u32>("bitrate")
                {
                    ep.remb.lock().consumers = Some(b);
                }
                true
            })
            .build();
        pad.set_active(true).ok()?;
        pad.link(&sink).ok()?;
        let _ = pad.push_event(gst::event::StreamStart::new(&format!("kms-native-{}", self.base().id())));
        rx.pads.insert(t, (pad.clone(), None));
        Some(pad)
    }

    /// A PLI to the remote sender of our received video.
    fn ask_remote_keyframe(&self) {
        let Some(mid) = self.rx.lock().video_mid else { return };
        tracing::trace!(id = %self.base().id(), "PLI asked");
        self.lp.call(
            self.peer,
            Box::new(move |rtc: &mut Rtc| match rtc.direct_api().stream_rx_by_mid(mid, None) {
                Some(rx) => rx.request_keyframe(str0m::media::KeyframeRequestKind::Pli),
                None => tracing::debug!(%mid, "keyframe request before the remote's video stream is known"),
            }),
        );
    }

    /// Once a second on the loop: the REMB for the remote sender of our
    /// received video (the `rembParams` estimate, capped by our consumers
    /// and `[minVideoRecvBandwidth, maxVideoRecvBandwidth]`).
    fn tick(&self, rtc: &mut Rtc) {
        let (mid, first) = {
            let rx = self.rx.lock();
            (rx.video_mid, rx.video_first)
        };
        let Some(mid) = mid else { return };
        let (highest, received) = self.loss.totals();
        if received == 0 {
            return;
        }
        // Received video never seen (sequence gaps) into the process-wide
        // counter, which only grows.
        let lost = first.map_or(0, |f| (highest.saturating_sub(f) + 1).saturating_sub(received));
        kms_core::metrics::RTP.lost_total(&self.lost_counted, lost);
        let (params, range) = {
            let s = self.settings.lock();
            (s.remb.clone(), s.video_recv_range())
        };
        let b = {
            let mut r = self.remb.lock();
            let consumers = r.consumers;
            let b = r.estimator.remb(&params, self.loss.totals(), consumers, range);
            r.last_sent = Some(b);
            tracing::trace!(id = %self.base().id(), consumers = ?consumers, b, "REMB");
            b
        };
        if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_remb(str0m::bwe::Bitrate::bps(b as u64));
        }
    }

    /// What a receiver of our video may be sent (its REMB within
    /// `[minVideoSendBandwidth, maxVideoSendBandwidth]`), as a bitrate wish
    /// upstream of `kmsrtpinput` (the encoder, or the source endpoint).
    fn update_send_bitrate(&self) {
        let range = self.settings.lock().video_send_range();
        let reported = self.remb.lock().remote;
        let Some(b) = super::remb::send_wish(reported, range) else { return };
        if let Some(input) = self.slots.existing_input(MediaType::Video) {
            input.push_bitrate(b);
        }
    }

    /// A candidate of ours as announced: `externalIPv4`/`IPv6` in place of
    /// a host address. str0m keeps the real one: what reaches the external
    /// address arrives on the same socket.
    fn external(&self, candidate: &str) -> String {
        let s = self.settings.lock();
        super::settings::external_candidate(candidate, &s.external_ipv4, &s.external_ipv6)
    }

    /// Our description as KMS writes it: its origin and session name, one
    /// media stream for all our tracks, `b=AS` from the receive limits.
    fn kms_local(&self, text: &str) -> String {
        let (a, v) = {
            let s = self.settings.lock();
            (s.max_audio_recv_bandwidth, s.max_video_recv_bandwidth)
        };
        let text: String = kms_origin_and_msid(text)
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| match l.strip_prefix("a=") {
                Some(c) if c.starts_with("candidate:") => format!("a={}\r\n", self.external(c)),
                _ => format!("{l}\r\n"),
            })
            .collect();
        let text = if super::loss::retransmission_enabled() { text } else { without_rtx(&text) };
        sdp::finish_local(&text, a, v)
    }

    /// One received RTP packet into the pipeline (loop thread).
    fn push_rtp(&self, p: &str0m::rtp::RtpPacket) {
        let pt = *p.header.payload_type;
        let (pad, caps) = {
            let mut rx = self.rx.lock();
            let Some((t, codec)) = rx.pts.get(&pt).copied() else {
                tracing::trace!(id = %self.base().id(), pt, "received RTP of no negotiated payload type");
                return;
            };
            if t == MediaType::Video {
                self.loss.on_packet(*p.header.ssrc, p.header.sequence_number);
                if rx.video_first.is_none() {
                    rx.video_first = Some(self.loss.totals().0);
                }
            }
            rx.ssrcs.insert(t, *p.header.ssrc);
            let Some(pad) = self.rx_pad(&mut rx, t) else { return };
            let entry = rx.pads.get_mut(&t).expect("just made");
            let caps = (entry.1 != Some(pt)).then(|| {
                entry.1 = Some(pt);
                let mut c = codec.rtp_caps();
                c.make_mut().structure_mut(0).expect("one").set("payload", pt as i32);
                c
            });
            (pad, caps)
        };
        if let Some(c) = caps {
            let _ = pad.push_event(gst::event::Caps::new(&c));
            let _ = pad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
        }
        let Ok(mut buf) = gst::Buffer::new_rtp_with_sizes(p.payload.len() as u32, 0, 0) else { return };
        kms_core::metrics::RTP.received(buf.size());
        {
            let b = buf.get_mut().expect("fresh");
            b.set_pts(self.core.bin().current_running_time());
            let Ok(mut w) = gst_rtp::RTPBuffer::from_buffer_writable(b) else { return };
            w.set_payload_type(pt);
            w.set_seq(p.header.sequence_number);
            w.set_timestamp(p.header.timestamp);
            w.set_ssrc(*p.header.ssrc);
            w.set_marker(p.header.marker);
            if let Ok(dst) = w.payload_mut() {
                dst.copy_from_slice(&p.payload);
            }
        }
        if pad.push(buf).is_ok() {
            self.set_media_state(MediaState::Connected);
        }
    }

    fn on_event(&self, ev: Event) {
        match ev {
            Event::IceConnectionStateChange(s) => {
                let state = match s {
                    IceConnectionState::New => IceComponentState::Gathering,
                    IceConnectionState::Checking => IceComponentState::Connecting,
                    IceConnectionState::Connected => IceComponentState::Connected,
                    IceConnectionState::Completed => IceComponentState::Ready,
                    IceConnectionState::Disconnected => IceComponentState::Disconnected,
                };
                // str0m goes back from Completed to Connected while it
                // checks pairs of candidates trickled late; the selected
                // pair keeps working. libnice (KMS) stays READY then.
                let regress =
                    state == IceComponentState::Connected && self.link.lock().ice == Some(IceComponentState::Ready);
                if regress {
                    return;
                }
                self.set_ice_state(state);
                if state == IceComponentState::Disconnected {
                    self.set_connection_state(ConnectionState::Disconnected);
                }
            }
            Event::Connected => {
                self.set_dtls_state(DtlsConnectionState::Connected);
                self.set_connection_state(ConnectionState::Connected);
            }
            Event::RtpPacket(p) => self.push_rtp(&p),
            Event::ChannelOpen(id, label) => self.channel_open(id, label),
            Event::ChannelData(d) => {
                let found = {
                    let ch = self.channels.lock();
                    ch.list.iter().find(|c| c.id == d.id).map(|c| (c.label.clone(), c.traffic.clone()))
                };
                if let Some((label, t)) = found {
                    Traffic::count(&t.messages_received, &t.bytes_received, d.data.len());
                    self.slots.push_data(super::io::data_buffer(&d.data, &label, d.binary));
                }
            }
            Event::ChannelClose(id) => self.channel_closed(id),
            Event::PeerStats(s) => self.snapshot.lock().peer = Some(s),
            Event::MediaIngressStats(s) => {
                self.snapshot.lock().ingress.insert(s.mid, s);
            }
            Event::MediaEgressStats(s) => {
                self.snapshot.lock().egress.insert(s.mid, s);
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Remb { estimate, .. }) => {
                self.remb.lock().remote = Some(estimate.as_u64().min(u32::MAX as u64) as u32);
                self.update_send_bitrate();
            }
            Event::KeyframeRequest(_) => {
                if let Some(i) = self.slots.existing_input(MediaType::Video) {
                    i.request_keyframe();
                }
            }
            _ => {}
        }
    }

    fn channel_open(&self, id: str0m::channel::ChannelId, label: String) {
        if !self.use_data_channels {
            // Not enabled on this endpoint (constructor `useDataChannels`):
            // the peer's channel is closed, as webrtcbin's transport does.
            self.lp.call(self.peer, Box::new(move |rtc: &mut Rtc| rtc.direct_api().close_data_channel(id)));
            return;
        }
        let kms_id = {
            let mut ch = self.channels.lock();
            if ch.placeholder == Some(id) {
                return;
            }
            if let Some(c) = ch.list.iter_mut().find(|c| c.id == id) {
                if c.open {
                    return;
                }
                c.open = true;
                let kms_id = c.kms_id;
                ch.opened += 1;
                kms_id
            } else if self.max_channels > 0 && ch.list.len() + ch.reserved >= self.max_channels {
                // Past `maxDataChannels`: the peer's channel is closed.
                drop(ch);
                tracing::warn!(id = %self.base().id(), "data channel '{label}' closed: maxDataChannels reached");
                self.lp.call(self.peer, Box::new(move |rtc: &mut Rtc| rtc.direct_api().close_data_channel(id)));
                return;
            } else {
                let kms_id = ch.next_id;
                ch.next_id += 1;
                ch.list.push(Chan { id, kms_id, label, open: true, traffic: Arc::default() });
                ch.opened += 1;
                kms_id
            }
        };
        self.base().raise(&DataChannelOpened { channel_id: kms_id });
    }

    fn channel_closed(&self, id: str0m::channel::ChannelId) {
        let kms_id = {
            let mut ch = self.channels.lock();
            let Some(pos) = ch.list.iter().position(|c| c.id == id) else { return };
            ch.closed += 1;
            ch.list.remove(pos).kms_id
        };
        self.base().raise(&DataChannelClosed { channel_id: kms_id });
    }

    /// A DATA buffer from the pipeline: on the open channel with its label,
    /// else on the first open one (as on webrtcbin).
    fn send_data(&self, buf: &gst::Buffer) {
        let (label, binary) = super::io::data_info(buf);
        let id = {
            let ch = self.channels.lock();
            ch.list
                .iter()
                .find(|c| c.open && label.is_some() && Some(&c.label) == label.as_ref())
                .or_else(|| ch.list.iter().find(|c| c.open))
                .map(|c| (c.id, c.traffic.clone()))
        };
        let (Some((id, traffic)), Ok(map)) = (id, buf.map_readable()) else { return };
        let bytes = map.as_slice().to_vec();
        self.lp.call(
            self.peer,
            Box::new(move |rtc: &mut Rtc| {
                let Some(mut c) = rtc.channel(id) else { return };
                if matches!(c.write(binary, &bytes), Ok(true)) {
                    Traffic::count(&traffic.messages_sent, &traffic.bytes_sent, bytes.len());
                } else {
                    tracing::debug!("data channel message not sent (buffer full or channel closing)");
                }
            }),
        );
    }

    /// The selected pair: our candidate on `local`, the remote's on
    /// `remote` (as it sent it, else peer-reflexive), both of `proto` (a
    /// TCP and a UDP candidate may share an address).
    fn on_route(&self, proto: Protocol, local: std::net::SocketAddr, remote: std::net::SocketAddr) {
        let is = |c: &String, at: std::net::SocketAddr| candidate_route(c) == Some((proto, at));
        let ours = self.gather.lock().candidates.iter().find(|c| is(c, local)).cloned();
        let theirs = self.remote_candidates.lock().iter().find(|c| is(c, remote)).cloned();
        let (name, tcptype) = match proto {
            Protocol::Udp => ("udp", ("", "")),
            _ => ("tcp", (" tcptype passive", " tcptype active")),
        };
        let pair = IceCandidatePair {
            stream_id: STREAM_ID.into(),
            component_id: COMPONENT_ID,
            local_candidate: ours.unwrap_or_else(|| {
                format!("candidate:1 1 {name} 2130706431 {} {} typ host{}", local.ip(), local.port(), tcptype.0)
            }),
            remote_candidate: theirs.unwrap_or_else(|| {
                format!("candidate:1 1 {name} 1845501695 {} {} typ prflx{}", remote.ip(), remote.port(), tcptype.1)
            }),
        };
        let changed = self.link.lock().pair.replace(pair.clone()).as_ref() != Some(&pair);
        if changed {
            self.base().raise(&NewCandidatePairSelected { candidate_pair: pair });
        }
    }

    fn on_failed(&self, why: &str) {
        self.base().raise(&ErrorEvent {
            description: format!("WebRTC transport closed: {why}"),
            error_code: kms_jsonrpc::error::codes::MEDIA_OBJECT_NOT_AVAILABLE as i32,
            r#type: "NETWORK_ERROR".into(),
        });
        self.slots.set_send_open(false);
        self.set_dtls_state(DtlsConnectionState::Failed);
        self.set_ice_state(IceComponentState::Failed);
        self.set_connection_state(ConnectionState::Disconnected);
        self.set_media_state(MediaState::Disconnected);
    }

    /// Moves the negotiated state machine onto its loop.
    fn start(&self, neg: &mut Neg, rtc: Rtc) {
        let handler: Arc<dyn PeerHandler> = Arc::new(Handler(self.me.get().cloned().unwrap_or_default()));
        let dscp = self.settings.lock().qos_dscp;
        self.lp.add(self.peer, rtc, handler, dscp);
        neg.started = true;
        self.on_loop.store(true, std::sync::atomic::Ordering::Release);
    }

    fn do_process_offer(&self, offer: String) -> Result<String> {
        self.ensure_gathering();
        let mut neg = self.neg.lock();
        if neg.started || neg.left || neg.pending.is_some() {
            return Err(err(sdp::SDP_END_POINT_ALREADY_NEGOTIATED, "Endpoint already negotiated"));
        }
        let msg = sdp::parse(&offer, "offer")?;
        self.note_tcp_passive(&offer);
        if msg.medias_len() == 0 {
            return Err(err(sdp::SDP_END_POINT_PROCESS_OFFER_ERROR, "Offer has no media"));
        }
        let sections = sdp::plan_offer(&msg, &self.codecs, self.use_data_channels);
        if !sections.iter().any(|s| s.accepted) {
            // Nothing we can take (plain RTP/AVP, no DTLS): answered as KMS
            // does, every section rejected; no transport is started.
            let session_id = (u64::from(gst::glib::random_int()) << 31) | u64::from(gst::glib::random_int() >> 1);
            let text = sdp::answer_rejecting_all(&msg, session_id);
            neg.local = Some(text.clone());
            neg.remote = Some(offer);
            neg.left = true;
            return Ok(text);
        }
        // Sections we reject (plain RTP, codecs we do not take, data
        // without `useDataChannels`) are kept from str0m and put back into
        // its answer, rejected, in the offer's order.
        let rejects = sections.iter().any(|s| !s.accepted);
        let for_str0m = if rejects { sdp::without_rejected(&offer, &sections) } else { offer.clone() };
        let for_str0m = if self.recvonly || self.sendonly {
            // `recvonly` wins when both are set, as on webrtcbin.
            sdp::narrow_offer_directions(&for_str0m, self.recvonly || !self.sendonly, !self.recvonly)
        } else {
            for_str0m
        };
        let parsed = SdpOffer::from_sdp_string(&for_str0m)
            .map_err(|e| err(sdp::SDP_PARSE_ERROR, format!("Error parsing SDP offer: {e}")))?;
        let mut rtc = neg.rtc.take().ok_or_else(|| err(sdp::SDP_END_POINT_PROCESS_OFFER_ERROR, "No transport"))?;
        let answer = match rtc.sdp_api().accept_offer(parsed) {
            Ok(a) => a,
            Err(e) => {
                neg.rtc = Some(rtc);
                return Err(err(sdp::SDP_END_POINT_PROCESS_OFFER_ERROR, format!("Cannot process offer: {e}")));
            }
        };
        let text = sdp::formats_in_offer_order(&self.kms_local(&answer.to_sdp_string()), &msg);
        let mids = sdp_medias(&text, true);
        let text = if rejects { sdp::with_rejected(&text, &msg, &sections) } else { text };
        self.wire(&rtc, &mids);
        neg.sctp = has_sctp(&text);
        neg.local = Some(text.clone());
        neg.remote = Some(offer);
        self.start(&mut neg, rtc);
        tracing::info!(id = %self.base().id(), medias = mids.len(), "processOffer (native)");
        Ok(text)
    }

    /// `audio`/`video`: `OfferOptions.offerToReceiveAudio/Video`; false
    /// leaves that media out of the offer (as on webrtcbin).
    fn do_generate_offer(&self, audio: bool, video: bool) -> Result<String> {
        self.ensure_gathering();
        let mut neg = self.neg.lock();
        if neg.started || neg.left || neg.pending.is_some() {
            return Err(err(sdp::SDP_END_POINT_ALREADY_NEGOTIATED, "Endpoint already negotiated"));
        }
        let rtc = neg.rtc.as_mut().ok_or_else(|| err(sdp::SDP_END_POINT_GENERATE_OFFER_ERROR, "No transport"))?;
        let dir = if self.recvonly {
            Direction::RecvOnly
        } else if self.sendonly {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let mut api = rtc.sdp_api();
        if audio {
            api.add_media(MediaKind::Audio, dir, None, None, None);
        }
        if video {
            api.add_media(MediaKind::Video, dir, None, None, None);
        }
        if self.use_data_channels {
            // str0m writes the SCTP section only with a channel in it: a
            // pre-negotiated one of ours (no DCEP, so the peer never sees
            // it), never reported nor used for messages.
            let id = api.add_channel_with_config(str0m::channel::ChannelConfig {
                label: "kms-sctp".into(),
                negotiated: Some(1023),
                ..Default::default()
            });
            self.channels.lock().placeholder = Some(id);
        }
        let (offer, pending) =
            api.apply().ok_or_else(|| err(sdp::SDP_END_POINT_GENERATE_OFFER_ERROR, "Nothing to offer"))?;
        let text = self.kms_local(&offer.to_sdp_string());
        neg.pending = Some(pending);
        neg.local = Some(text.clone());
        Ok(text)
    }

    fn do_process_answer(&self, answer: String) -> Result<String> {
        let mut neg = self.neg.lock();
        if neg.started || neg.left {
            return Err(err(sdp::SDP_END_POINT_ANSWER_ALREADY_PROCCESED, "Answer already processed"));
        }
        let Some(pending) = neg.pending.take() else {
            return Err(err(sdp::SDP_END_POINT_NOT_OFFER_GENERATED, "No offer generated"));
        };
        sdp::parse(&answer, "answer")?;
        self.note_tcp_passive(&answer);
        let parsed = SdpAnswer::from_sdp_string(&answer)
            .map_err(|e| err(sdp::SDP_PARSE_ERROR, format!("Error parsing SDP answer: {e}")))?;
        let mut rtc = neg.rtc.take().ok_or_else(|| err(sdp::SDP_END_POINT_PROCESS_ANSWER_ERROR, "No transport"))?;
        if let Err(e) = rtc.sdp_api().accept_answer(pending, parsed) {
            neg.rtc = Some(rtc);
            return Err(err(sdp::SDP_END_POINT_PROCESS_ANSWER_ERROR, format!("Cannot process answer: {e}")));
        }
        let mids = sdp_medias(&answer, false);
        self.wire(&rtc, &mids);
        neg.sctp = has_sctp(&answer);
        neg.remote = Some(answer);
        let local = neg.local.clone().unwrap_or_default();
        self.start(&mut neg, rtc);
        Ok(local)
    }

    /// The passive ICE-TCP candidates a remote description carries, for the
    /// loop to connect to (str0m reads the description's candidates
    /// itself).
    fn note_tcp_passive(&self, desc: &str) {
        for line in desc.lines().filter_map(|l| l.trim().strip_prefix("a=")).filter(|l| l.starts_with("candidate:")) {
            if let Ok(c) = Candidate::from_sdp_string(line)
                && c.proto() == Protocol::Tcp
                && matches!(c.tcptype(), Some(TcpType::Passive | TcpType::So))
            {
                self.lp.tcp_passive(self.peer, c.addr());
            }
        }
    }

    fn do_add_ice_candidate(&self, c: IceCandidate) -> Result<()> {
        let text = c.candidate.trim();
        if text.is_empty() {
            // End of candidates.
            return Ok(());
        }
        if !sdp::candidate_is_valid(text) {
            return Err(err(40401, format!("Invalid ICE candidate: {text}")));
        }
        {
            // Which media line it is for (spec §10.7): its mid, else its
            // index, must name one of the description's.
            let neg = self.neg.lock();
            if let Some(desc) = neg.remote.as_deref().or(neg.local.as_deref()) {
                let mids: Vec<&str> = desc.lines().filter_map(|l| l.trim().strip_prefix("a=mid:")).collect();
                let lines = desc.lines().filter(|l| l.starts_with("m=")).count();
                let by_mid = !c.sdp_mid.is_empty() && mids.contains(&c.sdp_mid.as_str());
                if !by_mid && (c.sdp_m_line_index < 0 || c.sdp_m_line_index as usize >= lines) {
                    return Err(err(
                        40401,
                        format!("Invalid ICE candidate: no media line '{}' ({})", c.sdp_mid, c.sdp_m_line_index),
                    ));
                }
            }
        }
        let body = text.strip_prefix("a=").unwrap_or(text);
        let cand = match Candidate::from_sdp_string(body) {
            Ok(c) => c,
            Err(e) => {
                // mDNS (`.local`) names: nothing this
                // transport can reach; the peer-reflexive path still works.
                tracing::debug!(id = %self.base().id(), "remote candidate ignored ({e}): {body}");
                return Ok(());
            }
        };
        {
            let mut known = self.remote_candidates.lock();
            if known.len() < 64 {
                known.push(body.to_owned());
            }
        }
        if cand.proto() != Protocol::Udp {
            // A remote active TCP candidate (a browser's, port 9) is not
            // reachable: its connection to our passive one makes a
            // peer-reflexive candidate. A passive one our active candidate
            // connects to.
            if !matches!(cand.tcptype(), Some(TcpType::Passive | TcpType::So)) {
                tracing::debug!(id = %self.base().id(), "remote TCP candidate not paired: {body}");
                return Ok(());
            }
            self.lp.tcp_passive(self.peer, cand.addr());
        }
        let mut neg = self.neg.lock();
        if neg.remote.is_none() {
            // Before the remote description candidates wait in the state
            // machine: bounded like webrtcbin's queue.
            let max = self.max_queued_candidates;
            if max > 0 && neg.queued >= max {
                return Err(Error::NotEnoughResources(format!(
                    "Reached queued-ICE-candidates limit: {max} (maxQueuedIceCandidates); remote candidates are \
                     kept until the remote description is set"
                )));
            }
            neg.queued += 1;
        }
        if let Some(rtc) = neg.rtc.as_mut() {
            rtc.add_remote_candidate(cand);
        } else {
            self.lp.call(self.peer, Box::new(move |rtc: &mut Rtc| rtc.add_remote_candidate(cand)));
        }
        Ok(())
    }

    fn do_gather_candidates(&self) -> Result<()> {
        self.set_ice_state(IceComponentState::Gathering);
        let mid = self.local_mid();
        self.ensure_gathering();
        // Server-reflexive and relay candidates, and `IceGatheringDone`,
        // wait for the STUN/TURN answers under way (see `gathered`). Raised
        // under the lock `gathered` takes on the loop, so that no candidate
        // can follow `IceGatheringDone`.
        let mut g = self.gather.lock();
        g.gathering = true;
        for c in g.candidates.clone() {
            self.raise_candidate(c, &mid);
        }
        if g.pending == 0 && !std::mem::replace(&mut g.done_sent, true) {
            self.base().raise(&IceGatheringDone {});
        }
        Ok(())
    }

    fn raise_candidate(&self, candidate: String, mid: &str) {
        let candidate = self.external(&candidate);
        self.base().raise(&IceCandidateFound {
            candidate: IceCandidate { candidate, sdp_mid: mid.to_owned(), sdp_m_line_index: 0 },
        });
    }

    fn local_mid(&self) -> String {
        self.neg.lock().local.as_deref().and_then(first_mid).unwrap_or_else(|| "0".into())
    }

    /// Asks the loop for the STUN server's view of our sockets and a TURN
    /// allocation, when configured (once; at the first negotiation step or
    /// `gatherCandidates`, as KMS gathers).
    fn ensure_gathering(&self) {
        let (stun, turn, ice_tcp, names) = {
            let s = self.settings.lock();
            (stun_server(&s), s.turn_url.clone(), s.ice_tcp, s.network_interfaces.clone())
        };
        let turn = match relay::parse_turn_url(&turn) {
            Ok(t) => t,
            Err(why) => {
                tracing::warn!(id = %self.base().id(), "turnURL not used: {why}");
                None
            }
        };
        {
            let mut g = self.gather.lock();
            if std::mem::replace(&mut g.requested, true) {
                return;
            }
            g.pending = usize::from(stun.is_some()) + usize::from(turn.is_some());
            g.ips = endpoint_ips(&self.lp.addrs, &names, &interfaces());
        }
        // Host candidates on the loop's sockets, on the addresses
        // `networkInterfaces` names as it is now; passive ICE-TCP beside
        // them with `iceTcp` as it is now (KMS reads both when gathering
        // starts too).
        let ips = self.gather.lock().ips.clone();
        let udp =
            self.lp.addrs.iter().filter(|a| ips.contains(&a.ip())).filter_map(|a| Candidate::host(*a, "udp").ok());
        let tcp_ips: Vec<std::net::IpAddr> =
            self.lp.tcp_addrs.iter().map(|a| a.ip()).filter(|ip| ice_tcp && ips.contains(ip)).collect();
        let tcp = self
            .lp
            .tcp_addrs
            .iter()
            .filter(|a| tcp_ips.contains(&a.ip()))
            .filter_map(|a| Candidate::builder().tcp().host(*a).tcptype(TcpType::Passive).build().ok());
        // Active ones beside them (port 9, as libnice announces them): our
        // checks from these connect out to the remote's passive candidates.
        let active = tcp_ips.iter().filter_map(|ip| {
            let addr = std::net::SocketAddr::new(*ip, net::ACTIVE_TCP_PORT);
            Candidate::builder().tcp().host(addr).tcptype(TcpType::Active).build().ok()
        });
        let hosts: Vec<String> = udp.chain(tcp).chain(active).filter_map(|c| self.add_local(c)).collect();
        self.gather.lock().candidates.splice(0..0, hosts);
        let handler = || -> Arc<dyn PeerHandler> { Arc::new(Handler(self.me.get().cloned().unwrap_or_default())) };
        if let Some(server) = stun {
            self.lp.stun(server, handler());
        }
        if let Some(server) = turn {
            self.lp.relay(self.peer, server, handler());
        }
    }

    /// A local candidate for the state machine, wherever it is now; its SDP
    /// unless str0m finds it redundant.
    ///
    /// Called on the loop thread (STUN/TURN answers). Once the state machine
    /// is on its loop, the negotiation lock is not taken: an RPC may hold
    /// it for a while (wiring pads), and the loop would stall every peer
    /// meanwhile. Before that, the state machine is in `neg`, which only
    /// the lock reaches.
    fn add_local(&self, cand: Candidate) -> Option<String> {
        let to_loop = |cand: Candidate| {
            let text = cand.to_sdp_string();
            self.lp.call(
                self.peer,
                Box::new(move |rtc: &mut Rtc| {
                    rtc.add_local_candidate(cand);
                }),
            );
            Some(text)
        };
        if self.on_loop.load(std::sync::atomic::Ordering::Acquire) {
            return to_loop(cand);
        }
        let mut neg = self.neg.lock();
        match neg.rtc.as_mut() {
            Some(rtc) => rtc.add_local_candidate(cand).map(|c| c.to_sdp_string()),
            None => to_loop(cand),
        }
    }

    /// One STUN/TURN answer in: its candidates go to the client if
    /// gathering was asked; the last one ends gathering.
    fn gathered(&self, found: Vec<String>) {
        let mid = self.local_mid();
        // Raised under the lock (see `do_gather_candidates`).
        let mut g = self.gather.lock();
        g.pending = g.pending.saturating_sub(1);
        g.candidates.extend(found.iter().cloned());
        if g.gathering {
            for c in found {
                self.raise_candidate(c, &mid);
            }
            if g.pending == 0 && !std::mem::replace(&mut g.done_sent, true) {
                self.base().raise(&IceGatheringDone {});
            }
        }
    }

    /// The allocation is ready: a `relay` candidate.
    fn on_relay(&self, relayed: std::net::SocketAddr, local: std::net::SocketAddr) {
        let text = match Candidate::relayed(relayed, local, "udp") {
            Ok(c) => self.add_local(c),
            Err(e) => {
                tracing::warn!(id = %self.base().id(), "relay candidate refused: {e}");
                None
            }
        };
        tracing::info!(id = %self.base().id(), %relayed, "TURN relay candidate");
        self.gathered(text.into_iter().collect());
    }

    /// No relay (refused, unreachable, closed): gathering ends without it.
    fn on_relay_failed(&self, why: &str) {
        tracing::warn!(id = %self.base().id(), "no TURN relay candidate: {why}");
        self.gathered(vec![]);
    }

    /// The STUN server's answers: `srflx` candidates, but where the mapped
    /// address is the socket's own (no NAT in between: redundant).
    fn on_reflexive(&self, found: Vec<(std::net::SocketAddr, std::net::SocketAddr)>) {
        let ips = self.gather.lock().ips.clone();
        let texts = found
            .into_iter()
            .filter(|(mapped, base)| mapped != base && ips.contains(&base.ip()))
            .filter_map(|(mapped, base)| Candidate::server_reflexive(mapped, base, "udp").ok())
            .filter_map(|c| self.add_local(c))
            .collect();
        self.gathered(texts);
    }
}

/// The configured STUN server (`stunServerAddress`, an IP as in KMS, and
/// `stunServerPort`).
fn stun_server(s: &Settings) -> Option<std::net::SocketAddr> {
    let ip: IpAddr = s.stun_server_address.trim().parse().ok()?;
    let port = u16::try_from(s.stun_server_port).ok().filter(|p| *p != 0)?;
    Some(std::net::SocketAddr::new(ip, port))
}

/// str0m's description with KMS's origin (`o=- …`) and all our tracks in
/// one media stream: str0m names the stream of an answered track after the
/// offer's (`-` for a receive-only browser), which leaves the browser's
/// audio and video in different streams, and kurento-utils shows the first.
fn kms_origin_and_msid(text: &str) -> String {
    let stream = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=msid:").and_then(|r| r.split(' ').next()).filter(|s| *s != "-"))
        .map_or_else(|| "kurento".to_owned(), str::to_owned);
    let mut out = String::with_capacity(text.len());
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fixed = if let Some(rest) = line.strip_prefix("o=") {
            format!("o=-{}", rest.find(' ').map_or("", |i| &rest[i..]))
        } else if line.starts_with("a=msid-semantic:") {
            format!("a=msid-semantic: WMS {stream}")
        } else if let Some(rest) = line.strip_prefix("a=msid:") {
            format!("a=msid:{stream} {}", rest.split_once(' ').map_or("", |(_, t)| t))
        } else if let Some((ssrc, rest)) = line.strip_prefix("a=ssrc:").and_then(|r| r.split_once(" msid:")) {
            format!("a=ssrc:{ssrc} msid:{stream} {}", rest.split_once(' ').map_or("", |(_, t)| t))
        } else {
            line.to_owned()
        };
        out.push_str(&fixed);
        out.push_str("\r\n");
    }
    out
}

/// A description without retransmission payload types (`rtx`) and the
/// `nack` feedback (`KMS_NO_RETRANSMISSION=1`): str0m answers the rtx an
/// offer pairs with a codec it takes even when we configured none.
fn without_rtx(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).collect();
    let rtx: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter(|r| r.split(' ').nth(1).is_some_and(|e| e.to_ascii_lowercase().starts_with("rtx/")))
        .filter_map(|r| r.split(' ').next())
        .collect();
    // The retransmission SSRC of each `FID` group.
    let rtx_ssrcs: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("a=ssrc-group:FID ")).filter_map(|r| r.split(' ').nth(1)).collect();
    let of_rtx = |l: &str| {
        if let Some(ssrc) = l.strip_prefix("a=ssrc:").and_then(|r| r.split(' ').next()) {
            return rtx_ssrcs.contains(&ssrc);
        }
        ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
            .iter()
            .any(|k| l.strip_prefix(k).and_then(|r| r.split(' ').next()).is_some_and(|pt| rtx.contains(&pt)))
    };
    let mut out = String::with_capacity(text.len());
    for l in lines {
        if of_rtx(l) || (l.starts_with("a=rtcp-fb:") && l.ends_with(" nack")) || l.starts_with("a=ssrc-group:FID") {
            continue;
        }
        if l.starts_with("m=") {
            let mut f: Vec<&str> = l.split(' ').collect();
            if f.len() > 3 {
                let keep: Vec<&str> = f.split_off(3).into_iter().filter(|pt| !rtx.contains(pt)).collect();
                f.extend(keep);
            }
            out.push_str(&f.join(" "));
        } else {
            out.push_str(l);
        }
        out.push_str("\r\n");
    }
    out
}

/// The transport and address of an SDP candidate line
/// (`candidate:f c proto prio ip port typ …`).
fn candidate_route(c: &str) -> Option<(Protocol, std::net::SocketAddr)> {
    let mut f = c.split_whitespace();
    let proto = match f.nth(2)? {
        p if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
        p if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        _ => return None,
    };
    let ip: IpAddr = f.nth(1)?.parse().ok()?;
    let port: u16 = f.next()?.parse().ok()?;
    Some((proto, std::net::SocketAddr::new(ip, port)))
}

/// Whether a description accepts an SCTP (data channel) section.
fn has_sctp(sdp: &str) -> bool {
    sdp.lines().any(|l| l.starts_with("m=application") && l.split(' ').nth(1) != Some("0"))
}

/// The first `a=mid:` of a description.
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=mid:").map(str::to_owned))
}

/// The audio/video sections of a description: mid, kind and the
/// direction from our side (`ours`: the description is ours; else it is
/// the remote's answer, whose direction is the mirror of ours). str0m only
/// announces media once SRTP is up, too late to wire the pipeline.
fn sdp_medias(text: &str, ours: bool) -> Vec<(Mid, MediaKind, Direction)> {
    let mut out: Vec<(Option<Mid>, MediaKind, Direction)> = vec![];
    for line in text.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let kind = match m.split(' ').next() {
                Some("audio") => MediaKind::Audio,
                Some("video") => MediaKind::Video,
                _ => {
                    out.push((None, MediaKind::Audio, Direction::Inactive));
                    continue;
                }
            };
            // A rejected section (port 0) carries nothing.
            let dir = if m.split(' ').nth(1) == Some("0") { Direction::Inactive } else { Direction::SendRecv };
            out.push((Some(Mid::from("")), kind, dir));
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if last.0.is_none() {
            continue;
        }
        if let Some(mid) = line.strip_prefix("a=mid:") {
            last.0 = Some(Mid::from(mid));
        } else if last.2 != Direction::Inactive {
            let d = match line {
                "a=sendrecv" => Some(Direction::SendRecv),
                "a=sendonly" => Some(if ours { Direction::SendOnly } else { Direction::RecvOnly }),
                "a=recvonly" => Some(if ours { Direction::RecvOnly } else { Direction::SendOnly }),
                "a=inactive" => Some(Direction::Inactive),
                _ => None,
            };
            if let Some(d) = d {
                last.2 = d;
            }
        }
    }
    out.into_iter().filter_map(|(mid, k, d)| Some((mid?, k, d))).filter(|(_, _, d)| *d != Direction::Inactive).collect()
}

fn kms_codec(c: str0m::format::Codec) -> Option<Codec> {
    use str0m::format::Codec as S;
    match c {
        S::Opus => Some(Codec::Opus),
        S::Vp8 => Some(Codec::Vp8),
        S::Vp9 => Some(Codec::Vp9),
        S::H264 => Some(Codec::H264),
        S::PCMU => Some(Codec::Pcmu),
        S::PCMA => Some(Codec::Pcma),
        _ => None,
    }
}

/// The addresses the pool gathers on: the machine's IPv4 interfaces but
/// loopback, or those `networkInterfaces` names; and 127.0.0.1 when
/// `iceLoopback`.
fn local_ips(settings: &Settings) -> Vec<IpAddr> {
    let wanted = super::settings::interface_names(&settings.network_interfaces);
    let mut ips = vec![];
    for (name, ip) in interfaces() {
        // Loopback only when named (`networkInterfaces=lo`) or asked for.
        let take = if wanted.is_empty() { !ip.is_loopback() } else { wanted.contains(&name.as_str()) };
        if !take {
            continue;
        }
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let lo = IpAddr::from([127, 0, 0, 1]);
    if settings.ice_loopback && !ips.contains(&lo) {
        ips.insert(0, lo);
    }
    ips
}

/// The loop addresses' IPs an endpoint gathers on: all, or those of the
/// interfaces `names` lists (comma-separated, as KMS's).
fn endpoint_ips(loop_addrs: &[std::net::SocketAddr], names: &str, ifaces: &[(String, IpAddr)]) -> Vec<IpAddr> {
    let wanted = super::settings::interface_names(names);
    let mut ips: Vec<IpAddr> = loop_addrs.iter().map(|a| a.ip()).collect();
    ips.dedup();
    if !wanted.is_empty() {
        ips.retain(|ip| ifaces.iter().any(|(n, i)| i == ip && wanted.contains(&n.as_str())));
    }
    ips
}

/// IPv4 addresses of the interfaces that are up (getifaddrs).
fn interfaces() -> Vec<(String, IpAddr)> {
    let mut out = vec![];
    // SAFETY: getifaddrs fills a linked list we only read and then free.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET
                && ifa.ifa_flags & libc::IFF_UP as u32 != 0
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
                out.push((name, ip));
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The loop's view of its endpoint.
struct Handler(Weak<NativeEndpoint>);

impl PeerHandler for Handler {
    fn on_event(&self, ev: Event) {
        if let Some(ep) = self.0.upgrade() {
            ep.on_event(ev);
        }
    }

    fn on_failed(&self, why: &str) {
        if let Some(ep) = self.0.upgrade() {
            ep.on_failed(why);
        }
    }

    fn on_route(&self, proto: Protocol, local: std::net::SocketAddr, remote: std::net::SocketAddr) {
        if let Some(ep) = self.0.upgrade() {
            ep.on_route(proto, local, remote);
        }
    }

    fn mid_for_pt(&self, pt: u8) -> Option<Mid> {
        let ep = self.0.upgrade()?;
        let rx = ep.rx.lock();
        let (t, _) = rx.pts.get(&pt)?;
        rx.mids.get(t).copied()
    }

    fn on_relay(&self, relayed: std::net::SocketAddr, local: std::net::SocketAddr) {
        if let Some(ep) = self.0.upgrade() {
            ep.on_relay(relayed, local);
        }
    }

    fn on_relay_failed(&self, why: &str) {
        if let Some(ep) = self.0.upgrade() {
            ep.on_relay_failed(why);
        }
    }

    fn on_reflexive(&self, found: Vec<(std::net::SocketAddr, std::net::SocketAddr)>) {
        if let Some(ep) = self.0.upgrade() {
            ep.on_reflexive(found);
        }
    }

    fn on_tick(&self, rtc: &mut Rtc) {
        if let Some(ep) = self.0.upgrade() {
            ep.tick(rtc);
        }
    }
}

impl NativeEndpoint {
    /// Off the loop, once (release, then drop; or drop alone).
    fn leave_loop(&self) {
        let mut neg = self.neg.lock();
        if !std::mem::replace(&mut neg.unreserved, true) {
            self.lp.unreserve();
        }
        let relayed = self.gather.lock().requested;
        if std::mem::take(&mut neg.started) {
            neg.left = true;
            self.lp.remove(self.peer);
        } else if relayed && !std::mem::replace(&mut neg.left, true) {
            // Never started, but a TURN allocation may be on the loop.
            self.lp.remove(self.peer);
        }
    }
}

impl Drop for NativeEndpoint {
    fn drop(&mut self) {
        self.leave_loop();
    }
}

impl RemoteObject for NativeEndpoint {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        // Off the loop first: nothing is pushed into a bin going away.
        self.leave_loop();
        self.core.release();
    }

    fn metric_states(&self) -> Vec<kms_core::metrics::MetricState> {
        let link = self.link.lock();
        let name = |s: Option<String>| s.map_or_else(|| "NONE".to_owned(), |s| s.to_uppercase());
        vec![("ice", name(link.ice.map(|s| format!("{s:?}")))), ("dtls", name(link.dtls.map(|s| format!("{s:?}"))))]
    }
}

impl ElementObject for NativeEndpoint {
    fn core(&self) -> &ElementCore {
        &self.core
    }

    fn extra_stats(&self, media_type: Option<MediaType>) -> Vec<(String, kms_core::rt::Polymorphic)> {
        let (kinds, rx_ssrc, first) = {
            let rx = self.rx.lock();
            (rx.mids.iter().map(|(t, m)| (*m, *t)).collect::<HashMap<_, _>>(), rx.ssrcs.clone(), rx.video_first)
        };
        let (highest, received) = self.loss.totals();
        let expected = first.map_or(0, |f| highest.saturating_sub(f) + 1);
        let tx_ssrc: HashMap<MediaType, u32> = [MediaType::Audio, MediaType::Video]
            .into_iter()
            .filter_map(|t| self.slots.existing_input(t).map(|i| (t, i.ssrc())))
            .collect();
        let (remb_sent, remb_received) = {
            let r = self.remb.lock();
            (r.last_sent.unwrap_or(0), r.remote.unwrap_or(0))
        };
        let (pair, ice) = {
            let link = self.link.lock();
            (link.pair.clone(), link.ice)
        };
        let (opened, closed, channels) = {
            let ch = self.channels.lock();
            let load = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let list = ch
                .list
                .iter()
                .filter(|c| c.open)
                .map(|c| {
                    let t = &c.traffic;
                    (
                        c.kms_id,
                        c.label.clone(),
                        String::new(),
                        true,
                        load(&t.messages_sent),
                        load(&t.bytes_sent),
                        load(&t.messages_received),
                        load(&t.bytes_received),
                    )
                })
                .collect::<Vec<_>>();
            (ch.opened, ch.closed, list)
        };
        let facts = stats::Facts {
            kinds: &kinds,
            rx_ssrc: &rx_ssrc,
            tx_ssrc: &tx_ssrc,
            video_totals: (expected, received),
            remb_sent,
            remb_received,
            pair: pair.as_ref(),
            ice,
            channels_opened: opened,
            channels_closed: closed,
            channels,
        };
        stats::collect(&self.snapshot.lock(), &facts, media_type)
    }

    fn element_stats(&self, timestamp_millis: i64) -> kms_core::rt::Polymorphic {
        self.core.endpoint_stats(timestamp_millis)
    }
}

impl Endpoint for NativeEndpoint {}
impl SessionEndpoint for NativeEndpoint {}

impl SdpEndpoint for NativeEndpoint {
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
        let (audio, video) = options.map_or((true, true), |o| (o.offer_to_receive_audio, o.offer_to_receive_video));
        self.do_generate_offer(audio, video)
    }

    fn process_offer(&self, _ctx: &Ctx, offer: String) -> Result<String> {
        self.do_process_offer(offer)
    }

    fn process_answer(&self, _ctx: &Ctx, answer: String) -> Result<String> {
        self.do_process_answer(answer)
    }

    fn get_local_session_descriptor(&self, _ctx: &Ctx) -> Result<String> {
        self.neg.lock().local.clone().ok_or_else(|| err(sdp::SDP_END_POINT_NO_LOCAL_SDP_ERROR, "No local SDP"))
    }

    fn get_remote_session_descriptor(&self, _ctx: &Ctx) -> Result<String> {
        self.neg.lock().remote.clone().ok_or_else(|| err(sdp::SDP_END_POINT_NO_REMOTE_SDP_ERROR, "No remote SDP"))
    }
}

/// What str0m adds to each packet we hand it: RTP header extensions (mid,
/// abs-send-time, their header) and, for a retransmission, the RTX
/// original sequence number. Measured at 28 bytes; SRTP's tag is outside
/// the MTU as on webrtcbin.
const STR0M_OVERHEAD: i32 = 32;

/// The MTU our payloaders get, so that the datagrams str0m sends stay
/// within an `mtu` set below the default. At the default (1200) and above
/// it is left as is: a smaller one would make every forwarded stream be
/// re-payloaded (producers send up to 1200 bytes), which costs a branch of
/// threads per session; those datagrams may then exceed 1200 by str0m's
/// header extensions, as a browser's own do.
fn payload_mtu(mtu: i32) -> u32 {
    if mtu >= DEFAULT_MTU { mtu as u32 } else { (mtu - STR0M_OVERHEAD).max(200) as u32 }
}

/// KMS's default `mtu`, the largest packet producers are expected to send.
const DEFAULT_MTU: i32 = 1200;

/// The explicit answer for what stage 1 does not do yet.
fn not_yet(what: &str) -> Error {
    Error::NotImplemented(format!("{what} is not supported by the native WebRTC transport yet (transport=webrtcbin)"))
}

impl BaseRtpEndpoint for NativeEndpoint {
    fn get_min_video_recv_bandwidth(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().min_video_recv_bandwidth)
    }

    fn set_min_video_recv_bandwidth(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.settings.lock().min_video_recv_bandwidth = value.max(0);
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
        Ok(self.link.lock().media)
    }

    fn get_connection_state(&self, _ctx: &Ctx) -> Result<ConnectionState> {
        Ok(self.link.lock().connection)
    }

    fn get_mtu(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.settings.lock().mtu)
    }

    fn set_mtu(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        if !(200..=65000).contains(&value) {
            return Err(Error::IllegalParam(format!("Invalid MTU {value}")));
        }
        self.settings.lock().mtu = value;
        self.slots.set_mtu(payload_mtu(value));
        Ok(())
    }

    fn get_remb_params(&self, _ctx: &Ctx) -> Result<RembParams> {
        Ok(self.settings.lock().remb.clone())
    }

    fn set_remb_params(&self, _ctx: &Ctx, value: RembParams) -> Result<()> {
        self.settings.lock().remb = value;
        Ok(())
    }

    fn request_keyframe(&self, _ctx: &Ctx) -> Result<()> {
        for (t, _, agnostic) in self.core.outputs() {
            if t == MediaType::Video {
                agnostic.request_keyframe();
            }
        }
        self.ask_remote_keyframe();
        Ok(())
    }
}

impl WebRtcEndpoint for NativeEndpoint {
    fn get_network_interfaces(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.settings.lock().network_interfaces.clone())
    }

    /// Narrows the endpoint's host candidates to the loops' addresses on
    /// these interfaces. The loops' sockets are shared and bound when the
    /// first endpoint is made (on the module config's `networkInterfaces`):
    /// an interface they do not listen on answers 40006.
    fn set_network_interfaces(&self, _ctx: &Ctx, value: String) -> Result<()> {
        let ifaces = interfaces();
        let ips = endpoint_ips(&self.lp.addrs, &value, &ifaces);
        for name in super::settings::interface_names(&value) {
            if !ifaces.iter().any(|(n, ip)| n == name && ips.contains(ip)) {
                return Err(not_yet(&format!(
                    "networkInterfaces '{name}' (the shared sockets are bound at start, on the module \
                     config's networkInterfaces, and none is on it)"
                )));
            }
        }
        self.settings.lock().network_interfaces = value;
        Ok(())
    }

    fn get_ice_tcp(&self, _ctx: &Ctx) -> Result<bool> {
        Ok(self.settings.lock().ice_tcp)
    }

    /// Read when gathering starts (the first negotiation step or
    /// `gatherCandidates`), as KMS does.
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
        if let Err(why) = relay::parse_turn_url(&value) {
            return Err(Error::IllegalParam(format!("Invalid turnURL '{value}': {why}")));
        }
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
        Ok(self.link.lock().pair.iter().cloned().collect())
    }

    fn get_ice_connection_state(&self, _ctx: &Ctx) -> Result<Vec<IceConnection>> {
        let link = self.link.lock();
        Ok(link
            .ice
            .map(|state| IceConnection { stream_id: STREAM_ID.into(), component_id: COMPONENT_ID, state })
            .into_iter()
            .collect())
    }

    fn get_dtls_connection_state(&self, _ctx: &Ctx) -> Result<Vec<DtlsConnection>> {
        let link = self.link.lock();
        Ok(link
            .dtls
            .map(|state| DtlsConnection {
                stream_id: STREAM_ID.into(),
                component_id: COMPONENT_ID.to_string(),
                connection_id: self.peer_conn_id(),
                state,
            })
            .into_iter()
            .collect())
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
        if !self.use_data_channels || !self.neg.lock().sctp {
            return Err(Error::Code { code: 40111, message: "Data channels not negotiated".into() });
        }
        if max_packet_life_time >= 0 && max_retransmits >= 0 {
            return Err(Error::IllegalParam(
                "maxPacketLifeTime and maxRetransmits cannot be set at the same time".into(),
            ));
        }
        {
            let mut ch = self.channels.lock();
            if self.max_channels > 0 && ch.list.len() + ch.reserved >= self.max_channels {
                return Err(Error::NotEnoughResources(format!(
                    "Reached data-channels limit: {} (maxDataChannels); close one first",
                    self.max_channels
                )));
            }
            ch.reserved += 1;
        }
        let reliability = if max_packet_life_time >= 0 {
            str0m::channel::Reliability::MaxPacketLifetime { lifetime: max_packet_life_time.min(65535) as u16 }
        } else if max_retransmits >= 0 {
            str0m::channel::Reliability::MaxRetransmits { retransmits: max_retransmits.min(65535) as u16 }
        } else {
            str0m::channel::Reliability::Reliable
        };
        let config =
            str0m::channel::ChannelConfig { label: label.clone(), ordered, reliability, negotiated: None, protocol };
        let weak = self.me.get().cloned().unwrap_or_default();
        self.lp.call(
            self.peer,
            Box::new(move |rtc: &mut Rtc| {
                let id = rtc.direct_api().create_data_channel(config);
                // Ours from now on; `ChannelOpen` announces it when open.
                if let Some(ep) = weak.upgrade() {
                    let mut ch = ep.channels.lock();
                    ch.reserved = ch.reserved.saturating_sub(1);
                    let kms_id = ch.next_id;
                    ch.next_id += 1;
                    ch.list.push(Chan { id, kms_id, label, open: false, traffic: Arc::default() });
                }
            }),
        );
        Ok(())
    }

    fn close_data_channel(&self, _ctx: &Ctx, channel_id: i32) -> Result<()> {
        let id = self.channels.lock().list.iter().find(|c| c.kms_id == channel_id).map(|c| c.id);
        if let Some(id) = id {
            self.lp.call(self.peer, Box::new(move |rtc: &mut Rtc| rtc.direct_api().close_data_channel(id)));
        }
        Ok(())
    }
}

impl WebRtcEndpointFactory for NativeEndpoint {
    fn construct(ctx: &Ctx, params: WebRtcEndpointConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let codecs = sdp::CodecSet::from_config(ctx.config())?;
        let mut settings = Settings::from_config(ctx.config());
        settings.qos_dscp = super::settings::resolve_dscp(params.qos_dscp.as_str(), settings.qos_dscp);
        super::io::register_meta();
        let ips = local_ips(&settings);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = net::pool(&ips, settings.min_port as u16, settings.max_port as u16, threads)
            .map_err(|e| Error::NotAvailable(format!("native WebRTC transport cannot start: {e}")))?;
        // The configured (or generated ECDSA) certificate, refused as on
        // webrtcbin when it is unusable.
        let pem = super::cert::pem_for(ctx.config(), params.certificate_key_type).map_err(|why| {
            tracing::warn!("WebRtcEndpoint not created: {why}");
            Error::NotAvailable(format!("WebRtcEndpoint cannot be created: {why}"))
        })?;
        let mut cfg = RtcConfig::new()
            .set_crypto_provider(crypto::provider())
            .set_rtp_mode(true)
            .set_stats_interval(Some(std::time::Duration::from_secs(1)))
            .clear_codecs();
        if let Some((certificate, private_key)) = pem.as_deref().and_then(super::cert::der_pair) {
            cfg = cfg.set_dtls_cert(str0m::config::DtlsCert { certificate, private_key });
        }
        for c in codecs.audio.iter().chain(&codecs.video) {
            cfg = match c {
                Codec::Opus => cfg.enable_opus(true, false),
                Codec::Vp8 => cfg.enable_vp8(true),
                Codec::H264 => cfg.enable_h264(true),
                Codec::Vp9 => cfg.enable_vp9(true),
                _ => cfg,
            };
        }
        // `KMS_NO_RETRANSMISSION=1` (diagnostics, the loss test's control
        // run): no `nack`, no `rtx`.
        let retransmit = super::loss::retransmission_enabled();
        // Bitrate feedback is REMB, as on KMS (`rembParams`, the bandwidth
        // properties): without the transport-wide sequence number a browser
        // sends REMB instead of transport-cc feedback.
        let mut plain = str0m::format::CodecConfig::empty();
        for p in cfg.codec_config().params() {
            let spec = p.spec();
            let resend = if retransmit { p.resend() } else { None };
            plain.add_config(p.pt(), resend, spec.codec, spec.clock_rate, spec.channels, spec.format);
        }
        // H.264 only in packetization mode 1, as on webrtcbin: our payloader
        // fragments (FU-A), which mode 0 forbids.
        let payloads: Vec<_> = plain
            .params()
            .iter()
            .filter(|p| p.spec().format.packetization_mode != Some(0))
            .cloned()
            .map(|mut p| {
                p.set_fb_transport_cc(false);
                p.set_fb_nack(retransmit && p.spec().codec.is_video());
                p
            })
            .collect();
        *cfg.codec_config() = str0m::format::CodecConfig::new_from_payload_params(payloads);
        use str0m::rtp::Extension as X;
        let mut cfg = cfg.clear_extension_map();
        for (id, ext) in [(1, X::AudioLevel), (2, X::AbsoluteSendTime), (4, X::RtpMid), (13, X::VideoOrientation)] {
            cfg = cfg.set_extension(id, ext);
        }
        let rtc = cfg.build(Instant::now());
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let slots = Slots::new(payload_mtu(settings.mtu));
        let core = ElementCore::new(ctx, base, shared, Box::new(WebRtcIo(slots.clone())))?;
        // Placed last: nothing fails between the pick and the endpoint
        // that gives the place back.
        let lp = pool.pick();
        let ep = Arc::new(NativeEndpoint {
            core,
            use_data_channels: params.use_data_channels,
            recvonly: params.recvonly,
            sendonly: params.sendonly,
            channels: Mutex::new(Channels::default()),
            max_channels: ctx.config().limits.max_data_channels,
            max_queued_candidates: ctx.config().limits.max_queued_ice_candidates,
            slots,
            settings: Mutex::new(settings),
            codecs,
            lp,
            peer: PeerId::next(),
            remote_candidates: Mutex::new(vec![]),
            gather: Mutex::new(Gather::default()),
            loss: super::remb::LossMeter::default(),
            lost_counted: std::sync::atomic::AtomicU64::new(0),
            remb: Mutex::new(Remb::default()),
            snapshot: Mutex::new(stats::Snapshot::default()),
            neg: Mutex::new(Neg { rtc: Some(rtc), ..Neg::default() }),
            on_loop: std::sync::atomic::AtomicBool::new(false),
            link: Mutex::new(Link {
                media: MediaState::Disconnected,
                connection: ConnectionState::Disconnected,
                ice: None,
                dtls: None,
                pair: None,
            }),
            rx: Mutex::new(Rx::default()),
            me: OnceLock::new(),
        });
        let _ = ep.me.set(Arc::downgrade(&ep));
        for t in [MediaType::Audio, MediaType::Video, MediaType::Data] {
            let _ = ep.core.output(t, "default");
        }
        // DATA buffers from the pipeline go out on a data channel.
        let weak = Arc::downgrade(&ep);
        ep.slots.set_data_handler(move |buf| {
            if let Some(ep) = weak.upgrade() {
                ep.send_data(buf);
            }
        });
        Ok(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_interfaces_narrow_the_loop_addresses() {
        let addrs: Vec<std::net::SocketAddr> =
            vec!["127.0.0.1:40000".parse().unwrap(), "192.0.2.2:40001".parse().unwrap()];
        let ifaces = vec![
            ("lo".to_owned(), IpAddr::from([127, 0, 0, 1])),
            ("eth0".to_owned(), IpAddr::from([192, 0, 2, 2])),
            ("eth1".to_owned(), IpAddr::from([198, 51, 100, 1])),
        ];
        let all = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([192, 0, 2, 2])];
        assert_eq!(endpoint_ips(&addrs, "", &ifaces), all, "none named: every loop address");
        assert_eq!(endpoint_ips(&addrs, " eth0 ", &ifaces), vec![IpAddr::from([192, 0, 2, 2])]);
        assert_eq!(endpoint_ips(&addrs, "lo,eth0", &ifaces), all);
        assert!(endpoint_ips(&addrs, "eth1", &ifaces).is_empty(), "no loop socket on eth1");
    }
}
