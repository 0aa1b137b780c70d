//! REMB (spec §10.6, `rembParams`): both directions of bitrate feedback.
//!
//! * Receiving video: a loss-driven estimate (the `RembParams` algorithm),
//!   capped by what our consumers can take (their `kms-bitrate` wishes
//!   arriving upstream at webrtcbin's video output) and by
//!   `[minVideoRecvBandwidth, maxVideoRecvBandwidth]`, is appended as a REMB
//!   packet to every RTCP compound webrtcbin's session sends.
//! * Sending video: REMB from the remote receiver, clamped to
//!   `[minVideoSendBandwidth, maxVideoSendBandwidth]`, becomes our send
//!   input's bitrate wish, which steers the encoder when transcoding or
//!   travels upstream to the source endpoint when forwarding.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use gst::glib;
use gst::glib::translate::{IntoGlibPtr, ToGlibPtr};
use gst::prelude::*;
use kms_core::api::core::RembParams;

use super::WebRtcEndpointImpl;

/// How soon a changed REMB limit goes out (an early RTCP packet).
const REMB_CHANGE_DEADLINE: gst::ClockTime = gst::ClockTime::from_mseconds(100);

/// Received-packet accounting of the incoming video, updated lock-free on
/// the streaming thread.
#[derive(Default)]
pub struct LossMeter {
    received: AtomicU64,
    /// Extended highest sequence number seen (0 = none yet).
    highest: AtomicU64,
    last_ssrc: AtomicU32,
}

impl LossMeter {
    pub fn on_packet(&self, ssrc: u32, seq: u16) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if self.last_ssrc.swap(ssrc, Ordering::Relaxed) != ssrc {
            self.highest.store((1 << 16) | seq as u64, Ordering::Relaxed);
            return;
        }
        let h = self.highest.load(Ordering::Relaxed);
        let cycles = h & !0xffff;
        let last = (h & 0xffff) as u16;
        let delta = seq.wrapping_sub(last);
        if delta != 0 && delta < 0x8000 {
            let ext = if seq < last { cycles + (1 << 16) } else { cycles } | seq as u64;
            self.highest.store(ext, Ordering::Relaxed);
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.last_ssrc.load(Ordering::Relaxed)
    }

    /// (packets expected, packets received) so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.highest.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

/// The estimate of the `RembParams` algorithm.
#[derive(Debug, Default, Clone)]
pub struct Estimator {
    pub estimate: Option<f64>,
    threshold: Option<f64>,
    last_totals: Option<(u64, u64)>,
}

impl Estimator {
    /// One RTCP interval: `totals` from the [`LossMeter`].
    pub fn update(&mut self, p: &RembParams, totals: (u64, u64)) -> f64 {
        let mut est = self.estimate.unwrap_or(p.remb_on_connect.max(1) as f64);
        let fraction_256 = match self.last_totals.replace(totals) {
            Some((e0, r0)) => {
                let expected = totals.0.saturating_sub(e0);
                let received = totals.1.saturating_sub(r0);
                if expected == 0 { 0.0 } else { expected.saturating_sub(received) as f64 * 256.0 / expected as f64 }
            }
            None => 0.0,
        };
        if fraction_256 > p.up_losses as f64 {
            self.threshold = Some(est * p.threshold_factor as f64);
            est *= p.decrement_factor as f64;
        } else {
            match self.threshold {
                Some(t) if est >= t => {
                    let step = ((est - t) / p.lineal_factor_grade.max(1.0) as f64)
                        .max(p.lineal_factor_min.unwrap_or(0) as f64)
                        .max(1000.0);
                    est += step;
                }
                _ => est *= 1.0 + p.exponential_factor as f64,
            }
        }
        est = est.clamp(1000.0, 1.0e9);
        self.estimate = Some(est);
        est
    }

