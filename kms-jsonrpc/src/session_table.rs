//! Live sessions, their connection bindings and their garbage collection
//! (spec §3.1 association, §3.2 liveness).
//!
//! Sans-IO: the transport asks `poll_timeout` when to wake up and calls
//! `handle_timeout` with the current time (through
//! [`crate::Dispatcher`]); the sessions it returns must be handed to
//! `MediaBackend::unref_session`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::RpcError;
use crate::session::SessionId;
use crate::tenant::{Tenant, TenantId};

/// Identifies one WebSocket connection for the lifetime of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

#[derive(Debug)]
struct SessionEntry {
    in_use: bool,
    connection: Option<ConnectionId>,
    /// The tenant that created the session; no other tenant may use it.
    tenant: TenantId,
}

#[derive(Debug)]
struct ConnectionEntry {
    /// Fixed at upgrade.
    tenant: Tenant,
    session: Option<SessionId>,
}

/// Smallest GC period accepted; a zero period would spin the timer.
const MIN_GC_PERIOD: Duration = Duration::from_millis(4);

pub(crate) struct SessionTable {
    sessions: HashMap<SessionId, SessionEntry>,
    /// Open connections and the session each is bound to. A connection may
    /// be bound to an id that is not (or no longer) a live session, e.g.
    /// after `ping {sessionId}`; that binding only drives injection.
    connections: HashMap<ConnectionId, ConnectionEntry>,
    next_connection: u64,
    gc_period: Duration,
    keepalive_period: Duration,
    next_gc: Instant,
    next_keepalive: Instant,
}

impl SessionTable {
    pub fn new(gc_period: Duration, now: Instant) -> Self {
        let gc_period = gc_period.max(MIN_GC_PERIOD);
        let keepalive_period = gc_period / 4;
        SessionTable {
            sessions: HashMap::new(),
            connections: HashMap::new(),
            next_connection: 1,
            gc_period,
            keepalive_period,
            next_gc: now + gc_period,
            next_keepalive: now + keepalive_period,
        }
    }

    pub fn open_connection(&mut self, tenant: Tenant) -> ConnectionId {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.connections.insert(id, ConnectionEntry { tenant, session: None });
        id
    }

    pub fn tenant_of(&self, conn: ConnectionId) -> Option<&Tenant> {
        self.connections.get(&conn).map(|c| &c.tenant)
    }

    /// The tenant a live session belongs to.
    pub fn session_tenant(&self, session: &str) -> Option<&TenantId> {
        self.sessions.get(session).map(|e| &e.tenant)
    }

    /// §3.2: closing the socket only drops the binding; the session lives
    /// on until the GC finds it unused.
    pub fn close_connection(&mut self, conn: ConnectionId) {
        if let Some(ConnectionEntry { session: Some(s), .. }) = self.connections.remove(&conn) {
            self.unbind_session_from(&s, conn);
        }
    }

    fn unbind_session_from(&mut self, session: &SessionId, conn: ConnectionId) {
        if let Some(e) = self.sessions.get_mut(session)
            && e.connection == Some(conn)
        {
            e.connection = None;
        }
    }

    pub fn session_of(&self, conn: ConnectionId) -> Option<&SessionId> {
        self.connections.get(&conn)?.session.as_ref()
    }

    pub fn connection_of(&self, session: &str) -> Option<ConnectionId> {
        self.sessions.get(session)?.connection
    }

