//! Rust client code generation: for one module, the complex types (serde
//! with wire names), the event structs, and one typed async proxy per remote
//! class. The output is one file meant for `include!` from `OUT_DIR`, next
//! to the hand-written transport of the `kurento-client` crate.
//!
//! Shape of the generated code (the runtime is only named through
//! [`ClientPaths::runtime`], so third-party module crates get the same
//! shape as the built-in modules):
//!
//! * ENUM complex types → Rust enums, `#[serde(rename = "<WIRE>")]` per
//!   variant (spec §6).
//! * REGISTER complex types → structs; `Deserialize` is derived (so
//!   `__module__`/`__type__` are accepted and ignored), `Serialize` is
//!   written out so the output carries `__module__`/`__type__` like the
//!   official clients. Optional fields are `Option` and omitted when unset:
//!   the server applies the descriptor's default (spec §6). Types that have
//!   subtypes (the `Stats` tree) are used as `Polymorphic<Base>` wherever
//!   they appear, keeping the concrete `__type__`.
//! * Events → `events::<Name>` structs deserialized from `onEvent`'s
//!   `params.value.data` (spec §7.1); remote objects inside values are
//!   `ObjectId`s because a value has no connection to make a proxy from.
//! * Remote classes (abstract ones too) → proxy structs that `Deref` to the
//!   parent's proxy, so inherited methods are reachable
//!   (`webrtc.connect(&sink)` resolves through `MediaElement`) and
//!   `&WebRtcEndpoint` coerces to `&MediaElement` at call sites.
//!   Methods are async; a method with optional parameters returns a
//!   builder (`endpoint.connect(&sink).media_type(MediaType::Video).await`)
//!   because the server picks the overload from which optional parameters
//!   are present (spec §6), so "absent" must stay expressible.
//!   `on::<E>()` subscribes to a typed event stream and only compiles for
//!   events the class (or an ancestor) declares.
//!   Classes whose constructor takes a parent object (the first required
//!   remote-class parameter, e.g. `mediaPipeline`, `hub`) are created from
//!   that parent: `pipeline.create::<PassThrough>(PassThroughParams::new())`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::builder::Builder;
use crate::error::KmdError;
use crate::model::*;
use crate::names::{self, doc_lines, lit};
use crate::resolve::{ModuleSet, Resolved};
use crate::rust_server::{getter_name, setter_name};

/// Where generated client code finds the runtime and other modules' code.
#[derive(Debug, Clone)]
pub struct ClientPaths {
    /// Path of the client runtime module (`::kurento_client::rt`).
    pub runtime: String,
    /// Module name → Rust path of that module's generated client code.
    pub modules: HashMap<String, String>,
}

impl Default for ClientPaths {
    fn default() -> Self {
        let mut modules = HashMap::new();
        modules.insert("core".into(), "::kurento_client::core".into());
        modules.insert("elements".into(), "::kurento_client::elements".into());
        modules.insert("filters".into(), "::kurento_client::filters".into());
        ClientPaths { runtime: "::kurento_client::rt".into(), modules }
    }
}

impl ClientPaths {
    fn module_path(&self, m: &Module) -> String {
        self.modules.get(&m.name).cloned().unwrap_or_else(|| format!("crate::{}", snake(&m.name)))
    }
}

/// Names a generated method may not take, because the proxy reaches them
/// through `Deref` (`RemoteObject`) or defines them itself; a descriptor
/// method with such a name gets a `_method` suffix.
const RESERVED: &[&str] = &[
    "id",
    "client",
    "release",
    "release_on_drop",
    "invoke",
    "describe",
    "cast",
    "subscribe",
    "subscribe_raw",
    "remote",
    "on",
    "create",
    "clone",
    "deref",
    "fmt",
    "serialize",
    "eq",
    "hash",
];

/// How a value is typed in a given position.
#[derive(Clone, Copy, PartialEq)]
enum Pos {
    /// Fields of complex types and events: remote objects are ids.
    Field,
    /// Owned values handed to the proxy (constructor params, results).
    Owned,
}

/// Generates the Rust client code of `module` (which must be in `set`) as
/// one file holding `pub mod <module> { ... }`, for `include!`.
pub fn generate_client(set: &ModuleSet, module: &str, paths: &ClientPaths) -> String {
    let m = set.module(module).expect("module is part of the set");
    let mut g = Gen { set, m, paths, out: String::new(), parents: parent_types(set) };
    g.emit_all();
    g.out
}

/// Generates the Rust client code of `module` as the contents of a module
/// file to check in (`src/auto/<module>.rs`, declared `pub mod <module>;`),
/// starting with `header` (unformatted: [`crate::checked_in`] runs rustfmt
/// over it).
pub fn generate_client_file(set: &ModuleSet, module: &str, paths: &ClientPaths, header: &str) -> String {
    let m = set.module(module).expect("module is part of the set");
    let mut g = Gen { set, m, paths, out: String::new(), parents: parent_types(set) };
    g.w(format!(
        "{header}//! Client proxies, complex types and events of the `{}` module ({} {}).\n#![allow({LINT_ALLOWS})]\n\n",
        m.name, m.name, m.version
    ));
    g.emit_items();
    g.out
}

