//! Data channels (spec §10.7): created by either side, reported with
//! `DataChannelOpened`/`DataChannelClosed` (once each), messages in and out
//! of the pipeline as DATA buffers.

use std::sync::Arc;

use gst::prelude::*;
use kms_core::{Error, Result};

use super::WebRtcEndpointImpl;
use super::io::{data_buffer, data_info};
use crate::api::elements::events::{DataChannelClosed, DataChannelOpened};

const OPERATION_NOT_SUPPORTED: i64 = 40111;

struct Channel {
    channel: gst_webrtc::WebRTCDataChannel,
    opened: bool,
    closed: bool,
    messages_sent: u64,
    bytes_sent: u64,
    messages_received: u64,
    bytes_received: u64,
}

#[derive(Default)]
pub struct DataState {
    /// An SCTP section was negotiated.
    pub negotiated: bool,
    channels: Vec<Channel>,
    /// `createDataChannel` calls between their limit check and the
    /// channel's registration.
    reserved: usize,
    pub opened_total: i64,
    pub closed_total: i64,
}

/// Per-channel counters for stats: (id, label, protocol, open, sent msgs,
/// sent bytes, received msgs, received bytes).
pub type ChannelStats = (i32, String, String, bool, u64, u64, u64, u64);

impl DataState {
    /// Channels that count against `maxDataChannels`: all not closed.
    fn live(&self) -> usize {
        self.channels.iter().filter(|c| !c.closed).count()
    }

    /// Closed channels stay for their final stats, at most `keep` of them
    /// (the most recent), so opening and closing never grows the list.
    fn prune_closed(&mut self, keep: usize) {
        let mut closed = self.channels.iter().filter(|c| c.closed).count();
        self.channels.retain(|c| {
            if c.closed && closed > keep {
                closed -= 1;
                return false;
            }
            true
        });
    }

    pub fn stats(&self) -> Vec<ChannelStats> {
        self.channels
            .iter()
            .filter(|c| c.channel.id() >= 0 && !c.channel.is_negotiated())
            .map(|c| {
                (
                    c.channel.id(),
                    c.channel.label().map(|l| l.to_string()).unwrap_or_default(),
                    c.channel.protocol().map(|l| l.to_string()).unwrap_or_default(),
                    c.opened && !c.closed,
                    c.messages_sent,
                    c.bytes_sent,
                    c.messages_received,
                    c.bytes_received,
                )
            })
            .collect()
    }
}

impl WebRtcEndpointImpl {
    pub(super) fn connect_data_signals(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.webrtcbin.connect("on-data-channel", false, move |args| {
            let ch = args.get(1).and_then(|v| v.get::<gst_webrtc::WebRTCDataChannel>().ok());
            if let (Some(ep), Some(ch)) = (weak.upgrade(), ch) {
                ep.register_channel(ch, false);
            }
            None
        });
        let weak = Arc::downgrade(self);
        self.slots.set_data_handler(move |buf| {
            if let Some(ep) = weak.upgrade() {
                ep.send_data(buf);
            }
        });
    }

    /// Tracks a channel; `reserved`: created by `createDataChannel`, whose
    /// reservation it takes. A channel the peer opens past
    /// `maxDataChannels` is closed again.
    fn register_channel(self: &Arc<Self>, ch: gst_webrtc::WebRTCDataChannel, reserved: bool) {
        // Pre-negotiated placeholder of generateOffer: not a real channel.
        if ch.is_negotiated() && ch.label().as_deref() == Some("kurento") {
            return;
        }
        let max = self.limits.max_data_channels;
        {
            let mut d = self.data.lock();
            if reserved {
                d.reserved = d.reserved.saturating_sub(1);
            }
            if d.channels.iter().any(|c| c.channel == ch) {
                return;
            }
            if !reserved && max > 0 && d.live() + d.reserved >= max {
                drop(d);
                tracing::warn!(
                    id = %self.base().id(),
                    "data channel opened by the peer closed: {max} channels already (maxDataChannels)"
                );
                ch.close();
                return;
            }
            if max > 0 {
                d.prune_closed(max);
            }
            d.channels.push(Channel {
                channel: ch.clone(),
                opened: false,
                closed: false,
                messages_sent: 0,
                bytes_sent: 0,
                messages_received: 0,
                bytes_received: 0,
            });
        }
        let weak = Arc::downgrade(self);
        ch.connect_ready_state_notify(move |c| {
            if let Some(ep) = weak.upgrade() {
                ep.channel_state(c);
            }
        });
        let weak = Arc::downgrade(self);
        ch.connect_on_message_string(move |c, s| {
            if let (Some(ep), Some(s)) = (weak.upgrade(), s) {
                ep.received(c, s.as_bytes(), false);
            }
        });
        let weak = Arc::downgrade(self);
        ch.connect_on_message_data(move |c, b| {
            if let (Some(ep), Some(b)) = (weak.upgrade(), b) {
                ep.received(c, b, true);
            }
        });
        self.channel_state(&ch);
    }

