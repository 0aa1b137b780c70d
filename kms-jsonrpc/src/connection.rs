//! One upgraded WebSocket (spec §1.2): requests are processed strictly in
//! order; backend calls run on the blocking pool so a slow call only delays
//! its own connection; one writer task drains the outbox that both
//! responses and events ([`crate::Notifier`]) feed.
//!
//! Bounds that live here:
//! * the outbox is bounded in bytes (`maxOutboxBytes`): a peer that stops
//!   reading is closed with 1008, its session survives (§3.2);
//! * calls that wait ([`crate::MediaBackend::is_slow`]) take a permit of the
//!   server-wide `maxConcurrentSlowCalls` before they take a thread; the
//!   permit is awaited without a thread;
//! * `getUsedCpu`-like calls ([`crate::Invoked::Later`]) sleep on the async
//!   timer, not on a pool thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

use crate::codec;
use crate::dispatch::{Executed, Reply, Step};
use crate::error::{RpcError, codes};
use crate::outbox::{Outbound, Outbox, OutboxReceiver, OverflowSignal, outbox};
use crate::server::ServerState;
use crate::session_hub::ConnectionSlot;
use crate::session_table::ConnectionId;
use crate::tenant::Tenant;

/// RFC 6455 close codes used here.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// How long to wait for the peer's close frame after sending ours.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);
/// After an outbox overflow, how long the close frame may wait behind the
/// data already in the socket buffers (the peer has to read them first).
const OVERFLOW_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Why a connection's read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    PeerGone,
    Stopping,
    Overflow,
}

/// The two reasons to stop serving a connection from our side.
struct Ending {
    stop: watch::Receiver<bool>,
    overflow: OverflowSignal,
}

impl Ending {
    async fn wait(&mut self) -> End {
        tokio::select! {
            _ = self.stop.wait_for(|s| *s) => End::Stopping,
            _ = self.overflow.overflowed() => End::Overflow,
        }
    }
}

pub(crate) async fn serve(
    socket: WebSocket,
    state: Arc<ServerState>,
    path_ok: bool,
    slot: ConnectionSlot,
    tenant: Tenant,
) {
    let _slot = slot;
    let (mut sink, mut stream) = socket.split();
    if !path_ok {
        // §1.1: close 1002 "Invalid path" after the upgrade.
        let frame = CloseFrame { code: CLOSE_PROTOCOL_ERROR, reason: "Invalid path".into() };
        let _ = sink.send(Message::Close(Some(frame))).await;
        drain(&mut stream).await;
        return;
    }

    let (out, out_rx, overflow) = outbox(state.hub.limits().max_outbox_bytes);
    let tenant_id = tenant.id.clone();
    let conn = state.hub.open_connection(tenant, out.clone());
    state.metrics.rpc.connection_opened();
    tracing::debug!(%conn, tenant = %tenant_id, "WebSocket connection opened");
    let writer = tokio::spawn(write_loop(sink, out_rx, overflow.clone()));
    let mut ending = Ending { stop: state.stop.clone(), overflow };

    let end = loop {
        let msg = tokio::select! {
            e = ending.wait() => break e,
            msg = stream.next() => msg,
        };
        let ended = match msg {
            None | Some(Err(_)) => break End::PeerGone,
            Some(Ok(Message::Text(text))) => process(&state, conn, text.as_str(), &out, &mut ending).await,
            // The official JS client (websocket-stream) sends its JSON in
            // binary frames; KMS accepts them, so we do too.
            Some(Ok(Message::Binary(bytes))) => {
                let text = String::from_utf8_lossy(&bytes);
                process(&state, conn, &text, &out, &mut ending).await
            }
            // Ping/pong are answered by the library; after a close frame the
            // stream ends by itself.
            Some(Ok(_)) => None,
        };
        if let Some(e) = ended {
            break e;
        }
    };

    if end == End::Overflow {
        let session = state.hub.lock().dispatcher.session_of(conn).cloned();
        tracing::warn!(
            %conn,
            session = session.as_ref().map_or("-", |s| s.as_str()),
            max_bytes = state.hub.limits().max_outbox_bytes,
            "peer does not read its messages: outbox limit exceeded, closing with 1008; \
             the session can be resumed from a new connection"
        );
    }
    // Unbinds the session (§3.2: it waits for the GC or a reconnection) and
    // drops the hub's handle on the outbox: later events are dropped.
    state.hub.close_connection(conn);
    if end == End::Stopping {
        out.close(CLOSE_GOING_AWAY, "Server shutting down");
    }
    drop(out);
    let _ = writer.await;
    if end == End::Stopping {
        drain(&mut stream).await;
    }
    tracing::debug!(%conn, "WebSocket connection closed");
}

