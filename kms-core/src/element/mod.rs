//! The MediaElement machinery (spec §10.3), one job per file:
//!
//! * this file: [`ElementCore`], what every element owns — its bin in the
//!   pipeline (removed by `Drop`), inputs per (media type, description)
//!   and outputs ending in an agnosticbin, encoder and forced-format
//!   settings, flow and latency meters;
//! * `connection`: `connect`/`disconnect` and the pipeline's link table;
//! * `media_element`: the blanket implementation of the generated
//!   `MediaElement` trait for every [`ElementObject`];
//! * `format`: `setVideoFormat`/`setAudioFormat` arguments checked and
//!   turned into agnosticbin output formats;
//! * `latency`: the `inputLatency`/`E2ELatency` meters;
//! * `dot`: GStreamer graph dumps.

mod connection;
mod dot;
mod format;
mod latency;
mod media_element;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use gst::prelude::*;

use crate::agnosticbin::{AgnosticBin, Bitrate, OutputFormat};
use crate::api::core::events::{MediaFlowInStateChanged, MediaFlowOutStateChanged, MediaTranscodingStateChanged};
use crate::api::core::{AudioCaps, MediaFlowState, MediaLatencyStat, MediaTranscodingState, MediaType, VideoCaps};
use crate::error::{Error, Result};
use crate::flow::FlowMeter;
use crate::object::{ObjectBase, ObjectId};
use crate::pipeline_shared::{Link, PipelineShared};
use crate::rt::Ctx;

pub use connection::{connect, disconnect};
pub use dot::{dot_details, dump_dot};
pub use latency::{LatencyMeter, LatencySwitch};
pub use media_element::ElementObject;

/// How a concrete element builds its inputs and outputs. Called lazily the
/// first time a connection needs them.
pub trait MediaIo: Send + Sync + 'static {
    /// The pad inside `bin` that receives media of `(t, desc)`; `None` if the
    /// element takes no such input.
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad>;
    /// The agnosticbin inside `bin` producing output `(t, desc)`; `None` if
    /// the element has no such output.
    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin>;
    /// Where media arriving at input pad `input` leaves the element (for
    /// endpoints' `E2ELatency`). Default: the source pad of the element the
    /// input feeds, when it has exactly one (an endpoint's send stage);
    /// none when the input feeds an agnosticbin (a pass-through element).
    fn egress(&self, input: &gst::Pad) -> Option<gst::Pad> {
        let el = input.parent_element()?;
        if el.is::<AgnosticBin>() {
            return None;
        }
        let src = el.src_pads();
        (src.len() == 1).then(|| src[0].clone())
    }
}

type Key = (MediaType, String);

struct Input {
    ghost: gst::GhostPad,
    /// What the ghost points at (a loopback link takes it over).
    target: gst::Pad,
    meter: Arc<FlowMeter>,
    latency: Arc<LatencyMeter>,
    e2e: Option<Arc<LatencyMeter>>,
}

struct Output {
    agnostic: AgnosticBin,
    meter: Arc<FlowMeter>,
}

#[derive(Default)]
struct IoState {
    inputs: HashMap<Key, Input>,
    outputs: HashMap<Key, Output>,
}

#[derive(Default, Clone, Copy)]
struct Formats {
    audio: Option<OutputFormat>,
    video: Option<OutputFormat>,
}

impl Formats {
    fn of(&self, t: MediaType) -> Option<OutputFormat> {
        match t {
            MediaType::Audio => self.audio,
            MediaType::Video => self.video,
            MediaType::Data => None,
        }
    }
}

/// The element core every media element owns. Its bin joins the pipeline
/// in [`ElementCore::new`] and leaves it in [`ElementCore::release`], which
/// `Drop` runs if nobody did: a constructor that fails after creating its
/// core leaves the pipeline as it found it.
pub struct ElementCore {
    base: ObjectBase,
    bin: gst::Bin,
    shared: Arc<PipelineShared>,
    io: Box<dyn MediaIo>,
    state: Mutex<IoState>,
    encoder_bitrate: AtomicI32,
    min_encoder_bitrate: AtomicI32,
    max_encoder_bitrate: AtomicI32,
    formats: Mutex<Formats>,
    /// `maxMediaDescriptions`: distinct descriptions per media type and
    /// direction (0 = unlimited).
    max_descriptions: usize,
    released: AtomicBool,
}

