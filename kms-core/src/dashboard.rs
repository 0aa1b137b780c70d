//! The dashboard's data (served by kms-jsonrpc, see
//! [`kms_jsonrpc::dashboard`]) read from the object registry: pipelines
//! with their elements and sessions, a pipeline's `getGstreamerDot`, and
//! per-endpoint counters from `getStats`.
//!
//! Everything goes through the classes' own operations, as a client's call
//! would, so the graph is exactly what `getGstreamerDot` answers and the
//! counters what `getStats` answers, for every RTP-speaking class
//! (`BaseRtpEndpoint`: WebRtcEndpoint, RtpEndpoint), whatever module
//! implements it. The calls are made without referencing the objects in
//! any session: looking at a pipeline must not keep it alive.

use std::time::{Duration, Instant};

use kms_jsonrpc::SessionId;
use kms_jsonrpc::dashboard::{DashboardSource, ElementView, EndpointCounters, PipelineView};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::registry::Registry;

/// The session the dashboard's calls are made in (for the slow-call
/// bookkeeping; it never owns anything).
const DASHBOARD_SESSION: &str = "kms-dashboard";

/// Several pages polling at once share one sweep of this age at most.
const STATS_REUSE: Duration = Duration::from_millis(500);

/// `getGstreamerDot` detail level: media types on the links, without the
/// element properties that make VERBOSE graphs unreadable in a page.
const DOT_DETAILS: &str = "SHOW_MEDIA_TYPE";

/// [`DashboardSource`] over the object registry.
pub struct RegistryDashboard {
    registry: Registry,
    session: SessionId,
    /// The last stats sweep; also makes sweeps run one at a time, so the
    /// dashboard holds one `maxSlowCallsPerSession` slot at most.
    last_stats: Mutex<Option<(Instant, Vec<EndpointCounters>)>>,
}

impl std::fmt::Debug for RegistryDashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryDashboard")
    }
}

impl RegistryDashboard {
    pub fn new(registry: Registry) -> RegistryDashboard {
        RegistryDashboard {
            registry,
            session: SessionId::from(DASHBOARD_SESSION.to_owned()),
            last_stats: Mutex::new(None),
        }
    }
}

impl DashboardSource for RegistryDashboard {
    fn pipelines(&self) -> Vec<PipelineView> {
        let objects = self.registry.object_list();
        let mut pipelines: Vec<PipelineView> = objects
            .iter()
            .filter(|(h, _)| h.remote.object().parent().is_none() && h.class.is_a("kurento.MediaPipeline"))
            .map(|(h, sessions)| PipelineView {
                id: h.id().to_string(),
                name: h.remote.object().name(),
                sessions: sessions.iter().map(ToString::to_string).collect(),
                elements: vec![],
            })
            .collect();
        pipelines.sort_by(|a, b| a.id.cmp(&b.id));
        let mut elements: Vec<(i64, String, ElementView)> = vec![];
        for (h, _) in &objects {
            let o = h.remote.object();
            let (Some(pipeline), Some(parent)) = (o.pipeline(), o.parent()) else { continue };
            elements.push((
                o.creation_time(),
                pipeline.to_string(),
                ElementView {
                    id: h.id().to_string(),
                    class: h.class.name.to_owned(),
                    name: o.name(),
                    parent: (parent != pipeline).then(|| parent.to_string()),
                },
            ));
        }
        elements.sort_by(|a, b| (a.0, &a.2.id).cmp(&(b.0, &b.2.id)));
        for (_, pipeline, e) in elements {
            if let Some(p) = pipelines.iter_mut().find(|p| p.id == pipeline) {
                p.elements.push(e);
            }
        }
        pipelines
    }

    fn pipeline_dot(&self, pipeline: &str) -> Option<String> {
        let h = self.registry.get(pipeline).ok()?;
        if !h.class.is_a("kurento.MediaPipeline") {
            return None;
        }
        let mut params = Map::new();
        params.insert("details".into(), Value::String(DOT_DETAILS.into()));
        match self.registry.invoke_unowned(&self.session, pipeline, "getGstreamerDot", Some(&params)) {
            Ok(Value::String(dot)) => Some(dot),
            Ok(other) => {
                tracing::warn!(%pipeline, "getGstreamerDot answered a non-string: {other}");
                None
            }
            Err(e) => {
                tracing::warn!(%pipeline, "dashboard: getGstreamerDot failed: {e}");
                None
            }
        }
    }

