//! Overlay pictures fetched from a URI (`file://` inside the media roots,
//! `http(s)://`) and decoded, ready to be blended over video.
//!
//! Loading runs in a small GStreamer pipeline of its own (source →
//! `decodebin` → `videoconvert` → BGRA `appsink`), never in the media
//! pipeline and never on an RPC or streaming thread: callers run
//! [`load`] on a thread of their own. Everything a client could make large
//! is bounded: bytes read, decoded size, time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use kms_elements::uri::{CheckedUri, Scheme};

/// Longest time a picture may take to arrive and decode.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest encoded picture read (bytes).
pub const MAX_ENCODED_BYTES: u64 = 32 * 1024 * 1024;
/// Largest decoded picture, per side.
pub const MAX_SIDE: u32 = 4096;

/// Why a picture cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The URI is refused before anything is opened (syntax, scheme, media
    /// roots, allowed hosts): the method's JSON-RPC error.
    #[error("{0}")]
    Refused(String),
    /// Opening, reading or decoding failed; `kind` is the `Error` event
    /// type (`RESOURCE_ERROR_OPEN`, `STREAM_ERROR_DECODE`, ...), `code` its
    /// `errorCode` (the GLib error code, 0 for limits of ours).
    #[error("Cannot load image '{uri}': {message}")]
    Load { uri: String, kind: &'static str, code: i32, message: String },
}

impl ImageError {
    /// The `Error` event `type` for this failure.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::Refused(_) => "INVALID_URI",
            ImageError::Load { kind, .. } => kind,
        }
    }

    /// The `Error` event `errorCode` (spec §7.2: the GLib error code).
    pub fn code(&self) -> i32 {
        match self {
            ImageError::Refused(_) => 0,
            ImageError::Load { code, .. } => *code,
        }
    }
}

/// Where a picture comes from, checked against the server's policy.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// As the client gave it (for messages).
    pub given: String,
    location: Target,
}

#[derive(Debug, Clone)]
enum Target {
    File(PathBuf),
    Http(String),
}

impl ImageSource {
    /// Parses `uri` and applies the media access policy
    /// (`mediaServer.resources.mediaRoots`, `allowedHosts`); only files and
    /// http(s) are pictures.
    pub fn check(config: &kms_core::CoreConfig, uri: &str) -> Result<ImageSource, ImageError> {
        let checked = CheckedUri::new(config, uri).map_err(|e| ImageError::Refused(e.to_string()))?;
        let location = match (&checked.location.scheme, &checked.path) {
            (Scheme::File, Some(p)) => Target::File(p.clone()),
            (Scheme::Http | Scheme::Https, _) => Target::Http(checked.location.resolved.clone()),
            _ => {
                return Err(ImageError::Refused(format!(
                    "Unsupported image URI '{uri}': only file:// (inside the media roots) and http(s):// are read"
                )));
            }
        };
        Ok(ImageSource { given: checked.given().to_string(), location })
    }
}

/// A decoded picture: BGRA (GStreamer's overlay format on little-endian
/// machines), with a `GstVideoMeta`, shared by every frame it is drawn on.
#[derive(Debug, Clone)]
pub struct OverlayImage {
    pub buffer: gst::Buffer,
    pub width: u32,
    pub height: u32,
}

/// Fetches and decodes `src`; blocks up to [`LOAD_TIMEOUT`].
pub fn load(src: &ImageSource) -> Result<OverlayImage, ImageError> {
    let fail =
        |kind: &'static str, message: String| ImageError::Load { uri: src.given.clone(), kind, code: 0, message };
    let built = build(src).map_err(|e| fail("UNEXPECTED_ELEMENT_ERROR", e.to_string()))?;
    let _stop = StopOnDrop(built.pipeline.clone());
    let bus = built.pipeline.bus().expect("pipelines have a bus");
    if let Err(e) = built.pipeline.set_state(gst::State::Paused) {
        // An element that failed to start (filesrc: no such file) posted
        // why on the bus.
        return Err(match bus.pop_filtered(&[gst::MessageType::Error]) {
            Some(msg) => error_of(src, &built, &msg),
            None => fail("RESOURCE_ERROR_OPEN", e.to_string()),
        });
    }
    let deadline = Instant::now() + LOAD_TIMEOUT;
    loop {
        if built.read.load(Ordering::Relaxed) > MAX_ENCODED_BYTES {
            return Err(fail("RESOURCE_ERROR_READ", format!("larger than {MAX_ENCODED_BYTES} bytes")));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(fail("RESOURCE_ERROR_READ", format!("not loaded within {} s", LOAD_TIMEOUT.as_secs())));
        }
        let wait = (deadline - now).min(Duration::from_millis(100));
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(wait.as_nanos() as u64),
            &[gst::MessageType::Error, gst::MessageType::AsyncDone, gst::MessageType::Eos],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(_) => return Err(error_of(src, &built, &msg)),
            gst::MessageView::Eos(_) => return Err(fail("STREAM_ERROR_DECODE", "no picture in the data".into())),
            _ => break,
        }
    }
    let sample = built
        .sink
        .try_pull_preroll(gst::ClockTime::from_seconds(1))
        .ok_or_else(|| fail("STREAM_ERROR_DECODE", "no picture in the data".into()))?;
    to_image(&sample).map_err(|m| fail("STREAM_ERROR_DECODE", m))
}

