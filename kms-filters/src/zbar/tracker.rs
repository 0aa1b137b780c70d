//! When a code the scanner reads counts as *appearing* (pure, time is an
//! argument).
//!
//! zbar reports every code on every frame it can read it in and misses it
//! on some frames (motion blur, compression). `CodeFound` must be raised
//! once per appearance: a code is new when it is not in view. It leaves
//! the view only when it was missing from at least [`MIN_MISSED_SCANS`]
//! scans in a row *and* for at least the absence window: a video that
//! stalls (no frames, so no scans) does not make a code disappear, and a
//! few unreadable frames do not make it reappear.

use std::collections::HashMap;
use std::time::Duration;

/// How long a code must be out of view before seeing it again raises
/// `CodeFound` again.
pub const DEFAULT_ABSENCE: Duration = Duration::from_secs(2);

/// Scans in a row a code must be missing from before it can leave the view.
pub const MIN_MISSED_SCANS: u32 = 10;

/// Codes remembered at once. A stream showing more distinct codes than
/// this at once forgets the oldest (which may then be reported again):
/// bounded memory whatever the video shows.
pub const MAX_TRACKED: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Seen {
    last: Duration,
    in_this_scan: bool,
    missed: u32,
}

/// The codes in view.
#[derive(Debug)]
pub struct CodeTracker {
    absence: Duration,
    codes: HashMap<(String, String), Seen>,
}

impl CodeTracker {
    pub fn new(absence: Duration) -> CodeTracker {
        CodeTracker { absence, codes: HashMap::new() }
    }

    /// Records that the current scan read `value` (of `code_type`) at `now`
    /// (a monotonic time: the frame's running time). Returns `true` when
    /// the code was not in view, i.e. `CodeFound` must be raised.
    pub fn sighting(&mut self, code_type: &str, value: &str, now: Duration) -> bool {
        let key = (code_type.to_string(), value.to_string());
        if let Some(s) = self.codes.get_mut(&key) {
            // Time going backwards (a new segment) keeps the later stamp.
            s.last = s.last.max(now);
            s.in_this_scan = true;
            return false;
        }
        if self.codes.len() >= MAX_TRACKED {
            self.evict_oldest();
        }
        self.codes.insert(key, Seen { last: now, in_this_scan: true, missed: 0 });
        true
    }

    /// Ends the current scan (a frame went through the scanner at `now`):
    /// codes it did not read count one more miss, and those missed long
    /// enough leave the view.
    pub fn scan_done(&mut self, now: Duration) {
        let absence = self.absence;
        self.codes.retain(|_, s| {
            if std::mem::take(&mut s.in_this_scan) {
                s.missed = 0;
                return true;
            }
            s.missed = s.missed.saturating_add(1);
            s.missed < MIN_MISSED_SCANS || now.saturating_sub(s.last) < absence
        });
    }

    /// Codes currently in view.
    pub fn in_view(&self) -> usize {
        self.codes.len()
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self.codes.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| k.clone()) {
            self.codes.remove(&k);
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

    /// One scan at `t` ms reading `codes`; returns the new ones.
    fn scan(t: &mut CodeTracker, at: u64, codes: &[&str]) -> Vec<String> {
        let new = codes.iter().filter(|c| t.sighting("QR-Code", c, ms(at))).map(|c| c.to_string()).collect();
        t.scan_done(ms(at));
        new
    }

    #[test]
    fn a_code_in_view_is_reported_once() {
        let mut t = CodeTracker::default();
        assert_eq!(scan(&mut t, 0, &["hello"]), ["hello"]);
        for f in 1..300 {
            assert!(scan(&mut t, f * 66, &["hello"]).is_empty(), "scan {f}");
        }
    }

    #[test]
    fn unreadable_frames_do_not_make_it_reappear() {
        let mut t = CodeTracker::new(ms(2000));
        scan(&mut t, 0, &["a"]);
        // Missed for 1.9 s of scans, then read again.
        for f in 1..29 {
            scan(&mut t, f * 66, &[]);
        }
        assert!(scan(&mut t, 1900, &["a"]).is_empty());
    }

    #[test]
    fn a_code_gone_for_the_absence_and_shown_again_is_reported_again() {
        let mut t = CodeTracker::new(ms(2000));
        scan(&mut t, 0, &["a"]);
        let mut at = 0;
        while at < 2100 {
            at += 66;
            scan(&mut t, at, &[]);
        }
        assert_eq!(t.in_view(), 0);
        assert_eq!(scan(&mut t, at + 66, &["a"]), ["a"]);
        assert!(scan(&mut t, at + 132, &["a"]).is_empty());
    }

    #[test]
    fn a_stalled_video_does_not_make_it_reappear() {
        let mut t = CodeTracker::new(ms(2000));
        scan(&mut t, 0, &["a"]);
        // No frames for 10 s, then two scans without it and it is back:
        // too few misses to have left the view.
        scan(&mut t, 10_000, &[]);
        scan(&mut t, 10_066, &[]);
        assert!(scan(&mut t, 10_133, &["a"]).is_empty());
    }

    #[test]
    fn few_scans_over_a_long_time_still_need_the_misses() {
        // A slow scan rate: 9 misses spread over 5 s keep it in view.
        let mut t = CodeTracker::new(ms(2000));
        scan(&mut t, 0, &["a"]);
        for i in 1..=9 {
            scan(&mut t, i * 600, &[]);
        }
        assert_eq!(t.in_view(), 1);
        scan(&mut t, 6000, &[]);
        assert_eq!(t.in_view(), 0, "10 misses over 6 s");
    }

    #[test]
    fn distinct_codes_and_types_are_independent() {
        let mut t = CodeTracker::default();
        assert!(t.sighting("QR-Code", "a", ms(0)));
        assert!(t.sighting("QR-Code", "b", ms(0)));
        assert!(t.sighting("EAN-13", "a", ms(0)));
        t.scan_done(ms(0));
        assert!(!t.sighting("QR-Code", "a", ms(10)));
        t.scan_done(ms(10));
        assert_eq!(t.in_view(), 3);
    }

    #[test]
    fn time_going_backwards_does_not_repeat() {
        let mut t = CodeTracker::new(ms(2000));
        scan(&mut t, 10_000, &["a"]);
        assert!(scan(&mut t, 50, &["a"]).is_empty());
        assert!(scan(&mut t, 10_500, &["a"]).is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = CodeTracker::default();
        let n = MAX_TRACKED as u64 * 3;
        for i in 0..n {
            assert!(t.sighting("QR-Code", &i.to_string(), ms(i)));
        }
        assert_eq!(t.in_view(), MAX_TRACKED);
        // The most recent ones are the ones kept.
        assert!(!t.sighting("QR-Code", &(n - 1).to_string(), ms(n)));
    }
}
