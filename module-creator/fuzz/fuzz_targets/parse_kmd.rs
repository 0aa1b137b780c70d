//! Arbitrary bytes into the descriptor parser and, when they parse, the
//! fusion and validation of a module set (alone, and next to the built-in
//! core module so class and type references resolve). None may panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use module_creator::model::{KmdFile, Module, fuse};
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
    if let Ok(set) = ModuleSet::new(vec![module.clone()]) {
        let _ = set.fused_json(&set.modules[0]);
    }
    if module.name != "core"
        && let Ok(set) = ModuleSet::new(vec![module, core().clone()])
    {
        for m in &set.modules {
            let _ = set.fused_json(m);
        }
    }
});
