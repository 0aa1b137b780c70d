//! The Kurento Module Descriptor model (spec §12.1) and its loader.
//!
//! Loading is done by hand over `serde_json::Value` rather than with serde
//! derive, because every error must name the file and the JSON path of the
//! offending item (`remoteClasses[3].methods[0].params[1].type`), which
//! derive-based errors cannot do. Nothing here panics on bad input.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::KmdError;

/// Where an item came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    pub path: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.path)
    }
}

/// A reference to a type as written in a descriptor: `int`, `MediaElement`,
/// `chroma.WindowParam`, `String[]`, `Stats<>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeRef {
    /// The element type name, possibly qualified with a module name.
    pub name: String,
    pub shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Single,
    /// `T[]`
    List,
    /// `T<>`: JSON object with string keys.
    Map,
}

impl TypeRef {
    pub fn parse(s: &str) -> Option<TypeRef> {
        let s = s.trim();
        let (name, shape) = if let Some(n) = s.strip_suffix("[]") {
            (n, Shape::List)
        } else if let Some(n) = s.strip_suffix("<>") {
            (n, Shape::Map)
        } else {
            (s, Shape::Single)
        };
        let valid = !name.is_empty()
            && name.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            && name.split('.').count() <= 2;
        valid.then(|| TypeRef { name: name.to_string(), shape })
    }

    /// The unqualified element type name.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// The module qualifier, if written.
    pub fn qualifier(&self) -> Option<&str> {
        self.name.split_once('.').map(|(m, _)| m)
    }

    pub fn is_primitive(&self) -> bool {
        PRIMITIVES.contains(&self.name.as_str())
    }
}

impl fmt::Display for TypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shape {
            Shape::Single => write!(f, "{}", self.name),
            Shape::List => write!(f, "{}[]", self.name),
            Shape::Map => write!(f, "{}<>", self.name),
        }
    }
}

pub const PRIMITIVES: &[&str] = &["String", "boolean", "int", "int64", "float", "double"];

