//! `kurento-module-creator new <name>`: a ready-to-build module crate (the
//! Rust counterpart of upstream's `kurento-module-scaffold`, spec §12.5).
//!
//! The crate holds the descriptor (`<name>.kmd.json`, a sample Filter class),
//! a `build.rs` generating the server code from it, the hand-written
//! implementation (`src/lib.rs`: a working pass-through filter with a
//! property, a method and an event), `src/main.rs` building a media server
//! with the module linked in, a test, and the generated JavaScript client in
//! `js/`. Third-party modules are linked statically into their own server
//! binary: Rust has no stable ABI for loading trait objects from a `.so`.

use std::path::{Path, PathBuf};

use crate::error::KmdError;
use crate::js_client::generate_js;
use crate::model::load_modules;
use crate::names;
use crate::resolve::ModuleSet;

/// What `new` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewOptions {
    /// Module name: snake_case, also the crate name.
    pub name: String,
    /// Where `<name>/` is created (empty: the current directory).
    pub parent: PathBuf,
    /// The kurento-rs checkout the crate depends on (default: the one this
    /// tool was built from).
    pub kurento_path: Option<PathBuf>,
}

/// What `new` created.
#[derive(Debug, Clone)]
pub struct Created {
    pub dir: PathBuf,
    /// Every file written, the generated JS client included.
    pub files: Vec<PathBuf>,
}

/// Names that would clash with the built-in modules or with the crates the
/// new crate depends on.
const RESERVED: &[&str] = &[
    "core",
    "elements",
    "filters",
    "kurento",
    "kms_core",
    "kms_elements",
    "kms_filters",
    "kms_jsonrpc",
    "kurento_media_server",
    "module_creator",
    "gst",
    "serde_json",
    "std",
    "alloc",
    "test",
    "proc_macro",
    "api",
];

/// Checks a module name: lowercase snake_case, not a Rust keyword, not a
/// built-in module or a dependency's crate name.
pub fn check_name(name: &str) -> Result<(), String> {
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__");
    if !well_formed {
        return Err(format!(
            "invalid module name '{name}': use snake_case (lowercase letters, digits, single underscores), e.g. my_filter"
        ));
    }
    // The generated code finds the module at `crate::api::<snake(name)>`.
    if names::snake(name) != name || names::field(name) != name {
        return Err(format!("invalid module name '{name}': not usable as a Rust identifier"));
    }
    if RESERVED.contains(&name) {
        return Err(format!("invalid module name '{name}': reserved (built-in module or dependency crate)"));
    }
    Ok(())
}