/// Lints generated code may trip over for some descriptors.
const LINT_ALLOWS: &str = "clippy::all, clippy::pedantic, non_camel_case_types, non_snake_case, unused_imports, unused_variables, dead_code, unused_mut";

/// `(module, class)` of every class that is the parent of some creatable
/// class in the set, i.e. the classes that get a `create` method.
fn parent_types(set: &ModuleSet) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for m in &set.modules {
        for c in &m.remote_classes {
            if let Some((_, pm, pc)) = parent_param(set, m, c) {
                out.insert((pm.name.clone(), pc.name.clone()));
            }
        }
    }
    out
}

/// The constructor parameter naming the new object's parent: the first
/// required, single remote-class parameter (`mediaPipeline`, `hub`).
fn parent_param<'a>(
    set: &'a ModuleSet,
    m: &'a Module,
    c: &'a RemoteClass,
) -> Option<(&'a Param, &'a Module, &'a RemoteClass)> {
    if c.is_abstract {
        return None;
    }
    let ctor = c.constructor.as_ref()?;
    let p = ctor.params.iter().find(|p| matches!(set.resolve(m, &p.type_ref), Some(Resolved::Class(..))))?;
    if p.optional || p.type_ref.shape != Shape::Single {
        return None;
    }
    match set.resolve(m, &p.type_ref) {
        Some(Resolved::Class(pm, pc)) => Some((p, pm, pc)),
        _ => None,
    }
}

struct Gen<'a> {
    set: &'a ModuleSet,
    m: &'a Module,
    paths: &'a ClientPaths,
    out: String,
    parents: BTreeSet<(String, String)>,
}

/// A method parameter with its generated Rust name.
struct Arg<'p> {
    p: &'p Param,
    name: String,
}

impl<'a> Gen<'a> {
    fn w(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
    }

    /// Path prefix for an item of module `owner`; `nested` when emitting
    /// inside the `events` submodule.
    fn prefix(&self, owner: &Module, nested: bool) -> String {
        if owner.name == self.m.name {
            if nested { "super::".into() } else { String::new() }
        } else {
            format!("{}::", self.paths.module_path(owner))
        }
    }

    fn rt(&self) -> &str {
        &self.paths.runtime
    }

    fn elem_type(&self, t: &TypeRef, pos: Pos, nested: bool) -> String {
        let rt = "__rt";
        match self.set.resolve(self.m, t) {
            Some(Resolved::Primitive(p)) => primitive(p).into(),
            Some(Resolved::Class(om, c)) => match pos {
                Pos::Field => format!("{rt}::ObjectId"),
                Pos::Owned => format!("{}{}", self.prefix(om, nested), c.name),
            },
            Some(Resolved::Complex(om, c)) => {
                let path = format!("{}{}", self.prefix(om, nested), c.name);
                if matches!(c.kind, ComplexKind::Register { .. }) && self.set.has_subtypes(om, c) {
                    format!("{rt}::Polymorphic<{path}>")
                } else {
                    path
                }
            }
            None => format!("{rt}::Value"),
        }
    }

    fn rust_type(&self, t: &TypeRef, pos: Pos, nested: bool) -> String {
        let e = self.elem_type(t, pos, nested);
        match t.shape {
            Shape::Single => e,
            Shape::List => format!("Vec<{e}>"),
            Shape::Map => format!("::std::collections::BTreeMap<String, {e}>"),
        }
    }

    fn is_class(&self, t: &TypeRef) -> bool {
        matches!(self.set.resolve(self.m, t), Some(Resolved::Class(..)))
    }

    /// Whether a single value of this type is passed by value (`Copy`).
    fn is_copy(&self, t: &TypeRef) -> bool {
        t.shape == Shape::Single
            && match self.set.resolve(self.m, t) {
                Some(Resolved::Primitive(p)) => p != "String",
                Some(Resolved::Complex(_, c)) => matches!(c.kind, ComplexKind::Enum { .. }),
                _ => false,
            }
    }

    /// Borrowed argument type for method parameters; `lt` is the lifetime
    /// to spell out (builders), empty for elided (`async fn`).
    fn arg_type(&self, t: &TypeRef, lt: &str) -> String {
        let r = if lt.is_empty() { "&".to_string() } else { format!("&{lt} ") };
        if self.is_copy(t) {
            return self.rust_type(t, Pos::Owned, false);
        }
        match t.shape {
            Shape::Single => match self.set.resolve(self.m, t) {
                Some(Resolved::Primitive("String")) => format!("{r}str"),
                _ => format!("{r}{}", self.elem_type(t, Pos::Owned, false)),
            },
            Shape::List => format!("{r}[{}]", self.elem_type(t, Pos::Owned, false)),
            Shape::Map => format!("{r}{}", self.rust_type(t, Pos::Owned, false)),
        }
    }

