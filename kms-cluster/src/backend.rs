//! [`ClusterBackend`]: the [`MediaBackend`] of a cluster node. It owns the
//! local [`Registry`] and decides, per request, whether the object lives
//! here or on another node; remote requests go over an internal [`Link`]
//! of the caller's session.
//!
//! Backend methods run on blocking-pool threads (see [`MediaBackend`]), so
//! the IO is awaited with `Handle::block_on`, always bounded by a timeout.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::runtime::Handle;

use kms_core::Registry;
use kms_core::server_manager::{CpuSample, SERVER_MANAGER_ID};
use kms_jsonrpc::{Caller, Description, Invoked, MediaBackend, Notifier, RpcError, SessionId, TenantId, codes};

use crate::config::ClusterConfig;
use crate::directory::{self, Load, NodeRecord, PipelineEntry};
use crate::error::ClusterError;
use crate::ids::{self, NodeId, PipelineId};
use crate::link::{CallError, Link, Target};
use crate::placement::{self, Candidate, NODE_PROPERTY};
use crate::store::Store;

/// How long a placement made by this node counts towards the target's load
/// when the target's record is older than the placement.
const PENDING_WINDOW_MS: u64 = 10_000;

/// Where a request about an object runs.
enum Route {
    Local,
    Remote(NodeRecord),
}

/// The links of one client session to one remote node.
struct Slot {
    link: Arc<Link>,
    /// The remote node's boot epoch when the link opened.
    epoch: String,
    tenant: TenantId,
    /// Remote object ids this session used through the link: what gets an
    /// `ObjectDestroyed` if the node dies.
    objects: HashSet<String>,
}

/// What is left of a link whose socket broke while its node lived.
struct Resumable {
    remote_session: String,
    epoch: String,
    tenant: TenantId,
    objects: HashSet<String>,
}

struct Inner {
    config: ClusterConfig,
    epoch: String,
    local: Registry,
    notifier: Notifier,
    rt: Handle,
    store: Store,
    redis_up: AtomicBool,
    links: Mutex<HashMap<(SessionId, NodeId), Slot>>,
    /// Links that broke while their node lived, to resume on next use.
    resumable: Mutex<HashMap<(SessionId, NodeId), Resumable>>,
    /// Nodes (with their boot epoch) known dead before their record expired.
    dead: Mutex<HashMap<NodeId, String>>,
    /// Ids already announced destroyed (one event per object, however many
    /// sessions used it).
    announced: Mutex<HashSet<String>>,
    /// What this node last wrote to the directory: pipeline → tenant.
    registered: Mutex<HashMap<String, String>>,
    /// Placements this node made recently: (node, wall ms).
    pending: Mutex<Vec<(NodeId, u64)>>,
    draining: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
    /// CPU % of the last heartbeat interval.
    cpu_percent: Mutex<f32>,
    /// Set by the first successful heartbeat of this boot.
    registered_once: AtomicBool,
    /// Since when Redis has answered without interruption.
    redis_up_since: Mutex<Option<std::time::Instant>>,
    /// Sessions whose record names this node as home.
    noted: Mutex<HashSet<SessionId>>,
}

/// A cluster node's backend. Cheap to clone.
#[derive(Clone)]
pub struct ClusterBackend {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn is_pipeline_type(t: &str) -> bool {
    t == "MediaPipeline" || t == "kurento.MediaPipeline"
}

impl ClusterBackend {
    /// Must be called inside the tokio runtime that will serve requests.
    pub fn new(config: ClusterConfig, local: Registry, notifier: Notifier) -> Result<Self, ClusterError> {
        config.validate()?;
        let store = Store::new(&config.redis_url)?;
        Ok(ClusterBackend {
            inner: Arc::new(Inner {
                config,
                epoch: uuid::Uuid::new_v4().to_string(),
                local,
                notifier,
                rt: Handle::current(),
                store,
                redis_up: AtomicBool::new(false),
                links: Mutex::default(),
                resumable: Mutex::default(),
                dead: Mutex::default(),
                announced: Mutex::default(),
                registered: Mutex::default(),
                pending: Mutex::default(),
                draining: OnceLock::new(),
                cpu_percent: Mutex::new(0.0),
                registered_once: AtomicBool::new(false),
                redis_up_since: Mutex::new(None),
                noted: Mutex::default(),
            }),
        })
    }

