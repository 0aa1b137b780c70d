//! Media metrics for Prometheus (`/metrics`, served by kms-jsonrpc).
//!
//! Two kinds, so that counting never costs on the media path:
//! * **Counters the media path bumps**: process-wide atomics
//!   ([`RTP`], [`TRANSCODING`]). One relaxed `fetch_add`
//!   per packet; no lock, no allocation, no label lookup.
//! * **Gauges computed at scrape time** ([`MediaCollector`]): pipelines,
//!   elements by class and per-element states (a WebRtcEndpoint's ICE and
//!   DTLS state, a RecorderEndpoint recording or not), read from the object
//!   registry when Prometheus asks.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::agnosticbin::codecs::Codec;
use crate::registry::Registry;

/// RTP on the wire of the RTP-speaking endpoints (WebRtcEndpoint,
/// RtpEndpoint), all endpoints together.
#[derive(Debug, Default)]
pub struct RtpCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Sequence numbers never received (RFC 3550 "lost": expected minus
    /// received, counted when the loss is first seen; a packet arriving late
    /// after that does not take it back, as a counter never decreases).
    pub lost: AtomicU64,
}

impl RtpCounters {
    pub fn received(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn sent(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One stream's lost-packet total (`lost`, which may go down when a
    /// late packet fills a gap) into the process-wide counter, which only
    /// grows: `counted` is what this stream already added.
    pub fn lost_total(&self, counted: &AtomicU64, lost: u64) {
        let before = counted.fetch_max(lost, Ordering::Relaxed);
        if lost > before {
            self.lost.fetch_add(lost - before, Ordering::Relaxed);
        }
    }
}

pub static RTP: RtpCounters = RtpCounters {
    packets_in: AtomicU64::new(0),
    bytes_in: AtomicU64::new(0),
    packets_out: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
    lost: AtomicU64::new(0),
};

/// Codecs a transcoding branch is labelled with (index into the matrix).
const CODECS: [Codec; 6] = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus, Codec::Pcmu, Codec::Pcma];
/// Rows/columns for a raw (decoded) end and for anything else.
const RAW: usize = CODECS.len();
const OTHER: usize = CODECS.len() + 1;
const ENDS: usize = CODECS.len() + 2;

/// Live transcoding branches by (from, to) codec: a fixed matrix of atomics
/// (no labels built on the media path).
pub struct TranscodingMatrix([[AtomicI64; ENDS]; ENDS]);

pub static TRANSCODING: TranscodingMatrix = TranscodingMatrix([const { [const { AtomicI64::new(0) }; ENDS] }; ENDS]);

fn codec_index(c: Option<Codec>) -> usize {
    match c {
        None => RAW,
        Some(c) => CODECS.iter().position(|x| *x == c).unwrap_or(OTHER),
    }
}

fn end_name(i: usize) -> String {
    match i {
        RAW => "raw".to_owned(),
        OTHER => "other".to_owned(),
        i => format!("{:?}", CODECS[i]).to_lowercase(),
    }
}

impl TranscodingMatrix {
    /// Counts a branch from `from` to `to` (`None`: raw) while the guard
    /// lives.
    pub fn branch(&'static self, from: Option<Codec>, to: Option<Codec>) -> TranscodingGuard {
        let cell = &self.0[codec_index(from)][codec_index(to)];
        cell.fetch_add(1, Ordering::Relaxed);
        TranscodingGuard(cell)
    }
}

/// One live transcoding branch; dropping it (the branch is torn down)
/// uncounts it.
pub struct TranscodingGuard(&'static AtomicI64);

impl Drop for TranscodingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for TranscodingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TranscodingGuard")
    }
}

/// A state an object reports at scrape time, e.g. `("ice", "CONNECTED")`.
pub type MetricState = (&'static str, String);

/// Scrape-time gauges over the object registry.
pub struct MediaCollector {
    registry: Registry,
}

impl std::fmt::Debug for MediaCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaCollector")
    }
}

impl MediaCollector {
    pub fn new(registry: Registry) -> MediaCollector {
        MediaCollector { registry }
    }
}

impl Collector for MediaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let census = self.registry.census();
        let g = ConstGauge::new(census.pipelines as i64);
        g.encode(encoder.encode_descriptor("kms_pipelines", "Media pipelines alive", None, g.metric_type())?)?;
        let g = ConstGauge::new(0i64);
        let mut fam =
            encoder.encode_descriptor("kms_objects", "Media objects alive, by class", None, g.metric_type())?;
        for (class, n) in &census.by_class {
            ConstGauge::new(*n as i64).encode(fam.encode_family(&[("class", class.as_str())])?)?;
        }
        let mut fam = encoder.encode_descriptor(
            "kms_element_states",
            "Elements by class and state (WebRtcEndpoint: ice, dtls)",
            None,
            g.metric_type(),
        )?;
        for ((class, kind, state), n) in &census.states {
            ConstGauge::new(*n as i64).encode(fam.encode_family(&[
                ("class", class.as_str()),
                ("kind", *kind),
                ("state", state.as_str()),
            ])?)?;
        }

        let counters: [(&str, &str, &AtomicU64); 5] = [
            ("kms_rtp_received_packets", "RTP packets received by endpoints", &RTP.packets_in),
            ("kms_rtp_received_bytes", "RTP bytes received by endpoints", &RTP.bytes_in),
            ("kms_rtp_sent_packets", "RTP packets sent by endpoints", &RTP.packets_out),
            ("kms_rtp_sent_bytes", "RTP bytes sent by endpoints", &RTP.bytes_out),
            ("kms_rtp_lost_packets", "RTP packets never received (sequence gaps)", &RTP.lost),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v.load(Ordering::Relaxed));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let recording = census
            .states
            .iter()
            .filter(|((_, kind, state), _)| *kind == "recording" && state == "RECORDING")
            .map(|(_, n)| *n as i64)
            .sum::<i64>();
        let g = ConstGauge::new(recording);
        g.encode(encoder.encode_descriptor("kms_recordings", "Recordings in progress", None, g.metric_type())?)?;
        let mut fam = encoder.encode_descriptor(
            "kms_transcoding_branches",
            "Live transcoding branches by input and output codec",
            None,
            g.metric_type(),
        )?;
        for (i, row) in TRANSCODING.0.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                let n = cell.load(Ordering::Relaxed);
                if n != 0 {
                    let (from, to) = (end_name(i), end_name(j));
                    ConstGauge::new(n).encode(fam.encode_family(&[("from", from.as_str()), ("to", to.as_str())])?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcoding_branch_is_counted_while_its_guard_lives() {
        let cell =
            || TRANSCODING.0[codec_index(Some(Codec::Vp8))][codec_index(Some(Codec::H264))].load(Ordering::Relaxed);
        let before = cell();
        let g = TRANSCODING.branch(Some(Codec::Vp8), Some(Codec::H264));
        assert_eq!(cell(), before + 1);
        drop(g);
        assert_eq!(cell(), before);
        assert_eq!(end_name(codec_index(None)), "raw");
        assert_eq!(end_name(codec_index(Some(Codec::H264))), "h264");
    }
}
