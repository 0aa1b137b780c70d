//! The HTTP side of the listener: which requests get upgraded (spec §1.1).
//!
//! * Any path is upgraded; the path is checked afterwards and a mismatch is
//!   answered with close code 1002 `Invalid path` (as upstream).
//! * The Docker healthcheck request (`Connection: Upgrade`,
//!   `Upgrade: websocket`, no `Sec-WebSocket-Key`) gets HTTP 500 (§11.6).
//! * Extensions: optional access token (401), connection limit (503).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};

use crate::connection;
use crate::server::ServerState;

pub(crate) async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    if is_healthcheck(&parts) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if let Some(token) = &state.access_token
        && !token_matches(&parts, token)
    {
        tracing::info!(uri = %parts.uri, "WebSocket upgrade without a valid access token");
        return (StatusCode::UNAUTHORIZED, "access token required").into_response();
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = state.hub.try_reserve_connection() else {
        tracing::warn!(max = state.hub.limits().max_connections, "connection limit reached; upgrade refused");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let path_ok = path_matches(parts.uri.path(), &state.path);
    if !path_ok {
        tracing::warn!(path = parts.uri.path(), expected = %state.path, "invalid WebSocket path");
    }
    ws.max_message_size(state.ws_max_message)
        .max_frame_size(state.ws_max_message)
        .on_upgrade(move |socket| connection::serve(socket, state, path_ok, slot))
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

fn token_matches(parts: &Parts, token: &str) -> bool {
    let from_query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(q)| q.get("access_token").cloned());
    let from_header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, value) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| value.trim().to_owned())
    });
    [from_query, from_header].into_iter().flatten().any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
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
        assert!(token_matches(&parts("/kurento?access_token=s3cr%65t", &[]), "s3cret"));
        assert!(token_matches(&parts("/kurento", &[("Authorization", "Bearer s3cret")]), "s3cret"));
        assert!(!token_matches(&parts("/kurento?access_token=nope", &[]), "s3cret"));
        assert!(!token_matches(&parts("/kurento", &[("Authorization", "Basic s3cret")]), "s3cret"));
        assert!(!token_matches(&parts("/kurento", &[]), "s3cret"));
    }
}