#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub name: String,
    pub version: String,
    pub maven_version: Option<String>,
    pub npm_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub doc: String,
    pub type_ref: TypeRef,
    pub optional: bool,
    pub default_value: Option<Value>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub doc: String,
    pub type_ref: TypeRef,
    pub read_only: bool,
    pub is_final: bool,
    pub optional: bool,
    pub default_value: Option<Value>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Return {
    pub doc: String,
    pub type_ref: TypeRef,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub name: String,
    pub doc: String,
    pub params: Vec<Param>,
    pub ret: Option<Return>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constructor {
    pub doc: String,
    pub params: Vec<Param>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteClass {
    pub name: String,
    pub doc: String,
    pub extends: Option<TypeRef>,
    pub is_abstract: bool,
    pub constructor: Option<Constructor>,
    pub properties: Vec<Property>,
    pub methods: Vec<Method>,
    pub events: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ComplexKind {
    Enum { values: Vec<String> },
    Register { extends: Option<TypeRef>, properties: Vec<Property> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComplexType {
    pub name: String,
    pub doc: String,
    pub kind: ComplexKind,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub doc: String,
    pub extends: Option<TypeRef>,
    pub properties: Vec<Property>,
    pub origin: Origin,
}

/// One module, fused from one or more descriptor files (spec §12.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub name: String,
    pub version: String,
    pub kurento_version: Option<String>,
    pub imports: Vec<Import>,
    pub repository: Option<String>,
    pub code: Map<String, Value>,
    pub remote_classes: Vec<RemoteClass>,
    pub complex_types: Vec<ComplexType>,
    pub events: Vec<Event>,
    /// The files the module was fused from.
    pub files: Vec<PathBuf>,
}

/// The built-in modules whose classes live in the `kurento` namespace.
pub const BUILTIN_MODULES: &[&str] = &["core", "elements", "filters"];

impl Module {
    pub fn is_builtin(&self) -> bool {
        BUILTIN_MODULES.contains(&self.name.as_str())
    }

    /// Namespace used in ids, qualified names and `__module__` (spec §4.1, §6).
    pub fn namespace(&self) -> &str {
        if self.is_builtin() { "kurento" } else { &self.name }
    }

    pub fn class(&self, name: &str) -> Option<&RemoteClass> {
        self.remote_classes.iter().find(|c| c.name == name)
    }

    pub fn complex_type(&self, name: &str) -> Option<&ComplexType> {
        self.complex_types.iter().find(|c| c.name == name)
    }

    pub fn event(&self, name: &str) -> Option<&Event> {
        self.events.iter().find(|c| c.name == name)
    }
}

/// One parsed descriptor file, before fusion.
#[derive(Debug, Clone, Default)]
pub struct KmdFile {
    pub file: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub kurento_version: Option<String>,
    pub imports: Option<Vec<Import>>,
    pub repository: Option<String>,
    pub code: Option<Map<String, Value>>,
    pub remote_classes: Vec<RemoteClass>,
    pub complex_types: Vec<ComplexType>,
    pub events: Vec<Event>,
}

/// Cursor over a JSON object that knows its file and path.
struct Obj<'a> {
    file: &'a str,
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(file: &'a str, path: String, v: &'a Value) -> Result<Self, KmdError> {
        match v {
            Value::Object(map) => Ok(Obj { file, path, map }),
            _ => Err(KmdError::new(file, &path, "expected a JSON object")),
        }
    }

    fn sub(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    fn err(&self, key: &str, msg: impl Into<String>) -> KmdError {
        KmdError::new(self.file, &self.sub(key), msg)
    }

    fn origin(&self) -> Origin {
        Origin { file: self.file.to_string(), path: self.path.clone() }
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, KmdError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(key, "expected a string")),
        }
    }

    fn req_str(&self, key: &str) -> Result<String, KmdError> {
        self.opt_str(key)?.ok_or_else(|| self.err(key, "missing required string"))
    }

    fn name(&self) -> Result<String, KmdError> {
        let n = self.req_str("name")?;
        let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(self.err("name", format!("invalid identifier '{n}'")));
        }
        Ok(n)
    }

    fn bool(&self, key: &str) -> Result<bool, KmdError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.err(key, "expected a boolean")),
        }
    }

    fn type_ref(&self, key: &str) -> Result<TypeRef, KmdError> {
        let s = self.req_str(key)?;
        TypeRef::parse(&s).ok_or_else(|| self.err(key, format!("malformed type reference '{s}'")))
    }

    fn opt_type_ref(&self, key: &str) -> Result<Option<TypeRef>, KmdError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => {
                TypeRef::parse(&s).map(Some).ok_or_else(|| self.err(key, format!("malformed type reference '{s}'")))
            }
        }
    }

    fn array(&self, key: &str) -> Result<Vec<Obj<'a>>, KmdError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Obj::new(self.file, format!("{}[{i}]", self.sub(key)), v))
                .collect(),
            Some(_) => Err(self.err(key, "expected an array")),
        }
    }

    fn string_array(&self, key: &str) -> Result<Vec<String>, KmdError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(KmdError::new(self.file, &format!("{}[{i}]", self.sub(key)), "expected a string")),
                })
                .collect(),
            Some(_) => Err(self.err(key, "expected an array")),
        }
    }
}

fn parse_param(o: &Obj) -> Result<Param, KmdError> {
    Ok(Param {
        name: o.name()?,
        doc: o.opt_str("doc")?.unwrap_or_default(),
        type_ref: o.type_ref("type")?,
        optional: o.bool("optional")?,
        default_value: o.map.get("defaultValue").cloned(),
        origin: o.origin(),
    })
}

fn parse_property(o: &Obj) -> Result<Property, KmdError> {
    Ok(Property {
        name: o.name()?,
        doc: o.opt_str("doc")?.unwrap_or_default(),
        type_ref: o.type_ref("type")?,
        read_only: o.bool("readOnly")?,
        is_final: o.bool("final")?,
        optional: o.bool("optional")?,
        default_value: o.map.get("defaultValue").cloned(),
        origin: o.origin(),
    })
}

