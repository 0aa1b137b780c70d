//! Tenants (beyond upstream): which application a connection acts for.
//!
//! KMS has one namespace: whoever reaches the socket may use every object
//! whose id it knows. Operators hosting several applications on one server
//! give each its own access token; the token maps to a tenant, fixed when
//! the WebSocket is upgraded. Sessions and objects belong to the tenant that
//! created them; inside one tenant, sharing by id works as in KMS.
//!
//! Without any configured token everything runs in [`TenantId::default`]
//! (KMS behaviour).

use std::fmt;
use std::sync::{Arc, LazyLock};

use crate::session::SessionId;

/// Name of the tenant used when no `accessTokens` map is configured.
pub const DEFAULT_TENANT: &str = "default";

/// A tenant name, as configured in `mediaServer.net.websocket.accessTokens`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn new(name: &str) -> Self {
        TenantId(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        DEFAULT.clone()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

static DEFAULT: LazyLock<TenantId> = LazyLock::new(|| TenantId::new(DEFAULT_TENANT));

/// What a connection is allowed, decided at upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// May read process-wide figures (`getUsedMemory`, `getUsedCpu`). They
    /// cannot be split per tenant honestly, so only operators see them.
    /// Grants nothing on other tenants' objects.
    pub admin: bool,
}

impl Default for Tenant {
    /// The single tenant of a server without `accessTokens`: it is the only
    /// user of the process, so process figures are its own.
    fn default() -> Self {
        Tenant { id: TenantId::default(), admin: true }
    }
}

/// Who makes a backend call: the session it runs in and its tenant.
///
/// A bare [`SessionId`] is a caller of the default, admin tenant: the form
/// single-tenant embeddings and tests use (`registry.create(&session, ..)`).
pub trait Caller: Send + Sync {
    fn session(&self) -> &SessionId;
    fn tenant(&self) -> &TenantId;
    /// See [`Tenant::admin`].
    fn is_admin(&self) -> bool;
}

impl Caller for SessionId {
    fn session(&self) -> &SessionId {
        self
    }

    fn tenant(&self) -> &TenantId {
        &DEFAULT
    }

    fn is_admin(&self) -> bool {
        true
    }
}

/// A session of a given tenant: what the dispatcher passes to the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSession {
    pub session: SessionId,
    pub tenant: Tenant,
}

impl TenantSession {
    pub fn new(session: SessionId, tenant: Tenant) -> Self {
        TenantSession { session, tenant }
    }
}

impl Caller for TenantSession {
    fn session(&self) -> &SessionId {
        &self.session
    }

    fn tenant(&self) -> &TenantId {
        &self.tenant.id
    }

    fn is_admin(&self) -> bool {
        self.tenant.admin
    }
}

impl fmt::Display for dyn Caller + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.session(), self.tenant())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_session_is_the_default_admin_tenant() {
        let s = SessionId::from("s");
        let c: &dyn Caller = &s;
        assert_eq!(c.tenant().as_str(), DEFAULT_TENANT);
        assert!(c.is_admin());
        assert_eq!(c.to_string(), "s@default");
        let t = TenantSession::new(s.clone(), Tenant { id: TenantId::new("acme"), admin: false });
        let c: &dyn Caller = &t;
        assert_eq!((c.session(), c.tenant().as_str(), c.is_admin()), (&s, "acme", false));
    }
}