    pub fn contains(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    pub fn ids(&self) -> Vec<SessionId> {
        let mut v: Vec<SessionId> = self.sessions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Live sessions of one tenant, sorted.
    pub fn ids_of(&self, tenant: &TenantId) -> Vec<SessionId> {
        let mut v: Vec<SessionId> =
            self.sessions.iter().filter(|(_, e)| e.tenant == *tenant).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }

    /// Makes `session` live in `tenant` (§3.1 implicit creation), refusing
    /// past `max`. Another tenant's session is refused as if it were
    /// invalid: its id must not give access to its objects or events.
    pub fn ensure(&mut self, session: &SessionId, tenant: &TenantId, max: usize) -> Result<(), RpcError> {
        if let Some(e) = self.sessions.get_mut(session.as_str()) {
            if e.tenant != *tenant {
                return Err(RpcError::invalid_session());
            }
            e.in_use = true;
            return Ok(());
        }
        if self.sessions.len() >= max {
            return Err(RpcError::not_enough_resources(format!("Reached sessions limit: {max}")));
        }
        self.sessions.insert(session.clone(), SessionEntry { in_use: true, connection: None, tenant: tenant.clone() });
        Ok(())
    }

    pub fn mark_in_use(&mut self, session: &str) {
        if let Some(e) = self.sessions.get_mut(session) {
            e.in_use = true;
        }
    }

    /// §3.1: `conn` becomes *the* connection of `session` (last one wins);
    /// a different session previously bound to `conn` is unbound.
    pub fn associate(&mut self, conn: ConnectionId, session: &SessionId) {
        let Some(entry) = self.connections.get_mut(&conn) else {
            return; // closed meanwhile
        };
        if let Some(e) = self.sessions.get(session.as_str())
            && e.tenant != entry.tenant.id
        {
            // The dispatcher refuses foreign sessions before this; never
            // route another tenant's events here.
            return;
        }
        let previous = entry.session.replace(session.clone());
        if let Some(prev) = previous
            && prev != *session
        {
            self.unbind_session_from(&prev, conn);
        }
        if let Some(e) = self.sessions.get_mut(session.as_str()) {
            if let Some(old) = e.connection
                && old != conn
                && let Some(old_entry) = self.connections.get_mut(&old)
                && old_entry.session.as_ref() == Some(session)
            {
                old_entry.session = None;
            }
            e.connection = Some(conn);
            e.in_use = true;
        }
    }

    /// Drops a session (closeSession or GC) and any connection's binding.
    pub fn forget(&mut self, session: &str) {
        if let Some(e) = self.sessions.remove(session)
            && let Some(conn) = e.connection
            && let Some(entry) = self.connections.get_mut(&conn)
            && entry.session.as_ref().map(SessionId::as_str) == Some(session)
        {
            entry.session = None;
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_gc.min(self.next_keepalive)
    }

    /// Runs the keep-alive pass and GC ticks that are due; returns the
    /// collected sessions (already forgotten here).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<SessionId> {
        let mut collected = Vec::new();
        loop {
            // Keep-alive first when both are due, so a session with an
            // open socket is never collected (§3.2 consequence).
            if self.next_keepalive <= now && self.next_keepalive <= self.next_gc {
                self.keepalive_pass();
                self.next_keepalive = Self::advance(self.next_keepalive, self.keepalive_period, now);
            } else if self.next_gc <= now {
                collected.extend(self.gc_pass());
                self.next_gc = Self::advance(self.next_gc, self.gc_period, now);
            } else {
                break;
            }
        }
        collected
    }

    /// Next deadline; after a long stall, restart from `now` instead of
    /// running a burst of back-to-back passes.
    fn advance(deadline: Instant, period: Duration, now: Instant) -> Instant {
        let next = deadline + period;
        if next <= now { now + period } else { next }
    }

    fn keepalive_pass(&mut self) {
        for e in self.sessions.values_mut() {
            if e.connection.is_some() {
                e.in_use = true;
            }
        }
    }

    fn gc_pass(&mut self) -> Vec<SessionId> {
        let mut collected = Vec::new();
        for (id, e) in &mut self.sessions {
            if e.in_use {
                e.in_use = false;
            } else {
                collected.push(id.clone());
            }
        }
        for id in &collected {
            self.forget(id.as_str());
        }
        collected.sort();
        collected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(240);

    #[test]
    fn associate_is_last_connection_wins() {
        let t0 = Instant::now();
        let mut t = SessionTable::new(P, t0);
        let a = t.open_connection(Tenant::default());
        let b = t.open_connection(Tenant::default());
        let s = SessionId::from("s");
        t.ensure(&s, &TenantId::default(), 10).unwrap();
        t.associate(a, &s);
        assert_eq!(t.connection_of("s"), Some(a));
        t.associate(b, &s);
        assert_eq!(t.connection_of("s"), Some(b));
        assert_eq!(t.session_of(a), None);
        assert_eq!(t.session_of(b), Some(&s));
        // b moves to another session: s is unbound.
        let u = SessionId::from("u");
        t.ensure(&u, &TenantId::default(), 10).unwrap();
        t.associate(b, &u);
        assert_eq!(t.connection_of("s"), None);
        assert_eq!(t.connection_of("u"), Some(b));
        t.close_connection(b);
        assert_eq!(t.connection_of("u"), None);
        assert!(t.contains("u"));
    }

    #[test]
    fn gc_collects_unbound_session_after_one_to_two_periods() {
        let t0 = Instant::now();
        let mut t = SessionTable::new(P, t0);
        let s = SessionId::from("s");
        t.ensure(&s, &TenantId::default(), 10).unwrap();
        assert!(t.handle_timeout(t0 + P).is_empty()); // flag cleared
        assert_eq!(t.handle_timeout(t0 + 2 * P), vec![s.clone()]);
        assert!(!t.contains("s"));
    }

    #[test]
    fn gc_never_collects_a_bound_session() {
        let t0 = Instant::now();
        let mut t = SessionTable::new(P, t0);
        let c = t.open_connection(Tenant::default());
        let s = SessionId::from("s");
        t.ensure(&s, &TenantId::default(), 10).unwrap();
        t.associate(c, &s);
        let mut now = t0;
        for _ in 0..40 {
            now = t.poll_timeout();
            assert!(t.handle_timeout(now).is_empty());
        }
        assert!(now >= t0 + 9 * P);
        t.close_connection(c);
        let mut collected = Vec::new();
        while collected.is_empty() {
            now = t.poll_timeout();
            collected = t.handle_timeout(now);
        }
        assert_eq!(collected, vec![s]);
    }

    #[test]
    fn sessions_limit() {
        let mut t = SessionTable::new(P, Instant::now());
        let d = TenantId::default();
        t.ensure(&SessionId::from("a"), &d, 1).unwrap();
        t.ensure(&SessionId::from("a"), &d, 1).unwrap();
        let e = t.ensure(&SessionId::from("b"), &d, 1).unwrap_err();
        assert_eq!(e.code, crate::error::codes::NOT_ENOUGH_RESOURCES);
        assert_eq!(e.message, "Reached sessions limit: 1");
    }

    #[test]
    fn a_session_belongs_to_the_tenant_that_created_it() {
        let mut t = SessionTable::new(P, Instant::now());
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let s = SessionId::from("s");
        t.ensure(&s, &a, 10).unwrap();
        assert_eq!(t.ensure(&s, &b, 10).unwrap_err().code, crate::error::codes::INVALID_SESSION);
        t.ensure(&SessionId::from("u"), &b, 10).unwrap();
        assert_eq!(t.ids_of(&a), vec![s.clone()]);
        assert_eq!(t.ids_of(&b), vec![SessionId::from("u")]);
        // A connection of b is never bound to a's session.
        let cb = t.open_connection(Tenant { id: b.clone(), admin: false });
        t.associate(cb, &s);
        assert_eq!(t.connection_of("s"), None);
        assert_eq!(t.session_of(cb), None);
        assert_eq!(t.session_tenant("s"), Some(&a));
    }
}
