//! The dashboard's routes on the real server (127.0.0.1) with a fake
//! [`DashboardSource`]: 404 while disabled, the token and admin-tenant
//! checks, the JSON the page reads, and the page's files (token passed on,
//! no path traversal, a note when the page is not built).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kms_jsonrpc::dashboard::{DashboardConfig, DashboardSource, ElementView, EndpointCounters, PipelineView};
use kms_jsonrpc::{
    AccessConfig, Caller, Description, Error, MediaBackend, RpcError, Server, ServerConfig, SessionHub, SessionId,
    TenantId,
};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A backend with no objects: the dashboard does not go through it.
struct NoObjects;

impl MediaBackend for NoObjects {
    fn create(&self, _: &dyn Caller, _: &str, _: Option<&Value>) -> Result<String, RpcError> {
        Err(RpcError::object_not_found("none"))
    }
    fn describe(&self, _: &dyn Caller, o: &str) -> Result<Description, RpcError> {
        Err(RpcError::object_not_found(o))
    }
    fn invoke(&self, _: &dyn Caller, o: &str, _: &str, _: Option<&Map<String, Value>>) -> Result<Value, RpcError> {
        Err(RpcError::object_not_found(o))
    }
    fn subscribe(&self, _: &dyn Caller, o: &str, _: &str) -> Result<String, RpcError> {
        Err(RpcError::object_not_found(o))
    }
    fn unsubscribe(&self, _: &dyn Caller, _: &str, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn release(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn ref_object(&self, _: &dyn Caller, o: &str) -> Result<(), RpcError> {
        Err(RpcError::object_not_found(o))
    }
    fn unref_object(&self, _: &dyn Caller, _: &str) -> Result<(), RpcError> {
        Ok(())
    }
    fn unref_session(&self, _: &SessionId) {}
    fn release_session(&self, _: &SessionId) {}
}

struct FakeSource;

impl DashboardSource for FakeSource {
    fn pipelines(&self) -> Vec<PipelineView> {
        vec![PipelineView {
            id: "p1_kurento.MediaPipeline".into(),
            name: "p1".into(),
            sessions: vec!["s1".into()],
            elements: vec![ElementView {
                id: "p1_kurento.MediaPipeline/e1_kurento.WebRtcEndpoint".into(),
                class: "WebRtcEndpoint".into(),
                name: "e1".into(),
                parent: None,
            }],
        }]
    }
    fn pipeline_dot(&self, pipeline: &str) -> Option<String> {
        (pipeline == "p1_kurento.MediaPipeline").then(|| "digraph pipeline { a -> b }".to_owned())
    }
    fn endpoint_stats(&self) -> Vec<EndpointCounters> {
        vec![EndpointCounters {
            id: "p1_kurento.MediaPipeline/e1_kurento.WebRtcEndpoint".into(),
            bytes_in: 1234,
            rtt_ms: Some(7.5),
            ..Default::default()
        }]
    }
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl TestServer {
    async fn start(access: AccessConfig, dashboard: Option<DashboardConfig>) -> TestServer {
        let cfg = ServerConfig { access, ..ServerConfig::default() };
        let hub = SessionHub::new(&cfg);
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut server = Server::from_listeners(cfg, hub, Arc::new(NoObjects), Some(ws), None).unwrap();
        if let Some(d) = dashboard {
            server = server.with_dashboard(d, Arc::new(FakeSource));
        }
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer { addr, stop: Some(tx), task }
    }

    /// `GET path` with an optional bearer token: (status, body).
    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let mut tcp = TcpStream::connect(self.addr).await.unwrap();
        let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap().unwrap();
    }
}

const PATHS: [&str; 6] = [
    "/dashboard",
    "/dashboard/",
    "/dashboard/api/overview",
    "/dashboard/api/stats",
    "/dashboard/api/dot?pipeline=p1_kurento.MediaPipeline",
    "/dashboard/dashboard.js",
];

fn assets_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kms-dashboard-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("index.html"), "<script src=\"dashboard.js{{query}}\"></script>").unwrap();
    std::fs::write(d.join("dashboard.js"), "console.log(1)").unwrap();
    d
}