fn parse_class(o: &Obj) -> Result<RemoteClass, KmdError> {
    let constructor = match o.map.get("constructor") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let c = Obj::new(o.file, o.sub("constructor"), v)?;
            Some(Constructor {
                doc: c.opt_str("doc")?.unwrap_or_default(),
                params: c.array("params")?.iter().map(parse_param).collect::<Result<_, _>>()?,
            })
        }
    };
    let methods = o
        .array("methods")?
        .iter()
        .map(|m| {
            let ret = match m.map.get("return") {
                None | Some(Value::Null) => None,
                Some(v) => {
                    let r = Obj::new(m.file, m.sub("return"), v)?;
                    Some(Return { doc: r.opt_str("doc")?.unwrap_or_default(), type_ref: r.type_ref("type")? })
                }
            };
            Ok(Method {
                name: m.name()?,
                doc: m.opt_str("doc")?.unwrap_or_default(),
                params: m.array("params")?.iter().map(parse_param).collect::<Result<_, _>>()?,
                ret,
                origin: m.origin(),
            })
        })
        .collect::<Result<_, KmdError>>()?;
    Ok(RemoteClass {
        name: o.name()?,
        doc: o.opt_str("doc")?.unwrap_or_default(),
        extends: o.opt_type_ref("extends")?,
        is_abstract: o.bool("abstract")?,
        constructor,
        properties: o.array("properties")?.iter().map(parse_property).collect::<Result<_, _>>()?,
        methods,
        events: o.string_array("events")?,
        origin: o.origin(),
    })
}

fn parse_complex(o: &Obj) -> Result<ComplexType, KmdError> {
    let format = o.req_str("typeFormat")?;
    let kind = match format.as_str() {
        "ENUM" => {
            let values = o.string_array("values")?;
            if values.is_empty() {
                return Err(o.err("values", "an ENUM needs at least one value"));
            }
            ComplexKind::Enum { values }
        }
        "REGISTER" => ComplexKind::Register {
            extends: o.opt_type_ref("extends")?,
            properties: o.array("properties")?.iter().map(parse_property).collect::<Result<_, _>>()?,
        },
        other => return Err(o.err("typeFormat", format!("unknown typeFormat '{other}' (ENUM or REGISTER)"))),
    };
    Ok(ComplexType { name: o.name()?, doc: o.opt_str("doc")?.unwrap_or_default(), kind, origin: o.origin() })
}

fn parse_event(o: &Obj) -> Result<Event, KmdError> {
    Ok(Event {
        name: o.name()?,
        doc: o.opt_str("doc")?.unwrap_or_default(),
        extends: o.opt_type_ref("extends")?,
        properties: o.array("properties")?.iter().map(parse_property).collect::<Result<_, _>>()?,
        origin: o.origin(),
    })
}

impl KmdFile {
    /// Parses one descriptor file's text. `file` is only used in messages.
    pub fn parse(file: &str, text: &str) -> Result<KmdFile, KmdError> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            KmdError::new(file, "", format!("invalid JSON at line {} column {}: {e}", e.line(), e.column()))
        })?;
        let o = Obj::new(file, String::new(), &v)?;
        let imports = match o.map.get("imports") {
            None | Some(Value::Null) => None,
            Some(_) => Some(
                o.array("imports")?
                    .iter()
                    .map(|i| {
                        Ok(Import {
                            name: i.req_str("name")?,
                            version: i.req_str("version")?,
                            maven_version: i.opt_str("mavenVersion")?,
                            npm_version: i.opt_str("npmVersion")?,
                        })
                    })
                    .collect::<Result<Vec<_>, KmdError>>()?,
            ),
        };
        let code = match o.map.get("code") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err(o.err("code", "expected an object")),
        };
        Ok(KmdFile {
            file: file.to_string(),
            name: o.opt_str("name")?,
            version: o.opt_str("version")?,
            kurento_version: o.opt_str("kurentoVersion")?,
            imports,
            repository: o.opt_str("repository")?,
            code,
            remote_classes: o.array("remoteClasses")?.iter().map(parse_class).collect::<Result<_, _>>()?,
            complex_types: o.array("complexTypes")?.iter().map(parse_complex).collect::<Result<_, _>>()?,
            events: o.array("events")?.iter().map(parse_event).collect::<Result<_, _>>()?,
        })
    }

    pub fn read(path: &Path) -> Result<KmdFile, KmdError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KmdError::new(&name, "", format!("cannot read: {e}")))?;
        KmdFile::parse(&name, &text)
    }
}

