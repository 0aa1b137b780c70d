//! State every media object has (spec §4, §10.1) and event raising (§7).

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kms_jsonrpc::session::Notifier;
use kms_jsonrpc::{SessionId, TenantId};
use serde_json::{Map, Value};

use crate::config::ObjectLimits;
use crate::element::ElementCore;
use crate::error::{Error, Result};
use crate::rt::Event;

/// A media object id (`<path>_<qualifiedType>`, spec §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(String);

impl ObjectId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ObjectId {
    fn from(s: &str) -> Self {
        ObjectId(s.to_string())
    }
}

impl From<String> for ObjectId {
    fn from(s: String) -> Self {
        ObjectId(s)
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hand-written interface every object implementation provides; the
/// generated root trait (`MediaObject`) extends it, so any object reached
/// through a parameter exposes its base state.
pub trait RemoteObject: Send + Sync + 'static {
    fn object(&self) -> &ObjectBase;

    /// The media-element core, for elements (used by `connect`).
    fn element(&self) -> Option<&ElementCore> {
        None
    }

    /// The pipeline internals, for `MediaPipeline` objects (used by
    /// element constructors).
    fn pipeline(&self) -> Option<&std::sync::Arc<crate::pipeline_shared::PipelineShared>> {
        None
    }

    /// The hub internals, for hubs (used by `HubPort`).
    fn hub(&self) -> Option<&crate::hub::HubCore> {
        None
    }

    /// Teardown when the object is released (spec §4.4): after this the
    /// object is unreachable. Default: nothing beyond `Drop`.
    fn release(&self) {}

    /// States `/metrics` counts objects by, e.g. `("ice", "CONNECTED")`.
    /// Called at scrape time, never on the media path.
    fn metric_states(&self) -> Vec<crate::metrics::MetricState> {
        Vec::new()
    }
}

/// One session's subscriptions to one event type.
struct SessionSubscriptions {
    /// The session's tenant, to deliver tenant-scoped events (the shared
    /// ServerManager's `ObjectCreated`) only to their tenant.
    tenant: TenantId,
    ids: HashSet<String>,
}

/// event type → session → subscription ids.
type Subscriptions = HashMap<String, HashMap<SessionId, SessionSubscriptions>>;

/// Id, name, tags, parent and event subscriptions of one object. Cheap to
/// clone: streaming-thread callbacks keep a clone to raise events.
#[derive(Clone)]
pub struct ObjectBase(Arc<ObjectData>);

impl std::ops::Deref for ObjectBase {
    type Target = ObjectData;
    fn deref(&self) -> &ObjectData {
        &self.0
    }
}

/// The shared state behind an [`ObjectBase`].
pub struct ObjectData {
    id: ObjectId,
    parent: Option<ObjectId>,
    pipeline: Option<ObjectId>,
    creation_time: i64,
    name: Mutex<Option<String>>,
    tags: Mutex<Vec<(String, String)>>,
    send_tags_in_events: AtomicBool,
    subscriptions: Mutex<Subscriptions>,
    /// Fast path: most raised events have no subscriber.
    has_subscriptions: AtomicBool,
    notifier: Notifier,
    limits: Arc<ObjectLimits>,
    /// Used by every tenant (the ServerManager): growth limits count per
    /// session, so that no client can use up another's share.
    shared: bool,
}

impl std::fmt::Debug for ObjectData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBase").field("id", &self.id).finish()
    }
}

/// What an object is created with besides its place in the tree.
pub(crate) struct ObjectEnv {
    pub notifier: Notifier,
    pub limits: Arc<ObjectLimits>,
    pub shared: bool,
}

impl ObjectBase {
    pub(crate) fn new(id: ObjectId, parent: Option<ObjectId>, pipeline: Option<ObjectId>, env: ObjectEnv) -> Self {
        ObjectBase(Arc::new(ObjectData::new(id, parent, pipeline, env)))
    }
}

impl ObjectData {
    fn new(id: ObjectId, parent: Option<ObjectId>, pipeline: Option<ObjectId>, env: ObjectEnv) -> Self {
        let creation_time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        ObjectData {
            id,
            parent,
            pipeline,
            creation_time,
            name: Mutex::new(None),
            tags: Mutex::new(vec![]),
            send_tags_in_events: AtomicBool::new(false),
            subscriptions: Mutex::new(HashMap::new()),
            has_subscriptions: AtomicBool::new(false),
            notifier: env.notifier,
            limits: env.limits,
            shared: env.shared,
        }
    }

    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    pub fn parent(&self) -> Option<&ObjectId> {
        self.parent.as_ref()
    }

    /// The root pipeline (itself for a pipeline).
    pub fn pipeline(&self) -> Option<&ObjectId> {
        self.pipeline.as_ref()
    }

    pub fn creation_time(&self) -> i64 {
        self.creation_time
    }

    /// `name` defaults to the id (spec §4.1).
    pub fn name(&self) -> String {
        self.name.lock().clone().unwrap_or_else(|| self.id.0.clone())
    }

    pub fn set_name(&self, n: String) {
        *self.name.lock() = Some(n);
    }

