//! The `kurento-module-creator` command line (spec §12.3), modelled on
//! upstream's options, plus the `new` subcommand (spec §12.5, see
//! [`crate::scaffold`]).
//!
//! Parsing is by hand: the option set is small, upstream's spellings
//! (`-dr`, `-lf`) are not what argument crates expect, and a bad command
//! line must end in a message and exit status 1, never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checked_in;
use crate::error::KmdError;
use crate::js_client;
use crate::model::{Module, load_modules};
use crate::resolve::ModuleSet;
use crate::rust_server::{self, RustPaths};
use crate::scaffold::{self, NewOptions};

pub const HELP: &str = "\
kurento-module-creator: Kurento Module Descriptors (.kmd.json) into Rust server
code, JavaScript client modules and fused descriptors.

Usage:
  kurento-module-creator -r <files|dirs>... [options]
  kurento-module-creator new <name> [--dir <parent>] [--kurento-path <repo>]
  kurento-module-creator builtins [--check]

Options:
  -r,  --rom <files|dirs>...      descriptors of the module(s) to generate
                                  (repeatable; a directory means every
                                  *.kmd.json in it; split files are fused)
  -dr, --deprom <files|dirs>...   descriptors of imported modules (no code is
                                  generated for them). The built-in core,
                                  elements and filters descriptors of this
                                  kurento-rs checkout are used for any of them
                                  not given here.
  -c,  --codegen <dir>            output directory for generated code
       --rust                     Rust server code: <dir>/<module>.rs, for
                                  include!() (the default)
       --js                       JavaScript client module: <dir>/<module>/
       --rust-auto                Rust server code to check in (one module):
                                  <dir>/mod.rs, types.rs, events.rs, one file
                                  per class and kmd.json, formatted with
                                  rustfmt, headed 'do not edit'; generated
                                  files <dir> no longer needs are removed. The
                                  crate's build.rs must call
                                  module_creator::builder::stamp_generation_time()
       --check                    with --rust-auto: write nothing, compare
                                  with <dir>; exit status 1 and a diff if they
                                  differ
  -o,  --output-model <dir>       write the fused descriptor <dir>/<module>.kmd.json
  -s,  --show-values <keys>...    print `key = value` for keys of the fused
                                  descriptor (dotted paths, e.g. name, version,
                                  code.api.js.nodeName; `,` or `;` separated)
  -lf, --list-generated-files     print the files -c would write, write nothing
  -h,  --help                     this help

new <name>: creates ./<name>/, a module crate that builds a media server with
the module linked in (sample Filter class, hand-written implementation, tests,
generated JavaScript client in js/).
  --dir <parent>                  create <parent>/<name>/ instead
  --kurento-path <repo>           the kurento-rs checkout to depend on (default:
                                  the one this tool was built from)

builtins: regenerates the checked-in server code of the built-in modules of
the kurento-rs checkout this tool was built from (kms-core/src/auto,
kms-elements/src/auto, kms-filters/src/auto); what ci/regen.sh runs.
  --check                         write nothing; exit status 1 and a diff if
                                  the checked-in code is stale

Errors are printed as `file: json.path: message`; the exit status is then 1.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Generate(GenerateOptions),
    New(NewOptions),
    /// Regenerate (or with `check`, compare) the built-in modules' trees.
    Builtins {
        check: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    pub rom: Vec<PathBuf>,
    pub deprom: Vec<PathBuf>,
    pub codegen: Option<PathBuf>,
    pub rust: bool,
    pub js: bool,
    pub rust_auto: bool,
    pub check: bool,
    pub output_model: Option<PathBuf>,
    pub show_values: Vec<String>,
    pub list_generated_files: bool,
}

