//! JavaScript client modules (spec §12.3, `client-js` templates): the npm
//! package layout the official `kurento-client` loads with
//! `kurentoClient.register(require(dir))`.
//!
//! One module becomes `package.json`, `lib/index.js` (name, version,
//! concrete classes, `abstracts`, `complexTypes`), `lib/<Class>.js`,
//! `lib/abstracts/<Class>.js`, `lib/complexTypes/<Type>.js`, the doc-only
//! `lib/events.js`/`lib/external.js`, `lib/browser.js` for plugins, and the
//! fused descriptor in `src/<module>.kmd.json`.
//!
//! The code shape follows upstream's generator exactly (the runtime relies
//! on it: `constructorParams` schemas drive `checkParams`, `events` lists
//! gate subscriptions, `check` functions feed `checkType`), so the built-in
//! modules come out token-identical to the official `kurento-client-core`,
//! `-elements` and `-filters` 7.3.0 packages, minus comments. Rendering is
//! pure ([`render_js`]); [`generate_js`] only writes the files.

mod core_special;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::emit_kmd;
use crate::error::KmdError;
use crate::model::*;
use crate::resolve::{ModuleSet, Resolved};

/// One generated file, relative to the package root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsFile {
    pub path: PathBuf,
    pub contents: String,
}

/// Generates the JS client package of `module` into `out_dir` (created if
/// needed; other files there are left alone). Returns the written paths.
pub fn generate_js(set: &ModuleSet, module: &str, out_dir: &Path) -> Result<Vec<PathBuf>, KmdError> {
    let files = render_js(set, module)?;
    let mut written = Vec::with_capacity(files.len());
    for f in files {
        let path = out_dir.join(&f.path);
        let shown = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| KmdError::new(&shown, "", format!("cannot create directory: {e}")))?;
        }
        std::fs::write(&path, f.contents).map_err(|e| KmdError::new(&shown, "", format!("cannot write: {e}")))?;
        written.push(path);
    }
    Ok(written)
}

/// Renders the JS client package of `module` (which must be in `set`).
pub fn render_js(set: &ModuleSet, module: &str) -> Result<Vec<JsFile>, KmdError> {
    let m = set.module(module).ok_or_else(|| {
        KmdError::new(&format!("<module {module}>"), "", format!("module '{module}' is not in the module set"))
    })?;
    Gen { set, m }.render()
}

/// JavaScript reserved words a descriptor name could collide with; such
/// parameters get a `_` suffix as JS variables (the wire name is kept).
const JS_RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "callback",
    "transaction",
    "params",
    "undefined",
];

fn js_ident(name: &str) -> String {
    if JS_RESERVED.contains(&name) { format!("{name}_") } else { name.to_string() }
}

fn cap_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn uncap_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A single-quoted JS string literal.
fn js_str(s: &str) -> String {
    let mut out = String::from("'");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Upstream lists members in collation order: case-insensitive, so
/// `ICECandidatePairs` sorts before `IceConnectionState`.
fn sort_ci<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        a.to_lowercase().cmp(&b.to_lowercase()).then_with(|| a.cmp(b))
    });
}

/// Descriptor doc text as JSDoc lines: first paragraph, Sphinx roles gone,
/// no comment terminators.
fn doc_lines(doc: &str) -> Vec<String> {
    let first = doc.split("\n\n").next().unwrap_or("").trim();
    first
        .lines()
        .map(|l| {
            l.trim()
                .replace(":rom:cls:", "")
                .replace(":rom:meth:", "")
                .replace(":rom:attr:", "")
                .replace(":rom:evt:", "")
                .replace("*/", "*\\/")
        })
        .collect()
}

fn jsdoc(indent: &str, lines: &[String]) -> String {
    let mut s = format!("{indent}/**\n");
    for l in lines {
        if l.is_empty() {
            s.push_str(&format!("{indent} *\n"));
        } else {
            s.push_str(&format!("{indent} * {l}\n"));
        }
    }
    s.push_str(&format!("{indent} */\n"));
    s
}

const GENERATED: &str = "/* Generated by kurento-rs module-creator from the module descriptor; do not edit. */\n\n";

/// The npm package name of a module (`code.api.js.nodeName`).
fn node_name(m: &Module) -> String {
    let code = emit_kmd::code_with_defaults(m);
    match code.get("api").and_then(|a| a.get("js")).and_then(|j| j.get("nodeName")).and_then(Value::as_str) {
        Some(n) if !(m.is_builtin() && n == format!("kurento-module-{}", m.name)) => n.to_string(),
        // spec §12.1: built-ins are published as kurento-client-<name>
        _ if m.is_builtin() => format!("kurento-client-{}", m.name),
        Some(n) => n.to_string(),
        None => format!("kurento-module-{}", m.name),
    }
}

