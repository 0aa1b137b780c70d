//! Races caps changes, connects, disconnects, consumers coming and going,
//! forced formats and element releases across PassThroughs for 30 s
//! (`KMS_STRESS_SECS`), with real GStreamer pipelines:
//!
//! * two elements are fed by sources replaced every few hundred ms by one
//!   of another format (raw at two sizes, VP8, H.264, VP8 and H.264 over
//!   RTP), so their agnosticbins see caps changes while branches and
//!   chains exist;
//! * other threads connect and disconnect elements (cycles and
//!   self-connections included), release and recreate one, attach and
//!   detach appsink consumers with various caps, and force output formats.
//!
//! A watchdog fails the test if any call takes longer than
//! [`STUCK_AFTER`] (a deadlock), printing what each thread was doing. At the
//! end the pipeline's element count and the process's thread count must
//! come back to their baseline (no leak).

mod common;

use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use kms_core::Registry;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::MediaType;
use kms_jsonrpc::{MediaBackend, SessionId};
use serde_json::json;

/// A call taking longer than this is a deadlock (normal calls take
/// milliseconds, even on a loaded machine).
const STUCK_AFTER: Duration = Duration::from_secs(20);

/// A thread's name and the call it is in (with its start), if any.
type Slot = (String, Option<(String, Instant)>);

/// What each racing thread is doing, for the watchdog.
struct Watch {
    ops: Mutex<Vec<Slot>>,
    count: AtomicU64,
}

impl Watch {
    fn register(&self, name: &str) -> usize {
        let mut ops = self.ops.lock();
        ops.push((name.to_string(), None));
        ops.len() - 1
    }

