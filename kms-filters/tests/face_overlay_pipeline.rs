//! The FaceOverlayFilter's processing bin on its own: a real face
//! (tests/browser/fixtures/astronaut.jpg, NASA, public domain) gets the
//! overlay, a picture without a face is left alone, and nothing is drawn
//! before an image is set.

use std::path::PathBuf;

use gst::prelude::*;
use kms_filters::face_overlay::pipeline::{Overlay, OverlayState, build};
use kms_filters::face_overlay::placement::Placement;
use kms_filters::overlay_image::OverlayImage;

const SIZE: u32 = 384;

fn astronaut() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/fixtures/astronaut.jpg")
}

/// A solid green BGRA picture.
fn green() -> OverlayImage {
    gst::init().unwrap();
    let (w, h) = (16u32, 16u32);
    let px = [0u8, 255, 0, 255].repeat((w * h) as usize);
    let mut buffer = gst::Buffer::from_mut_slice(px);
    gst_video::VideoMeta::add(
        buffer.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Bgra,
        w,
        h,
    )
    .unwrap();
    OverlayImage { buffer, width: w, height: h }
}

/// Runs `source ! RGB ! bin ! RGB appsink` for `frames` frames at 30 fps
/// (timestamps as a live source makes them) and returns the last frame.
fn run(source: &str, state: &std::sync::Arc<OverlayState>, frames: u32) -> Vec<u8> {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::parse::bin_from_description(
        &format!(
            "{source} ! videoconvert ! videoscale ! imagefreeze num-buffers={frames} ! capsfilter caps=video/x-raw,format=RGB,width={SIZE},height={SIZE},framerate=30/1"
        ),
        true,
    )
    .unwrap();
    let bin = build(state, 10).unwrap();
    let convert = gst::ElementFactory::make("videoconvert").build().unwrap();
    let sink = gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("video/x-raw").field("format", "RGB").build())
        .sync(true)
        .build();
    pipeline.add_many([src.upcast_ref(), bin.upcast_ref(), &convert, sink.upcast_ref()]).unwrap();
    gst::Element::link_many([src.upcast_ref(), bin.upcast_ref(), &convert, sink.upcast_ref()]).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut last = None;
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        last = Some(s);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let s = last.expect("frames came out");
    let b = s.buffer().unwrap().map_readable().unwrap();
    let stride = (SIZE as usize * 3).next_multiple_of(4);
    let mut out = Vec::with_capacity((SIZE * SIZE * 3) as usize);
    for y in 0..SIZE as usize {
        out.extend_from_slice(&b[y * stride..y * stride + SIZE as usize * 3]);
    }
    out
}

/// Average RGB of a rectangle given in fractions of the frame.
fn average(frame: &[u8], [x, y, w, h]: [f64; 4]) -> [u32; 3] {
    let s = SIZE as f64;
    let (x0, y0, x1, y1) = ((x * s) as usize, (y * s) as usize, ((x + w) * s) as usize, ((y + h) * s) as usize);
    let mut sum = [0u64; 3];
    for yy in y0..y1 {
        for xx in x0..x1 {
            for c in 0..3 {
                sum[c] += frame[(yy * SIZE as usize + xx) * 3 + c] as u64;
            }
        }
    }
    let n = ((x1 - x0) * (y1 - y0)) as u64;
    sum.map(|v| (v / n) as u32)
}

fn is_green(c: [u32; 3]) -> bool {
    c[1] > 200 && c[0] < 60 && c[2] < 60
}

const FACE: [f64; 4] = [0.39, 0.17, 0.09, 0.09];
const AWAY: [f64; 4] = [0.05, 0.75, 0.1, 0.1];

fn face_source() -> String {
    format!("filesrc location={} ! jpegdec", astronaut().display())
}

#[test]
fn the_overlay_covers_the_face_and_only_the_face() {
    let state = OverlayState::new();
    let plain = run(&face_source(), &state, 10);
    assert!(!is_green(average(&plain, FACE)));

    state.set(Some(Overlay { image: green(), placement: Placement::new(0.0, 0.0, 1.0, 1.0).unwrap() }));
    // 30 frames: detection runs on some of them, the last ones are drawn.
    let covered = run(&face_source(), &state, 30);
    assert!(is_green(average(&covered, FACE)), "face {:?}", average(&covered, FACE));
    let (a, b) = (average(&plain, AWAY), average(&covered, AWAY));
    assert!(a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 8), "away from the face {a:?} → {b:?}");
}

#[test]
fn offsets_move_the_overlay_by_face_sizes() {
    let state = OverlayState::new();
    // One face height further down: below the face, on the chin and neck.
    state.set(Some(Overlay { image: green(), placement: Placement::new(0.0, 1.0, 1.0, 1.0).unwrap() }));
    let frame = run(&face_source(), &state, 30);
    assert!(!is_green(average(&frame, FACE)), "the face itself stays visible");
    assert!(is_green(average(&frame, [0.39, 0.36, 0.09, 0.09])), "{:?}", average(&frame, [0.39, 0.36, 0.09, 0.09]));
}

#[test]
fn no_face_no_overlay() {
    let state = OverlayState::new();
    state.set(Some(Overlay { image: green(), placement: Placement::new(0.0, 0.0, 1.0, 1.0).unwrap() }));
    let frame = run("videotestsrc pattern=smpte num-buffers=1", &state, 30);
    let reference = run("videotestsrc pattern=smpte num-buffers=1", &OverlayState::new(), 5);
    assert_eq!(frame.len(), reference.len());
    let differing = frame.iter().zip(&reference).filter(|(a, b)| a.abs_diff(**b) > 2).count();
    assert_eq!(differing, 0, "pixels changed without a face");
}
