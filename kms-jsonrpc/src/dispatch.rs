//! The sans-IO core: requests in, responses and association changes out
//! (spec §3, §5). No sockets, no threads, no clock of its own.
//!
//! A request goes through [`Dispatcher::begin`], which answers everything
//! that needs no backend (envelope-level errors, `ping`, `connect`,
//! `keepAlive`, cache replays, param errors) or returns a [`PendingCall`].
//! The transport runs [`PendingCall::start`] on a blocking thread without
//! holding the dispatcher (and, for a call that only waits for time to pass,
//! sleeps without a thread before [`Waiting::finish`]), then feeds the result
//! to [`Dispatcher::complete`]. [`Dispatcher::handle_text`] chains them
//! for tests and simple embeddings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::backend::MediaBackend;
use crate::call::{Call, Later, Outcome, SESSION_ID, Started};
use crate::codec::{self, Request, RequestId};
use crate::config::{Limits, ServerConfig};
use crate::error::RpcError;
use crate::request_cache::{CachedResponse, REQUEST_CACHE_MAX_BYTES, REQUEST_CACHE_TTL, RequestCache};
use crate::session::SessionId;
use crate::session_table::{ConnectionId, SessionTable};
use crate::tenant::{Tenant, TenantId, TenantSession};
use crate::transaction;

/// What to send back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The encoded response; `None` for notifications (§1.2: send nothing).
    pub text: Option<String>,
    /// The session the connection is bound to after this request (§3.1).
    pub bound_session: Option<SessionId>,
    /// The error code answered, if any (for `/metrics`; replayed cached
    /// answers report none).
    pub error: Option<i64>,
}

/// Result of [`Dispatcher::begin`].
#[derive(Debug)]
pub enum Step {
    /// Answered without the backend.
    Reply(Reply),
    /// Needs the backend: run [`PendingCall::start`] off the async
    /// workers, then [`Dispatcher::complete`].
    Call(PendingCall),
}

#[derive(Debug, Clone)]
struct Meta {
    conn: ConnectionId,
    id: Option<RequestId>,
    /// `params.sessionId` as received or injected (cache key, §3.4).
    given: Option<SessionId>,
    /// The session the call runs in (given or issued), in the tenant of the
    /// connection.
    caller: TenantSession,
}

/// A backend call decided by the dispatcher.
#[derive(Debug)]
pub struct PendingCall {
    meta: Meta,
    call: Call,
    server_id: Arc<str>,
}

impl PendingCall {
    /// The request id, to answer if the blocking task is lost.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.meta.id.as_ref()
    }

    pub fn session(&self) -> &SessionId {
        &self.meta.caller.session
    }

    /// Whether the call may hold its thread waiting
    /// ([`MediaBackend::is_slow`]).
    pub fn is_slow(&self, backend: &dyn MediaBackend) -> bool {
        self.call.is_slow(backend)
    }

    /// Runs the call up to its end, or up to a wait that needs no thread.
    /// May block (backend contract); never panics.
    pub fn start(self, backend: &dyn MediaBackend) -> Executed {
        match self.call.start(&self.meta.caller, backend, &self.server_id) {
            Started::Done(outcome) => Executed::Done(Completed { meta: self.meta, outcome }),
            Started::Later(later) => Executed::Waiting(Waiting { meta: self.meta, later }),
        }
    }

    /// Runs the call to its end on this thread, waits included.
    pub fn execute(self, backend: &dyn MediaBackend) -> Completed {
        match self.start(backend) {
            Executed::Done(c) => c,
            Executed::Waiting(w) => {
                std::thread::sleep(w.wait());
                w.finish()
            }
        }
    }
}

/// Result of [`PendingCall::start`].
#[derive(Debug)]
pub enum Executed {
    Done(Completed),
    /// Sleep [`Waiting::wait`] (without a thread), then [`Waiting::finish`].
    Waiting(Waiting),
}

/// A call between its two halves (`getUsedCpu`'s two samples).
#[derive(Debug)]
pub struct Waiting {
    meta: Meta,
    later: Later,
}

impl Waiting {
    pub fn wait(&self) -> Duration {
        self.later.wait()
    }

    /// Quick; never blocks, never panics.
    pub fn finish(self) -> Completed {
        Completed { meta: self.meta, outcome: self.later.finish() }
    }
}

/// An executed call, to be handed to [`Dispatcher::complete`].
#[derive(Debug)]
pub struct Completed {
    meta: Meta,
    outcome: Outcome,
}

/// Sessions, connection bindings, GC and the request cache.
pub struct Dispatcher {
    sessions: SessionTable,
    cache: RequestCache,
    cache_enabled: bool,
    limits: Limits,
    server_id: Arc<str>,
    /// `connect` with an unknown session asks the backend (cluster mode).
    adopt_sessions: bool,
}

