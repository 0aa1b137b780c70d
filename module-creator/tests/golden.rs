//! Golden tests: every case under `tests/golden/<case>/` has descriptors in
//! `input/` and, checked in, everything generated from them in `expected/`:
//! the fused model `<module>.kmd.json` (what `-o` writes), the Rust server
//! code `<module>.rs` (what `Builder` writes, with a fixed generation time)
//! and the JS client package `js/`. The built-in modules they import are the
//! repository's own descriptors.
//!
//! `UPDATE_GOLDEN=1 cargo test -p module-creator --test golden` rewrites
//! `expected/` after an intended change; review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use module_creator::js_client::render_js;
use module_creator::rust_server::{self, RustPaths};
use module_creator::{ModuleSet, load_modules};

const GENERATION_TIME: &str = "Jan 01 1970 00:00:00";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn builtin_descriptors() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![
        root.join("kms-core/core.kmd.json"),
        root.join("kms-elements/elements.kmd.json"),
        root.join("kms-filters/filters.kmd.json"),
    ]
}

/// Everything generated for one case: relative path → contents.
fn render(case: &Path) -> BTreeMap<String, String> {
    let rom = load_modules(&[case.join("input")]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = rom.iter().map(|m| m.name.clone()).collect();
    let mut all = rom;
    all.extend(load_modules(&builtin_descriptors()).unwrap_or_else(|e| panic!("{e}")));
    let set = ModuleSet::new(all).unwrap_or_else(|e| panic!("{e}"));
    let mut out = BTreeMap::new();
    for n in &names {
        let m = set.module(n).unwrap();
        let fused = set.fused_json(m);
        out.insert(format!("{n}.kmd.json"), serde_json::to_string_pretty(&fused).unwrap() + "\n");
        let kmd = serde_json::to_string(&fused).unwrap();
        out.insert(format!("{n}.rs"), rust_server::generate(&set, n, &RustPaths::default(), &kmd, GENERATION_TIME));
        for f in render_js(&set, n).unwrap_or_else(|e| panic!("{e}")) {
            out.insert(format!("js/{}", f.path.to_string_lossy().replace('\\', "/")), f.contents);
        }
    }
    out
}

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The first differing line, with its number.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i).copied(), a.get(i).copied());
        if x != y {
            return format!(
                "line {}:\n  expected: {}\n  actual:   {}",
                i + 1,
                x.unwrap_or("<end>"),
                y.unwrap_or("<end>")
            );
        }
    }
    "only the final newline differs".into()
}

fn check_case(case: &Path) -> Vec<String> {
    let actual = render(case);
    let expected_dir = case.join("expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        let _ = std::fs::remove_dir_all(&expected_dir);
        for (rel, text) in &actual {
            let p = expected_dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        return vec![];
    }
    let expected = read_tree(&expected_dir);
    let mut problems = vec![];
    for (rel, text) in &actual {
        match expected.get(rel) {
            None => problems.push(format!("{rel}: generated but not in expected/")),
            Some(e) if e != text => problems.push(format!("{rel}: differs at {}", first_difference(e, text))),
            Some(_) => {}
        }
    }
    for rel in expected.keys().filter(|k| !actual.contains_key(*k)) {
        problems.push(format!("{rel}: expected but no longer generated"));
    }
    problems.into_iter().map(|p| format!("{}/expected/{p}", case.display())).collect()
}

#[test]
fn generated_outputs_match_the_checked_in_golden_files() {
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 2, "golden cases missing in {}", golden_dir().display());
    let problems: Vec<String> = cases.iter().flat_map(|c| check_case(c)).collect();
    assert!(
        problems.is_empty(),
        "{}\n\nIf the change is intended: UPDATE_GOLDEN=1 cargo test -p module-creator --test golden",
        problems.join("\n")
    );
}

