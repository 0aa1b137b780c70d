//! agnosticbin behaviour proven with real GStreamer pipelines through the
//! public operations: forced output formats, the jitter buffer (and its
//! retransmission requests) on decoded RTP only, payloader MTU from the
//! consumers' `kms-mtu` answers.

mod common;

use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use kms_core::api::core::MediaType;
use kms_jsonrpc::{MediaBackend, SessionId};
use serde_json::json;

const RAW_VIDEO: &str =
    "videotestsrc is-live=true pattern=ball ! capsfilter caps=\"video/x-raw,width=160,height=120,framerate=30/1\"";

fn video_caps(codec: &str, num: i32, den: i32) -> serde_json::Value {
    json!({"caps": {"__module__": "kurento", "__type__": "VideoCaps", "codec": codec,
        "framerate": {"__module__": "kurento", "__type__": "Fraction", "numerator": num, "denominator": den}}})
}

/// Frames per second measured from buffer timestamps (not wall time, so
/// it holds under any load).
fn pts_rate(pts: &[gst::ClockTime]) -> f64 {
    let (first, last) = (pts[0], pts[pts.len() - 1]);
    (pts.len() - 1) as f64 / (last - first).seconds_f64()
}

#[test]
fn set_video_format_forces_codec_and_rate_on_every_output_and_reflects_in_is_media_transcoding() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let b = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    invoke(&r, &s, &a, "setVideoFormat", video_caps("VP8", 10, 1));
    invoke(&r, &s, &a, "connect", json!({"sink": b, "mediaType": "VIDEO"}));
    let at_b = tap(&r, &b, MediaType::Video, None);
    // A consumer that only takes raw video gets nothing from A.
    let raw_only = tap(&r, &a, MediaType::Video, Some(gst::Caps::builder("video/x-raw").build()));
    feed(&r, &a, MediaType::Video, RAW_VIDEO);
    wait_until("VP8 at B", Duration::from_secs(20), || at_b.count() > 25);
    let caps = at_b.last_caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().name(), "video/x-vp8", "B gets the forced codec: {caps}");
    let rate = pts_rate(&at_b.received.lock().pts);
    assert!(rate < 11.0, "forced 10 fps, got {rate:.1} fps from a 30 fps source");
    assert_eq!(raw_only.count(), 0, "a consumer not accepting the forced format gets nothing");
    assert_eq!(invoke(&r, &s, &a, "isMediaTranscoding", json!({"mediaType": "VIDEO"})), json!(true));

    // Changing the format later re-plans the existing branches.
    invoke(&r, &s, &a, "setVideoFormat", video_caps("RAW", 0, 1));
    let before = raw_only.count();
    wait_until("raw at the raw-only consumer", Duration::from_secs(20), || raw_only.count() > before + 10);
    wait_until("raw at B", Duration::from_secs(20), || {
        at_b.last_caps().is_some_and(|c| c.structure(0).unwrap().name() == "video/x-raw")
    });
    wait_until("no transcoding left", Duration::from_secs(10), || {
        invoke(&r, &s, &a, "isMediaTranscoding", json!({"mediaType": "VIDEO"})) == json!(false)
    });

    // Formats that cannot be forced are errors, not silent no-ops.
    let e = r.invoke(&s, &a, "setVideoFormat", video_caps("H265", 30, 1).as_object()).unwrap_err();
    assert_eq!(e.code, 40005);
    let e = r.invoke(&s, &a, "setVideoFormat", video_caps("VP8", 30, 0).as_object()).unwrap_err();
    assert_eq!(e.code, 40107);
    r.release(&s, &p).unwrap();
}

