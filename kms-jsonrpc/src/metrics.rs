//! Operations endpoints on the server's listener: `/metrics` (Prometheus
//! text format), `/health` (liveness) and `/ready` (readiness), and the
//! drain switch behind `/ready`.
//!
//! Requests are counted in fixed tables of atomics indexed by method and
//! error code (never a label built or a lock taken per request: a client
//! sending made-up method names cannot grow the label set either, they all
//! count as `other`). Everything else is computed at scrape time:
//! connections and sessions from the [`SessionHub`], the process from
//! `/proc`, media from the collectors the server adds
//! ([`Metrics::new`]'s `extra`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::error::codes;
use crate::server::ServerState;
use crate::session_hub::SessionHub;

/// Protocol methods counted by name; anything else is `other`.
const METHODS: [&str; 13] = [
    "ping",
    "create",
    "describe",
    "invoke",
    "subscribe",
    "unsubscribe",
    "release",
    "ref",
    "unref",
    "closeSession",
    "transaction",
    "connect",
    "other",
];

/// Error codes counted by number; anything else is `other` (index len).
const CODES: [i64; 41] = [
    codes::PARSE_ERROR,
    codes::INVALID_REQUEST,
    codes::METHOD_NOT_FOUND,
    codes::INVALID_PARAMS,
    codes::INTERNAL_ERROR,
    codes::SERVER_ERROR,
    codes::MARSHALL_ERROR,
    codes::UNEXPECTED_ERROR,
    codes::CONNECT_ERROR,
    codes::UNSUPPORTED_MEDIA_TYPE,
    codes::NOT_IMPLEMENTED,
    codes::INVALID_SESSION,
    codes::MALFORMED_TRANSACTION,
    codes::NOT_ENOUGH_RESOURCES,
    codes::MEDIA_OBJECT_TYPE_NOT_FOUND,
    codes::MEDIA_OBJECT_NOT_FOUND,
    codes::MEDIA_OBJECT_CONSTRUCTOR_NOT_FOUND,
    codes::MEDIA_OBJECT_METHOD_NOT_FOUND,
    codes::MEDIA_OBJECT_EVENT_NOT_SUPPORTED,
    codes::MEDIA_OBJECT_ILLEGAL_PARAM_ERROR,
    codes::MEDIA_OBJECT_NOT_AVAILABLE,
    codes::MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT,
    codes::MEDIA_OBJECT_TAG_KEY_NOT_FOUND,
    codes::MEDIA_OBJECT_OPERATION_NOT_SUPPORTED,
    codes::SDP_CREATE_ERROR,
    codes::SDP_PARSE_ERROR,
    codes::SDP_END_POINT_NO_LOCAL_SDP_ERROR,
    codes::SDP_END_POINT_NO_REMOTE_SDP_ERROR,
    codes::SDP_END_POINT_GENERATE_OFFER_ERROR,
    codes::SDP_END_POINT_PROCESS_OFFER_ERROR,
    codes::SDP_END_POINT_PROCESS_ANSWER_ERROR,
    codes::SDP_CONFIGURATION_ERROR,
    codes::SDP_END_POINT_ALREADY_NEGOTIATED,
    codes::SDP_END_POINT_NOT_OFFER_GENERATED,
    codes::SDP_END_POINT_ANSWER_ALREADY_PROCCESED,
    codes::SDP_END_POINT_CANNOT_CREATE_SESSON,
    codes::HTTP_END_POINT_REGISTRATION_ERROR,
    codes::ICE_GATHER_CANDIDATES_ERROR,
    codes::ICE_ADD_CANDIDATE_ERROR,
    codes::URI_PATH_FILE_NOT_FOUND,
    codes::PLAYER_SEEK_FAIL,
];