    /// The REMB to send for one interval: the estimate, no more than our
    /// video's consumers can take, within `range` (`video_recv_range`,
    /// where max ≥ min). One function for both transports, so that they
    /// send the same value.
    pub fn remb(&mut self, p: &RembParams, totals: (u64, u64), consumers: Option<u32>, range: (u32, u32)) -> u32 {
        let est = self.update(p, totals);
        let wanted = consumers.map_or(est, |c| est.min(c as f64));
        (wanted.round() as u64).clamp(range.0 as u64, range.1.max(range.0) as u64) as u32
    }
}

/// A REMB RTCP packet (draft-alvestrand-rmcat-remb).
pub fn remb_packet(sender_ssrc: u32, bitrate: u32, ssrcs: &[u32]) -> Vec<u8> {
    let mut exp = 0u32;
    let mut mantissa = bitrate as u64;
    while mantissa > 0x3ffff {
        mantissa >>= 1;
        exp += 1;
    }
    let n = ssrcs.len().min(255);
    let words = 5 + n;
    let mut p = Vec::with_capacity(words * 4);
    p.push(0x80 | 15);
    p.push(206);
    p.extend_from_slice(&((words - 1) as u16).to_be_bytes());
    p.extend_from_slice(&sender_ssrc.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(b"REMB");
    p.push(n as u8);
    let v = (exp << 18) | mantissa as u32;
    p.push(((v >> 16) & 0xff) as u8);
    p.push(((v >> 8) & 0xff) as u8);
    p.push((v & 0xff) as u8);
    for s in &ssrcs[..n] {
        p.extend_from_slice(&s.to_be_bytes());
    }
    p
}

/// The bitrate of a REMB FCI (`REMB`, num ssrc, exp/mantissa, ssrcs).
pub fn parse_remb_fci(fci: &[u8]) -> Option<u32> {
    if fci.len() < 8 || &fci[..4] != b"REMB" {
        return None;
    }
    let exp = (fci[5] >> 2) as u32;
    let mantissa = (((fci[5] & 0x03) as u64) << 16) | ((fci[6] as u64) << 8) | fci[7] as u64;
    Some((mantissa << exp).min(u32::MAX as u64) as u32)
}

/// Our description with `a=rtcp-fb:<pt> goog-remb` on each video codec
/// payload type: GStreamer 1.22 writes only nack, nack pli, ccm fir and
/// transport-cc from caps, so webrtcbin's descriptions never announce the
/// REMB we send and read. In an answer (`remote_offer` given) only where
/// the offer has it for that payload type (or for `*`).
pub fn advertise_remb(local: &str, remote_offer: Option<&str>) -> String {
    let remote_sections: Option<Vec<&str>> = remote_offer.map(|o| o.split("\nm=").skip(1).collect());
    let offered = |idx: usize, pt: &str| match &remote_sections {
        None => true,
        Some(sections) => sections.get(idx).is_some_and(|sec| {
            sec.lines().any(|l| {
                let l = l.trim_end();
                l == format!("a=rtcp-fb:{pt} goog-remb") || l == "a=rtcp-fb:* goog-remb"
            })
        }),
    };
    let mut out = String::with_capacity(local.len() + 64);
    let mut section: Option<(usize, bool)> = None; // (index, is video)
    let mut next = 0usize;
    let lines: Vec<&str> = local.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).collect();
    for line in &lines {
        if let Some(rest) = line.strip_prefix("m=") {
            section = Some((next, rest.starts_with("video ")));
            next += 1;
        }
        out.push_str(line);
        out.push_str("\r\n");
        let Some((idx, true)) = section else { continue };
        let Some(rest) = line.strip_prefix("a=rtpmap:") else { continue };
        let mut parts = rest.split_whitespace();
        let (Some(pt), Some(enc)) = (parts.next(), parts.next()) else { continue };
        let enc = enc.split('/').next().unwrap_or_default().to_ascii_lowercase();
        let remb_line = format!("a=rtcp-fb:{pt} goog-remb");
        if ["rtx", "red", "ulpfec", "flexfec-03"].contains(&enc.as_str())
            || lines.iter().any(|l| *l == remb_line)
            || !offered(idx, pt)
        {
            continue;
        }
        out.push_str(&remb_line);
        out.push_str("\r\n");
    }
    out
}

/// The bitrate (bps) a receiver of our video may be sent: its REMB within
/// `[min, max]` (`video_send_range`), or `max` before any REMB; `None`
/// when neither bounds it.
pub fn send_wish(remote_remb: Option<u32>, (min, max): (u32, u32)) -> Option<u32> {
    let b = remote_remb.unwrap_or(max).clamp(min, max.max(min));
    (b != u32::MAX).then_some(b)
}

impl WebRtcEndpointImpl {
    /// The REMB limits changed (`setMaxVideoRecvBandwidth`, ...): ask the
    /// RTP sessions for an early RTCP packet, which carries the new value
    /// (see `append_remb`), instead of waiting for the regular interval.
    /// `send-rtcp-full` only schedules it (the session's own lock, briefly).
    pub(super) fn remb_changed(&self) {
        let Some(rtpbin) = self.rtpbin() else { return };
        let hooked = self.remb.lock().hooked.clone();
        for id in hooked {
            if let Some(session) = rtpbin.emit_by_name::<Option<glib::Object>>("get-internal-session", &[&id]) {
                let _ = session.emit_by_name::<bool>("send-rtcp-full", &[&(REMB_CHANGE_DEADLINE.nseconds())]);
            }
        }
    }

