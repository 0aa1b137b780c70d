//! Configuration loading (spec §11.1–11.3, §11.6): the main
//! `kurento.conf.json`, per-module `.conf.ini`/`.conf.json` files, and
//! `KMS_*` environment overrides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kms_core::CoreConfig;
use kms_core::config::MediaAccess;
use kms_jsonrpc::TenantId;
use kms_jsonrpc::config::{AccessConfig, Limits, ServerConfig, TlsConfig};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot load config file {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything the server needs from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerConfig,
    pub core: CoreConfig,
    pub config_dir: PathBuf,
    /// `mediaServer.net.websocket.dashboard` (beyond KMS).
    pub dashboard: kms_jsonrpc::dashboard::DashboardConfig,
    /// `mediaServer.cluster` (beyond KMS): `None` unless a Redis URL is set.
    pub cluster: Option<kms_cluster::ClusterConfig>,
}

/// Loads one config file into JSON, by extension (spec §11.2).
pub fn load_file(path: &Path) -> Result<Value, SettingsError> {
    let name = path.to_string_lossy().to_string();
    let format = if name.ends_with(".ini") {
        config::FileFormat::Ini
    } else if name.ends_with(".json") {
        config::FileFormat::Json
    } else {
        return Err(SettingsError::Load {
            path: name,
            reason: "unsupported format (use .conf.json or .conf.ini)".into(),
        });
    };
    let cfg = config::Config::builder()
        .add_source(config::File::from(path).format(format))
        .build()
        .map_err(|e| SettingsError::Load { path: name.clone(), reason: e.to_string() })?;
    let v: Value = cfg.try_deserialize().map_err(|e| SettingsError::Load { path: name, reason: e.to_string() })?;
    Ok(strip_comments(v))
}

/// `"//"` keys emulate comments in KMS JSON files (spec §11.1).
fn strip_comments(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(k, _)| !k.starts_with("//")).map(|(k, v)| (k, strip_comments(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_comments).collect()),
        v => v,
    }
}

/// Objects merge recursively; scalars and arrays are replaced (spec §11.2).
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Scans module config directories: `<dir>/<a>/<b>/<Name>.conf.<ext>` is
/// loaded under `<a>.<b>.<Name>` (spec §11.2). Bad files are logged and
/// skipped.
pub fn load_module_configs(dirs: &[PathBuf]) -> Value {
    let mut tree = Value::Object(Map::new());
    for dir in dirs {
        let mut files = vec![];
        collect(dir, dir, &mut files);
        files.sort();
        for (rel, path) in files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(stem) = name.strip_suffix(".conf.ini").or_else(|| name.strip_suffix(".conf.json")) else {
                continue;
            };
            match load_file(&path) {
                Ok(mut v) => {
                    if let Value::Object(m) = &mut v {
                        m.insert(
                            "configPath".into(),
                            Value::String(path.parent().map(|p| p.display().to_string()).unwrap_or_default()),
                        );
                    }
                    let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().to_string()).collect();
                    segs.push(stem.to_string());
                    let mut wrapped = v;
                    for s in segs.into_iter().rev() {
                        let mut m = Map::new();
                        m.insert(s, wrapped);
                        wrapped = Value::Object(m);
                    }
                    merge(&mut tree, wrapped);
                }
                Err(e) => tracing::warn!("skipping module config: {e}"),
            }
        }
    }
    tree
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            let rel = p.parent().and_then(|d| d.strip_prefix(root).ok()).map(Path::to_path_buf).unwrap_or_default();
            out.push((rel, p));
        }
    }
}

