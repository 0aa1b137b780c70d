//! A panic caught in one call must not turn every later call into -32603
//! (issue 8 §3). The server's locks do not poison (`kms_core::sync`); this
//! drives a class that panics while holding its own lock, and one whose
//! teardown panics, through the dispatcher and the real registry.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use kms_core::rt::{ClassInfo, Ctx, Error, ModuleDescriptor, ObjectBase, Params, RemoteObject, Result, Value};
use kms_core::sync::Mutex;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{ConnectionId, Dispatcher, SessionHub};
use serde_json::json;

/// A counter behind a lock, with an operation that panics holding it.
struct Counter {
    base: ObjectBase,
    value: Mutex<i64>,
    /// `release` panics when set.
    fragile: bool,
}

impl RemoteObject for Counter {
    fn object(&self) -> &ObjectBase {
        &self.base
    }

    fn release(&self) {
        if self.fragile {
            let _held = self.value.lock();
            panic!("teardown failed while locked");
        }
    }
}

fn factory(ctx: &Ctx, params: &Params<'_>) -> Result<Arc<dyn Any + Send + Sync>> {
    let fragile = params.opt::<bool>("fragile")?.unwrap_or(false);
    Ok(Arc::new(Counter { base: ctx.new_object_base(None), value: Mutex::new(0), fragile }))
}

fn invoke(obj: &(dyn Any + Send + Sync), _ctx: &Ctx, op: &str, params: &Params<'_>) -> Result<Value> {
    let c = obj.downcast_ref::<Counter>().expect("a Counter");
    match op {
        "add" => {
            let mut v = c.value.lock();
            *v += 1;
            Ok(json!(*v))
        }
        "panicWhileLocked" => {
            let mut v = c.value.lock();
            *v += 100;
            panic!("bug while holding the counter's lock");
        }
        _ => Err(Error::method_not_found(op, params.len())),
    }
}

fn module() -> ModuleDescriptor {
    ModuleDescriptor {
        name: "paniky",
        version: "1.0.0",
        namespace: "paniky",
        generation_time: "now",
        kmd: "{}",
        complex_types: &[],
        classes: vec![ClassInfo {
            name: "Counter",
            qualified_name: "paniky.Counter",
            module: "paniky",
            hierarchy: &["kurento.MediaObject"],
            events: &[],
            factory: Some(factory),
            invoke,
            as_remote: |any| any.downcast::<Counter>().expect("a Counter"),
            casts: vec![],
        }],
    }
}

struct Client {
    d: Dispatcher,
    registry: Registry,
    conn: ConnectionId,
    next_id: i64,
}

impl Client {
    fn new() -> Self {
        let cfg = ServerConfig::default();
        let hub = SessionHub::new(&cfg);
        let registry =
            Registry::new(vec![kms_core::module::descriptor(), module()], hub.notifier(), CoreConfig::default());
        let mut d = Dispatcher::new(&cfg, Instant::now());
        let conn = d.open_connection();
        Client { d, registry, conn, next_id: 0 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let req = json!({"jsonrpc":"2.0","id":self.next_id,"method":method,"params":params});
        let reply = self.d.handle_text(self.conn, &req.to_string(), Instant::now(), &self.registry);
        serde_json::from_str(&reply.text.expect("a response")).unwrap()
    }

    fn invoke(&mut self, object: &Value, operation: &str) -> Value {
        self.call("invoke", json!({"object": object, "operation": operation}))
    }
}

#[test]
fn a_panic_holding_an_objects_lock_leaves_the_object_usable() {
    let mut c = Client::new();
    let counter = c.call("create", json!({"type": "Counter"}))["result"]["value"].clone();
    assert_eq!(c.invoke(&counter, "add")["result"]["value"], json!(1));

    let r = c.invoke(&counter, "panicWhileLocked");
    assert_eq!(r["error"]["code"], json!(-32603), "{r}");

    // Later calls on the same object, and on others, succeed.
    for expected in [102, 103] {
        let r = c.invoke(&counter, "add");
        assert_eq!(r["result"]["value"], json!(expected), "{r}");
    }
    let other = c.call("create", json!({"type": "Counter"}))["result"]["value"].clone();
    assert_eq!(c.invoke(&other, "add")["result"]["value"], json!(1));
    assert!(c.call("release", json!({"object": counter}))["result"].is_object());
}

#[test]
fn a_panic_in_teardown_does_not_break_the_registry() {
    let mut c = Client::new();
    let fragile =
        c.call("create", json!({"type": "Counter", "constructorParams": {"fragile": true}}))["result"]["value"].clone();
    let r = c.call("release", json!({"object": fragile}));
    assert_eq!(r["error"]["code"], json!(-32603), "{r}");
    // The registry is intact: objects are created, used, listed, released.
    let a = c.call("create", json!({"type": "Counter"}))["result"]["value"].clone();
    assert_eq!(c.invoke(&a, "add")["result"]["value"], json!(1));
    let d = c.call("describe", json!({"object": a}));
    assert_eq!(d["result"]["type"], json!("Counter"), "{d}");
    assert!(c.call("release", json!({"object": a}))["result"].is_object());
    assert_eq!(c.invoke(&a, "add")["error"]["code"], json!(40101));
}
