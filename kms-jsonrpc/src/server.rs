//! The WebSocket server (spec §1): listeners, the HTTP router, the GC
//! timer task and graceful shutdown. Thin: protocol decisions live in
//! [`crate::dispatch`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::backend::MediaBackend;
use crate::config::AccessConfig;
pub use crate::config::{Limits, ServerConfig, TlsConfig};
use crate::dashboard::{self, Dashboard, DashboardConfig, DashboardSource};
use crate::error::Error;
use crate::http_routes::{self, HttpRoutes};
use crate::listener::{NoDelayListener, bind_tcp};
use crate::metrics::{self, Metrics};
use crate::refusal_log::RefusalLog;
pub use crate::session_hub::SessionHub;
use crate::tls::{TlsListener, load_server_config};
use crate::upgrade::{self, PeerAddr};

/// Hard cap for the WebSocket library's own message limit.
const WS_HARD_CAP: usize = 64 * 1024 * 1024;
/// How long `run` waits for sockets and listeners to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What request handlers and connection tasks share.
pub(crate) struct ServerState {
    pub hub: SessionHub,
    pub backend: Arc<dyn MediaBackend>,
    pub path: String,
    pub access: AccessConfig,
    /// Refused upgrades, for rate-limited logging.
    pub refusals: Mutex<RefusalLog>,
    /// Slow backend calls in progress, all connections together
    /// (`maxConcurrentSlowCalls`).
    pub slow_calls: Arc<Semaphore>,
    /// The socket's own limit: well above `max_message_bytes`, so that an
    /// oversize message is answered with -32600 instead of killing the
    /// connection (bounded by [`WS_HARD_CAP`]).
    pub ws_max_message: usize,
    pub stop: watch::Receiver<bool>,
    /// Media URLs of HttpEndpoints (`/kurento-http/<token>`).
    pub routes: HttpRoutes,
    /// `/metrics`, and the drain switch `/ready` reports.
    pub metrics: Arc<Metrics>,
    /// The dashboard page and its data, when given one.
    pub dashboard: Option<Arc<Dashboard>>,
}

/// A bound, not yet running server.
pub struct Server {
    config: ServerConfig,
    hub: SessionHub,
    backend: Arc<dyn MediaBackend>,
    ws: Option<TcpListener>,
    wss: Option<(TcpListener, TlsAcceptor)>,
    ws_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    routes: HttpRoutes,
    metrics: Arc<Metrics>,
    dashboard: Option<Arc<Dashboard>>,
}

impl Server {
    /// Binds the configured listeners (ws and/or wss). A listener that
    /// fails is logged and skipped; error only if none can be opened
    /// (§1.1). `port: 0` disables a listener, as in the config file.
    pub async fn bind(config: ServerConfig, hub: SessionHub, backend: Arc<dyn MediaBackend>) -> Result<Server, Error> {
        hub.lock().dispatcher.set_adopt_sessions(backend.adopts_sessions());
        let ws = if config.port == 0 {
            None
        } else {
            bind_tcp(config.address.as_deref(), config.ipv6, config.port, "ws")
                .await
                .inspect_err(|e| tracing::error!("{e}"))
                .ok()
        };
        let mut wss = None;
        if let Some(secure) = config.secure.as_ref().filter(|s| s.port != 0) {
            // Certificate first: no port is opened for a disabled wss://.
            match load_server_config(secure) {
                Ok(tls) => match bind_tcp(config.address.as_deref(), config.ipv6, secure.port, "wss").await {
                    Ok(l) => wss = Some((l, TlsAcceptor::from(tls))),
                    Err(e) => tracing::error!("{e}"),
                },
                Err(e) => tracing::error!("{e}; wss:// disabled"),
            }
        }
        Self::assemble(config, hub, backend, ws, wss)
    }