pub fn media_type_name(t: MediaType) -> &'static str {
    match t {
        MediaType::Audio => "audio",
        MediaType::Video => "video",
        MediaType::Data => "data",
    }
}

impl ElementCore {
    /// Creates the element's bin inside the pipeline and brings it to the
    /// pipeline's state.
    pub fn new(ctx: &Ctx, base: ObjectBase, shared: Arc<PipelineShared>, io: Box<dyn MediaIo>) -> Result<ElementCore> {
        let name = base.id().as_str().rsplit('/').next().unwrap_or("element").to_string();
        let bin = gst::Bin::builder().name(name).build();
        let cfg = ctx.config();
        let bitrate = |k: &str, d: i64| {
            cfg.module_i64("kurento", "MediaElement", k).unwrap_or(d).clamp(0, i32::MAX as i64) as i32
        };
        let core = ElementCore {
            base,
            bin,
            shared,
            io,
            state: Mutex::new(IoState::default()),
            encoder_bitrate: AtomicI32::new(bitrate("encoderBitrate", 300_000)),
            min_encoder_bitrate: AtomicI32::new(bitrate("minEncoderBitrate", 0)),
            max_encoder_bitrate: AtomicI32::new(bitrate("maxEncoderBitrate", 0)),
            formats: Mutex::new(Formats::default()),
            max_descriptions: cfg.limits.max_media_descriptions,
            released: AtomicBool::new(false),
        };
        // From here on, an early return drops `core`, which takes the bin
        // out of the pipeline again.
        core.shared.pipeline.add(&core.bin)?;
        core.bin.sync_state_with_parent()?;
        Ok(core)
    }

    pub fn base(&self) -> &ObjectBase {
        &self.base
    }

    pub fn bin(&self) -> &gst::Bin {
        &self.bin
    }

    pub fn pipeline_id(&self) -> &ObjectId {
        &self.shared.id
    }

    pub fn encoder_bitrate(&self) -> i32 {
        self.encoder_bitrate.load(Ordering::Relaxed)
    }

    /// The element's input ghost pad for `(t, desc)`, created on first use.
    pub fn input_pad(&self, t: MediaType, desc: &str) -> Option<gst::Pad> {
        self.ensure_input(t, desc).ok().flatten()
    }

    /// The input ghost pad for `(t, desc)`: created on first use,
    /// `Ok(None)` if the element takes no such input, an error past the
    /// descriptions limit.
    pub fn ensure_input(&self, t: MediaType, desc: &str) -> Result<Option<gst::Pad>> {
        let mut st = self.state.lock();
        let key = (t, desc.to_string());
        if let Some(i) = st.inputs.get(&key) {
            return Ok(Some(i.ghost.clone().upcast()));
        }
        self.check_descriptions(st.inputs.keys(), t, "input")?;
        let Some(target) = self.io.input(&self.bin, t, desc) else { return Ok(None) };
        let Some(ghost) = gst::GhostPad::builder_with_target(&target)
            .ok()
            .map(|b| b.name(format!("sink_{}_{}", media_type_name(t), sanitize(desc))).build())
        else {
            return Ok(None);
        };
        let _ = ghost.set_active(true);
        if self.bin.add_pad(&ghost).is_err() {
            return Ok(None);
        }
        let base = self.base.clone();
        let pad_name = desc.to_string();
        let meter = FlowMeter::new(move |flowing| {
            base.raise(&MediaFlowInStateChanged {
                state: flow_state(flowing),
                pad_name: pad_name.clone(),
                media_type: t,
            });
        });
        // On the target: a loopback link (`connect(self)`) bypasses the ghost.
        meter.attach(&target);
        let latency = LatencyMeter::new();
        latency.attach(&target, &self.shared.latency);
        let e2e = self.io.egress(&target).map(|pad| {
            let m = LatencyMeter::new();
            m.attach(&pad, &self.shared.latency);
            m
        });
        st.inputs.insert(key, Input { ghost: ghost.clone(), target, meter, latency, e2e });
        Ok(Some(ghost.upcast()))
    }

