//! An internal link: one JSON-RPC WebSocket from this node to another, with
//! its own session there. There is one link per (client session, remote
//! node), so the remote node sees one session per client session and its
//! ownership and release rules (spec §4.3, §4.4) hold as if the client were
//! connected to it directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use kms_jsonrpc::RpcError;

use crate::error::ClusterError;
use crate::ids::NodeId;

/// Delivers an event of the remote session: `(object, type, data)`.
pub type EventSink = Arc<dyn Fn(&str, &str, Value) + Send + Sync>;
/// Told once when the link breaks (not when it is closed on purpose).
pub type BrokenSink = Box<dyn FnOnce() + Send>;

/// Why a forwarded call failed.
#[derive(Debug)]
pub enum CallError {
    /// The remote node answered with an error: passed on intact.
    Remote(RpcError),
    /// No answer: the link broke or timed out.
    Cluster(ClusterError),
}

/// Where and how a link connects.
pub struct Target<'a> {
    pub node: NodeId,
    /// `host:port` of the node's WebSocket listener.
    pub address: &'a str,
    pub path: &'a str,
    /// The caller's tenant's access token, if tokens are configured.
    pub token: Option<&'a str>,
    /// A remote session to resume (§3.3).
    pub resume: Option<&'a str>,
    /// Bound on each forwarded call.
    pub timeout: Duration,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>>;

pub struct Link {
    node: NodeId,
    remote_session: String,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: AtomicU64,
    broken: Arc<AtomicBool>,
    /// Set by `close`: the end is ours, not a failure.
    closing: Arc<AtomicBool>,
    timeout: Duration,
}

