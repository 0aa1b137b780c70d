//! Writes the fused, fully-defaulted module model back as JSON (spec §12.2):
//! what `getKmd` returns and what `--output-model` writes.

use serde_json::{Map, Value, json};

use crate::model::*;

fn maven_version(v: &str) -> String {
    match v.strip_suffix("-dev") {
        Some(base) => format!("{base}-SNAPSHOT"),
        None => v.to_string(),
    }
}

/// `code` with the defaults of spec §12.1 filled in where missing.
pub fn code_with_defaults(m: &Module) -> Map<String, Value> {
    let mut code = m.code.clone();
    let builtin = m.is_builtin();
    let lib = if builtin { format!("libkms{}", m.name) } else { format!("libkms{}", m.name.to_lowercase()) };
    let defaults = json!({
        "kmd": {"java": {"mavenGroupId": "org.kurento.module", "mavenArtifactId": format!("{}.kmd", m.name), "mavenVersion": maven_version(&m.version)}},
        "api": {
            "java": {"packageName": format!("org.kurento.module.{}", m.name), "mavenGroupId": "org.kurento.module", "mavenArtifactId": m.name, "mavenVersion": maven_version(&m.version)},
            "js": {"nodeName": format!("kurento-module-{}", m.name), "npmVersion": m.version}
        },
        "implementation": {"cppNamespace": if builtin { "kurento".to_string() } else { format!("kurento::module::{}", m.name) }, "lib": lib}
    });
    merge_missing(&mut code, defaults.as_object().expect("object literal"));
    code
}

fn merge_missing(into: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (k, v) in defaults {
        match (into.get_mut(k), v) {
            (Some(Value::Object(existing)), Value::Object(d)) => merge_missing(existing, d),
            (Some(_), _) => {}
            (None, v) => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn param(p: &Param) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(p.name));
    o.insert("doc".into(), json!(p.doc));
    o.insert("type".into(), json!(p.type_ref.to_string()));
    if p.optional {
        o.insert("optional".into(), json!(true));
    }
    if let Some(d) = &p.default_value {
        o.insert("defaultValue".into(), d.clone());
    }
    Value::Object(o)
}

fn property(p: &Property) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(p.name));
    o.insert("doc".into(), json!(p.doc));
    o.insert("type".into(), json!(p.type_ref.to_string()));
    if p.read_only {
        o.insert("readOnly".into(), json!(true));
    }
    if p.is_final {
        o.insert("final".into(), json!(true));
    }
    if p.optional {
        o.insert("optional".into(), json!(true));
    }
    if let Some(d) = &p.default_value {
        o.insert("defaultValue".into(), d.clone());
    }
    Value::Object(o)
}

fn class(c: &RemoteClass) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(c.name));
    o.insert("doc".into(), json!(c.doc));
    if let Some(e) = &c.extends {
        o.insert("extends".into(), json!(e.to_string()));
    }
    if c.is_abstract {
        o.insert("abstract".into(), json!(true));
    }
    if let Some(ctor) = &c.constructor {
        o.insert(
            "constructor".into(),
            json!({"doc": ctor.doc, "params": ctor.params.iter().map(param).collect::<Vec<_>>()}),
        );
    }
    if !c.properties.is_empty() {
        o.insert("properties".into(), Value::Array(c.properties.iter().map(property).collect()));
    }
    if !c.methods.is_empty() {
        let methods = c
            .methods
            .iter()
            .map(|m| {
                let mut mo = Map::new();
                mo.insert("name".into(), json!(m.name));
                mo.insert("doc".into(), json!(m.doc));
                mo.insert("params".into(), Value::Array(m.params.iter().map(param).collect()));
                if let Some(r) = &m.ret {
                    mo.insert("return".into(), json!({"type": r.type_ref.to_string(), "doc": r.doc}));
                }
                Value::Object(mo)
            })
            .collect();
        o.insert("methods".into(), Value::Array(methods));
    }
    if !c.events.is_empty() {
        o.insert("events".into(), json!(c.events));
    }
    Value::Object(o)
}

fn complex(c: &ComplexType) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(c.name));
    o.insert("doc".into(), json!(c.doc));
    match &c.kind {
        ComplexKind::Enum { values } => {
            o.insert("typeFormat".into(), json!("ENUM"));
            o.insert("values".into(), json!(values));
        }
        ComplexKind::Register { extends, properties } => {
            o.insert("typeFormat".into(), json!("REGISTER"));
            if let Some(e) = extends {
                o.insert("extends".into(), json!(e.to_string()));
            }
            o.insert("properties".into(), Value::Array(properties.iter().map(property).collect()));
        }
    }
    Value::Object(o)
}

fn event(e: &Event) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(e.name));
    o.insert("doc".into(), json!(e.doc));
    if let Some(x) = &e.extends {
        o.insert("extends".into(), json!(x.to_string()));
    }
    o.insert("properties".into(), Value::Array(e.properties.iter().map(property).collect()));
    Value::Object(o)
}

/// The fused model of one module.
pub fn module_to_json(m: &Module) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(m.name));
    o.insert("version".into(), json!(m.version));
    let kv = m.kurento_version.clone().unwrap_or_else(|| m.version.clone());
    o.insert("kurentoVersion".into(), json!(kv));
    let imports: Vec<Value> = m
        .imports
        .iter()
        .map(|i| {
            let mut io = Map::new();
            io.insert("name".into(), json!(i.name));
            io.insert("version".into(), json!(i.version));
            if let Some(v) = &i.maven_version {
                io.insert("mavenVersion".into(), json!(v));
            }
            if let Some(v) = &i.npm_version {
                io.insert("npmVersion".into(), json!(v));
            }
            Value::Object(io)
        })
        .collect();
    o.insert("imports".into(), Value::Array(imports));
    if let Some(r) = &m.repository {
        o.insert("repository".into(), json!(r));
    }
    o.insert("code".into(), Value::Object(code_with_defaults(m)));
    o.insert("remoteClasses".into(), Value::Array(m.remote_classes.iter().map(class).collect()));
    o.insert("complexTypes".into(), Value::Array(m.complex_types.iter().map(complex).collect()));
    o.insert("events".into(), Value::Array(m.events.iter().map(event).collect()));
    Value::Object(o)
}
