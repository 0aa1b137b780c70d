//! The WebRtcEndpoint's pads toward the pipeline (spec §10.3): one
//! `kmsrtpinput` per sent media type feeding webrtcbin, one agnosticbin per
//! received media type fed by webrtcbin, and the DATA pair carrying data
//! channel messages. They exist from construction on, so `connect` works
//! before negotiation; inputs accept nothing until then.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::MediaType;
use kms_core::element::{MediaIo, media_type_name};

use super::rtp_input::RtpInput;

/// Caps of DATA buffers: one buffer per data channel message.
pub const DATA_CAPS: &str = "application/data";
/// Custom meta on DATA buffers: `label` (string), `binary` (bool).
pub const DATA_META: &str = "KmsDataChannelMeta";

type DataHandler = Arc<dyn Fn(&gst::Buffer) + Send + Sync>;

#[derive(Default)]
struct Inner {
    inputs: HashMap<MediaType, RtpInput>,
    outputs: HashMap<MediaType, AgnosticBin>,
    data_src: Option<gst::Pad>,
    data_sink: Option<gst::Element>,
}

/// Shared between the endpoint and its [`MediaIo`].
#[derive(Default)]
pub struct Slots {
    inner: Mutex<Inner>,
    /// Received video packets (REMB loss estimate).
    pub loss: super::remb::LossMeter,
    on_data: Mutex<Option<DataHandler>>,
    mtu: std::sync::atomic::AtomicU32,
    /// Whether the inputs pass packets on (see `RtpInput::set_open`).
    send_open: std::sync::atomic::AtomicBool,
}

impl Slots {
    pub fn new(mtu: u32) -> Arc<Slots> {
        let s = Slots::default();
        s.mtu.store(mtu, std::sync::atomic::Ordering::Relaxed);
        Arc::new(s)
    }

    /// The send-side adapter of `t` (audio/video), created on first use.
    pub fn rtp_input(&self, bin: &gst::Bin, t: MediaType) -> Option<RtpInput> {
        if t == MediaType::Data {
            return None;
        }
        let mut inner = self.inner.lock();
        if let Some(i) = inner.inputs.get(&t) {
            return Some(i.clone());
        }
        let input = RtpInput::new(&format!("input_{}", media_type_name(t)));
        input.set_mtu(self.mtu.load(std::sync::atomic::Ordering::Relaxed));
        input.set_open(self.send_open.load(std::sync::atomic::Ordering::Acquire));
        bin.add(&input).ok()?;
        input.sync_state_with_parent().ok()?;
        inner.inputs.insert(t, input.clone());
        Some(input)
    }

    /// `setMtu`: the largest RTP packet the endpoint sends, asked of
    /// whatever payloads for its inputs (see `RtpInput::set_mtu`).
    pub fn set_mtu(&self, mtu: u32) {
        let inputs: Vec<RtpInput> = {
            let inner = self.inner.lock();
            self.mtu.store(mtu, std::sync::atomic::Ordering::Relaxed);
            inner.inputs.values().cloned().collect()
        };
        // Outside the lock: the change travels upstream as an event.
        for i in inputs {
            i.set_mtu(mtu);
        }
    }

    /// SSRC of the video being received, once some arrived.
    pub fn received_video_ssrc(&self) -> Option<u32> {
        let (h, _) = self.loss.totals();
        (h != 0).then(|| self.loss.ssrc())
    }

    /// Opens or closes every send input (transport up or down).
    pub fn set_send_open(&self, open: bool) {
        let inner = self.inner.lock();
        self.send_open.store(open, std::sync::atomic::Ordering::Release);
        for i in inner.inputs.values() {
            i.set_open(open);
        }
    }

    pub fn existing_input(&self, t: MediaType) -> Option<RtpInput> {
        self.inner.lock().inputs.get(&t).cloned()
    }

