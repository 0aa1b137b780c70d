//! The OpenCVFilter base: a tiny `FrameProcessor` changes real frames in
//! place, in the format it asked for, and raises events through its
//! `EventSink`.

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use kms_filters::base::{FilterStage, StageKind};
use kms_filters::opencv::{EventSink, FrameProcessor, FrameProcessorElement, processing_bin};

/// Paints the left half of each frame green (GRAY8 would not be asked
/// for: it works on BGRx only) and reports every 10th frame.
struct PaintLeftGreen {
    frames: u32,
    seen_formats: Arc<Mutex<Vec<VideoFormat>>>,
}

impl FrameProcessor for PaintLeftGreen {
    fn formats(&self) -> Vec<VideoFormat> {
        vec![VideoFormat::Bgrx]
    }

    fn process(&mut self, frame: &mut VideoFrameRef<&mut gst::BufferRef>, events: &EventSink) {
        self.seen_formats.lock().unwrap().push(frame.format());
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data_mut(0).unwrap();
        for y in 0..h {
            for x in 0..w / 2 {
                let p = y * stride + x * 4;
                data[p..p + 4].copy_from_slice(&[0, 255, 0, 0]); // B G R x
            }
        }
        self.frames += 1;
        if self.frames.is_multiple_of(10) {
            events.error("TEST", format!("{} frames", self.frames));
        }
    }
}

#[test]
fn a_frame_processor_changes_frames_in_its_format_and_raises_events() {
    gst::init().unwrap();
    let formats = Arc::new(Mutex::new(vec![]));
    let element = FrameProcessorElement::new(Box::new(PaintLeftGreen { frames: 0, seen_formats: formats.clone() }));
    let raised = Arc::new(Mutex::new(vec![]));
    let r = raised.clone();
    element.set_events(EventSink::from_fn(move |name, fields| {
        r.lock().unwrap().push((name.to_string(), fields["description"].as_str().unwrap().to_string()));
    }));
    let caps = gst_video::VideoCapsBuilder::new().format(VideoFormat::Bgrx).build();
    let bin = processing_bin(&caps, element.upcast_ref()).unwrap();
    let stage = FilterStage::new(StageKind::Video, bin.upcast_ref()).unwrap();

    // Red I420 in, RGBA out: the stage converts both ways.
    let pipeline = gst::Pipeline::new();
    let src = gst::parse::bin_from_description(
        "videotestsrc num-buffers=20 pattern=solid-color foreground-color=0xffff0000 ! \
         capsfilter caps=video/x-raw,format=I420,width=64,height=48",
        true,
    )
    .unwrap();
    let out = gst::parse::bin_from_description("capsfilter caps=video/x-raw,format=RGBA", true).unwrap();
    let sink = gst_app::AppSink::builder().sync(false).build();
    let chain: [&gst::Element; 4] = [src.upcast_ref(), stage.upcast_ref(), out.upcast_ref(), sink.upcast_ref()];
    pipeline.add_many(chain).unwrap();
    gst::Element::link_many(chain).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(10)).expect("a frame");
    let buffer = sample.buffer().unwrap().map_readable().unwrap();
    let px = |x: usize, y: usize| buffer[(y * 64 + x) * 4..(y * 64 + x) * 4 + 3].to_vec();
    let (left, right) = (px(10, 24), px(54, 24));
    assert!(left[1] > 200 && left[0] < 60 && left[2] < 60, "left half painted green: {left:?}");
    assert!(right[0] > 200 && right[1] < 60, "right half still red: {right:?}");
    drop(buffer);
    // Drain the rest: every frame went through the processor.
    let mut n = 1;
    while sink.try_pull_sample(gst::ClockTime::from_seconds(10)).is_some() {
        n += 1;
    }
    assert_eq!(n, 20, "all frames came out");
    pipeline.set_state(gst::State::Null).unwrap();

    assert!(formats.lock().unwrap().iter().all(|f| *f == VideoFormat::Bgrx), "frames came as BGRx");
    assert_eq!(formats.lock().unwrap().len(), 20);
    let raised = raised.lock().unwrap();
    assert_eq!(
        *raised,
        vec![("Error".to_string(), "10 frames".to_string()), ("Error".to_string(), "20 frames".to_string())]
    );
}
