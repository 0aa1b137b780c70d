//! The MediaObject registry: ids, parent/children, ownership by session with
//! cascading release (spec §4), tenants, and the [`MediaBackend`] the
//! protocol layer calls.
//!
//! Tenants: every object belongs to the tenant whose session created it.
//! Every lookup on behalf of a caller, including object ids passed as
//! parameters, goes through the caller's tenant: another tenant's objects
//! are "not found" (40101). Only the ServerManager is shared.

use parking_lot::Mutex;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kms_jsonrpc::session::Notifier;
use kms_jsonrpc::{Caller, Deferred, Description, Invoked, MediaBackend, RpcError, SessionId, TenantId};
use serde_json::{Map, Value};

use crate::api::core::events::{ObjectCreated, ObjectDestroyed};
use crate::config::{CoreConfig, ObjectLimits};
use crate::error::{Error, Result};
use crate::object::{ObjectBase, ObjectEnv, ObjectId, RemoteObject};
use crate::rt::{ClassInfo, ModuleDescriptor, Params, Resolver, ToJson};
use crate::server_manager::{GET_USED_CPU, SERVER_MANAGER_ID, ServerManagerImpl, start_used_cpu};

/// Operations known to hold their thread waiting: on webrtcbin promises
/// (negotiation, stats), on a timer (`getUsedCpu` inside a transaction), on
/// end-of-stream (`stopAndWait`). They run under the transport's slow-call
/// budget and `maxSlowCallsPerSession`.
const SLOW_OPERATIONS: &[&str] =
    &[GET_USED_CPU, "processOffer", "processAnswer", "generateOffer", "getStats", "stopAndWait"];

/// MediaObject setters. On the shared ServerManager their effect reaches
/// every tenant (tags travel in its events), so only admin tenants may.
const SHARED_STATE_SETTERS: &[&str] = &["setName", "addTag", "removeTag", "setSendTagsInEvents"];

/// A live object: its implementation (type-erased) and class.
#[derive(Clone)]
pub struct ObjectHandle {
    pub any: Arc<dyn Any + Send + Sync>,
    pub remote: Arc<dyn RemoteObject>,
    pub class: Arc<ClassInfo>,
}

impl ObjectHandle {
    pub fn id(&self) -> &ObjectId {
        self.remote.object().id()
    }

    /// `Arc<dyn Trait>` of the class `qualified` if the object is one.
    pub fn cast<U: ?Sized + 'static>(&self, qualified: &str) -> Option<Arc<U>> {
        let (_, f) = self.class.casts.iter().find(|(q, _)| *q == qualified)?;
        f(self.any.clone()).downcast::<Arc<U>>().ok().map(|b| *b)
    }
}

struct Entry {
    handle: ObjectHandle,
    owners: HashSet<SessionId>,
    children: Vec<ObjectId>,
    tenant: TenantId,
}

#[derive(Default)]
struct State {
    objects: HashMap<ObjectId, Entry>,
    by_session: HashMap<SessionId, HashSet<ObjectId>>,
}

