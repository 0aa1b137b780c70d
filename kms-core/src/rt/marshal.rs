//! Value marshalling rules of spec §6: lenient input, exact output.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{Error, Result, What};
use crate::object::ObjectId;
use crate::registry::ObjectHandle;

/// Decodes a kmd-typed value.
pub trait FromJson: Sized {
    /// The word used in "should be a <kind>" messages.
    const KIND: &'static str;
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self>;
}

/// Encodes a kmd-typed value.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

impl FromJson for String {
    const KIND: &'static str = "string";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        match v {
            Value::String(s) => Ok(s.clone()),
            // spec §6: be lenient, stringify scalars.
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(Error::wrong_type(name, what, Self::KIND)),
        }
    }
}

impl FromJson for bool {
    const KIND: &'static str = "boolean";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
            _ => Err(Error::wrong_type(name, what, Self::KIND)),
        }
    }
}

fn integral(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64))
        }
        Value::Bool(b) => Some(*b as i64),
        // Numeric strings (upstream descriptors have defaults like "320").
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl FromJson for i32 {
    const KIND: &'static str = "integer";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        integral(v).and_then(|i| i32::try_from(i).ok()).ok_or_else(|| Error::wrong_type(name, what, Self::KIND))
    }
}

impl FromJson for i64 {
    const KIND: &'static str = "int64";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        integral(v).ok_or_else(|| Error::wrong_type(name, what, Self::KIND))
    }
}

impl FromJson for f64 {
    const KIND: &'static str = "double";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        number(v).ok_or_else(|| Error::wrong_type(name, what, Self::KIND))
    }
}

impl FromJson for f32 {
    const KIND: &'static str = "double";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        number(v).map(|f| f as f32).ok_or_else(|| Error::wrong_type(name, what, Self::KIND))
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    const KIND: &'static str = "list";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        match v {
            Value::Array(items) => items.iter().map(|i| T::from_json(i, name, what)).collect(),
            _ => Err(Error::wrong_type(name, what, Self::KIND)),
        }
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    const KIND: &'static str = "map";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        match v {
            Value::Object(m) => m.iter().map(|(k, i)| Ok((k.clone(), T::from_json(i, name, what)?))).collect(),
            _ => Err(Error::wrong_type(name, what, Self::KIND)),
        }
    }
}

impl FromJson for ObjectId {
    const KIND: &'static str = "string";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        match v {
            Value::String(s) => Ok(ObjectId::from(s.as_str())),
            _ => Err(Error::wrong_type(name, what, Self::KIND)),
        }
    }
}

/// A value of a complex type that has subtypes (e.g. `Stats`): kept as its
/// already-serialized JSON so subtypes from any module can be returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Polymorphic(pub Value);

impl Polymorphic {
    pub fn of(v: &impl ToJson) -> Self {
        Polymorphic(v.to_json())
    }
}

impl FromJson for Polymorphic {
    const KIND: &'static str = "object";
    fn from_json(v: &Value, name: &str, what: What) -> Result<Self> {
        match v {
            Value::Object(_) => Ok(Polymorphic(v.clone())),
            _ => Err(Error::wrong_type(name, what, Self::KIND)),
        }
    }
}

impl ToJson for Polymorphic {
    fn to_json(&self) -> Value {
        self.0.clone()
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}
impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}
impl ToJson for i32 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}
impl ToJson for i64 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}
impl ToJson for f32 {
    fn to_json(&self) -> Value {
        // Through the shortest decimal form, so 0.1f32 is sent as 0.1.
        let f: f64 = self.to_string().parse().unwrap_or(*self as f64);
        serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    }
}
impl ToJson for f64 {
    fn to_json(&self) -> Value {
        serde_json::Number::from_f64(*self).map(Value::Number).unwrap_or(Value::Null)
    }
}
impl ToJson for () {
    fn to_json(&self) -> Value {
        Value::Null
    }
}
impl ToJson for ObjectId {
    fn to_json(&self) -> Value {
        Value::String(self.as_str().to_string())
    }
}
impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}
impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }
}
impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map(ToJson::to_json).unwrap_or(Value::Null)
    }
}

/// Looks objects up by id for parameters of remote-class type.
pub trait Resolver {
    fn resolve(&self, id: &str) -> Result<ObjectHandle>;
}

/// `operationParams` / `constructorParams` of one call.
pub struct Params<'a> {
    map: Option<&'a Map<String, Value>>,
    kind: &'static str,
    resolver: &'a dyn Resolver,
}

impl<'a> Params<'a> {
    pub fn new(map: Option<&'a Map<String, Value>>, kind: &'static str, resolver: &'a dyn Resolver) -> Self {
        Params { map, kind, resolver }
    }

    /// Number of keys, for the 40008 message.
    pub fn len(&self) -> usize {
        self.map.map_or(0, Map::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// spec §6: a method with required params needs the params object.
    pub fn require(&self) -> Result<()> {
        match self.map {
            Some(_) => Ok(()),
            None => Err(Error::marshall(format!("'{}' is required", self.kind))),
        }
    }

    fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(name)).filter(|v| !v.is_null())
    }

