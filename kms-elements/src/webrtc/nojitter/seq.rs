//! Sequence-number accounting of a received RTP stream, without IO: what
//! `kmsrtpnojitter` reports in its `stats` where `rtpjitterbuffer` reports
//! its own (webrtcbin turns `num-lost` into the inbound stream's
//! `packets-lost`). Time is passed in, so tests are deterministic.

/// Packets of a forward jump larger than this start a new sequence (a
/// sender restart), as rtpjitterbuffer's `max-dropout-time` does.
const MAX_DROPOUT: i64 = 3000;
/// Older packets than this are from a previous sequence, not late ones.
const MAX_MISORDER: i64 = 1000;
/// Sequence numbers remembered for duplicate detection.
const WINDOW: u64 = 1024;

/// Counts of one stream, RFC 3550 style: `lost` is expected minus received
/// (a late packet that fills a gap is no longer lost), `late` counts
/// packets that arrived after a later one (forwarded anyway: this element
/// does not reorder), `duplicates` packets seen twice within the last 1024.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SeqStats {
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    /// RFC 3550 interarrival jitter, in nanoseconds (0 until the clock rate
    /// is known).
    pub jitter_ns: u64,
}

#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Extended sequence number of the first packet of the current run.
    base: u64,
    /// Highest extended sequence number of the current run.
    highest: u64,
    started: bool,
    /// Packets expected by runs before the current one.
    expected_before: u64,
    /// Distinct packets received (duplicates excluded).
    received: u64,
    late: u64,
    duplicates: u64,
    seen: [u64; (WINDOW / 64) as usize],
    clock_rate: u32,
    /// (arrival ns, RTP timestamp) of the previous packet, for jitter.
    last: Option<(u64, u32)>,
    /// Jitter in RTP timestamp units, ×16 (RFC 3550 A.8 fixed point).
    jitter16: u64,
    /// Payload type whose clock rate was asked for.
    pt: Option<u8>,
}

impl SeqTracker {
    /// The stream's clock rate (from its caps): jitter needs it.
    pub fn set_clock_rate(&mut self, rate: u32) {
        if rate != self.clock_rate {
            self.clock_rate = rate;
            self.last = None;
        }
    }

    /// Whether the clock rate of payload type `pt` must be looked up
    /// (first packet, or the payload type changed); records `pt`.
    pub fn needs_clock_rate(&mut self, pt: u8) -> bool {
        self.pt.replace(pt) != Some(pt)
    }