/// Objects alive, as [`Registry::census`] counts them.
#[derive(Debug, Default)]
pub struct Census {
    pub pipelines: usize,
    pub by_class: std::collections::BTreeMap<String, usize>,
    /// (class, state kind, state) → objects.
    pub states: std::collections::BTreeMap<(String, &'static str, String), usize>,
}

/// A registered module, as `getInfo`/`getKmd` report it.
#[derive(Debug, Clone)]
pub struct ModuleSummary {
    pub name: &'static str,
    pub version: &'static str,
    pub generation_time: &'static str,
    pub kmd: &'static str,
    pub factories: Vec<&'static str>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    classes: HashMap<String, Arc<ClassInfo>>,
    modules: Vec<ModuleSummary>,
    notifier: Notifier,
    config: CoreConfig,
    limits: Arc<ObjectLimits>,
    server_manager: Mutex<Option<ObjectHandle>>,
    /// Slow calls in progress per session (`maxSlowCallsPerSession`).
    slow_calls: Mutex<HashMap<SessionId, usize>>,
}

/// The object registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// Context of one call: who calls, and the registry (generated code passes
/// it to every method).
#[derive(Clone)]
pub struct Ctx {
    session: SessionId,
    tenant: TenantId,
    admin: bool,
    registry: Registry,
    creating: Option<Arc<ClassInfo>>,
}

impl Ctx {
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The caller's tenant: objects it reaches must be its own.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Whether the caller may read process-wide figures.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Finds an object of the caller's tenant (spec §4.3: no ref).
    pub fn resolve(&self, id: &str) -> Result<ObjectHandle> {
        self.registry.get_in(&self.tenant, id)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn config(&self) -> &CoreConfig {
        &self.registry.inner.config
    }

    /// Creates the base state of the object being constructed: its id is
    /// `<parentId>/<uuid>_<qualifiedType>` (spec §4.1).
    pub fn new_object_base(&self, parent: Option<&dyn RemoteObject>) -> ObjectBase {
        let qualified = self.creating.as_ref().map(|c| c.qualified_name).unwrap_or("kurento.MediaObject");
        let uuid = uuid::Uuid::new_v4();
        let (id, parent_id, pipeline) = match parent {
            Some(p) => {
                let pid = p.object().id().clone();
                let id = ObjectId::from(format!("{pid}/{uuid}_{qualified}"));
                let pipeline = p.object().pipeline().cloned().or(Some(pid.clone()));
                (id, Some(pid), pipeline)
            }
            None => {
                let id = ObjectId::from(format!("{uuid}_{qualified}"));
                (id.clone(), None, Some(id))
            }
        };
        ObjectBase::new(id, parent_id, pipeline, self.registry.object_env(false))
    }
}

/// Object lookups of one tenant, for parameters of remote-class type.
struct Scope<'a> {
    registry: &'a Registry,
    tenant: &'a TenantId,
}

impl Resolver for Scope<'_> {
    fn resolve(&self, id: &str) -> Result<ObjectHandle> {
        self.registry.get_in(self.tenant, id)
    }
}

/// A slow call of one session in progress; released on drop.
struct SlowSlot {
    registry: Registry,
    session: SessionId,
}

impl Drop for SlowSlot {
    fn drop(&mut self) {
        let mut slow = self.registry.inner.slow_calls.lock();
        if let Some(n) = slow.get_mut(&self.session) {
            *n -= 1;
            if *n == 0 {
                slow.remove(&self.session);
            }
        }
    }
}

