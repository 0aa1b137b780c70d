//! Remote objects: the untyped handle every generated proxy wraps, the
//! traits generated proxies implement, and the release-on-drop guard.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::value_of;
use crate::subscription::{Event, EventStream};

/// A media object id as the server issued it
/// (`<uuid>_kurento.MediaPipeline/<uuid>_kurento.PassThrough`, spec §4.1).
/// A newtype so ids are never mixed up with other strings at call sites.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(String);

impl ObjectId {
    pub fn new(id: impl Into<String>) -> Self {
        ObjectId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this object is `other` or one of its descendants; children
    /// ids start with their parent's (spec §4.1).
    pub fn is_within(&self, other: &ObjectId) -> bool {
        self.0 == other.0 || self.0.strip_prefix(other.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl PartialEq<str> for ObjectId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ObjectId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for ObjectId {
    fn from(s: &str) -> Self {
        ObjectId(s.to_string())
    }
}

/// What `describe` reports about an object (spec §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Description {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(rename = "qualifiedType")]
    pub qualified_type: String,
    /// Ancestors' qualified names, nearest first, ending with `kurento.MediaObject`.
    #[serde(default)]
    pub hierarchy: Vec<String>,
}

struct Inner {
    id: ObjectId,
    client: Client,
}

/// An untyped handle on a server object: its id and the client it lives
/// in. Every generated proxy derefs down to one of these, so `id()`,
/// `release()` and the raw `invoke`/`subscribe` escape hatches are
/// available on all of them. Equality and hashing are by id.
///
/// Dropping a handle does nothing on the server: Kurento objects are
/// shared by sessions and outlive connections (spec §4.3). Release them
/// with [`RemoteObject::release`] or guard them with [`ReleaseOnDrop`].
#[derive(Clone)]
pub struct RemoteObject {
    inner: Arc<Inner>,
}

impl RemoteObject {
    pub(crate) fn new(client: Client, id: ObjectId) -> Self {
        RemoteObject { inner: Arc::new(Inner { id, client }) }
    }

    pub fn id(&self) -> &ObjectId {
        &self.inner.id
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// `invoke` by wire name (spec §5.5); returns `result.value`. The typed
    /// proxies are built on this; use it for operations the descriptors do
    /// not know.
    pub async fn invoke(&self, operation: &str, params: Map<String, Value>) -> Result<Value> {
        let mut p = Map::new();
        p.insert("object".into(), Value::String(self.id().to_string()));
        p.insert("operation".into(), Value::String(operation.to_string()));
        if !params.is_empty() {
            p.insert("operationParams".into(), Value::Object(params));
        }
        self.client().request("invoke", p).await.map(value_of)
    }

    /// Releases the object for every session, children included (spec
    /// §4.4), and ends this client's event streams on them. Releasing an
    /// unknown or already released object succeeds.
    pub async fn release(&self) -> Result<()> {
        let mut p = Map::new();
        p.insert("object".into(), Value::String(self.id().to_string()));
        self.client().request("release", p).await?;
        self.client().subscriptions().remove_object_tree(self.id().as_str());
        Ok(())
    }

    /// `describe` (spec §5.4): the object's real class and ancestors.
    pub async fn describe(&self) -> Result<Description> {
        let mut p = Map::new();
        p.insert("object".into(), Value::String(self.id().to_string()));
        let r = self.client().request("describe", p).await?;
        Ok(serde_json::from_value(r)?)
    }

    /// A `T` proxy for this object after checking with `describe` that it
    /// is one; results typed as a base class (`getChildren` gives
    /// `MediaObject`s) are narrowed this way.
    pub async fn cast<T: RemoteClass>(&self) -> Result<T> {
        let d = self.describe().await?;
        if d.qualified_type == T::QUALIFIED_TYPE || d.hierarchy.iter().any(|h| h == T::QUALIFIED_TYPE) {
            Ok(T::from_remote(self.clone()))
        } else {
            Err(Error::WrongType { id: self.id().to_string(), actual: d.qualified_type, wanted: T::QUALIFIED_TYPE })
        }
    }

    /// Subscribes to event `E` without the compile-time check of the
    /// generated `on::<E>()` (the server still rejects undeclared events
    /// with 40106).
    pub async fn subscribe<E: Event>(&self) -> Result<EventStream<E>> {
        self.subscribe_as(E::NAME).await
    }

    /// Subscribes to an event by wire name; items are the raw `data`
    /// objects (for events of modules this crate was not generated for).
    pub async fn subscribe_raw(&self, event_type: &str) -> Result<EventStream<Value>> {
        self.subscribe_as(event_type).await
    }

    async fn subscribe_as<E>(&self, event_type: &str) -> Result<EventStream<E>> {
        // Registered before asking, so an event sent right after the
        // server's answer cannot slip past.
        let (local, rx) = self.client().subscriptions().add(self.id().as_str(), event_type);
        let mut p = Map::new();
        p.insert("object".into(), Value::String(self.id().to_string()));
        p.insert("type".into(), Value::String(event_type.to_string()));
        match self.client().request("subscribe", p).await {
            Ok(r) => {
                let subscription = match value_of(r) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                Ok(EventStream::new(
                    rx,
                    self.client().clone(),
                    self.id().clone(),
                    event_type.to_string(),
                    local,
                    subscription,
                ))
            }
            Err(e) => {
                self.client().subscriptions().remove(self.id().as_str(), event_type, local);
                Err(e)
            }
        }
    }
}

impl PartialEq for RemoteObject {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for RemoteObject {}

impl std::hash::Hash for RemoteObject {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RemoteObject").field(&self.inner.id).finish()
    }
}

/// Implemented by every generated proxy.
pub trait RemoteClass: Clone + Send + Sync + fmt::Debug + Serialize + 'static {
    /// Short class name (`WebRtcEndpoint`).
    const TYPE: &'static str;
    /// Qualified name (`kurento.WebRtcEndpoint`, spec §4.1).
    const QUALIFIED_TYPE: &'static str;
    /// Ancestors' qualified names, nearest first (as `describe` reports them).
    const HIERARCHY: &'static [&'static str];

    /// Wraps a handle without checking its class (see [`RemoteObject::cast`]).
    fn from_remote(remote: RemoteObject) -> Self;

    fn remote(&self) -> &RemoteObject;

    /// Guards the object so it is released when the guard drops.
    fn release_on_drop(self) -> ReleaseOnDrop<Self> {
        ReleaseOnDrop::new(self)
    }
}

/// Marker for classes created without a parent (`MediaPipeline`):
/// `client.create::<MediaPipeline>(..)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoParent;

/// A generated `<Class>Params` struct: `constructorParams` minus the
/// parent, which `create` fills in.
pub trait ConstructorParams: Send + Sync {
    fn to_params(&self) -> Result<Map<String, Value>>;
}

/// A class with a factory on the server (spec §4.2).
pub trait Creatable: RemoteClass {
    type Params: ConstructorParams;
    /// The proxy type that creates it (`MediaPipeline` for elements, `Hub`
    /// for `HubPort`), or [`NoParent`].
    type Parent;
    /// The constructor parameter the parent's id goes into (`mediaPipeline`).
    const PARENT_PARAM: Option<&'static str>;
}

/// Sends `create` (spec §5.3) with `constructorParams` = params + parent.
pub(crate) async fn create<T: Creatable>(
    client: &Client,
    parent: Option<&RemoteObject>,
    params: &T::Params,
) -> Result<T> {
    let mut ctor = params.to_params()?;
    if let (Some(key), Some(parent)) = (T::PARENT_PARAM, parent) {
        ctor.insert(key.into(), Value::String(parent.id().to_string()));
    }
    let mut p = Map::new();
    p.insert("type".into(), Value::String(T::QUALIFIED_TYPE.to_string()));
    p.insert("constructorParams".into(), Value::Object(ctor));
    // Sent by the official clients; ignored by the server.
    p.insert("properties".into(), Value::Object(Map::new()));
    let r = client.request("create", p).await?;
    match value_of(r) {
        Value::String(id) => Ok(T::from_remote(RemoteObject::new(client.clone(), ObjectId(id)))),
        other => Err(Error::Protocol(format!("create {} answered value {other}", T::TYPE))),
    }
}

/// Releases the wrapped object when dropped (spec §4.4), for objects whose
/// lifetime should follow a Rust scope. The release is queued on the
/// client's connection without waiting for the answer; call
/// [`ReleaseOnDrop::release`] to wait and see errors, or
/// [`ReleaseOnDrop::into_inner`] to keep the object.
pub struct ReleaseOnDrop<T: RemoteClass> {
    object: Option<T>,
}

impl<T: RemoteClass> ReleaseOnDrop<T> {
    pub fn new(object: T) -> Self {
        ReleaseOnDrop { object: Some(object) }
    }

    /// Disarms the guard.
    pub fn into_inner(mut self) -> T {
        self.object.take().expect("present until dropped")
    }

    /// Releases now and waits for the answer.
    pub async fn release(mut self) -> Result<()> {
        let o = self.object.take().expect("present until dropped");
        o.remote().release().await
    }
}

impl<T: RemoteClass> Deref for ReleaseOnDrop<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.object.as_ref().expect("present until dropped")
    }
}

impl<T: RemoteClass> Drop for ReleaseOnDrop<T> {
    fn drop(&mut self) {
        if let Some(o) = self.object.take() {
            let remote = o.remote();
            tracing::debug!(object = %remote.id(), "released on drop");
            let mut p = Map::new();
            p.insert("object".into(), Value::String(remote.id().to_string()));
            remote.client().send_detached("release", p);
            remote.client().subscriptions().remove_object_tree(remote.id().as_str());
        }
    }
}

impl<T: RemoteClass> fmt::Debug for ReleaseOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReleaseOnDrop").field(&self.object).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_within_their_parent() {
        let p = ObjectId::new("P_kurento.MediaPipeline");
        assert!(ObjectId::new("P_kurento.MediaPipeline/E_kurento.PassThrough").is_within(&p));
        assert!(p.is_within(&p));
        assert!(!ObjectId::new("P_kurento.MediaPipelineX").is_within(&p));
    }
}
