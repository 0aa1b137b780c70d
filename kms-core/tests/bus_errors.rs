//! GStreamer bus errors reach the client as an `Error` event on the object
//! whose bin holds the failing element (spec §7.2), through the real
//! WebSocket server: errors inside a PassThrough are the PassThrough's,
//! errors of elements owned by no object are the pipeline's, warnings are
//! only logged.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::{Server, ServerConfig, SessionHub};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    ws: Ws,
    next: i64,
    events: Vec<Value>,
}

impl Client {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.ws.send(Message::text(req.to_string())).await.unwrap();
        loop {
            let msg: Value = self.read().await.expect("answer");
            if msg["id"] == json!(id) {
                assert!(msg.get("error").is_none(), "{method}: {msg}");
                return msg["result"].clone();
            }
            self.events.push(msg);
        }
    }

    async fn read(&mut self) -> Option<Value> {
        let m = tokio::time::timeout(Duration::from_secs(5), self.ws.next()).await.ok()??.ok()?;
        serde_json::from_str(m.to_text().ok()?).ok()
    }

    /// Error events received within `wait`.
    async fn error_events(&mut self, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Ok(v) = serde_json::from_str::<Value>(m.to_text().unwrap_or("")) {
                self.events.push(v);
            }
        }
        std::mem::take(&mut self.events)
            .into_iter()
            .filter(|e| e["method"] == "onEvent" && e["params"]["value"]["type"] == "Error")
            .collect()
    }
}

/// An element added to `bin` that can post messages.
fn child_of(bin: &gst::Bin) -> gst::Element {
    let e = gst::ElementFactory::make("identity").build().unwrap();
    bin.add(&e).unwrap();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_raised_on_the_element_that_owns_the_failing_gstreamer_element() {
    kms_core::module::init().unwrap();
    let config = ServerConfig::default();
    let hub = SessionHub::new(&config);
    let registry = Registry::new(vec![kms_core::module::descriptor()], hub.notifier(), CoreConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listeners(config, hub, Arc::new(registry.clone()), Some(listener), None).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/kurento")).await.unwrap();
    let mut c = Client { ws, next: 0, events: vec![] };
    let pipeline = c.call("create", json!({"type": "MediaPipeline"})).await["value"].as_str().unwrap().to_string();
    let pass = c.call("create", json!({"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}})).await
        ["value"]
        .as_str()
        .unwrap()
        .to_string();
    for obj in [&pipeline, &pass] {
        c.call("subscribe", json!({"object": obj, "type": "Error"})).await;
    }

    // An error deep inside the PassThrough's bin.
    let h = registry.get(&pass).unwrap();
    let bin = h.remote.element().unwrap().bin().clone();
    let inner = gst::Bin::builder().name("inner").build();
    bin.add(&inner).unwrap();
    let failing = child_of(&inner);
    gst::element_error!(failing, gst::ResourceError::OpenWrite, ("Could not open file \"/x/y.webm\" for writing."));
    let errors = c.error_events(Duration::from_millis(500)).await;
    assert_eq!(errors.len(), 1, "one Error event: {errors:?}");
    let v = &errors[0]["params"]["value"];
    assert_eq!(v["object"], json!(pass), "raised on the owning element, not the pipeline");
    assert_eq!(v["data"]["type"], "RESOURCE_ERROR_OPEN");
    assert_eq!(v["data"]["errorCode"], json!(gst::glib::Error::new(gst::ResourceError::OpenWrite, "x").code()));
    let description = v["data"]["description"].as_str().unwrap();
    assert!(description.contains("Could not open file"), "{description}");
    assert_eq!(v["data"]["source"], json!(pass));

    // A decoder-style stream error: its own type.
    gst::element_error!(failing, gst::StreamError::Decode, ("Could not decode stream."));
    let errors = c.error_events(Duration::from_millis(500)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["params"]["value"]["data"]["type"], "STREAM_ERROR_DECODE");

    // Warnings are logged, not raised.
    gst::element_warning!(failing, gst::StreamError::Decode, ("A warning."));
    assert!(c.error_events(Duration::from_millis(300)).await.is_empty(), "warnings raise no event");

    // An element owned by no object: the pipeline's error.
    let pipe_bin = bin.parent().unwrap().downcast::<gst::Bin>().unwrap();
    let orphan = child_of(&pipe_bin);
    gst::element_error!(orphan, gst::CoreError::Failed, ("Internal failure."));
    let errors = c.error_events(Duration::from_millis(500)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["params"]["value"]["object"], json!(pipeline));
    assert_eq!(errors[0]["params"]["value"]["data"]["type"], "CORE_ERROR");

    // After release the bin is no longer the element's: nothing to report
    // on a released object.
    c.call("release", json!({"object": pass})).await;
    gst::element_error!(failing, gst::ResourceError::Write, ("Late."));
    let errors = c.error_events(Duration::from_millis(300)).await;
    assert!(errors.iter().all(|e| e["params"]["value"]["object"] != json!(pass)), "{errors:?}");

    c.call("release", json!({"object": pipeline})).await;
    let _ = stop_tx.send(());
    let _ = running.await;
}

#[test]
fn error_types_follow_the_gerror_domain_and_code() {
    gst::init().unwrap();
    let t = |e: gst::glib::Error| kms_core::pipeline::error_type(&e);
    assert_eq!(t(gst::glib::Error::new(gst::ResourceError::OpenRead, "x")), "RESOURCE_ERROR_OPEN");
    assert_eq!(t(gst::glib::Error::new(gst::ResourceError::NoSpaceLeft, "x")), "RESOURCE_ERROR_NO_SPACE_LEFT");
    assert_eq!(t(gst::glib::Error::new(gst::ResourceError::Write, "x")), "RESOURCE_ERROR_WRITE");
    assert_eq!(t(gst::glib::Error::new(gst::StreamError::Failed, "x")), "STREAM_ERROR_FAILED");
    assert_eq!(t(gst::glib::Error::new(gst::StreamError::Decode, "x")), "STREAM_ERROR_DECODE");
    assert_eq!(t(gst::glib::Error::new(gst::glib::FileError::Acces, "x")), "UNEXPECTED_ELEMENT_ERROR");
}