impl Dispatcher {
    pub fn new(config: &ServerConfig, now: Instant) -> Self {
        Self::with_cache(config, now, REQUEST_CACHE_TTL, REQUEST_CACHE_MAX_BYTES)
    }

    pub(crate) fn with_cache(config: &ServerConfig, now: Instant, ttl: Duration, max_bytes: usize) -> Self {
        Dispatcher {
            sessions: SessionTable::new(config.gc_period, now),
            cache: RequestCache::new(ttl, max_bytes),
            cache_enabled: !config.disable_request_cache,
            limits: config.limits.clone(),
            // §5.2: one UUID per server instance.
            server_id: uuid::Uuid::new_v4().hyphenated().to_string().into(),
            adopt_sessions: false,
        }
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A connection of the default tenant (no access tokens).
    pub fn open_connection(&mut self) -> ConnectionId {
        self.sessions.open_connection(Tenant::default())
    }

    /// A connection whose tenant was decided at upgrade.
    pub fn open_connection_for(&mut self, tenant: Tenant) -> ConnectionId {
        self.sessions.open_connection(tenant)
    }

    /// §3.2: drops the binding only; the session waits for the GC.
    pub fn close_connection(&mut self, conn: ConnectionId) {
        self.sessions.close_connection(conn);
    }

    pub fn connection_count(&self) -> usize {
        self.sessions.connection_count()
    }

    pub fn session_of(&self, conn: ConnectionId) -> Option<&SessionId> {
        self.sessions.session_of(conn)
    }

    /// Where events of `session` go (§7.1).
    pub fn connection_of(&self, session: &SessionId) -> Option<ConnectionId> {
        self.sessions.connection_of(session.as_str())
    }

    pub fn has_session(&self, session: &SessionId) -> bool {
        self.sessions.contains(session.as_str())
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Live sessions, sorted.
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.sessions.ids()
    }

    /// Live sessions of one tenant, sorted (for `ServerManager.getSessions`).
    pub fn session_ids_of(&self, tenant: &TenantId) -> Vec<SessionId> {
        self.sessions.ids_of(tenant)
    }

    /// Responses currently held by the duplicate-request cache.
    pub fn cached_responses(&self) -> usize {
        self.cache.len()
    }

    /// When [`Dispatcher::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Instant {
        let t = self.sessions.poll_timeout();
        // Requests purge the cache as they come; the timer only matters when
        // idle. Expiry is per one-second bucket, so wake-ups are coalesced.
        self.cache.next_expiry().map_or(t, |c| c.min(t))
    }

