//! Media flow detection (spec §10.3): FLOWING on the first buffer, seen on
//! the streaming thread; NOT_FLOWING when a periodic 2 s check finds no new
//! buffers. One process-wide ticker thread serves every meter, so threads do
//! not grow with objects.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

/// spec §13.3: apps rely on NOT_FLOWING arriving within ~2–4 s.
pub const CHECK_PERIOD: Duration = Duration::from_secs(2);

type Callback = Box<dyn Fn(bool) + Send + Sync>;

/// Counts buffers through one pad and reports flow state changes.
pub struct FlowMeter {
    buffers: AtomicU64,
    seen_at_last_check: AtomicU64,
    flowing: AtomicBool,
    on_change: Callback,
}

impl FlowMeter {
    /// `on_change(true)` on the first buffer after not flowing,
    /// `on_change(false)` when a check period passes without buffers.
    pub fn new(on_change: impl Fn(bool) + Send + Sync + 'static) -> Arc<FlowMeter> {
        let m = Arc::new(FlowMeter {
            buffers: AtomicU64::new(0),
            seen_at_last_check: AtomicU64::new(0),
            flowing: AtomicBool::new(false),
            on_change: Box::new(on_change),
        });
        TICKER.register(&m);
        m
    }

    /// Called from the pad probe for every buffer (or buffer list).
    pub fn on_buffer(&self) {
        self.buffers.fetch_add(1, Ordering::Relaxed);
        if !self.flowing.swap(true, Ordering::AcqRel) {
            (self.on_change)(true);
        }
    }

    pub fn is_flowing(&self) -> bool {
        self.flowing.load(Ordering::Acquire)
    }

    pub fn buffers(&self) -> u64 {
        self.buffers.load(Ordering::Relaxed)
    }

    fn check(&self) {
        let now = self.buffers.load(Ordering::Relaxed);
        let before = self.seen_at_last_check.swap(now, Ordering::Relaxed);
        if now == before && self.flowing.swap(false, Ordering::AcqRel) {
            (self.on_change)(false);
        }
    }

    /// Installs a probe counting buffers on `pad`.
    pub fn attach(self: &Arc<Self>, pad: &gst::Pad) -> Option<gst::PadProbeId> {
        use gst::prelude::*;
        let weak = Arc::downgrade(self);
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
            if let Some(m) = weak.upgrade() {
                m.on_buffer();
            }
            gst::PadProbeReturn::Ok
        })
    }
}

struct Ticker {
    meters: Mutex<Vec<Weak<FlowMeter>>>,
}

static TICKER: LazyLock<Ticker> = LazyLock::new(|| {
    std::thread::Builder::new()
        .name("kms-flow".into())
        .spawn(|| {
            loop {
                std::thread::sleep(CHECK_PERIOD);
                TICKER.tick();
            }
        })
        .expect("spawn flow ticker");
    Ticker { meters: Mutex::new(vec![]) }
});

impl Ticker {
    fn register(&self, m: &Arc<FlowMeter>) {
        self.meters.lock().push(Arc::downgrade(m));
    }

    fn tick(&self) {
        let live: Vec<Arc<FlowMeter>> = {
            let mut meters = self.meters.lock();
            meters.retain(|w| w.strong_count() > 0);
            meters.iter().filter_map(Weak::upgrade).collect()
        };
        for m in live {
            m.check();
        }
    }
}
