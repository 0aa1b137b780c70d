//! Descriptors that parse and validate (next to the built-in core module)
//! go through the Rust server and JS client generators. Validation is the
//! generators' contract: no validated set may make them panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use module_creator::js_client::render_js;
use module_creator::model::{KmdFile, Module, fuse};
use module_creator::rust_server::{self, RustPaths};
use module_creator::{ModuleSet, load_modules};

fn core() -> &'static Module {
    static CORE: OnceLock<Module> = OnceLock::new();
    CORE.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kms-core/core.kmd.json");
        load_modules(&[path]).expect("core.kmd.json loads").remove(0)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = KmdFile::parse("fuzz.kmd.json", text) else { return };
    let Ok(module) = fuse(vec![file]) else { return };
    if module.name == "core" {
        return;
    }
    let name = module.name.clone();
    let Ok(set) = ModuleSet::new(vec![module, core().clone()]) else { return };
    let m = set.module(&name).expect("in the set");
    let kmd = serde_json::to_string(&set.fused_json(m)).unwrap_or_default();
    let _ = rust_server::generate(&set, &name, &RustPaths::default(), &kmd, "now");
    let _ = render_js(&set, &name);
});
