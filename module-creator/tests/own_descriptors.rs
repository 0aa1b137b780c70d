//! Our descriptors (`kms-core/core.kmd.json`, `kms-elements/elements.kmd.json`,
//! `kms-filters/filters.kmd.json`) against the upstream 7.3.0 ones in
//! `tests/fixtures/kmd`: every class, constructor, method, parameter (name,
//! type, optionality, default, order), property, event and complex type
//! (enum values included) upstream has is present and identical in ours.
//! Docs may differ. Clients are generated from upstream's descriptors, so any
//! difference is a wire incompatibility.

use std::path::Path;

use module_creator::Module;
use module_creator::model::{ComplexKind, Param, Property, load_module};

fn load(path: &Path) -> Module {
    load_module(&[path.to_path_buf()]).unwrap_or_else(|e| panic!("{e}"))
}

fn param(p: &Param) -> String {
    format!(
        "{}: {}{}{}",
        p.name,
        p.type_ref,
        if p.optional { " optional" } else { "" },
        p.default_value.as_ref().map(|d| format!(" = {d}")).unwrap_or_default()
    )
}

fn params(ps: &[Param]) -> Vec<String> {
    ps.iter().map(param).collect()
}

fn property(p: &Property) -> String {
    format!(
        "{}: {}{}{}{}{}",
        p.name,
        p.type_ref,
        if p.read_only { " readOnly" } else { "" },
        if p.is_final { " final" } else { "" },
        if p.optional { " optional" } else { "" },
        p.default_value.as_ref().map(|d| format!(" = {d}")).unwrap_or_default()
    )
}

/// Every difference between upstream's module and ours, one line each.
fn differences(up: &Module, ours: &Module) -> Vec<String> {
    let mut d = vec![];
    let mut diff = |what: String, a: String, b: String| {
        if a != b {
            d.push(format!("{what}: upstream `{a}`, ours `{b}`"));
        }
    };
    diff(format!("{} version", up.name), up.version.clone(), ours.version.clone());
    for uc in &up.remote_classes {
        let w = format!("{}.{}", up.name, uc.name);
        let Some(oc) = ours.class(&uc.name) else {
            diff(w, "class".into(), "missing".into());
            continue;
        };
        diff(format!("{w} extends"), format!("{:?}", uc.extends), format!("{:?}", oc.extends));
        diff(format!("{w} abstract"), uc.is_abstract.to_string(), oc.is_abstract.to_string());
        diff(
            format!("{w} constructor"),
            format!("{:?}", uc.constructor.as_ref().map(|c| params(&c.params))),
            format!("{:?}", oc.constructor.as_ref().map(|c| params(&c.params))),
        );
        for up_p in &uc.properties {
            let ours_p = oc.properties.iter().find(|p| p.name == up_p.name);
            diff(format!("{w}.{} property", up_p.name), property(up_p), ours_p.map(property).unwrap_or_default());
        }
        for um in &uc.methods {
            let om = oc.methods.iter().find(|m| m.name == um.name);
            let sig = |m: &module_creator::model::Method| {
                format!("({}) -> {:?}", params(&m.params).join(", "), m.ret.as_ref().map(|r| r.type_ref.to_string()))
            };
            diff(format!("{w}.{}()", um.name), sig(um), om.map(sig).unwrap_or_else(|| "missing".into()));
        }
        for e in &uc.events {
            if !oc.events.contains(e) {
                diff(format!("{w} events"), e.clone(), "missing".into());
            }
        }
    }
    for ut in &up.complex_types {
        let w = format!("{}.{}", up.name, ut.name);
        let Some(ot) = ours.complex_type(&ut.name) else {
            diff(w, "complex type".into(), "missing".into());
            continue;
        };
        match (&ut.kind, &ot.kind) {
            (ComplexKind::Enum { values: a }, ComplexKind::Enum { values: b }) => {
                diff(format!("{w} values"), a.join("|"), b.join("|"))
            }
            (
                ComplexKind::Register { extends: ea, properties: pa },
                ComplexKind::Register { extends: eb, properties: pb },
            ) => {
                diff(format!("{w} extends"), format!("{ea:?}"), format!("{eb:?}"));
                diff(
                    format!("{w} fields"),
                    pa.iter().map(property).collect::<Vec<_>>().join(", "),
                    pb.iter().map(property).collect::<Vec<_>>().join(", "),
                );
            }
            (a, b) => diff(format!("{w} typeFormat"), format!("{a:?}"), format!("{b:?}")),
        }
    }
    for ue in &up.events {
        let w = format!("{}.{} event", up.name, ue.name);
        let Some(oe) = ours.event(&ue.name) else {
            diff(w, "event".into(), "missing".into());
            continue;
        };
        diff(format!("{w} extends"), format!("{:?}", ue.extends), format!("{:?}", oe.extends));
        diff(
            format!("{w} fields"),
            ue.properties.iter().map(property).collect::<Vec<_>>().join(", "),
            oe.properties.iter().map(property).collect::<Vec<_>>().join(", "),
        );
    }
    d
}

fn compare(module: &str, ours: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let up = load(&root.join(format!("tests/fixtures/kmd/{module}.kmd.json")));
    let ours = load(&root.join("..").join(ours));
    let d = differences(&up, &ours);
    assert!(d.is_empty(), "{} difference(s) in module {module}:\n{}", d.len(), d.join("\n"));
}

#[test]
fn core_matches_upstream() {
    compare("core", "kms-core/core.kmd.json");
}

#[test]
fn elements_matches_upstream() {
    compare("elements", "kms-elements/elements.kmd.json");
}

#[test]
fn filters_matches_upstream() {
    compare("filters", "kms-filters/filters.kmd.json");
}

/// The comparison itself finds differences (it would be worthless if it
/// could not fail).
#[test]
fn a_reordered_param_a_missing_enum_value_a_changed_type_and_a_missing_event_are_differences() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let up = load(&root.join("tests/fixtures/kmd/core.kmd.json"));
    let mut ours = up.clone();
    assert!(differences(&up, &ours).is_empty());
    let connect = ours.remote_classes.iter_mut().find(|c| c.name == "MediaElement").unwrap();
    let m = connect.methods.iter_mut().find(|m| m.name == "connect").unwrap();
    m.params.swap(1, 2);
    let mt = ours.complex_types.iter_mut().find(|t| t.name == "MediaType").unwrap();
    if let ComplexKind::Enum { values } = &mut mt.kind {
        values.pop();
    }
    let sm = ours.remote_classes.iter_mut().find(|c| c.name == "ServerManager").unwrap();
    let gc = sm.methods.iter_mut().find(|m| m.name == "getUsedCpu").unwrap();
    gc.params[0].type_ref = module_creator::model::TypeRef::parse("int64").unwrap();
    ours.events.retain(|e| e.name != "ObjectCreated");
    let d = differences(&up, &ours);
    assert_eq!(d.len(), 4, "{d:#?}");
    assert!(
        d[0].starts_with("core.MediaElement.connect(): upstream `(sink: MediaElement, mediaType: MediaType"),
        "{}",
        d[0]
    );
}
