//! `kmsfilterstage` on its own: raw media goes through the processing
//! element (format converted on both sides) and the element messages it
//! posts reach the stage's hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_filters::base::{FilterStage, StageKind};

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `src ! stage ! appsink`, counting buffers; returns the pipeline.
fn run(src: &str, stage: &FilterStage, count: Arc<AtomicUsize>) -> gst::Pipeline {
    run_with(src, stage, count, || {})
}

/// [`run`], calling `linked` after linking, before playing.
fn run_with(src: &str, stage: &FilterStage, count: Arc<AtomicUsize>, linked: impl FnOnce()) -> gst::Pipeline {
    let pipeline = gst::Pipeline::new();
    let src = gst::parse::bin_from_description(src, true).unwrap();
    let sink = gst_app_sink(count);
    pipeline.add_many([src.upcast_ref(), stage.upcast_ref(), &sink]).unwrap();
    gst::Element::link_many([src.upcast_ref(), stage.upcast_ref(), &sink]).unwrap();
    linked();
    let _ = pipeline.set_state(gst::State::Playing);
    pipeline
}

fn gst_app_sink(count: Arc<AtomicUsize>) -> gst::Element {
    let sink = gst::ElementFactory::make("fakesink").property("signal-handoffs", true).build().unwrap();
    sink.connect("handoff", false, move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        None
    });
    sink
}

#[test]
fn video_stage_converts_around_a_processing_element_that_wants_another_format() {
    gst::init().unwrap();
    // videoflip takes I420 here; the processing bin insists on RGBA, which
    // the stage's converters must provide and undo.
    let processing = gst::parse::bin_from_description(
        "capsfilter caps=video/x-raw,format=RGBA ! videoflip method=horizontal-flip",
        true,
    )
    .unwrap();
    let stage = FilterStage::new(StageKind::Video, processing.upcast_ref()).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let p = run(
        "videotestsrc num-buffers=30 ! capsfilter caps=video/x-raw,format=I420,width=64,height=48",
        &stage,
        count.clone(),
    );
    wait_until("30 frames through the stage", Duration::from_secs(10), || count.load(Ordering::SeqCst) >= 30);
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn element_messages_of_the_processing_element_reach_the_hook() {
    gst::init().unwrap();
    let level = gst::ElementFactory::make("level").property("interval", 10_000_000u64).build().unwrap();
    let stage = FilterStage::new(StageKind::Audio, &level).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    stage.set_message_hook(Box::new(move |m| {
        if m.structure().is_some_and(|st| st.name() == "level") {
            s.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let count = Arc::new(AtomicUsize::new(0));
    let p = run("audiotestsrc num-buffers=20 ! capsfilter caps=audio/x-raw,rate=8000", &stage, count.clone());
    wait_until("level messages", Duration::from_secs(10), || seen.load(Ordering::SeqCst) >= 3);
    wait_until("audio through the stage", Duration::from_secs(10), || count.load(Ordering::SeqCst) > 0);
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_processing_element_may_ask_for_another_picture_size() {
    gst::init().unwrap();
    let processing = gst::ElementFactory::make("capsfilter")
        .property("caps", gst::Caps::builder("video/x-raw").field("width", 32).field("height", 24).build())
        .build()
        .unwrap();
    let stage = FilterStage::new(StageKind::Video, &processing).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let p = run(
        "videotestsrc num-buffers=5 ! capsfilter caps=video/x-raw,format=I420,width=64,height=48",
        &stage,
        count.clone(),
    );
    wait_until("5 frames through the stage", Duration::from_secs(10), || count.load(Ordering::SeqCst) >= 5);
    let caps = stage.static_pad("src").unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (32, 24));
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_picture_size_beyond_the_bounds_fails_instead_of_allocating() {
    gst::init().unwrap();
    // Fixed caps beyond the bounds: the stage cannot even be built.
    let huge = gst::ElementFactory::make("capsfilter")
        .property("caps", gst::Caps::builder("video/x-raw").field("width", 20_000).field("height", 20_000).build())
        .build()
        .unwrap();
    assert!(FilterStage::new(StageKind::Video, &huge).is_err());
    // (Values videoscale and videobox accept: 20000x20000 I420 is 600 MB.)
    let wide =
        gst::ElementFactory::make("videobox").property("left", -20_000i32).property("top", -20_000i32).build().unwrap();
    assert!(FilterStage::new(StageKind::Video, &wide).is_err());
    // Made huge after the stage was built (setElementProperty): negotiation
    // fails at run time.
    let videobox = gst::ElementFactory::make("videobox").build().unwrap();
    let stage = FilterStage::new(StageKind::Video, &videobox).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let p = run_with(
        "videotestsrc num-buffers=1 ! capsfilter caps=video/x-raw,format=I420,width=64,height=48",
        &stage,
        count.clone(),
        || {
            videobox.set_property("left", -20_000i32);
            videobox.set_property("top", -20_000i32);
        },
    );
    let bus = p.bus().unwrap();
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error, gst::MessageType::Eos]);
    assert!(matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Error(_))), "{msg:?}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    p.set_state(gst::State::Null).unwrap();
}
