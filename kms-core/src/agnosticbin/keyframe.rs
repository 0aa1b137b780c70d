//! The keyframe gate: a consumer joining a running video stream starts at
//! a keyframe (spec §10.3: "a new branch waits for a keyframe").
//! Elementary streams carry `DELTA_UNIT`; RTP payloads are inspected per
//! codec to find where a decodable picture starts.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::codecs::{self, Codec};
use super::imp::CAT;

/// How often a branch still waiting for a keyframe asks again.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Drops data on `pad` until a keyframe starts, asking `producer` for one
/// (again every [`KEYFRAME_RETRY`] while waiting). `rtp`: the pad carries
/// RTP of `rtp_codec` (unknown codec: anything counts as a start).
/// Runs on the streaming thread and takes no lock but its own.
pub fn gate_pad(pad: &gst::Pad, rtp_codec: Option<Codec>, rtp: bool, producer: Option<gst::Pad>) {
    let asked = Mutex::new(None::<Instant>);
    let ask = move || {
        let mut last = asked.lock();
        if last.is_none_or(|t| t.elapsed() >= KEYFRAME_RETRY) {
            *last = Some(Instant::now());
            if let Some(p) = producer.as_ref().filter(|p| p.direction() == gst::PadDirection::Src || p.is_linked()) {
                let ev = codecs::force_key_unit_event();
                if p.direction() == gst::PadDirection::Sink {
                    let _ = p.push_event(ev);
                } else {
                    let _ = p.send_event(ev);
                }
            }
        }
    };
    ask();
    let is_key = move |b: &gst::BufferRef| -> bool {
        if rtp {
            let Some(codec) = rtp_codec else { return true };
            match gst_rtp::RTPBuffer::from_buffer_readable(b) {
                Ok(r) => r.payload().is_ok_and(|p| rtp_payload_starts_keyframe(codec, p)),
                Err(_) => false,
            }
        } else {
            !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
        }
    };
    let dropped = AtomicU32::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |pad, info| {
        let key = match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => is_key(b),
            Some(gst::PadProbeData::BufferList(l)) => l.iter().any(&is_key),
            _ => return gst::PadProbeReturn::Ok,
        };
        if key {
            gst::debug!(CAT, obj = pad, "keyframe: branch starts after {} dropped", dropped.load(Ordering::Relaxed));
            gst::PadProbeReturn::Remove
        } else {
            dropped.fetch_add(1, Ordering::Relaxed);
            ask();
            gst::PadProbeReturn::Drop
        }
    });
}

/// Whether this RTP payload starts a keyframe of `codec` (RFC 7741 for VP8,
/// the VP9 payload format, RFC 6184 for H.264). Audio: always.
pub fn rtp_payload_starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8(payload),
        Codec::Vp9 => vp9(payload),
        Codec::H264 => h264(payload),
        Codec::Opus | Codec::Pcmu | Codec::Pcma => true,
    }
}

fn vp8(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let x = b0 & 0x80 != 0;
    let s = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    if !s || pid != 0 {
        return false;
    }
    let mut i = 1;
    if x {
        let Some(&b1) = p.get(1) else { return false };
        i = 2;
        if b1 & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let Some(&pic) = p.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if b1 & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if b1 & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    // VP8 payload header: P bit 0 = key frame.
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

fn vp9(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let inter_predicted = b0 & 0x40 != 0;
    let layer = b0 & 0x20 != 0;
    let begin = b0 & 0x08 != 0;
    if !begin || inter_predicted {
        return false;
    }
    if !layer {
        return true;
    }
    // Layer indices follow the picture id: only the base spatial layer
    // starts a decodable picture.
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&pic) = p.get(i) else { return false };
        i += if pic & 0x80 != 0 { 2 } else { 1 };
    }
    p.get(i).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

fn h264(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let is_key = |t: u8| t == 5 || t == 7;
    match b0 & 0x1f {
        t @ 1..=23 => is_key(t),
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if is_key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p.get(1).is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_start_needs_s_bit_partition_zero_and_p_bit_clear() {
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id; payload header P=0.
        assert!(rtp_payload_starts_keyframe(Codec::Vp8, &[0x90, 0x80, 0x81, 0x23, 0x10]));
        // Same, but P=1 (inter frame).
        assert!(!rtp_payload_starts_keyframe(Codec::Vp8, &[0x90, 0x80, 0x81, 0x23, 0x11]));
        // Continuation packet (S=0).
        assert!(!rtp_payload_starts_keyframe(Codec::Vp8, &[0x80, 0x80, 0x81, 0x23, 0x10]));
        // No extension: header right after the descriptor.
        assert!(rtp_payload_starts_keyframe(Codec::Vp8, &[0x10, 0x50]));
    }

    #[test]
    fn h264_keyframe_start_is_sps_or_idr_in_any_packetization() {
        assert!(rtp_payload_starts_keyframe(Codec::H264, &[0x67, 0x42]));
        assert!(rtp_payload_starts_keyframe(Codec::H264, &[0x65, 0x88]));
        assert!(!rtp_payload_starts_keyframe(Codec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS + PPS.
        assert!(rtp_payload_starts_keyframe(Codec::H264, &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]));
        // FU-A start of an IDR, and its continuation.
        assert!(rtp_payload_starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!rtp_payload_starts_keyframe(Codec::H264, &[0x7c, 0x05, 0x88]));
    }

    #[test]
    fn vp9_keyframe_start_is_a_non_predicted_frame_beginning() {
        assert!(rtp_payload_starts_keyframe(Codec::Vp9, &[0x88, 0x01]));
        assert!(!rtp_payload_starts_keyframe(Codec::Vp9, &[0xc8, 0x01]));
        assert!(!rtp_payload_starts_keyframe(Codec::Vp9, &[0x80, 0x01]));
    }
}