    pub fn node_id(&self) -> &NodeId {
        &self.inner.config.node_id
    }

    /// Where the drain flag (SIGUSR1) is read from; the transport's metrics
    /// exist only after the backend is built.
    pub fn set_draining_probe(&self, probe: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.inner.draining.set(Box::new(probe));
    }

    /// Starts the heartbeat: registers the node, keeps its record and its
    /// pipelines in the directory, and purges nodes whose record expired.
    pub fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.heartbeat;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut cpu = CpuSample::start();
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                *inner.cpu_percent.lock() = cpu.finish();
                cpu = CpuSample::start();
                match heartbeat(&inner).await {
                    Ok(()) => {
                        inner.redis_up_since.lock().get_or_insert_with(std::time::Instant::now);
                        if !inner.redis_up.swap(true, Ordering::AcqRel) {
                            tracing::info!(node = %inner.config.node_id, "cluster directory (Redis) reachable: node registered");
                        }
                    }
                    Err(e) => {
                        *inner.redis_up_since.lock() = None;
                        if inner.redis_up.swap(false, Ordering::AcqRel) {
                            tracing::warn!(node = %inner.config.node_id, "{e}: serving local pipelines only until it is back");
                        } else {
                            tracing::debug!("{e}");
                        }
                    }
                }
            }
        })
    }

    /// Clean shutdown: leaves the directory at once instead of expiring.
    pub async fn unregister(&self) {
        let node = self.inner.config.node_id.clone();
        if let Err(e) = self.inner.store.unregister(&node).await {
            tracing::debug!("cannot unregister from the cluster directory: {e}");
        }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.inner.rt.block_on(f)
    }

    /// Which node holds `object`.
    fn route(&self, object: &str) -> Result<Route, ClusterError> {
        let Some(pid) = PipelineId::of_object(object) else { return Ok(Route::Local) };
        if self.inner.local.get(pid.as_str()).is_ok() {
            return Ok(Route::Local);
        }
        let store = &self.inner.store;
        let Some(entry) = self.block_on(store.pipeline(&pid))? else {
            // Unknown anywhere: the local registry gives the single-server
            // answer (40101, or success for release/unref).
            return Ok(Route::Local);
        };
        let node = entry.node_id();
        if node == self.inner.config.node_id {
            // Our own entry, but the pipeline is gone (released, or of a
            // previous life): a local answer.
            return Ok(Route::Local);
        }
        if self.inner.dead.lock().get(&node) == Some(&entry.epoch) {
            return Err(ClusterError::NodeGone(node));
        }
        let record = self.block_on(store.node(&node))?;
        match record {
            Some(r) if entry.is_live(Some(&r)) => Ok(Route::Remote(r)),
            _ => Err(ClusterError::NodeGone(node)),
        }
    }

    /// The caller's link to `record`'s node, opened on first use.
    fn link_for(&self, caller: &dyn Caller, record: &NodeRecord) -> Result<Arc<Link>, ClusterError> {
        let key = (caller.session().clone(), record.node_id());
        if let Some(s) = self.inner.links.lock().get(&key)
            && !s.link.is_broken()
            && s.epoch == record.epoch
        {
            return Ok(s.link.clone());
        }
        let cfg = &self.inner.config;
        let notifier = self.inner.notifier.clone();
        let session = caller.session().clone();
        let on_event: crate::link::EventSink =
            Arc::new(move |object: &str, kind: &str, data: Value| notifier.send_event(&session, object, kind, data));
        let make_broken = || -> crate::link::BrokenSink {
            let weak = Arc::downgrade(&self.inner);
            let (session, node, address, epoch) =
                (caller.session().clone(), record.node_id(), record.address.clone(), record.epoch.clone());
            Box::new(move || link_broken(weak, session, node, address, epoch))
        };
        let token = cfg.token_for(caller.tenant());
        let open = |resume: Option<&str>| {
            let to = Target {
                node: record.node_id(),
                address: &record.address,
                path: &cfg.ws_path,
                token,
                resume,
                timeout: cfg.forward_timeout,
            };
            self.block_on(Link::open(to, on_event.clone(), make_broken()))
        };
        let resumed = self.inner.resumable.lock().remove(&key).filter(|r| r.epoch == record.epoch);
        let resume = resumed.as_ref().map(|r| r.remote_session.clone());
        let link = match open(resume.as_deref()) {
            Ok(l) => l,
            // The remote session was collected meanwhile: a new one.
            Err(_) if resume.is_some() => open(None)?,
            Err(e) => return Err(e),
        };
        self.note_session(caller);
        let noted = self.block_on(self.inner.store.note_link(
            caller.session().as_str(),
            &record.node_id(),
            link.remote_session(),
        ));
        if let Err(e) = noted {
            tracing::debug!("link not recorded: {e}");
        }
        let mut links = self.inner.links.lock();
        match links.get(&key) {
            Some(s) if !s.link.is_broken() && s.epoch == record.epoch => {
                // Another request of the session opened one meanwhile.
                link.close(false);
                Ok(s.link.clone())
            }
            _ => {
                let mut objects = links.remove(&key).map(|s| s.objects).unwrap_or_default();
                objects.extend(resumed.map(|r| r.objects).unwrap_or_default());
                let slot =
                    Slot { link: link.clone(), epoch: record.epoch.clone(), tenant: caller.tenant().clone(), objects };
                links.insert(key, slot);
                Ok(link)
            }
        }
    }

    /// Writes the session's record (home = this node) once per session, so
    /// another node can adopt it on reconnection. Best effort.
    fn note_session(&self, caller: &dyn Caller) {
        if !self.inner.noted.lock().insert(caller.session().clone()) {
            return;
        }
        let (s, t, me) = (caller.session().as_str(), caller.tenant().as_str(), &self.inner.config.node_id);
        if let Err(e) = self.block_on(self.inner.store.note_session(s, t, me)) {
            tracing::debug!("session not recorded: {e}");
            self.inner.noted.lock().remove(caller.session());
        }
    }

    /// Sends one request to the node of `record` in the caller's session.
    fn forward(
        &self,
        caller: &dyn Caller,
        record: &NodeRecord,
        method: &str,
        params: Map<String, Value>,
        object: &str,
    ) -> Result<Value, RpcError> {
        let link = self.link_for(caller, record).map_err(|e| e.for_object(object))?;
        match self.block_on(link.call(method, params)) {
            Ok(v) => Ok(v),
            Err(CallError::Remote(e)) => Err(e),
            Err(CallError::Cluster(e)) => Err(e.for_object(object)),
        }
    }

    fn track(&self, caller: &dyn Caller, node: &NodeId, object: &str) {
        if let Some(s) = self.inner.links.lock().get_mut(&(caller.session().clone(), node.clone())) {
            s.objects.insert(object.to_owned());
        }
    }

    fn untrack_tree(&self, node: &NodeId, object: &str) {
        for ((_, n), s) in self.inner.links.lock().iter_mut() {
            if n == node {
                s.objects.retain(|o| !(o == object || o.starts_with(&format!("{object}/"))));
            }
        }
    }

    /// The local node's load, live (the record lags a heartbeat).
    fn local_load(&self) -> Load {
        let census = self.inner.local.census();
        Load {
            cpu_percent: *self.inner.cpu_percent.lock(),
            pipelines: census.pipelines as u32,
            webrtc_endpoints: census.by_class.get("WebRtcEndpoint").copied().unwrap_or(0) as u32,
            draining: self.inner.draining.get().is_some_and(|d| d()),
        }
    }

    /// Chooses the node of a new pipeline.
    fn place(&self, properties: Option<&Value>) -> Result<Route, RpcError> {
        let me = &self.inner.config.node_id;
        let requested = placement::requested_node(properties);
        if requested == Some(me.as_str()) {
            return Ok(Route::Local);
        }
        let (live, _) = match self.block_on(self.inner.store.nodes()) {
            Ok(n) => n,
            // Redis down: availability first, new pipelines stay here
            // (documented); a named other node cannot be reached.
            Err(e) if requested.is_none() => {
                tracing::debug!("placing locally, {e}");
                return Ok(Route::Local);
            }
            Err(e) => {
                return Err(RpcError::new(
                    codes::UNEXPECTED_ERROR,
                    format!("Cannot place on {NODE_PROPERTY} '{}': {e}", requested.unwrap_or_default()),
                ));
            }
        };
        let now = now_ms();
        let mut pending = self.inner.pending.lock();
        pending.retain(|(_, at)| now.saturating_sub(*at) < PENDING_WINDOW_MS);
        let dead = self.inner.dead.lock().clone();
        let mut candidates: Vec<Candidate> = live
            .into_values()
            .filter(|r| r.id != me.as_str() && dead.get(&r.node_id()) != Some(&r.epoch))
            .map(|record| {
                let n =
                    pending.iter().filter(|(node, at)| node.as_str() == record.id && *at > record.updated_ms).count();
                Candidate { record, pending: n as u32 }
            })
            .collect();
        candidates.push(Candidate {
            record: NodeRecord {
                id: me.to_string(),
                address: self.inner.config.advertised_address.clone(),
                epoch: self.inner.epoch.clone(),
                load: self.local_load(),
                updated_ms: now,
            },
            pending: 0,
        });
        let chosen = placement::place(&candidates, me, requested)?;
        if chosen == *me {
            return Ok(Route::Local);
        }
        pending.push((chosen.clone(), now));
        let record = candidates.into_iter().find(|c| c.record.id == chosen.as_str()).map(|c| c.record);
        record.map(Route::Remote).ok_or_else(|| RpcError::internal(Some("placement chose an unknown node")))
    }

    /// Writes a new local pipeline to the directory before its id is
    /// answered, so any node can route it at once. Failures are left to
    /// the heartbeat, which reconciles.
    fn register_now(&self, pipeline: &str, tenant: &TenantId) {
        let entry = PipelineEntry {
            node: self.inner.config.node_id.to_string(),
            epoch: self.inner.epoch.clone(),
            tenant: tenant.to_string(),
        };
        let node = self.inner.config.node_id.clone();
        if self.block_on(self.inner.store.put_pipelines(&node, &[(pipeline.to_owned(), entry)])).is_ok() {
            self.inner.registered.lock().insert(pipeline.to_owned(), tenant.to_string());
        }
    }

    /// `ServerManager.getPipelines` for the cluster: the live pipelines of
    /// the caller's tenant on every node.
    fn cluster_pipelines(&self, caller: &dyn Caller) -> Result<Value, RpcError> {
        let unavailable = |e: ClusterError| {
            RpcError::new(codes::UNEXPECTED_ERROR, format!("getPipelines answers for the whole cluster: {e}"))
        };
        let (live, _) = self.block_on(self.inner.store.nodes()).map_err(unavailable)?;
        let all = self.block_on(self.inner.store.pipelines()).map_err(unavailable)?;
        let dead = self.inner.dead.lock().clone();
        let tenant = caller.tenant().as_str();
        let mut ids: Vec<String> = all
            .into_iter()
            .filter(|(_, e)| {
                e.tenant == tenant
                    && e.node != self.inner.config.node_id.as_str()
                    && e.is_live(live.get(&e.node_id()))
                    && dead.get(&e.node_id()) != Some(&e.epoch)
            })
            .map(|(p, _)| p)
            .collect();
        ids.extend(self.inner.local.pipelines_of(caller.tenant()).into_iter().map(|p| p.to_string()));
        ids.sort();
        ids.dedup();
        Ok(json!(ids))
    }
}

