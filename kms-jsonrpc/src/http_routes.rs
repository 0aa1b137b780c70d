//! Media URLs on the server's own listener (HttpEndpoint, spec §10.9).
//!
//! KMS runs a second HTTP server (`HttpEndpoint.conf.ini`, port 9091) for
//! HttpPostEndpoint uploads. We serve them on the WebSocket listener
//! instead, under `/kurento-http/<token>`: one port to open, the same TLS
//! and `allowedOrigins` rules. The token is random (192 bits) and is the
//! only credential of the URL, as in KMS, whose URLs are random too.
//!
//! An element registers a [`RouteHandler`] and keeps the [`RouteGuard`];
//! dropping the guard removes the route (later requests get 404) and ends
//! uploads in progress. Bodies, chunked or with a `Content-Length`, reach
//! the handler as a stream of chunks through a [`BodyReader`]: at most
//! [`QUEUED_CHUNKS`] chunks of at most [`CHUNK_BYTES`] are queued, and the
//! socket is not read while the queue is full, so a client can never make
//! the server hold more than that per upload (TCP flow control slows it
//! down instead).
//!
//! No GStreamer here: the handler decides what the bytes are.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use crate::server::ServerState;
use crate::upgrade::origin_refusal;

/// First path segment of every media URL.
pub const ROUTE_PREFIX: &str = "kurento-http";
/// Largest chunk handed to a handler; bigger reads are split (no copy).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks queued per upload before the socket stops being read.
pub const QUEUED_CHUNKS: usize = 8;
/// Random bytes of a token (hex-encoded in the URL).
const TOKEN_BYTES: usize = 24;

/// The unguessable last segment of a media URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteToken(Arc<str>);

impl RouteToken {
    /// A fresh token from the OS random source.
    pub fn random() -> RouteToken {
        let mut b = [0u8; TOKEN_BYTES];
        // Without an OS random source no URL would be safe to hand out; the
        // process cannot do anything sensible then.
        getrandom::fill(&mut b).expect("OS random source unavailable");
        RouteToken(b.iter().map(|x| format!("{x:02x}")).collect::<String>().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RouteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a handler learns about a request before taking its body.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub content_type: Option<String>,
    /// `None` for chunked bodies.
    pub content_length: Option<u64>,
}

/// Why a handler does not take a request; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 405: the route does not accept this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the endpoint is busy with another upload.
    #[error("another upload is in progress")]
    Busy,
    /// 503: the endpoint cannot take media now (its reason).
    #[error("{0}")]
    Unavailable(String),
}

impl Refusal {
    fn response(&self) -> Response {
        match self {
            Refusal::MethodNotAllowed => {
                let mut r = (StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted here\n").into_response();
                r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
                r
            }
            Refusal::Busy => (StatusCode::CONFLICT, "another upload to this URL is in progress\n").into_response(),
            Refusal::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
        }
    }
}

/// An element's side of a route.
pub trait RouteHandler: Send + Sync + 'static {
    /// A request arrived. Runs on an async worker: hand `body` to a thread
    /// or task of your own and return at once. Hold the element weakly: the
    /// registry keeps the handler until the guard is dropped.
    fn request(&self, head: &RequestHead, body: BodyReader) -> Result<(), Refusal>;
}

/// One step of a body, as [`BodyReader`] yields them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEvent {
    Data(Bytes),
    /// The whole body arrived.
    End,
    /// The body ended early (client gone, route released, bad chunking).
    Aborted(String),
}

/// The receiving end of an upload. Dropping it (or [`BodyReader::finish`])
/// ends the upload: the client gets its answer and the route can take the
/// next one.
pub struct BodyReader {
    rx: mpsc::Receiver<BodyEvent>,
    verdict: Option<oneshot::Sender<Result<(), String>>>,
    _active: ActiveUpload,
}

impl BodyReader {
    /// The next step, blocking the calling thread. Not for async contexts.
    pub fn blocking_next(&mut self) -> BodyEvent {
        self.rx.blocking_recv().unwrap_or_else(|| BodyEvent::Aborted("connection closed".into()))
    }

    /// The next step.
    pub async fn next(&mut self) -> BodyEvent {
        self.rx.recv().await.unwrap_or_else(|| BodyEvent::Aborted("connection closed".into()))
    }

    /// Answers the client: 200, or 400 with `Err`'s text.
    pub fn finish(mut self, result: Result<(), String>) {
        if let Some(v) = self.verdict.take() {
            let _ = v.send(result);
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        if let Some(v) = self.verdict.take() {
            let _ = v.send(Err("upload abandoned by the endpoint".into()));
        }
    }
}

/// Marks a route busy while an upload's reader lives.
struct ActiveUpload(Arc<AtomicBool>);

impl Drop for ActiveUpload {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

struct Route {
    handler: Arc<dyn RouteHandler>,
    active: Arc<AtomicBool>,
    /// Dropped with the route: requests in progress see the channel close.
    released: watch::Sender<()>,
}

/// A route as one request sees it.
struct Found {
    handler: Arc<dyn RouteHandler>,
    active: Arc<AtomicBool>,
    released: watch::Receiver<()>,
}

#[derive(Default)]
struct Inner {
    routes: Mutex<HashMap<RouteToken, Route>>,
    /// Scheme and address of the listener the routes are served on.
    listener: Mutex<Option<(&'static str, SocketAddr)>>,
}

/// The route table; cheap to clone. The server serves it, elements
/// register in it (through `CoreConfig`).
#[derive(Clone, Default)]
pub struct HttpRoutes {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRoutes")
            .field("routes", &self.len())
            .field("listener", &*self.inner.listener.lock())
            .finish()
    }
}

/// Keeps a route registered; dropping it removes the route.
pub struct RouteGuard {
    token: RouteToken,
    inner: Weak<Inner>,
}

impl RouteGuard {
    pub fn token(&self) -> &RouteToken {
        &self.token
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            // Dropping the route outside the lock: its handler may own
            // things whose drop takes time.
            let route = inner.routes.lock().remove(&self.token);
            drop(route);
        }
    }
}

impl HttpRoutes {
    /// Registers `handler` under a fresh token.
    pub fn register(&self, handler: Arc<dyn RouteHandler>) -> RouteGuard {
        let token = RouteToken::random();
        let (released, _) = watch::channel(());
        let route = Route { handler, active: Arc::new(AtomicBool::new(false)), released };
        self.inner.routes.lock().insert(token.clone(), route);
        RouteGuard { token, inner: Arc::downgrade(&self.inner) }
    }