    fn endpoint_stats(&self) -> Vec<EndpointCounters> {
        let mut last = self.last_stats.lock();
        if let Some((at, v)) = last.as_ref()
            && at.elapsed() < STATS_REUSE
        {
            return v.clone();
        }
        let mut endpoints: Vec<(i64, EndpointCounters)> = vec![];
        for (h, _) in self.registry.object_list() {
            if !h.class.is_a("kurento.BaseRtpEndpoint") {
                continue;
            }
            let o = h.remote.object();
            let id = h.id().to_string();
            let stats = match self.registry.invoke_unowned(&self.session, &id, "getStats", None) {
                Ok(v) => v,
                // Released meanwhile, or stats unavailable: skip this time.
                Err(e) => {
                    tracing::debug!(%id, "dashboard: getStats failed: {e}");
                    continue;
                }
            };
            let mut c = summarize(&stats);
            c.id = id;
            c.class = h.class.name.to_owned();
            c.pipeline = o.pipeline().map(ToString::to_string).unwrap_or_default();
            endpoints.push((o.creation_time(), c));
        }
        endpoints.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        let v: Vec<EndpointCounters> = endpoints.into_iter().map(|(_, c)| c).collect();
        *last = Some((Instant::now(), v.clone()));
        v
    }
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// An endpoint's counters from its `getStats` answer (a map of RTC*
/// stats): RTP streams summed over media types; RTT from the remote
/// reports of outbound streams, else from the ICE candidate pair (both in
/// seconds, as the kmd says).
pub fn summarize(stats: &Value) -> EndpointCounters {
    let mut c = EndpointCounters::default();
    let (mut rtt_rtp, mut rtt_pair): (Option<f64>, Option<f64>) = (None, None);
    let Some(map) = stats.as_object() else { return c };
    let count = |v: &Value, k: &str| num(v, k).filter(|x| *x > 0.0).unwrap_or(0.0) as u64;
    for s in map.values() {
        match s.get("type").and_then(Value::as_str) {
            Some("inboundrtp") => {
                c.bytes_in += count(s, "bytesReceived");
                c.packets_in += count(s, "packetsReceived");
                c.packets_lost_in += count(s, "packetsLost");
            }
            Some("outboundrtp") => {
                c.bytes_out += count(s, "bytesSent");
                c.packets_lost_out += count(s, "packetsLost");
                if let Some(r) = num(s, "roundTripTime").filter(|r| *r > 0.0) {
                    rtt_rtp = Some(rtt_rtp.map_or(r, |x: f64| x.max(r)));
                }
            }
            Some("candidatepair") => {
                let nominated = s.get("nominated").and_then(Value::as_bool).unwrap_or(true);
                if let Some(r) = num(s, "roundTripTime").filter(|r| *r > 0.0 && nominated) {
                    rtt_pair = Some(rtt_pair.map_or(r, |x: f64| x.max(r)));
                }
            }
            _ => {}
        }
    }
    c.rtt_ms = rtt_rtp.or(rtt_pair).map(|s| s * 1000.0);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counters_sum_streams_and_rtt_prefers_rtcp() {
        let stats = json!({
            "a": {"type": "inboundrtp", "bytesReceived": 1000, "packetsReceived": 10, "packetsLost": 2},
            "b": {"type": "inboundrtp", "bytesReceived": 500, "packetsReceived": 5, "packetsLost": -1},
            "c": {"type": "outboundrtp", "bytesSent": 700, "packetsLost": 3, "roundTripTime": 0.012},
            "d": {"type": "candidatepair", "roundTripTime": 0.5, "nominated": true},
            "e": {"type": "endpoint"},
        });
        let c = summarize(&stats);
        assert_eq!((c.bytes_in, c.packets_in, c.packets_lost_in), (1500, 15, 2));
        assert_eq!((c.bytes_out, c.packets_lost_out), (700, 3));
        assert_eq!(c.rtt_ms, Some(12.0));
        let pair_only = json!({"d": {"type": "candidatepair", "roundTripTime": 0.004}});
        assert_eq!(summarize(&pair_only).rtt_ms, Some(4.0));
        assert_eq!(summarize(&json!({})).rtt_ms, None);
        assert_eq!(summarize(&json!("nope")), EndpointCounters::default());
    }
}