/// A command-line mistake (not a descriptor problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Splits `--opt=value` into its parts.
fn split_eq(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((k, v)) if k.starts_with("--") => (k, Some(v)),
        _ => (arg, None),
    }
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    match args.first().map(String::as_str) {
        Some("new") => return parse_new(&args[1..]),
        Some("builtins") => return parse_builtins(&args[1..]),
        _ => {}
    }
    let mut o = GenerateOptions::default();
    let mut i = 0;
    // The values of a multi-valued option: the inline one, then every
    // following argument up to the next option (upstream's `-r a b c`).
    fn values(args: &[String], i: &mut usize, inline: Option<&str>, opt: &str) -> Result<Vec<String>, UsageError> {
        let mut out: Vec<String> = inline.map(|v| vec![v.to_string()]).unwrap_or_default();
        while let Some(a) = args.get(*i + 1).filter(|a| !a.starts_with('-') || a.as_str() == "-") {
            out.push(a.clone());
            *i += 1;
        }
        if out.is_empty() || out.iter().any(String::is_empty) {
            return Err(usage(format!("{opt} needs a value")));
        }
        Ok(out)
    }
    fn single(args: &[String], i: &mut usize, inline: Option<&str>, opt: &str) -> Result<String, UsageError> {
        let v = match inline {
            Some(v) => v.to_string(),
            None => {
                *i += 1;
                args.get(*i).cloned().ok_or_else(|| usage(format!("{opt} needs a value")))?
            }
        };
        if v.is_empty() {
            return Err(usage(format!("{opt} needs a value")));
        }
        Ok(v)
    }
    while i < args.len() {
        let (opt, inline) = split_eq(&args[i]);
        match opt {
            "-h" | "--help" => return Ok(Command::Help),
            "-r" | "--rom" => o.rom.extend(values(args, &mut i, inline, opt)?.into_iter().map(PathBuf::from)),
            "-dr" | "--deprom" => o.deprom.extend(values(args, &mut i, inline, opt)?.into_iter().map(PathBuf::from)),
            "-c" | "--codegen" => o.codegen = Some(PathBuf::from(single(args, &mut i, inline, opt)?)),
            "-o" | "--output-model" => o.output_model = Some(PathBuf::from(single(args, &mut i, inline, opt)?)),
            "-s" | "--show-values" => {
                for v in values(args, &mut i, inline, opt)? {
                    o.show_values
                        .extend(v.split([',', ';']).map(str::trim).filter(|k| !k.is_empty()).map(String::from));
                }
            }
            "-lf" | "--list-generated-files" if inline.is_none() => o.list_generated_files = true,
            "--rust" if inline.is_none() => o.rust = true,
            "--js" if inline.is_none() => o.js = true,
            "--rust-auto" if inline.is_none() => o.rust_auto = true,
            "--check" if inline.is_none() => o.check = true,
            other if other.starts_with('-') => return Err(usage(format!("unknown option '{}'", args[i]))),
            other => return Err(usage(format!("unexpected argument '{other}' (descriptors go after -r)"))),
        }
        i += 1;
    }
    if o.rom.is_empty() {
        return Err(usage("-r/--rom is required"));
    }
    if (o.rust || o.js || o.rust_auto || o.list_generated_files) && o.codegen.is_none() {
        return Err(usage("--rust, --js, --rust-auto and -lf need -c/--codegen <dir>"));
    }
    if o.rust_auto && (o.rust || o.js) {
        return Err(usage("--rust-auto writes <dir> itself: not with --rust or --js"));
    }
    if o.check && !o.rust_auto {
        return Err(usage("--check compares --rust-auto output: give --rust-auto"));
    }
    if o.codegen.is_none() && o.output_model.is_none() && o.show_values.is_empty() {
        return Err(usage("nothing to do: give -c/--codegen, -o/--output-model or -s/--show-values"));
    }
    if o.codegen.is_some() && !o.js && !o.rust_auto {
        o.rust = true;
    }
    Ok(Command::Generate(o))
}

fn parse_builtins(args: &[String]) -> Result<Command, UsageError> {
    let mut check = false;
    for a in args {
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--check" => check = true,
            other => return Err(usage(format!("unknown argument '{other}' for builtins"))),
        }
    }
    Ok(Command::Builtins { check })
}

fn parse_new(args: &[String]) -> Result<Command, UsageError> {
    let mut name: Option<String> = None;
    let mut opts = NewOptions::default();
    let mut i = 0;
    while i < args.len() {
        let (opt, inline) = split_eq(&args[i]);
        let value = |i: &mut usize| -> Result<PathBuf, UsageError> {
            let v = match inline {
                Some(v) => v.to_string(),
                None => {
                    *i += 1;
                    args.get(*i).cloned().ok_or_else(|| usage(format!("{opt} needs a value")))?
                }
            };
            if v.is_empty() { Err(usage(format!("{opt} needs a value"))) } else { Ok(PathBuf::from(v)) }
        };
        match opt {
            "-h" | "--help" => return Ok(Command::Help),
            "--dir" => opts.parent = value(&mut i)?,
            "--kurento-path" => opts.kurento_path = Some(value(&mut i)?),
            other if other.starts_with('-') => return Err(usage(format!("unknown option '{}' for new", args[i]))),
            other if name.is_none() => name = Some(other.to_string()),
            other => return Err(usage(format!("unexpected argument '{other}': new takes one name"))),
        }
        i += 1;
    }
    opts.name = name.ok_or_else(|| usage("new needs a module name: kurento-module-creator new <name>"))?;
    Ok(Command::New(opts))
}