#[tokio::test]
async fn disabled_or_absent_every_path_is_404() {
    let assets = assets_dir("off");
    for dashboard in [None, Some(DashboardConfig { enabled: false, assets })] {
        let s = TestServer::start(AccessConfig::default(), dashboard).await;
        for p in PATHS {
            assert_eq!(s.get(p, None).await.0, 404, "{p}");
        }
        s.shutdown().await;
    }
}

#[tokio::test]
async fn tokens_and_admin_tenants_guard_everything() {
    let access = AccessConfig {
        tokens: vec![("ta".into(), TenantId::new("alpha")), ("tb".into(), TenantId::new("beta"))],
        admin_tenants: vec![TenantId::new("alpha")],
        allowed_origins: None,
    };
    let s = TestServer::start(access, Some(DashboardConfig { enabled: true, assets: assets_dir("auth") })).await;
    for p in PATHS {
        assert_eq!(s.get(p, None).await.0, 401, "{p} without a token");
        assert_eq!(s.get(p, Some("nope")).await.0, 401, "{p} with a wrong token");
        assert_eq!(s.get(p, Some("tb")).await.0, 403, "{p} as a non-admin tenant");
    }
    let (status, body) = s.get("/dashboard/?access_token=ta", None).await;
    assert_eq!(status, 200);
    assert_eq!(body, "<script src=\"dashboard.js?access_token=ta\"></script>", "the token is passed on");
    assert_eq!(s.get("/dashboard/dashboard.js?access_token=ta", None).await.0, 200);
    let (status, _) = s.get("/dashboard?access_token=ta", None).await;
    assert_eq!(status, 308);
    s.shutdown().await;
}

#[tokio::test]
async fn the_page_reads_sessions_pipelines_graphs_and_counters() {
    let s =
        TestServer::start(AccessConfig::default(), Some(DashboardConfig { enabled: true, assets: assets_dir("data") }))
            .await;
    let (status, body) = s.get("/dashboard/api/overview", None).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["serverId"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["sessions"], serde_json::json!([]));
    assert_eq!(v["pipelines"][0]["elements"][0]["class"], "WebRtcEndpoint");
    assert_eq!(v["pipelines"][0]["sessions"][0], "s1");

    let (status, body) = s.get("/dashboard/api/stats", None).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["t"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(v["endpoints"][0]["bytesIn"], 1234);
    assert_eq!(v["endpoints"][0]["rttMs"], 7.5);
    assert_eq!(v["endpoints"][0]["packetsLostOut"], 0);

    let (status, body) = s.get("/dashboard/api/dot?pipeline=p1_kurento.MediaPipeline", None).await;
    assert_eq!((status, body.as_str()), (200, "digraph pipeline { a -> b }"));
    assert_eq!(s.get("/dashboard/api/dot?pipeline=p2", None).await.0, 404);
    assert_eq!(s.get("/dashboard/api/dot", None).await.0, 400);
    // Only plain names in the assets directory.
    for p in ["/dashboard/..%2F..%2Fetc%2Fpasswd", "/dashboard/.hidden.js", "/dashboard/missing.js"] {
        assert_eq!(s.get(p, None).await.0, 404, "{p}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn a_missing_page_says_how_to_build_it() {
    let assets = std::env::temp_dir().join("kms-dashboard-never-built");
    let s = TestServer::start(AccessConfig::default(), Some(DashboardConfig { enabled: true, assets })).await;
    let (status, body) = s.get("/dashboard/", None).await;
    assert_eq!(status, 503);
    assert!(body.contains("dashboard/build.sh") && body.contains("kms-dashboard-never-built"), "{body}");
    // The data is there even without the page.
    assert_eq!(s.get("/dashboard/api/overview", None).await.0, 200);
    s.shutdown().await;
}
