//! Rust server code generation: for one module, the complex types, events,
//! one trait per remote class, constructor parameter structs, the invoke
//! dispatcher (with parent fallback), class descriptors and the module
//! descriptor.
//!
//! Two layouts of the same items:
//!
//! * [`generate`]: one file holding `pub mod <module> { ... }`, meant for
//!   `include!` from `OUT_DIR` (what `build.rs` of a third-party module
//!   does);
//! * [`generate_tree`]: a source tree to check in, gstreamer-rs' `src/auto/`
//!   convention: `mod.rs` (constants, module descriptor), `types.rs`,
//!   `events.rs`, one `<class>.rs` per remote class, and `kmd.json`, each
//!   Rust file headed "generated, do not edit" (see [`crate::checked_in`]).
//!
//! Generated code only names the runtime through the configured path (by
//! default `::kms_core::rt`), so third-party module crates get the same code
//! shape as the built-in modules.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use crate::error::KmdError;
use crate::model::*;
use crate::names::{self, doc_lines, field, lit, snake};
use crate::resolve::{ModuleSet, Resolved};

/// Where generated code finds the runtime and the other modules' code.
#[derive(Debug, Clone)]
pub struct RustPaths {
    /// Path of the runtime module (`kms_core::rt`).
    pub runtime: String,
    /// Module name → Rust path of that module's generated code.
    pub modules: HashMap<String, String>,
    /// Extra supertrait for the root class (`MediaObject`), so every object
    /// also exposes the hand-written runtime interface.
    pub root_supertrait: Option<String>,
}

impl Default for RustPaths {
    fn default() -> Self {
        let mut modules = HashMap::new();
        modules.insert("core".into(), "::kms_core::api::core".into());
        modules.insert("elements".into(), "::kms_elements::api::elements".into());
        modules.insert("filters".into(), "::kms_filters::api::filters".into());
        RustPaths {
            runtime: "::kms_core::rt".into(),
            modules,
            root_supertrait: Some("::kms_core::rt::RemoteObject".into()),
        }
    }
}

impl RustPaths {
    fn module_path(&self, m: &Module) -> String {
        self.modules.get(&m.name).cloned().unwrap_or_else(|| format!("crate::api::{}", snake(&m.name)))
    }
}

/// Where a value appears: parameters of remote-class type are resolved to
/// live objects; everywhere else (results, fields, events) they are ids.
#[derive(Clone, Copy, PartialEq)]
enum Pos {
    Param,
    Value,
}

struct Gen<'a> {
    set: &'a ModuleSet,
    m: &'a Module,
    paths: &'a RustPaths,
    r: String,
    out: String,
}

/// Generates the Rust server code of `module` (which must be in `set`) as
/// one file for `include!`.
pub fn generate(set: &ModuleSet, module: &str, paths: &RustPaths, kmd_json: &str, generation_time: &str) -> String {
    let m = set.module(module).expect("module is part of the set");
    let mut g = Gen { set, m, paths, r: paths.runtime.clone(), out: String::new() };
    g.emit_all(kmd_json, generation_time);
    g.out
}

/// One file of a generated source tree, named relative to the tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub name: String,
    pub contents: String,
}

/// The environment variable the crate's build script sets to the build
/// time, which tree-layout code reports as `generationTime`: a time written
/// into checked-in code would make every regeneration a change, and upstream
/// reports its module library's compile time there anyway (spec §12.4). See
/// [`crate::builder::stamp_generation_time`].
pub const GENERATION_TIME_ENV: &str = "KMS_GENERATION_TIME";

/// Files of the tree layout that are not a class's.
const TREE_FILES: &[&str] = &["mod", "types", "events"];