    /// Return type of an operation whose wire result has type `t`.
    fn ret_type(&self, t: &TypeRef) -> String {
        let ty = self.rust_type(t, Pos::Owned, false);
        if t.shape == Shape::Single && self.is_class(t) { format!("Option<{ty}>") } else { ty }
    }

    /// Expression turning the wire result `v` into `ret_type(t)`.
    fn decode_ret(&self, t: &TypeRef, v: &str, client: &str) -> String {
        let rt = "__rt";
        if self.is_class(t) {
            let e = self.elem_type(t, Pos::Owned, false);
            let f = match t.shape {
                Shape::Single => "decode_object",
                Shape::List => "decode_object_list",
                Shape::Map => "decode_object_map",
            };
            format!("{rt}::{f}::<{e}>({client}, {v})")
        } else {
            format!("{rt}::from_value::<{}>({v})", self.rust_type(t, Pos::Owned, false))
        }
    }

    fn emit_all(&mut self) {
        let m = self.m;
        self.w(format!(
            "// Generated by kurento-module-creator (Rust client) from the '{}' module descriptor. Do not edit.\n\
             /// Client proxies, complex types and events of the `{}` module ({} {}).\n\
             #[allow({LINT_ALLOWS})]\n\
             pub mod {} {{\n",
            m.name,
            m.name,
            m.name,
            m.version,
            field(&m.name).trim_start_matches("r#")
        ));
        self.emit_items();
        self.w("}\n");
    }

    /// The module's items (the body of `pub mod <module>`).
    fn emit_items(&mut self) {
        let m = self.m;
        let rt = self.rt().to_string();
        self.w(format!("use {rt} as __rt;\n\n"));
        for c in &m.complex_types {
            self.emit_complex(c);
        }
        self.emit_events();
        for c in &m.remote_classes {
            self.emit_class(c);
        }
    }

    fn serde_crate(&self) -> String {
        format!("#[serde(crate = {})]\n", lit(&format!("{}::serde", self.rt())))
    }