/// The default checkout: the one this crate was built from.
fn default_kurento_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Escapes text for a TOML basic string.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Creates `<parent>/<name>/`.
pub fn create(o: &NewOptions) -> Result<Created, KmdError> {
    let name = o.name.as_str();
    check_name(name).map_err(|m| KmdError::new(name, "", m))?;
    let repo_given = o.kurento_path.clone().unwrap_or_else(default_kurento_path);
    let repo_shown = repo_given.display().to_string();
    let repo = repo_given
        .canonicalize()
        .map_err(|e| KmdError::new(&repo_shown, "", format!("kurento-rs checkout not found: {e}")))?;
    for member in ["kms-core", "kms-elements", "kms-filters", "kms-jsonrpc", "kurento-media-server", "module-creator"] {
        if !repo.join(member).join("Cargo.toml").is_file() {
            return Err(KmdError::new(
                &repo_shown,
                "",
                format!("not a kurento-rs checkout ({member}/Cargo.toml missing); pass --kurento-path <repo>"),
            ));
        }
    }
    let repo_str = repo
        .to_str()
        .ok_or_else(|| KmdError::new(&repo_shown, "", "the checkout path is not valid UTF-8"))?
        .to_string();
    let dir = o.parent.join(name);
    let shown = dir.display().to_string();
    if dir.exists() {
        return Err(KmdError::new(&shown, "", "already exists; choose another name or --dir"));
    }

    let camel = heck::ToUpperCamelCase::to_upper_camel_case(name);
    let class = format!("{camel}Filter");
    let subst = |t: &str| {
        t.replace("@name@", name)
            .replace("@Camel@", &camel)
            .replace("@class_snake@", &names::snake(&class))
            .replace("@repo@", &toml_escape(&repo_str))
    };
    let files: Vec<(String, String)> = vec![
        ("Cargo.toml".into(), subst(CARGO_TOML)),
        (format!("{name}.kmd.json"), subst(KMD_JSON)),
        ("build.rs".into(), subst(BUILD_RS)),
        ("src/api.rs".into(), subst(API_RS)),
        ("src/lib.rs".into(), subst(LIB_RS)),
        ("src/main.rs".into(), subst(MAIN_RS)),
        (format!("tests/{name}.rs"), subst(TEST_RS)),
        ("README.md".into(), subst(README_MD)),
        (".gitignore".into(), GITIGNORE.to_string()),
        ("rustfmt.toml".into(), RUSTFMT_TOML.to_string()),
    ];
    let mut written = vec![];
    for (rel, contents) in files {
        let path = dir.join(&rel);
        write(&path, &contents)?;
        written.push(path);
    }
    // The templates follow rustfmt.toml for short names; longer ones may
    // need reflowing. Best effort: without rustfmt the files stay as written.
    let rust_files: Vec<&PathBuf> = written.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")).collect();
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2024", "--config-path"])
        .arg(dir.join("rustfmt.toml"))
        .args(&rust_files)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    // Same dependency versions as the server the module links with.
    let lock = repo.join("Cargo.lock");
    if lock.is_file() {
        let dest = dir.join("Cargo.lock");
        std::fs::copy(&lock, &dest).map_err(|e| io_err(&dest, "cannot copy the checkout's Cargo.lock", e))?;
        written.push(dest);
    }

    // The descriptor is checked against the checkout's built-in modules, and
    // its JS client generated, now: a broken sample fails here, not later.
    let kmd = dir.join(format!("{name}.kmd.json"));
    let mut modules = load_modules(std::slice::from_ref(&kmd))?;
    modules.extend(load_modules(&crate::checked_in::builtin_descriptors(&repo))?);
    let set = ModuleSet::new(modules)?;
    written.extend(generate_js(&set, name, &dir.join("js"))?);
    Ok(Created { dir, files: written })
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> KmdError {
    KmdError::new(&path.display().to_string(), "", format!("{what}: {e}"))
}

fn write(path: &Path, contents: &str) -> Result<(), KmdError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_err(d, "cannot create directory", e))?;
    }
    std::fs::write(path, contents).map_err(|e| io_err(path, "cannot write", e))
}

const CARGO_TOML: &str = r#"# The `@name@` Kurento module and a media server with it linked in.
# Created by `kurento-module-creator new @name@`.
[package]
name = "@name@"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[[bin]]
name = "@name@-media-server"
path = "src/main.rs"

[dependencies]
# The runtime generated code targets (`::kms_core::rt`) and the core module
# (MediaPipeline, MediaElement, Filter, ...).
kms-core = { path = "@repo@/kms-core" }
# Generated code refers to these when the descriptor uses their types.
kms-elements = { path = "@repo@/kms-elements" }
kms-filters = { path = "@repo@/kms-filters" }
# The server as a library: `main_with_modules`.
kurento-media-server = { path = "@repo@/kurento-media-server" }
gst = { package = "gstreamer", version = "0.25", features = ["v1_22"] }

[build-dependencies]
module-creator = { path = "@repo@/module-creator" }

[dev-dependencies]
kms-jsonrpc = { path = "@repo@/kms-jsonrpc" }
serde_json = "1"

# A workspace of its own, not part of any enclosing one.
[workspace]

# As in kurento-rs: GStreamer and tokio are slow unoptimized.
[profile.dev]
debug = 1
[profile.dev.package."*"]
opt-level = 2
debug = 0
"#;

const KMD_JSON: &str = r#"{
  "name": "@name@",
  "version": "0.1.0",
  "kurentoVersion": "^7.1.0",
  "code": {
    "api": {
      "js": {
        "nodeName": "kurento-module-@name@",
        "npmDescription": "JavaScript client of the @name@ Kurento module"
      }
    }
  },
  "remoteClasses": [
    {
      "name": "@Camel@Filter",
      "extends": "Filter",
      "doc": "A sample filter: media passes through unchanged; it keeps a label and greets with it.",
      "constructor": {
        "doc": "Creates a @Camel@Filter in a pipeline.",
        "params": [
          {
            "name": "mediaPipeline",
            "doc": "the :rom:cls:`MediaPipeline` the filter belongs to",
            "type": "MediaPipeline"
          }
        ]
      },
      "properties": [
        {
          "name": "label",
          "doc": "Text used by :rom:meth:`greet`; setting it raises :rom:evt:`@Camel@LabelChanged`.",
          "type": "String"
        }
      ],
      "methods": [
        {
          "name": "greet",
          "doc": "Greets someone with the label.",
          "params": [
            {
              "name": "name",
              "doc": "who to greet",
              "type": "String"
            }
          ],
          "return": {
            "doc": "`<label>, <name>!`",
            "type": "String"
          }
        }
      ],
      "events": [
        "@Camel@LabelChanged"
      ]
    }
  ],
  "complexTypes": [],
  "events": [
    {
      "name": "@Camel@LabelChanged",
      "extends": "Media",
      "doc": "The label of a :rom:cls:`@Camel@Filter` changed.",
      "properties": [
        {
          "name": "label",
          "doc": "the new label",
          "type": "String"
        }
      ]
    }
  ]
}
"#;