    /// The output agnosticbin of `t`, created on first use.
    pub fn output(&self, bin: &gst::Bin, t: MediaType) -> Option<AgnosticBin> {
        let mut inner = self.inner.lock();
        if let Some(a) = inner.outputs.get(&t) {
            return Some(a.clone());
        }
        let a = AgnosticBin::new(&format!("output_{}", media_type_name(t)));
        a.set_mtu(self.mtu.load(std::sync::atomic::Ordering::Relaxed));
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        if t == MediaType::Data {
            // Messages are pushed from the data channel callbacks directly:
            // no thread of its own.
            let src = gst::Pad::builder(gst::PadDirection::Src).name("data_src").build();
            src.set_active(true).ok()?;
            src.link(&a.static_pad("sink")?).ok()?;
            let _ = src.push_event(gst::event::StreamStart::new("kms-data"));
            let _ = src.push_event(gst::event::Caps::new(&gst::Caps::builder(DATA_CAPS).build()));
            let _ = src.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
            inner.data_src = Some(src);
        }
        inner.outputs.insert(t, a.clone());
        Some(a)
    }

    /// Pushes one received data channel message into the pipeline.
    pub fn push_data(&self, buffer: gst::Buffer) {
        let src = self.inner.lock().data_src.clone();
        if let Some(src) = src {
            let _ = src.push(buffer);
        }
    }

    /// Called for every DATA buffer reaching the endpoint.
    pub fn set_data_handler(&self, f: impl Fn(&gst::Buffer) + Send + Sync + 'static) {
        *self.on_data.lock() = Some(Arc::new(f));
    }

    fn data_sink(self: &Arc<Self>, bin: &gst::Bin) -> Option<gst::Pad> {
        let mut inner = self.inner.lock();
        if let Some(s) = &inner.data_sink {
            return s.static_pad("sink");
        }
        let weak = Arc::downgrade(self);
        let sink = gst_app::AppSink::builder()
            .name("input_data")
            .sync(false)
            .async_(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let (Some(slots), Some(buf)) = (weak.upgrade(), sample.buffer_owned()) {
                            let h = slots.on_data.lock().clone();
                            if let Some(h) = h {
                                h(&buf);
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        bin.add(&sink).ok()?;
        sink.sync_state_with_parent().ok()?;
        let pad = sink.static_pad("sink");
        inner.data_sink = Some(sink.upcast());
        pad
    }
}

/// [`MediaIo`] over [`Slots`]; only the `default` description exists.
pub struct WebRtcIo(pub Arc<Slots>);

impl MediaIo for WebRtcIo {
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad> {
        if desc != "default" {
            return None;
        }
        match t {
            MediaType::Data => self.0.data_sink(bin),
            _ => self.0.rtp_input(bin, t)?.static_pad("sink"),
        }
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        if desc != "default" {
            return None;
        }
        self.0.output(bin, t)
    }
}

/// Builds a DATA buffer for a message.
pub fn data_buffer(bytes: &[u8], label: &str, binary: bool) -> gst::Buffer {
    let mut buf = gst::Buffer::from_slice(bytes.to_vec());
    {
        let b = buf.get_mut().expect("fresh buffer");
        let mut meta = gst::meta::CustomMeta::add(b, DATA_META).expect("registered meta");
        let s = meta.mut_structure();
        s.set("label", label);
        s.set("binary", binary);
    }
    buf
}

/// `(label, binary)` of a DATA buffer (defaults for foreign buffers).
pub fn data_info(buf: &gst::BufferRef) -> (Option<String>, bool) {
    match gst::meta::CustomMeta::from_buffer(buf, DATA_META) {
        Ok(m) => {
            let s = m.structure();
            (s.get::<String>("label").ok(), s.get::<bool>("binary").unwrap_or(false))
        }
        Err(_) => (None, true),
    }
}

/// Registers the DATA meta (once per process).
pub fn register_meta() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| gst::meta::CustomMeta::register(DATA_META, &[]));
}
