//! Which incoming buffers a recording keeps and the timestamps they get in
//! the file, as a pure machine: `record`/`pause`/`stop` and buffers (their
//! running time, whether they are keyframes) in, verdicts out. The input
//! probes of the recorder apply it under one short lock.
//!
//! * A recording starts at 0 with the first buffer kept after `record()`;
//!   video is kept from a keyframe on (the first one after `record()` or
//!   after a pause), so every file starts decodable.
//! * A pause removes its time: the first buffer after `record()` resumes
//!   one [`STEP`] after the last one before the pause, on every track alike
//!   (audio and video stay in sync).
//! * `GENPTS` (GapsFixMethod) removes gaps the same way: when no media at
//!   all arrived for longer than [`GAP`], the time in between is cut out.
//!   Gaps of one track while the other flows are kept (cutting them would
//!   desynchronize the tracks).

use super::profile::TrackKind;

/// Time between the last buffer before a cut (pause, gap) and the first
/// after it: about one audio frame.
pub const STEP: u64 = 20_000_000;

/// With `GENPTS`, silence on every track longer than this is cut out.
pub const GAP: u64 = 500_000_000;

/// GapsFixMethod values we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapsFix {
    None,
    Genpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Never recorded, or stopped: nothing is kept.
    Idle,
    Recording,
    Paused,
}

/// What to do with one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not recorded. `want_keyframe`: video waiting for a keyframe; ask the
    /// source for one.
    Drop { want_keyframe: bool },
    /// Recorded at `out` (ns from the start of the file). `first`: the
    /// first buffer since `record()`, when `Recording` is raised.
    Keep { out: u64, first: bool },
}

#[derive(Debug, Default, Clone, Copy)]
struct TrackState {
    /// Video: the next kept buffer must be a keyframe.
    need_keyframe: bool,
    /// Last output timestamp of this track (outputs never go backwards).
    last_out: Option<u64>,
}

/// The recording timeline of one recorder.
#[derive(Debug, Clone)]
pub struct Timeline {
    mode: Mode,
    gaps: GapsFix,
    /// Running time that maps to 0 in the file, minus every cut so far.
    offset: Option<u64>,
    /// Running time of the newest buffer kept (any track).
    last_in: Option<u64>,
    /// A cut is due at the next kept buffer (after a pause).
    cut_pending: bool,
    /// `Recording` not yet announced since the last `record()`.
    announce: bool,
    audio: TrackState,
    video: TrackState,
}

impl Timeline {
    pub fn new(gaps: GapsFix) -> Timeline {
        Timeline {
            mode: Mode::Idle,
            gaps,
            offset: None,
            last_in: None,
            cut_pending: false,
            announce: false,
            audio: TrackState::default(),
            video: TrackState::default(),
        }
    }

    /// `record()`: starts a new recording (from Idle) or resumes a paused one.
    pub fn record(&mut self) {
        match self.mode {
            Mode::Recording => return,
            Mode::Idle => {
                self.offset = None;
                self.last_in = None;
                self.cut_pending = false;
                self.audio = TrackState::default();
                self.video = TrackState::default();
            }
            Mode::Paused => self.cut_pending = self.offset.is_some(),
        }
        self.mode = Mode::Recording;
        self.announce = true;
        self.video.need_keyframe = true;
    }

    /// `pause()`: keeps nothing until the next `record()`.
    pub fn pause(&mut self) {
        if self.mode == Mode::Recording {
            self.mode = Mode::Paused;
        }
    }

    /// `stop()` (or release): keeps nothing more; the next `record()`
    /// starts a new file.
    pub fn stop(&mut self) {
        self.mode = Mode::Idle;
    }

    pub fn is_recording(&self) -> bool {
        self.mode == Mode::Recording
    }

    /// Whether any buffer was kept since the last `record()` from Idle
    /// (the muxer has started writing: its tracks are fixed).
    pub fn started(&self) -> bool {
        self.offset.is_some()
    }

