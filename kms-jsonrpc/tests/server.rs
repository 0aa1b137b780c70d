//! The real server on 127.0.0.1 with a fake backend, driven by raw
//! WebSocket clients (spec §1, §3, §7.1).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kms_jsonrpc::{
    AccessConfig, Caller, Deferred, Description, Error, Invoked, MediaBackend, Notifier, RpcError, Server,
    ServerConfig, SessionHub, SessionId, TlsConfig,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Knows one object, a `sleep` operation that blocks its thread (slow), and
/// `nap`, which waits without a thread (deferred).
struct FakeBackend;

impl MediaBackend for FakeBackend {
    fn create(&self, _: &dyn Caller, type_name: &str, _: Option<&Value>) -> Result<String, RpcError> {
        Ok(format!("{}_kurento.{type_name}", uuid::Uuid::new_v4()))
    }
    fn describe(&self, _: &dyn Caller, object: &str) -> Result<Description, RpcError> {
        if object != "manager_ServerManager" {
            return Err(RpcError::object_not_found(object));
        }
        Ok(Description {
            type_name: "ServerManager".into(),
            qualified_type: "kurento.ServerManager".into(),
            hierarchy: vec!["kurento.MediaObject".into()],
        })
    }
    fn invoke(
        &self,
        _: &dyn Caller,
        _: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value, RpcError> {
        match operation {
            "sleep" => {
                let ms = params.and_then(|p| p.get("ms")).and_then(Value::as_u64).unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                Ok(json!(ms))
            }
            _ => Err(RpcError::method_not_found_invoke(operation, 0)),
        }
    }
    fn invoke_deferred(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Invoked, RpcError> {
        if operation == "nap" {
            let ms = params.and_then(|p| p.get("ms")).and_then(Value::as_u64).unwrap_or(0);
            return Ok(Invoked::Later(Deferred {
                wait: Duration::from_millis(ms),
                finish: Box::new(move || Ok(json!(ms))),
            }));
        }
        self.invoke(caller, object, operation, params).map(Invoked::Value)
    }
    fn is_slow(&self, _: &str, operation: &str) -> bool {
        operation == "sleep"
    }
    fn subscribe(&self, _: &dyn Caller, _: &str, _: &str) -> Result<String, RpcError> {
        Ok("sub".into())
    }
    fn unsubscribe(&self, _: &dyn Caller, _: &str, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn release(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn ref_object(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn unref_object(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn unref_session(&self, _: &SessionId) {}
    fn release_session(&self, _: &SessionId) {}
}

struct TestServer {
    addr: SocketAddr,
    secure: Option<SocketAddr>,
    notifier: Notifier,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl TestServer {
    async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_with_wss(configure, false).await
    }

    async fn start_with_wss(configure: impl FnOnce(&mut ServerConfig), wss: bool) -> Self {
        let mut cfg = ServerConfig::default();
        configure(&mut cfg);
        let hub = SessionHub::new(&cfg);
        let notifier = hub.notifier();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let wss = if wss { Some(TcpListener::bind("127.0.0.1:0").await.unwrap()) } else { None };
        let server = Server::from_listeners(cfg, hub, Arc::new(FakeBackend), Some(ws), wss).unwrap();
        let addr = server.local_addr().unwrap();
        let secure = server.secure_local_addr();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer { addr, secure, notifier, stop: Some(tx), task }
    }

    /// Plain and TLS listeners, the TLS one with the fixture certificate
    /// (an encrypted key).
    async fn start_tls() -> Self {
        Self::start_with_wss(
            |c| {
                c.secure = Some(TlsConfig {
                    port: 0,
                    certificate: fixture("server-encrypted.pem"),
                    password: Some("kurento".into()),
                })
            },
            true,
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn client(&self) -> Client {
        Client::connect(&self.url("/kurento")).await
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("run() returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: i64,
}

impl Client {
    async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
        Client { ws, next_id: 0 }
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    async fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({"jsonrpc":"2.0","id":id,"method":method});
        if !params.is_null() {
            req["params"] = params;
        }
        self.send_text(req.to_string()).await;
        id
    }

    /// Next text frame as JSON.
    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("no socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(f) => panic!("unexpected close: {f:?}"),
                _ => {}
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params).await;
        let resp = self.recv().await;
        assert_eq!(resp["id"], json!(id), "{resp}");
        resp
    }

    async fn ping(&mut self) -> Value {
        let resp = self.call("ping", json!({"interval": 5000})).await;
        assert_eq!(resp["result"]["value"], json!("pong"), "{resp}");
        resp
    }

    /// Waits for the server's close frame.
    async fn expect_close(&mut self) -> tungstenite::protocol::CloseFrame {
        loop {
            let msg = tokio::time::timeout(RECV_TIMEOUT, self.ws.next()).await.expect("close in time");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => {
                    // Keep reading so the library sends its close reply.
                    let _ =
                        tokio::time::timeout(RECV_TIMEOUT, async { while let Some(Ok(_)) = self.ws.next().await {} })
                            .await;
                    return frame;
                }
                Some(Ok(Message::Close(None))) | None => panic!("close without frame"),
                Some(Err(e)) => panic!("socket error instead of close: {e}"),
                Some(Ok(_)) => {}
            }
        }
    }
}

async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(RECV_TIMEOUT, tcp.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn healthcheck_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nOrigin: 127.0.0.1\r\n\r\n"
    )
}

fn upgrade_status(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_and_session_flow() {
    let srv = TestServer::start(|_| {}).await;
    let mut c = srv.client().await;
    assert_eq!(c.ping().await["result"], json!({"value":"pong"}));
    let r = c.call("describe", json!({"object":"manager_ServerManager"})).await;
    let s = r["result"]["sessionId"].as_str().unwrap().to_owned();
    // Injected from now on (§3.1).
    assert_eq!(c.ping().await["result"]["sessionId"], json!(s));
    drop(c);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_path_upgrades_but_a_wrong_one_is_closed_with_1002() {
    let srv = TestServer::start(|_| {}).await;
    let mut c = Client::connect(&srv.url("/other")).await;
    let frame = c.expect_close().await;
    assert_eq!(frame.code, CloseCode::Protocol);
    assert_eq!(frame.reason.as_str(), "Invalid path");
    // The query string is ignored for matching (§1.1).
    let mut ok = Client::connect(&srv.url("/kurento?foo=bar")).await;
    ok.ping().await;
    drop((c, ok));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_healthcheck_request_gets_500() {
    let srv = TestServer::start(|_| {}).await;
    let resp = raw_http(srv.addr, &healthcheck_request(srv.addr, "/kurento")).await;
    assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_answered_and_the_socket_stays_open() {
    let srv = TestServer::start(|_| {}).await;
    let mut c = srv.client().await;
    c.send_text("{not json".into()).await;
    assert_eq!(c.recv().await, json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error."}}));
    c.send_text(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.into()).await;
    assert_eq!(c.recv().await["error"]["code"], json!(-32600));
    // Notifications get no answer: the next frame is the ping's.
    c.send_text(r#"{"jsonrpc":"2.0","method":"ping"}"#.into()).await;
    c.ping().await;
    drop(c);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_is_answered_and_the_socket_stays_usable() {
    let srv = TestServer::start(|c| c.limits.max_message_bytes = 1024).await;
    let mut c = srv.client().await;
    let big = json!({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"x".repeat(3000)}});
    c.send_text(big.to_string()).await;
    let resp = c.recv().await;
    assert_eq!(resp["id"], Value::Null);
    assert_eq!(resp["error"]["code"], json!(-32600));
    assert!(resp["error"]["message"].as_str().unwrap().contains("1024"), "{resp}");
    c.ping().await;
    drop(c);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_is_required_when_configured() {
    let srv = TestServer::start(|c| c.access = AccessConfig::single_token("s3cret")).await;
    let err = tokio_tungstenite::connect_async(srv.url("/kurento")).await.unwrap_err();
    assert_eq!(upgrade_status(err), 401);
    let err = tokio_tungstenite::connect_async(srv.url("/kurento?access_token=wrong")).await.unwrap_err();
    assert_eq!(upgrade_status(err), 401);
    let mut q = Client::connect(&srv.url("/kurento?access_token=s3cret")).await;
    q.ping().await;
    let mut req = srv.url("/kurento").into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Bearer s3cret".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut h = Client { ws, next_id: 0 };
    h.ping().await;
    // The healthcheck still gets its 500.
    let resp = raw_http(srv.addr, &healthcheck_request(srv.addr, "/kurento")).await;
    assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
    drop((q, h));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_the_session_across_reconnection() {
    let srv = TestServer::start(|_| {}).await;
    let mut a = srv.client().await;
    let s = SessionId::from(a.call("connect", Value::Null).await["result"]["sessionId"].as_str().unwrap());
    let emit = |n: &Notifier, s: &SessionId, seq: i64| {
        let (n, s) = (n.clone(), s.clone());
        std::thread::spawn(move || {
            n.send_event(&s, "P_kurento.MediaPipeline", "EndOfStream", json!({"seq": seq}));
        })
        .join()
        .unwrap();
    };
    emit(&srv.notifier, &s, 1);
    assert_eq!(
        a.recv().await,
        json!({"jsonrpc":"2.0","method":"onEvent","params":{"value":{
            "data":{"seq":1},"object":"P_kurento.MediaPipeline","type":"EndOfStream"}}})
    );
    assert_eq!(srv.notifier.session_ids(), vec![s.clone()]);

    // Socket loss, then the JS client's resume: connect {sessionId}.
    drop(a);
    let mut b = srv.client().await;
    let r = b.call("connect", json!({"sessionId": s.as_str()})).await;
    assert_eq!(r["result"]["sessionId"], json!(s.as_str()));
    emit(&srv.notifier, &s, 2);
    let ev = b.recv().await;
    assert_eq!(ev["params"]["value"]["data"], json!({"seq": 2}));
    drop(b);
    srv.shutdown().await;
}

// Single-threaded runtime: a backend call run on it (instead of on the
// blocking pool) would stall every connection, and this test would fail.
#[tokio::test(flavor = "current_thread")]
async fn a_blocking_call_on_one_connection_does_not_delay_others() {
    let srv = TestServer::start(|_| {}).await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let started = Instant::now();
    let slow = a.send("invoke", json!({"object":"x","operation":"sleep","operationParams":{"ms":2000}})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.ping().await;
    let mut c = srv.client().await;
    c.ping().await;
    // Measured from before the slow request was sent.
    assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());
    // A's own requests wait behind its slow call (strict order, §1.2).
    let next = a.send("ping", Value::Null).await;
    let r = a.recv().await;
    assert_eq!(r["id"], json!(slow));
    assert_eq!(r["result"]["value"], json!(2000));
    assert!(started.elapsed() >= Duration::from_millis(2000));
    assert_eq!(a.recv().await["id"], json!(next));
    drop((a, b, c));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_socket_with_a_close_frame() {
    let srv = TestServer::start(|_| {}).await;
    let mut a = srv.client().await;
    a.ping().await;
    let mut b = srv.client().await;
    b.send("invoke", json!({"object":"x","operation":"sleep","operationParams":{"ms":1500}})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let addr = srv.addr;
    let shutdown = tokio::spawn(srv.shutdown());
    // Even the connection busy in a backend call is closed at once.
    assert_eq!(a.expect_close().await.code, CloseCode::Away);
    assert_eq!(b.expect_close().await.code, CloseCode::Away);
    shutdown.await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_upgrades_with_503() {
    let srv = TestServer::start(|c| c.limits.max_connections = 1).await;
    let mut a = srv.client().await;
    a.ping().await;
    let err = tokio_tungstenite::connect_async(srv.url("/kurento")).await.unwrap_err();
    assert_eq!(upgrade_status(err), 503);
    a.ws.close(None).await.unwrap();
    drop(a);
    // The slot is released once the server sees the close.
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        match tokio_tungstenite::connect_async(srv.url("/kurento")).await {
            Ok((ws, _)) => {
                Client { ws, next_id: 0 }.ping().await;
                break;
            }
            Err(e) => {
                assert_eq!(upgrade_status(e), 503);
                assert!(Instant::now() < deadline, "slot never released");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_listener_serves_the_same_protocol() {
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

    let srv = TestServer::start_tls().await;
    let addr = srv.secure.expect("wss listener");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("cert.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(cfg)).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/kurento", tls).await.unwrap();
    ws.send(Message::Text(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#.into())).await.unwrap();
    let reply = loop {
        match tokio::time::timeout(RECV_TIMEOUT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(reply, json!({"jsonrpc":"2.0","id":0,"result":{"value":"pong"}}));
    drop(ws);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_certificate_disables_wss_but_is_not_fatal() {
    let cfg = ServerConfig {
        secure: Some(TlsConfig { port: 0, certificate: fixture("missing.pem"), password: None }),
        ..ServerConfig::default()
    };
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wss = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = SessionHub::new(&cfg);
    let server = Server::from_listeners(cfg.clone(), hub, Arc::new(FakeBackend), Some(ws), Some(wss)).unwrap();
    assert!(server.local_addr().is_some());
    assert_eq!(server.secure_local_addr(), None);
    // Without any listener it is fatal (§1.1).
    let wss = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = SessionHub::new(&cfg);
    let err = Server::from_listeners(cfg, hub, Arc::new(FakeBackend), None, Some(wss)).err();
    assert!(matches!(err, Some(Error::NoListener(_))), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_uses_the_configured_port_and_port_zero_disables_ws() {
    let cfg = ServerConfig { port: 0, ..ServerConfig::default() };
    let err = Server::bind(cfg.clone(), SessionHub::new(&cfg), Arc::new(FakeBackend)).await.err();
    assert!(matches!(err, Some(Error::NoListener(_))), "{err:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = ServerConfig { port, address: Some("127.0.0.1".into()), ..ServerConfig::default() };
    let server = Server::bind(cfg.clone(), SessionHub::new(&cfg), Arc::new(FakeBackend)).await.unwrap();
    let addr = server.local_addr().unwrap();
    assert_eq!(addr.port(), port);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let mut c = Client::connect(&format!("ws://{addr}/kurento")).await;
    c.ping().await;
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_with_1008_and_its_session_survives() {
    let srv = TestServer::start(|c| c.limits.max_outbox_bytes = 256 * 1024).await;
    let mut slow = srv.client().await;
    let s = SessionId::from(slow.call("connect", Value::Null).await["result"]["sessionId"].as_str().unwrap());
    // `slow` stops reading. 64 MiB of events: far more than the outbox and
    // the kernel's socket buffers hold together.
    let (n, s2) = (srv.notifier.clone(), s.clone());
    std::thread::spawn(move || {
        let pad = "e".repeat(16 * 1024);
        for seq in 0..4096 {
            n.send_event(&s2, "P_kurento.MediaPipeline", "Flood", json!({"seq": seq, "pad": pad}));
        }
    })
    .join()
    .unwrap();
    // Reading again: what the socket held, then the close frame.
    let mut received = 0;
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(15), slow.ws.next()).await.expect("close in time") {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(Some(f)))) => break f,
            other => panic!("expected the close frame, got {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "Outbox limit exceeded");
    assert!(received < 4096, "the excess was dropped ({received} events delivered)");
    // The session survives; a new connection resumes it and gets events.
    let mut again = srv.client().await;
    let r = again.call("connect", json!({"sessionId": s.as_str()})).await;
    assert_eq!(r["result"]["sessionId"], json!(s.as_str()), "{r}");
    let (n, s3) = (srv.notifier.clone(), s.clone());
    std::thread::spawn(move || n.send_event(&s3, "P_kurento.MediaPipeline", "EndOfStream", json!({"seq": 1})))
        .join()
        .unwrap();
    assert_eq!(again.recv().await["params"]["value"]["type"], json!("EndOfStream"));
    drop((slow, again));
    srv.shutdown().await;
}

/// A server whose runtime has only `threads` blocking threads.
fn with_small_pool(threads: usize, test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(threads)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

#[test]
fn slow_calls_never_take_every_thread_from_quick_ones() {
    with_small_pool(4, async {
        let srv = TestServer::start(|c| c.limits.max_concurrent_slow_calls = 2).await;
        let mut sleepers = vec![];
        for _ in 0..6 {
            let mut c = srv.client().await;
            sleepers.push(tokio::spawn(async move {
                c.call("invoke", json!({"object":"o","operation":"sleep","operationParams":{"ms":1500}})).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut quick = srv.client().await;
        let t = Instant::now();
        let r = quick.call("create", json!({"type":"MediaPipeline"})).await;
        assert!(r["result"]["value"].is_string(), "{r}");
        // Without the slow-call budget, 4 sleepers hold all 4 threads.
        assert!(t.elapsed() < Duration::from_millis(1000), "quick call waited {:?}", t.elapsed());
        for s in sleepers {
            let r = tokio::time::timeout(Duration::from_secs(10), s).await.unwrap().unwrap();
            assert_eq!(r["result"]["value"], json!(1500), "{r}");
        }
        drop(quick);
        srv.shutdown().await;
    });
}

#[test]
fn deferred_calls_wait_without_a_thread() {
    with_small_pool(2, async {
        let srv = TestServer::start(|_| {}).await;
        let t = Instant::now();
        let mut naps = vec![];
        for _ in 0..50 {
            let mut c = srv.client().await;
            naps.push(tokio::spawn(async move {
                c.call("invoke", json!({"object":"o","operation":"nap","operationParams":{"ms":1000}})).await
            }));
        }
        for n in naps {
            let r = tokio::time::timeout(Duration::from_secs(20), n).await.unwrap().unwrap();
            assert_eq!(r["result"]["value"], json!(1000), "{r}");
        }
        // On 2 threads, 50 sleeping calls would take 25 s.
        assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
        srv.shutdown().await;
    });
}

/// Takes every upload and answers 200 once the body ended.
struct Drain;

impl kms_jsonrpc::RouteHandler for Drain {
    fn request(
        &self,
        _: &kms_jsonrpc::RequestHead,
        mut body: kms_jsonrpc::BodyReader,
    ) -> Result<(), kms_jsonrpc::HttpRefusal> {
        tokio::spawn(async move {
            loop {
                match body.next().await {
                    kms_jsonrpc::BodyEvent::Data(_) => continue,
                    kms_jsonrpc::BodyEvent::End => return body.finish(Ok(())),
                    kms_jsonrpc::BodyEvent::Aborted(why) => return body.finish(Err(why)),
                }
            }
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_urls_are_served_on_the_websocket_listener_with_the_origin_rule() {
    let cfg = ServerConfig {
        access: AccessConfig {
            allowed_origins: Some(vec!["https://app.example.com".into()]),
            ..AccessConfig::single_token("s3cret")
        },
        ..ServerConfig::default()
    };
    let hub = SessionHub::new(&cfg);
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let routes = kms_jsonrpc::HttpRoutes::default();
    let server = Server::from_listeners(cfg, hub, Arc::new(FakeBackend), Some(ws), None)
        .unwrap()
        .with_http_routes(routes.clone());
    let addr = server.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let guard = routes.register(Arc::new(Drain));
    let url = routes.url(guard.token(), None).unwrap();
    assert_eq!(url, format!("http://{addr}/kurento-http/{}", guard.token()));
    let path = format!("/kurento-http/{}", guard.token());
    let post = |path: &str, extra: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
    };
    // The URL's token is the credential: no WebSocket access token needed.
    let ok = raw_http(addr, &post(&path, "")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let ok = raw_http(addr, &post(&path, "Origin: https://app.example.com\r\n")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let foreign = raw_http(addr, &post(&path, "Origin: https://evil.example.com\r\n")).await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    let unknown = raw_http(addr, &post("/kurento-http/0123", "")).await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    drop(guard);
    let gone = raw_http(addr, &post(&path, "")).await;
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    // The WebSocket path still needs its token.
    let ws_refused = tokio_tungstenite::connect_async(format!("ws://{addr}/kurento")).await.unwrap_err();
    assert_eq!(upgrade_status(ws_refused), 401);
    let _ = tx.send(());
    let _ = task.await;
}

/// The server side of every accepted WebSocket (plain and TLS) sets
/// TCP_NODELAY: without it, an answer written right after an event waits
/// for the client's delayed ACK (40 ms stalls seen in WebRTC setup). The
/// server runs in this process, so its accepted sockets are among our own
/// file descriptors: those whose local address is a listener's and which
/// have a peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_sockets_have_tcp_nodelay() {
    use std::os::fd::BorrowedFd;
    let srv = TestServer::start_tls().await;
    let mut plain = srv.client().await;
    assert_eq!(plain.ping().await["result"], json!({"value":"pong"}));
    // TLS: the option is set on accept, before the handshake.
    let secure = TcpStream::connect(srv.secure.expect("wss listener")).await.unwrap();
    let listeners = [srv.addr, srv.secure.unwrap()];
    let accepted = || {
        let mut found = vec![];
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            // SAFETY: borrowed only for these two calls; a descriptor
            // closed meanwhile makes them fail, not misbehave.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&fd);
            let Some(local) = sock.local_addr().ok().and_then(|a| a.as_socket()) else { continue };
            if listeners.contains(&local) && sock.peer_addr().is_ok() {
                found.push((local, sock.tcp_nodelay().unwrap_or(false)));
            }
        }
        found
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = accepted();
    while found.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        found = accepted();
    }
    assert_eq!(found.len(), 2, "one accepted socket per listener: {found:?}");
    assert!(found.iter().all(|(_, nodelay)| *nodelay), "TCP_NODELAY on every accepted socket: {found:?}");
    drop((plain, secure));
    srv.shutdown().await;
}