/// The load error for an `ERROR` message. The source failing without a
/// resource error of its own (souphttpsrc on a refused connection only
/// says "Internal data stream error") is still a resource that cannot be
/// read.
fn error_of(src: &ImageSource, built: &Built, msg: &gst::Message) -> ImageError {
    let gst::MessageView::Error(e) = msg.view() else { unreachable!("filtered on ERROR") };
    let err = e.error();
    let kind = kms_core::pipeline::error_type(&err);
    let from_source = msg.src().is_some_and(|s| s == built.source.upcast_ref::<gst::Object>());
    let (kind, message) = if from_source && !kind.starts_with("RESOURCE_ERROR") {
        ("RESOURCE_ERROR_READ", format!("nothing could be read ({})", err.message()))
    } else {
        (kind, err.message().to_string())
    };
    ImageError::Load { uri: src.given.clone(), kind, code: err.code(), message }
}

struct Built {
    source: gst::Element,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    /// Bytes the source produced so far.
    read: Arc<AtomicU64>,
}

fn build(src: &ImageSource) -> Result<Built, gst::glib::BoolError> {
    let pipeline = gst::Pipeline::builder().name("overlay-image").build();
    let source = match &src.location {
        Target::File(p) => gst::ElementFactory::make("filesrc").property("location", p.to_string_lossy().into_owned()),
        Target::Http(u) => gst::ElementFactory::make("souphttpsrc")
            .property("location", u)
            .property("timeout", LOAD_TIMEOUT.as_secs() as u32),
    }
    .build()?;
    let decode = gst::ElementFactory::make("decodebin").build()?;
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", "BGRA").build())
        .sync(false)
        .max_buffers(1)
        .build();
    pipeline.add_many([&source, &decode, &convert, sink.upcast_ref()])?;
    source.link(&decode)?;
    convert.link(&sink)?;
    let read = Arc::new(AtomicU64::new(0));
    if let Some(pad) = source.static_pad("src") {
        let read = read.clone();
        // Past the limit, data is dropped (the decoder starves) and the
        // loading loop reports it.
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let n = info.buffer().map_or(0, |b| b.size() as u64);
            if read.fetch_add(n, Ordering::Relaxed) + n > MAX_ENCODED_BYTES {
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    }
    let convert_weak = convert.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let is_video =
            pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/"))).unwrap_or(false);
        if let (true, Some(convert)) = (is_video, convert_weak.upgrade())
            && let Some(sink) = convert.static_pad("sink")
            && !sink.is_linked()
        {
            let _ = pad.link(&sink);
        }
    });
    Ok(Built { pipeline, source, sink, read })
}

fn to_image(sample: &gst::Sample) -> Result<OverlayImage, String> {
    let caps = sample.caps().ok_or("no caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let (w, h) = (info.width(), info.height());
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("{w}x{h} picture, at most {MAX_SIDE}x{MAX_SIDE} is accepted"));
    }
    let buffer = sample.buffer().ok_or("no picture")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|e| e.to_string())?;
    let stride = frame.info().stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|e| e.to_string())?;
    // Tightly packed copy: the rectangle's buffer owns its pixels and its
    // video meta describes them.
    let row = w as usize * 4;
    let mut pixels = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    let mut out = gst::Buffer::from_mut_slice(pixels);
    gst_video::VideoMeta::add(
        out.get_mut().expect("fresh buffer"),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Bgra,
        w,
        h,
    )
    .map_err(|e| e.to_string())?;
    Ok(OverlayImage { buffer: out, width: w, height: h })
}

/// The loading pipeline goes to NULL however `load` returns.
struct StopOnDrop(gst::Pipeline);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}