#[test]
fn set_audio_format_encodes_at_the_requested_bitrate() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let caps = json!({"caps": {"__module__": "kurento", "__type__": "AudioCaps", "codec": "OPUS", "bitrate": 24000}});
    invoke(&r, &s, &a, "setAudioFormat", caps);
    let out = tap(&r, &a, MediaType::Audio, None);
    feed(&r, &a, MediaType::Audio, "audiotestsrc is-live=true ! capsfilter caps=\"audio/x-raw,rate=48000,channels=1\"");
    wait_until("Opus out", Duration::from_secs(20), || out.count() > 10);
    assert_eq!(out.last_caps().unwrap().structure(0).unwrap().name(), "audio/x-opus");
    let bin = r.get(&a).unwrap().remote.element().unwrap().bin().clone();
    let enc = all_elements(&bin).into_iter().find(|e| e.factory().is_some_and(|f| f.name() == "opusenc")).unwrap();
    assert_eq!(enc.property::<i32>("bitrate"), 24000);
    r.release(&s, &p).unwrap();
}

/// RTP VP8 from a live source, with every `drop_every`th packet (after the
/// first 60) lost on the way; returns the payloader's source pad.
fn lossy_rtp_source(r: &kms_core::Registry, id: &str, drop_every: u32) -> (gst::Pad, Arc<Mutex<Vec<u32>>>) {
    let src = feed(
        r,
        id,
        MediaType::Video,
        &format!("{RAW_VIDEO} ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay name=pay mtu=600 pt=96"),
    );
    let pay_src = src.by_name("pay").unwrap().static_pad("src").unwrap();
    let n = AtomicU32::new(0);
    let dropped = Arc::new(Mutex::new(vec![]));
    let d = dropped.clone();
    // Whether to lose this packet (recording its sequence number).
    let lose = move |b: &gst::BufferRef| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        let lost = i > 60 && i.is_multiple_of(drop_every);
        if lost && let Ok(rtp) = gst_rtp::RTPBuffer::from_buffer_readable(b) {
            d.lock().push(rtp.seq() as u32);
        }
        lost
    };
    pay_src.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(b)) if lose(b) => return gst::PadProbeReturn::Drop,
            Some(gst::PadProbeData::BufferList(l)) => {
                let mut kept = gst::BufferList::new();
                for b in l.iter_owned() {
                    if !lose(&b) {
                        kept.get_mut().unwrap().add(b);
                    }
                }
                *l = kept;
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    (pay_src, dropped)
}

/// Sequence numbers asked for again by `GstRTPRetransmissionRequest`
/// events reaching `pad` from downstream.
fn watch_retransmission_requests(pad: &gst::Pad) -> Arc<Mutex<Vec<u32>>> {
    let asked = Arc::new(Mutex::new(vec![]));
    let a = asked.clone();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data
            && let Some(s) = ev.structure().filter(|s| s.name() == "GstRTPRetransmissionRequest")
            && let Ok(seq) = s.get::<u32>("seqnum")
        {
            a.lock().push(seq);
        }
        gst::PadProbeReturn::Ok
    });
    asked
}

#[test]
fn decoded_rtp_goes_through_a_jitter_buffer_that_asks_for_lost_packets() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let raw = tap(&r, &a, MediaType::Video, Some(gst::Caps::builder("video/x-raw").build()));
    let (pay_src, dropped) = lossy_rtp_source(&r, &a, 40);
    let asked = watch_retransmission_requests(&pay_src);
    wait_until("decoded frames", Duration::from_secs(20), || raw.count() > 20);
    wait_until("retransmission requests for lost packets", Duration::from_secs(20), || {
        let dropped = dropped.lock().clone();
        asked.lock().iter().any(|s| dropped.contains(s))
    });
    let bin = r.get(&a).unwrap().remote.element().unwrap().bin().clone();
    assert_eq!(count_factory(&bin, "rtpjitterbuffer"), 1, "one jitter buffer, shared by the decoding chain");
    r.release(&s, &p).unwrap();
}