    fn bit(&self, ext: u64) -> bool {
        let i = (ext % WINDOW) as usize;
        self.seen[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, ext: u64, on: bool) {
        let i = (ext % WINDOW) as usize;
        if on {
            self.seen[i / 64] |= 1 << (i % 64);
        } else {
            self.seen[i / 64] &= !(1 << (i % 64));
        }
    }

    fn restart(&mut self, ext: u64) {
        if self.started {
            self.expected_before += self.highest - self.base + 1;
        }
        self.started = true;
        self.base = ext;
        self.highest = ext;
        self.seen = Default::default();
        self.set_bit(ext, true);
        self.received += 1;
    }

    /// One packet: sequence number, RTP timestamp, arrival time (ns, any
    /// monotonic origin).
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival_ns: u64) {
        if !self.started {
            // Far from 0 so extended numbers never go below zero.
            self.restart((1 << 32) + u64::from(seq));
            self.update_jitter(rtp_ts, arrival_ns);
            return;
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = (self.highest as i64 + delta) as u64;
        if delta > 0 && delta <= MAX_DROPOUT {
            for s in (self.highest + 1).max(ext.saturating_sub(WINDOW - 1))..ext {
                self.set_bit(s, false);
            }
            self.highest = ext;
            self.set_bit(ext, true);
            self.received += 1;
            self.update_jitter(rtp_ts, arrival_ns);
        } else if delta == 0 {
            self.duplicates += 1;
        } else if delta < 0 && -delta <= MAX_MISORDER {
            if ext < self.base {
                // Before the first packet we saw: extends the run backwards.
                self.base = ext;
            } else if self.highest - ext < WINDOW && self.bit(ext) {
                self.duplicates += 1;
                return;
            }
            if self.highest - ext < WINDOW {
                self.set_bit(ext, true);
            }
            self.received += 1;
            self.late += 1;
        } else {
            // A jump: the sender restarted its numbering.
            self.restart(ext);
            self.last = None;
            self.update_jitter(rtp_ts, arrival_ns);
        }
    }

    fn update_jitter(&mut self, rtp_ts: u32, arrival_ns: u64) {
        if self.clock_rate == 0 {
            return;
        }
        let arrival_units = (u128::from(arrival_ns) * u128::from(self.clock_rate) / 1_000_000_000) as i64;
        if let Some((prev_ns, prev_ts)) = self.last {
            let prev_units = (u128::from(prev_ns) * u128::from(self.clock_rate) / 1_000_000_000) as i64;
            let d = (arrival_units - prev_units) - i64::from(rtp_ts.wrapping_sub(prev_ts) as i32);
            let d = d.unsigned_abs();
            // RFC 3550 A.8: J += (|D| - J) / 16, kept ×16.
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.last = Some((arrival_ns, rtp_ts));
    }

    pub fn stats(&self) -> SeqStats {
        let expected = if self.started { self.expected_before + self.highest - self.base + 1 } else { 0 };
        let jitter_ns =
            if self.clock_rate == 0 { 0 } else { (self.jitter16 >> 4) * 1_000_000_000 / u64::from(self.clock_rate) };
        SeqStats {
            received: self.received,
            lost: expected.saturating_sub(self.received),
            late: self.late,
            duplicates: self.duplicates,
            jitter_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u16]) -> SeqStats {
        let mut t = SeqTracker::default();
        for s in seqs {
            t.on_packet(*s, 0, 0);
        }
        t.stats()
    }

    #[test]
    fn an_unbroken_stream_loses_nothing() {
        let seqs: Vec<u16> = (100..200).collect();
        assert_eq!(feed(&seqs), SeqStats { received: 100, ..SeqStats::default() });
    }

    #[test]
    fn gaps_are_lost_until_the_packets_arrive_late() {
        // 3 and 4 missing, 7 missing.
        let s = feed(&[1, 2, 5, 6, 8, 9]);
        assert_eq!((s.received, s.lost, s.late), (6, 3, 0));
        // 4 arrives after 9: late, and no longer lost.
        let s = feed(&[1, 2, 5, 6, 8, 9, 4]);
        assert_eq!((s.received, s.lost, s.late), (7, 2, 1));
    }

    #[test]
    fn reordering_is_late_not_lost_and_duplicates_are_counted_once() {
        let s = feed(&[10, 12, 11, 13, 13, 11, 14]);
        assert_eq!((s.received, s.lost, s.late, s.duplicates), (5, 0, 1, 2));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut seqs: Vec<u16> = (65530..=65535).collect();
        seqs.extend([0u16, 2, 3]); // 1 lost across the wrap
        let s = feed(&seqs);
        assert_eq!((s.received, s.lost, s.late), (9, 1, 0));
    }

    #[test]
    fn a_sender_restart_is_not_thousands_of_losses() {
        let mut seqs: Vec<u16> = (0..50).collect();
        seqs.extend(30000..30050u16);
        let s = feed(&seqs);
        assert_eq!((s.received, s.lost), (100, 0));
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut t = SeqTracker::default();
        t.set_clock_rate(90000);
        // Perfectly paced: 30 fps, 3000 ticks apart, 33.333 ms apart.
        for i in 0..100u32 {
            t.on_packet(i as u16, i * 3000, u64::from(i) * 1_000_000_000 / 30);
        }
        assert!(t.stats().jitter_ns < 100_000, "{:?}", t.stats());
        // Every other packet 10 ms late: |D| = 10 ms each time.
        let mut t = SeqTracker::default();
        t.set_clock_rate(90000);
        for i in 0..400u32 {
            let late = if i % 2 == 1 { 10_000_000 } else { 0 };
            t.on_packet(i as u16, i * 3000, u64::from(i) * 1_000_000_000 / 30 + late);
        }
        let j = t.stats().jitter_ns;
        assert!((9_000_000..=11_000_000).contains(&j), "{j}");
    }
}
