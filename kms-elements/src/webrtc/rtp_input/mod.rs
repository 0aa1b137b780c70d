//! `kmsrtpinput`: what a WebRTC send stream accepts from the pipeline.
//!
//! It answers caps queries with the RTP formats negotiated for its m-line
//! (nothing before negotiation, so upstream agnosticbins hold their branch
//! back) and turns whatever RTP arrives into one continuous stream of the
//! negotiated payload type under this stream's own SSRC: sequence numbers
//! and timestamps are offset so a change of source (a new `connect`, a
//! switch between pass-through and transcoding) never shows as a jump, and
//! header extensions negotiated with some other peer are stripped.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpInput(ObjectSubclass<imp::RtpInput>) @extends gst::Element, gst::Object;
}

/// One negotiated send format: caps identifying the codec (what upstream
/// must produce) and the payload type to send it with.
#[derive(Debug, Clone)]
pub struct SendFormat {
    pub caps: gst::Caps,
    pub pt: u8,
    pub clock_rate: u32,
}

impl RtpInput {
    pub fn new(name: &str) -> RtpInput {
        glib::Object::builder().property("name", name).build()
    }

    /// Sets the negotiated formats (preference order) and the SSRC, then
    /// asks upstream to renegotiate.
    pub fn set_formats(&self, formats: Vec<SendFormat>, ssrc: u32) {
        self.imp().set_formats(formats, ssrc);
        self.push_upstream(gst::event::Reconfigure::new());
    }

    /// The SSRC this stream is sent with (0 before negotiation).
    pub fn ssrc(&self) -> u32 {
        self.imp().ssrc()
    }

    /// Sets the largest RTP packet (header included) this stream sends;
    /// upstream agnosticbins learn it with the `kms-mtu` query, asked again
    /// after the `RECONFIGURE` a change sends: their payloaders use it, and
    /// RTP bigger than it is re-payloaded instead of forwarded.
    pub fn set_mtu(&self, mtu: u32) {
        if self.imp().set_mtu(mtu) {
            self.push_upstream(gst::event::Reconfigure::new());
        }
    }

    /// Tells upstream which bitrate the remote receiver can take (REMB);
    /// also what upstream learns when it links later (a bitrate query).
    pub fn push_bitrate(&self, bps: u32) {
        if !self.imp().set_bitrate(bps) {
            return;
        }
        self.push_upstream(kms_core::agnosticbin::bitrate_event(bps));
    }

    /// Opens (transport up) or closes the send gate. Opening asks upstream
    /// for a keyframe: whatever was dropped before cannot be decoded from.
    pub fn set_open(&self, open: bool) {
        if self.imp().set_open(open) && open {
            self.request_keyframe();
            self.request_keyframe_again();
        }
    }

    /// A forwarded stream (no encoder of ours) depends on the sender's
    /// keyframe. The request sent when the transport opens can be lost
    /// (RTCP, a sender not yet listening), and a late receiver then waits
    /// for the browser's next spontaneous keyframe, which may take minutes
    /// (CI saw a receiver decode nothing in 30 s, intermittently). Ask
    /// again a few times over the first seconds; extra keyframe requests
    /// at start cost one keyframe each. A short-lived thread, holding the
    /// element weakly.
    fn request_keyframe_again(&self) {
        let weak = self.downgrade();
        let spawned = std::thread::Builder::new().name("kms-keyframe-retry".into()).spawn(move || {
            for wait_ms in KEYFRAME_RETRIES_MS {
                std::thread::sleep(std::time::Duration::from_millis(wait_ms));
                let Some(me) = weak.upgrade() else { return };
                if !me.imp().is_open() {
                    return;
                }
                me.request_keyframe();
            }
        });
        if let Err(e) = spawned {
            tracing::debug!("no keyframe retry thread: {e}");
        }
    }

    /// Asks upstream for a keyframe.
    pub fn request_keyframe(&self) {
        self.push_upstream(kms_core::agnosticbin::codecs::force_key_unit_event());
    }

    fn push_upstream(&self, ev: gst::Event) {
        if let Some(sink) = self.static_pad("sink").filter(|p| p.is_linked()) {
            let _ = sink.push_event(ev);
        }
    }

    /// Packets and bytes sent so far.
    pub fn counters(&self) -> (u64, u64) {
        self.imp().counters()
    }
}