    /// Routes registered now.
    pub fn len(&self) -> usize {
        self.inner.routes.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records where the routes are served (the server does this).
    pub fn set_listener(&self, scheme: &'static str, addr: SocketAddr) {
        *self.inner.listener.lock() = Some((scheme, addr));
    }

    /// The URL of `token`. The host is `announced` if given, else the
    /// listener's address when it is bound to one, else the first
    /// non-loopback IPv4 address of the machine (as KMS picks it), else
    /// 127.0.0.1. `None` while no listener serves the routes.
    pub fn url(&self, token: &RouteToken, announced: Option<&str>) -> Option<String> {
        let (scheme, addr) = (*self.inner.listener.lock())?;
        let host = match announced.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) if a.contains(':') && !a.starts_with('[') => format!("[{a}]"),
            Some(a) => a.to_owned(),
            None => {
                let ip = if addr.ip().is_unspecified() { first_public_ipv4().map(IpAddr::V4) } else { Some(addr.ip()) };
                match ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)) {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                }
            }
        };
        Some(format!("{scheme}://{host}:{}/{ROUTE_PREFIX}/{token}", addr.port()))
    }

    fn lookup(&self, token: &str) -> Option<Found> {
        let routes = self.inner.routes.lock();
        let r = routes.get(&RouteToken(token.into()))?;
        Some(Found { handler: r.handler.clone(), active: r.active.clone(), released: r.released.subscribe() })
    }

    /// Serves one request for `token` (the router calls this).
    pub(crate) async fn serve(&self, token: &str, method: Method, headers: &HeaderMap, body: Body) -> Response {
        let Some(Found { handler, active, mut released }) = self.lookup(token) else {
            return (StatusCode::NOT_FOUND, "no such media URL\n").into_response();
        };
        if method != Method::POST {
            return Refusal::MethodNotAllowed.response();
        }
        if active.swap(true, Ordering::AcqRel) {
            return Refusal::Busy.response();
        }
        let busy = ActiveUpload(active);
        let head = RequestHead {
            method,
            content_type: headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
            content_length: headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()),
        };
        let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
        let (verdict_tx, verdict) = oneshot::channel();
        let reader = BodyReader { rx, verdict: Some(verdict_tx), _active: busy };
        if let Err(refusal) = handler.request(&head, reader) {
            return refusal.response();
        }
        drop(handler);
        let forward = forward_body(body, tx);
        tokio::select! {
            _ = forward => {}
            _ = released.changed() => {
                return (StatusCode::NOT_FOUND, "media URL released during the upload\n").into_response();
            }
        }
        tokio::select! {
            v = verdict => match v {
                Ok(Ok(())) => (StatusCode::OK, "").into_response(),
                Ok(Err(why)) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "upload dropped\n").into_response(),
            },
            _ = released.changed() => (StatusCode::NOT_FOUND, "media URL released during the upload\n").into_response(),
        }
    }
}

/// Copies the body into the queue, waiting while it is full. Returns when
/// the body ended or the reader went away.
async fn forward_body(body: Body, tx: mpsc::Sender<BodyEvent>) {
    let mut stream = body.into_data_stream();
    loop {
        match stream.next().await {
            Some(Ok(mut bytes)) => {
                while !bytes.is_empty() {
                    let part = bytes.split_to(bytes.len().min(CHUNK_BYTES));
                    if tx.send(BodyEvent::Data(part)).await.is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                let _ = tx.send(BodyEvent::Aborted(format!("body read failed: {e}"))).await;
                return;
            }
            None => {
                let _ = tx.send(BodyEvent::End).await;
                return;
            }
        }
    }
}

/// The router's entry for `/kurento-http/{token}`: the `allowedOrigins`
/// rule of the WebSocket upgrade, then the route. WebSocket access tokens
/// are not asked for: the URL's token is the credential.
pub(crate) async fn handle(
    State(state): State<Arc<ServerState>>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(refused) = origin_refusal(&parts, &state.access) {
        return refused;
    }
    state.routes.serve(&token, parts.method, &parts.headers, body).await
}

/// KMS's default host for media URLs: the first non-loopback IPv4 address.
fn first_public_ipv4() -> Option<Ipv4Addr> {
    let mut found = None;
    let mut ifs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we only read and then free.
    unsafe {
        if libc::getifaddrs(&mut ifs) != 0 {
            return None;
        }
        let mut cur = ifs;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let sin = &*(addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(ip);
                    break;
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifs);
    }
    found
}

#[cfg(test)]
#[path = "http_routes_tests.rs"]
mod tests;