    pub fn get<T: FromJson>(&self, name: &str) -> Result<T> {
        match self.raw(name) {
            Some(v) => T::from_json(v, name, What::Param),
            None => Err(Error::wrong_type(name, What::Param, T::KIND)),
        }
    }

    pub fn opt<T: FromJson>(&self, name: &str) -> Result<Option<T>> {
        self.raw(name).map(|v| T::from_json(v, name, What::Param)).transpose()
    }

    /// Absent → the kmd `defaultValue` (JSON text).
    pub fn or_default<T: FromJson>(&self, name: &str, default_json: &str) -> Result<T> {
        match self.raw(name) {
            Some(v) => T::from_json(v, name, What::Param),
            None => {
                let d: Value = serde_json::from_str(default_json).unwrap_or(Value::Null);
                T::from_json(&d, name, What::Param)
            }
        }
    }

    fn cast<U: ?Sized + 'static>(&self, v: &Value, name: &str, qualified: &str) -> Result<Arc<U>> {
        let Value::String(id) = v else {
            return Err(Error::wrong_type(name, What::Param, "string"));
        };
        let h = self.resolver.resolve(id)?;
        h.cast::<U>(qualified).ok_or_else(|| {
            let want = qualified.rsplit('.').next().unwrap_or(qualified);
            Error::marshall(format!("'{name}' parameter should be a {want}, but '{id}' is a {}", h.class.name))
        })
    }

    pub fn object<U: ?Sized + 'static>(&self, name: &str, qualified: &str) -> Result<Arc<U>> {
        match self.raw(name) {
            Some(v) => self.cast(v, name, qualified),
            None => Err(Error::wrong_type(name, What::Param, "string")),
        }
    }

    pub fn opt_object<U: ?Sized + 'static>(&self, name: &str, qualified: &str) -> Result<Option<Arc<U>>> {
        self.raw(name).map(|v| self.cast(v, name, qualified)).transpose()
    }

    pub fn object_list<U: ?Sized + 'static>(&self, name: &str, qualified: &str) -> Result<Vec<Arc<U>>> {
        match self.raw(name) {
            Some(Value::Array(items)) => items.iter().map(|v| self.cast(v, name, qualified)).collect(),
            _ => Err(Error::wrong_type(name, What::Param, "list")),
        }
    }

    pub fn opt_object_list<U: ?Sized + 'static>(&self, name: &str, qualified: &str) -> Result<Option<Vec<Arc<U>>>> {
        match self.raw(name) {
            None => Ok(None),
            Some(_) => self.object_list(name, qualified).map(Some),
        }
    }

    pub fn object_map<U: ?Sized + 'static>(&self, name: &str, qualified: &str) -> Result<BTreeMap<String, Arc<U>>> {
        match self.raw(name) {
            Some(Value::Object(m)) => m.iter().map(|(k, v)| Ok((k.clone(), self.cast(v, name, qualified)?))).collect(),
            _ => Err(Error::wrong_type(name, What::Param, "map")),
        }
    }

    pub fn opt_object_map<U: ?Sized + 'static>(
        &self,
        name: &str,
        qualified: &str,
    ) -> Result<Option<BTreeMap<String, Arc<U>>>> {
        match self.raw(name) {
            None => Ok(None),
            Some(_) => self.object_map(name, qualified).map(Some),
        }
    }
}

/// The fields of a REGISTER complex value being decoded.
pub struct ComplexFields<'a> {
    map: &'a Map<String, Value>,
}

/// Checks that `v` is an object (spec §6: `__module__`/`__type__` optional,
/// unknown fields ignored).
pub fn complex_object<'a>(
    v: &'a Value,
    name: &str,
    what: What,
    _module: &str,
    _type_name: &str,
) -> Result<ComplexFields<'a>> {
    match v {
        Value::Object(map) => Ok(ComplexFields { map }),
        _ => Err(Error::wrong_type(name, what, "object")),
    }
}

impl<'a> ComplexFields<'a> {
    fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn get<T: FromJson>(&self, name: &str) -> Result<T> {
        match self.raw(name) {
            Some(v) => T::from_json(v, name, What::Property),
            None => Err(Error::wrong_type(name, What::Property, T::KIND)),
        }
    }

    pub fn opt<T: FromJson>(&self, name: &str) -> Result<Option<T>> {
        self.raw(name).map(|v| T::from_json(v, name, What::Property)).transpose()
    }

    pub fn or_default<T: FromJson>(&self, name: &str, default_json: &str) -> Result<T> {
        match self.raw(name) {
            Some(v) => T::from_json(v, name, What::Property),
            None => {
                let d: Value = serde_json::from_str(default_json).unwrap_or(Value::Null);
                T::from_json(&d, name, What::Property)
            }
        }
    }
}
