//! Dispatch-core tests: fake backend, fake clock, no sockets.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};

use super::*;
use crate::backend::{Deferred, Description, Invoked};
use crate::error::codes;
use crate::tenant::{Caller, Tenant, TenantId};

const PERIOD: Duration = Duration::from_secs(240);

#[derive(Default)]
struct FakeBackend {
    calls: Mutex<Vec<String>>,
    /// id → short type
    objects: Mutex<HashMap<String, String>>,
    counter: AtomicUsize,
}

impl FakeBackend {
    fn log(&self, s: String) {
        self.calls.lock().push(s);
    }
    fn count(&self, prefix: &str) -> usize {
        self.calls.lock().iter().filter(|c| c.starts_with(prefix)).count()
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().clone()
    }
    fn check(&self, object: &str) -> Result<String, RpcError> {
        if object.starts_with("newref:") {
            return Err(RpcError::newref_outside_transaction(object));
        }
        self.objects.lock().get(object).cloned().ok_or_else(|| RpcError::object_not_found(object))
    }
}

impl MediaBackend for FakeBackend {
    fn create(
        &self,
        caller: &dyn Caller,
        type_name: &str,
        constructor_params: Option<&Value>,
    ) -> Result<String, RpcError> {
        let session = caller.session();
        self.log(format!("create {session} {type_name}"));
        if type_name == "Bad" {
            return Err(RpcError::factory_not_found(type_name));
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let id = match constructor_params.and_then(|p| p.get("mediaPipeline")) {
            Some(Value::String(parent)) => {
                self.check(parent)?;
                format!("{parent}/{n}_kurento.{type_name}")
            }
            Some(_) => {
                return Err(RpcError::marshall("'mediaPipeline' parameter should be a string"));
            }
            None => format!("{n}_kurento.{type_name}"),
        };
        self.objects.lock().insert(id.clone(), type_name.to_owned());
        Ok(id)
    }

    fn describe(&self, caller: &dyn Caller, object: &str) -> Result<Description, RpcError> {
        let session = caller.session();
        self.log(format!("describe {session} {object}"));
        let t = if object == "manager_ServerManager" { "ServerManager".to_owned() } else { self.check(object)? };
        Ok(Description {
            qualified_type: format!("kurento.{t}"),
            type_name: t,
            hierarchy: vec!["kurento.MediaObject".into()],
        })
    }

    fn invoke(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value, RpcError> {
        let session = caller.session();
        self.log(format!("invoke {session} {object} {operation}"));
        self.check(object)?;
        match operation {
            "play" => Ok(Value::Null),
            "echo" => Ok(Value::Object(params.cloned().unwrap_or_default())),
            "fail" => Err(RpcError::marshall("bad")),
            "panic" => panic!("boom"),
            _ => Err(RpcError::method_not_found_invoke(operation, params.map_or(0, Map::len))),
        }
    }

    fn invoke_deferred(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Invoked, RpcError> {
        if operation == "sample" {
            self.check(object)?;
            self.log(format!("sample-start {}", caller.session()));
            return Ok(Invoked::Later(Deferred {
                wait: Duration::from_millis(5),
                finish: Box::new(|| Ok(json!(42.5))),
            }));
        }
        self.invoke(caller, object, operation, params).map(Invoked::Value)
    }

    fn is_slow(&self, _object: &str, operation: &str) -> bool {
        matches!(operation, "sample" | "negotiate")
    }

    fn subscribe(&self, caller: &dyn Caller, object: &str, event_type: &str) -> Result<String, RpcError> {
        let session = caller.session();
        self.log(format!("subscribe {session} {object} {event_type}"));
        self.check(object)?;
        Ok(format!("sub-{}", self.counter.fetch_add(1, Ordering::SeqCst)))
    }

    fn unsubscribe(&self, caller: &dyn Caller, object: &str, subscription: &str) -> Result<(), RpcError> {
        let session = caller.session();
        self.log(format!("unsubscribe {session} {object} {subscription}"));
        Ok(())
    }

    fn release(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError> {
        let session = caller.session();
        self.log(format!("release {session} {object}"));
        self.objects.lock().remove(object);
        Ok(())
    }

    fn ref_object(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError> {
        let session = caller.session();
        self.log(format!("ref {session} {object}"));
        self.check(object).map(drop)
    }

    fn unref_object(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError> {
        let session = caller.session();
        self.log(format!("unref {session} {object}"));
        Ok(())
    }

    fn unref_session(&self, session: &SessionId) {
        self.log(format!("unref_session {session}"));
    }

    fn release_session(&self, session: &SessionId) {
        self.log(format!("release_session {session}"));
    }
}

/// Dispatcher + backend + fake clock.
struct Harness {
    d: Dispatcher,
    b: FakeBackend,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut cfg = ServerConfig { gc_period: PERIOD, ..ServerConfig::default() };
        f(&mut cfg);
        let now = Instant::now();
        Harness { d: Dispatcher::new(&cfg, now), b: FakeBackend::default(), now }
    }

    fn conn(&mut self) -> ConnectionId {
        self.d.open_connection()
    }

    fn raw(&mut self, conn: ConnectionId, text: &str) -> Option<Value> {
        let r = self.d.handle_text(conn, text, self.now, &self.b);
        assert_eq!(r.bound_session.as_ref(), self.d.session_of(conn));
        r.text.map(|t| serde_json::from_str(&t).expect("response is JSON"))
    }

    fn send(&mut self, conn: ConnectionId, req: Value) -> Value {
        self.raw(conn, &req.to_string()).expect("a response")
    }

    fn req(&mut self, conn: ConnectionId, id: i64, method: &str, params: Value) -> Value {
        let mut r = json!({"jsonrpc":"2.0","id":id,"method":method});
        if !params.is_null() {
            r["params"] = params;
        }
        self.send(conn, r)
    }

    fn ok(&mut self, conn: ConnectionId, id: i64, method: &str, params: Value) -> Value {
        let resp = self.req(conn, id, method, params);
        assert_eq!(resp["id"], json!(id));
        resp.get("result").cloned().unwrap_or_else(|| panic!("expected success: {resp}"))
    }

    fn err(&mut self, conn: ConnectionId, id: i64, method: &str, params: Value) -> Value {
        let resp = self.req(conn, id, method, params);
        resp.get("error").cloned().unwrap_or_else(|| panic!("expected error: {resp}"))
    }

    fn advance(&mut self, d: Duration) -> Vec<SessionId> {
        self.now += d;
        let collected = self.d.handle_timeout(self.now);
        for s in &collected {
            self.b.unref_session(s);
        }
        collected
    }
}

fn sid(v: &Value) -> SessionId {
    SessionId::from(v["sessionId"].as_str().expect("sessionId"))
}

// --- §5.1 ping ---

#[test]
fn ping_answers_pong_and_never_creates_a_session() {
    let mut h = Harness::new();
    let c = h.conn();
    assert_eq!(h.ok(c, 0, "ping", json!({"interval": 5000})), json!({"value":"pong"}));
    assert_eq!(h.ok(c, 1, "ping", Value::Null), json!({"value":"pong"}));
    assert_eq!(h.ok(c, 2, "ping", json!([1, 2])), json!({"value":"pong"}));
    let r = h.ok(c, 3, "ping", json!({"sessionId": "foreign"}));
    assert_eq!(r, json!({"value":"pong","sessionId":"foreign"}));
    assert!(h.d.session_ids().is_empty());
    assert!(h.b.calls().is_empty());
}

// --- §3.1 issuing, injection, association ---

#[test]
fn first_request_issues_a_session_and_binds_the_connection() {
    let mut h = Harness::new();
    let c = h.conn();
    let r = h.ok(c, 1, "describe", json!({"object":"manager_ServerManager"}));
    assert_eq!(
        r,
        json!({"sessionId": r["sessionId"], "type":"ServerManager","qualifiedType":"kurento.ServerManager","hierarchy":["kurento.MediaObject"]})
    );
    let s = sid(&r);
    assert_eq!(uuid::Uuid::parse_str(s.as_str()).unwrap().get_version_num(), 4);
    assert_eq!(h.d.session_of(c), Some(&s));
    assert_eq!(h.d.connection_of(&s), Some(c));
    // Injection: later requests without sessionId run in the same session.
    let r = h.ok(c, 2, "create", json!({"type":"MediaPipeline"}));
    assert_eq!(sid(&r), s);
    assert_eq!(h.ok(c, 3, "ping", Value::Null), json!({"value":"pong","sessionId":s.as_str()}));
    assert_eq!(h.d.session_ids(), vec![s]);
}

#[test]
fn injection_turns_null_params_into_session_params() {
    let mut h = Harness::new();
    let c = h.conn();
    // Unbound: params required.
    let e = h.err(c, 1, "closeSession", Value::Null);
    assert_eq!(e, json!({"code":-32602,"message":"'params' is required","data":{"type":"INVALID_PARAMS"}}));
    let e = h.err(c, 2, "create", Value::Null);
    assert_eq!(e["code"], json!(-32602));
    let s = sid(&h.ok(c, 3, "connect", Value::Null));
    // Bound: params become {"sessionId": S}, so the next check is -32000.
    let e = h.err(c, 4, "create", Value::Null);
    assert_eq!(e, json!({"code":-32000,"message":"'type' parameter is required"}));
    assert_eq!(h.ok(c, 5, "keepAlive", Value::Null), json!({"sessionId": s.as_str()}));
    assert_eq!(h.ok(c, 6, "closeSession", Value::Null), Value::Null);
    assert_eq!(h.b.calls(), vec![format!("unref_session {s}")]);
    assert!(!h.d.has_session(&s));
    assert_eq!(h.d.session_of(c), None);
}

#[test]
fn association_is_last_connection_wins() {
    let mut h = Harness::new();
    let a = h.conn();
    let b = h.conn();
    let s = sid(&h.ok(a, 1, "create", json!({"type":"MediaPipeline"})));
    assert_eq!(h.d.connection_of(&s), Some(a));
    let r = h.ok(b, 2, "connect", json!({"sessionId": s.as_str()}));
    assert_eq!(r, json!({"sessionId": s.as_str(), "serverId": h.d.server_id()}));
    assert_eq!(h.d.connection_of(&s), Some(b));
    assert_eq!(h.d.session_of(a), None);
    // A is no longer associated: its next request gets a fresh session.
    let other = sid(&h.ok(a, 3, "describe", json!({"object":"manager_ServerManager"})));
    assert_ne!(other, s);
    assert_eq!(h.d.connection_of(&other), Some(a));
    assert_eq!(h.d.connection_of(&s), Some(b));
}

#[test]
fn explicit_session_rebinds_and_unbinds_the_previous_one() {
    let mut h = Harness::new();
    let c = h.conn();
    let s1 = sid(&h.ok(c, 1, "connect", Value::Null));
    let r = h.ok(c, 2, "create", json!({"type":"MediaPipeline","sessionId":"explicit"}));
    assert_eq!(r["sessionId"], json!("explicit"));
    assert_eq!(h.d.session_of(c).map(SessionId::as_str), Some("explicit"));
    assert_eq!(h.d.connection_of(&s1), None);
    assert!(h.d.has_session(&s1));
}

#[test]
fn error_responses_never_change_association() {
    let mut h = Harness::new();
    let c = h.conn();
    let s = sid(&h.ok(c, 1, "connect", Value::Null));
    let e = h.err(c, 2, "describe", json!({"object":"nope","sessionId":"other"}));
    assert_eq!(e["code"], json!(codes::MEDIA_OBJECT_NOT_FOUND));
    assert_eq!(h.d.session_of(c), Some(&s));
    let e = h.err(c, 3, "connect", json!({"sessionId":"unknown"}));
    assert_eq!(e["code"], json!(codes::INVALID_SESSION));
    assert_eq!(h.d.session_of(c), Some(&s));
}

#[test]
fn unknown_sessions_are_created_except_by_connect_and_keepalive() {
    let mut h = Harness::new();
    let c = h.conn();
    let e = h.err(c, 1, "connect", json!({"sessionId":"ghost"}));
    assert_eq!(e, json!({"code":40007,"message":"Invalid session","data":{"type":"INVALID_SESSION"}}));
    let e = h.err(c, 2, "keepAlive", json!({"sessionId":"ghost"}));
    assert_eq!(e["code"], json!(40007));
    assert!(h.d.session_ids().is_empty());
    let r = h.ok(c, 3, "create", json!({"type":"MediaPipeline","sessionId":"ghost"}));
    assert_eq!(r["sessionId"], json!("ghost"));
    assert_eq!(h.d.session_ids(), vec![SessionId::from("ghost")]);
    assert_eq!(h.ok(c, 4, "keepAlive", json!({"sessionId":"ghost"})), json!({"sessionId":"ghost"}));
    let r = h.ok(c, 5, "connect", json!({"sessionId":"ghost"}));
    assert_eq!(r["serverId"], json!(h.d.server_id()));
}

#[test]
fn connect_without_session_issues_one() {
    let mut h = Harness::new();
    let c = h.conn();
    let r1 = h.ok(c, 1, "connect", Value::Null);
    let d = h.conn();
    let r2 = h.ok(d, 1, "connect", json!({}));
    assert_ne!(r1["sessionId"], r2["sessionId"]);
    assert_eq!(h.d.session_ids().len(), 2);
}

#[test]
fn notifications_execute_but_send_nothing() {
    let mut h = Harness::new();
    let c = h.conn();
    let out = h.raw(c, r#"{"jsonrpc":"2.0","method":"create","params":{"type":"MediaPipeline"}}"#);
    assert_eq!(out, None);
    assert_eq!(h.b.count("create"), 1);
    // The result still associates the connection.
    assert!(h.d.session_of(c).is_some());
    assert_eq!(h.raw(c, r#"{"jsonrpc":"2.0","method":"nope"}"#), None);
}

// --- §2 / §5 error shapes ---

#[test]
fn envelope_errors_have_null_id() {
    let mut h = Harness::new();
    let c = h.conn();
    assert_eq!(
        h.raw(c, "{oops").unwrap(),
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error."}})
    );
    assert_eq!(
        h.raw(c, r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap(),
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid JSON-RPC request."}})
    );
    assert_eq!(h.raw(c, r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#).unwrap()["id"], Value::Null);
}

#[test]
fn method_and_param_errors() {
    let mut h = Harness::new();
    let c = h.conn();
    assert_eq!(h.err(c, 1, "frobnicate", json!({})), json!({"code":-32601,"message":"Method not found."}));
    assert_eq!(h.err(c, 2, "frobnicate", Value::Null)["code"], json!(-32601));
    assert_eq!(
        h.err(c, 3, "invoke", json!({"object":"x"})),
        json!({"code":-32000,"message":"'operation' parameter is required"})
    );
    assert_eq!(
        h.err(c, 4, "describe", json!({"object":5})),
        json!({"code":-32000,"message":"'object' parameter should be a string"})
    );
    assert_eq!(
        h.err(c, 5, "transaction", json!({"operations":{}})),
        json!({"code":-32000,"message":"'operations' parameter should be an array"})
    );
    assert_eq!(
        h.err(c, 6, "unsubscribe", json!({"object":"x","subscription":"y"})),
        json!({"code":-32000,"message":"'sessionId' parameter is required"})
    );
    assert_eq!(
        h.err(c, 7, "ref", json!({"object":"x","sessionId":7})),
        json!({"code":-32000,"message":"'sessionId' parameter should be a string"})
    );
    assert_eq!(
        h.err(c, 8, "create", json!("text")),
        json!({"code":-32602,"message":"'params' should be an object","data":{"type":"INVALID_PARAMS"}})
    );
    assert_eq!(
        h.err(c, 9, "create", json!({"type":"Bad"})),
        json!({"code":40108,"message":"Factory 'Bad' not found","data":{"type":"MEDIA_OBJECT_NOT_AVAILABLE"}})
    );
    assert_eq!(h.err(c, 10, "describe", json!({"object":"newref:0"}))["code"], json!(40109));
}

#[test]
fn backend_panic_is_an_internal_error() {
    let mut h = Harness::new();
    let c = h.conn();
    let p = h.ok(c, 1, "create", json!({"type":"MediaPipeline"}))["value"].clone();
    let e = h.err(c, 2, "invoke", json!({"object":p,"operation":"panic"}));
    assert_eq!(e["code"], json!(-32603));
    assert!(e.get("data").is_none());
    assert_eq!(h.ok(c, 3, "ping", Value::Null)["value"], json!("pong"));
}

// --- §5 result shapes ---

#[test]
fn result_shapes_of_every_method() {
    let mut h = Harness::new();
    let c = h.conn();
    let r = h.ok(c, 1, "create", json!({"type":"MediaPipeline","properties":{}}));
    let s = sid(&r);
    let p = r["value"].as_str().unwrap().to_owned();
    assert_eq!(r, json!({"value": p, "sessionId": s.as_str()}));
    let r = h.ok(c, 2, "create", json!({"type":"WebRtcEndpoint","constructorParams":{"mediaPipeline":p}}));
    let w = r["value"].as_str().unwrap().to_owned();
    assert!(w.starts_with(&format!("{p}/")));
    // §5.5: void invoke keeps "value": null.
    let r = h.ok(c, 3, "invoke", json!({"object":w,"operation":"play","operationParams":"ignored"}));
    assert_eq!(r, json!({"sessionId": s.as_str(), "value": null}));
    assert!(r.as_object().unwrap().contains_key("value"));
    let r = h.ok(c, 4, "invoke", json!({"object":w,"operation":"echo","operationParams":{"a":1}}));
    assert_eq!(r["value"], json!({"a":1}));
    let e = h.err(c, 5, "invoke", json!({"object":w,"operation":"nope","operationParams":{"a":1,"b":2}}));
    assert_eq!(
        e,
        json!({"code":40008,"message":"Method 'nope' with 2 parameters not found","data":{"type":"MALFORMED_TRANSACTION"}})
    );
    let r = h.ok(c, 6, "subscribe", json!({"object":w,"type":"IceCandidateFound"}));
    assert_eq!(r, json!({"sessionId": s.as_str(), "value": r["value"]}));
    assert!(r["value"].as_str().unwrap().starts_with("sub-"));
    let only = json!({"sessionId": s.as_str()});
    assert_eq!(h.ok(c, 7, "unsubscribe", json!({"object":w,"subscription":r["value"]})), only);
    assert_eq!(h.ok(c, 8, "ref", json!({"object":w})), only);
    assert_eq!(h.ok(c, 9, "unref", json!({"object":w})), only);
    assert_eq!(h.ok(c, 10, "release", json!({"object":w})), only);
    assert_eq!(h.ok(c, 11, "release", json!({"object":"unknown"})), only);
    assert_eq!(h.err(c, 12, "ref", json!({"object":"unknown"}))["code"], json!(40101));
    assert_eq!(h.ok(c, 13, "keepAlive", json!({})), only);
    let resp = h.req(c, 14, "closeSession", json!({"release": true}));
    assert_eq!(resp, json!({"jsonrpc":"2.0","id":14,"result":null}));
    assert_eq!(h.b.count(&format!("release_session {s}")), 1);
    assert!(!h.d.has_session(&s));
}

// --- §3.2 GC ---

#[test]
fn gc_collects_a_session_one_to_two_periods_after_disconnect() {
    let mut h = Harness::new();
    let c = h.conn();
    let s = sid(&h.ok(c, 1, "create", json!({"type":"MediaPipeline"})));
    // Connected: never collected.
    for _ in 0..20 {
        assert!(h.advance(PERIOD / 4).is_empty());
    }
    h.d.close_connection(c);
    let mut waited = Duration::ZERO;
    let collected = loop {
        let c = h.advance(PERIOD / 4);
        waited += PERIOD / 4;
        if !c.is_empty() {
            break c;
        }
        assert!(waited <= 2 * PERIOD, "not collected after 2 periods");
    };
    assert_eq!(collected, vec![s.clone()]);
    assert!(waited >= PERIOD, "collected after only {waited:?}");
    assert_eq!(h.b.count(&format!("unref_session {s}")), 1);
    assert!(h.d.session_ids().is_empty());
    // Resuming a collected session fails like a restarted server (§3.3).
    let d = h.conn();
    assert_eq!(h.err(d, 1, "connect", json!({"sessionId": s.as_str()}))["code"], json!(40007));
}

#[test]
fn a_session_unbound_by_rebinding_is_collected_and_the_new_one_is_not() {
    let mut h = Harness::new();
    let c = h.conn();
    let s = sid(&h.ok(c, 1, "create", json!({"type":"MediaPipeline"})));
    h.ok(c, 2, "create", json!({"type":"MediaPipeline","sessionId":"t"}));
    assert_eq!(h.d.connection_of(&s), None);
    assert!(h.advance(PERIOD).is_empty());
    assert_eq!(h.advance(PERIOD), vec![s]);
    for _ in 0..8 {
        assert!(h.advance(PERIOD / 4).is_empty());
    }
    assert_eq!(h.d.session_ids(), vec![SessionId::from("t")]);
}

#[test]
fn reconnecting_within_the_window_resumes_the_session() {
    let mut h = Harness::new();
    let a = h.conn();
    let s = sid(&h.ok(a, 1, "create", json!({"type":"MediaPipeline"})));
    h.d.close_connection(a);
    assert!(h.advance(PERIOD).is_empty());
    let b = h.conn();
    h.ok(b, 2, "connect", json!({"sessionId": s.as_str()}));
    assert_eq!(h.d.connection_of(&s), Some(b));
    for _ in 0..12 {
        assert!(h.advance(PERIOD / 4).is_empty());
    }
}

// --- §3.4 cache ---

#[test]
fn cache_replays_success_without_executing_again() {
    let mut h = Harness::new();
    let c = h.conn();
    let req = json!({"jsonrpc":"2.0","id":7,"method":"create","params":{"type":"MediaPipeline","sessionId":"s"}});
    let first = h.send(c, req.clone());
    h.now += Duration::from_secs(19);
    let again = h.send(c, req.clone());
    assert_eq!(first, again);
    assert_eq!(h.b.count("create"), 1);
    // Another id, or another session, executes.
    let mut other = req.clone();
    other["id"] = json!("7");
    h.send(c, other);
    assert_eq!(h.b.count("create"), 2);
}

#[test]
fn cache_replays_errors_too() {
    let mut h = Harness::new();
    let c = h.conn();
    let req = json!({"jsonrpc":"2.0","id":3,"method":"describe","params":{"object":"0_kurento.MediaPipeline","sessionId":"s"}});
    let first = h.send(c, req.clone());
    assert_eq!(first["error"]["code"], json!(40101));
    h.ok(c, 4, "create", json!({"type":"MediaPipeline","sessionId":"s"})); // now the object exists
    assert_eq!(h.send(c, req.clone()), first);
    assert_eq!(h.b.count("describe"), 1);
}

#[test]
fn cache_expires_after_20_seconds_and_frees_entries() {
    let mut h = Harness::new();
    let c = h.conn();
    let req = json!({"jsonrpc":"2.0","id":1,"method":"create","params":{"type":"MediaPipeline","sessionId":"s"}});
    h.send(c, req.clone());
    for i in 2..100 {
        h.ok(c, i, "ping", Value::Null);
    }
    assert_eq!(h.d.cached_responses(), 99);
    assert!(h.d.poll_timeout() <= h.now + REQUEST_CACHE_TTL + Duration::from_secs(1));
    h.advance(Duration::from_secs(21));
    assert_eq!(h.d.cached_responses(), 0);
    let again = h.send(c, req);
    assert_ne!(again["result"]["value"], Value::Null);
    assert_eq!(h.b.count("create"), 2);
}

#[test]
fn requests_without_session_are_cached_under_the_result_session() {
    let mut h = Harness::new();
    let c = h.conn();
    let first = h.send(c, json!({"jsonrpc":"2.0","id":5,"method":"create","params":{"type":"MediaPipeline"}}));
    let s = sid(&first["result"]);
    // Retransmission after a reconnect, now with the sessionId attached.
    let d = h.conn();
    let replay = h.send(
        d,
        json!({"jsonrpc":"2.0","id":5,"method":"create","params":{"type":"MediaPipeline","sessionId":s.as_str()}}),
    );
    assert_eq!(replay, first);
    assert_eq!(h.b.count("create"), 1);
    // Replay re-applies the association.
    assert_eq!(h.d.connection_of(&s), Some(d));
}

#[test]
fn injected_session_is_used_for_the_cache_lookup() {
    let mut h = Harness::new();
    let c = h.conn();
    h.ok(c, 1, "connect", Value::Null);
    let req = json!({"jsonrpc":"2.0","id":2,"method":"create","params":{"type":"MediaPipeline"}});
    let a = h.send(c, req.clone());
    let b = h.send(c, req);
    assert_eq!(a, b);
    assert_eq!(h.b.count("create"), 1);
}

#[test]
fn disabled_cache_executes_every_request() {
    let mut h = Harness::with(|c| c.disable_request_cache = true);
    let c = h.conn();
    let req = json!({"jsonrpc":"2.0","id":1,"method":"create","params":{"type":"MediaPipeline","sessionId":"s"}});
    let a = h.send(c, req.clone());
    let b = h.send(c, req);
    assert_ne!(a, b);
    assert_eq!(h.b.count("create"), 2);
    assert_eq!(h.d.cached_responses(), 0);
}

// --- §5.9 transaction ---

fn op(i: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc":"2.0","id":i,"method":method,"params":params})
}

#[test]
fn transaction_substitutes_newrefs_and_answers_per_operation() {
    let mut h = Harness::new();
    let c = h.conn();
    let r = h.ok(
        c,
        3,
        "transaction",
        json!({"sessionId":"s","object":"ignored","operations":[
            op(0, "create", json!({"type":"MediaPipeline"})),
            op(1, "create", json!({"type":"PlayerEndpoint","constructorParams":{"mediaPipeline":"newref:0","uri":"file:///a"}})),
            op(2, "invoke", json!({"object":"newref:1","operation":"play"})),
            op(3, "invoke", json!({"object":"newref:1","operation":"echo","operationParams":{"list":["newref:0"]}})),
        ]}),
    );
    let v = r["value"].as_array().unwrap();
    assert_eq!(r["sessionId"], json!("s"));
    assert_eq!(v.len(), 4);
    let p = v[0]["result"]["value"].as_str().unwrap();
    let e = v[1]["result"]["value"].as_str().unwrap();
    assert!(e.starts_with(&format!("{p}/")));
    for (i, resp) in v.iter().enumerate() {
        assert_eq!(resp["id"], json!(i));
        assert_eq!(resp["jsonrpc"], json!("2.0"));
        assert_eq!(resp["result"]["sessionId"], json!("s"));
    }
    assert_eq!(v[2]["result"], json!({"sessionId":"s","value":null}));
    assert_eq!(v[3]["result"]["value"], json!({"list":[p]}));
    assert_eq!(h.b.count("create s"), 2);
}

#[test]
fn transaction_stops_at_first_failure() {
    let mut h = Harness::new();
    let c = h.conn();
    let r = h.ok(
        c,
        1,
        "transaction",
        json!({"operations":[
            op(0, "create", json!({"type":"MediaPipeline"})),
            op(1, "create", json!({"type":"Bad"})),
            op(2, "create", json!({"type":"MediaPipeline"})),
        ]}),
    );
    let v = r["value"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["id"], json!(1));
    assert_eq!(v[1]["error"]["code"], json!(40108));
    assert_eq!(h.b.count("create"), 2);
    // The outer response is a success and binds the connection.
    assert_eq!(h.d.session_of(c), Some(&sid(&r)));
}

#[test]
fn transaction_id_mismatch_fails_whole_and_executes_nothing() {
    let mut h = Harness::new();
    let c = h.conn();
    let e = h.err(
        c,
        1,
        "transaction",
        json!({"operations":[op(0, "create", json!({"type":"MediaPipeline"})), op(2, "create", json!({"type":"MediaPipeline"}))]}),
    );
    assert_eq!(
        e,
        json!({"code":40008,"message":"Id of request '1' should be '1'","data":{"type":"MALFORMED_TRANSACTION"}})
    );
    assert!(h.b.calls().is_empty());
}

#[test]
fn transaction_newref_errors() {
    let mut h = Harness::new();
    let c = h.conn();
    let e = h.err(c, 1, "transaction", json!({"operations":[op(0, "describe", json!({"object":"newref:5"}))]}));
    assert_eq!(e["message"], json!("Result not found on request 5"));
    assert_eq!(e["code"], json!(40008));
    let e = h.err(c, 2, "transaction", json!({"operations":[op(0, "describe", json!({"object":"newref:x"}))]}));
    assert_eq!(e["message"], json!("Invalid index of newref 'x'"));
}

#[test]
fn nested_transaction_is_rejected() {
    let mut h = Harness::new();
    let c = h.conn();
    let e = h.err(c, 1, "transaction", json!({"operations":[op(0, "transaction", json!({"operations":[]}))]}));
    assert_eq!(e["code"], json!(40008));
}

#[test]
fn transaction_inner_operations_are_never_cached() {
    let mut h = Harness::new();
    let c = h.conn();
    h.ok(
        c,
        10,
        "transaction",
        json!({"sessionId":"s","operations":[op(0, "create", json!({"type":"MediaPipeline"}))]}),
    );
    // Top-level id 0 in the same session is a new request, not a replay.
    let r = h.ok(c, 0, "create", json!({"type":"MediaPipeline","sessionId":"s"}));
    assert!(r["value"].is_string());
    assert_eq!(h.b.count("create"), 2);
    assert_eq!(h.d.cached_responses(), 2);
}

#[test]
fn transaction_inner_envelope_and_session_methods() {
    let mut h = Harness::new();
    let c = h.conn();
    let r = h.ok(
        c,
        1,
        "transaction",
        json!({"sessionId":"s","operations":[
            op(0, "ping", Value::Null),
            op(1, "connect", Value::Null),
            op(2, "keepAlive", Value::Null),
            {"id":3,"method":"create"},
        ]}),
    );
    let v = r["value"].as_array().unwrap();
    assert_eq!(v[0]["result"], json!({"value":"pong","sessionId":"s"}));
    assert_eq!(v[1]["result"]["serverId"], json!(h.d.server_id()));
    assert_eq!(v[2]["result"], json!({"sessionId":"s"}));
    assert_eq!(v[3]["error"]["code"], json!(-32600));
}

// --- limits ---

#[test]
fn too_long_session_id_is_rejected_without_side_effects() {
    let mut h = Harness::new();
    let c = h.conn();
    let long = "x".repeat(129);
    let e = h.err(c, 1, "create", json!({"type":"MediaPipeline","sessionId":long}));
    assert_eq!(
        e,
        json!({"code":40007,"message":"Invalid session: sessionId longer than 128 bytes","data":{"type":"INVALID_SESSION"}})
    );
    assert!(h.d.session_ids().is_empty());
    assert_eq!(h.d.cached_responses(), 0);
    assert!(h.b.calls().is_empty());
    // ping still never fails, and does not echo the oversized id.
    assert_eq!(h.ok(c, 2, "ping", json!({"sessionId": "y".repeat(200)})), json!({"value":"pong"}));
    h.ok(c, 3, "create", json!({"type":"MediaPipeline","sessionId":"x".repeat(128)}));
}

#[test]
fn sessions_limit_gives_not_enough_resources() {
    let mut h = Harness::with(|c| c.limits.max_sessions = 2);
    let c = h.conn();
    h.ok(c, 1, "create", json!({"type":"MediaPipeline","sessionId":"a"}));
    h.ok(c, 2, "create", json!({"type":"MediaPipeline","sessionId":"b"}));
    let e = h.err(c, 3, "create", json!({"type":"MediaPipeline","sessionId":"c"}));
    assert_eq!(e, json!({"code":40009,"message":"Reached sessions limit: 2","data":{"type":"NOT_ENOUGH_RESOURCES"}}));
    let d = h.conn();
    assert_eq!(h.err(d, 1, "connect", Value::Null)["code"], json!(40009));
    // Existing sessions keep working.
    h.ok(c, 4, "create", json!({"type":"MediaPipeline","sessionId":"a"}));
    assert_eq!(h.b.count("create"), 3);
}

#[test]
fn transaction_operations_limit() {
    let mut h = Harness::with(|c| c.limits.max_transaction_operations = 3);
    let c = h.conn();
    let ops: Vec<Value> = (0..4).map(|i| op(i, "ping", Value::Null)).collect();
    let e = h.err(c, 1, "transaction", json!({"operations": ops}));
    assert_eq!(e["code"], json!(40008));
    assert!(e["message"].as_str().unwrap().contains("limit of 3"), "{e}");
    assert!(h.d.session_ids().is_empty());
}

#[test]
fn huge_transaction_with_huge_session_id_is_rejected_cheaply() {
    let mut h = Harness::new();
    let c = h.conn();
    let long = "s".repeat(64 * 1024);
    let ops: Vec<Value> = (0..10_000).map(|i| op(i, "describe", json!({"object":"manager_ServerManager"}))).collect();
    let text =
        json!({"jsonrpc":"2.0","id":1,"method":"transaction","params":{"sessionId":long,"operations":ops}}).to_string();
    assert!(text.len() > 900_000 && text.len() < 4 * 1024 * 1024);
    let started = std::time::Instant::now();
    let resp = h.raw(c, &text).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(resp["error"]["code"], json!(40007));
    assert!(resp.to_string().len() < 512);
    assert!(h.b.calls().is_empty());
    assert!(h.d.session_ids().is_empty());
    // Same with a short session id: the operations limit rejects it.
    let text = text.replace(&long, "short");
    let resp = h.raw(c, &text).unwrap();
    assert_eq!(resp["error"]["code"], json!(40008));
    assert!(h.b.calls().is_empty());
}

#[test]
fn oversize_message_is_rejected_with_null_id() {
    let mut h = Harness::with(|c| c.limits.max_message_bytes = 100);
    let c = h.conn();
    let big = json!({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"x".repeat(200)}}).to_string();
    let resp = h.raw(c, &big).unwrap();
    assert_eq!(resp["id"], Value::Null);
    assert_eq!(resp["error"]["code"], json!(-32600));
    assert!(resp["error"]["message"].as_str().unwrap().contains("100"));
    assert_eq!(h.ok(c, 2, "ping", Value::Null)["value"], json!("pong"));
}

// --- Deferred calls and slow-call classification ---

#[test]
fn a_deferred_invoke_returns_its_wait_then_the_value() {
    let mut h = Harness::new();
    let c = h.conn();
    let p = h.ok(c, 1, "create", json!({"type":"MediaPipeline"}))["value"].clone();
    let s = h.d.session_of(c).cloned().unwrap();
    let req = json!({"jsonrpc":"2.0","id":2,"method":"invoke","params":{"object":p,"operation":"sample"}});
    let Step::Call(pending) = h.d.begin(c, codec::decode(&req.to_string(), 1 << 20).unwrap(), h.now) else {
        panic!("needs the backend")
    };
    assert!(pending.is_slow(&h.b));
    let Executed::Waiting(w) = pending.start(&h.b) else { panic!("deferred") };
    assert_eq!(w.wait(), Duration::from_millis(5));
    let r = h.d.complete(w.finish(), h.now);
    let v: Value = serde_json::from_str(&r.text.unwrap()).unwrap();
    assert_eq!(v["result"], json!({"sessionId": s.as_str(), "value": 42.5}));
    // Inside a transaction the wait happens inline.
    let r = h.ok(c, 3, "transaction", json!({"operations":[op(0,"invoke",json!({"object":p,"operation":"sample"}))]}));
    assert_eq!(r["value"][0]["result"]["value"], json!(42.5));
}

#[test]
fn transactions_with_a_slow_operation_are_slow() {
    let b = FakeBackend::default();
    let t = |ops: Value| {
        Call::Transaction { operations: ops.as_array().unwrap().clone(), max_wait: Duration::ZERO }.is_slow(&b)
    };
    assert!(t(json!([
        op(0, "create", json!({"type":"X"})),
        op(1, "invoke", json!({"object":"o","operation":"negotiate"}))
    ])));
    assert!(!t(json!([op(0, "invoke", json!({"object":"o","operation":"play"}))])));
    let quick = Call::Invoke { object: "o".into(), operation: "play".into(), operation_params: None };
    assert!(!quick.is_slow(&b));
}

// --- Tenants ---

fn tenant(name: &str) -> Tenant {
    Tenant { id: TenantId::new(name), admin: false }
}

#[test]
fn another_tenants_session_id_gives_no_access() {
    let mut h = Harness::new();
    let a = h.d.open_connection_for(tenant("a"));
    let b = h.d.open_connection_for(tenant("b"));
    let r = h.ok(a, 1, "create", json!({"type":"MediaPipeline"}));
    let sa = sid(&r);
    let calls_before = h.b.calls().len();
    // Every method naming a's session from b is refused, and executes nothing.
    for (i, (m, p)) in [
        ("create", json!({"type":"MediaPipeline","sessionId":sa.as_str()})),
        ("describe", json!({"object":r["value"],"sessionId":sa.as_str()})),
        ("connect", json!({"sessionId":sa.as_str()})),
        ("keepAlive", json!({"sessionId":sa.as_str()})),
        ("closeSession", json!({"sessionId":sa.as_str(),"release":true})),
        ("unref", json!({"object":r["value"],"sessionId":sa.as_str()})),
    ]
    .into_iter()
    .enumerate()
    {
        let e = h.err(b, 10 + i as i64, m, p);
        assert_eq!(e["code"], json!(codes::INVALID_SESSION), "{m}");
    }
    // The duplicate-request cache does not replay a's response to b.
    let e = h.err(b, 1, "create", json!({"type":"MediaPipeline","sessionId":sa.as_str()}));
    assert_eq!(e["code"], json!(codes::INVALID_SESSION));
    // ping never fails, but does not bind b to a's session.
    let pong = h.ok(b, 20, "ping", json!({"sessionId":sa.as_str()}));
    assert_eq!(pong, json!({"value":"pong"}));
    assert_eq!(h.d.session_of(b), None);
    assert_eq!(h.d.connection_of(&sa), Some(a));
    assert_eq!(h.b.calls().len(), calls_before, "nothing executed for b");
    // b's own session is listed only for b.
    let sb = sid(&h.ok(b, 21, "create", json!({"type":"MediaPipeline"})));
    assert_eq!(h.d.session_ids_of(&TenantId::new("a")), vec![sa.clone()]);
    assert_eq!(h.d.session_ids_of(&TenantId::new("b")), vec![sb]);
    // Same tenant: sharing by session id works as in KMS.
    let a2 = h.d.open_connection_for(tenant("a"));
    assert_eq!(h.ok(a2, 30, "connect", json!({"sessionId":sa.as_str()}))["sessionId"], json!(sa.as_str()));
}

#[test]
fn the_caller_passed_to_the_backend_carries_the_connection_tenant() {
    struct Tenants(Mutex<Vec<(String, bool)>>);
    impl MediaBackend for Tenants {
        fn create(&self, c: &dyn Caller, _: &str, _: Option<&Value>) -> Result<String, RpcError> {
            self.0.lock().push((c.tenant().to_string(), c.is_admin()));
            Ok("x".into())
        }
        fn describe(&self, _: &dyn Caller, _: &str) -> Result<Description, RpcError> {
            unreachable!()
        }
        fn invoke(&self, _: &dyn Caller, _: &str, _: &str, _: Option<&Map<String, Value>>) -> Result<Value, RpcError> {
            unreachable!()
        }
        fn subscribe(&self, _: &dyn Caller, _: &str, _: &str) -> Result<String, RpcError> {
            unreachable!()
        }
        fn unsubscribe(&self, _: &dyn Caller, _: &str, _: &str) -> Result<(), RpcError> {
            unreachable!()
        }
        fn release(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
            unreachable!()
        }
        fn ref_object(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
            unreachable!()
        }
        fn unref_object(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
            unreachable!()
        }
        fn unref_session(&self, _: &SessionId) {}
        fn release_session(&self, _: &SessionId) {}
    }
    let now = Instant::now();
    let mut d = Dispatcher::new(&ServerConfig::default(), now);
    let b = Tenants(Mutex::new(vec![]));
    let c1 = d.open_connection_for(Tenant { id: TenantId::new("ops"), admin: true });
    let c2 = d.open_connection_for(tenant("app"));
    let c3 = d.open_connection();
    for c in [c1, c2, c3] {
        d.handle_text(c, r#"{"jsonrpc":"2.0","id":1,"method":"create","params":{"type":"T"}}"#, now, &b);
    }
    let seen = b.0.lock().clone();
    assert_eq!(seen, vec![("ops".into(), true), ("app".into(), false), ("default".into(), true)]);
}

#[test]
fn waits_inside_a_transaction_share_one_budget() {
    let mut h = Harness::with(|c| c.limits.max_transaction_wait = Duration::from_millis(12));
    let c = h.conn();
    let p = h.ok(c, 1, "create", json!({"type":"MediaPipeline"}))["value"].clone();
    let sample = |i| op(i, "invoke", json!({"object":p,"operation":"sample"}));
    let r = h.ok(c, 2, "transaction", json!({"operations":[sample(0), sample(1), sample(2), sample(3)]}));
    let v = r["value"].as_array().unwrap();
    assert_eq!(v.len(), 3, "stops at the first failure: {r}");
    assert_eq!(v[1]["result"]["value"], json!(42.5));
    assert_eq!(v[2]["error"]["code"], json!(codes::NOT_ENOUGH_RESOURCES));
    assert!(v[2]["error"]["message"].as_str().unwrap().contains("maxTransactionWaitMs"));
    assert_eq!(h.b.count("sample-start"), 3);
}