    fn emit_complex(&mut self, c: &'a ComplexType) {
        let ns = self.m.namespace().to_string();
        let mut s = doc_lines(&c.doc, "");
        match &c.kind {
            ComplexKind::Enum { values } => {
                let variants = names::dedupe(values.iter().map(|v| names::variant(v)).collect());
                s += "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, __rt::serde::Serialize, __rt::serde::Deserialize)]\n";
                s += &self.serde_crate();
                let _ = writeln!(s, "pub enum {} {{", c.name);
                for (v, w) in variants.iter().zip(values) {
                    let _ = writeln!(s, "    /// Wire value `{w}`.\n    #[serde(rename = {})]\n    {v},", lit(w));
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
                s += "        }\n    }\n}\n";
                let _ = writeln!(
                    s,
                    "impl ::std::fmt::Display for {} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        f.write_str(self.as_str())\n    }}\n}}\n",
                    c.name
                );
            }
            ComplexKind::Register { .. } => {
                let props = self.set.all_complex_properties(self.m, c);
                let fields = names::dedupe(props.iter().map(|(_, p)| field(&p.name)).collect());
                let all_optional = props.iter().all(|(_, p)| p.optional);
                s += if all_optional {
                    "#[derive(Debug, Clone, PartialEq, Default, __rt::serde::Deserialize)]\n"
                } else {
                    "#[derive(Debug, Clone, PartialEq, __rt::serde::Deserialize)]\n"
                };
                s += &self.serde_crate();
                let _ = writeln!(s, "pub struct {} {{", c.name);
                for ((_, p), f) in props.iter().zip(&fields) {
                    s += &doc_lines(&p.doc, "    ");
                    let ty = self.rust_type(&p.type_ref, Pos::Field, false);
                    if p.optional {
                        let _ =
                            writeln!(s, "    #[serde(rename = {}, default)]\n    pub {f}: Option<{ty}>,", lit(&p.name));
                    } else {
                        let _ = writeln!(s, "    #[serde(rename = {})]\n    pub {f}: {ty},", lit(&p.name));
                    }
                }
                s += "}\n";
                let _ = writeln!(
                    s,
                    "impl __rt::ComplexType for {} {{\n    const MODULE: &'static str = {};\n    const TYPE: &'static str = {};\n}}",
                    c.name,
                    lit(&ns),
                    lit(&c.name)
                );
                // Output carries __module__/__type__ (spec §6) like the JS
                // client's ComplexType.toJSON.
                let _ = writeln!(s, "impl __rt::serde::Serialize for {} {{", c.name);
                s += "    fn serialize<S: __rt::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {\n";
                s += "        use __rt::serde::ser::SerializeMap as _;\n";
                s += "        let mut m = s.serialize_map(None)?;\n";
                let _ = writeln!(s, "        m.serialize_entry(\"__module__\", {})?;", lit(&ns));
                let _ = writeln!(s, "        m.serialize_entry(\"__type__\", {})?;", lit(&c.name));
                for ((_, p), f) in props.iter().zip(&fields) {
                    if p.optional {
                        let _ = writeln!(
                            s,
                            "        if let Some(x) = &self.{f} {{\n            m.serialize_entry({}, x)?;\n        }}",
                            lit(&p.name)
                        );
                    } else {
                        let _ = writeln!(s, "        m.serialize_entry({}, &self.{f})?;", lit(&p.name));
                    }
                }
                s += "        m.end()\n    }\n}\n\n";
            }
        }
        self.w(s);
    }

    fn emit_events(&mut self) {
        let rt = self.rt().to_string();
        let mut s = format!(
            "/// Events declared by the `{}` module (spec §7), deserialized from `onEvent` `data`.\npub mod events {{\n    use {rt} as __rt;\n\n",
            self.m.name
        );
        for e in &self.m.events {
            // Abstract bases: never subscribed to by name.
            if e.name == "RaiseBase" || e.name == "Media" {
                continue;
            }
            let props = self.set.all_event_properties(self.m, e);
            let fields = names::dedupe(props.iter().map(|(_, p)| field(&p.name)).collect());
            s += &doc_lines(&e.doc, "    ");
            s += "    #[derive(Debug, Clone, PartialEq, __rt::serde::Deserialize)]\n    ";
            s += &self.serde_crate();
            let _ = writeln!(s, "    pub struct {} {{", e.name);
            for ((_, p), f) in props.iter().zip(&fields) {
                s += &doc_lines(&p.doc, "        ");
                let ty = self.rust_type(&p.type_ref, Pos::Field, true);
                // `tags` is always sent (spec §7.1) but an empty list is
                // the only sensible reading of its absence.
                let default = if p.optional || p.type_ref.shape != Shape::Single { ", default" } else { "" };
                if p.optional {
                    let _ = writeln!(
                        s,
                        "        #[serde(rename = {}{default})]\n        pub {f}: Option<{ty}>,",
                        lit(&p.name)
                    );
                } else {
                    let _ = writeln!(s, "        #[serde(rename = {}{default})]\n        pub {f}: {ty},", lit(&p.name));
                }
            }
            s += "    }\n";
            let _ = writeln!(
                s,
                "    impl __rt::Event for {} {{\n        const NAME: &'static str = {};\n    }}\n",
                e.name,
                lit(&e.name)
            );
        }
        s += "}\n\n";
        self.w(s);
    }

    /// Properties with accessors a method of the same wire name does not
    /// shadow (as on the server, spec §5.5).
    fn accessors(&self, c: &'a RemoteClass) -> Vec<(&'a Property, bool)> {
        c.properties
            .iter()
            .map(|p| (p, !p.read_only && !p.is_final))
            .filter(|(p, _)| !c.methods.iter().any(|m| m.name == getter_name(&p.name)))
            .collect()
    }

    fn emit_class(&mut self, c: &'a RemoteClass) {
        let m = self.m;
        let name = c.name.clone();
        let chain = self.set.class_chain(m, c);
        let parent = chain.get(1).map(|(pm, pc)| format!("{}{}", self.prefix(pm, false), pc.name));
        let mut s = doc_lines(&c.doc, "");
        if !s.is_empty() {
            s += "///\n";
        }
        let _ = writeln!(
            s,
            "/// Proxy of a remote `{}.{}`{}. Cloning is cheap and refers to the same server object.",
            m.namespace(),
            name,
            if c.is_abstract { " (abstract: obtained from results or `cast`)" } else { "" }
        );
        s += "#[derive(Clone, PartialEq, Eq, Hash)]\n";
        match &parent {
            Some(p) => {
                let _ = writeln!(s, "pub struct {name} {{\n    parent: {p},\n}}");
                let _ = writeln!(
                    s,
                    "impl ::std::ops::Deref for {name} {{\n    type Target = {p};\n    fn deref(&self) -> &{p} {{\n        &self.parent\n    }}\n}}"
                );
            }
            None => {
                let _ = writeln!(s, "pub struct {name} {{\n    remote: __rt::RemoteObject,\n}}");
                let _ = writeln!(
                    s,
                    "impl ::std::ops::Deref for {name} {{\n    type Target = __rt::RemoteObject;\n    fn deref(&self) -> &__rt::RemoteObject {{\n        &self.remote\n    }}\n}}"
                );
            }
        }
        let hierarchy: Vec<String> =
            chain[1..].iter().map(|(om, oc)| lit(&format!("{}.{}", om.namespace(), oc.name))).collect();
        let _ = writeln!(s, "impl __rt::RemoteClass for {name} {{");
        let _ = writeln!(s, "    const TYPE: &'static str = {};", lit(&name));
        let _ =
            writeln!(s, "    const QUALIFIED_TYPE: &'static str = {};", lit(&format!("{}.{}", m.namespace(), name)));
        let _ = writeln!(s, "    const HIERARCHY: &'static [&'static str] = &[{}];", hierarchy.join(", "));
        match &parent {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "    fn from_remote(remote: __rt::RemoteObject) -> Self {{\n        {name} {{ parent: <{p} as __rt::RemoteClass>::from_remote(remote) }}\n    }}"
                );
                let _ = writeln!(
                    s,
                    "    fn remote(&self) -> &__rt::RemoteObject {{\n        __rt::RemoteClass::remote(&self.parent)\n    }}"
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "    fn from_remote(remote: __rt::RemoteObject) -> Self {{\n        {name} {{ remote }}\n    }}"
                );
                s += "    fn remote(&self) -> &__rt::RemoteObject {\n        &self.remote\n    }\n";
            }
        }
        s += "}\n";
        let _ = writeln!(
            s,
            "impl ::std::fmt::Debug for {name} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        f.debug_tuple({}).field(&__rt::RemoteClass::remote(self).id().as_str()).finish()\n    }}\n}}",
            lit(&name)
        );
        // Remote objects travel as their id (spec §6).
        let _ = writeln!(
            s,
            "impl __rt::serde::Serialize for {name} {{\n    fn serialize<S: __rt::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {{\n        s.serialize_str(__rt::RemoteClass::remote(self).id().as_str())\n    }}\n}}"
        );
        for (om, oc) in &chain[1..] {
            let _ = writeln!(
                s,
                "impl ::std::convert::From<&{name}> for {p}{a} {{\n    fn from(x: &{name}) -> Self {{\n        <{p}{a} as __rt::RemoteClass>::from_remote(__rt::RemoteClass::remote(x).clone())\n    }}\n}}",
                p = self.prefix(om, false),
                a = oc.name
            );
        }
        for ev in self.set.all_class_events(m, c) {
            let Some(t) = TypeRef::parse(&ev) else { continue };
            if let Some((em, e)) = self.set.resolve_event(chain_module(&chain, &ev).unwrap_or(m), &t) {
                let _ = writeln!(s, "impl __rt::Emits<{}events::{}> for {name} {{}}", self.prefix(em, false), e.name);
            }
        }
        s += "\n";