    /// Connects REMB generation and parsing to webrtcbin's RTP sessions
    /// (they exist once a description is set).
    pub(super) fn hook_rtp_sessions(self: &Arc<Self>) {
        let Some(rtpbin) = self.rtpbin() else { return };
        for id in 0..4u32 {
            let Some(session) = rtpbin.emit_by_name::<Option<glib::Object>>("get-internal-session", &[&id]) else {
                continue;
            };
            {
                let mut r = self.remb.lock();
                if r.hooked.contains(&id) {
                    continue;
                }
                r.hooked.push(id);
            }
            let weak = Arc::downgrade(self);
            session.connect("on-sending-rtcp", false, move |args| {
                let added = weak.upgrade().is_some_and(|ep| ep.append_remb(args));
                Some(added.to_value())
            });
            let weak = Arc::downgrade(self);
            session.connect("on-feedback-rtcp", false, move |args| {
                let fbtype = args.get(2).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
                let ptype = args.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
                // PSFB (206) / AFB (15).
                if ptype == 206
                    && fbtype == 15
                    && let Some(fci) = args.get(5).and_then(|v| v.get::<gst::Buffer>().ok())
                    && let Ok(map) = fci.map_readable()
                    && let Some(b) = parse_remb_fci(&map)
                    && let Some(ep) = weak.upgrade()
                {
                    ep.remote_remb(b);
                }
                None
            });
        }
    }

    fn remote_remb(&self, bps: u32) {
        let changed = {
            let mut ice = self.ice.lock();
            ice.remote_remb.replace(bps) != Some(bps)
        };
        if changed {
            self.update_send_bitrate();
        }
    }

    /// `on-sending-rtcp` (RTCP thread): appends our REMB for the incoming
    /// video, if any is flowing.
    fn append_remb(&self, args: &[glib::Value]) -> bool {
        let Some(ssrc) = self.slots.received_video_ssrc() else { return false };
        let (params, range) = {
            let s = self.settings.lock();
            (s.remb.clone(), s.video_recv_range())
        };
        let bitrate = {
            let mut r = self.remb.lock();
            let consumers = r.consumers;
            let b = r.estimator.remb(&params, self.slots.loss.totals(), consumers, range);
            r.last_sent = Some(b);
            b
        };
        let sender = self.slots.existing_input(kms_core::api::core::MediaType::Video).map(|i| i.ssrc()).unwrap_or(1);
        let packet = remb_packet(if sender == 0 { 1 } else { sender }, bitrate, &[ssrc]);
        let Some(v) = args.get(1) else { return false };
        // SAFETY: the signal hands us the compound RTCP buffer to extend,
        // writable for the duration of the emission (as in C handlers).
        unsafe {
            let buf = glib::gobject_ffi::g_value_get_boxed(v.to_glib_none().0) as *mut gst::ffi::GstBuffer;
            if buf.is_null() {
                return false;
            }
            let mem = gst::Memory::from_slice(packet);
            gst::ffi::gst_buffer_append_memory(buf, mem.into_glib_ptr());
        }
        true
    }

    /// What our video consumers can take (their aggregated `kms-bitrate`).
    pub(super) fn consumers_bitrate(&self, bps: u32) {
        self.remb.lock().consumers = Some(bps);
    }

    /// The REMB value last sent (for stats and tests).
    pub(super) fn last_remb(&self) -> Option<u32> {
        self.remb.lock().last_sent
    }
}

#[derive(Default)]
pub struct RembState {
    pub estimator: Estimator,
    pub consumers: Option<u32>,
    pub last_sent: Option<u32>,
    /// RTP sessions whose RTCP carries our REMB.
    hooked: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::settings::default_remb;

