//! `kurento-module-creator new <name>`.
//!
//! The fast test checks the crate layout and that its descriptor, generated
//! code inputs and JS client are consistent. The ignored one (run by
//! `tests/scaffold/run.sh`, a few minutes) builds the crate and runs its own
//! tests, starts its server binary and drives it with the official npm
//! kurento-client and the generated JS module (`tests/scaffold/scaffold.test.js`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use module_creator::scaffold::{NewOptions, create};
use module_creator::{ModuleSet, load_modules};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

fn temp_parent(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kurento-rs-scaffold-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = module_creator::cli::run(&args, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn new_creates_a_module_crate_with_descriptor_code_tests_and_js_client() {
    let parent = temp_parent("layout");
    let (code, out, err) = run_cli(&["new", "demo", "--dir", parent.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dir = parent.join("demo");
    assert!(out.contains(&dir.display().to_string()), "{out}");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "demo.kmd.json",
        "build.rs",
        "src/api.rs",
        "src/lib.rs",
        "src/main.rs",
        "tests/demo.rs",
        "README.md",
        "js/package.json",
        "js/lib/index.js",
        "js/lib/DemoFilter.js",
        "js/src/demo.kmd.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let repo = repo();
    for dep in ["kms-core", "kurento-media-server", "module-creator"] {
        assert!(cargo.contains(&format!("path = \"{}/{dep}\"", repo.display())), "{dep} path dependency");
    }
    assert!(cargo.contains("\n[workspace]\n"), "a workspace of its own");
    let build = std::fs::read_to_string(dir.join("build.rs")).unwrap();
    assert!(build.contains(r#"module_creator::Builder::new().rom("demo.kmd.json").builtin_deps().generate_rust()"#));
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    assert!(main.contains("kurento_media_server::main_with_modules(vec![demo::descriptor()])"));
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("api::demo::demo_filter_class::<DemoFilterImpl>()"));

    // The descriptor validates against the built-in modules: a Filter with a
    // constructor, a property, a method and an event.
    let mut modules = load_modules(&[dir.join("demo.kmd.json")]).unwrap();
    modules.extend(
        load_modules(&[
            repo.join("kms-core/core.kmd.json"),
            repo.join("kms-elements/elements.kmd.json"),
            repo.join("kms-filters/filters.kmd.json"),
        ])
        .unwrap(),
    );
    let set = ModuleSet::new(modules).unwrap();
    let demo = set.module("demo").unwrap();
    let class = demo.class("DemoFilter").unwrap();
    assert_eq!(class.extends.as_ref().map(|t| t.to_string()).as_deref(), Some("Filter"));
    let ctor: Vec<&str> = class.constructor.as_ref().unwrap().params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ctor, ["mediaPipeline"]);
    assert_eq!((class.properties.len(), class.methods.len(), class.events.len()), (1, 1, 1));
    let js = std::fs::read_to_string(dir.join("js/lib/DemoFilter.js")).unwrap();
    for member in ["getLabel", "setLabel", "greet", "DemoLabelChanged"] {
        assert!(js.contains(member), "JS client lacks {member}");
    }

    // Never over an existing directory.
    let (code, _, err) = run_cli(&["new", "demo", "--dir", parent.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(err.trim_end(), format!("{}: already exists; choose another name or --dir", dir.display()));
    let _ = std::fs::remove_dir_all(parent);
}

#[test]
fn new_rejects_bad_names_and_checkouts() {
    let parent = temp_parent("bad");
    for (name, msg) in [("Demo", "invalid module name 'Demo'"), ("core", "reserved"), ("type", "Rust identifier")] {
        let (code, _, err) = run_cli(&["new", name, "--dir", parent.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}");
        assert!(err.contains(msg), "{name}: {err}");
    }
    let o = NewOptions { name: "x".into(), parent: parent.clone(), kurento_path: Some(parent.clone()) };
    let e = create(&o).unwrap_err();
    assert!(e.message.contains("not a kurento-rs checkout"), "{e}");
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 0, "nothing created");
    let _ = std::fs::remove_dir_all(parent);
}

/// `<target>/<profile>/deps/<exe>` → `<target>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).and_then(Path::parent).expect("<target>/<profile>/deps/<exe>").to_path_buf()
}

fn cargo(dir: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo {args:?} in {} failed", dir.display());
}

#[test]
#[ignore = "builds a module crate and a server (minutes); run tests/scaffold/run.sh"]
fn scaffolded_module_builds_passes_its_tests_and_serves_the_official_js_client() {
    let node_dir = repo().join("tests/scaffold");
    assert!(
        node_dir.join("node_modules/kurento-client").is_dir(),
        "kurento-client is not installed in {}: run tests/scaffold/run.sh",
        node_dir.display()
    );
    // A fixed place inside the target dir: the crate's path is part of its
    // build identity, so reruns rebuild only the scaffold itself.
    let parent = target_dir().join("scaffold-test");
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    let (code, _, err) = run_cli(&["new", "demo", "--dir", parent.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dir = parent.join("demo");

    // Builds the library, the server binary and the tests, and runs them.
    cargo(&dir, &["test", "--offline"]);

    let bin = target_dir().join("debug/demo-media-server");
    assert!(bin.is_file(), "{} not built", bin.display());
    // spec §12.5: the module shows in --version and --list.
    let out = |arg: &str| String::from_utf8(Command::new(&bin).arg(arg).output().unwrap().stdout).unwrap();
    let version = out("--version");
    assert!(version.contains("'demo' version 0.1.0") && version.contains("'core' version"), "{version}");
    let list = out("--list");
    assert!(list.contains("\tDemoFilter\n") && list.contains("\tdemo.DemoFilter\n"), "{list}");
    let status = Command::new("node")
        .args(["--test", "scaffold.test.js"])
        .current_dir(&node_dir)
        .env("KMS_BIN", &bin)
        .env("SCAFFOLD_JS_DIR", dir.join("js"))
        .env("SCAFFOLD_MODULE", "demo")
        .status()
        .expect("node runs");
    assert!(status.success(), "tests/scaffold/scaffold.test.js failed");
}