/// Called by a link's reader when its socket ends unexpectedly. A node
/// whose port no longer accepts connections is dead: its objects are
/// announced destroyed at once, without waiting for its record to expire.
/// A node that still answers only lost this link: its remote session is
/// resumed by the next request.
fn link_broken(weak: Weak<Inner>, session: SessionId, node: NodeId, address: String, epoch: String) {
    let Some(inner) = weak.upgrade() else { return };
    inner.rt.clone().spawn(async move {
        // A killed process may still complete a TCP handshake while it is
        // torn down: wait a moment, then ask for a real WebSocket upgrade.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let url = format!("ws://{address}/{}", inner.config.ws_path);
        let alive = matches!(
            tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(url.as_str())).await,
            Ok(Ok(_))
        );
        if alive {
            let key = (session, node);
            let slot = inner.links.lock().remove(&key);
            if let Some(s) = slot {
                tracing::info!(node = %key.1, "internal link lost, node alive: its session resumes on next use");
                inner.resumable.lock().insert(
                    key,
                    Resumable {
                        remote_session: s.link.remote_session().to_owned(),
                        epoch: s.epoch,
                        tenant: s.tenant,
                        objects: s.objects,
                    },
                );
            }
        } else {
            node_dead(&inner, &node, &epoch);
        }
    });
}