const BUILD_RS: &str = r#"//! Generates the `@name@` module's server code (traits, types, dispatch,
//! module descriptor) from `@name@.kmd.json` into `OUT_DIR`, against the
//! built-in core/elements/filters descriptors; `src/api.rs` includes it.
fn main() {
    if let Err(e) = module_creator::Builder::new().rom("@name@.kmd.json").builtin_deps().generate_rust() {
        // `file: json.path: message`
        panic!("{e}");
    }
}
"#;

const API_RS: &str = r#"//! Code generated from `@name@.kmd.json` (in `OUT_DIR`, never edited): the
//! `@Camel@Filter` trait and its factory trait, the constructor parameters,
//! the events and `module_descriptor`. Generated code expects this module at
//! `crate::api::@name@`.

include!(concat!(env!("OUT_DIR"), "/@name@.rs"));
"#;

const LIB_RS: &str = r#"//! The `@name@` Kurento module: the hand-written implementation of the
//! classes declared in `@name@.kmd.json`. The generated code (`api`) gives a
//! trait per class; this file implements them.
//!
//! `@Camel@Filter` is a sample: media passes through unchanged (as in the
//! core PassThrough: one agnosticbin per media type and description), it
//! keeps a `label`, raises `@Camel@LabelChanged` when the label changes and
//! answers `greet(name)`. Put your GStreamer elements into the element's
//! bin in `MediaIo` to process media.

pub mod api;

use std::sync::Arc;

use gst::prelude::*;
use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::{Filter, MediaType};
use kms_core::element::{ElementCore, ElementObject, MediaIo, media_type_name};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::{Ctx, Error, ModuleDescriptor, Result};
use kms_core::sync::Mutex;

use crate::api::@name@::events::@Camel@LabelChanged;
use crate::api::@name@::{@Camel@Filter, @Camel@FilterConstructor, @Camel@FilterFactory};

/// The `@name@` module with its implemented classes, for
/// `kurento_media_server::main_with_modules`.
pub fn descriptor() -> ModuleDescriptor {
    api::@name@::module_descriptor(vec![api::@name@::@class_snake@_class::<@Camel@FilterImpl>()])
}

pub struct @Camel@FilterImpl {
    core: ElementCore,
    label: Mutex<String>,
}

/// Media: every input goes unchanged to the output of the same media type
/// and description.
struct PassIo;

impl PassIo {
    fn agnostic(bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        let name = format!("agnostic_{}_{}", media_type_name(t), desc);
        if let Some(e) = bin.by_name(&name) {
            return e.downcast::<AgnosticBin>().ok();
        }
        let a = AgnosticBin::new(&name);
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        Some(a)
    }
}

impl MediaIo for PassIo {
    fn input(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<gst::Pad> {
        PassIo::agnostic(bin, t, desc)?.static_pad("sink")
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        PassIo::agnostic(bin, t, desc)
    }
}

impl RemoteObject for @Camel@FilterImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        self.core.release();
    }
}

/// Gives the generated `MediaElement` (connect, stats, flow...) for free.
impl ElementObject for @Camel@FilterImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl Filter for @Camel@FilterImpl {}

impl @Camel@Filter for @Camel@FilterImpl {
    fn get_label(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.label.lock().clone())
    }

    fn set_label(&self, _ctx: &Ctx, value: String) -> Result<()> {
        *self.label.lock() = value.clone();
        self.core.base().raise(&@Camel@LabelChanged { label: value });
        Ok(())
    }

    fn greet(&self, ctx: &Ctx, who: String) -> Result<String> {
        Ok(format!("{}, {who}!", self.get_label(ctx)?))
    }
}

impl @Camel@FilterFactory for @Camel@FilterImpl {
    fn construct(ctx: &Ctx, params: @Camel@FilterConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let core = ElementCore::new(ctx, base, shared, Box::new(PassIo))?;
        Ok(Arc::new(@Camel@FilterImpl { core, label: Mutex::new("Hello".into()) }))
    }
}
"#;

const MAIN_RS: &str = r#"//! A Kurento Media Server with the `@name@` module linked in: the command
//! line, configuration and built-in modules of `kurento-media-server`.

