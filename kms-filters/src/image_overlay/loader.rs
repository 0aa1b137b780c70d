//! Loading an overlay image (`file://` inside the media roots, or
//! `http(s)://` of an allowed host) into one BGRA buffer, with GStreamer's
//! own decoders (PNG, JPEG, ... whatever `uridecodebin` finds).
//!
//! Runs on the calling (RPC) thread in a small pipeline of its own, bounded
//! by [`LOAD_TIMEOUT`] and [`MAX_SIDE`], so a slow server or a huge image
//! costs the caller, never the media pipeline.

use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::VideoFormat;
use kms_elements::uri::{CheckedUri, UriError};

/// How long fetching and decoding may take.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest width or height accepted (a 4096×4096 BGRA image is 64 MiB).
pub const MAX_SIDE: i32 = 4096;

/// A decoded image: BGRA (not premultiplied) with a `VideoMeta`.
#[derive(Debug, Clone)]
pub struct Image {
    pub buffer: gst::Buffer,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Refused by the media access policy (40107).
    #[error(transparent)]
    Refused(#[from] UriError),
    /// A scheme other than file, http, https (40107).
    #[error("Unsupported image URI '{0}': only file://, http:// and https:// are accepted")]
    Scheme(String),
    /// Missing, unreachable, not an image, too large, too slow (40600).
    #[error("Cannot load image '{uri}': {reason}")]
    Load { uri: String, reason: String },
}

impl From<LoadError> for kms_core::Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Load { .. } => kms_core::Error::Code { code: 40600, message: e.to_string() },
            _ => kms_core::Error::IllegalParam(e.to_string()),
        }
    }
}

/// Loads `uri` (relative paths resolve against `UriEndpoint` `defaultPath`).
pub fn load(config: &kms_core::CoreConfig, uri: &str) -> Result<Image, LoadError> {
    let checked = CheckedUri::new(config, uri)?;
    let gst_uri = checked.gst_uri();
    let scheme = gst_uri.split(':').next().unwrap_or("").to_ascii_lowercase();
    if !matches!(scheme.as_str(), "file" | "http" | "https") {
        return Err(LoadError::Scheme(uri.to_string()));
    }
    let fail = |reason: String| LoadError::Load { uri: uri.to_string(), reason };
    let (pipeline, sink) = build(&gst_uri).map_err(|e| fail(e.to_string()))?;
    let result = decode(&pipeline, &sink).map_err(fail);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn build(uri: &str) -> Result<(gst::Pipeline, gst_app::AppSink), gst::glib::BoolError> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("uridecodebin").property("uri", uri).build()?;
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let caps = gst_video::VideoCapsBuilder::new()
        .format(VideoFormat::Bgra)
        .width_range(1..=MAX_SIDE)
        .height_range(1..=MAX_SIDE)
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).max_buffers(1).build();
    pipeline.add_many([&src, &convert, sink.upcast_ref()])?;
    convert.link(&sink)?;
    let convert_sink = convert.static_pad("sink").ok_or_else(|| gst::glib::bool_error!("no sink pad"))?;
    src.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if is_video && !convert_sink.is_linked() {
            let _ = pad.link(&convert_sink);
        }
    });
    Ok((pipeline, sink))
}

fn decode(pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Result<Image, String> {
    pipeline.set_state(gst::State::Paused).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let deadline = Instant::now() + LOAD_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out after {} s", LOAD_TIMEOUT.as_secs()));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(left.as_millis() as u64),
            &[gst::MessageType::Error, gst::MessageType::AsyncDone, gst::MessageType::Eos],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return Err(e.error().to_string()),
            gst::MessageView::Eos(_) => return Err("no picture in it".into()),
            _ => break,
        }
    }
    let sample = sink.try_pull_preroll(gst::ClockTime::from_seconds(1)).ok_or("no picture in it")?;
    let info = sample.caps().and_then(|c| gst_video::VideoInfo::from_caps(c).ok()).ok_or("not a picture")?;
    let mut buffer = sample.buffer().ok_or("no picture in it")?.copy();
    {
        let b = buffer.get_mut().ok_or("buffer not writable")?;
        // The overlay API needs the layout on the buffer.
        if b.meta::<gst_video::VideoMeta>().is_none() {
            gst_video::VideoMeta::add_full(
                b,
                gst_video::VideoFrameFlags::empty(),
                VideoFormat::Bgra,
                info.width(),
                info.height(),
                &[0],
                &[info.stride()[0]],
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(Image { buffer, width: info.width(), height: info.height() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_core::config::MediaAccess;

    fn config(root: &std::path::Path) -> kms_core::CoreConfig {
        kms_core::CoreConfig {
            media_access: MediaAccess { media_roots: vec![root.to_path_buf()], allowed_hosts: None },
            ..Default::default()
        }
    }

    /// A 8x4 PNG made by GStreamer itself.
    fn write_png(path: &std::path::Path) {
        gst::init().unwrap();
        let p = gst::parse::launch(&format!(
            "videotestsrc num-buffers=1 pattern=red ! video/x-raw,width=8,height=4 ! pngenc ! filesink location={}",
            path.display()
        ))
        .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        p.bus().unwrap().timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos]).unwrap();
        p.set_state(gst::State::Null).unwrap();
    }

    #[test]
    fn loads_a_png_inside_the_roots_and_refuses_the_rest() {
        let dir = std::env::temp_dir().join(format!("kms-overlay-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("red.png");
        write_png(&png);
        let cfg = config(&dir);
        let img = load(&cfg, &format!("file://{}", png.display())).unwrap();
        assert_eq!((img.width, img.height), (8, 4));
        let map = img.buffer.map_readable().unwrap();
        assert_eq!(&map[0..4], &[0, 0, 255, 255], "BGRA red, opaque");
        drop(map);

        let missing = load(&cfg, &format!("file://{}/missing.png", dir.display())).unwrap_err();
        assert!(matches!(missing, LoadError::Load { .. }), "{missing}");
        assert_eq!(kms_core::Error::from(missing).code(), 40600);
        let outside = load(&cfg, "file:///etc/passwd").unwrap_err();
        assert!(matches!(outside, LoadError::Refused(_)), "{outside}");
        let not_image = dir.join("x.txt");
        std::fs::write(&not_image, b"hello").unwrap();
        assert!(matches!(load(&cfg, &format!("file://{}", not_image.display())), Err(LoadError::Load { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
