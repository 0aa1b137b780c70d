//! The seven fixture modules (upstream core, elements, filters and the split
//! plugins chroma, crowddetector, platedetector, pointerdetector) parse,
//! validate and generate Rust code, and that code compiles: the test crate
//! `tests/compile-fixtures/` generates it in its `build.rs` (all seven
//! against each other, and the four plugins against our built-in modules as
//! a third-party crate would, and the golden test descriptors of
//! `tests/golden/`), implements the four plugin classes and builds their
//! module descriptors.
//!
//! The golden descriptors are also generated in the layout that is checked
//! in (`--rust-auto`, one file per class), into `tests/compile-fixtures/trees/`,
//! and compiled there as modules of a third-party crate.
//!
//! The crate is built with `cargo build --offline` in the same target
//! directory as this test, so the dependencies compiled for the workspace
//! are reused.

use std::path::{Path, PathBuf};
use std::process::Command;

use module_creator::checked_in;
use module_creator::rust_server::{self, RustPaths};
use module_creator::{ModuleSet, load_modules};

/// Golden cases, each with one module named like the case.
const GOLDEN: &[&str] = &["names", "split", "tiny"];

const MODULES: &[&str] =
    &["core", "elements", "filters", "chroma", "crowddetector", "platedetector", "pointerdetector"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn all_seven_fixture_modules_parse_validate_and_generate() {
    let modules = load_modules(&[manifest_dir().join("tests/fixtures/kmd")]).unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    let mut want = MODULES.to_vec();
    want.sort_unstable();
    assert_eq!(names, want);
    let set = ModuleSet::new(modules).unwrap_or_else(|e| panic!("{e}"));
    for m in MODULES {
        let module = set.module(m).unwrap();
        let kmd = serde_json::to_string(&set.fused_json(module)).unwrap();
        let code = rust_server::generate(&set, m, &RustPaths::default(), &kmd, "now");
        assert!(code.contains(&format!("pub mod {m} {{")), "{m}");
        for c in &module.remote_classes {
            assert!(code.contains(&format!("pub trait {}: ", c.name)), "{m}: trait {}", c.name);
            if !c.is_abstract {
                assert!(code.contains(&format!("pub trait {}Factory: ", c.name)), "{m}: factory of {}", c.name);
            }
        }
    }
    // The split plugins were fused from two files each.
    for m in &MODULES[3..] {
        assert_eq!(set.module(m).unwrap().files.len(), 2, "{m}");
    }
}

/// The target directory this test binary was built in (`<target>/debug/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).and_then(Path::parent).expect("<target>/<profile>/deps/<exe>").to_path_buf()
}

#[test]
fn generated_code_of_every_fixture_compiles() {
    let krate = manifest_dir().join("tests/compile-fixtures");
    // Same dependency versions as the workspace, so nothing new is fetched
    // and compiled dependencies are shared.
    std::fs::copy(manifest_dir().join("../Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    for case in GOLDEN {
        let mut modules = load_modules(&[manifest_dir().join(format!("tests/golden/{case}/input"))]).unwrap();
        modules.extend(
            load_modules(
                &checked_in::BUILTINS.iter().map(|b| checked_in::repo_root().join(b.descriptor)).collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let set = ModuleSet::new(modules).unwrap_or_else(|e| panic!("{e}"));
        let header = checked_in::header(&format!("tests/golden/{case}/input"), "tests/fixtures_compile.rs");
        let tree = checked_in::render(&set, case, &RustPaths::default(), &header, &krate.join("trees").join(case))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        checked_in::write(&tree).unwrap_or_else(|e| panic!("{e}"));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the generated code does not compile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