/// Handles one text frame; `Some` if the connection must end.
async fn process(
    state: &ServerState,
    conn: ConnectionId,
    text: &str,
    out: &Outbox,
    ending: &mut Ending,
) -> Option<End> {
    let max = state.hub.limits().max_message_bytes;
    let started = Instant::now();
    let mut method = None;
    let mut error = None;
    let reply = match codec::decode(text, max) {
        Err(e) => {
            tracing::debug!(%conn, code = e.code, "undecodable message: {}", e.message);
            state.metrics.rpc.error(e.code);
            Some(codec::encode_error(&e))
        }
        Ok(request) if state.metrics.rpc.is_draining() && starts_session(state, conn, &request) => {
            method = Some(request.method.clone());
            let e = RpcError::new(
                codes::NOT_ENOUGH_RESOURCES,
                "Server is draining: no new sessions; existing sessions go on",
            );
            error = Some(e.code);
            request.id.as_ref().map(|id| codec::encode_response(Some(id), &Err(e)))
        }
        Ok(request) => {
            tracing::debug!(%conn, method = %request.method, id = ?request.id, "request");
            method = Some(request.method.clone());
            let step = state.hub.lock().dispatcher.begin(conn, request, Instant::now());
            match step {
                Step::Reply(Reply { text, error: e, .. }) => {
                    error = e;
                    text
                }
                Step::Call(pending) => {
                    let id = pending.request_id().cloned();
                    let backend = state.backend.clone();
                    // Slow calls wait for a permit here, holding no thread.
                    let permit = if pending.is_slow(&*backend) {
                        let sem = state.slow_calls.clone();
                        tokio::select! {
                            p = sem.acquire_owned() => p.ok(),
                            e = ending.wait() => return Some(e),
                        }
                    } else {
                        None
                    };
                    let task = tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        pending.start(&*backend)
                    });
                    // On `ending` the blocking call finishes on its own; its
                    // result is dropped.
                    let joined = tokio::select! {
                        r = task => r,
                        e = ending.wait() => return Some(e),
                    };
                    let done = match joined {
                        Ok(Executed::Done(done)) => Ok(done),
                        Ok(Executed::Waiting(waiting)) => {
                            tokio::select! {
                                _ = tokio::time::sleep(waiting.wait()) => {}
                                e = ending.wait() => return Some(e),
                            }
                            Ok(waiting.finish())
                        }
                        Err(e) => Err(e),
                    };
                    match done {
                        Ok(done) => {
                            let r = state.hub.lock().dispatcher.complete(done, Instant::now());
                            error = r.error;
                            r.text
                        }
                        Err(e) => {
                            tracing::error!(%conn, "backend task failed: {e}");
                            let err = RpcError::internal(Some("backend task failed"));
                            error = Some(err.code);
                            id.map(|id| codec::encode_response(Some(&id), &Err(err)))
                        }
                    }
                }
            }
        }
    };
    if let Some(m) = method {
        state.metrics.rpc.request(&m, started.elapsed(), error);
    }
    if let Some(text) = reply {
        // An overflow is noticed by `ending` on the next turn.
        out.push(Outbound::Text(text));
    }
    None
}

/// Whether `request` would start a session (refused while draining): the
/// connection is not bound to one and the request names none. A `ping`
/// counts too: its answer issues a session id, and kurento-client pings
/// first (health checks use `/health` or `/ready`).
fn starts_session(state: &ServerState, conn: ConnectionId, request: &codec::Request) -> bool {
    let named = request.params.as_ref().and_then(|p| p.get("sessionId")).is_some_and(|v| v.is_string());
    !named && state.hub.lock().dispatcher.session_of(conn).is_none()
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: OutboxReceiver, mut overflow: OverflowSignal) {
    loop {
        let msg = tokio::select! {
            biased;
            _ = overflow.overflowed() => break,
            m = rx.recv() => m,
        };
        let Some(msg) = msg else { return };
        let cost = msg.cost();
        match msg {
            Outbound::Text(text) => {
                // A peer that does not read blocks this send: an overflow
                // must still get through.
                let sent = tokio::select! {
                    biased;
                    _ = overflow.overflowed() => break,
                    r = sink.send(Message::Text(text.into())) => r,
                };
                rx.written(cost);
                if sent.is_err() {
                    return;
                }
            }
            Outbound::Close(code, reason) => {
                let frame = CloseFrame { code, reason: reason.into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        }
    }
    // Overflow: free the queue now; the close frame goes out after what the
    // socket already holds, if the peer ever reads it.
    rx.discard();
    let frame = CloseFrame { code: CLOSE_POLICY_VIOLATION, reason: "Outbox limit exceeded".into() };
    let _ = tokio::time::timeout(OVERFLOW_CLOSE_WAIT, sink.send(Message::Close(Some(frame)))).await;
}

/// Reads until the peer completes the close handshake (bounded wait).
async fn drain(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, async { while let Some(Ok(_)) = stream.next().await {} }).await;
}
