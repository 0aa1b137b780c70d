//! Settings the object model reads (spec §11.2–11.3).

use serde_json::Value;

/// Bounds on per-object growth driven by client input
/// (`mediaServer.resources.limits.*`). 0 = unlimited. Exceeding one is a
/// JSON-RPC error, never an unbounded allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLimits {
    /// `maxSubscriptionsPerObject`: subscription ids on one object, all
    /// sessions and event types together.
    pub max_subscriptions_per_object: usize,
    /// `maxTagsPerObject`.
    pub max_tags_per_object: usize,
    /// `maxTagBytes`: key plus value of one tag.
    pub max_tag_bytes: usize,
    /// `maxQueuedIceCandidates`: remote candidates an endpoint keeps before
    /// its descriptions are set.
    pub max_queued_ice_candidates: usize,
    /// `maxDataChannels`: data channels of one WebRtcEndpoint.
    pub max_data_channels: usize,
    /// `maxMediaDescriptions`: distinct media descriptions of one element
    /// per media type and direction.
    pub max_media_descriptions: usize,
    /// `maxSlowCallsPerSession`: calls of one session that wait (getUsedCpu,
    /// negotiation, stats) in progress at once.
    pub max_slow_calls_per_session: usize,
}

impl Default for ObjectLimits {
    fn default() -> Self {
        ObjectLimits {
            max_subscriptions_per_object: 1000,
            max_tags_per_object: 100,
            max_tag_bytes: 4096,
            max_queued_ice_candidates: 500,
            max_data_channels: 256,
            max_media_descriptions: 64,
            max_slow_calls_per_session: 8,
        }
    }
}

/// Configuration shared by all objects of a server.
#[derive(Debug, Clone, Default)]
pub struct CoreConfig {
    /// The merged module configuration tree: `{"kurento": {"MediaElement":
    /// {...}}, "<plugin>": {...}}` (the `modules` key of spec §11.2).
    pub modules: Value,
    /// `metadata` of the main config, pretty-printed, or "" (spec §9).
    pub metadata: String,
    /// 0 = unlimited. Beyond upstream: one client cannot exhaust the server.
    pub max_objects_per_session: usize,
    /// Upper bound for `getUsedCpu(interval)` in ms, so a call cannot hold a
    /// worker indefinitely.
    pub max_cpu_sample_ms: u64,
    /// Directories the module configuration was read from, then the main
    /// configuration's: relative file settings (certificates) resolve here.
    pub config_dirs: Vec<std::path::PathBuf>,
    /// Per-object growth bounds.
    pub limits: ObjectLimits,
    /// Where HttpEndpoints register their media URLs; the server serves the
    /// same table on its listener (`kms_jsonrpc::http_routes`). Without a
    /// server (tests) it has no listener and `getUrl` fails.
    pub http_routes: kms_jsonrpc::HttpRoutes,
    /// Which files and hosts URI endpoints may use.
    pub media_access: MediaAccess,
}

/// Where players and recorders may read and write
/// (`mediaServer.resources.mediaRoots`, `mediaServer.resources.allowedHosts`).
/// Beyond KMS, which lets any client read `/etc/shadow`: `file://` URIs
/// must resolve inside one of the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAccess {
    /// Directories `file://` URIs may point into (after `..`, symlinks and
    /// percent-decoding are resolved).
    pub media_roots: Vec<std::path::PathBuf>,
    /// Hosts network URIs (http, https, rtsp, ...) may name; `None` = any.
    /// An entry `*.example.com` matches every subdomain.
    pub allowed_hosts: Option<Vec<String>>,
}

/// KMS's data directory (and its `UriEndpoint` `defaultPath`).
pub const DEFAULT_MEDIA_ROOT: &str = "/var/lib/kurento";

impl Default for MediaAccess {
    fn default() -> Self {
        MediaAccess { media_roots: vec![DEFAULT_MEDIA_ROOT.into()], allowed_hosts: None }
    }
}

impl CoreConfig {
    /// `modules.<ns>.<class>.<key>` (spec §11.2: the declaring class).
    pub fn module_value(&self, ns: &str, class: &str, key: &str) -> Option<&Value> {
        self.modules.get(ns)?.get(class)?.get(key)
    }

    /// Lenient integer read: INI values are strings (spec §11.2).
    pub fn module_i64(&self, ns: &str, class: &str, key: &str) -> Option<i64> {
        match self.module_value(ns, class, key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn module_str(&self, ns: &str, class: &str, key: &str) -> Option<String> {
        match self.module_value(ns, class, key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            v => Some(v.to_string()),
        }
    }

    pub fn module_bool(&self, ns: &str, class: &str, key: &str) -> Option<bool> {
        match self.module_value(ns, class, key)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_i64().map(|i| i != 0),
            Value::String(s) => match s.trim() {
                "1" | "true" | "TRUE" | "True" | "yes" => Some(true),
                "0" | "false" | "FALSE" | "False" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}
