//! Latency stats (spec §10.2 `latencyStats`, kmd `ElementStats.inputLatency`
//! and `EndpointStats.E2ELatency`, in nanoseconds). As KMS's latency meta
//! does, a buffer's age is measured against the pipeline clock: `now`
//! (clock time − base time) minus the buffer's running time (its PTS in its
//! segment), i.e. how long ago, in pipeline time, the buffer was stamped
//! where it entered the pipeline (capture or network arrival). Each meter
//! keeps an exponentially weighted average (α = 1/16, about the last 16
//! buffers). While the pipeline's switch is off the probes return after one
//! atomic load; turning it on again starts fresh averages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gst::prelude::*;

/// Weight of a new sample in the average.
const ALPHA: f64 = 1.0 / 16.0;

/// A pipeline's `latencyStats` switch, shared with every meter's probe
/// (never the pipeline itself: a probe holding it would keep it alive).
#[derive(Debug, Default)]
pub struct LatencySwitch {
    enabled: AtomicBool,
    /// Bumped on every enable: averages from before are stale.
    epoch: AtomicU64,
}

impl LatencySwitch {
    pub fn set(&self, on: bool) {
        if on && !self.enabled.load(Ordering::Acquire) {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.enabled.store(on, Ordering::Release);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// The current measuring period, while enabled.
    pub fn epoch(&self) -> Option<u64> {
        self.is_enabled().then(|| self.epoch.load(Ordering::Acquire))
    }
}

/// The average age of buffers crossing one pad.
#[derive(Debug, Default)]
pub struct LatencyMeter {
    /// f64 bits of the average, ns.
    avg: AtomicU64,
    samples: AtomicU64,
    epoch: AtomicU64,
}

impl LatencyMeter {
    pub fn new() -> Arc<LatencyMeter> {
        Arc::new(LatencyMeter::default())
    }

    /// Adds one sample (ns). One writer per pad (its streaming thread).
    pub fn record(&self, ns: u64, epoch: u64) {
        if self.epoch.swap(epoch, Ordering::AcqRel) != epoch {
            self.samples.store(0, Ordering::Release);
        }
        let n = self.samples.fetch_add(1, Ordering::AcqRel);
        let v = ns as f64;
        let avg = if n == 0 { v } else { f64::from_bits(self.avg.load(Ordering::Acquire)) * (1.0 - ALPHA) + v * ALPHA };
        self.avg.store(avg.to_bits(), Ordering::Release);
    }

    /// The average in the current measuring period, if any buffer was
    /// measured in it.
    pub fn average(&self, epoch: u64) -> Option<f64> {
        (self.epoch.load(Ordering::Acquire) == epoch && self.samples.load(Ordering::Acquire) > 0)
            .then(|| f64::from_bits(self.avg.load(Ordering::Acquire)))
    }

    /// Measures every buffer crossing `pad` while `switch` is on.
    pub fn attach(self: &Arc<Self>, pad: &gst::Pad, switch: &Arc<LatencySwitch>) {
        let meter = Arc::downgrade(self);
        let switch = switch.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |pad, info| {
            let Some(epoch) = switch.epoch() else { return gst::PadProbeReturn::Ok };
            let pts = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => b.pts(),
                Some(gst::PadProbeData::BufferList(l)) => l.get(0).and_then(|b| b.pts()),
                _ => None,
            };
            if let (Some(pts), Some(m)) = (pts, meter.upgrade())
                && let Some(age) = buffer_age(pad, pts)
            {
                m.record(age, epoch);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// Pipeline time elapsed since a buffer with `pts` (in `pad`'s segment)
/// was stamped; a buffer stamped ahead of the clock counts as 0.
fn buffer_age(pad: &gst::Pad, pts: gst::ClockTime) -> Option<u64> {
    let el = pad.parent_element()?;
    let now = el.current_running_time()?;
    let seg = pad.sticky_event::<gst::event::Segment>(0)?;
    let running = seg.segment().downcast_ref::<gst::ClockTime>()?.to_running_time(pts)?;
    Some(now.nseconds().saturating_sub(running.nseconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_follows_samples_and_restarts_with_each_measuring_period() {
        let m = LatencyMeter::new();
        assert_eq!(m.average(1), None);
        m.record(1_000_000, 1);
        assert_eq!(m.average(1), Some(1_000_000.0));
        for _ in 0..200 {
            m.record(3_000_000, 1);
        }
        let avg = m.average(1).unwrap();
        assert!((avg - 3_000_000.0).abs() < 1000.0, "{avg}");
        assert_eq!(m.average(2), None, "a new period has no samples yet");
        m.record(5, 2);
        assert_eq!(m.average(2), Some(5.0));
    }

    #[test]
    fn the_switch_reports_a_new_period_on_each_enable() {
        let s = LatencySwitch::default();
        assert_eq!(s.epoch(), None);
        s.set(true);
        let e1 = s.epoch().unwrap();
        s.set(true);
        assert_eq!(s.epoch(), Some(e1));
        s.set(false);
        assert_eq!(s.epoch(), None);
        s.set(true);
        assert!(s.epoch().unwrap() > e1);
    }
}