/// Upper bounds (seconds) of the request-duration histogram.
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A histogram of atomics: `observe` is a few relaxed adds.
#[derive(Debug)]
struct AtomicHistogram {
    /// Per bucket, not cumulative (summed at scrape time); last: +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    const fn new() -> AtomicHistogram {
        AtomicHistogram { counts: [const { AtomicU64::new(0) }; BUCKETS.len() + 1], sum_ns: AtomicU64::new(0) }
    }

    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| s <= *b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(d.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts of the finite buckets):
    /// the text encoder makes them cumulative and adds `+Inf` from `count`.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let buckets = BUCKETS.iter().zip(&counts).map(|(b, n)| (*b, *n)).collect();
        (self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, counts.iter().sum(), buckets)
    }
}

/// What the transport counts.
#[derive(Debug)]
pub struct RpcMetrics {
    requests: [AtomicU64; METHODS.len()],
    durations: [AtomicHistogram; METHODS.len()],
    errors: [AtomicU64; CODES.len() + 1],
    connections_opened: AtomicU64,
    refused_upgrades: AtomicU64,
    draining: AtomicBool,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        RpcMetrics {
            requests: [const { AtomicU64::new(0) }; METHODS.len()],
            durations: [const { AtomicHistogram::new() }; METHODS.len()],
            errors: [const { AtomicU64::new(0) }; CODES.len() + 1],
            connections_opened: AtomicU64::new(0),
            refused_upgrades: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        }
    }
}

fn method_index(method: &str) -> usize {
    METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len() - 1)
}

impl RpcMetrics {
    /// One answered request: its method, how long it took from decoding to
    /// the reply, and its error code if it failed.
    pub fn request(&self, method: &str, took: Duration, error: Option<i64>) {
        let i = method_index(method);
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        self.durations[i].observe(took);
        if let Some(code) = error {
            self.error(code);
        }
    }

    /// An error answered without a request to attribute it to (a message
    /// that does not parse).
    pub fn error(&self, code: i64) {
        let j = CODES.iter().position(|c| *c == code).unwrap_or(CODES.len());
        self.errors[j].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upgrade_refused(&self) {
        self.refused_upgrades.fetch_add(1, Ordering::Relaxed);
    }

    /// Drain mode: `/ready` answers 503 and new sessions are refused, while
    /// the existing ones go on (rolling restarts).
    pub fn set_draining(&self, on: bool) {
        if self.draining.swap(on, Ordering::AcqRel) != on {
            tracing::info!(draining = on, "drain mode {}", if on { "on: new sessions are refused" } else { "off" });
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// The metrics of one server: its transport counters and the registry
/// `/metrics` encodes.
pub struct Metrics {
    pub rpc: Arc<RpcMetrics>,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Transport and process metrics of `hub`'s server; `extra` registers
    /// more (the media collectors).
    pub fn new(hub: &SessionHub, extra: impl FnOnce(&mut Registry)) -> Arc<Metrics> {
        let rpc = Arc::new(RpcMetrics::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TransportCollector { rpc: rpc.clone(), hub: hub.clone() }));
        registry.register_collector(Box::new(ProcessCollector));
        extra(&mut registry);
        Arc::new(Metrics { rpc, registry })
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
    }
}

struct TransportCollector {
    rpc: Arc<RpcMetrics>,
    hub: SessionHub,
}

impl std::fmt::Debug for TransportCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportCollector")
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for TransportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.rpc;
        gauge(&mut encoder, "kms_connections", "WebSocket connections open", self.hub.live_connections() as i64)?;
        counter(
            &mut encoder,
            "kms_connections_opened",
            "WebSocket connections accepted",
            r.connections_opened.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "kms_upgrades_refused",
            "WebSocket upgrades refused (limits, origin, token, drain)",
            r.refused_upgrades.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "kms_sessions",
            "Kurento sessions alive",
            self.hub.lock().dispatcher.session_count() as i64,
        )?;
        gauge(&mut encoder, "kms_draining", "1 while draining (new sessions refused)", i64::from(r.is_draining()))?;

        let mut fam = encoder.encode_descriptor(
            "kms_rpc_requests",
            "JSON-RPC requests answered, by method",
            None,
            MetricType::Counter,
        )?;
        for (i, m) in METHODS.iter().enumerate() {
            ConstCounter::new(r.requests[i].load(Ordering::Relaxed)).encode(fam.encode_family(&[("method", *m)])?)?;
        }
        let mut fam = encoder.encode_descriptor(
            "kms_rpc_request_duration_seconds",
            "JSON-RPC request latency, decoding to reply, by method",
            None,
            MetricType::Histogram,
        )?;
        for (i, m) in METHODS.iter().enumerate() {
            let (sum, count, buckets) = r.durations[i].snapshot();
            fam.encode_family(&[("method", *m)])?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        }
        let mut fam = encoder.encode_descriptor(
            "kms_rpc_errors",
            "JSON-RPC errors answered, by code and type",
            None,
            MetricType::Counter,
        )?;
        for (j, n) in r.errors.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let (code, kind) = match CODES.get(j) {
                Some(c) => (c.to_string(), codes::type_name(*c).unwrap_or("JSON_RPC")),
                None => ("other".to_owned(), "UNDEFINED"),
            };
            ConstCounter::new(n).encode(fam.encode_family(&[("code", code.as_str()), ("type", kind)])?)?;
        }
        Ok(())
    }
}