/// Forgets every link to `node` in its life `epoch` and raises `ObjectDestroyed` (on this
/// node's ServerManager, to the tenant's subscribed sessions, as kms-core
/// does for its own objects) for the remote objects its sessions used.
fn node_dead(inner: &Inner, node: &NodeId, epoch: &str) {
    inner.dead.lock().insert(node.clone(), epoch.to_owned());
    let mut used: Vec<(TenantId, HashSet<String>)> = {
        let mut links = inner.links.lock();
        let keys: Vec<(SessionId, NodeId)> =
            links.iter().filter(|((_, n), s)| n == node && s.epoch == epoch).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| links.remove(&k)).map(|s| (s.tenant, s.objects)).collect()
    };
    {
        let mut resumable = inner.resumable.lock();
        let keys: Vec<(SessionId, NodeId)> =
            resumable.iter().filter(|((_, n), r)| n == node && r.epoch == epoch).map(|(k, _)| k.clone()).collect();
        used.extend(keys.into_iter().filter_map(|k| resumable.remove(&k)).map(|r| (r.tenant, r.objects)));
    }
    let mut destroyed: Vec<(String, TenantId)> = vec![];
    {
        let mut announced = inner.announced.lock();
        if announced.len() > 100_000 {
            announced.clear();
        }
        for (tenant, objects) in used {
            for o in objects {
                if announced.insert(o.clone()) {
                    destroyed.push((o, tenant.clone()));
                }
            }
        }
    }
    // Children first, as a release would.
    destroyed.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    tracing::warn!(%node, objects = destroyed.len(), "cluster node gone: its objects are destroyed");
    for (o, tenant) in destroyed {
        inner.local.raise_foreign_object_destroyed(&o, &tenant);
    }
}

