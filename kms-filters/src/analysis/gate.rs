//! Which frames are analysed (pure, time is an argument).
//!
//! Analysis is the expensive part of a detection filter: a Haar cascade
//! costs about 17 ms of CPU per 320×240 frame here (half a core at 30 fps),
//! zbar 10 ms per 640×480 frame of busy video. Faces and codes held up to
//! a camera change little in 100 ms, so a filter analyses at most
//! `per_second` frames a second, by the frames' own timestamps, and uses
//! the latest result on every frame.

use std::time::Duration;

const SLACK: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct FrameGate {
    interval: Duration,
    last: Option<Duration>,
}

impl FrameGate {
    /// `per_second` = 0 is taken as 1.
    pub fn new(per_second: u32) -> FrameGate {
        FrameGate { interval: Duration::from_secs(1) / per_second.max(1), last: None }
    }

    /// Whether the frame at `pts` is analysed.
    pub fn admit(&mut self, pts: Duration) -> bool {
        let go = match self.last {
            None => true,
            // Timestamps going back (a new stream, a new segment) restart.
            Some(last) if pts < last => true,
            // A little slack so 30 fps input gives exactly every third
            // frame for 10 detections a second, not every fourth when a
            // timestamp is rounded down.
            Some(last) => pts - last + SLACK >= self.interval,
        };
        if go {
            self.last = Some(pts);
        }
        go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(gate: &mut FrameGate, fps: u64, seconds: u64) -> usize {
        (0..fps * seconds).filter(|i| gate.admit(Duration::from_nanos(i * 1_000_000_000 / fps))).count()
    }

    #[test]
    fn thirty_fps_gives_ten_detections_a_second() {
        let mut g = FrameGate::new(10);
        assert_eq!(frames(&mut g, 30, 3), 30);
    }

    #[test]
    fn slower_input_than_the_rate_is_all_detected() {
        let mut g = FrameGate::new(10);
        assert_eq!(frames(&mut g, 5, 2), 10);
    }

    #[test]
    fn the_first_frame_and_frames_after_a_jump_back_go_through() {
        let mut g = FrameGate::new(10);
        assert!(g.admit(Duration::from_secs(100)));
        assert!(!g.admit(Duration::from_millis(100_010)));
        assert!(g.admit(Duration::from_secs(1)));
        assert!(!g.admit(Duration::from_millis(1_033)));
        assert!(g.admit(Duration::from_millis(1_100)));
    }

    #[test]
    fn zero_rate_is_one_per_second() {
        let mut g = FrameGate::new(0);
        assert_eq!(frames(&mut g, 30, 2), 2);
    }
}