    fn channel_state(&self, ch: &gst_webrtc::WebRTCDataChannel) {
        let state = ch.ready_state();
        let id = ch.id();
        let (open, close) = {
            let mut d = self.data.lock();
            let Some(c) = d.channels.iter_mut().find(|c| &c.channel == ch) else { return };
            let open = state == gst_webrtc::WebRTCDataChannelState::Open && !c.opened;
            let closed_now = state == gst_webrtc::WebRTCDataChannelState::Closed && !c.closed;
            // Closed frees its place; the event is for channels that opened.
            let close = closed_now && c.opened;
            c.opened |= open;
            c.closed |= closed_now;
            if open {
                d.opened_total += 1;
            }
            if close {
                d.closed_total += 1;
            }
            (open, close)
        };
        if open {
            self.base().raise(&DataChannelOpened { channel_id: id });
        }
        if close {
            self.base().raise(&DataChannelClosed { channel_id: id });
        }
    }

    fn received(&self, ch: &gst_webrtc::WebRTCDataChannel, bytes: &[u8], binary: bool) {
        {
            let mut d = self.data.lock();
            if let Some(c) = d.channels.iter_mut().find(|c| &c.channel == ch) {
                c.messages_received += 1;
                c.bytes_received += bytes.len() as u64;
            }
        }
        let label = ch.label().map(|l| l.to_string()).unwrap_or_default();
        self.slots.push_data(data_buffer(bytes, &label, binary));
    }

    /// A DATA buffer from the pipeline: sent on the open channel with the
    /// same label, else on the first open one.
    fn send_data(&self, buf: &gst::Buffer) {
        let (label, binary) = data_info(buf);
        let ch = {
            let mut d = self.data.lock();
            let open = |c: &&mut Channel| c.opened && !c.closed;
            let idx = d
                .channels
                .iter_mut()
                .position(|c| open(&c) && label.is_some() && c.channel.label().as_deref() == label.as_deref())
                .or_else(|| d.channels.iter_mut().position(|c| open(&c)));
            let Some(i) = idx else { return };
            let c = &mut d.channels[i];
            c.messages_sent += 1;
            c.bytes_sent += buf.size() as u64;
            c.channel.clone()
        };
        let Ok(map) = buf.map_readable() else { return };
        let r = if binary {
            ch.send_data_full(Some(&gst::glib::Bytes::from(map.as_slice())))
        } else {
            ch.send_string_full(Some(&String::from_utf8_lossy(&map)))
        };
        if let Err(e) = r {
            tracing::debug!(id = %self.base().id(), "data channel send: {e}");
        }
    }

    pub(super) fn do_create_data_channel(
        &self,
        label: String,
        ordered: bool,
        max_packet_life_time: i32,
        max_retransmits: i32,
        protocol: String,
    ) -> Result<()> {
        if !self.ctor.use_data_channels || !self.data.lock().negotiated {
            return Err(Error::Code { code: OPERATION_NOT_SUPPORTED, message: "Data channels not negotiated".into() });
        }
        if max_packet_life_time >= 0 && max_retransmits >= 0 {
            return Err(Error::IllegalParam(
                "maxPacketLifeTime and maxRetransmits cannot be set at the same time".into(),
            ));
        }
        let max = self.limits.max_data_channels;
        {
            let mut d = self.data.lock();
            if max > 0 && d.live() + d.reserved >= max {
                return Err(Error::NotEnoughResources(format!(
                    "Reached data-channels limit: {max} (maxDataChannels); close one first"
                )));
            }
            d.reserved += 1;
        }
        let unreserve = || {
            let mut d = self.data.lock();
            d.reserved = d.reserved.saturating_sub(1);
        };
        let mut opts = gst::Structure::builder("options").field("ordered", ordered).field("protocol", protocol);
        if max_packet_life_time >= 0 {
            opts = opts.field("max-packet-lifetime", max_packet_life_time.min(65535));
        }
        if max_retransmits >= 0 {
            opts = opts.field("max-retransmits", max_retransmits.min(65535));
        }
        let ch = self
            .webrtcbin
            .emit_by_name::<Option<gst_webrtc::WebRTCDataChannel>>("create-data-channel", &[&label, &opts.build()]);
        let (Some(ch), Some(me)) = (ch, self.self_arc()) else {
            unreserve();
            return Err(Error::Unexpected("Cannot create data channel".into()));
        };
        me.register_channel(ch, true);
        Ok(())
    }

    pub(super) fn do_close_data_channel(&self, channel_id: i32) -> Result<()> {
        if !self.ctor.use_data_channels || !self.data.lock().negotiated {
            return Err(Error::Code { code: OPERATION_NOT_SUPPORTED, message: "Data channels not negotiated".into() });
        }
        let ch = self.data.lock().channels.iter().find(|c| c.channel.id() == channel_id).map(|c| c.channel.clone());
        if let Some(ch) = ch {
            ch.close();
        }
        Ok(())
    }
}