/// A parameter of a generated function.
struct CallParam {
    wire: String,
    js: String,
    optional: bool,
    type_ref: TypeRef,
}

/// A generated prototype function: a method, getter or setter. All of them
/// are one `invoke` of the operation with the same name.
struct Callable {
    name: String,
    doc: String,
    params: Vec<CallParam>,
    /// The result names remote objects, which `_describe` turns into proxies.
    returns_object: bool,
}

struct Gen<'a> {
    set: &'a ModuleSet,
    m: &'a Module,
}

impl<'a> Gen<'a> {
    fn is_core(&self) -> bool {
        self.m.name == "core"
    }

    fn render(&self) -> Result<Vec<JsFile>, KmdError> {
        let m = self.m;
        let mut files = vec![];
        let file = |p: &str, c: String| JsFile { path: PathBuf::from(p), contents: c };

        files.push(file("package.json", self.package_json()));

        let mut concrete: Vec<&RemoteClass> = m.remote_classes.iter().filter(|c| !c.is_abstract).collect();
        let mut abstracts: Vec<&RemoteClass> = m.remote_classes.iter().filter(|c| c.is_abstract).collect();
        let mut complex: Vec<&ComplexType> = m.complex_types.iter().collect();
        sort_ci(&mut concrete, |c| &c.name);
        sort_ci(&mut abstracts, |c| &c.name);
        sort_ci(&mut complex, |c| &c.name);
        let has_complex = !complex.is_empty() || self.is_core();

        files.push(file("lib/index.js", self.index_js(&concrete, !abstracts.is_empty(), has_complex)));
        for c in &concrete {
            files.push(file(&format!("lib/{}.js", c.name), self.class_file(c)?));
        }
        if !abstracts.is_empty() {
            let names: Vec<&str> = abstracts.iter().map(|c| c.name.as_str()).collect();
            files
                .push(file("lib/abstracts/index.js", self.list_index(&format!("{}/abstracts", m.name), &names, false)));
            for c in &abstracts {
                files.push(file(&format!("lib/abstracts/{}.js", c.name), self.class_file(c)?));
            }
        }
        if has_complex {
            let names: Vec<&str> = complex.iter().map(|c| c.name.as_str()).collect();
            files.push(file(
                "lib/complexTypes/index.js",
                self.list_index(&format!("{}/complexTypes", m.name), &names, self.is_core()),
            ));
            if self.is_core() {
                files.push(file("lib/complexTypes/ComplexType.js", complex_type_base()));
            }
            for c in &complex {
                files.push(file(&format!("lib/complexTypes/{}.js", c.name), self.complex_file(c)?));
            }
        }
        if !m.events.is_empty() {
            files.push(file("lib/events.js", self.events_js()));
        }
        files.push(file("lib/external.js", external_js()));
        if !m.is_builtin() {
            files.push(file(
                "lib/browser.js",
                format!("{GENERATED}// Browser bundles load the module through its index.\nrequire('.');\n"),
            ));
        }
        let kmd = serde_json::to_string_pretty(&emit_kmd::module_to_json(m)).expect("JSON values serialize");
        files.push(file(&format!("src/{}.kmd.json", m.name), kmd + "\n"));
        Ok(files)
    }

    fn package_json(&self) -> String {
        let m = self.m;
        let code = emit_kmd::code_with_defaults(m);
        let js = code.get("api").and_then(|a| a.get("js")).cloned().unwrap_or(Value::Null);
        let s = |k: &str| js.get(k).and_then(Value::as_str).map(str::to_string);
        let mut o = serde_json::Map::new();
        o.insert("name".into(), json!(node_name(m)));
        o.insert("version".into(), json!(s("npmVersion").unwrap_or_else(|| m.version.clone())));
        o.insert(
            "description".into(),
            json!(
                s("npmDescription")
                    .unwrap_or_else(|| format!("JavaScript Client API for the Kurento module '{}'", m.name))
            ),
        );
        if let Some(git) = s("npmGit") {
            // upstream's npmGit is either a full URL or a GitHub `owner/repo`
            let url = if git.contains("://") || git.starts_with("git@") {
                git
            } else {
                format!("https://github.com/{git}.git")
            };
            o.insert("repository".into(), json!({"type": "git", "url": url}));
        }
        if !m.is_builtin() {
            // What the generated files require besides kurento-client, which
            // the application provides (a second copy would not share the
            // class registry).
            o.insert(
                "dependencies".into(),
                json!({"es6-promise": "^2.0.1", "inherits": "^2.0.1", "promisecallback": "^0.0.3"}),
            );
        }
        o.insert("keywords".into(), json!(["Kurento", "module", "plugin"]));
        o.insert("main".into(), json!("lib/index.js"));
        serde_json::to_string_pretty(&Value::Object(o)).expect("JSON values serialize") + "\n"
    }

