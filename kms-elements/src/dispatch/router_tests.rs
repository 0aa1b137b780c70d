//! The router in a real GStreamer pipeline, without the server: two live
//! VP8/RTP sources (keyframes only on request) as port inputs, fakesinks as
//! port outputs. Checks that a switch starts the new source at a keyframe it
//! requested, that the old source stops, and that fast switching while
//! outputs come and go neither deadlocks nor stops the media.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::agnosticbin::codecs::Codec;
use kms_core::agnosticbin::keyframe::rtp_payload_starts_keyframe;
use kms_core::api::core::MediaType;
use kms_core::object::ObjectId;

use super::router::Router;
use super::select::Selection;

/// (ssrc, starts a keyframe, when) of every packet an output received.
type Seen = Arc<Mutex<Vec<(u32, bool, Instant)>>>;

fn source(pipeline: &gst::Pipeline, name: &str, ssrc: u32) -> gst::Pad {
    let bin = gst::parse::bin_from_description(
        &format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 \
             ! vp8enc deadline=1 keyframe-max-dist=10000 ! rtpvp8pay ssrc={ssrc} ! queue"
        ),
        true,
    )
    .unwrap();
    bin.set_property("name", name);
    pipeline.add(&bin).unwrap();
    bin.sync_state_with_parent().unwrap();
    bin.static_pad("src").unwrap()
}

fn sink(pipeline: &gst::Pipeline, name: &str) -> (gst::Element, gst::Pad, Seen) {
    let bin = gst::Bin::builder().name(name).build();
    let s = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build().unwrap();
    bin.add(&s).unwrap();
    let pad = s.static_pad("sink").unwrap();
    let ghost = gst::GhostPad::with_target(&pad).unwrap();
    bin.add_pad(&ghost).unwrap();
    pipeline.add(&bin).unwrap();
    bin.sync_state_with_parent().unwrap();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let one = |b: &gst::BufferRef| {
            if let Ok(r) = gst_rtp::RTPBuffer::from_buffer_readable(b) {
                let key = r.payload().is_ok_and(|p| rtp_payload_starts_keyframe(Codec::Vp8, p));
                s2.lock().push((r.ssrc(), key, Instant::now()));
            }
        };
        match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => one(b),
            Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(one),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    (bin.upcast(), ghost.upcast(), seen)
}

fn wait(what: &str, ms: u64, f: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_millis(ms), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

fn id(s: &str) -> ObjectId {
    ObjectId::from(s)
}

#[test]
fn a_switch_starts_at_a_requested_keyframe_and_survives_churn() {
    if gst::init().is_err() || gst::ElementFactory::find("vp8enc").is_none() {
        eprintln!("skipped: no GStreamer vp8enc");
        return;
    }
    let pipeline = gst::Pipeline::new();
    let hub = gst::Bin::builder().name("hub").build();
    pipeline.add(&hub).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();

    let router = Router::new(Selection::broadcast());
    let (a, b) = (source(&pipeline, "a", 1111), source(&pipeline, "b", 2222));
    router.port_input(&hub, &id("a"), MediaType::Video, &a);
    router.port_input(&hub, &id("b"), MediaType::Video, &b);
    let (_, v_pad, seen) = sink(&pipeline, "v");
    router.port_output(&hub, &id("v"), MediaType::Video, &v_pad);

    router.update(&hub, |s| *s = Selection::Broadcast(Some(id("a"))));
    wait("packets of a", 5000, || seen.lock().iter().any(|(s, ..)| *s == 1111));
    // The first packet out starts a keyframe: the branch joined a running
    // stream whose only keyframe was long gone, so it was requested.
    assert!(seen.lock()[0].1, "the output starts at a keyframe");

    // Switch: b's packets start at a keyframe (b encodes keyframes only on
    // request), and a's stop. b's keyframe is made to take 400 ms: a keeps
    // flowing until it arrives (no dead air on the output).
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let slow2 = slow.clone();
    b.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |pad, info| match &info.data {
        Some(gst::PadProbeData::Event(ev))
            if kms_core::agnosticbin::codecs::is_force_key_unit(ev)
                && slow2.swap(false, std::sync::atomic::Ordering::SeqCst) =>
        {
            let (pad, ev) = (pad.clone(), ev.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                let _ = pad.send_event(ev);
            });
            gst::PadProbeReturn::Drop
        }
        _ => gst::PadProbeReturn::Ok,
    });
    // b's encoder is past its natural first keyframe: the one b starts
    // with on the output can only be the one the switch asked for.
    let b_sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b_sent2 = b_sent.clone();
    b.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
        b_sent2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    wait("b running", 5000, || b_sent.load(std::sync::atomic::Ordering::SeqCst) > 10);
    let mark = seen.lock().len();
    let t0 = Instant::now();
    router.update(&hub, |s| *s = Selection::Broadcast(Some(id("b"))));
    let t = wait("packets of b", 3000, || seen.lock()[mark..].iter().any(|(s, ..)| *s == 2222));
    eprintln!("switch a→b: first packet of b after {t:?}");
    std::thread::sleep(Duration::from_millis(300));
    {
        let v = seen.lock();
        let after = &v[mark..];
        let first_b = after.iter().position(|(s, ..)| *s == 2222).unwrap();
        assert!(after[first_b].1, "b starts at a keyframe");
        assert!(after[first_b..].iter().all(|(s, ..)| *s == 2222), "nothing of a after the hand-over");
        assert!(after[first_b].2 - t0 >= Duration::from_millis(400), "b's keyframe was delayed");
        let last_a = after[..first_b].iter().rev().find(|(s, ..)| *s == 1111).map(|p| p.2).unwrap_or(t0);
        let gap = after[first_b].2 - last_a;
        eprintln!("hand-over gap: {gap:?}");
        assert!(gap < Duration::from_millis(150), "a flowed until b's keyframe (gap {gap:?})");
    }
    assert!(!slow.load(std::sync::atomic::Ordering::SeqCst));

    // Churn: switching faster than keyframes arrive while outputs come and
    // go, then the last selection wins.
    for i in 0..40 {
        let src = if i % 2 == 0 { "a" } else { "b" };
        router.update(&hub, |s| *s = Selection::Broadcast(Some(id(src))));
        if i % 8 == 0 {
            let name = format!("w{i}");
            let (bin, pad, _) = sink(&pipeline, &name);
            router.port_output(&hub, &id(&name), MediaType::Video, &pad);
            std::thread::sleep(Duration::from_millis(20));
            router.port_removed(&hub, &id(&name));
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(&bin);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    router.update(&hub, |s| *s = Selection::Broadcast(Some(id("a"))));
    let mark = seen.lock().len();
    wait("a flowing after the churn", 5000, || {
        let v = seen.lock();
        v.len() > mark + 20 && v[v.len() - 20..].iter().all(|(s, ..)| *s == 1111)
    });

    // What the removed outputs had in the hub is gone: two fans, one funnel.
    wait("removed outputs taken down", 3000, || hub.children().len() == 3);
    assert_eq!(hub.src_pads().len(), 1, "one output ghost left");

    // Removing the source stops the output at once.
    router.port_removed(&hub, &id("a"));
    std::thread::sleep(Duration::from_millis(200));
    let n = seen.lock().len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(seen.lock().len(), n, "nothing flows once the source is gone");

    pipeline.set_state(gst::State::Null).unwrap();
}
