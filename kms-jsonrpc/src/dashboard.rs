//! The dashboard (beyond KMS): a web page on the server's listener that
//! lists sessions, pipelines and elements, draws each pipeline's GStreamer
//! graph and plots per-endpoint bitrate, packet loss and RTT.
//!
//! This crate knows no media objects: what the page shows comes through a
//! [`DashboardSource`] the binary gives the server
//! ([`crate::Server::with_dashboard`]). The page itself (HTML, a JS bundle
//! with Graphviz and uPlot) is a directory of static files built by
//! `dashboard/build.sh`; it is read from disk on each request so that a
//! rebuilt bundle needs no server rebuild, and a missing one gets a page
//! saying how to build it instead of a bare 404.
//!
//! Off by default: while disabled every `/dashboard` path answers 404, as
//! if it did not exist. With access tokens configured, the page, its files
//! and its data all need one (`?access_token=` or a bearer header), and a
//! token of a non-admin tenant is refused (403): the page shows every
//! tenant's objects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::server::ServerState;

/// Where `dashboard/build.sh` puts the page (the source tree's
/// `dashboard/dist`), used when the configuration names no directory.
pub const DEFAULT_ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboard/dist");

/// `mediaServer.net.websocket.dashboard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `assets`: the built page (default [`DEFAULT_ASSETS`]).
    pub assets: PathBuf,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig { enabled: false, assets: PathBuf::from(DEFAULT_ASSETS) }
    }
}

/// One element of a pipeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ElementView {
    pub id: String,
    /// Class name (`WebRtcEndpoint`).
    pub class: String,
    /// `MediaObject.name`.
    pub name: String,
    /// The parent when it is not the pipeline (a HubPort's Hub).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// One pipeline and what it holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineView {
    pub id: String,
    pub name: String,
    /// Sessions holding a reference to it.
    pub sessions: Vec<String>,
    pub elements: Vec<ElementView>,
}

/// Cumulative counters of one RTP-speaking endpoint; the page turns two
/// samples into rates.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCounters {
    pub id: String,
    pub class: String,
    pub pipeline: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    /// Packets the endpoint never received (its inbound streams).
    pub packets_lost_in: u64,
    /// Packets the remote peer reports lost (RTCP receiver reports).
    pub packets_lost_out: u64,
    /// Round-trip time in milliseconds, when known.
    pub rtt_ms: Option<f64>,
}

/// What the page shows, from the media side. Every method may block (walk
/// the object registry, wait for stats): handlers call them on the
/// blocking pool.
pub trait DashboardSource: Send + Sync + 'static {
    fn pipelines(&self) -> Vec<PipelineView>;
    /// The pipeline's `getGstreamerDot`; `None` if there is no such pipeline.
    fn pipeline_dot(&self, pipeline: &str) -> Option<String>;
    fn endpoint_stats(&self) -> Vec<EndpointCounters>;
}

/// The server's dashboard: its configuration and its data.
pub(crate) struct Dashboard {
    pub config: DashboardConfig,
    pub source: Arc<dyn DashboardSource>,
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    /// Bound to a live connection (false: waiting for reconnection, §3.2).
    connected: bool,
}

#[derive(Serialize)]
struct Overview {
    #[serde(rename = "serverId")]
    server_id: String,
    sessions: Vec<SessionView>,
    pipelines: Vec<PipelineView>,
}

#[derive(Serialize)]
struct StatsReply {
    /// Milliseconds since the Unix epoch when the sample was taken.
    t: u128,
    endpoints: Vec<EndpointCounters>,
}

/// Why a dashboard request is not served.
enum Denied {
    /// Disabled: the paths do not exist.
    Disabled,
    Refused(crate::upgrade::Refusal),
    NotAdmin,
}

impl Denied {
    fn response(&self) -> Response {
        match self {
            Denied::Disabled => not_found(),
            Denied::Refused(r) => r.response(),
            Denied::NotAdmin => {
                (StatusCode::FORBIDDEN, "the dashboard shows every tenant: admin tenants only\n").into_response()
            }
        }
    }
}

