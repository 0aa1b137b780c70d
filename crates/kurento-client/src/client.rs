//! The client handle: request/response correlation, session tracking and
//! the application-facing API. The socket itself is owned by one task
//! (`connection.rs`); this side only queues requests and waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::connection::{self, HandshakeError};
use crate::error::{Error, Result, ServerError};
use crate::object::{self, Creatable, NoParent, ObjectId, RemoteClass, RemoteObject};
use crate::protocol::{session_of, value_of};
use crate::subscription::Subscriptions;

/// What happens to the connection, for applications that care (spec §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The socket was lost; the client is reconnecting. Requests wait.
    Disconnected { reason: String },
    /// Reconnected and the server resumed the session: objects and event
    /// subscriptions are intact, pending requests were replayed (the
    /// server's duplicate cache, spec §3.4, keeps them from running twice).
    Reconnected { session_id: String },
    /// Reconnected, but the server did not know the session (`40007`): it
    /// restarted or is another instance. Objects and subscriptions are
    /// gone, event streams ended, pending requests failed with
    /// [`Error::SessionLost`]; the client now uses a new session.
    NewServer { session_id: String, server_id: Option<String> },
    /// The client gave up (closed, or out of reconnection attempts).
    Closed,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) request_timeout: Duration,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) max_reconnect_attempts: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(20),
            ping_interval: Some(Duration::from_secs(30)),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            max_reconnect_attempts: None,
        }
    }
}

/// A request not answered yet. Kept across reconnections so it can be
/// replayed with the same id.
pub(crate) struct Pending {
    pub(crate) method: String,
    pub(crate) params: Map<String, Value>,
    /// `None` for fire-and-forget requests (release on drop, unsubscribe).
    pub(crate) waiter: Option<oneshot::Sender<Result<Value>>>,
    /// The connection generation it was last written to.
    pub(crate) sent_on: Option<u64>,
}

#[derive(Default)]
struct SessionInfo {
    session_id: Option<String>,
    server_id: Option<String>,
}

/// State shared by the handles and the connection task.
pub(crate) struct State {
    pub(crate) url: String,
    pub(crate) config: Config,
    next_id: AtomicU64,
    session: Mutex<SessionInfo>,
    pending: Mutex<BTreeMap<u64, Pending>>,
    subs: Mutex<Subscriptions>,
    events: broadcast::Sender<ConnectionEvent>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn new(url: String, config: Config) -> State {
        State {
            url,
            config,
            // The JS client numbers from 0; so do we (pings share the counter).
            next_id: AtomicU64::new(0),
            session: Mutex::default(),
            pending: Mutex::default(),
            subs: Mutex::default(),
            events: broadcast::channel(64).0,
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn session_id(&self) -> Option<String> {
        lock(&self.session).session_id.clone()
    }

    pub(crate) fn server_id(&self) -> Option<String> {
        lock(&self.session).server_id.clone()
    }

    pub(crate) fn set_session(&self, session_id: Option<String>, server_id: Option<String>) {
        let mut s = lock(&self.session);
        s.session_id = session_id;
        if server_id.is_some() {
            s.server_id = server_id;
        }
    }

    pub(crate) fn subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        lock(&self.subs)
    }

    pub(crate) fn emit(&self, e: ConnectionEvent) {
        // No receivers is fine: nobody asked.
        let _ = self.events.send(e);
    }

    /// Requests not yet written to connection `generation`, in id order,
    /// marked as written. Requests whose caller gave up are dropped here.
    pub(crate) fn take_unsent(&self, generation: u64) -> Vec<(u64, String, Map<String, Value>)> {
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.waiter.as_ref().is_none_or(|w| !w.is_closed()));
        pending
            .iter_mut()
            .filter(|(_, p)| p.sent_on != Some(generation))
            .map(|(id, p)| {
                p.sent_on = Some(generation);
                (*id, p.method.clone(), p.params.clone())
            })
            .collect()
    }

    /// Routes an answer to its caller, copying `result.sessionId` first
    /// (spec §3.1).
    pub(crate) fn complete(&self, id: u64, result: std::result::Result<Value, ServerError>) {
        if let Ok(r) = &result
            && let Some(s) = session_of(r)
        {
            let mut session = lock(&self.session);
            if session.session_id.as_deref() != Some(s) {
                tracing::debug!(session = s, "session id from response");
                session.session_id = Some(s.to_string());
            }
        }
        let pending = lock(&self.pending).remove(&id);
        match pending {
            Some(Pending { waiter: Some(w), .. }) => {
                let _ = w.send(result.map_err(Error::from));
            }
            Some(Pending { method, waiter: None, .. }) => {
                if let Err(e) = result {
                    tracing::debug!(%method, error = %e, "detached request failed");
                }
            }
            None => tracing::debug!(id, "answer to a request nobody waits for"),
        }
    }

