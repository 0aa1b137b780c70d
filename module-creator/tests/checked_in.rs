//! The generated code checked in (server: `kms-core/src/auto`,
//! `kms-elements/src/auto`, `kms-filters/src/auto`; client:
//! `crates/kurento-client/src/auto`) is what the descriptors and this
//! generator produce now (gstreamer-rs' rule for its `src/auto/`:
//! regenerated in CI, any difference fails), and the `--rust-auto` layout
//! works for a third-party module from the command line.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use module_creator::checked_in::{self, BUILTIN_REGEN_COMMAND, BUILTINS, CLIENT_DIR, HEADER_MARK, Mismatch, Tree};
use module_creator::rust_server::GeneratedFile;

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kurento-rs-checked-in-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file directly in `dir`: name → contents.
fn read_dir(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn checked_in_code_of_the_builtin_modules_is_what_regenerating_writes() {
    let root = checked_in::repo_root();
    let trees = checked_in::render_builtins(&root).unwrap_or_else(|e| panic!("regenerating: {e}"));
    let dirs: Vec<PathBuf> = trees.iter().map(|t| t.dir.strip_prefix(&root).unwrap().to_path_buf()).collect();
    let mut want: Vec<PathBuf> = BUILTINS.iter().map(|b| PathBuf::from(b.dir)).collect();
    want.push(CLIENT_DIR.into());
    assert_eq!(dirs, want);
    let tmp = temp_dir("builtins");
    let mut problems = vec![];
    for (rel, tree) in dirs.iter().zip(trees) {
        assert!(tree.files.iter().any(|f| f.name == "mod.rs"), "{}: no mod.rs", rel.display());
        // Regenerate into a temporary copy of the tree's directory, then
        // compare what was written there with what is checked in.
        let scratch = Tree { dir: tmp.join(rel), files: tree.files };
        checked_in::write(&scratch).unwrap_or_else(|e| panic!("{e}"));
        let written = Tree {
            dir: root.join(rel),
            files: read_dir(&scratch.dir)
                .into_iter()
                .map(|(name, contents)| GeneratedFile { name, contents })
                .collect(),
        };
        problems.extend(checked_in::compare(&written).unwrap().into_iter().map(|m| m.relative_to(&root)));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        problems.is_empty(),
        "\nThe generated code checked in under {} is stale: a descriptor (*.kmd.json) or module-creator \
         changed without regenerating. Run `{BUILTIN_REGEN_COMMAND}` and commit the result.\n\n{}",
        want.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_checked_in_rust_file_says_it_is_generated_and_how_to_regenerate_it() {
    let root = checked_in::repo_root();
    let check = |dir: &str, name: &str, text: &str, descriptors: &str| {
        let first_two: Vec<&str> = text.lines().take(2).collect();
        assert_eq!(
            first_two,
            [
                format!("{HEADER_MARK} from {descriptors}; do not edit.").as_str(),
                format!("// Regenerate with {BUILTIN_REGEN_COMMAND}.").as_str()
            ],
            "{dir}/{name}"
        );
    };
    for b in BUILTINS {
        let files = read_dir(&root.join(b.dir));
        assert!(files.iter().any(|(n, _)| n == "kmd.json"), "{}: kmd.json", b.dir);
        for (name, text) in files.iter().filter(|(n, _)| n.ends_with(".rs")) {
            check(b.dir, name, text, b.descriptor);
        }
    }
    let client = read_dir(&root.join(CLIENT_DIR));
    assert_eq!(client.len(), BUILTINS.len() + 1, "mod.rs and one file per module");
    for (name, text) in &client {
        match BUILTINS.iter().find(|b| format!("{}.rs", b.module) == *name) {
            Some(b) => check(CLIENT_DIR, name, text, b.descriptor),
            None => {
                let all: Vec<&str> = BUILTINS.iter().map(|b| b.descriptor).collect();
                check(CLIENT_DIR, name, text, &all.join(", "))
            }
        }
    }
    // The trait behind `processOffer` is where a newcomer greps for it.
    let sdp = std::fs::read_to_string(root.join("kms-core/src/auto/sdp_endpoint.rs")).unwrap();
    assert!(sdp.contains("pub trait SdpEndpoint: SessionEndpoint {"));
    assert!(sdp.contains("fn process_offer(&self, ctx: &::kms_core::rt::Ctx, offer: String)"));
    assert!(sdp.contains("\"processOffer\" => {"));
    // ... and the client method that calls it.
    let client = std::fs::read_to_string(root.join(CLIENT_DIR).join("core.rs")).unwrap();
    assert!(client.contains("pub async fn process_offer(&self, offer: &str)"), "client process_offer");
}

fn run(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = module_creator::cli::run(&args, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn rust_auto_writes_checks_and_prunes_a_third_party_tree() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiny/input/tiny.kmd.json");
    let input = input.to_str().unwrap();
    let tmp = temp_dir("cli");
    let dir = tmp.join("src/auto");
    let dir_s = dir.to_str().unwrap();

    let (code, out, err) = run(&["-r", input, "-c", dir_s, "--rust-auto"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = read_dir(&dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["events.rs", "kmd.json", "mod.rs", "tiny_filter.rs", "types.rs"]);
    assert_eq!(out.lines().count(), names.len(), "every written file is listed:\n{out}");
    let modrs = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
    assert!(
        modrs.starts_with(&format!(
            "{HEADER_MARK} from {input}; do not edit.\n// Regenerate with `kurento-module-creator -r {input} -c {dir_s} --rust-auto`.\n"
        )),
        "{modrs}"
    );
    assert!(modrs.contains("mod tiny_filter;\npub use self::tiny_filter::*;"), "{modrs}");
    // -lf lists the same files and writes nothing new.
    let (code, out, _) = run(&["-r", input, "-c", dir_s, "--rust-auto", "-lf"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().map(|l| Path::new(l).file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(), names);

    // Fresh: --check passes and writes nothing; regenerating rewrites nothing.
    let (code, _, err) = run(&["-r", input, "-c", dir_s, "--rust-auto", "--check"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, out, _) = run(&["-r", input, "-c", dir_s, "--rust-auto"]);
    assert_eq!((code, out.as_str()), (0, ""), "unchanged files are not rewritten");

    // Edited, missing, and no longer generated files are each reported,
    // and regenerating repairs all three, leaving hand-written files alone.
    let class_file = dir.join("tiny_filter.rs");
    let edited = std::fs::read_to_string(&class_file).unwrap().replace("pub trait TinyFilter", "pub trait Edited");
    std::fs::write(&class_file, edited).unwrap();
    std::fs::remove_file(dir.join("events.rs")).unwrap();
    std::fs::write(dir.join("old_class.rs"), format!("{HEADER_MARK} from x; do not edit.\n")).unwrap();
    std::fs::write(dir.join("notes.rs"), "// hand-written\n").unwrap();
    let (code, _, err) = run(&["-r", input, "-c", dir_s, "--rust-auto", "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{}: differs from the generated file:", class_file.display())), "{err}");
    assert!(err.contains("-pub trait Edited") && err.contains("+pub trait TinyFilter"), "{err}");
    assert!(err.contains(&format!("{}: missing", dir.join("events.rs").display())), "{err}");
    assert!(err.contains(&format!("{}: no longer generated", dir.join("old_class.rs").display())), "{err}");
    assert!(err.contains("regenerate it with `kurento-module-creator -r"), "{err}");
    let (code, _, _) = run(&["-r", input, "-c", dir_s, "--rust-auto"]);
    assert_eq!(code, 0);
    let (code, _, err) = run(&["-r", input, "-c", dir_s, "--rust-auto", "--check"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(!dir.join("old_class.rs").exists());
    assert!(dir.join("notes.rs").exists(), "a file without the generated header is not ours to remove");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn rust_auto_command_line_mistakes_are_usage_errors() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/split/input");
    let input = input.to_str().unwrap();
    for bad in [
        vec!["-r", input, "--rust-auto"],
        vec!["-r", input, "-c", "x", "--rust-auto", "--js"],
        vec!["-r", input, "-c", "x", "--check"],
        vec!["builtins", "--frobnicate"],
    ] {
        let (code, _, err) = run(&bad);
        assert_eq!(code, 1, "{bad:?}");
        assert!(err.contains("kurento-module-creator: "), "{bad:?}: {err}");
    }
    // Two modules cannot share one tree.
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiny/input");
    let tmp = temp_dir("two");
    let (code, _, err) = run(&["-r", input, tiny.to_str().unwrap(), "-c", tmp.to_str().unwrap(), "--rust-auto"]);
    assert_eq!(code, 1);
    assert!(err.contains("--rust-auto generates one module"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn builtins_check_is_the_freshness_check_from_the_command_line() {
    let (code, out, err) = run(&["builtins", "--check"]);
    assert!(code == 0 && out.is_empty() && err.is_empty(), "status {code}:\n{out}{err}");
}

#[test]
fn a_mismatch_in_the_one_line_descriptor_shows_where_it_is() {
    let root = checked_in::repo_root();
    let mut trees = checked_in::render_builtins(&root).unwrap();
    let tree = trees.remove(0);
    let kmd = tree.files.iter().find(|f| f.name == "kmd.json").unwrap();
    let changed = kmd.contents.replacen("\"processOffer\"", "\"processOffer2\"", 1);
    assert_ne!(changed, kmd.contents);
    let tmp = temp_dir("kmd");
    std::fs::write(tmp.join("kmd.json"), &changed).unwrap();
    let probe = Tree { dir: tmp.clone(), files: vec![kmd.clone()] };
    let problems = checked_in::compare(&probe).unwrap();
    let [Mismatch::Differs { diff, .. }] = problems.as_slice() else { panic!("{problems:?}") };
    assert!(diff.starts_with("@@ line 1, first difference at byte "), "{diff}");
    assert!(diff.contains("-…") && diff.contains("processOffer2") && diff.len() < 1000, "{diff}");
    let _ = std::fs::remove_dir_all(&tmp);
}