    /// Expires cache entries and runs due GC work (§3.2, §3.4). The
    /// returned sessions were collected: pass each to
    /// `MediaBackend::unref_session`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<SessionId> {
        self.cache.purge(now);
        let collected = self.sessions.handle_timeout(now);
        for s in &collected {
            tracing::info!(session = %s, "session collected by the garbage collector");
        }
        collected
    }

    /// Decodes, dispatches and (if needed) executes one text frame
    /// synchronously.
    pub fn handle_text(&mut self, conn: ConnectionId, text: &str, now: Instant, backend: &dyn MediaBackend) -> Reply {
        let request = match codec::decode(text, self.limits.max_message_bytes) {
            Ok(r) => r,
            Err(e) => return self.reject(conn, &e),
        };
        match self.begin(conn, request, now) {
            Step::Reply(r) => r,
            Step::Call(p) => {
                let done = p.execute(backend);
                self.complete(done, now)
            }
        }
    }

    /// Answer for a frame that did not decode (`id: null`, §2).
    pub fn reject(&self, conn: ConnectionId, error: &RpcError) -> Reply {
        Reply {
            text: Some(codec::encode_error(error)),
            bound_session: self.sessions.session_of(conn).cloned(),
            error: Some(error.code),
        }
    }

    /// First half of request processing; see the module docs.
    pub fn begin(&mut self, conn: ConnectionId, request: Request, now: Instant) -> Step {
        let Request { id, method, params } = request;
        let mut params = match params {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            // §5.1: ping never fails.
            Some(_) if method == "ping" => None,
            Some(_) => {
                return Step::Reply(self.reply_uncached(conn, id, RpcError::params_not_object()));
            }
        };

        // §3.1 injection: a missing (or non-string, as upstream) sessionId
        // becomes the connection's session.
        if let Some(bound) = self.sessions.session_of(conn) {
            let p = params.get_or_insert_with(Map::new);
            if !matches!(p.get(SESSION_ID), Some(Value::String(_))) {
                p.insert(SESSION_ID.to_owned(), Value::String(bound.as_str().to_owned()));
            }
        }

        // Length check before the id is copied anywhere (bounded memory).
        let given_len = params.as_ref().and_then(|p| p.get(SESSION_ID)).and_then(Value::as_str).map(str::len);
        if let Some(len) = given_len
            && len > self.limits.max_session_id_len
        {
            if method == "ping" {
                // Never fails: answer as if no sessionId was sent.
                if let Some(p) = params.as_mut() {
                    p.remove(SESSION_ID);
                }
            } else {
                let e = RpcError::session_id_too_long(self.limits.max_session_id_len);
                return Step::Reply(self.reply_uncached(conn, id, e));
            }
        }
        let tenant = self.sessions.tenant_of(conn).cloned().unwrap_or_default();
        let mut given: Option<SessionId> =
            params.as_ref().and_then(|p| p.get(SESSION_ID)).and_then(Value::as_str).map(SessionId::from);

        // Tenants: another tenant's session id gives nothing, not even a
        // cached response or a binding (its events would follow).
        if let Some(s) = &given
            && self.sessions.session_tenant(s.as_str()).is_some_and(|t| *t != tenant.id)
        {
            tracing::info!(%conn, tenant = %tenant.id, "request with another tenant's sessionId refused");
            if method == "ping" {
                // Never fails: answer as if no sessionId was sent.
                if let Some(p) = params.as_mut() {
                    p.remove(SESSION_ID);
                }
                given = None;
            } else {
                return Step::Reply(self.reply_uncached(conn, id, RpcError::invalid_session()));
            }
        }

        // §3.4: replay without executing.
        if self.cache_enabled
            && let (Some(rid), Some(s)) = (&id, &given)
            && let Some(hit) = self.cache.get(s, &cache_key(&tenant.id, rid), now)
        {
            tracing::debug!(session = %s, id = %rid, "replaying cached response");
            if let Some(rs) = &hit.result_session {
                self.sessions.associate(conn, rs);
            }
            return Step::Reply(Reply {
                text: Some(hit.text),
                bound_session: self.sessions.session_of(conn).cloned(),
                error: None,
            });
        }

        match method.as_str() {
            "ping" => {
                let mut result = json!({ "value": "pong" });
                if let Some(s) = &given {
                    result[SESSION_ID] = Value::String(s.as_str().to_owned());
                }
                Step::Reply(self.finish(conn, id, given, None, Ok(result), false, now))
            }
            "connect" => self.connect(conn, id, params, given, &tenant, now),
            "keepAlive" => {
                let result = match params {
                    None => Err(RpcError::params_required()),
                    Some(p) => required_session(&p).and_then(|s| {
                        if self.sessions.contains(s.as_str()) {
                            Ok(json!({ SESSION_ID: s.as_str() }))
                        } else {
                            Err(RpcError::invalid_session())
                        }
                    }),
                };
                let mark = given.clone();
                Step::Reply(self.finish(conn, id, given, mark, result, false, now))
            }
            m if Call::is_backend_method(m) => match self.plan_backend_call(m, params, given.as_ref(), &tenant.id) {
                Ok((call, session)) => Step::Call(PendingCall {
                    meta: Meta { conn, id, given, caller: TenantSession::new(session, tenant) },
                    call,
                    server_id: self.server_id.clone(),
                }),
                Err(e) => Step::Reply(self.finish(conn, id, given, None, Err(e), false, now)),
            },
            _ => {
                let e = RpcError::method_not_found();
                Step::Reply(self.finish(conn, id, given, None, Err(e), false, now))
            }
        }
    }

    /// Second half: applies association, liveness, cache, and encodes.
    pub fn complete(&mut self, done: Completed, now: Instant) -> Reply {
        let Completed { meta, outcome } = done;
        let session = meta.caller.session;
        self.finish(meta.conn, meta.id, meta.given, Some(session), outcome.result, outcome.forget_session, now)
    }

    fn plan_backend_call(
        &mut self,
        method: &str,
        params: Option<Map<String, Value>>,
        given: Option<&SessionId>,
        tenant: &TenantId,
    ) -> Result<(Call, SessionId), RpcError> {
        let mut params = params.ok_or_else(RpcError::params_required)?;
        let mut call = Call::parse(method, &mut params)?;
        if let Call::Transaction { operations, max_wait } = &mut call {
            transaction::validate(operations, self.limits.max_transaction_operations)?;
            *max_wait = self.limits.max_transaction_wait;
        }
        let session = if Call::requires_session(method) {
            required_session(&params)?
        } else {
            // §3.1: issue a fresh id when none was given or injected.
            given.cloned().unwrap_or_else(SessionId::new_random)
        };
        if !matches!(call, Call::CloseSession { .. }) {
            // §3.1: unknown sessionIds are implicitly created.
            self.sessions.ensure(&session, tenant, self.limits.max_sessions)?;
        }
        Ok((call, session))
    }

    /// Lets `connect` with an unknown session id ask the backend
    /// ([`crate::MediaBackend::adopt_session`]) instead of answering 40007.
    pub fn set_adopt_sessions(&mut self, on: bool) {
        self.adopt_sessions = on;
    }

    /// §5.2.
    fn connect(
        &mut self,
        conn: ConnectionId,
        id: Option<RequestId>,
        params: Option<Map<String, Value>>,
        given: Option<SessionId>,
        conn_tenant: &Tenant,
        now: Instant,
    ) -> Step {
        let tenant = self.sessions.tenant_of(conn).map(|t| t.id.clone()).unwrap_or_default();
        let session = match (&params, &given) {
            (Some(_), Some(s)) => {
                // `begin` refused other tenants' sessions already.
                if !self.sessions.contains(s.as_str()) {
                    if self.adopt_sessions {
                        // Exists while the backend decides; forgotten again
                        // if it does not adopt it.
                        if let Err(e) = self.sessions.ensure(s, &tenant, self.limits.max_sessions) {
                            return Step::Reply(self.finish(conn, id, given, None, Err(e), false, now));
                        }
                        let caller = TenantSession::new(s.clone(), conn_tenant.clone());
                        return Step::Call(PendingCall {
                            meta: Meta { conn, id, given, caller },
                            call: Call::Adopt,
                            server_id: self.server_id.clone(),
                        });
                    }
                    let e = RpcError::invalid_session();
                    return Step::Reply(self.finish(conn, id, given, None, Err(e), false, now));
                }
                s.clone()
            }
            _ => {
                let s = SessionId::new_random();
                if let Err(e) = self.sessions.ensure(&s, &tenant, self.limits.max_sessions) {
                    return Step::Reply(self.finish(conn, id, given, None, Err(e), false, now));
                }
                s
            }
        };
        let result = json!({ SESSION_ID: session.as_str(), "serverId": &*self.server_id });
        Step::Reply(self.finish(conn, id, given, Some(session), Ok(result), false, now))
    }

    /// Common tail of every executed request.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        conn: ConnectionId,
        id: Option<RequestId>,
        given: Option<SessionId>,
        session: Option<SessionId>,
        result: Result<Value, RpcError>,
        forget_session: bool,
        now: Instant,
    ) -> Reply {
        let result_session =
            result.as_ref().ok().and_then(|v| v.get(SESSION_ID)).and_then(Value::as_str).map(SessionId::from);
        if let Some(s) = &session {
            if forget_session {
                tracing::info!(session = %s, "session closed by the client");
                self.sessions.forget(s.as_str());
            } else if result.is_ok() {
                self.sessions.mark_in_use(s.as_str());
            }
        }
        // §3.1: success with a sessionId binds the connection; errors never
        // change the association.
        if let Some(rs) = &result_session
            && !(forget_session && session.as_ref() == Some(rs))
        {
            self.sessions.associate(conn, rs);
        }
        let text = id.as_ref().map(|rid| codec::encode_response(Some(rid), &result));
        let error = result.as_ref().err().map(|e| e.code);
        // §3.4: cached under result.sessionId, else params.sessionId.
        if self.cache_enabled
            && let (Some(rid), Some(t)) = (&id, &text)
            && let Some(key) = result_session.clone().or(given)
        {
            let tenant = self.sessions.tenant_of(conn).map(|t| t.id.clone()).unwrap_or_default();
            let entry = CachedResponse { text: t.clone(), result_session };
            self.cache.insert(key, cache_key(&tenant, rid), entry, now);
        }
        Reply { text, bound_session: self.sessions.session_of(conn).cloned(), error }
    }

    /// Errors decided before any session handling: not cached, no binding.
    fn reply_uncached(&self, conn: ConnectionId, id: Option<RequestId>, e: RpcError) -> Reply {
        let error = Some(e.code);
        Reply {
            text: id.map(|rid| codec::encode_response(Some(&rid), &Err(e))),
            bound_session: self.sessions.session_of(conn).cloned(),
            error,
        }
    }
}

/// The duplicate-request cache key: the request id within the tenant, so
/// that a session id reused by another tenant (after its session was
/// collected) never replays this tenant's responses.
fn cache_key(tenant: &TenantId, id: &RequestId) -> String {
    format!("{}\u{0}{}", tenant.as_str(), id.cache_key())
}

/// A `sessionId` that the method requires (§5.7, §5.10).
fn required_session(params: &Map<String, Value>) -> Result<SessionId, RpcError> {
    crate::params::required_str(params, SESSION_ID).map(SessionId::from)
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
