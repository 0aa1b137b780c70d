//! One upgraded WebSocket (spec §1.2): requests are processed strictly in
//! order; backend calls run on the blocking pool so a slow call only delays
//! its own connection; one writer task drains the outbound queue that both
//! responses and events ([`crate::Notifier`]) feed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::codec;
use crate::dispatch::{Reply, Step};
use crate::error::RpcError;
use crate::server::ServerState;
use crate::session_hub::{ConnectionSlot, Outbound};
use crate::session_table::ConnectionId;

/// RFC 6455 close codes used here.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// How long to wait for the peer's close frame after sending ours.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);

pub(crate) async fn serve(socket: WebSocket, state: Arc<ServerState>, path_ok: bool, slot: ConnectionSlot) {
    let _slot = slot;
    let (mut sink, mut stream) = socket.split();
    if !path_ok {
        // §1.1: close 1002 "Invalid path" after the upgrade.
        let frame = CloseFrame { code: CLOSE_PROTOCOL_ERROR, reason: "Invalid path".into() };
        let _ = sink.send(Message::Close(Some(frame))).await;
        drain(&mut stream).await;
        return;
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let conn = state.hub.open_connection(tx.clone());
    tracing::debug!(%conn, "WebSocket connection opened");
    let writer = tokio::spawn(write_loop(sink, rx));
    let mut stop = state.stop.clone();

    let stopping = loop {
        let msg = tokio::select! {
            _ = stopped(&mut stop) => break true,
            msg = stream.next() => msg,
        };
        match msg {
            None | Some(Err(_)) => break false,
            Some(Ok(Message::Text(text))) => {
                if !process(&state, conn, text.as_str(), &tx, &mut stop).await {
                    break true;
                }
            }
            // The official JS client (websocket-stream) sends its JSON in
            // binary frames; KMS accepts them, so we do too.
            Some(Ok(Message::Binary(bytes))) => {
                let text = String::from_utf8_lossy(&bytes);
                if !process(&state, conn, &text, &tx, &mut stop).await {
                    break true;
                }
            }
            // Ping/pong are answered by the library; after a close frame the
            // stream ends by itself.
            Some(Ok(_)) => {}
        }
    };

    state.hub.close_connection(conn);
    if stopping {
        let _ = tx.send(Outbound::Close(CLOSE_GOING_AWAY, "Server shutting down"));
    }
    drop(tx);
    let _ = writer.await;
    if stopping {
        drain(&mut stream).await;
    }
    tracing::debug!(%conn, "WebSocket connection closed");
}

/// Handles one text frame; `false` if the server is stopping.
async fn process(
    state: &ServerState,
    conn: ConnectionId,
    text: &str,
    tx: &mpsc::UnboundedSender<Outbound>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let max = state.hub.limits().max_message_bytes;
    let reply = match codec::decode(text, max) {
        Err(e) => {
            tracing::debug!(%conn, code = e.code, "undecodable message: {}", e.message);
            Some(codec::encode_error(&e))
        }
        Ok(request) => {
            tracing::debug!(%conn, method = %request.method, id = ?request.id, "request");
            let step = state.hub.lock().dispatcher.begin(conn, request, Instant::now());
            match step {
                Step::Reply(Reply { text, .. }) => text,
                Step::Call(pending) => {
                    let id = pending.request_id().cloned();
                    let backend = state.backend.clone();
                    let task = tokio::task::spawn_blocking(move || pending.execute(&*backend));
                    let joined = tokio::select! {
                        r = task => r,
                        // The blocking call finishes on its own; its result is dropped.
                        _ = stopped(stop) => return false,
                    };
                    match joined {
                        Ok(done) => state.hub.lock().dispatcher.complete(done, Instant::now()).text,
                        Err(e) => {
                            tracing::error!(%conn, "backend task failed: {e}");
                            let err = RpcError::internal(Some("backend task failed"));
                            id.map(|id| codec::encode_response(Some(&id), &Err(err)))
                        }
                    }
                }
            }
        }
    };
    if let Some(text) = reply {
        let _ = tx.send(Outbound::Text(text));
    }
    true
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::UnboundedReceiver<Outbound>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Outbound::Text(text) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            Outbound::Close(code, reason) => {
                let frame = CloseFrame { code, reason: reason.into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
        }
    }
}

/// Reads until the peer completes the close handshake (bounded wait).
async fn drain(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, async { while let Some(Ok(_)) = stream.next().await {} }).await;
}

/// Resolves when the server is stopping (or its stop signal is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