impl Registry {
    /// Builds a registry from the modules; a module whose short class name
    /// clashes with an earlier module is skipped whole (spec §4.2).
    pub fn new(modules: Vec<ModuleDescriptor>, notifier: Notifier, config: CoreConfig) -> Registry {
        let mut classes: HashMap<String, Arc<ClassInfo>> = HashMap::new();
        let mut summaries = vec![];
        for m in modules {
            if m.classes.iter().any(|c| classes.contains_key(c.name)) {
                tracing::warn!(module = m.name, "module skipped: a class name is already registered");
                continue;
            }
            let mut factories = vec![];
            for c in m.classes {
                let c = Arc::new(c);
                if c.factory.is_some() {
                    factories.push(c.name);
                }
                classes.insert(c.name.to_string(), c.clone());
                classes.insert(c.qualified_name.to_string(), c);
            }
            factories.sort_unstable();
            summaries.push(ModuleSummary {
                name: m.name,
                version: m.version,
                generation_time: m.generation_time,
                kmd: m.kmd,
                factories,
            });
        }
        let reg = Registry {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                classes,
                modules: summaries,
                notifier,
                limits: Arc::new(config.limits.clone()),
                config,
                server_manager: Mutex::new(None),
                slow_calls: Mutex::new(HashMap::new()),
            }),
        };
        let sm = Arc::new(ServerManagerImpl::new(ObjectBase::new(
            ObjectId::from(SERVER_MANAGER_ID),
            None,
            None,
            reg.object_env(true),
        )));
        if let Some(class) = reg.inner.classes.get("kurento.ServerManager") {
            let any: Arc<dyn Any + Send + Sync> = sm;
            let handle = ObjectHandle { remote: (class.as_remote)(any.clone()), any, class: class.clone() };
            *reg.inner.server_manager.lock() = Some(handle);
        }
        reg
    }

    pub fn modules(&self) -> &[ModuleSummary] {
        &self.inner.modules
    }

    pub fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    pub fn config(&self) -> &CoreConfig {
        &self.inner.config
    }

    /// Every factory name, short and qualified (`--list`).
    pub fn factory_names(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.inner.classes.iter().filter(|(_, c)| c.factory.is_some()).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }

    fn server_manager(&self) -> Option<ObjectHandle> {
        self.inner.server_manager.lock().clone()
    }

    fn object_env(&self, shared: bool) -> ObjectEnv {
        ObjectEnv { notifier: self.inner.notifier.clone(), limits: self.inner.limits.clone(), shared }
    }

    fn ctx(&self, caller: &dyn Caller) -> Ctx {
        Ctx {
            session: caller.session().clone(),
            tenant: caller.tenant().clone(),
            admin: caller.is_admin(),
            registry: self.clone(),
            creating: None,
        }
    }

    /// Finds an object of any tenant, without changing ownership. For the
    /// server's own use; callers' lookups go through their tenant.
    pub fn get(&self, id: &str) -> Result<ObjectHandle> {
        self.lookup(None, id)
    }

    /// Finds an object of `tenant` (or the shared ServerManager); another
    /// tenant's object is not found.
    pub fn get_in(&self, tenant: &TenantId, id: &str) -> Result<ObjectHandle> {
        self.lookup(Some(tenant), id)
    }

    fn lookup(&self, tenant: Option<&TenantId>, id: &str) -> Result<ObjectHandle> {
        if id == SERVER_MANAGER_ID {
            return self.server_manager().ok_or_else(|| Error::ObjectNotFound(id.into()));
        }
        if id.starts_with("newref:") {
            return Err(Error::NewrefOutsideTransaction(id.into()));
        }
        let st = self.inner.state.lock();
        st.objects
            .get(&ObjectId::from(id))
            .filter(|e| tenant.is_none_or(|t| e.tenant == *t))
            .map(|e| e.handle.clone())
            .ok_or_else(|| Error::ObjectNotFound(id.into()))
    }

    /// Finds an object and refs it in the caller's session (spec §4.3: any
    /// access refs).
    fn access(&self, caller: &dyn Caller, id: &str) -> Result<ObjectHandle> {
        let h = self.get_in(caller.tenant(), id)?;
        if id != SERVER_MANAGER_ID {
            let mut st = self.inner.state.lock();
            ref_chain(&mut st, caller.session(), h.id());
        }
        Ok(h)
    }

    /// For calls that succeed on unknown ids (release, unref, unsubscribe):
    /// an id of another tenant is an error, not a silent success.
    fn check_not_foreign(&self, caller: &dyn Caller, id: &str) -> Result<()> {
        if id.starts_with("newref:") {
            return Err(Error::NewrefOutsideTransaction(id.into()));
        }
        let st = self.inner.state.lock();
        match st.objects.get(&ObjectId::from(id)) {
            Some(e) if e.tenant != *caller.tenant() => Err(Error::ObjectNotFound(id.into())),
            _ => Ok(()),
        }
    }

    /// Takes one of the session's `maxSlowCallsPerSession` slots.
    fn slow_slot(&self, session: &SessionId) -> Result<SlowSlot> {
        let max = self.inner.limits.max_slow_calls_per_session;
        let mut slow = self.inner.slow_calls.lock();
        let n = slow.entry(session.clone()).or_insert(0);
        if max > 0 && *n >= max {
            if *n == 0 {
                slow.remove(session);
            }
            return Err(Error::NotEnoughResources(format!(
                "Reached slow-calls-per-session limit: {max} (maxSlowCallsPerSession)"
            )));
        }
        *n += 1;
        Ok(SlowSlot { registry: self.clone(), session: session.clone() })
    }

    /// Direct children ids, in creation order.
    pub fn children(&self, id: &ObjectId) -> Vec<ObjectId> {
        let st = self.inner.state.lock();
        st.objects.get(id).map(|e| e.children.clone()).unwrap_or_default()
    }

    /// Ids of all live pipelines.
    pub fn pipelines(&self) -> Vec<ObjectId> {
        self.pipelines_where(|_| true)
    }

    /// Ids of the live pipelines of one tenant (ServerManager.getPipelines).
    pub fn pipelines_of(&self, tenant: &TenantId) -> Vec<ObjectId> {
        self.pipelines_where(|t| t == tenant)
    }

    fn pipelines_where(&self, tenant: impl Fn(&TenantId) -> bool) -> Vec<ObjectId> {
        let st = self.inner.state.lock();
        let mut v: Vec<ObjectId> = st
            .objects
            .iter()
            .filter(|(_, e)| e.handle.remote.object().parent().is_none() && tenant(&e.tenant))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// Live pipelines with their tenants: what a cluster node publishes in
    /// its directory.
    pub fn pipelines_with_tenants(&self) -> Vec<(ObjectId, TenantId)> {
        let st = self.inner.state.lock();
        let mut v: Vec<(ObjectId, TenantId)> = st
            .objects
            .iter()
            .filter(|(_, e)| e.handle.remote.object().parent().is_none())
            .map(|(k, e)| (k.clone(), e.tenant.clone()))
            .collect();
        v.sort();
        v
    }

    /// Raises `ObjectDestroyed` on the ServerManager for an object this
    /// registry never held: one of another cluster node that died, so its
    /// users learn it as they would of a local object (spec §7, §9).
    pub fn raise_foreign_object_destroyed(&self, object_id: &str, tenant: &TenantId) {
        self.raise_on_manager(&ObjectDestroyed { object_id: object_id.to_owned() }, tenant);
    }

    /// What `/metrics` reports about the objects: counts by class and by
    /// reported state. The registry lock is held only to copy the handles;
    /// objects are asked for their states after it is released.
    pub fn census(&self) -> Census {
        let handles: Vec<ObjectHandle> = self.inner.state.lock().objects.values().map(|e| e.handle.clone()).collect();
        let mut c = Census::default();
        for h in handles {
            let class = h.class.name;
            if class == "MediaPipeline" {
                c.pipelines += 1;
            }
            *c.by_class.entry(class.to_owned()).or_default() += 1;
            for (kind, state) in h.remote.metric_states() {
                *c.states.entry((class.to_owned(), kind, state)).or_default() += 1;
            }
        }
        c
    }

    /// Every live object with the sessions holding it, for the dashboard.
    /// The lock is held only to copy.
    pub fn object_list(&self) -> Vec<(ObjectHandle, Vec<SessionId>)> {
        let st = self.inner.state.lock();
        st.objects
            .values()
            .map(|e| {
                let mut owners: Vec<SessionId> = e.owners.iter().cloned().collect();
                owners.sort();
                (e.handle.clone(), owners)
            })
            .collect()
    }

    /// Calls `operation` on an object of any tenant for the server itself
    /// (the dashboard): as an admin caller of session `session`, without
    /// referencing the object in it (a look must not keep it alive).
    pub fn invoke_unowned(
        &self,
        session: &SessionId,
        id: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value> {
        let h = self.get(id)?;
        self.invoke_class(&h, session, operation, params)
    }

    pub fn object_count(&self) -> usize {
        self.inner.state.lock().objects.len()
    }

    /// ServerManager events about an object reach only its tenant.
    fn raise_on_manager<E: crate::rt::Event>(&self, e: &E, tenant: &TenantId) {
        if let Some(sm) = self.server_manager() {
            sm.remote.object().raise_for_tenant(e, tenant);
        }
    }

    pub fn create_object(&self, caller: &dyn Caller, type_name: &str, ctor: Option<&Value>) -> Result<ObjectId> {
        let session = caller.session();
        let class = self
            .inner
            .classes
            .get(type_name)
            .filter(|c| c.factory.is_some())
            .cloned()
            .ok_or_else(|| Error::NotAvailable(format!("Factory '{type_name}' not found")))?;
        let limit = self.inner.config.max_objects_per_session;
        if limit > 0 {
            let st = self.inner.state.lock();
            let n = st.by_session.get(session).map_or(0, HashSet::len);
            if n >= limit {
                return Err(Error::NotEnoughResources(format!("Reached objects-per-session limit: {limit}")));
            }
        }
        let map = match ctor {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(Error::marshall("'constructorParams' should be an object")),
        };
        let ctx = Ctx { creating: Some(class.clone()), ..self.ctx(caller) };
        let scope = Scope { registry: self, tenant: caller.tenant() };
        let params = Params::new(map, "constructorParams", &scope);
        let factory = class.factory.expect("checked above");
        // No registry lock while constructing: the factory resolves params
        // and builds GStreamer elements.
        let any = factory(&ctx, &params)?;
        let remote = (class.as_remote)(any.clone());
        let handle = ObjectHandle { any, remote: remote.clone(), class: class.clone() };
        let id = remote.object().id().clone();
        {
            let mut st = self.inner.state.lock();
            let parent = remote.object().parent().cloned();
            let mut owners: HashSet<SessionId> = HashSet::new();
            owners.insert(session.clone());
            if let Some(p) = &parent {
                match st.objects.get_mut(p).filter(|pe| pe.tenant == *caller.tenant()) {
                    Some(pe) => {
                        owners.extend(pe.owners.iter().cloned());
                        pe.children.push(id.clone());
                    }
                    None => {
                        drop(st);
                        remote.release();
                        return Err(Error::ObjectNotFound(p.to_string()));
                    }
                }
            }
            for o in &owners {
                st.by_session.entry(o.clone()).or_default().insert(id.clone());
            }
            st.objects.insert(id.clone(), Entry { handle, owners, children: vec![], tenant: caller.tenant().clone() });
            if let Some(p) = &parent {
                ref_chain(&mut st, session, p);
            }
        }
        self.bus_membership(&remote, true);
        tracing::debug!(%id, "object created");
        self.raise_on_manager(&ObjectCreated { object: id.clone() }, caller.tenant());
        Ok(id)
    }

    /// Unrefs `id` (and its descendants) from `sessions`; destroys whatever
    /// is left without owners.
    fn unref_from(&self, id: &ObjectId, sessions: Option<&HashSet<SessionId>>) {
        let destroyed = {
            let mut st = self.inner.state.lock();
            let mut subtree = vec![];
            collect_subtree(&st, id, &mut subtree);
            let mut destroyed = vec![];
            // Children first, so a child never outlives its parent.
            for oid in subtree.iter().rev() {
                let Some(e) = st.objects.get_mut(oid) else { continue };
                let removed: Vec<SessionId> = match sessions {
                    Some(s) => s.iter().filter(|x| e.owners.remove(*x)).cloned().collect(),
                    None => e.owners.drain().collect(),
                };
                let empty = e.owners.is_empty();
                for s in &removed {
                    e.handle.remote.object().forget_session(s);
                }
                for s in &removed {
                    if let Some(set) = st.by_session.get_mut(s) {
                        set.remove(oid);
                    }
                }
                if empty {
                    let e = st.objects.remove(oid).expect("present");
                    for s in &e.owners {
                        if let Some(set) = st.by_session.get_mut(s) {
                            set.remove(oid);
                        }
                    }
                    if let Some(p) = e.handle.remote.object().parent().cloned()
                        && let Some(pe) = st.objects.get_mut(&p)
                    {
                        pe.children.retain(|c| c != oid);
                    }
                    destroyed.push((e.handle, e.tenant));
                }
            }
            st.by_session.retain(|_, v| !v.is_empty());
            destroyed
        };
        for (h, tenant) in destroyed {
            self.bus_membership(&h.remote, false);
            h.remote.release();
            tracing::debug!(id = %h.id(), "object destroyed");
            self.raise_on_manager(&ObjectDestroyed { object_id: h.id().to_string() }, &tenant);
        }
    }

    /// Releases every pipeline (shutdown, spec §4.4).
    pub fn release_all(&self) {
        for p in self.pipelines() {
            self.unref_from(&p, None);
        }
        let rest: Vec<ObjectId> = self.inner.state.lock().objects.keys().cloned().collect();
        for id in rest {
            self.unref_from(&id, None);
        }
    }

    /// Tells the object's pipeline which top-level bin is this object's, so
    /// GStreamer errors inside it are raised on it (spec §7.2).
    fn bus_membership(&self, remote: &Arc<dyn RemoteObject>, add: bool) {
        let bin = match (remote.element(), remote.hub()) {
            (Some(e), _) => e.bin().clone(),
            (None, Some(h)) => h.bin().clone(),
            _ => return,
        };
        let Some(pid) = remote.object().pipeline() else { return };
        let Ok(p) = self.get(pid.as_str()) else { return };
        if let Some(shared) = p.remote.pipeline() {
            if add {
                shared.add_member(&bin, remote.object().clone());
            } else {
                shared.remove_member(&bin);
            }
        }
    }

    /// Calls the class's operation, holding a `maxSlowCallsPerSession`
    /// slot for operations that wait.
    fn invoke_class(
        &self,
        h: &ObjectHandle,
        caller: &dyn Caller,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value> {
        if h.remote.object().is_shared() && !caller.is_admin() && SHARED_STATE_SETTERS.contains(&operation) {
            return Err(Error::NotImplemented(format!(
                "{operation} on {} would change it for every tenant of this server; \
                 only admin tenants may (mediaServer.net.websocket.adminTenants)",
                h.id()
            )));
        }
        let _slot = if SLOW_OPERATIONS.contains(&operation) { Some(self.slow_slot(caller.session())?) } else { None };
        let ctx = self.ctx(caller);
        let scope = Scope { registry: self, tenant: caller.tenant() };
        let p = Params::new(params, "operationParams", &scope);
        (h.class.invoke)(&*h.any, &ctx, operation, &p)
    }
}

fn ref_chain(st: &mut State, session: &SessionId, id: &ObjectId) {
    let mut cur = Some(id.clone());
    while let Some(c) = cur {
        let Some(e) = st.objects.get_mut(&c) else { break };
        if !e.owners.insert(session.clone()) {
            // Already owned: ancestors are too.
            break;
        }
        st.by_session.entry(session.clone()).or_default().insert(c.clone());
        cur = e.handle.remote.object().parent().cloned();
    }
}

fn collect_subtree(st: &State, id: &ObjectId, out: &mut Vec<ObjectId>) {
    if let Some(e) = st.objects.get(id) {
        out.push(id.clone());
        for c in &e.children {
            collect_subtree(st, c, out);
        }
    }
}

impl MediaBackend for Registry {
    fn create(
        &self,
        caller: &dyn Caller,
        type_name: &str,
        ctor: Option<&Value>,
    ) -> std::result::Result<String, RpcError> {
        Ok(self.create_object(caller, type_name, ctor)?.to_string())
    }

    fn describe(&self, caller: &dyn Caller, object: &str) -> std::result::Result<Description, RpcError> {
        let h = self.access(caller, object)?;
        Ok(Description {
            type_name: h.class.name.to_string(),
            qualified_type: h.class.qualified_name.to_string(),
            hierarchy: h.class.hierarchy.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn invoke(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> std::result::Result<Value, RpcError> {
        let h = self.access(caller, object)?;
        Ok(self.invoke_class(&h, caller, operation, params)?)
    }

    /// `getUsedCpu(interval)` takes its first sample now and its second
    /// after a wait the transport spends without a thread.
    fn invoke_deferred(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> std::result::Result<Invoked, RpcError> {
        let h = self.access(caller, object)?;
        if operation != GET_USED_CPU || !h.class.is_a("kurento.ServerManager") {
            return Ok(Invoked::Value(self.invoke_class(&h, caller, operation, params)?));
        }
        let slot = self.slow_slot(caller.session())?;
        let scope = Scope { registry: self, tenant: caller.tenant() };
        let p = Params::new(params, "operationParams", &scope);
        // As the generated dispatcher decodes it.
        p.require()?;
        let interval = p.get::<i32>("interval")?;
        let (wait, sample) = start_used_cpu(&self.ctx(caller), interval)?;
        Ok(Invoked::Later(Deferred {
            wait,
            finish: Box::new(move || {
                let _slot = slot;
                Ok(sample.finish().to_json())
            }),
        }))
    }

    fn is_slow(&self, _object: &str, operation: &str) -> bool {
        SLOW_OPERATIONS.contains(&operation)
    }

    fn subscribe(&self, caller: &dyn Caller, object: &str, event_type: &str) -> std::result::Result<String, RpcError> {
        let h = self.access(caller, object)?;
        if !h.class.events.contains(&event_type) {
            return Err(Error::EventNotSupported(event_type.to_string()).into());
        }
        Ok(h.remote.object().subscribe(caller.session(), caller.tenant(), event_type)?)
    }

    fn unsubscribe(&self, caller: &dyn Caller, object: &str, subscription: &str) -> std::result::Result<(), RpcError> {
        self.check_not_foreign(caller, object)?;
        if let Ok(h) = self.get_in(caller.tenant(), object) {
            h.remote.object().unsubscribe(caller.session(), subscription);
        }
        Ok(())
    }

    fn release(&self, caller: &dyn Caller, object: &str) -> std::result::Result<(), RpcError> {
        self.check_not_foreign(caller, object)?;
        self.unref_from(&ObjectId::from(object), None);
        Ok(())
    }

    fn ref_object(&self, caller: &dyn Caller, object: &str) -> std::result::Result<(), RpcError> {
        self.access(caller, object)?;
        Ok(())
    }

    fn unref_object(&self, caller: &dyn Caller, object: &str) -> std::result::Result<(), RpcError> {
        self.check_not_foreign(caller, object)?;
        let one: HashSet<SessionId> = [caller.session().clone()].into_iter().collect();
        self.unref_from(&ObjectId::from(object), Some(&one));
        Ok(())
    }

    fn unref_session(&self, session: &SessionId) {
        let owned: Vec<ObjectId> = {
            let st = self.inner.state.lock();
            st.by_session.get(session).map(|s| s.iter().cloned().collect()).unwrap_or_default()
        };
        let one: HashSet<SessionId> = [session.clone()].into_iter().collect();
        for id in owned {
            self.unref_from(&id, Some(&one));
        }
        if let Some(sm) = self.server_manager() {
            sm.remote.object().forget_session(session);
        }
    }

    fn release_session(&self, session: &SessionId) {
        let owned: Vec<ObjectId> = {
            let st = self.inner.state.lock();
            st.by_session.get(session).map(|s| s.iter().cloned().collect()).unwrap_or_default()
        };
        for id in owned {
            self.unref_from(&id, None);
        }
        if let Some(sm) = self.server_manager() {
            sm.remote.object().forget_session(session);
        }
    }
}