/// The Docker variables of spec §11.6, applied on top of the INI files so
/// the binary honours them even outside the image.
pub fn env_overrides(env: &dyn Fn(&str) -> Option<String>) -> Value {
    let mut tree = Value::Object(Map::new());
    let mut set = |class: &str, key: &str, v: String| {
        merge(&mut tree, serde_json::json!({"kurento": {class: {key: v}}}));
    };
    let pairs = [
        ("KMS_MIN_PORT", "BaseRtpEndpoint", "minPort"),
        ("KMS_MAX_PORT", "BaseRtpEndpoint", "maxPort"),
        ("KMS_MTU", "BaseRtpEndpoint", "mtu"),
        ("KMS_EXTERNAL_IPV4", "WebRtcEndpoint", "externalIPv4"),
        ("KMS_EXTERNAL_IPV6", "WebRtcEndpoint", "externalIPv6"),
        ("KMS_NETWORK_INTERFACES", "WebRtcEndpoint", "networkInterfaces"),
        ("KMS_ICE_TCP", "WebRtcEndpoint", "iceTcp"),
        ("KMS_TURN_URL", "WebRtcEndpoint", "turnURL"),
        ("KMS_PEM_CERTIFICATE_RSA", "WebRtcEndpoint", "pemCertificateRSA"),
        ("KMS_PEM_CERTIFICATE_ECDSA", "WebRtcEndpoint", "pemCertificateECDSA"),
    ];
    for (var, class, key) in pairs {
        if let Some(v) = env(var).filter(|v| !v.is_empty() && v != "auto") {
            set(class, key, v);
        }
    }
    // Both are required (spec §11.6).
    if let (Some(ip), Some(port)) =
        (env("KMS_STUN_IP").filter(|v| !v.is_empty()), env("KMS_STUN_PORT").filter(|v| !v.is_empty()))
    {
        set("WebRtcEndpoint", "stunServerAddress", ip);
        set("WebRtcEndpoint", "stunServerPort", port);
    }
    tree
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn as_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => Some(matches!(s.trim(), "1" | "true" | "TRUE" | "True")),
        _ => None,
    }
}

fn as_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Settings {
    /// Builds settings from the parsed main config and the module tree.
    pub fn from_values(
        main: &Value,
        modules: Value,
        config_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let ms = get(main, &["mediaServer"]).cloned().unwrap_or(Value::Null);
        if let Some(Value::Object(net)) = get(&ms, &["net"])
            && (net.len() != 1 || !net.contains_key("websocket"))
        {
            return Err(SettingsError::Invalid("mediaServer.net must contain exactly one transport: websocket".into()));
        }
        let ws = get(&ms, &["net", "websocket"]).cloned().unwrap_or(Value::Null);
        let res = get(&ms, &["resources"]).cloned().unwrap_or(Value::Null);
        let secure = {
            let port = as_u64(get(&ws, &["secure", "port"])).unwrap_or(0) as u16;
            let cert = as_string(get(&ws, &["secure", "certificate"]));
            match (port, cert) {
                (p, Some(c)) if p > 0 => {
                    let c = PathBuf::from(c);
                    let certificate = if c.is_relative() { config_dir.join(c) } else { c };
                    Some(TlsConfig { port: p, certificate, password: as_string(get(&ws, &["secure", "password"])) })
                }
                (p, None) if p > 0 => {
                    tracing::warn!("secure.port set without secure.certificate: wss:// disabled");
                    None
                }
                _ => None,
            }
        };
        let defaults = Limits::default();
        let lim = get(&res, &["limits"]).cloned().unwrap_or(Value::Null);
        let limits = Limits {
            max_message_bytes: as_u64(lim.get("maxMessageBytes"))
                .map(|v| v as usize)
                .unwrap_or(defaults.max_message_bytes),
            max_sessions: as_u64(lim.get("maxSessions")).map(|v| v as usize).unwrap_or(defaults.max_sessions),
            max_session_id_len: as_u64(lim.get("maxSessionIdLength"))
                .map(|v| v as usize)
                .unwrap_or(defaults.max_session_id_len),
            max_transaction_operations: as_u64(lim.get("maxTransactionOperations"))
                .map(|v| v as usize)
                .unwrap_or(defaults.max_transaction_operations),
            max_connections: as_u64(lim.get("maxConnections")).map(|v| v as usize).unwrap_or(defaults.max_connections),
            max_transaction_wait: as_u64(lim.get("maxTransactionWaitMs"))
                .map(Duration::from_millis)
                .unwrap_or(defaults.max_transaction_wait),
            max_outbox_bytes: as_u64(lim.get("maxOutboxBytes"))
                .map(|v| v as usize)
                .unwrap_or(defaults.max_outbox_bytes),
            max_blocking_threads: defaults.max_blocking_threads,
            max_concurrent_slow_calls: defaults.max_concurrent_slow_calls,
        };
        let limits = thread_limits(limits, &lim);
        let server = ServerConfig {
            port: as_u64(get(&ws, &["port"])).unwrap_or(0) as u16,
            address: as_string(get(&ws, &["address"])),
            ipv6: as_bool(get(&ws, &["ipv6"])).unwrap_or(true),
            path: as_string(get(&ws, &["path"]))
                .unwrap_or_else(|| "kurento".into())
                .trim_start_matches('/')
                .to_string(),
            secure,
            gc_period: Duration::from_secs(as_u64(get(&res, &["garbageCollectorPeriod"])).unwrap_or(240).max(1)),
            disable_request_cache: as_bool(get(&res, &["disableRequestCache"])).unwrap_or(false),
            access: access_config(&ws, env)?,
            limits,
        };
        let metadata = match main.get("metadata") {
            None | Some(Value::Null) => String::new(),
            Some(Value::Object(m)) if m.is_empty() => String::new(),
            Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        };
        let mut modules = modules;
        merge(&mut modules, env_overrides(env));
        let core = CoreConfig {
            modules,
            metadata,
            max_objects_per_session: as_u64(lim.get("maxObjectsPerSession")).map(|v| v as usize).unwrap_or(100_000),
            max_cpu_sample_ms: as_u64(lim.get("maxCpuSampleMs")).unwrap_or(10_000),
            config_dirs: vec![config_dir.to_path_buf()],
            limits: object_limits(&lim),
            media_access: media_access(&res),
            http_routes: kms_jsonrpc::HttpRoutes::default(),
        };
        let dashboard = dashboard_config(&ws, config_dir, env);
        let cluster = cluster_config(&ms, &server, env)?;
        Ok(Settings { server, core, config_dir: config_dir.to_path_buf(), dashboard, cluster })
    }

    /// Loads the main file and the module directories.
    pub fn load(
        conf_file: &Path,
        modules_config_path: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let main = load_file(conf_file)?;
        let config_dir = conf_file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let dirs: Vec<PathBuf> = match modules_config_path {
            Some(p) => p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect(),
            None => vec![config_dir.join("modules")],
        };
        let tree = load_module_configs(&dirs);
        let modules = tree.get("modules").cloned().unwrap_or(tree);
        let mut settings = Settings::from_values(&main, modules, &config_dir, env)?;
        settings.core.config_dirs = dirs.into_iter().chain(std::iter::once(config_dir)).collect();
        Ok(settings)
    }
}