#[test]
fn forwarded_rtp_gets_no_jitter_buffer() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let rtp = gst::Caps::builder("application/x-rtp").field("encoding-name", "VP8").build();
    let fwd = tap(&r, &a, MediaType::Video, Some(rtp));
    let (pay_src, _) = lossy_rtp_source(&r, &a, 40);
    let asked = watch_retransmission_requests(&pay_src);
    wait_until("forwarded packets", Duration::from_secs(20), || fwd.count() > 200);
    let bin = r.get(&a).unwrap().remote.element().unwrap().bin().clone();
    assert_eq!(count_factory(&bin, "rtpjitterbuffer"), 0);
    assert_eq!(count_factory(&bin, "rtpvp8depay"), 0);
    assert!(asked.lock().is_empty());
    r.release(&s, &p).unwrap();
}

/// A consumer whose sink answers `kms-mtu` with the value in `mtu`.
fn answer_mtu(sink: &gst::Element, mtu: Arc<AtomicU32>) {
    sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Query(q)) = &mut info.data
            && let gst::QueryViewMut::Custom(c) = q.view_mut()
            && c.structure().is_some_and(|s| s.name() == kms_core::agnosticbin::MTU_QUERY)
        {
            c.structure_mut().set("mtu", mtu.load(Ordering::Relaxed));
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });
}

#[test]
fn payloaders_use_the_smallest_mtu_their_consumers_ask_for() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let rtp = || gst::Caps::builder("application/x-rtp").field("encoding-name", "VP8").build();
    // The sinks answer before they are linked (the first plan asks).
    let small = Arc::new(AtomicU32::new(500));
    let tap_small = tap(&r, &a, MediaType::Video, Some(rtp()));
    answer_mtu(&tap_small.sink, small.clone());
    let tap_silent = tap(&r, &a, MediaType::Video, Some(rtp()));
    tap_small.sink.static_pad("sink").unwrap().push_event(gst::event::Reconfigure::new());
    feed(&r, &a, MediaType::Video, RAW_VIDEO);
    let max_since = |t: &Tap, from: usize| t.received.lock().sizes[from..].iter().copied().max().unwrap_or(0);
    wait_until("packets", Duration::from_secs(20), || tap_small.count() > 100 && tap_silent.count() > 100);
    let mut from = tap_small.count();
    wait_until("packets after the answer", Duration::from_secs(20), || tap_small.count() > from + 100);
    // Both consumers share the payloader: the smallest answer wins.
    assert!(max_since(&tap_small, from) <= 500, "mtu 500: got {}", max_since(&tap_small, from));
    assert!(max_since(&tap_small, from) > 400, "keyframes fill packets up to the mtu");
    // A new answer is picked up on RECONFIGURE.
    small.store(300, Ordering::Relaxed);
    tap_small.sink.static_pad("sink").unwrap().push_event(gst::event::Reconfigure::new());
    std::thread::sleep(Duration::from_millis(500));
    from = tap_small.count();
    wait_until("packets after the new answer", Duration::from_secs(20), || tap_small.count() > from + 100);
    assert!(max_since(&tap_small, from) <= 300, "mtu 300: got {}", max_since(&tap_small, from));
    r.release(&s, &p).unwrap();
}

#[test]
fn without_an_mtu_answer_payloaders_use_the_elements_setting() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let rtp = gst::Caps::builder("application/x-rtp").field("encoding-name", "VP8").build();
    let t = tap(&r, &a, MediaType::Video, Some(rtp));
    let core_mtu = 700;
    r.get(&a).unwrap().remote.element().unwrap().output(MediaType::Video, "default").unwrap().set_mtu(core_mtu);
    feed(&r, &a, MediaType::Video, RAW_VIDEO);
    wait_until("packets", Duration::from_secs(20), || t.count() > 200);
    let max = t.received.lock().sizes.iter().copied().max().unwrap();
    assert!(max <= core_mtu as usize && max > 600, "max packet {max}");
    r.release(&s, &p).unwrap();
}