    fn index_js(&self, concrete: &[&RemoteClass], has_abstracts: bool, has_complex: bool) -> String {
        let m = self.m;
        let mut s = String::from(GENERATED);
        s += &jsdoc(
            "",
            &[format!("Kurento client API of the '{}' module.", m.name), String::new(), format!("@module {}", m.name)],
        );
        s += "\n";
        s += &format!("Object.defineProperty(exports, 'name',    {{value: {}}});\n", js_str(&m.name));
        s += &format!("Object.defineProperty(exports, 'version', {{value: {}}});\n\n\n", js_str(&m.version));
        for c in concrete {
            s += &format!("var {0} = require('./{0}');\n", c.name);
        }
        s += "\n\n";
        for c in concrete {
            s += &format!("exports.{0} = {0};\n", c.name);
        }
        s += "\n";
        if has_abstracts {
            s += "exports.abstracts    = require('./abstracts');\n";
        }
        if has_complex {
            s += "exports.complexTypes = require('./complexTypes');\n";
        }
        s
    }

    /// `abstracts/index.js` and `complexTypes/index.js`.
    fn list_index(&self, module_path: &str, names: &[&str], with_base: bool) -> String {
        let mut s = String::from(GENERATED);
        s += &jsdoc("", &[format!("@module {module_path}")]);
        s += "\n";
        if with_base {
            s += "var ComplexType = require('./ComplexType');\n\n";
        }
        for n in names {
            s += &format!("var {n} = require('./{n}');\n");
        }
        s += "\n\n";
        if with_base {
            s += "exports.ComplexType = ComplexType;\n\n";
        }
        for n in names {
            s += &format!("exports.{n} = {n};\n");
        }
        s
    }

    /// `kurento.MediaPipeline`, `chroma.WindowParam`, `int`: the type names
    /// `checkType` knows after registration.
    fn qualified_type(&self, t: &TypeRef) -> String {
        match self.set.resolve(self.m, t) {
            Some(Resolved::Primitive(p)) => p.to_string(),
            Some(Resolved::Class(om, c)) => format!("{}.{}", om.namespace(), c.name),
            Some(Resolved::Complex(om, c)) => format!("{}.{}", om.namespace(), c.name),
            None => t.name.clone(),
        }
    }

    fn jsdoc_type(&self, t: &TypeRef) -> String {
        let base = match self.set.resolve(self.m, t) {
            Some(Resolved::Primitive("String")) => "external:String".to_string(),
            Some(Resolved::Primitive("boolean")) => "external:Boolean".to_string(),
            Some(Resolved::Primitive("int")) => "external:Integer".to_string(),
            Some(Resolved::Primitive(_)) => "external:Number".to_string(),
            Some(Resolved::Class(om, c)) if c.is_abstract => {
                format!("module:{}/abstracts.{}", om.name, c.name)
            }
            Some(Resolved::Class(om, c)) => format!("module:{}.{}", om.name, c.name),
            Some(Resolved::Complex(om, c)) => format!("module:{}/complexTypes.{}", om.name, c.name),
            None => t.name.clone(),
        };
        match t.shape {
            Shape::Single => base,
            Shape::List => format!("{base}[]"),
            Shape::Map => format!("Object.<string, {base}>"),
        }
    }

    fn returns_object(&self, t: &TypeRef) -> bool {
        matches!(self.set.resolve(self.m, t), Some(Resolved::Class(..)))
    }

    fn parent_of(&self, c: &'a RemoteClass) -> Result<Option<(&'a Module, &'a RemoteClass)>, KmdError> {
        let Some(ext) = &c.extends else {
            return Ok(None);
        };
        match self.set.resolve(self.m, ext) {
            Some(Resolved::Class(pm, pc)) => Ok(Some((pm, pc))),
            _ => Err(KmdError::new(
                &c.origin.file,
                &format!("{}.extends", c.origin.path),
                format!("unknown type '{ext}': not a remote class"),
            )),
        }
    }

    /// How the file of class `from` reaches class `(tm, tc)`: a relative
    /// `require` within the module, the npm package between built-ins, and
    /// the client's registry for plugins (whose dependencies are registered
    /// before them).
    fn class_ref(&self, from_abstract: bool, tm: &Module, tc: &RemoteClass) -> String {
        if tm.name == self.m.name {
            let path = match (from_abstract, tc.is_abstract) {
                (false, true) => format!("./abstracts/{}", tc.name),
                (false, false) | (true, true) => format!("./{}", tc.name),
                (true, false) => format!("../{}", tc.name),
            };
            return format!("require('{path}')");
        }
        let group = if tc.is_abstract { "abstracts" } else { "classes" };
        if self.m.is_builtin() && tm.is_builtin() {
            let sub = if tc.is_abstract { ".abstracts" } else { "" };
            format!("require('{}'){sub}.{}", node_name(tm), tc.name)
        } else if tm.is_builtin() {
            format!("kurentoClient.register.{group}.{}", tc.name)
        } else {
            format!("kurentoClient.register.{group}[{}]", js_str(&format!("{}.{}", tm.namespace(), tc.name)))
        }
    }