    #[test]
    fn remb_packets_round_trip() {
        let p = remb_packet(0x1122_3344, 1_234_567, &[0xaabb_ccdd]);
        assert_eq!(p.len(), 24);
        assert_eq!(p[0], 0x8f);
        assert_eq!(p[1], 206);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 5);
        let b = parse_remb_fci(&p[12..]).unwrap();
        assert!((1_234_000..=1_234_567).contains(&b), "{b}");
    }

    #[test]
    fn the_estimate_grows_without_loss_and_drops_on_heavy_loss() {
        let p = default_remb();
        let mut e = Estimator::default();
        let first = e.update(&p, (100, 100));
        assert!((first - 312_000.0).abs() < 1.0);
        let grown = e.update(&p, (200, 200));
        assert!(grown > first);
        // 20% loss: beyond upLosses (12/256).
        let dropped = e.update(&p, (300, 280));
        assert!(dropped < grown * 0.6);
        // Then linear growth above the threshold.
        let next = e.update(&p, (400, 400));
        assert!(next > dropped);
    }

    #[test]
    fn the_remb_sent_is_the_estimate_under_the_consumers_within_the_range() {
        let p = default_remb();
        // No consumer wish: the estimate (312 kbps at the first interval).
        assert_eq!(Estimator::default().remb(&p, (100, 100), None, (30_000, 500_000)), 312_000);
        // A consumer taking less caps it.
        assert_eq!(Estimator::default().remb(&p, (100, 100), Some(100_000), (30_000, 500_000)), 100_000);
        // The range wins over both: its floor, then its ceiling.
        assert_eq!(Estimator::default().remb(&p, (100, 100), Some(10_000), (30_000, 500_000)), 30_000);
        assert_eq!(Estimator::default().remb(&p, (100, 100), None, (30_000, 200_000)), 200_000);
    }

    #[test]
    fn goog_remb_is_announced_for_video_codecs_the_offer_has_it_for() {
        let offer = "v=0\r\nm=audio 9 X 111\r\na=rtcp-fb:111 transport-cc\r\n\
                     m=video 9 X 96 97 102\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:102 nack\r\n";
        let answer = "v=0\r\nm=audio 9 X 111\r\na=rtpmap:111 opus/48000/2\r\n\
                      m=video 9 X 96 97 102\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n\
                      a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\n";
        let out = advertise_remb(answer, Some(offer));
        assert!(out.contains("a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 nack\r\n"), "{out}");
        assert!(!out.contains("a=rtcp-fb:97 goog-remb"), "not for rtx");
        assert!(!out.contains("a=rtcp-fb:102 goog-remb"), "not where the offer lacks it");
        assert!(!out.contains("a=rtcp-fb:111 goog-remb"), "not for audio");
        // Our own offers: every video codec; never twice.
        let ours = advertise_remb(answer, None);
        assert!(ours.contains("a=rtcp-fb:102 goog-remb\r\n"));
        assert_eq!(advertise_remb(&ours, None), ours);
    }

    #[test]
    fn the_send_wish_is_the_remb_within_the_send_range() {
        let range = (100_000, 500_000);
        assert_eq!(send_wish(None, range), Some(500_000), "the cap before any REMB");
        assert_eq!(send_wish(Some(250_000), range), Some(250_000));
        assert_eq!(send_wish(Some(50_000), range), Some(100_000));
        assert_eq!(send_wish(Some(9_000_000), range), Some(500_000));
        assert_eq!(send_wish(None, (0, u32::MAX)), None, "unbounded and no REMB: no wish");
        assert_eq!(send_wish(Some(300_000), (0, u32::MAX)), Some(300_000));
    }

    #[test]
    fn loss_meter_tracks_gaps_and_wraps() {
        let m = LossMeter::default();
        m.on_packet(1, 65534);
        m.on_packet(1, 65535);
        m.on_packet(1, 1); // 0 lost
        let (h0, r0) = m.totals();
        m.on_packet(1, 5);
        let (h1, r1) = m.totals();
        assert_eq!(h1 - h0, 4);
        assert_eq!(r1 - r0, 1);
    }
}