    /// Like [`Server::bind`] but with already-bound listeners, whatever the
    /// configured ports (tests bind `127.0.0.1:0`; socket activation).
    /// `wss` uses `config.secure` for its certificate; without a usable
    /// one it is dropped (logged), as in `bind`.
    pub fn from_listeners(
        config: ServerConfig,
        hub: SessionHub,
        backend: Arc<dyn MediaBackend>,
        ws: Option<TcpListener>,
        wss: Option<TcpListener>,
    ) -> Result<Server, Error> {
        let wss = match (wss, &config.secure) {
            (Some(l), Some(secure)) => match load_server_config(secure) {
                Ok(tls) => Some((l, TlsAcceptor::from(tls))),
                Err(e) => {
                    tracing::error!("{e}; wss:// disabled");
                    None
                }
            },
            (Some(_), None) => {
                tracing::error!("wss listener given without a 'secure' configuration; ignored");
                None
            }
            (None, _) => None,
        };
        Self::assemble(config, hub, backend, ws, wss)
    }

    fn assemble(
        config: ServerConfig,
        hub: SessionHub,
        backend: Arc<dyn MediaBackend>,
        ws: Option<TcpListener>,
        wss: Option<(TcpListener, TlsAcceptor)>,
    ) -> Result<Server, Error> {
        if ws.is_none() && wss.is_none() {
            return Err(Error::NoListener(format!(
                "ws port {}, wss {}",
                config.port,
                config.secure.as_ref().map_or("not configured".to_owned(), |s| format!("port {}", s.port))
            )));
        }
        let ws_addr = ws.as_ref().map(TcpListener::local_addr).transpose()?;
        let wss_addr = wss.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        if let Some(a) = ws_addr {
            tracing::info!("listening on ws://{a}/{}", config.path);
        }
        if let Some(a) = wss_addr {
            tracing::info!("listening on wss://{a}/{}", config.path);
        }
        let routes = HttpRoutes::default();
        let metrics = Metrics::new(&hub, |_| {});
        let mut server = Server { config, hub, backend, ws, wss, ws_addr, wss_addr, routes, metrics, dashboard: None };
        server.announce_routes();
        Ok(server)
    }

    /// Serves `routes` (the table HttpEndpoints register their media URLs
    /// in) on this server's listener: plain if there is one, else TLS.
    pub fn with_http_routes(mut self, routes: HttpRoutes) -> Server {
        self.routes = routes;
        self.announce_routes();
        self
    }

    /// Adds collectors (the media ones) to this server's `/metrics`.
    pub fn with_metrics(mut self, extra: impl FnOnce(&mut prometheus_client::registry::Registry)) -> Server {
        self.metrics = Metrics::new(&self.hub, extra);
        self
    }

    /// Serves the dashboard (`/dashboard/`) with data from `source`, if
    /// `config.enabled`; otherwise its paths answer 404.
    pub fn with_dashboard(mut self, config: DashboardConfig, source: Arc<dyn DashboardSource>) -> Server {
        if config.enabled {
            tracing::info!(assets = %config.assets.display(), "dashboard enabled on /dashboard/");
        }
        self.dashboard = Some(Arc::new(Dashboard { config, source }));
        self
    }