/// One heartbeat: record, pipeline reconciliation, purge of expired nodes.
async fn heartbeat(inner: &Inner) -> Result<(), ClusterError> {
    let me = inner.config.node_id.clone();
    let census = inner.local.census();
    let record = NodeRecord {
        id: me.to_string(),
        address: inner.config.advertised_address.clone(),
        epoch: inner.epoch.clone(),
        load: Load {
            cpu_percent: *inner.cpu_percent.lock(),
            pipelines: census.pipelines as u32,
            webrtc_endpoints: census.by_class.get("WebRtcEndpoint").copied().unwrap_or(0) as u32,
            draining: inner.draining.get().is_some_and(|d| d()),
        },
        updated_ms: now_ms(),
    };
    let store = &inner.store;
    let existed = store.heartbeat(&record, inner.config.expiry).await?;
    if !existed || !inner.registered_once.load(Ordering::Acquire) {
        // First registration of this boot (the record may still be our
        // previous life's, not yet expired), or Redis lost our record: the
        // entries under our id are stale (or gone); rewrite them from what
        // we really hold.
        let purged = store.purge_own(&me).await?;
        if purged > 0 {
            tracing::info!(node = %me, purged, "stale directory entries of this node id removed");
        }
        inner.registered.lock().clear();
        inner.registered_once.store(true, Ordering::Release);
        // Redis may have lost every record (a restart between two of our
        // heartbeats): give the other nodes an expiry to re-register.
        *inner.redis_up_since.lock() = Some(std::time::Instant::now());
    }
    let local: HashMap<String, String> =
        inner.local.pipelines_with_tenants().into_iter().map(|(p, t)| (p.to_string(), t.to_string())).collect();
    let registered = inner.registered.lock().clone();
    let (add, remove) = directory::reconcile(&local, &registered);
    let add: Vec<(String, PipelineEntry)> = add
        .into_iter()
        .map(|(p, t)| {
            (p.to_owned(), PipelineEntry { node: me.to_string(), epoch: inner.epoch.clone(), tenant: t.to_owned() })
        })
        .collect();
    let remove: Vec<String> = remove.into_iter().map(str::to_owned).collect();
    store.put_pipelines(&me, &add).await?;
    store.remove_pipelines(&me, &remove).await?;
    {
        let mut reg = inner.registered.lock();
        for (p, e) in add {
            reg.insert(p, e.tenant);
        }
        for p in remove {
            reg.remove(&p);
        }
    }
    let (live, expired) = store.nodes().await?;
    for node in expired {
        if node == me {
            continue;
        }
        let n = store.purge_node(&node).await?;
        tracing::info!(%node, pipelines = n, "cluster node expired: its directory entries are removed");
    }
    // Links to a node life that is over: the node came back under a new
    // epoch, or its record has been missing while Redis answered for a
    // whole expiry (right after Redis lost its data, records are missing
    // only until every node's next heartbeat).
    let settled = inner.redis_up_since.lock().is_some_and(|t| t.elapsed() >= inner.config.expiry);
    let mut over: Vec<(NodeId, String)> = inner
        .links
        .lock()
        .iter()
        .map(|((_, n), s)| (n.clone(), s.epoch.clone()))
        .chain(inner.resumable.lock().iter().map(|((_, n), r)| (n.clone(), r.epoch.clone())))
        .filter(|(n, e)| match live.get(n) {
            Some(r) => r.epoch != *e,
            None => settled,
        })
        .collect();
    over.sort();
    over.dedup();
    for (node, epoch) in over {
        node_dead(inner, &node, &epoch);
    }
    // A dead node that came back under a new epoch is alive again.
    inner.dead.lock().retain(|n, e| live.get(n).is_none_or(|r| r.epoch == *e));
    Ok(())
}

