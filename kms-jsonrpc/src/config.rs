//! Server settings: the `mediaServer.net.websocket.*` and
//! `mediaServer.resources.*` keys of spec §11.1, plus resource limits that
//! upstream does not have but a network-facing server needs.
//!
//! Parsing the config file is the binary's job; these are plain values.
//! Relative `secure.certificate` paths must already be resolved against the
//! config file's directory (§1.1) by the caller.

use std::path::PathBuf;
use std::time::Duration;

use crate::tenant::{Tenant, TenantId};

/// Default `mediaServer.net.websocket.port` of the shipped config file.
pub const DEFAULT_PORT: u16 = 8888;
/// Default `mediaServer.net.websocket.path`.
pub const DEFAULT_PATH: &str = "kurento";
/// Default `mediaServer.resources.garbageCollectorPeriod` (§3.2).
pub const DEFAULT_GC_PERIOD: Duration = Duration::from_secs(240);

/// Default `maxOutboxBytes`: a few seconds of events at the rates a busy
/// application sees, far from what a stalled reader could pile up.
pub const DEFAULT_MAX_OUTBOX_BYTES: usize = 8 * 1024 * 1024;

/// Default `maxBlockingThreads`. Backend calls are short CPU work or waits
/// on GStreamer; on the 2–8 cores this runs on, more threads add memory and
/// contention, not throughput. Half of them may wait in slow calls
/// (`maxConcurrentSlowCalls`), so at least 16 are always left for quick
/// calls, whatever the clients do; `getUsedCpu` waits without a thread.
pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 32;

/// Bounds that keep memory and work per client finite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted text frame; bigger ones get -32600 and the socket
    /// stays open.
    pub max_message_bytes: usize,
    /// Sessions alive at once; creating one more → 40009.
    pub max_sessions: usize,
    /// Longest accepted `sessionId`; longer → 40007 without side effects.
    pub max_session_id_len: usize,
    /// Operations in one `transaction`; more → 40008.
    pub max_transaction_operations: usize,
    /// Total time the operations of one `transaction` may spend in waits
    /// that outside a transaction hold no thread (`getUsedCpu`); inside one
    /// they hold a thread and a slow-call permit. Past it → 40009.
    pub max_transaction_wait: Duration,
    /// Open WebSocket connections; more → HTTP 503 on upgrade.
    pub max_connections: usize,
    /// Bytes (responses and events) queued for one connection that the
    /// peer has not read yet; more → the socket is closed with 1008 and
    /// its session waits for reconnection (§3.2).
    pub max_outbox_bytes: usize,
    /// Threads of the pool that runs backend calls (tokio's
    /// `max_blocking_threads`; the binary builds the runtime with it).
    pub max_blocking_threads: usize,
    /// Backend calls that wait (`MediaBackend::is_slow`) running at once,
    /// over all connections; more wait their turn without a thread. Kept
    /// below `max_blocking_threads` so quick calls always find a thread.
    pub max_concurrent_slow_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 * 1024 * 1024,
            max_sessions: 10_000,
            max_session_id_len: 128,
            max_transaction_operations: 1000,
            max_transaction_wait: Duration::from_secs(10),
            max_connections: 10_000,
            max_outbox_bytes: DEFAULT_MAX_OUTBOX_BYTES,
            max_blocking_threads: DEFAULT_MAX_BLOCKING_THREADS,
            max_concurrent_slow_calls: DEFAULT_MAX_BLOCKING_THREADS / 2,
        }
    }
}

/// The wss:// listener (`mediaServer.net.websocket.secure.*`, §1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub port: u16,
    /// One PEM file with the certificate chain and the private key.
    pub certificate: PathBuf,
    /// Password of an encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY`) key.
    pub password: Option<String>,
}

/// Everything [`crate::Server`] and [`crate::SessionHub`] need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// ws:// port; 0 disables the plain listener (§1.1).
    pub port: u16,
    /// Bind address; `None` = `[::]` (if `ipv6`) falling back to `0.0.0.0`.
    pub address: Option<String>,
    pub ipv6: bool,
    /// URL path compared after the upgrade (no leading `/`).
    pub path: String,
    pub secure: Option<TlsConfig>,
    /// Session garbage-collector period (§3.2).
    pub gc_period: Duration,
    /// `mediaServer.resources.disableRequestCache` (§3.4).
    pub disable_request_cache: bool,
    /// Extension: tokens, tenants and allowed origins.
    pub access: AccessConfig,
    pub limits: Limits,
}

/// Who may upgrade, and as which tenant (beyond upstream, which accepts
/// everyone). The default accepts every request into the default tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// Token → tenant (`accessTokens`, plus `accessToken` as the
    /// [`DEFAULT_TENANT`](crate::tenant::DEFAULT_TENANT)). When non-empty,
    /// upgrades need `?access_token=<t>` or `Authorization: Bearer <t>`.
    pub tokens: Vec<(String, TenantId)>,
    /// `adminTenants`: tenants that may read process-wide figures. With a
    /// single tenant, that tenant always may.
    pub admin_tenants: Vec<TenantId>,
    /// `allowedOrigins`: when set, a request carrying an `Origin` header not
    /// in the list is refused (403). Requests without `Origin` (non-browser
    /// clients) are not affected.
    pub allowed_origins: Option<Vec<String>>,
}

impl AccessConfig {
    /// Single-tenant form (`accessToken`).
    pub fn single_token(token: impl Into<String>) -> Self {
        AccessConfig { tokens: vec![(token.into(), TenantId::default())], ..Default::default() }
    }

    /// What a connection of `tenant` may do.
    pub fn tenant(&self, id: &TenantId) -> Tenant {
        let mut distinct: Vec<&TenantId> = self.tokens.iter().map(|(_, t)| t).collect();
        distinct.sort();
        distinct.dedup();
        let admin = distinct.len() <= 1 || self.admin_tenants.contains(id);
        Tenant { id: id.clone(), admin }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: DEFAULT_PORT,
            address: None,
            ipv6: true,
            path: DEFAULT_PATH.to_owned(),
            secure: None,
            gc_period: DEFAULT_GC_PERIOD,
            disable_request_cache: false,
            access: AccessConfig::default(),
            limits: Limits::default(),
        }
    }
}
