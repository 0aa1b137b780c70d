//! The MediaElement machinery (spec §10.3): inputs per (media type,
//! description), outputs ending in an agnosticbin, connections, flow
//! events, and the blanket implementation of the generated `MediaElement`
//! trait for every element.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use gst::prelude::*;

use crate::agnosticbin::AgnosticBin;
use crate::agnosticbin::Bitrate;
use crate::api::core::events::{
    ElementConnected, ElementDisconnected, MediaFlowInStateChanged, MediaFlowOutStateChanged,
    MediaTranscodingStateChanged,
};
use crate::api::core::{
    AudioCaps, ElementConnectionData, ElementStats, GstreamerDotDetails, MediaElement, MediaFlowState,
    MediaTranscodingState, MediaType, StatsType, VideoCaps,
};
use crate::error::{Error, Result};
use crate::flow::FlowMeter;
use crate::object::{ObjectBase, ObjectId, RemoteObject};
use crate::pipeline_shared::{Link, PipelineShared};
use crate::rt::{Ctx, Polymorphic};

/// How a concrete element builds its inputs and outputs. Called lazily the
/// first time a connection needs them.
pub trait MediaIo: Send + Sync + 'static {
    /// The pad inside `bin` that receives media of `(t, desc)`; `None` if the
    /// element takes no such input.
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad>;
    /// The agnosticbin inside `bin` producing output `(t, desc)`; `None` if
    /// the element has no such output.
    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin>;
}

type Key = (MediaType, String);

struct Input {
    ghost: gst::GhostPad,
    /// What the ghost points at (a loopback link takes it over).
    target: gst::Pad,
    meter: Arc<FlowMeter>,
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

/// The element core every media element owns.
pub struct ElementCore {
    base: ObjectBase,
    bin: gst::Bin,
    shared: Arc<PipelineShared>,
    io: Box<dyn MediaIo>,
    state: Mutex<IoState>,
    encoder_bitrate: AtomicI32,
    min_encoder_bitrate: AtomicI32,
    max_encoder_bitrate: AtomicI32,
    audio_format: Mutex<Option<AudioCaps>>,
    video_format: Mutex<Option<VideoCaps>>,
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
        shared.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;
        let cfg = ctx.config();
        let bitrate = |k: &str, d: i64| {
            cfg.module_i64("kurento", "MediaElement", k).unwrap_or(d).clamp(0, i32::MAX as i64) as i32
        };
        Ok(ElementCore {
            base,
            bin,
            shared,
            io,
            state: Mutex::new(IoState::default()),
            encoder_bitrate: AtomicI32::new(bitrate("encoderBitrate", 300_000)),
            min_encoder_bitrate: AtomicI32::new(bitrate("minEncoderBitrate", 0)),
            max_encoder_bitrate: AtomicI32::new(bitrate("maxEncoderBitrate", 0)),
            audio_format: Mutex::new(None),
            video_format: Mutex::new(None),
        })
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
        let mut st = self.state.lock();
        let key = (t, desc.to_string());
        if let Some(i) = st.inputs.get(&key) {
            return Some(i.ghost.clone().upcast());
        }
        let target = self.io.input(&self.bin, t, desc)?;
        let ghost = gst::GhostPad::builder_with_target(&target)
            .ok()?
            .name(format!("sink_{}_{}", media_type_name(t), sanitize(desc)))
            .build();
        let _ = ghost.set_active(true);
        self.bin.add_pad(&ghost).ok()?;
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
        st.inputs.insert(key, Input { ghost: ghost.clone(), target, meter });
        Some(ghost.upcast())
    }

    /// The pad inside the bin an input ghost points at.
    fn input_target(&self, t: MediaType, desc: &str) -> Option<(gst::GhostPad, gst::Pad)> {
        let st = self.state.lock();
        st.inputs.get(&(t, desc.to_string())).map(|i| (i.ghost.clone(), i.target.clone()))
    }