/// The enabled dashboard, after the access check.
fn admit(state: &ServerState, parts: &Parts) -> Result<Arc<Dashboard>, Denied> {
    let dashboard = state.dashboard.as_ref().filter(|d| d.config.enabled).ok_or(Denied::Disabled)?;
    let tenant = crate::upgrade::admit(parts, &state.access).map_err(Denied::Refused)?;
    if !tenant.admin {
        return Err(Denied::NotAdmin);
    }
    Ok(dashboard.clone())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn no_store(body: Response) -> Response {
    let mut r = body;
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

fn json<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => no_store(([(header::CONTENT_TYPE, "application/json")], b).into_response()),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /dashboard`: to `/dashboard/`, keeping the query (the token), so
/// that the page's relative URLs resolve under it.
pub(crate) async fn redirect(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(d) = admit(&state, &parts) {
        return d.response();
    }
    let target = match parts.uri.query() {
        Some(q) => format!("/dashboard/?{q}"),
        None => "/dashboard/".to_owned(),
    };
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, target)]).into_response()
}

/// `GET /dashboard/`: the page, with the caller's token passed on to the
/// files it loads.
pub(crate) async fn index(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let dashboard = match admit(&state, &parts) {
        Ok(d) => d,
        Err(d) => return d.response(),
    };
    let path = dashboard.config.assets.join("index.html");
    match tokio::fs::read_to_string(&path).await {
        Ok(html) => {
            let html = html.replace("{{query}}", &token_query(parts.uri.query()));
            no_store(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), "dashboard page not found: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                not_built_page(&dashboard.config.assets),
            )
                .into_response()
        }
    }
}

/// `GET /dashboard/{file}`: a file of the built page. Only plain names are
/// served (no `/`, no leading dot), so nothing outside the directory is.
pub(crate) async fn asset(
    State(state): State<Arc<ServerState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let dashboard = match admit(&state, &parts) {
        Ok(d) => d,
        Err(d) => return d.response(),
    };
    let Some(kind) = content_type(&file) else { return not_found() };
    match tokio::fs::read(dashboard.config.assets.join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => not_found(),
    }
}

/// `GET /dashboard/api/overview`: sessions, pipelines and their elements.
pub(crate) async fn overview(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let dashboard = match admit(&state, &parts) {
        Ok(d) => d,
        Err(d) => return d.response(),
    };
    let sessions = {
        let hub = state.hub.lock();
        let d = &hub.dispatcher;
        d.session_ids()
            .into_iter()
            .map(|s| SessionView { connected: d.connection_of(&s).is_some(), id: s.to_string() })
            .collect()
    };
    let server_id = state.hub.server_id();
    match tokio::task::spawn_blocking(move || dashboard.source.pipelines()).await {
        Ok(pipelines) => json(&Overview { server_id, sessions, pipelines }),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /dashboard/api/dot?pipeline=<id>`: the pipeline's GStreamer graph.
pub(crate) async fn dot(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let dashboard = match admit(&state, &parts) {
        Ok(d) => d,
        Err(d) => return d.response(),
    };
    let Some(pipeline) = query_param(parts.uri.query(), "pipeline") else {
        return (StatusCode::BAD_REQUEST, "pipeline=<id> required\n").into_response();
    };
    match tokio::task::spawn_blocking(move || dashboard.source.pipeline_dot(&pipeline)).await {
        Ok(Some(dot)) => no_store(([(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")], dot).into_response()),
        Ok(None) => not_found(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /dashboard/api/stats`: per-endpoint counters, now.
pub(crate) async fn stats(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let dashboard = match admit(&state, &parts) {
        Ok(d) => d,
        Err(d) => return d.response(),
    };
    // Endpoint stats wait on webrtcbin: never on an async worker.
    match tokio::task::spawn_blocking(move || dashboard.source.endpoint_stats()).await {
        Ok(endpoints) => {
            let t =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            json(&StatsReply { t, endpoints })
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The content type of a servable file name; `None` for anything else.
fn content_type(file: &str) -> Option<&'static str> {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !plain {
        return None;
    }
    let (_, ext) = file.rsplit_once('.')?;
    Some(match ext {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "wasm" => "application/wasm",
        "map" | "json" => "application/json",
        _ => return None,
    })
}

/// One query parameter, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `?access_token=<t>` for the page's own URLs when the page was opened
/// with one (re-encoded: it ends up in HTML), else nothing.
fn token_query(query: Option<&str>) -> String {
    match query_param(query, "access_token") {
        Some(t) => {
            let mut q = String::from("?access_token=");
            for b in t.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    q.push(b as char);
                } else {
                    q.push_str(&format!("%{b:02X}"));
                }
            }
            q
        }
        None => String::new(),
    }
}

/// Shown instead of the page when its files are missing.
fn not_built_page(assets: &Path) -> String {
    let dir = assets.display().to_string().replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kurento-rs dashboard</title></head>\
         <body><h1>The dashboard page is not built</h1>\
         <p>The server looked for it in <code>{dir}</code>.</p>\
         <p>Build it from the source tree with <code>dashboard/build.sh</code> (needs Node.js and npm), or \
         point <code>mediaServer.net.websocket.dashboard.assets</code> at a built copy.</p></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_kinds_are_served() {
        assert_eq!(content_type("dashboard.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type("dashboard.css"), Some("text/css; charset=utf-8"));
        for bad in ["../secret.js", ".env.js", "a/b.js", "x.exe", "noext", "", "%2e%2e.js"] {
            assert_eq!(content_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_params_are_decoded_and_the_token_re_encoded() {
        assert_eq!(query_param(Some("a=1&pipeline=p%2Fq_1"), "pipeline").as_deref(), Some("p/q_1"));
        assert_eq!(query_param(Some("a=1"), "pipeline"), None);
        assert_eq!(query_param(None, "pipeline"), None);
        assert_eq!(query_param(Some("x=%4"), "x").as_deref(), Some("%4"));
        assert_eq!(token_query(Some("access_token=s3cret")), "?access_token=s3cret");
        assert_eq!(token_query(Some("access_token=%22%3E%3Cscript")), "?access_token=%22%3E%3Cscript");
        assert_eq!(token_query(Some("other=1")), "");
    }
}
