//! Connection cycles are legal in Kurento (A→B→A, or an element connected
//! to itself), but GStreamer forwards caps/allocation queries downstream and
//! reconfigure/latency traffic upstream through every tee: in a cycle that
//! recursion never ends and overflows the stack. The guard answers those
//! queries (caps upstream: the caps flowing now) and drops those events at
//! an element's input, where the element (its agnosticbin) adapts formats
//! itself anyway.

use parking_lot::Mutex;

use gst::prelude::*;

/// How many recent upstream event seqnums are remembered to stop a
/// keyframe request from circling a loop forever.
const SEEN_EVENTS: usize = 32;

/// Installs the guard on an element's input pad (a sink pad).
pub fn install(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        let Some(gst::PadProbeData::Query(q)) = &mut info.data else {
            return gst::PadProbeReturn::Ok;
        };
        match q.view_mut() {
            gst::QueryViewMut::Caps(c) => {
                let caps = c.filter().map(|f| f.to_owned()).unwrap_or_else(gst::Caps::new_any);
                c.set_result(&caps);
                gst::PadProbeReturn::Handled
            }
            gst::QueryViewMut::AcceptCaps(a) => {
                a.set_result(true);
                gst::PadProbeReturn::Handled
            }
            gst::QueryViewMut::Allocation(_) => gst::PadProbeReturn::Handled,
            _ => gst::PadProbeReturn::Ok,
        }
    });
    pad.add_probe(gst::PadProbeType::QUERY_UPSTREAM, |pad, info| {
        let Some(gst::PadProbeData::Query(q)) = &mut info.data else {
            return gst::PadProbeReturn::Ok;
        };
        match q.view_mut() {
            gst::QueryViewMut::Latency(l) => {
                l.set(true, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                gst::PadProbeReturn::Handled
            }
            // What the producer can give is what it gives now: asking
            // further upstream would go around a cycle forever.
            gst::QueryViewMut::Caps(c) => {
                let current = pad.current_caps().unwrap_or_else(gst::Caps::new_any);
                let caps = match c.filter() {
                    Some(f) => f.intersect_with_mode(&current, gst::CapsIntersectMode::First),
                    None => current,
                };
                c.set_result(&caps);
                gst::PadProbeReturn::Handled
            }
            gst::QueryViewMut::AcceptCaps(_) | gst::QueryViewMut::Allocation(_) => gst::PadProbeReturn::Ok,
            _ => gst::PadProbeReturn::Drop,
        }
    });
    let seen: Mutex<Vec<gst::Seqnum>> = Mutex::new(Vec::with_capacity(SEEN_EVENTS));
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(e)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        match e.type_() {
            gst::EventType::Reconfigure | gst::EventType::Qos | gst::EventType::Latency => gst::PadProbeReturn::Handled,
            _ => {
                let mut seen = seen.lock();
                if seen.contains(&e.seqnum()) {
                    return gst::PadProbeReturn::Handled;
                }
                if seen.len() == SEEN_EVENTS {
                    seen.remove(0);
                }
                seen.push(e.seqnum());
                gst::PadProbeReturn::Ok
            }
        }
    });
}
