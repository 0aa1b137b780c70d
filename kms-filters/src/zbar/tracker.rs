//! When a code the scanner reads counts as *appearing* (pure, time is an
//! argument).
//!
//! zbar reports every code on every frame it can read it in, 30 times a
//! second for a code held in front of a camera, and misses it on some
//! frames (motion blur, compression). `CodeFound` must be raised once per
//! appearance: a code is new when it was never seen, or not seen for at
//! least the absence window; every sighting while it stays in view only
//! refreshes it.

use std::collections::HashMap;
use std::time::Duration;

/// How long a code must be out of view before seeing it again raises
/// `CodeFound` again. Long enough to bridge frames the scanner misses on a
/// code that stays in view, short enough that showing it again is news.
pub const DEFAULT_ABSENCE: Duration = Duration::from_secs(2);

/// Codes remembered at once. A stream showing more distinct codes than
/// this within one absence window forgets the oldest (which may then be
/// reported again): bounded memory whatever the video shows.
pub const MAX_TRACKED: usize = 256;

/// The codes in view and when each was last seen.
#[derive(Debug)]
pub struct CodeTracker {
    absence: Duration,
    last_seen: HashMap<(String, String), Duration>,
}

impl CodeTracker {
    pub fn new(absence: Duration) -> CodeTracker {
        CodeTracker { absence, last_seen: HashMap::new() }
    }

    /// Records that the scanner read `value` (of `code_type`) at `now` (any
    /// monotonic time: the frame's running time). Returns `true` when this
    /// is a new appearance, i.e. `CodeFound` must be raised.
    pub fn sighting(&mut self, code_type: &str, value: &str, now: Duration) -> bool {
        self.expire(now);
        let key = (code_type.to_string(), value.to_string());
        let new = !self.last_seen.contains_key(&key);
        if new && self.last_seen.len() >= MAX_TRACKED {
            self.evict_oldest();
        }
        // Time going backwards (a new segment) keeps the later stamp: the
        // code stays "in view" rather than being reported twice.
        let at = self.last_seen.get(&key).map_or(now, |&t| t.max(now));
        self.last_seen.insert(key, at);
        new
    }

    /// Codes currently considered in view at `now`.
    pub fn in_view(&mut self, now: Duration) -> usize {
        self.expire(now);
        self.last_seen.len()
    }

    fn expire(&mut self, now: Duration) {
        let absence = self.absence;
        self.last_seen.retain(|_, &mut t| now.saturating_sub(t) < absence);
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self.last_seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
            self.last_seen.remove(&k);
        }
    }
}

impl Default for CodeTracker {
    fn default() -> Self {
        CodeTracker::new(DEFAULT_ABSENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_code_in_view_is_reported_once() {
        let mut t = CodeTracker::default();
        assert!(t.sighting("QR-Code", "hello", ms(0)));
        for f in 1..300 {
            assert!(!t.sighting("QR-Code", "hello", ms(f * 33)), "frame {f}");
        }
    }

    #[test]
    fn missed_frames_shorter_than_the_absence_do_not_repeat() {
        let mut t = CodeTracker::new(ms(2000));
        assert!(t.sighting("QR-Code", "a", ms(0)));
        assert!(!t.sighting("QR-Code", "a", ms(1999)));
        assert!(!t.sighting("QR-Code", "a", ms(3900)));
    }

    #[test]
    fn a_code_shown_again_after_the_absence_is_reported_again() {
        let mut t = CodeTracker::new(ms(2000));
        assert!(t.sighting("QR-Code", "a", ms(0)));
        assert!(!t.sighting("QR-Code", "a", ms(100)));
        assert!(t.sighting("QR-Code", "a", ms(2100)));
        assert!(!t.sighting("QR-Code", "a", ms(2133)));
    }

    #[test]
    fn distinct_codes_and_types_are_independent() {
        let mut t = CodeTracker::default();
        assert!(t.sighting("QR-Code", "a", ms(0)));
        assert!(t.sighting("QR-Code", "b", ms(0)));
        assert!(t.sighting("EAN-13", "a", ms(0)));
        assert!(!t.sighting("QR-Code", "a", ms(10)));
        assert_eq!(t.in_view(ms(10)), 3);
        assert_eq!(t.in_view(ms(5000)), 0);
    }

    #[test]
    fn time_going_backwards_does_not_repeat() {
        let mut t = CodeTracker::new(ms(2000));
        assert!(t.sighting("QR-Code", "a", ms(10_000)));
        assert!(!t.sighting("QR-Code", "a", ms(50)));
        assert!(!t.sighting("QR-Code", "a", ms(10_500)));
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = CodeTracker::default();
        for i in 0..(MAX_TRACKED as u64 * 3) {
            assert!(t.sighting("QR-Code", &i.to_string(), ms(i)));
        }
        assert_eq!(t.in_view(ms(MAX_TRACKED as u64 * 3)), MAX_TRACKED);
        // The most recent ones are the ones kept.
        let last = (MAX_TRACKED as u64 * 3 - 1).to_string();
        assert!(!t.sighting("QR-Code", &last, ms(MAX_TRACKED as u64 * 3)));
    }
}