    pub(crate) fn dispatch_event(&self, object: &str, event_type: &str, data: &Value) {
        let n = self.subscriptions().dispatch(object, event_type, data);
        if n == 0 {
            tracing::debug!(object, event = event_type, "event without local subscriber dropped");
        }
    }

    /// The server forgot our session (spec §3.3, 40007): everything that
    /// referred to it is over.
    pub(crate) fn session_lost(&self) {
        let pending = std::mem::take(&mut *lock(&self.pending));
        for (_, p) in pending {
            if let Some(w) = p.waiter {
                let _ = w.send(Err(Error::SessionLost { method: p.method }));
            }
        }
        self.subscriptions().clear();
        self.set_session(None, None);
    }

    /// The connection task ended: callers get [`Error::Closed`] (their
    /// waiters are dropped) and streams end.
    pub(crate) fn shut_down(&self) {
        lock(&self.pending).clear();
        self.subscriptions().clear();
        self.emit(ConnectionEvent::Closed);
    }
}

/// Commands from handles to the connection task.
pub(crate) enum Cmd {
    /// New requests are queued; write them.
    Flush,
    /// Drop the socket and go through reconnection.
    Reconnect,
    Close,
}

struct Handle {
    state: Arc<State>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

/// A connection to a Kurento Media Server: cheap to clone, all clones share
/// one WebSocket and one session. The connection lives while any clone,
/// proxy or event stream does, or until [`Client::close`].
///
/// On socket loss the client reconnects with backoff and resumes the
/// session with `connect {sessionId}` (spec §3.3); see
/// [`Client::connection_events`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.state.url)
            .field("session_id", &self.session_id())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`] with non-default settings.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    config: Config,
    resume: Option<String>,
}

impl ClientBuilder {
    /// How long a request waits for its answer, reconnections included
    /// (default 20 s, which is also how long the server remembers answers
    /// for replays, spec §3.4).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.config.request_timeout = t;
        self
    }

    /// `ping` period used to notice dead sockets; a ping unanswered by the
    /// next period drops the socket and reconnects. `None` disables it.
    /// Default 30 s.
    pub fn ping_interval(mut self, t: Option<Duration>) -> Self {
        self.config.ping_interval = t;
        self
    }

    /// First and longest wait between reconnection attempts (doubling);
    /// default 100 ms and 5 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.reconnect_min = min;
        self.config.reconnect_max = max.max(min);
        self
    }

    /// Give up after this many failed attempts in a row (default: never).
    pub fn max_reconnect_attempts(mut self, n: Option<u32>) -> Self {
        self.config.max_reconnect_attempts = n;
        self
    }

    /// Resume an existing session (another process's, or one saved before
    /// a restart) instead of opening a new one. Connecting fails with the
    /// server's `40007` if it does not know the session.
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.resume = Some(session_id.into());
        self
    }

    /// Opens the WebSocket and the session (`connect`, spec §5.2) before
    /// returning, so every later request carries the session id and no
    /// two requests race to create sessions.
    pub async fn connect(self) -> Result<Client> {
        let state = Arc::new(State::new(self.url.clone(), self.config));
        let mut ws = connection::open(&state).await.map_err(|e| Error::Connect { url: self.url.clone(), source: e })?;
        connection::handshake(&mut ws, &state, self.resume.as_deref()).await.map_err(|e| match e {
            HandshakeError::Server(e) => e.into(),
            HandshakeError::Io(m) => Error::Protocol(format!("connect: {m}")),
        })?;
        tracing::info!(url = %self.url, session = ?state.session_id(), "connected");
        let (cmd, rx) = mpsc::unbounded_channel();
        tokio::spawn(connection::run(state.clone(), rx, ws));
        Ok(Client { inner: Arc::new(Handle { state, cmd }) })
    }
}

impl Client {
    /// Connects with default settings: `Client::connect("ws://localhost:8888/kurento")`.
    pub async fn connect(url: impl Into<String>) -> Result<Client> {
        Client::builder(url).connect().await
    }

    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder { url: url.into(), config: Config::default(), resume: None }
    }

    /// The session all requests run in (spec §3).
    pub fn session_id(&self) -> Option<String> {
        self.inner.state.session_id()
    }

    /// `serverId` from the last `connect` answer: one per server process.
    pub fn server_id(&self) -> Option<String> {
        self.inner.state.server_id()
    }

    /// Reconnection and session changes, as they happen.
    pub fn connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.state.events.subscribe()
    }

    /// Creates an object without a parent (`MediaPipeline`, spec §5.3).
    /// Elements are created from their pipeline: `pipeline.create::<T>(..)`.
    pub async fn create<T: Creatable<Parent = NoParent>>(&self, params: T::Params) -> Result<T> {
        object::create::<T>(self, None, &params).await
    }

    /// The server's singleton `ServerManager` (fixed id, spec §4.1).
    pub fn server_manager(&self) -> crate::core::ServerManager {
        self.object("manager_ServerManager")
    }

    /// A proxy for an id known to be a `T` (from an event, another
    /// process…); nothing is checked. See [`RemoteObject::cast`].
    pub fn object<T: RemoteClass>(&self, id: impl Into<ObjectId>) -> T {
        T::from_remote(RemoteObject::new(self.clone(), id.into()))
    }

    /// `ping` (spec §5.1).
    pub async fn ping(&self) -> Result<()> {
        let r = self.request("ping", Map::new()).await?;
        match value_of(r) {
            Value::String(s) if s == "pong" => Ok(()),
            other => Err(Error::Protocol(format!("ping answered {other}"))),
        }
    }

    /// Runs `operations` in one `transaction` request (spec §5.9).
    /// Operation *i* may name the object created by operation *k* as
    /// `"newref:k"`. The result holds one entry per executed operation: the
    /// server stops at the first failure, so a shorter list means the rest
    /// did not run. A failed operation is an [`Error::Server`].
    pub async fn transaction(&self, operations: Vec<Operation>) -> Result<Vec<Result<Value>>> {
        let ops: Vec<Value> = operations
            .into_iter()
            .enumerate()
            .map(|(i, op)| json!({"jsonrpc": "2.0", "id": i, "method": op.method, "params": op.params}))
            .collect();
        let mut p = Map::new();
        p.insert("operations".into(), Value::Array(ops));
        let Value::Array(items) = value_of(self.request("transaction", p).await?) else {
            return Err(Error::Protocol("transaction answer is not a list".into()));
        };
        Ok(items
            .into_iter()
            .map(|item| match item.get("error") {
                Some(e) => Err(ServerError::from_json(e).into()),
                None => Ok(value_of(item.get("result").cloned().unwrap_or(Value::Null))),
            })
            .collect())
    }

    /// Ends the session on the server (`closeSession`, spec §5.10): its
    /// objects are unreferenced, or released for everybody with
    /// `release = true`. The connection stays open.
    pub async fn close_session(&self, release: bool) -> Result<()> {
        let mut p = Map::new();
        p.insert("release".into(), Value::Bool(release));
        self.request("closeSession", p).await.map(drop)
    }

    /// Drops the current socket and goes through reconnection as if it had
    /// been lost (after a network change, for instance).
    pub fn reconnect(&self) {
        let _ = self.inner.cmd.send(Cmd::Reconnect);
    }

    /// Closes the connection. The session stays on the server until its
    /// garbage collector runs (spec §3.2) unless closed first with
    /// [`Client::close_session`].
    pub fn close(&self) {
        let _ = self.inner.cmd.send(Cmd::Close);
    }

    /// Sends any request and returns its whole `result` (escape hatch for
    /// methods the typed API does not cover).
    pub async fn request(&self, method: &str, params: Map<String, Value>) -> Result<Value> {
        let state = &self.inner.state;
        let id = state.next_id();
        let (tx, rx) = oneshot::channel();
        lock(&state.pending)
            .insert(id, Pending { method: method.to_string(), params, waiter: Some(tx), sent_on: None });
        if self.inner.cmd.send(Cmd::Flush).is_err() {
            lock(&state.pending).remove(&id);
            return Err(Error::Closed);
        }
        let timeout = state.config.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                lock(&state.pending).remove(&id);
                Err(Error::Timeout { method: method.to_string(), timeout })
            }
        }
    }

    /// Queues a request whose answer nobody waits for (used from `Drop`,
    /// which cannot await).
    pub(crate) fn send_detached(&self, method: &str, params: Map<String, Value>) {
        let state = &self.inner.state;
        let id = state.next_id();
        lock(&state.pending).insert(id, Pending { method: method.to_string(), params, waiter: None, sent_on: None });
        if self.inner.cmd.send(Cmd::Flush).is_err() {
            lock(&state.pending).remove(&id);
        }
    }

    pub(crate) fn subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        self.inner.state.subscriptions()
    }
}

/// One operation of a [`Client::transaction`].
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub method: String,
    pub params: Map<String, Value>,
}

impl Operation {
    pub fn new(method: impl Into<String>, params: Map<String, Value>) -> Self {
        Operation { method: method.into(), params }
    }

    /// `create` of `type_name` with `constructorParams`.
    pub fn create(type_name: &str, constructor_params: Map<String, Value>) -> Self {
        let mut p = Map::new();
        p.insert("type".into(), Value::String(type_name.to_string()));
        p.insert("constructorParams".into(), Value::Object(constructor_params));
        Operation::new("create", p)
    }

    /// `invoke` of `operation` on `object` (an id or `newref:<k>`).
    pub fn invoke(object: &str, operation: &str, params: Map<String, Value>) -> Self {
        let mut p = Map::new();
        p.insert("object".into(), Value::String(object.to_string()));
        p.insert("operation".into(), Value::String(operation.to_string()));
        if !params.is_empty() {
            p.insert("operationParams".into(), Value::Object(params));
        }
        Operation::new("invoke", p)
    }
}
