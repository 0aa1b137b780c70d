//! Malformed descriptors are rejected with the file and the exact JSON path
//! of the offending item (spec §12.2), through the library and through the
//! `kurento-module-creator` command line (`file: path: message`, exit 1).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use module_creator::{KmdError, ModuleSet, load_modules};

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kurento-rs-errors-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the files into a fresh directory, loads and validates it; returns
/// the error and the directory.
fn error_of(tag: &str, files: &[(&str, &str)]) -> (KmdError, PathBuf) {
    let dir = temp_dir(tag);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let err = match load_modules(std::slice::from_ref(&dir)) {
        Err(e) => e,
        Ok(modules) => match ModuleSet::new(modules) {
            Err(e) => e,
            Ok(_) => panic!("{tag}: descriptor accepted"),
        },
    };
    (err, dir)
}

fn assert_error(tag: &str, files: &[(&str, &str)], file: &str, path: &str, message_part: &str) {
    let (e, dir) = error_of(tag, files);
    assert_eq!(Path::new(&e.file), dir.join(file), "{tag}: file in {e}");
    assert_eq!(e.path, path, "{tag}: JSON path in {e}");
    assert!(e.message.contains(message_part), "{tag}: message '{}' lacks '{message_part}'", e.message);
    let _ = std::fs::remove_dir_all(dir);
}

/// A one-file module around `classes`, `types` and `events` (JSON arrays).
fn module(classes: &str, types: &str, events: &str) -> String {
    format!(
        r#"{{"name": "t", "version": "1.0.0", "kurentoVersion": "^7.1.0",
            "remoteClasses": {classes}, "complexTypes": {types}, "events": {events}}}"#
    )
}

const ROOT: &str = r#"{"name": "Root", "abstract": true}"#;

#[test]
fn invalid_json_names_the_file_and_the_position() {
    assert_error("json", &[("t.kmd.json", "{\"name\": \"t\",\n  \"version\": }")], "t.kmd.json", "", "line 2 column");
}

#[test]
fn an_unknown_parameter_type_is_reported_at_its_type_key() {
    let classes = format!(
        r#"[{ROOT}, {{"name": "A", "extends": "Root", "constructor": {{"params": []}},
            "methods": [{{"name": "m", "params": [{{"name": "ok", "type": "int"}}, {{"name": "p", "type": "Nope[]"}}]}}]}}]"#
    );
    assert_error(
        "unknown-type",
        &[("t.kmd.json", &module(&classes, "[]", "[]"))],
        "t.kmd.json",
        "remoteClasses[1].methods[0].params[1].type",
        "unknown type 'Nope[]'",
    );
}

#[test]
fn an_unknown_return_property_or_field_type_is_reported_too() {
    let ret = format!(
        r#"[{ROOT}, {{"name": "A", "extends": "Root", "abstract": true,
        "methods": [{{"name": "m", "params": [], "return": {{"type": "Gone", "doc": ""}}}}]}}]"#
    );
    assert_error(
        "unknown-return",
        &[("t.kmd.json", &module(&ret, "[]", "[]"))],
        "t.kmd.json",
        "remoteClasses[1].methods[0].return.type",
        "unknown type 'Gone'",
    );
    let field = r#"[{"typeFormat": "REGISTER", "name": "S", "properties": [{"name": "f", "type": "Gone<>"}]}]"#;
    assert_error(
        "unknown-field",
        &[("t.kmd.json", &module(&format!("[{ROOT}]"), field, "[]"))],
        "t.kmd.json",
        "complexTypes[0].properties[0].type",
        "unknown type 'Gone<>'",
    );
}

#[test]
fn a_duplicate_name_is_reported_at_the_second_definition() {
    // Classes and complex types share one namespace.
    let types = r#"[{"typeFormat": "ENUM", "name": "Root", "values": ["A"]}]"#;
    assert_error(
        "duplicate",
        &[("t.kmd.json", &module(&format!("[{ROOT}]"), types, "[]"))],
        "t.kmd.json",
        "complexTypes[0]",
        "duplicate name 'Root' (first defined at ",
    );
    let methods = format!(
        r#"[{ROOT}, {{"name": "A", "extends": "Root", "abstract": true,
        "methods": [{{"name": "m", "params": []}}, {{"name": "m", "params": []}}]}}]"#
    );
    assert_error(
        "duplicate-method",
        &[("t.kmd.json", &module(&methods, "[]", "[]"))],
        "t.kmd.json",
        "remoteClasses[1].methods[1]",
        "duplicate method name 'm'",
    );
}

#[test]
fn an_extends_cycle_is_reported_at_the_extends_key() {
    let classes =
        r#"[{"name": "A", "extends": "B", "abstract": true}, {"name": "B", "extends": "A", "abstract": true}]"#;
    assert_error(
        "cycle",
        &[("t.kmd.json", &module(classes, "[]", "[]"))],
        "t.kmd.json",
        "remoteClasses[0].extends",
        "extends cycle through 'A'",
    );
    let types = r#"[{"typeFormat": "REGISTER", "name": "S", "extends": "S", "properties": []}]"#;
    assert_error(
        "cycle-type",
        &[("t.kmd.json", &module("[]", types, "[]"))],
        "t.kmd.json",
        "complexTypes[0].extends",
        "extends cycle through 'S'",
    );
}

