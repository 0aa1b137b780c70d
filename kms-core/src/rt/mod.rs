//! The runtime that generated module code (module-creator) is written
//! against: value marshalling (spec §6), class and module descriptors, and
//! the object/event interfaces. Third-party modules use exactly this surface.

mod class;
mod marshal;

pub use serde_json::Value;

/// A JSON object.
pub type Map = serde_json::Map<String, Value>;

pub use crate::error::{Error, Result, What};
pub use crate::object::{ObjectBase, ObjectId, RemoteObject};
pub use crate::registry::{Ctx, ObjectHandle};
pub use class::{
    AsRemoteFn, CastFn, ClassInfo, Event, FactoryFn, InvokeFn, ModuleDescriptor, downcast_arc, downcast_ref,
};
pub use marshal::{ComplexFields, FromJson, Params, Polymorphic, Resolver, ToJson, complex_object};
