//! A set of modules with their imports resolved, and the validation rules of
//! spec §12.1–12.2 (unknown types, duplicate names, extends cycles, missing
//! imports, bad enum defaults).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::error::KmdError;
use crate::model::*;

/// What a type reference points at.
#[derive(Debug, Clone, Copy)]
pub enum Resolved<'a> {
    Primitive(&'a str),
    Class(&'a Module, &'a RemoteClass),
    Complex(&'a Module, &'a ComplexType),
}

/// Modules, dependencies first, validated together.
#[derive(Debug, Clone)]
pub struct ModuleSet {
    pub modules: Vec<Module>,
}

/// Modules a module sees without declaring them (spec §12.1).
pub fn implicit_imports(name: &str) -> &'static [&'static str] {
    match name {
        "core" => &[],
        "elements" => &["core"],
        "filters" => &["core", "elements"],
        _ => &["core", "elements", "filters"],
    }
}

impl ModuleSet {
    /// Builds and validates a set. Modules may be given in any order; they are
    /// sorted so that dependencies come first.
    pub fn new(modules: Vec<Module>) -> Result<ModuleSet, KmdError> {
        let mut seen = HashSet::new();
        for m in &modules {
            if !seen.insert(m.name.clone()) {
                return Err(KmdError::new(&file_of(m), "name", format!("module '{}' given twice", m.name)));
            }
        }
        let sorted = topo_sort(modules)?;
        let set = ModuleSet { modules: sorted };
        for m in &set.modules {
            set.validate(m)?;
        }
        Ok(set)
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// Names of the modules visible from `m` (itself first, then imports,
    /// then implicit built-ins), restricted to those present in the set.
    pub fn visible(&self, m: &Module) -> Vec<&Module> {
        let mut names: Vec<&str> = vec![&m.name];
        names.extend(m.imports.iter().map(|i| i.name.as_str()));
        names.extend(implicit_imports(&m.name).iter().copied());
        let mut out: Vec<&Module> = vec![];
        for n in names {
            if let Some(x) = self.module(n)
                && !out.iter().any(|o| o.name == x.name)
            {
                out.push(x);
            }
        }
        out
    }

    /// Resolves a type name from within module `from`.
    pub fn resolve<'a>(&'a self, from: &'a Module, t: &TypeRef) -> Option<Resolved<'a>> {
        if t.is_primitive() {
            return PRIMITIVES.iter().find(|p| **p == t.name).map(|p| Resolved::Primitive(p));
        }
        let candidates: Vec<&Module> = match t.qualifier() {
            Some(q) => {
                let q = if q == "kurento" { None } else { Some(q) };
                self.visible(from)
                    .into_iter()
                    .filter(|m| match q {
                        None => m.is_builtin(),
                        Some(q) => m.name == q,
                    })
                    .collect()
            }
            None => self.visible(from),
        };
        let short = t.short_name();
        for m in candidates {
            if let Some(c) = m.class(short) {
                return Some(Resolved::Class(m, c));
            }
            if let Some(c) = m.complex_type(short) {
                return Some(Resolved::Complex(m, c));
            }
        }
        None
    }

    pub fn resolve_event<'a>(&'a self, from: &'a Module, t: &TypeRef) -> Option<(&'a Module, &'a Event)> {
        let short = t.short_name();
        self.visible(from).into_iter().find_map(|m| m.event(short).map(|e| (m, e)))
    }