impl Settings {
    /// The configuration the server would run with, for `--dump-config`:
    /// listener settings and the merged module tree after the `KMS_*`
    /// overrides. Lets an operator (and the container tests) check what a
    /// variable or a mounted file really changed without starting media.
    /// Access tokens are left out: the dump ends up in logs.
    pub fn effective(&self) -> Value {
        let s = &self.server;
        let mut v = serde_json::json!({
            "mediaServer": {
                "net": {"websocket": {
                    "port": s.port,
                    "address": s.address,
                    "ipv6": s.ipv6,
                    "path": s.path,
                    "secure": {"port": s.secure.as_ref().map_or(0, |t| t.port)},
                    "accessTokens": s.access.tokens.len(),
                }},
                "resources": {
                    "garbageCollectorPeriod": s.gc_period.as_secs(),
                    "disableRequestCache": s.disable_request_cache,
                    "mediaRoots": self.core.media_access.media_roots,
                },
            },
            "modules": self.core.modules,
            "configDirs": self.core.config_dirs,
        });
        if let (Some(c), Some(ms)) = (&self.cluster, v.get_mut("mediaServer")) {
            ms["cluster"] = serde_json::json!({
                "redisUrl": redact_url(&c.redis_url),
                "nodeId": c.node_id.as_str(),
                "advertisedAddress": c.advertised_address,
                "heartbeatMs": c.heartbeat.as_millis() as u64,
                "expiryMs": c.expiry.as_millis() as u64,
                "forwardTimeoutMs": c.forward_timeout.as_millis() as u64,
            });
        }
        v
    }
}