    /// The agnosticbin producing output `(t, desc)`, created on first use.
    pub fn output(&self, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        let mut st = self.state.lock();
        let key = (t, desc.to_string());
        if let Some(o) = st.outputs.get(&key) {
            return Some(o.agnostic.clone());
        }
        let agnostic = self.io.output(&self.bin, t, desc)?;
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
        Some(agnostic)
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

    fn apply_bitrate(&self) {
        let b = self.bitrate();
        let outputs: Vec<AgnosticBin> = self.state.lock().outputs.values().map(|o| o.agnostic.clone()).collect();
        for a in outputs {
            a.set_bitrate(b);
        }
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

    /// Tears the element down: every link in or out goes, the bin leaves the
    /// pipeline.
    pub fn release(&self) {
        let id = self.base.id().clone();
        let removed: Vec<Link> = {
            let mut links = self.shared.links.lock();
            let (gone, keep): (Vec<Link>, Vec<Link>) = links.drain(..).partition(|l| l.source == id || l.sink == id);
            *links = keep;
            gone
        };
        for l in removed {
            unlink(&l);
            raise_disconnected(&l);
        }
        let _ = self.bin.set_state(gst::State::Null);
        let _ = self.shared.pipeline.remove(&self.bin);
    }
}

fn flow_state(flowing: bool) -> MediaFlowState {
    if flowing { MediaFlowState::Flowing } else { MediaFlowState::NotFlowing }
}

fn sanitize(desc: &str) -> String {
    desc.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn unlink(l: &Link) {
    // A loopback link has no ghost: `src_ghost` is the branch pad itself.
    if l.src_ghost != l.branch_pad {
        let _ = l.src_ghost.set_active(false);
        let _ = l.source_bin.remove_pad(&l.src_ghost);
    }
    l.agnostic.release_request_pad(&l.branch_pad);
}

fn raise_disconnected(l: &Link) {
    l.source_base.raise(&ElementDisconnected {
        sink: l.sink.clone(),
        media_type: l.media_type,
        source_media_description: l.source_description.clone(),
        sink_media_description: l.sink_description.clone(),
    });
}

/// Media types a call applies to: all three when none is given (spec §10.3).
fn types(t: Option<MediaType>) -> Vec<MediaType> {
    match t {
        Some(t) => vec![t],
        None => vec![MediaType::Audio, MediaType::Video, MediaType::Data],
    }
}

/// `connect` of spec §10.3, for one source/sink pair.
pub fn connect(
    source: &ElementCore,
    sink: &ElementCore,
    media_type: Option<MediaType>,
    source_desc: &str,
    sink_desc: &str,
) -> Result<()> {
    if source.shared.id != sink.shared.id {
        return Err(Error::Connect("Media elements do not share pipeline".into()));
    }
    for t in types(media_type) {
        let Some(agnostic) = source.output(t, source_desc) else {
            return Err(Error::Connect(format!(
                "Element: '{}'does note provide a connection for {} {}",
                source.base.name(),
                t,
                source_desc
            )));
        };
        let Some(sink_pad) = sink.input_pad(t, sink_desc) else {
            return Err(Error::Connect(format!("Element: '{}' does not accept {} {}", sink.base.name(), t, sink_desc)));
        };
        let replaced = {
            let mut links = source.shared.links.lock();
            let sink_id = sink.base.id();
            // One source per sink input: the old link goes first.
            let old = links
                .iter()
                .position(|l| &l.sink == sink_id && l.media_type == t && l.sink_description == sink_desc)
                .map(|i| links.remove(i));
            if let Some(o) = &old {
                unlink(o);
            }
            let branch_pad = agnostic
                .request_pad_simple("src_%u")
                .ok_or_else(|| Error::Connect("no pad available on the source's output".into()))?;
            let (in_ghost, in_target) =
                sink.input_target(t, sink_desc).ok_or_else(|| Error::Connect("input vanished".into()))?;
            let ghost: gst::Pad = if source.base.id() == sink_id {
                // Loopback: both ends are children of the same bin, which
                // cannot link to itself; link inside it instead.
                let _ = in_ghost.set_target(None::<&gst::Pad>);
                // Formats are agreed per branch by the agnosticbin (a consumer may
                // accept nothing until it is negotiated): no caps check here.
                // An element whose input *is* its output (PassThrough) fed
                // by itself is a closed loop: its only source is itself, so
                // nothing can ever flow. GStreamer refuses a pad link within
                // one element; the connection exists for the API (events,
                // get*Connections) and the branch stays unlinked.
                let closed_loop =
                    branch_pad.parent_element().is_some() && branch_pad.parent_element() == in_target.parent_element();
                if !closed_loop && let Err(e) = branch_pad.link_full(&in_target, gst::PadLinkCheck::HIERARCHY) {
                    let _ = in_ghost.set_target(Some(&in_target));
                    agnostic.release_request_pad(&branch_pad);
                    return Err(Error::Connect(format!("cannot link: {e:?}")));
                }
                branch_pad.clone()
            } else {
                if in_ghost.target().is_none() {
                    let _ = in_ghost.set_target(Some(&in_target));
                }
                let ghost = gst::GhostPad::builder_with_target(&branch_pad)
                    .map_err(|e| Error::Connect(e.to_string()))?
                    .name(format!("src_{}_{}_{}", media_type_name(t), sanitize(source_desc), branch_pad.name()))
                    .build();
                let _ = ghost.set_active(true);
                source.bin.add_pad(&ghost).map_err(|e| Error::Connect(e.to_string()))?;
                if let Err(e) = ghost.link_full(&sink_pad, gst::PadLinkCheck::HIERARCHY) {
                    let _ = source.bin.remove_pad(&ghost);
                    agnostic.release_request_pad(&branch_pad);
                    return Err(Error::Connect(format!("cannot link: {e:?}")));
                }
                ghost.upcast()
            };
            links.push(Link {
                source: source.base.id().clone(),
                sink: sink_id.clone(),
                media_type: t,
                source_description: source_desc.to_string(),
                sink_description: sink_desc.to_string(),
                source_base: source.base.clone(),
                source_bin: source.bin.clone(),
                agnostic: agnostic.clone(),
                branch_pad,
                src_ghost: ghost,
            });
            old
        };
        if let Some(o) = replaced {
            raise_disconnected(&o);
        }
        source.base.raise(&ElementConnected {
            sink: sink.base.id().clone(),
            media_type: t,
            source_media_description: source_desc.to_string(),
            sink_media_description: sink_desc.to_string(),
        });
    }
    Ok(())
}

/// `disconnect` of spec §10.3: never fails, always raises the event.
pub fn disconnect(
    source: &ElementCore,
    sink: &ElementCore,
    media_type: Option<MediaType>,
    source_desc: &str,
    sink_desc: &str,
) {
    for t in types(media_type) {
        let found = {
            let mut links = source.shared.links.lock();
            let pos = links.iter().position(|l| {
                &l.source == source.base.id()
                    && &l.sink == sink.base.id()
                    && l.media_type == t
                    && l.source_description == source_desc
                    && l.sink_description == sink_desc
            });
            pos.map(|i| links.remove(i))
        };
        if let Some(l) = &found {
            unlink(l);
        }
        source.base.raise(&ElementDisconnected {
            sink: sink.base.id().clone(),
            media_type: t,
            source_media_description: source_desc.to_string(),
            sink_media_description: sink_desc.to_string(),
        });
    }
}

fn connection_data(l: &Link) -> ElementConnectionData {
    ElementConnectionData {
        source: l.source.clone(),
        sink: l.sink.clone(),
        r#type: l.media_type,
        source_description: l.source_description.clone(),
        sink_description: l.sink_description.clone(),
    }
}

pub fn dot_details(d: Option<GstreamerDotDetails>) -> gst::DebugGraphDetails {
    use gst::DebugGraphDetails as D;
    match d.unwrap_or(GstreamerDotDetails::ShowVerbose) {
        GstreamerDotDetails::ShowMediaType => D::MEDIA_TYPE,
        GstreamerDotDetails::ShowCapsDetails => D::CAPS_DETAILS,
        GstreamerDotDetails::ShowNonDefaultParams => D::NON_DEFAULT_PARAMS,
        GstreamerDotDetails::ShowStates => D::STATES,
        GstreamerDotDetails::ShowFullParams => D::FULL_PARAMS,
        GstreamerDotDetails::ShowAll => D::ALL,
        GstreamerDotDetails::ShowVerbose => D::VERBOSE,
    }
}

/// Writes a DOT graph into `$GST_DEBUG_DUMP_DOT_DIR` (spec §10.2).
pub fn dump_dot(bin: &gst::Bin, id: &ObjectId, details: Option<GstreamerDotDetails>) {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let name = format!("{ts}-{}", id.as_str().replace(['/', '.'], "_"));
    bin.debug_to_dot_file(dot_details(details), name);
}

/// Elements: anything giving access to an [`ElementCore`].
pub trait ElementObject: RemoteObject {
    fn core(&self) -> &ElementCore;

    /// Stats beyond the element's own record (endpoints add RTP, transport,
    /// candidate-pair ... stats), keyed by stat id.
    fn extra_stats(&self, _media_type: Option<MediaType>) -> Vec<(String, Polymorphic)> {
        vec![]
    }

    /// The element's own stats record: `ElementStats` unless overridden
    /// (endpoints report `EndpointStats`).
    fn element_stats(&self, timestamp_millis: i64) -> Polymorphic {
        Polymorphic::of(&ElementStats {
            id: self.core().base.id().to_string(),
            r#type: StatsType::Element,
            timestamp_millis,
            input_latency: vec![],
        })
    }
}

fn element_of(o: &Arc<dyn MediaElement>) -> Result<&ElementCore> {
    o.element().ok_or_else(|| Error::Connect("sink is not a media element".into()))
}

impl<T: ElementObject> MediaElement for T {
    fn get_source_connections(
        &self,
        _ctx: &Ctx,
        media_type: Option<MediaType>,
        description: Option<String>,
    ) -> Result<Vec<ElementConnectionData>> {
        let core = self.core();
        let links = core.shared.links.lock();
        Ok(links
            .iter()
            .filter(|l| &l.sink == core.base.id())
            .filter(|l| media_type.is_none_or(|t| t == l.media_type))
            .filter(|l| description.as_ref().is_none_or(|d| *d == l.sink_description))
            .map(connection_data)
            .collect())
    }

    fn get_sink_connections(
        &self,
        _ctx: &Ctx,
        media_type: Option<MediaType>,
        description: Option<String>,
    ) -> Result<Vec<ElementConnectionData>> {
        let core = self.core();
        let links = core.shared.links.lock();
        Ok(links
            .iter()
            .filter(|l| &l.source == core.base.id())
            .filter(|l| media_type.is_none_or(|t| t == l.media_type))
            .filter(|l| description.as_ref().is_none_or(|d| *d == l.source_description))
            .map(connection_data)
            .collect())
    }

    fn connect(
        &self,
        _ctx: &Ctx,
        sink: Arc<dyn MediaElement>,
        media_type: Option<MediaType>,
        source_media_description: Option<String>,
        sink_media_description: Option<String>,
    ) -> Result<()> {
        let sink_core = element_of(&sink)?;
        connect(
            self.core(),
            sink_core,
            media_type,
            source_media_description.as_deref().unwrap_or("default"),
            sink_media_description.as_deref().unwrap_or("default"),
        )
    }

    fn disconnect(
        &self,
        _ctx: &Ctx,
        sink: Arc<dyn MediaElement>,
        media_type: Option<MediaType>,
        source_media_description: Option<String>,
        sink_media_description: Option<String>,
    ) -> Result<()> {
        let sink_core = element_of(&sink)?;
        disconnect(
            self.core(),
            sink_core,
            media_type,
            source_media_description.as_deref().unwrap_or("default"),
            sink_media_description.as_deref().unwrap_or("default"),
        );
        Ok(())
    }

    fn set_audio_format(&self, _ctx: &Ctx, caps: AudioCaps) -> Result<()> {
        *self.core().audio_format.lock() = Some(caps);
        Ok(())
    }

    fn set_video_format(&self, _ctx: &Ctx, caps: VideoCaps) -> Result<()> {
        *self.core().video_format.lock() = Some(caps);
        Ok(())
    }

    fn dump_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<()> {
        dump_dot(&self.core().bin, self.core().base.id(), details);
        Ok(())
    }

    fn get_gstreamer_dot(&self, _ctx: &Ctx, details: Option<GstreamerDotDetails>) -> Result<String> {
        Ok(self.core().bin.debug_to_dot_data(dot_details(details)).to_string())
    }

    fn get_stats(&self, _ctx: &Ctx, media_type: Option<MediaType>) -> Result<BTreeMap<String, Polymorphic>> {
        let core = self.core();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut m = BTreeMap::new();
        m.insert(core.base.id().to_string(), self.element_stats(ts));
        m.extend(self.extra_stats(media_type));
        Ok(m)
    }

    fn is_media_flowing_in(&self, _ctx: &Ctx, media_type: MediaType, sink_media_description: String) -> Result<bool> {
        if media_type == MediaType::Data {
            return Err(Error::IllegalParam("DATA is not supported by isMediaFlowingIn".into()));
        }
        Ok(self.core().is_flowing_in(media_type, &sink_media_description))
    }

    fn is_media_flowing_out(
        &self,
        _ctx: &Ctx,
        media_type: MediaType,
        source_media_description: String,
    ) -> Result<bool> {
        if media_type == MediaType::Data {
            return Err(Error::IllegalParam("DATA is not supported by isMediaFlowingOut".into()));
        }
        Ok(self.core().is_flowing_out(media_type, &source_media_description))
    }

    fn is_media_transcoding(&self, _ctx: &Ctx, media_type: MediaType, bin_name: String) -> Result<bool> {
        if media_type == MediaType::Data {
            return Err(Error::IllegalParam("DATA is not supported by isMediaTranscoding".into()));
        }
        Ok(self.core().is_transcoding(media_type, &bin_name))
    }

    fn get_encoder_bitrate(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.core().encoder_bitrate.load(Ordering::Relaxed))
    }

    fn set_encoder_bitrate(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.core().encoder_bitrate.store(value, Ordering::Relaxed);
        self.core().apply_bitrate();
        Ok(())
    }

    fn get_min_encoder_bitrate(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.core().min_encoder_bitrate.load(Ordering::Relaxed))
    }

    fn set_min_encoder_bitrate(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.core().min_encoder_bitrate.store(value, Ordering::Relaxed);
        self.core().apply_bitrate();
        Ok(())
    }

    fn get_max_encoder_bitrate(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.core().max_encoder_bitrate.load(Ordering::Relaxed))
    }

    fn set_max_encoder_bitrate(&self, _ctx: &Ctx, value: i32) -> Result<()> {
        self.core().max_encoder_bitrate.store(value, Ordering::Relaxed);
        self.core().apply_bitrate();
        Ok(())
    }
}