fn main() -> std::process::ExitCode {
    kurento_media_server::main_with_modules(vec![@name@::descriptor()])
}
"#;

const TEST_RS: &str = r#"//! `@Camel@Filter` through the registry the server uses: created by name in
//! a pipeline, its property and method, and media connections.

use kms_core::{CoreConfig, Registry};
use kms_jsonrpc::config::ServerConfig;
use kms_jsonrpc::{MediaBackend, SessionHub, SessionId};
use serde_json::json;

fn registry() -> Registry {
    kms_core::module::init().expect("GStreamer initializes");
    let hub = SessionHub::new(&ServerConfig::default());
    Registry::new(vec![kms_core::module::descriptor(), @name@::descriptor()], hub.notifier(), CoreConfig::default())
}

#[test]
fn @class_snake@_is_created_in_a_pipeline_and_answers_its_property_and_method() {
    let r = registry();
    let s = SessionId::new_random();
    let p = r.create(&s, "MediaPipeline", None).unwrap();
    let f = r.create(&s, "@Camel@Filter", Some(&json!({"mediaPipeline": p}))).unwrap();
    assert!(f.starts_with(&format!("{p}/")) && f.ends_with("_@name@.@Camel@Filter"), "{f}");
    assert_eq!(r.invoke(&s, &f, "getLabel", None).unwrap(), json!("Hello"));
    assert_eq!(r.invoke(&s, &f, "greet", json!({"name": "world"}).as_object()).unwrap(), json!("Hello, world!"));
    r.invoke(&s, &f, "setLabel", json!({"label": "Hi"}).as_object()).unwrap();
    assert_eq!(r.invoke(&s, &f, "greet", json!({"name": "you"}).as_object()).unwrap(), json!("Hi, you!"));
    // A required parameter is required.
    assert!(r.invoke(&s, &f, "greet", None).is_err());
    // It is a MediaElement: it connects like any other (audio, video, data).
    let sink = r.create(&s, "PassThrough", Some(&json!({"mediaPipeline": p}))).unwrap();
    r.invoke(&s, &f, "connect", json!({"sink": sink}).as_object()).unwrap();
    let conns = r.invoke(&s, &sink, "getSourceConnections", None).unwrap();
    assert_eq!(conns.as_array().map(Vec::len), Some(3), "{conns}");
    r.release(&s, &p).unwrap();
}

#[test]
fn the_module_descriptor_carries_the_fused_kmd() {
    let d = @name@::descriptor();
    assert_eq!(d.name, "@name@");
    let kmd: serde_json::Value = serde_json::from_str(d.kmd).unwrap();
    assert_eq!(kmd["remoteClasses"][0]["name"], "@Camel@Filter");
}
"#;

const README_MD: &str = r#"# @name@

A Kurento module for kurento-rs, created by `kurento-module-creator new @name@`.

| File | What it is |
| --- | --- |
| `@name@.kmd.json` | The module descriptor: classes, types, events (Kurento Module Descriptor format). |
| `build.rs` | Generates the server code from the descriptor into `OUT_DIR` (module-creator). |
| `src/api.rs` | Includes the generated code: one trait per class, constructor params, events. |
| `src/lib.rs` | Your implementation of the generated traits, and `descriptor()`. |
| `src/main.rs` | A media server with this module linked in (`kurento_media_server::main_with_modules`). |
| `tests/@name@.rs` | The class driven through the server's registry. |
| `js/` | The JavaScript client module for the official `kurento-client` (`kurentoClient.register(require('./js'))`). |

Build, test, run (same options and configuration as `kurento-media-server`):

```sh
cargo test
cargo run --bin @name@-media-server -- --conf-file /etc/kurento/kurento.conf.json
```

`@name@-media-server --list` shows `@Camel@Filter` and `@name@.@Camel@Filter`.

After changing the descriptor, regenerate the JS client:

```sh
kurento-module-creator -r @name@.kmd.json -c js-out --js   # writes js-out/@name@/
```
"#;

const GITIGNORE: &str = "/target\n/js/node_modules\n";

/// kurento-rs's formatting, which the templates follow.
const RUSTFMT_TOML: &str = "max_width = 120\nuse_small_heuristics = \"Max\"\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_snake_case_rust_identifiers_not_taken_by_the_server() {
        for good in ["demo", "my_filter", "fx2"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Demo", "my-filter", "2fx", "_x", "x_", "a__b", "type", "core", "kms_core", "self", "démo"] {
            assert!(check_name(bad).is_err(), "'{bad}' should be rejected");
        }
    }
}