    fn complex_ref(&self, tm: &Module, tc: &ComplexType) -> String {
        if tm.name == self.m.name {
            format!("require('./{}')", tc.name)
        } else if self.m.is_builtin() && tm.is_builtin() {
            format!("require('{}').complexTypes.{}", node_name(tm), tc.name)
        } else if tm.is_builtin() {
            format!("kurentoClient.register.complexTypes.{}", tc.name)
        } else {
            format!("kurentoClient.register.complexTypes[{}]", js_str(&format!("{}.{}", tm.namespace(), tc.name)))
        }
    }

    /// Where REGISTER types without a parent get `ComplexType` (and its
    /// `toJSON`) from.
    fn complex_base_ref(&self) -> String {
        if self.is_core() {
            "require('./ComplexType')".into()
        } else if self.m.is_builtin() {
            let core = self.set.module("core").map(node_name).unwrap_or_else(|| "kurento-client-core".into());
            format!("require('{core}').complexTypes.ComplexType")
        } else {
            "kurentoClient.register.complexTypes.ComplexType".into()
        }
    }

    fn callables(&self, c: &RemoteClass) -> (Vec<Callable>, Vec<Callable>) {
        let mut props: Vec<&Property> = c
            .properties
            .iter()
            // MediaObject's id is a plain field set when 'create' answers
            .filter(|p| !(self.is_core() && c.name == "MediaObject" && p.name == "id"))
            .collect();
        sort_ci(&mut props, |p| &p.name);
        let mut accessors = vec![];
        for p in props {
            accessors.push(Callable {
                name: format!("get{}", cap_first(&p.name)),
                doc: p.doc.clone(),
                params: vec![],
                returns_object: self.returns_object(&p.type_ref),
            });
            if !p.read_only && !p.is_final {
                accessors.push(Callable {
                    name: format!("set{}", cap_first(&p.name)),
                    doc: p.doc.clone(),
                    params: vec![CallParam {
                        wire: p.name.clone(),
                        js: js_ident(&p.name),
                        optional: false,
                        type_ref: p.type_ref.clone(),
                    }],
                    returns_object: false,
                });
            }
        }
        let mut methods: Vec<&Method> = c.methods.iter().collect();
        sort_ci(&mut methods, |m| &m.name);
        let methods = methods
            .into_iter()
            .map(|m| Callable {
                name: m.name.clone(),
                doc: m.doc.clone(),
                params: m
                    .params
                    .iter()
                    .map(|p| CallParam {
                        wire: p.name.clone(),
                        js: js_ident(&p.name),
                        optional: p.optional,
                        type_ref: p.type_ref.clone(),
                    })
                    .collect(),
                returns_object: m.ret.as_ref().is_some_and(|r| self.returns_object(&r.type_ref)),
            })
            .collect();
        (accessors, methods)
    }

