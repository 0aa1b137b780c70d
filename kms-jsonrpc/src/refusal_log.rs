//! Rate-limited logging of refused upgrades (bad or missing access token,
//! foreign `Origin`). A client retrying in a loop, or a scanner, must not be
//! able to fill the disk through our log: per source address the first
//! refusal is logged, then at most one summary line per window. The table
//! of addresses is bounded; past it, refusals are summarised together.
//!
//! Sans-IO: time is an input. Tokens never reach this module.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One summary line per address per this much time.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once.
pub(crate) const MAX_ADDRESSES: usize = 1024;

/// What to log for one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Log this refusal; `earlier` more were refused silently since the
    /// last line for this source.
    Log { earlier: u64 },
    /// Counted; log nothing now.
    Silent,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    suppressed: u64,
}

/// Where a refusal came from: an address, or "any untracked address" once
/// the table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Addr(IpAddr),
    Untracked,
}

pub(crate) struct RefusalLog {
    windows: HashMap<IpAddr, Window>,
    untracked: Option<Window>,
    window: Duration,
    max_addresses: usize,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self::new(WINDOW, MAX_ADDRESSES)
    }
}

impl RefusalLog {
    pub fn new(window: Duration, max_addresses: usize) -> Self {
        RefusalLog { windows: HashMap::new(), untracked: None, window, max_addresses }
    }

    /// Records one refusal from `addr`; says what to log and for which
    /// source.
    pub fn record(&mut self, addr: IpAddr, now: Instant) -> (Source, Decision) {
        if !self.windows.contains_key(&addr) && self.windows.len() >= self.max_addresses {
            let window = self.window;
            self.windows.retain(|_, w| now.saturating_duration_since(w.start) < window);
        }
        let (source, slot) = if self.windows.contains_key(&addr) || self.windows.len() < self.max_addresses {
            (Source::Addr(addr), self.windows.entry(addr).or_insert(Window { start: now, suppressed: u64::MAX }))
        } else {
            (Source::Untracked, self.untracked.get_or_insert(Window { start: now, suppressed: u64::MAX }))
        };
        // `u64::MAX` marks a fresh window whose first refusal is logged.
        if slot.suppressed == u64::MAX {
            slot.suppressed = 0;
            return (source, Decision::Log { earlier: 0 });
        }
        if now.saturating_duration_since(slot.start) < self.window {
            slot.suppressed += 1;
            return (source, Decision::Silent);
        }
        let earlier = slot.suppressed;
        *slot = Window { start: now, suppressed: 0 };
        (source, Decision::Log { earlier })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn first_refusal_logged_then_one_summary_per_window() {
        let t0 = Instant::now();
        let mut l = RefusalLog::new(Duration::from_secs(60), 10);
        assert_eq!(l.record(ip(1), t0).1, Decision::Log { earlier: 0 });
        for i in 1..=100 {
            assert_eq!(l.record(ip(1), t0 + Duration::from_millis(i * 100)).1, Decision::Silent);
        }
        // Another address is independent.
        assert_eq!(l.record(ip(2), t0).1, Decision::Log { earlier: 0 });
        let (src, d) = l.record(ip(1), t0 + Duration::from_secs(61));
        assert_eq!((src, d), (Source::Addr(ip(1)), Decision::Log { earlier: 100 }));
        assert_eq!(l.record(ip(1), t0 + Duration::from_secs(62)).1, Decision::Silent);
    }

    #[test]
    fn the_address_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = RefusalLog::new(Duration::from_secs(60), 10);
        let mut logged = 0;
        for n in 0..10_000 {
            if let (_, Decision::Log { .. }) = l.record(ip(n), t0) {
                logged += 1;
            }
        }
        assert_eq!(l.tracked(), 10);
        assert_eq!(logged, 11, "ten addresses, then one line for all the others");
        // Once their windows are over, expired addresses make room again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(l.record(ip(20_000), later), (Source::Addr(ip(20_000)), Decision::Log { earlier: 0 }));
        assert_eq!(l.tracked(), 1);
    }
}