/// Generates the Rust server code of `module` as a source tree to check in
/// (unformatted: [`crate::checked_in`] runs rustfmt over it). `header` is
/// the comment every Rust file starts with; `kmd_json` lands in `kmd.json`.
pub fn generate_tree(
    set: &ModuleSet,
    module: &str,
    paths: &RustPaths,
    kmd_json: &str,
    header: &str,
) -> Result<Vec<GeneratedFile>, KmdError> {
    let m = set.module(module).expect("module is part of the set");
    let mut g = Gen { set, m, paths, r: paths.runtime.clone(), out: String::new() };
    let r = paths.runtime.clone();
    let allow = format!("#![allow({LINT_ALLOWS})]\n");
    let uses = format!("\nuse super::*;\nuse {r}::{{FromJson as _, ToJson as _}};\n\n");
    let mut files = vec![];
    let mut file = |name: String, body: String| files.push(GeneratedFile { name, contents: format!("{header}{body}") });

    // One module per class; the module name is the class's snake-case name,
    // so it must not collide with the tree's own files.
    let mut class_mods: Vec<(String, &RemoteClass)> = vec![];
    for c in &m.remote_classes {
        let stem = snake(&c.name);
        if TREE_FILES.contains(&stem.as_str()) || class_mods.iter().any(|(s, _)| *s == stem) {
            return Err(KmdError::new(
                &c.origin.file,
                &format!("{}.name", c.origin.path),
                format!("class file name '{stem}.rs' is taken; generate this module with the one-file layout"),
            ));
        }
        class_mods.push((stem, c));
    }

    let mut modrs = format!(
        "//! The `{}` module: complex types, events, one trait per remote class,\n\
         //! dispatchers and class descriptors.\n{allow}\nuse {r}::{{FromJson as _, ToJson as _}};\n\n",
        m.name,
    );
    modrs += &g.module_consts(
        "include_str!(\"kmd.json\").trim_ascii_end()",
        "When this module was built (free-form, reported in `ModuleInfo.generationTime`); stamped by the crate's build script.",
        &format!(
            "env!({}, \"set by the crate's build script: module_creator::builder::stamp_generation_time()\")",
            lit(GENERATION_TIME_ENV)
        ),
    );
    if !m.complex_types.is_empty() {
        modrs += "mod types;\npub use self::types::*;\n";
        let mut body = format!("//! Complex types of the `{}` module (spec §6).\n{allow}{uses}", m.name);
        for c in &m.complex_types {
            body += &g.capture(|g| g.emit_complex(c));
        }
        file("types.rs".into(), body);
    }
    modrs += "pub mod events;\n";
    file(
        "events.rs".into(),
        format!("//! Events declared by the `{}` module (spec §7).\n{allow}{uses}{}", m.name, g.event_items()),
    );
    for (stem, c) in &class_mods {
        let _ = writeln!(modrs, "mod {};\npub use self::{}::*;", field(stem), field(stem));
        let body = g.capture(|g| g.emit_class(c));
        file(
            format!("{stem}.rs"),
            format!(
                "//! The `{}` remote class: trait, dispatcher, constructor, class descriptor.\n{allow}{uses}{body}",
                c.name
            ),
        );
    }
    modrs += "\n";
    modrs += &g.capture(|g| g.emit_module_descriptor());
    file("mod.rs".into(), modrs);
    files.push(GeneratedFile { name: "kmd.json".into(), contents: format!("{kmd_json}\n") });
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Lints generated code may trip over for some descriptors (names kept from
/// the wire, parameters a class ignores, ...).
const LINT_ALLOWS: &str = "clippy::all, clippy::pedantic, non_camel_case_types, non_snake_case, unused_imports, unused_variables, dead_code, clippy::upper_case_acronyms";

impl<'a> Gen<'a> {
    fn w(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
    }

    /// What `f` writes, without adding it to the output.
    fn capture(&mut self, f: impl FnOnce(&mut Self)) -> String {
        let saved = std::mem::take(&mut self.out);
        f(self);
        std::mem::replace(&mut self.out, saved)
    }

    /// Path prefix for an item of module `owner`, as seen from the generated module.
    fn prefix(&self, owner: &Module) -> String {
        if owner.name == self.m.name { String::new() } else { format!("{}::", self.paths.module_path(owner)) }
    }

    fn is_polymorphic(&self, owner: &Module, c: &ComplexType) -> bool {
        matches!(c.kind, ComplexKind::Register { .. }) && self.set.has_subtypes(owner, c)
    }

    fn elem_type(&self, t: &TypeRef, pos: Pos) -> String {
        let r = &self.r;
        match self.set.resolve(self.m, t) {
            Some(Resolved::Primitive(p)) => match p {
                "String" => "String".into(),
                "boolean" => "bool".into(),
                "int" => "i32".into(),
                "int64" => "i64".into(),
                "float" => "f32".into(),
                _ => "f64".into(),
            },
            Some(Resolved::Class(om, c)) => match pos {
                Pos::Param => format!("::std::sync::Arc<dyn {}{}>", self.prefix(om), c.name),
                Pos::Value => format!("{r}::ObjectId"),
            },
            Some(Resolved::Complex(om, c)) => {
                if self.is_polymorphic(om, c) {
                    format!("{r}::Polymorphic")
                } else {
                    format!("{}{}", self.prefix(om), c.name)
                }
            }
            None => "()".into(),
        }
    }

    fn rust_type(&self, t: &TypeRef, pos: Pos) -> String {
        let e = self.elem_type(t, pos);
        match t.shape {
            Shape::Single => e,
            Shape::List => format!("Vec<{e}>"),
            Shape::Map => format!("::std::collections::BTreeMap<String, {e}>"),
        }
    }

    /// Qualified wire name of a class type (`kurento.MediaElement`).
    fn qualified_class(&self, t: &TypeRef) -> Option<String> {
        match self.set.resolve(self.m, t) {
            Some(Resolved::Class(om, c)) => Some(format!("{}.{}", om.namespace(), c.name)),
            _ => None,
        }
    }

    /// Expression decoding a parameter from `params`.
    fn decode_param(&self, p: &Param, params: &str) -> String {
        let ty = self.rust_type(&p.type_ref, Pos::Param);
        let name = lit(&p.name);
        if let Some(q) = self.qualified_class(&p.type_ref) {
            let single = self.elem_type(&p.type_ref, Pos::Param);
            let inner = single.trim_start_matches("::std::sync::Arc<").trim_end_matches('>').to_string();
            let f = match p.type_ref.shape {
                Shape::Single => "object",
                Shape::List => "object_list",
                Shape::Map => "object_map",
            };
            return if p.optional {
                format!("{params}.opt_{f}::<{inner}>({name}, {})?", lit(&q))
            } else {
                format!("{params}.{f}::<{inner}>({name}, {})?", lit(&q))
            };
        }
        match (&p.default_value, p.optional) {
            (Some(d), _) => format!("{params}.or_default::<{ty}>({name}, {})?", lit(&d.to_string())),
            (None, true) => format!("{params}.opt::<{ty}>({name})?"),
            (None, false) => format!("{params}.get::<{ty}>({name})?"),
        }
    }

    /// Result type: a single remote object may be absent (`"value": null`).
    fn result_type(&self, t: &TypeRef) -> String {
        let ty = self.rust_type(t, Pos::Value);
        if t.shape == Shape::Single && self.qualified_class(t).is_some() { format!("Option<{ty}>") } else { ty }
    }

    fn param_type(&self, p: &Param) -> String {
        let ty = self.rust_type(&p.type_ref, Pos::Param);
        if p.optional && p.default_value.is_none() { format!("Option<{ty}>") } else { ty }
    }

    fn emit_all(&mut self, kmd_json: &str, generation_time: &str) {
        let m = self.m;
        let r = self.r.clone();
        self.w(format!(
            "// Generated by kurento-module-creator from the '{}' module descriptor. Do not edit.\n\
             #[allow({LINT_ALLOWS})]\n\
             pub mod {} {{\n\
             use {r}::{{FromJson as _, ToJson as _}};\n\n",
            m.name,
            names::field(&m.name).trim_start_matches("r#")
        ));
        let consts = self.module_consts(
            &lit(kmd_json),
            "When this code was generated (free-form, reported in `ModuleInfo.generationTime`).",
            &lit(generation_time),
        );
        self.w(consts);
        for c in &m.complex_types {
            self.emit_complex(c);
        }
        let events = self.event_items();
        self.w(format!(
            "/// Events declared by this module (spec §7).\npub mod events {{\n    use super::*;\n{events}}}\n\n"
        ));
        for c in &m.remote_classes {
            self.emit_class(c);
        }
        self.emit_module_descriptor();
        self.w("}\n");
    }

    /// The module's constants; `kmd` and `time` are Rust expressions.
    fn module_consts(&self, kmd: &str, time_doc: &str, time: &str) -> String {
        let m = self.m;
        format!(
            "/// Module name as listed by `ServerManager.getInfo`.\npub const MODULE_NAME: &str = {};\n\
             /// Module version.\npub const MODULE_VERSION: &str = {};\n\
             /// Namespace of qualified names and `__module__`.\npub const MODULE_NAMESPACE: &str = {};\n\
             /// {time_doc}\npub const GENERATION_TIME: &str = {time};\n\
             /// The fused descriptor returned by `ServerManager.getKmd`.\npub const KMD_JSON: &str = {kmd};\n\n",
            lit(&m.name),
            lit(&m.version),
            lit(m.namespace()),
        )
    }

    fn emit_complex(&mut self, c: &'a ComplexType) {
        let r = self.r.clone();
        let ns = self.m.namespace().to_string();
        let doc = doc_lines(&c.doc, "");
        match &c.kind {
            ComplexKind::Enum { values } => {
                let variants = names::dedupe(values.iter().map(|v| names::variant(v)).collect());
                let mut s = String::new();
                s += &doc;
                s += "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n";
                let _ = writeln!(s, "pub enum {} {{", c.name);
                for (v, w) in variants.iter().zip(values) {
                    let _ = writeln!(s, "    /// Wire value `{w}`.\n    {v},");
                }
                s += "}\n";
                let _ = writeln!(s, "impl {} {{", c.name);
                let _ = writeln!(
                    s,
                    "    /// Every value, in descriptor order.\n    pub const ALL: &'static [{}] = &[{}];",
                    c.name,
                    variants.iter().map(|v| format!("{}::{v}", c.name)).collect::<Vec<_>>().join(", ")
                );
                s += "    /// The wire name.\n    pub const fn as_str(&self) -> &'static str {\n        match self {\n";
                for (v, w) in variants.iter().zip(values) {
                    let _ = writeln!(s, "            {}::{v} => {},", c.name, lit(w));
                }
                s += "        }\n    }\n";
                s += "    /// Parses the wire name (case-sensitive, spec §6).\n    pub fn from_wire(s: &str) -> Option<Self> {\n        match s {\n";
                for (v, w) in variants.iter().zip(values) {
                    let _ = writeln!(s, "            {} => Some({}::{v}),", lit(w), c.name);
                }
                s += "            _ => None,\n        }\n    }\n}\n";
                let _ = writeln!(
                    s,
                    "impl ::std::fmt::Display for {} {{ fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{ f.write_str(self.as_str()) }} }}",
                    c.name
                );
                let _ = writeln!(
                    s,
                    "impl {r}::FromJson for {n} {{\n    const KIND: &'static str = \"string\";\n    fn from_json(v: &{r}::Value, name: &str, what: {r}::What) -> {r}::Result<Self> {{\n        match v {{\n            {r}::Value::String(s) => {n}::from_wire(s).ok_or_else(|| {r}::Error::marshall(format!(\"Invalid value for '{n}'\"))),\n            _ => Err({r}::Error::wrong_type(name, what, \"string\")),\n        }}\n    }}\n}}",
                    n = c.name
                );
                let _ = writeln!(
                    s,
                    "impl {r}::ToJson for {n} {{ fn to_json(&self) -> {r}::Value {{ {r}::Value::String(self.as_str().to_string()) }} }}\n",
                    n = c.name
                );
                self.w(s);
            }
            ComplexKind::Register { .. } => {
                let props = self.set.all_complex_properties(self.m, c);
                let fields = names::dedupe(props.iter().map(|(_, p)| field(&p.name)).collect());
                let mut s = String::new();
                s += &doc;
                s += "#[derive(Debug, Clone, PartialEq)]\n";
                let _ = writeln!(s, "pub struct {} {{", c.name);
                for ((_, p), f) in props.iter().zip(&fields) {
                    s += &doc_lines(&p.doc, "    ");
                    let ty = self.rust_type(&p.type_ref, Pos::Value);
                    if p.optional && p.default_value.is_none() {
                        let _ = writeln!(s, "    pub {f}: Option<{ty}>,");
                    } else {
                        let _ = writeln!(s, "    pub {f}: {ty},");
                    }
                }
                s += "}\n";
                // Decoding: __module__/__type__ optional; unknown fields ignored (spec §6).
                let _ = writeln!(s, "impl {r}::FromJson for {} {{", c.name);
                let _ = writeln!(s, "    const KIND: &'static str = \"object\";");
                let _ = writeln!(
                    s,
                    "    fn from_json(v: &{r}::Value, name: &str, what: {r}::What) -> {r}::Result<Self> {{"
                );
                let _ = writeln!(
                    s,
                    "        let o = {r}::complex_object(v, name, what, MODULE_NAMESPACE, {})?;",
                    lit(&c.name)
                );
                let _ = writeln!(s, "        Ok({} {{", c.name);
                for ((_, p), f) in props.iter().zip(&fields) {
                    let ty = self.rust_type(&p.type_ref, Pos::Value);
                    let n = lit(&p.name);
                    let expr = match (&p.default_value, p.optional) {
                        (Some(d), _) => format!("o.or_default::<{ty}>({n}, {})?", lit(&d.to_string())),
                        (None, true) => format!("o.opt::<{ty}>({n})?"),
                        (None, false) => format!("o.get::<{ty}>({n})?"),
                    };
                    let _ = writeln!(s, "            {f}: {expr},");
                }
                s += "        })\n    }\n}\n";
                let _ = writeln!(s, "impl {r}::ToJson for {} {{", c.name);
                let _ = writeln!(s, "    fn to_json(&self) -> {r}::Value {{");
                let _ = writeln!(s, "        let mut o = {r}::Map::new();");
                let _ =
                    writeln!(s, "        o.insert(\"__module__\".into(), {r}::Value::String({}.into()));", lit(&ns));
                let _ =
                    writeln!(s, "        o.insert(\"__type__\".into(), {r}::Value::String({}.into()));", lit(&c.name));
                for ((_, p), f) in props.iter().zip(&fields) {
                    if p.optional && p.default_value.is_none() {
                        let _ = writeln!(
                            s,
                            "        if let Some(x) = &self.{f} {{ o.insert({}.into(), x.to_json()); }}",
                            lit(&p.name)
                        );
                    } else {
                        let _ = writeln!(s, "        o.insert({}.into(), self.{f}.to_json());", lit(&p.name));
                    }
                }
                s += &format!("        {r}::Value::Object(o)\n    }}\n}}\n\n");
                self.w(s);
            }
        }
    }

    /// The event structs, indented for the `events` module of the one-file
    /// layout.
    fn event_items(&self) -> String {
        let r = self.r.clone();
        let mut s = String::new();
        for e in &self.m.events {
            if e.name == "RaiseBase" || e.name == "Media" {
                continue;
            }
            let chain = self.set.event_chain(self.m, e);
            let is_media = chain.iter().any(|(_, x)| x.name == "Media");
            // RaiseBase's fields (source, timestampMillis, tags) and Media's
            // `type` are filled in by the runtime when the event is raised.
            let props: Vec<&Property> = self
                .set
                .all_event_properties(self.m, e)
                .into_iter()
                .filter_map(|(_, p)| {
                    let inherited_base = chain.iter().any(|(_, x)| {
                        (x.name == "RaiseBase" || x.name == "Media") && x.properties.iter().any(|q| std::ptr::eq(q, p))
                    });
                    (!inherited_base).then_some(p)
                })
                .collect();
            let fields = names::dedupe(props.iter().map(|p| field(&p.name)).collect());
            s += &doc_lines(&e.doc, "    ");
            s += "    #[derive(Debug, Clone, PartialEq)]\n";
            let _ = writeln!(s, "    pub struct {} {{", e.name);
            for (p, f) in props.iter().zip(&fields) {
                s += &doc_lines(&p.doc, "        ");
                let _ = writeln!(s, "        pub {f}: {},", self.rust_type(&p.type_ref, Pos::Value));
            }
            s += "    }\n";
            let _ = writeln!(s, "    impl {r}::Event for {} {{", e.name);
            let _ = writeln!(s, "        const NAME: &'static str = {};", lit(&e.name));
            let _ = writeln!(s, "        const IS_MEDIA: bool = {is_media};");
            let _ = writeln!(s, "        fn write_fields(&self, o: &mut {r}::Map) {{");
            for (p, f) in props.iter().zip(&fields) {
                let _ = writeln!(s, "            o.insert({}.into(), self.{f}.to_json());", lit(&p.name));
            }
            s += "        }\n    }\n";
        }
        s
    }

    /// Getter/setter names that a method of the same name does not shadow.
    fn accessors(&self, c: &'a RemoteClass) -> Vec<(&'a Property, bool)> {
        c.properties
            .iter()
            .map(|p| {
                let setter = !p.read_only && !p.is_final;
                (p, setter)
            })
            .filter(|(p, _)| !c.methods.iter().any(|m| m.name == getter_name(&p.name)))
            .collect()
    }

    fn emit_class(&mut self, c: &'a RemoteClass) {
        let r = self.r.clone();
        let m = self.m;
        let mut s = String::new();
        let snake_name = snake(&c.name);
        // The trait.
        s += &doc_lines(&c.doc, "");
        let sup = match &c.extends {
            Some(ext) => match self.set.resolve(m, ext) {
                Some(Resolved::Class(om, pc)) => format!("{}{}", self.prefix(om), pc.name),
                _ => "Send + Sync + 'static".into(),
            },
            None => self.paths.root_supertrait.clone().unwrap_or_else(|| "Send + Sync + 'static".into()),
        };
        let _ = writeln!(s, "pub trait {}: {sup} {{", c.name);
        for (p, setter) in self.accessors(c) {
            let ty = self.result_type(&p.type_ref);
            s += &doc_lines(&p.doc, "    ");
            let _ = writeln!(s, "    fn get_{}(&self, ctx: &{r}::Ctx) -> {r}::Result<{ty}>;", snake(&p.name));
            if setter {
                let pty = self.rust_type(&p.type_ref, Pos::Param);
                let _ = writeln!(
                    s,
                    "    /// Sets `{}`.\n    fn set_{}(&self, ctx: &{r}::Ctx, value: {pty}) -> {r}::Result<()>;",
                    p.name,
                    snake(&p.name)
                );
            }
        }
        for meth in &c.methods {
            s += &doc_lines(&meth.doc, "    ");
            let pnames = method_param_names(&meth.params);
            let mut args = String::new();
            for (p, n) in meth.params.iter().zip(&pnames) {
                let _ = write!(args, ", {n}: {}", self.param_type(p));
            }
            let ret = meth.ret.as_ref().map(|r| self.result_type(&r.type_ref)).unwrap_or_else(|| "()".into());
            let _ = writeln!(s, "    fn {}(&self, ctx: &{r}::Ctx{args}) -> {r}::Result<{ret}>;", field(&meth.name));
        }
        s += "}\n\n";

        // The dispatcher: own operations, then the parent's (spec §5.5).
        let _ = writeln!(s, "/// Dispatches `invoke` for `{}` and its ancestors.", c.name);
        let _ = writeln!(
            s,
            "pub fn invoke_{snake_name}<T: {} + ?Sized>(obj: &T, ctx: &{r}::Ctx, op: &str, params: &{r}::Params<'_>) -> {r}::Result<{r}::Value> {{",
            c.name
        );
        s += "    match op {\n";
        for (p, setter) in self.accessors(c) {
            let _ = writeln!(
                s,
                "        {} => Ok(obj.get_{}(ctx)?.to_json()),",
                lit(&getter_name(&p.name)),
                snake(&p.name)
            );
            if setter {
                let param = Param {
                    name: p.name.clone(),
                    doc: String::new(),
                    type_ref: p.type_ref.clone(),
                    optional: false,
                    default_value: None,
                    origin: Origin::default(),
                };
                let _ = writeln!(
                    s,
                    "        {} => {{ params.require()?; let value = {}; obj.set_{}(ctx, value)?; Ok({r}::Value::Null) }}",
                    lit(&setter_name(&p.name)),
                    self.decode_param(&param, "params"),
                    snake(&p.name)
                );
            }
        }
        for meth in &c.methods {
            let pnames = method_param_names(&meth.params);
            let _ = writeln!(s, "        {} => {{", lit(&meth.name));
            if meth.params.iter().any(|p| !p.optional) {
                s += "            params.require()?;\n";
            }
            for (p, n) in meth.params.iter().zip(&pnames) {
                let _ = writeln!(s, "            let {n} = {};", self.decode_param(p, "params"));
            }
            let call_args: String = pnames.iter().map(|n| format!(", {n}")).collect();
            if meth.ret.is_some() {
                let _ = writeln!(s, "            Ok(obj.{}(ctx{call_args})?.to_json())", field(&meth.name));
            } else {
                let _ = writeln!(
                    s,
                    "            obj.{}(ctx{call_args})?;\n            Ok({r}::Value::Null)",
                    field(&meth.name)
                );
            }
            s += "        }\n";
        }
        match &c.extends {
            Some(ext) => match self.set.resolve(m, ext) {
                Some(Resolved::Class(om, pc)) => {
                    let _ = writeln!(
                        s,
                        "        _ => {}invoke_{}(obj, ctx, op, params),",
                        self.prefix(om),
                        snake(&pc.name)
                    );
                }
                _ => {
                    let _ = writeln!(s, "        _ => Err({r}::Error::method_not_found(op, params.len())),");
                }
            },
            None => {
                // spec §5.5: unknown operation → 40008.
                let _ = writeln!(s, "        _ => Err({r}::Error::method_not_found(op, params.len())),");
            }
        }
        s += "    }\n}\n\n";

        // Constructor params and the factory trait.
        if let Some(ctor) = &c.constructor
            && !c.is_abstract
        {
            let pnames = names::dedupe(ctor.params.iter().map(|p| field(&p.name)).collect());
            let _ = writeln!(s, "/// Constructor parameters of `{}`.", c.name);
            let _ = writeln!(s, "pub struct {}Constructor {{", c.name);
            for (p, n) in ctor.params.iter().zip(&pnames) {
                s += &doc_lines(&p.doc, "    ");
                let _ = writeln!(s, "    pub {n}: {},", self.param_type(p));
            }
            s += "}\n";
            let _ = writeln!(s, "impl {}Constructor {{", c.name);
            let _ = writeln!(
                s,
                "    /// Decodes `constructorParams` (spec §5.3, §6).\n    pub fn decode(ctx: &{r}::Ctx, params: &{r}::Params<'_>) -> {r}::Result<Self> {{"
            );
            s += "        let _ = ctx;\n";
            if ctor.params.iter().any(|p| !p.optional) {
                s += "        params.require()?;\n";
            }
            let _ = writeln!(s, "        Ok({}Constructor {{", c.name);
            for (p, n) in ctor.params.iter().zip(&pnames) {
                let _ = writeln!(s, "            {n}: {},", self.decode_param(p, "params"));
            }
            s += "        })\n    }\n}\n";
            let _ = writeln!(s, "/// Creates `{}` objects; implemented by the hand-written class.", c.name);
            let _ = writeln!(s, "pub trait {}Factory: {} + Sized {{", c.name, c.name);
            let _ = writeln!(
                s,
                "    fn construct(ctx: &{r}::Ctx, params: {}Constructor) -> {r}::Result<::std::sync::Arc<Self>>;",
                c.name
            );
            s += "}\n\n";
        }

        // The class descriptor.
        let chain = self.set.class_chain(m, c);
        let hierarchy: Vec<String> =
            chain[1..].iter().map(|(om, oc)| lit(&format!("{}.{}", om.namespace(), oc.name))).collect();
        let events: Vec<String> = self.set.all_class_events(m, c).iter().map(|e| lit(e)).collect();
        let bound = if c.is_abstract { c.name.clone() } else { format!("{}Factory", c.name) };
        let _ = writeln!(s, "/// Descriptor of `{}` for the module registry, with `T` as the implementation.", c.name);
        let _ = writeln!(s, "pub fn {snake_name}_class<T: {bound}>() -> {r}::ClassInfo {{");
        s += &format!("    {r}::ClassInfo {{\n");
        let _ = writeln!(s, "        name: {},", lit(&c.name));
        let _ = writeln!(s, "        qualified_name: {},", lit(&format!("{}.{}", m.namespace(), c.name)));
        let _ = writeln!(s, "        module: MODULE_NAME,");
        let _ = writeln!(s, "        hierarchy: &[{}],", hierarchy.join(", "));
        let _ = writeln!(s, "        events: &[{}],", events.join(", "));
        if c.is_abstract {
            s += "        factory: None,\n";
        } else {
            let _ = writeln!(
                s,
                "        factory: Some(|ctx, params| {{ let p = {n}Constructor::decode(ctx, params)?; let o: ::std::sync::Arc<dyn ::std::any::Any + Send + Sync> = T::construct(ctx, p)?; Ok(o) }}),",
                n = c.name
            );
        }
        let _ = writeln!(
            s,
            "        invoke: |any, ctx, op, params| {{ let obj = {r}::downcast_ref::<T>(any)?; invoke_{snake_name}(obj, ctx, op, params) }},"
        );
        let _ = writeln!(
            s,
            "        as_remote: |any| {{ let o: ::std::sync::Arc<dyn {r}::RemoteObject> = {r}::downcast_arc::<T>(any); o }},"
        );
        s += "        casts: vec![\n";
        for (om, oc) in &chain {
            let q = format!("{}.{}", om.namespace(), oc.name);
            let tr = format!("{}{}", self.prefix(om), oc.name);
            let _ = writeln!(
                s,
                "            ({}, |any| {{ let o: ::std::sync::Arc<dyn {tr}> = {r}::downcast_arc::<T>(any); Box::new(o) }}),",
                lit(&q)
            );
        }
        s += "        ],\n    }\n}\n\n";
        self.w(s);
    }

    fn emit_module_descriptor(&mut self) {
        let r = self.r.clone();
        let mut s = String::new();
        let types: Vec<String> = self.m.complex_types.iter().map(|c| lit(&c.name)).collect();
        let _ = writeln!(
            s,
            "/// The module descriptor; `classes` are the implemented classes' descriptors (`<class>_class::<Impl>()`)."
        );
        let _ = writeln!(s, "pub fn module_descriptor(classes: Vec<{r}::ClassInfo>) -> {r}::ModuleDescriptor {{");
        let _ = writeln!(
            s,
            "    {r}::ModuleDescriptor {{ name: MODULE_NAME, version: MODULE_VERSION, namespace: MODULE_NAMESPACE, generation_time: GENERATION_TIME, kmd: KMD_JSON, complex_types: &[{}], classes }}",
            types.join(", ")
        );
        s += "}\n";
        self.w(s);
    }
}

/// Rust names of a method's parameters. The dispatcher's own locals (`obj`,
/// `ctx`, `op`, `params`) get a `_` suffix so a parameter cannot shadow them.
fn method_param_names(params: &[Param]) -> Vec<String> {
    let rename = |n: String| if matches!(n.as_str(), "obj" | "ctx" | "op" | "params") { format!("{n}_") } else { n };
    names::dedupe(params.iter().map(|p| rename(field(&p.name))).collect())
}

/// `get` + capitalised property name (spec §5.5).
pub fn getter_name(prop: &str) -> String {
    format!("get{}", capitalize(prop))
}

/// `set` + capitalised property name (spec §5.5).
pub fn setter_name(prop: &str) -> String {
    format!("set{}", capitalize(prop))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[allow(dead_code)]
fn is_null(v: &Option<Value>) -> bool {
    v.as_ref().is_none_or(Value::is_null)
}