    fn class_file(&self, c: &RemoteClass) -> Result<String, KmdError> {
        let name = &c.name;
        // Name of a core class with hand-written parts, or "".
        let core_special = if self.is_core() && SPECIAL.contains(&c.name.as_str()) { c.name.as_str() } else { "" };
        let parent = self.parent_of(c)?;
        let parent_name = parent.map(|(_, pc)| pc.name.clone()).unwrap_or_else(|| "EventEmitter".into());
        let (accessors, methods) = self.callables(c);
        // Classes without members need none of the invoke machinery.
        let full = !accessors.is_empty() || !methods.is_empty() || !core_special.is_empty();

        let mut s = String::from(GENERATED);
        s += "var inherits = require('inherits');\n\n";
        s += "var kurentoClient = require('kurento-client');\n\n";
        s += "var disguise = kurentoClient.disguise;\n\n";
        if full {
            s += "var checkType      = kurentoClient.checkType;\n";
            s += "var ChecktypeError = checkType.ChecktypeError;\n\n";
            if core_special == "MediaElement" {
                s += "var checkArray = checkType.checkArray;\n";
            }
            s += "\n";
            s += "var Transaction = kurentoClient.TransactionsManager.Transaction;\n\n";
            match core_special {
                "MediaElement" => s += &format!("{}\n", core_special::MEDIA_ELEMENT_REQUIRES),
                "MediaPipeline" => s += &format!("{}\n", core_special::MEDIA_PIPELINE_REQUIRES),
                "Hub" => {
                    if let Some(hp) = self.m.class("HubPort") {
                        s += &format!("var HubPort = {};\n\n", self.class_ref(c.is_abstract, self.m, hp));
                    }
                }
                _ => {}
            }
        } else {
            s += "var ChecktypeError = kurentoClient.checkType.ChecktypeError;\n\n";
        }
        match parent {
            Some((pm, pc)) => s += &format!("var {} = {};\n\n", pc.name, self.class_ref(c.is_abstract, pm, pc)),
            // The root class (MediaObject) is an EventEmitter and owns `_invoke`
            None => {
                s += "var promiseCallback = require('promisecallback');\n\nvar EventEmitter = require('events').EventEmitter;\n\n"
            }
        }
        if full {
            s += "\nfunction noop(error, result) {\n  if (error) console.trace(error);\n\n  return result\n};\n\n";
        }

        // Class doc and constructor
        let mut doc = doc_lines(&c.doc);
        doc.push(String::new());
        if c.is_abstract {
            doc.push("@abstract".into());
        }
        doc.push(match parent {
            Some((pm, pc)) => format!(
                "@extends {}",
                self.jsdoc_type(&TypeRef { name: format!("{}.{}", pm.name, pc.name), shape: Shape::Single })
            ),
            None => "@extends external:EventEmitter".into(),
        });
        let module_path = if c.is_abstract { format!("{}/abstracts", self.m.name) } else { self.m.name.clone() };
        doc.push(format!("@constructor module:{module_path}.{name}"));
        let mut own_events: Vec<String> = c
            .events
            .iter()
            .map(|e| TypeRef::parse(e).map(|t| t.short_name().to_string()).unwrap_or_else(|| e.clone()))
            .collect();
        sort_ci(&mut own_events, |e| e);
        for e in &own_events {
            let t = TypeRef { name: e.clone(), shape: Shape::Single };
            let owner = self.set.resolve_event(self.m, &t).map_or(self.m.name.as_str(), |(em, _)| em.name.as_str());
            doc.push(format!("@fires module:{owner}#event:{e}"));
        }
        s += "\n";
        s += &jsdoc("", &doc);
        let ctor_args = if core_special == "MediaPipeline" { "strict" } else { "" };
        s += &format!("function {name}({ctor_args}){{\n  {name}.super_.call(this);\n");
        match core_special {
            "MediaObject" => s += core_special::MEDIA_OBJECT_CTOR,
            "MediaPipeline" => s += core_special::MEDIA_PIPELINE_CTOR,
            _ => {}
        }
        s += &format!("}};\ninherits({name}, {parent_name});\n\n");

        if !accessors.is_empty() {
            s += "\n//\n// Public properties\n//\n\n";
            for a in &accessors {
                s += &self.callable_js(name, a, false);
            }
            s += "\n";
        }
        if !methods.is_empty() {
            s += "\n//\n// Public methods\n//\n\n";
            for mth in &methods {
                let connect = core_special == "MediaElement" && mth.name == "connect";
                s += &self.callable_js(name, mth, connect);
            }
            s += "\n";
        }
        match core_special {
            "MediaObject" => s += &format!("{}\n", core_special::MEDIA_OBJECT_PROTOTYPE),
            "MediaPipeline" => s += &format!("{}\n", core_special::MEDIA_PIPELINE_PROTOTYPE),
            "Hub" => s += &format!("{}\n", core_special::HUB_PROTOTYPE),
            _ => {}
        }

        // constructorParams: the schema MediaObjectCreator checks `create` against
        s += &format!(
            "\n/**\n * Constructor parameters of {{@link module:{module_path}.{name}}}, checked on create.\n */\n"
        );
        s += &format!("{name}.constructorParams = {{\n");
        let mut ctor: Vec<&Param> = c.constructor.as_ref().map(|k| k.params.iter().collect()).unwrap_or_default();
        sort_ci(&mut ctor, |p| &p.name);
        let entries: Vec<String> = ctor
            .iter()
            .map(|p| {
                let mut fields = vec![];
                match p.type_ref.shape {
                    Shape::Single => fields.push(format!("type: {}", js_str(&self.qualified_type(&p.type_ref)))),
                    Shape::List => {
                        fields.push(format!("type: {}", js_str(&self.qualified_type(&p.type_ref))));
                        fields.push("isArray: true".into());
                    }
                    // checkType has no map check: accept any object
                    Shape::Map => fields.push("type: 'Object'".into()),
                }
                if !p.optional {
                    fields.push("required: true".into());
                }
                format!("  {}: {{\n    {}\n  }}", p.name, fields.join(",\n    "))
            })
            .collect();
        if !entries.is_empty() {
            s += &entries.join(",\n");
            s += "\n";
        }
        s += "};\n\n";

        // events: what `on()` accepts
        s += &format!("/**\n * Events {{@link module:{module_path}.{name}}} can emit.\n */\n");
        let quoted: Vec<String> = own_events.iter().map(|e| js_str(e)).collect();
        match parent {
            Some((_, pc)) if quoted.is_empty() => s += &format!("{name}.events = {}.events;\n", pc.name),
            Some((_, pc)) => s += &format!("{name}.events = {}.events.concat([{}]);\n", pc.name, quoted.join(", ")),
            None => s += &format!("{name}.events = [{}];\n", quoted.join(", ")),
        }

        s += &check_fn(name, &format!("module:{module_path}.{name}"));
        s += &format!("\n\nmodule.exports = {name};\n\n{name}.check = check{name};\n");
        Ok(s)
    }