    /// Runs `f` as operation `what` of thread `slot`.
    fn op<T>(&self, slot: usize, what: &str, f: impl FnOnce() -> T) -> T {
        self.ops.lock()[slot].1 = Some((what.to_string(), Instant::now()));
        let r = f();
        self.ops.lock()[slot].1 = None;
        self.count.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn stuck(&self) -> Option<String> {
        let ops = self.ops.lock();
        ops.iter().find(|(_, op)| op.as_ref().is_some_and(|(_, t)| t.elapsed() > STUCK_AFTER)).map(|_| {
            ops.iter()
                .map(|(name, op)| match op {
                    Some((what, t)) => format!("  {name}: in {what} for {:.1} s", t.elapsed().as_secs_f64()),
                    None => format!("  {name}: idle"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

/// Prints every thread's stack with gdb when `KMS_STRESS_GDB` is set.
fn dump_stacks() {
    if std::env::var_os("KMS_STRESS_GDB").is_some() {
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("gdb").args(["-p", &pid, "-batch", "-ex", "thread apply all bt"]).status();
    }
}

/// Threads of this process, and what each waits in (kernel wchan).
fn threads() -> Vec<String> {
    let mut v = vec![];
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let p = t.path();
            let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
            v.push(format!("{} {} ({wchan})", t.file_name().to_string_lossy(), name.trim()));
        }
    }
    v
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// Tiny deterministic PRNG (xorshift): reproducible races per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const RAW_SIZES: [(u32, u32); 2] = [(160, 120), (176, 144)];

fn source_description(kind: usize) -> String {
    let (w, h) = RAW_SIZES[kind % 2];
    let raw = format!(
        "videotestsrc is-live=true pattern=ball ! capsfilter caps=\"video/x-raw,format=I420,width={w},height={h},framerate=15/1\""
    );
    let vp8 = format!("{raw} ! vp8enc deadline=1 cpu-used=16 keyframe-max-dist=15");
    let h264 = format!(
        "{raw} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! h264parse ! capsfilter caps=\"video/x-h264,stream-format=byte-stream,alignment=au\""
    );
    match kind % 6 {
        0 | 1 => raw,
        2 => vp8,
        3 => h264,
        4 => format!("{vp8} ! rtpvp8pay pt=96"),
        _ => format!("{h264} ! rtph264pay pt=96 config-interval=-1"),
    }
}

/// Replaces whatever feeds `id`'s video input with a new source of `kind`.
fn replace_source(r: &Registry, id: &str, current: &mut Option<gst::Bin>, kind: usize) {
    let pipeline = pipeline_of(r, id);
    if let Some(old) = current.take() {
        let _ = old.set_state(gst::State::Null);
        let _ = pipeline.remove(&old);
    }
    *current = Some(feed(r, id, MediaType::Video, &source_description(kind)));
}

/// An appsink consumer hanging off an element's output branch.
struct Consumer {
    agnostic: AgnosticBin,
    branch: gst::Pad,
    ghost: gst::GhostPad,
    bin: gst::Bin,
    sink: gst::Element,
}

fn consumer_caps(kind: usize) -> Option<gst::Caps> {
    match kind % 5 {
        0 => None,
        1 => Some(gst::Caps::builder("video/x-raw").build()),
        2 => Some(gst::Caps::builder("application/x-rtp").field("encoding-name", "VP8").build()),
        3 => Some(gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").build()),
        _ => Some(gst::Caps::builder("application/x-rtp").field("encoding-name", "H264").build()),
    }
}

/// Samples consumers received, per caps structure name.
static RECEIVED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

fn count_sample(s: &gst::Sample) {
    let name = s.caps().and_then(|c| c.structure(0).map(|st| st.name().to_string())).unwrap_or_default();
    let mut r = RECEIVED.lock();
    match r.iter_mut().find(|(n, _)| *n == name) {
        Some((_, c)) => *c += 1,
        None => r.push((name, 1)),
    }
}

fn attach_consumer(r: &Registry, id: &str, kind: usize) -> Option<Consumer> {
    let h = r.get(id).ok()?;
    let core = h.remote.element()?;
    let pipeline = core.bin().parent()?.downcast::<gst::Pipeline>().ok()?;
    let agnostic = core.output(MediaType::Video, "default")?;
    let branch = agnostic.request_pad_simple("src_%u")?;
    let ghost = gst::GhostPad::with_target(&branch).ok()?;
    let _ = ghost.set_active(true);
    let bin = core.bin().clone();
    if bin.add_pad(&ghost).is_err() {
        agnostic.release_request_pad(&branch);
        return None;
    }
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .caps(&consumer_caps(kind).unwrap_or_else(gst::Caps::new_any))
        // A consumer that keeps up (an appsink nobody pulls from blocks
        // the streaming thread on its first serialized event).
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(|s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    count_sample(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    let c = Consumer { agnostic, branch, ghost, bin, sink: sink.upcast() };
    if pipeline.add(&c.sink).is_ok() {
        let _ = c.sink.sync_state_with_parent();
        // As `connect` links (a caps check would query around connection
        // cycles).
        let _ = c.ghost.link_full(&c.sink.static_pad("sink").unwrap(), gst::PadLinkCheck::HIERARCHY);
    }
    Some(c)
}

fn detach_consumer(c: Consumer) {
    c.agnostic.release_request_pad(&c.branch);
    let _ = c.ghost.set_active(false);
    let _ = c.bin.remove_pad(&c.ghost);
    let _ = c.sink.set_state(gst::State::Null);
    if let Some(p) = c.sink.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) {
        let _ = p.remove(&c.sink);
    }
}

fn video_format(kind: usize) -> serde_json::Value {
    let codec = ["VP8", "H264", "RAW"][kind % 3];
    let numerator = [0, 10][kind % 2];
    json!({"caps": {"codec": codec, "framerate": {"numerator": numerator, "denominator": 1}}})
}

#[test]
fn racing_caps_changes_connects_and_releases_neither_deadlock_nor_leak() {
    let secs: u64 = std::env::var("KMS_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let pass = || r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let pipeline = r.get(&p).unwrap().remote.pipeline().unwrap().pipeline.clone();

    // Warm-up: one of everything, so pools GStreamer keeps (async calls,
    // the system clock, the flow ticker) exist before the baseline.
    {
        let a = pass();
        let mut src = None;
        replace_source(&r, &a, &mut src, 4);
        let c = attach_consumer(&r, &a, 1).unwrap();
        wait_until("warm-up", Duration::from_secs(20), || c.agnostic.branch_sources().iter().any(|s| s.is_some()));
        detach_consumer(c);
        replace_source(&r, &a, &mut src, 0);
        let old = src.take().unwrap();
        let _ = old.set_state(gst::State::Null);
        let _ = pipeline.remove(&old);
        r.release(&s, &a).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    let base_children = pipeline.children().len();
    let base_threads = thread_count();

    let fed = [pass(), pass()];
    let others: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(vec![pass(), pass()]));
    let watch = Arc::new(Watch { ops: Mutex::new(vec![]), count: AtomicU64::new(0) });
    let stop = Arc::new(AtomicBool::new(false));
    let consumers: Arc<Mutex<Vec<Consumer>>> = Arc::new(Mutex::new(vec![]));
    let all = {
        let fed = fed.clone();
        let others = others.clone();
        move || -> Vec<String> { fed.iter().cloned().chain(others.lock().iter().cloned()).collect() }
    };

    std::thread::scope(|scope| {
        // Sources switching format under the fed elements.
        for (i, id) in fed.iter().enumerate() {
            let (r, watch, stop) = (&r, watch.clone(), stop.clone());
            scope.spawn(move || {
                let slot = watch.register(&format!("source-{i}"));
                let mut rng = Rng(0x9e37_79b9 + i as u64);
                let mut current = None;
                let mut kind = i;
                while !stop.load(Ordering::Relaxed) {
                    watch.op(slot, &format!("replace source with kind {kind}"), || {
                        replace_source(r, id, &mut current, kind)
                    });
                    kind = rng.below(6);
                    std::thread::sleep(Duration::from_millis(200 + rng.below(400) as u64));
                }
                if let Some(old) = current {
                    watch.op(slot, "remove last source", || {
                        let _ = old.set_state(gst::State::Null);
                        let _ = pipeline_of(r, id).remove(&old);
                    });
                }
            });
        }
        // connect/disconnect among the elements (cycles, self, fan-out).
        for i in 0..2 {
            let (r, s, watch, stop, others, all) = (&r, &s, watch.clone(), stop.clone(), others.clone(), all.clone());
            scope.spawn(move || {
                let slot = watch.register(&format!("connector-{i}"));
                let mut rng = Rng(0x1234_5678 + i);
                while !stop.load(Ordering::Relaxed) {
                    let all = all();
                    let src = all[rng.below(all.len())].clone();
                    let sinks = others.lock().clone();
                    let sink = sinks[rng.below(sinks.len())].clone();
                    let op = if rng.below(3) == 0 { "disconnect" } else { "connect" };
                    let params = json!({"sink": sink, "mediaType": "VIDEO"});
                    watch.op(slot, &format!("{op} {src} -> {sink}"), || {
                        let _ = r.invoke(s, &src, op, params.as_object());
                    });
                    std::thread::sleep(Duration::from_millis(20 + rng.below(80) as u64));
                }
            });
        }
        // Release and recreate a connected element.
        {
            let (r, s, p, watch, stop, others) = (&r, &s, &p, watch.clone(), stop.clone(), others.clone());
            scope.spawn(move || {
                let slot = watch.register("recreator");
                let mut rng = Rng(0xdead_beef);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500 + rng.below(1000) as u64));
                    let i = rng.below(2);
                    let old = others.lock()[i].clone();
                    watch.op(slot, &format!("release {old}"), || {
                        let _ = r.release(s, &old);
                    });
                    let new = watch.op(slot, "create PassThrough", || {
                        r.create(s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap()
                    });
                    others.lock()[i] = new;
                }
            });
        }
        // Consumers with various wants come and go.
        {
            let (r, watch, stop, consumers, all) = (&r, watch.clone(), stop.clone(), consumers.clone(), all.clone());
            scope.spawn(move || {
                let slot = watch.register("consumers");
                let mut rng = Rng(0xfeed_f00d);
                while !stop.load(Ordering::Relaxed) {
                    let n = consumers.lock().len();
                    if n > 0 && (n >= 6 || rng.below(2) == 0) {
                        let c = consumers.lock().remove(rng.below(n));
                        watch.op(slot, "detach consumer", || detach_consumer(c));
                    } else {
                        let all = all();
                        let id = all[rng.below(all.len())].clone();
                        let kind = rng.below(5);
                        if let Some(c) =
                            watch.op(slot, &format!("attach consumer {kind} to {id}"), || attach_consumer(r, &id, kind))
                        {
                            consumers.lock().push(c);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50 + rng.below(150) as u64));
                }
            });
        }
        // Forced formats flip now and then.
        {
            let (r, s, watch, stop, all) = (&r, &s, watch.clone(), stop.clone(), all.clone());
            scope.spawn(move || {
                let slot = watch.register("formats");
                let mut rng = Rng(0xabcd_ef01);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(300 + rng.below(700) as u64));
                    let all = all();
                    let id = all[rng.below(all.len())].clone();
                    let caps = video_format(rng.below(6));
                    watch.op(slot, &format!("setVideoFormat {caps} on {id}"), || {
                        let _ = r.invoke(s, &id, "setVideoFormat", caps.as_object());
                    });
                }
            });
        }
        // Watchdog (this thread).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(250));
            if let Some(report) = watch.stuck() {
                eprintln!(
                    "DEADLOCK suspected: a call has not returned for {STUCK_AFTER:?}\n{report}\nthreads:\n  {}\n\
                     Stacks: rerun with KMS_STRESS_GDB=1, or gdb -p {} -batch -ex 'thread apply all bt'",
                    threads().join("\n  "),
                    std::process::id()
                );
                dump_stacks();
                // The stuck threads would keep the scope from ever ending.
                std::process::exit(101);
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Threads finish their current call; the watchdog keeps watching.
        let end = Instant::now();
        while watch.ops.lock().iter().any(|(_, op)| op.is_some()) && end.elapsed() < STUCK_AFTER * 2 {
            if let Some(report) = watch.stuck() {
                eprintln!("DEADLOCK suspected while stopping:\n{report}\nthreads:\n  {}", threads().join("\n  "));
                dump_stacks();
                std::process::exit(101);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let ops = watch.count.load(Ordering::Relaxed);
    assert!(ops > 100, "the threads made progress: {ops} calls");
    // Media flowed meanwhile, forwarded and converted.
    let received = RECEIVED.lock().clone();
    eprintln!("consumers received {received:?}");
    for format in ["video/x-raw", "application/x-rtp", "video/x-h264"] {
        assert!(received.iter().any(|(n, c)| n == format && *c > 20), "{format} reached consumers: {received:?}");
    }

    // Teardown, then everything must be back to the baseline.
    for c in consumers.lock().drain(..) {
        detach_consumer(c);
    }
    for id in fed.iter().cloned().chain(others.lock().iter().cloned()) {
        r.release(&s, &id).unwrap();
    }
    assert_eq!(r.object_count(), 1, "only the pipeline is left");
    assert_eq!(pipeline.children().len(), base_children, "elements left in the pipeline: {:?}", pipeline.children());
    let deadline = Instant::now() + Duration::from_secs(30);
    // GLib keeps up to two idle pool threads around for a while.
    while thread_count() > base_threads + 2 {
        assert!(
            Instant::now() < deadline,
            "threads: {} now, {base_threads} at the start:\n  {}",
            thread_count(),
            threads().join("\n  ")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{ops} calls in {secs} s; threads {base_threads} -> {}", thread_count());
    r.release(&s, &p).unwrap();
}
