//! Logging with tracing-subscriber: stderr always, plus a log file when
//! `--logs-path` is given (spec §11.4).

use parking_lot::Mutex;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log file that rotates when it grows past `max_bytes`, keeping `keep` files.
#[derive(Clone)]
struct RotatingFile {
    inner: Arc<Mutex<FileState>>,
}

struct FileState {
    dir: std::path::PathBuf,
    file: Option<std::fs::File>,
    written: u64,
    max_bytes: u64,
    keep: u32,
    index: u32,
    stamp: String,
}

impl FileState {
    fn open_next(&mut self) {
        self.index += 1;
        let name = format!("{}.{}.pid{}.log", self.stamp, self.index, std::process::id());
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(name)).ok();
        self.written = 0;
        if self.index > self.keep {
            let old = format!("{}.{}.pid{}.log", self.stamp, self.index - self.keep, std::process::id());
            let _ = std::fs::remove_file(self.dir.join(old));
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut st = self.inner.lock();
        if st.file.is_none() || st.written + buf.len() as u64 > st.max_bytes {
            st.open_next();
        }
        st.written += buf.len() as u64;
        match st.file.as_mut() {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut st = self.inner.lock();
        st.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// `KMS_LOG`/`RUST_LOG` set the filter (default `info`). `json`: one JSON
/// object per line (log shippers). Colours only when stderr is a terminal
/// and `GST_DEBUG_NO_COLOR` is unset: a log redirected to a file or a
/// container's log driver gets no escape codes.
pub fn init(logs_path: Option<&Path>, max_mb: u64, keep: u32, json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        std::env::var("KMS_LOG")
            .ok()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .and_then(|f| EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| EnvFilter::new("info"))
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("GST_DEBUG_NO_COLOR").is_none();
    let stderr: Box<dyn Layer<_> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(filter()).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_filter(filter()).boxed()
    };
    let file = logs_path.and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let w = RotatingFile {
            inner: Arc::new(Mutex::new(FileState {
                dir: dir.to_path_buf(),
                file: None,
                written: 0,
                max_bytes: max_mb.max(1) * 1024 * 1024,
                keep: keep.max(1),
                index: 0,
                stamp: secs.to_string(),
            })),
        };
        let layer: Box<dyn Layer<_> + Send + Sync> = if json {
            tracing_subscriber::fmt::layer().json().with_writer(w).with_filter(filter()).boxed()
        } else {
            tracing_subscriber::fmt::layer().with_writer(w).with_ansi(false).with_filter(filter()).boxed()
        };
        Some(layer)
    });
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
}
