//! The task that owns the WebSocket: writes queued requests, routes
//! answers and events, pings, and reconnects as the official clients do
//! (spec §3.3): on socket loss, reconnect with backoff and send
//! `connect {sessionId}`; success resumes the session (subscriptions
//! survive on the server, pending requests are replayed with their ids so
//! the duplicate cache of spec §3.4 answers them without re-running);
//! `40007` means a new server, reported to the application, and a fresh
//! session is opened.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{Cmd, ConnectionEvent, State};
use crate::error::ServerError;
use crate::protocol::{Incoming, encode_request, parse, session_of};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// INVALID_SESSION: the server does not know the session (spec §5.2).
const INVALID_SESSION: i64 = 40007;

pub(crate) enum HandshakeError {
    Server(ServerError),
    Io(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Server(e) => write!(f, "{e}"),
            HandshakeError::Io(m) => f.write_str(m),
        }
    }
}

/// Opens the WebSocket, bounded by the request timeout so an unreachable
/// host does not stall reconnection forever.
pub(crate) async fn open(state: &State) -> Result<Ws, Box<tungstenite::Error>> {
    let t = state.config.request_timeout;
    match tokio::time::timeout(t, tokio_tungstenite::connect_async(state.url.as_str())).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(Box::new(e)),
        Err(_) => Err(Box::new(tungstenite::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no WebSocket handshake within {t:?}"),
        )))),
    }
}

/// Sends `connect` (with `sessionId` to resume one) and waits for its
/// answer, dispatching events that arrive meanwhile. On success the session
/// and server ids are recorded; returns the session id.
pub(crate) async fn handshake(ws: &mut Ws, state: &State, resume: Option<&str>) -> Result<String, HandshakeError> {
    let id = state.next_id();
    let mut params = Map::new();
    if let Some(s) = resume {
        params.insert("sessionId".into(), Value::String(s.to_string()));
    }
    ws.send(Message::text(encode_request(id, "connect", &params, None)))
        .await
        .map_err(|e| HandshakeError::Io(e.to_string()))?;
    let deadline = Instant::now() + state.config.request_timeout;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(HandshakeError::Io("no answer to connect".into())),
            Ok(None) => return Err(HandshakeError::Io("socket closed during connect".into())),
            Ok(Some(Err(e))) => return Err(HandshakeError::Io(e.to_string())),
            Ok(Some(Ok(m))) => m,
        };
        let Some(text) = text_of(msg) else { continue };
        match parse(&text) {
            Incoming::Response { id: rid, result } if rid == id => {
                let r = result.map_err(HandshakeError::Server)?;
                let session = session_of(&r)
                    .or(resume)
                    .ok_or_else(|| HandshakeError::Io("connect answer without sessionId".into()))?
                    .to_string();
                let server_id = r.get("serverId").and_then(Value::as_str).map(str::to_string);
                state.set_session(Some(session.clone()), server_id);
                return Ok(session);
            }
            Incoming::Event { object, event_type, data } => state.dispatch_event(&object, &event_type, &data),
            other => tracing::debug!(?other, "ignored during connect"),
        }
    }
}

