//! ServerManager (spec §9): the singleton at `manager_ServerManager`.
//!
//! Shared by every tenant; its answers are per tenant: `getPipelines`,
//! `getSessions` and the `ObjectCreated`/`ObjectDestroyed` events show only
//! the caller's tenant. Process-wide figures (`getUsedMemory`,
//! `getUsedCpu`) cannot be split per tenant honestly, so they are answered
//! to admin tenants only (all of a single-tenant server's clients are).

use std::time::{Duration, Instant};

use crate::api::core::{ModuleInfo, ServerInfo, ServerManager, ServerType};
use crate::error::{Error, Result};
use crate::object::{ObjectBase, ObjectId, RemoteObject};
use crate::rt::Ctx;

pub const SERVER_MANAGER_ID: &str = "manager_ServerManager";

/// The version we report: the KMS version we are wire-compatible with.
pub const SERVER_VERSION: &str = "7.3.0";

/// `getUsedCpu` measures over a wait; the registry runs that wait without
/// holding a thread (see `Registry::invoke_deferred`).
pub const GET_USED_CPU: &str = "getUsedCpu";

pub struct ServerManagerImpl {
    base: ObjectBase,
}

impl ServerManagerImpl {
    pub(crate) fn new(base: ObjectBase) -> Self {
        ServerManagerImpl { base }
    }
}

impl RemoteObject for ServerManagerImpl {
    fn object(&self) -> &ObjectBase {
        &self.base
    }
}

/// CPUs usable by this process (affinity mask), at least 1.
pub fn cpu_count() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let n = libc::CPU_COUNT(&set);
            if n > 0 {
                return n as usize;
            }
        }
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Refuses process-wide figures to tenants that are not admin.
fn admin_only(ctx: &Ctx, what: &str) -> Result<()> {
    if ctx.is_admin() {
        return Ok(());
    }
    Err(Error::NotImplemented(format!(
        "{what} reports the whole server process, which this server shares between tenants; \
         it is answered to admin tenants only (mediaServer.net.websocket.adminTenants)"
    )))
}

/// The first sample of `getUsedCpu`: process CPU time and wall time.
pub struct CpuSample {
    start: Instant,
    ticks: u64,
}

impl CpuSample {
    pub fn start() -> Self {
        CpuSample { start: Instant::now(), ticks: process_ticks().unwrap_or(0) }
    }

    /// Process CPU % since `start`, averaged over the usable cores.
    pub fn finish(&self) -> f32 {
        let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let t1 = process_ticks().unwrap_or(self.ticks);
        let elapsed = self.start.elapsed().as_secs_f64().max(1e-3);
        let used = t1.saturating_sub(self.ticks) as f64 / ticks_per_sec;
        (used / elapsed / cpu_count() as f64 * 100.0) as f32
    }
}

/// The first half of `getUsedCpu(interval)`: checks, then how long to wait
/// (capped by `maxCpuSampleMs`) and the sample to finish after it.
pub fn start_used_cpu(ctx: &Ctx, interval: i32) -> Result<(Duration, CpuSample)> {
    admin_only(ctx, GET_USED_CPU)?;
    let cap = ctx.config().max_cpu_sample_ms.max(1);
    let ms = (interval.max(1) as u64).min(cap);
    Ok((Duration::from_millis(ms), CpuSample::start()))
}

/// Process CPU time (user + system) in clock ticks, from /proc/self/stat.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident set size in KiB, from /proc/self/statm.
pub fn used_memory_kib() -> i64 {
    let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) / 1024) as i64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|r| r.parse::<i64>().ok()))
        .map(|pages| pages * page_kib)
        .unwrap_or(0)
}

impl ServerManager for ServerManagerImpl {
    fn get_info(&self, ctx: &Ctx) -> Result<ServerInfo> {
        let modules = ctx
            .registry()
            .modules()
            .iter()
            .map(|m| ModuleInfo {
                version: m.version.to_string(),
                name: m.name.to_string(),
                generation_time: m.generation_time.to_string(),
                factories: m.factories.iter().map(|f| f.to_string()).collect(),
            })
            .collect();
        Ok(ServerInfo {
            version: SERVER_VERSION.to_string(),
            modules,
            r#type: ServerType::Kms,
            capabilities: vec!["transactions".to_string()],
        })
    }

    fn get_pipelines(&self, ctx: &Ctx) -> Result<Vec<ObjectId>> {
        Ok(ctx.registry().pipelines_of(ctx.tenant()))
    }

    fn get_sessions(&self, ctx: &Ctx) -> Result<Vec<String>> {
        let ids = ctx.registry().notifier().session_ids_of(ctx.tenant());
        Ok(ids.into_iter().map(|s| s.as_str().to_string()).collect())
    }

    fn get_metadata(&self, ctx: &Ctx) -> Result<String> {
        Ok(ctx.config().metadata.clone())
    }

    fn get_kmd(&self, ctx: &Ctx, module_name: String) -> Result<String> {
        ctx.registry()
            .modules()
            .iter()
            .find(|m| m.name == module_name)
            .map(|m| m.kmd.to_string())
            .ok_or(Error::KmdNotFound)
    }

    fn get_cpu_count(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(cpu_count() as i32)
    }

    /// The blocking form, used inside transactions: blocks this thread for
    /// `interval` ms (capped by config). Outside transactions the registry
    /// waits without a thread.
    fn get_used_cpu(&self, ctx: &Ctx, interval: i32) -> Result<f32> {
        let (wait, sample) = start_used_cpu(ctx, interval)?;
        std::thread::sleep(wait);
        Ok(sample.finish())
    }

    fn get_used_memory(&self, ctx: &Ctx) -> Result<i64> {
        admin_only(ctx, "getUsedMemory")?;
        Ok(used_memory_kib())
    }
}
