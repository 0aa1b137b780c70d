//! Measures create+release (PassThrough) pairs per second and per-request
//! latency against a running server, with N concurrent connections, using a
//! raw WebSocket client (the JS client would cost a core by itself).
//!
//! Usage: bench-rpc <ws-url> <connections> <pairs-per-connection>
//! Prints one JSON line with the results.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Conn {
    ws: Ws,
    next: u64,
    session: Option<String>,
}

impl Conn {
    async fn call(&mut self, method: &str, mut params: Value) -> Value {
        self.next += 1;
        if let (Some(s), Some(o)) = (&self.session, params.as_object_mut()) {
            o.insert("sessionId".into(), json!(s));
        }
        let msg = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).await.expect("send");
        loop {
            let m = self.ws.next().await.expect("open").expect("frame");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["id"] == json!(self.next) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                if let Some(s) = v["result"]["sessionId"].as_str() {
                    self.session = Some(s.to_string());
                }
                return v["result"]["value"].clone();
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "ws://127.0.0.1:8888/kurento".into());
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let pairs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);

    let mut tasks = vec![];
    let start_barrier = std::sync::Arc::new(tokio::sync::Barrier::new(conns + 1));
    for _ in 0..conns {
        let url = url.clone();
        let barrier = start_barrier.clone();
        tasks.push(tokio::spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
            let mut c = Conn { ws, next: 0, session: None };
            let pipeline = c.call("create", json!({"type": "MediaPipeline"})).await;
            barrier.wait().await;
            let mut create = Vec::with_capacity(pairs);
            let mut release = Vec::with_capacity(pairs);
            for _ in 0..pairs {
                let t = Instant::now();
                let id = c
                    .call("create", json!({"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}))
                    .await;
                create.push(t.elapsed());
                let t = Instant::now();
                c.call("release", json!({"object": id})).await;
                release.push(t.elapsed());
            }
            c.call("release", json!({"object": pipeline})).await;
            (create, release)
        }));
    }
    start_barrier.wait().await;
    let t0 = Instant::now();
    let mut create = vec![];
    let mut release = vec![];
    for t in tasks {
        let (c, r) = t.await.expect("task");
        create.extend(c);
        release.extend(r);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    create.sort();
    release.sort();
    let total = create.len();
    let out = json!({
        "connections": conns,
        "pairs": total,
        "seconds": elapsed,
        "pairs_per_second": total as f64 / elapsed,
        "create_ms": {"p50": percentile(&create, 0.5), "p99": percentile(&create, 0.99)},
        "release_ms": {"p50": percentile(&release, 0.5), "p99": percentile(&release, 0.99)},
    });
    println!("{out}");
}
