//! The Kurento Protocol (JSON-RPC 2.0 over WebSocket), spec
//! `kurento-protocol.md` §1–§8. No GStreamer here.
//!
//! Layers, each testable on its own:
//! * [`codec`]: one text frame ↔ request / response / event (§2, §7.1).
//! * [`dispatch`]: the sans-IO core — sessions, injection and association,
//!   GC, duplicate-request cache, transactions (§3, §5); time is an input.
//! * [`server`]: the axum WebSocket transport (§1), a thin shell.
//!
//! The object model plugs in through [`MediaBackend`] and pushes events
//! through [`Notifier`].

pub mod backend;
pub mod codec;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod http_routes;
pub mod metrics;
pub mod server;
pub mod session;
pub mod session_table;
pub mod tenant;

mod call;
mod connection;
mod listener;
mod outbox;
mod params;
mod refusal_log;
mod request_cache;
mod session_hub;
mod tls;
mod transaction;
mod upgrade;

pub use backend::{Deferred, Description, Invoked, MediaBackend};
pub use config::{AccessConfig, Limits, ServerConfig, TlsConfig};
pub use dispatch::{Dispatcher, Reply, Step};
pub use error::{Error, RpcError, codes};
pub use http_routes::{
    BodyEvent, BodyReader, HttpRoutes, Refusal as HttpRefusal, RequestHead, RouteGuard, RouteHandler, RouteToken,
};
pub use metrics::{Metrics, RpcMetrics};
pub use request_cache::REQUEST_CACHE_TTL;
pub use server::Server;
pub use session::SessionId;
pub use session_hub::{Notifier, SessionHub};
pub use session_table::ConnectionId;
pub use tenant::{Caller, Tenant, TenantId, TenantSession};