/// A Redis URL without its password (the dump ends up in logs).
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(i), Some(at)) if at > i => format!("{}://***@{}", &url[..i], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// `mediaServer.cluster.*` with the `KMS_CLUSTER_*` overrides. Cluster mode
/// is on when a Redis URL is given. The node id defaults to the host name
/// (a Kubernetes pod's name), the advertised address to `<host name>:<ws
/// port>`.
fn cluster_config(
    ms: &Value,
    server: &ServerConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<kms_cluster::ClusterConfig>, SettingsError> {
    use kms_cluster::config::{DEFAULT_EXPIRY, DEFAULT_FORWARD_TIMEOUT, DEFAULT_HEARTBEAT};
    let c = get(ms, &["cluster"]).cloned().unwrap_or(Value::Null);
    let pick = |var: &str, key: &str| env(var).filter(|v| !v.trim().is_empty()).or_else(|| as_string(c.get(key)));
    let Some(redis_url) = pick("KMS_CLUSTER_REDIS_URL", "redisUrl") else { return Ok(None) };
    let host = hostname();
    let node_id = pick("KMS_CLUSTER_NODE_ID", "nodeId").unwrap_or_else(|| host.clone());
    let advertised_address = pick("KMS_CLUSTER_ADVERTISED_ADDRESS", "advertisedAddress")
        .unwrap_or_else(|| format!("{host}:{}", server.port));
    let ms_or = |key: &str, d: Duration| as_u64(c.get(key)).map(Duration::from_millis).unwrap_or(d);
    let config = kms_cluster::ClusterConfig {
        redis_url,
        node_id: kms_cluster::NodeId::new(node_id.trim()),
        advertised_address,
        ws_path: server.path.clone(),
        heartbeat: ms_or("heartbeatMs", DEFAULT_HEARTBEAT),
        expiry: ms_or("expiryMs", DEFAULT_EXPIRY),
        forward_timeout: ms_or("forwardTimeoutMs", DEFAULT_FORWARD_TIMEOUT),
        tokens: server.access.tokens.clone(),
    };
    config.validate().map_err(|e| SettingsError::Invalid(e.to_string()))?;
    Ok(Some(config))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `maxBlockingThreads` and `maxConcurrentSlowCalls`: slow calls must leave
/// threads for quick ones, so their budget stays below the pool's.
/// `mediaServer.resources.mediaRoots` (a list, or one string) and
/// `allowedHosts`; absent keys keep the defaults of [`MediaAccess`].
/// `dashboard: {enabled, assets}` (or `dashboard: true`); a relative
/// `assets` is relative to the config file's directory, as certificates are.
/// `KMS_DASHBOARD` (true/false) and `KMS_DASHBOARD_ASSETS` override them,
/// for images configured by environment.
fn dashboard_config(
    ws: &Value,
    config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> kms_jsonrpc::dashboard::DashboardConfig {
    let mut d = kms_jsonrpc::dashboard::DashboardConfig::default();
    match get(ws, &["dashboard"]) {
        Some(v @ (Value::Bool(_) | Value::String(_))) => d.enabled = as_bool(Some(v)).unwrap_or(false),
        Some(v) => {
            d.enabled = as_bool(v.get("enabled")).unwrap_or(false);
            if let Some(a) = as_string(v.get("assets")) {
                let a = PathBuf::from(a);
                d.assets = if a.is_relative() { config_dir.join(a) } else { a };
            }
        }
        None => {}
    }
    if let Some(on) = env("KMS_DASHBOARD").filter(|v| !v.trim().is_empty()) {
        d.enabled = as_bool(Some(&Value::String(on))).unwrap_or(false);
    }
    if let Some(a) = env("KMS_DASHBOARD_ASSETS").filter(|v| !v.is_empty()) {
        d.assets = PathBuf::from(a);
    }
    d
}

fn media_access(res: &Value) -> MediaAccess {
    fn list(v: Option<&Value>) -> Option<Vec<String>> {
        match v? {
            Value::String(s) => Some(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
            Value::Array(a) => Some(a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()),
            _ => None,
        }
    }
    let mut m = MediaAccess::default();
    if let Some(roots) = list(res.get("mediaRoots")) {
        m.media_roots = roots.into_iter().map(PathBuf::from).collect();
    }
    m.allowed_hosts = list(res.get("allowedHosts"));
    m
}

fn thread_limits(mut limits: Limits, lim: &Value) -> Limits {
    let threads = as_u64(lim.get("maxBlockingThreads")).map(|v| (v as usize).max(1));
    let slow = as_u64(lim.get("maxConcurrentSlowCalls")).map(|v| (v as usize).max(1));
    if let Some(t) = threads {
        limits.max_blocking_threads = t;
        limits.max_concurrent_slow_calls = (t / 2).max(1);
    }
    if let Some(s) = slow {
        limits.max_concurrent_slow_calls = s;
    }
    let most = limits.max_blocking_threads.saturating_sub(1).max(1);
    if limits.max_concurrent_slow_calls > most {
        tracing::warn!(
            max_concurrent_slow_calls = limits.max_concurrent_slow_calls,
            max_blocking_threads = limits.max_blocking_threads,
            "maxConcurrentSlowCalls must stay below maxBlockingThreads; using {most}"
        );
        limits.max_concurrent_slow_calls = most;
    }
    limits
}

/// Tokens and tenants (`accessToken`, `accessTokens`, `KMS_ACCESS_TOKEN`,
/// `KMS_ACCESS_TOKENS=token:tenant,…`), `adminTenants`, `allowedOrigins`.
/// The environment replaces the file's value of the same setting.
fn access_config(ws: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<AccessConfig, SettingsError> {
    let invalid = |m: String| SettingsError::Invalid(m);
    let mut tokens: Vec<(String, TenantId)> = vec![];
    let single = env("KMS_ACCESS_TOKEN").filter(|t| !t.is_empty()).or_else(|| as_string(get(ws, &["accessToken"])));
    if let Some(t) = single {
        tokens.push((t, TenantId::default()));
    }
    match env("KMS_ACCESS_TOKENS").filter(|t| !t.trim().is_empty()) {
        Some(list) => {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (token, tenant) = entry
                    .rsplit_once(':')
                    .ok_or_else(|| invalid("KMS_ACCESS_TOKENS entries are token:tenant".into()))?;
                tokens.push((token.trim().to_owned(), TenantId::new(tenant.trim())));
            }
        }
        None => match get(ws, &["accessTokens"]) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (token, tenant) in map {
                    let tenant = as_string(Some(tenant)).ok_or_else(|| {
                        invalid(format!("accessTokens: the tenant of a token must be a string, got {tenant}"))
                    })?;
                    tokens.push((token.clone(), TenantId::new(&tenant)));
                }
            }
            Some(other) => return Err(invalid(format!("accessTokens must map tokens to tenant names, got {other}"))),
        },
    }
    for (i, (token, tenant)) in tokens.iter().enumerate() {
        if token.is_empty() || tenant.as_str().is_empty() {
            return Err(invalid("access tokens and tenant names must not be empty".into()));
        }
        if tokens[..i].iter().any(|(t, other)| t == token && other != tenant) {
            return Err(invalid(format!(
                "one access token is given to two tenants ({} and {tenant})",
                tokens[..i].iter().find(|(t, _)| t == token).map_or("?", |(_, o)| o.as_str())
            )));
        }
    }
    let strings = |key: &str| -> Result<Option<Vec<String>>, SettingsError> {
        match get(ws, &[key]) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| as_string(Some(v)).ok_or_else(|| invalid(format!("{key} must be a list of strings"))))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid(format!("{key} must be a list of strings"))),
        }
    };
    let admin_tenants = strings("adminTenants")?.unwrap_or_default().iter().map(|t| TenantId::new(t)).collect();
    Ok(AccessConfig { tokens, admin_tenants, allowed_origins: strings("allowedOrigins")? })
}

