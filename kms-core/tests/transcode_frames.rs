//! A transcoding branch of agnosticbin delivers exactly the source's frames:
//! no frame is duplicated or invented (issue: the VP8 side used to receive
//! more frames than the H.264 source sent, because the SPS/PPS in front of
//! each IDR left the depayloader as a buffer of their own and the decoder
//! turned it into one more picture).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;

/// Counts RTP packets with the marker bit (one per video frame) on `pad`.
fn count_frames(pad: &gst::Pad) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let one = |b: &gst::BufferRef| {
            if let Ok(m) = b.map_readable()
                && m.len() > 1
                && m[1] & 0x80 != 0
            {
                c.fetch_add(1, Ordering::Relaxed);
            }
        };
        match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => one(b),
            Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(one),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    n
}

/// `frames` live frames encoded by `encoder` (gst-launch syntax, RTP out)
/// into an agnosticbin whose only consumer accepts `want`; returns (frames
/// sent, frames delivered).
fn transcode(encoder: &str, want: &str, frames: u32) -> (u64, u64) {
    kms_core::module::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::parse::bin_from_description(
        &format!(
            "videotestsrc is-live=true pattern=ball num-buffers={frames} \
             ! video/x-raw,width=320,height=240,framerate=30/1 ! {encoder}"
        ),
        true,
    )
    .unwrap();
    let agnostic = AgnosticBin::new("agnostic");
    let sink = gst_app::AppSink::builder().caps(&want.parse::<gst::Caps>().unwrap()).sync(false).async_(false).build();
    pipeline.add_many([src.upcast_ref::<gst::Element>(), agnostic.upcast_ref(), sink.upcast_ref()]).unwrap();
    let sent = count_frames(&src.static_pad("src").unwrap());
    src.link(&agnostic).unwrap();
    let branch = agnostic.request_pad_simple("src_%u").unwrap();
    branch.link(&sink.static_pad("sink").unwrap()).unwrap();
    let delivered = count_frames(&sink.static_pad("sink").unwrap());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(|s| {
                s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    // Real time: the source ends after `frames`; then wait for the output
    // to settle.
    let deadline = Instant::now() + Duration::from_secs(frames as u64 / 30 + 20);
    let mut last = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let d = delivered.load(Ordering::Relaxed);
        if d != last.0 {
            last = (d, Instant::now());
        }
        let done = sent.load(Ordering::Relaxed) >= frames as u64 && last.1.elapsed() > Duration::from_secs(2);
        if done || Instant::now() > deadline {
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (sent.load(Ordering::Relaxed), delivered.load(Ordering::Relaxed))
}

/// Runs `run` and checks the counts; a shortfall (frames dropped by a real
/// time encoder starved of CPU on a loaded machine) earns one retry, an
/// excess (duplicated frames, the defect this guards against) never does.
fn check(run: impl Fn() -> (u64, u64)) {
    let (sent, delivered) = run();
    if delivered < sent && (sent - delivered) as f64 / sent as f64 > 0.02 {
        eprintln!("sent {sent}, delivered {delivered}: retrying once (CPU starvation drops frames)");
        let (sent, delivered) = run();
        return assert_within_2_percent(sent, delivered);
    }
    assert_within_2_percent(sent, delivered);
}

fn assert_within_2_percent(sent: u64, delivered: u64) {
    assert!(sent > 0, "nothing sent");
    let diff = (delivered as f64 - sent as f64).abs() / sent as f64;
    assert!(diff <= 0.02, "sent {sent} frames, delivered {delivered} ({:+.1} %)", diff * 100.0);
}

#[test]
fn h264_to_vp8_delivers_as_many_frames_as_the_source_sent() {
    // An IDR (with SPS/PPS in front, as browsers send them) every 10 frames.
    check(|| {
        transcode(
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=300 \
         ! video/x-h264,profile=constrained-baseline \
         ! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt=102",
            "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000",
            150,
        )
    });
}

#[test]
fn vp8_to_h264_delivers_as_many_frames_as_the_source_sent() {
    check(|| {
        transcode(
            "vp8enc deadline=1 keyframe-max-dist=10 target-bitrate=300000 ! rtpvp8pay pt=96",
            "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000",
            150,
        )
    });
}
