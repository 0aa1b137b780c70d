//! The analysis bin shared by ZBarFilter and FaceOverlayFilter: every
//! frame goes on, the gate samples the analysed ones, and a failing
//! analysis does not stop the video.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gst::prelude::*;
use kms_filters::analysis::{FrameGate, build};

/// Runs 60 frames at 30 fps (in real time, as from a camera) through an
/// analysis bin around `analysis`;
/// returns (frames out of the bin, frames reaching the analysis sink).
fn run(analysis: &[gst::Element], per_second: u32) -> (usize, usize) {
    let built = build("test", None, analysis, FrameGate::new(per_second), || true).unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::parse::bin_from_description(
        "videotestsrc num-buffers=60 ! capsfilter caps=video/x-raw,format=I420,width=64,height=48,framerate=30/1",
        true,
    )
    .unwrap();
    let out = gst::ElementFactory::make("fakesink").property("sync", true).build().unwrap();
    pipeline.add_many([src.upcast_ref(), built.bin.upcast_ref(), &out]).unwrap();
    gst::Element::link_many([src.upcast_ref(), built.bin.upcast_ref(), &out]).unwrap();
    let (passed, analysed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for (pad, n) in
        [(out.static_pad("sink").unwrap(), passed.clone()), (built.sink.static_pad("sink").unwrap(), analysed.clone())]
    {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            n.fetch_add(1, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    // Until every frame came out (a failed analysis branch never takes
    // the EOS, so the pipeline would not post one); the failing analysis
    // posts errors of its own, which must not stop the video.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while passed.load(Ordering::SeqCst) < 60 && std::time::Instant::now() < deadline {
        let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Error]) else {
            continue;
        };
        if let gst::MessageView::Error(e) = msg.view() {
            let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            assert!(
                from.starts_with("failing") || from == "analysis_queue",
                "unexpected error from {from}: {}",
                e.error()
            );
        }
    }
    // The last frames' analysis.
    std::thread::sleep(std::time::Duration::from_millis(200));
    pipeline.set_state(gst::State::Null).unwrap();
    (passed.load(Ordering::SeqCst), analysed.load(Ordering::SeqCst))
}

#[test]
fn every_frame_goes_on_and_the_gate_samples_the_analysed_ones() {
    gst::init().unwrap();
    let identity = gst::ElementFactory::make("identity").build().unwrap();
    let (passed, analysed) = run(&[identity], 10);
    assert_eq!(passed, 60);
    // 2 s at 30 fps, 10 a second (the queue may drop one when it lags).
    assert!((18..=20).contains(&analysed), "{analysed} analysed");
}

#[test]
fn a_failing_analysis_does_not_stop_the_video() {
    gst::init().unwrap();
    let failing = gst::ElementFactory::make("identity").name("failing").property("error-after", 3i32).build().unwrap();
    let (passed, analysed) = run(&[failing], 30);
    assert_eq!(passed, 60, "every frame went on");
    assert!(analysed <= 3, "{analysed} analysed");
}