    /// One buffer of `track` at running time `rt` (ns).
    pub fn on_buffer(&mut self, track: TrackKind, rt: u64, keyframe: bool) -> Verdict {
        if self.mode != Mode::Recording {
            return Verdict::Drop { want_keyframe: false };
        }
        let st = match track {
            TrackKind::Audio => &mut self.audio,
            TrackKind::Video => &mut self.video,
        };
        if track == TrackKind::Video && st.need_keyframe {
            if !keyframe {
                return Verdict::Drop { want_keyframe: true };
            }
            st.need_keyframe = false;
        }
        let offset = match (self.offset, self.last_in) {
            (None, _) | (_, None) => *self.offset.get_or_insert(rt),
            (Some(off), Some(last)) => {
                let gap = rt.saturating_sub(last);
                let cut = self.cut_pending || (self.gaps == GapsFix::Genpts && gap > GAP);
                if cut && gap > STEP {
                    // The file continues STEP after the last kept buffer.
                    let new = off + (gap - STEP);
                    self.offset = Some(new);
                    new
                } else {
                    off
                }
            }
        };
        self.cut_pending = false;
        self.last_in = Some(self.last_in.map_or(rt, |l| l.max(rt)));
        let mut out = rt.saturating_sub(offset);
        // A track's timestamps never go backwards (late packets of one
        // track across a cut would otherwise land before its last one).
        if let Some(l) = st.last_out
            && out < l
        {
            out = l;
        }
        st.last_out = Some(out);
        let first = std::mem::take(&mut self.announce);
        Verdict::Keep { out, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrackKind::*;

    const MS: u64 = 1_000_000;

    fn out(v: Verdict) -> u64 {
        match v {
            Verdict::Keep { out, .. } => out,
            Verdict::Drop { .. } => panic!("dropped"),
        }
    }

    #[test]
    fn nothing_is_kept_before_record() {
        let mut t = Timeline::new(GapsFix::None);
        assert_eq!(t.on_buffer(Audio, 5 * MS, true), Verdict::Drop { want_keyframe: false });
        assert!(!t.started());
    }

    #[test]
    fn starts_at_zero_and_video_waits_for_a_keyframe() {
        let mut t = Timeline::new(GapsFix::None);
        t.record();
        assert_eq!(t.on_buffer(Video, 1000 * MS, false), Verdict::Drop { want_keyframe: true });
        assert_eq!(t.on_buffer(Audio, 1010 * MS, false), Verdict::Keep { out: 0, first: true });
        assert_eq!(t.on_buffer(Video, 1033 * MS, true), Verdict::Keep { out: 23 * MS, first: false });
        assert_eq!(out(t.on_buffer(Video, 1066 * MS, false)), 56 * MS);
        assert!(t.started());
    }

    #[test]
    fn a_pause_is_cut_out_on_every_track() {
        let mut t = Timeline::new(GapsFix::None);
        t.record();
        out(t.on_buffer(Video, 0, true));
        assert_eq!(out(t.on_buffer(Audio, 2000 * MS, false)), 2000 * MS);
        t.pause();
        assert_eq!(t.on_buffer(Audio, 3000 * MS, false), Verdict::Drop { want_keyframe: false });
        t.record();
        // Video resumes only at a keyframe; audio resumes STEP after the
        // last kept buffer, and video keeps the same offset.
        assert_eq!(t.on_buffer(Video, 9000 * MS, false), Verdict::Drop { want_keyframe: true });
        assert_eq!(t.on_buffer(Audio, 9010 * MS, false), Verdict::Keep { out: 2000 * MS + STEP, first: true });
        assert_eq!(out(t.on_buffer(Video, 9040 * MS, true)), 2000 * MS + STEP + 30 * MS);
    }

    #[test]
    fn genpts_cuts_gaps_of_all_media_and_none_keeps_them() {
        for (gaps, expect) in [(GapsFix::None, 5000 * MS), (GapsFix::Genpts, 400 * MS + STEP)] {
            let mut t = Timeline::new(gaps);
            t.record();
            out(t.on_buffer(Audio, 0, false));
            out(t.on_buffer(Audio, 400 * MS, false));
            assert_eq!(out(t.on_buffer(Audio, 5000 * MS, false)), expect, "{gaps:?}");
        }
        // Gaps up to GAP are kept even with GENPTS.
        let mut t = Timeline::new(GapsFix::Genpts);
        t.record();
        out(t.on_buffer(Audio, 0, false));
        assert_eq!(out(t.on_buffer(Audio, GAP, false)), GAP);
    }

    #[test]
    fn timestamps_of_a_track_never_go_backwards() {
        let mut t = Timeline::new(GapsFix::Genpts);
        t.record();
        out(t.on_buffer(Audio, 0, false));
        out(t.on_buffer(Video, 0, true));
        assert_eq!(out(t.on_buffer(Video, 100 * MS, false)), 100 * MS);
        // Audio jumps (gap), then a late video frame from before the gap.
        out(t.on_buffer(Audio, 3000 * MS, false));
        assert_eq!(out(t.on_buffer(Video, 150 * MS, false)), 100 * MS);
    }

    #[test]
    fn stop_then_record_starts_a_new_file_at_zero() {
        let mut t = Timeline::new(GapsFix::None);
        t.record();
        out(t.on_buffer(Audio, 7000 * MS, false));
        t.stop();
        assert!(!t.is_recording());
        assert_eq!(t.on_buffer(Audio, 8000 * MS, false), Verdict::Drop { want_keyframe: false });
        t.record();
        assert_eq!(t.on_buffer(Audio, 9000 * MS, false), Verdict::Keep { out: 0, first: true });
    }
}