        // Inherent methods.
        let mut taken: Vec<String> = RESERVED.iter().map(|r| r.to_string()).collect();
        let mut uniq = |n: String| -> String {
            let bare = n.trim_start_matches("r#").to_string();
            let mut cand = if taken.contains(&bare) { format!("{bare}_method") } else { n };
            let base = cand.clone();
            let mut i = 2;
            while taken.contains(&cand) {
                cand = format!("{base}{i}");
                i += 1;
            }
            taken.push(cand.trim_start_matches("r#").to_string());
            cand
        };
        let mut builders = String::new();
        let _ = writeln!(s, "impl {name} {{");
        let _ = writeln!(
            s,
            "    /// Subscribes to `E` on this object (spec §5.6); only events `{name}` or an ancestor declares compile.\n    /// Dropping the stream unsubscribes.\n    pub async fn on<E: __rt::Event>(&self) -> __rt::Result<__rt::EventStream<E>>\n    where\n        Self: __rt::Emits<E>,\n    {{\n        __rt::RemoteClass::remote(self).subscribe::<E>().await\n    }}"
        );
        if self.parents.contains(&(m.name.clone(), name.clone())) {
            let _ = writeln!(
                s,
                "    /// Creates a `T` whose parent is this object (spec §5.3); the parent goes into `constructorParams`.\n    pub async fn create<T: __rt::Creatable<Parent = {name}>>(&self, params: T::Params) -> __rt::Result<T> {{\n        __rt::create_child::<T>(__rt::RemoteClass::remote(self), &params).await\n    }}"
            );
        }
        for (p, setter) in self.accessors(c) {
            let g = uniq(format!("get_{}", snake(&p.name)));
            s += &doc_sep(&p.doc, "    ");
            let ret = self.ret_type(&p.type_ref);
            let _ = writeln!(
                s,
                "    /// Property getter (`invoke {}`).\n    pub async fn {g}(&self) -> __rt::Result<{ret}> {{\n        let remote = __rt::RemoteClass::remote(self);\n        let v = remote.invoke({}, __rt::Map::new()).await?;\n        {}\n    }}",
                getter_name(&p.name),
                lit(&getter_name(&p.name)),
                self.decode_ret(&p.type_ref, "v", "remote.client()")
            );
            if setter {
                let st = uniq(format!("set_{}", snake(&p.name)));
                let _ = writeln!(
                    s,
                    "    /// Sets `{}` (`invoke {}`).\n    pub async fn {st}(&self, value: {}) -> __rt::Result<()> {{\n        let mut params = __rt::Map::new();\n        params.insert({}.into(), __rt::to_value(&value)?);\n        __rt::RemoteClass::remote(self).invoke({}, params).await?;\n        Ok(())\n    }}",
                    p.name,
                    setter_name(&p.name),
                    self.arg_type(&p.type_ref, ""),
                    lit(&p.name),
                    lit(&setter_name(&p.name))
                );
            }
        }
        for meth in &c.methods {
            let fname = uniq(field(&meth.name));
            let pnames = names::dedupe(meth.params.iter().map(|p| field(&p.name)).collect());
            let args: Vec<Arg> = meth.params.iter().zip(pnames).map(|(p, name)| Arg { p, name }).collect();
            let ret = meth.ret.as_ref().map(|r| self.ret_type(&r.type_ref)).unwrap_or_else(|| "()".into());
            let decode = match &meth.ret {
                Some(r) => self.decode_ret(&r.type_ref, "v", "remote.client()"),
                None => "{ let _ = v; Ok(()) }".into(),
            };
            s += &doc_sep(&meth.doc, "    ");
            if args.iter().any(|a| a.p.optional) {
                let bname = self.builder_name(c, meth);
                let required: Vec<&Arg> = args.iter().filter(|a| !a.p.optional).collect();
                let sig: String =
                    required.iter().map(|a| format!(", {}: {}", a.name, self.arg_type(&a.p.type_ref, "'a"))).collect();
                let _ = writeln!(
                    s,
                    "    /// `invoke {}`; optional parameters are set on the returned builder, which runs when awaited.\n    pub fn {fname}<'a>(&'a self{sig}) -> {bname}<'a> {{\n        {bname} {{\n            this: self,",
                    meth.name
                );
                for a in &args {
                    if a.p.optional {
                        let _ = writeln!(s, "            {}: None,", a.name);
                    } else {
                        let _ = writeln!(s, "            {},", a.name);
                    }
                }
                s += "        }\n    }\n";
                builders += &self.emit_builder(c, meth, &bname, &args, &ret, &decode);
            } else {
                let sig: String =
                    args.iter().map(|a| format!(", {}: {}", a.name, self.arg_type(&a.p.type_ref, ""))).collect();
                let _ = writeln!(
                    s,
                    "    /// `invoke {}`.\n    pub async fn {fname}(&self{sig}) -> __rt::Result<{ret}> {{\n        let remote = __rt::RemoteClass::remote(self);\n        let mut params = __rt::Map::new();",
                    meth.name
                );
                for a in &args {
                    let _ =
                        writeln!(s, "        params.insert({}.into(), __rt::to_value(&{})?);", lit(&a.p.name), a.name);
                }
                let _ = writeln!(
                    s,
                    "        let v = remote.invoke({}, params).await?;\n        {decode}\n    }}",
                    lit(&meth.name)
                );
            }
        }
        s += "}\n\n";
        s += &builders;
        if let Some(ctor) = &c.constructor
            && !c.is_abstract
        {
            s += &self.emit_constructor(c, ctor);
        }
        self.w(s);
    }

    /// `MediaElementConnect` for `MediaElement.connect`, made unique
    /// against the module's other names.
    fn builder_name(&self, c: &RemoteClass, meth: &Method) -> String {
        let mut n = format!("{}{}", c.name, names::variant(&meth.name));
        while self.m.class(&n).is_some() || self.m.complex_type(&n).is_some() {
            n.push_str("Call");
        }
        n
    }

    fn emit_builder(
        &self,
        c: &RemoteClass,
        meth: &Method,
        bname: &str,
        args: &[Arg],
        ret: &str,
        decode: &str,
    ) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "/// Pending `{}.{}` call: set optional parameters, then `.await` it.\n///\n/// The server selects the overload from the longest run of leading\n/// parameters that are all present (spec §6), so setting a later optional\n/// parameter without the earlier ones has no effect.\n#[must_use = \"the call is only sent when awaited\"]\npub struct {bname}<'a> {{\n    this: &'a {},",
            c.name, meth.name, c.name
        );
        for a in args {
            let ty = self.arg_type(&a.p.type_ref, "'a");
            if a.p.optional {
                let _ = writeln!(s, "    {}: Option<{ty}>,", a.name);
            } else {
                let _ = writeln!(s, "    {}: {ty},", a.name);
            }
        }
        s += "}\n";
        let _ = writeln!(s, "impl<'a> {bname}<'a> {{");
        for a in args.iter().filter(|a| a.p.optional) {
            s += &doc_sep(&a.p.doc, "    ");
            let default = match &a.p.default_value {
                Some(d) => format!(" Server default: `{d}`."),
                None => String::new(),
            };
            let setter = a.name.trim_start_matches("r#");
            let setter = if setter == "into_future" { "set_into_future" } else { setter };
            let _ = writeln!(
                s,
                "    /// Sets the optional `{}`.{default}\n    pub fn {setter}(mut self, value: {}) -> Self {{\n        self.{} = Some(value);\n        self\n    }}",
                a.p.name,
                self.arg_type(&a.p.type_ref, "'a"),
                a.name
            );
        }
        s += "}\n";
        let _ = writeln!(
            s,
            "impl<'a> ::std::future::IntoFuture for {bname}<'a> {{\n    type Output = __rt::Result<{ret}>;\n    type IntoFuture = __rt::BoxFuture<'a, __rt::Result<{ret}>>;\n    fn into_future(self) -> Self::IntoFuture {{\n        Box::pin(async move {{\n            let remote = __rt::RemoteClass::remote(self.this);\n            let mut params = __rt::Map::new();"
        );
        for a in args {
            if a.p.optional {
                let _ = writeln!(
                    s,
                    "            if let Some(x) = &self.{} {{\n                params.insert({}.into(), __rt::to_value(x)?);\n            }}",
                    a.name,
                    lit(&a.p.name)
                );
            } else {
                let _ = writeln!(
                    s,
                    "            params.insert({}.into(), __rt::to_value(&self.{})?);",
                    lit(&a.p.name),
                    a.name
                );
            }
        }
        let _ = writeln!(
            s,
            "            let v = remote.invoke({}, params).await?;\n            {}\n        }})\n    }}\n}}\n",
            lit(&meth.name),
            decode
        );
        s
    }

    fn params_name(&self, c: &RemoteClass) -> String {
        let mut n = format!("{}Params", c.name);
        while self.m.class(&n).is_some() || self.m.complex_type(&n).is_some() {
            n = format!("{}Constructor{}", c.name, if n.ends_with("Params") { "Params" } else { "" });
            if self.m.class(&n).is_some() || self.m.complex_type(&n).is_some() {
                n.push('_');
            }
        }
        n
    }

    fn emit_constructor(&self, c: &RemoteClass, ctor: &Constructor) -> String {
        let name = &c.name;
        let pname = self.params_name(c);
        let parent = parent_param(self.set, self.m, c);
        let rest: Vec<&Param> =
            ctor.params.iter().filter(|p| parent.is_none_or(|(pp, _, _)| !std::ptr::eq(pp, *p))).collect();
        let fields = names::dedupe(rest.iter().map(|p| field(&p.name)).collect());
        let required: Vec<(&Param, &String)> = rest.iter().copied().zip(&fields).filter(|(p, _)| !p.optional).collect();
        let mut s = String::new();
        let parent_doc = match &parent {
            Some((pp, _, pc)) => format!(" `{}` is the {} creating it.", pp.name, pc.name),
            None => String::new(),
        };
        let _ = writeln!(s, "/// Constructor parameters of `{name}` (spec §5.3).{parent_doc}");
        s += if required.is_empty() { "#[derive(Debug, Clone, Default)]\n" } else { "#[derive(Debug, Clone)]\n" };
        let _ = writeln!(s, "pub struct {pname} {{");
        for (p, f) in rest.iter().zip(&fields) {
            s += &doc_lines(&p.doc, "    ");
            let ty = self.rust_type(&p.type_ref, Pos::Owned, false);
            if p.optional {
                let d = p.default_value.as_ref().map(|d| format!(" Server default: `{d}`.")).unwrap_or_default();
                let _ = writeln!(s, "    /// Optional.{d}\n    pub {f}: Option<{ty}>,");
            } else {
                let _ = writeln!(s, "    pub {f}: {ty},");
            }
        }
        s += "}\n";
        let _ = writeln!(s, "impl {pname} {{");
        let new_args: Vec<String> = required
            .iter()
            .map(|(p, f)| {
                let ty = self.rust_type(&p.type_ref, Pos::Owned, false);
                if ty == "String" { format!("{f}: impl Into<String>") } else { format!("{f}: {ty}") }
            })
            .collect();
        let _ = writeln!(s, "    /// The required parameters; optional ones are left to the server's defaults.");
        let _ = writeln!(s, "    pub fn new({}) -> Self {{\n        {pname} {{", new_args.join(", "));
        for (p, f) in rest.iter().zip(&fields) {
            if p.optional {
                let _ = writeln!(s, "            {f}: None,");
            } else if self.rust_type(&p.type_ref, Pos::Owned, false) == "String" {
                let _ = writeln!(s, "            {f}: {f}.into(),");
            } else {
                let _ = writeln!(s, "            {f},");
            }
        }
        s += "        }\n    }\n";
        for (p, f) in rest.iter().zip(&fields) {
            if !p.optional {
                continue;
            }
            let ty = self.rust_type(&p.type_ref, Pos::Owned, false);
            let setter = f.trim_start_matches("r#");
            let setter =
                if setter == "new" || setter == "to_params" { format!("with_{setter}") } else { setter.to_string() };
            let (arg, val) =
                if ty == "String" { ("impl Into<String>".to_string(), "value.into()") } else { (ty.clone(), "value") };
            let _ = writeln!(
                s,
                "    /// Sets `{}`.\n    pub fn {setter}(mut self, value: {arg}) -> Self {{\n        self.{f} = Some({val});\n        self\n    }}",
                p.name
            );
        }
        s += "}\n";
        let _ = writeln!(s, "impl __rt::ConstructorParams for {pname} {{");
        s += "    fn to_params(&self) -> __rt::Result<__rt::Map> {\n        let mut params = __rt::Map::new();\n";
        for (p, f) in rest.iter().zip(&fields) {
            if p.optional {
                let _ = writeln!(
                    s,
                    "        if let Some(x) = &self.{f} {{\n            params.insert({}.into(), __rt::to_value(x)?);\n        }}",
                    lit(&p.name)
                );
            } else {
                let _ = writeln!(s, "        params.insert({}.into(), __rt::to_value(&self.{f})?);", lit(&p.name));
            }
        }
        s += "        Ok(params)\n    }\n}\n";
        let (parent_ty, parent_key) = match &parent {
            Some((pp, pm, pc)) => {
                (format!("{}{}", self.prefix(pm, false), pc.name), format!("Some({})", lit(&pp.name)))
            }
            None => ("__rt::NoParent".to_string(), "None".to_string()),
        };
        let _ = writeln!(
            s,
            "impl __rt::Creatable for {name} {{\n    type Params = {pname};\n    type Parent = {parent_ty};\n    const PARENT_PARAM: Option<&'static str> = {parent_key};\n}}\n"
        );
        s
    }
}