    /// One prototype function: argument handling, then `_invoke`.
    fn callable_js(&self, class: &str, f: &Callable, connect_special: bool) -> String {
        let fname = &f.name;
        let mut args: Vec<String> = f.params.iter().map(|p| p.js.clone()).collect();
        args.push("callback".into());

        let mut doc = doc_lines(&f.doc);
        if !doc.is_empty() {
            doc.push(String::new());
        }
        for p in &f.params {
            let ty = self.jsdoc_type(&p.type_ref);
            if p.optional {
                doc.push(format!("@param {{{ty}}} [{}]", p.js));
            } else {
                doc.push(format!("@param {{{ty}}} {}", p.js));
            }
        }
        doc.push("@param {Function} [callback]".into());
        doc.push("@return {external:Promise}".into());

        let mut s = jsdoc("", &doc);
        s += &format!("{class}.prototype.{fname} = function({}){{\n", args.join(", "));
        s += TRANSACTION_SHIFT;

        let mut body = String::new();
        if f.params.is_empty() {
            body += "  var usePromise = false;\n\n  if (callback == undefined) {\n    usePromise = true;\n  }\n\n";
            body += "  if(!arguments.length) callback = undefined;\n\n";
        } else {
            let n = f.params.len();
            let min = f.params.iter().rposition(|p| !p.optional).map_or(0, |i| i + 1);
            if min < n {
                body += "  callback = arguments[arguments.length-1] instanceof Function\n";
                body += "           ? Array.prototype.pop.call(arguments)\n";
                body += "           : undefined;\n\n";
                body += "  switch(arguments.length){\n";
                for (i, p) in f.params.iter().enumerate().skip(min) {
                    body += &format!("    case {i}: {} = undefined;\n", p.js);
                }
                body += "    break;\n";
                body += &format!("    case {n}: \n    break;\n\n");
                body += "    default:\n";
                body += &format!(
                    "      var error = new RangeError('Number of params ('+arguments.length+') not in range [{min}-{n}]');\n"
                );
                body += "          error.length = arguments.length;\n";
                body += &format!(
                    "          error.min = {min};\n          error.max = {n};\n\n      throw error;\n  }}\n\n"
                );
            }
            if f.returns_object {
                body += "  var usePromise = callback == undefined;\n\n";
            }
            // Kept disabled like upstream: the server validates parameters
            // (spec §6) and a client-side check would reject plain objects.
            for p in &f.params {
                let mut opts = vec![];
                if p.type_ref.shape == Shape::List {
                    opts.push("isArray: true");
                }
                if !p.optional {
                    opts.push("required: true");
                }
                let opts = if opts.is_empty() { String::new() } else { format!(", {{{}}}", opts.join(", ")) };
                body += &format!("  // checkType('{}', '{}', {}{opts});\n", p.type_ref.short_name(), p.wire, p.js);
            }
            body += "\n  var params = {\n";
            let fields: Vec<String> = f.params.iter().map(|p| format!("    {}: {}", p.wire, p.js)).collect();
            body += &fields.join(",\n");
            body += "\n  };\n\n";
        }
        body += "  callback = (callback || noop).bind(this)\n\n";

        let params_arg = if f.params.is_empty() { "" } else { "params, " };
        if connect_special {
            s += core_special::MEDIA_ELEMENT_CONNECT_START;
            s += TRANSACTION_SHIFT;
            s += &body;
            s += &format!("    promise = this._invoke(transaction, '{fname}', {params_arg}callback)\n");
            s += core_special::MEDIA_ELEMENT_CONNECT_END;
        } else if f.returns_object {
            s += &body;
            // Results name objects by id: '_describe' resolves them to proxies
            s += "  if (usePromise) {\n    var self = this;\n\n    var promise = new Promise(function(resolve, reject) {\n\n";
            s += "      function callback2(error, values) {\n        resolve(values)\n      }\n\n";
            s += &format!("     self._invoke(transaction, '{fname}', {params_arg}function(error, result) {{\n");
            s += "        if (error) return callback(error);\n\n        self.emit('_describe', result, callback2);\n      })\n";
            s += "    });\n    return promise;\n  } else {\n";
            s += &format!(
                "    return disguise(this._invoke(transaction, '{fname}', {params_arg}function(error, result) {{\n"
            );
            s += "      if (error) return callback(error);\n\n      this.emit('_describe', result, callback);\n    }), this)\n  }\n};\n";
        } else {
            s += &body;
            s += &format!("  return disguise(this._invoke(transaction, '{fname}', {params_arg}callback), this)\n}};\n");
        }
        s += "\n";
        s
    }

