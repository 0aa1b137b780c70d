//! PassThrough moves real buffers: a test source feeds element A, A is
//! connected to B through the public `connect` operation, and appsinks on
//! B's output count what arrives. Flow state follows the buffers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::api::core::MediaType;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::json;

fn registry() -> Registry {
    kms_core::module::init().unwrap();
    let hub = SessionHub::new(&ServerConfig::default());
    Registry::new(vec![kms_core::module::descriptor()], hub.notifier(), CoreConfig::default())
}

fn invoke(r: &Registry, s: &SessionId, obj: &str, op: &str, params: serde_json::Value) -> serde_json::Value {
    r.invoke(s, obj, op, params.as_object()).unwrap_or_else(|e| panic!("{op}: {e:?}"))
}

/// Counts buffers reaching a new appsink fed from `element`'s video output.
fn tap_output(r: &Registry, id: &str) -> Arc<AtomicUsize> {
    let h = r.get(id).unwrap();
    let core = h.remote.element().unwrap();
    let agnostic = core.output(MediaType::Video, "default").unwrap();
    let branch = agnostic.request_pad_simple("src_%u").unwrap();
    let ghost = gst::GhostPad::with_target(&branch).unwrap();
    ghost.set_active(true).unwrap();
    core.bin().add_pad(&ghost).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    // In an always-PLAYING pipeline sinks must not wait for preroll.
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    let pipeline = core.bin().parent().unwrap().downcast::<gst::Bin>().unwrap();
    pipeline.add(&sink).unwrap();
    sink.sync_state_with_parent().unwrap();
    ghost.link(&sink.static_pad("sink").unwrap()).unwrap();
    count
}

/// Feeds a live test pattern into `element`'s video input.
fn feed_input(r: &Registry, id: &str) {
    let h = r.get(id).unwrap();
    let core = h.remote.element().unwrap();
    let input = core.input_pad(MediaType::Video, "default").unwrap();
    let src = gst::ElementFactory::make("videotestsrc").property("is-live", true).build().unwrap();
    let pipeline = core.bin().parent().unwrap().downcast::<gst::Bin>().unwrap();
    pipeline.add(&src).unwrap();
    src.static_pad("src").unwrap().link(&input).unwrap();
    src.sync_state_with_parent().unwrap();
}

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn passthrough_forwards_buffers_to_every_connected_sink_and_reports_flow() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let b = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let c = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    // A fans out to B and C.
    invoke(&r, &s, &a, "connect", json!({"sink": b, "mediaType": "VIDEO"}));
    invoke(&r, &s, &a, "connect", json!({"sink": c, "mediaType": "VIDEO"}));
    let at_b = tap_output(&r, &b);
    let at_c = tap_output(&r, &c);
    feed_input(&r, &a);
    wait_until("buffers at B and C", Duration::from_secs(10), || {
        at_b.load(Ordering::SeqCst) > 10 && at_c.load(Ordering::SeqCst) > 10
    });
    assert_eq!(invoke(&r, &s, &b, "isMediaFlowingIn", json!({"mediaType": "VIDEO"})), json!(true));
    assert_eq!(invoke(&r, &s, &a, "isMediaFlowingOut", json!({"mediaType": "VIDEO"})), json!(true));
    assert_eq!(invoke(&r, &s, &a, "isMediaFlowingIn", json!({"mediaType": "AUDIO"})), json!(false));

    // Disconnecting A→B stops B's buffers, C keeps receiving, and B's input
    // turns NOT_FLOWING within the 2 s check window (spec §10.3).
    invoke(&r, &s, &a, "disconnect", json!({"sink": b, "mediaType": "VIDEO"}));
    std::thread::sleep(Duration::from_millis(300));
    let b_then = at_b.load(Ordering::SeqCst);
    let c_then = at_c.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(at_b.load(Ordering::SeqCst), b_then, "B gets nothing after disconnect");
    assert!(at_c.load(Ordering::SeqCst) > c_then + 5, "C still receives");
    wait_until("B not flowing", Duration::from_secs(6), || {
        invoke(&r, &s, &b, "isMediaFlowingIn", json!({"mediaType": "VIDEO"})) == json!(false)
    });

    // Releasing the pipeline tears everything down; the ids are gone.
    r.release(&s, &p).unwrap();
    assert_eq!(r.invoke(&s, &a, "getName", None).unwrap_err().code, 40101);
    assert_eq!(r.object_count(), 0);
}

#[test]
fn a_new_source_replaces_the_old_one_on_the_same_sink_input() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let b = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let sink = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    invoke(&r, &s, &a, "connect", json!({"sink": sink}));
    invoke(&r, &s, &b, "connect", json!({"sink": sink, "mediaType": "VIDEO"}));
    let from = |src: &str| {
        invoke(&r, &s, &sink, "getSourceConnections", json!({"mediaType": "VIDEO"}))
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["source"] == src)
            .count()
    };
    assert_eq!(from(&a), 0);
    assert_eq!(from(&b), 1);
    // AUDIO and DATA from A are untouched.
    assert_eq!(invoke(&r, &s, &sink, "getSourceConnections", json!({})).as_array().unwrap().len(), 3);
    r.release(&s, &p).unwrap();
}

#[test]
fn connecting_elements_of_different_pipelines_fails_with_40004() {
    let r = registry();
    let s = SessionId::new_random();
    let p1 = r.create(&s, "MediaPipeline", None).unwrap();
    let p2 = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p1}))).unwrap();
    let b = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p2}))).unwrap();
    let e = r.invoke(&s, &a, "connect", json!({"sink": b}).as_object()).unwrap_err();
    assert_eq!(e.code, 40004);
    assert_eq!(e.message, "Media elements do not share pipeline");
    r.release(&s, &p1).unwrap();
    r.release(&s, &p2).unwrap();
}

#[test]
fn session_ownership_release_cascades_and_unref_keeps_shared_objects() {
    let r = registry();
    let s1 = SessionId::new_random();
    let s2 = SessionId::new_random();
    let p = r.create(&s1, "MediaPipeline", None).unwrap();
    let a = r.create(&s1, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    // Session 2 touches the pipeline: it becomes an owner (spec §4.3).
    r.describe(&s2, &p).unwrap();
    // A child created later by s2 is owned by both (its parent's owners).
    let b = r.create(&s2, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    r.unref_session(&s1);
    assert!(r.describe(&s2, &p).is_ok(), "still owned by s2");
    assert_eq!(r.invoke(&s2, &a, "getName", None).unwrap_err().code, 40101, "a was only s1's");
    assert!(r.invoke(&s2, &b, "getName", None).is_ok());
    r.unref_session(&s2);
    assert_eq!(r.object_count(), 0, "no owner left: destroyed");
}