/// The threading rule, observed: replanning (here, a consumer slow to
/// answer what it accepts) happens off the streaming thread, so the
/// producer keeps feeding the other consumers meanwhile.
#[test]
fn a_consumer_slow_to_answer_its_caps_holds_up_neither_the_producer_nor_other_consumers() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let fast = Arc::new(tap(&r, &a, MediaType::Video, None));
    let slow = tap(&r, &a, MediaType::Video, Some(gst::Caps::builder("video/x-raw").build()));
    let feeding = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Buffers the fast consumer had when the slow one's first caps query
    // after the media started was answered (u32::MAX: not yet).
    let seen = Arc::new(AtomicU32::new(u32::MAX));
    {
        let (fast, feeding, seen) = (fast.clone(), feeding.clone(), seen.clone());
        slow.sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Query(q)) = &info.data
                && let gst::QueryView::Caps(_) = q.view()
                && feeding.load(Ordering::SeqCst)
                && seen.load(Ordering::SeqCst) == u32::MAX
            {
                std::thread::sleep(Duration::from_secs(4));
                seen.store(fast.count() as u32, Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        });
    }
    // The fast consumer takes anything: it is wired before any media.
    let agnostic = r.get(&a).unwrap().remote.element().unwrap().output(MediaType::Video, "default").unwrap();
    wait_until("fast consumer wired", Duration::from_secs(10), || {
        agnostic.is_settled() && agnostic.branch_sources().contains(&Some(kms_core::agnosticbin::Source::In))
    });
    feeding.store(true, Ordering::SeqCst);
    feed(&r, &a, MediaType::Video, RAW_VIDEO);
    wait_until("the slow consumer's answer", Duration::from_secs(30), || seen.load(Ordering::SeqCst) != u32::MAX);
    let n = seen.load(Ordering::SeqCst);
    assert!(n > 10, "the fast consumer got {n} buffers while the slow one was being asked");
    wait_until("the slow consumer fed too", Duration::from_secs(20), || slow.count() > 10);
    r.release(&s, &p).unwrap();
}

#[test]
fn a_forced_codec_and_rate_transcode_variable_rate_rtp_input() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    invoke(&r, &s, &a, "setVideoFormat", video_caps("H264", 15, 1));
    // A consumer taking anything: without the forced format it would get
    // the VP8 packets as they come.
    let rtp = gst::Caps::builder("application/x-rtp").build();
    let out = tap(&r, &a, MediaType::Video, Some(rtp));
    // WebRTC-like input: VP8 over RTP, whose decoded caps have no fixed rate.
    feed(&r, &a, MediaType::Video, &format!("{RAW_VIDEO} ! vp8enc deadline=1 ! rtpvp8pay pt=96"));
    wait_until("H.264 packets", Duration::from_secs(20), || out.count() > 60);
    assert_eq!(out.last_caps().unwrap().structure(0).unwrap().get::<&str>("encoding-name").unwrap(), "H264");
    // One RTP timestamp per frame: at most 15 distinct ones per second of
    // media from a 30 fps source.
    let pts = out.received.lock().pts.clone();
    let mut frames = pts.clone();
    frames.dedup();
    let rate = pts_rate(&frames);
    assert!(rate < 16.5, "forced 15 fps, got {rate:.1} fps");
    r.release(&s, &p).unwrap();
}

#[test]
fn a_consumer_failing_stops_only_its_own_branch() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let healthy = tap(&r, &a, MediaType::Video, None);
    let failing = tap(&r, &a, MediaType::Video, None);
    feed(&r, &a, MediaType::Video, RAW_VIDEO);
    wait_until("both fed", Duration::from_secs(20), || healthy.count() > 5 && failing.count() > 5);
    // A consumer going away without being unlinked answers FLUSHING.
    failing.sink.static_pad("sink").unwrap().set_active(false).unwrap();
    let n = healthy.count();
    wait_until("the healthy consumer still fed", Duration::from_secs(20), || healthy.count() > n + 30);
    r.release(&s, &p).unwrap();
}