    fn complex_file(&self, c: &ComplexType) -> Result<String, KmdError> {
        match &c.kind {
            ComplexKind::Enum { values } => Ok(self.enum_file(c, values)),
            ComplexKind::Register { extends, properties } => {
                let parent = match extends {
                    None => ("ComplexType".to_string(), self.complex_base_ref()),
                    Some(ext) => match self.set.resolve(self.m, ext) {
                        Some(Resolved::Complex(pm, pc)) => (pc.name.clone(), self.complex_ref(pm, pc)),
                        _ => {
                            return Err(KmdError::new(
                                &c.origin.file,
                                &format!("{}.extends", c.origin.path),
                                format!("unknown type '{ext}': not a REGISTER complex type"),
                            ));
                        }
                    },
                };
                Ok(self.register_file(c, &parent.0, &parent.1, properties))
            }
        }
    }

    fn enum_file(&self, c: &ComplexType, values: &[String]) -> String {
        let name = &c.name;
        let mut s = String::from(GENERATED);
        s += "var kurentoClient = require('kurento-client');\n\n\n";
        let mut doc = doc_lines(&c.doc);
        doc.push(String::new());
        doc.push(format!("@typedef {}/complexTypes.{name}", self.m.name));
        doc.push(String::new());
        doc.push(format!("@type {{({})}}", values.join("|")));
        s += &jsdoc("", &doc);
        s += "\n";
        s += &jsdoc(
            "",
            &[
                format!("Checks that a value is one of the {name} values."),
                String::new(),
                "@param {external:String} key".into(),
                "@param {*} value".into(),
            ],
        );
        let list: Vec<String> = values.iter().map(|v| js_str(v)).collect();
        s += &format!("function check{name}(key, value)\n{{\n");
        s += "  if(typeof value != 'string')\n    throw SyntaxError(key+' param should be a String, not '+typeof value);\n\n";
        // Exact membership: upstream's unanchored `value.match('A|B')` also
        // accepted strings that merely contain a value.
        s += &format!("  if([{}].indexOf(value) < 0)\n", list.join(", "));
        s += &format!("    throw SyntaxError(key+' param is not one of [{}] ('+value+')');\n}};\n", values.join("|"));
        s += &format!("\n\nmodule.exports = check{name};\n");
        s
    }

    fn register_file(&self, c: &ComplexType, parent_name: &str, parent_ref: &str, properties: &[Property]) -> String {
        let name = &c.name;
        let dict = format!("{}Dict", uncap_first(name));
        let mut s = String::from(GENERATED);
        s += "var inherits = require('inherits');\n\n";
        s += "var kurentoClient = require('kurento-client');\n\n";
        s += "var checkType = kurentoClient.checkType;\n";
        s += "var ChecktypeError = checkType.ChecktypeError;\n\n";
        s += &format!("var {parent_name} = {parent_ref};\n\n\n");

        let mut doc = doc_lines(&c.doc);
        doc.push(String::new());
        doc.push(format!("@constructor module:{}/complexTypes.{name}", self.m.name));
        for p in properties {
            let ty = self.jsdoc_type(&p.type_ref);
            if p.optional {
                doc.push(format!("@property {{{ty}}} [{}]", p.name));
            } else {
                doc.push(format!("@property {{{ty}}} {}", p.name));
            }
        }
        s += &jsdoc("", &doc);
        s += &format!("function {name}({dict}){{\n");
        s += &format!("  if(!(this instanceof {name}))\n    return new {name}({dict})\n\n");
        s += &format!("  {dict} = {dict} || {{}}\n\n");
        if !properties.is_empty() {
            // Disabled like upstream: received values may omit fields the
            // server fills in, and the server validates what it is sent.
            for p in properties {
                let mut opts = vec![];
                if p.type_ref.shape == Shape::List {
                    opts.push("isArray: true");
                }
                if !p.optional {
                    opts.push("required: true");
                }
                let opts = if opts.is_empty() { String::new() } else { format!(", {{{}}}", opts.join(", ")) };
                s += &format!(
                    "  // checkType('{}', '{dict}.{1}', {dict}.{1}{opts});\n",
                    p.type_ref.short_name(),
                    p.name
                );
            }
            s += "\n";
        }
        s += &format!("  {name}.super_.call(this, {dict})\n\n");
        s += "  Object.defineProperties(this, {\n";
        let fields: Vec<String> = properties
            .iter()
            .map(|p| {
                format!(
                    "    {0}: {{\n      writable: true,\n      enumerable: true,\n      value: {dict}.{0}\n    }}",
                    p.name
                )
            })
            .collect();
        if !fields.is_empty() {
            s += &fields.join(",\n");
            s += "\n";
        }
        s += "  })\n}\n";
        s += &format!("inherits({name}, {parent_name})\n\n");
        // Enumerable so that JSON.stringify() sends them: the server decodes
        // complex values by these two fields (spec §6).
        s += &format!("Object.defineProperties({name}.prototype, {{\n");
        s += &format!("  __module__: {{\n    enumerable: true,\n    value: \"{}\"\n  }},\n", self.m.namespace());
        s += &format!("  __type__: {{\n    enumerable: true,\n    value: \"{name}\"\n  }}\n}})\n\n");
        s += &check_fn(name, &format!("module:{}/complexTypes.{name}", self.m.name));
        s += &format!("\n\nmodule.exports = {name};\n\n{name}.check = check{name};\n");
        s
    }

