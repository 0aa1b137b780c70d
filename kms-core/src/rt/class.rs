//! Class and module descriptors produced by generated code.

use std::any::Any;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Ctx, Params, RemoteObject};
use crate::error::{Error, Result};

pub type AnyObject = Arc<dyn Any + Send + Sync>;
/// Decodes constructor params and builds the object.
pub type FactoryFn = fn(&Ctx, &Params<'_>) -> Result<AnyObject>;
/// Runs one `invoke` operation on an object of this class.
pub type InvokeFn = fn(&(dyn Any + Send + Sync), &Ctx, &str, &Params<'_>) -> Result<Value>;
pub type AsRemoteFn = fn(AnyObject) -> Arc<dyn RemoteObject>;
/// Turns the object into `Arc<dyn Trait>` of one of its classes, boxed.
pub type CastFn = fn(AnyObject) -> Box<dyn Any>;

/// Everything the registry needs about one remote class.
pub struct ClassInfo {
    pub name: &'static str,
    pub qualified_name: &'static str,
    pub module: &'static str,
    /// Qualified ancestors, nearest first (spec §4.2).
    pub hierarchy: &'static [&'static str],
    /// Events the class may emit, inherited ones included (spec §5.6).
    pub events: &'static [&'static str],
    pub factory: Option<FactoryFn>,
    pub invoke: InvokeFn,
    pub as_remote: AsRemoteFn,
    /// One entry per class in the chain (itself included).
    pub casts: Vec<(&'static str, CastFn)>,
}

impl std::fmt::Debug for ClassInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassInfo").field("qualified_name", &self.qualified_name).finish()
    }
}

impl ClassInfo {
    pub fn is_a(&self, qualified: &str) -> bool {
        self.qualified_name == qualified || self.hierarchy.contains(&qualified)
    }
}

/// A module as registered in the server (spec §12.4).
#[derive(Debug)]
pub struct ModuleDescriptor {
    pub name: &'static str,
    pub version: &'static str,
    pub namespace: &'static str,
    pub generation_time: &'static str,
    /// Fused descriptor JSON, returned by `getKmd`.
    pub kmd: &'static str,
    pub complex_types: &'static [&'static str],
    pub classes: Vec<ClassInfo>,
}

/// A typed event (generated per kmd event).
pub trait Event {
    const NAME: &'static str;
    /// Derives from `Media`, so `data.type` carries the event name.
    const IS_MEDIA: bool;
    fn write_fields(&self, o: &mut Map<String, Value>);
}

pub fn downcast_ref<T: 'static>(any: &(dyn Any + Send + Sync)) -> Result<&T> {
    any.downcast_ref::<T>().ok_or_else(|| Error::Unexpected("object has an unexpected implementation type".into()))
}

/// Only called by generated code with the type the object was built with.
pub fn downcast_arc<T: Send + Sync + 'static>(any: AnyObject) -> Arc<T> {
    match any.downcast::<T>() {
        Ok(t) => t,
        Err(_) => unreachable!("class descriptor used with a foreign implementation type"),
    }
}
