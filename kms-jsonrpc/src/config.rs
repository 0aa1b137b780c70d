//! Server settings: the `mediaServer.net.websocket.*` and
//! `mediaServer.resources.*` keys of spec §11.1, plus resource limits that
//! upstream does not have but a network-facing server needs.
//!
//! Parsing the config file is the binary's job; these are plain values.
//! Relative `secure.certificate` paths must already be resolved against the
//! config file's directory (§1.1) by the caller.

use std::path::PathBuf;
use std::time::Duration;

/// Default `mediaServer.net.websocket.port` of the shipped config file.
pub const DEFAULT_PORT: u16 = 8888;
/// Default `mediaServer.net.websocket.path`.
pub const DEFAULT_PATH: &str = "kurento";
/// Default `mediaServer.resources.garbageCollectorPeriod` (§3.2).
pub const DEFAULT_GC_PERIOD: Duration = Duration::from_secs(240);

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
    /// Open WebSocket connections; more → HTTP 503 on upgrade.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 * 1024 * 1024,
            max_sessions: 10_000,
            max_session_id_len: 128,
            max_transaction_operations: 1000,
            max_connections: 10_000,
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
    /// Extension: when set, upgrades need `?access_token=<t>` or
    /// `Authorization: Bearer <t>` (upstream has no authentication).
    pub access_token: Option<String>,
    pub limits: Limits,
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
            access_token: None,
            limits: Limits::default(),
        }
    }
}