    /// The class followed by its ancestors, nearest first.
    pub fn class_chain<'a>(&'a self, m: &'a Module, c: &'a RemoteClass) -> Vec<(&'a Module, &'a RemoteClass)> {
        let mut out = vec![(m, c)];
        let (mut cm, mut cc) = (m, c);
        while let Some(ext) = &cc.extends {
            match self.resolve(cm, ext) {
                Some(Resolved::Class(pm, pc)) if out.len() < 64 => {
                    out.push((pm, pc));
                    cm = pm;
                    cc = pc;
                }
                _ => break,
            }
        }
        out
    }

    /// A REGISTER type followed by its ancestors, nearest first.
    pub fn complex_chain<'a>(&'a self, m: &'a Module, c: &'a ComplexType) -> Vec<(&'a Module, &'a ComplexType)> {
        let mut out = vec![(m, c)];
        let (mut cm, mut cc) = (m, c);
        while let ComplexKind::Register { extends: Some(ext), .. } = &cc.kind {
            match self.resolve(cm, ext) {
                Some(Resolved::Complex(pm, pc)) if out.len() < 64 => {
                    out.push((pm, pc));
                    cm = pm;
                    cc = pc;
                }
                _ => break,
            }
        }
        out
    }

    pub fn event_chain<'a>(&'a self, m: &'a Module, e: &'a Event) -> Vec<(&'a Module, &'a Event)> {
        let mut out = vec![(m, e)];
        let (mut cm, mut ce) = (m, e);
        while let Some(ext) = &ce.extends {
            match self.resolve_event(cm, ext) {
                Some((pm, pe)) if out.len() < 64 => {
                    out.push((pm, pe));
                    cm = pm;
                    ce = pe;
                }
                _ => break,
            }
        }
        out
    }

    /// All properties of a REGISTER type, ancestors' first.
    pub fn all_complex_properties<'a>(&'a self, m: &'a Module, c: &'a ComplexType) -> Vec<(&'a Module, &'a Property)> {
        let mut out = vec![];
        for (pm, pc) in self.complex_chain(m, c).into_iter().rev() {
            if let ComplexKind::Register { properties, .. } = &pc.kind {
                out.extend(properties.iter().map(|p| (pm, p)));
            }
        }
        out
    }

    /// All properties of an event, ancestors' first.
    pub fn all_event_properties<'a>(&'a self, m: &'a Module, e: &'a Event) -> Vec<(&'a Module, &'a Property)> {
        let mut out = vec![];
        for (pm, pe) in self.event_chain(m, e).into_iter().rev() {
            out.extend(pe.properties.iter().map(|p| (pm, p)));
        }
        out
    }

    /// Every event a class can emit: its own and its ancestors'.
    pub fn all_class_events<'a>(&'a self, m: &'a Module, c: &'a RemoteClass) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for (_, cc) in self.class_chain(m, c) {
            for e in &cc.events {
                if !out.contains(e) {
                    out.push(e.clone());
                }
            }
        }
        out
    }

    /// Whether any REGISTER type in the set extends `(m, c)`.
    pub fn has_subtypes(&self, m: &Module, c: &ComplexType) -> bool {
        self.modules.iter().any(|om| {
            om.complex_types.iter().any(|oc| match &oc.kind {
                ComplexKind::Register { extends: Some(ext), .. } => {
                    matches!(self.resolve(om, ext), Some(Resolved::Complex(pm, pc)) if pm.name == m.name && pc.name == c.name)
                }
                _ => false,
            })
        })
    }

    fn validate(&self, m: &Module) -> Result<(), KmdError> {
        let file = file_of(m);
        if m.version.trim().is_empty() {
            return Err(KmdError::new(&file, "version", "version is empty"));
        }
        for (i, imp) in m.imports.iter().enumerate() {
            let Some(dep) = self.module(&imp.name) else {
                return Err(KmdError::new(
                    &file,
                    &format!("imports[{i}]"),
                    format!("missing import: module '{}' is not available", imp.name),
                ));
            };
            if !m.version.ends_with("-dev") && dep.version.ends_with("-dev") {
                return Err(KmdError::new(
                    &file,
                    &format!("imports[{i}]"),
                    format!(
                        "release module '{}' imports development version {} of '{}'",
                        m.name, dep.version, dep.name
                    ),
                ));
            }
        }
        // Duplicate names: classes and complex types share a namespace.
        let mut names: HashMap<&str, &Origin> = HashMap::new();
        for (n, o) in m
            .remote_classes
            .iter()
            .map(|c| (c.name.as_str(), &c.origin))
            .chain(m.complex_types.iter().map(|c| (c.name.as_str(), &c.origin)))
        {
            if let Some(prev) = names.insert(n, o) {
                return Err(KmdError::new(&o.file, &o.path, format!("duplicate name '{n}' (first defined at {prev})")));
            }
        }
        let mut ev: HashMap<&str, &Origin> = HashMap::new();
        for e in &m.events {
            if let Some(prev) = ev.insert(&e.name, &e.origin) {
                return Err(KmdError::new(
                    &e.origin.file,
                    &e.origin.path,
                    format!("duplicate event name '{}' (first defined at {prev})", e.name),
                ));
            }
        }
        for c in &m.remote_classes {
            self.validate_class(m, c)?;
        }
        for c in &m.complex_types {
            match &c.kind {
                ComplexKind::Enum { values } => {
                    let mut seen = HashSet::new();
                    for (i, v) in values.iter().enumerate() {
                        if !seen.insert(v) {
                            return Err(KmdError::new(
                                &c.origin.file,
                                &format!("{}.values[{i}]", c.origin.path),
                                format!("duplicate enum value '{v}'"),
                            ));
                        }
                    }
                }
                ComplexKind::Register { extends, properties } => {
                    if let Some(ext) = extends {
                        match self.resolve(m, ext) {
                            Some(Resolved::Complex(_, p)) if matches!(p.kind, ComplexKind::Register { .. }) => {}
                            _ => {
                                return Err(KmdError::new(
                                    &c.origin.file,
                                    &format!("{}.extends", c.origin.path),
                                    format!("unknown type '{ext}': not a REGISTER complex type"),
                                ));
                            }
                        }
                        let chain = self.complex_chain(m, c);
                        if chain.len() >= 64 || chain[1..].iter().any(|(pm, pc)| pm.name == m.name && pc.name == c.name)
                        {
                            return Err(KmdError::new(
                                &c.origin.file,
                                &format!("{}.extends", c.origin.path),
                                format!("extends cycle through '{}'", c.name),
                            ));
                        }
                    }
                    self.validate_props(m, properties)?;
                }
            }
        }
        for e in &m.events {
            if let Some(ext) = &e.extends {
                if self.resolve_event(m, ext).is_none() {
                    return Err(KmdError::new(
                        &e.origin.file,
                        &format!("{}.extends", e.origin.path),
                        format!("unknown event '{ext}'"),
                    ));
                }
                let chain = self.event_chain(m, e);
                if chain.len() >= 64 || chain[1..].iter().any(|(pm, pe)| pm.name == m.name && pe.name == e.name) {
                    return Err(KmdError::new(
                        &e.origin.file,
                        &format!("{}.extends", e.origin.path),
                        format!("extends cycle through '{}'", e.name),
                    ));
                }
            }
            self.validate_props(m, &e.properties)?;
        }
        Ok(())
    }

    fn validate_class(&self, m: &Module, c: &RemoteClass) -> Result<(), KmdError> {
        let o = &c.origin;
        if let Some(ext) = &c.extends {
            match self.resolve(m, ext) {
                Some(Resolved::Class(..)) => {}
                _ => {
                    return Err(KmdError::new(
                        &o.file,
                        &format!("{}.extends", o.path),
                        format!("unknown type '{ext}': not a remote class"),
                    ));
                }
            }
            let chain = self.class_chain(m, c);
            if chain.len() >= 64 || chain[1..].iter().any(|(pm, pc)| pm.name == m.name && pc.name == c.name) {
                return Err(KmdError::new(
                    &o.file,
                    &format!("{}.extends", o.path),
                    format!("extends cycle through '{}'", c.name),
                ));
            }
        }
        if !c.is_abstract && c.constructor.is_none() {
            return Err(KmdError::new(
                &o.file,
                &o.path,
                format!("class '{}' is not abstract but has no constructor", c.name),
            ));
        }
        if let Some(ctor) = &c.constructor {
            self.validate_params(m, &ctor.params, true)?;
        }
        self.validate_props(m, &c.properties)?;
        let mut seen = HashSet::new();
        for meth in &c.methods {
            if !seen.insert(&meth.name) {
                return Err(KmdError::new(
                    &meth.origin.file,
                    &meth.origin.path,
                    format!("duplicate method name '{}'", meth.name),
                ));
            }
            self.validate_params(m, &meth.params, false)?;
            if let Some(r) = &meth.ret
                && self.resolve(m, &r.type_ref).is_none()
            {
                return Err(KmdError::new(
                    &meth.origin.file,
                    &format!("{}.return.type", meth.origin.path),
                    format!("unknown type '{}'", r.type_ref),
                ));
            }
        }
        for (i, e) in c.events.iter().enumerate() {
            let t = TypeRef::parse(e)
                .ok_or_else(|| KmdError::new(&o.file, &format!("{}.events[{i}]", o.path), "malformed event name"))?;
            if self.resolve_event(m, &t).is_none() {
                return Err(KmdError::new(&o.file, &format!("{}.events[{i}]", o.path), format!("unknown event '{e}'")));
            }
        }
        Ok(())
    }

    fn validate_params(&self, m: &Module, params: &[Param], ctor: bool) -> Result<(), KmdError> {
        let mut seen = HashSet::new();
        for p in params {
            let o = &p.origin;
            if !seen.insert(&p.name) {
                return Err(KmdError::new(&o.file, &o.path, format!("duplicate parameter name '{}'", p.name)));
            }
            let Some(r) = self.resolve(m, &p.type_ref) else {
                return Err(KmdError::new(
                    &o.file,
                    &format!("{}.type", o.path),
                    format!("unknown type '{}'", p.type_ref),
                ));
            };
            if let Some(d) = &p.default_value {
                self.check_default(r, &p.type_ref, d, o)?;
            }
            let _ = ctor;
        }
        Ok(())
    }

    fn validate_props(&self, m: &Module, props: &[Property]) -> Result<(), KmdError> {
        let mut seen = HashSet::new();
        for p in props {
            let o = &p.origin;
            if !seen.insert(&p.name) {
                return Err(KmdError::new(&o.file, &o.path, format!("duplicate property name '{}'", p.name)));
            }
            let Some(r) = self.resolve(m, &p.type_ref) else {
                return Err(KmdError::new(
                    &o.file,
                    &format!("{}.type", o.path),
                    format!("unknown type '{}'", p.type_ref),
                ));
            };
            if let Some(d) = &p.default_value {
                self.check_default(r, &p.type_ref, d, o)?;
            }
        }
        Ok(())
    }

    fn check_default(&self, r: Resolved, t: &TypeRef, d: &Value, o: &Origin) -> Result<(), KmdError> {
        let path = format!("{}.defaultValue", o.path);
        if t.shape != Shape::Single {
            return Ok(());
        }
        match r {
            Resolved::Complex(_, ComplexType { kind: ComplexKind::Enum { values }, name, .. }) => match d {
                Value::String(s) if values.contains(s) => Ok(()),
                _ => Err(KmdError::new(
                    &o.file,
                    &path,
                    format!("bad enum value {d} for '{name}' (one of {})", values.join("|")),
                )),
            },
            Resolved::Primitive("boolean") if !d.is_boolean() => {
                Err(KmdError::new(&o.file, &path, format!("default {d} is not a boolean")))
            }
            // Upstream descriptors write some numeric defaults as strings
            // ("320"); accepted when they parse.
            Resolved::Primitive("int" | "int64")
                if !(d.is_i64() || d.is_u64() || d.as_str().is_some_and(|s| s.trim().parse::<i64>().is_ok())) =>
            {
                Err(KmdError::new(&o.file, &path, format!("default {d} is not an integer")))
            }
            Resolved::Primitive("float" | "double")
                if !(d.is_number() || d.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok())) =>
            {
                Err(KmdError::new(&o.file, &path, format!("default {d} is not a number")))
            }
            _ => Ok(()),
        }
    }

    /// The fused, fully-defaulted model as JSON (what `getKmd` returns and
    /// what `--output-model` writes), spec §12.2.
    pub fn fused_json(&self, m: &Module) -> Value {
        crate::emit_kmd::module_to_json(m)
    }

    /// Applies the `code` defaults of spec §12.1 to a module's `code` map.
    pub fn code_with_defaults(m: &Module) -> Map<String, Value> {
        crate::emit_kmd::code_with_defaults(m)
    }
}

fn file_of(m: &Module) -> String {
    m.files.first().map(|f| f.display().to_string()).unwrap_or_else(|| format!("<module {}>", m.name))
}

fn topo_sort(modules: Vec<Module>) -> Result<Vec<Module>, KmdError> {
    let names: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();
    let deps = |m: &Module| -> Vec<String> {
        let mut d: Vec<String> = m.imports.iter().map(|i| i.name.clone()).collect();
        d.extend(implicit_imports(&m.name).iter().map(|s| s.to_string()));
        d.into_iter().filter(|n| names.contains(n) && *n != m.name).collect()
    };
    let mut pending = modules;
    let mut out: Vec<Module> = vec![];
    while !pending.is_empty() {
        let pos = pending.iter().position(|m| deps(m).iter().all(|d| out.iter().any(|o| &o.name == d)));
        match pos {
            Some(p) => out.push(pending.remove(p)),
            None => {
                let m = &pending[0];
                return Err(KmdError::new(
                    &file_of(m),
                    "imports",
                    format!("dependency cycle involving module '{}'", m.name),
                ));
            }
        }
    }
    Ok(out)
}