/// `mediaServer.resources.limits.*` bounds on per-object growth.
fn object_limits(lim: &Value) -> kms_core::config::ObjectLimits {
    let d = kms_core::config::ObjectLimits::default();
    let get = |k: &str, v: usize| as_u64(lim.get(k)).map(|x| x as usize).unwrap_or(v);
    kms_core::config::ObjectLimits {
        max_subscriptions_per_object: get("maxSubscriptionsPerObject", d.max_subscriptions_per_object),
        max_tags_per_object: get("maxTagsPerObject", d.max_tags_per_object),
        max_tag_bytes: get("maxTagBytes", d.max_tag_bytes),
        max_queued_ice_candidates: get("maxQueuedIceCandidates", d.max_queued_ice_candidates),
        max_data_channels: get("maxDataChannels", d.max_data_channels),
        max_media_descriptions: get("maxMediaDescriptions", d.max_media_descriptions),
        max_slow_calls_per_session: get("maxSlowCallsPerSession", d.max_slow_calls_per_session),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kms-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn loads_main_json_with_comment_keys_and_module_ini_case_sensitive() {
        let d = tmpdir("a");
        std::fs::write(
            d.join("kurento.conf.json"),
            r#"{"//": "comment", "metadata": {"a": 1}, "mediaServer": {"resources": {"garbageCollectorPeriod": 7},
               "net": {"websocket": {"port": 9999, "path": "/kms"}}}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(d.join("modules/kurento")).unwrap();
        std::fs::write(
            d.join("modules/kurento/BaseRtpEndpoint.conf.ini"),
            "minPort=40000\n;maxPort=1\nmaxPort=50000\n",
        )
        .unwrap();
        std::fs::write(d.join("modules/kurento/MediaElement.conf.ini"), "encoderBitrate=123000\n").unwrap();
        let s = Settings::load(&d.join("kurento.conf.json"), None, &|_| None).unwrap();
        assert_eq!(s.server.port, 9999);
        assert_eq!(s.server.path, "kms");
        assert_eq!(s.server.gc_period, Duration::from_secs(7));
        assert_eq!(s.core.module_i64("kurento", "BaseRtpEndpoint", "minPort"), Some(40000));
        assert_eq!(s.core.module_i64("kurento", "BaseRtpEndpoint", "maxPort"), Some(50000));
        assert_eq!(s.core.module_i64("kurento", "MediaElement", "encoderBitrate"), Some(123000));
        assert!(s.core.metadata.contains("\"a\": 1"));
    }

    #[test]
    fn cluster_mode_is_off_by_default_and_set_by_file_or_environment() {
        let d = tmpdir("cluster");
        let conf = d.join("kurento.conf.json");
        std::fs::write(&conf, r#"{"mediaServer": {"net": {"websocket": {"port": 8888}}}}"#).unwrap();
        let s = Settings::load(&conf, None, &|_| None).unwrap();
        assert!(s.cluster.is_none());
        assert!(s.effective()["mediaServer"].get("cluster").is_none());
        std::fs::write(
            &conf,
            r#"{"mediaServer": {"net": {"websocket": {"port": 8888}}, "cluster": {"redisUrl": "redis://:pw@r:6379",
               "nodeId": "file-node", "advertisedAddress": "10.0.0.1:8888", "expiryMs": 3000, "heartbeatMs": 500}}}"#,
        )
        .unwrap();
        let s = Settings::load(&conf, None, &|_| None).unwrap();
        let c = s.cluster.as_ref().unwrap();
        assert_eq!(c.node_id.as_str(), "file-node");
        assert_eq!(c.expiry, Duration::from_millis(3000));
        let dump = s.effective();
        assert_eq!(dump["mediaServer"]["cluster"]["redisUrl"], "redis://***@r:6379");
        assert_eq!(dump["mediaServer"]["cluster"]["advertisedAddress"], "10.0.0.1:8888");
        let env = |k: &str| match k {
            "KMS_CLUSTER_REDIS_URL" => Some("redis://127.0.0.1:7000".to_owned()),
            "KMS_CLUSTER_NODE_ID" => Some("env-node".to_owned()),
            "KMS_CLUSTER_ADVERTISED_ADDRESS" => Some("127.0.0.1:9000".to_owned()),
            _ => None,
        };
        let s = Settings::load(&conf, None, &env).unwrap();
        let dump = s.effective();
        assert_eq!(dump["mediaServer"]["cluster"]["redisUrl"], "redis://127.0.0.1:7000");
        assert_eq!(dump["mediaServer"]["cluster"]["nodeId"], "env-node");
        assert_eq!(dump["mediaServer"]["cluster"]["advertisedAddress"], "127.0.0.1:9000");
        std::fs::write(&conf, r#"{"mediaServer": {"cluster": {"redisUrl": "redis://r", "expiryMs": 100}}}"#).unwrap();
        let e = Settings::load(&conf, None, &|_| None).unwrap_err();
        assert!(e.to_string().contains("expiryMs"), "{e}");
    }

    #[test]
    fn effective_configuration_shows_files_and_overrides() {
        let env = |k: &str| (k == "KMS_TURN_URL").then(|| "u:p@10.0.0.2:3478?transport=tcp".to_string());
        let modules = serde_json::json!({"kurento": {"MediaElement": {"encoderBitrate": "500000"}}});
        let main = serde_json::json!({"mediaServer": {"net": {"websocket": {"port": 8899, "accessToken": "secret"}}}});
        let s = Settings::from_values(&main, modules, Path::new("/tmp"), &env).unwrap();
        let d = s.effective();
        assert_eq!(d["mediaServer"]["net"]["websocket"]["port"], 8899);
        assert_eq!(d["modules"]["kurento"]["MediaElement"]["encoderBitrate"], "500000");
        assert_eq!(d["modules"]["kurento"]["WebRtcEndpoint"]["turnURL"], "u:p@10.0.0.2:3478?transport=tcp");
        assert!(!d.to_string().contains("secret"), "tokens never dumped");
    }

    #[test]
    fn kms_env_overrides_module_settings() {
        let env = |k: &str| match k {
            "KMS_MIN_PORT" => Some("41000".to_string()),
            "KMS_STUN_IP" => Some("10.0.0.1".to_string()),
            "KMS_STUN_PORT" => Some("3479".to_string()),
            _ => None,
        };
        let s = Settings::from_values(&serde_json::json!({}), serde_json::json!({}), Path::new("/tmp"), &env).unwrap();
        assert_eq!(s.core.module_i64("kurento", "BaseRtpEndpoint", "minPort"), Some(41000));
        assert_eq!(s.core.module_str("kurento", "WebRtcEndpoint", "stunServerAddress").as_deref(), Some("10.0.0.1"));
        assert_eq!(s.server.port, 0, "absent port disables ws:// (spec §11.1)");
    }

    #[test]
    fn media_roots_and_allowed_hosts_are_read_with_defaults() {
        let s =
            Settings::from_values(&serde_json::json!({}), serde_json::json!({}), Path::new("/"), &|_| None).unwrap();
        assert_eq!(s.core.media_access.media_roots, vec![PathBuf::from("/var/lib/kurento")]);
        assert_eq!(s.core.media_access.allowed_hosts, None);
        let main = serde_json::json!({"mediaServer": {"resources": {
            "mediaRoots": ["/srv/media", "/data"], "allowedHosts": "cdn.example.com, *.cams.example.com"
        }}});
        let s = Settings::from_values(&main, serde_json::json!({}), Path::new("/"), &|_| None).unwrap();
        assert_eq!(s.core.media_access.media_roots, vec![PathBuf::from("/srv/media"), PathBuf::from("/data")]);
        assert_eq!(
            s.core.media_access.allowed_hosts,
            Some(vec!["cdn.example.com".to_string(), "*.cams.example.com".to_string()])
        );
    }

    #[test]
    fn dashboard_is_off_by_default_and_its_assets_resolve_against_the_config_dir() {
        let load = |ws: serde_json::Value| {
            let main = serde_json::json!({"mediaServer": {"net": {"websocket": ws}}});
            Settings::from_values(&main, Value::Null, Path::new("/etc/kms"), &|_| None).unwrap().dashboard
        };
        let off = load(serde_json::json!({}));
        assert!(!off.enabled);
        assert_eq!(off.assets, PathBuf::from(kms_jsonrpc::dashboard::DEFAULT_ASSETS));
        assert!(load(serde_json::json!({"dashboard": true})).enabled);
        let d = load(serde_json::json!({"dashboard": {"enabled": true, "assets": "dash"}}));
        assert!(d.enabled);
        assert_eq!(d.assets, PathBuf::from("/etc/kms/dash"));
        assert!(!load(serde_json::json!({"dashboard": {"assets": "/x"}})).enabled);
        let main = serde_json::json!({"mediaServer": {"net": {"websocket": {"dashboard": false}}}});
        let env = |k: &str| match k {
            "KMS_DASHBOARD" => Some("true".to_owned()),
            "KMS_DASHBOARD_ASSETS" => Some("/opt/kms/dashboard".to_owned()),
            _ => None,
        };
        let d = Settings::from_values(&main, Value::Null, Path::new("/etc/kms"), &env).unwrap().dashboard;
        assert!(d.enabled);
        assert_eq!(d.assets, PathBuf::from("/opt/kms/dashboard"));
    }

    #[test]
    fn more_than_one_transport_is_rejected() {
        let main = serde_json::json!({"mediaServer": {"net": {"websocket": {}, "other": {}}}});
        assert!(Settings::from_values(&main, serde_json::json!({}), Path::new("/"), &|_| None).is_err());
    }

    #[test]
    fn access_tokens_map_to_tenants_from_file_or_environment() {
        let main = serde_json::json!({"mediaServer": {"net": {"websocket": {
            "accessToken": "solo",
            "accessTokens": {"ta": "alpha", "tb": "beta"},
            "adminTenants": ["beta"],
            "allowedOrigins": ["https://app.example.com"]
        }}}});
        let s = Settings::from_values(&main, serde_json::json!({}), Path::new("/"), &|_| None).unwrap();
        let a = &s.server.access;
        let mut tokens = a.tokens.clone();
        tokens.sort();
        assert_eq!(
            tokens,
            vec![
                ("solo".into(), TenantId::default()),
                ("ta".into(), TenantId::new("alpha")),
                ("tb".into(), TenantId::new("beta"))
            ]
        );
        assert_eq!(a.admin_tenants, vec![TenantId::new("beta")]);
        assert_eq!(a.allowed_origins.as_deref(), Some(&["https://app.example.com".to_string()][..]));
        // The environment replaces the file's map.
        let env = |k: &str| (k == "KMS_ACCESS_TOKENS").then(|| "x:y:gamma, z:delta".to_string());
        let s = Settings::from_values(&main, serde_json::json!({}), Path::new("/"), &env).unwrap();
        let mut tokens = s.server.access.tokens.clone();
        tokens.sort();
        assert_eq!(
            tokens,
            vec![
                ("solo".into(), TenantId::default()),
                ("x:y".into(), TenantId::new("gamma")),
                ("z".into(), TenantId::new("delta"))
            ]
        );
        let bad = serde_json::json!({"mediaServer": {"net": {"websocket": {"accessTokens": ["t"]}}}});
        assert!(Settings::from_values(&bad, serde_json::json!({}), Path::new("/"), &|_| None).is_err());
        let clash = |k: &str| (k == "KMS_ACCESS_TOKENS").then(|| "t:a,t:b".to_string());
        assert!(Settings::from_values(&serde_json::json!({}), serde_json::json!({}), Path::new("/"), &clash).is_err());
    }

    #[test]
    fn outbox_and_thread_limits() {
        let main = serde_json::json!({"mediaServer": {"resources": {"limits": {
            "maxOutboxBytes": 1024, "maxBlockingThreads": 10, "maxTransactionWaitMs": 250
        }}}});
        let s = Settings::from_values(&main, serde_json::json!({}), Path::new("/"), &|_| None).unwrap();
        let l = &s.server.limits;
        assert_eq!(l.max_transaction_wait, Duration::from_millis(250));
        assert_eq!((l.max_outbox_bytes, l.max_blocking_threads, l.max_concurrent_slow_calls), (1024, 10, 5));
        let main = serde_json::json!({"mediaServer": {"resources": {"limits": {
            "maxBlockingThreads": 4, "maxConcurrentSlowCalls": 9
        }}}});
        let s = Settings::from_values(&main, serde_json::json!({}), Path::new("/"), &|_| None).unwrap();
        assert_eq!(s.server.limits.max_concurrent_slow_calls, 3, "slow calls leave a thread to quick ones");
        let d =
            Settings::from_values(&serde_json::json!({}), serde_json::json!({}), Path::new("/"), &|_| None).unwrap();
        assert_eq!(d.server.limits, Limits::default());
    }
}