impl MediaBackend for ClusterBackend {
    fn create(&self, caller: &dyn Caller, type_name: &str, ctor: Option<&Value>) -> Result<String, RpcError> {
        self.create_with_properties(caller, type_name, ctor, None)
    }

    fn create_with_properties(
        &self,
        caller: &dyn Caller,
        type_name: &str,
        ctor: Option<&Value>,
        properties: Option<&Value>,
    ) -> Result<String, RpcError> {
        self.note_session(caller);
        let route = if is_pipeline_type(type_name) {
            self.place(properties)?
        } else {
            match ctor.and_then(ids::first_pipeline_in) {
                None => Route::Local,
                Some(p) => self.route(p.as_str()).map_err(|e| e.for_object(p.as_str()))?,
            }
        };
        match route {
            Route::Local => {
                let id = self.inner.local.create_with_properties(caller, type_name, ctor, properties)?;
                if is_pipeline_type(type_name) {
                    self.register_now(&id, caller.tenant());
                }
                Ok(id)
            }
            Route::Remote(record) => {
                let mut params = Map::new();
                params.insert("type".into(), json!(type_name));
                if let Some(c) = ctor {
                    params.insert("constructorParams".into(), c.clone());
                }
                let mut props = properties.and_then(Value::as_object).cloned().unwrap_or_default();
                if is_pipeline_type(type_name) {
                    // The owner must not place it again.
                    props.insert(NODE_PROPERTY.into(), json!(record.id));
                }
                params.insert("properties".into(), Value::Object(props));
                let v = self.forward(caller, &record, "create", params, type_name)?;
                let id = v.get("value").and_then(Value::as_str).unwrap_or_default().to_owned();
                self.track(caller, &record.node_id(), &id);
                Ok(id)
            }
        }
    }

    fn check_transaction(&self, caller: &dyn Caller, operations: &[Value]) -> Result<(), RpcError> {
        let mut pipelines = vec![];
        for op in operations {
            if let Some(p) = op.get("params") {
                ids::pipelines_in(p, &mut pipelines);
            }
        }
        let mut nodes: Vec<NodeId> = vec![];
        for p in pipelines {
            let node = match self.route(p.as_str()) {
                Ok(Route::Local) => self.inner.config.node_id.clone(),
                Ok(Route::Remote(r)) => r.node_id(),
                // The operation itself answers the error.
                Err(ClusterError::NodeGone(_)) => continue,
                Err(e) => return Err(e.for_object(p.as_str())),
            };
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        let _ = caller;
        if nodes.len() > 1 {
            nodes.sort();
            return Err(RpcError::malformed_transaction(format!(
                "Transaction spans pipelines on cluster nodes '{}' and '{}': its operations must stay on one node",
                nodes[0], nodes[1]
            )));
        }
        Ok(())
    }

    fn describe(&self, caller: &dyn Caller, object: &str) -> Result<Description, RpcError> {
        match self.route(object).map_err(|e| e.for_object(object))? {
            Route::Local => self.inner.local.describe(caller, object),
            Route::Remote(r) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                let v = self.forward(caller, &r, "describe", p, object)?;
                self.track(caller, &r.node_id(), object);
                let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                Ok(Description {
                    type_name: s("type"),
                    qualified_type: s("qualifiedType"),
                    hierarchy: v
                        .get("hierarchy")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                })
            }
        }
    }