impl Link {
    /// Connects to `ws://<address>/<path>` (with the tenant's token), opens
    /// a session with `connect` (§5.2), and starts relaying.
    pub async fn open(to: Target<'_>, on_event: EventSink, on_broken: BrokenSink) -> Result<Arc<Link>, ClusterError> {
        let Target { node, address, path, token, resume, timeout } = to;
        let unreachable = |reason: String| ClusterError::Unreachable { node: node.clone(), reason };
        let mut url = format!("ws://{address}/{path}");
        if let Some(t) = token {
            url.push_str("?access_token=");
            url.push_str(&encode_query(t));
        }
        let connect_timeout = timeout.min(Duration::from_secs(3));
        let (mut ws, _) =
            match tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(url.as_str())).await {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => return Err(unreachable(format!("cannot open internal link to {address}: {e}"))),
                Err(_) => return Err(unreachable(format!("opening internal link to {address} timed out"))),
            };
        // A link that broke while its node lived resumes its remote session
        // (§3.3), so the objects it owned stay owned.
        // Request ids start at a random point: a resumed session's
        // duplicate-request cache (§3.4) holds the ids its earlier
        // connection used, and a repeated id would be answered from it.
        let first_id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 12) | (1 << 40);
        let hello = match resume {
            Some(s) => json!({"jsonrpc": "2.0", "id": first_id, "method": "connect", "params": {"sessionId": s}}),
            None => json!({"jsonrpc": "2.0", "id": first_id, "method": "connect"}),
        }
        .to_string();
        ws.send(Message::text(hello)).await.map_err(|e| unreachable(e.to_string()))?;
        let remote_session = loop {
            let msg = match tokio::time::timeout(connect_timeout, ws.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(unreachable(e.to_string())),
                Ok(None) => return Err(unreachable("closed during connect".into())),
                Err(_) => return Err(unreachable("connect timed out".into())),
            };
            let Some(v) = text_of(msg).and_then(|t| serde_json::from_str::<Value>(&t).ok()) else { continue };
            if v.get("id") != Some(&json!(first_id)) {
                continue;
            }
            match v.pointer("/result/sessionId").and_then(Value::as_str) {
                Some(s) => break s.to_owned(),
                None => {
                    return Err(unreachable(format!("connect refused: {}", v.get("error").unwrap_or(&Value::Null))));
                }
            }
        };
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let broken = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        let (mut sink, mut stream) = ws.split();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        {
            let pending = pending.clone();
            let broken = broken.clone();
            let closing = closing.clone();
            let node = node.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                    let Some(v) = text_of(m).and_then(|t| serde_json::from_str::<Value>(&t).ok()) else { continue };
                    if v.get("method").and_then(Value::as_str) == Some("onEvent") {
                        let Some(e) = v.pointer("/params/value") else { continue };
                        let object = e.get("object").and_then(Value::as_str).unwrap_or_default();
                        let kind = e.get("type").and_then(Value::as_str).unwrap_or_default();
                        on_event(object, kind, e.get("data").cloned().unwrap_or(Value::Null));
                        continue;
                    }
                    let Some(id) = v.get("id").and_then(Value::as_u64) else { continue };
                    let Some(tx) = pending.lock().remove(&id) else { continue };
                    let answer = match (v.get("result"), v.get("error")) {
                        (_, Some(e)) => Err(remote_error(e)),
                        (Some(r), None) => Ok(r.clone()),
                        (None, None) => Ok(Value::Null),
                    };
                    let _ = tx.send(answer);
                }
                broken.store(true, Ordering::Release);
                // Waiters learn it from their dropped senders.
                pending.lock().clear();
                if !closing.load(Ordering::Acquire) {
                    tracing::warn!(%node, "internal link broke");
                    on_broken();
                }
            });
        }
        Ok(Arc::new(Link {
            node,
            remote_session,
            out,
            pending,
            next_id: AtomicU64::new(first_id + 1),
            broken,
            closing,
            timeout,
        }))
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn remote_session(&self) -> &str {
        &self.remote_session
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Sends `method` with `params` in the link's session and waits for the
    /// answer (`result` object) at most the forward timeout.
    pub async fn call(&self, method: &str, mut params: Map<String, Value>) -> Result<Value, CallError> {
        if self.is_broken() {
            return Err(CallError::Cluster(ClusterError::NodeGone(self.node.clone())));
        }
        params.insert("sessionId".into(), Value::String(self.remote_session.clone()));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        if self.out.send(Message::text(text)).is_err() {
            self.pending.lock().remove(&id);
            return Err(CallError::Cluster(ClusterError::NodeGone(self.node.clone())));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(CallError::Remote(e)),
            Ok(Err(_)) => Err(CallError::Cluster(ClusterError::NodeGone(self.node.clone()))),
            Err(_) => {
                self.pending.lock().remove(&id);
                Err(CallError::Cluster(ClusterError::Unreachable {
                    node: self.node.clone(),
                    reason: format!("no answer to '{method}' within {} ms", self.timeout.as_millis()),
                }))
            }
        }
    }

    /// Ends the remote session as the client's ended (§4.4): `closeSession`
    /// with `release`, then the socket. Fire and forget: the client's
    /// session is gone, nobody waits for this.
    pub fn close(&self, release: bool) {
        self.closing.store(true, Ordering::Release);
        let text = json!({"jsonrpc": "2.0", "id": u64::MAX, "method": "closeSession",
            "params": {"sessionId": self.remote_session, "release": release}})
        .to_string();
        let _ = self.out.send(Message::text(text));
        let _ = self.out.send(Message::Close(None));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Stops the writer (and so the socket) if nobody closed it.
        self.closing.store(true, Ordering::Release);
        let _ = self.out.send(Message::Close(None));
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("node", &self.node).field("remote_session", &self.remote_session).finish()
    }
}

fn text_of(m: Message) -> Option<String> {
    match m {
        Message::Text(t) => Some(t.to_string()),
        Message::Binary(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

/// A remote JSON-RPC error object as an [`RpcError`], code, message and
/// data intact.
pub fn remote_error(e: &Value) -> RpcError {
    let code = e.get("code").and_then(Value::as_i64).unwrap_or(kms_jsonrpc::codes::UNEXPECTED_ERROR);
    let message = e.get("message").and_then(Value::as_str).unwrap_or("remote error without message");
    let base = RpcError::new(code, message);
    match e.get("data") {
        Some(d) => base.with_data(Some(d.clone())),
        None => base,
    }
}

/// Percent-encodes a query value (tokens may hold any character).
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_errors_keep_code_message_and_data() {
        let e = remote_error(
            &json!({"code": 40101, "message": "Object 'x' not found", "data": {"type": "MEDIA_OBJECT_NOT_FOUND"}}),
        );
        assert_eq!(e.code, 40101);
        assert_eq!(e.message, "Object 'x' not found");
        assert_eq!(e.data, Some(json!({"type": "MEDIA_OBJECT_NOT_FOUND"})));
    }

    #[test]
    fn tokens_are_percent_encoded() {
        assert_eq!(encode_query("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode_query("Tok-1_.~"), "Tok-1_.~");
    }
}