/// Fuses the files of one module (spec §12.2): lists are concatenated, the
/// header keys may each appear in exactly one file.
pub fn fuse(files: Vec<KmdFile>) -> Result<Module, KmdError> {
    fn once<T: Clone>(
        files: &[KmdFile],
        key: &str,
        get: impl Fn(&KmdFile) -> Option<T>,
    ) -> Result<Option<T>, KmdError> {
        let mut found: Option<(&str, T)> = None;
        for f in files {
            if let Some(v) = get(f) {
                if let Some((first, _)) = &found {
                    return Err(KmdError::new(&f.file, key, format!("'{key}' is already defined in {first}")));
                }
                found = Some((&f.file, v));
            }
        }
        Ok(found.map(|(_, v)| v))
    }
    let first_file = files.first().map(|f| f.file.clone()).unwrap_or_else(|| "<none>".into());
    let name = once(&files, "name", |f| f.name.clone())?
        .ok_or_else(|| KmdError::new(&first_file, "name", "module name is missing"))?;
    let version = once(&files, "version", |f| f.version.clone())?
        .ok_or_else(|| KmdError::new(&first_file, "version", format!("module '{name}' has no version")))?;
    let kurento_version = once(&files, "kurentoVersion", |f| f.kurento_version.clone())?;
    let imports = once(&files, "imports", |f| f.imports.clone())?.unwrap_or_default();
    let code = once(&files, "code", |f| f.code.clone())?.unwrap_or_default();
    let repository = once(&files, "repository", |f| f.repository.clone())?;
    let mut m = Module {
        name,
        version,
        kurento_version,
        imports,
        repository,
        code,
        remote_classes: vec![],
        complex_types: vec![],
        events: vec![],
        files: files.iter().map(|f| PathBuf::from(&f.file)).collect(),
    };
    for f in files {
        m.remote_classes.extend(f.remote_classes);
        m.complex_types.extend(f.complex_types);
        m.events.extend(f.events);
    }
    Ok(m)
}

/// Loads a module from files or directories (every `*.kmd.json` inside a
/// directory, sorted, non-recursive), fusing them.
pub fn load_module(paths: &[PathBuf]) -> Result<Module, KmdError> {
    let mut files = vec![];
    for p in expand_paths(paths)? {
        files.push(KmdFile::read(&p)?);
    }
    fuse(files)
}

/// Expands directories into their `*.kmd.json` files.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, KmdError> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let name = p.display().to_string();
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| KmdError::new(&name, "", format!("cannot read directory: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".kmd.json"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Groups descriptor files by module name, so a directory holding several
/// split modules can be loaded at once.
pub fn load_modules(paths: &[PathBuf]) -> Result<Vec<Module>, KmdError> {
    let files = expand_paths(paths)?;
    let mut parsed: Vec<KmdFile> = files.iter().map(|p| KmdFile::read(p)).collect::<Result<_, _>>()?;
    // A content file (no name) belongs to the module its file name starts with.
    let mut groups: Vec<(String, Vec<KmdFile>)> = vec![];
    for f in parsed.drain(..) {
        let key = match &f.name {
            Some(n) => n.clone(),
            None => Path::new(&f.file)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('.').next())
                .unwrap_or("")
                .to_string(),
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(f),
            None => groups.push((key, vec![f])),
        }
    }
    groups.into_iter().map(|(_, fs)| fuse(fs)).collect()
}
