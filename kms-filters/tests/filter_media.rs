//! A filter through the Registry, with real agnosticbins on both sides:
//! VP8 in, decoded for the filter, processed, re-encoded per consumer
//! (VP8 out) and handed raw to a consumer asking for raw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use kms_core::api::core::MediaType;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use parking_lot::Mutex;
use serde_json::json;

fn registry() -> Registry {
    kms_core::module::init().unwrap();
    let hub = SessionHub::new(&ServerConfig::default());
    Registry::new(
        vec![kms_core::module::descriptor(), kms_filters::descriptor()],
        hub.notifier(),
        CoreConfig::default(),
    )
}

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An appsink accepting `caps` on a new branch of `id`'s video output;
/// keeps the last sample.
fn tap(r: &Registry, id: &str, caps: gst::Caps) -> Arc<Mutex<(usize, Option<gst::Sample>)>> {
    let h = r.get(id).unwrap();
    let core = h.remote.element().unwrap();
    let branch = core.output(MediaType::Video, "default").unwrap().request_pad_simple("src_%u").unwrap();
    let ghost = gst::GhostPad::with_target(&branch).unwrap();
    ghost.set_active(true).unwrap();
    core.bin().add_pad(&ghost).unwrap();
    let last = Arc::new(Mutex::new((0, None)));
    let l = last.clone();
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .caps(&caps)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut l = l.lock();
                    l.0 += 1;
                    l.1 = Some(sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    let pipeline = core.bin().parent().unwrap().downcast::<gst::Bin>().unwrap();
    pipeline.add(&sink).unwrap();
    sink.sync_state_with_parent().unwrap();
    ghost.link(&sink.static_pad("sink").unwrap()).unwrap();
    last
}

/// Average luma of a column band of an I420 frame (`x0..x1` in pixels).
fn luma(sample: &gst::Sample, x0: u32, x1: u32) -> u32 {
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info).unwrap();
    let (stride, data) = (frame.plane_stride()[0] as usize, frame.plane_data(0).unwrap());
    let (mut sum, mut n) = (0u32, 0u32);
    for y in (0..frame.height() / 2).step_by(4) {
        for x in x0..x1 {
            sum += data[y as usize * stride + x as usize] as u32;
            n += 1;
        }
    }
    sum / n
}

#[test]
fn gstreamer_filter_gets_decoded_video_and_its_output_is_reencoded_per_consumer() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let f = r
        .create(&s, "GStreamerFilter", Some(&json!({"mediaPipeline": p, "command": "videoflip video-direction=horiz"})))
        .unwrap();
    // The VP8 source feeds a PassThrough, whose agnosticbin decodes for the
    // filter once it is connected.
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    r.invoke(&s, &a, "connect", json!({"sink": f, "mediaType": "VIDEO"}).as_object()).unwrap();
    let vp8 = tap(&r, &f, gst::Caps::builder("video/x-vp8").build());
    let raw = tap(&r, &f, gst::Caps::builder("video/x-raw").field("format", "I420").build());
    // SMPTE bars, VP8-encoded: white on the left, blue on the right (top half).
    let h = r.get(&a).unwrap();
    let core = h.remote.element().unwrap();
    let input = core.input_pad(MediaType::Video, "default").unwrap();
    let src = gst::parse::bin_from_description(
        "videotestsrc is-live=true pattern=smpte ! capsfilter caps=video/x-raw,width=160,height=120,framerate=15/1 \
         ! vp8enc deadline=1",
        true,
    )
    .unwrap();
    let pipeline = core.bin().parent().unwrap().downcast::<gst::Bin>().unwrap();
    pipeline.add(&src).unwrap();
    src.static_pad("src").unwrap().link(&input).unwrap();
    src.sync_state_with_parent().unwrap();

    wait_until("VP8 and raw frames out of the filter", Duration::from_secs(20), || {
        vp8.lock().0 > 5 && raw.lock().0 > 5
    });
    let sample = raw.lock().1.clone().unwrap();
    let (left, right) = (luma(&sample, 2, 18), luma(&sample, 142, 158));
    // Mirrored: blue (dark) now on the left, white (bright) on the right.
    assert!(left < 80 && right > 140, "mirrored bars: left luma {left}, right luma {right}");
    assert_eq!(
        r.invoke(&s, &f, "isMediaTranscoding", json!({"mediaType": "VIDEO"}).as_object()).unwrap(),
        json!(true),
        "the VP8 consumer is served by an encoder"
    );
    r.release(&s, &p).unwrap();
    assert_eq!(r.object_count(), 0);
}