    /// Adds or replaces a tag, within `maxTagBytes` and `maxTagsPerObject`.
    pub fn add_tag(&self, key: String, value: String) -> Result<()> {
        let max_bytes = self.limits.max_tag_bytes;
        if max_bytes > 0 && key.len() + value.len() > max_bytes {
            return Err(Error::NotEnoughResources(format!(
                "Tag of {} bytes exceeds the limit of {max_bytes} bytes (maxTagBytes)",
                key.len() + value.len()
            )));
        }
        let mut tags = self.tags.lock();
        match tags.iter_mut().find(|(k, _)| *k == key) {
            Some(t) => t.1 = value,
            None => {
                let max = self.limits.max_tags_per_object;
                if max > 0 && tags.len() >= max {
                    return Err(Error::NotEnoughResources(format!(
                        "Reached tags-per-object limit: {max} (maxTagsPerObject)"
                    )));
                }
                tags.push((key, value))
            }
        }
        Ok(())
    }

    pub fn remove_tag(&self, key: &str) {
        self.tags.lock().retain(|(k, _)| k != key);
    }

    pub fn tag(&self, key: &str) -> Option<String> {
        self.tags.lock().iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    pub fn tags(&self) -> Vec<(String, String)> {
        self.tags.lock().clone()
    }

    pub fn send_tags_in_events(&self) -> bool {
        self.send_tags_in_events.load(Ordering::Relaxed)
    }

    pub fn set_send_tags_in_events(&self, v: bool) {
        self.send_tags_in_events.store(v, Ordering::Relaxed);
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Used by every tenant (the ServerManager).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// spec §5.6: one delivery channel per (session, object, event type),
    /// whatever the number of subscription ids. At most
    /// `maxSubscriptionsPerObject` ids, all sessions together (per session
    /// on a shared object).
    pub fn subscribe(&self, session: &SessionId, tenant: &TenantId, event: &str) -> Result<String> {
        let mut subs = self.subscriptions.lock();
        let max = self.limits.max_subscriptions_per_object;
        if max > 0 {
            let counted = subs
                .values()
                .flat_map(|by_session| by_session.iter())
                .filter(|(s, _)| !self.shared || *s == session)
                .map(|(_, e)| e.ids.len())
                .sum::<usize>();
            if counted >= max {
                return Err(Error::NotEnoughResources(format!(
                    "Reached subscriptions-per-object limit: {max} (maxSubscriptionsPerObject)"
                )));
            }
        }
        let sub = uuid::Uuid::new_v4().to_string();
        subs.entry(event.to_string())
            .or_default()
            .entry(session.clone())
            .or_insert_with(|| SessionSubscriptions { tenant: tenant.clone(), ids: HashSet::new() })
            .ids
            .insert(sub.clone());
        self.has_subscriptions.store(true, Ordering::Release);
        Ok(sub)
    }

    pub fn unsubscribe(&self, session: &SessionId, subscription: &str) {
        let mut subs = self.subscriptions.lock();
        for by_session in subs.values_mut() {
            if let Some(e) = by_session.get_mut(session) {
                e.ids.remove(subscription);
                if e.ids.is_empty() {
                    by_session.remove(session);
                }
            }
        }
        subs.retain(|_, s| !s.is_empty());
        self.has_subscriptions.store(!subs.is_empty(), Ordering::Release);
    }

    /// Stops delivery to a session (object unref'd from it, session gone).
    pub fn forget_session(&self, session: &SessionId) {
        let mut subs = self.subscriptions.lock();
        for by_session in subs.values_mut() {
            by_session.remove(session);
        }
        subs.retain(|_, s| !s.is_empty());
        self.has_subscriptions.store(!subs.is_empty(), Ordering::Release);
    }

    pub fn is_subscribed(&self, event: &str) -> bool {
        self.has_subscriptions.load(Ordering::Acquire) && self.subscriptions.lock().contains_key(event)
    }

    /// Raises an event: serialized once, delivered to every subscribed
    /// session's current connection (spec §7.1). Never blocks, so it may be
    /// called from GStreamer streaming threads.
    pub fn raise<E: Event>(&self, event: &E) {
        self.raise_to(event, None);
    }

    /// Like [`ObjectData::raise`], delivered only to sessions of `tenant`:
    /// events of a shared object about one tenant's objects.
    pub fn raise_for_tenant<E: Event>(&self, event: &E, tenant: &TenantId) {
        self.raise_to(event, Some(tenant));
    }

    fn raise_to<E: Event>(&self, event: &E, tenant: Option<&TenantId>) {
        if !self.has_subscriptions.load(Ordering::Acquire) {
            return;
        }
        let sessions: Vec<SessionId> = {
            let subs = self.subscriptions.lock();
            match subs.get(E::NAME) {
                Some(s) => {
                    s.iter().filter(|(_, e)| tenant.is_none_or(|t| e.tenant == *t)).map(|(k, _)| k.clone()).collect()
                }
                None => return,
            }
        };
        if sessions.is_empty() {
            return;
        }
        let data = self.event_data(event);
        for s in &sessions {
            self.notifier.send_event(s, self.id.as_str(), E::NAME, data.clone());
        }
    }

    fn event_data<E: Event>(&self, event: &E) -> Value {
        let mut o = Map::new();
        event.write_fields(&mut o);
        o.insert("source".into(), Value::String(self.id.0.clone()));
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        // spec §7.1: timestampMillis is a string.
        o.insert("timestampMillis".into(), Value::String(ts.to_string()));
        let tags: Vec<Value> = if self.send_tags_in_events() {
            self.tags()
                .into_iter()
                .map(|(k, v)| serde_json::json!({"__module__": "kurento", "__type__": "Tag", "key": k, "value": v}))
                .collect()
        } else {
            vec![]
        };
        o.insert("tags".into(), Value::Array(tags));
        if E::IS_MEDIA {
            o.insert("type".into(), Value::String(E::NAME.to_string()));
        }
        Value::Object(o)
    }
}