    fn invoke(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Value, RpcError> {
        match self.invoke_deferred(caller, object, operation, params)? {
            Invoked::Value(v) => Ok(v),
            Invoked::Later(d) => {
                std::thread::sleep(d.wait);
                (d.finish)()
            }
        }
    }

    fn invoke_deferred(
        &self,
        caller: &dyn Caller,
        object: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> Result<Invoked, RpcError> {
        if object == SERVER_MANAGER_ID && operation == "getPipelines" {
            return self.cluster_pipelines(caller).map(Invoked::Value);
        }
        match self.route(object).map_err(|e| e.for_object(object))? {
            Route::Local => self.inner.local.invoke_deferred(caller, object, operation, params),
            Route::Remote(r) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                p.insert("operation".into(), json!(operation));
                if let Some(op) = params {
                    p.insert("operationParams".into(), Value::Object(op.clone()));
                }
                let v = self.forward(caller, &r, "invoke", p, object)?;
                self.track(caller, &r.node_id(), object);
                Ok(Invoked::Value(v.get("value").cloned().unwrap_or(Value::Null)))
            }
        }
    }

    fn is_slow(&self, object: &str, operation: &str) -> bool {
        match PipelineId::of_object(object) {
            // A forwarded call waits on the network and on the owner.
            Some(p) if self.inner.local.get(p.as_str()).is_err() => true,
            _ => self.inner.local.is_slow(object, operation),
        }
    }

    fn subscribe(&self, caller: &dyn Caller, object: &str, event_type: &str) -> Result<String, RpcError> {
        match self.route(object).map_err(|e| e.for_object(object))? {
            Route::Local => self.inner.local.subscribe(caller, object, event_type),
            Route::Remote(r) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                p.insert("type".into(), json!(event_type));
                let v = self.forward(caller, &r, "subscribe", p, object)?;
                self.track(caller, &r.node_id(), object);
                Ok(v.get("value").and_then(Value::as_str).unwrap_or_default().to_owned())
            }
        }
    }