/// The module that declares `event` somewhere along the class chain, so an
/// event name is resolved from where it was written.
fn chain_module<'a>(chain: &[(&'a Module, &'a RemoteClass)], event: &str) -> Option<&'a Module> {
    chain.iter().find(|(_, c)| c.events.iter().any(|e| e == event)).map(|(m, _)| *m)
}

/// Descriptor docs followed by an empty doc line, so the generated
/// sentence that follows starts a new paragraph.
fn doc_sep(doc: &str, indent: &str) -> String {
    let d = doc_lines(doc, indent);
    if d.is_empty() { d } else { format!("{d}{indent}///\n") }
}

/// `names::field` after spelling version-suffixed acronyms as one word,
/// so `externalIPv4` becomes `external_ipv4` rather than `external_i_pv4`.
fn field(wire: &str) -> String {
    names::field(&wire.replace("IPv", "Ipv"))
}

/// `names::snake` with the same acronym rule as [`field`].
fn snake(wire: &str) -> String {
    names::snake(&wire.replace("IPv", "Ipv"))
}

fn primitive(p: &str) -> &'static str {
    match p {
        "String" => "String",
        "boolean" => "bool",
        "int" => "i32",
        "int64" => "i64",
        "float" => "f32",
        _ => "f64",
    }
}

