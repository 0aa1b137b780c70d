//! Cluster settings (`mediaServer.cluster.*`, `KMS_CLUSTER_*`); parsed by
//! the server's settings loader, validated here.

use std::time::Duration;

use kms_jsonrpc::TenantId;

use crate::error::ClusterError;
use crate::ids::NodeId;

pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(1000);
/// A node whose record is older than this is gone: a few heartbeats, so
/// one late heartbeat (GC pause, loaded machine) does not evict a node.
pub const DEFAULT_EXPIRY: Duration = Duration::from_millis(5000);
/// Bound on one forwarded call. Generous: `processOffer` and friends wait
/// on GStreamer on the owner.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]`.
    pub redis_url: String,
    pub node_id: NodeId,
    /// `host:port` other nodes open internal links to (this node's plain
    /// `ws://` listener).
    pub advertised_address: String,
    /// The WebSocket path (`mediaServer.net.websocket.path`).
    pub ws_path: String,
    pub heartbeat: Duration,
    pub expiry: Duration,
    pub forward_timeout: Duration,
    /// Access tokens (token → tenant): an internal link acts for the
    /// caller's tenant by presenting one of its tokens. Every node must
    /// share the same tokens.
    pub tokens: Vec<(String, TenantId)>,
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), ClusterError> {
        if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("rediss://") {
            return Err(ClusterError::Config(format!(
                "mediaServer.cluster.redisUrl must start with redis:// (got '{}')",
                self.redis_url
            )));
        }
        if self.node_id.as_str().is_empty() || self.node_id.as_str().contains(|c: char| c.is_whitespace()) {
            return Err(ClusterError::Config("mediaServer.cluster.nodeId must be a non-empty word".into()));
        }
        if !self.advertised_address.contains(':') {
            return Err(ClusterError::Config(format!(
                "mediaServer.cluster.advertisedAddress must be host:port (got '{}')",
                self.advertised_address
            )));
        }
        if self.expiry < self.heartbeat * 2 {
            return Err(ClusterError::Config(format!(
                "mediaServer.cluster.expiryMs ({} ms) must be at least twice heartbeatMs ({} ms)",
                self.expiry.as_millis(),
                self.heartbeat.as_millis()
            )));
        }
        Ok(())
    }

    /// The token an internal link presents for `tenant`, if tokens are on.
    pub fn token_for(&self, tenant: &TenantId) -> Option<&str> {
        self.tokens.iter().find(|(_, t)| t == tenant).map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClusterConfig {
        ClusterConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            node_id: NodeId::new("a"),
            advertised_address: "10.0.0.1:8888".into(),
            ws_path: "kurento".into(),
            heartbeat: DEFAULT_HEARTBEAT,
            expiry: DEFAULT_EXPIRY,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            tokens: vec![("tok".into(), TenantId::new("t1"))],
        }
    }

    #[test]
    fn validation_names_the_bad_setting() {
        cfg().validate().unwrap();
        let mut c = cfg();
        c.redis_url = "http://x".into();
        assert!(c.validate().unwrap_err().to_string().contains("redisUrl"));
        let mut c = cfg();
        c.advertised_address = "host".into();
        assert!(c.validate().unwrap_err().to_string().contains("advertisedAddress"));
        let mut c = cfg();
        c.expiry = Duration::from_millis(1500);
        assert!(c.validate().unwrap_err().to_string().contains("expiryMs"));
    }

    #[test]
    fn links_present_the_token_of_the_callers_tenant() {
        assert_eq!(cfg().token_for(&TenantId::new("t1")), Some("tok"));
        assert_eq!(cfg().token_for(&TenantId::new("t2")), None);
    }
}