    fn unsubscribe(&self, caller: &dyn Caller, object: &str, subscription: &str) -> Result<(), RpcError> {
        match self.route(object) {
            Ok(Route::Local) => self.inner.local.unsubscribe(caller, object, subscription),
            // §5.7: unknown objects are not errors; a dead node's are unknown.
            Err(ClusterError::NodeGone(_)) => Ok(()),
            Err(e) => Err(e.for_object(object)),
            Ok(Route::Remote(r)) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                p.insert("subscription".into(), json!(subscription));
                self.forward(caller, &r, "unsubscribe", p, object).map(drop)
            }
        }
    }

    fn release(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError> {
        match self.route(object) {
            Ok(Route::Local) => self.inner.local.release(caller, object),
            // §5.8: releasing an object that no longer exists succeeds.
            Err(ClusterError::NodeGone(_)) => Ok(()),
            Err(e) => Err(e.for_object(object)),
            Ok(Route::Remote(r)) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                self.forward(caller, &r, "release", p, object)?;
                self.untrack_tree(&r.node_id(), object);
                Ok(())
            }
        }
    }

    fn ref_object(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError> {
        match self.route(object).map_err(|e| e.for_object(object))? {
            Route::Local => self.inner.local.ref_object(caller, object),
            Route::Remote(r) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                self.forward(caller, &r, "ref", p, object)?;
                self.track(caller, &r.node_id(), object);
                Ok(())
            }
        }
    }

    fn unref_object(&self, caller: &dyn Caller, object: &str) -> Result<(), RpcError> {
        match self.route(object) {
            Ok(Route::Local) => self.inner.local.unref_object(caller, object),
            Err(ClusterError::NodeGone(_)) => Ok(()),
            Err(e) => Err(e.for_object(object)),
            Ok(Route::Remote(r)) => {
                let mut p = Map::new();
                p.insert("object".into(), json!(object));
                self.forward(caller, &r, "unref", p, object).map(drop)
            }
        }
    }

    fn adopts_sessions(&self) -> bool {
        true
    }

    /// A client reconnected here with a session another node created
    /// (§3.3). Its record says which node was its home and which remote
    /// session each of that node's links held: this node's links resume
    /// them (`connect {sessionId}` rebinds them here, subscriptions
    /// included), and this node becomes the session's home.
    fn adopt_session(&self, caller: &dyn Caller) -> bool {
        let me = &self.inner.config.node_id;
        let session = caller.session();
        let record = match self.block_on(self.inner.store.session(session.as_str())) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("cannot adopt session {session}: {e}");
                return false;
            }
        };
        if record.get("tenant").map(String::as_str) != Some(caller.tenant().as_str()) {
            return false;
        }
        let Some(home) = record.get("home").map(|h| NodeId::new(h)).filter(|h| h != me) else { return false };
        let Ok((live, _)) = self.block_on(self.inner.store.nodes()) else { return false };
        let mut resume: Vec<(NodeId, String)> = vec![(home.clone(), session.as_str().to_owned())];
        resume.extend(
            record
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("link:").map(|n| (NodeId::new(n), v.clone())))
                .filter(|(n, _)| n != me && *n != home),
        );
        {
            let mut resumable = self.inner.resumable.lock();
            for (node, remote_session) in resume {
                let Some(r) = live.get(&node) else { continue };
                let entry = Resumable {
                    remote_session,
                    epoch: r.epoch.clone(),
                    tenant: caller.tenant().clone(),
                    objects: HashSet::new(),
                };
                resumable.insert((session.clone(), node), entry);
            }
        }
        self.inner.noted.lock().insert(session.clone());
        if let Err(e) = self.block_on(self.inner.store.note_session(session.as_str(), caller.tenant().as_str(), me)) {
            tracing::debug!("adopted session not recorded: {e}");
        }
        tracing::info!(%session, from = %home, "session adopted from another node");
        true
    }

    fn unref_session(&self, session: &SessionId) {
        self.inner.local.unref_session(session);
        self.end_session(session, false);
    }

    fn release_session(&self, session: &SessionId) {
        self.inner.local.release_session(session);
        self.end_session(session, true);
    }
}

impl ClusterBackend {
    /// The client session ended here. If another node adopted it (its
    /// record names another home), the client lives on there: the links
    /// are dropped without ending their remote sessions, which that node
    /// resumed. Otherwise they end the same way, and the record goes.
    fn end_session(&self, session: &SessionId, release: bool) {
        let me = self.inner.config.node_id.as_str();
        let noted = self.inner.noted.lock().remove(session);
        let moved = match self.block_on(self.inner.store.session(session.as_str())) {
            Ok(r) => r.get("home").is_some_and(|h| h != me),
            Err(_) => false,
        };
        if moved {
            let mut links = self.inner.links.lock();
            links.retain(|(s, _), _| s != session);
            drop(links);
            self.inner.resumable.lock().retain(|(s, _), _| s != session);
            return;
        }
        if noted {
            let _ = self.block_on(self.inner.store.forget_session(session.as_str()));
        }
        close_links(&self.inner, session, release);
    }
}

/// The client session ended: its remote sessions end the same way.
fn close_links(inner: &Inner, session: &SessionId, release: bool) {
    let slots: Vec<Slot> = {
        let mut links = inner.links.lock();
        let keys: Vec<(SessionId, NodeId)> = links.keys().filter(|(s, _)| s == session).cloned().collect();
        keys.into_iter().filter_map(|k| links.remove(&k)).collect()
    };
    inner.resumable.lock().retain(|(s, _), _| s != session);
    for s in slots {
        s.link.close(release);
    }
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend").field("node", &self.inner.config.node_id).finish_non_exhaustive()
    }
}
