//! Helpers shared by kms-core's media tests: a registry with the core
//! module, RPC-style calls, sources fed into element inputs and appsinks
//! tapping element outputs, all in the element's real pipeline.
#![allow(dead_code)]

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use kms_core::api::core::MediaType;
use kms_core::rt::ModuleDescriptor;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};

pub fn registry() -> Registry {
    registry_with(vec![kms_core::module::descriptor()], CoreConfig::default())
}

pub fn registry_with(modules: Vec<ModuleDescriptor>, config: CoreConfig) -> Registry {
    kms_core::module::init().unwrap();
    let hub = SessionHub::new(&ServerConfig::default());
    Registry::new(modules, hub.notifier(), config)
}

pub fn invoke(r: &Registry, s: &SessionId, obj: &str, op: &str, params: serde_json::Value) -> serde_json::Value {
    r.invoke(s, obj, op, params.as_object()).unwrap_or_else(|e| panic!("{op}: {e:?}"))
}

pub fn pipeline_of(r: &Registry, id: &str) -> gst::Pipeline {
    let h = r.get(id).unwrap();
    let core = h.remote.element().unwrap();
    core.bin().parent().unwrap().downcast::<gst::Pipeline>().unwrap()
}

/// What an appsink tapping an element output received.
#[derive(Default)]
pub struct Received {
    pub caps: Vec<gst::Caps>,
    pub pts: Vec<gst::ClockTime>,
    pub sizes: Vec<usize>,
}

pub struct Tap {
    pub received: Arc<Mutex<Received>>,
    pub sink: gst::Element,
}

impl Tap {
    pub fn count(&self) -> usize {
        self.received.lock().sizes.len()
    }

    pub fn last_caps(&self) -> Option<gst::Caps> {
        self.received.lock().caps.last().cloned()
    }
}

/// An appsink accepting `caps` (anything if `None`) fed from `id`'s
/// output of type `t`, through a new agnosticbin branch.
pub fn tap(r: &Registry, id: &str, t: MediaType, caps: Option<gst::Caps>) -> Tap {
    let h = r.get(id).unwrap();
    let core = h.remote.element().unwrap();
    let agnostic = core.output(t, "default").unwrap();
    let branch = agnostic.request_pad_simple("src_%u").unwrap();
    let ghost = gst::GhostPad::with_target(&branch).unwrap();
    ghost.set_active(true).unwrap();
    core.bin().add_pad(&ghost).unwrap();
    let received = Arc::new(Mutex::new(Received::default()));
    let rx = received.clone();
    // In an always-PLAYING pipeline sinks must not wait for preroll.
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .caps(&caps.unwrap_or_else(gst::Caps::new_any))
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut rx = rx.lock();
                    if let Some(c) = sample.caps()
                        && rx.caps.last().is_none_or(|l| l.as_ref() != c)
                    {
                        rx.caps.push(c.to_owned());
                    }
                    if let Some(b) = sample.buffer() {
                        if let Some(p) = b.pts() {
                            rx.pts.push(p);
                        }
                        rx.sizes.push(b.size());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    let pipeline = pipeline_of(r, id);
    pipeline.add(&sink).unwrap();
    sink.sync_state_with_parent().unwrap();
    ghost.link(&sink.static_pad("sink").unwrap()).unwrap();
    Tap { received, sink: sink.upcast() }
}

/// Builds `description` (a bin with one unlinked source pad; caps as
/// `capsfilter caps="..."`: `bin_from_description` does not parse bare
/// caps in GStreamer 1.22) in `id`'s
/// pipeline and links it to `id`'s input of type `t`.
pub fn feed(r: &Registry, id: &str, t: MediaType, description: &str) -> gst::Bin {
    let h = r.get(id).unwrap();
    let core = h.remote.element().unwrap();
    let input = core.input_pad(t, "default").unwrap();
    let src = gst::parse::bin_from_description(description, true).unwrap();
    let pipeline = pipeline_of(r, id);
    pipeline.add(&src).unwrap();
    src.static_pad("src").unwrap().link(&input).unwrap();
    src.sync_state_with_parent().unwrap();
    src
}

pub fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every element below `bin`, recursively.
pub fn all_elements(bin: &gst::Bin) -> Vec<gst::Element> {
    let mut v = vec![];
    for e in bin.children() {
        if let Some(b) = e.downcast_ref::<gst::Bin>() {
            v.extend(all_elements(b));
        }
        v.push(e);
    }
    v
}

pub fn count_factory(bin: &gst::Bin, factory: &str) -> usize {
    all_elements(bin).iter().filter(|e| e.factory().is_some_and(|f| f.name() == factory)).count()
}