    /// spec §3 limits: an element does not grow a pad per description a
    /// client invents.
    fn check_descriptions<'a>(&self, keys: impl Iterator<Item = &'a Key>, t: MediaType, dir: &str) -> Result<()> {
        let max = self.max_descriptions;
        if max > 0 && keys.filter(|(kt, _)| *kt == t).count() >= max {
            return Err(Error::NotEnoughResources(format!(
                "Element '{}' reached the limit of {max} {t} {dir} media descriptions (maxMediaDescriptions)",
                self.base.name()
            )));
        }
        Ok(())
    }

    /// The pad inside the bin an input ghost points at.
    fn input_target(&self, t: MediaType, desc: &str) -> Option<(gst::GhostPad, gst::Pad)> {
        let st = self.state.lock();
        st.inputs.get(&(t, desc.to_string())).map(|i| (i.ghost.clone(), i.target.clone()))
    }

    /// The agnosticbin producing output `(t, desc)`, created on first use.
    pub fn output(&self, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        self.ensure_output(t, desc).ok().flatten()
    }

    /// The agnosticbin producing output `(t, desc)`: created on first use,
    /// `Ok(None)` if the element has no such output, an error past the
    /// descriptions limit.
    pub fn ensure_output(&self, t: MediaType, desc: &str) -> Result<Option<AgnosticBin>> {
        let mut st = self.state.lock();
        let key = (t, desc.to_string());
        if let Some(o) = st.outputs.get(&key) {
            return Ok(Some(o.agnostic.clone()));
        }
        self.check_descriptions(st.outputs.keys(), t, "output")?;
        let Some(agnostic) = self.io.output(&self.bin, t, desc) else { return Ok(None) };
        let base = self.base.clone();
        let pad_name = desc.to_string();
        let meter = FlowMeter::new(move |flowing| {
            base.raise(&MediaFlowOutStateChanged {
                state: flow_state(flowing),
                pad_name: pad_name.clone(),
                media_type: t,
            });
        });
        if let Some(p) = agnostic.static_pad("sink") {
            meter.attach(&p);
        }
        agnostic.set_bitrate(self.bitrate());
        agnostic.set_output_format(self.formats.lock().of(t));
        let base = self.base.clone();
        let bin_name = agnostic.name().to_string();
        agnostic.connect_transcoding(move |on| {
            base.raise(&MediaTranscodingStateChanged {
                state: if on { MediaTranscodingState::Transcoding } else { MediaTranscodingState::NotTranscoding },
                bin_name: bin_name.clone(),
                media_type: t,
            });
        });
        st.outputs.insert(key, Output { agnostic: agnostic.clone(), meter });
        Ok(Some(agnostic))
    }

    /// The element's encoder bitrate settings (spec §10.3).
    pub fn bitrate(&self) -> Bitrate {
        let u = |v: i32| v.max(0) as u32;
        Bitrate {
            target: u(self.encoder_bitrate.load(Ordering::Relaxed)),
            min: u(self.min_encoder_bitrate.load(Ordering::Relaxed)),
            max: u(self.max_encoder_bitrate.load(Ordering::Relaxed)),
        }
    }

    fn agnostics(&self, t: Option<MediaType>) -> Vec<AgnosticBin> {
        let st = self.state.lock();
        st.outputs.iter().filter(|((ot, _), _)| t.is_none_or(|t| t == *ot)).map(|(_, o)| o.agnostic.clone()).collect()
    }

    fn apply_bitrate(&self) {
        let b = self.bitrate();
        for a in self.agnostics(None) {
            a.set_bitrate(b);
        }
    }

    /// `setVideoFormat`: every video output delivers only this format.
    pub fn set_video_format(&self, caps: &VideoCaps) -> Result<()> {
        let f = format::video(caps)?;
        self.formats.lock().video = Some(f);
        for a in self.agnostics(Some(MediaType::Video)) {
            a.set_output_format(Some(f));
        }
        Ok(())
    }

    /// `setAudioFormat`: every audio output delivers only this format.
    pub fn set_audio_format(&self, caps: &AudioCaps) -> Result<()> {
        let f = format::audio(caps)?;
        self.formats.lock().audio = Some(f);
        for a in self.agnostics(Some(MediaType::Audio)) {
            a.set_output_format(Some(f));
        }
        Ok(())
    }

    /// Whether an output of type `t` named `name` (its description or its
    /// agnosticbin's name) is re-encoding.
    pub fn is_transcoding(&self, t: MediaType, name: &str) -> bool {
        let st = self.state.lock();
        st.outputs
            .iter()
            .filter(|((ot, desc), o)| *ot == t && (desc == name || o.agnostic.name() == name))
            .any(|(_, o)| o.agnostic.is_transcoding())
    }

    /// The outputs created so far, per (type, description).
    pub fn outputs(&self) -> Vec<(MediaType, String, AgnosticBin)> {
        let st = self.state.lock();
        st.outputs.iter().map(|((t, d), o)| (*t, d.clone(), o.agnostic.clone())).collect()
    }

    /// Asks whatever feeds this element's `t` inputs for a keyframe (an
    /// upstream `GstForceKeyUnit`, which RTP endpoints turn into PLI).
    pub fn request_input_keyframe(&self, t: MediaType) {
        let pads: Vec<gst::GhostPad> =
            self.state.lock().inputs.iter().filter(|((it, _), _)| *it == t).map(|(_, i)| i.ghost.clone()).collect();
        for p in pads.into_iter().filter(|p| p.is_linked()) {
            let _ = p.push_event(crate::agnosticbin::codecs::force_key_unit_event());
        }
    }

    pub fn is_flowing_in(&self, t: MediaType, desc: &str) -> bool {
        self.state.lock().inputs.get(&(t, desc.to_string())).is_some_and(|i| i.meter.is_flowing())
    }

    pub fn is_flowing_out(&self, t: MediaType, desc: &str) -> bool {
        self.state.lock().outputs.get(&(t, desc.to_string())).is_some_and(|o| o.meter.is_flowing())
    }

    /// `ElementStats.inputLatency`: per input with buffers measured since
    /// the pipeline's `latencyStats` was enabled; empty while disabled.
    pub fn input_latency(&self) -> Vec<MediaLatencyStat> {
        self.latency_stats(|i| Some(&i.latency))
    }

    /// `EndpointStats.E2ELatency`: from a buffer's arrival in the pipeline
    /// to its leaving this element, per input.
    pub fn e2e_latency(&self) -> Vec<MediaLatencyStat> {
        self.latency_stats(|i| i.e2e.as_ref())
    }

    /// The `EndpointStats` record every endpoint reports as its own (in
    /// place of `ElementStats`), whatever its transport: latencies measured
    /// while the pipeline's `latencyStats` is on (empty lists otherwise);
    /// E2E is taken where media leaves toward the transport.
    pub fn endpoint_stats(&self, timestamp_millis: i64) -> crate::rt::Polymorphic {
        crate::rt::Polymorphic::of(&crate::api::core::EndpointStats {
            id: self.base.id().to_string(),
            r#type: crate::api::core::StatsType::Endpoint,
            timestamp_millis,
            input_latency: self.input_latency(),
            e2e_latency: self.e2e_latency(),
        })
    }

    fn latency_stats(&self, meter: impl Fn(&Input) -> Option<&Arc<LatencyMeter>>) -> Vec<MediaLatencyStat> {
        let Some(epoch) = self.shared.latency.epoch() else { return vec![] };
        let st = self.state.lock();
        let mut v: Vec<MediaLatencyStat> = st
            .inputs
            .iter()
            .filter_map(|((t, desc), i)| {
                let avg = meter(i)?.average(epoch)?;
                Some(MediaLatencyStat { name: desc.clone(), r#type: *t, avg })
            })
            .collect();
        v.sort_by(|a, b| (a.r#type as u8, &a.name).cmp(&(b.r#type as u8, &b.name)));
        v
    }

    /// Tears the element down: every link in or out goes, the bin leaves the
    /// pipeline. Idempotent.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let id = self.base.id().clone();
        let removed: Vec<Link> = {
            let mut links = self.shared.links.lock();
            let (gone, keep): (Vec<Link>, Vec<Link>) = links.drain(..).partition(|l| l.source == id || l.sink == id);
            *links = keep;
            gone
        };
        for l in removed {
            connection::unlink(&l);
            connection::raise_disconnected(&l);
        }
        let _ = self.bin.set_state(gst::State::Null);
        let _ = self.shared.pipeline.remove(&self.bin);
    }
}

impl Drop for ElementCore {
    fn drop(&mut self) {
        self.release();
    }
}

fn flow_state(flowing: bool) -> MediaFlowState {
    if flowing { MediaFlowState::Flowing } else { MediaFlowState::NotFlowing }
}

fn sanitize(desc: &str) -> String {
    desc.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}
