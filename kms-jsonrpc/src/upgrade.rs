//! The HTTP side of the listener: which requests get upgraded (spec §1.1).
//!
//! * Any path is upgraded; the path is checked afterwards and a mismatch is
//!   answered with close code 1002 `Invalid path` (as upstream).
//! * The Docker healthcheck request (`Connection: Upgrade`,
//!   `Upgrade: websocket`, no `Sec-WebSocket-Key`) gets HTTP 500 (§11.6).
//! * Extensions: `allowedOrigins` (403), access tokens choosing the tenant
//!   (401), connection limit (503). Refusals are logged without the token,
//!   rate-limited per source address ([`crate::refusal_log`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;

use crate::config::AccessConfig;
use crate::connection;
use crate::listener::NoDelayListener;
use crate::refusal_log::{Decision, Source};
use crate::server::ServerState;
use crate::tenant::Tenant;
use crate::tls::TlsListener;

/// The peer of an HTTP request, for per-address rate limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, NoDelayListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, NoDelayListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Why an upgrade was refused; carries nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoToken,
    WrongToken,
    Origin(String),
}

impl Refusal {
    pub(crate) fn response(&self) -> Response {
        match self {
            Refusal::NoToken | Refusal::WrongToken => {
                (StatusCode::UNAUTHORIZED, "valid access token required").into_response()
            }
            Refusal::Origin(_) => (StatusCode::FORBIDDEN, "origin not allowed").into_response(),
        }
    }
}

pub(crate) async fn handle(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    if is_healthcheck(&parts) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let tenant = match admit(&parts, &state.access) {
        Ok(t) => t,
        Err(refusal) => {
            state.metrics.rpc.upgrade_refused();
            log_refusal(&state, peer, &refusal);
            return refusal.response();
        }
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = state.hub.try_reserve_connection() else {
        state.metrics.rpc.upgrade_refused();
        tracing::warn!(max = state.hub.limits().max_connections, "connection limit reached; upgrade refused");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let path_ok = path_matches(parts.uri.path(), &state.path);
    if !path_ok {
        tracing::warn!(path = parts.uri.path(), expected = %state.path, "invalid WebSocket path");
    }
    ws.max_message_size(state.ws_max_message)
        .max_frame_size(state.ws_max_message)
        .on_upgrade(move |socket| connection::serve(socket, state, path_ok, slot, tenant))
}

/// `allowedOrigins`: a browser request from another origin is refused
/// (403). Also applied to media URLs (`http_routes`).
pub(crate) fn origin_refusal(parts: &Parts, access: &AccessConfig) -> Option<Response> {
    check_origin(parts, access).err().map(|r| r.response())
}

fn check_origin(parts: &Parts, access: &AccessConfig) -> Result<(), Refusal> {
    if let Some(allowed) = &access.allowed_origins
        && let Some(origin) = parts.headers.get(header::ORIGIN)
    {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        let normalized = normalize_origin(&origin);
        if !allowed.iter().any(|a| normalize_origin(a) == normalized) {
            return Err(Refusal::Origin(origin.chars().take(200).collect()));
        }
    }
    Ok(())
}

/// The origin check, then the tenant of the request's token.
pub(crate) fn admit(parts: &Parts, access: &AccessConfig) -> Result<Tenant, Refusal> {
    check_origin(parts, access)?;
    if access.tokens.is_empty() {
        return Ok(Tenant::default());
    }
    let given = given_tokens(parts);
    if given.is_empty() {
        return Err(Refusal::NoToken);
    }
    // Every configured token is compared, whichever matches, so timing
    // tells nothing about which tokens exist.
    let mut found = None;
    for (token, tenant) in &access.tokens {
        let hit = given.iter().fold(false, |acc, g| acc | constant_time_eq(g.as_bytes(), token.as_bytes()));
        if hit && found.is_none() {
            found = Some(tenant);
        }
    }
    found.map(|t| access.tenant(t)).ok_or(Refusal::WrongToken)
}

/// Scheme and host are case-insensitive; a trailing `/` is tolerated in
/// the configuration.
fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn log_refusal(state: &ServerState, peer: SocketAddr, refusal: &Refusal) {
    let (source, decision) = state.refusals.lock().record(peer.ip(), Instant::now());
    let Decision::Log { earlier } = decision else { return };
    let source = match source {
        Source::Addr(a) => a.to_string(),
        Source::Untracked => "(many addresses)".to_owned(),
    };
    match refusal {
        Refusal::NoToken => {
            tracing::warn!(%source, earlier, "WebSocket upgrade refused: no access token (401)")
        }
        Refusal::WrongToken => {
            tracing::warn!(%source, earlier, "WebSocket upgrade refused: unknown access token (401)")
        }
        Refusal::Origin(origin) => {
            tracing::warn!(%source, earlier, ?origin, "WebSocket upgrade refused: origin not allowed (403)")
        }
    }
}

/// §1.1 / §11.6: an upgrade request without the WebSocket key, as sent by
/// `healthchecker.sh`.
fn is_healthcheck(parts: &Parts) -> bool {
    let header_has = |name: header::HeaderName, needle: &str| {
        parts.headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|s| s.to_ascii_lowercase().contains(needle)))
    };
    parts.method == Method::GET
        && parts.version <= Version::HTTP_11
        && header_has(header::CONNECTION, "upgrade")
        && header_has(header::UPGRADE, "websocket")
        && !parts.headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Strip one leading `/` from both sides; the query is not part of `path`.
fn path_matches(request_path: &str, configured: &str) -> bool {
    let strip = |p: &str| p.strip_prefix('/').unwrap_or(p).to_owned();
    strip(request_path) == strip(configured)
}

/// `?access_token=` and `Authorization: Bearer`, whichever are present.
fn given_tokens(parts: &Parts) -> Vec<String> {
    let from_query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(q)| q.get("access_token").cloned());
    let from_header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, value) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| value.trim().to_owned())
    });
    [from_query, from_header].into_iter().flatten().collect()
}

/// Comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = HttpRequest::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn path_matching_strips_one_slash() {
        assert!(path_matches("/kurento", "kurento"));
        assert!(path_matches("/kurento", "/kurento"));
        assert!(!path_matches("/other", "kurento"));
        assert!(!path_matches("//kurento", "kurento"));
        assert!(!path_matches("/", "kurento"));
    }

    #[test]
    fn healthcheck_detection() {
        let hc = parts("/kurento", &[("Connection", "Upgrade"), ("Upgrade", "websocket")]);
        assert!(is_healthcheck(&hc));
        let real = parts(
            "/kurento",
            &[
                ("Connection", "keep-alive, Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        );
        assert!(!is_healthcheck(&real));
        assert!(!is_healthcheck(&parts("/kurento", &[])));
    }

    #[test]
    fn access_token_from_query_or_bearer_header() {
        let single = AccessConfig::single_token("s3cret");
        let t = admit(&parts("/kurento?access_token=s3cr%65t", &[]), &single).unwrap();
        assert_eq!(t, Tenant::default());
        admit(&parts("/kurento", &[("Authorization", "Bearer s3cret")]), &single).unwrap();
        let nope = admit(&parts("/kurento?access_token=nope", &[]), &single);
        assert_eq!(nope, Err(Refusal::WrongToken));
        let basic = admit(&parts("/kurento", &[("Authorization", "Basic s3cret")]), &single);
        assert_eq!(basic, Err(Refusal::NoToken));
        assert_eq!(admit(&parts("/kurento", &[]), &single), Err(Refusal::NoToken));
        // No tokens configured: everyone, in the default tenant.
        assert_eq!(admit(&parts("/kurento", &[]), &AccessConfig::default()), Ok(Tenant::default()));
    }

    #[test]
    fn tokens_choose_the_tenant_and_admin_is_configured() {
        use crate::tenant::TenantId;
        let access = AccessConfig {
            tokens: vec![("ta".into(), TenantId::new("a")), ("tb".into(), TenantId::new("b"))],
            admin_tenants: vec![TenantId::new("b")],
            allowed_origins: None,
        };
        let a = admit(&parts("/kurento?access_token=ta", &[]), &access).unwrap();
        assert_eq!(a, Tenant { id: TenantId::new("a"), admin: false });
        let b = admit(&parts("/kurento", &[("Authorization", "Bearer tb")]), &access).unwrap();
        assert_eq!(b, Tenant { id: TenantId::new("b"), admin: true });
        assert_eq!(admit(&parts("/kurento?access_token=tc", &[]), &access), Err(Refusal::WrongToken));
    }

    #[test]
    fn allowed_origins_refuse_foreign_browser_origins_only() {
        let access =
            AccessConfig { allowed_origins: Some(vec!["https://App.example.com/".into()]), ..AccessConfig::default() };
        admit(&parts("/kurento", &[("Origin", "https://app.example.com")]), &access).unwrap();
        // Non-browser clients send no Origin.
        admit(&parts("/kurento", &[]), &access).unwrap();
        let r = admit(&parts("/kurento", &[("Origin", "https://evil.example.com")]), &access);
        assert_eq!(r, Err(Refusal::Origin("https://evil.example.com".into())));
        assert_eq!(r.unwrap_err().response().status(), StatusCode::FORBIDDEN);
    }
}