/// Runs the tool: parses `args` (without the program name), writes normal
/// output to `out` and messages to `err`; returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cmd = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "kurento-module-creator: {e}\nTry 'kurento-module-creator --help'.");
            return 1;
        }
    };
    let result = match cmd {
        Command::Help => {
            let _ = out.write_all(HELP.as_bytes());
            return 0;
        }
        Command::Generate(o) => generate(&o, out, err),
        Command::Builtins { check } => {
            let root = checked_in::repo_root();
            checked_in::render_builtins(&root)
                .and_then(|trees| write_or_check(&trees, check, &root, checked_in::BUILTIN_REGEN_COMMAND, out, err))
        }
        Command::New(o) => scaffold::create(&o).map(|created| {
            let _ = writeln!(out, "created {}", created.dir.display());
            let _ = writeln!(out, "build and run it: cd {} && cargo run", created.dir.display());
            Outcome::Done
        }),
    };
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Stale) => 1,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            1
        }
    }
}

/// Loads rom and deprom modules into a validated set; returns it with the
/// names of the rom modules.
pub fn load(o: &GenerateOptions) -> Result<(ModuleSet, Vec<String>), KmdError> {
    let rom = load_modules(&o.rom)?;
    let names: Vec<String> = rom.iter().map(|m| m.name.clone()).collect();
    let mut all: Vec<Module> = rom;
    for d in load_modules(&o.deprom)? {
        if !all.iter().any(|m| m.name == d.name) {
            all.push(d);
        }
    }
    // core, elements, filters not given with -dr: this tool's checkout's.
    for b in checked_in::BUILTINS {
        let path = checked_in::repo_root().join(b.descriptor);
        if !all.iter().any(|m| m.name == b.module) && path.is_file() {
            all.extend(load_modules(&[path])?);
        }
    }
    Ok((ModuleSet::new(all)?, names))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> KmdError {
    KmdError::new(&path.display().to_string(), "", format!("{what}: {e}"))
}

fn write_file(path: &Path, contents: &str) -> Result<(), KmdError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "cannot create directory", e))?;
    }
    std::fs::write(path, contents).map_err(|e| io_err(path, "cannot write", e))
}

/// How a successful run ends: `--check` finding stale code is not an error
/// of the tool, but it must end with status 1.
enum Outcome {
    Done,
    Stale,
}

