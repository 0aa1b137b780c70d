//! Shared state between the transport and the object model: the
//! [`Dispatcher`] behind a lock, each connection's outbound queue (an
//! [`Outbox`] bounded in bytes), and the [`Notifier`] handle through which
//! the backend delivers events (§7.1).
//!
//! The lock is a `parking_lot::Mutex` held only for bookkeeping (never across
//! an `.await` or a backend call), so GStreamer threads can take it.

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::Notify;

use crate::codec;
use crate::config::{Limits, ServerConfig};
use crate::dispatch::Dispatcher;
use crate::outbox::{Outbound, Outbox, Pushed};
use crate::session::SessionId;
use crate::session_table::ConnectionId;
use crate::tenant::{Tenant, TenantId};

pub(crate) struct HubState {
    pub dispatcher: Dispatcher,
    pub outbound: HashMap<ConnectionId, Outbox>,
}

pub(crate) struct Shared {
    state: Mutex<HubState>,
    /// Upgraded connections alive (reserved at upgrade time).
    live_connections: AtomicUsize,
    all_closed: Notify,
    limits: Limits,
}

/// Owns sessions, connections and the request cache. Cheap to clone.
#[derive(Clone)]
pub struct SessionHub {
    shared: Arc<Shared>,
}

impl SessionHub {
    pub fn new(config: &ServerConfig) -> Self {
        SessionHub {
            shared: Arc::new(Shared {
                state: Mutex::new(HubState {
                    dispatcher: Dispatcher::new(config, Instant::now()),
                    outbound: HashMap::new(),
                }),
                live_connections: AtomicUsize::new(0),
                all_closed: Notify::new(),
                limits: config.limits.clone(),
            }),
        }
    }

    /// The handle the backend uses to emit events.
    pub fn notifier(&self) -> Notifier {
        Notifier { shared: self.shared.clone() }
    }

    /// `connect`'s `serverId` (§5.2).
    pub fn server_id(&self) -> String {
        self.lock().dispatcher.server_id().to_owned()
    }

    pub fn session_ids(&self) -> Vec<SessionId> {
        self.lock().dispatcher.session_ids()
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HubState> {
        self.shared.lock()
    }

    /// Registers an upgraded socket of `tenant` and its outbound queue.
    pub(crate) fn open_connection(&self, tenant: Tenant, outbox: Outbox) -> ConnectionId {
        let mut st = self.lock();
        let conn = st.dispatcher.open_connection_for(tenant);
        st.outbound.insert(conn, outbox);
        conn
    }

    pub(crate) fn close_connection(&self, conn: ConnectionId) {
        let mut st = self.lock();
        st.dispatcher.close_connection(conn);
        st.outbound.remove(&conn);
    }

    /// Reserves a connection slot, or `None` past `max_connections`.
    pub(crate) fn try_reserve_connection(&self) -> Option<ConnectionSlot> {
        let max = self.shared.limits.max_connections;
        self.shared
            .live_connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(ConnectionSlot { shared: self.shared.clone() })
    }

    pub(crate) fn live_connections(&self) -> usize {
        self.shared.live_connections.load(Ordering::Acquire)
    }

    /// Resolves once no connection slot is held.
    pub(crate) async fn all_connections_closed(&self) {
        loop {
            let notified = self.shared.all_closed.notified();
            if self.live_connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves plain bookkeeping behind;
        // keep serving rather than poisoning every connection.
        self.state.lock()
    }
}

/// A held place under `max_connections`; released on drop.
pub(crate) struct ConnectionSlot {
    shared: Arc<Shared>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self.shared.live_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.all_closed.notify_waiters();
        }
    }
}

/// Delivers events to sessions; cloneable, `Send + Sync`, never blocks on
/// async code, so it can be called from GStreamer streaming threads.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    /// Sends `{"jsonrpc":"2.0","method":"onEvent","params":{"value":{"data":data,"object":object,"type":event_type}}}`
    /// to the connection currently bound to `session` (§3, §7.1); dropped
    /// (debug log) if none is bound.
    /// A connection whose outbox overflowed gets nothing more; it is being
    /// closed (1008) by its own task.
    pub fn send_event(&self, session: &SessionId, object: &str, event_type: &str, data: Value) {
        let text = codec::encode_event(object, event_type, data);
        let st = self.shared.lock();
        let outbox = st.dispatcher.connection_of(session).and_then(|c| st.outbound.get(&c));
        match outbox.map(|o| o.push(Outbound::Text(text))) {
            Some(Pushed::Queued) => {}
            // Logged (once) by the connection task, which knows the peer.
            Some(Pushed::Overflowed | Pushed::Dropped) => {}
            None => {
                tracing::debug!(%session, object, event_type, "no connection bound; event dropped")
            }
        }
    }

    /// Ids of all live (not yet collected) sessions.
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.shared.lock().dispatcher.session_ids()
    }

    /// Live sessions of one tenant, for `ServerManager.getSessions` (§9).
    pub fn session_ids_of(&self, tenant: &TenantId) -> Vec<SessionId> {
        self.shared.lock().dispatcher.session_ids_of(tenant)
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SessionHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHub").finish_non_exhaustive()
    }
}