/// Rewrites one RTP packet in place (header already known to be valid):
/// payload type, sequence number, timestamp, SSRC.
pub fn rewrite_header(data: &mut [u8], pt: u8, seq: u16, ts: u32, ssrc: u32) {
    data[1] = (data[1] & 0x80) | (pt & 0x7f);
    data[2..4].copy_from_slice(&seq.to_be_bytes());
    data[4..8].copy_from_slice(&ts.to_be_bytes());
    data[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// The packet without its header extension (X bit cleared), if it has one.
pub fn strip_extension(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 12 || data[0] & 0x10 == 0 {
        return None;
    }
    let cc = (data[0] & 0x0f) as usize;
    let ext_at = 12 + 4 * cc;
    let words = u16::from_be_bytes([*data.get(ext_at + 2)?, *data.get(ext_at + 3)?]) as usize;
    let payload_at = ext_at + 4 + 4 * words;
    if payload_at > data.len() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() - (payload_at - ext_at));
    out.extend_from_slice(&data[..ext_at]);
    out[0] &= !0x10;
    out.extend_from_slice(&data[payload_at..]);
    Some(out)
}

/// Sequence/timestamp continuity across changes of the incoming stream.
#[derive(Debug, Default, Clone)]
pub struct Continuity {
    in_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last: Option<(u16, u32, u64)>,
}

impl Continuity {
    /// Maps an incoming (ssrc, seq, ts) at running time `now_ns` onto the
    /// outgoing (seq, ts).
    pub fn map(&mut self, ssrc: u32, seq: u16, ts: u32, now_ns: u64, clock_rate: u32) -> (u16, u32) {
        if self.in_ssrc != Some(ssrc) {
            self.in_ssrc = Some(ssrc);
            match self.last {
                Some((lseq, lts, ltime)) => {
                    let elapsed = now_ns.saturating_sub(ltime);
                    let ticks = ((elapsed as u128 * clock_rate as u128) / 1_000_000_000u128).max(1) as u32;
                    self.seq_offset = lseq.wrapping_add(1).wrapping_sub(seq);
                    self.ts_offset = lts.wrapping_add(ticks).wrapping_sub(ts);
                }
                None => {
                    self.seq_offset = 0;
                    self.ts_offset = 0;
                }
            }
        }
        let out = (seq.wrapping_add(self.seq_offset), ts.wrapping_add(self.ts_offset));
        // Only move forward: a reordered old packet must not become "last".
        let newer = self.last.is_none_or(|(lseq, _, _)| out.0.wrapping_sub(lseq) < 0x8000);
        if newer {
            self.last = Some((out.0, out.1, now_ns));
        }
        out
    }
}

/// Delays between the keyframe requests repeated after the transport
/// opens (see `RtpInput::request_keyframe_again`).
const KEYFRAME_RETRIES_MS: [u64; 3] = [1000, 1000, 2000];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_source_continues_the_sequence_and_timestamps() {
        let mut c = Continuity::default();
        assert_eq!(c.map(1, 100, 1000, 0, 90000), (100, 1000));
        assert_eq!(c.map(1, 101, 4000, 33_000_000, 90000), (101, 4000));
        // Source 2 starts elsewhere; 100 ms later.
        let (seq, ts) = c.map(2, 7, 50, 133_000_000, 90000);
        assert_eq!(seq, 102);
        assert_eq!(ts, 4000 + 9000);
        assert_eq!(c.map(2, 8, 3050, 166_000_000, 90000), (103, 4000 + 9000 + 3000));
        // Loss on the new source stays visible.
        assert_eq!(c.map(2, 10, 6050, 200_000_000, 90000).0, 105);
    }

    #[test]
    fn header_extensions_are_stripped_and_fields_rewritten() {
        // V=2, X=1, CC=0; PT 100; ext profile 0xBEDE with one word.
        let mut pkt = vec![0x90, 100, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 0xaa, 0xbb];
        let mut s = strip_extension(&pkt).unwrap();
        assert_eq!(s, vec![0x80, 100, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xaa, 0xbb]);
        rewrite_header(&mut s, 96, 5, 6, 7);
        assert_eq!(&s[..12], &[0x80, 96, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7]);
        pkt[0] = 0x80;
        assert!(strip_extension(&pkt).is_none());
    }
}
