//! ElementCore and HubCore through the Registry: a constructor failing
//! halfway leaves the pipeline as it was, the media-descriptions limit,
//! and latency stats measured on real buffers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::{self as api, MediaType, PassThrough, PassThroughConstructor, PassThroughFactory};
use kms_core::element::{ElementCore, ElementObject, MediaIo};
use kms_core::hub::{HubCore, HubLogic};
use kms_core::object::{ObjectBase, ObjectId, RemoteObject};
use kms_core::pipeline::MediaPipelineImpl;
use kms_core::rt::Ctx;
use kms_core::{CoreConfig, Error, Result};
use kms_jsonrpc::{MediaBackend, SessionId};
use serde_json::json;

/// Builds real elements in its bin (an input and an output).
struct Io;

impl MediaIo for Io {
    fn input(&self, bin: &gst::Bin, _t: MediaType, _desc: &str) -> Option<gst::Pad> {
        let q = gst::ElementFactory::make("queue").build().ok()?;
        bin.add(&q).ok()?;
        q.sync_state_with_parent().ok()?;
        q.static_pad("sink")
    }

    fn output(&self, bin: &gst::Bin, _t: MediaType, desc: &str) -> Option<AgnosticBin> {
        let a = AgnosticBin::new(&format!("out_{desc}"));
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        Some(a)
    }
}

struct NoHub;

impl HubLogic for NoHub {
    fn port_input(&self, _: &HubCore, _: &ObjectId, _: MediaType, _: &gst::Pad) {}
    fn port_output(&self, _: &HubCore, _: &ObjectId, _: MediaType, _: &gst::Pad) {}
    fn port_removed(&self, _: &HubCore, _: &ObjectId) {}
}

/// A "PassThrough" whose constructor builds its element core (with pads
/// and an agnosticbin) and a hub core, then fails, as a constructor whose
/// last step (a certificate, a URI) is bad would.
struct FailingElement {
    core: ElementCore,
}

impl RemoteObject for FailingElement {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }
    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }
}