#[test]
fn a_missing_import_is_reported_at_the_import() {
    let text = r#"{"name": "t", "version": "1.0.0", "kurentoVersion": "^7.1.0",
        "imports": [{"name": "nowhere", "version": "^1.0.0"}]}"#;
    assert_error("import", &[("t.kmd.json", text)], "t.kmd.json", "imports[0]", "missing import: module 'nowhere'");
}

#[test]
fn a_bad_enum_default_is_reported_at_the_default_value() {
    let types = r#"[{"typeFormat": "ENUM", "name": "Mode", "values": ["ON", "OFF"]}]"#;
    let classes = format!(
        r#"[{ROOT}, {{"name": "A", "extends": "Root", "constructor": {{"params": [
            {{"name": "a", "type": "int"}},
            {{"name": "mode", "type": "Mode", "optional": true, "defaultValue": "on"}}]}}}}]"#
    );
    assert_error(
        "enum-default",
        &[("t.kmd.json", &module(&classes, types, "[]"))],
        "t.kmd.json",
        "remoteClasses[1].constructor.params[1].defaultValue",
        "bad enum value \"on\" for 'Mode' (one of ON|OFF)",
    );
}

#[test]
fn a_wrongly_typed_field_is_reported_at_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"[{"name": "A", "abstract": "yes"}]"#, "remoteClasses[0].abstract", "expected a boolean"),
        (r#"[{"name": "A", "abstract": true, "methods": {}}]"#, "remoteClasses[0].methods", "expected an array"),
        (r#"[{"name": 7, "abstract": true}]"#, "remoteClasses[0].name", "expected a string"),
        (
            r#"[{"name": "A", "abstract": true, "methods": [{"name": "m", "params": [{"name": "p", "type": "int", "optional": 1}]}]}]"#,
            "remoteClasses[0].methods[0].params[0].optional",
            "expected a boolean",
        ),
        (
            r#"[{"name": "A", "abstract": true, "properties": [{"name": "p", "type": "int[][]"}]}]"#,
            "remoteClasses[0].properties[0].type",
            "malformed type reference 'int[][]'",
        ),
        (r#"[{"name": "A", "abstract": true, "events": [3]}]"#, "remoteClasses[0].events[0]", "expected a string"),
        (r#"["A"]"#, "remoteClasses[0]", "expected a JSON object"),
    ];
    for (i, (classes, path, msg)) in cases.iter().enumerate() {
        assert_error(&format!("field-{i}"), &[("t.kmd.json", &module(classes, "[]", "[]"))], "t.kmd.json", path, msg);
    }
    assert_error(
        "field-enum-format",
        &[("t.kmd.json", &module("[]", r#"[{"typeFormat": "SET", "name": "X"}]"#, "[]"))],
        "t.kmd.json",
        "complexTypes[0].typeFormat",
        "unknown typeFormat 'SET'",
    );
    assert_error("field-top", &[("t.kmd.json", r#"{"name": "t", "version": 1}"#)], "t.kmd.json", "version", "string");
}

#[test]
fn a_header_key_in_two_split_files_is_reported_in_the_second_file() {
    let header = r#"{"name": "t", "version": "1.0.0", "kurentoVersion": "^7.1.0"}"#;
    let content = r#"{"version": "1.0.1", "remoteClasses": [{"name": "Root", "abstract": true}]}"#;
    // Files are read in name order ('.R' < '.k'): the header comes second,
    // so the error is there and names the content file.
    let (e, dir) = error_of("split", &[("t.kmd.json", header), ("t.Root.kmd.json", content)]);
    assert_eq!(Path::new(&e.file), dir.join("t.kmd.json"), "{e}");
    assert_eq!(e.path, "version", "{e}");
    assert_eq!(e.message, format!("'version' is already defined in {}", dir.join("t.Root.kmd.json").display()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_command_line_prints_file_path_message_and_exits_1() {
    let classes = format!(r#"[{ROOT}, {{"name": "A", "extends": "Missing", "abstract": true}}]"#);
    let dir = temp_dir("cli");
    let kmd = dir.join("t.kmd.json");
    std::fs::write(&kmd, module(&classes, "[]", "[]")).unwrap();
    let out_dir = dir.join("out");
    let args: Vec<String> =
        ["-r", kmd.to_str().unwrap(), "-c", out_dir.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = module_creator::cli::run(&args, &mut out, &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        format!("{}: remoteClasses[1].extends: unknown type 'Missing': not a remote class", kmd.display())
    );
    assert!(!out_dir.exists(), "nothing written on error");

    // The binary itself: same line, exit status 1, no panic.
    let bin = env!("CARGO_BIN_EXE_kurento-module-creator");
    let o = std::process::Command::new(bin).args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), err);
    // Bad command lines are not panics either.
    for bad in [&["-r"][..], &["--frobnicate"], &["new"], &["-r", "/nonexistent/x.kmd.json", "-o", "/tmp/x"]] {
        let o = std::process::Command::new(bin).args(bad).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "{bad:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