    /// The server's metrics and drain switch.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn announce_routes(&mut self) {
        match (self.ws_addr, self.wss_addr) {
            (Some(a), _) => self.routes.set_listener("http", a),
            (None, Some(a)) => self.routes.set_listener("https", a),
            (None, None) => {}
        }
    }

    /// The ws:// listener's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The wss:// listener's address.
    pub fn secure_local_addr(&self) -> Option<SocketAddr> {
        self.wss_addr
    }

    /// Serves until `shutdown` resolves; then stops accepting, closes every
    /// socket (close frame 1001), stops the GC task and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let Server { config, hub, backend, ws, wss, routes, metrics, dashboard, .. } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let limit = config.limits.max_message_bytes;
        let ws_max_message = limit.saturating_mul(4).min(WS_HARD_CAP).max(limit.saturating_add(64 * 1024));
        let state = Arc::new(ServerState {
            hub: hub.clone(),
            backend: backend.clone(),
            path: config.path.clone(),
            access: config.access.clone(),
            refusals: Mutex::new(RefusalLog::default()),
            slow_calls: Arc::new(Semaphore::new(config.limits.max_concurrent_slow_calls.max(1))),
            ws_max_message,
            stop: stop_rx.clone(),
            routes,
            metrics,
            dashboard,
        });
        let router = Router::new()
            .route(&format!("/{}/{{token}}", http_routes::ROUTE_PREFIX), axum::routing::any(http_routes::handle))
            .route("/metrics", axum::routing::get(metrics::metrics))
            .route("/health", axum::routing::get(metrics::health))
            .route("/ready", axum::routing::get(metrics::ready))
            .route("/dashboard", axum::routing::get(dashboard::redirect))
            .route("/dashboard/", axum::routing::get(dashboard::index))
            .route("/dashboard/api/overview", axum::routing::get(dashboard::overview))
            .route("/dashboard/api/dot", axum::routing::get(dashboard::dot))
            .route("/dashboard/api/stats", axum::routing::get(dashboard::stats))
            .route("/dashboard/{file}", axum::routing::get(dashboard::asset))
            .fallback(upgrade::handle)
            .with_state(state);

        let mut listeners = JoinSet::new();
        if let Some(l) = ws {
            let service = router.clone().into_make_service_with_connect_info::<PeerAddr>();
            let serve = axum::serve(NoDelayListener(l), service).with_graceful_shutdown(stopped(stop_rx.clone()));
            listeners.spawn(async move { serve.await });
        }
        if let Some((l, acceptor)) = wss {
            let tls = TlsListener::spawn(l, acceptor, stop_rx.clone())?;
            let service = router.into_make_service_with_connect_info::<PeerAddr>();
            let serve = axum::serve(tls, service).with_graceful_shutdown(stopped(stop_rx.clone()));
            listeners.spawn(async move { serve.await });
        }
        let gc = tokio::spawn(gc_loop(hub.clone(), backend, stop_rx.clone()));

        let mut result = Ok(());
        tokio::select! {
            _ = shutdown => tracing::info!("shutting down the WebSocket server"),
            Some(joined) = listeners.join_next() => {
                tracing::error!("a listener stopped unexpectedly: {joined:?}");
                if let Ok(Err(e)) = joined {
                    result = Err(Error::Io(e));
                }
            }
        }
        let _ = stop_tx.send(true);
        // Connection tasks see `stop` and send their close frames, also
        // those busy in a backend call.
        if tokio::time::timeout(SHUTDOWN_GRACE, hub.all_connections_closed()).await.is_err() {
            tracing::warn!(open = hub.live_connections(), "connections still open after the shutdown grace period");
        }
        let drained =
            tokio::time::timeout(SHUTDOWN_GRACE, async { while listeners.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            listeners.abort_all();
        }
        let _ = gc.await;
        result
    }
}

/// Longest sleep of the timer task.
const MAX_TIMER_SLEEP: std::time::Duration = std::time::Duration::from_secs(2);

/// Drives [`crate::dispatch::Dispatcher::handle_timeout`] and hands
/// collected sessions to the backend (§3.2).
async fn gc_loop(hub: SessionHub, backend: Arc<dyn MediaBackend>, mut stop: watch::Receiver<bool>) {
    loop {
        // Entries cached after this deadline was computed do not wake the
        // loop, so never sleep longer than the cache's 1 s coalescing step
        // allows them to outlive their TTL by much.
        let deadline = hub.lock().dispatcher.poll_timeout().min(Instant::now() + MAX_TIMER_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let collected = hub.lock().dispatcher.handle_timeout(Instant::now());
        if collected.is_empty() {
            continue;
        }
        let backend = backend.clone();
        // Unref may tear down pipelines: keep it off the async workers.
        let task = tokio::task::spawn_blocking(move || {
            for session in &collected {
                backend.unref_session(session);
            }
        });
        if let Err(e) = task.await {
            tracing::error!("unref_session failed: {e}");
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
