//! The `build.rs` entry point: load descriptors, validate, write generated
//! Rust into `OUT_DIR`.

use std::path::{Path, PathBuf};

use crate::checked_in;
use crate::error::KmdError;
use crate::model::load_modules;
use crate::resolve::ModuleSet;
use crate::rust_server::{self, RustPaths};

/// Generates a module's server code from a `build.rs`.
///
/// ```no_run
/// module_creator::Builder::new()
///     .rom("src/mymodule.kmd.json")
///     .generate_rust()
///     .expect("valid descriptor");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    rom: Vec<PathBuf>,
    deps: Vec<PathBuf>,
    paths: RustPaths,
    out_dir: Option<PathBuf>,
}

impl Builder {
    pub fn new() -> Self {
        Builder { paths: RustPaths::default(), ..Default::default() }
    }

    /// Descriptor files or directories of the module(s) to generate.
    pub fn rom(mut self, p: impl AsRef<Path>) -> Self {
        self.rom.push(p.as_ref().to_path_buf());
        self
    }

    /// Descriptors of imported modules (their code is not generated).
    pub fn dep(mut self, p: impl AsRef<Path>) -> Self {
        self.deps.push(p.as_ref().to_path_buf());
        self
    }

    /// Rust path of an imported module's generated code.
    pub fn module_path(mut self, module: &str, path: &str) -> Self {
        self.paths.modules.insert(module.to_string(), path.to_string());
        self
    }

    /// Rust path of the runtime (default `::kms_core::rt`).
    pub fn runtime_path(mut self, path: &str) -> Self {
        self.paths.runtime = path.to_string();
        self.paths.root_supertrait = Some(format!("{path}::RemoteObject"));
        self
    }

    pub fn out_dir(mut self, p: impl AsRef<Path>) -> Self {
        self.out_dir = Some(p.as_ref().to_path_buf());
        self
    }

    /// The built-in descriptors shipped with kms-core/elements/filters, for
    /// third-party modules that import them.
    pub fn builtin_deps(self) -> Self {
        checked_in::builtin_descriptors(&checked_in::repo_root()).into_iter().fold(self, Builder::dep)
    }

    /// Loads and validates; returns the set and the names of the rom modules.
    pub fn load(&self) -> Result<(ModuleSet, Vec<String>), KmdError> {
        let rom = load_modules(&self.rom)?;
        let names: Vec<String> = rom.iter().map(|m| m.name.clone()).collect();
        let mut all = rom;
        for d in load_modules(&self.deps)? {
            if !all.iter().any(|m| m.name == d.name) {
                all.push(d);
            }
        }
        Ok((ModuleSet::new(all)?, names))
    }

    /// Writes `<module>.rs` for every rom module into `OUT_DIR` (or the
    /// configured directory) and prints `cargo:rerun-if-changed` lines.
    pub fn generate_rust(self) -> Result<Vec<PathBuf>, KmdError> {
        for p in self.rom.iter().chain(&self.deps) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
        let (set, names) = self.load()?;
        let out_dir =
            match &self.out_dir {
                Some(d) => d.clone(),
                None => PathBuf::from(std::env::var("OUT_DIR").map_err(|_| {
                    KmdError::new("<build>", "", "OUT_DIR is not set; call from build.rs or set out_dir")
                })?),
            };
        let mut written = vec![];
        for n in names {
            let m = set.module(&n).expect("loaded");
            let kmd = serde_json::to_string(&set.fused_json(m)).expect("serializable");
            let code = rust_server::generate(&set, &n, &self.paths, &kmd, &generation_time());
            let path = out_dir.join(format!("{n}.rs"));
            std::fs::write(&path, code)
                .map_err(|e| KmdError::new(&path.display().to_string(), "", format!("cannot write: {e}")))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// For the `build.rs` of a crate whose generated code is checked in
/// ([`crate::checked_in`]): sets the variable that code reads its
/// `GENERATION_TIME` from ([`rust_server::GENERATION_TIME_ENV`]) to the
/// build time, as upstream reports its module library's compile time.
///
/// The script reruns when `src/` changes (the library is recompiled then
/// anyway), not for every file of the package: a new time for an edited
/// test or README would recompile the library and everything above it.
pub fn stamp_generation_time() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rustc-env={}={}", rust_server::GENERATION_TIME_ENV, generation_time());
}

/// Build timestamp in the `Mmm dd yyyy hh:mm:ss` form upstream reports,
/// honouring `SOURCE_DATE_EPOCH` for reproducible builds.
pub fn generation_time() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    });
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{} {:02} {} {:02}:{:02}:{:02}", MONTHS[(mo - 1) as usize], d, y, rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
