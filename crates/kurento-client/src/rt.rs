//! The runtime generated code is written against (`ClientPaths::runtime`).
//! Applications do not need it; module crates generated with
//! `module_creator::rust_client::ClientBuilder` name it as
//! `::kurento_client::rt`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use serde;
pub use serde_json;
pub use serde_json::Value;

pub use crate::client::Client;
pub use crate::error::{Error, Result};
pub use crate::object::{ConstructorParams, Creatable, NoParent, ObjectId, RemoteClass, RemoteObject};
pub use crate::subscription::{Emits, Event, EventStream};
pub use crate::types::{ComplexType, Polymorphic};

/// `params` / `constructorParams` objects.
pub type Map = serde_json::Map<String, Value>;

/// The future of an awaited call builder.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value> {
    Ok(serde_json::to_value(v)?)
}

pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

fn id_of(v: Value) -> Result<ObjectId> {
    match v {
        Value::String(s) => Ok(ObjectId::new(s)),
        other => Err(Error::Protocol(format!("expected an object id, got {other}"))),
    }
}

/// A result of remote-class type: an id, or `null` for none (spec §6).
pub fn decode_object<T: RemoteClass>(client: &Client, v: Value) -> Result<Option<T>> {
    match v {
        Value::Null => Ok(None),
        v => Ok(Some(client.object::<T>(id_of(v)?))),
    }
}

pub fn decode_object_list<T: RemoteClass>(client: &Client, v: Value) -> Result<Vec<T>> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items.into_iter().map(|i| Ok(client.object::<T>(id_of(i)?))).collect(),
        other => Err(Error::Protocol(format!("expected a list of object ids, got {other}"))),
    }
}

pub fn decode_object_map<T: RemoteClass>(client: &Client, v: Value) -> Result<BTreeMap<String, T>> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(items) => items.into_iter().map(|(k, i)| Ok((k, client.object::<T>(id_of(i)?)))).collect(),
        other => Err(Error::Protocol(format!("expected a map of object ids, got {other}"))),
    }
}

/// `create` of a `T` whose parent is `parent` (spec §5.3).
pub async fn create_child<T: Creatable>(parent: &RemoteObject, params: &T::Params) -> Result<T> {
    crate::object::create::<T>(parent.client(), Some(parent), params).await
}