/// `process_*` metrics of the Prometheus conventions, from `/proc`.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(me) = procfs::process::Process::myself() else { return Ok(()) };
        if let Ok(stat) = me.stat() {
            let tps = procfs::ticks_per_second() as f64;
            let page = procfs::page_size();
            let cpu = (stat.utime + stat.stime) as f64 / tps;
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent",
                None,
                c.metric_type(),
            )?)?;
            gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory", (stat.rss * page) as i64)?;
            gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory", stat.vsize as i64)?;
            gauge(&mut encoder, "process_threads", "OS threads", stat.num_threads)?;
            if let Ok(boot) = procfs::boot_time_secs() {
                let start = boot as f64 + stat.starttime as f64 / tps;
                let g = ConstGauge::new(start);
                g.encode(encoder.encode_descriptor(
                    "process_start_time_seconds",
                    "Start time since the Unix epoch",
                    None,
                    g.metric_type(),
                )?)?;
            }
        }
        if let Ok(n) = me.fd_count() {
            gauge(&mut encoder, "process_open_fds", "Open file descriptors", n as i64)?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    // With access tokens configured, scraping needs one too (Prometheus:
    // `authorization: { credentials: <token> }` sends it as a bearer).
    let (parts, _) = request.into_parts();
    if let Err(refusal) = crate::upgrade::admit(&parts, &state.access) {
        return refusal.response();
    }
    let m = state.metrics.clone();
    // Scraping walks the object registry: off the async workers.
    match tokio::task::spawn_blocking(move || m.encode()).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /health`: the process serves HTTP (liveness).
pub(crate) async fn health() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /ready`: accepting sessions (readiness); 503 while draining or
/// shutting down.
pub(crate) async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    let draining = state.metrics.rpc.is_draining() || *state.stop.borrow();
    if draining { (StatusCode::SERVICE_UNAVAILABLE, "draining\n") } else { (StatusCode::OK, "ready\n") }.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_and_codes_share_one_slot() {
        let m = RpcMetrics::default();
        m.request("invoke", Duration::from_millis(3), None);
        m.request("made-up-1", Duration::from_millis(1), Some(-32601));
        m.request("made-up-2", Duration::from_millis(1), Some(12345));
        assert_eq!(m.requests[method_index("invoke")].load(Ordering::Relaxed), 1);
        assert_eq!(m.requests[METHODS.len() - 1].load(Ordering::Relaxed), 2);
        assert_eq!(m.errors[CODES.len()].load(Ordering::Relaxed), 1);
        let (sum, count, buckets) = m.durations[method_index("invoke")].snapshot();
        assert_eq!(count, 1);
        assert!((sum - 0.003).abs() < 1e-9);
        // 3 ms falls in the 5 ms bucket.
        assert_eq!(buckets.iter().find(|(b, _)| *b == 0.0025).map(|x| x.1), Some(0));
        assert_eq!(buckets.iter().find(|(b, _)| *b == 0.005).map(|x| x.1), Some(1));
        assert_eq!(buckets.iter().map(|x| x.1).sum::<u64>(), 1);
    }
}