/// Writes the trees, or with `check` compares them with what is checked in
/// and prints every difference; paths are shown relative to `base`.
fn write_or_check(
    trees: &[checked_in::Tree],
    check: bool,
    base: &Path,
    regen: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, KmdError> {
    let show = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
    let mut stale = false;
    for t in trees {
        if check {
            for m in checked_in::compare(t)? {
                stale = true;
                let _ = writeln!(err, "{}", m.relative_to(base));
            }
        } else {
            for p in checked_in::write(t)? {
                let _ = writeln!(out, "{}", show(&p));
            }
        }
    }
    if stale {
        let _ = writeln!(err, "the checked-in generated code is stale; regenerate it with {regen}");
        return Ok(Outcome::Stale);
    }
    Ok(Outcome::Done)
}

/// `kurento-module-creator -r ... -c <dir> --rust-auto`, as given, for the
/// header of the files it writes.
fn regen_command(o: &GenerateOptions) -> String {
    let list = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    let mut cmd = format!("kurento-module-creator -r {}", list(&o.rom));
    if !o.deprom.is_empty() {
        cmd += &format!(" -dr {}", list(&o.deprom));
    }
    cmd += &format!(" -c {} --rust-auto", o.codegen.as_deref().unwrap_or(Path::new(".")).display());
    format!("`{cmd}`")
}

fn generate(o: &GenerateOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, KmdError> {
    let (set, names) = load(o)?;
    if o.rust_auto {
        let [module] = names.as_slice() else {
            return Err(KmdError::new(
                "<command line>",
                "",
                format!("--rust-auto generates one module into <dir>; -r gave {}", names.len()),
            ));
        };
        let dir = o.codegen.as_deref().expect("checked by parse");
        if o.list_generated_files {
            for f in rust_server::generate_tree(&set, module, &RustPaths::default(), "", "")? {
                let _ = writeln!(out, "{}", dir.join(f.name).display());
            }
            return Ok(Outcome::Done);
        }
        let sources = o.rom.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let regen = regen_command(o);
        let header = checked_in::header(&sources, &regen);
        let tree = checked_in::render(&set, module, &RustPaths::default(), &header, dir)?;
        return write_or_check(&[tree], o.check, Path::new(""), &regen, out, err);
    }
    let modules: Vec<&Module> = names.iter().filter_map(|n| set.module(n)).collect();
    for m in &modules {
        let fused = set.fused_json(m);
        for key in &o.show_values {
            let _ = writeln!(out, "{key} = {}", show_value(&fused, key));
        }
        if let Some(dir) = &o.output_model {
            let text = serde_json::to_string_pretty(&fused).unwrap_or_default() + "\n";
            write_file(&dir.join(format!("{}.kmd.json", m.name)), &text)?;
        }
        let Some(codegen) = &o.codegen else { continue };
        if o.rust {
            let path = codegen.join(format!("{}.rs", m.name));
            if o.list_generated_files {
                let _ = writeln!(out, "{}", path.display());
            } else {
                let kmd = serde_json::to_string(&fused).unwrap_or_default();
                let code = rust_server::generate(
                    &set,
                    &m.name,
                    &RustPaths::default(),
                    &kmd,
                    &crate::builder::generation_time(),
                );
                write_file(&path, &code)?;
            }
        }
        if o.js {
            let dir = codegen.join(&m.name);
            if o.list_generated_files {
                for f in js_client::render_js(&set, &m.name)? {
                    let _ = writeln!(out, "{}", dir.join(f.path).display());
                }
            } else {
                js_client::generate_js(&set, &m.name, &dir)?;
            }
        }
    }
    Ok(Outcome::Done)
}

/// The value at a dotted path of the fused descriptor: strings bare, other
/// values as compact JSON, missing keys as the empty string.
fn show_value(fused: &Value, key: &str) -> String {
    let mut v = fused;
    for part in key.split('.') {
        match v.get(part) {
            Some(x) => v = x,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn upstream_spellings_and_multi_valued_options_parse() {
        let Command::Generate(o) =
            parse(&args("-r a.kmd.json b -dr core -c out -lf -s name,version -o model")).unwrap()
        else {
            panic!("not generate")
        };
        assert_eq!(o.rom, vec![PathBuf::from("a.kmd.json"), PathBuf::from("b")]);
        assert_eq!(o.deprom, vec![PathBuf::from("core")]);
        assert_eq!(o.codegen, Some(PathBuf::from("out")));
        assert!(o.rust && !o.js && o.list_generated_files);
        assert_eq!(o.show_values, vec!["name", "version"]);
        assert_eq!(o.output_model, Some(PathBuf::from("model")));
    }

    #[test]
    fn js_only_when_asked_and_rust_is_the_default() {
        let Command::Generate(o) = parse(&args("--rom=x --codegen=out --js")).unwrap() else { panic!() };
        assert!(o.js && !o.rust);
        let Command::Generate(o) = parse(&args("-r x -c out --js --rust")).unwrap() else { panic!() };
        assert!(o.js && o.rust);
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for bad in
            ["", "-c out", "-r", "-r x", "-r x -c", "-r x --bogus -c o", "-r x --js", "new", "new a b", "new a --dir"]
        {
            assert!(parse(&args(bad)).is_err(), "'{bad}' should be rejected");
        }
    }

    #[test]
    fn new_takes_a_name_a_parent_dir_and_a_checkout() {
        let Command::New(o) = parse(&args("new demo --dir /tmp/x --kurento-path /repo")).unwrap() else { panic!() };
        assert_eq!(o.name, "demo");
        assert_eq!(o.parent, PathBuf::from("/tmp/x"));
        assert_eq!(o.kurento_path, Some(PathBuf::from("/repo")));
    }

    #[test]
    fn show_value_follows_dotted_paths() {
        let v = serde_json::json!({"name": "m", "code": {"api": {"js": {"nodeName": "n"}}}, "imports": []});
        assert_eq!(show_value(&v, "name"), "m");
        assert_eq!(show_value(&v, "code.api.js.nodeName"), "n");
        assert_eq!(show_value(&v, "imports"), "[]");
        assert_eq!(show_value(&v, "nope.x"), "");
    }
}
