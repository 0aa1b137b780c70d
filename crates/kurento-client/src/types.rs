//! Support for generated complex types (spec §6).

use std::ops::Deref;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A REGISTER complex type: what it writes as `__module__`/`__type__`.
pub trait ComplexType {
    const MODULE: &'static str;
    const TYPE: &'static str;
}

/// A value declared as a type that has subtypes (the `Stats` tree): the
/// server sends the concrete subtype, named by `__type__`, with the fields
/// of all its ancestors (spec §6). The base view is decoded eagerly; the
/// concrete one on request with [`Polymorphic::downcast`], which also works
/// for subtypes from modules generated later.
#[derive(Debug, Clone, PartialEq)]
pub struct Polymorphic<T> {
    base: T,
    raw: Value,
}

impl<T> Polymorphic<T> {
    /// The concrete `__type__` (`RTCInboundRTPStreamStats`), if sent.
    pub fn type_name(&self) -> Option<&str> {
        self.raw.get("__type__").and_then(Value::as_str)
    }

    /// The `__module__` of the concrete type, if sent.
    pub fn module_name(&self) -> Option<&str> {
        self.raw.get("__module__").and_then(Value::as_str)
    }

    /// Whether the concrete type is `U`.
    pub fn is<U: ComplexType>(&self) -> bool {
        self.type_name() == Some(U::TYPE) && self.module_name().is_none_or(|m| m == U::MODULE)
    }

    /// The value as its concrete type `U`, if it is one.
    pub fn downcast<U: ComplexType + DeserializeOwned>(&self) -> Option<U> {
        if !self.is::<U>() {
            return None;
        }
        serde_json::from_value(self.raw.clone()).ok()
    }

    /// The JSON as received.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    pub fn into_base(self) -> T {
        self.base
    }
}

impl<T: Serialize> Polymorphic<T> {
    /// Wraps a value of the base type itself (for sending).
    pub fn new(base: T) -> serde_json::Result<Self> {
        let raw = serde_json::to_value(&base)?;
        Ok(Polymorphic { base, raw })
    }
}

impl<T> Deref for Polymorphic<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.base
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Polymorphic<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        let base = T::deserialize(&raw).map_err(D::Error::custom)?;
        Ok(Polymorphic { base, raw })
    }
}

impl<T> Serialize for Polymorphic<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}
