//! The shape both detection filters share: every frame goes on at once,
//! a sample of them is analysed on a thread of its own.
//!
//! ```text
//!        ┌──────────────────────────────── bin ────────────────────────────────┐
//! sink ──► tee ─┬─[gate probe]─► queue (leaky, 1 frame) ─► <analysis…> ─► fakesink
//!        │      └─► [main: e.g. overlaycomposition] ─────────────────────────────► src
//!        └──────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * The main path never waits for the analysis: the queue holds at most
//!   one frame and drops older ones when the analysis is slower than the
//!   video.
//! * The gate ([`FrameGate`] plus a caller's condition, e.g. "an overlay
//!   image is set") drops frames before they are queued, on the streaming
//!   thread, so frames not analysed cost nothing but the probe.
//! * A failing analysis (its chain returns an error) stops only itself:
//!   the gate then drops every frame before the queue, so the error never
//!   reaches the tee and the video goes on.
//! * Results come out as element messages (zbar) or buffer metas read by a
//!   probe on the fakesink (facedetect's regions of interest).

pub mod gate;

use std::time::Duration;

use gst::prelude::*;
use parking_lot::Mutex;

pub use gate::FrameGate;

/// The built bin and its analysis sink (to probe what reaches it).
pub struct AnalysisBin {
    pub bin: gst::Bin,
    pub sink: gst::Element,
}

/// Builds `name`: `main` (or nothing) on the main path, `analysis` chained
/// on the sampled branch. Frames go to the analysis when `wanted()` and the
/// gate admits them.
pub fn build(
    name: &str,
    main: Option<&gst::Element>,
    analysis: &[gst::Element],
    gate: FrameGate,
    wanted: impl Fn() -> bool + Send + Sync + 'static,
) -> Result<AnalysisBin, gst::glib::BoolError> {
    let bin = gst::Bin::builder().name(name).build();
    let tee = gst::ElementFactory::make("tee").build()?;
    let queue = gst::ElementFactory::make("queue")
        .name("analysis_queue")
        .property("max-size-buffers", 1u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .property_from_str("leaky", "downstream")
        .build()?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .property("enable-last-sample", false)
        .build()?;
    bin.add_many([&tee, &queue, &sink])?;
    bin.add_many(analysis)?;
    let mut chain = vec![queue.clone()];
    chain.extend(analysis.iter().cloned());
    chain.push(sink.clone());
    gst::Element::link_many(&chain)?;
    tee.link(&queue)?;

    let to_analysis = queue.static_pad("sink").and_then(|p| p.peer()).expect("tee linked to the queue");
    let queue_out = queue.static_pad("src").expect("queue has a src pad");
    let gate = Mutex::new(gate);
    to_analysis.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        // An analysis that failed (its queue's task stopped on an error)
        // would make the queue, then the tee, refuse every later frame:
        // the video must go on without it.
        if let Err(e) = queue_out.last_flow_result()
            && e != gst::FlowError::Flushing
        {
            return gst::PadProbeReturn::Drop;
        }
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else { return gst::PadProbeReturn::Drop };
        if wanted() && gate.lock().admit(Duration::from_nanos(pts.nseconds())) {
            gst::PadProbeReturn::Ok
        } else {
            gst::PadProbeReturn::Drop
        }
    });

    let main_src = match main {
        Some(m) => {
            bin.add(m)?;
            tee.link(m)?;
            m.static_pad("src").ok_or_else(|| gst::glib::bool_error!("main element without src pad"))?
        }
        None => tee.request_pad_simple("src_%u").ok_or_else(|| gst::glib::bool_error!("no tee pad"))?,
    };
    bin.add_pad(&gst::GhostPad::builder_with_target(&tee.static_pad("sink").expect("tee sink"))?.name("sink").build())?;
    bin.add_pad(&gst::GhostPad::builder_with_target(&main_src)?.name("src").build())?;
    Ok(AnalysisBin { bin, sink })
}

/// Frames analysed per second from the module config `key` of `class`
/// (`kurento.<class>.<key>`), `default` when absent, clamped to 1..=60.
pub fn rate_from_config(config: &kms_core::CoreConfig, class: &str, key: &str, default: u32) -> u32 {
    config.module_i64("kurento", class, key).map_or(default, |v| v.clamp(1, 60) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_module_config_clamped() {
        let mut c = kms_core::CoreConfig::default();
        assert_eq!(rate_from_config(&c, "ZBarFilter", "scansPerSecond", 15), 15);
        c.modules = serde_json::json!({"kurento": {"ZBarFilter": {"scansPerSecond": "5"}, "FaceOverlayFilter": {"detectionsPerSecond": 1000}}});
        assert_eq!(rate_from_config(&c, "ZBarFilter", "scansPerSecond", 15), 5);
        assert_eq!(rate_from_config(&c, "FaceOverlayFilter", "detectionsPerSecond", 10), 60);
    }
}