    /// Doc-only list of the module's events and their payload fields.
    fn events_js(&self) -> String {
        let mut s = String::from(GENERATED);
        let mut events: Vec<&Event> = self.m.events.iter().collect();
        sort_ci(&mut events, |e| &e.name);
        for e in events {
            let mut doc = doc_lines(&e.doc);
            doc.push(String::new());
            doc.push(format!("@event module:{}#{}", self.m.name, e.name));
            if let Some(ext) = &e.extends {
                doc.push(format!("@type {{module:{}#event:{}}}", self.m.name, ext.short_name()));
            }
            for (_, p) in self.set.all_event_properties(self.m, e) {
                doc.push(format!("@property {{{}}} {}", self.jsdoc_type(&p.type_ref), p.name));
            }
            s += "\n";
            s += &jsdoc("", &doc);
        }
        s
    }
}

/// Core classes whose client carries hand-written code.
const SPECIAL: &[&str] = &["MediaObject", "MediaPipeline", "MediaElement", "Hub"];

const TRANSACTION_SHIFT: &str = "  var transaction = (arguments[0] instanceof Transaction)\n                  ? Array.prototype.shift.apply(arguments)\n                  : undefined;\n\n";

fn check_fn(name: &str, doc_path: &str) -> String {
    let mut s = String::from("\n\n");
    s += &jsdoc(
        "",
        &[
            format!("Checker for {{@link {doc_path}}}"),
            String::new(),
            "@param {external:String} key".into(),
            "@param {*} value".into(),
        ],
    );
    s += &format!(
        "function check{name}(key, value)\n{{\n  if(!(value instanceof {name}))\n    throw ChecktypeError(key, {name}, value);\n}};\n"
    );
    s
}

/// `core`'s `ComplexType`: the base whose `toJSON` sends every enumerable
/// field, including the prototype's `__module__`/`__type__`.
fn complex_type_base() -> String {
    let mut s = String::from(GENERATED);
    s += "var ChecktypeError = require('kurento-client').checkType.ChecktypeError;\n\n\n";
    s += &jsdoc(
        "",
        &[
            "Base of every REGISTER complex type.".into(),
            String::new(),
            "@constructor module:core/complexTypes.ComplexType".into(),
            String::new(),
            "@abstract".into(),
        ],
    );
    s += "function ComplexType(){}\n\n";
    s += "// Own and inherited enumerable fields, functions excluded\n";
    s += "ComplexType.prototype.toJSON = function()\n{\n  var result = {};\n\n  for(var key in this)\n  {\n    var value = this[key]\n\n";
    s += "    if(typeof value !== 'function')\n      result[key] = value;\n  }\n\n  return result;\n}\n";
    s += &check_fn("ComplexType", "module:core/complexTypes.ComplexType");
    s += "\n\nmodule.exports = ComplexType;\n\nComplexType.check = checkComplexType;\n";
    s
}

/// Doc-only declarations of the JSDoc externals the generated docs use.
fn external_js() -> String {
    let mut s = String::from(GENERATED);
    for (name, what) in [
        ("Boolean", "JavaScript's Boolean"),
        ("Error", "JavaScript's Error"),
        ("Integer", "A Number holding an integer"),
        ("Number", "JavaScript's Number"),
        ("Object", "JavaScript's Object"),
        ("Promise", "JavaScript's Promise"),
        ("String", "JavaScript's String"),
        ("EventEmitter", "Node.js' events.EventEmitter"),
    ] {
        s += &jsdoc("", &[what.to_string(), format!("@external {name}")]);
        s += "\n";
    }
    s
}
