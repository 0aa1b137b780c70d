//! The Kurento Media Server binary as a library, so a crate that adds
//! third-party modules can build its own server without editing ours:
//! `kurento_media_server::main_with_modules(vec![my_module::descriptor()])`.

pub mod cli;
pub mod logging;
pub mod settings;

use std::process::ExitCode;
use std::sync::Arc;

use kms_core::rt::ModuleDescriptor;
use kms_jsonrpc::{Server, SessionHub};

use crate::cli::Cli;
use crate::settings::Settings;

/// The built-in modules: core, elements, filters (spec §9: clients refuse
/// servers that do not list them), then the extra modules upstream's image
/// installs next to the server (spec §11.6), each its own module crate,
/// linked in as any third-party module is.
pub fn builtin_modules() -> Vec<ModuleDescriptor> {
    vec![
        kms_core::module::descriptor(),
        kms_elements::descriptor(),
        kms_filters::descriptor(),
        kms_chroma::descriptor(),
        kms_pointerdetector::descriptor(),
        kms_crowddetector::descriptor(),
        kms_platedetector::descriptor(),
    ]
}

/// Runs the server with the built-in modules plus `extra`.
pub fn main_with_modules(extra: Vec<ModuleDescriptor>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    let cli = Cli::parse(&args, env);
    if cli.help {
        print!("{}", cli::HELP);
        return ExitCode::SUCCESS;
    }
    if let Some(d) = &cli.gst_debug {
        // SAFETY: single-threaded at this point, before GStreamer starts.
        unsafe { std::env::set_var("GST_DEBUG", d) };
    }
    if cli.gst_debug_no_color {
        unsafe { std::env::set_var("GST_DEBUG_NO_COLOR", "1") };
    }
    let mut modules = builtin_modules();
    modules.extend(extra);
    if cli.version {
        println!("Kurento Media Server version: {}", kms_core::server_manager::SERVER_VERSION);
        println!("Found modules:");
        for m in &modules {
            println!("\t'{}' version {}", m.name, m.version);
        }
        return ExitCode::SUCCESS;
    }
    if cli.list {
        println!("Available factories:");
        let mut names = vec![];
        for m in &modules {
            for c in m.classes.iter().filter(|c| c.factory.is_some()) {
                names.push(c.name.to_string());
                names.push(c.qualified_name.to_string());
            }
        }
        for n in names {
            println!("\t{n}");
        }
        return ExitCode::SUCCESS;
    }
    logging::init(cli.logs_path.as_deref(), cli.log_file_size_mb, cli.number_log_files, cli.log_json);
    let settings = match Settings::load(&cli.conf_file, cli.modules_config_path.as_deref(), &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kurento-media-server: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.dump_config {
        println!("{}", serde_json::to_string_pretty(&settings.effective()).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    tune_allocator();
    raise_fd_limit();
    if let Err(e) = kms_core::module::init() {
        eprintln!("kurento-media-server: cannot initialize GStreamer: {e}");
        return ExitCode::from(1);
    }
    // Every backend call runs on the blocking pool; its size is a
    // deliberate limit (see `kms_jsonrpc::config::DEFAULT_MAX_BLOCKING_THREADS`).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings_threads())
        .max_blocking_threads(settings.server.limits.max_blocking_threads.max(1))
        .enable_all()
        .thread_name("kms-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kurento-media-server: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(settings, modules))
}

fn settings_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8)
}

/// Each WebSocket is a descriptor, and every WebRTC endpoint several: the
/// soft limit (often 1024) would refuse connections long before
/// `maxConnections`. Raise it to the hard limit, as servers commonly do.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::debug!("cannot raise the open-files limit");
            }
        }
    }
}

/// glibc creates up to 8 malloc arenas per core; with the blocking pool's
/// short-lived threads each keeps freed memory of its own, so RSS stays at
/// its peak after a burst. A few arenas per core keep contention low and let
/// memory return (overridden by `MALLOC_ARENA_MAX`).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let arenas = 2 * kms_core::server_manager::cpu_count().max(1) as libc::c_int;
        // SAFETY: mallopt only adjusts allocator parameters.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // A fixed threshold turns off glibc's dynamic one, which after the
        // first freed large block serves big buffers (request-cache
        // buckets) from the heap, where they fragment it.
        // SAFETY: mallopt only adjusts allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        }
    }
}

async fn run(settings: Settings, modules: Vec<ModuleDescriptor>) -> ExitCode {
    // SIGPIPE must not kill the server (spec §11.4).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let hub = SessionHub::new(&settings.server);
    let registry = kms_core::Registry::new(modules, hub.notifier(), settings.core.clone());
    // Cluster mode (docs/cluster.md): the cluster backend wraps the local
    // registry and forwards requests about other nodes' pipelines.
    let cluster = match settings.cluster.clone() {
        None => None,
        Some(c) => match kms_cluster::ClusterBackend::new(c, registry.clone(), hub.notifier()) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        },
    };
    let backend: Arc<dyn kms_jsonrpc::MediaBackend> = match &cluster {
        Some(c) => Arc::new(c.clone()),
        None => Arc::new(registry.clone()),
    };
    let server = match Server::bind(settings.server.clone(), hub, backend).await {
        Ok(s) => {
            let media = kms_core::metrics::MediaCollector::new(registry.clone());
            let dashboard = Arc::new(kms_core::dashboard::RegistryDashboard::new(registry.clone()));
            s.with_http_routes(settings.core.http_routes.clone())
                .with_metrics(|r| r.register_collector(Box::new(media)))
                .with_dashboard(settings.dashboard.clone(), dashboard)
        }
        Err(e) => {
            tracing::error!("cannot open any listener: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(a) = server.local_addr() {
        tracing::info!("Kurento Media Server listening on ws://{a}/{}", settings.server.path);
    }
    if let Some(a) = server.secure_local_addr() {
        tracing::info!("Kurento Media Server listening on wss://{a}/{}", settings.server.path);
    }
    // Drain for rolling restarts: SIGUSR1 refuses new sessions (and `/ready`
    // answers 503) while existing ones go on; SIGUSR2 ends the drain. In a
    // cluster a draining node also takes no new pipelines.
    let rpc = server.metrics().rpc.clone();
    let heartbeat = cluster.as_ref().map(|c| {
        let probe = rpc.clone();
        c.set_draining_probe(move || probe.is_draining());
        tracing::info!(node = %c.node_id(), "cluster mode: node registering in the directory");
        c.spawn_heartbeat()
    });
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut on), Ok(mut off)) = (signal(SignalKind::user_defined1()), signal(SignalKind::user_defined2()))
        else {
            tracing::warn!("cannot install SIGUSR1/SIGUSR2 handlers: no drain mode");
            return;
        };
        loop {
            tokio::select! {
                _ = on.recv() => rpc.set_draining(true),
                _ = off.recv() => rpc.set_draining(false),
            }
        }
    });
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    let result = server.run(shutdown).await;
    if let (Some(c), Some(h)) = (&cluster, heartbeat) {
        h.abort();
        c.unregister().await;
    }
    // spec §4.4: release all pipelines (to NULL) before exiting.
    let reg = registry.clone();
    let _ = tokio::task::spawn_blocking(move || reg.release_all()).await;
    match result {
        Ok(()) => {
            tracing::info!("bye");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::from(1)
        }
    }
}