/// Generates client code from a `build.rs`: writes `<module>_client.rs`
/// into `OUT_DIR` for every rom module.
///
/// ```no_run
/// module_creator::rust_client::ClientBuilder::new()
///     .rom("src/mymodule.kmd.json")
///     .builtin_deps()
///     .generate()
///     .expect("valid descriptor");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    rom: Vec<PathBuf>,
    deps: Vec<PathBuf>,
    paths: ClientPaths,
    out_dir: Option<PathBuf>,
}

impl ClientBuilder {
    pub fn new() -> Self {
        ClientBuilder::default()
    }

    /// Descriptor files or directories of the module(s) to generate.
    pub fn rom(mut self, p: impl AsRef<Path>) -> Self {
        self.rom.push(p.as_ref().to_path_buf());
        self
    }

    /// Descriptors of imported modules (their code is not generated).
    pub fn dep(mut self, p: impl AsRef<Path>) -> Self {
        self.deps.push(p.as_ref().to_path_buf());
        self
    }

    /// The built-in descriptors (core, elements, filters) as dependencies.
    pub fn builtin_deps(self) -> Self {
        crate::checked_in::builtin_descriptors(&crate::checked_in::repo_root())
            .into_iter()
            .fold(self, ClientBuilder::dep)
    }

    /// Rust path of the client runtime (default `::kurento_client::rt`).
    pub fn runtime_path(mut self, path: &str) -> Self {
        self.paths.runtime = path.to_string();
        self
    }

