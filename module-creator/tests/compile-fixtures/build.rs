//! Generates Rust code for the descriptors three times:
//!
//! * `upstream/`: all seven upstream modules (core, elements, filters and
//!   the four split plugins) against each other, each at
//!   `crate::upstream::<module>`;
//! * `plugins/`: the four plugins as a third-party crate builds them, against
//!   our built-in modules (`builtin_deps()`: `::kms_core::api::core`, ...),
//!   each at `crate::plugins::<module>`;
//! * `golden/`: the golden test descriptors (`../golden/<case>/input`), so
//!   the code checked in there compiles too, each at `crate::golden::<module>`.
//!
//! It also stamps the build time the checked-in layout of the golden
//! descriptors (`trees/`, written by `tests/fixtures_compile.rs`) reads.
use std::path::{Path, PathBuf};

const BUILTINS: &[&str] = &["core", "elements", "filters"];
/// Golden cases, each with one module named like the case.
const GOLDEN: &[&str] = &["names", "split", "tiny"];
const PLUGINS: &[(&str, &str)] = &[
    ("chroma", "ChromaFilter"),
    ("crowddetector", "CrowdDetectorFilter"),
    ("platedetector", "PlateDetectorFilter"),
    ("pointerdetector", "PointerDetectorFilter"),
];

fn main() {
    module_creator::builder::stamp_generation_time();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/kmd");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    let upstream = out.join("upstream");
    std::fs::create_dir_all(&upstream).expect("create OUT_DIR/upstream");
    let mut b = module_creator::Builder::new().rom(&fixtures).out_dir(&upstream);
    for m in BUILTINS.iter().chain(PLUGINS.iter().map(|(m, _)| m)) {
        b = b.module_path(m, &format!("crate::upstream::{m}"));
    }
    let written = b.generate_rust().unwrap_or_else(|e| panic!("upstream fixtures: {e}"));
    assert_eq!(written.len(), 7, "seven modules generated: {written:?}");

    let plugins = out.join("plugins");
    std::fs::create_dir_all(&plugins).expect("create OUT_DIR/plugins");
    let mut b = module_creator::Builder::new().builtin_deps().out_dir(&plugins);
    for (m, class) in PLUGINS {
        b = b
            .rom(fixtures.join(format!("{m}.kmd.json")))
            .rom(fixtures.join(format!("{m}.{class}.kmd.json")))
            .module_path(m, &format!("crate::plugins::{m}"));
    }
    let written = b.generate_rust().unwrap_or_else(|e| panic!("plugin fixtures: {e}"));
    assert_eq!(written.len(), 4, "four plugin modules generated: {written:?}");

    let golden = out.join("golden");
    std::fs::create_dir_all(&golden).expect("create OUT_DIR/golden");
    let mut b = module_creator::Builder::new().builtin_deps().out_dir(&golden);
    for case in GOLDEN {
        b = b
            .rom(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../golden/{case}/input")))
            .module_path(case, &format!("crate::golden::{case}"));
    }
    let written = b.generate_rust().unwrap_or_else(|e| panic!("golden descriptors: {e}"));
    assert_eq!(written.len(), GOLDEN.len(), "golden modules generated: {written:?}");
}
