//! The player's outputs in the media pipeline: per media type one source
//! pad feeding the element's agnosticbin. Buffers arrive from the playback
//! pipeline's appsinks (see `playback`), already paced, and are pushed on
//! the appsink's own thread: no queue and no thread of our own per stream.
//!
//! Timestamps are moved from the playback pipeline's running time to the
//! media pipeline's: both run on the system clock, so a buffer's clock time
//! (running time + base time + latency) is the same instant in both. Pause
//! and flushing seeks change the playback pipeline's base time, which keeps
//! the output continuous without bookkeeping here.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::MediaType;
use kms_core::element::{MediaIo, media_type_name};

/// Per-stream state, touched only by the thread pushing into the pad (and
/// briefly by `reset`).
#[derive(Default)]
struct FeedState {
    caps: Option<gst::Caps>,
    last_pts: Option<gst::ClockTime>,
    discont: bool,
    /// The segment follows the first caps (sticky event order).
    segment_sent: bool,
}

struct Feed {
    pad: gst::Pad,
    state: Mutex<FeedState>,
}

/// The player's [`MediaIo`]: no inputs, an output per audio and video.
#[derive(Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<MediaType, Arc<Feed>>>,
    agnostics: Mutex<HashMap<MediaType, AgnosticBin>>,
}

impl Feeds {
    fn feed(&self, t: MediaType) -> Option<Arc<Feed>> {
        self.feeds.lock().get(&t).cloned()
    }

    /// The next buffers of every stream start a new segment of media (a
    /// new playback, a seek): they are marked DISCONT.
    pub fn reset(&self) {
        for f in self.feeds.lock().values() {
            let mut st = f.state.lock();
            st.discont = true;
        }
    }

    /// Pushes one sample of the playback pipeline into output `t`.
    /// `offset` is what to add to the playback running time to get the
    /// media pipeline's (both on the same clock; see the module docs).
    pub fn push(&self, t: MediaType, sample: &gst::Sample, offset: i128) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(feed) = self.feed(t) else { return Ok(gst::FlowSuccess::Ok) };
        let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
        let segment = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
        let to_out = |ts: Option<gst::ClockTime>| -> Option<gst::ClockTime> {
            let rt = segment.as_ref()?.to_running_time(ts?)?;
            Some(gst::ClockTime::from_nseconds(shift(rt.nseconds(), offset)))
        };
        let mut pts = to_out(buffer.pts());
        let dts = to_out(buffer.dts());
        let (new_caps, first, discont) = {
            let mut st = feed.state.lock();
            // Never backwards on one stream (a seek's first frame may
            // land a few ms before the last one pushed).
            if let (Some(p), Some(last)) = (pts, st.last_pts)
                && p <= last
            {
                pts = Some(last + gst::ClockTime::from_nseconds(1));
            }
            if pts.is_some() {
                st.last_pts = pts;
            }
            let caps = sample.caps().map(|c| c.to_owned());
            let new_caps = match (&caps, &st.caps) {
                (Some(c), Some(old)) if c == old => None,
                (Some(c), _) => Some(c.clone()),
                _ => None,
            };
            if new_caps.is_some() {
                st.caps = caps;
            }
            let first = new_caps.is_some() && !std::mem::replace(&mut st.segment_sent, true);
            (new_caps, first, std::mem::take(&mut st.discont))
        };
        if let Some(c) = new_caps {
            let _ = feed.pad.push_event(gst::event::Caps::new(&c));
        }
        if first {
            let _ = feed.pad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
        }
        let mut out = buffer.copy();
        {
            let b = out.make_mut();
            b.set_pts(pts);
            b.set_dts(dts.map(|d| pts.map_or(d, |p| d.min(p))));
            if discont {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        tracing::trace!(media = %t, pts = ?pts, "player push");
        match feed.pad.push(out) {
            // The media pipeline side is being torn down or nobody is
            // linked: the playback goes on regardless.
            Err(gst::FlowError::Flushing) | Err(gst::FlowError::NotLinked) => Ok(gst::FlowSuccess::Ok),
            r => r,
        }
    }
}

impl Feeds {
    /// The end of the media, told to every consumer without ending them
    /// (recorders with `stopOnEndOfStream` stop on it).
    pub fn end_of_stream(&self) {
        let feeds: Vec<Arc<Feed>> = self.feeds.lock().values().cloned().collect();
        for f in feeds {
            let _ = f.pad.push_event(crate::recorder::end_of_stream_event());
        }
    }
}

/// `rt + offset`, clamped to the clock's range.
pub fn shift(rt: u64, offset: i128) -> u64 {
    (rt as i128 + offset).clamp(0, u64::MAX as i128 - 1) as u64
}

/// The offset for [`Feeds::push`]: the playback pipeline's base time and
/// latency, minus the media pipeline's base time.
pub fn offset(playback_base: gst::ClockTime, playback_latency: gst::ClockTime, media_base: gst::ClockTime) -> i128 {
    playback_base.nseconds() as i128 + playback_latency.nseconds() as i128 - media_base.nseconds() as i128
}

/// [`MediaIo`] over shared [`Feeds`].
pub struct PlayerIo(pub Arc<Feeds>);

impl MediaIo for PlayerIo {
    fn input(&self, _bin: &gst::Bin, _t: MediaType, _desc: &str) -> Option<gst::Pad> {
        None
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        if desc != "default" {
            return None;
        }
        if let Some(a) = self.0.agnostics.lock().get(&t) {
            return Some(a.clone());
        }
        let name = media_type_name(t);
        let a = AgnosticBin::new(&format!("output_{name}"));
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        if t == MediaType::Data {
            // Files carry no data channel messages; the output exists
            // because `connect` without a media type links DATA too
            // (spec §10.3), as every KMS element has one.
            self.0.agnostics.lock().insert(t, a.clone());
            return Some(a);
        }
        let pad = gst::Pad::builder(gst::PadDirection::Src)
            .name(format!("player_{name}_src"))
            .query_function(|_, _, q| match q.view_mut() {
                // A source that is paced in real time, like a live one.
                gst::QueryViewMut::Latency(l) => {
                    l.set(true, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                    true
                }
                _ => false,
            })
            // Keyframe requests and reconfigure events from consumers end
            // here: a file cannot produce a keyframe on demand.
            .event_function(|_, _, _| true)
            .build();
        pad.set_active(true).ok()?;
        pad.link(&a.static_pad("sink")?).ok()?;
        let _ = pad.push_event(gst::event::StreamStart::new(&format!("kms-player-{name}")));
        self.0.feeds.lock().insert(t, Arc::new(Feed { pad, state: Mutex::new(FeedState::default()) }));
        self.0.agnostics.lock().insert(t, a.clone());
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_times_move_by_the_base_time_difference() {
        let s = gst::ClockTime::from_seconds;
        // Playback started 10 s after the media pipeline, 200 ms latency.
        let off = offset(s(110), gst::ClockTime::from_mseconds(200), s(100));
        assert_eq!(shift(0, off), 10_200_000_000);
        assert_eq!(shift(s(1).nseconds(), off), 11_200_000_000);
        // A media pipeline started later than the buffer's instant: clamped.
        let off = offset(s(1), gst::ClockTime::ZERO, s(5));
        assert_eq!(shift(0, off), 0);
    }
}