    /// Rust path of a module's generated client code.
    pub fn module_path(mut self, module: &str, path: &str) -> Self {
        self.paths.modules.insert(module.to_string(), path.to_string());
        self
    }

    pub fn out_dir(mut self, p: impl AsRef<Path>) -> Self {
        self.out_dir = Some(p.as_ref().to_path_buf());
        self
    }

    /// Writes `<module>_client.rs` for every rom module and prints
    /// `cargo:rerun-if-changed` lines.
    pub fn generate(self) -> Result<Vec<PathBuf>, KmdError> {
        for p in self.rom.iter().chain(&self.deps) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
        let mut loader = Builder::new();
        for p in &self.rom {
            loader = loader.rom(p);
        }
        for p in &self.deps {
            loader = loader.dep(p);
        }
        let (set, names) = loader.load()?;
        let out_dir =
            match &self.out_dir {
                Some(d) => d.clone(),
                None => PathBuf::from(std::env::var("OUT_DIR").map_err(|_| {
                    KmdError::new("<build>", "", "OUT_DIR is not set; call from build.rs or set out_dir")
                })?),
            };
        let mut written = vec![];
        for n in names {
            let code = generate_client(&set, &n, &self.paths);
            let path = out_dir.join(format!("{n}_client.rs"));
            std::fs::write(&path, code)
                .map_err(|e| KmdError::new(&path.display().to_string(), "", format!("cannot write: {e}")))?;
            written.push(path);
        }
        Ok(written)
    }
}