/// Spot checks that document what the golden files pin down.
#[test]
fn golden_rust_code_has_the_expected_shape() {
    let tiny = render(&golden_dir().join("tiny"));
    let rs = &tiny["tiny.rs"];
    for snippet in [
        "pub mod tiny {",
        "pub const MODULE_NAMESPACE: &str = \"tiny\";",
        "pub enum Color {",
        "BlueSky,",
        "\"BLUE_SKY\" => Some(Color::BlueSky),",
        "pub struct Spot {",
        "pub color: Color,",
        "pub tags: Option<Vec<String>>,",
        "o.or_default::<Color>(\"color\", \"\\\"RED\\\"\")?",
        "pub trait TinyFilter: ::kms_core::api::core::Filter {",
        "fn get_level(&self, ctx: &::kms_core::rt::Ctx) -> ::kms_core::rt::Result<i32>;",
        "fn set_level(&self, ctx: &::kms_core::rt::Ctx, value: i32) -> ::kms_core::rt::Result<()>;",
        "fn get_spots(&self, ctx: &::kms_core::rt::Ctx) -> ::kms_core::rt::Result<Vec<Spot>>;",
        "fn paint(&self, ctx: &::kms_core::rt::Ctx, color: Color, area: Option<Spot>) -> ::kms_core::rt::Result<bool>;",
        "_ => ::kms_core::api::core::invoke_filter(obj, ctx, op, params),",
        "pub struct TinyFilterConstructor {",
        "pub media_pipeline: ::std::sync::Arc<dyn ::kms_core::api::core::MediaPipeline>,",
        "strength: params.or_default::<f64>(\"strength\", \"0.5\")?,",
        "qualified_name: \"tiny.TinyFilter\",",
        "hierarchy: &[\"kurento.Filter\", \"kurento.MediaElement\", \"kurento.MediaObject\"],",
        "const IS_MEDIA: bool = true;",
    ] {
        assert!(rs.contains(snippet), "tiny.rs lacks `{snippet}`");
    }
    assert!(!rs.contains("fn set_spots"), "read-only property has no setter");

    let split = render(&golden_dir().join("split"));
    let rs = &split["split.rs"];
    for snippet in [
        "elements: Vec<::std::sync::Arc<dyn ::kms_core::api::core::MediaElement>>",
        "weights: Option<::std::collections::BTreeMap<String, f32>>",
        "-> ::kms_core::rt::Result<Option<::kms_core::rt::ObjectId>>;",
        "shape: ::kms_core::rt::Polymorphic",
        "pub struct Derived {",
        "pub a: String,\n    pub b: ::std::collections::BTreeMap<String, i32>,",
        "const IS_MEDIA: bool = false;",
        "_ => ::kms_core::api::core::invoke_hub(obj, ctx, op, params),",
    ] {
        assert!(rs.contains(snippet), "split.rs lacks `{snippet}`");
    }
    let fused: serde_json::Value = serde_json::from_str(&split["split.kmd.json"]).unwrap();
    assert_eq!(fused["code"]["implementation"]["cppNamespace"], "split::impl", "given code kept");
    assert_eq!(fused["code"]["api"]["java"]["mavenVersion"], "2.0.0-SNAPSHOT", "defaults filled in");
    assert_eq!(fused["remoteClasses"][0]["name"], "SplitHub", "split files fused");
    assert_eq!(fused["complexTypes"].as_array().map(Vec::len), Some(2));

    // Wire names that are Rust keywords, or the dispatcher's own locals.
    let names = render(&golden_dir().join("names"));
    let rs = &names["names.rs"];
    for snippet in [
        "fn r#move(&self, ctx: &::kms_core::rt::Ctx, ctx_: i32, params_: String, obj_: ::std::sync::Arc<dyn Tricky>, op_: bool, value: Odd)",
        "let params_ = params.get::<String>(\"params\")?;",
        "Ok(obj.r#move(ctx, ctx_, params_, obj_, op_, value)?.to_json())",
        "fn r#type(&self, ctx: &::kms_core::rt::Ctx)",
        "pub r#type: String,",
        "pub self_: i32,",
        "Odd::AB2 => \"A_B\",",
        "Odd::V1st => \"1st\",",
    ] {
        assert!(rs.contains(snippet), "names.rs lacks `{snippet}`");
    }
}