fn text_of(msg: Message) -> Option<String> {
    match msg {
        Message::Text(t) => Some(t.to_string()),
        // The server sends text; binary JSON is accepted all the same.
        Message::Binary(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

enum Outcome {
    Closed,
    Lost(String),
}

/// Runs until the client is closed, every handle is dropped, or
/// reconnection gives up.
pub(crate) async fn run(state: Arc<State>, mut cmds: mpsc::UnboundedReceiver<Cmd>, ws: Ws) {
    let mut ws = ws;
    let mut generation = 1u64;
    loop {
        match serve(&state, &mut cmds, ws, generation).await {
            Outcome::Closed => break,
            Outcome::Lost(reason) => {
                tracing::warn!(%reason, url = %state.url, "connection lost; reconnecting");
                state.emit(ConnectionEvent::Disconnected { reason });
                match reconnect(&state, &mut cmds).await {
                    Some(next) => {
                        ws = next;
                        generation += 1;
                    }
                    None => break,
                }
            }
        }
    }
    tracing::info!(url = %state.url, "client closed");
    state.shut_down();
}

/// Serves one socket until it is lost or the client closes.
async fn serve(state: &State, cmds: &mut mpsc::UnboundedReceiver<Cmd>, ws: Ws, generation: u64) -> Outcome {
    let (mut sink, mut stream) = ws.split();
    let mut ping = state.config.ping_interval.map(|p| tokio::time::interval_at(Instant::now() + p, p));
    let mut ping_outstanding: Option<u64> = None;
    if let Err(e) = flush(state, &mut sink, generation).await {
        return Outcome::Lost(e);
    }
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None | Some(Cmd::Close) => {
                    let _ = sink.close().await;
                    return Outcome::Closed;
                }
                Some(Cmd::Flush) => {
                    if let Err(e) = flush(state, &mut sink, generation).await {
                        return Outcome::Lost(e);
                    }
                }
                Some(Cmd::Reconnect) => {
                    let _ = sink.close().await;
                    return Outcome::Lost("reconnection requested".into());
                }
            },
            msg = stream.next() => match msg {
                None => return Outcome::Lost("socket closed".into()),
                Some(Err(e)) => return Outcome::Lost(e.to_string()),
                Some(Ok(Message::Close(frame))) => return Outcome::Lost(format!("closed by server: {frame:?}")),
                Some(Ok(m)) => {
                    let Some(text) = text_of(m) else { continue };
                    tracing::trace!(%text, "received");
                    match parse(&text) {
                        Incoming::Response { id, .. } if Some(id) == ping_outstanding => ping_outstanding = None,
                        Incoming::Response { id, result } => state.complete(id, result),
                        Incoming::Event { object, event_type, data } => state.dispatch_event(&object, &event_type, &data),
                        Incoming::Ignored(why) => tracing::debug!(%why, "frame ignored"),
                    }
                }
            },
            _ = async {
                match ping.as_mut() {
                    Some(p) => { p.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                if ping_outstanding.is_some() {
                    return Outcome::Lost("ping unanswered".into());
                }
                let id = state.next_id();
                ping_outstanding = Some(id);
                let text = encode_request(id, "ping", &Map::new(), state.session_id().as_deref());
                if let Err(e) = sink.send(Message::text(text)).await {
                    return Outcome::Lost(e.to_string());
                }
            }
        }
    }
}

/// Writes every request not yet written to this connection, in id order.
async fn flush<S>(state: &State, sink: &mut S, generation: u64) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let unsent = state.take_unsent(generation);
    if unsent.is_empty() {
        return Ok(());
    }
    let session = state.session_id();
    for (id, method, params) in unsent {
        let text = encode_request(id, &method, &params, session.as_deref());
        tracing::trace!(%text, "sending");
        sink.feed(Message::text(text)).await.map_err(|e| e.to_string())?;
    }
    sink.flush().await.map_err(|e| e.to_string())
}

/// Reconnects with doubling backoff. `None` when the client was closed or
/// the attempts ran out.
async fn reconnect(state: &State, cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> Option<Ws> {
    let cfg = &state.config;
    let mut delay = cfg.reconnect_min;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        if cfg.max_reconnect_attempts.is_some_and(|max| attempt > max) {
            tracing::warn!(attempts = attempt - 1, "giving up reconnecting");
            return None;
        }
        if !wait(delay, cmds).await {
            return None;
        }
        delay = (delay * 2).min(cfg.reconnect_max);
        let mut ws = match open(state).await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(attempt, error = %e, "reconnection attempt failed");
                continue;
            }
        };
        let old = state.session_id();
        match handshake(&mut ws, state, old.as_deref()).await {
            Ok(session_id) => {
                tracing::info!(%session_id, attempt, "reconnected; session resumed");
                state.emit(ConnectionEvent::Reconnected { session_id });
                return Some(ws);
            }
            Err(HandshakeError::Server(e)) if e.code == INVALID_SESSION => {
                tracing::warn!(old = ?old, "server does not know the session: new server");
                state.session_lost();
                match handshake(&mut ws, state, None).await {
                    Ok(session_id) => {
                        let server_id = state.server_id();
                        state.emit(ConnectionEvent::NewServer { session_id, server_id });
                        return Some(ws);
                    }
                    Err(e) => tracing::debug!(attempt, error = %e, "new session failed"),
                }
            }
            Err(e) => tracing::debug!(attempt, error = %e, "reconnection handshake failed"),
        }
    }
}

/// Sleeps `d`, still honouring `Close` (and the last handle going away).
/// Requests queued meanwhile stay pending and are written after reconnecting.
async fn wait(d: Duration, cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> bool {
    let deadline = Instant::now() + d;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return true,
            cmd = cmds.recv() => match cmd {
                None | Some(Cmd::Close) => return false,
                Some(Cmd::Flush | Cmd::Reconnect) => {}
            },
        }
    }
}