impl ElementObject for FailingElement {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl PassThrough for FailingElement {}

impl PassThroughFactory for FailingElement {
    fn construct(ctx: &Ctx, params: PassThroughConstructor) -> Result<Arc<Self>> {
        let shared = params.media_pipeline.pipeline().cloned().unwrap();
        let parent: &dyn RemoteObject = params.media_pipeline.as_ref();
        let core = ElementCore::new(ctx, ctx.new_object_base(Some(parent)), shared.clone(), Box::new(Io))?;
        core.input_pad(MediaType::Video, "default").unwrap();
        core.output(MediaType::Video, "default").unwrap();
        let _hub = HubCore::new(ctx.new_object_base(Some(parent)), shared.clone(), Box::new(NoHub))?;
        // A hub whose logic fails while filling the bin adds nothing.
        let failed = HubCore::build(ctx.new_object_base(Some(parent)), shared, |bin| {
            bin.add(&gst::ElementFactory::make("queue").build().unwrap()).unwrap();
            Err(Error::marshall("the hub's elements cannot be built"))
        });
        assert!(failed.is_err());
        Err(Error::Code { code: 40001, message: "bad setting found after building the element".into() })
    }
}

#[test]
fn a_constructor_failing_after_building_its_cores_leaves_the_pipeline_unchanged() {
    let module = api::module_descriptor(vec![
        api::media_pipeline_class::<MediaPipelineImpl>(),
        api::pass_through_class::<FailingElement>(),
    ]);
    let r = registry_with(vec![module], CoreConfig::default());
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let pipeline = r.get(&p).unwrap().remote.pipeline().unwrap().pipeline.clone();
    let before = pipeline.children().len();
    for _ in 0..3 {
        let e = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap_err();
        assert_eq!(e.code, 40001);
    }
    assert_eq!(pipeline.children().len(), before, "no bin left behind");
    assert_eq!(r.object_count(), 1, "only the pipeline");
    r.release(&s, &p).unwrap();
}

#[test]
fn media_descriptions_per_element_are_capped_with_40009_and_no_pad() {
    let mut cfg = CoreConfig::default();
    cfg.limits.max_media_descriptions = 3;
    let r = registry_with(vec![kms_core::module::descriptor()], cfg);
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let b = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let connect = |src_desc: &str, sink_desc: &str| {
        let params = json!({"sink": b, "mediaType": "VIDEO", "sourceMediaDescription": src_desc,
            "sinkMediaDescription": sink_desc});
        r.invoke(&s, &a, "connect", params.as_object())
    };
    for i in 0..3 {
        connect(&format!("d{i}"), &format!("d{i}")).unwrap();
    }
    let bin_a = r.get(&a).unwrap().remote.element().unwrap().bin().clone();
    let bin_b = r.get(&b).unwrap().remote.element().unwrap().bin().clone();
    let (pads_a, pads_b) = (bin_a.pads().len(), bin_b.pads().len());
    let agnostics = bin_a.children().len();
    // A fourth output description, then a fourth input description.
    let e = connect("d3", "d0").unwrap_err();
    assert_eq!(e.code, 40009, "{}", e.message);
    assert!(e.message.contains("maxMediaDescriptions"), "{}", e.message);
    let e = connect("d0", "d3").unwrap_err();
    assert_eq!(e.code, 40009);
    assert_eq!((bin_a.pads().len(), bin_b.pads().len(), bin_a.children().len()), (pads_a, pads_b, agnostics));
    // Existing descriptions still connect; other media types have their own count.
    connect("d2", "d1").unwrap();
    let audio = json!({"sink": b, "mediaType": "AUDIO", "sourceMediaDescription": "x", "sinkMediaDescription": "x"});
    r.invoke(&s, &a, "connect", audio.as_object()).unwrap();
    r.release(&s, &p).unwrap();
}

fn latency(stats: &serde_json::Value, id: &str) -> Vec<serde_json::Value> {
    stats[id]["inputLatency"].as_array().cloned().unwrap_or_default()
}

#[test]
fn input_latency_is_measured_while_latency_stats_are_enabled() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let a = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    let b = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    invoke(&r, &s, &a, "connect", json!({"sink": b, "mediaType": "VIDEO"}));
    let out = tap(&r, &b, MediaType::Video, None);
    // Decoding and re-encoding in between makes the age of buffers at B
    // a few milliseconds at least.
    feed(
        &r,
        &a,
        MediaType::Video,
        "videotestsrc is-live=true ! capsfilter caps=\"video/x-raw,width=320,height=240,framerate=30/1\" ! vp8enc deadline=1 ! vp8dec ! queue",
    );
    wait_until("buffers at B", Duration::from_secs(20), || out.count() > 10);
    let stats = invoke(&r, &s, &b, "getStats", json!({}));
    assert!(latency(&stats, &b).is_empty(), "disabled: no latency");
    assert_eq!(invoke(&r, &s, &p, "getLatencyStats", json!({})), json!(false));

    invoke(&r, &s, &p, "setLatencyStats", json!({"latencyStats": true}));
    assert_eq!(invoke(&r, &s, &p, "getLatencyStats", json!({})), json!(true));
    let n = out.count();
    wait_until("more buffers", Duration::from_secs(20), || out.count() > n + 10);
    let stats = invoke(&r, &s, &b, "getStats", json!({}));
    let l = latency(&stats, &b);
    assert_eq!(l.len(), 1, "{stats}");
    assert_eq!(l[0]["type"], "VIDEO");
    assert_eq!(l[0]["name"], "default");
    let avg = l[0]["avg"].as_f64().unwrap();
    // Nanoseconds: more than the 100 µs the encoder alone takes, less than
    // the 10 s nothing here would take.
    assert!(avg > 100_000.0 && avg < 10e9, "avg {avg} ns");
    assert_eq!(stats[&b]["type"], "element");

    invoke(&r, &s, &p, "setLatencyStats", json!({"latencyStats": false}));
    assert!(latency(&invoke(&r, &s, &b, "getStats", json!({})), &b).is_empty());
    r.release(&s, &p).unwrap();
}
