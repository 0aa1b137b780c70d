//! Starts the real `kurento-media-server` binary on a free port with a
//! temporary configuration (as `tests/conformance/lib/harness.js` does).
//!
//! The binary comes from `KMS_BIN` if set; otherwise it is built once per
//! test process with `cargo build -p kurento-media-server` into the same
//! target directory as this test, so a plain `cargo test -p kurento-client`
//! always runs against the current server sources.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("KMS_BIN") {
            return PathBuf::from(p);
        }
        // <target>/<profile>/deps/against_server-<hash>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>");
        let target_dir = profile_dir.parent().expect("<target>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "kurento-media-server", "--bin", "kurento-media-server", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the server");
        assert!(status.success(), "cargo build -p kurento-media-server failed");
        profile_dir.join("kurento-media-server")
    })
    .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

pub struct Server {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Server {
    pub fn start() -> Server {
        Server::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Server {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kurento-client-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("modules")).unwrap();
        let conf = serde_json::json!({
            "metadata": {},
            "mediaServer": {
                "resources": {"garbageCollectorPeriod": 240},
                "net": {"websocket": {"port": port, "address": "127.0.0.1", "path": "kurento"}}
            }
        });
        let conf_file = dir.join("kurento.conf.json");
        std::fs::write(&conf_file, conf.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(server_bin())
            .arg("--conf-file")
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning kurento-media-server");
        let mut server = Server { child, dir, port };
        server.wait_listening();
        server
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "server did not listen on {}:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/kurento", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Kills the process (no graceful shutdown: a crash, as far as the
    /// client can tell) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Awaits `f` for at most `secs` seconds.
pub async fn within<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
